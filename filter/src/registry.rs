//! Configuration from a registry (`config_source`): the root context's
//! fetches. The tick asks the registry at start and every `poll_ms`, one
//! fetch at a time, conditionally (`if-none-match`) once it has seen a
//! version; what comes back is handed to the plugin to check and swap in
//! (see `Plugin::on_registry_answer`).
//!
//! Both hosts dispatch from the tick (`on_configure` may not dispatch on
//! either): Envoy as for any root context; ngx_wasm_module on a fake
//! request owned by the root context.

use super::host;
use graphql_aggregator_engine::config_source::{version_of, ConfigSource};
use proxy_wasm::types::{BufferType, MapType};
use std::time::Duration;

/// The fetches of one inline configuration's `config_source`.
pub struct Registry {
    source: ConfigSource,
    /// The `ETag` of the last version fetched, loaded or refused: a
    /// refused version is not fetched, logged and counted again until the
    /// registry has another.
    seen_etag: Option<String>,
    /// The fetch in flight: its token and when it left.
    in_flight: Option<(u32, u64)>,
    /// When the next fetch is due.
    next_ms: u64,
    /// The last version refused: fetched again (a registry without
    /// `ETag`s answers every fetch in full), it is not checked, logged
    /// and counted again.
    refused: Option<String>,
    /// What the last failed fetch said: a registry that keeps failing the
    /// same way is logged once, until a fetch succeeds or fails otherwise.
    last_problem: Option<String>,
}

/// What a fetch brought.
pub enum Fetched {
    /// A version to check and put in service.
    Version {
        /// Its text.
        text: Vec<u8>,
        /// Its name (the `ETag`, else a digest of the text).
        version: String,
    },
    /// The registry has nothing newer.
    NotModified,
    /// No usable answer: what went wrong.
    Failed(String),
}

impl Registry {
    /// Fetches from `source`, the first time at the next tick.
    pub fn new(source: ConfigSource) -> Registry {
        Registry {
            source,
            seen_etag: None,
            in_flight: None,
            next_ms: 0,
            refused: None,
            last_problem: None,
        }
    }

    /// Whether this registry fetches from `source` (a new inline
    /// configuration with the same `config_source` keeps the fetched
    /// version in service and the state of the fetches).
    pub fn fetches_from(&self, source: &ConfigSource) -> bool {
        self.source == *source
    }

    /// Remembers a version that did not load.
    pub fn refuse(&mut self, version: String) {
        self.refused = Some(version);
    }

    /// Whether `version` is the one last refused.
    pub fn was_refused(&self, version: &str) -> bool {
        self.refused.as_deref() == Some(version)
    }

    /// Whether a failure is worth a log line: the first of its kind in a
    /// row.
    pub fn is_news(&mut self, problem: &str) -> bool {
        if self.last_problem.as_deref() == Some(problem) {
            return false;
        }
        self.last_problem = Some(problem.to_string());
        true
    }

    /// A fetch succeeded: the next failure is news again.
    pub fn succeeded(&mut self) {
        self.last_problem = None;
    }

    /// The version header of the inline configuration: a fetched version
    /// keeps it (it may not hold a `config_source` of its own).
    pub fn version_header(&self) -> Option<String> {
        self.source.version_header.clone()
    }

    /// From the tick: sends a fetch when one is due and none is in
    /// flight. A fetch the host never answers is given up after its
    /// timeout (and a second), and the next one goes out.
    pub fn poll(&mut self, now: u64) -> Result<(), String> {
        if let Some((_, sent)) = self.in_flight {
            let lost_after = self.source.timeout_ms().saturating_add(1000);
            if now.saturating_sub(sent) < lost_after {
                return Ok(());
            }
            self.in_flight = None;
        }
        if now < self.next_ms {
            return Ok(());
        }
        self.next_ms = now.saturating_add(self.source.poll_ms);
        let headers = self.source.request_headers(self.seen_etag.as_deref());
        let dispatched = proxy_wasm::hostcalls::dispatch_http_call(
            &self.source.upstream.target,
            headers,
            None,
            Vec::new(),
            Duration::from_millis(self.source.timeout_ms()),
        );
        match dispatched {
            Ok(token) => {
                self.in_flight = Some((token, now));
                Ok(())
            }
            Err(status) => Err(format!(
                "the host refused to call the registry {} ({status:?})",
                self.source.upstream.target
            )),
        }
    }

    /// Whether `token` is this registry's fetch.
    pub fn owns(&self, token: u32) -> bool {
        self.in_flight.is_some_and(|(t, _)| t == token)
    }

    /// The fetch answered (read in its callback).
    pub fn on_response(&mut self, num_headers: usize, body_size: usize) -> Fetched {
        self.in_flight = None;
        let map = MapType::HttpCallResponseHeaders;
        let status = host::call_status(num_headers);
        let status = match status {
            Some(status) => status,
            None => {
                let reason = host::header_value(map, ":dispatch_status")
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "no answer".into());
                return Fetched::Failed(format!("the registry did not answer ({reason})"));
            }
        };
        match status {
            304 => return Fetched::NotModified,
            200 => {}
            other => return Fetched::Failed(format!("the registry answered HTTP {other}")),
        }
        if body_size > self.source.max_bytes {
            return Fetched::Failed(format!(
                "the registry's answer is {body_size} bytes, over config_source.max_bytes ({})",
                self.source.max_bytes
            ));
        }
        let text = match host::buffer(BufferType::HttpCallResponseBody, 0, body_size) {
            Ok(text) if text.len() == body_size => text,
            _ => {
                return Fetched::Failed(
                    "the registry's answer could not be read from the host".into(),
                )
            }
        };
        let etag = host::header_value(map, "etag").ok().flatten();
        let version = version_of(etag.as_deref(), &text);
        // Only a well-formed tag is sent back (a version made from the
        // text is not a tag).
        self.seen_etag = etag.filter(|e| {
            graphql_aggregator_engine::upstream::is_safe_header_value(e) && e.len() <= 128
        });
        Fetched::Version { text, version }
    }
}
