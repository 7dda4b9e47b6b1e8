//! Upstreams (the functions the filter may call), the requests it sends them
//! and the outcomes it gets back.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The default time a function call may take before it is abandoned.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A function endpoint named in the configuration's `upstreams` table.
///
/// Only upstreams listed in the configuration can ever be called: a schema
/// directive names an upstream, never an address.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// The name the schema's `@http(upstream: ...)` refers to.
    pub name: Arc<str>,
    /// What `dispatch_http_call` is given: an Envoy cluster name, or
    /// `host:port` on Kong.
    pub target: Arc<str>,
    /// The `:authority` (Host) sent with every call.
    pub authority: Arc<str>,
    /// Prepended to every path, e.g. `/function/user-profile` behind an
    /// OpenFaaS gateway. Empty when the function is called directly.
    pub path_prefix: String,
    /// How long one call may take.
    pub timeout: Duration,
    /// Client request headers copied onto every call (lower case).
    pub forward_headers: Vec<String>,
    /// Constant headers sent with every call (e.g. an internal token).
    pub headers: Vec<(String, String)>,
    /// Headers sent with every call whose values read the request's
    /// identity (`{identity.uid}`); not sent when a value is absent.
    pub identity_headers: Vec<crate::template::HeaderTemplate>,
    /// Which headers of this upstream's answers reach the client's reply,
    /// and how values of several calls combine (`response_headers`).
    pub response_headers: Vec<(String, crate::answer_headers::Rule)>,
    /// Client request headers sent under another name: (client, function).
    pub rename_headers: Vec<(String, String)>,
    /// How the functions wrap their answers, if they do.
    pub envelope: Option<Envelope>,
    /// How long answers are kept in the answer cache (`cache.ttl_ms`),
    /// whatever their `cache-control` allows (but `no-store`, `no-cache`
    /// and `private`); `None`: as their `cache-control` says.
    pub cache_ttl_ms: Option<u64>,
}

/// A platform's answer envelope, e.g. `{"code": 0, "msg": "ok", "data": {...}}`:
/// where the code is and which values mean success, where the message and
/// the data are.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Key path of the code.
    pub code: Vec<String>,
    /// Code values that mean success (compared as JSON, `0` and `"0"` differ).
    pub success: Vec<apollo_compiler::response::JsonValue>,
    /// Key path of the message, if any.
    pub message: Option<Vec<String>>,
    /// Key path of the data; `None`: the whole answer is the data.
    pub data: Option<Vec<String>>,
}

/// Headers that describe one connection or the message framing, never a
/// request's meaning: they are never forwarded to a function.
pub const HOP_BY_HOP: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Whether a (lower-case) header must never be forwarded: hop-by-hop,
/// framing, or a pseudo-header.
pub fn is_hop_by_hop(name: &str) -> bool {
    name.starts_with(':') || HOP_BY_HOP.contains(&name)
}

/// Headers the gateway itself sets on every call; neither a client nor a
/// template may supply them.
pub const RESERVED: [&str; 4] = ["accept", "content-type", DEADLINE_HEADER, REQUEST_ID_HEADER];

/// Whether a header value is safe to send: no CR, LF or NUL (which could
/// end the header and start another one).
pub fn is_safe_header_value(value: &str) -> bool {
    !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// One HTTP request to a function, fully rendered and ready to dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamRequest {
    /// The dispatch target (cluster name or `host:port`).
    pub target: Arc<str>,
    /// The upstream's name, for logs and errors.
    pub upstream: Arc<str>,
    /// HTTP method, upper case.
    pub method: Arc<str>,
    /// Path and query string, already percent-encoded.
    pub path: String,
    /// The `:authority` to send.
    pub authority: Arc<str>,
    /// Extra headers (never pseudo-headers); shared by the calls of a
    /// request that send the same ones.
    pub headers: Arc<[(String, String)]>,
    /// JSON body, for methods that carry one.
    pub body: Option<Vec<u8>>,
    /// Call timeout in milliseconds.
    pub timeout_ms: u64,
    /// The request's remaining budget in milliseconds, sent as
    /// [`DEADLINE_HEADER`] (set when the call is dispatched).
    pub deadline_header: Option<Digits>,
}

/// A number's decimal digits, held inline (a header value that needs no
/// allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digits {
    digits: [u8; 20],
    len: u8,
}

impl Digits {
    /// The digits of `n`.
    pub fn of(mut n: u64) -> Digits {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            if let Some(slot) = digits.get_mut(start) {
                *slot = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || start == 0 {
                break;
            }
        }
        digits.copy_within(start.., 0);
        Digits {
            digits,
            len: (20 - start) as u8,
        }
    }

    /// The digits as text.
    pub fn as_str(&self) -> &str {
        let digits = self.digits.get(..usize::from(self.len)).unwrap_or_default();
        std::str::from_utf8(digits).unwrap_or("0")
    }
}

