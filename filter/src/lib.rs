//! graphql-aggregator, the Proxy-Wasm filter: a thin adapter that moves
//! bytes between the host (Envoy, Kong) and the engine
//! ([`graphql_aggregator_engine`]), and keeps the per-configuration state the
//! engine leaves to it (the plan cache, the metrics). It holds no GraphQL
//! logic. It is compiled for `wasm32` only; natively the crate is empty.

#![cfg(target_arch = "wasm32")]

mod host;
mod metrics;

use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::{CallId, Execution};
use graphql_aggregator_engine::limits::LimitExceeded;
use graphql_aggregator_engine::plan_cache::PlanCache;
use graphql_aggregator_engine::request::{HttpRequest, ResponseMedia};
use graphql_aggregator_engine::response::{self, Reply};
use graphql_aggregator_engine::upstream::{CallFailure, CallOutcome, REQUEST_ID_HEADER};
use log::{error, info, warn};
use metrics::Metrics;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Plugin::default()) });
}}

/// What one configuration's requests share: the checked configuration, its
/// plan cache and the metrics.
struct Shared {
    gateway: Option<Arc<Gateway>>,
    plan_cache: PlanCache,
    metrics: Rc<RefCell<Metrics>>,
    /// Numbers the request ids made up for clients that sent none.
    next_request: u64,
}

/// The root context: loads the configuration and hands every new request
/// the state of the configuration it starts under.
#[derive(Default)]
struct Plugin {
    shared: Option<Rc<RefCell<Shared>>>,
    /// One set of metrics for the plugin's life, across configurations.
    metrics: Rc<RefCell<Metrics>>,
}

impl Context for Plugin {}

