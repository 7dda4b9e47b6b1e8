//! The identity step (login-state conversion): before any field's call, a
//! client's credential (a cookie, a token) is sent to an identity function,
//! which verifies it and answers with the platform's view of the user. The
//! part of that answer `identity.result` selects is the request's
//! identity, which every template may read as `{identity.<key>}`.
//!
//! A request whose identity is required and that sends no credential, or
//! whose credential the identity function refuses, or whose identity call
//! fails, is answered 401 with an `UNAUTHENTICATED` error, and no other
//! call is made. An optional identity is absent when the client sends no
//! credential. Nothing of the credential is ever written to a log or an
//! error: only which header carried one.

use crate::error::ErrorCode;
use crate::execute::interpret;
use crate::key_path;
use crate::request::ResponseMedia;
use crate::response::{self, Outcome, Reply};
use crate::upstream::{is_hop_by_hop, CallOutcome, Upstream, RESERVED};
use apollo_compiler::response::JsonValue;
use serde::Deserialize;
use std::fmt;

/// `identity` as written in the configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    upstream: String,
    #[serde(default = "get")]
    method: String,
    path: String,
    credential_headers: Vec<String>,
    result: Option<String>,
    #[serde(default = "yes")]
    required: bool,
    cache_ttl_ms: Option<u64>,
}

fn get() -> String {
    "GET".into()
}

fn yes() -> bool {
    true
}

/// The identity step, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The identity function's upstream (a name in `upstreams`).
    pub upstream: String,
    /// `GET` or `POST` (a POST carries no body: the credential travels in
    /// the headers).
    pub method: String,
    /// The call's path and query, after the upstream's `path_prefix`.
    pub path: String,
    /// The client headers that carry a credential (lower case), sent to
    /// the identity function as they are; a request carrying none of them
    /// has no credential.
    pub credential_headers: Vec<String>,
    /// Where the identity is in the function's answer (inside its
    /// envelope's data, when its upstream has one); empty: all of it.
    pub result: Vec<String>,
    /// Whether a request without a credential is refused (true) or runs
    /// without an identity (false).
    pub required: bool,
    /// How long a credential's identity is kept in the answer cache
    /// (shared by the workers, keyed by everything the call sends, so by
    /// the credential); `None`: as the function's `cache-control` says.
    pub cache_ttl_ms: Option<u64>,
}

/// Why `identity` cannot be used; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfigError(pub String);

impl fmt::Display for IdentityConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "identity: {}", self.0)
    }
}

