//! Driving one VM the way a gateway does: the callbacks into the module, in
//! the order and with the arguments of the profile's host, plus the host's
//! own reactions (deferred local replies, `continue_stream`, cancelling
//! calls, ending the stream).

use crate::abi::Action;
use crate::error::HostError;
use crate::module::Module;
use crate::profile::{Failure, HostKind, Profile};
use crate::state::{CallResponse, HostState, HttpCtx, Phase};
use crate::types::{CallState, Delivery, LocalReply, ReplySource, Violation};
use wasmi::{Instance, Store, StoreLimitsBuilder, Val};

/// What a VM may use in all: Wasm instructions (fuel, on a metered module)
/// and linear memory. `None`: unbounded.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Bounds {
    pub fuel: Option<u64>,
    pub max_memory_bytes: Option<usize>,
}

/// One VM: a store and an instance of a [`Module`].
pub(crate) struct Vm {
    pub store: Store<HostState>,
    pub instance: Instance,
    pub module: Module,
    /// Set after a trap: the VM is broken and nothing runs in it any more.
    pub failed: Option<String>,
    /// How many violations have already been reported (panicked on or taken).
    pub reported: usize,
    /// Panic at the next API call when a violation was recorded.
    pub strict: bool,
    pub vm_started: bool,
    pub configured: bool,
}

impl Vm {
    /// Instantiates `module` and starts it: `_initialize`,
    /// `proxy_on_context_create(root, 0)`, `proxy_on_vm_start`, `proxy_on_configure`.
    pub fn start(
        module: &Module,
        profile: Profile,
        vm_config: Vec<u8>,
        plugin_config: Vec<u8>,
        bounds: Bounds,
    ) -> Result<Vm, HostError> {
        module.check_imports(&profile)?;
        let mut store = Store::new(
            module.engine(),
            HostState::new(profile, vm_config, plugin_config),
        );
        if let Some(bytes) = bounds.max_memory_bytes {
            store.data_mut().limits = StoreLimitsBuilder::new().memory_size(bytes).build();
            store.limiter(|state| &mut state.limits);
        }
        match (module.is_metered(), bounds.fuel) {
            (true, fuel) => store
                .set_fuel(fuel.unwrap_or(u64::MAX))
                .map_err(|e| HostError::Start(format!("cannot set the fuel: {e}")))?,
            (false, Some(_)) => {
                return Err(HostError::Start(
                    "a fuel budget needs a module compiled with fuel metering \
                     (Module::load_cached_metered, fixtures::aggregator_metered)"
                        .into(),
                ))
            }
            (false, None) => {}
        }
        let instance = module
            .linker()
            .instantiate_and_start(&mut store, module.wasmi())
            .map_err(|e| HostError::Instantiate(e.to_string()))?;
        let memory = instance
            .get_memory(&store, "memory")
            .ok_or_else(|| HostError::Export("the module exports no \"memory\"".into()))?;
        let malloc = instance
            .get_func(&store, "proxy_on_memory_allocate")
            .or_else(|| instance.get_func(&store, "malloc"))
            .ok_or_else(|| {
                HostError::Export(
                    "the module exports neither proxy_on_memory_allocate nor malloc".into(),
                )
            })?;
        if !module.exports_fn("proxy_abi_version_0_2_1")
            && !module.exports_fn("proxy_abi_version_0_2_0")
        {
            return Err(HostError::Export(
                "the module exports no proxy_abi_version_0_2_1 (not a Proxy-Wasm ABI 0.2.x module)"
                    .into(),
            ));
        }
        store.data_mut().memory = Some(memory);
        store.data_mut().malloc = Some(malloc);
        let mut vm = Vm {
            store,
            instance,
            module: module.clone(),
            failed: None,
            reported: 0,
            strict: true,
            vm_started: false,
            configured: false,
        };
        let root = vm.root_id();
        if module.exports_fn("_initialize") {
            vm.call("_initialize", &[], root);
        }
        vm.call("proxy_on_context_create", &[root as i32, 0], root);
        let vm_config_len = vm.store.data().vm_config.len() as i32;
        vm.vm_started = vm
            .call("proxy_on_vm_start", &[root as i32, vm_config_len], root)
            .is_none_or(|r| r != 0);
        if let Some(trap) = &vm.failed {
            return Err(HostError::Start(format!("{trap}\n{}", vm.context_report())));
        }
        vm.configure();
        Ok(vm)
    }

