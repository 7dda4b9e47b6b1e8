//! Execution state of one GraphQL request: which function calls are in
//! flight, what their answers resolved, and what to call next.
//!
//! The engine is driven from outside, so that it runs the same under a
//! Proxy-Wasm host and in native tests:
//!
//! 1. [`Execution::start`] parses, validates and plans the request;
//! 2. [`Execution::take_calls`] hands out the calls to dispatch now (every
//!    independent call at once);
//! 3. [`Execution::on_call_outcome`] takes a call's answer, merges it and
//!    plans the calls its children need, which the next `take_calls` hands
//!    out at once;
//! 4. when nothing is left in flight, [`Execution::reply`] gives the reply.
//!
//! Identical calls within a request are made once. The calls that a list of
//! parents would multiply are gathered while the list's answer is merged:
//! fields with a batch form become one call for all distinct keys, the
//! others are de-duplicated and dispatched together.

use crate::abstract_type::concrete_type;
use crate::cache_control::CachePolicy;
use crate::config::Gateway;
use crate::key_path::lookup;
use crate::limits;
use crate::plan::{argument_values, collect_fields, sub_selections, GroupedFields};
use crate::plan_cache::PlanCache;
use crate::request::{self, HttpRequest, ResponseMedia};
use crate::response::{self, FieldFailure, Outcome, Reply};
use crate::schema::ResolverId;
use crate::template::{append_query, encode_component, Values};
use crate::upstream::{
    gateway_failure, is_safe_header_value, CallFailure, CallOutcome, Envelope, UpstreamRequest,
    REQUEST_ID_HEADER,
};
use apollo_compiler::executable::{Field, OperationType, Selection};
use apollo_compiler::parser::Parser;
use apollo_compiler::response::{JsonMap, JsonValue};
use apollo_compiler::schema::Type;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Name, Node};
use indexmap::IndexMap;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

/// Identifies one function call of a request.
pub type CallId = usize;

/// Identifies one object of the response tree.
pub type ObjectId = usize;

/// A call the host should dispatch now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCall {
    /// Pass it back to [`Execution::on_call_outcome`].
    pub id: CallId,
    /// What to send.
    pub request: UpstreamRequest,
}

/// What a field resolved to, before result coercion and null propagation.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// Waiting for a function call.
    Pending,
    /// A leaf value (scalar or enum) as the function gave it.
    Leaf(JsonValue),
    /// An object of the response tree.
    Object(ObjectId),
    /// A list.
    List(Vec<Fetched>),
    /// A field error (an index into the request's failures).
    Error(usize),
}

/// One object of the response tree: its concrete type, the JSON a function
/// returned for it, and its fields that needed work (calls, or nested
/// objects). Leaf fields are read from `source` when the reply is built.
#[derive(Debug, Clone)]
pub struct ObjectEntry {
    /// The concrete object type.
    pub type_name: Name,
    /// The object's JSON as its function returned it.
    pub source: Rc<JsonMap>,
    /// Resolved fields by response key.
    pub fields: HashMap<Name, Fetched>,
}

/// A field waiting for a call's answer.
#[derive(Debug, Clone)]
struct Waiter {
    object: ObjectId,
    key: Name,
    ty: Type,
    fields: Vec<Node<Field>>,
    resolver: ResolverId,
    /// For batched calls: this parent's key.
    batch_key: Option<String>,
}

type CallResult = Rc<Result<JsonValue, FieldFailure>>;

#[derive(Debug)]
enum CallState {
    Queued(Vec<Waiter>),
    InFlight(Vec<Waiter>),
    Done(CallResult),
}

#[derive(Debug)]
struct Call {
    request: UpstreamRequest,
    state: CallState,
}

/// Everything a running request holds.
#[derive(Debug)]
struct Run {
    document: Arc<Valid<ExecutableDocument>>,
    operation_name: Option<String>,
    variables: Valid<JsonMap>,
    objects: Vec<ObjectEntry>,
    calls: Vec<Call>,
    by_request: HashMap<UpstreamRequest, CallId>,
    outbox: Vec<CallId>,
    in_flight: usize,
    /// Batched fields gathered while merging: by the request they share
    /// (without the keys), the resolver and the parents waiting.
    batches: IndexMap<(ResolverId, UpstreamRequest), Vec<Waiter>>,
    ready: VecDeque<(Waiter, CallResult)>,
    failures: Vec<FieldFailure>,
    /// Mutation root fields not started yet (they run one after another).
    serial_roots: VecDeque<(Name, Vec<Node<Field>>)>,
    /// The client's request headers (names lower case), for forwarding.
    client_headers: Vec<(String, String)>,
    /// When the request's time is up, on the host's clock in milliseconds.
    deadline_at: u64,
    /// The operation's root fields, collected while checking the limits.
    roots: GroupedFields,
    /// What the answers allow for the reply's `cache-control`.
    cache: CachePolicy,
    /// Whether the operation is a mutation (never cached).
    mutation: bool,
}

