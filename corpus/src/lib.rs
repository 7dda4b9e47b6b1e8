//! The GraphQL corpus: requests and the responses they must get, in YAML
//! files under `corpus/cases/`, against the schema in `corpus/schema.graphql`.
//!
//! The same cases run natively against the engine (`filter/tests/corpus.rs`)
//! and through real Envoy (`envoy/e2e`), so both paths answer alike.
//!
//! A case:
//!
//! ```yaml
//! - name: aliases with different arguments make two calls
//!   query: '{ a: user(id: "1") { name } b: user(id: "2") { name } }'
//!   variables: {}          # optional
//!   operationName: Name    # optional
//!   get: true              # optional: send as GET with URL parameters
//!   method: PUT            # optional: another method (body as for POST)
//!   headers: {accept: application/graphql-response+json}   # optional
//!   contentType: text/plain  # optional: the request's content type (default application/json)
//!   rawBody: '...'         # optional: the body as is, instead of query/variables
//!   variant: private       # optional: the configuration with introspection off
//!   expect:
//!     status: 200                   # default 200
//!     contentType: application/json # default application/json
//!     headers: {allow: POST}        # optional, exact values
//!     response: {...}               # the whole body, exactly; or:
//!     data: {...}                   # `data`, exactly (null allowed)
//!     noData: true                  # no `data` key at all (a request error)
//!     errors:                       # exactly these errors, in order
//!       - {code: UPSTREAM_HTTP_ERROR, path: [b], message: "part of the message"}
//!     calls: 2                      # function calls made (checked natively)
//! ```

use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The corpus schema (SDL with `@http`), as configured.
pub const SCHEMA: &str = include_str!("../schema.graphql");

/// The upstream name the schema's `@http` directives use.
pub const UPSTREAM: &str = "fn";

/// The amplification tests' schema (`corpus/people.graphql`): `person(id)`
/// and its `friends`, batched by id, where everyone is everyone's friend.
/// The corpus cases do not use it; it has a configuration of its own,
/// [`people_filter_config`].
pub const PEOPLE_SCHEMA: &str = include_str!("../people.graphql");

/// The filter configuration of [`PEOPLE_SCHEMA`], calling the functions at
/// `target` under `/function`, every limit at its default.
pub fn people_filter_config(target: &str) -> Value {
    json!({
        "schema": PEOPLE_SCHEMA,
        "upstreams": {
            UPSTREAM: {"target": target, "authority": "functions", "path_prefix": "/function", "timeout_ms": 5000}
        }
    })
}

/// `{ person(id: "1") { friends { ... { id } } } }` with `levels` levels of
/// `friends` (at least one): `30^levels` ids at the bottom.
pub fn friends_query(levels: usize) -> String {
    let levels = levels.max(1);
    format!(
        "{{ person(id: \"1\") {{ {}id{} }} }}",
        "friends { ".repeat(levels),
        " }".repeat(levels)
    )
}

/// Which configuration a case runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The corpus schema with introspection on.
    Public,
    /// The same with `"introspection": false`.
    Private,
}

impl Variant {
    /// Both variants.
    pub const ALL: [Variant; 2] = [Variant::Public, Variant::Private];

    /// A short name, for listener names.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Public => "public",
            Variant::Private => "private",
        }
    }
}

/// The filter configuration of a variant, calling the functions at
/// `target` (an Envoy cluster or a Kong `host:port`) under `/function`.
pub fn filter_config(variant: Variant, target: &str) -> Value {
    json!({
        "schema": SCHEMA,
        "introspection": variant == Variant::Public,
        "upstreams": {
            UPSTREAM: {"target": target, "authority": "functions", "path_prefix": "/function", "timeout_ms": 5000},
            // A platform team's functions: answers in a {code, msg, data}
            // envelope, an internal token, the client's login as x-user-token.
            "platform": {
                "target": target, "authority": "functions", "path_prefix": "/function",
                "envelope": {"code": "code", "success": [0], "message": "msg", "data": "data"},
                "headers": {"x-internal-token": "s3cret"},
                "rename_headers": {"authorization": "x-user-token"}
            },
            "internal": {
                "target": target, "authority": "functions", "path_prefix": "/function",
                "headers": {"x-internal-token": "s3cret"},
                "rename_headers": {"authorization": "x-user-token"}
            }
        }
    })
}