impl Identity {
    /// Checks `identity` against the configured upstreams.
    pub fn load(
        raw: RawIdentity,
        upstreams: &std::collections::BTreeMap<String, Upstream>,
    ) -> Result<Identity, IdentityConfigError> {
        let problem = |text: String| Err(IdentityConfigError(text));
        if !upstreams.contains_key(&raw.upstream) {
            return problem(format!(
                "`upstream` {:?} is not in `upstreams`; add the identity function there",
                raw.upstream
            ));
        }
        let method = raw.method.to_ascii_uppercase();
        if method != "GET" && method != "POST" {
            return problem(format!("`method` {:?} must be GET or POST", raw.method));
        }
        if !raw.path.starts_with('/')
            || raw
                .path
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '#' || c == '{' || c == '}')
        {
            return problem(format!(
                "`path` {:?} must start with `/` and hold no spaces, `#` or placeholders",
                raw.path
            ));
        }
        if raw.credential_headers.is_empty() {
            return problem(
                "`credential_headers` must name the client headers that carry a credential, e.g. [\"cookie\"] or [\"authorization\"]".into(),
            );
        }
        let mut credential_headers = Vec::new();
        for header in raw.credential_headers {
            let lower = header.to_ascii_lowercase();
            let plain = !lower.is_empty()
                && lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !plain || is_hop_by_hop(&lower) || RESERVED.contains(&lower.as_str()) {
                return problem(format!(
                    "`credential_headers` entry {header:?} is not a header a client credential can come in"
                ));
            }
            if !credential_headers.contains(&lower) {
                credential_headers.push(lower);
            }
        }
        let result = match raw.result.as_deref() {
            None | Some("") => Vec::new(),
            Some(path) => {
                key_path::parse(path).map_err(|e| IdentityConfigError(format!("`result`: {e}")))?
            }
        };
        let cache_ttl_ms = match raw.cache_ttl_ms {
            Some(0) => {
                return problem(
                    "`cache_ttl_ms` must be greater than 0 (leave it out to follow the identity function's cache-control)".into(),
                )
            }
            // A revoked session stays valid for as long as it is kept.
            Some(ms) if ms > MAX_CACHE_TTL_MS => {
                return problem(format!(
                    "`cache_ttl_ms` must be at most {MAX_CACHE_TTL_MS} (1 hour): a revoked credential stays valid for as long as its identity is kept"
                ))
            }
            other => other,
        };
        Ok(Identity {
            upstream: raw.upstream,
            method,
            path: raw.path,
            credential_headers,
            result,
            required: raw.required,
            cache_ttl_ms,
        })
    }

    /// Whether the client's headers (lower-case names) carry a credential.
    pub fn has_credential(&self, client_headers: &[(String, String)]) -> bool {
        client_headers
            .iter()
            .any(|(name, value)| !value.trim().is_empty() && self.credential_headers.contains(name))
    }

    /// The request's identity from the identity call's outcome: the value
    /// at `result` in the function's data, or why the credential is not
    /// taken.
    pub fn resolve(
        &self,
        upstream: &Upstream,
        outcome: CallOutcome,
        max_response_bytes: usize,
    ) -> Result<JsonValue, Refusal> {
        let status = match &outcome {
            CallOutcome::Response { status, .. } => Some(*status),
            CallOutcome::Failed(_) => None,
        };
        let data = interpret::interpret(
            &upstream.name,
            outcome,
            max_response_bytes,
            upstream.envelope.as_ref(),
        )
        .map_err(|error| match (status, error.code) {
            // Only "who are you?" answers refuse the credential; anything
            // else (a missing or throttled function, an outage) leaves it
            // unverified.
            (Some(status @ (401 | 403)), _) => Refusal::Refused(format!("HTTP {status}")),
            (_, ErrorCode::UpstreamError) => {
                Refusal::Refused("an error code in its envelope".into())
            }
            _ => Refusal::Failed(error.message),
        })?;
        let node = data
            .node
            .and_then(|node| data.answer.lookup(node, &self.result))
            .filter(|node| !data.answer.is_null(*node));
        let Some(node) = node else {
            return Err(Refusal::NoIdentity(self.result.join(".")));
        };
        let identity = data.answer.to_value(node);
        // Every call of the request may carry it: it is kept small.
        let size = serde_json::to_vec(&identity).map_or(usize::MAX, |v| v.len());
        if size > MAX_IDENTITY_BYTES {
            return Err(Refusal::Failed(format!(
                "the identity is {size} bytes, over {MAX_IDENTITY_BYTES}; select less of the answer with `identity.result`"
            )));
        }
        Ok(identity)
    }
}

/// The longest `identity.cache_ttl_ms`: 1 hour.
pub const MAX_CACHE_TTL_MS: u64 = 3_600_000;

/// The largest identity (as JSON) a request takes: every call may carry
/// parts of it.
pub const MAX_IDENTITY_BYTES: usize = 16 * 1024;

/// Why a request has no identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request carries none of the credential headers.
    NoCredential(Vec<String>),
    /// The identity function refused the credential: how (`HTTP 401`,
    /// `HTTP 403`, an envelope's error code).
    Refused(String),
    /// The identity function's answer holds no identity at `result`.
    NoIdentity(String),
    /// The identity call failed (timed out, unreachable, a status other
    /// than 401 and 403, an answer that is not JSON, an identity too
    /// large...): what happened.
    Failed(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoCredential(headers) => write!(
                f,
                "this gateway needs a credential: send it in {}",
                headers.join(" or ")
            ),
            Refusal::Refused(how) => write!(
                f,
                "the credential was refused (the identity function answered {how})"
            ),
            Refusal::NoIdentity(result) if result.is_empty() => {
                write!(
                    f,
                    "the credential was refused (the identity function answered null)"
                )
            }
            Refusal::NoIdentity(result) => write!(
                f,
                "the credential was refused (the identity function's answer has no `{result}`)"
            ),
            Refusal::Failed(what) => write!(f, "the credential could not be verified: {what}"),
        }
    }
}

