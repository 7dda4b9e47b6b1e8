//! GraphQL over HTTP: turning the client's HTTP request into a GraphQL
//! request (`query`, `variables`, `operationName`, and the persisted-query
//! hash of `extensions`), and choosing the response's media type.

use apollo_compiler::response::{JsonMap, JsonValue};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The parts of the client's HTTP request the engine needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path and query string, e.g. `/graphql?query=...`.
    pub path: String,
    /// Request headers, names lower case.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A `POST /graphql` with an `application/json` body (handy in tests).
    pub fn post_json(body: Vec<u8>) -> Self {
        HttpRequest {
            method: "POST".into(),
            path: "/graphql".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }

    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A GraphQL request: what to execute and with which variables. The
/// document and the operation name are borrowed from the body when they
/// have no escapes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphQLRequest<'a> {
    /// The GraphQL document; absent when the request names it by its
    /// persisted-query hash alone.
    pub query: Option<Cow<'a, str>>,
    /// `extensions.persistedQuery.sha256Hash` (Apollo's persisted queries,
    /// version 1), decoded.
    pub persisted: Option<crate::persisted::Hash>,
    /// Which operation of the document to run.
    pub operation_name: Option<Cow<'a, str>>,
    /// Raw (not yet coerced) variable values.
    pub variables: JsonMap,
    /// True for a GET request, which may only run queries.
    pub read_only: bool,
}

/// Why an HTTP request is not a GraphQL request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Neither GET nor POST.
    MethodNotAllowed(String),
    /// A POST whose content type is not `application/json`.
    UnsupportedMediaType(String),
    /// A POST with no body at all.
    EmptyBody,
    /// The body is not JSON.
    BodyNotJson(String),
    /// The body is JSON, but not an object.
    BodyNotObject,
    /// No `query` parameter (and no persisted-query hash).
    MissingQuery,
    /// A parameter of the wrong type.
    BadParameter {
        /// `query`, `variables`, `operationName`...
        name: &'static str,
        /// What it should be.
        expected: &'static str,
    },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::MethodNotAllowed(m) => {
                write!(
                    f,
                    "method {m} is not allowed: send GraphQL with POST (or GET for queries)"
                )
            }
            RequestError::UnsupportedMediaType(t) => write!(
                f,
                "content type {t:?} is not supported: send `application/json` with \
                 {{\"query\": ..., \"variables\": ..., \"operationName\": ...}}"
            ),
            RequestError::EmptyBody => write!(
                f,
                "the request body is empty: send a JSON object such as {{\"query\": \"{{ __typename }}\"}}"
            ),
            RequestError::BodyNotJson(e) => write!(f, "the request body is not valid JSON: {e}"),
            RequestError::BodyNotObject => write!(f, "the request body must be a JSON object"),
            RequestError::MissingQuery => write!(
                f,
                "the request has no `query` (nor an `extensions.persistedQuery` hash)"
            ),
            RequestError::BadParameter { name, expected } => {
                write!(f, "`{name}` must be {expected}")
            }
        }
    }
}

impl std::error::Error for RequestError {}

impl RequestError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::MethodNotAllowed(_) => 405,
            RequestError::UnsupportedMediaType(_) => 415,
            _ => 400,
        }
    }
}

/// Read a GraphQL request from an HTTP request: a `POST` with a JSON body,
/// or a `GET` with URL parameters.
pub fn parse(request: &HttpRequest) -> Result<GraphQLRequest<'_>, RequestError> {
    match request.method.as_str() {
        "POST" => parse_post(request),
        "GET" => parse_get(&request.path),
        other => Err(RequestError::MethodNotAllowed(other.to_string())),
    }
}

