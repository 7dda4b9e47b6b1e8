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
use super::metrics::{CacheEvent, Metrics};
use graphql_aggregator_engine::answer_cache::{self, CallIdentity, Stored};
use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::{CallId, Execution, PendingCall, Shareable};
use graphql_aggregator_engine::response::Reply;
use graphql_aggregator_engine::upstream::{CallFailure, CallOutcome, Digits, UpstreamRequest};
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

/// A request's view of a call in flight: the engine's id, where it went,
/// when the request started waiting for it and how long it may wait.
struct InFlight {
    id: CallId,
    upstream: Arc<str>,
    path: Rc<str>,
    sent_ms: u64,
    timeout_ms: u64,
    /// For a request that joined another's call: its own call, to send if
    /// the joined call times out before this request's own time is up.
    own: Option<(UpstreamRequest, Option<Shareable>)>,
}

/// One request under way.
struct Flight {
    request_id: String,
    gateway: Arc<Gateway>,
    metrics: Rc<RefCell<Metrics>>,
    execution: Execution,
    /// The calls it waits for, by the host's token.
    calls: HashMap<u32, InFlight>,
}

/// A call the host has in flight, and the requests waiting for its answer.
struct Outgoing {
    /// The http contexts waiting, the one that sent it first. Empty once
    /// they all gave up: on Envoy the call still runs and later requests
    /// may join it; an answer nobody waits for is dropped (only an engine
    /// can tell whether it is data worth keeping).
    waiting: Vec<u32>,
    /// The http context that sent it: only its request takes the answer's
    /// headers (`response_headers`), never one that joined.
    sender: u32,
    upstream: Arc<str>,
    path: Rc<str>,
    sent_ms: u64,
    timeout_ms: u64,
    /// For a call other requests may share: its identity.
    shared: Option<SharedCall>,
}

/// The identity and caching rules of a call other requests may share.
struct SharedCall {
    /// [`answer_cache::call_identity`].
    key: CallIdentity,
    /// The configured lifetime in the answer cache, if any.
    ttl_ms: Option<u64>,
    /// Whether it carries `authorization`.
    authorized: bool,
    /// Whether other requests may join it while it is in flight.
    joinable: bool,
}

/// Every request under way in this VM, by http context id, and every call
/// the host has in flight for them.
#[derive(Default)]
pub struct Flights {
    by_context: HashMap<u32, Flight>,
    outgoing: HashMap<u32, Outgoing>,
    /// Calls in flight that other requests may join, by identity.
    joinable: HashMap<CallIdentity, u32>,
    /// Whether the host lets the filter act for a request from another
    /// context (`proxy_set_effective_context`): the tick may answer a
    /// request, and an answer may be handed to every request that joined
    /// its call.
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
    /// Asks the host, once per plugin from its root context, whether the
    /// filter may act for a request from another context. Envoy refuses to
    /// make an unknown context effective (BadArgument), which shows that it
    /// switches contexts; ngx_wasm_module (Kong 3.9) accepts anything
    /// because its `proxy_set_effective_context` does nothing, and a local
    /// reply sent from elsewhere would act on no request at all (its
    /// source: a null request context). Only a host that refuses is
    /// trusted: elsewhere neither the tick nor in-flight coalescing acts.
    pub fn probe_host(&mut self) {
        self.can_act_for_requests = host::set_effective_context(u32::MAX).is_err();
        if !self.can_act_for_requests {
            log::info!(
                "graphql-aggregator: this host cannot act for a request from another context: \
                 deadlines hold through its own call timeouts only, and identical calls of \
                 concurrent requests are not joined (the answer cache still serves them)"
            );
        }
    }