impl Identity {
    /// The `www-authenticate` challenge of a 401 (RFC 9110 §11.6.1 asks
    /// for one): `Bearer` when credentials come in `authorization`, else
    /// `Cookie` (the login page of the client's own business line sets
    /// it).
    pub fn challenge(&self) -> &'static str {
        if self.credential_headers.iter().any(|h| h == "authorization") {
            "Bearer realm=\"graphql\""
        } else {
            "Cookie realm=\"graphql\""
        }
    }
}

/// The reply to a request without an identity it needs: 401 with the
/// identity's `challenge`, one `UNAUTHENTICATED` error, no `data`, never
/// cached.
pub fn unauthenticated(refusal: &Refusal, challenge: &'static str, media: ResponseMedia) -> Reply {
    let mut reply =
        response::graphql_error(401, refusal.to_string(), ErrorCode::Unauthenticated, media);
    reply.outcome = Outcome::Unauthenticated;
    // RFC 6750 §3: a bearer token that was refused says so.
    let refused = matches!(refusal, Refusal::Refused(_) | Refusal::NoIdentity(_));
    let challenge: std::borrow::Cow<'static, str> = if refused && challenge.starts_with("Bearer") {
        format!("{challenge}, error=\"invalid_token\"").into()
    } else {
        challenge.into()
    };
    reply.headers.push(("www-authenticate".into(), challenge));
    reply
        .headers
        .push(("cache-control".into(), "no-store".into()));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::CallFailure;
    use std::collections::BTreeMap;

    fn upstreams() -> BTreeMap<String, Upstream> {
        let gateway = crate::config::Gateway::from_json(
            r#"{"schema": "type Query { a: String @http(upstream: \"id\", path: \"/a\") }",
                "upstreams": {"id": {"target": "id"}}}"#,
        )
        .unwrap();
        gateway.upstreams
    }

    fn identity(raw: serde_json::Value) -> Result<Identity, IdentityConfigError> {
        Identity::load(serde_json::from_value(raw).unwrap(), &upstreams())
    }

    #[test]
    fn loads_with_defaults_and_names_bad_settings() {
        let loaded = identity(serde_json::json!({
            "upstream": "id", "path": "/verify", "credential_headers": ["Cookie"], "result": "data"
        }))
        .unwrap();
        assert_eq!(loaded.method, "GET");
        assert!(loaded.required);
        assert_eq!(loaded.credential_headers, ["cookie"]);
        assert_eq!(loaded.result, ["data"]);
        for (raw, problem) in [
            (
                serde_json::json!({"upstream": "nope", "path": "/v", "credential_headers": ["cookie"]}),
                "not in `upstreams`",
            ),
            (
                serde_json::json!({"upstream": "id", "path": "v", "credential_headers": ["cookie"]}),
                "`path`",
            ),
            (
                serde_json::json!({"upstream": "id", "path": "/v/{args.x}", "credential_headers": ["cookie"]}),
                "placeholders",
            ),
            (
                serde_json::json!({"upstream": "id", "path": "/v", "credential_headers": []}),
                "credential_headers",
            ),
            (
                serde_json::json!({"upstream": "id", "path": "/v", "credential_headers": ["host"]}),
                "credential_headers",
            ),
            (
                serde_json::json!({"upstream": "id", "path": "/v", "method": "PUT", "credential_headers": ["cookie"]}),
                "GET or POST",
            ),
            (
                serde_json::json!({"upstream": "id", "path": "/v", "credential_headers": ["cookie"], "cache_ttl_ms": 0}),
                "cache_ttl_ms",
            ),
        ] {
            let error = identity(raw).unwrap_err().to_string();
            assert!(error.contains(problem), "{error}");
        }
    }

    #[test]
    fn an_envelope_error_refuses_the_credential() {
        let gateway = crate::config::Gateway::from_json(
            r#"{"schema": "type Query { a: String @http(upstream: \"id\", path: \"/a\") }",
                "upstreams": {"id": {"target": "id", "envelope": {"code": "code", "success": [0], "data": "data"}}},
                "identity": {"upstream": "id", "path": "/v", "credential_headers": ["cookie"]}}"#,
        )
        .unwrap();
        let identity = gateway.identity.as_ref().unwrap();
        let upstream = &gateway.upstreams["id"];
        let refused = identity.resolve(
            upstream,
            CallOutcome::response(200, br#"{"code": 40101, "msg": "expired"}"#.to_vec()),
            1 << 20,
        );
        assert_eq!(
            refused,
            Err(Refusal::Refused("an error code in its envelope".into()))
        );
        let found = identity.resolve(
            upstream,
            CallOutcome::response(200, br#"{"code": 0, "data": {"uid": "u-1"}}"#.to_vec()),
            1 << 20,
        );
        assert_eq!(
            found,
            Ok(JsonValue::from(serde_json::json!({"uid": "u-1"})))
        );
    }

    #[test]
    fn a_refused_bearer_token_is_an_invalid_token() {
        let reply = unauthenticated(
            &Refusal::Refused("HTTP 401".into()),
            "Bearer realm=\"graphql\"",
            ResponseMedia::Json,
        );
        let challenge = reply.headers.iter().find(|(k, _)| k == "www-authenticate");
        assert_eq!(
            challenge.map(|(_, v)| v.as_ref()),
            Some("Bearer realm=\"graphql\", error=\"invalid_token\"")
        );
        let missing = unauthenticated(
            &Refusal::NoCredential(vec!["authorization".into()]),
            "Bearer realm=\"graphql\"",
            ResponseMedia::Json,
        );
        let challenge = missing
            .headers
            .iter()
            .find(|(k, _)| k == "www-authenticate");
        assert_eq!(
            challenge.map(|(_, v)| v.as_ref()),
            Some("Bearer realm=\"graphql\"")
        );
    }

    #[test]
    fn a_credential_is_a_non_empty_credential_header() {
        let loaded = identity(serde_json::json!({
            "upstream": "id", "path": "/v", "credential_headers": ["cookie", "authorization"]
        }))
        .unwrap();
        let headers = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(loaded.has_credential(&headers(&[("authorization", "Bearer x")])));
        assert!(!loaded.has_credential(&headers(&[("cookie", "")])));
        assert!(!loaded.has_credential(&headers(&[("cookie", "  ")])));
        assert!(!loaded.has_credential(&headers(&[("x-other", "1")])));
    }

    #[test]
    fn the_answer_becomes_the_identity_or_a_refusal() {
        let loaded = identity(serde_json::json!({
            "upstream": "id", "path": "/v", "credential_headers": ["cookie"], "result": "user"
        }))
        .unwrap();
        let upstream = &upstreams()["id"];
        let resolve = |outcome| loaded.resolve(upstream, outcome, 1 << 20);
        assert_eq!(
            resolve(CallOutcome::response(
                200,
                br#"{"user": {"uid": "u-1"}}"#.to_vec()
            )),
            Ok(JsonValue::from(serde_json::json!({"uid": "u-1"})))
        );
        assert_eq!(
            resolve(CallOutcome::response(401, b"{}".to_vec())),
            Err(Refusal::Refused("HTTP 401".into()))
        );
        assert_eq!(
            resolve(CallOutcome::response(200, br#"{"user": null}"#.to_vec())),
            Err(Refusal::NoIdentity("user".into()))
        );
        assert!(matches!(
            resolve(CallOutcome::response(500, b"{}".to_vec())),
            Err(Refusal::Failed(_))
        ));
        // A missing or throttled identity function refuses nobody.
        for status in [404, 429, 503] {
            assert!(matches!(
                resolve(CallOutcome::response(status, b"{}".to_vec())),
                Err(Refusal::Failed(_))
            ));
        }
        let huge = format!(
            r#"{{"user": {{"uid": "{}"}}}}"#,
            "x".repeat(MAX_IDENTITY_BYTES)
        );
        let too_large = resolve(CallOutcome::response(200, huge.into_bytes())).unwrap_err();
        assert!(too_large.to_string().contains("over 16384"), "{too_large}");
        let timed_out = resolve(CallOutcome::Failed(CallFailure::Timeout)).unwrap_err();
        assert!(
            timed_out.to_string().contains("could not be verified"),
            "{timed_out}"
        );
        let reply = unauthenticated(
            &Refusal::Refused("HTTP 401".into()),
            loaded.challenge(),
            ResponseMedia::Json,
        );
        assert_eq!(reply.status, 401);
        assert!(reply
            .headers
            .iter()
            .any(|(k, v)| k == "www-authenticate" && v == "Cookie realm=\"graphql\""));
        let body = String::from_utf8(reply.body).unwrap();
        assert!(body.contains("UNAUTHENTICATED"), "{body}");
    }
}