/// The execution of one GraphQL request.
#[derive(Debug)]
pub struct Execution {
    gateway: Arc<Gateway>,
    media: ResponseMedia,
    run: Option<Box<Run>>,
    reply: Option<Reply>,
}

impl Execution {
    /// Parse, validate, check against the limits and plan a request, at
    /// `now_ms` on the host's clock (milliseconds; only differences matter).
    /// When the request is refused the execution is finished at once and
    /// [`Execution::reply`] has the error.
    pub fn start(gateway: Arc<Gateway>, http: &HttpRequest, now_ms: u64) -> Self {
        Self::start_cached(gateway, http, now_ms, None)
    }

    /// [`Execution::start`], taking the validated document from `cache` when
    /// this document was seen before (and remembering it otherwise).
    pub fn start_cached(
        gateway: Arc<Gateway>,
        http: &HttpRequest,
        now_ms: u64,
        cache: Option<&mut PlanCache>,
    ) -> Self {
        let media = ResponseMedia::negotiate(http.header("accept"));
        let mut execution = Execution {
            gateway,
            media,
            run: None,
            reply: None,
        };
        match execution.prepare(http, now_ms, cache) {
            Ok(run) => {
                execution.run = Some(Box::new(run));
                execution.plan_root();
                execution.settle();
            }
            Err(mut reply) => {
                reply
                    .headers
                    .push(("cache-control".into(), "no-store".into()));
                execution.reply = Some(reply);
            }
        }
        execution
    }

    fn prepare(
        &self,
        http: &HttpRequest,
        now_ms: u64,
        cache: Option<&mut PlanCache>,
    ) -> Result<Run, Reply> {
        let media = self.media;
        let limits = &self.gateway.limits;
        limits::check("max_body_bytes", limits.max_body_bytes, http.body.len())
            .map_err(|e| response::limit_exceeded(&e, 413, media))?;
        let graphql = request::parse(http).map_err(|e| response::request_error(&e, media))?;
        let schema = &self.gateway.schema;
        limits::check(
            "max_query_bytes",
            limits.max_query_bytes,
            graphql.query.len(),
        )
        .map_err(|e| response::limit_exceeded(&e, 400, media))?;
        let operation_name = graphql.operation_name.as_deref();
        let document = match cache {
            Some(cache) => match cache.get(&graphql.query, operation_name) {
                Some(document) => document,
                None => {
                    let document = Arc::new(self.compile(&graphql.query)?);
                    cache.insert(&graphql.query, operation_name, document.clone());
                    document
                }
            },
            None => Arc::new(self.compile(&graphql.query)?),
        };
        let operation = document
            .operations
            .get(graphql.operation_name.as_deref())
            .map_err(|e| {
                response::graphql_error(
                    400,
                    e.message().to_string(),
                    "OPERATION_RESOLUTION_FAILURE",
                    media,
                )
            })?;
        match operation.operation_type {
            OperationType::Subscription => {
                return Err(response::graphql_error(
                    400,
                    "subscriptions are not supported: this gateway answers queries and mutations"
                        .into(),
                    "SUBSCRIPTION_NOT_SUPPORTED",
                    media,
                ))
            }
            OperationType::Mutation if graphql.read_only => {
                return Err(response::mutation_over_get(media))
            }
            _ => {}
        }
        let variables =
            apollo_compiler::request::coerce_variable_values(schema, operation, &graphql.variables)
                .map_err(|e| {
                    response::graphql_error(400, e.message().to_string(), "BAD_USER_INPUT", media)
                })?;
        let root_type = operation.object_type().clone();
        let mutation = operation.operation_type == OperationType::Mutation;
        let roots = limits::root_fields(schema, &document, &variables, operation);
        if !self.gateway.introspection {
            let introspects = roots
                .values()
                .flatten()
                .any(|f| f.name == "__schema" || f.name == "__type");
            if introspects {
                return Err(response::graphql_error(
                    400,
                    "introspection is disabled on this gateway (`\"introspection\": false` in its configuration); `__typename` still works".into(),
                    "INTROSPECTION_DISABLED",
                    media,
                ));
            }
        }
        limits::check_operation(
            limits,
            &self.gateway.resolvers,
            &document,
            operation,
            &roots,
        )
        .map_err(|e| response::limit_exceeded(&e, 400, media))?;
        let deadline_ms = u64::try_from(self.gateway.deadline.as_millis()).unwrap_or(u64::MAX);
        Ok(Run {
            document,
            operation_name: graphql.operation_name,
            variables,
            objects: vec![ObjectEntry {
                type_name: root_type,
                source: Rc::new(JsonMap::new()),
                fields: HashMap::new(),
            }],
            calls: Vec::new(),
            by_request: HashMap::new(),
            outbox: Vec::new(),
            in_flight: 0,
            batches: IndexMap::new(),
            ready: VecDeque::new(),
            failures: Vec::new(),
            serial_roots: VecDeque::new(),
            client_headers: http.headers.clone(),
            deadline_at: now_ms.saturating_add(deadline_ms),
            cache: CachePolicy::default(),
            mutation,
            roots,
        })
    }

