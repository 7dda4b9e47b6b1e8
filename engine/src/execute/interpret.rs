//! Answer interpretation: a call's outcome becomes a parsed answer (and the
//! node its data is at, inside the upstream's envelope) or a field error
//! naming the function.

use crate::answer::{Answer, Node, NodeId};
use crate::error::{ErrorCode, FieldError};
use crate::upstream::{gateway_failure, CallFailure, CallOutcome, Envelope};
use apollo_compiler::response::JsonValue;
use std::sync::Arc;

/// A function's data: its parsed answer, and where the data is in it.
#[derive(Debug)]
pub struct Data {
    /// The whole answer.
    pub answer: Answer,
    /// The data's node (the root, or the envelope's `data`).
    pub node: Option<NodeId>,
}

/// A call's outcome as data or a field error.
pub fn interpret(
    upstream: &Arc<str>,
    outcome: CallOutcome,
    max_response_bytes: usize,
    envelope: Option<&Envelope>,
) -> Result<Data, FieldError> {
    let failed = |code, message: String| Err(FieldError::new(code, message).blame(upstream));
    let (status, body) = match outcome {
        CallOutcome::Response { status, body } => match gateway_failure(status, &body) {
            Some(failure) => return failure_error(upstream, failure, max_response_bytes),
            None if body.len() > max_response_bytes => {
                return failure_error(
                    upstream,
                    CallFailure::TooLarge(body.len()),
                    max_response_bytes,
                )
            }
            None => (status, body),
        },
        CallOutcome::Failed(failure) => {
            return failure_error(upstream, failure, max_response_bytes)
        }
    };
    if !(200..300).contains(&status) {
        return Err(FieldError::new(
            ErrorCode::UpstreamHttpError,
            format!("function {upstream} answered HTTP {status}"),
        )
        .blame(upstream)
        .with("status", JsonValue::from(status)));
    }
    let answer = match Answer::parse(&body) {
        Ok(answer) => answer,
        Err(e) => {
            return failed(
                ErrorCode::UpstreamBadResponse,
                format!("function {upstream} answered with a body that is not JSON ({e})"),
            )
        }
    };
    let root = answer.root();
    let Some(envelope) = envelope else {
        return Ok(Data {
            node: Some(root),
            answer,
        });
    };
    if !answer.is_object(root) {
        return failed(
            ErrorCode::UpstreamBadResponse,
            format!("function {upstream} answered without its envelope (not an object)"),
        );
    }
    let Some(code) = answer.lookup(root, &envelope.code) else {
        return failed(
            ErrorCode::UpstreamBadResponse,
            format!(
                "function {upstream} answered without its envelope's `{}`",
                envelope.code.join(".")
            ),
        );
    };
    if envelope.success.iter().any(|s| equals(&answer, code, s)) {
        let node = match &envelope.data {
            Some(path) => answer.lookup(root, path),
            None => Some(root),
        };
        return Ok(Data { answer, node });
    }
    let message = envelope
        .message
        .as_ref()
        .and_then(|path| answer.lookup(root, path))
        .map_or(JsonValue::Null, |n| answer.to_value(n));
    let text = match &message {
        JsonValue::String(m) => m.as_str().to_string(),
        JsonValue::Null => "no message".to_string(),
        other => other.to_string(),
    };
    let code = answer.to_value(code);
    Err(FieldError::new(
        ErrorCode::UpstreamError,
        format!("function {upstream} answered with error code {code}: {text}"),
    )
    .blame(upstream)
    .with("functionCode", code)
    .with("functionMessage", message))
}

/// Whether a scalar node equals a configured JSON value (`0` and `"0"`
/// differ, `0` and `0.0` do not).
fn equals(answer: &Answer, node: NodeId, value: &JsonValue) -> bool {
    match (answer.node(node), value) {
        (Node::Null, JsonValue::Null) => true,
        (Node::Bool(a), JsonValue::Bool(b)) => a == *b,
        (Node::Str(span), JsonValue::String(b)) => answer.text(span) == b.as_str(),
        (Node::Int(a), JsonValue::Number(b)) => {
            b.as_i64() == Some(a) || (b.is_f64() && b.as_f64() == Some(a as f64))
        }
        (Node::UInt(a), JsonValue::Number(b)) => b.as_u64() == Some(a),
        (Node::Float(a), JsonValue::Number(b)) => b.as_f64() == Some(a),
        _ => false,
    }
}

fn failure_error(
    upstream: &Arc<str>,
    failure: CallFailure,
    max_response_bytes: usize,
) -> Result<Data, FieldError> {
    let error = match failure {
        CallFailure::Timeout => FieldError::new(
            ErrorCode::UpstreamTimeout,
            format!("function {upstream} did not answer in time"),
        ),
        CallFailure::TooLarge(size) => FieldError::new(
            ErrorCode::UpstreamResponseTooLarge,
            format!(
                "function {upstream} answered {size} bytes, more than `limits.max_response_bytes` ({max_response_bytes})"
            ),
        ),
        CallFailure::Unavailable(reason) | CallFailure::Rejected(reason) => FieldError::new(
            ErrorCode::UpstreamUnavailable,
            format!("function {upstream} is unavailable: {reason}"),
        ),
    };
    Err(error.blame(upstream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream() -> Arc<str> {
        Arc::from("platform")
    }

    fn envelope() -> Envelope {
        Envelope {
            code: vec!["code".into()],
            success: vec![JsonValue::from(0)],
            message: Some(vec!["msg".into()]),
            data: Some(vec!["data".into()]),
        }
    }

    #[test]
    fn envelopes_unwrap_their_data_or_give_the_function_error() {
        let ok = CallOutcome::response(200, br#"{"code": 0, "data": {"a": 1}}"#.to_vec());
        let data = interpret(&upstream(), ok, 1000, Some(&envelope())).unwrap();
        let node = data.node.unwrap();
        assert!(data.answer.get(node, "a").is_some());
        let failed = CallOutcome::response(200, br#"{"code": 7, "msg": "nope"}"#.to_vec());
        let error = interpret(&upstream(), failed, 1000, Some(&envelope())).unwrap_err();
        assert_eq!(error.code, ErrorCode::UpstreamError);
        assert_eq!(error.upstream.as_deref(), Some("platform"));
        assert!(error.message.contains("nope"), "{}", error.message);
    }

    #[test]
    fn failures_are_typed_and_blamed() {
        let cases = [
            (
                CallOutcome::response(404, vec![]),
                ErrorCode::UpstreamHttpError,
            ),
            (
                CallOutcome::Failed(CallFailure::Timeout),
                ErrorCode::UpstreamTimeout,
            ),
            (
                CallOutcome::response(200, vec![b'x'; 2000]),
                ErrorCode::UpstreamResponseTooLarge,
            ),
            (
                CallOutcome::response(200, b"<html>".to_vec()),
                ErrorCode::UpstreamBadResponse,
            ),
        ];
        for (outcome, code) in cases {
            let error = interpret(&upstream(), outcome, 1000, None).unwrap_err();
            assert_eq!(error.code, code);
            assert_eq!(error.upstream.as_deref(), Some("platform"));
        }
    }
}
