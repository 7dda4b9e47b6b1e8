//! Plain data the test-facing API hands out.

use crate::abi::LogLevel;
use std::fmt;

/// Case-insensitive lookup of the first header called `name`.
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// An HTTP call the filter dispatched with `proxy_http_call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The token the host returned; answer it with [`crate::Request::respond`].
    pub token: u32,
    /// The http context that dispatched it (the root context id for root calls).
    pub context_id: u32,
    /// The target: an Envoy cluster name, or Kong's `host:port` / `unix:/path`.
    pub upstream: String,
    /// The call's headers, pseudo-headers included, in the filter's order.
    pub headers: Vec<(String, String)>,
    /// The body, `None` when the filter sent none (or an empty one).
    pub body: Option<Vec<u8>>,
    /// The trailers.
    pub trailers: Vec<(String, String)>,
    /// The timeout in milliseconds the filter asked for.
    pub timeout_ms: u32,
}

impl Call {
    /// The first header `name` (case-insensitive), e.g. `":path"`.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// `:method`.
    pub fn method(&self) -> Option<&str> {
        self.header(":method")
    }

    /// `:path`.
    pub fn path(&self) -> Option<&str> {
        self.header(":path")
    }

    /// The body as UTF-8 (lossy); empty when there is none.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(self.body.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Who produced a [`LocalReply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplySource {
    /// The filter, with `proxy_send_local_response`.
    Filter,
    /// The gateway itself (e.g. 413 for a body over the limit).
    Host,
}

/// A response the request got without reaching its upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u32,
    /// Headers as the filter passed them (Envoy lower-cases names, as here).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// The details string (Envoy's response code details).
    pub details: String,
    /// The gRPC status argument (-1 for none).
    pub grpc_status: i32,
    /// Filter or host.
    pub source: ReplySource,
}

impl LocalReply {
    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as UTF-8 (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The reason phrase of the status line the client gets on `host`:
    /// Kong (ngx_wasm_module at Kong 3.9's pin) puts a non-empty details
    /// string there (measured: `HTTP/1.1 200 graphql_aggregator`), Envoy
    /// always uses the standard phrase.
    pub fn reason_phrase(&self, host: crate::HostKind) -> String {
        if host == crate::HostKind::Kong && !self.details.is_empty() {
            return self.details.clone();
        }
        standard_reason(self.status).to_string()
    }
}

/// The standard reason phrase of a status code (nginx's for the codes
/// nginx knows; `Unknown` otherwise).
pub fn standard_reason(status: u32) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        406 => "Not Acceptable",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        _ => "Unknown",
    }
}

/// One `proxy_log` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its level.
    pub level: LogLevel,
    /// Its text.
    pub message: String,
    /// The effective context id when it was logged.
    pub context_id: u32,
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] ctx {}: {}",
            self.level, self.context_id, self.message
        )
    }
}

/// An ABI misuse or a trap, recorded by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The host call or callback it happened in (e.g. `proxy_http_call`).
    pub call: String,
    /// The effective context id, when there was one.
    pub context_id: Option<u32>,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.context_id {
            Some(id) => write!(f, "{} (context {}): {}", self.call, id, self.message),
            None => write!(f, "{}: {}", self.call, self.message),
        }
    }
}

/// The kind of a metric the filter defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A counter.
    Counter,
    /// A gauge.
    Gauge,
    /// A histogram (values are recorded, the last one is kept in `value`).
    Histogram,
}

/// A metric the filter defined with `proxy_define_metric`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: MetricKind,
    /// Counter/gauge value; last recorded value for a histogram.
    pub value: i64,
    /// Every value recorded into a histogram.
    pub recorded: Vec<u64>,
}

/// What happened to a call response a test tried to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// `proxy_on_http_call_response` ran for the request's context.
    Delivered,
    /// Envoy: the request was already gone; the call still belonged to the
    /// root context, so `proxy_on_http_call_response` ran with the root id
    /// (the SDK then finds no context and drops it).
    DeliveredToRoot,
    /// The host had cancelled the call (Kong after a reply or when the
    /// request ended): nothing ran.
    Dropped,
}

/// Where an HTTP call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallState {
    /// Dispatched, not answered.
    Pending,
    /// Answered (success or failure delivered).
    Answered,
    /// Cancelled by the host; never delivered.
    Cancelled,
    /// Envoy: still in flight after its request ended.
    Orphaned,
}
