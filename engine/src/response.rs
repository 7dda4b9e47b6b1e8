//! Building the reply: the GraphQL response (`{data, errors}`) with result
//! coercion and null propagation, its status and its media type.
//!
//! Once every call has answered, the fetched tree is completed by
//! apollo-compiler's executor: it applies the spec's result coercion, null
//! propagation, `__typename` and introspection, so the response shape is the
//! reference implementation's, not ours.

use crate::config::Gateway;
use crate::execute::{read_parent, Fetched, ObjectEntry, ObjectId};
use crate::limits::LimitExceeded;
use crate::request::{RequestError, ResponseMedia};
use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::{ExecutionResponse, GraphQLError, JsonMap, JsonValue};
use apollo_compiler::schema::Type;
use apollo_compiler::validation::{DiagnosticList, Valid};
use apollo_compiler::ExecutableDocument;

/// The local reply the host sends to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
    /// What kind of answer it is, for metrics.
    pub outcome: Outcome,
}

/// What kind of answer a reply is (the `requests.*` metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Executed; data and no errors.
    Ok,
    /// Executed; data with field errors.
    Partial,
    /// Not executed: not a GraphQL request, or it did not parse, validate
    /// or coerce.
    RequestError,
    /// Not executed: over a limit.
    LimitExceeded,
    /// Not executed: the plugin has no valid configuration.
    Misconfigured,
}

impl Outcome {
    /// The metric-name form: `ok`, `partial`, `request_error`,
    /// `limit_exceeded`, `misconfigured`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::RequestError => "request_error",
            Outcome::LimitExceeded => "limit_exceeded",
            Outcome::Misconfigured => "misconfigured",
        }
    }

    /// Every outcome.
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Partial,
        Outcome::RequestError,
        Outcome::LimitExceeded,
        Outcome::Misconfigured,
    ];
}

/// A field error found while fetching: null at the field's path, and an
/// error with this message and `extensions.code`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldFailure {
    /// Human-readable message.
    pub message: String,
    /// Extensions, `code` first.
    pub extensions: JsonMap,
}

impl FieldFailure {
    /// A failure with a message and an `extensions.code`.
    pub fn new(message: String, code: &str) -> Self {
        let mut extensions = JsonMap::new();
        extensions.insert("code", JsonValue::from(code));
        FieldFailure {
            message,
            extensions,
        }
    }

    /// A function's JSON that does not have the shape the schema expects.
    pub fn bad_response(expected: &str) -> Self {
        FieldFailure::new(
            format!("the function's answer does not match the schema: expected {expected}"),
            "UPSTREAM_BAD_RESPONSE",
        )
    }

    /// Add an extension.
    pub fn with(mut self, key: &str, value: JsonValue) -> Self {
        self.extensions.insert(key, value);
        self
    }

    /// Name the upstream in `extensions.upstream`.
    pub fn with_upstream(self, upstream: &str) -> Self {
        self.with("upstream", JsonValue::from(upstream))
    }
}

/// apollo-compiler's `FieldError` carries only a message, which it prefixes;
/// our failures travel through it as this marker plus their index and are
/// restored afterwards.
const MARKER: &str = "\u{1}graphql-aggregator-failure:";

/// The reply for an executed request.
pub fn execution_reply(
    gateway: &Gateway,
    document: &Valid<ExecutableDocument>,
    operation_name: Option<&str>,
    variables: &Valid<JsonMap>,
    objects: &[ObjectEntry],
    failures: &[FieldFailure],
    media: ResponseMedia,
) -> Reply {
    let execution = Execution::new(&gateway.schema, document)
        .operation_name(operation_name)
        .map(|e| {
            e.coerced_variable_values(variables)
                .enable_schema_introspection(gateway.introspection)
        });
    let root = FetchedObject {
        gateway,
        objects,
        id: 0,
    };
    let result = match execution {
        Ok(execution) => execution.execute_sync(&root),
        Err(e) => Err(e),
    };
    match result {
        Ok(response) => {
            let outcome = if response.errors.is_empty() {
                Outcome::Ok
            } else {
                Outcome::Partial
            };
            let mut reply = json_reply(200, &body(response, failures), media);
            reply.outcome = outcome;
            reply
        }
        Err(e) => graphql_error(
            400,
            e.message().to_string(),
            "OPERATION_RESOLUTION_FAILURE",
            media,
        ),
    }
}

