//! Fewer calls across requests: identical calls of concurrent requests
//! joined while in flight (Envoy: the filter acts for each request through
//! `proxy_set_effective_context`; Kong cannot, and makes every call), and
//! the answer cache in the host's shared data (both hosts).

use crate::hosts::{merged, post, post_headers_with, Host, SEED_QUERY, SEED_REPLY};
use crate::play::{answer, assert_idle, reply_json, respond_on};
use host_tests::{Call, Failure, Plugin};
use serde_json::{json, Value};
use std::time::Duration;

/// The demo configuration with these top-level settings merged in (an
/// object value is merged one level deep, so `upstreams` keeps its entries).
fn config_with(host: Host, extra: Value) -> String {
    merged(serde_json::from_str(&host.config()).unwrap(), extra)
}

/// Answers `call` as the functions would, with these extra headers.
fn respond_with(plugin: &Plugin, call: &Call, headers: &[(&str, &str)]) {
    let answer = answer(call);
    let mut all = vec![("content-type", answer.content_type())];
    all.extend_from_slice(headers);
    plugin.respond(
        call.token,
        u32::from(answer.status),
        &all,
        answer.body.as_bytes(),
    );
}

fn paths(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c.path().unwrap_or_default().to_string())
        .collect()
}

fn metric(plugin: &Plugin, name: &str) -> u64 {
    plugin.metric(name).map_or(0, |m| m.value as u64)
}

/// Two clients asking for the same user at once: on Envoy one call per
/// function serves both (the second request joins the first's calls);
/// Kong, which cannot act for another request, makes every call.
#[test]
fn concurrent_identical_requests_share_calls_on_envoy() {
    for host in [Host::Envoy, Host::Kong] {
        let plugin = host.plugin();
        let a = post(&plugin, SEED_QUERY);
        let b = post(&plugin, SEED_QUERY);
        let first_wave = plugin.pending_calls();
        let expected = match host {
            Host::Envoy => 1,
            Host::Kong => 2,
        };
        assert_eq!(
            first_wave.len(),
            expected,
            "{host:?}: {:?}",
            paths(&first_wave)
        );
        let mut made = 0;
        while a.reply().is_none() || b.reply().is_none() {
            let calls = plugin.pending_calls();
            assert!(
                !calls.is_empty(),
                "{host:?}: no reply and no call in flight"
            );
            for call in calls {
                made += 1;
                respond_on(&plugin, &call);
            }
        }
        assert_eq!(
            made,
            2 * expected,
            "{host:?}: calls made for the two requests"
        );
        for request in [&a, &b] {
            assert_eq!(
                reply_json(request),
                serde_json::from_str::<Value>(SEED_REPLY).unwrap()
            );
        }
        let joined = metric(&plugin, "graphql_aggregator.coalesced_calls");
        assert_eq!(joined, if host == Host::Envoy { 2 } else { 0 }, "{host:?}");
        assert_idle(&plugin);
    }
}

/// The request that sent a call leaves (its client hung up): the call
/// keeps running for the request that joined it, whose answer reaches it
/// although the context that dispatched the call is gone.
#[test]
fn a_request_that_leaves_does_not_cancel_a_joined_call() {
    let plugin = Host::Envoy.plugin();
    let mut a = post(&plugin, SEED_QUERY);
    let b = post(&plugin, SEED_QUERY);
    let calls = plugin.pending_calls();
    assert_eq!(calls.len(), 1);
    a.finish();
    respond_on(&plugin, &calls[0]);
    // b's next wave, then its reply.
    let next = plugin.pending_calls();
    assert_eq!(paths(&next).len(), 1, "{:?}", paths(&next));
    respond_on(&plugin, &next[0]);
    assert_eq!(
        reply_json(&b),
        serde_json::from_str::<Value>(SEED_REPLY).unwrap()
    );
    assert_idle(&plugin);
}