    /// Parse (within the token and depth limits) and validate a document.
    fn compile(&self, query: &str) -> Result<Valid<ExecutableDocument>, Reply> {
        let media = self.media;
        let limits = &self.gateway.limits;
        let schema = &self.gateway.schema;
        let mut parser = Parser::new()
            .token_limit(limits.max_query_tokens)
            .recursion_limit(limits.parser_recursion_limit());
        let parsed = parser.parse_ast(query, "request.graphql");
        let ast = parsed.map_err(|e| {
            let hit = |needle: &str| e.errors.iter().any(|d| d.to_string().contains(needle));
            let exceeded = if hit("token limit reached") {
                Some(limits::LimitExceeded {
                    limit: "max_query_tokens",
                    max: limits.max_query_tokens,
                    actual: parser.tokens_reached(),
                })
            } else if hit("recursion limit reached") {
                Some(limits::LimitExceeded {
                    limit: "max_depth",
                    max: limits.max_depth,
                    actual: parser.recursion_reached(),
                })
            } else {
                None
            };
            match exceeded {
                Some(exceeded) => response::limit_exceeded(&exceeded, 400, media),
                None => response::document_errors(&e.errors, "GRAPHQL_PARSE_FAILED", media),
            }
        })?;
        ast.to_executable_validate(schema)
            .map_err(|e| response::document_errors(&e.errors, "GRAPHQL_VALIDATION_FAILED", media))
    }

    /// The calls to dispatch now, at `now_ms`: as many as the concurrency
    /// limit allows, each with its timeout cut to the time left before the
    /// request's deadline (also sent as the `x-request-deadline-ms` header).
    /// Each must be answered once through [`Execution::on_call_outcome`],
    /// with a failure if it could not be dispatched. Past the deadline
    /// nothing is dispatched: every call still open fails as timed out.
    pub fn take_calls(&mut self, now_ms: u64) -> Vec<PendingCall> {
        if self.expire_if_late(now_ms) {
            return Vec::new();
        }
        let max_concurrent = self.gateway.limits.max_concurrent_calls;
        let Some(run) = self.run.as_mut() else {
            return Vec::new();
        };
        let remaining = run.deadline_at.saturating_sub(now_ms);
        let room = max_concurrent.saturating_sub(run.in_flight);
        let take = room.min(run.outbox.len());
        let mut calls = Vec::with_capacity(take);
        for id in run.outbox.drain(..take) {
            let Some(call) = run.calls.get_mut(id) else {
                continue;
            };
            if let CallState::Queued(waiters) = &mut call.state {
                call.state = CallState::InFlight(std::mem::take(waiters));
                run.in_flight += 1;
                let mut request = call.request.clone();
                request.timeout_ms = request.timeout_ms.min(remaining).max(1);
                request.deadline_header = Some(remaining.to_string());
                calls.push(PendingCall { id, request });
            }
        }
        calls
    }

    /// When `now_ms` is past the deadline, fails every call still queued or
    /// in flight as timed out (their late answers are then ignored) and
    /// finishes. Returns whether it did.
    fn expire_if_late(&mut self, now_ms: u64) -> bool {
        let Some(run) = self.run.as_mut() else {
            return false;
        };
        if now_ms < run.deadline_at {
            return false;
        }
        let deadline = self.gateway.deadline;
        // Serial mutation fields not started are not run at all.
        run.serial_roots.clear();
        run.outbox.clear();
        let mut open = Vec::new();
        for call in &mut run.calls {
            if let CallState::Queued(waiters) | CallState::InFlight(waiters) = &mut call.state {
                let failure = FieldFailure::new(
                    format!(
                        "function {} did not answer within the request's deadline ({} ms)",
                        call.request.upstream,
                        deadline.as_millis()
                    ),
                    "UPSTREAM_TIMEOUT",
                )
                .with_upstream(&call.request.upstream);
                let result: CallResult = Rc::new(Err(failure));
                open.push((std::mem::take(waiters), result.clone()));
                call.state = CallState::Done(result);
            }
        }
        run.in_flight = 0;
        for (waiters, result) in open {
            for waiter in waiters {
                self.deliver(waiter, &result);
            }
        }
        // Whatever the deliveries planned is abandoned too.
        if let Some(run) = self.run.as_mut() {
            run.outbox.clear();
            run.batches.clear();
            run.ready.clear();
        }
        self.finish();
        true
    }

    /// Take a call's outcome at `now_ms`: merge it into the response and
    /// plan the calls its children need. Unknown or already answered ids are
    /// ignored. Past the deadline, every other open call is abandoned.
    pub fn on_call_outcome(&mut self, id: CallId, outcome: CallOutcome, now_ms: u64) {
        self.on_call_answer(id, outcome, None, now_ms);
    }

