//! The plan of one request, without calling anything: which calls go out in
//! which wave, how they are batched or shared, and what the request costs
//! at worst for lists of a given size.
//!
//! The request goes through the engine's own entry point first
//! ([`Execution::start`]), so a document the filter refuses (syntax,
//! validation, variables, limits) is refused here with the same errors.
//! The plan is then compiled with the engine's [`plan::compile`] and
//! walked: a field mapped to a function is a call in the wave after the
//! call that fetched its parent object (root calls: wave 1).

use apollo_compiler::response::{JsonMap, JsonValue};
use apollo_compiler::ExecutableDocument;
use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::plan::{self, FieldSource, Plan, SetId, Shape};
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::response::Outcome;
use graphql_aggregator_engine::schema::Resolver;
use serde_json::{json, Value};
use std::fmt;
use std::sync::Arc;

/// The bytes a leaf value is assumed to take in the reply estimate.
const LEAF_BYTES: u64 = 8;

/// Fields visited at most (a document spreading fragments in many places
/// is summarised rather than walked forever).
const MAX_VISITS: usize = 100_000;

/// One GraphQL request to explain.
#[derive(Debug, Clone)]
pub struct Request {
    /// The document.
    pub query: String,
    /// The variables (a JSON object).
    pub variables: Option<Value>,
    /// The operation to run, when the document has several.
    pub operation: Option<String>,
}

/// Why a request cannot be explained.
#[derive(Debug)]
pub enum ExplainError {
    /// `--variables` is not a JSON object.
    Variables(String),
    /// The filter refuses the request: its errors, as a client gets them.
    Refused {
        /// The GraphQL errors of the reply.
        errors: Vec<RefusalError>,
    },
    /// The engine accepted the request but it could not be planned again
    /// (should not happen: the filter plans it the same way).
    Plan(String),
}

/// One GraphQL error the filter answers a refused request with.
#[derive(Debug, Clone)]
pub struct RefusalError {
    /// Its message.
    pub message: String,
    /// `extensions.code`.
    pub code: Option<String>,
    /// The first of its `locations` in the document (line, column).
    pub location: Option<(usize, usize)>,
}

impl fmt::Display for ExplainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExplainError::Variables(e) => write!(f, "--variables must be a JSON object: {e}"),
            ExplainError::Refused { errors } => {
                let all: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
                write!(f, "the filter refuses this request: {}", all.join("; "))
            }
            ExplainError::Plan(e) => write!(f, "cannot plan the request: {e}"),
        }
    }
}

impl std::error::Error for ExplainError {}

/// How the calls of one planned field are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// One parent, one call.
    Single,
    /// One call per chunk of up to `max_batch_size` distinct keys of the
    /// parents one answer brings.
    Batched {
        /// The parent's key sent.
        key: String,
        /// The query parameter carrying the keys.
        param: String,
        /// Keys per call at most.
        max_keys: usize,
    },
    /// The call is the same for every parent (no `{parent.*}`) and
    /// de-duplicated: made once.
    Shared,
    /// One call per parent: a `{parent.*}` template, or a method that is
    /// not de-duplicated.
    PerParent,
}

/// A planned field that calls a function.
#[derive(Debug, Clone)]
pub struct Step {
    /// The wave it goes out in (1: with the request).
    pub wave: usize,
    /// Where in the response (`users[].orders`).
    pub response_path: String,
    /// `Type.field`.
    pub coordinate: String,
    /// The upstream's name.
    pub upstream: String,
    /// The HTTP method.
    pub method: String,
    /// The `@http` path template.
    pub path: String,
    /// How its calls are made.
    pub mode: Mode,
    /// The parent objects it is resolved for, at worst.
    pub parents: u64,
    /// The calls it makes, at worst.
    pub calls: u64,
}

/// The plan of one request and its worst case.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// `query Name`, `mutation`…
    pub operation: String,
    /// The assumed size of every list.
    pub list_size: u64,
    /// The calls, by wave then response order.
    pub steps: Vec<Step>,
    /// How many waves.
    pub waves: usize,
    /// Calls at worst.
    pub calls: u64,
    /// Objects and list items of the reply at worst.
    pub reply_objects: u64,
    /// Reply bytes at worst, with 8-byte leaf values.
    pub reply_bytes: u64,
    /// Whether the walk stopped early (the counts are then lower bounds).
    pub truncated: bool,
    /// `limits.max_calls`.
    pub max_calls: usize,
    /// `limits.max_concurrent_calls`.
    pub max_concurrent_calls: usize,
    /// `limits.max_reply_objects`.
    pub max_reply_objects: usize,
    /// `limits.max_reply_bytes`.
    pub max_reply_bytes: usize,
}