/// A request that joined a call later than its sender keeps its own
/// deadline: the sender times out (the tick answers it with
/// UPSTREAM_TIMEOUT), the host's timer ends the call at the sender's
/// timeout, and the request that joined, with time left, sends the call
/// again and gets its data.
#[test]
fn a_request_that_times_out_does_not_break_the_other() {
    let config = config_with(
        Host::Envoy,
        json!({"upstreams": {"openfaas": {"timeout_ms": 1000}}}),
    );
    let plugin = Host::Envoy.plugin_with(&config);
    let a = post(&plugin, SEED_QUERY);
    plugin.advance(Duration::from_millis(600));
    let b = post(&plugin, SEED_QUERY);
    let calls = plugin.pending_calls();
    assert_eq!(calls.len(), 1, "b joined a's call: {:?}", paths(&calls));
    assert_eq!(calls[0].timeout_ms, 1000);
    plugin.advance(Duration::from_millis(400));
    let timed_out = reply_json(&a);
    assert_eq!(
        timed_out["errors"][0]["extensions"]["code"], "UPSTREAM_TIMEOUT",
        "{timed_out}"
    );
    assert!(b.reply().is_none(), "b still has 600 ms");
    // The host's own timer fires for the call a sent.
    plugin.fail(calls[0].token, Failure::Timeout);
    assert!(b.reply().is_none(), "b sends the call again");
    let again = plugin.pending_calls();
    assert_eq!(paths(&again), paths(&calls));
    assert!(
        again[0].timeout_ms <= 600 && again[0].timeout_ms > 500,
        "{}",
        again[0].timeout_ms
    );
    respond_on(&plugin, &again[0]);
    let next = plugin.pending_calls();
    assert_eq!(next.len(), 1);
    respond_on(&plugin, &next[0]);
    assert_eq!(
        reply_json(&b),
        serde_json::from_str::<Value>(SEED_REPLY).unwrap()
    );
    // One call of each: the first one timed out, counted once.
    assert_eq!(
        metric(&plugin, "graphql_aggregator.calls.openfaas.timeout"),
        1
    );
    assert_idle(&plugin);
}

