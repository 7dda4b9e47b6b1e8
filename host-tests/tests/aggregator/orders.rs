//! The seed query, and replies that do not depend on the order in which
//! the functions answer.

use crate::hosts::{body_of, post, Host, SEED_QUERY, SEED_REPLY};
use crate::play::{assert_idle, key_of, reply_json, respond};
use host_tests::Plugin;
use serde_json::{json, Value};

/// Runs `body` once for every order in which its calls can be answered
/// (calls dispatched later join the choice as soon as they exist) and
/// returns each schedule with its reply body.
fn every_schedule(plugin: &Plugin, body: &str) -> Vec<(Vec<String>, Vec<u8>)> {
    let mut done = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(schedule) = todo.pop() {
        let mut request = post(plugin, body);
        for key in &schedule {
            let call = request
                .pending_calls()
                .into_iter()
                .find(|c| key_of(c) == *key)
                .unwrap_or_else(|| panic!("{key} was not dispatched again"));
            respond(&mut request, &call);
        }
        if let Some(reply) = request.reply() {
            reply_json(&request);
            done.push((schedule, reply.body));
            continue;
        }
        let pending = request.pending_calls();
        assert!(!pending.is_empty(), "no reply and nothing in flight");
        for call in pending {
            let mut next = schedule.clone();
            next.push(key_of(&call));
            todo.push(next);
        }
    }
    assert_idle(plugin);
    done
}

/// A VM for [`every_schedule`], which leaves each request's calls in flight
/// when it moves on to the next order: with coalescing, the next request
/// would join those calls instead of making its own.
fn one_request_at_a_time(host: Host) -> Plugin {
    let mut config: Value = serde_json::from_str(&host.config()).unwrap();
    config["coalesce"] = json!(false);
    host.plugin_with(&config.to_string())
}

/// Asserts all replies are byte-identical and returns the one reply.
fn the_same_reply(schedules: &[(Vec<String>, Vec<u8>)]) -> Value {
    let (first_schedule, first) = &schedules[0];
    for (schedule, reply) in schedules {
        assert_eq!(
            String::from_utf8_lossy(reply),
            String::from_utf8_lossy(first),
            "answered in order {schedule:?}, not as in {first_schedule:?}"
        );
    }
    serde_json::from_slice(first).unwrap()
}

on_both_hosts! {
    /// The seed's request gets exactly the seed's reply, in two waves.
    fn seed_query(host: Host) {
        let plugin = one_request_at_a_time(host);
        assert!(plugin.configured());
        let schedules = every_schedule(&plugin, SEED_QUERY);
        assert_eq!(schedules.len(), 1, "profile, then orders");
        assert_eq!(String::from_utf8_lossy(&schedules[0].1), SEED_REPLY);
        assert_eq!(
            schedules[0].0,
            ["/function/user-profile?id=1 ", "/function/user-orders-batch?ids=1 "]
        );
    }
}

on_both_hosts! {
    /// Four root calls, one of them failing, answered in all 24 orders.
    fn four_root_calls_in_every_order(host: Host) {
        let plugin = one_request_at_a_time(host);
        let body = body_of(
            r#"{ a: user(id: "1") { name } b: user(id: "999") { name }
                 c: inventory(sku: "sku-1") { quantity } d: inventory(sku: "sku-2") { quantity } }"#,
        );
        let schedules = every_schedule(&plugin, &body);
        assert_eq!(schedules.len(), 24);
        let reply = the_same_reply(&schedules);
        assert_eq!(
            reply["data"],
            json!({"a": {"name": "Alice"}, "b": null, "c": {"quantity": 7}, "d": {"quantity": 14}})
        );
        assert_eq!(reply["errors"].as_array().unwrap().len(), 1);
        assert_eq!(reply["errors"][0]["path"], json!(["b"]));
    }
}

on_both_hosts! {
    /// Three root calls and a nested one that waits for its parent: all 12
    /// orders the filter allows give the same reply.
    fn nested_calls_in_every_order(host: Host) {
        let plugin = one_request_at_a_time(host);
        let body = body_of(
            r#"{ user(id: "2") { name orders { id } } inventory(sku: "sku-3") { quantity }
                 users { id } }"#,
        );
        let schedules = every_schedule(&plugin, &body);
        assert_eq!(schedules.len(), 12, "4 calls, orders after user: 4!/2");
        let reply = the_same_reply(&schedules);
        assert_eq!(reply["data"]["user"], json!({"name": "Bob", "orders": [{"id": "order-201"}]}));
        assert_eq!(reply["data"]["inventory"], json!({"quantity": 21}));
        assert_eq!(reply["data"]["users"].as_array().unwrap().len(), 50);
        assert!(reply.get("errors").is_none(), "{reply}");
    }
}
