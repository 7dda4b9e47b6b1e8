//! The call table of a request: every call rendered, de-duplicated (an
//! identical call is made once and its answer shared), queued, dispatched
//! within the concurrency limit, and answered.
//!
//! Only calls that may share an answer are de-duplicated: GET calls, and
//! calls of fields with `@http(dedupe: true)`. Calls of mutation root
//! fields never are (each mutation field runs, one after another), nor are
//! other non-GET calls: `mutation { a: incr b: incr }` makes two calls.
//! Nor does a call share the answer of a call made before the mutation
//! root field it runs under started: that answer may be out of date.

use super::{CallId, PendingCall, Run, Shareable};
use crate::answer::NodeId;
use crate::config::Gateway;
use crate::error::{ErrorCode, FieldError};
use crate::fetched::{AnswerId, ErrorId, ObjRef, Resolved};
use crate::limits::LimitExceeded;
use crate::plan::FieldId;
use crate::schema::ResolverId;
use crate::template::Values;
use crate::upstream::{is_safe_header_value, Upstream, UpstreamRequest, REQUEST_ID_HEADER};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A call's headers, shared by the calls of a request that send the same.
pub(super) type Headers = Arc<[(String, String)]>;

/// The headers every call of a request to one upstream carries, and
/// whether any of them came from the client (forwarded or renamed; the
/// request id does not count).
pub(super) type BaseHeaders = (Arc<str>, Headers, bool);

/// A field waiting for a call's answer.
#[derive(Debug, Clone)]
pub(super) struct Waiter {
    /// The object the field belongs to.
    pub at: ObjRef,
    /// The plan field.
    pub field: FieldId,
    /// Its resolver.
    pub resolver: ResolverId,
    /// For batched calls: this parent's key.
    pub batch_key: Option<BatchKey>,
}

/// A parent's batch key: short keys (most ids) held inline, longer ones
/// on the heap.
#[derive(Clone)]
pub(super) enum BatchKey {
    Inline {
        len: u8,
        bytes: [u8; BatchKey::INLINE],
    },
    Heap(Box<str>),
}

impl BatchKey {
    const INLINE: usize = 22;

    fn new(text: &str) -> BatchKey {
        let mut bytes = [0u8; BatchKey::INLINE];
        match (bytes.get_mut(..text.len()), u8::try_from(text.len())) {
            (Some(head), Ok(len)) => {
                head.copy_from_slice(text.as_bytes());
                BatchKey::Inline { len, bytes }
            }
            _ => BatchKey::Heap(text.into()),
        }
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        match self {
            BatchKey::Inline { len, bytes } => bytes
                .get(..usize::from(*len))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
            BatchKey::Heap(text) => text,
        }
    }
}

impl std::fmt::Debug for BatchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A call still open when the deadline passed.
#[derive(Debug)]
pub(super) struct Expired {
    /// The fields that waited for it.
    pub waiters: Vec<Waiter>,
    /// The upstream it was for.
    pub upstream: Arc<str>,
    /// Whether it was dispatched (false: it never left the queue).
    pub started: bool,
}

/// What a call gave: the data's place in an answer, or an error.
pub(super) type CallResult = Result<(AnswerId, Option<NodeId>), ErrorId>;

#[derive(Debug)]
enum CallState {
    Queued(Vec<Waiter>),
    InFlight(Vec<Waiter>),
    Done(CallResult),
}

#[derive(Debug)]
struct Call {
    request: UpstreamRequest,
    upstream: Arc<str>,
    shareable: Option<Shareable>,
    state: CallState,
    /// A batched answer's items by key, built on first use.
    indexes: Vec<super::batch::BatchIndex>,
}

/// Every call of a request.
#[derive(Debug, Default)]
pub(super) struct Calls {
    calls: Vec<Call>,
    /// Calls by the hash of their request (already a hash: no hashing
    /// again).
    by_request: HashMap<u64, CallId, crate::hashing::BuildFast>,
    outbox: Vec<CallId>,
    in_flight: usize,
    /// Bytes of the paths and bodies of the calls made so far.
    sent_bytes: usize,
    /// Batched fields gathered while merging: by the request they share
    /// (without the keys) and the resolver, the parents waiting.
    pub batches: super::batch::BatchGroups,
    /// Waiters of calls already answered, to deliver.
    ready: VecDeque<(Waiter, CallId)>,
}