impl fmt::Debug for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header that identifies the client's request; it is sent with every
/// call (the adapter makes one up when the client sent none).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The header that tells a function how many milliseconds the request has
/// left, so that it can give up early.
pub const DEADLINE_HEADER: &str = "x-request-deadline-ms";

impl UpstreamRequest {
    /// All headers to hand to the host, pseudo-headers first.
    pub fn host_headers(&self) -> Vec<(&str, &str)> {
        let mut headers = vec![
            (":method", self.method.as_ref()),
            (":path", self.path.as_str()),
            (":authority", self.authority.as_ref()),
        ];
        if self.body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        headers.push(("accept", "application/json"));
        if let Some(ms) = &self.deadline_header {
            headers.push((DEADLINE_HEADER, ms.as_str()));
        }
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        headers
    }
}

/// How a function call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// The function answered (any status).
    Response {
        /// HTTP status code.
        status: u16,
        /// Response body.
        body: Vec<u8>,
    },
    /// The call never produced an answer.
    Failed(CallFailure),
}

impl CallOutcome {
    /// A function answer with this status and body.
    pub fn response(status: u16, body: Vec<u8>) -> Self {
        CallOutcome::Response { status, body }
    }

    /// How the call went, for metrics and logs: `ok` (2xx), `http_error`,
    /// `timeout`, `unavailable`, `rejected` or `too_large`.
    pub fn kind(&self) -> &'static str {
        let failure = match self {
            CallOutcome::Response { status, body } => match gateway_failure(*status, body) {
                None if (200..300).contains(status) => return "ok",
                None => return "http_error",
                Some(failure) => failure,
            },
            CallOutcome::Failed(failure) => failure.clone(),
        };
        match failure {
            CallFailure::Timeout => "timeout",
            CallFailure::Unavailable(_) => "unavailable",
            CallFailure::Rejected(_) => "rejected",
            CallFailure::TooLarge(_) => "too_large",
        }
    }
}

/// Why a call produced no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// The host gave up waiting.
    Timeout,
    /// The connection failed (refused, reset, DNS, TLS...). The text is the
    /// host's own reason when it gives one.
    Unavailable(String),
    /// The host refused to dispatch the call at all (unknown cluster, bad
    /// header...). The text says which host call failed and how.
    Rejected(String),
    /// The answer's body was larger than `limits.max_response_bytes` (its
    /// size); it was not read.
    TooLarge(usize),
}

/// Envoy's own answers for a call that never reached a function: its
/// async HTTP client turns a timeout into a 504 `upstream request timeout`
/// and connection failures into 503s (measured with Envoy 1.40). These are
/// failures of the call, not answers of the function.
pub fn gateway_failure(status: u16, body: &[u8]) -> Option<CallFailure> {
    let text = std::str::from_utf8(body).ok()?;
    match (status, text) {
        (504, "upstream request timeout") => Some(CallFailure::Timeout),
        (503, "no healthy upstream") => Some(CallFailure::Unavailable(text.to_string())),
        (503, t) if t.starts_with("upstream connect error or disconnect/reset before headers") => {
            Some(CallFailure::Unavailable(t.to_string()))
        }
        _ => None,
    }
}

impl CallFailure {
    /// Classify a call the host answered without a `:status`, using Kong's
    /// `:dispatch_status` pseudo-header when present.
    pub fn from_dispatch_status(dispatch_status: Option<&str>) -> Self {
        match dispatch_status {
            Some(s) if s.contains("timeout") => CallFailure::Timeout,
            Some(s) => CallFailure::Unavailable(s.to_string()),
            None => CallFailure::Unavailable("connection failed or reset".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_decimal_text() {
        for n in [0, 7, 10, 600, 1234567890, u64::MAX] {
            assert_eq!(Digits::of(n).as_str(), n.to_string());
        }
    }

    #[test]
    fn outcomes_have_kinds() {
        assert_eq!(CallOutcome::response(204, vec![]).kind(), "ok");
        assert_eq!(CallOutcome::response(404, vec![]).kind(), "http_error");
        let envoy_timeout = CallOutcome::response(504, b"upstream request timeout".to_vec());
        assert_eq!(envoy_timeout.kind(), "timeout");
        assert_eq!(
            CallOutcome::Failed(CallFailure::TooLarge(9)).kind(),
            "too_large"
        );
    }

    #[test]
    fn kong_dispatch_status_is_classified() {
        assert_eq!(
            CallFailure::from_dispatch_status(Some("timeout")),
            CallFailure::Timeout
        );
        assert_eq!(
            CallFailure::from_dispatch_status(Some("broken connection")),
            CallFailure::Unavailable("broken connection".into())
        );
        assert!(matches!(
            CallFailure::from_dispatch_status(None),
            CallFailure::Unavailable(_)
        ));
    }
}
