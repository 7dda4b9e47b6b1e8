//! Metrics, the plan cache and request ids, as the gateway sees them.

use crate::hosts::{body_of, post, post_headers_with, Host, SEED_QUERY};
use crate::play::{answer_all, assert_idle, reply_json, respond};
use host_tests::Plugin;
use std::time::Duration;

fn counter(plugin: &Plugin, name: &str) -> i64 {
    plugin
        .metric(&format!("graphql_aggregator.{name}"))
        .unwrap_or_else(|| panic!("no metric {name}: {:?}", plugin.metrics()))
        .value
}

on_both_hosts! {
    /// Replies by outcome, calls by upstream and outcome, call latencies and
    /// plan-cache hits are counted.
    fn metrics(host: Host) {
        let plugin = host.plugin();
        // Defined up front, so that dashboards see zeros.
        assert_eq!(counter(&plugin, "requests.ok"), 0);
        assert_eq!(counter(&plugin, "plan_cache.misses"), 0);

        let mut seed = post(&plugin, SEED_QUERY);
        let first = seed.pending_calls().remove(0);
        plugin.advance(Duration::from_millis(30));
        respond(&mut seed, &first);
        answer_all(&mut seed);
        let mut again = post(&plugin, SEED_QUERY);
        answer_all(&mut again);
        let mut partial = post(&plugin, &body_of(r#"{ user(id: "999") { name } }"#));
        answer_all(&mut partial);
        let invalid = post(&plugin, &body_of("{ nope }"));
        reply_json(&invalid);

        assert_eq!(counter(&plugin, "requests.ok"), 2);
        assert_eq!(counter(&plugin, "requests.partial"), 1);
        assert_eq!(counter(&plugin, "requests.request_error"), 1);
        assert_eq!(counter(&plugin, "calls.openfaas.ok"), 4);
        assert_eq!(counter(&plugin, "calls.openfaas.http_error"), 1);
        // The seed document was validated once; the others once each.
        assert_eq!(counter(&plugin, "plan_cache.hits"), 1);
        assert_eq!(counter(&plugin, "plan_cache.misses"), 3);
        let latency = plugin.metric("graphql_aggregator.call_latency_ms").unwrap();
        assert_eq!(latency.recorded.len(), 5);
        assert_eq!(latency.recorded[0], 30, "{:?}", latency.recorded);
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// Every call of a request carries the client's x-request-id, or one
    /// the filter made up when there was none.
    fn request_ids(host: Host) {
        let plugin = host.plugin();
        let mut request = post_headers_with(&plugin, &[("x-request-id", "client-42")]);
        request.body(SEED_QUERY.as_bytes());
        answer_all(&mut request);
        for call in request.calls() {
            assert_eq!(call.header("x-request-id"), Some("client-42"));
        }
        let mut anonymous = post(&plugin, SEED_QUERY);
        answer_all(&mut anonymous);
        let ids: Vec<String> = anonymous
            .calls()
            .iter()
            .map(|c| c.header("x-request-id").unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(ids[0].starts_with("ga-") && ids[0] == ids[1], "{ids:?}");
        assert_idle(&plugin);
    }
}
