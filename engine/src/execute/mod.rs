//! Execution of one GraphQL request: which function calls are in flight,
//! what their answers resolved, and what to call next.
//!
//! The engine is driven from outside, so that it runs the same under a
//! Proxy-Wasm host and in native tests:
//!
//! 1. [`Execution::start`] parses, validates and plans the request (or takes
//!    its plan from the cache);
//! 2. [`Execution::take_calls`] hands out the calls to dispatch now (every
//!    independent call at once);
//! 3. [`Execution::on_call_outcome`] takes a call's answer, parses it once,
//!    and walks it along the plan to find the calls its children need,
//!    which the next `take_calls` hands out at once;
//! 4. when nothing is left in flight, [`Execution::reply`] gives the reply,
//!    written in one pass by [`crate::reply`].
//!
//! The parts: [`calls`] (the call table: rendering, de-duplication,
//! scheduling), [`batch`] (calls a list of parents would multiply, made
//! once), [`merge`] (answers into the fetched data, and the walk that plans
//! the next wave) and [`interpret`] (a call's outcome as data or an error).

mod batch;
mod calls;
pub mod interpret;
mod merge;

use crate::cache_control::CachePolicy;
use crate::config::Gateway;
use crate::error::{ErrorCode, FieldError};
use crate::fetched::Fetched;
use crate::limits::{self, LimitExceeded};
use crate::persisted::{self, SharedStore};
use crate::plan::{self, Plan, PlanError};
use crate::plan_cache::{PlanCache, Prepared};
use crate::reply;
use crate::request::{self, HttpRequest, ResponseMedia};
use crate::response::{self, Outcome, Reply};
use crate::upstream::{CallOutcome, UpstreamRequest};
use apollo_compiler::executable::OperationType;
use apollo_compiler::parser::Parser;
use apollo_compiler::response::JsonMap;
use apollo_compiler::validation::Valid;
use apollo_compiler::ExecutableDocument;
use calls::Calls;
use std::sync::Arc;

/// Identifies one function call of a request.
pub type CallId = usize;

/// The id of a request's identity call (see [`crate::identity`]); field
/// calls count from 0.
pub const IDENTITY_CALL: CallId = CallId::MAX;

/// Where a request's identity step is.
#[derive(Debug)]
enum IdentityStep {
    /// The identity call, to dispatch at the next [`Execution::take_calls`].
    Ready(PendingCall),
    /// The identity call is in flight: no field call starts before it
    /// answers.
    InFlight,
}

/// A call the host should dispatch now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCall {
    /// Pass it back to [`Execution::on_call_outcome`].
    pub id: CallId,
    /// What to send.
    pub request: UpstreamRequest,
    /// Whether other requests may share this call's answer (join it in
    /// flight, keep it in the answer cache); `None` for calls that must
    /// run for this request alone (non-GET calls without `dedupe: true`,
    /// and every call of a mutation operation).
    pub shareable: Option<Shareable>,
}

/// A call other requests may share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shareable {
    /// The configured lifetime of its answer in the answer cache (the
    /// field's `@http(cache:)`, else its upstream's `cache`); `None`: as
    /// the answer's `cache-control` says.
    pub ttl_ms: Option<u64>,
}

/// Everything a running request holds.
#[derive(Debug)]
struct Run {
    plan: Arc<Plan>,
    variables: Valid<JsonMap>,
    fetched: Fetched,
    calls: Calls,
    /// Mutation root fields run one after another: the next one's index.
    next_serial: Option<usize>,
    /// The client's request headers (names lower case), for forwarding.
    client_headers: Vec<(String, String)>,
    /// The headers calls to each upstream carry (from the client's and
    /// the configuration's), computed once per upstream.
    base_headers: Vec<calls::BaseHeaders>,
    /// When the request's time is up, on the host's clock in milliseconds.
    deadline_at: u64,
    /// What the answers allow for the reply's `cache-control`.
    cache: CachePolicy,
    /// Objects and list items the reply will have at least (counted while
    /// children are planned).
    reply_objects: u64,
    /// A limit hit while executing: the request is answered with it alone.
    stopped: Option<LimitExceeded>,
    /// `limits.max_reply_objects`.
    max_reply_objects: usize,
    /// The identity step, while it runs.
    identity_step: Option<IdentityStep>,
    /// The request's identity, once known (none: no identity step, or an
    /// optional identity the client did not give).
    identity: Option<apollo_compiler::response::JsonValue>,
    /// The answer headers the reply takes (`response_headers`).
    answer_headers: crate::answer_headers::Gathered,
}

