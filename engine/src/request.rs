//! GraphQL over HTTP: turning the client's HTTP request into a GraphQL
//! request (`query`, `variables`, `operationName`), and choosing the
//! response's media type.

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
    /// The GraphQL document.
    pub query: Cow<'a, str>,
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
    /// No `query` parameter.
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
            RequestError::MissingQuery => write!(f, "the request has no `query`"),
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
    }
    if let Ok(usual) = serde_json::from_slice::<Usual<'_>>(&request.body) {
        let query = usual.query.ok_or(RequestError::MissingQuery)?.0;
        return Ok(GraphQLRequest {
            query,
            operation_name: usual.operation_name.map(|name| name.0),
            variables: usual.variables.unwrap_or_default(),
            read_only: false,
        });
    }
    let body: Body<'_> = serde_json::from_slice(&request.body)
        .map_err(|e| RequestError::BodyNotJson(e.to_string()))?;
    let is_null = |raw: &Option<&RawValue>| raw.is_none_or(|r| r.get() == "null");
    if is_null(&body.query) {
        return Err(RequestError::MissingQuery);
    }
    let query = body
        .query
        .and_then(text)
        .ok_or_else(|| bad("query", "a string"))?;
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
        operation_name,
        variables,
        read_only: false,
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
    let mut has_query = false;
    for pair in query_string.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value);
        match decode(name).as_str() {
            "query" => {
                request.query = Cow::Owned(value);
                has_query = true;
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
    if !has_query {
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
            query: Cow::Owned(r.query.into_owned()),
            operation_name: r.operation_name.map(|n| Cow::Owned(n.into_owned())),
            variables: r.variables,
            read_only: r.read_only,
        })
    }

    #[test]
    fn reads_a_json_post() {
        let r =
            post(r#"{"query": "{ a }", "variables": {"x": 1}, "operationName": "Op"}"#).unwrap();
        assert_eq!(r.query, "{ a }");
        assert_eq!(r.operation_name.as_deref(), Some("Op"));
        assert_eq!(r.variables.get("x"), Some(&JsonValue::from(1)));
    }

    #[test]
    fn borrows_the_document_and_the_operation_name_when_unescaped() {
        let request = HttpRequest::post_json(
            br#"{"query": "{ a }", "operationName": "Op", "extensions": {}}"#.to_vec(),
        );
        let parsed = parse(&request).unwrap();
        assert!(matches!(parsed.query, Cow::Borrowed("{ a }")));
        assert!(matches!(parsed.operation_name, Some(Cow::Borrowed("Op"))));
        let escaped = HttpRequest::post_json(br#"{"query": "{ \u0061 }"}"#.to_vec());
        assert!(matches!(parse(&escaped).unwrap().query, Cow::Owned(q) if q == "{ a }"));
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
        assert_eq!(escaped.query, "{\n a }");
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
        assert_eq!(r.query, "{ a }");
        assert!(r.read_only);
        assert_eq!(r.variables.get("x"), Some(&JsonValue::from(1)));
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
