//! The filter's metrics, defined with the host (`proxy_define_metric`).
//! Envoy 1.40 shows them in `/stats` as `graphql_aggregator.*` and in
//! `/stats/prometheus` as `graphql_aggregator_*` (dots become `_`); every
//! plugin of one Envoy adds to the same metrics.
//!
//! * `graphql_aggregator.requests.<outcome>`: replies by outcome (`ok`,
//!   `partial`, `request_error`, `limit_exceeded`, `misconfigured`);
//! * `graphql_aggregator.calls.<upstream>.<kind>`: function calls by
//!   upstream and how they went (`ok`, `http_error`, `timeout`,
//!   `unavailable`, `rejected`, `too_large`);
//! * `graphql_aggregator.call_latency_ms`: a histogram of call latencies;
//! * `graphql_aggregator.plan_cache.hits` / `.misses`.
//!
//! A host that refuses a metric only loses that metric.

use super::host::{self, MetricKind};
use graphql_aggregator_engine::response::Outcome;
use std::collections::HashMap;

/// The metric ids, defined on first use.
#[derive(Debug, Default)]
pub struct Metrics {
    ids: HashMap<String, Option<u32>>,
}

impl Metrics {
    fn id(&mut self, kind: MetricKind, name: String) -> Option<u32> {
        *self
            .ids
            .entry(name)
            .or_insert_with_key(|name| host::define_metric(kind, name).ok())
    }

    fn count(&mut self, name: String, by: u64) {
        if by == 0 {
            return;
        }
        if let Some(id) = self.id(MetricKind::Counter, name) {
            host::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
        }
    }

    /// Defines the fixed metrics, so that they show (as 0) before use.
    pub fn define_all(&mut self) {
        for outcome in Outcome::ALL {
            self.id(MetricKind::Counter, request_name(outcome));
        }
        self.id(
            MetricKind::Counter,
            "graphql_aggregator.plan_cache.hits".into(),
        );
        self.id(
            MetricKind::Counter,
            "graphql_aggregator.plan_cache.misses".into(),
        );
        self.id(MetricKind::Histogram, LATENCY.into());
    }

    /// One reply sent.
    pub fn request(&mut self, outcome: Outcome) {
        self.count(request_name(outcome), 1);
    }

    /// One call ended after `latency_ms`.
    pub fn call(&mut self, upstream: &str, kind: &str, latency_ms: u64) {
        self.count(format!("graphql_aggregator.calls.{upstream}.{kind}"), 1);
        if let Some(id) = self.id(MetricKind::Histogram, LATENCY.into()) {
            host::record_metric(id, latency_ms);
        }
    }

    /// Plan-cache lookups since the last report.
    pub fn plan_cache(&mut self, hits: u64, misses: u64) {
        self.count("graphql_aggregator.plan_cache.hits".into(), hits);
        self.count("graphql_aggregator.plan_cache.misses".into(), misses);
    }
}

const LATENCY: &str = "graphql_aggregator.call_latency_ms";

fn request_name(outcome: Outcome) -> String {
    format!("graphql_aggregator.requests.{}", outcome.name())
}