    pub fn root_id(&self) -> u32 {
        self.store.data().root_id
    }

    pub fn kind(&self) -> HostKind {
        self.store.data().kind()
    }

    /// Calls export `name` with i32 `args`, `effective` as the effective
    /// context. `None` when the export is missing (the host's default then
    /// applies) or the VM is broken.
    pub fn call(&mut self, name: &'static str, args: &[i32], effective: u32) -> Option<i32> {
        if self.failed.is_some() {
            return None;
        }
        let func = self.instance.get_func(&self.store, name)?;
        let ty = func.ty(&self.store);
        if ty.params().len() != args.len() {
            let message = format!(
                "export {name} has {} parameters, the ABI says {}",
                ty.params().len(),
                args.len()
            );
            self.store.data_mut().violation(name, message);
            return None;
        }
        let params: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
        let mut results = vec![Val::I32(0); ty.results().len()];
        {
            let state = self.store.data_mut();
            state.effective = effective;
            state.callback = Some(name);
            state.kong_wished_context = state.root_id;
        }
        let outcome = func.call(&mut self.store, &params, &mut results);
        {
            let state = self.store.data_mut();
            state.callback = None;
            state.effective = state.root_id;
        }
        match outcome {
            Ok(()) => match results.first() {
                Some(Val::I32(v)) => Some(*v),
                Some(other) => {
                    let message = format!("export {name} returned {other:?}, the ABI says i32");
                    self.store.data_mut().violation(name, message);
                    None
                }
                None => Some(0),
            },
            Err(error) => {
                let message = format!("trap in {name}{args:?}: {error}");
                self.failed = Some(message.clone());
                let state = self.store.data_mut();
                state.violations.push(Violation {
                    call: name.to_string(),
                    context_id: Some(effective),
                    message: format!("the filter trapped: {error} (in a gateway this breaks the VM for every later request)"),
                });
                None
            }
        }
    }

    // -----------------------------------------------------------------------
    // root context

    pub fn configure(&mut self) -> bool {
        let root = self.root_id();
        let len = self.store.data().plugin_config.len() as i32;
        self.store.data_mut().in_configure = true;
        let result = self.call("proxy_on_configure", &[root as i32, len], root);
        self.store.data_mut().in_configure = false;
        self.configured = result.is_none_or(|r| r != 0) && self.failed.is_none();
        self.configured
    }

    /// `proxy_on_tick`, then what the tick did to each request (a local
    /// reply sent for it, through `proxy_set_effective_context`).
    pub fn tick(&mut self) {
        let root = self.root_id();
        self.call("proxy_on_tick", &[root as i32], root);
        let live: Vec<u32> = self
            .store
            .data()
            .http
            .iter()
            .filter(|(_, ctx)| ctx.phase != Phase::Deleted)
            .map(|(id, _)| *id)
            .collect();
        for id in live {
            self.after_vm_call(id);
        }
    }

    /// Moves the test clock forward and fires the ticks that fall due.
    pub fn advance(&mut self, by: std::time::Duration) {
        let target = self.store.data().monotonic + by;
        loop {
            let state = self.store.data_mut();
            match (state.next_tick, state.tick_period) {
                (Some(at), Some(period)) if at <= target => {
                    let step = at - state.monotonic;
                    state.monotonic = at;
                    state.wall += step;
                    state.next_tick = Some(at + period);
                    self.tick();
                }
                _ => {
                    let step = target - state.monotonic;
                    state.monotonic = target;
                    state.wall += step;
                    return;
                }
            }
        }
    }