impl RootContext for Plugin {
    fn on_configure(&mut self, _size: usize) -> bool {
        let text = host::buffer(BufferType::PluginConfiguration, 0, usize::MAX).unwrap_or_default();
        let loaded = std::str::from_utf8(&text)
            .map_err(|e| format!("configuration is not UTF-8: {e}"))
            .and_then(|text| Gateway::from_json(text).map_err(|e| e.to_string()));
        let gateway = match loaded {
            Ok(gateway) => {
                for warning in &gateway.warnings {
                    warn!("graphql-aggregator: {warning}");
                }
                info!(
                    "graphql-aggregator: configuration loaded: {} mapped fields, {} upstreams",
                    gateway.resolvers.len(),
                    gateway.upstreams.len()
                );
                Some(Arc::new(gateway))
            }
            Err(problem) => {
                error!(
                    "graphql-aggregator: invalid configuration, every request gets a 500 \
                     GraphQL error until it is fixed: {problem}"
                );
                None
            }
        };
        // Requests in flight keep the state they started with; new ones get
        // a fresh plan cache (validation depends on the schema).
        self.metrics.borrow_mut().define_all();
        let plan_cache_size = gateway.as_ref().map_or(0, |g| g.plan_cache_size);
        self.shared = Some(Rc::new(RefCell::new(Shared {
            gateway,
            plan_cache: PlanCache::new(plan_cache_size),
            metrics: self.metrics.clone(),
            next_request: 0,
        })));
        // Accepting the configuration keeps the route answering with a clear
        // GraphQL error instead of the host's own failure page.
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            shared: self.shared.clone(),
            request: HttpRequest::default(),
            request_id: String::new(),
            execution: None,
            calls: HashMap::new(),
            started: false,
            body_size: 0,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// A call in flight: the engine's id, where it went, when it left.
struct InFlight {
    id: CallId,
    upstream: std::sync::Arc<str>,
    path: String,
    sent_ms: u64,
}

/// One client request.
struct Stream {
    shared: Option<Rc<RefCell<Shared>>>,
    request: HttpRequest,
    request_id: String,
    execution: Option<Execution>,
    calls: HashMap<u32, InFlight>,
    started: bool,
    /// The body buffered so far (for a body that ends with trailers).
    body_size: usize,
}

impl Context for Stream {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(call) = self.calls.remove(&token) else {
            return;
        };
        let max_body = self
            .gateway()
            .map_or(usize::MAX, |g| g.limits.max_response_bytes);
        let outcome = call_outcome(num_headers, body_size, max_body);
        let cache_control = match outcome {
            CallOutcome::Response { .. } => answer_cache_control(),
            CallOutcome::Failed(_) => None,
        };
        let now = host::now_ms();
        let kind = outcome.kind();
        if kind != "ok" {
            warn!(
                "graphql-aggregator: request {}: call to {} {} ended: {kind}",
                self.request_id, call.upstream, call.path
            );
        }
        self.with_metrics(|m| m.call(&call.upstream, kind, now.saturating_sub(call.sent_ms)));
        if let Some(execution) = self.execution.as_mut() {
            execution.on_call_answer(call.id, outcome, cache_control.as_deref(), now);
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
        self.request_id = match self.request.header(REQUEST_ID_HEADER) {
            Some(id) => id.to_string(),
            None => {
                let id = self.new_request_id();
                self.request
                    .headers
                    .push((REQUEST_ID_HEADER.to_string(), id.clone()));
                id
            }
        };
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
            .gateway()
            .map_or(usize::MAX, |g| g.limits.max_body_bytes);
        if body_size > max_body {
            self.started = true;
            let exceeded = LimitExceeded {
                limit: "max_body_bytes",
                max: max_body,
                actual: body_size,
                at: None,
            };
            let media = ResponseMedia::negotiate(self.request.header("accept"));
            self.send(response::limit_exceeded(&exceeded, 413, media));
            return Action::Pause;
        }
        if end_of_stream {
            let body = host::buffer(BufferType::HttpRequestBody, 0, body_size).unwrap_or_default();
            self.start(body);
        } else {
            self.body_size = body_size;
        }
        // Never let the body through: the reply is always local.
        Action::Pause
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // A body followed by trailers ends here, not with end_of_stream.
        if !self.started {
            let body =
                host::buffer(BufferType::HttpRequestBody, 0, self.body_size).unwrap_or_default();
            self.start(body);
        }
        Action::Pause
    }
}

impl Stream {
    fn gateway(&self) -> Option<Arc<Gateway>> {
        self.shared.as_ref()?.borrow().gateway.clone()
    }

    fn with_metrics(&self, f: impl FnOnce(&mut Metrics)) {
        if let Some(shared) = &self.shared {
            let metrics = shared.borrow().metrics.clone();
            f(&mut metrics.borrow_mut());
        }
    }

    /// A request id for a client that sent none: `ga-<ms>-<n>`.
    fn new_request_id(&self) -> String {
        let n = match &self.shared {
            Some(shared) => {
                let mut shared = shared.borrow_mut();
                shared.next_request = shared.next_request.wrapping_add(1);
                shared.next_request
            }
            None => 0,
        };
        format!("ga-{:x}-{n:x}", host::now_ms())
    }

    fn start(&mut self, body: Vec<u8>) {
        self.started = true;
        let Some(shared) = self.shared.clone() else {
            self.send(response::misconfigured());
            return;
        };
        let Some(gateway) = self.gateway() else {
            self.send(response::misconfigured());
            return;
        };
        self.request.body = body;
        let execution = {
            let mut shared = shared.borrow_mut();
            let (hits, misses) = (shared.plan_cache.hits, shared.plan_cache.misses);
            let execution = Execution::start_cached(
                gateway,
                &self.request,
                host::now_ms(),
                Some(&mut shared.plan_cache),
            );
            let (new_hits, new_misses) = (
                shared.plan_cache.hits.saturating_sub(hits),
                shared.plan_cache.misses.saturating_sub(misses),
            );
            shared.metrics.borrow_mut().plan_cache(new_hits, new_misses);
            execution
        };
        self.execution = Some(execution);
        self.drive();
    }

    /// Dispatch whatever the engine wants called; reply once it is done.
    fn drive(&mut self) {
        let Some(execution) = self.execution.as_mut() else {
            return;
        };
        loop {
            let now = host::now_ms();
            let calls = execution.take_calls(now);
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
                        self.calls.insert(
                            token,
                            InFlight {
                                id: call.id,
                                upstream: request.upstream.clone(),
                                path: request.path.clone(),
                                sent_ms: now,
                            },
                        );
                    }
                    Err(status) => {
                        let reason = format!(
                            "the gateway refused to call {} ({status:?})",
                            request.target
                        );
                        warn!("graphql-aggregator: request {}: {reason}", self.request_id);
                        if let Some(shared) = &self.shared {
                            let metrics = shared.borrow().metrics.clone();
                            metrics.borrow_mut().call(&request.upstream, "rejected", 0);
                        }
                        execution.on_call_outcome(
                            call.id,
                            CallOutcome::Failed(CallFailure::Rejected(reason)),
                            now,
                        );
                    }
                }
            }
        }
        if let Some(reply) = execution.reply() {
            self.execution = None;
            self.calls.clear();
            self.send(reply);
        }
    }

    fn send(&mut self, mut reply: Reply) {
        if !reply.headers.iter().any(|(k, _)| k == "cache-control") {
            reply
                .headers
                .push(("cache-control".into(), "no-store".into()));
        }
        self.with_metrics(|m| m.request(reply.outcome));
        if let Err(status) = host::send_local_response(reply.status, &reply.headers, &reply.body) {
            error!(
                "graphql-aggregator: request {}: the host refused the local reply (status {status})",
                self.request_id
            );
        }
    }
}

/// A call answer's caching rules: every `cache-control` value joined, plus
/// `private` when the answer varies by request headers (`Vary`), which a
/// merged reply cannot honour for a shared cache. `None`: no rules given.
fn answer_cache_control() -> Option<String> {
    let pairs = host::header_pairs(MapType::HttpCallResponseHeaders).unwrap_or_default();
    let mut directives: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cache-control"))
        .map(|(_, v)| v.as_str())
        .collect();
    if directives.is_empty() {
        return None;
    }
    let varies = pairs
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("vary") && !v.trim().is_empty());
    if varies {
        directives.push("private");
    }
    Some(directives.join(", "))
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
