//! Configuration from a registry (`config_source`): the filter's root
//! context fetches its configuration over HTTP at start and polls it; a
//! new version is checked exactly as an inline one is, and replaces the
//! one in service only when it loads (the last good one stays otherwise).
//! The inline configuration serves until the first fetch succeeds.
//!
//! This module holds the settings and the rules; the host adapter does the
//! fetching and the swap.

use crate::config::MAX_MILLIS;
use crate::upstream::Upstream;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fmt;

/// The default of `config_source.poll_ms`: 30 s.
pub const DEFAULT_POLL_MS: u64 = 30_000;

/// The shortest `config_source.poll_ms`: 1 s.
pub const MIN_POLL_MS: u64 = 1_000;

/// The default of `config_source.max_bytes`: 1 MiB.
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;

/// The largest `config_source.max_bytes`: 16 MiB.
pub const MAX_MAX_BYTES: usize = 16 << 20;

/// The version of a configuration that came inline (not from a registry).
pub const INLINE_VERSION: &str = "inline";

/// `config_source` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfigSource {
    upstream: String,
    path: String,
    poll_ms: Option<u64>,
    max_bytes: Option<usize>,
    version_header: Option<String>,
}

/// Where the configuration comes from, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSource {
    /// The registry's upstream: its target, authority and timeout are
    /// used for the fetch.
    pub upstream: Upstream,
    /// The configuration's path (after the upstream's `path_prefix`).
    pub path: String,
    /// How often the registry is asked for a new version.
    pub poll_ms: u64,
    /// A registry answer larger than this is refused unread.
    pub max_bytes: usize,
    /// The reply header that names the configuration version in service
    /// (lower case); `None`: replies do not say.
    pub version_header: Option<String>,
}

/// Why `config_source` cannot be used; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSourceError(pub String);

impl fmt::Display for ConfigSourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config_source: {}", self.0)
    }
}

impl ConfigSource {
    /// Checks `config_source` against the configured upstreams.
    pub fn load(
        raw: RawConfigSource,
        upstreams: &std::collections::BTreeMap<String, Upstream>,
    ) -> Result<ConfigSource, ConfigSourceError> {
        let problem = |text: String| Err(ConfigSourceError(text));
        let Some(upstream) = upstreams.get(&raw.upstream) else {
            return problem(format!(
                "`upstream` {:?} is not in `upstreams`; add the registry there",
                raw.upstream
            ));
        };
        if !raw.path.starts_with('/')
            || raw
                .path
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '#')
        {
            return problem(format!(
                "`path` {:?} must start with `/` and hold no spaces or `#`",
                raw.path
            ));
        }
        let poll_ms = raw.poll_ms.unwrap_or(DEFAULT_POLL_MS);
        if !(MIN_POLL_MS..=MAX_MILLIS).contains(&poll_ms) {
            return problem(format!(
                "`poll_ms` must be between {MIN_POLL_MS} and {MAX_MILLIS}"
            ));
        }
        let max_bytes = raw.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        if !(1024..=MAX_MAX_BYTES).contains(&max_bytes) {
            return problem(format!(
                "`max_bytes` must be between 1024 and {MAX_MAX_BYTES}"
            ));
        }
        let version_header = match raw.version_header {
            None => None,
            Some(name) => {
                let lower = name.to_ascii_lowercase();
                let plain = !lower.is_empty()
                    && lower
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !plain
                    || crate::upstream::is_hop_by_hop(&lower)
                    || crate::answer_headers::REPLY_OWNED.contains(&lower.as_str())
                    || lower == "set-cookie"
                {
                    return problem(format!(
                        "`version_header` {name:?} is not a header name the reply can carry"
                    ));
                }
                Some(lower)
            }
        };
        Ok(ConfigSource {
            upstream: upstream.clone(),
            path: format!("{}{}", upstream.path_prefix, raw.path),
            poll_ms,
            max_bytes,
            version_header,
        })
    }

    /// The fetch's headers, pseudo-headers first; `etag` (the version in
    /// service, if it came from the registry) makes it conditional.
    pub fn request_headers<'a>(&'a self, etag: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        let mut headers = vec![
            (":method", "GET"),
            (":path", self.path.as_str()),
            (":authority", self.upstream.authority.as_ref()),
            ("accept", "application/json"),
        ];
        if let Some(etag) = etag {
            headers.push(("if-none-match", etag));
        }
        headers.extend(
            self.upstream
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        headers
    }

    /// The fetch's timeout in milliseconds: the upstream's, and never
    /// longer than the poll interval.
    pub fn timeout_ms(&self) -> u64 {
        u64::try_from(self.upstream.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .min(self.poll_ms)
    }
}

