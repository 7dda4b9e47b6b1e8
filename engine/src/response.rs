//! Replies that are not an executed operation: request errors (no `data`),
//! limits, the misconfigured gateway; their status and media type under
//! GraphQL over HTTP. An executed operation's body is written by
//! [`crate::reply`].

use crate::error::ErrorCode;
use crate::limits::LimitExceeded;
use crate::request::{RequestError, ResponseMedia};
use apollo_compiler::response::{GraphQLError, JsonMap, JsonValue};
use apollo_compiler::validation::DiagnosticList;
use std::borrow::Cow;

/// The local reply the host sends to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers (lower-case names); most are constants, borrowed.
    pub headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
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
    /// Not executed: no identity (no credential, or one refused or not
    /// verified).
    Unauthenticated,
}

impl Outcome {
    /// The metric-name form: `ok`, `partial`, `request_error`,
    /// `limit_exceeded`, `misconfigured`, `unauthenticated`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::RequestError => "request_error",
            Outcome::LimitExceeded => "limit_exceeded",
            Outcome::Misconfigured => "misconfigured",
            Outcome::Unauthenticated => "unauthenticated",
        }
    }

    /// Every outcome.
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::Partial,
        Outcome::RequestError,
        Outcome::LimitExceeded,
        Outcome::Misconfigured,
        Outcome::Unauthenticated,
    ];
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
pub fn graphql_error(status: u16, message: String, code: ErrorCode, media: ResponseMedia) -> Reply {
    let mut extensions = JsonMap::new();
    extensions.insert("code", JsonValue::from(code.as_str()));
    let error = GraphQLError {
        message,
        locations: Vec::new(),
        path: Vec::new(),
        extensions,
    };
    request_errors(status, vec![error], media)
}

fn to_json(value: &impl serde::Serialize) -> JsonValue {
    serde_json::to_value(value)
        .map(JsonValue::from)
        .unwrap_or(JsonValue::Null)
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
        RequestError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
        RequestError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
        _ => ErrorCode::BadRequest,
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
pub fn document_errors(
    diagnostics: &DiagnosticList,
    code: ErrorCode,
    media: ResponseMedia,
) -> Reply {
    let errors = diagnostics
        .iter()
        .map(|d| {
            let mut error = d.to_json();
            error
                .extensions
                .insert("code", JsonValue::from(code.as_str()));
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

/// The reply for a request whose persisted query is not run (see
/// [`crate::persisted`]): one error, Apollo's message and code, no `data`.
///
/// The status follows the rule of every request error here, which both
/// GraphQL over HTTP and the APQ clients accept:
///
/// * under `application/json`, **200**: GraphQL over HTTP answers a
///   request the server understood with 200 under that media type, and
///   it is what Apollo Server and Apollo Router send for
///   `PersistedQueryNotFound`, so older APQ clients (which read GraphQL
///   errors only from a 2xx) retry with the document;
/// * under `application/graphql-response+json` (what Apollo Client 4 asks
///   for first), the reply has no `data`, so GraphQL over HTTP wants a
///   4xx: **404** for a hash the gateway does not know
///   (`PERSISTED_QUERY_NOT_FOUND`, `PERSISTED_QUERY_NOT_IN_LIST`, as
///   Apollo Router answers unknown ids), **403** for a document it will
///   not run (`QUERY_NOT_IN_SAFELIST`), **400** for the rest
///   (`PERSISTED_QUERY_NOT_SUPPORTED`, `PERSISTED_QUERY_HASH_MISMATCH`).
///   Apollo Client 4 reads the errors of a `graphql-response+json` reply
///   whatever its status (and its persisted-queries link reads them from
///   the body of a non-2xx `application/json` one too), so the
///   not-found round trip works either way.
///
/// The caller adds `cache-control: no-store`, as to every refusal: a
/// not-found reply must not outlive the registration that follows it.
pub fn persisted_refusal(refusal: &crate::persisted::Refusal, media: ResponseMedia) -> Reply {
    let mut extensions = JsonMap::new();
    extensions.insert("code", JsonValue::from(refusal.code()));
    let error = GraphQLError {
        message: refusal.to_string(),
        locations: Vec::new(),
        path: Vec::new(),
        extensions,
    };
    let mut out = JsonMap::new();
    out.insert("errors", to_json(&vec![error]));
    let status = match media {
        ResponseMedia::Json => 200,
        ResponseMedia::GraphQLResponseJson => refusal.status(),
    };
    json_reply(status, &JsonValue::Object(out), media)
}

/// The reply for a mutation sent with GET.
pub fn mutation_over_get(media: ResponseMedia) -> Reply {
    let mut reply = graphql_error(
        405,
        "mutations must be sent with POST".into(),
        ErrorCode::MethodNotAllowed,
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
        ErrorCode::GatewayMisconfigured,
    );
    reply.outcome = Outcome::Misconfigured;
    reply
}

/// The reply when the gateway could not run a request at all (a host that
/// called the filter back while it was busy).
pub fn internal_error() -> Reply {
    let mut reply = graphql_error_status(
        503,
        "the GraphQL gateway could not run this request; try again",
        ErrorCode::InternalError,
    );
    reply.outcome = Outcome::RequestError;
    reply
}

fn graphql_error_status(status: u16, message: &str, code: ErrorCode) -> Reply {
    let mut reply = graphql_error(status, message.into(), code, ResponseMedia::Json);
    reply.status = status;
    reply
}