fn body(response: ExecutionResponse, failures: &[FieldFailure]) -> JsonValue {
    let errors: Vec<GraphQLError> = response
        .errors
        .into_iter()
        .map(|mut error| {
            let index = error
                .message
                .find(MARKER)
                .and_then(|at| error.message.get(at + MARKER.len()..))
                .and_then(|rest| {
                    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                    rest.get(..digits)?.parse::<usize>().ok()
                });
            if let Some(failure) = index.and_then(|i| failures.get(i)) {
                error.message = failure.message.clone();
                error.extensions = failure.extensions.clone();
            }
            error
        })
        .collect();
    let mut out = JsonMap::new();
    out.insert(
        "data",
        response.data.map_or(JsonValue::Null, JsonValue::Object),
    );
    if !errors.is_empty() {
        out.insert("errors", to_json(&errors));
    }
    JsonValue::Object(out)
}

fn to_json(value: &impl serde::Serialize) -> JsonValue {
    serde_json::to_value(value)
        .map(JsonValue::from)
        .unwrap_or(JsonValue::Null)
}

/// One object of the fetched tree, as apollo-compiler's executor sees it.
struct FetchedObject<'a> {
    gateway: &'a Gateway,
    objects: &'a [ObjectEntry],
    id: ObjectId,
}

impl FetchedObject<'_> {
    fn entry(&self) -> Option<&ObjectEntry> {
        self.objects.get(self.id)
    }
}

impl ObjectValue for FetchedObject<'_> {
    fn type_name(&self) -> &str {
        self.entry().map_or("", |e| e.type_name.as_str())
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        let Some(entry) = self.entry() else {
            return Ok(ResolvedValue::null());
        };
        let key = info
            .field_selections()
            .first()
            .map_or(info.field_name(), |f| f.response_key().as_str());
        let ty = &info.field_definition().ty;
        match entry.fields.get(key) {
            Some(fetched) => resolved(self.gateway, self.objects, fetched, ty),
            None => {
                let field = &info.field_definition().name;
                let value = read_parent(self.gateway, &entry.type_name, field, &entry.source);
                Ok(leaf(ty, value))
            }
        }
    }
}

/// A list item that failed. apollo-compiler turns an error *returned* for a
/// list item into null for the whole list, where the spec nulls only the
/// item; an object whose type is not in the schema makes it report a field
/// error at the item's path and null just that item. The type name carries
/// the failure's marker, so the error gets its real message back.
struct FailedItem {
    marker: String,
}

impl ObjectValue for FailedItem {
    fn type_name(&self) -> &str {
        &self.marker
    }

    fn resolve_field<'a>(
        &'a self,
        _info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        Ok(ResolvedValue::null())
    }
}

fn resolved<'a>(
    gateway: &'a Gateway,
    objects: &'a [ObjectEntry],
    fetched: &'a Fetched,
    ty: &Type,
) -> Result<ResolvedValue<'a>, FieldError> {
    match fetched {
        Fetched::Pending => Err(FieldError {
            message: "internal error: the field was never resolved".into(),
        }),
        Fetched::Leaf(value) => Ok(leaf(ty, value.clone())),
        Fetched::Object(id) => Ok(ResolvedValue::object(FetchedObject {
            gateway,
            objects,
            id: *id,
        })),
        Fetched::List(items) => {
            let inner = ty.item_type().clone();
            Ok(ResolvedValue::List(Box::new(items.iter().map(
                move |item| match item {
                    Fetched::Error(index) => Ok(ResolvedValue::object(FailedItem {
                        marker: format!("{MARKER}{index}"),
                    })),
                    item => resolved(gateway, objects, item, &inner),
                },
            ))))
        }
        Fetched::Error(index) => Err(FieldError {
            message: format!("{MARKER}{index}"),
        }),
    }
}

/// A leaf value of type `ty` as a function gave it: lists become lists of
/// leaves, and numbers are coerced as the spec allows (an integer is a valid
/// `Float`, an integral float a valid `Int`), which apollo-compiler's result
/// coercion does not do by itself.
fn leaf<'a>(ty: &Type, value: JsonValue) -> ResolvedValue<'a> {
    match (ty, value) {
        (Type::List(inner) | Type::NonNullList(inner), JsonValue::Array(items)) => {
            let inner = inner.as_ref().clone();
            ResolvedValue::List(Box::new(
                items.into_iter().map(move |item| Ok(leaf(&inner, item))),
            ))
        }
        (Type::Named(name) | Type::NonNullNamed(name), JsonValue::Number(n)) => {
            ResolvedValue::leaf(coerce_number(name.as_str(), n))
        }
        (_, value) => ResolvedValue::leaf(value),
    }
}

