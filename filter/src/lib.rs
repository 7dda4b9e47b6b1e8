//! graphql-aggregator, the Proxy-Wasm filter: a thin adapter that moves
//! bytes between the host (Envoy, Kong) and the engine
//! ([`graphql_aggregator_engine`]), and keeps the per-configuration state the
//! engine leaves to it (the plan cache, the metrics). It holds no GraphQL
//! logic. It is compiled for `wasm32` only; natively the crate is empty.

#![cfg(target_arch = "wasm32")]

mod flights;
mod host;
mod metrics;
mod registry;

use flights::{Flights, SharedFlights};
use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::limits::LimitExceeded;
use graphql_aggregator_engine::persisted::SharedStore;
use graphql_aggregator_engine::plan_cache::PlanCache;
use graphql_aggregator_engine::request::{HttpRequest, ResponseMedia};
use graphql_aggregator_engine::response::{self, Reply};
use graphql_aggregator_engine::upstream::REQUEST_ID_HEADER;
use log::{error, info, warn};
use metrics::{ConfigEvent, Metrics};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use registry::{Fetched, Registry};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> {
        Box::new(Plugin { id, ..Plugin::default() })
    });
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
    /// The root context's id (given back the effective context after a tick).
    id: u32,
    shared: Option<Rc<RefCell<Shared>>>,
    /// One set of metrics for the plugin's life, across configurations.
    metrics: Rc<RefCell<Metrics>>,
    /// The requests under way, across configurations (a request keeps the
    /// configuration it started with).
    flights: SharedFlights,
    /// Whether the tick was asked for (once per VM: Kong traps on a second).
    ticking: bool,
    /// Where newer versions of the configuration come from, when the
    /// inline configuration has a `config_source`.
    registry: Option<Registry>,
}

impl Context for Plugin {
    /// Calls dispatched from the tick are routed here by the SDK: the
    /// registry's fetches, and calls of requests that ended.
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if let Some(registry) = self.registry.as_mut().filter(|r| r.owns(token)) {
            let fetched = registry.on_response(num_headers, body_size);
            self.on_registry_answer(fetched);
            return;
        }
        flights::with(&self.flights, |f| {
            f.on_call_response(token, num_headers, body_size)
        });
    }
}

impl Plugin {
    /// Checks a configuration exactly as every version is checked, and
    /// adapts it to the host (see [`Plugin::on_configure`]).
    fn load(&self, text: &[u8]) -> Result<Gateway, String> {
        let mut gateway = std::str::from_utf8(text)
            .map_err(|e| format!("configuration is not UTF-8: {e}"))
            .and_then(|text| Gateway::from_json(text).map_err(|e| e.to_string()))?;
        let acts_for_requests =
            flights::with(&self.flights, |f| f.acts_for_requests()).unwrap_or(false);
        // Kong keeps shared data in a zone that must be configured
        // (`nginx_wasm_main_shm_kv`), and traps the worker on any
        // shared-data call without one: there, the registry of automatic
        // persisted queries is used only when the configuration asks for it.
        let persisted = &mut gateway.persisted_queries;
        if !acts_for_requests && persisted.automatic && persisted.automatic_by_default {
            persisted.automatic = false;
            info!(
                "graphql-aggregator: automatic persisted queries are off on this host \
                 unless `persisted_queries.automatic` is true (they need a shared-memory \
                 zone: nginx_wasm_main_shm_kv on Kong)"
            );
        }
        for warning in &gateway.warnings {
            warn!("graphql-aggregator: {warning}");
        }
        Ok(gateway)
    }

