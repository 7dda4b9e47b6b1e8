//! The requests whose execution is under way, shared by the root context
//! and the http contexts of one VM.
//!
//! Answers reach a request through whichever context the SDK routes its
//! call to (the http context that dispatched it, or the root context for a
//! call dispatched from the tick), and the root context's tick enforces
//! time: a call past its timeout fails as timed out, a request past its
//! deadline is answered with what it has. The filter keeps its own clock
//! because a host's may not hold: Kong restarts a call's read timeout on
//! every byte, so a function dripping its answer ran 10–20 s past a 5 s
//! timeout (measured).

use super::host;
use super::metrics::Metrics;
use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::{CallId, Execution};
use graphql_aggregator_engine::response::Reply;
use graphql_aggregator_engine::upstream::{CallFailure, CallOutcome};
use log::{error, warn};
use proxy_wasm::types::{BufferType, MapType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How often the root context looks at the clock, in milliseconds: the
/// precision of every timeout and deadline the filter enforces itself.
pub const TICK_MS: u32 = 50;

/// How much earlier than the filter's clock says a host timer may fire,
/// at least (a tenth of the timeout, at most).
const TIMER_SLACK_MS: u64 = 10;

/// A call in flight: the engine's id, where it went, when it left and how
/// long it may take.
struct InFlight {
    id: CallId,
    upstream: Arc<str>,
    path: String,
    sent_ms: u64,
    timeout_ms: u64,
}

/// One request under way.
struct Flight {
    request_id: String,
    gateway: Arc<Gateway>,
    metrics: Rc<RefCell<Metrics>>,
    execution: Execution,
    /// Calls in flight, by the host's token.
    calls: HashMap<u32, InFlight>,
}

/// Every request under way in this VM, by http context id, and which
/// request each call token belongs to.
#[derive(Default)]
pub struct Flights {
    by_context: HashMap<u32, Flight>,
    context_of_token: HashMap<u32, u32>,
    /// Whether the host lets the root context act for a request
    /// (`proxy_set_effective_context`), so that the tick may answer it.
    can_act_for_requests: bool,
    /// The latest time read: the filter's clock never goes back.
    last_now: u64,
    /// Lines about failed calls, rationed.
    log_budget: LogBudget,
}

/// A ration of log lines about failed calls: functions failing under load
/// (or a client that makes them fail) must not flood the gateway's log.
#[derive(Default)]
struct LogBudget {
    window_start_ms: u64,
    lines: u32,
    suppressed: u64,
}

impl LogBudget {
    /// Lines per second, at most.
    const PER_SECOND: u32 = 20;

    /// Whether a line may be written at `now`; at the start of a new
    /// second, says how many the last one held back.
    fn allows(&mut self, now: u64) -> bool {
        if now.saturating_sub(self.window_start_ms) >= 1000 {
            if self.suppressed > 0 {
                warn!(
                    "graphql-aggregator: {} more failed calls in the last second were not logged (see the metrics)",
                    self.suppressed
                );
            }
            *self = LogBudget {
                window_start_ms: now,
                ..LogBudget::default()
            };
        }
        if self.lines < Self::PER_SECOND {
            self.lines += 1;
            true
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            false
        }
    }
}

/// The flights of a VM, shared by its contexts.
pub type SharedFlights = Rc<RefCell<Flights>>;

/// Runs `f` on the flights; `None` when a host called back into the filter
/// while it was dispatching (neither Envoy nor Kong does): the caller then
/// answers for itself, logged, instead of trapping.
pub fn with<R>(flights: &SharedFlights, f: impl FnOnce(&mut Flights) -> R) -> Option<R> {
    match flights.try_borrow_mut() {
        Ok(mut flights) => Some(f(&mut flights)),
        Err(_) => {
            error!("graphql-aggregator: a host callback came while the filter was busy");
            None
        }
    }
}

impl Flights {
    /// Asks the host, once per plugin from its root context, whether the tick
    /// may act for a request. Envoy refuses to make an unknown context
    /// effective (BadArgument), which shows that it switches contexts;
    /// ngx_wasm_module (Kong 3.9) accepts anything because its
    /// `proxy_set_effective_context` does nothing, and a local reply sent
    /// from the tick there would act on no request at all (its source: a
    /// null request context). Only a host that refuses is trusted.
    pub fn probe_host(&mut self) {
        self.can_act_for_requests = host::set_effective_context(u32::MAX).is_err();
        if !self.can_act_for_requests {
            log::info!(
                "graphql-aggregator: this host cannot answer a request from a timer: \
                 deadlines hold through its own call timeouts only"
            );
        }
    }

    /// Runs a started execution: dispatches its calls, or replies at once.
    pub fn start(
        &mut self,
        context_id: u32,
        request_id: String,
        gateway: Arc<Gateway>,
        metrics: Rc<RefCell<Metrics>>,
        execution: Execution,
    ) {
        self.by_context.insert(
            context_id,
            Flight {
                request_id,
                gateway,
                metrics,
                execution,
                calls: HashMap::new(),
            },
        );
        self.drive(context_id);
    }

    /// A call's answer (or failure), read from the host in the callback
    /// of `token`. Unknown tokens (a request already answered) are ignored.
    pub fn on_call_response(&mut self, token: u32, num_headers: usize, body_size: usize) {
        let Some(context_id) = self.context_of_token.remove(&token) else {
            return;
        };
        let Some(flight) = self.by_context.get_mut(&context_id) else {
            return;
        };
        let Some(call) = flight.calls.remove(&token) else {
            return;
        };
        let now = clock(&mut self.last_now);
        let max_body = flight.gateway.limits.max_response_bytes;
        let elapsed = now.saturating_sub(call.sent_ms);
        // The host's timer may fire before the filter's clock reads the
        // timeout: its clock is another one, read at other moments (seen
        // under load on Envoy: a reset at the 250 ms timeout read as 240 ms).
        let slack = (call.timeout_ms / 10).max(TIMER_SLACK_MS);
        let at_timeout = elapsed.saturating_add(slack) >= call.timeout_ms;
        let outcome = call_outcome(num_headers, body_size, max_body, at_timeout);
        let cache_control = match outcome {
            CallOutcome::Response { .. } => answer_cache_control(),
            CallOutcome::Failed(_) => None,
        };
        flight.finish_call(
            &call,
            outcome,
            cache_control.as_deref(),
            now,
            &mut self.log_budget,
        );
        // A call dispatched from the tick answers through the root context:
        // act for its request again.
        if self.can_act_for_requests && host::set_effective_context(context_id).is_err() {
            self.forget(context_id);
            return;
        }
        self.drive(context_id);
    }

    /// The tick: calls past their timeout fail as timed out, requests past
    /// their deadline are answered. `root_id` is given back the effective
    /// context afterwards.
    pub fn on_tick(&mut self, root_id: u32) {
        if !self.can_act_for_requests {
            return;
        }
        let now = clock(&mut self.last_now);
        let mut due = Vec::new();
        let context_of_token = &mut self.context_of_token;
        let log_budget = &mut self.log_budget;
        for (context_id, flight) in &mut self.by_context {
            let late: Vec<u32> = flight
                .calls
                .iter()
                .filter(|(_, call)| now.saturating_sub(call.sent_ms) >= call.timeout_ms)
                .map(|(token, _)| *token)
                .collect();
            for token in &late {
                // Its answer, if it still comes, is ignored.
                context_of_token.remove(token);
                if let Some(call) = flight.calls.remove(token) {
                    let outcome = CallOutcome::Failed(CallFailure::Timeout);
                    flight.finish_call(&call, outcome, None, now, log_budget);
                }
            }
            // take_calls also answers a request past its deadline.
            if !late.is_empty() || flight.execution.is_past_deadline(now) {
                due.push(*context_id);
            }
        }
        for context_id in due {
            if host::set_effective_context(context_id).is_err() {
                // The host no longer knows the request: nothing to answer.
                self.forget(context_id);
                continue;
            }
            self.drive(context_id);
        }
        let _ = host::set_effective_context(root_id);
    }

    /// The request of `context_id` ended (answered, or the client left):
    /// its answers, if any still come, are ignored.
    pub fn forget(&mut self, context_id: u32) {
        if let Some(flight) = self.by_context.remove(&context_id) {
            for token in flight.calls.keys() {
                self.context_of_token.remove(token);
            }
        }
    }

    /// Dispatches whatever the engine wants called; replies once it is done.
    fn drive(&mut self, context_id: u32) {
        let Some(flight) = self.by_context.get_mut(&context_id) else {
            return;
        };
        loop {
            let now = clock(&mut self.last_now);
            let calls = flight.execution.take_calls(now);
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
                        self.context_of_token.insert(token, context_id);
                        flight.calls.insert(
                            token,
                            InFlight {
                                id: call.id,
                                upstream: request.upstream.clone(),
                                path: request.path.clone(),
                                sent_ms: now,
                                timeout_ms: request.timeout_ms,
                            },
                        );
                    }
                    Err(status) => {
                        let reason = format!(
                            "the gateway refused to call {} ({status:?})",
                            request.target
                        );
                        if self.log_budget.allows(now) {
                            warn!(
                                "graphql-aggregator: request {}: {reason}",
                                flight.request_id
                            );
                        }
                        flight
                            .metrics
                            .borrow_mut()
                            .call(&request.upstream, "rejected", 0);
                        flight.execution.on_call_outcome(
                            call.id,
                            CallOutcome::Failed(CallFailure::Rejected(reason)),
                            now,
                        );
                    }
                }
            }
        }
        if let Some(reply) = flight.execution.reply() {
            let (request_id, metrics) = (flight.request_id.clone(), flight.metrics.clone());
            self.forget(context_id);
            send(&request_id, &metrics, reply);
        }
    }
}

