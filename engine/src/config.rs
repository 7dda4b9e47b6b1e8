//! The plugin configuration: JSON text as Envoy's `configuration` or Kong's
//! filter `config` delivers it, checked once and shared by every request.

use crate::key_path;
use crate::limits::Limits;
use crate::schema::{self, Discriminator, Resolvers};
use crate::template::{HeaderTemplate, Source};
use crate::upstream::{
    is_hop_by_hop, is_safe_header_value, Envelope, Upstream, DEADLINE_HEADER, DEFAULT_TIMEOUT,
    RESERVED,
};
use apollo_compiler::response::JsonValue;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Schema};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

/// The longest `deadline_ms` and `timeout_ms`: 24 hours (hosts take
/// timeouts as 32-bit milliseconds).
pub const MAX_MILLIS: u64 = 86_400_000;

/// The default of `deadline_ms`: the longest a request may take in all.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// Every top-level key of the configuration: Kong's `meta.json` schema
/// must list each (a deploy test holds it), or Kong refuses it.
pub const KEYS: [&str; 12] = [
    "schema",
    "upstreams",
    "introspection",
    "limits",
    "deadline_ms",
    "plan_cache_size",
    "coalesce",
    "answer_cache",
    "persisted_queries",
    "graphiql",
    "identity",
    "config_source",
];

/// The configuration as written by the user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    schema: String,
    #[serde(default)]
    upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default = "yes")]
    introspection: bool,
    #[serde(default)]
    limits: Limits,
    deadline_ms: Option<u64>,
    #[serde(default = "default_plan_cache_size")]
    plan_cache_size: usize,
    /// `persisted_queries` (APQ and trusted documents).
    #[serde(default)]
    persisted_queries: crate::persisted::RawPersistedQueries,
    #[serde(default = "yes")]
    coalesce: bool,
    #[serde(default)]
    answer_cache: crate::answer_cache::AnswerCacheConfig,
    /// `graphiql` (off by default).
    #[serde(default)]
    graphiql: crate::graphiql::RawGraphiql,
    /// `identity` (none by default).
    identity: Option<crate::identity::RawIdentity>,
    /// `config_source` (none by default: the configuration is inline).
    config_source: Option<crate::config_source::RawConfigSource>,
}

fn default_plan_cache_size() -> usize {
    DEFAULT_PLAN_CACHE_SIZE
}

/// The default of `plan_cache_size`: distinct documents kept validated.
pub const DEFAULT_PLAN_CACHE_SIZE: usize = 256;

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    target: String,
    authority: Option<String>,
    #[serde(default)]
    path_prefix: String,
    timeout_ms: Option<u64>,
    #[serde(default)]
    forward_headers: Vec<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    rename_headers: BTreeMap<String, String>,
    envelope: Option<RawEnvelope>,
    cache: Option<RawCache>,
    #[serde(default)]
    response_headers: BTreeMap<String, crate::answer_headers::RawRule>,
}

/// `cache` of an upstream, or of a field's `@http`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    ttl_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope {
    code: String,
    success: Vec<serde_json::Value>,
    message: Option<String>,
    data: Option<String>,
}