    // -----------------------------------------------------------------------
    // requests

    fn ctx(&self, id: u32) -> &HttpCtx {
        self.store
            .data()
            .http
            .get(&id)
            .unwrap_or_else(|| panic!("host-tests: no request context {id}"))
    }

    fn ctx_mut(&mut self, id: u32) -> &mut HttpCtx {
        self.store
            .data_mut()
            .http
            .get_mut(&id)
            .unwrap_or_else(|| panic!("host-tests: no request context {id}"))
    }

    fn gone(&self, id: u32) -> bool {
        let ctx = self.ctx(id);
        ctx.ended() || self.failed.is_some()
    }

    pub fn has_pending_calls(&self, id: u32) -> bool {
        self.store
            .data()
            .calls
            .values()
            .any(|c| c.call.context_id == id && c.state == CallState::Pending)
    }

    /// Creates an http context: `proxy_on_context_create(id, root)`.
    pub fn create_request(&mut self, headers: Vec<(String, String)>) -> u32 {
        let state = self.store.data_mut();
        let id = state.next_context_id;
        state.next_context_id += 1;
        let headers = match state.kind() {
            HostKind::Envoy => headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            HostKind::Kong => headers,
        };
        state.http.insert(id, HttpCtx::new(headers));
        let root = self.root_id();
        self.call("proxy_on_context_create", &[id as i32, root as i32], id);
        id
    }