    /// [`Execution::on_call_outcome`], with the answer's `cache-control`
    /// header (`None`: absent), which the reply's own `cache-control`
    /// takes into account.
    pub fn on_call_answer(
        &mut self,
        id: CallId,
        outcome: CallOutcome,
        cache_control: Option<&str>,
        now_ms: u64,
    ) {
        let open = self
            .run
            .as_ref()
            .and_then(|r| r.calls.get(id))
            .is_some_and(|c| matches!(c.state, CallState::InFlight(_)));
        if let (true, Some(run)) = (open, self.run.as_mut()) {
            run.cache.add(cache_control);
        }
        self.merge_outcome(id, outcome);
        self.expire_if_late(now_ms);
    }

    fn merge_outcome(&mut self, id: CallId, outcome: CallOutcome) {
        let max_response_bytes = self.gateway.limits.max_response_bytes;
        let Some(run) = self.run.as_mut() else { return };
        let Some(call) = run.calls.get_mut(id) else {
            return;
        };
        let CallState::InFlight(waiters) = &mut call.state else {
            return;
        };
        let waiters = std::mem::take(waiters);
        let envelope = self
            .gateway
            .upstreams
            .get(&call.request.upstream)
            .and_then(|u| u.envelope.as_ref());
        let result: CallResult = Rc::new(interpret(
            &call.request,
            outcome,
            max_response_bytes,
            envelope,
        ));
        call.state = CallState::Done(result.clone());
        run.in_flight = run.in_flight.saturating_sub(1);
        for waiter in waiters {
            self.deliver(waiter, &result);
        }
        self.settle();
    }

    /// True once the reply is ready (nothing is, or will be, in flight).
    pub fn is_finished(&self) -> bool {
        self.run.is_none()
    }

    /// The reply, once finished. It is handed out once.
    pub fn reply(&mut self) -> Option<Reply> {
        self.reply.take()
    }

    /// Work that follows from what just happened: waiters of answered calls,
    /// batches gathered while merging, the next mutation field, the reply.
    fn settle(&mut self) {
        loop {
            let Some(run) = self.run.as_mut() else { return };
            if let Some((waiter, result)) = run.ready.pop_front() {
                self.deliver(waiter, &result);
                continue;
            }
            if !run.batches.is_empty() {
                self.flush_batches();
                continue;
            }
            if run.outbox.is_empty() && run.in_flight == 0 {
                if let Some((key, fields)) = run.serial_roots.pop_front() {
                    self.plan_fields(0, vec![(key, fields)]);
                    continue;
                }
                self.finish();
            }
            return;
        }
    }

    fn finish(&mut self) {
        if let Some(run) = self.run.take() {
            let mut reply = response::execution_reply(
                &self.gateway,
                &run.document,
                run.operation_name.as_deref(),
                &run.variables,
                &run.objects,
                &run.failures,
                self.media,
            );
            // Only a query answered without errors may be cached.
            let cacheable = reply.outcome == Outcome::Ok && !run.mutation;
            let value = run.cache.header(cacheable);
            if value != "no-store" {
                // The media type follows the client's Accept.
                reply.headers.push(("vary".into(), "accept".into()));
            }
            reply.headers.push(("cache-control".into(), value));
            self.reply = Some(reply);
        }
    }

    fn plan_root(&mut self) {
        let Some(run) = self.run.as_mut() else { return };
        let document = run.document.clone();
        let Ok(operation) = document.operations.get(run.operation_name.as_deref()) else {
            return;
        };
        // Collected once, in `prepare`, where the limits needed them.
        let grouped = std::mem::take(&mut run.roots);
        if operation.operation_type == OperationType::Mutation {
            run.serial_roots = grouped.into_iter().collect();
        } else {
            self.plan_fields(0, grouped.into_iter().collect());
        }
    }

    /// Plan the selected fields of an object: calls for mapped fields, and
    /// the nested objects of the others.
    fn plan_fields(&mut self, object: ObjectId, grouped: Vec<(Name, Vec<Node<Field>>)>) {
        let gateway = self.gateway.clone();
        let Some(run) = self.run.as_mut() else { return };
        let Some(entry) = run.objects.get(object) else {
            return;
        };
        let type_name = entry.type_name.clone();
        let source = entry.source.clone();
        let Some(object_type) = gateway.schema.get_object(&type_name) else {
            return;
        };
        for (key, fields) in grouped {
            let Some(first) = fields.first() else {
                continue;
            };
            let Some(definition) = object_type.fields.get(&first.name) else {
                continue; // __typename and introspection: answered when the reply is built
            };
            if let Some((resolver, _)) = gateway.resolvers.find(&type_name, &first.name) {
                let Some(run) = self.run.as_mut() else { return };
                let args = argument_values(&gateway.schema, definition, first, &run.variables);
                if let Some(entry) = run.objects.get_mut(object) {
                    entry.fields.insert(key.clone(), Fetched::Pending);
                }
                let waiter = Waiter {
                    object,
                    key,
                    ty: definition.ty.clone(),
                    fields,
                    resolver,
                    batch_key: None,
                };
                self.plan_call(waiter, &args, &source);
            } else if !is_leaf(&gateway, definition.ty.inner_named_type()) {
                let value = read_parent(&gateway, &type_name, &first.name, &source);
                let fetched = self.complete(&definition.ty, &value, &fields);
                self.set_field(object, key, fetched);
            }
        }
    }

