//! The built graphql-aggregator .wasm, driven through the Proxy-Wasm ABI as
//! Envoy 1.40 and Kong 3.9 drive it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use host_tests::{fixtures, Failure, Plugin, Profile, Request};
use serde_json::{json, Value};

const SEED_QUERY: &str = r#"{"query":"query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }","variables":{"userId":"1"}}"#;
const SEED_REPLY: &str = r#"{"data":{"user":{"id":"1","name":"Alice","email":"alice@example.com","orders":[{"id":"order-101","amount":99.99},{"id":"order-102","amount":19.5}]}}}"#;

/// The demo schema, with the target in the host's form.
fn config(target: &str) -> String {
    json!({
        "schema": r#"
            type Query {
              user(id: ID!): User @http(upstream: "openfaas", path: "/user-profile?id={args.id}")
              inventory(sku: String!): Inventory @http(upstream: "openfaas", path: "/inventory?sku={args.sku}")
            }
            type User { id: ID! name: String email: String
              orders: [Order] @http(upstream: "openfaas", path: "/user-orders-batch", batch: {key: "id", param: "ids"}) }
            type Order { id: ID! amount: Float }
            type Inventory { sku: String! quantity: Int }
        "#,
        "upstreams": {"openfaas": {"target": target, "authority": "gateway", "path_prefix": "/function"}}
    })
    .to_string()
}

fn profiles() -> Vec<(&'static str, Profile, String)> {
    vec![
        ("envoy", Profile::envoy(["openfaas"]), config("openfaas")),
        ("kong", Profile::kong(), config("127.0.0.1:8081")),
    ]
}

fn post(plugin: &Plugin) -> Request {
    plugin.request(&[
        (":method", "POST"),
        (":path", "/graphql"),
        (":authority", "localhost"),
        ("content-type", "application/json"),
    ])
}