    /// `proxy_on_request_headers`; `client_eos` says no body follows.
    pub fn deliver_headers(&mut self, id: u32, client_eos: bool) {
        let kind = self.kind();
        let http2 = self.store.data().profile.http2();
        let ctx = self.ctx_mut(id);
        // An HTTP/1.1 client sending a body says so with a length or as
        // chunks: a test that gave neither sends chunks.
        let says_body = ctx.headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
        });
        if !client_eos && !http2 && !says_body {
            ctx.headers
                .push(("transfer-encoding".into(), "chunked".into()));
        }
        if kind == HostKind::Envoy {
            // Envoy's HTTP/1 codec takes the framing header off before the
            // filters see the request (measured: a chunked POST showed the
            // filter neither a length nor `transfer-encoding`).
            ctx.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("transfer-encoding"));
        }
        ctx.phase = Phase::Open;
        ctx.client_done = client_eos;
        ctx.headers_visible = true;
        let count = ctx.headers.len() as i32;
        let eos = kind == HostKind::Envoy && client_eos;
        ctx.eos_delivered = eos;
        let action = Action::from_raw(
            self.call(
                "proxy_on_request_headers",
                &[id as i32, count, i32::from(eos)],
                id,
            )
            .unwrap_or(0),
        );
        if !self.gone(id) && self.ctx(id).stashed_reply.is_none() {
            let pause = action.stops() || (kind == HostKind::Kong && self.has_pending_calls(id));
            let ctx = self.ctx_mut(id);
            if pause {
                ctx.stopped_in_headers = true;
            } else {
                if kind == HostKind::Envoy {
                    ctx.headers_visible = false;
                }
                if client_eos {
                    ctx.eos_delivered = true;
                    ctx.forwarded = true;
                }
            }
        }
        self.after_vm_call(id);
    }

    /// A piece of the client's body arrives.
    pub fn deliver_body(&mut self, id: u32, chunk: &[u8], eos: bool) {
        if self.gone(id) {
            return;
        }
        let kind = self.kind();
        let limit = self.store.data().profile.body_limit();
        let ctx = self.ctx_mut(id);
        assert!(
            !ctx.client_done,
            "host-tests: body data after the end of the request stream (request {id})"
        );
        ctx.client_done = eos;
        let held = match kind {
            HostKind::Envoy => ctx.body.len() + ctx.pending_body.len() + chunk.len(),
            HostKind::Kong => {
                ctx.forwarded_body.len() + ctx.body.len() + ctx.pending_body.len() + chunk.len()
            }
        };
        if held > limit {
            let reply = LocalReply {
                status: 413,
                headers: vec![("content-type".into(), "text/plain".into())],
                body: b"Payload Too Large".to_vec(),
                details: "request_payload_too_large".into(),
                grpc_status: -1,
                source: ReplySource::Host,
            };
            self.ctx_mut(id).stashed_reply = Some(reply);
            self.after_vm_call(id);
            return;
        }
        match kind {
            HostKind::Envoy => {
                let split = self.store.data().profile.separate_end_of_stream();
                if self.ctx(id).stopped_in_headers {
                    self.ctx_mut(id).pending_body.extend_from_slice(chunk);
                } else if eos && split && !chunk.is_empty() {
                    // HTTP/1.1: the data, then an empty chunk with end_of_stream.
                    self.envoy_body(id, chunk, false);
                    if !self.gone(id) && self.ctx(id).stashed_reply.is_none() {
                        self.envoy_body(id, &[], true);
                    }
                } else {
                    self.envoy_body(id, chunk, eos);
                }
            }
            HostKind::Kong => {
                self.ctx_mut(id).pending_body.extend_from_slice(chunk);
                if eos && !self.ctx(id).stopped_in_headers {
                    self.kong_body(id);
                }
            }
        }
    }

    /// Envoy's decodeData: the filter sees everything buffered since its last Continue.
    fn envoy_body(&mut self, id: u32, chunk: &[u8], eos: bool) {
        let ctx = self.ctx_mut(id);
        ctx.body.extend_from_slice(chunk);
        ctx.body_callbacks += 1;
        let size = ctx.body.len() as i32;
        let action = Action::from_raw(
            self.call(
                "proxy_on_request_body",
                &[id as i32, size, i32::from(eos)],
                id,
            )
            .unwrap_or(0),
        );
        if !self.gone(id) && self.ctx(id).stashed_reply.is_none() {
            let ctx = self.ctx_mut(id);
            if eos {
                ctx.eos_delivered = true;
            }
            if !action.stops() {
                let body = std::mem::take(&mut ctx.body);
                ctx.forwarded_body.extend_from_slice(&body);
                if eos {
                    ctx.forwarded = true;
                }
            }
        }
        self.after_vm_call(id);
    }

    /// ngx_wasm_module: one `on_request_body` with the whole body, eof = true;
    /// none at all for an empty body.
    fn kong_body(&mut self, id: u32) {
        let ctx = self.ctx_mut(id);
        let body = std::mem::take(&mut ctx.pending_body);
        ctx.eos_delivered = true;
        if body.is_empty() {
            ctx.forwarded = true;
            self.after_vm_call(id);
            return;
        }
        ctx.body = body;
        ctx.body_read = true;
        ctx.body_callbacks += 1;
        let size = ctx.body.len() as i32;
        let action = Action::from_raw(
            self.call("proxy_on_request_body", &[id as i32, size, 1], id)
                .unwrap_or(0),
        );
        if !self.gone(id) && self.ctx(id).stashed_reply.is_none() {
            let pause = action.stops() || self.has_pending_calls(id);
            if !pause {
                let ctx = self.ctx_mut(id);
                ctx.forwarded_body = ctx.body.clone();
                ctx.forwarded = true;
            }
        }
        self.after_vm_call(id);
    }

    /// The host's deferred actions after a VM call for request `id`.
    pub fn after_vm_call(&mut self, id: u32) {
        loop {
            if self.failed.is_some() {
                return;
            }
            let Some(ctx) = self.store.data().http.get(&id) else {
                return;
            };
            if ctx.phase == Phase::Deleted {
                return;
            }
            if ctx.phase == Phase::AwaitingDone {
                if self.store.data_mut().done_called.remove(&id) {
                    self.delete(id);
                }
                return;
            }
            if ctx.stashed_reply.is_some() {
                let ctx = self.ctx_mut(id);
                let reply = ctx.stashed_reply.take();
                ctx.continue_requested = false;
                if let Some(reply) = reply {
                    self.send_response(id, reply);
                }
                // The stream is complete once the local reply is written.
                self.finish(id);
                return;
            }
            if ctx.reset {
                self.finish(id);
                return;
            }
            if ctx.continue_requested {
                self.ctx_mut(id).continue_requested = false;
                self.resume(id);
                continue;
            }
            return;
        }
    }

    /// `continue_stream(HttpRequest)`, or Kong resuming after its last call.
    pub fn resume(&mut self, id: u32) {
        let kind = self.kind();
        let ctx = self.ctx_mut(id);
        if kind == HostKind::Envoy {
            ctx.headers_visible = false;
        }
        if ctx.stopped_in_headers {
            ctx.stopped_in_headers = false;
            if ctx.eos_delivered {
                ctx.forwarded = true;
                return;
            }
            match kind {
                HostKind::Envoy => {
                    let chunk = std::mem::take(&mut ctx.pending_body);
                    let eos = ctx.client_done;
                    if !chunk.is_empty() || eos {
                        self.envoy_body(id, &chunk, eos);
                    }
                }
                HostKind::Kong => {
                    if ctx.client_done {
                        self.kong_body(id);
                    }
                }
            }
        } else {
            let body = std::mem::take(&mut ctx.body);
            ctx.forwarded_body.extend_from_slice(&body);
            if ctx.eos_delivered {
                ctx.forwarded = true;
            }
        }
    }

    /// Delivers a call response (or failure) for `token`.
    pub fn deliver_call(
        &mut self,
        token: u32,
        response: CallResponse,
        num_headers: usize,
    ) -> Delivery {
        let root = self.root_id();
        let kind = self.kind();
        let record = self.store.data().calls.get(&token).cloned();
        let Some(record) = record else {
            panic!("host-tests: unknown call token {token}")
        };
        let context_id = record.call.context_id;
        let to_root = match record.state {
            CallState::Pending => context_id == root,
            CallState::Orphaned => true,
            CallState::Cancelled => {
                if let Some(c) = self.store.data_mut().calls.get_mut(&token) {
                    c.state = CallState::Answered;
                }
                return Delivery::Dropped;
            }
            CallState::Answered => panic!("host-tests: call {token} was already answered"),
        };
        if let Some(c) = self.store.data_mut().calls.get_mut(&token) {
            c.state = CallState::Answered;
        }
        let (first_arg, effective) = if to_root || kind == HostKind::Envoy {
            // Envoy: http calls belong to the root context (exports.cc http_call).
            (root, root)
        } else {
            (context_id, context_id)
        };
        let mut response = response;
        if kind == HostKind::Envoy {
            let state = self.store.data_mut();
            if response.status.0 != 0 {
                state.sticky_status_code = response.status.0;
            } else {
                response.status.0 = state.sticky_status_code;
            }
        }
        let body_len = response.body.len() as i32;
        let trailers = response.trailers.len() as i32;
        self.store.data_mut().call_response = Some(response);
        self.call(
            "proxy_on_http_call_response",
            &[
                first_arg as i32,
                token as i32,
                num_headers as i32,
                body_len,
                trailers,
            ],
            effective,
        );
        self.store.data_mut().call_response = None;
        // What the filter did for other requests meanwhile (a local reply
        // sent for a request that joined this call, through
        // `proxy_set_effective_context`) takes effect too.
        self.after_vm_call(context_id);
        let others: Vec<u32> = self
            .store
            .data()
            .http
            .iter()
            .filter(|(id, ctx)| **id != context_id && ctx.phase != Phase::Deleted)
            .map(|(id, _)| *id)
            .collect();
        for id in others {
            self.after_vm_call(id);
        }
        if to_root {
            return Delivery::DeliveredToRoot;
        }
        if kind == HostKind::Kong && self.failed.is_none() {
            let ctx = self.ctx(context_id);
            let waiting = ctx.stopped_in_headers || (ctx.eos_delivered && !ctx.forwarded);
            if !ctx.ended()
                && ctx.phase == Phase::Open
                && waiting
                && !self.has_pending_calls(context_id)
            {
                // 3.7+: the filter chain resumes once no dispatch is pending.
                self.resume(context_id);
                self.after_vm_call(context_id);
            }
        }
        Delivery::Delivered
    }

    /// Answers `token` with an HTTP response (`:status` first; Envoy lower-cases names).
    pub fn respond(
        &mut self,
        token: u32,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Delivery {
        let mut all = vec![(":status".to_string(), status.to_string())];
        let envoy = self.kind() == HostKind::Envoy;
        all.extend(headers.iter().map(|(k, v)| {
            let k = if envoy {
                k.to_ascii_lowercase()
            } else {
                k.to_string()
            };
            (k, v.to_string())
        }));
        if envoy {
            // Envoy's router adds this to every upstream response.
            all.push(("x-envoy-upstream-service-time".into(), "1".into()));
        }
        let n = all.len();
        let response = CallResponse {
            has_message: true,
            headers: all,
            body: body.to_vec(),
            trailers: Vec::new(),
            status: (0, String::new()),
        };
        self.deliver_call(token, response, n)
    }

    /// Fails `token` the way the profile's host reports `failure`.
    pub fn fail(&mut self, token: u32, failure: Failure) -> Delivery {
        let failed = self.store.data().profile.failed_call(failure);
        let response = CallResponse {
            has_message: failed.has_message,
            headers: failed.headers,
            body: failed.body,
            trailers: Vec::new(),
            status: failed.status,
        };
        self.deliver_call(token, response, failed.num_headers)
    }

    /// Writes a local reply: both hosts run the filter's response callbacks
    /// on it (measured with Envoy 1.40: `on_http_response_headers` sees
    /// `:status`, the reply's headers and `content-length`, may change them,
    /// then `on_http_response_body` sees the body).
    fn send_response(&mut self, id: u32, reply: LocalReply) {
        let kind = self.kind();
        let mut headers = vec![(":status".to_string(), reply.status.to_string())];
        headers.extend(reply.headers.iter().cloned());
        let ctx = self.ctx_mut(id);
        if kind == HostKind::Kong {
            // Headers the filter set on the response before it existed go out with it.
            headers.append(&mut ctx.response_headers);
        }
        if kind == HostKind::Envoy
            && !reply.body.is_empty()
            && !headers.iter().any(|(k, _)| k == "content-type")
        {
            headers.push(("content-type".into(), "text/plain".into()));
        }
        headers.push(("content-length".into(), reply.body.len().to_string()));
        ctx.reply = Some(reply.clone());
        ctx.response_headers = headers;
        ctx.response_headers_visible = true;
        let count = ctx.response_headers.len() as i32;
        let eos = reply.body.is_empty();
        let action = self.call(
            "proxy_on_response_headers",
            &[id as i32, count, i32::from(eos)],
            id,
        );
        self.response_pause_check(id, "proxy_on_response_headers", action);
        if !eos && self.failed.is_none() {
            let ctx = self.ctx_mut(id);
            if kind == HostKind::Envoy {
                ctx.response_headers_visible = false;
            }
            ctx.response_body = reply.body.clone();
            ctx.in_response_body = true;
            let len = ctx.response_body.len() as i32;
            let action = self.call("proxy_on_response_body", &[id as i32, len, 1], id);
            self.response_pause_check(id, "proxy_on_response_body", action);
        }
        let ctx = self.ctx_mut(id);
        ctx.in_response_body = false;
        ctx.response_headers_visible = kind == HostKind::Kong;
        let status = crate::types::find_header(&ctx.response_headers, ":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(reply.status);
        let headers = ctx
            .response_headers
            .iter()
            .filter(|(k, _)| !k.starts_with(':'))
            .cloned()
            .collect();
        let body = if eos {
            Vec::new()
        } else {
            ctx.response_body.clone()
        };
        ctx.reply = Some(LocalReply {
            status,
            headers,
            body,
            ..reply
        });
    }

    fn response_pause_check(&mut self, id: u32, callback: &str, action: Option<i32>) {
        if action.is_some_and(|a| Action::from_raw(a).stops()) {
            let message = format!(
                "{callback} returned Pause on the local reply of request {id}; host-tests does not model \
                 continuing a paused response (it goes on as if Continue)"
            );
            self.store.data_mut().violations.push(Violation {
                call: callback.to_string(),
                context_id: Some(id),
                message,
            });
        }
    }

    /// Ends request `id` as both hosts do: `proxy_on_log`, `proxy_on_done`
    /// (measured order with Envoy 1.40), then `proxy_on_delete` (deferred
    /// until `proxy_done` if `proxy_on_done` returned false).
    pub fn finish(&mut self, id: u32) {
        let kind = self.kind();
        let Some(ctx) = self.store.data().http.get(&id) else {
            return;
        };
        if ctx.phase != Phase::Open && ctx.phase != Phase::New {
            return;
        }
        let next = match kind {
            HostKind::Envoy => CallState::Orphaned,
            HostKind::Kong => CallState::Cancelled,
        };
        for record in self.store.data_mut().calls.values_mut() {
            if record.call.context_id == id && record.state == CallState::Pending {
                record.state = next;
            }
        }
        let ctx = self.ctx_mut(id);
        ctx.phase = Phase::AwaitingDone;
        // The access-log phase shows the request (and response) headers again.
        ctx.headers_visible = true;
        ctx.response_headers_visible = true;
        self.call("proxy_on_log", &[id as i32], id);
        let ctx = self.ctx_mut(id);
        ctx.headers_visible = kind == HostKind::Kong;
        ctx.response_headers_visible = kind == HostKind::Kong;
        let done = self
            .call("proxy_on_done", &[id as i32], id)
            .is_none_or(|r| r != 0);
        let called = self.store.data_mut().done_called.remove(&id);
        if done || called {
            self.delete(id);
        }
    }

    fn delete(&mut self, id: u32) {
        self.call("proxy_on_delete", &[id as i32], id);
        self.ctx_mut(id).phase = Phase::Deleted;
    }

    // -----------------------------------------------------------------------
    // reporting

    /// Recent logs, host logs, stderr and hints, for failure messages.
    pub fn context_report(&self) -> String {
        let state = self.store.data();
        let mut out = String::new();
        let logs = &state.logs;
        if !logs.is_empty() {
            out.push_str("last filter log lines:\n");
            for line in logs.iter().skip(logs.len().saturating_sub(25)) {
                out.push_str(&format!("  {line}\n"));
            }
        }
        if !state.host_logs.is_empty() {
            out.push_str("host log:\n");
            for line in state
                .host_logs
                .iter()
                .skip(state.host_logs.len().saturating_sub(10))
            {
                out.push_str(&format!("  {line}\n"));
            }
        }
        if !state.stderr.is_empty() {
            let text = String::from_utf8_lossy(&state.stderr);
            let tail: String = text
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            out.push_str(&format!("filter stderr:\n{tail}\n"));
        }
        if !state.hints.is_empty() {
            out.push_str("hints:\n");
            for hint in &state.hints {
                out.push_str(&format!("  - {hint}\n"));
            }
        }
        out
    }

    /// Panics (strict mode) if violations were recorded since the last check.
    pub fn check(&mut self) {
        let count = self.store.data().violations.len();
        if !self.strict || count <= self.reported || std::thread::panicking() {
            return;
        }
        let new = &self.store.data().violations[self.reported..];
        let mut message = format!(
            "host-tests [{}]: the filter {} broke the Proxy-Wasm contract:\n",
            self.store.data().profile.name(),
            self.module.name()
        );
        for v in new {
            message.push_str(&format!("  - {v}\n"));
        }
        message.push_str(&self.context_report());
        self.reported = count;
        panic!("{message}");
    }
}