    fn set_field(&mut self, object: ObjectId, key: Name, fetched: Fetched) {
        if let Some(entry) = self.run.as_mut().and_then(|r| r.objects.get_mut(object)) {
            entry.fields.insert(key, fetched);
        }
    }

    fn fail_field(&mut self, object: ObjectId, key: Name, failure: FieldFailure) {
        let index = self.record(failure);
        self.set_field(object, key, Fetched::Error(index));
    }

    fn record(&mut self, failure: FieldFailure) -> usize {
        match self.run.as_mut() {
            Some(run) => {
                run.failures.push(failure);
                run.failures.len() - 1
            }
            None => 0,
        }
    }

    /// Render the call a field needs and queue it (or join an identical one).
    fn plan_call(&mut self, mut waiter: Waiter, args: &JsonMap, parent: &JsonMap) {
        let gateway = self.gateway.clone();
        let Some(resolver) = gateway.resolvers.get(waiter.resolver) else {
            return;
        };
        let Some(upstream) = gateway.upstreams.get(&resolver.upstream) else {
            return;
        };
        let values = Values { args, parent };
        let path = match resolver.path.render(&values) {
            Ok(path) => path,
            Err(e) => {
                let failure = FieldFailure::new(
                    format!("cannot build the request to {}: {e}", upstream.name),
                    "INVALID_FUNCTION_REQUEST",
                );
                return self.fail_field(waiter.object, waiter.key, failure);
            }
        };
        let Some(run) = self.run.as_mut() else { return };
        let mut headers = forwarded_headers(upstream, &run.client_headers);
        for header in &resolver.headers {
            match header.render(&values) {
                Ok(Some(value)) => set_header(&mut headers, &header.name, &value),
                Ok(None) => {}
                Err(e) => {
                    let failure = FieldFailure::new(
                        format!("cannot build the request to {}: {e}", upstream.name),
                        "INVALID_FUNCTION_REQUEST",
                    );
                    return self.fail_field(waiter.object, waiter.key, failure);
                }
            }
        }
        let request = UpstreamRequest {
            target: upstream.target.clone(),
            upstream: upstream.name.clone(),
            method: resolver.method.clone(),
            path: format!("{}{path}", upstream.path_prefix),
            authority: upstream.authority.clone(),
            headers,
            body: resolver.body.as_ref().map(|b| b.render(&values)),
            timeout_ms: u64::try_from(upstream.timeout.as_millis()).unwrap_or(u64::MAX),
            deadline_header: None,
        };
        if let Some(batch) = &resolver.batch {
            let key = lookup(parent, &batch.key).and_then(key_text);
            match key {
                Some(key) => {
                    // Parents whose calls would be identical but for their
                    // keys share one batch (the request is its template).
                    waiter.batch_key = Some(key);
                    run.batches
                        .entry((waiter.resolver, request))
                        .or_default()
                        .push(waiter);
                }
                None => {
                    let (object, key) = (waiter.object, waiter.key);
                    self.set_field(object, key, Fetched::Leaf(JsonValue::Null));
                }
            }
            return;
        }
        self.enqueue(request, waiter);
    }

    /// Queue a call for `waiter`, or join an identical one. A call beyond
    /// `max_calls` is not made: the field fails with `LIMIT_EXCEEDED`.
    fn enqueue(&mut self, request: UpstreamRequest, waiter: Waiter) {
        let max_calls = self.gateway.limits.max_calls;
        let Some(run) = self.run.as_mut() else { return };
        if let Some(&id) = run.by_request.get(&request) {
            if let Some(call) = run.calls.get_mut(id) {
                match &mut call.state {
                    CallState::Queued(waiters) | CallState::InFlight(waiters) => {
                        waiters.push(waiter)
                    }
                    CallState::Done(result) => run.ready.push_back((waiter, result.clone())),
                }
                return;
            }
        }
        let id = run.calls.len();
        if id >= max_calls {
            let exceeded = limits::LimitExceeded {
                limit: "max_calls",
                max: max_calls,
                actual: id + 1,
            };
            let failure = FieldFailure {
                message: exceeded.to_string(),
                extensions: exceeded.extensions(),
            };
            return self.fail_field(waiter.object, waiter.key, failure);
        }
        run.by_request.insert(request.clone(), id);
        run.calls.push(Call {
            request,
            state: CallState::Queued(vec![waiter]),
        });
        run.outbox.push(id);
    }