    /// Puts a checked configuration in service: new requests start under
    /// it (with a fresh plan cache: validation depends on the schema);
    /// requests in flight keep the one they started with.
    fn install(&mut self, gateway: Option<Gateway>) {
        self.metrics.borrow_mut().define_all();
        if let Some(gateway) = &gateway {
            info!(
                "graphql-aggregator: configuration {} in service: {} mapped fields, {} upstreams",
                gateway.version,
                gateway.resolvers.len(),
                gateway.upstreams.len()
            );
            self.metrics.borrow_mut().config_version(
                graphql_aggregator_engine::config_source::version_number(&gateway.version),
            );
        }
        let plan_cache_size = gateway.as_ref().map_or(0, |g| g.plan_cache_size);
        self.shared = Some(Rc::new(RefCell::new(Shared {
            gateway: gateway.map(Arc::new),
            plan_cache: PlanCache::new(plan_cache_size),
            metrics: self.metrics.clone(),
            next_request: 0,
        })));
    }

    /// A fetch of the registry came back: a new version is checked and
    /// swapped in, a bad one refused (the version in service stays).
    fn on_registry_answer(&mut self, fetched: Fetched) {
        let Some(registry) = self.registry.as_mut() else {
            return;
        };
        let header = registry.version_header();
        match fetched {
            Fetched::NotModified => {
                registry.succeeded();
                self.metrics.borrow_mut().config(ConfigEvent::NotModified);
            }
            Fetched::Failed(problem) => {
                self.metrics.borrow_mut().config(ConfigEvent::Failed);
                if registry.is_news(&problem) {
                    warn!(
                        "graphql-aggregator: fetching the configuration failed, the version in \
                         service stays (logged again when it fails otherwise): {problem}"
                    );
                }
            }
            Fetched::Version { text, version } => {
                registry.succeeded();
                let in_service = self
                    .shared
                    .as_ref()
                    .and_then(|s| s.borrow().gateway.as_ref().map(|g| g.version.clone()));
                if in_service.as_deref() == Some(version.as_str()) || registry.was_refused(&version)
                {
                    self.metrics.borrow_mut().config(ConfigEvent::NotModified);
                    return;
                }
                let loaded = self.load(&text).and_then(|gateway| {
                    if gateway.config_source.is_some() {
                        Err(
                            "a configuration from the registry may not have a `config_source` \
                             (the gateway's own configuration says where versions come from)"
                                .to_string(),
                        )
                    } else {
                        Ok(gateway)
                    }
                });
                match loaded {
                    Ok(mut gateway) => {
                        gateway.version = version;
                        gateway.version_header = header;
                        self.metrics.borrow_mut().config(ConfigEvent::Loaded);
                        self.install(Some(gateway));
                    }
                    Err(problem) => {
                        if let Some(registry) = self.registry.as_mut() {
                            registry.refuse(version.clone());
                        }
                        self.metrics.borrow_mut().config(ConfigEvent::Refused);
                        error!(
                            "graphql-aggregator: configuration {version} from the registry \
                             refused, the version in service stays: {problem}"
                        );
                    }
                }
            }
        }
    }
}

impl RootContext for Plugin {
    fn on_configure(&mut self, _size: usize) -> bool {
        if !self.ticking {
            flights::with(&self.flights, Flights::probe_host);
            match host::set_tick_period(flights::TICK_MS) {
                Ok(()) => self.ticking = true,
                Err(status) => error!(
                    "graphql-aggregator: the host refused a timer (status {status}): \
                     only the host's own timeouts will hold"
                ),
            }
        }
        let text = host::buffer(BufferType::PluginConfiguration, 0, usize::MAX).unwrap_or_default();
        let loaded = self.load(&text);
        let acts_for_requests =
            flights::with(&self.flights, |f| f.acts_for_requests()).unwrap_or(false);
        // Where calls do not outlive their request (Kong cancels them), the
        // SDK forgets them with it (vendor/proxy-wasm/PATCHES.md, patch 4).
        proxy_wasm::set_calls_end_with_their_context(!acts_for_requests);
        let gateway = match loaded {
            Ok(gateway) => Some(gateway),
            Err(problem) => {
                error!(
                    "graphql-aggregator: invalid configuration, every request gets a 500 \
                     GraphQL error until it is fixed: {problem}"
                );
                None
            }
        };
        // A configuration with a `config_source` serves until the first
        // version comes from the registry. Configured again with the same
        // `config_source` (Kong reconfigures its filter chains on any
        // change), the version fetched stays in service and the fetches
        // go on: a registry down at that moment takes nothing away.
        let source = gateway.as_ref().and_then(|g| g.config_source.clone());
        let same_source = match (&source, &self.registry) {
            (Some(source), Some(registry)) => registry.fetches_from(source),
            _ => false,
        };
        let fetched_in_service = self.shared.as_ref().is_some_and(|s| {
            s.borrow().gateway.as_ref().is_some_and(|g| {
                g.version != graphql_aggregator_engine::config_source::INLINE_VERSION
            })
        });
        if same_source && fetched_in_service {
            info!(
                "graphql-aggregator: configured again with the same config_source: the version \
                 from the registry stays in service"
            );
            return true;
        }
        if !same_source {
            self.registry = source.map(Registry::new);
        }
        self.install(gateway);
        // Accepting the configuration keeps the route answering with a clear
        // GraphQL error instead of the host's own failure page.
        true
    }

