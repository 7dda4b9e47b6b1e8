//! The filter's metrics, defined with the host (`proxy_define_metric`).
//! Envoy 1.40 shows them in `/stats` as `graphql_aggregator.*` and in
//! `/stats/prometheus` as `graphql_aggregator_*` (dots become `_`); every
//! plugin of one Envoy adds to the same metrics.
//!
//! * `graphql_aggregator.requests.<outcome>`: replies by outcome (`ok`,
//!   `partial`, `request_error`, `limit_exceeded`, `misconfigured`,
//!   `unauthenticated`);
//! * `graphql_aggregator.calls.<upstream>.<kind>`: function calls by
//!   upstream and how they went (`ok`, `http_error`, `timeout`,
//!   `unavailable`, `rejected`, `too_large`);
//! * `graphql_aggregator.call_latency_ms`: a histogram of call latencies;
//! * `graphql_aggregator.plan_cache.hits` / `.misses`;
//! * `graphql_aggregator.answer_cache.<event>`: calls answered from the
//!   answer cache (`hits`), looked up and not found (`misses`), answers
//!   kept (`stores`) and live entries they replaced (`evictions`);
//! * `graphql_aggregator.coalesced_calls`: calls not sent because an
//!   identical call of another request was in flight (joined).
//! * `graphql_aggregator.persisted.<event>`: persisted queries: documents
//!   found by their hash (`hits`, manifest or registry), hashes sent alone
//!   and not found (`misses`: the client registers next), documents
//!   registered (`registrations`) and documents refused as not trusted
//!   (`refusals`, with `only_listed`).
//! * `graphql_aggregator.config.<event>`: configuration from a registry
//!   (`config_source`): versions fetched and loaded (`fetches.ok`),
//!   fetches the registry answered with "not modified"
//!   (`fetches.not_modified`), fetches that failed (`fetches.failed`) and
//!   versions refused as invalid (`refused`); the gauge
//!   `graphql_aggregator.config.version` is the version in service as a
//!   number (0: the inline configuration);
//! * `graphql_aggregator.response_headers.dropped`: answer header lines a
//!   reply left out for its bounds (64 lines, 16 KiB).
//!
//! A host that refuses a metric only loses that metric.

use super::host::{self, MetricKind};
use graphql_aggregator_engine::response::Outcome;
use std::collections::HashMap;

/// The metric ids, defined once: the per-request and per-call paths look
/// them up without formatting a name or allocating.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Every id defined so far, by name (each name is defined once).
    ids: HashMap<String, Option<u32>>,
    /// `requests.<outcome>`, in `Outcome::ALL` order.
    requests: Vec<Option<u32>>,
    plan_cache_hits: Option<u32>,
    plan_cache_misses: Option<u32>,
    latency: Option<u32>,
    /// `calls.<upstream>.<kind>`, by upstream and kind.
    calls: Vec<(String, &'static str, Option<u32>)>,
    /// `answer_cache.<event>`, in `CacheEvent` order.
    answer_cache: Vec<Option<u32>>,
    coalesced: Option<u32>,
    /// `persisted.<event>`, in `PERSISTED` order.
    persisted: [Option<u32>; 4],
    /// `config.<event>`, in `ConfigEvent::ALL` order.
    config: [Option<u32>; 4],
    config_version: Option<u32>,
    dropped_headers: Option<u32>,
}

/// What a fetch of the configuration from its registry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigEvent {
    /// A new version fetched, checked and put in service.
    Loaded,
    /// The registry has nothing newer (304).
    NotModified,
    /// The fetch failed (no answer, an error status, an answer too large).
    Failed,
    /// A version fetched and refused: it does not load.
    Refused,
}

impl ConfigEvent {
    const ALL: [ConfigEvent; 4] = [
        ConfigEvent::Loaded,
        ConfigEvent::NotModified,
        ConfigEvent::Failed,
        ConfigEvent::Refused,
    ];

    fn name(self) -> &'static str {
        match self {
            ConfigEvent::Loaded => "fetches.ok",
            ConfigEvent::NotModified => "fetches.not_modified",
            ConfigEvent::Failed => "fetches.failed",
            ConfigEvent::Refused => "refused",
        }
    }
}

/// What happened in the answer cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    /// A call answered from the cache.
    Hit,
    /// A lookup that found nothing fresh for the call.
    Miss,
    /// An answer kept.
    Store,
    /// A live entry of another call replaced by a new one.
    Eviction,
}

impl CacheEvent {
    const ALL: [CacheEvent; 4] = [
        CacheEvent::Hit,
        CacheEvent::Miss,
        CacheEvent::Store,
        CacheEvent::Eviction,
    ];

    fn name(self) -> &'static str {
        match self {
            CacheEvent::Hit => "hits",
            CacheEvent::Miss => "misses",
            CacheEvent::Store => "stores",
            CacheEvent::Eviction => "evictions",
        }
    }
}

impl Metrics {
    fn id(&mut self, kind: MetricKind, name: String) -> Option<u32> {
        *self
            .ids
            .entry(name)
            .or_insert_with_key(|name| host::define_metric(kind, name).ok())
    }

    fn count(id: Option<u32>, by: u64) {
        if let (Some(id), true) = (id, by > 0) {
            host::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
        }
    }