    /// Turn the batches gathered while merging into one call each.
    fn flush_batches(&mut self) {
        let gateway = self.gateway.clone();
        let max_batch = gateway.limits.max_batch_size.max(1);
        let Some(run) = self.run.as_mut() else { return };
        let batches = std::mem::take(&mut run.batches);
        for ((resolver_id, template), waiters) in batches {
            let Some(batch) = gateway
                .resolvers
                .get(resolver_id)
                .and_then(|r| r.batch.as_ref())
            else {
                for waiter in waiters {
                    let failure = FieldFailure::new(
                        "internal error: a batched field lost its batch form".into(),
                        "INTERNAL_ERROR",
                    );
                    self.fail_field(waiter.object, waiter.key, failure);
                }
                continue;
            };
            // Distinct keys in order of first appearance, and the chunk
            // (at most `max_batch_size` keys, one call each) of every key.
            let mut chunk_of: HashMap<&str, usize> = HashMap::new();
            let mut chunks: Vec<Vec<String>> = Vec::new();
            for key in waiters.iter().filter_map(|w| w.batch_key.as_deref()) {
                if chunk_of.contains_key(key) {
                    continue;
                }
                if chunks.last().is_none_or(|c| c.len() >= max_batch) {
                    chunks.push(Vec::new());
                }
                let index = chunks.len() - 1;
                if let Some(chunk) = chunks.get_mut(index) {
                    chunk.push(encode_component(key));
                }
                chunk_of.insert(key, index);
            }
            let separator = encode_component(&batch.separator).replace("%2C", ",");
            let requests: Vec<UpstreamRequest> = chunks
                .iter()
                .map(|encoded| UpstreamRequest {
                    path: append_query(&template.path, &batch.param, &encoded.join(&separator)),
                    ..template.clone()
                })
                .collect();
            let targets: Vec<Option<usize>> = waiters
                .iter()
                .map(|w| {
                    w.batch_key
                        .as_deref()
                        .and_then(|k| chunk_of.get(k).copied())
                })
                .collect();
            for (waiter, target) in waiters.into_iter().zip(targets) {
                if let Some(request) = target.and_then(|i| requests.get(i)) {
                    self.enqueue(request.clone(), waiter);
                }
            }
        }
    }

    /// Merge a call's result into the field that waited for it.
    fn deliver(&mut self, waiter: Waiter, result: &CallResult) {
        let value = match result.as_ref() {
            Err(failure) => return self.fail_field(waiter.object, waiter.key, failure.clone()),
            Ok(value) => value,
        };
        let first_new = self.run.as_ref().map_or(0, |r| r.failures.len());
        // The field's `select` path into the (unwrapped) answer.
        let gateway = self.gateway.clone();
        let resolver = gateway.resolvers.get(waiter.resolver);
        let select = resolver.map_or(&[][..], |r| r.select.as_slice());
        let value = if select.is_empty() || value.is_null() {
            value
        } else {
            match value.as_object().and_then(|o| lookup(o, select)) {
                Some(inner) => inner,
                None => {
                    let failure = FieldFailure::new(
                        format!("the function's answer has no `{}`", select.join(".")),
                        "UPSTREAM_BAD_RESPONSE",
                    );
                    let failure = match resolver {
                        Some(r) => failure.with_upstream(&r.upstream),
                        None => failure,
                    };
                    return self.fail_field(waiter.object, waiter.key, failure);
                }
            }
        };
        let selected = match &waiter.batch_key {
            None => Ok(None),
            Some(key) => self.select_batch_item(&waiter, key, value).map(Some),
        };
        let fetched = match selected {
            Ok(None) => self.complete(&waiter.ty, value, &waiter.fields),
            Ok(Some(item)) => self.complete(&waiter.ty, &item, &waiter.fields),
            Err(failure) => Fetched::Error(self.record(failure)),
        };
        // Shape errors found in this answer name the function that gave it.
        let upstream = self
            .gateway
            .resolvers
            .get(waiter.resolver)
            .map(|r| r.upstream.clone());
        if let (Some(run), Some(upstream)) = (self.run.as_mut(), upstream) {
            for failure in run.failures.iter_mut().skip(first_new) {
                let code = failure.extensions.get("code").and_then(|c| c.as_str());
                let about_the_answer = code
                    .is_some_and(|c| c.starts_with("UPSTREAM_") || c == "ABSTRACT_TYPE_UNRESOLVED");
                if about_the_answer && !failure.extensions.contains_key("upstream") {
                    failure
                        .extensions
                        .insert("upstream", JsonValue::from(upstream.as_str()));
                }
            }
        }
        self.set_field(waiter.object, waiter.key, fetched);
    }

