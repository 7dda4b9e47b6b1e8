//! Calls that fail, in each host's own way: the failed field is null with
//! an error at its path, the rest of the data is kept, and the request
//! always finishes.

use crate::hosts::{body_of, config, post, Host, SEED_QUERY};
use crate::play::{answer_all, assert_idle, reply_json, respond};
use host_tests::{Delivery, Failure};
use serde_json::{json, Value};

const FAILURES: [Failure; 5] = [
    Failure::Reset,
    Failure::ConnectionTerminated,
    Failure::ConnectFailure,
    Failure::Timeout,
    Failure::ResolverFailure,
];

/// The one error of `reply`, checked to be at `path` with an upstream code.
fn the_error(reply: &Value, path: Value) -> &Value {
    let errors = reply["errors"].as_array().expect("an errors list");
    assert_eq!(errors.len(), 1, "{reply}");
    let error = &errors[0];
    assert_eq!(error["path"], path, "{reply}");
    let code = error["extensions"]["code"].as_str().unwrap_or_default();
    assert!(code.starts_with("UPSTREAM_"), "{reply}");
    assert!(!error["message"].as_str().unwrap_or_default().is_empty());
    error
}

on_both_hosts! {
    /// A root call failing in each way nulls its field only.
    fn failed_root_call(host: Host) {
        let plugin = host.plugin();
        let body = body_of(r#"{ user(id: "1") { name orders { id } } inventory(sku: "sku-1") { quantity } }"#);
        for failure in FAILURES {
            let mut request = post(&plugin, &body);
            for call in request.pending_calls() {
                if call.path().unwrap().contains("user-profile") {
                    assert_eq!(request.fail(call.token, failure), Delivery::Delivered);
                } else {
                    respond(&mut request, &call);
                }
            }
            let reply = reply_json(&request);
            assert_eq!(
                reply["data"],
                json!({"user": null, "inventory": {"quantity": 7}}),
                "{failure:?}"
            );
            the_error(&reply, json!(["user"]));
        }
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// A nested call failing in each way nulls the nested field only.
    fn failed_nested_call(host: Host) {
        let plugin = host.plugin();
        for failure in FAILURES {
            let mut request = post(&plugin, SEED_QUERY);
            let profile = request.pending_calls().remove(0);
            respond(&mut request, &profile);
            let orders = request.pending_calls().remove(0);
            assert!(orders.path().unwrap().contains("user-orders-batch"));
            request.fail(orders.token, failure);
            let reply = reply_json(&request);
            assert_eq!(
                reply["data"],
                json!({"user": {"id": "1", "name": "Alice", "email": "alice@example.com", "orders": null}}),
                "{failure:?}"
            );
            the_error(&reply, json!(["user", "orders"]));
        }
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// One call of a list failing puts the list index in the error's path.
    fn failed_call_inside_a_list(host: Host) {
        let plugin = host.plugin();
        let mut request = post(&plugin, &body_of("{ users { id ordersEach { id } } }"));
        let users = request.pending_calls().remove(0);
        respond(&mut request, &users);
        let per_user = request.pending_calls();
        assert_eq!(per_user.len(), 50, "one call per user, all at once");
        for call in per_user {
            if call.path().unwrap().ends_with("?id=3") {
                request.fail(call.token, Failure::Timeout);
            } else {
                respond(&mut request, &call);
            }
        }
        let reply = reply_json(&request);
        assert_eq!(reply["data"]["users"][2], json!({"id": "3", "ordersEach": null}));
        assert_eq!(reply["data"]["users"][3]["ordersEach"], json!([{"id": "order-401"}]));
        the_error(&reply, json!(["users", 2, "ordersEach"]));
    }
}

on_both_hosts! {
    /// A target the host refuses at dispatch time (Envoy BadArgument, Kong
    /// InternalFailure) is an error for that field, answered at once.
    fn call_refused_at_dispatch(host: Host) {
        let plugin = host.plugin_with(&config(host.target(), host.refused_target(), "/function"));
        let body = body_of(r#"{ user(id: "1") { name } inventory(sku: "sku-1") { quantity } }"#);
        let mut request = post(&plugin, &body);
        let reply = answer_all(&mut request);
        assert_eq!(reply["data"], json!({"user": {"name": "Alice"}, "inventory": null}));
        let error = the_error(&reply, json!(["inventory"]));
        assert_eq!(error["extensions"]["code"], "UPSTREAM_UNAVAILABLE");
        if host == Host::Kong {
            assert!(plugin.host_logs().iter().any(|l| l.contains("dispatch failed")));
        }
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// The client goes away with calls in flight: their late answers (Envoy
    /// delivers them to the root context, Kong cancels them) change nothing,
    /// and the next request is served normally.
    fn client_gone_with_calls_in_flight(host: Host) {
        let plugin = host.plugin();
        let mut request = post(&plugin, SEED_QUERY);
        let calls = request.pending_calls();
        assert_eq!(calls.len(), 1);
        request.finish();
        let late = crate::play::answer(&calls[0]);
        let delivery = plugin.respond(calls[0].token, u32::from(late.status), &[], late.body.as_bytes());
        let expected = match host {
            Host::Envoy => Delivery::DeliveredToRoot,
            Host::Kong => Delivery::Dropped,
        };
        assert_eq!(delivery, expected);
        assert!(plugin.pending_calls().is_empty());
        let mut next = post(&plugin, SEED_QUERY);
        assert_eq!(answer_all(&mut next)["data"]["user"]["name"], "Alice");
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// A dispatch the host answers with a status the SDK did not expect
    /// (proxy-wasm 0.2.5 panicked on any but BadArgument and
    /// InternalFailure, trapping the VM) fails that field alone, and the
    /// VM serves the next request.
    fn an_unexpected_dispatch_status_fails_the_field_not_the_vm(host: Host) {
        let profile = host
            .profile()
            .dispatch_status(host.target(), host_tests::Status::ParseFailure);
        let plugin = host_tests::Plugin::new(&host_tests::fixtures::aggregator(), profile, host.config());
        for _ in 0..2 {
            let request = post(&plugin, r#"{"query":"{ user(id: \"1\") { name } }"}"#);
            let reply = reply_json(&request);
            assert_eq!(reply["data"]["user"], Value::Null, "{reply}");
            let error = the_error(&reply, json!(["user"]));
            assert!(error["message"].as_str().unwrap().contains("refused"), "{reply}");
        }
        assert_eq!(plugin.trapped(), None);
        assert_idle(&plugin);
    }
}
