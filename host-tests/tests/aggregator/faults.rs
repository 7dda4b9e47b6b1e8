//! Limits, the deadline and hostile input on the real `.wasm`: refused
//! cleanly, never a trap (the Wasm stack is far smaller than a native one).

use crate::hosts::{body_of, post, post_headers, post_headers_with, Host};
use crate::play::{assert_idle, reply_json, respond};
use host_tests::{CallState, Delivery, Failure};
use serde_json::{json, Value};
use std::time::Duration;

/// The demo configuration with these top-level settings added.
fn config_with(host: Host, extra: Value) -> String {
    let mut config: Value = serde_json::from_str(&host.config()).unwrap();
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    config.to_string()
}

fn limit_of(reply: &Value) -> &str {
    assert_eq!(
        reply["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED",
        "{reply}"
    );
    reply["errors"][0]["extensions"]["limit"].as_str().unwrap()
}

on_both_hosts! {
    /// A query nested 10,000 levels deep, and one of 10,000 nested lists:
    /// refused by the size limits by default, and by the parser's depth
    /// guard when those are raised — never a stack overflow in the VM.
    fn deeply_nested_queries(host: Host) {
        let deep = body_of(&format!("{}{}", "{ users ".repeat(10_000), "}".repeat(10_000)));
        let lists = body_of(&format!("{{ user(id: {}1{}) {{ name }} }}", "[".repeat(10_000), "]".repeat(10_000)));
        let plugin = host.plugin();
        let request = post(&plugin, &deep);
        assert_eq!(limit_of(&reply_json(&request)), "max_query_bytes");

        let raised = config_with(host, json!({"limits": {"max_query_bytes": 500_000, "max_query_tokens": 100_000}}));
        let plugin = host.plugin_with(&raised);
        for body in [&deep, &lists] {
            let request = post(&plugin, body);
            assert!(request.calls().is_empty());
            assert_eq!(limit_of(&reply_json(&request)), "max_depth");
        }
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// A body over `max_body_bytes` gets a 413 as soon as its size is
    /// known: on Envoy with the first chunk past the limit, before the end.
    fn oversized_body(host: Host) {
        let plugin = host.plugin_with(&config_with(host, json!({"limits": {"max_body_bytes": 100}})));
        let mut request = post_headers(&plugin);
        let body = body_of(&format!("{{ __typename }} # {}", "x".repeat(200)));
        match host {
            Host::Envoy => {
                request.body_chunk(&body.as_bytes()[..150], false);
            }
            Host::Kong => {
                request.body(body.as_bytes());
            }
        }
        assert_eq!(request.expect_reply().status, 413);
        assert_eq!(limit_of(&reply_json(&request)), "max_body_bytes");
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// Each call's timeout is cut to the time left, which is also sent in
    /// `x-request-deadline-ms`. On Envoy the filter's own tick answers the
    /// request at the deadline with what it has and `UPSTREAM_TIMEOUT` for
    /// what is still pending. Kong gives a filter no way to answer from a
    /// timer (its `proxy_set_effective_context` does nothing), so there the
    /// request is answered at the next answer that comes, with the same
    /// errors (Kong cancels the other calls, Envoy's late answer goes
    /// nowhere).
    fn deadline(host: Host) {
        let plugin = host.plugin_with(&config_with(host, json!({"deadline_ms": 800})));
        let mut request = post(&plugin, &body_of(r#"{ user(id: "1") { name } inventory(sku: "sku-1") { quantity } }"#));
        let calls = request.pending_calls();
        assert_eq!(calls.len(), 2);
        for call in &calls {
            assert_eq!(call.timeout_ms, 800);
            assert_eq!(call.header("x-request-deadline-ms"), Some("800"));
        }
        let (user, inventory) = if calls[0].path().unwrap().contains("user") {
            (&calls[0], &calls[1])
        } else {
            (&calls[1], &calls[0])
        };
        plugin.advance(Duration::from_millis(300));
        respond(&mut request, user);
        assert!(request.reply().is_none(), "inventory is still in time");
        plugin.advance(Duration::from_millis(500));
        if host == Host::Kong {
            assert!(request.reply().is_none(), "Kong: no timer may answer");
            assert_eq!(request.call_state(inventory.token), Some(CallState::Pending));
            // Kong's own timer for the call.
            request.fail(inventory.token, Failure::Timeout);
        }
        let reply = reply_json(&request);
        assert_eq!(reply["data"], json!({"user": {"name": "Alice"}, "inventory": null}));
        assert_eq!(reply["errors"][0]["path"], json!(["inventory"]));
        assert_eq!(reply["errors"][0]["extensions"]["code"], "UPSTREAM_TIMEOUT");
        if host == Host::Envoy {
            let late = plugin.respond(inventory.token, 200, &[], br#"{"quantity": 1}"#);
            assert_eq!(late, Delivery::DeliveredToRoot);
        }
        assert_idle(&plugin);
    }
}

/// On Envoy a function that never finishes answering cannot hold a
/// request even if Envoy's own timer did not fire: the filter fails the
/// call at its timeout, and the request at its deadline, from its tick.
#[test]
fn envoy_the_filter_keeps_time_itself() {
    let host = Host::Envoy;
    let mut config: Value =
        serde_json::from_str(&config_with(host, json!({"deadline_ms": 10_000}))).unwrap();
    config["upstreams"]["openfaas"]["timeout_ms"] = json!(320);
    let plugin = host.plugin_with(&config.to_string());
    let request = post(&plugin, &body_of(r#"{ user(id: "1") { name } }"#));
    let call = request.pending_calls().remove(0);
    assert_eq!(call.timeout_ms, 320);
    plugin.advance(Duration::from_millis(300));
    assert!(request.reply().is_none());
    plugin.advance(Duration::from_millis(50));
    let reply = reply_json(&request);
    assert_eq!(reply["data"], json!({"user": null}));
    assert_eq!(
        reply["errors"][0]["extensions"]["code"], "UPSTREAM_TIMEOUT",
        "{reply}"
    );
    assert_idle(&plugin);

    // The deadline, with calls that would outlive it.
    let plugin = host.plugin_with(&config_with(host, json!({"deadline_ms": 400})));
    let request = post(&plugin, &body_of(r#"{ user(id: "1") { name } }"#));
    assert_eq!(request.pending_calls().len(), 1);
    plugin.advance(Duration::from_millis(450));
    let reply = reply_json(&request);
    assert_eq!(
        reply["errors"][0]["extensions"]["code"], "UPSTREAM_TIMEOUT",
        "{reply}"
    );
    assert_idle(&plugin);
}

/// On Envoy a call the tick dispatches (the next one allowed once a late
/// call is given up) answers through the root context; the filter acts for
/// its request again, and the reply reaches the client.
#[test]
fn envoy_a_call_dispatched_by_the_tick_answers_its_request() {
    let host = Host::Envoy;
    let mut config: Value = serde_json::from_str(&config_with(
        host,
        json!({"limits": {"max_concurrent_calls": 1}}),
    ))
    .unwrap();
    config["upstreams"]["openfaas"]["timeout_ms"] = json!(300);
    let plugin = host.plugin_with(&config.to_string());
    let mut request = post(
        &plugin,
        &body_of(r#"{ a: user(id: "1") { name } b: user(id: "2") { name } }"#),
    );
    let first = request.pending_calls().remove(0);
    assert_eq!(request.pending_calls().len(), 1, "one call at a time");
    plugin.advance(Duration::from_millis(350));
    // The tick gave the first up (Envoy's own timer has not fired in this
    // model) and sent the second.
    let next: Vec<_> = request
        .pending_calls()
        .into_iter()
        .filter(|c| c.token != first.token)
        .collect();
    assert_eq!(next.len(), 1);
    respond(&mut request, &next[0]);
    let reply = reply_json(&request);
    assert_eq!(
        reply["data"],
        json!({"a": null, "b": {"name": "Bob"}}),
        "{reply}"
    );
    assert_idle(&plugin);
}

/// Kong: the filter never answers from its tick (the root context has no
/// request there): a late call holds its request until Kong's own timer.
#[test]
fn kong_the_tick_never_acts_for_a_request() {
    let host = Host::Kong;
    let plugin = host.plugin_with(&config_with(host, json!({"deadline_ms": 400})));
    let mut request = post(&plugin, &body_of(r#"{ user(id: "1") { name } }"#));
    let call = request.pending_calls().remove(0);
    plugin.advance(Duration::from_millis(2_000));
    assert!(request.reply().is_none());
    request.fail(call.token, Failure::Timeout);
    let reply = reply_json(&request);
    assert_eq!(
        reply["errors"][0]["extensions"]["code"], "UPSTREAM_TIMEOUT",
        "{reply}"
    );
    assert_idle(&plugin);
}

/// Envoy reports a per-call timeout that fires after the function's
/// headers arrived as a reset (measured), which the filter reports as the
/// timeout it is, not as `UPSTREAM_UNAVAILABLE`.
#[test]
fn envoy_reset_at_the_timeout_is_a_timeout() {
    let host = Host::Envoy;
    let mut config: Value = serde_json::from_str(&host.config()).unwrap();
    config["upstreams"]["openfaas"]["timeout_ms"] = json!(320);
    let plugin = host.plugin_with(&config.to_string());
    let code_after = |wait: u64| {
        let mut request = post(&plugin, &body_of(r#"{ user(id: "1") { name } }"#));
        let call = request.pending_calls().remove(0);
        plugin.advance(Duration::from_millis(wait));
        request.fail(call.token, Failure::Reset);
        let reply = reply_json(&request);
        reply["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        code_after(100),
        "UPSTREAM_UNAVAILABLE",
        "a reset in time is a broken call"
    );
    // Between two of the filter's ticks: the host's timer fired first.
    assert_eq!(code_after(320), "UPSTREAM_TIMEOUT");
    // Envoy's timer may fire before the filter's clock says so (its clock
    // is read at other moments): within a tenth of the timeout.
    assert_eq!(code_after(300), "UPSTREAM_TIMEOUT");
    assert_idle(&plugin);
}

on_both_hosts! {
    /// A body declared larger than `max_body_bytes` is refused from its
    /// headers, before the host buffers it: on Envoy a body over the
    /// buffer limit would otherwise get Envoy's plain-text 413 first
    /// (seen under soak).
    fn a_declared_oversized_body_is_refused_from_its_headers(host: Host) {
        let plugin = host.plugin_with(&config_with(host, json!({"limits": {"max_body_bytes": 100}})));
        let mut request = post_headers_with(&plugin, &[("content-length", "5000")]);
        request.body_chunk(&[b' '; 50], false);
        let reply = request.expect_reply();
        assert_eq!(reply.status, 413);
        assert_eq!(request.body_callbacks(), 0, "refused at headers time");
        assert_eq!(limit_of(&reply_json(&request)), "max_body_bytes");
        assert!(!request.forwarded());
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// The reply's `cache-control` takes the functions' `Age` off their
    /// lifetimes (a cached answer 55 s old with `max-age=60` leaves 5 s),
    /// and keeps `must-revalidate`.
    fn an_answers_age_shortens_the_replys_lifetime(host: Host) {
        let plugin = host.plugin();
        let mut request = post(&plugin, &body_of(r#"{ user(id: "1") { name } }"#));
        let call = request.pending_calls().remove(0);
        request.respond(
            call.token,
            200,
            &[("cache-control", "max-age=60, must-revalidate"), ("age", "55")],
            br#"{"id": "1", "name": "Alice"}"#,
        );
        let reply = request.expect_reply();
        assert_eq!(
            reply.header("cache-control"),
            Some("max-age=5, s-maxage=5, must-revalidate")
        );
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// Failed calls are logged at most 20 a second (functions failing
    /// under load must not flood the gateway's log); the next second's
    /// first line says how many were held back.
    fn failed_calls_are_logged_within_a_ration(host: Host) {
        let plugin = host.plugin();
        let fields: Vec<String> = (0..30).map(|i| format!("u{i}: user(id: \"{i}\") {{ name }}")).collect();
        let mut request = post(&plugin, &body_of(&format!("{{ {} }}", fields.join(" "))));
        for call in request.pending_calls() {
            request.fail(call.token, Failure::ConnectFailure);
        }
        reply_json(&request);
        let ended = |plugin: &host_tests::Plugin| plugin.logs().iter().filter(|l| l.message.contains("ended: unavailable")).count();
        assert_eq!(ended(&plugin), 20);
        plugin.advance(Duration::from_millis(1_100));
        let mut request = post(&plugin, &body_of(r#"{ user(id: "1") { name } }"#));
        let call = request.pending_calls().remove(0);
        request.fail(call.token, Failure::ConnectFailure);
        reply_json(&request);
        assert_eq!(ended(&plugin), 21);
        assert!(plugin.logs().iter().any(|l| l.message.contains("10 more failed calls in the last second were not logged")));
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// Only the upstream's allowlisted client headers reach the function.
    fn forwarded_headers(host: Host) {
        let config: Value = serde_json::from_str(&host.config()).unwrap();
        let mut config = config;
        config["upstreams"]["openfaas"]["forward_headers"] = json!(["authorization", "x-request-id"]);
        let plugin = host.plugin_with(&config.to_string());
        let mut request = post_headers_with(
            &plugin,
            &[("authorization", "Bearer abc"), ("cookie", "session=secret"), ("x-request-id", "r-1")],
        );
        request.body(body_of(r#"{ user(id: "1") { name } }"#).as_bytes());
        let call = request.pending_calls().remove(0);
        assert_eq!(call.header("authorization"), Some("Bearer abc"));
        assert_eq!(call.header("x-request-id"), Some("r-1"));
        assert_eq!(call.header("cookie"), None);
        respond(&mut request, &call);
        reply_json(&request);
        assert_idle(&plugin);
    }
}