/// A configuration that cannot be used. Each message names the setting or
/// the schema field at fault and says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The text is not JSON of the expected shape.
    Json(String),
    /// The SDL does not parse or validate.
    Schema(String),
    /// A schema field's `@http` mapping is wrong.
    Field {
        /// `Type.field`.
        coordinate: String,
        /// ` (line L, column C)` in the SDL, or empty.
        at: String,
        /// What is wrong.
        problem: String,
    },
    /// A type's directive is wrong (e.g. `@discriminator`).
    Type {
        /// The type's name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// An entry of `upstreams` is wrong.
    Upstream {
        /// The upstream's name.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Json(e) => write!(f, "configuration is not valid: {e}"),
            ConfigError::Schema(e) => write!(f, "`schema` is not a valid GraphQL schema: {e}"),
            ConfigError::Field {
                coordinate,
                at,
                problem,
            } => write!(f, "schema field {coordinate}{at}: {problem}"),
            ConfigError::Type { name, problem } => write!(f, "schema type {name}: {problem}"),
            ConfigError::Upstream { name, problem } => write!(f, "upstreams.{name}: {problem}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A checked configuration: everything a request needs that does not depend
/// on the request.
#[derive(Debug)]
pub struct Gateway {
    /// The client-facing schema (the configured SDL without `@http`).
    pub schema: Valid<Schema>,
    /// Which fields call which functions, and how.
    pub resolvers: Resolvers,
    /// How interfaces and unions find their concrete type (`@discriminator`).
    pub discriminators: HashMap<Name, Discriminator>,
    /// Fields read from another key of their parent (`@from`).
    pub renames: HashMap<(Name, Name), Vec<String>>,
    /// The functions that may be called, by name.
    pub upstreams: BTreeMap<String, Upstream>,
    /// Whether `__schema` and `__type` are answered.
    pub introspection: bool,
    /// Size and cost limits.
    pub limits: Limits,
    /// How long one request may take in all: calls still pending then are
    /// abandoned, and each call's timeout is cut to what is left.
    pub deadline: Duration,
    /// How many distinct documents the plan cache keeps (0: no cache).
    pub plan_cache_size: usize,
    /// Persisted queries: APQ registrations and the trusted documents'
    /// manifest (`persisted_queries`).
    pub persisted_queries: crate::persisted::PersistedQueries,
    /// Whether an identical call already in flight for another request is
    /// joined instead of sent again (`coalesce`).
    pub coalesce: bool,
    /// The bounds of the answer cache shared across requests and workers.
    pub answer_cache: crate::answer_cache::AnswerCacheConfig,
    /// The GraphiQL page served to browsers at the GraphQL path (`graphiql`).
    pub graphiql: crate::graphiql::Graphiql,
    /// The identity step every request takes before its field calls
    /// (`identity`), if any.
    pub identity: Option<crate::identity::Identity>,
    /// Where newer versions of this configuration come from
    /// (`config_source`), if anywhere.
    pub config_source: Option<crate::config_source::ConfigSource>,
    /// The version of this configuration: `inline`, or as the registry
    /// named it (see [`crate::config_source::version_of`]); set by the
    /// host adapter.
    pub version: String,
    /// The reply header naming [`Gateway::version`], if replies carry it
    /// (`config_source.version_header`).
    pub version_header: Option<String>,
    /// Problems that did not stop the configuration from loading; the adapter
    /// logs them.
    pub warnings: Vec<String>,
    /// The client headers any call may carry (the request id, and every
    /// upstream's forwarded and renamed headers): a request keeps only these.
    pub forwarded_names: Vec<String>,
    /// The `vary` of a cacheable reply: `accept`, and every client header
    /// some call may carry (but the request id), so that a shared cache
    /// never serves a reply made without a client's credentials to a client
    /// that sends them (or the other way round).
    pub vary: String,
    /// Which object types implement each interface (for introspection),
    /// computed once.
    pub implementers:
        apollo_compiler::collections::HashMap<Name, apollo_compiler::schema::Implementers>,
}

impl Gateway {
    /// Parse and check a JSON configuration.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))?;
        let mut upstreams = BTreeMap::new();
        for (name, u) in raw.upstreams {
            upstreams.insert(name.clone(), upstream(name, u)?);
        }
        let names: Vec<&str> = upstreams.keys().map(String::as_str).collect();
        let loaded = schema::load(&raw.schema, &names)?;
        check_response_headers(&upstreams)?;
        let identity = raw
            .identity
            .map(|raw| crate::identity::Identity::load(raw, &upstreams))
            .transpose()
            .map_err(|e| ConfigError::Json(e.to_string()))?;
        if identity.is_none() {
            let user = loaded
                .resolvers
                .iter()
                .find(|r| r.sources().any(|s| matches!(s, Source::Identity(_))))
                .map(|r| format!("schema field {}", r.coordinate))
                .or_else(|| {
                    upstreams
                        .values()
                        .find(|u| !u.identity_headers.is_empty())
                        .map(|u| format!("upstreams.{}.headers", u.name))
                });
            if let Some(user) = user {
                return Err(ConfigError::Json(format!(
                    "{user} uses `{{identity...}}` but the configuration has no `identity` step"
                )));
            }
        }
        let config_source = raw
            .config_source
            .map(|raw| crate::config_source::ConfigSource::load(raw, &upstreams))
            .transpose()
            .map_err(|e| ConfigError::Json(e.to_string()))?;
        let version_header = config_source
            .as_ref()
            .and_then(|c| c.version_header.as_deref());
        if let Some(header) = version_header {
            let taken = upstreams
                .values()
                .find(|u| u.response_headers.iter().any(|(n, _)| n == header));
            if let Some(upstream) = taken {
                return Err(ConfigError::Json(format!(
                    "config_source.version_header {header:?} is also in upstreams.{}.response_headers; a reply header has one source",
                    upstream.name
                )));
            }
        }
        if let Some(zero) = raw.limits.zeros().first() {
            return Err(ConfigError::Json(format!(
                "limits.{zero} is 0, which would refuse every request"
            )));
        }
        let deadline = match raw.deadline_ms {
            Some(0) => {
                return Err(ConfigError::Json(
                    "deadline_ms must be greater than 0".into(),
                ))
            }
            Some(ms) if ms > MAX_MILLIS => {
                return Err(ConfigError::Json(format!(
                    "deadline_ms must be at most {MAX_MILLIS} (24 hours)"
                )))
            }
            Some(ms) => Duration::from_millis(ms),
            None => DEFAULT_DEADLINE,
        };
        let persisted_queries = crate::persisted::PersistedQueries::load(
            raw.persisted_queries,
            &loaded.api,
            &raw.limits,
        )
        .map_err(|e| ConfigError::Json(format!("persisted_queries: {e}")))?;
        let graphiql = crate::graphiql::Graphiql::load(raw.graphiql)
            .map_err(|e| ConfigError::Json(e.to_string()))?;
        let implementers = loaded.api.implementers_map();
        let mut forwarded_names = vec![crate::upstream::REQUEST_ID_HEADER.to_string()];
        let credentials = identity.iter().flat_map(|i| i.credential_headers.iter());
        for name in credentials {
            if !forwarded_names.contains(name) {
                forwarded_names.push(name.clone());
            }
        }
        for upstream in upstreams.values() {
            let names = upstream
                .forward_headers
                .iter()
                .chain(upstream.rename_headers.iter().map(|(from, _)| from));
            for name in names {
                if !forwarded_names.contains(name) {
                    forwarded_names.push(name.clone());
                }
            }
        }
        let vary = std::iter::once("accept")
            .chain(
                forwarded_names
                    .iter()
                    .map(String::as_str)
                    .filter(|name| *name != crate::upstream::REQUEST_ID_HEADER),
            )
            .collect::<Vec<_>>()
            .join(", ");
        let mut warnings = loaded.warnings;
        let answer_cache = checked_answer_cache(raw.answer_cache)?;
        if identity.as_ref().is_some_and(|i| i.cache_ttl_ms.is_some()) && !answer_cache.is_on() {
            warnings.push(
                "identity.cache_ttl_ms has no effect: the answer cache is off (set answer_cache.max_bytes to keep identities per credential)".into(),
            );
        }
        Ok(Gateway {
            graphiql,
            version_header: config_source
                .as_ref()
                .and_then(|c| c.version_header.clone()),
            version: crate::config_source::INLINE_VERSION.to_string(),
            identity,
            config_source,
            vary,
            forwarded_names,
            implementers,
            schema: loaded.api,
            resolvers: loaded.resolvers,
            discriminators: loaded.discriminators,
            renames: loaded.renames,
            upstreams,
            introspection: raw.introspection,
            limits: raw.limits,
            deadline,
            plan_cache_size: raw.plan_cache_size,
            persisted_queries,
            coalesce: raw.coalesce,
            answer_cache,
            warnings,
        })
    }
}

/// Every upstream that names an answer header combines its values the same
/// way (`append`, `first`, `last` or by precedence).
fn check_response_headers(upstreams: &BTreeMap<String, Upstream>) -> Result<(), ConfigError> {
    let mut seen: Vec<(&str, crate::answer_headers::Rule, &str)> = Vec::new();
    for upstream in upstreams.values() {
        for (name, rule) in &upstream.response_headers {
            match seen.iter().find(|(n, _, _)| n == name) {
                Some((_, other, by)) if !rule.same_kind(*other) => {
                    return Err(ConfigError::Upstream {
                        name: upstream.name.to_string(),
                        problem: format!(
                            "`response_headers.{name}` combines values as {rule:?}, but upstream {by} says {other:?}; one header takes one rule"
                        ),
                    })
                }
                Some(_) => {}
                None => seen.push((name, *rule, &upstream.name)),
            }
        }
    }
    Ok(())
}

/// `answer_cache`, checked: a cache that is on keeps entries of a useful size.
fn checked_answer_cache(
    cache: crate::answer_cache::AnswerCacheConfig,
) -> Result<crate::answer_cache::AnswerCacheConfig, ConfigError> {
    if cache.max_bytes > 0 && cache.max_entry_bytes < 1024 {
        return Err(ConfigError::Json(
            "answer_cache.max_entry_bytes must be at least 1024 (or set answer_cache.max_bytes to 0 to turn the cache off)".into(),
        ));
    }
    if cache.max_bytes > 0 && cache.max_bytes < cache.max_entry_bytes {
        return Err(ConfigError::Json(format!(
            "answer_cache.max_bytes ({}) is smaller than one entry (max_entry_bytes {}): the cache could keep nothing; set max_bytes to 0 to turn it off",
            cache.max_bytes, cache.max_entry_bytes
        )));
    }
    Ok(cache)
}

fn upstream(name: String, raw: RawUpstream) -> Result<Upstream, ConfigError> {
    let problem = |problem: &str| ConfigError::Upstream {
        name: name.clone(),
        problem: problem.to_string(),
    };
    // The name appears in metric names and errors.
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(problem(
            "the upstream's name may only use letters, digits, `_` and `-`",
        ));
    }
    if raw.target.trim().is_empty() {
        return Err(problem(
            "`target` is empty; name an Envoy cluster or a Kong host:port",
        ));
    }
    let authority = raw.authority.unwrap_or_else(|| name.clone());
    if authority.is_empty()
        || authority
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(problem(
            "`authority` must be a non-empty host[:port] without spaces",
        ));
    }
    let prefix = raw.path_prefix.trim_end_matches('/').to_string();
    if !prefix.is_empty() && !prefix.starts_with('/') {
        return Err(problem("`path_prefix` must start with `/`"));
    }
    if prefix
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '?' || c == '#')
    {
        return Err(problem("`path_prefix` may not contain spaces, `?` or `#`"));
    }
    let timeout = match raw.timeout_ms {
        Some(0) => return Err(problem("`timeout_ms` must be greater than 0")),
        Some(ms) if ms > MAX_MILLIS => {
            return Err(problem("`timeout_ms` must be at most 86400000 (24 hours)"))
        }
        Some(ms) => Duration::from_millis(ms),
        None => DEFAULT_TIMEOUT,
    };
    let mut forward_headers = Vec::new();
    for header in raw.forward_headers {
        let lower = header.to_ascii_lowercase();
        if lower.is_empty()
            || !lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(problem(&format!(
                "`forward_headers` entry {header:?} is not a header name"
            )));
        }
        if lower == DEADLINE_HEADER || lower == "accept" || lower == "content-type" {
            return Err(problem(&format!(
                "`forward_headers` entry {header:?} is set by the gateway and cannot come from the client"
            )));
        }
        if is_hop_by_hop(&lower) {
            return Err(problem(&format!(
                "`forward_headers` entry {header:?} is a hop-by-hop or framing header, which is never forwarded"
            )));
        }
        forward_headers.push(lower);
    }
    let header_name = |h: &str| -> Result<String, ConfigError> {
        let lower = h.to_ascii_lowercase();
        let plain = !lower.is_empty()
            && lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plain {
            return Err(problem(&format!("{h:?} is not a header name")));
        }
        if is_hop_by_hop(&lower) || RESERVED.contains(&lower.as_str()) {
            return Err(problem(&format!(
                "header {h:?} is set by the gateway and cannot be configured"
            )));
        }
        Ok(lower)
    };
    let mut headers = Vec::new();
    let mut identity_headers = Vec::new();
    for (h, value) in raw.headers {
        if !is_safe_header_value(&value) {
            return Err(problem(&format!(
                "`headers.{h}` contains a line break or NUL, which could inject headers"
            )));
        }
        let name = header_name(&h)?;
        if !value.contains('{') {
            headers.push((name, value));
            continue;
        }
        // A value with placeholders: only the request's identity is known
        // for every call of an upstream.
        let template = HeaderTemplate::parse(&name, &value)
            .map_err(|e| problem(&format!("`headers.{h}`: {e}")))?;
        if let Some(other) = template
            .sources()
            .find(|s| !matches!(s, Source::Identity(_)))
        {
            return Err(problem(&format!(
                "`headers.{h}` uses {other}; an upstream's headers may only use `{{identity.<key>}}` (use the field's `@http(headers:)` for arguments and parents)"
            )));
        }
        identity_headers.push(template);
    }
    let mut response_headers = Vec::new();
    for (name, rule) in raw.response_headers {
        let lower = name.to_ascii_lowercase();
        let rule = crate::answer_headers::Rule::load(&lower, rule).map_err(|e| problem(&e))?;
        response_headers.push((lower, rule));
    }
    let mut rename_headers = Vec::new();
    for (from, to) in raw.rename_headers {
        let from_lower = from.to_ascii_lowercase();
        let plain = !from_lower.is_empty()
            && from_lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plain {
            return Err(problem(&format!(
                "`rename_headers` key {from:?} is not a header name"
            )));
        }
        rename_headers.push((from_lower, header_name(&to)?));
    }
    let envelope = match raw.envelope {
        None => None,
        Some(e) => {
            let path = |what: &str, text: &str| {
                key_path::parse(text).map_err(|p| problem(&format!("`envelope.{what}`: {p}")))
            };
            if e.success.is_empty() {
                return Err(problem(
                    "`envelope.success` must list the code values that mean success, e.g. [0]",
                ));
            }
            Some(Envelope {
                code: path("code", &e.code)?,
                success: e.success.into_iter().map(JsonValue::from).collect(),
                message: e
                    .message
                    .as_deref()
                    .map(|m| path("message", m))
                    .transpose()?,
                data: e.data.as_deref().map(|d| path("data", d)).transpose()?,
            })
        }
    };
    Ok(Upstream {
        name: name.as_str().into(),
        target: raw.target.as_str().into(),
        authority: authority.as_str().into(),
        path_prefix: prefix,
        timeout,
        forward_headers,
        headers,
        identity_headers,
        response_headers,
        rename_headers,
        envelope,
        cache_ttl_ms: match raw.cache {
            Some(RawCache { ttl_ms: 0 }) => {
                return Err(problem(
                    "`cache.ttl_ms` must be greater than 0 (leave `cache` out to follow the functions' cache-control)",
                ))
            }
            Some(RawCache { ttl_ms }) if ttl_ms > MAX_MILLIS => {
                return Err(problem("`cache.ttl_ms` must be at most 86400000 (24 hours)"))
            }
            Some(RawCache { ttl_ms }) => Some(ttl_ms),
            None => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(upstream: &str) -> String {
        serde_json::json!({
            "schema": "type Query { a: String @http(upstream: \"fn\", path: \"/a\") }",
            "upstreams": { "fn": serde_json::from_str::<serde_json::Value>(upstream).unwrap() }
        })
        .to_string()
    }

    #[test]
    fn every_key_is_known_and_no_other() {
        let values = serde_json::json!({
            "schema": "type Query { a: String @http(upstream: \"fn\", path: \"/a\") }",
            "upstreams": {"fn": {"target": "fn", "cache": {"ttl_ms": 1000}}},
            "introspection": false,
            "limits": {},
            "deadline_ms": 1000,
            "plan_cache_size": 1,
            "coalesce": false,
            "answer_cache": {"max_bytes": 65536, "max_entry_bytes": 4096},
            "persisted_queries": {},
            "graphiql": {"enabled": true, "assets_url": "https://assets.example/graphiql/"},
            "identity": {"upstream": "fn", "path": "/identity", "credential_headers": ["cookie"]},
            "config_source": {"upstream": "fn", "path": "/config"},
        });
        let keys: Vec<&str> = values
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, KEYS);
        let gateway = Gateway::from_json(&values.to_string()).unwrap();
        assert!(!gateway.coalesce);
        assert_eq!(gateway.answer_cache.slots(), 16);
        assert_eq!(gateway.upstreams["fn"].cache_ttl_ms, Some(1000));
        let mut unknown = values.clone();
        unknown["cache"] = serde_json::json!({});
        assert!(Gateway::from_json(&unknown.to_string()).is_err());
        for (setting, problem) in [
            (
                serde_json::json!({"max_bytes": 4096, "max_entry_bytes": 100}),
                "at least 1024",
            ),
            (
                serde_json::json!({"max_bytes": 2048, "max_entry_bytes": 4096}),
                "smaller than one entry",
            ),
        ] {
            let mut bad = values.clone();
            bad["answer_cache"] = setting;
            let error = Gateway::from_json(&bad.to_string())
                .unwrap_err()
                .to_string();
            assert!(error.contains(problem), "{error}");
        }
        let mut bad = values.clone();
        bad["upstreams"]["fn"]["cache"] = serde_json::json!({"ttl_ms": 0});
        let error = Gateway::from_json(&bad.to_string())
            .unwrap_err()
            .to_string();
        assert!(error.contains("cache.ttl_ms"), "{error}");
    }

    #[test]
    fn loads_upstreams_with_defaults() {
        let gateway = Gateway::from_json(&config(r#"{"target": "fn_cluster"}"#)).unwrap();
        let fun = &gateway.upstreams["fn"];
        assert_eq!(&*fun.authority, "fn");
        assert_eq!(fun.timeout, DEFAULT_TIMEOUT);
        assert!(gateway.introspection);
    }

    #[test]
    fn names_the_bad_setting() {
        let e = Gateway::from_json(&config(r#"{"target": ""}"#)).unwrap_err();
        assert!(e.to_string().starts_with("upstreams.fn: `target`"), "{e}");
        let e = Gateway::from_json(&config(r#"{"target": "x", "timeout": 3}"#)).unwrap_err();
        assert!(e.to_string().contains("unknown field `timeout`"), "{e}");
        let e = Gateway::from_json("not json").unwrap_err();
        assert!(matches!(e, ConfigError::Json(_)));
        let e = Gateway::from_json(&config(r#"{"target": "x", "path_prefix": "function"}"#))
            .unwrap_err();
        assert!(e.to_string().contains("path_prefix"), "{e}");
    }
}