fn parse_post(request: &HttpRequest) -> Result<GraphQLRequest<'_>, RequestError> {
    let content_type = request.header("content-type").unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/json")
        && !media.eq_ignore_ascii_case("application/graphql+json")
    {
        return Err(RequestError::UnsupportedMediaType(content_type.to_string()));
    }
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Err(RequestError::EmptyBody);
    }
    // The body's members, each kept as raw JSON text: the document is
    // borrowed from the body, only `variables` is built as a map.
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        query: Option<&'a RawValue>,
        #[serde(borrow, rename = "operationName")]
        operation_name: Option<&'a RawValue>,
        #[serde(borrow)]
        variables: Option<&'a RawValue>,
        #[serde(borrow)]
        extensions: Option<&'a RawValue>,
    }
    let starts_as_object = request
        .body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !starts_as_object {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(&request.body) {
                Ok(_) => RequestError::BodyNotObject,
                Err(e) => RequestError::BodyNotJson(e.to_string()),
            },
        );
    }
    // The usual request reads in one pass; any other (a parameter of the
    // wrong type, invalid JSON) is read again below for an exact error.
    #[derive(serde::Deserialize)]
    struct Usual<'a> {
        #[serde(borrow)]
        query: Option<Text<'a>>,
        #[serde(borrow, rename = "operationName")]
        operation_name: Option<Text<'a>>,
        variables: Option<JsonMap>,
        #[serde(borrow)]
        extensions: Option<&'a RawValue>,
    }
    if let Ok(usual) = serde_json::from_slice::<Usual<'_>>(&request.body) {
        let query = usual.query.map(|query| query.0);
        let persisted = persisted_of(usual.extensions, query.is_some())?;
        if query.is_none() && persisted.is_none() {
            return Err(RequestError::MissingQuery);
        }
        return Ok(GraphQLRequest {
            query,
            persisted,
            operation_name: usual.operation_name.map(|name| name.0),
            variables: usual.variables.unwrap_or_default(),
            read_only: false,
        });
    }
    let body: Body<'_> = serde_json::from_slice(&request.body)
        .map_err(|e| RequestError::BodyNotJson(e.to_string()))?;
    let is_null = |raw: &Option<&RawValue>| raw.is_none_or(|r| r.get() == "null");
    let query = match body.query {
        raw if is_null(&raw) => None,
        raw => Some(raw.and_then(text).ok_or_else(|| bad("query", "a string"))?),
    };
    let persisted = persisted_of(body.extensions, query.is_some())?;
    if query.is_none() && persisted.is_none() {
        return Err(RequestError::MissingQuery);
    }
    let operation_name = match body.operation_name {
        raw if is_null(&raw) => None,
        raw => Some(
            raw.and_then(text)
                .ok_or_else(|| bad("operationName", "a string or null"))?,
        ),
    };
    let variables = match body.variables {
        raw if is_null(&raw) => JsonMap::new(),
        Some(raw) => serde_json::from_str::<JsonMap>(raw.get())
            .map_err(|_| bad("variables", "an object or null"))?,
        None => JsonMap::new(),
    };
    Ok(GraphQLRequest {
        query,
        persisted,
        operation_name,
        variables,
        read_only: false,
    })
}

/// The persisted-query hash of a request's `extensions`, if any. With a
/// `query`, `extensions` that are not a well-formed persisted query are
/// ignored, as they always were (and as Apollo Router ignores a hash that
/// is not hex): the request runs its `query`. Without one, they are the
/// request's error.
fn persisted_of(
    extensions: Option<&RawValue>,
    has_query: bool,
) -> Result<Option<crate::persisted::Hash>, RequestError> {
    match extensions.map(persisted_hash) {
        None => Ok(None),
        Some(Err(_)) if has_query => Ok(None),
        Some(result) => result,
    }
}

/// The persisted-query hash of a request's `extensions` (raw JSON):
/// `{"persistedQuery": {"version": 1, "sha256Hash": "<64 hex digits>"}}`.
/// `extensions` may be null, and may hold other members (ignored).
fn persisted_hash(raw: &RawValue) -> Result<Option<crate::persisted::Hash>, RequestError> {
    #[derive(serde::Deserialize)]
    struct Extensions<'a> {
        #[serde(borrow, rename = "persistedQuery")]
        persisted_query: Option<&'a RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct PersistedQuery<'a> {
        version: Option<serde_json::Value>,
        #[serde(borrow, rename = "sha256Hash")]
        sha256_hash: Option<Text<'a>>,
    }
    if raw.get() == "null" {
        return Ok(None);
    }
    let extensions: Extensions<'_> =
        serde_json::from_str(raw.get()).map_err(|_| bad("extensions", "an object or null"))?;
    let Some(persisted) = extensions.persisted_query.filter(|p| p.get() != "null") else {
        return Ok(None);
    };
    let persisted: PersistedQuery<'_> = serde_json::from_str(persisted.get()).map_err(|_| {
        bad(
            "extensions.persistedQuery",
            "an object {\"version\": 1, \"sha256Hash\": \"<SHA-256 of the query, in hex>\"}",
        )
    })?;
    if persisted.version.and_then(|v| v.as_u64()) != Some(1) {
        return Err(bad(
            "extensions.persistedQuery.version",
            "1 (the only version of persisted queries)",
        ));
    }
    persisted
        .sha256_hash
        .and_then(|hash| crate::persisted::parse_hash(&hash.0))
        .map(Some)
        .ok_or_else(|| {
            bad(
                "extensions.persistedQuery.sha256Hash",
                "the SHA-256 of the query in hex (64 digits)",
            )
        })
}