    /// A parent's share of a batched answer, matched by key, never by
    /// position. A missing key gives null.
    fn select_batch_item(
        &self,
        waiter: &Waiter,
        key: &str,
        answer: &JsonValue,
    ) -> Result<JsonValue, FieldFailure> {
        let batch = self
            .gateway
            .resolvers
            .get(waiter.resolver)
            .and_then(|r| r.batch.as_ref());
        let Some(batch) = batch else {
            return Ok(JsonValue::Null);
        };
        match (&batch.item_key, answer) {
            (None, JsonValue::Object(map)) => map.get(key).cloned().ok_or_else(|| {
                FieldFailure::new(
                    format!("the batched answer has no entry for key {key:?}"),
                    "UPSTREAM_BAD_RESPONSE",
                )
            }),
            (Some(item_key), JsonValue::Array(items)) => {
                let mut matching = items
                    .iter()
                    .filter(|item| {
                        item.as_object()
                            .and_then(|o| lookup(o, item_key))
                            .and_then(key_text)
                            .is_some_and(|k| k == key)
                    })
                    .cloned();
                if waiter.ty.is_list() {
                    Ok(JsonValue::Array(matching.collect()))
                } else {
                    Ok(matching.next().unwrap_or(JsonValue::Null))
                }
            }
            (None, _) => Err(FieldFailure::bad_response(
                "an object keyed by the batch keys",
            )),
            (Some(_), _) => Err(FieldFailure::bad_response(
                "a list of items carrying the batch key",
            )),
        }
    }

    /// The spec's `CompleteValue()`, minus coercion and null propagation
    /// (done when the reply is built): walk a function's JSON along the
    /// field's type, creating objects and planning their fields.
    fn complete(&mut self, ty: &Type, value: &JsonValue, fields: &[Node<Field>]) -> Fetched {
        if value.is_null() {
            return Fetched::Leaf(JsonValue::Null);
        }
        match ty {
            Type::List(inner) | Type::NonNullList(inner) => match value {
                JsonValue::Array(items) => Fetched::List(
                    items
                        .iter()
                        .map(|item| self.complete(inner, item, fields))
                        .collect(),
                ),
                _ => Fetched::Error(self.record(FieldFailure::bad_response("a list"))),
            },
            Type::Named(name) | Type::NonNullNamed(name) => {
                if is_leaf(&self.gateway, name) {
                    return Fetched::Leaf(value.clone());
                }
                let JsonValue::Object(map) = value else {
                    return Fetched::Error(self.record(FieldFailure::bad_response("an object")));
                };
                let gateway = &self.gateway;
                let type_name =
                    match concrete_type(&gateway.schema, &gateway.discriminators, name, map) {
                        Ok(t) => t,
                        Err(failure) => return Fetched::Error(self.record(failure)),
                    };
                let Some(run) = self.run.as_mut() else {
                    return Fetched::Leaf(JsonValue::Null);
                };
                let id = run.objects.len();
                run.objects.push(ObjectEntry {
                    type_name: type_name.clone(),
                    source: Rc::new(map.clone()),
                    fields: HashMap::new(),
                });
                let document = run.document.clone();
                let Some(object_type) = self.gateway.schema.get_object(&type_name) else {
                    return Fetched::Object(id);
                };
                let selections: Vec<&Selection> = sub_selections(fields).collect();
                let grouped = collect_fields(
                    &self.gateway.schema,
                    &document,
                    &run.variables,
                    object_type,
                    selections,
                );
                self.plan_fields(id, grouped.into_iter().collect());
                Fetched::Object(id)
            }
        }
    }
}

fn is_leaf(gateway: &Gateway, name: &Name) -> bool {
    gateway.schema.types.get(name).is_none_or(|t| t.is_leaf())
}

/// A field read from its parent's JSON: under its own name, or where its
/// `@from` path says.
pub fn read_parent(
    gateway: &Gateway,
    type_name: &Name,
    field: &Name,
    source: &JsonMap,
) -> JsonValue {
    let found = match gateway.renames.get(&(type_name.clone(), field.clone())) {
        Some(path) => lookup(source, path),
        None => source.get(field.as_str()),
    };
    found.cloned().unwrap_or(JsonValue::Null)
}