/// The execution of one GraphQL request.
#[derive(Debug)]
pub struct Execution {
    gateway: Arc<Gateway>,
    media: ResponseMedia,
    run: Option<Box<Run>>,
    reply: Option<Reply>,
    /// Answer header lines the reply left out.
    dropped_answer_headers: usize,
    /// What persisted queries did for this request.
    persisted: persisted::Report,
}

impl Execution {
    /// Parse, validate, check against the limits and plan a request, at
    /// `now_ms` on the host's clock (milliseconds; only differences matter).
    /// When the request is refused the execution is finished at once and
    /// [`Execution::reply`] has the error.
    pub fn start(gateway: Arc<Gateway>, http: &HttpRequest, now_ms: u64) -> Self {
        Self::start_cached(gateway, http, now_ms, None)
    }

    /// [`Execution::start`], taking the document and its plan from `cache`
    /// when this document was seen before (and remembering them otherwise).
    /// Persisted queries find documents in the manifest only: nothing is
    /// registered (see [`Execution::start_with_store`]).
    pub fn start_cached(
        gateway: Arc<Gateway>,
        http: &HttpRequest,
        now_ms: u64,
        cache: Option<&mut PlanCache>,
    ) -> Self {
        Self::start_with_store(gateway, http, now_ms, cache, None)
    }