/// One request and what it must get.
#[derive(Clone, Debug)]
pub struct Case {
    /// `file: name`, for reports.
    pub id: String,
    /// The configuration it runs against.
    pub variant: Variant,
    /// HTTP method.
    pub method: String,
    /// Path and query string (`/graphql...`).
    pub path: String,
    /// Request headers (lower-case names), `content-type` included.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    expect: Map<String, Value>,
}

/// The directory of the case files.
pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases")
}

/// Every case of every `cases/*.yaml` file, files in name order.
pub fn cases() -> Result<Vec<Case>, String> {
    let dir = cases_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let list: Vec<Value> = serde_norway::from_str(&text)
            .map_err(|e| format!("{} is not a YAML list of cases: {e}", file.display()))?;
        for raw in list {
            out.push(Case::from_yaml(&stem, raw)?);
        }
    }
    Ok(out)
}

fn text_of(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_string)
}

impl Case {
    fn from_yaml(file: &str, raw: Value) -> Result<Case, String> {
        let Value::Object(map) = raw else {
            return Err(format!("{file}: a case is not a mapping"));
        };
        let name = text_of(&map, "name").ok_or_else(|| format!("{file}: a case has no name"))?;
        let id = format!("{file}: {name}");
        let known = [
            "name",
            "query",
            "variables",
            "operationName",
            "get",
            "method",
            "headers",
            "contentType",
            "rawBody",
            "variant",
            "expect",
        ];
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!("{id}: unknown key `{unknown}`"));
        }
        let variant = match text_of(&map, "variant").as_deref() {
            None | Some("public") => Variant::Public,
            Some("private") => Variant::Private,
            Some(other) => return Err(format!("{id}: unknown variant {other:?}")),
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(Value::Object(h)) = map.get("headers") {
            for (k, v) in h {
                headers.push((
                    k.to_ascii_lowercase(),
                    v.as_str().unwrap_or_default().into(),
                ));
            }
        }
        let is_get = map.get("get").and_then(Value::as_bool).unwrap_or(false);
        let mut params = Map::new();
        for key in ["query", "variables", "operationName"] {
            if let Some(v) = map.get(key) {
                params.insert(key.to_string(), v.clone());
            }
        }
        let (method, path, body) = if is_get {
            let mut url = String::from("/graphql");
            for (i, (k, v)) in params.iter().enumerate() {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let sep = if i == 0 { '?' } else { '&' };
                let value = percent_encoding::utf8_percent_encode(
                    &text,
                    percent_encoding::NON_ALPHANUMERIC,
                );
                let _ = write!(url, "{sep}{k}={value}");
            }
            ("GET".to_string(), url, Vec::new())
        } else {
            let body = match text_of(&map, "rawBody") {
                Some(raw) => raw.into_bytes(),
                None => Value::Object(params).to_string().into_bytes(),
            };
            let method = text_of(&map, "method").unwrap_or_else(|| "POST".into());
            (method, "/graphql".to_string(), body)
        };
        if !is_get {
            match map.get("contentType") {
                Some(Value::Null) => {}
                Some(Value::String(t)) => headers.push(("content-type".into(), t.clone())),
                _ => headers.push(("content-type".into(), "application/json".into())),
            }
        }
        let expect = match map.get("expect") {
            Some(Value::Object(e)) => e.clone(),
            _ => return Err(format!("{id}: no `expect` mapping")),
        };
        let known = [
            "status",
            "contentType",
            "headers",
            "response",
            "data",
            "noData",
            "errors",
            "calls",
        ];
        if let Some(unknown) = expect.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!("{id}: unknown expect key `{unknown}`"));
        }
        Ok(Case {
            id,
            variant,
            method,
            path,
            headers,
            body,
            expect,
        })
    }

    /// The function calls the case expects, if it says.
    pub fn expected_calls(&self) -> Option<u64> {
        self.expect.get("calls").and_then(Value::as_u64)
    }

    /// Checks a reply; the error lists every difference.
    pub fn check(
        &self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), String> {
        let mut problems = Vec::new();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let want_status = self
            .expect
            .get("status")
            .and_then(Value::as_u64)
            .unwrap_or(200);
        if u64::from(status) != want_status {
            problems.push(format!("status {status}, expected {want_status}"));
        }
        let want_type =
            text_of(&self.expect, "contentType").unwrap_or_else(|| "application/json".into());
        if header("content-type") != Some(want_type.as_str()) {
            problems.push(format!(
                "content-type {:?}, expected {want_type:?}",
                header("content-type")
            ));
        }
        if let Some(Value::Object(want)) = self.expect.get("headers") {
            for (name, value) in want {
                if header(name) != value.as_str() {
                    problems.push(format!(
                        "header {name}: {:?}, expected {value}",
                        header(name)
                    ));
                }
            }
        }
        let body: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!(
                    "body is not JSON ({e}): {}",
                    String::from_utf8_lossy(body)
                ));
                return Err(self.report(problems, &Value::Null));
            }
        };
        if let Some(want) = self.expect.get("response") {
            if &body != want {
                problems.push(format!("response differs; expected {want}"));
            }
        }
        if let Some(want) = self.expect.get("data") {
            match body.get("data") {
                Some(data) if data == want => {}
                other => problems.push(format!("data {}, expected {want}", show(other))),
            }
        }
        if self.expect.get("noData").and_then(Value::as_bool) == Some(true)
            && body.get("data").is_some()
        {
            problems.push("a `data` key, expected none (a request error)".into());
        }
        if let Some(Value::Array(want)) = self.expect.get("errors") {
            let got = body
                .get("errors")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if got.len() != want.len() {
                problems.push(format!("{} errors, expected {}", got.len(), want.len()));
            }
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                if let Some(code) = w.get("code") {
                    if g.pointer("/extensions/code") != Some(code) {
                        problems.push(format!(
                            "errors[{i}].extensions.code {}, expected {code}",
                            show(g.pointer("/extensions/code"))
                        ));
                    }
                }
                if let Some(path) = w.get("path") {
                    if g.get("path") != Some(path) {
                        problems.push(format!(
                            "errors[{i}].path {}, expected {path}",
                            show(g.get("path"))
                        ));
                    }
                }
                if let Some(part) = w.get("message").and_then(Value::as_str) {
                    let message = g.get("message").and_then(Value::as_str).unwrap_or_default();
                    if !message.contains(part) {
                        problems.push(format!(
                            "errors[{i}].message {message:?} does not contain {part:?}"
                        ));
                    }
                }
            }
        } else if self.expect.get("response").is_none() && body.get("errors").is_some() {
            problems.push("errors, expected none".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(self.report(problems, &body))
        }
    }

    fn report(&self, problems: Vec<String>, body: &Value) -> String {
        format!(
            "{}:\n  - {}\n  reply: {body}\n  request: {} {} {}",
            self.id,
            problems.join("\n  - "),
            self.method,
            self.path,
            String::from_utf8_lossy(&self.body)
        )
    }
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "absent".to_string(), Value::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friends_queries_nest() {
        assert_eq!(
            friends_query(3),
            r#"{ person(id: "1") { friends { friends { friends { id } } } } }"#
        );
        assert_eq!(friends_query(0), friends_query(1));
        assert!(people_filter_config("c")["schema"]
            .as_str()
            .is_some_and(|s| s.contains("friends: [Person]")));
    }

    #[test]
    fn every_case_file_loads() {
        let cases = cases().unwrap();
        assert!(cases.len() >= 60, "only {} cases", cases.len());
        let mut ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "case names must be unique per file");
    }
}