impl Calls {
    /// Empties the table for another request, keeping its containers;
    /// false (nothing kept) when they grew too large to keep.
    pub fn reset(&mut self) -> bool {
        if self.calls.capacity() > 1024 || self.by_request.capacity() > 1024 {
            return false;
        }
        self.calls.clear();
        self.by_request.clear();
        self.outbox.clear();
        self.in_flight = 0;
        self.sent_bytes = 0;
        self.batches.clear();
        self.ready.clear();
        true
    }

    /// Whether a call is in flight (its answer is expected).
    pub fn is_in_flight(&self, id: CallId) -> bool {
        self.calls
            .get(id)
            .is_some_and(|c| matches!(c.state, CallState::InFlight(_)))
    }

    /// Whether nothing is queued, in flight or waiting to be delivered.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_empty()
            && self.in_flight == 0
            && self.ready.is_empty()
            && self.batches.is_empty()
    }

    /// Whether batches wait to be made into calls.
    pub fn has_batches(&self) -> bool {
        !self.batches.is_empty()
    }

    /// Hands out up to `max_concurrent - in flight` queued calls, each with
    /// its timeout cut to `remaining` milliseconds.
    pub fn take(&mut self, max_concurrent: usize, remaining: u64) -> Vec<PendingCall> {
        let room = max_concurrent.saturating_sub(self.in_flight);
        let take = room.min(self.outbox.len());
        let mut out = Vec::with_capacity(take);
        let deadline = crate::upstream::Digits::of(remaining);
        for id in self.outbox.drain(..take) {
            let Some(call) = self.calls.get_mut(id) else {
                continue;
            };
            if let CallState::Queued(waiters) = &mut call.state {
                call.state = CallState::InFlight(std::mem::take(waiters));
                self.in_flight += 1;
                let mut request = call.request.clone();
                request.timeout_ms = request.timeout_ms.min(remaining).max(1);
                request.deadline_header = Some(deadline);
                out.push(PendingCall {
                    id,
                    request,
                    shareable: call.shareable,
                });
            }
        }
        out
    }

    /// The upstream a call goes to.
    pub fn upstream_of(&self, id: CallId) -> Option<&Arc<str>> {
        self.calls.get(id).map(|call| &call.upstream)
    }

    /// A call answered: its waiters, and the upstream it went to.
    pub fn answered(&mut self, id: CallId) -> Option<(Vec<Waiter>, Arc<str>)> {
        let call = self.calls.get_mut(id)?;
        let CallState::InFlight(waiters) = &mut call.state else {
            return None;
        };
        let waiters = std::mem::take(waiters);
        self.in_flight = self.in_flight.saturating_sub(1);
        Some((waiters, call.upstream.clone()))
    }

    /// Records what a call gave.
    pub fn complete(&mut self, id: CallId, result: CallResult) {
        if let Some(call) = self.calls.get_mut(id) {
            call.state = CallState::Done(result);
        }
    }

    /// What a call gave, and its batch indexes (one per node and batch
    /// form) to build or use.
    pub fn result(
        &mut self,
        id: CallId,
    ) -> Option<(CallResult, &mut Vec<super::batch::BatchIndex>)> {
        let call = self.calls.get_mut(id)?;
        match call.state {
            CallState::Done(result) => Some((result, &mut call.indexes)),
            _ => None,
        }
    }

    /// The next waiter of an already answered call.
    pub fn next_ready(&mut self) -> Option<(Waiter, CallId)> {
        self.ready.pop_front()
    }

    /// Adds a waiter to a call already made.
    pub fn join(&mut self, id: CallId, waiter: Waiter) {
        if let Some(call) = self.calls.get_mut(id) {
            match &mut call.state {
                CallState::Queued(waiters) | CallState::InFlight(waiters) => waiters.push(waiter),
                CallState::Done(_) => self.ready.push_back((waiter, id)),
            }
        }
    }

    /// Calls made from now on share no answer with the calls made so far
    /// (a mutation field is about to run).
    pub fn forget_shared(&mut self) {
        self.by_request.clear();
    }

    /// Queues a call for `waiter`, or, when `dedupe`, joins an identical
    /// call that may be shared too; returns its id. `Err` when the call
    /// would go over `max_calls` or `max_call_bytes`.
    pub fn enqueue(
        &mut self,
        request: UpstreamRequest,
        upstream: &Arc<str>,
        waiter: Waiter,
        limits: &crate::limits::Limits,
        dedupe: bool,
        shareable: Option<Shareable>,
    ) -> Result<CallId, (Waiter, LimitExceeded)> {
        // Identical calls are found by a hash of the request, and compared
        // in full (a collision makes a second call, never a wrong answer).
        // A call that may not be shared is not registered: no later call
        // joins it.
        let hash = dedupe.then(|| crate::hashing::hash_of(&request));
        if let Some(&id) = hash.and_then(|hash| self.by_request.get(&hash)) {
            if self.calls.get(id).is_some_and(|c| c.request == request) {
                self.join(id, waiter);
                return Ok(id);
            }
        }
        let id = self.calls.len();
        if id >= limits.max_calls {
            return Err((waiter, over("max_calls", limits.max_calls, id + 1)));
        }
        let headers: usize = request.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        let bytes = request.path.len() + request.body.as_ref().map_or(0, Vec::len) + headers;
        let sent = self.sent_bytes.saturating_add(bytes);
        if sent > limits.max_call_bytes {
            return Err((waiter, over("max_call_bytes", limits.max_call_bytes, sent)));
        }
        self.sent_bytes = sent;
        if let Some(hash) = hash {
            self.by_request.insert(hash, id);
        }
        self.calls.push(Call {
            request,
            upstream: upstream.clone(),
            shareable,
            state: CallState::Queued(vec![waiter]),
            indexes: Vec::new(),
        });
        self.outbox.push(id);
        Ok(id)
    }

    /// The deadline passed: every call still queued or in flight is done,
    /// and their waiters are handed back with the upstream they waited
    /// for and whether the call was dispatched. Nothing queued or gathered
    /// is started any more.
    pub fn expire(&mut self) -> Vec<Expired> {
        self.outbox.clear();
        self.batches.clear();
        self.ready.clear();
        self.in_flight = 0;
        let mut open = Vec::new();
        for call in &mut self.calls {
            let (waiters, started) = match &mut call.state {
                CallState::Queued(waiters) => (std::mem::take(waiters), false),
                CallState::InFlight(waiters) => (std::mem::take(waiters), true),
                CallState::Done(_) => continue,
            };
            open.push(Expired {
                waiters,
                upstream: call.upstream.clone(),
                started,
            });
            call.state = CallState::Done(Err(ErrorId::MAX));
        }
        open
    }
}