    /// [`Execution::start_cached`], with the registry of automatic
    /// persisted queries in `store` (the host's shared data): a request
    /// naming its document by hash alone finds it there, and one sending
    /// the document with its hash registers it once it passed every check
    /// (see [`crate::persisted`]). The store is used only for those two.
    pub fn start_with_store(
        gateway: Arc<Gateway>,
        http: &HttpRequest,
        now_ms: u64,
        cache: Option<&mut PlanCache>,
        store: Option<&mut dyn SharedStore>,
    ) -> Self {
        let media = ResponseMedia::negotiate(http.header("accept"));
        if let Some(page) = gateway.graphiql.page_for(http) {
            return Execution {
                gateway,
                media,
                run: None,
                reply: Some(page),
                dropped_answer_headers: 0,
                persisted: persisted::Report::default(),
            };
        }
        let mut execution = Execution {
            gateway,
            media,
            run: None,
            reply: None,
            dropped_answer_headers: 0,
            persisted: persisted::Report::default(),
        };
        let mut report = persisted::Report::default();
        let prepared = execution.prepare(http, now_ms, cache, store, &mut report);
        execution.persisted = report;
        match prepared {
            Ok(run) => {
                execution.run = Some(Box::new(run));
                execution.begin();
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

    /// Starts a prepared request: its identity step first, when the
    /// configuration has one and the client sent a credential (a request
    /// without one is refused when the identity is required); else its
    /// first wave of calls.
    fn begin(&mut self) {
        let gateway = self.gateway.clone();
        let Some(run) = self.run.as_mut() else { return };
        let Some(identity) = &gateway.identity else {
            run.start(&gateway);
            return;
        };
        if identity.has_credential(&run.client_headers) {
            match run.identity_call(&gateway, identity) {
                Some(call) => run.identity_step = Some(IdentityStep::Ready(call)),
                None => self.refuse(&crate::identity::Refusal::Failed(
                    "the identity function is not configured".into(),
                )),
            }
        } else if identity.required {
            self.refuse(&crate::identity::Refusal::NoCredential(
                identity.credential_headers.clone(),
            ));
        } else {
            run.start(&gateway);
        }
    }

    /// Ends the request with a 401 (`UNAUTHENTICATED`): no other call is
    /// made, calls in flight are abandoned.
    fn refuse(&mut self, refusal: &crate::identity::Refusal) {
        let challenge = self
            .gateway
            .identity
            .as_ref()
            .map_or("Bearer", |i| i.challenge());
        let mut reply = crate::identity::unauthenticated(refusal, challenge, self.media);
        if let Some(mut run) = self.run.take() {
            // The identity function's own headers (e.g. a `set-cookie`
            // that clears a dead session) still reach the client.
            let gathered = std::mem::take(&mut run.answer_headers);
            self.dropped_answer_headers = gathered.dropped();
            reply.headers.extend(gathered.into_headers());
            Spare::keep(*run);
        }
        self.reply = Some(reply);
    }

    /// What persisted queries did for this request (hits, registrations,
    /// refusals), for the host's metrics.
    pub fn persisted(&self) -> &persisted::Report {
        &self.persisted
    }

    fn prepare(
        &self,
        http: &HttpRequest,
        now_ms: u64,
        cache: Option<&mut PlanCache>,
        mut store: Option<&mut dyn SharedStore>,
        report: &mut persisted::Report,
    ) -> Result<Run, Reply> {
        let media = self.media;
        let gateway = &self.gateway;
        let limits = &gateway.limits;
        limits::check("max_body_bytes", limits.max_body_bytes, http.body.len())
            .map_err(|e| response::limit_exceeded(&e, 413, media))?;
        let request::GraphQLRequest {
            query: sent,
            persisted: hash,
            operation_name,
            variables: raw_variables,
            read_only,
        } = request::parse(http).map_err(|e| response::request_error(&e, media))?;
        // A document sent in full is measured before it is hashed.
        let check_size = |query: &str| {
            limits::check("max_query_bytes", limits.max_query_bytes, query.len())
                .map_err(|e| response::limit_exceeded(&e, 400, media))
        };
        if let Some(sent) = &sent {
            check_size(sent)?;
        }
        let resolved = persisted::resolve(
            &gateway.persisted_queries,
            sent,
            hash,
            store.as_mut().map(|s| &mut **s as &mut dyn SharedStore),
            limits.max_query_bytes,
        )
        .map_err(|refusal| {
            let reply = response::persisted_refusal(&refusal, media);
            report.refusal = Some(refusal);
            reply
        })?;
        report.source = Some(resolved.source);
        let query = resolved.query;
        check_size(&query)?;
        let operation_name = operation_name.as_deref();
        let key = PlanCache::key(&query, operation_name);
        let mut cache = cache;
        if let Some(cache) = cache.as_deref_mut() {
            cache.set_max_bytes(limits.max_plan_cache_bytes);
        }
        let hit = cache
            .as_deref_mut()
            .is_some_and(|c| c.get(key, &query, operation_name).is_some());
        // A document not cached yet is kept only once this request has
        // been planned and passed every check: a document refused by a
        // limit is never cached.
        let mut fresh = None;
        if !hit {
            let (document, tokens) = self.compile(&query)?;
            let document = Arc::new(document);
            self.check_document(&document, operation_name)?;
            let conditions = plan::condition_variables(&document);
            fresh = Some(Prepared::new(document, conditions, tokens));
        }
        let prepared = match cache
            .as_deref_mut()
            .filter(|_| hit)
            .and_then(|c| c.peek(key, &query, operation_name))
        {
            Some(prepared) => prepared,
            None => match fresh.as_mut() {
                Some(prepared) => prepared,
                // Found a moment ago and gone: cannot happen, but compile
                // again rather than fail.
                None => {
                    let (document, tokens) = self.compile(&query)?;
                    let document = Arc::new(document);
                    self.check_document(&document, operation_name)?;
                    let conditions = plan::condition_variables(&document);
                    fresh.insert(Prepared::new(document, conditions, tokens))
                }
            },
        };
        let document = prepared.document.clone();
        let operation = document.operations.get(operation_name).map_err(|e| {
            request_failure(
                ErrorCode::OperationResolutionFailure,
                e.message().to_string(),
                media,
            )
        })?;
        match operation.operation_type {
            OperationType::Subscription => {
                return Err(request_failure(
                    ErrorCode::SubscriptionNotSupported,
                    "subscriptions are not supported: this gateway answers queries and mutations"
                        .into(),
                    media,
                ))
            }
            OperationType::Mutation if read_only => return Err(response::mutation_over_get(media)),
            _ => {}
        }
        let variables = apollo_compiler::request::coerce_variable_values(
            &gateway.schema,
            operation,
            &raw_variables,
        )
        .map_err(|e| request_failure(ErrorCode::BadUserInput, e.message().to_string(), media))?;
        // Up to 32 condition variables key a plan; with more, the plan is
        // compiled for each request and not kept.
        let cacheable = prepared.conditions.len() <= 32;
        let mut new_plan = None;
        let mask = condition_mask(&prepared.conditions, &variables);
        let plan = match prepared.plan(mask).filter(|_| cacheable) {
            Some(plan) => plan,
            None => {
                let plan = plan::compile(gateway, &document, operation, &variables)
                    .map(Arc::new)
                    .map_err(|e| match e {
                        PlanError::Limit(exceeded) => {
                            response::limit_exceeded(&exceeded, 400, media)
                        }
                        PlanError::NoOperation(message) => {
                            request_failure(ErrorCode::OperationResolutionFailure, message, media)
                        }
                    })?;
                self.check_plan(&plan)?;
                if cacheable {
                    new_plan = Some((mask, plan.clone()));
                }
                plan
            }
        };
        self.check_plan(&plan)?;
        if let Some(cache) = cache {
            if let Some(prepared) = fresh {
                // Kept unless the cache keeps nothing or it is too large.
                let _ = cache.insert(key, &query, operation_name, prepared);
            }
            if let Some((mask, plan)) = new_plan {
                cache.add_plan(key, &query, operation_name, mask, plan);
            }
        }
        // Registered only now that it passed every check: a document a
        // limit or the schema refuses never takes a slot, nor one of a
        // client the identity step refuses for want of a credential.
        let refused_anyway = gateway
            .identity
            .as_ref()
            .is_some_and(|i| i.required && !i.has_credential(&http.headers));
        if let (Some(hash), Some(store), false) = (resolved.register, store, refused_anyway) {
            report.registered = persisted::register(
                store,
                &hash,
                &query,
                gateway.persisted_queries.max_registered,
                limits.max_query_bytes,
            );
        }
        let deadline_ms = u64::try_from(gateway.deadline.as_millis()).unwrap_or(u64::MAX);
        let spare = Spare::take();
        Ok(Run {
            next_serial: plan.mutation.then_some(0),
            plan,
            variables,
            fetched: spare.fetched,
            calls: spare.calls,
            client_headers: http
                .headers
                .iter()
                .filter(|(name, _)| gateway.forwarded_names.contains(name))
                .cloned()
                .collect(),
            base_headers: spare.base_headers,
            deadline_at: now_ms.saturating_add(deadline_ms),
            cache: CachePolicy::default(),
            reply_objects: 0,
            stopped: None,
            max_reply_objects: limits.max_reply_objects,
            identity_step: None,
            identity: None,
            answer_headers: crate::answer_headers::Gathered::default(),
        })
    }

    /// Depth, aliases and planned calls: properties of the document.
    fn check_document(
        &self,
        document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
    ) -> Result<(), Reply> {
        let Ok(operation) = document.operations.get(operation_name) else {
            return Ok(()); // answered as an operation resolution failure
        };
        let gateway = &self.gateway;
        limits::check_operation(&gateway.limits, &gateway.resolvers, document, operation)
            .map_err(|e| response::limit_exceeded(&e, 400, self.media))?;
        if operation.operation_type == OperationType::Query {
            // The introspection schema is recursive: apollo-compiler's own
            // guard against documents that would grow exponentially.
            apollo_compiler::introspection::check_max_depth(document, operation).map_err(|e| {
                request_failure(
                    ErrorCode::LimitExceeded,
                    e.message().to_string(),
                    self.media,
                )
            })?;
        }
        Ok(())
    }

    /// Root fields and introspection: properties of a plan.
    fn check_plan(&self, plan: &Plan) -> Result<(), Reply> {
        let gateway = &self.gateway;
        limits::check(
            "max_root_fields",
            gateway.limits.max_root_fields,
            plan.root_fields,
        )
        .map_err(|e| response::limit_exceeded(&e, 400, self.media))?;
        if plan.introspection && !gateway.introspection {
            return Err(request_failure(
                ErrorCode::IntrospectionDisabled,
                "introspection is disabled on this gateway (`\"introspection\": false` in its configuration); `__typename` still works".into(),
                self.media,
            ));
        }
        Ok(())
    }

    /// Parse (within the token and depth limits) and validate a document;
    /// with the lexical tokens it has (which its size in memory follows).
    fn compile(&self, query: &str) -> Result<(Valid<ExecutableDocument>, usize), Reply> {
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
                Some(LimitExceeded {
                    limit: "max_query_tokens",
                    max: limits.max_query_tokens,
                    actual: parser.tokens_reached(),
                    at: None,
                })
            } else if hit("recursion limit reached") {
                Some(LimitExceeded {
                    limit: "max_depth",
                    max: limits.max_depth,
                    actual: parser.recursion_reached(),
                    at: None,
                })
            } else {
                None
            };
            match exceeded {
                Some(exceeded) => response::limit_exceeded(&exceeded, 400, media),
                None => response::document_errors(&e.errors, ErrorCode::GraphqlParseFailed, media),
            }
        })?;
        let tokens = parser.tokens_reached();
        ast.to_executable_validate(schema)
            .map(|document| (document, tokens))
            .map_err(|e| {
                response::document_errors(&e.errors, ErrorCode::GraphqlValidationFailed, media)
            })
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
        // The identity call leaves alone; nothing else before its answer.
        if let Some(step) = run.identity_step.as_mut() {
            return match std::mem::replace(step, IdentityStep::InFlight) {
                IdentityStep::Ready(mut call) => {
                    call.request.timeout_ms = call.request.timeout_ms.min(remaining).max(1);
                    call.request.deadline_header = Some(crate::upstream::Digits::of(remaining));
                    vec![call]
                }
                IdentityStep::InFlight => Vec::new(),
            };
        }
        run.calls.take(max_concurrent, remaining)
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
        if run.identity_step.is_some() {
            self.refuse(&crate::identity::Refusal::Failed(format!(
                "the identity function did not answer within the request's deadline ({} ms)",
                self.gateway.deadline.as_millis()
            )));
            return true;
        }
        run.expire(&self.gateway);
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
    /// takes into account; a host adds `private` for an answer with `Vary`
    /// and `age=N` for its `Age` (see [`crate::cache_control`]). Returns
    /// whether the answer was taken as the function's data (a failure, an
    /// HTTP error or an envelope's error is not): only such answers may be
    /// kept for other requests.
    pub fn on_call_answer(
        &mut self,
        id: CallId,
        outcome: CallOutcome,
        cache_control: Option<&str>,
        now_ms: u64,
    ) -> bool {
        self.on_call_answer_with_headers(id, outcome, cache_control, &[], now_ms)
    }

    /// [`Execution::on_call_answer`], with the answer's headers (names
    /// lower case, as the host gives them): those its upstream's
    /// `response_headers` name reach the reply. Pass none for an answer
    /// this request did not get from its own call (one from the answer
    /// cache, or from another request's call it joined): a header is
    /// never handed from one client to another.
    pub fn on_call_answer_with_headers(
        &mut self,
        id: CallId,
        outcome: CallOutcome,
        cache_control: Option<&str>,
        headers: &[(String, String)],
        now_ms: u64,
    ) -> bool {
        if id == IDENTITY_CALL {
            return self.on_identity_answer(outcome, headers, now_ms);
        }
        let mut is_data = false;
        if let Some(run) = self.run.as_mut() {
            if run.calls.is_in_flight(id) {
                run.cache.add(cache_control);
                run.take_answer_headers(&self.gateway, id, headers);
                is_data = run.answer(&self.gateway, id, outcome);
            }
        }
        self.settle();
        self.expire_if_late(now_ms);
        is_data
    }

    /// The identity call answered: the request goes on with its identity,
    /// or is refused. Returns whether the answer was an identity (only
    /// such answers may be kept for other requests with the same
    /// credential).
    fn on_identity_answer(
        &mut self,
        outcome: CallOutcome,
        headers: &[(String, String)],
        now_ms: u64,
    ) -> bool {
        let gateway = self.gateway.clone();
        let Some(run) = self.run.as_mut() else {
            return false;
        };
        if !matches!(run.identity_step, Some(IdentityStep::InFlight)) {
            return false;
        }
        let (Some(identity), Some(upstream)) = (
            gateway.identity.as_ref(),
            gateway
                .identity
                .as_ref()
                .and_then(|i| gateway.upstreams.get(&i.upstream)),
        ) else {
            return false;
        };
        run.identity_step = None;
        run.answer_headers.take(&upstream.response_headers, headers);
        match identity.resolve(upstream, outcome, gateway.limits.max_response_bytes) {
            Ok(value) => {
                run.identity = Some(value);
                // What the functions answer now is this user's.
                run.cache.personal();
                run.start(&gateway);
                self.settle();
                self.expire_if_late(now_ms);
                true
            }
            Err(refusal) => {
                self.refuse(&refusal);
                false
            }
        }
    }

    /// Whether the request still runs at `now_ms` past its deadline: the
    /// host's next [`Execution::take_calls`] answers it. A host whose own
    /// timers may not fire (Kong restarts a call's read timeout on every
    /// byte) asks this from a timer of its own.
    pub fn is_past_deadline(&self, now_ms: u64) -> bool {
        self.run
            .as_ref()
            .is_some_and(|run| now_ms >= run.deadline_at)
    }

    /// True once the reply is ready (nothing is, or will be, in flight).
    pub fn is_finished(&self) -> bool {
        self.run.is_none()
    }

    /// The reply, once finished. It is handed out once. It names the
    /// configuration's version when `config_source.version_header` asks.
    pub fn reply(&mut self) -> Option<Reply> {
        let mut reply = self.reply.take()?;
        if let Some(header) = &self.gateway.version_header {
            reply
                .headers
                .push((header.clone().into(), self.gateway.version.clone().into()));
        }
        Some(reply)
    }

    /// Answer header lines the reply left out (a reply takes at most
    /// [`crate::answer_headers::MAX_LINES`] lines and
    /// [`crate::answer_headers::MAX_BYTES`] bytes from answers), for the
    /// host's metrics; known once finished.
    pub fn dropped_answer_headers(&self) -> usize {
        self.dropped_answer_headers
    }

    /// Work that follows from what just happened; the reply when nothing is
    /// left to do.
    fn settle(&mut self) {
        let Some(run) = self.run.as_mut() else { return };
        if run.settle(&self.gateway) {
            self.finish();
        }
    }

    fn finish(&mut self) {
        let Some(mut run) = self.run.take() else {
            return;
        };
        let gateway = &self.gateway;
        let media = self.media;
        if let Some(exceeded) = run.stopped.take() {
            let mut reply = response::limit_exceeded(&exceeded, 400, media);
            reply
                .headers
                .push(("cache-control".into(), "no-store".into()));
            self.reply = Some(reply);
            return;
        }
        let plan = run.plan.clone();
        if plan.introspection {
            if let Ok(operation) = plan.document.operations.get(plan.operation_name.as_deref()) {
                let introspected = apollo_compiler::introspection::partial_execute(
                    &gateway.schema,
                    &gateway.implementers,
                    &plan.document,
                    operation,
                    &run.variables,
                );
                if let Ok(response) = introspected {
                    run.fetched.introspection = response.data;
                    run.fetched.introspection_errors = response.errors;
                }
            }
        }
        let mut reply = match reply::write(gateway, &plan, &run.fetched) {
            Ok(written) => Reply {
                status: 200,
                headers: {
                    // content-type, vary and cache-control.
                    let mut headers = Vec::with_capacity(3);
                    headers.push(("content-type".into(), media.content_type().into()));
                    headers
                },
                body: written.body,
                outcome: if written.errors == 0 {
                    Outcome::Ok
                } else {
                    Outcome::Partial
                },
            },
            Err(exceeded) => response::limit_exceeded(&exceeded, 400, media),
        };
        // Headers from the functions' answers; a cookie is never kept by
        // a cache, and other headers of this client's calls by no shared
        // one.
        let gathered = std::mem::take(&mut run.answer_headers);
        let sets_cookie = gathered.sets_cookie();
        if !gathered.is_empty() {
            run.cache.personal();
        }
        self.dropped_answer_headers = gathered.dropped();
        reply.headers.extend(gathered.into_headers());
        // Only a query answered without errors may be cached.
        let cacheable = reply.outcome == Outcome::Ok && !plan.mutation && !sets_cookie;
        let value = run.cache.header(cacheable);
        if value != "no-store" {
            // The media type follows the client's Accept, the data the
            // client headers the calls may carry.
            let vary = match gateway.vary.as_str() {
                "accept" => "accept".into(),
                other => other.to_string().into(),
            };
            reply.headers.push(("vary".into(), vary));
        }
        reply.headers.push(("cache-control".into(), value));
        self.reply = Some(reply);
        Spare::keep(*run);
    }
}

/// The containers of a finished request, emptied and kept for the next one
/// on this thread (one VM is one thread): a request then allocates only
/// what its own data needs. Containers that grew large are not kept.
#[derive(Debug, Default)]
struct Spare {
    fetched: Fetched,
    calls: Calls,
    base_headers: Vec<calls::BaseHeaders>,
}

thread_local! {
    static SPARE: std::cell::RefCell<Option<Spare>> = const { std::cell::RefCell::new(None) };
}

impl Spare {
    /// The kept containers, or new ones.
    fn take() -> Spare {
        SPARE
            .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.take()))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Keeps a finished request's containers, emptied, if they are small.
    fn keep(run: Run) {
        let Run {
            mut fetched,
            mut calls,
            mut base_headers,
            ..
        } = run;
        if !(fetched.reset() && calls.reset()) {
            return;
        }
        base_headers.clear();
        let _ = SPARE.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                *s = Some(Spare {
                    fetched,
                    calls,
                    base_headers,
                });
            }
        });
    }
}