/// The mock functions' answer for a call path.
fn answer(path: &str) -> (u32, String) {
    match path {
        "/function/user-profile?id=1" => (200, r#"{"id":"1","name":"Alice","email":"alice@example.com"}"#.into()),
        "/function/user-orders-batch?ids=1" => (
            200,
            r#"{"1":[{"id":"order-101","amount":99.99,"itemCount":2},{"id":"order-102","amount":19.5,"itemCount":1}]}"#.into(),
        ),
        p if p.starts_with("/function/inventory") => (200, r#"{"sku":"sku-1","quantity":7}"#.into()),
        _ => (404, "not found".into()),
    }
}

fn path_of(call: &host_tests::Call) -> String {
    call.headers
        .iter()
        .find(|(k, _)| k == ":path")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// Answer every pending call until the filter replies.
fn answer_all(request: &mut Request) -> Value {
    while request.reply().is_none() {
        let calls = request.pending_calls();
        assert!(
            !calls.is_empty(),
            "the filter neither replied nor has calls in flight"
        );
        for call in calls {
            let (status, body) = answer(&path_of(&call));
            request.respond(
                call.token,
                status,
                &[("content-type", "application/json")],
                body.as_bytes(),
            );
        }
    }
    serde_json::from_slice(&request.expect_reply().body).unwrap()
}

#[test]
fn seed_query_on_both_hosts() {
    let module = fixtures::aggregator();
    for (host, profile, config) in profiles() {
        let plugin = Plugin::new(&module, profile, &config);
        assert!(plugin.configured(), "{host}");
        let mut request = post(&plugin);
        request.body(SEED_QUERY.as_bytes());
        let reply = answer_all(&mut request);
        assert_eq!(reply.to_string(), SEED_REPLY, "{host}");
        assert_eq!(request.expect_reply().status, 200, "{host}");
    }
}

#[test]
fn body_in_one_byte_chunks() {
    let module = fixtures::aggregator();
    let (_, profile, config) = profiles().remove(0);
    let plugin = Plugin::new(&module, profile, &config);
    let mut request = post(&plugin);
    let chunks: Vec<&[u8]> = SEED_QUERY.as_bytes().chunks(1).collect();
    request.body_chunks(&chunks);
    assert_eq!(answer_all(&mut request).to_string(), SEED_REPLY);
}

#[test]
fn answers_in_any_order_give_the_same_reply() {
    let module = fixtures::aggregator();
    let body = r#"{"query":"{ a: user(id: \"1\") { name } b: inventory(sku: \"sku-1\") { quantity } c: user(id: \"2\") { name } }"}"#;
    for (host, profile, config) in profiles() {
        let plugin = Plugin::new(&module, profile, &config);
        let mut replies = Vec::new();
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]] {
            let mut request = post(&plugin);
            request.body(body.as_bytes());
            let calls = request.pending_calls();
            assert_eq!(calls.len(), 3, "{host}: all three at once");
            for index in order {
                let (status, text) = answer(&path_of(&calls[index]));
                request.respond(calls[index].token, status, &[], text.as_bytes());
            }
            replies.push(request.expect_reply().body);
        }
        assert!(replies.windows(2).all(|w| w[0] == w[1]), "{host}");
        let reply: Value = serde_json::from_slice(&replies[0]).unwrap();
        assert_eq!(
            reply["data"],
            json!({"a": {"name": "Alice"}, "b": {"quantity": 7}, "c": null})
        );
        assert_eq!(reply["errors"][0]["path"], json!(["c"]));
    }
}

#[test]
fn failed_calls_null_their_field_on_both_hosts() {
    let module = fixtures::aggregator();
    for (host, profile, config) in profiles() {
        let plugin = Plugin::new(&module, profile, &config);
        for failure in [Failure::Reset, Failure::Timeout] {
            let mut request = post(&plugin);
            request.body(br#"{"query":"{ user(id: \"1\") { name } inventory(sku: \"sku-1\") { quantity } }"}"#);
            for call in request.pending_calls() {
                if path_of(&call).contains("user-profile") {
                    request.fail(call.token, failure);
                } else {
                    request.respond(call.token, 200, &[], br#"{"sku":"sku-1","quantity":7}"#);
                }
            }
            let reply: Value = serde_json::from_slice(&request.expect_reply().body).unwrap();
            assert_eq!(
                reply["data"],
                json!({"user": null, "inventory": {"quantity": 7}}),
                "{host} {failure:?}"
            );
            assert_eq!(
                reply["errors"][0]["path"],
                json!(["user"]),
                "{host} {failure:?}"
            );
            let code = reply["errors"][0]["extensions"]["code"].as_str().unwrap();
            assert!(code.starts_with("UPSTREAM_"), "{host} {failure:?}: {code}");
        }
    }
}

#[test]
fn unknown_cluster_is_a_field_error_not_a_hang() {
    let module = fixtures::aggregator();
    let plugin = Plugin::new(
        &module,
        Profile::envoy(["openfaas"]),
        config("no_such_cluster"),
    );
    let mut request = post(&plugin);
    request.body(SEED_QUERY.as_bytes());
    let reply: Value = serde_json::from_slice(&request.expect_reply().body).unwrap();
    assert_eq!(reply["data"], json!({"user": null}));
    assert_eq!(
        reply["errors"][0]["extensions"]["code"],
        "UPSTREAM_UNAVAILABLE"
    );
}

#[test]
fn bad_configuration_is_logged_and_requests_get_500() {
    let module = fixtures::aggregator();
    let bad = config("openfaas").replace(
        r#"upstream: \"openfaas\", path: \"/inventory"#,
        r#"upstream: \"nope\", path: \"/inventory"#,
    );
    assert!(bad.contains("nope"));
    let plugin = Plugin::new(&module, Profile::envoy(["openfaas"]), &bad);
    assert!(
        plugin
            .logs()
            .iter()
            .any(|l| l.message.contains("invalid configuration")
                && l.message.contains("Query.inventory")),
        "{:?}",
        plugin.logs()
    );
    let mut request = post(&plugin);
    request.body(SEED_QUERY.as_bytes());
    let reply = request.expect_reply();
    assert_eq!(reply.status, 500);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GATEWAY_MISCONFIGURED"
    );
    assert!(request.pending_calls().is_empty());
}