impl Run {
    /// A function-backed field of the object `at` fills `occurrences` more
    /// places of the response: the first time, its call is planned; when
    /// it is already resolved, its value is walked for these places too.
    pub(super) fn field_call(
        &mut self,
        gateway: &Gateway,
        at: ObjRef,
        field: FieldId,
        resolver: ResolverId,
        arguments: &crate::plan::Arguments,
        occurrences: u64,
    ) {
        if let Some(entry) = self.fetched.entry_mut(at, field) {
            entry.occurrences = entry.occurrences.saturating_add(occurrences);
            let value = entry.value.clone();
            let plan = self.plan.clone();
            self.walk_resolved(gateway, &plan, field, &value, occurrences);
            return;
        }
        self.fetched.insert_entry(at, field, occurrences);
        let Some(resolver_def) = gateway.resolvers.get(resolver) else {
            return self.fail(
                at,
                field,
                FieldError::new(ErrorCode::InternalError, "internal error: unknown resolver"),
            );
        };
        let Some(upstream) = gateway.upstreams.get(&resolver_def.upstream) else {
            return self.fail(
                at,
                field,
                FieldError::new(ErrorCode::InternalError, "internal error: unknown upstream"),
            );
        };
        let parent = self
            .fetched
            .answer(at.answer)
            .map(|held| (&held.answer, at.node));
        let batch_key = resolver_def.batch.as_ref().map(|batch| {
            let mut buffer = String::new();
            parent.and_then(|(answer, node)| {
                let key = answer.lookup(node, &batch.key)?;
                answer.scalar_text(key, &mut buffer).map(BatchKey::new)
            })
        });
        let waiter = Waiter {
            at,
            field,
            resolver,
            batch_key: None,
        };
        let waiter = match batch_key {
            // A batched template never reads the parent: every parent of
            // this field sends the same request, rendered for the first.
            Some(Some(key)) => {
                let keyed = Waiter {
                    batch_key: Some(key),
                    ..waiter
                };
                match self.calls.batches.join_field(field, keyed) {
                    Ok(()) => return,
                    Err(keyed) => keyed,
                }
            }
            // A parent without the batch key (absent, null, an object or a
            // list) has nothing to look up: null, without an error and
            // whatever `batch.missing` says.
            Some(None) => {
                if let Some(entry) = self.fetched.entry_mut(at, field) {
                    entry.value = Resolved::Null;
                }
                return;
            }
            None => waiter,
        };
        let (args, bound) = arguments.values(&gateway.schema, &self.variables);
        let values = Values {
            args: &args,
            bound: Some((bound, &self.variables)),
            parent,
            identity: self.identity.as_ref(),
        };
        let (base, personal) = base_headers(
            &mut self.base_headers,
            upstream,
            &self.client_headers,
            self.identity.as_ref(),
        );
        let request = match render(upstream, resolver_def, &values, base) {
            Ok(request) => request,
            Err(error) => return self.fail(at, field, error),
        };
        if personal {
            // The answer may be this client's alone: no shared cache may
            // keep the reply.
            self.cache.personal();
        }
        if waiter.batch_key.is_some() {
            self.calls.batches.add(resolver, field, request, waiter);
        } else {
            // A mutation root field runs, whatever its `dedupe` says.
            let mutation_root = self.plan.mutation && at == self.fetched.root();
            let dedupe = resolver_def.dedupe && !mutation_root;
            self.enqueue(gateway, request, &upstream.name.clone(), waiter, dedupe);
        }
    }