/// A request error (no `data`) with a code.
fn request_failure(code: ErrorCode, message: String, media: ResponseMedia) -> Reply {
    response::graphql_error(400, message, code, media)
}

/// The values of an operation's condition variables, two bits each (absent
/// or null, false, true): which plan of the document applies. Only the
/// first 32 conditions fit; callers do not cache plans with more.
fn condition_mask(conditions: &[apollo_compiler::Name], variables: &JsonMap) -> u64 {
    conditions
        .iter()
        .take(32)
        .enumerate()
        .fold(0, |mask, (i, name)| {
            let bits: u64 = match variables.get(name.as_str()).and_then(|v| v.as_bool()) {
                None => 0,
                Some(false) => 1,
                Some(true) => 2,
            };
            mask | (bits << (2 * i))
        })
}

impl Run {
    /// Plans the operation's first wave: every call the root object needs
    /// (a mutation's first root field only).
    fn start(&mut self, gateway: &Gateway) {
        let plan = self.plan.clone();
        if plan.mutation {
            self.count(1, plan.root_type.as_str());
            return;
        }
        let root = self.fetched.root();
        self.walk_object(gateway, &plan, root, plan.root_type.as_str(), plan.root, 1);
    }

    /// Everything the answers so far make possible; true when the request
    /// is done (nothing queued, in flight, or left to run).
    fn settle(&mut self, gateway: &Gateway) -> bool {
        if self.identity_step.is_some() {
            // Nothing else starts before the identity is known.
            return false;
        }
        loop {
            if self.stopped.is_some() {
                return true;
            }
            if self.deliver_ready(gateway) {
                continue;
            }
            if self.calls.has_batches() {
                self.flush_batches(gateway);
                continue;
            }
            if self.calls.is_idle() {
                if let Some(next) = self.next_serial {
                    if self.run_serial(gateway, next) {
                        continue;
                    }
                }
                return true;
            }
            return false;
        }
    }

