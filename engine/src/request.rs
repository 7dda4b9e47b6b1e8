//! GraphQL over HTTP: turning the client's HTTP request into a GraphQL
//! request (`query`, `variables`, `operationName`), and choosing the
//! response's media type.

use apollo_compiler::response::{JsonMap, JsonValue};
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

/// A GraphQL request: what to execute and with which variables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphQLRequest {
    /// The GraphQL document.
    pub query: String,
    /// Which operation of the document to run.
    pub operation_name: Option<String>,
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
pub fn parse(request: &HttpRequest) -> Result<GraphQLRequest, RequestError> {
    match request.method.as_str() {
        "POST" => parse_post(request),
        "GET" => parse_get(&request.path),
        other => Err(RequestError::MethodNotAllowed(other.to_string())),
    }
}

fn parse_post(request: &HttpRequest) -> Result<GraphQLRequest, RequestError> {
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
    let body: JsonValue = serde_json::from_slice(&request.body)
        .map_err(|e| RequestError::BodyNotJson(e.to_string()))?;
    let JsonValue::Object(mut body) = body else {
        return Err(RequestError::BodyNotObject);
    };
    let query = match body.remove("query") {
        Some(JsonValue::String(q)) => q.as_str().to_string(),
        None | Some(JsonValue::Null) => return Err(RequestError::MissingQuery),
        Some(_) => return Err(bad("query", "a string")),
    };
    let operation_name = match body.remove("operationName") {
        Some(JsonValue::String(name)) => Some(name.as_str().to_string()),
        None | Some(JsonValue::Null) => None,
        Some(_) => return Err(bad("operationName", "a string or null")),
    };
    let variables = match body.remove("variables") {
        Some(JsonValue::Object(map)) => map,
        None | Some(JsonValue::Null) => JsonMap::new(),
        Some(_) => return Err(bad("variables", "an object or null")),
    };
    Ok(GraphQLRequest {
        query,
        operation_name,
        variables,
        read_only: false,
    })
}

fn parse_get(path: &str) -> Result<GraphQLRequest, RequestError> {
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
                request.query = value;
                has_query = true;
            }
            "operationName" if !value.is_empty() => request.operation_name = Some(value),
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
        let accept = accept.unwrap_or_default().to_ascii_lowercase();
        let json = accept.find("application/json");
        match accept.find("application/graphql-response+json") {
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

    fn post(body: &str) -> Result<GraphQLRequest, RequestError> {
        parse(&HttpRequest::post_json(body.as_bytes().to_vec()))
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
    fn rejects_bodies_that_are_not_graphql_requests() {
        assert!(matches!(post("{"), Err(RequestError::BodyNotJson(_))));
        assert!(matches!(post(""), Err(RequestError::EmptyBody)));
        assert!(matches!(post(" \n"), Err(RequestError::EmptyBody)));
        assert_eq!(post("[]"), Err(RequestError::BodyNotObject));
        assert_eq!(post("{}"), Err(RequestError::MissingQuery));
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