    /// Queues a call (or, when `dedupe`, joins an identical one) and
    /// returns its id; beyond `max_calls` or `max_call_bytes` the field
    /// fails with `LIMIT_EXCEEDED`.
    pub(super) fn enqueue(
        &mut self,
        gateway: &Gateway,
        request: UpstreamRequest,
        upstream: &Arc<str>,
        waiter: Waiter,
        dedupe: bool,
    ) -> Option<CallId> {
        self.try_enqueue(gateway, request, upstream, waiter, dedupe)
            .ok()
    }

    /// [`Run::enqueue`], giving back the limit a refused call went over.
    /// A call that may be shared within the request may be shared with
    /// other requests too, but in a mutation operation (whose writes may
    /// change what the same call answers).
    pub(super) fn try_enqueue(
        &mut self,
        gateway: &Gateway,
        request: UpstreamRequest,
        upstream: &Arc<str>,
        waiter: Waiter,
        dedupe: bool,
    ) -> Result<CallId, LimitExceeded> {
        let shareable = (dedupe && !self.plan.mutation).then(|| Shareable {
            ttl_ms: gateway
                .resolvers
                .get(waiter.resolver)
                .and_then(|r| r.cache_ttl_ms)
                .or_else(|| {
                    gateway
                        .upstreams
                        .get(upstream.as_ref())
                        .and_then(|u| u.cache_ttl_ms)
                }),
        });
        match self.calls.enqueue(
            request,
            upstream,
            waiter,
            &gateway.limits,
            dedupe,
            shareable,
        ) {
            Ok(id) => Ok(id),
            Err((waiter, exceeded)) => {
                self.fail(
                    waiter.at,
                    waiter.field,
                    super::merge::limit_error(&exceeded),
                );
                Err(exceeded)
            }
        }
    }