/// Explain `request` against `gateway`, for lists of `list_size` items.
pub fn explain(
    gateway: Gateway,
    request: &Request,
    list_size: u64,
) -> Result<Explanation, ExplainError> {
    let variables = match &request.variables {
        None => serde_json::Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(other) => return Err(ExplainError::Variables(format!("got {other}"))),
    };
    let gateway = Arc::new(gateway);
    refusal(&gateway, request, &variables)?;
    let schema = &gateway.schema;
    let document =
        ExecutableDocument::parse_and_validate(schema, &request.query, "request.graphql")
            .map_err(|e| ExplainError::Plan(e.errors.to_string()))?;
    let document = Arc::new(document);
    let operation = document
        .operations
        .get(request.operation.as_deref())
        .map_err(|e| ExplainError::Plan(e.message().to_string()))?;
    let raw: JsonMap = match JsonValue::from(Value::Object(variables)) {
        JsonValue::Object(map) => map,
        _ => JsonMap::new(),
    };
    let coerced = apollo_compiler::request::coerce_variable_values(schema, operation, &raw)
        .map_err(|e| ExplainError::Plan(e.message().to_string()))?;
    let plan = plan::compile(&gateway, &document, operation, &coerced)
        .map_err(|e| ExplainError::Plan(format!("{e:?}")))?;
    let mut walk = Walk {
        gateway: &gateway,
        plan: &plan,
        list_size,
        steps: Vec::new(),
        visits: 0,
    };
    let mut cost = walk.root();
    let mut steps = walk.steps;
    let truncated = walk.visits > MAX_VISITS;
    steps.sort_by_key(|s| s.wave);
    // The identity step goes first and alone (for a client that sends a
    // credential): every field call waits a wave more.
    if let Some(identity) = &gateway.identity {
        for step in &mut steps {
            step.wave += 1;
        }
        let prefix = gateway
            .upstreams
            .get(&identity.upstream)
            .map_or("", |u| u.path_prefix.as_str());
        steps.insert(
            0,
            Step {
                wave: 1,
                response_path: "(identity)".into(),
                coordinate: "identity".into(),
                upstream: identity.upstream.clone(),
                method: identity.method.clone(),
                path: format!("{prefix}{}", identity.path),
                mode: Mode::Single,
                parents: 1,
                calls: 1,
            },
        );
        cost.calls = cost.calls.saturating_add(1);
    }
    let limits = &gateway.limits;
    Ok(Explanation {
        operation: match &operation.name {
            Some(name) => format!("{} {name}", operation.operation_type),
            None => operation.operation_type.to_string(),
        },
        list_size,
        waves: steps.iter().map(|s| s.wave).max().unwrap_or(0),
        calls: cost.calls,
        reply_objects: cost.objects,
        reply_bytes: cost.bytes.saturating_add(b"{\"data\":}".len() as u64),
        truncated,
        steps,
        max_calls: limits.max_calls,
        max_concurrent_calls: limits.max_concurrent_calls,
        max_reply_objects: limits.max_reply_objects,
        max_reply_bytes: limits.max_reply_bytes,
    })
}

/// The filter's answer when it refuses the request before any call.
fn refusal(
    gateway: &Arc<Gateway>,
    request: &Request,
    variables: &serde_json::Map<String, Value>,
) -> Result<(), ExplainError> {
    let body = json!({
        "query": request.query,
        "variables": variables,
        "operationName": request.operation,
    });
    let mut http = HttpRequest::post_json(body.to_string().into_bytes());
    http.headers
        .push(("accept".into(), "application/graphql-response+json".into()));
    let mut execution = Execution::start(gateway.clone(), &http, 0);
    if !execution.is_finished() {
        return Ok(());
    }
    let Some(reply) = execution.reply() else {
        return Ok(());
    };
    if !matches!(
        reply.outcome,
        Outcome::RequestError | Outcome::LimitExceeded
    ) {
        return Ok(());
    }
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let errors = body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| RefusalError {
                    message: e["message"].as_str().unwrap_or_default().to_string(),
                    code: e["extensions"]["code"].as_str().map(str::to_string),
                    location: e["locations"][0]["line"].as_u64().and_then(|line| {
                        let column = e["locations"][0]["column"].as_u64()?;
                        Some((line as usize, column as usize))
                    }),
                })
                .collect()
        })
        .unwrap_or_default();
    Err(ExplainError::Refused { errors })
}

/// What a part of the response costs at worst.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    calls: u64,
    objects: u64,
    bytes: u64,
}