    /// Defines the metrics every configuration has.
    pub fn define_all(&mut self) {
        self.requests = Outcome::ALL
            .into_iter()
            .map(|outcome| {
                let name = format!("graphql_aggregator.requests.{}", outcome.name());
                self.id(MetricKind::Counter, name)
            })
            .collect();
        self.plan_cache_hits = self.id(
            MetricKind::Counter,
            "graphql_aggregator.plan_cache.hits".into(),
        );
        self.plan_cache_misses = self.id(
            MetricKind::Counter,
            "graphql_aggregator.plan_cache.misses".into(),
        );
        self.latency = self.id(MetricKind::Histogram, LATENCY.into());
        self.answer_cache = CacheEvent::ALL
            .into_iter()
            .map(|event| {
                let name = format!("graphql_aggregator.answer_cache.{}", event.name());
                self.id(MetricKind::Counter, name)
            })
            .collect();
        self.coalesced = self.id(
            MetricKind::Counter,
            "graphql_aggregator.coalesced_calls".into(),
        );
        self.define_persisted();
        let mut config = [None; 4];
        for (id, event) in config.iter_mut().zip(ConfigEvent::ALL) {
            *id = self.id(
                MetricKind::Counter,
                format!("graphql_aggregator.config.{}", event.name()),
            );
        }
        self.config = config;
        self.config_version = self.id(
            MetricKind::Gauge,
            "graphql_aggregator.config.version".into(),
        );
        self.dropped_headers = self.id(
            MetricKind::Counter,
            "graphql_aggregator.response_headers.dropped".into(),
        );
    }

    /// Something happened fetching the configuration.
    pub fn config(&mut self, event: ConfigEvent) {
        let index = ConfigEvent::ALL.iter().position(|e| *e == event);
        let id = index.and_then(|i| self.config.get(i).copied().flatten());
        Self::count(id, 1);
    }

    /// The configuration version in service, as a number.
    pub fn config_version(&mut self, number: u64) {
        if let Some(id) = self.config_version {
            host::record_metric(id, number);
        }
    }

    /// Answer header lines a reply left out.
    pub fn dropped_headers(&mut self, lines: usize) {
        Self::count(self.dropped_headers, lines as u64);
    }

    /// Something happened in the answer cache.
    pub fn answer_cache(&mut self, event: CacheEvent) {
        let index = CacheEvent::ALL.iter().position(|e| *e == event);
        let id = index.and_then(|i| self.answer_cache.get(i).copied().flatten());
        Self::count(id, 1);
    }

    /// A call joined an identical one in flight for another request.
    pub fn coalesced(&mut self) {
        Self::count(self.coalesced, 1);
    }

    /// A reply sent.
    pub fn request(&mut self, outcome: Outcome) {
        let index = Outcome::ALL.iter().position(|o| *o == outcome);
        let id = index.and_then(|i| self.requests.get(i).copied().flatten());
        Self::count(id, 1);
    }

    /// A call ended (`kind` as `CallOutcome::kind` says), after
    /// `latency_ms`.
    pub fn call(&mut self, upstream: &str, kind: &'static str, latency_ms: u64) {
        let known = self
            .calls
            .iter()
            .find(|(u, k, _)| u == upstream && *k == kind)
            .map(|(_, _, id)| *id);
        let id = match known {
            Some(id) => id,
            // Upstream names come from configurations, which may come
            // from a registry: a host never frees a metric, so their
            // number is bounded; calls of later upstreams count under
            // `calls.other.<kind>`.
            None if self.calls.len() >= MAX_CALL_METRICS => {
                let name = format!("graphql_aggregator.calls.other.{kind}");
                let id = self.id(MetricKind::Counter, name);
                // Found by the upstream's name from now on (within a
                // second bound): a call of it formats no name again.
                if self.calls.len() < 2 * MAX_CALL_METRICS {
                    self.calls.push((upstream.to_string(), kind, id));
                }
                id
            }
            None => {
                let name = format!("graphql_aggregator.calls.{upstream}.{kind}");
                let id = self.id(MetricKind::Counter, name);
                self.calls.push((upstream.to_string(), kind, id));
                id
            }
        };
        Self::count(id, 1);
        if let Some(id) = self.latency {
            host::record_metric(id, latency_ms);
        }
    }

    /// Plan cache lookups.
    pub fn plan_cache(&mut self, hits: u64, misses: u64) {
        Self::count(self.plan_cache_hits, hits);
        Self::count(self.plan_cache_misses, misses);
    }
}

const LATENCY: &str = "graphql_aggregator.call_latency_ms";

/// The most `calls.<upstream>.<kind>` metrics defined (6 kinds for each of
/// 128 upstreams); later upstreams are remembered as counting under
/// `calls.other.<kind>`, up to as many again.
const MAX_CALL_METRICS: usize = 768;

// ---------------------------------------------------------------------------
// persisted queries

/// The `persisted.<event>` counters.
const PERSISTED: [&str; 4] = ["hits", "misses", "registrations", "refusals"];

impl Metrics {
    fn define_persisted(&mut self) {
        let mut ids = [None; 4];
        for (id, event) in ids.iter_mut().zip(PERSISTED) {
            *id = self.id(
                MetricKind::Counter,
                format!("graphql_aggregator.persisted.{event}"),
            );
        }
        self.persisted = ids;
    }

    /// What persisted queries did for a request.
    pub fn persisted(&mut self, report: &graphql_aggregator_engine::persisted::Report) {
        let events = [
            report.hit(),
            report.miss(),
            report.registered,
            report.untrusted(),
        ];
        for (id, happened) in self.persisted.iter().zip(events) {
            if happened {
                Self::count(*id, 1);
            }
        }
    }
}