/// Two of one request's own calls with one identity (two upstreams with
/// the same target, authority and prefix): each is answered, the second
/// never joins the first (it would overwrite the first's place and leave
/// it unanswered until the deadline).
#[test]
fn a_request_never_joins_its_own_call() {
    let schema = r#"
type Query {
  a: User @http(upstream: "openfaas", path: "/user-profile?id=1")
  b: User @http(upstream: "warehouse", path: "/user-profile?id=1")
}
type User { id: ID! name: String }
"#;
    let plugin = Host::Envoy.plugin_with(&config_with(Host::Envoy, json!({"schema": schema})));
    let request = post(&plugin, r#"{"query":"{ a { name } b { name } }"}"#);
    let calls = plugin.pending_calls();
    assert_eq!(calls.len(), 2, "{:?}", paths(&calls));
    for call in &calls {
        respond_on(&plugin, call);
    }
    let reply = reply_json(&request);
    assert_eq!(
        reply,
        json!({"data": {"a": {"name": "Alice"}, "b": {"name": "Alice"}}})
    );
    assert_idle(&plugin);
}

/// Calls that send different credentials are different calls; the same
/// credentials join.
#[test]
fn headers_are_part_of_a_calls_identity() {
    let config = config_with(
        Host::Envoy,
        json!({"upstreams": {"openfaas": {"forward_headers": ["authorization"]}}}),
    );
    let plugin = Host::Envoy.plugin_with(&config);
    let mut requests = Vec::new();
    for token in ["Bearer x", "Bearer y", "Bearer x"] {
        let mut request = post_headers_with(&plugin, &[("authorization", token)]);
        request.body(SEED_QUERY.as_bytes());
        requests.push(request);
    }
    let calls = plugin.pending_calls();
    let sent: Vec<&str> = calls
        .iter()
        .map(|c| c.header("authorization").unwrap_or_default())
        .collect();
    assert_eq!(sent, ["Bearer x", "Bearer y"]);
    while requests.iter().any(|r| r.reply().is_none()) {
        for call in plugin.pending_calls() {
            respond_on(&plugin, &call);
        }
    }
    for request in &requests {
        assert_eq!(reply_json(request)["data"]["user"]["name"], "Alice");
    }
    assert_idle(&plugin);
}

/// Mutations are never joined: two identical concurrent mutations make
/// two calls, and so do the GET calls of a mutation operation.
#[test]
fn mutations_are_never_joined() {
    let schema = r#"
type Query { user(id: ID!): User @http(upstream: "openfaas", path: "/user-profile?id={args.id}") }
type Mutation {
  touch(id: ID!): User @http(upstream: "openfaas", method: "POST", path: "/touch?id={args.id}", dedupe: true)
  read(id: ID!): User @http(upstream: "openfaas", path: "/user-profile?id={args.id}")
}
type User { id: ID! name: String }
"#;
    let config = config_with(Host::Envoy, json!({"schema": schema}));
    let plugin = Host::Envoy.plugin_with(&config);
    let body = json!({"query": "mutation { touch(id: \"1\") { name } }"}).to_string();
    let read = json!({"query": "mutation { read(id: \"1\") { name } }"}).to_string();
    let requests = [
        post(&plugin, &body),
        post(&plugin, &body),
        post(&plugin, &read),
        post(&plugin, &read),
    ];
    let calls = plugin.pending_calls();
    assert_eq!(calls.len(), 4, "{:?}", paths(&calls));
    for call in &calls {
        plugin.respond(
            call.token,
            200,
            &[("content-type", "application/json")],
            br#"{"id":"1","name":"Alice"}"#,
        );
    }
    for request in &requests {
        assert_eq!(reply_json(request)["data"].as_object().unwrap().len(), 1);
    }
    assert_eq!(metric(&plugin, "graphql_aggregator.coalesced_calls"), 0);
    assert_idle(&plugin);
}

on_both_hosts! {
    /// An answer that may be kept serves the next request from the host's
    /// shared data until its lifetime ends; the reply's cache-control
    /// counts down with it.
    fn the_answer_cache_serves_until_the_answer_expires(host: Host) {
        let config = config_with(host, json!({"answer_cache": {"max_bytes": 1048576, "max_entry_bytes": 16384}}));
        let plugin = host.plugin_with(&config);
        let cached = [("cache-control", "max-age=60")];

        // First request: both calls made, each answer kept.
        let first = post(&plugin, SEED_QUERY);
        while first.reply().is_none() {
            for call in plugin.pending_calls() {
                respond_with(&plugin, &call, &cached);
            }
        }
        assert_eq!(reply_json(&first), serde_json::from_str::<Value>(SEED_REPLY).unwrap());
        assert_eq!(metric(&plugin, "graphql_aggregator.answer_cache.stores"), 2);

        // 10 s later: no call at all; the reply has 50 s left.
        plugin.advance(Duration::from_secs(10));
        let second = post(&plugin, SEED_QUERY);
        assert!(plugin.pending_calls().is_empty(), "{:?}", paths(&plugin.pending_calls()));
        assert_eq!(reply_json(&second), serde_json::from_str::<Value>(SEED_REPLY).unwrap());
        let reply = second.expect_reply();
        assert_eq!(reply.header("cache-control"), Some("max-age=50, s-maxage=50"));
        assert_eq!(metric(&plugin, "graphql_aggregator.answer_cache.hits"), 2);

        // After the lifetime: called again.
        plugin.advance(Duration::from_secs(51));
        let third = post(&plugin, SEED_QUERY);
        assert_eq!(plugin.pending_calls().len(), 1);
        while third.reply().is_none() {
            for call in plugin.pending_calls() {
                respond_with(&plugin, &call, &cached);
            }
        }
        assert_eq!(reply_json(&third)["data"]["user"]["name"], "Alice");
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// What may not be kept is not: `no-store`, `private`, an answer to a
    /// call with credentials that does not say `public`, an HTTP error;
    /// and with the cache off (the default) nothing is looked up.
    fn the_answer_cache_keeps_only_what_may_be_kept(host: Host) {
        let on = json!({"answer_cache": {"max_bytes": 1048576, "max_entry_bytes": 16384}});
        for (headers, status) in [
            (vec![("cache-control", "no-store")], 200),
            (vec![("cache-control", "private, max-age=60")], 200),
            (vec![("cache-control", "max-age=60")], 500),
        ] {
            let plugin = host.plugin_with(&config_with(host, on.clone()));
            for _ in 0..2 {
                let request = post(&plugin, r#"{"query":"{ user(id: \"1\") { name } }"}"#);
                let calls = plugin.pending_calls();
                assert_eq!(calls.len(), 1, "{headers:?} {status}: called again");
                let mut all = vec![("content-type", "application/json")];
                all.extend_from_slice(&headers);
                plugin.respond(calls[0].token, status, &all, br#"{"id":"1","name":"Alice"}"#);
                reply_json(&request);
            }
            assert_eq!(metric(&plugin, "graphql_aggregator.answer_cache.stores"), 0);
        }
        // Credentials: kept only when the answer says a shared cache may.
        let mut with_auth = serde_json::from_str::<Value>(&config_with(host, on.clone())).unwrap();
        with_auth["upstreams"]["openfaas"]["forward_headers"] = json!(["authorization"]);
        for (cache_control, kept) in [("max-age=60", false), ("public, max-age=60", true)] {
            let plugin = host.plugin_with(&with_auth.to_string());
            for round in 0..2 {
                let mut request = post_headers_with(&plugin, &[("authorization", "Bearer x")]);
                request.body(br#"{"query":"{ user(id: \"1\") { name } }"}"#);
                let calls = plugin.pending_calls();
                if round == 1 && kept {
                    assert!(calls.is_empty(), "{cache_control}: served from the cache");
                } else {
                    assert_eq!(calls.len(), 1, "{cache_control} round {round}");
                    plugin.respond(calls[0].token, 200, &[("content-type", "application/json"), ("cache-control", cache_control)], br#"{"id":"1","name":"Alice"}"#);
                }
                assert_eq!(reply_json(&request)["data"]["user"]["name"], "Alice");
            }
        }
        // Off by default: no shared data is touched.
        let plugin = host.plugin();
        let request = post(&plugin, r#"{"query":"{ user(id: \"1\") { name } }"}"#);
        let calls = plugin.pending_calls();
        plugin.respond(calls[0].token, 200, &[("content-type", "application/json"), ("cache-control", "max-age=60")], br#"{"id":"1","name":"Alice"}"#);
        reply_json(&request);
        assert_eq!(plugin.shared_data("graphql-aggregator:answer:0"), None);
        assert_eq!(metric(&plugin, "graphql_aggregator.answer_cache.misses"), 0);
    }
}

on_both_hosts! {
    /// The cache holds a fixed number of slots: 50 distinct users cached in
    /// a 4-slot cache leave 4 keys in the host's shared data, each entry
    /// within its bound; a configured lifetime keeps answers that say
    /// nothing about caching.
    fn the_answer_cache_is_bounded_by_slots(host: Host) {
        let config = config_with(host, json!({
            "answer_cache": {"max_bytes": 4 * 16384, "max_entry_bytes": 16384},
            "upstreams": {"openfaas": {"cache": {"ttl_ms": 60000}}},
        }));
        let plugin = host.plugin_with(&config);
        for id in 1..=50 {
            let request = post(&plugin, &json!({"query": format!("{{ user(id: \"{id}\") {{ name }} }}")}).to_string());
            for call in plugin.pending_calls() {
                respond_on(&plugin, &call);
            }
            assert!(reply_json(&request)["data"]["user"]["name"].is_string());
        }
        let slots: Vec<usize> = (0..8)
            .filter_map(|n| plugin.shared_data(&format!("graphql-aggregator:answer:{n}")))
            .map(|entry| entry.len())
            .collect();
        assert_eq!(slots.len(), 4, "only slots 0 to 3 exist");
        assert!(slots.iter().all(|len| *len <= 16384));
        assert_eq!(metric(&plugin, "graphql_aggregator.answer_cache.stores"), 50);
        assert!(metric(&plugin, "graphql_aggregator.answer_cache.evictions") >= 46);
        assert_idle(&plugin);
    }
}