impl Cost {
    fn add(self, other: Cost) -> Cost {
        Cost {
            calls: self.calls.saturating_add(other.calls),
            objects: self.objects.saturating_add(other.objects),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }

    fn max(self, other: Cost) -> Cost {
        Cost {
            calls: self.calls.max(other.calls),
            objects: self.objects.max(other.objects),
            bytes: self.bytes.max(other.bytes),
        }
    }
}

/// The walk of a plan: each field once per place it has in the response.
struct Walk<'a> {
    gateway: &'a Gateway,
    plan: &'a Plan,
    list_size: u64,
    steps: Vec<Step>,
    visits: usize,
}

/// Where a selection set is walked: for how many parent objects, coming
/// from how many answers, in which wave, at which response path.
#[derive(Debug, Clone, Copy)]
struct Place<'p> {
    parents: u64,
    answers: u64,
    wave: usize,
    path: &'p str,
}

impl Walk<'_> {
    /// The root selection set; a mutation's root fields one after another.
    fn root(&mut self) -> Cost {
        let plan = self.plan;
        let place = Place {
            parents: 1,
            answers: 1,
            wave: 1,
            path: "",
        };
        if !plan.mutation {
            return self.set(plan.root, place);
        }
        let Some((_, fields)) = plan
            .sets
            .get(plan.root as usize)
            .and_then(|s| s.types.first())
        else {
            return Cost::default();
        };
        let mut total = Cost::default();
        let mut wave = 1;
        for id in fields {
            let before = self.steps.len();
            total = total.add(self.field(*id, Place { wave, ..place }));
            let last = self
                .steps
                .get(before..)
                .into_iter()
                .flatten()
                .map(|s| s.wave)
                .max();
            wave = last.map_or(wave, |w| w + 1);
        }
        total
    }

    /// A selection set: the worst of its concrete types.
    fn set(&mut self, set: SetId, place: Place<'_>) -> Cost {
        let plan = self.plan;
        let Some(set) = plan.sets.get(set as usize) else {
            return Cost::default();
        };
        let mut worst = Cost::default();
        for (_, fields) in &set.types {
            let mut cost = Cost::default();
            for id in fields {
                cost = cost.add(self.field(*id, place));
            }
            worst = worst.max(cost);
        }
        worst
    }

    /// One field at one place.
    fn field(&mut self, id: plan::FieldId, place: Place<'_>) -> Cost {
        self.visits += 1;
        if self.visits > MAX_VISITS {
            return Cost::default();
        }
        let Some(field) = self.plan.fields.get(id as usize) else {
            return Cost::default();
        };
        let mut depth = 0u32;
        let mut ty = &field.ty;
        while let apollo_compiler::schema::Type::List(inner)
        | apollo_compiler::schema::Type::NonNullList(inner) = ty
        {
            depth += 1;
            ty = inner;
        }
        let n = self.list_size;
        let items = place.parents.saturating_mul(n.saturating_pow(depth));
        // Every list level's items, and each list's brackets and commas.
        let mut objects = 0u64;
        let mut bytes = place
            .parents
            .saturating_mul(field.key_json.len() as u64 + 1);
        let mut level = place.parents;
        for _ in 0..depth {
            bytes = bytes.saturating_add(level.saturating_mul(2));
            level = level.saturating_mul(n);
            objects = objects.saturating_add(level);
            bytes = bytes.saturating_add(level);
        }
        let path = format!(
            "{}{}{}{}",
            place.path,
            if place.path.is_empty() { "" } else { "." },
            field.key,
            "[]".repeat(depth as usize)
        );
        let mut cost = Cost {
            calls: 0,
            objects,
            bytes,
        };
        let mut child = Place {
            parents: items,
            path: &path,
            ..place
        };
        if let FieldSource::Call { resolver, .. } = &field.source {
            if let Some(resolver) = self.gateway.resolvers.get(*resolver) {
                let (mode, calls) = self.calls(resolver, place);
                cost.calls = calls;
                self.steps.push(Step {
                    wave: place.wave,
                    response_path: path.clone(),
                    coordinate: field.coordinate.to_string(),
                    upstream: resolver.upstream.clone(),
                    method: resolver.method.to_string(),
                    path: resolver.path.to_string(),
                    mode,
                    parents: place.parents,
                    calls,
                });
                child.answers = calls.max(1);
                child.wave = place.wave + 1;
            }
        }
        match field.shape {
            Shape::Leaf(_) => {
                cost.bytes = cost.bytes.saturating_add(items.saturating_mul(LEAF_BYTES));
            }
            Shape::Composite { set, .. } => {
                cost.objects = cost.objects.saturating_add(items);
                cost.bytes = cost.bytes.saturating_add(items.saturating_mul(2));
                cost = cost.add(self.set(set, child));
            }
        }
        cost
    }

    /// How a resolver is called for the parents of `place`, and how often.
    fn calls(&self, resolver: &Resolver, place: Place<'_>) -> (Mode, u64) {
        let parents = place.parents;
        if let Some(batch) = &resolver.batch {
            let max_keys = self.gateway.limits.max_batch_size.max(1) as u64;
            let answers = place.answers.max(1).min(parents.max(1));
            let per_answer = parents.div_ceil(answers);
            let calls = answers.saturating_mul(per_answer.div_ceil(max_keys));
            let mode = Mode::Batched {
                key: batch.key.join("."),
                param: batch.param.clone(),
                max_keys: max_keys as usize,
            };
            return (mode, calls);
        }
        let per_parent = !crate::lint::parent_paths(resolver).is_empty() || !resolver.dedupe;
        match (parents, per_parent) {
            (0, _) => (Mode::Single, 0),
            (1, _) => (Mode::Single, 1),
            (_, true) => (Mode::PerParent, parents),
            (_, false) => (Mode::Shared, 1),
        }
    }
}