impl Flight {
    /// Hands a call's outcome to the engine, with its metrics and (within
    /// the ration) its log line.
    fn finish_call(
        &mut self,
        call: &InFlight,
        outcome: CallOutcome,
        cache_control: Option<&str>,
        now: u64,
        log_budget: &mut LogBudget,
    ) {
        let kind = outcome.kind();
        let elapsed = now.saturating_sub(call.sent_ms);
        if kind != "ok" && log_budget.allows(now) {
            warn!(
                "graphql-aggregator: request {}: call to {} {} ended: {kind} after {elapsed} ms",
                self.request_id,
                call.upstream,
                shortened(&call.path)
            );
        }
        self.metrics
            .borrow_mut()
            .call(&call.upstream, kind, elapsed);
        self.execution
            .on_call_answer(call.id, outcome, cache_control, now);
    }
}

/// The host's clock in milliseconds, never going back past `last` (a wall
/// clock stepped back would stop every timeout).
fn clock(last: &mut u64) -> u64 {
    *last = (*last).max(host::now_ms());
    *last
}

/// An `Age` header's seconds: a number too large is as old as can be
/// (RFC 9111 §1.2.2), and anything else that is not a number is stale.
fn age_seconds(value: &str) -> u64 {
    value.parse::<u64>().unwrap_or(u64::MAX)
}

