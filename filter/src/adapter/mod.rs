//! The Proxy-Wasm adapter: moves bytes between the host (Envoy, Kong) and
//! the engine. It holds no GraphQL logic.

mod host;

use crate::config::Gateway;
use crate::execute::{CallId, Execution};
use crate::limits::LimitExceeded;
use crate::request::{HttpRequest, ResponseMedia};
use crate::response::{self, Reply};
use crate::upstream::{CallFailure, CallOutcome};
use log::{error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Plugin::default()) });
}}

/// The root context: holds the checked configuration, shared by every
/// request created after it was loaded.
#[derive(Default)]
struct Plugin {
    gateway: Option<Arc<Gateway>>,
}

impl Context for Plugin {}

impl RootContext for Plugin {
    fn on_configure(&mut self, _size: usize) -> bool {
        let text = host::buffer(BufferType::PluginConfiguration, 0, usize::MAX).unwrap_or_default();
        let loaded = std::str::from_utf8(&text)
            .map_err(|e| format!("configuration is not UTF-8: {e}"))
            .and_then(|text| Gateway::from_json(text).map_err(|e| e.to_string()));
        match loaded {
            Ok(gateway) => {
                for warning in &gateway.warnings {
                    warn!("graphql-aggregator: {warning}");
                }
                info!(
                    "graphql-aggregator: configuration loaded: {} mapped fields, {} upstreams",
                    gateway.resolvers.len(),
                    gateway.upstreams.len()
                );
                self.gateway = Some(Arc::new(gateway));
            }
            Err(problem) => {
                error!(
                    "graphql-aggregator: invalid configuration, every request gets a 500 \
                     GraphQL error until it is fixed: {problem}"
                );
                self.gateway = None;
            }
        }
        // Accepting the configuration keeps the route answering with a clear
        // GraphQL error instead of the host's own failure page.
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            gateway: self.gateway.clone(),
            request: HttpRequest::default(),
            execution: None,
            tokens: HashMap::new(),
            started: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One client request.
struct Stream {
    gateway: Option<Arc<Gateway>>,
    request: HttpRequest,
    execution: Option<Execution>,
    tokens: HashMap<u32, CallId>,
    started: bool,
}

impl Context for Stream {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(id) = self.tokens.remove(&token) else {
            return;
        };
        let max_body = self
            .gateway
            .as_ref()
            .map_or(usize::MAX, |g| g.limits.max_response_bytes);
        let outcome = call_outcome(num_headers, body_size, max_body);
        if let Some(execution) = self.execution.as_mut() {
            execution.on_call_outcome(id, outcome, now_ms());
        }
        self.drive();
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // Read everything now: after Continue, Envoy no longer lets the
        // filter read request headers.
        let pairs = host::header_pairs(MapType::HttpRequestHeaders).unwrap_or_default();
        for (name, value) in pairs {
            match name.as_str() {
                ":method" => self.request.method = value,
                ":path" => self.request.path = value,
                n if n.starts_with(':') => {}
                _ => self
                    .request
                    .headers
                    .push((name.to_ascii_lowercase(), value)),
            }
        }
        let method = self.request.method.as_str();
        // Kong never calls on_http_request_body for an empty body, and its
        // end_of_stream is always false here: decide by method and length.
        let bodiless = end_of_stream
            || method == "GET"
            || method == "HEAD"
            || self.request.header("content-length") == Some("0");
        if bodiless {
            self.start(Vec::new());
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.started {
            return Action::Pause;
        }
        // Refuse an oversized body as soon as it is known, not at its end.
        let max_body = self
            .gateway
            .as_ref()
            .map_or(usize::MAX, |g| g.limits.max_body_bytes);
        if body_size > max_body {
            self.started = true;
            let exceeded = LimitExceeded {
                limit: "max_body_bytes",
                max: max_body,
                actual: body_size,
            };
            let media = ResponseMedia::negotiate(self.request.header("accept"));
            self.send(response::limit_exceeded(&exceeded, 413, media));
            return Action::Pause;
        }
        if end_of_stream {
            let body = host::buffer(BufferType::HttpRequestBody, 0, body_size).unwrap_or_default();
            self.start(body);
        }
        // Never let the body through: the reply is always local.
        Action::Pause
    }
}

impl Stream {
    fn start(&mut self, body: Vec<u8>) {
        self.started = true;
        let Some(gateway) = self.gateway.clone() else {
            self.send(response::misconfigured());
            return;
        };
        self.request.body = body;
        self.execution = Some(Execution::start(gateway, &self.request, now_ms()));
        self.drive();
    }

    /// Dispatch whatever the engine wants called; reply once it is done.
    fn drive(&mut self) {
        let Some(execution) = self.execution.as_mut() else {
            return;
        };
        loop {
            let calls = execution.take_calls(now_ms());
            if calls.is_empty() {
                break;
            }
            for call in calls {
                let request = &call.request;
                let dispatched = proxy_wasm::hostcalls::dispatch_http_call(
                    &request.target,
                    request.host_headers(),
                    request.body.as_deref(),
                    Vec::new(),
                    Duration::from_millis(request.timeout_ms),
                );
                match dispatched {
                    Ok(token) => {
                        self.tokens.insert(token, call.id);
                    }
                    Err(status) => {
                        let reason = format!(
                            "the gateway refused to call {} ({status:?})",
                            request.target
                        );
                        warn!("graphql-aggregator: {reason}");
                        execution.on_call_outcome(
                            call.id,
                            CallOutcome::Failed(CallFailure::Rejected(reason)),
                            now_ms(),
                        );
                    }
                }
            }
        }
        if let Some(reply) = execution.reply() {
            self.execution = None;
            self.tokens.clear();
            self.send(reply);
        }
    }

    fn send(&mut self, reply: Reply) {
        if let Err(status) = host::send_local_response(reply.status, &reply.headers, &reply.body) {
            error!("graphql-aggregator: the host refused the local reply (status {status})");
        }
    }
}

/// The host's clock in milliseconds (only differences matter).
fn now_ms() -> u64 {
    proxy_wasm::hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Read a call's outcome. A call with no headers failed: Envoy gives no
/// header map at all then, Kong gives a `:dispatch_status` pseudo-header.
/// A body over `max_body` bytes is not read.
fn call_outcome(num_headers: usize, body_size: usize, max_body: usize) -> CallOutcome {
    let map = MapType::HttpCallResponseHeaders;
    let status = if num_headers == 0 {
        None
    } else {
        host::header_value(map, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u16>().ok())
    };
    match status {
        Some(_) if body_size > max_body => CallOutcome::Failed(CallFailure::TooLarge(body_size)),
        Some(status) => {
            let body =
                host::buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default();
            CallOutcome::Response { status, body }
        }
        None => {
            let dispatch_status = host::header_value(map, ":dispatch_status").ok().flatten();
            CallOutcome::Failed(CallFailure::from_dispatch_status(
                dispatch_status.as_deref(),
            ))
        }
    }
}
