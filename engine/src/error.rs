//! Error codes and field errors: what goes into a GraphQL error's
//! `extensions`, typed, so that no code is a string literal and no decision
//! depends on a code's spelling.

use apollo_compiler::response::{JsonMap, JsonValue};
use std::fmt;
use std::sync::Arc;

/// Every `extensions.code` the gateway sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Not a GraphQL-over-HTTP request (bad JSON, missing `query`...).
    BadRequest,
    /// A method the GraphQL endpoint does not serve.
    MethodNotAllowed,
    /// A body that is not `application/json`.
    UnsupportedMediaType,
    /// The document does not parse.
    GraphqlParseFailed,
    /// The document does not validate against the schema.
    GraphqlValidationFailed,
    /// Variables that do not coerce to their types.
    BadUserInput,
    /// No operation of that name (or several and none named).
    OperationResolutionFailure,
    /// A subscription (not served).
    SubscriptionNotSupported,
    /// `__schema` or `__type` with introspection switched off.
    IntrospectionDisabled,
    /// Over one of the configured limits.
    LimitExceeded,
    /// The gateway has no valid configuration.
    GatewayMisconfigured,
    /// A function answered with an HTTP error status.
    UpstreamHttpError,
    /// A function did not answer in time.
    UpstreamTimeout,
    /// A function could not be reached.
    UpstreamUnavailable,
    /// A function's answer was over `limits.max_response_bytes`.
    UpstreamResponseTooLarge,
    /// A function's answer does not have the shape the schema says.
    UpstreamBadResponse,
    /// A function answered with an error code in its envelope.
    UpstreamError,
    /// The concrete type of an interface or union could not be told.
    AbstractTypeUnresolved,
    /// The call a field needs could not be built from its arguments.
    InvalidFunctionRequest,
    /// A mutation field that was not executed (an earlier one stopped the
    /// request).
    NotExecuted,
    /// The request has no identity it needs: no credential, or one the
    /// identity function refused or could not verify.
    Unauthenticated,
    /// A bug in the gateway.
    InternalError,
}

impl ErrorCode {
    /// The code as clients see it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            ErrorCode::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::OperationResolutionFailure => "OPERATION_RESOLUTION_FAILURE",
            ErrorCode::SubscriptionNotSupported => "SUBSCRIPTION_NOT_SUPPORTED",
            ErrorCode::IntrospectionDisabled => "INTROSPECTION_DISABLED",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::GatewayMisconfigured => "GATEWAY_MISCONFIGURED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::UpstreamHttpError => "UPSTREAM_HTTP_ERROR",
            ErrorCode::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            ErrorCode::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            ErrorCode::UpstreamResponseTooLarge => "UPSTREAM_RESPONSE_TOO_LARGE",
            ErrorCode::UpstreamBadResponse => "UPSTREAM_BAD_RESPONSE",
            ErrorCode::UpstreamError => "UPSTREAM_ERROR",
            ErrorCode::AbstractTypeUnresolved => "ABSTRACT_TYPE_UNRESOLVED",
            ErrorCode::InvalidFunctionRequest => "INVALID_FUNCTION_REQUEST",
            ErrorCode::NotExecuted => "NOT_EXECUTED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field error: null at the field's path, and an error with this code,
/// message and the function to blame (if a function's answer is at fault).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// `extensions.code`.
    pub code: ErrorCode,
    /// Human-readable message; never quotes a function's data.
    pub message: String,
    /// `extensions.upstream`: the function at fault.
    pub upstream: Option<Arc<str>>,
    /// More `extensions` (`status`, `functionCode`, `limit`...).
    pub extra: Vec<(&'static str, JsonValue)>,
}

impl FieldError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        FieldError {
            code,
            message: message.into(),
            upstream: None,
            extra: Vec::new(),
        }
    }

    /// A function's answer that does not have the shape the schema expects.
    pub fn bad_shape(upstream: Option<&Arc<str>>, coordinate: &str, expected: &str) -> Self {
        let message = match upstream {
            Some(u) => format!(
                "function {u} answered a value for {coordinate} that does not match the schema: expected {expected}"
            ),
            None => format!("the value of {coordinate} does not match the schema: expected {expected}"),
        };
        FieldError {
            upstream: upstream.cloned(),
            ..FieldError::new(ErrorCode::UpstreamBadResponse, message)
        }
    }

    /// Name the function at fault.
    pub fn blame(mut self, upstream: &Arc<str>) -> Self {
        self.upstream = Some(upstream.clone());
        self
    }

    /// Add an extension.
    pub fn with(mut self, key: &'static str, value: JsonValue) -> Self {
        self.extra.push((key, value));
        self
    }

    /// The error's `extensions`: `code`, `upstream`, then the others.
    pub fn extensions(&self) -> JsonMap {
        let mut map = JsonMap::new();
        map.insert("code", JsonValue::from(self.code.as_str()));
        if let Some(upstream) = &self.upstream {
            map.insert("upstream", JsonValue::from(upstream.as_ref()));
        }
        for (key, value) in &self.extra {
            map.insert(*key, value.clone());
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_carry_the_code_first_and_the_upstream() {
        let upstream: Arc<str> = Arc::from("fn");
        let error = FieldError::new(ErrorCode::UpstreamHttpError, "boom")
            .blame(&upstream)
            .with("status", JsonValue::from(404));
        let extensions = JsonValue::Object(error.extensions()).to_string();
        assert_eq!(
            extensions,
            r#"{"code":"UPSTREAM_HTTP_ERROR","upstream":"fn","status":404}"#
        );
    }
}