/// A path as a log line shows it: at most 200 bytes (arguments can make
/// paths long).
fn shortened(path: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 200;
    if path.len() <= MAX {
        return path.into();
    }
    let mut end = MAX;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… ({} bytes)",
        path.get(..end).unwrap_or_default(),
        path.len()
    )
    .into()
}

/// Sends a reply to the client of the effective context.
pub fn send(request_id: &str, metrics: &Rc<RefCell<Metrics>>, mut reply: Reply) {
    if !reply.headers.iter().any(|(k, _)| k == "cache-control") {
        reply
            .headers
            .push(("cache-control".into(), "no-store".into()));
    }
    metrics.borrow_mut().request(reply.outcome);
    if let Err(status) = host::send_local_response(reply.status, &reply.headers, &reply.body) {
        error!(
            "graphql-aggregator: request {request_id}: the host refused the local reply (status {status})"
        );
    }
}

/// A call answer's caching rules: every `cache-control` value joined, plus
/// `private` when the answer varies by request headers (`Vary`), which a
/// merged reply cannot honour for a shared cache, and `age=N` for its
/// `Age`. `None`: no rules given.
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
    // The engine takes the answer's `Age` off its lifetimes.
    let age = pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("age"))
        .map(|(_, v)| age_seconds(v.trim()))
        .map(|age| format!("age={age}"));
    if let Some(age) = &age {
        directives.push(age);
    }
    Some(directives.join(", "))
}

/// Read a call's outcome. A call with no headers failed: Envoy gives no
/// header map at all then, Kong gives a `:dispatch_status` pseudo-header.
/// A body over `max_body` bytes is not read. A failure without a reason
/// once the call's time was up is a timeout: Envoy reports a timeout that
/// fires after the function's headers as a reset (measured).
fn call_outcome(
    num_headers: usize,
    body_size: usize,
    max_body: usize,
    timed_out: bool,
) -> CallOutcome {
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
            match dispatch_status {
                None if timed_out => CallOutcome::Failed(CallFailure::Timeout),
                status => CallOutcome::Failed(CallFailure::from_dispatch_status(status.as_deref())),
            }
        }
    }
}