    /// Whether the host lets the filter act for a request from another
    /// context: Envoy does, Kong does not (see [`Flights::probe_host`]).
    pub fn acts_for_requests(&self) -> bool {
        self.can_act_for_requests
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

    /// A call's answer (or failure), read from the host in the callback of
    /// `token` and handed to every request waiting for it; kept in the
    /// answer cache when its call may be shared, an engine took it as
    /// data, and its caching rules allow. Unknown tokens are ignored.
    pub fn on_call_response(&mut self, token: u32, num_headers: usize, body_size: usize) {
        let Some(outgoing) = self.outgoing.remove(&token) else {
            return;
        };
        if let Some(shared) = &outgoing.shared {
            if self.joinable.get(&shared.key) == Some(&token) {
                self.joinable.remove(&shared.key);
            }
        }
        let waiting: Vec<u32> = outgoing
            .waiting
            .iter()
            .copied()
            .filter(|c| {
                self.by_context
                    .get(c)
                    .is_some_and(|f| f.calls.contains_key(&token))
            })
            .collect();
        let Some((gateway, metrics)) = waiting
            .first()
            .and_then(|c| self.by_context.get(c))
            .map(|f| (f.gateway.clone(), f.metrics.clone()))
        else {
            return;
        };
        let now = clock(&mut self.last_now);
        let elapsed = now.saturating_sub(outgoing.sent_ms);
        // The host's timer may fire before the filter's clock reads the
        // timeout: its clock is another one, read at other moments (seen
        // under load on Envoy: a reset at the 250 ms timeout read as 240 ms).
        let slack = (outgoing.timeout_ms / 10).max(TIMER_SLACK_MS);
        let at_timeout = elapsed.saturating_add(slack) >= outgoing.timeout_ms;
        let max_body = gateway.limits.max_response_bytes;
        let outcome = call_outcome(num_headers, body_size, max_body, at_timeout);
        // The answer's headers, read once: for its caching rules, and for
        // the headers its sender's reply takes.
        let headers = match outcome {
            CallOutcome::Response { .. } => {
                host::header_pairs(MapType::HttpCallResponseHeaders).unwrap_or_default()
            }
            CallOutcome::Failed(_) => Vec::new(),
        };
        let cache_control = match outcome {
            CallOutcome::Response { .. } => answer_cache_control(&headers),
            CallOutcome::Failed(_) => None,
        };
        // An answer that sets a cookie is its client's alone: never kept.
        let sets_cookie = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("set-cookie"));
        let entry = outgoing
            .shared
            .as_ref()
            .filter(|_| !sets_cookie)
            .and_then(|shared| {
                cache_entry(&gateway, shared, &outcome, cache_control.as_deref(), now)
            });
        // One function call, counted and logged once however many requests
        // waited for it.
        let request_id = waiting
            .first()
            .and_then(|c| self.by_context.get(c))
            .map(|f| f.request_id.clone())
            .unwrap_or_default();
        record_call(
            &metrics,
            &mut self.log_budget,
            &request_id,
            (&outgoing.upstream, &outgoing.path),
            outcome.kind(),
            elapsed,
            now,
        );
        // Envoy's own timeout is a 504 of its own, Kong's a failed call.
        let timed_out = outcome.kind() == "timeout";
        let mut outcome = Some(outcome);
        let mut is_data = false;
        let mut resend = Vec::new();
        for (index, context_id) in waiting.iter().enumerate() {
            let Some(flight) = self.by_context.get_mut(context_id) else {
                continue;
            };
            let Some(call) = flight.calls.remove(&token) else {
                continue;
            };
            // A request that joined this call later than its sender has
            // time of its own left: it sends the call again (deadlines are
            // per request).
            let time_left = (call.sent_ms + call.timeout_ms).saturating_sub(now);
            if timed_out && time_left > TIMER_SLACK_MS {
                if let Some((mut request, shareable)) = call.own {
                    request.timeout_ms = time_left;
                    request.deadline_header = Some(Digits::of(time_left));
                    resend.push((
                        *context_id,
                        PendingCall {
                            id: call.id,
                            request,
                            shareable,
                        },
                    ));
                    continue;
                }
            }
            // The last waiter takes the answer; the others get a copy.
            let this = if index + 1 == waiting.len() {
                outcome.take()
            } else {
                outcome.clone()
            };
            let Some(this) = this else { continue };
            let own_headers: &[(String, String)] = if *context_id == outgoing.sender {
                &headers
            } else {
                &[]
            };
            is_data |= flight.execution.on_call_answer_with_headers(
                call.id,
                this,
                cache_control.as_deref(),
                own_headers,
                now,
            );
        }
        if let (true, Some((slot, entry))) = (is_data, entry) {
            store(&metrics, &slot, &entry, now);
        }
        for (context_id, call) in resend {
            self.send_call(context_id, call, now);
        }
        for context_id in waiting {
            // Act for each request in turn (a call dispatched from the tick,
            // or joined by several requests, answers in another context).
            if self.can_act_for_requests && host::set_effective_context(context_id).is_err() {
                self.forget(context_id);
                continue;
            }
            self.drive(context_id);
        }
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
        let outgoing = &mut self.outgoing;
        let joinable = &mut self.joinable;
        let log_budget = &mut self.log_budget;
        for (context_id, flight) in &mut self.by_context {
            let late: Vec<u32> = flight
                .calls
                .iter()
                .filter(|(_, call)| now.saturating_sub(call.sent_ms) >= call.timeout_ms)
                .map(|(token, _)| *token)
                .collect();
            for token in &late {
                // This request stops waiting; the call may still answer the
                // others (and is counted when it ends), but no request joins
                // it any more.
                let mut others_wait = false;
                if let Some(out) = outgoing.get_mut(token) {
                    out.waiting.retain(|c| c != context_id);
                    others_wait = !out.waiting.is_empty();
                    if let Some(shared) = &out.shared {
                        if joinable.get(&shared.key) == Some(token) {
                            joinable.remove(&shared.key);
                        }
                    }
                }
                if let Some(call) = flight.calls.remove(token) {
                    let outcome = CallOutcome::Failed(CallFailure::Timeout);
                    if !others_wait {
                        let elapsed = now.saturating_sub(call.sent_ms);
                        record_call(
                            &flight.metrics,
                            log_budget,
                            &flight.request_id,
                            (&call.upstream, &call.path),
                            outcome.kind(),
                            elapsed,
                            now,
                        );
                    }
                    flight.execution.on_call_answer(call.id, outcome, None, now);
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
    /// its answers, if any still come, go to the other requests waiting
    /// for them, or nowhere.
    pub fn forget(&mut self, context_id: u32) {
        let Some(flight) = self.by_context.remove(&context_id) else {
            return;
        };
        for token in flight.calls.keys() {
            let Some(out) = self.outgoing.get_mut(token) else {
                continue;
            };
            out.waiting.retain(|c| *c != context_id);
            // Where the host cancels a request's calls with it (Kong),
            // nothing will answer: the call is gone.
            if out.waiting.is_empty() && !self.can_act_for_requests {
                if let Some(gone) = self.outgoing.remove(token) {
                    if let Some(shared) = gone.shared {
                        if self.joinable.get(&shared.key) == Some(token) {
                            self.joinable.remove(&shared.key);
                        }
                    }
                }
            }
        }
    }

    /// Dispatches whatever the engine wants called; replies once it is done.
    fn drive(&mut self, context_id: u32) {
        loop {
            let now = clock(&mut self.last_now);
            let Some(flight) = self.by_context.get_mut(&context_id) else {
                return;
            };
            let calls = flight.execution.take_calls(now);
            if calls.is_empty() {
                break;
            }
            for call in calls {
                // A call answered from the cache may have finished the
                // request (a limit): the rest is not sent.
                let finished = self
                    .by_context
                    .get(&context_id)
                    .is_none_or(|f| f.execution.is_finished());
                if finished {
                    break;
                }
                self.send_call(context_id, call, now);
            }
        }
        let Some(flight) = self.by_context.get_mut(&context_id) else {
            return;
        };
        if let Some(reply) = flight.execution.reply() {
            let (request_id, metrics) = (flight.request_id.clone(), flight.metrics.clone());
            metrics
                .borrow_mut()
                .dropped_headers(flight.execution.dropped_answer_headers());
            self.forget(context_id);
            send(&request_id, &metrics, reply);
        }
    }

    /// One call of the request of `context_id`: answered from the answer
    /// cache, joined to an identical call in flight, or dispatched.
    fn send_call(&mut self, context_id: u32, call: PendingCall, now: u64) {
        let Some(flight) = self.by_context.get_mut(&context_id) else {
            return;
        };
        let PendingCall {
            id,
            request,
            shareable,
        } = call;
        let gateway = &flight.gateway;
        let joinable = gateway.coalesce && self.can_act_for_requests;
        let shared = shareable
            .filter(|_| joinable || gateway.answer_cache.is_on())
            .map(|shareable| SharedCall {
                key: answer_cache::call_identity(&request),
                ttl_ms: shareable.ttl_ms,
                authorized: answer_cache::is_authorized(&request),
                joinable,
            });
        if let Some(shared) = &shared {
            if gateway.answer_cache.is_on() {
                let slot = answer_cache::slot_name(&shared.key, gateway.answer_cache.slots());
                let entry = host::shared_data(&slot).ok().flatten();
                let hit = entry.as_ref().and_then(|(bytes, _)| {
                    answer_cache::decode(bytes, &shared.key, now, shared.ttl_ms, shared.authorized)
                });
                if let Some(hit) = hit {
                    flight.metrics.borrow_mut().answer_cache(CacheEvent::Hit);
                    let outcome = CallOutcome::Response {
                        status: hit.status,
                        body: hit.body.to_vec(),
                    };
                    let cache_control = hit.cache_control;
                    flight
                        .execution
                        .on_call_answer(id, outcome, cache_control.as_deref(), now);
                    return;
                }
                flight.metrics.borrow_mut().answer_cache(CacheEvent::Miss);
            }
            // Join an identical call in flight for another request (never
            // one this request already waits for: two of its own calls can
            // have one identity, e.g. two upstreams with the same target).
            let joined = self
                .joinable
                .get(&shared.key)
                .copied()
                .filter(|token| shared.joinable && !flight.calls.contains_key(token));
            if let Some(token) = joined {
                if let Some(out) = self.outgoing.get_mut(&token) {
                    out.waiting.push(context_id);
                    let in_flight = InFlight {
                        id,
                        upstream: out.upstream.clone(),
                        path: out.path.clone(),
                        sent_ms: now,
                        timeout_ms: request.timeout_ms,
                        own: Some((request, shareable)),
                    };
                    flight.calls.insert(token, in_flight);
                    flight.metrics.borrow_mut().coalesced();
                    return;
                }
            }
        }
        let dispatched = proxy_wasm::hostcalls::dispatch_http_call(
            &request.target,
            request.host_headers(),
            request.body.as_deref(),
            Vec::new(),
            Duration::from_millis(request.timeout_ms),
        );
        match dispatched {
            Ok(token) => {
                if let Some(shared) = shared.as_ref().filter(|s| s.joinable) {
                    self.joinable.insert(shared.key, token);
                }
                let path: Rc<str> = request.path.as_str().into();
                self.outgoing.insert(
                    token,
                    Outgoing {
                        waiting: vec![context_id],
                        sender: context_id,
                        upstream: request.upstream.clone(),
                        path: path.clone(),
                        sent_ms: now,
                        timeout_ms: request.timeout_ms,
                        shared,
                    },
                );
                flight.calls.insert(
                    token,
                    InFlight {
                        id,
                        upstream: request.upstream.clone(),
                        path,
                        sent_ms: now,
                        timeout_ms: request.timeout_ms,
                        own: None,
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
                    id,
                    CallOutcome::Failed(CallFailure::Rejected(reason)),
                    now,
                );
            }
        }
    }
}

/// Counts a function call that ended (as `kind` says, after `elapsed_ms`)
/// and, within the ration, logs one that failed.
fn record_call(
    metrics: &Rc<RefCell<Metrics>>,
    log_budget: &mut LogBudget,
    request_id: &str,
    (upstream, path): (&Arc<str>, &Rc<str>),
    kind: &'static str,
    elapsed_ms: u64,
    now: u64,
) {
    if kind != "ok" && log_budget.allows(now) {
        warn!(
            "graphql-aggregator: request {request_id}: call to {upstream} {} ended: {kind} after {elapsed_ms} ms",
            shortened(path)
        );
    }
    metrics.borrow_mut().call(upstream, kind, elapsed_ms);
}

/// The answer cache's entry for a shared call's answer, with its slot:
/// `None` when the cache is off, the call failed, or the answer's caching
/// rules (or its size) keep it out. Built before the answer is handed on,
/// and stored only if an engine takes the answer as data.
fn cache_entry(
    gateway: &Gateway,
    shared: &SharedCall,
    outcome: &CallOutcome,
    cache_control: Option<&str>,
    now: u64,
) -> Option<(String, Vec<u8>)> {
    let config = gateway.answer_cache;
    let CallOutcome::Response { status, body } = outcome else {
        return None;
    };
    if !config.is_on() || !(200..300).contains(status) {
        return None;
    }
    let lifetime = answer_cache::lifetime_ms(cache_control, shared.ttl_ms, shared.authorized)?;
    let stored = Stored {
        status: *status,
        cache_control,
        body,
    };
    let expires = now.saturating_add(lifetime);
    let entry = answer_cache::encode(&shared.key, now, expires, stored, config.max_entry_bytes)?;
    Some((answer_cache::slot_name(&shared.key, config.slots()), entry))
}

/// Keeps an entry in its slot, counting the live entry of another call it
/// replaces. A host that refuses (Kong's zone full) only loses the entry.
fn store(metrics: &Rc<RefCell<Metrics>>, slot: &str, entry: &[u8], now: u64) {
    let replaces_live = host::shared_data(slot)
        .ok()
        .flatten()
        .is_some_and(|(old, _)| answer_cache::is_live(&old, now));
    if host::set_shared_data(slot, entry, 0).is_ok() {
        let mut metrics = metrics.borrow_mut();
        metrics.answer_cache(CacheEvent::Store);
        if replaces_live {
            metrics.answer_cache(CacheEvent::Eviction);
        }
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
fn answer_cache_control(pairs: &[(String, String)]) -> Option<String> {
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
    let status = host::call_status(num_headers);
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
