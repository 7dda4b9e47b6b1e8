//! Many requests on one VM: thousands in sequence without memory growth,
//! and a hundred at once with their calls answered in random order.

use crate::hosts::{body_of, post, Host};
use crate::play::{answer_all, assert_idle, reply_json, respond_on};
use host_tests::Request;
use serde_json::{json, Value};

/// The seed query for user `n`.
fn seed_query_for(n: usize) -> String {
    json!({
        "query": "query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }",
        "variables": {"userId": n.to_string()},
    })
    .to_string()
}

/// A mix of request shapes, picked by `i`: the seed query, three root
/// fields, a list with per-item calls, a validation error, a failing call.
fn request_body(i: usize) -> String {
    let user = 1 + i % 50;
    match i % 5 {
        0 => seed_query_for(user),
        1 => body_of(&format!(
            r#"{{ u: user(id: "{user}") {{ name }} i: inventory(sku: "sku-{}") {{ sku quantity }} users {{ id }} }}"#,
            1 + i % 20
        )),
        2 => body_of(r#"{ users { id ordersEach { id amount } } }"#),
        3 => body_of(r#"{ user(id: "1") { nope } }"#),
        _ => body_of(&format!(
            r#"{{ user(id: "{}") {{ name orders {{ id }} }} }}"#,
            100 + i
        )),
    }
}

on_both_hosts! {
    /// 10,000 requests in sequence on one VM: the linear memory after 1,000
    /// and after 10,000 is the same (within one 64 KiB page), so nothing of
    /// a finished request is kept.
    fn ten_thousand_requests_in_constant_memory(host: Host) {
        let plugin = host.plugin();
        let before = plugin.memory_size_bytes();
        let mut at_1000 = 0;
        for i in 1..=10_000 {
            let mut request = post(&plugin, &seed_query_for(1 + i % 50));
            let reply = answer_all(&mut request);
            assert!(reply["data"]["user"]["orders"].is_array(), "{reply}");
            drop(request);
            if i == 1_000 {
                at_1000 = plugin.memory_size_bytes();
            }
        }
        let at_10000 = plugin.memory_size_bytes();
        println!(
            "{host:?}: linear memory {before} bytes at start, {at_1000} after 1,000 requests, {at_10000} after 10,000"
        );
        assert!(
            at_10000 <= at_1000 + 65_536,
            "memory grew from {at_1000} to {at_10000} bytes between request 1,000 and 10,000"
        );
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// 100 requests in flight on one VM, every call answered in a random
    /// (seeded) order across all of them: each gets the reply it gets alone.
    fn hundred_interleaved_requests(host: Host) {
        let plugin = host.plugin();
        let alone: Vec<Value> = (0..100)
            .map(|i| answer_all(&mut post(&plugin, &request_body(i))))
            .collect();

        let mut requests: Vec<Request> = (0..100).map(|i| post(&plugin, &request_body(i))).collect();
        let mut rng = fastrand::Rng::with_seed(0x5EED);
        let mut answered = 0;
        loop {
            let pending = plugin.pending_calls();
            if pending.is_empty() {
                break;
            }
            respond_on(&plugin, &pending[rng.usize(..pending.len())]);
            answered += 1;
        }
        assert!(answered > 100, "calls from many requests were interleaved");
        for (i, request) in requests.iter_mut().enumerate() {
            assert_eq!(reply_json(request), alone[i], "request {i}: {}", request_body(i));
        }
        drop(requests);
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// 20,000 clients that leave while their calls are in flight: Kong
    /// cancels those calls (they never answer), Envoy answers them later to
    /// the root context; either way the VM keeps nothing of them (the SDK
    /// kept a callout entry per cancelled call on Kong).
    fn clients_that_leave_leave_nothing_behind(host: Host) {
        let plugin = host.plugin();
        let mut at_2000 = 0;
        for i in 1..=20_000usize {
            let mut request = post(&plugin, &seed_query_for(1 + i % 50));
            let calls = request.pending_calls();
            assert_eq!(calls.len(), 1);
            request.finish();
            if host == Host::Envoy {
                // Envoy answers the call anyway; nobody waits for it.
                respond_on(&plugin, &calls[0]);
            }
            if i == 2_000 {
                at_2000 = plugin.memory_size_bytes();
            }
        }
        let at_20000 = plugin.memory_size_bytes();
        println!("{host:?}: linear memory {at_2000} bytes after 2,000 clients left, {at_20000} after 20,000");
        assert!(
            at_20000 <= at_2000 + 65_536,
            "memory grew from {at_2000} to {at_20000} bytes between client 2,000 and 20,000"
        );
        assert_idle(&plugin);
    }
}
