//! The ceiling filter (`make bench` only, never shipped).
//!
//! The least a Proxy-Wasm filter can do for the benchmark's seed query:
//! read the POSTed body, find the `"userId":"<id>"` variable with a plain
//! byte search, dispatch the two calls the real filter makes for that query
//! (`GET <prefix>/user-profile?id=<id>`, then, once it has answered,
//! `GET <prefix>/user-orders-batch?ids=<id>`, with the same pseudo-headers
//! and headers), and reply locally with a constant JSON body of about the
//! real reply's size. No GraphQL, no JSON parsing: what is left is what
//! Envoy itself costs for this shape of request, the ceiling for the real
//! filter on one worker.
//!
//! Configuration (the plugin's configuration string, every key optional):
//! `{"cluster": "openfaas", "authority": "gateway.openfaas:8080",
//! "path_prefix": "/function", "graphql_path": "/graphql", "timeout_ms": "5000"}`.
//! Values are read by the same byte search, so they must be plain strings.
//!
//! It never panics: a bad request gets a 400, a failed call a 502.

#[cfg(target_arch = "wasm32")]
mod filter;

/// The local reply: the real filter's answer for user 500 (a typical user
/// of the benchmark's 1..=1000), byte for byte the same size.
pub const REPLY: &str = r#"{"data":{"user":{"id":"500","name":"User 500","email":"user500@example.com","orders":[{"id":"order-50001","amount":5000.5}]}}}"#;

/// Where the calls go and what they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The Envoy cluster the calls are dispatched to.
    pub cluster: String,
    /// The `:authority` of every call.
    pub authority: String,
    /// Prepended to every function path.
    pub path_prefix: String,
    /// Only POSTs to this path (query string ignored) are answered.
    pub graphql_path: String,
    /// The per-call timeout, in milliseconds (also sent as the deadline header).
    pub timeout_ms: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            cluster: "openfaas".into(),
            authority: "gateway.openfaas:8080".into(),
            path_prefix: "/function".into(),
            graphql_path: "/graphql".into(),
            timeout_ms: 5000,
        }
    }
}

impl Settings {
    /// Reads the settings from the configuration text; missing or unusable
    /// keys keep their defaults.
    pub fn parse(config: &[u8]) -> Settings {
        let mut settings = Settings::default();
        let text = |key: &str| {
            string_field(config, key)
                .and_then(|v| std::str::from_utf8(v).ok())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        if let Some(v) = text("cluster") {
            settings.cluster = v;
        }
        if let Some(v) = text("authority") {
            settings.authority = v;
        }
        if let Some(v) = text("path_prefix") {
            settings.path_prefix = v;
        }
        if let Some(v) = text("graphql_path") {
            settings.graphql_path = v;
        }
        if let Some(v) = text("timeout_ms").and_then(|v| v.parse().ok()) {
            settings.timeout_ms = v;
        }
        settings
    }

    /// The first call's `:path`.
    pub fn profile_path(&self, user: &str) -> String {
        format!("{}/user-profile?id={user}", self.path_prefix)
    }

    /// The second call's `:path`.
    pub fn orders_path(&self, user: &str) -> String {
        format!("{}/user-orders-batch?ids={user}", self.path_prefix)
    }

    /// Whether a request's `:path` is the GraphQL path (query string ignored).
    pub fn is_graphql_path(&self, path: &str) -> bool {
        path.split('?').next() == Some(self.graphql_path.as_str())
    }
}

/// The value of the first `"key": "value"` in `text`: a plain byte search,
/// no JSON parsing. `None` when the key is missing, its value is not a
/// string, or the string has an escape.
pub fn string_field<'a>(text: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let needle = format!("\"{key}\"");
    let needle = needle.as_bytes();
    let at = text.windows(needle.len()).position(|w| w == needle)?;
    let rest = text.get(at.checked_add(needle.len())?..)?;
    let rest = skip_space(rest);
    let rest = skip_space(rest.strip_prefix(b":")?);
    let rest = rest.strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest.get(end) != Some(&b'"') {
        return None;
    }
    rest.get(..end)
}

fn skip_space(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// The seed query's user id, if it is safe to put in a path as it is
/// (1 to 64 ASCII letters, digits, `-` or `_`).
pub fn user_id(body: &[u8]) -> Option<&str> {
    let id = string_field(body, "userId")?;
    let plain = !id.is_empty()
        && id.len() <= 64
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    if plain {
        std::str::from_utf8(id).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{"query":"query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }","variables":{"userId":"417"}}"#;

    #[test]
    fn finds_the_user_id() {
        assert_eq!(user_id(SEED.as_bytes()), Some("417"));
        assert_eq!(
            user_id(br#"{"variables": { "userId" :  "ab-1" }}"#),
            Some("ab-1")
        );
        for bad in [
            &br#"{"variables":{"userId":1}}"#[..],
            br#"{"variables":{"userId":"a/b"}}"#,
            br#"{"variables":{"userId":"a\"b"}}"#,
            br#"{"variables":{"userId":""}}"#,
            br#"{"variables":{"userId":"1"#,
            br#"{"variables":{"userId""#,
            b"",
        ] {
            assert_eq!(user_id(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn settings() {
        assert_eq!(Settings::parse(b""), Settings::default());
        let s = Settings::parse(
            br#"{"cluster": "fn", "authority":"a:1", "path_prefix":"", "timeout_ms":"250"}"#,
        );
        assert_eq!(s.cluster, "fn");
        assert_eq!(s.authority, "a:1");
        assert_eq!(s.path_prefix, "/function");
        assert_eq!(s.timeout_ms, 250);
        assert_eq!(s.profile_path("7"), "/function/user-profile?id=7");
        assert_eq!(s.orders_path("7"), "/function/user-orders-batch?ids=7");
        assert!(s.is_graphql_path("/graphql"));
        assert!(s.is_graphql_path("/graphql?x=1"));
        assert!(!s.is_graphql_path("/graphqlx"));
    }

    #[test]
    fn reply_is_json_of_the_real_size() {
        // The real filter's reply for user 500 of the mock functions.
        assert!(REPLY.starts_with(r#"{"data":{"user":{"id":"500""#));
        assert_eq!(REPLY.len(), 126);
    }
}