impl Mode {
    /// How the mode reads in a plan.
    fn describe(&self, parents: u64) -> String {
        match self {
            Mode::Single => "one call".into(),
            Mode::Batched {
                key,
                param,
                max_keys,
            } => format!(
                "batched: the `{key}` of {parents} parent(s) in `{param}`, up to {max_keys} keys per call"
            ),
            Mode::Shared => format!("de-duplicated: the same call for all {parents} parents, made once"),
            Mode::PerParent => format!("one call per parent ({parents} parents)"),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Batched { .. } => "batched",
            Mode::Shared => "deduplicated",
            Mode::PerParent => "per_parent",
        }
    }
}

impl Explanation {
    /// The explanation as JSON (`--format json`).
    pub fn to_json(&self) -> Value {
        json!({
            "operation": self.operation,
            "list_size": self.list_size,
            "waves": self.waves,
            "calls": self.calls,
            "reply_objects": self.reply_objects,
            "reply_bytes_estimate": self.reply_bytes,
            "truncated": self.truncated,
            "limits": {
                "max_calls": self.max_calls,
                "max_concurrent_calls": self.max_concurrent_calls,
                "max_reply_objects": self.max_reply_objects,
                "max_reply_bytes": self.max_reply_bytes,
            },
            "steps": self.steps.iter().map(|s| json!({
                "wave": s.wave,
                "response_path": s.response_path,
                "field": s.coordinate,
                "upstream": s.upstream,
                "method": s.method,
                "path": s.path,
                "mode": s.mode.name(),
                "batch": match &s.mode {
                    Mode::Batched { key, param, max_keys } =>
                        json!({"key": key, "param": param, "max_keys": max_keys}),
                    _ => Value::Null,
                },
                "parents": s.parents,
                "calls": s.calls,
            })).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: lists assumed to hold {} items",
            self.operation, self.list_size
        )?;
        for wave in 1..=self.waves {
            writeln!(f, "wave {wave}:")?;
            for step in self.steps.iter().filter(|s| s.wave == wave) {
                writeln!(
                    f,
                    "  {}  ({})  {} {} {}",
                    step.response_path, step.coordinate, step.upstream, step.method, step.path
                )?;
                let calls = if step.calls == 1 { "call" } else { "calls" };
                writeln!(
                    f,
                    "    {} {calls}: {}",
                    step.calls,
                    step.mode.describe(step.parents)
                )?;
            }
        }
        let calls = if self.calls > self.max_calls as u64 {
            format!(
                "over limits.max_calls ({}): calls past it are null with LIMIT_EXCEEDED",
                self.max_calls
            )
        } else {
            format!("within limits.max_calls ({})", self.max_calls)
        };
        writeln!(
            f,
            "total: {} waves, {} calls at most, {calls}; at most {} in flight at once (limits.max_concurrent_calls)",
            self.waves, self.calls, self.max_concurrent_calls
        )?;
        let objects = if self.reply_objects > self.max_reply_objects as u64 {
            "over limits.max_reply_objects: the request would be refused with LIMIT_EXCEEDED"
        } else {
            "within limits.max_reply_objects"
        };
        writeln!(
            f,
            "reply: {} objects and list items at most, {objects} ({}); about {} bytes with {LEAF_BYTES}-byte values, capped by limits.max_reply_bytes ({})",
            self.reply_objects, self.max_reply_objects, self.reply_bytes, self.max_reply_bytes
        )?;
        if self.truncated {
            writeln!(
                f,
                "note: the document has too many places to walk; counts are lower bounds"
            )?;
        }
        Ok(())
    }
}