/// A JSON string's text, borrowed from the body when it has no escapes
/// (serde borrows a bare `Cow<str>` field, but not one inside an `Option`).
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// A JSON string's text: borrowed when it has no escapes.
fn text(raw: &RawValue) -> Option<Cow<'_, str>> {
    let json = raw.get();
    match serde_json::from_str::<&str>(json) {
        Ok(borrowed) => Some(Cow::Borrowed(borrowed)),
        Err(_) => serde_json::from_str::<String>(json).ok().map(Cow::Owned),
    }
}

fn parse_get(path: &str) -> Result<GraphQLRequest<'static>, RequestError> {
    let query_string = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let mut request = GraphQLRequest {
        read_only: true,
        ..GraphQLRequest::default()
    };
    // Read once every parameter is known: malformed extensions matter only
    // without a `query`.
    let mut extensions = None;
    for pair in query_string.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value);
        match decode(name).as_str() {
            "query" => request.query = Some(Cow::Owned(value)),
            "extensions" if !value.is_empty() => {
                extensions = Some(
                    serde_json::from_str::<&RawValue>(&value)
                        .map(persisted_hash)
                        .unwrap_or_else(|_| Err(bad("extensions", "a JSON object"))),
                );
            }
            "operationName" if !value.is_empty() => {
                request.operation_name = Some(Cow::Owned(value))
            }
            "variables" if !value.is_empty() => match serde_json::from_str(&value) {
                Ok(JsonValue::Object(map)) => request.variables = map,
                Ok(JsonValue::Null) => {}
                _ => return Err(bad("variables", "a JSON object")),
            },
            _ => {}
        }
    }
    request.persisted = match extensions {
        None => None,
        Some(Err(_)) if request.query.is_some() => None,
        Some(result) => result?,
    };
    if request.query.is_none() && request.persisted.is_none() {
        return Err(RequestError::MissingQuery);
    }
    Ok(request)
}

fn decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn bad(name: &'static str, expected: &'static str) -> RequestError {
    RequestError::BadParameter { name, expected }
}

/// The media type of the GraphQL response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMedia {
    /// `application/json`: GraphQL errors are answered with 200.
    Json,
    /// `application/graphql-response+json`: requests that fail to parse or
    /// validate get 4xx statuses.
    GraphQLResponseJson,
}