    fn on_tick(&mut self) {
        if let Some(registry) = self.registry.as_mut() {
            if let Err(problem) = registry.poll(host::now_ms()) {
                self.metrics.borrow_mut().config(ConfigEvent::Failed);
                if registry.is_news(&problem) {
                    warn!(
                        "graphql-aggregator: fetching the configuration failed (logged again \
                         when it fails otherwise): {problem}"
                    );
                }
            }
        }
        let root = self.id;
        flights::with(&self.flights, |f| f.on_tick(root));
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Envoy (the host that acts for requests) says at headers time
        // whether a body follows; Kong never does.
        let trusts_end_of_stream =
            flights::with(&self.flights, |f| f.acts_for_requests()).unwrap_or(false);
        Some(Box::new(Stream {
            id: context_id,
            trusts_end_of_stream,
            shared: self.shared.clone(),
            flights: self.flights.clone(),
            request: HttpRequest::default(),
            request_id: String::new(),
            started: false,
            body_size: 0,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One client request.
struct Stream {
    id: u32,
    /// Whether the host's `end_of_stream` at headers time says whether a
    /// body follows (Envoy), so that the headers need not be read for it.
    trusts_end_of_stream: bool,
    shared: Option<Rc<RefCell<Shared>>>,
    flights: SharedFlights,
    request: HttpRequest,
    request_id: String,
    started: bool,
    /// The body buffered so far (for a body that ends with trailers).
    body_size: usize,
}

impl Context for Stream {
    /// The request is over (answered, or the client left): nothing may act
    /// for it any more, though the host keeps it until it is deleted.
    fn on_done(&mut self) -> bool {
        flights::with(&self.flights, |f| f.forget(self.id));
        true
    }

    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        flights::with(&self.flights, |f| {
            f.on_call_response(token, num_headers, body_size)
        });
    }
}

impl Drop for Stream {
    /// The client is gone or answered: late answers are ignored.
    fn drop(&mut self) {
        if let Ok(mut flights) = self.flights.try_borrow_mut() {
            flights.forget(self.id);
        }
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
        // A body declared too large is refused now, before the host buffers
        // it (Envoy's own buffer limit would answer first, in plain text).
        if let Some(exceeded) = self.declared_body_over_limit() {
            self.started = true;
            let media = ResponseMedia::negotiate(self.request.header("accept"));
            self.send(response::limit_exceeded(&exceeded, 413, media));
            return Action::Pause;
        }
        if end_of_stream || self.has_no_body() {
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

    /// `max_body_bytes` exceeded by the body's declared `content-length`.
    /// (A `transfer-encoding` overrides the length, RFC 9112 §6.3.)
    fn declared_body_over_limit(&self) -> Option<LimitExceeded> {
        if self.request.header("transfer-encoding").is_some() {
            return None;
        }
        let max = self.gateway()?.limits.max_body_bytes;
        let declared = self.declared_length()?;
        (declared > max as u64).then(|| LimitExceeded {
            limit: "max_body_bytes",
            max,
            actual: usize::try_from(declared).unwrap_or(usize::MAX),
            at: None,
        })
    }

    /// The `content-length` the request declares, if it is a number.
    fn declared_length(&self) -> Option<u64> {
        self.request.header("content-length")?.trim().parse().ok()
    }

    /// Whether the request can have no body, decided from its headers:
    /// Kong never calls `on_http_request_body` for an empty body and its
    /// `end_of_stream` is always false here (measured), so a request the
    /// filter waited on would go to the route's service. Every method but
    /// POST is answered now (GET served, the others refused); a POST has no
    /// body when it says `content-length: 0`, or over HTTP/1 when it has
    /// neither a length nor `transfer-encoding` (RFC 9112: no body).
    /// Where the host's `end_of_stream` is trusted (Envoy), a POST has a
    /// body unless it said so: Envoy takes `transfer-encoding` off a
    /// chunked request before the filter sees it (measured), so the
    /// headers alone would call a chunked POST bodiless.
    fn has_no_body(&self) -> bool {
        if self.request.method != "POST" {
            return true;
        }
        if self.trusts_end_of_stream {
            return false;
        }
        if self.request.header("transfer-encoding").is_some() {
            return false;
        }
        if self.request.header("content-length").is_some() {
            return self.declared_length() == Some(0);
        }
        let protocol = host::property(&["request", "protocol"]).ok().flatten();
        protocol.is_some_and(|p| p.starts_with(b"HTTP/1"))
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
        let (execution, metrics) = {
            let mut shared = shared.borrow_mut();
            let (hits, misses) = (shared.plan_cache.hits, shared.plan_cache.misses);
            let execution = Execution::start_with_store(
                gateway.clone(),
                &self.request,
                host::now_ms(),
                Some(&mut shared.plan_cache),
                Some(&mut HostSharedData),
            );
            let (new_hits, new_misses) = (
                shared.plan_cache.hits.saturating_sub(hits),
                shared.plan_cache.misses.saturating_sub(misses),
            );
            let mut metrics = shared.metrics.borrow_mut();
            metrics.plan_cache(new_hits, new_misses);
            metrics.persisted(execution.persisted());
            drop(metrics);
            (execution, shared.metrics.clone())
        };
        // The body is the engine's now: only its parsed form is kept.
        self.request.body = Vec::new();
        let (id, request_id) = (self.id, self.request_id.clone());
        let started = flights::with(&self.flights, |f| {
            f.start(id, request_id, gateway, metrics, execution)
        });
        if started.is_none() {
            self.send(response::internal_error());
        }
    }

    /// Sends a reply the filter made without the engine (a body over
    /// the limit, a misconfigured plugin): it names the configuration
    /// version too, when replies do.
    fn send(&mut self, mut reply: Reply) {
        if let Some(gateway) = self.gateway() {
            if let Some(header) = &gateway.version_header {
                reply
                    .headers
                    .push((header.clone().into(), gateway.version.clone().into()));
            }
        }
        let metrics = match &self.shared {
            Some(shared) => shared.borrow().metrics.clone(),
            None => Rc::default(),
        };
        flights::send(&self.request_id, &metrics, reply);
    }
}

/// The registry of automatic persisted queries: the host's shared data
/// (Envoy: process-wide per `vm_id`, never evicted; Kong: the
/// `nginx_wasm_main_shm_kv` zone, evicted least recently used when full),
/// so a document registered through one worker is found by every other.
/// The engine touches it only for a hash sent alone and not in the
/// manifest, and to register a document sent with its hash; a host error
/// reads as "not registered" and a refused write is dropped (the client
/// just sends the document again).
struct HostSharedData;

impl SharedStore for HostSharedData {
    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        host::shared_data(key)
            .ok()
            .flatten()
            .map(|(value, _cas)| value)
    }

    fn set(&mut self, key: &str, value: &[u8]) -> bool {
        // cas 0: a registration replaces the slot's value whatever it is.
        host::set_shared_data(key, value, 0).is_ok()
    }
}