fn coerce_number(type_name: &str, n: serde_json::Number) -> JsonValue {
    match type_name {
        "Float" if !n.is_f64() => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(JsonValue::Number(n), JsonValue::Number),
        "Int" if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX) => {
                // Exact: f is integral and within i32.
                #[allow(clippy::cast_possible_truncation)]
                JsonValue::from(f as i64)
            }
            _ => JsonValue::Number(n),
        },
        _ => JsonValue::Number(n),
    }
}

/// A reply carrying a JSON body with the negotiated media type.
pub fn json_reply(status: u16, body: &JsonValue, media: ResponseMedia) -> Reply {
    Reply {
        status,
        headers: vec![("content-type".into(), media.content_type().into())],
        body: body.to_string().into_bytes(),
        outcome: Outcome::RequestError,
    }
}

/// A reply with one error and no `data` (a request error).
pub fn graphql_error(status: u16, message: String, code: &str, media: ResponseMedia) -> Reply {
    let failure = FieldFailure::new(message, code);
    let error = GraphQLError {
        message: failure.message,
        locations: Vec::new(),
        path: Vec::new(),
        extensions: failure.extensions,
    };
    request_errors(status, vec![error], media)
}

/// Request errors (no `data`). Under `application/json` a well-formed
/// GraphQL-over-HTTP request is answered with 200 whatever its errors; under
/// `application/graphql-response+json` the given status is kept.
fn request_errors(status: u16, errors: Vec<GraphQLError>, media: ResponseMedia) -> Reply {
    let mut out = JsonMap::new();
    out.insert("errors", to_json(&errors));
    let status = match media {
        ResponseMedia::Json if status == 400 => 200,
        _ => status,
    };
    json_reply(status, &JsonValue::Object(out), media)
}

/// The reply for an HTTP request that is not a GraphQL request.
pub fn request_error(error: &RequestError, media: ResponseMedia) -> Reply {
    let code = match error {
        RequestError::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
        RequestError::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
        _ => "BAD_REQUEST",
    };
    let mut reply = graphql_error(error.status(), error.to_string(), code, media);
    // Not a GraphQL request at all: the status stands under any media type.
    reply.status = error.status();
    if let RequestError::MethodNotAllowed(_) = error {
        reply.headers.push(("allow".into(), "GET, POST".into()));
    }
    reply
}

/// The reply for a document that does not parse or validate.
pub fn document_errors(diagnostics: &DiagnosticList, code: &str, media: ResponseMedia) -> Reply {
    let errors = diagnostics
        .iter()
        .map(|d| {
            let mut error = d.to_json();
            error.extensions.insert("code", JsonValue::from(code));
            error
        })
        .collect();
    request_errors(400, errors, media)
}

/// The reply for a request over a limit: `status` is 413 for the body
/// (under any media type), 400 for the document (200 under
/// `application/json`, as for other request errors).
pub fn limit_exceeded(exceeded: &LimitExceeded, status: u16, media: ResponseMedia) -> Reply {
    let error = GraphQLError {
        message: exceeded.to_string(),
        locations: Vec::new(),
        path: Vec::new(),
        extensions: exceeded.extensions(),
    };
    let mut reply = request_errors(status, vec![error], media);
    if status == 413 {
        reply.status = 413;
    }
    reply.outcome = Outcome::LimitExceeded;
    reply
}

/// The reply for a mutation sent with GET.
pub fn mutation_over_get(media: ResponseMedia) -> Reply {
    let mut reply = graphql_error(
        405,
        "mutations must be sent with POST".into(),
        "METHOD_NOT_ALLOWED",
        media,
    );
    reply.status = 405;
    reply.headers.push(("allow".into(), "POST".into()));
    reply
}

/// The reply while the plugin has no valid configuration.
pub fn misconfigured() -> Reply {
    let mut reply = graphql_error_status(
        500,
        "the GraphQL gateway is misconfigured and cannot answer; its log says why",
        "GATEWAY_MISCONFIGURED",
    );
    reply.outcome = Outcome::Misconfigured;
    reply
}

fn graphql_error_status(status: u16, message: &str, code: &str) -> Reply {
    let mut reply = graphql_error(status, message.into(), code, ResponseMedia::Json);
    reply.status = status;
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(json: &str) -> serde_json::Number {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn numbers_are_coerced_as_the_spec_allows() {
        assert_eq!(coerce_number("Float", number("5")).to_string(), "5.0");
        assert_eq!(coerce_number("Int", number("5.0")).to_string(), "5");
        assert_eq!(coerce_number("Int", number("5.5")).to_string(), "5.5");
        assert_eq!(
            coerce_number("Int", number("1e12")).to_string(),
            "1000000000000.0"
        );
        assert_eq!(coerce_number("ID", number("7")).to_string(), "7");
    }
}