impl ResponseMedia {
    /// Choose from the `Accept` header; `application/json` unless the client
    /// asks for `application/graphql-response+json` first.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let accept = accept.unwrap_or_default().as_bytes();
        let find = |needle: &[u8]| {
            accept
                .windows(needle.len())
                .position(|w| w.eq_ignore_ascii_case(needle))
        };
        let json = find(b"application/json");
        match find(b"application/graphql-response+json") {
            Some(at) if json.is_none_or(|j| at < j) => ResponseMedia::GraphQLResponseJson,
            _ => ResponseMedia::Json,
        }
    }

    /// The `content-type` header value.
    pub fn content_type(self) -> &'static str {
        match self {
            ResponseMedia::Json => "application/json",
            ResponseMedia::GraphQLResponseJson => "application/graphql-response+json",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(body: &str) -> Result<GraphQLRequest<'static>, RequestError> {
        let request = HttpRequest::post_json(body.as_bytes().to_vec());
        parse(&request).map(|r| GraphQLRequest {
            query: r.query.map(|q| Cow::Owned(q.into_owned())),
            persisted: r.persisted,
            operation_name: r.operation_name.map(|n| Cow::Owned(n.into_owned())),
            variables: r.variables,
            read_only: r.read_only,
        })
    }

    #[test]
    fn reads_a_json_post() {
        let r =
            post(r#"{"query": "{ a }", "variables": {"x": 1}, "operationName": "Op"}"#).unwrap();
        assert_eq!(r.query.as_deref(), Some("{ a }"));
        assert_eq!(r.operation_name.as_deref(), Some("Op"));
        assert_eq!(r.variables.get("x"), Some(&JsonValue::from(1)));
    }

    #[test]
    fn borrows_the_document_and_the_operation_name_when_unescaped() {
        let request = HttpRequest::post_json(
            br#"{"query": "{ a }", "operationName": "Op", "extensions": {}}"#.to_vec(),
        );
        let parsed = parse(&request).unwrap();
        assert!(matches!(parsed.query, Some(Cow::Borrowed("{ a }"))));
        assert!(matches!(parsed.operation_name, Some(Cow::Borrowed("Op"))));
        let escaped = HttpRequest::post_json(br#"{"query": "{ \u0061 }"}"#.to_vec());
        assert!(matches!(parse(&escaped).unwrap().query, Some(Cow::Owned(q)) if q == "{ a }"));
        assert_eq!(post(r#"{"query": null}"#), Err(RequestError::MissingQuery));
        assert_eq!(
            post(r#"{"query": "{a}", "variables": null, "operationName": null}"#)
                .unwrap()
                .operation_name,
            None
        );
    }

    #[test]
    fn rejects_bodies_that_are_not_graphql_requests() {
        assert!(matches!(post("{"), Err(RequestError::BodyNotJson(_))));
        assert!(matches!(post(""), Err(RequestError::EmptyBody)));
        assert!(matches!(post(" \n"), Err(RequestError::EmptyBody)));
        assert_eq!(post("[]"), Err(RequestError::BodyNotObject));
        assert_eq!(post("{}"), Err(RequestError::MissingQuery));
        assert_eq!(post("1"), Err(RequestError::BodyNotObject));
        assert_eq!(
            post(r#"{"query": "{ a }", "operationName": 1}"#),
            Err(bad("operationName", "a string or null"))
        );
        let escaped = post(r#"{"query": "{\n a }", "variables": null}"#).unwrap();
        assert_eq!(escaped.query.as_deref(), Some("{\n a }"));
        assert_eq!(post(r#"{"query": 1}"#), Err(bad("query", "a string")));
        assert_eq!(
            post(r#"{"query": "{a}", "variables": []}"#),
            Err(bad("variables", "an object or null"))
        );
        let mut text = HttpRequest::post_json(b"{a}".to_vec());
        text.headers = vec![("content-type".into(), "text/plain".into())];
        assert_eq!(parse(&text).unwrap_err().status(), 415);
    }

    #[test]
    fn reads_a_get() {
        let request = HttpRequest {
            method: "GET".into(),
            path: "/graphql?query=%7B%20a%20%7D&variables=%7B%22x%22%3A1%7D".into(),
            ..HttpRequest::default()
        };
        let r = parse(&request).unwrap();
        assert_eq!(r.query.as_deref(), Some("{ a }"));
        assert!(r.read_only);
        assert_eq!(r.variables.get("x"), Some(&JsonValue::from(1)));
    }

    const HASH: &str = "ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38";

    fn hash() -> crate::persisted::Hash {
        crate::persisted::parse_hash(HASH).unwrap()
    }

    #[test]
    fn reads_a_persisted_query_hash_from_a_post() {
        let only_hash = format!(
            r#"{{"extensions": {{"persistedQuery": {{"version": 1, "sha256Hash": "{HASH}"}}}}}}"#
        );
        let r = post(&only_hash).unwrap();
        assert_eq!((r.query, r.persisted), (None, Some(hash())));
        let both = format!(
            r#"{{"query": "{{__typename}}", "extensions": {{"persistedQuery": {{"version": 1, "sha256Hash": "{}"}}, "other": 1}}}}"#,
            HASH.to_uppercase()
        );
        let r = post(&both).unwrap();
        assert_eq!(r.query.as_deref(), Some("{__typename}"));
        assert_eq!(r.persisted, Some(hash()), "either case");
        // The slow path (an escaped operation name) reads it too.
        let slow = format!(
            r#"{{"query": null, "operationName": 1, "extensions": {{"persistedQuery": {{"version": 1, "sha256Hash": "{HASH}"}}}}}}"#
        );
        assert_eq!(post(&slow), Err(bad("operationName", "a string or null")));
        let slow = format!(
            r#"{{"query": null, "variables": {{"x": [1,]}}, "extensions": {{"persistedQuery": {{"version": 1, "sha256Hash": "{HASH}"}}}}}}"#
        );
        assert!(matches!(post(&slow), Err(RequestError::BodyNotJson(_))));
        assert_eq!(
            post(r#"{"query": "{a}", "extensions": null}"#)
                .unwrap()
                .persisted,
            None
        );
        assert_eq!(
            post(r#"{"extensions": {"persistedQuery": null}}"#),
            Err(RequestError::MissingQuery)
        );
    }

    #[test]
    fn refuses_a_malformed_persisted_query() {
        let with = |persisted: &str| {
            post(&format!(
                r#"{{"extensions": {{"persistedQuery": {persisted}}}}}"#
            ))
        };
        let e = with(r#"{"version": 2, "sha256Hash": "ab"}"#).unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
        let e = with(r#"{"version": 1, "sha256Hash": "abc"}"#).unwrap_err();
        assert!(e.to_string().contains("sha256Hash"), "{e}");
        let e = with(r#"{"version": 1}"#).unwrap_err();
        assert!(e.to_string().contains("sha256Hash"), "{e}");
        let e = with("[]").unwrap_err();
        assert!(e.to_string().contains("extensions.persistedQuery"), "{e}");
        let e = post(r#"{"extensions": 1}"#).unwrap_err();
        assert_eq!(e, bad("extensions", "an object or null"));
        assert_eq!(e.status(), 400);
        // With a `query`, malformed extensions are ignored (as before
        // persisted queries, and as Apollo Router does).
        for extensions in [
            "1",
            r#"{"persistedQuery": {"version": 1, "sha256Hash": "abc"}}"#,
            r#"{"persistedQuery": {"version": 2}}"#,
        ] {
            let r = post(&format!(
                r#"{{"query": "{{a}}", "extensions": {extensions}}}"#
            ))
            .unwrap();
            assert_eq!((r.query.as_deref(), r.persisted), (Some("{a}"), None));
        }
    }

    #[test]
    fn reads_a_persisted_query_hash_from_a_get() {
        let extensions = format!(r#"{{"persistedQuery":{{"version":1,"sha256Hash":"{HASH}"}}}}"#);
        let encoded: String =
            percent_encoding::utf8_percent_encode(&extensions, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let get = |path: String| parse_get(&path);
        let r = get(format!("/graphql?extensions={encoded}&variables=%7B%7D")).unwrap();
        assert_eq!(
            (r.query, r.persisted, r.read_only),
            (None, Some(hash()), true)
        );
        let r = get(format!("/graphql?query=%7Ba%7D&extensions={encoded}")).unwrap();
        assert_eq!(
            (r.query.as_deref(), r.persisted),
            (Some("{a}"), Some(hash()))
        );
        assert_eq!(
            get("/graphql?extensions=%7B%7D".into()),
            Err(RequestError::MissingQuery)
        );
        assert_eq!(
            get("/graphql?extensions=nope".into()),
            Err(bad("extensions", "a JSON object"))
        );
        let r = get("/graphql?extensions=nope&query=%7Ba%7D".into()).unwrap();
        assert_eq!((r.query.as_deref(), r.persisted), (Some("{a}"), None));
    }

    #[test]
    fn negotiates_the_media_type() {
        assert_eq!(ResponseMedia::negotiate(None), ResponseMedia::Json);
        assert_eq!(
            ResponseMedia::negotiate(Some(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            ResponseMedia::GraphQLResponseJson
        );
        assert_eq!(ResponseMedia::negotiate(Some("*/*")), ResponseMedia::Json);
    }
}