    /// The identity call of this request (see [`crate::identity`]): the
    /// identity upstream's own headers, and the client's credential
    /// headers as they are. `None` when the upstream is unknown.
    pub(super) fn identity_call(
        &mut self,
        gateway: &Gateway,
        identity: &crate::identity::Identity,
    ) -> Option<PendingCall> {
        let upstream = gateway.upstreams.get(&identity.upstream)?;
        // Not through the per-upstream cache: the identity upstream's
        // field calls, if any, carry identity headers this call cannot.
        let (mut headers, _) = forwarded_headers(upstream, &self.client_headers, None);
        for name in &identity.credential_headers {
            if let Some(value) = client_value(&self.client_headers, name) {
                set_header(&mut headers, name, &value);
            }
        }
        let request = UpstreamRequest {
            target: upstream.target.clone(),
            upstream: upstream.name.clone(),
            method: identity.method.as_str().into(),
            path: format!("{}{}", upstream.path_prefix, identity.path),
            authority: upstream.authority.clone(),
            headers: Arc::from(headers),
            body: None,
            timeout_ms: u64::try_from(upstream.timeout.as_millis()).unwrap_or(u64::MAX),
            deadline_header: None,
        };
        // One credential's identity may serve its other requests (joined
        // in flight, kept in the answer cache): the call's identity holds
        // every header it sends, the credential too.
        let shareable = (identity.method == "GET").then_some(Shareable {
            ttl_ms: identity.cache_ttl_ms,
        });
        Some(PendingCall {
            id: super::IDENTITY_CALL,
            request,
            shareable,
        })
    }

    /// Takes the headers `id`'s upstream passes back to the client from
    /// its answer's `headers`.
    pub(super) fn take_answer_headers(
        &mut self,
        gateway: &Gateway,
        id: CallId,
        headers: &[(String, String)],
    ) {
        if headers.is_empty() {
            return;
        }
        let Some(upstream) = self
            .calls
            .upstream_of(id)
            .and_then(|name| gateway.upstreams.get(name.as_ref()))
        else {
            return;
        };
        if !upstream.response_headers.is_empty() {
            self.answer_headers
                .take(&upstream.response_headers, headers);
        }
    }

    /// A field fails with `error`.
    pub(super) fn fail(&mut self, at: ObjRef, field: FieldId, error: FieldError) {
        let id = self.fetched.add_error(error);
        if let Some(entry) = self.fetched.entry_mut(at, field) {
            entry.value = Resolved::Failed(id);
        }
    }
}

/// A limit a call would go over.
fn over(limit: &'static str, max: usize, actual: usize) -> LimitExceeded {
    LimitExceeded {
        limit,
        max,
        actual,
        at: None,
    }
}

/// The call a field needs: path, headers and body rendered from its
/// arguments and its parent.
fn render(
    upstream: &Upstream,
    resolver: &crate::schema::Resolver,
    values: &Values<'_>,
    base_headers: Arc<[(String, String)]>,
) -> Result<UpstreamRequest, FieldError> {
    let invalid = |e: crate::template::RenderError| {
        FieldError::new(
            ErrorCode::InvalidFunctionRequest,
            format!("cannot build the request to {}: {e}", upstream.name),
        )
    };
    let mut path = String::with_capacity(upstream.path_prefix.len() + 48);
    path.push_str(&upstream.path_prefix);
    resolver
        .path
        .render_into(values, &mut path)
        .map_err(invalid)?;
    let headers = if resolver.headers.is_empty() {
        base_headers
    } else {
        let mut headers = base_headers.to_vec();
        for header in &resolver.headers {
            match header.render(values).map_err(invalid)? {
                Some(value) => set_header(&mut headers, &header.name, &value),
                // A templated header whose value is absent is not sent:
                // never a forwarded client value of that name instead.
                None => headers.retain(|(n, _)| n != &header.name),
            }
        }
        Arc::from(headers)
    };
    Ok(UpstreamRequest {
        target: upstream.target.clone(),
        upstream: upstream.name.clone(),
        method: resolver.method.clone(),
        path,
        authority: upstream.authority.clone(),
        headers,
        body: resolver.body.as_ref().map(|b| b.render(values)),
        timeout_ms: u64::try_from(upstream.timeout.as_millis()).unwrap_or(u64::MAX),
        deadline_header: None,
    })
}