    /// Starts the mutation root field at `index`, if there is one; false
    /// when none is left.
    fn run_serial(&mut self, gateway: &Gateway, index: usize) -> bool {
        let plan = self.plan.clone();
        let root = self.fetched.root();
        let fields = plan
            .sets
            .get(plan.root as usize)
            .and_then(|s| s.fields_for(plan.root_type.as_str()))
            .unwrap_or_default();
        let Some(field) = fields.get(index) else {
            self.next_serial = None;
            return false;
        };
        self.next_serial = Some(index + 1);
        // What the functions answered before this mutation may be out of
        // date after it: its calls share no answer with earlier ones.
        self.calls.forget_shared();
        self.field_at(gateway, &plan, root, *field, 1);
        true
    }

    /// The deadline passed: every open call fails as timed out, nothing
    /// more is started.
    fn expire(&mut self, gateway: &Gateway) {
        self.next_serial = None;
        let error = self.fetched.add_error(FieldError::new(
            ErrorCode::UpstreamTimeout,
            format!(
                "a function did not answer within the request's deadline ({} ms)",
                gateway.deadline.as_millis()
            ),
        ));
        let root = self.fetched.root();
        for expired in self.calls.expire() {
            let upstream = &expired.upstream;
            // Name the function each waiter was waiting for.
            let blamed = self.fetched.add_error(
                FieldError::new(
                    ErrorCode::UpstreamTimeout,
                    format!(
                        "function {upstream} did not answer within the request's deadline ({} ms)",
                        gateway.deadline.as_millis()
                    ),
                )
                .blame(upstream),
            );
            for waiter in expired.waiters {
                // A mutation root field whose call never left: it did not
                // run, and the client must be told so (not a timeout,
                // which leaves open whether it ran).
                let error = if self.plan.mutation && waiter.at == root && !expired.started {
                    let coordinate = self
                        .plan
                        .fields
                        .get(waiter.field as usize)
                        .map_or("a mutation field", |f| &f.coordinate);
                    self.fetched.add_error(FieldError::new(
                        ErrorCode::NotExecuted,
                        format!(
                            "{coordinate} was not executed: the request's deadline ({} ms) passed before it started",
                            gateway.deadline.as_millis()
                        ),
                    ))
                } else {
                    blamed
                };
                if let Some(entry) = self.fetched.entry_mut(waiter.at, waiter.field) {
                    entry.value = crate::fetched::Resolved::Failed(error);
                }
            }
        }
        self.fetched.fail_pending(error);
    }
}