/// A key value as text, for batching and matching (`1` and `"1"` match).
fn key_text(value: &JsonValue) -> Option<String> {
    match value {
        JsonValue::String(s) => Some(s.as_str().to_string()),
        JsonValue::Number(n) => Some(n.to_string()),
        JsonValue::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The client headers an upstream forwards (its allowlist), values with a
/// line break dropped.
/// The headers a call to `upstream` carries besides its templated ones: the
/// client's request id (always), the client headers the upstream forwards
/// (as they are, or under a new name), and the upstream's constant headers.
/// Client values with a line break are dropped.
fn forwarded_headers(
    upstream: &crate::upstream::Upstream,
    client: &[(String, String)],
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in client.iter().filter(|(_, v)| is_safe_header_value(v)) {
        if name == REQUEST_ID_HEADER || upstream.forward_headers.iter().any(|f| f == name) {
            set_header(&mut headers, name, value);
        }
    }
    for (name, value) in client.iter().filter(|(_, v)| is_safe_header_value(v)) {
        for (from, to) in &upstream.rename_headers {
            if from == name {
                set_header(&mut headers, to, value);
            }
        }
    }
    for (name, value) in &upstream.headers {
        set_header(&mut headers, name, value);
    }
    headers
}

/// Sets a header, replacing any earlier value of the same name: later
/// sources win (forwarded < renamed < constant < templated), so a client
/// can never override what the configuration sets.
fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(n, _)| n != name);
    headers.push((name.to_string(), value.to_string()));
}

/// A function's answer unwrapped from its upstream's envelope: the data on
/// a success code, `UPSTREAM_ERROR` with the function's code and message
/// otherwise.
fn unwrap_envelope(
    upstream: &str,
    envelope: &Envelope,
    answer: JsonValue,
) -> Result<JsonValue, FieldFailure> {
    let JsonValue::Object(object) = &answer else {
        return Err(FieldFailure::new(
            format!("function {upstream} answered without its envelope (not an object)"),
            "UPSTREAM_BAD_RESPONSE",
        )
        .with_upstream(upstream));
    };
    let Some(code) = lookup(object, &envelope.code) else {
        return Err(FieldFailure::new(
            format!(
                "function {upstream} answered without its envelope's `{}`",
                envelope.code.join(".")
            ),
            "UPSTREAM_BAD_RESPONSE",
        )
        .with_upstream(upstream));
    };
    if envelope.success.contains(code) {
        return Ok(match &envelope.data {
            Some(path) => lookup(object, path).cloned().unwrap_or(JsonValue::Null),
            // The whole answer is the data: hand it on without a copy.
            None => answer,
        });
    }
    let message = envelope
        .message
        .as_ref()
        .and_then(|path| lookup(object, path))
        .cloned()
        .unwrap_or(JsonValue::Null);
    let text = match &message {
        JsonValue::String(m) => m.as_str().to_string(),
        JsonValue::Null => "no message".to_string(),
        other => other.to_string(),
    };
    Err(FieldFailure::new(
        format!("function {upstream} answered with error code {code}: {text}"),
        "UPSTREAM_ERROR",
    )
    .with_upstream(upstream)
    .with("functionCode", code.clone())
    .with("functionMessage", message))
}

/// A call's outcome as a JSON value or a field failure.
fn interpret(
    request: &UpstreamRequest,
    outcome: CallOutcome,
    max_response_bytes: usize,
    envelope: Option<&Envelope>,
) -> Result<JsonValue, FieldFailure> {
    let upstream = request.upstream.as_str();
    let outcome = match outcome {
        CallOutcome::Response { status, body } => match gateway_failure(status, &body) {
            Some(failure) => CallOutcome::Failed(failure),
            None if body.len() > max_response_bytes => {
                CallOutcome::Failed(CallFailure::TooLarge(body.len()))
            }
            None => CallOutcome::Response { status, body },
        },
        failed => failed,
    };
    match outcome {
        CallOutcome::Response { status, body } if (200..300).contains(&status) => {
            let answer: JsonValue = serde_json::from_slice(&body).map_err(|e| {
                FieldFailure::new(
                    format!("function {upstream} answered with a body that is not JSON ({e})"),
                    "UPSTREAM_BAD_RESPONSE",
                )
                .with_upstream(upstream)
            })?;
            match envelope {
                Some(envelope) => unwrap_envelope(upstream, envelope, answer),
                None => Ok(answer),
            }
        }
        CallOutcome::Response { status, .. } => Err(FieldFailure::new(
            format!("function {upstream} answered HTTP {status}"),
            "UPSTREAM_HTTP_ERROR",
        )
        .with_upstream(upstream)
        .with("status", JsonValue::from(status))),
        CallOutcome::Failed(CallFailure::Timeout) => Err(FieldFailure::new(
            format!("function {upstream} did not answer in time"),
            "UPSTREAM_TIMEOUT",
        )
        .with_upstream(upstream)),
        CallOutcome::Failed(CallFailure::TooLarge(size)) => Err(FieldFailure::new(
            format!(
                "function {upstream} answered {size} bytes, more than `limits.max_response_bytes` ({max_response_bytes})"
            ),
            "UPSTREAM_RESPONSE_TOO_LARGE",
        )
        .with_upstream(upstream)),
        CallOutcome::Failed(CallFailure::Unavailable(reason) | CallFailure::Rejected(reason)) => {
            Err(FieldFailure::new(
                format!("function {upstream} is unavailable: {reason}"),
                "UPSTREAM_UNAVAILABLE",
            )
            .with_upstream(upstream))
        }
    }
}