/// The headers every call of this request to `upstream` carries, computed
/// once per request and upstream, and whether any came from the client.
fn base_headers(
    cache: &mut Vec<BaseHeaders>,
    upstream: &Upstream,
    client: &[(String, String)],
    identity: Option<&apollo_compiler::response::JsonValue>,
) -> (Headers, bool) {
    if let Some((_, headers, personal)) = cache
        .iter()
        .find(|(name, _, _)| Arc::ptr_eq(name, &upstream.name))
    {
        return (headers.clone(), *personal);
    }
    let (headers, personal) = forwarded_headers(upstream, client, identity);
    let headers: Headers = Arc::from(headers);
    cache.push((upstream.name.clone(), headers.clone(), personal));
    (headers, personal)
}

/// The headers a call to `upstream` carries besides its templated ones: the
/// client's request id (always), the client headers the upstream forwards
/// (as they are, or under a new name), and the upstream's constant headers;
/// and its headers that read the request's identity (not sent when the
/// identity lacks the value); and whether any client header other than the
/// request id, or the identity, is among them (the answer may then be this
/// client's alone). Client values with a line break are dropped.
fn forwarded_headers(
    upstream: &Upstream,
    client: &[(String, String)],
    identity: Option<&apollo_compiler::response::JsonValue>,
) -> (Vec<(String, String)>, bool) {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut personal = false;
    if let Some(id) = client_value(client, REQUEST_ID_HEADER) {
        set_header(&mut headers, REQUEST_ID_HEADER, &id);
    }
    for name in &upstream.forward_headers {
        if let Some(value) = client_value(client, name) {
            set_header(&mut headers, name, &value);
            personal = true;
        }
    }
    for (from, to) in &upstream.rename_headers {
        if let Some(value) = client_value(client, from) {
            set_header(&mut headers, to, &value);
            personal = true;
        }
    }
    for (name, value) in &upstream.headers {
        set_header(&mut headers, name, value);
    }
    if !upstream.identity_headers.is_empty() {
        let no_arguments = apollo_compiler::response::JsonMap::new();
        let values = Values {
            args: &no_arguments,
            bound: None,
            parent: None,
            identity,
        };
        for template in &upstream.identity_headers {
            match template.render(&values) {
                Ok(Some(value)) => {
                    set_header(&mut headers, &template.name, &value);
                    personal = true;
                }
                // Absent (or a value that would break the header line):
                // not sent, and never a client's value of that name in
                // its place.
                _ => headers.retain(|(n, _)| n != &template.name),
            }
        }
    }
    (headers, personal)
}

/// A client header's value: its lines joined (`; ` for `cookie`, RFC 9113
/// §8.2.3 crumbs and HTTP/1 clients that send several lines; `, ` for
/// the others, RFC 9110 §5.3). Lines with a line break are dropped.
fn client_value<'a>(
    client: &'a [(String, String)],
    name: &str,
) -> Option<std::borrow::Cow<'a, str>> {
    let mut lines = client
        .iter()
        .filter(|(n, v)| n == name && is_safe_header_value(v))
        .map(|(_, v)| v.as_str());
    let first = lines.next()?;
    let Some(second) = lines.next() else {
        return Some(first.into());
    };
    let separator = if name == "cookie" { "; " } else { ", " };
    let mut joined = format!("{first}{separator}{second}");
    for line in lines {
        joined.push_str(separator);
        joined.push_str(line);
    }
    Some(joined.into())
}

/// Sets a header, replacing any earlier value of the same name: later
/// sources win (forwarded < renamed < constant < templated), so a client
/// can never override what the configuration sets.
fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(n, _)| n != name);
    headers.push((name.to_string(), value.to_string()));
}