/// The version of a configuration the registry answered: its `ETag`
/// (without quotes or `W/`), else `sha256:` and the first 12 hex digits
/// of the SHA-256 of its text. At most 64 printable ASCII characters.
pub fn version_of(etag: Option<&str>, text: &[u8]) -> String {
    let tag = etag
        .map(|e| e.trim().trim_start_matches("W/").trim_matches('"'))
        .filter(|e| {
            !e.is_empty() && e.len() <= 64 && e.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
        });
    match tag {
        Some(tag) => tag.to_string(),
        None => {
            let digest = Sha256::digest(text);
            let mut version = String::from("sha256:");
            for byte in digest.iter().take(6) {
                version.push_str(&format!("{byte:02x}"));
            }
            version
        }
    }
}

/// A number for a version, for a gauge: the version itself when it is a
/// number (a registry revision, below 2^53 so that it stays exact as a
/// float), else 48 bits of its SHA-256; 0 for the inline configuration.
pub fn version_number(version: &str) -> u64 {
    if version == INLINE_VERSION {
        return 0;
    }
    match version.parse::<u64>() {
        Ok(n) if n < (1 << 53) => n,
        _ => Sha256::digest(version.as_bytes())
            .iter()
            .take(6)
            .fold(0u64, |n, byte| (n << 8) | u64::from(*byte)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams() -> std::collections::BTreeMap<String, Upstream> {
        crate::config::Gateway::from_json(
            r#"{"schema": "type Query { a: String @http(upstream: \"registry\", path: \"/a\") }",
                "upstreams": {"registry": {"target": "registry", "path_prefix": "/function/registry", "timeout_ms": 60000}}}"#,
        )
        .unwrap()
        .upstreams
    }

    fn load(raw: serde_json::Value) -> Result<ConfigSource, ConfigSourceError> {
        ConfigSource::load(serde_json::from_value(raw).unwrap(), &upstreams())
    }

    #[test]
    fn loads_with_defaults_and_names_bad_settings() {
        let source = load(
            serde_json::json!({"upstream": "registry", "path": "/graphql.json", "poll_ms": 5000}),
        )
        .unwrap();
        assert_eq!(source.path, "/function/registry/graphql.json");
        assert_eq!(source.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(
            source.timeout_ms(),
            5000,
            "never longer than the poll interval"
        );
        let headers = source.request_headers(Some("\"7\""));
        assert!(headers.contains(&("if-none-match", "\"7\"")));
        assert!(headers.contains(&(":authority", "registry")));
        for (raw, problem) in [
            (
                serde_json::json!({"upstream": "nope", "path": "/c"}),
                "not in `upstreams`",
            ),
            (
                serde_json::json!({"upstream": "registry", "path": "c"}),
                "`path`",
            ),
            (
                serde_json::json!({"upstream": "registry", "path": "/c", "poll_ms": 10}),
                "poll_ms",
            ),
            (
                serde_json::json!({"upstream": "registry", "path": "/c", "max_bytes": 10}),
                "max_bytes",
            ),
            (
                serde_json::json!({"upstream": "registry", "path": "/c", "version_header": "content-type"}),
                "version_header",
            ),
        ] {
            let error = load(raw).unwrap_err().to_string();
            assert!(error.contains(problem), "{error}");
        }
    }

    #[test]
    fn versions_come_from_the_etag_or_the_text() {
        assert_eq!(version_of(Some("\"12\""), b"{}"), "12");
        assert_eq!(version_of(Some("W/\"abc\""), b"{}"), "abc");
        let hashed = version_of(None, b"{}");
        assert!(
            hashed.starts_with("sha256:") && hashed.len() == 19,
            "{hashed}"
        );
        assert_eq!(version_of(Some("\"\""), b"{}"), hashed);
        assert_eq!(version_of(Some("bad\nvalue"), b"{}"), hashed);
        assert_eq!(version_number("12"), 12);
        assert_eq!(version_number(INLINE_VERSION), 0);
        let n = version_number(&hashed);
        assert!(n > 0 && n < (1 << 48));
    }
}
