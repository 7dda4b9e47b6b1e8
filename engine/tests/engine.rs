//! The engine, natively: planning, parallel dispatch, batching, merging and
//! errors, against fake functions with the mock functions' data.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::{Execution, PendingCall};
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::upstream::{CallFailure, CallOutcome};
use mock_functions::{answer_get, DataSet};
use serde_json::{json, Value};
use std::sync::Arc;

const SCHEMA: &str = r#"
type Query {
  user(id: ID!): User @http(upstream: "fn", path: "/user-profile?id={args.id}")
  requiredUser(id: ID!): User! @http(upstream: "fn", path: "/user-profile?id={args.id}")
  users: [User] @http(upstream: "fn", path: "/users")
  inventory(sku: String!): Inventory @http(upstream: "fn", path: "/inventory?sku={args.sku}")
  node(id: ID!): Node @http(upstream: "fn", path: "/node?id={args.id}")
}
type Mutation {
  createOrder(userId: ID!, amount: Float!): Order @http(upstream: "fn", method: "POST", path: "/create-order", body: "{\"userId\": \"{args.userId}\", \"amount\": \"{args.amount}\"}")
}
interface Node { id: ID! }
type User implements Node {
  id: ID!
  name: String
  email: String
  strictName: String!
  orders: [Order] ORDERS
}
type Order implements Node { id: ID! amount: Float itemCount: Int }
type Inventory { sku: String! inStock: Boolean quantity: Int }
"#;

const BATCHED: &str =
    r#"@http(upstream: "fn", path: "/user-orders-batch", batch: {key: "id", param: "ids"})"#;
const PER_PARENT: &str = r#"@http(upstream: "fn", path: "/user-orders?id={parent.id}")"#;

fn gateway(orders: &str) -> Arc<Gateway> {
    let config = json!({
        "schema": SCHEMA.replace("ORDERS", orders),
        "upstreams": {"fn": {"target": "functions", "path_prefix": "/function"}}
    });
    Arc::new(Gateway::from_json(&config.to_string()).expect("valid config"))
}

const USERS: u32 = 50;

/// The mock functions' data set (the same answers the real functions serve).
const DATA: DataSet = DataSet::new(USERS);

/// The orders of user `id`, as the functions serve them.
fn orders(id: u32) -> Value {
    DATA.orders(&id.to_string())
}

/// The functions' answer for a path: the mock functions' own, plus `/node`
/// (an interface) and `/create-order` (a mutation) for these tests.
fn answer(path: &str) -> (u16, Vec<u8>) {
    let route = path.strip_prefix("/function").unwrap_or(path);
    let body = match route.split_once('?').unwrap_or((route, "")) {
        ("/node", "id=1") => json!({"__typename": "User", "id": "1", "name": "Alice"}),
        ("/node", "id=o") => json!({"__typename": "Order", "id": "o", "amount": 1.5}),
        ("/node", _) => json!({"id": "x"}),
        ("/create-order", _) => json!({"id": "order-new", "amount": 5.0}),
        _ => {
            let answer = answer_get(&DATA, path);
            return (answer.status, answer.body.into_bytes());
        }
    };
    (200, body.to_string().into_bytes())
}

fn post(body: Value) -> HttpRequest {
    HttpRequest::post_json(body.to_string().into_bytes())
}

/// Run a request to the end, answering every wave of calls together.
/// Returns the reply body and the paths called, wave by wave.
fn run(gateway: Arc<Gateway>, body: Value) -> (u16, Value, Vec<Vec<String>>) {
    run_with(gateway, body, |call| {
        let (status, body) = answer(&call.request.path);
        CallOutcome::response(status, body)
    })
}

fn run_with(
    gateway: Arc<Gateway>,
    body: Value,
    mut outcome: impl FnMut(&PendingCall) -> CallOutcome,
) -> (u16, Value, Vec<Vec<String>>) {
    let mut execution = Execution::start(gateway, &post(body), 0);
    let mut waves = Vec::new();
    loop {
        let calls = execution.take_calls(0);
        if calls.is_empty() {
            break;
        }
        waves.push(calls.iter().map(|c| c.request.path.clone()).collect());
        for call in &calls {
            execution.on_call_outcome(call.id, outcome(call), 0);
        }
    }
    assert!(execution.is_finished(), "no calls left, yet not finished");
    let reply = execution.reply().expect("a reply");
    let json = serde_json::from_slice(&reply.body).expect("JSON reply");
    (reply.status, json, waves)
}

fn query(q: &str) -> Value {
    json!({ "query": q })
}

#[test]
fn seed_query_returns_the_seed_response() {
    let body = json!({
        "query": "query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }",
        "variables": {"userId": "1"}
    });
    let (status, reply, waves) = run(gateway(BATCHED), body);
    assert_eq!(status, 200);
    assert_eq!(
        reply.to_string(),
        r#"{"data":{"user":{"id":"1","name":"Alice","email":"alice@example.com","orders":[{"id":"order-101","amount":99.99},{"id":"order-102","amount":19.5}]}}}"#
    );
    assert_eq!(
        waves,
        [
            vec!["/function/user-profile?id=1"],
            vec!["/function/user-orders-batch?ids=1"]
        ]
    );
}

#[test]
fn independent_root_fields_are_dispatched_at_once() {
    let q = r#"{ user(id: "1") { name } users { id } inventory(sku: "sku-1") { quantity } }"#;
    let (_, reply, waves) = run(gateway(BATCHED), query(q));
    assert_eq!(waves.len(), 1, "{waves:?}");
    assert_eq!(waves[0].len(), 3);
    assert_eq!(reply["data"]["inventory"]["quantity"], 7);
}

#[test]
fn children_are_dispatched_as_soon_as_their_parent_answers() {
    let q = r#"{ user(id: "1") { orders { id } } inventory(sku: "sku-1") { sku } }"#;
    let mut execution = Execution::start(gateway(PER_PARENT), &post(query(q)), 0);
    let first = execution.take_calls(0);
    assert_eq!(first.len(), 2);
    let profile = first
        .iter()
        .find(|c| c.request.path.contains("user-profile"))
        .unwrap();
    let inventory = first
        .iter()
        .find(|c| c.request.path.contains("inventory"))
        .unwrap();
    let (status, body) = answer(&profile.request.path);
    execution.on_call_outcome(profile.id, CallOutcome::response(status, body), 0);
    let second = execution.take_calls(0);
    assert_eq!(
        second
            .iter()
            .map(|c| c.request.path.as_str())
            .collect::<Vec<_>>(),
        ["/function/user-orders?id=1"],
        "orders must go out while inventory is still in flight"
    );
    assert!(!execution.is_finished());
    let (status, body) = answer(&inventory.request.path);
    execution.on_call_outcome(inventory.id, CallOutcome::response(status, body), 0);
    let (status, body) = answer(&second[0].request.path);
    execution.on_call_outcome(second[0].id, CallOutcome::response(status, body), 0);
    assert!(execution.is_finished());
    let reply: Value = serde_json::from_slice(&execution.reply().unwrap().body).unwrap();
    assert_eq!(reply["data"]["user"]["orders"][1]["id"], "order-102");
}

#[test]
fn a_list_of_parents_makes_one_batched_call() {
    let (_, reply, waves) = run(
        gateway(BATCHED),
        query("{ users { id name orders { id amount } } }"),
    );
    assert_eq!(waves.len(), 2);
    assert_eq!(waves[1].len(), 1);
    let ids: Vec<String> = (1..=USERS).map(|n| n.to_string()).collect();
    assert_eq!(
        waves[1][0],
        format!("/function/user-orders-batch?ids={}", ids.join(","))
    );
    let users = reply["data"]["users"].as_array().unwrap();
    assert_eq!(users.len(), 50);
    for user in users {
        let id: u32 = user["id"].as_str().unwrap().parse().unwrap();
        let expected: Vec<Value> = orders(id)
            .as_array()
            .unwrap()
            .iter()
            .map(|o| json!({"id": o["id"], "amount": o["amount"]}))
            .collect();
        assert_eq!(user["orders"], Value::Array(expected), "user {id}");
    }
}

#[test]
fn batched_answers_are_matched_by_key_and_a_missing_key_is_no_data() {
    // The function answers keys in another order and leaves one out: no
    // orders (`[]`, the list field's "no data"), without an error.
    let (_, reply, _) = run_with(
        gateway(BATCHED),
        query("{ users { id orders { id } } }"),
        |call| {
            let body = if call.request.path.contains("batch") {
                json!({"2": [{"id": "b"}], "1": [{"id": "a"}]})
            } else {
                json!([{"id": "1"}, {"id": "2"}, {"id": "3"}])
            };
            CallOutcome::response(200, body.to_string().into_bytes())
        },
    );
    assert_eq!(
        reply["data"]["users"],
        json!([{"id": "1", "orders": [{"id": "a"}]}, {"id": "2", "orders": [{"id": "b"}]}, {"id": "3", "orders": []}])
    );
    assert!(reply.get("errors").is_none(), "{reply}");
}

#[test]
fn without_a_batch_form_children_are_deduplicated_and_dispatched_together() {
    let (_, reply, waves) = run(gateway(PER_PARENT), query("{ users { id orders { id } } }"));
    assert_eq!(waves.len(), 2);
    assert_eq!(waves[1].len(), 50);
    let mut distinct = waves[1].clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 50);
    assert_eq!(reply["data"]["users"][49]["orders"][0]["id"], "order-5001");

    // The same parent twice (two aliases) costs one call per distinct request.
    let q = r#"{ a: user(id: "1") { orders { id } } b: user(id: "1") { name orders { amount } } }"#;
    let (_, reply, waves) = run(gateway(PER_PARENT), query(q));
    assert_eq!(waves.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
    assert_eq!(reply["data"]["b"]["orders"][0]["amount"], 99.99);
    assert_eq!(reply["data"]["a"]["orders"][0]["id"], "order-101");
}

#[test]
fn aliases_with_different_arguments_make_different_calls() {
    let q = r#"{ a: user(id: "1") { name } b: user(id: "2") { name } }"#;
    let (_, reply, waves) = run(gateway(BATCHED), query(q));
    assert_eq!(waves[0].len(), 2);
    assert_eq!(
        reply["data"],
        json!({"a": {"name": "Alice"}, "b": {"name": "Bob"}})
    );
}

#[test]
fn a_failing_function_nulls_its_field_and_keeps_the_rest() {
    let q = r#"{ a: user(id: "1") { name } b: user(id: "999") { name } }"#;
    let (status, reply, _) = run(gateway(BATCHED), query(q));
    assert_eq!(status, 200);
    assert_eq!(reply["data"], json!({"a": {"name": "Alice"}, "b": null}));
    let errors = reply["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["path"], json!(["b"]));
    assert_eq!(errors[0]["extensions"]["code"], "UPSTREAM_HTTP_ERROR");
    assert_eq!(errors[0]["extensions"]["status"], 404);
}

#[test]
fn upstream_failures_carry_their_codes() {
    for (failure, code) in [
        (CallFailure::Timeout, "UPSTREAM_TIMEOUT"),
        (
            CallFailure::Unavailable("reset".into()),
            "UPSTREAM_UNAVAILABLE",
        ),
        (
            CallFailure::Rejected("unknown cluster".into()),
            "UPSTREAM_UNAVAILABLE",
        ),
    ] {
        let (_, reply, _) = run_with(
            gateway(BATCHED),
            query(r#"{ user(id: "1") { name } }"#),
            |_| CallOutcome::Failed(failure.clone()),
        );
        assert_eq!(reply["data"], json!({"user": null}));
        assert_eq!(reply["errors"][0]["extensions"]["code"], code);
        assert_eq!(reply["errors"][0]["path"], json!(["user"]));
    }
    let (_, reply, _) = run_with(
        gateway(BATCHED),
        query(r#"{ user(id: "1") { name } }"#),
        |_| CallOutcome::response(200, b"<html>".to_vec()),
    );
    assert_eq!(
        reply["errors"][0]["extensions"]["code"],
        "UPSTREAM_BAD_RESPONSE"
    );
}

#[test]
fn null_in_a_non_null_field_propagates_to_the_nearest_nullable_parent() {
    // strictName is String! but the function has no such key: user becomes null.
    let (_, reply, _) = run(
        gateway(BATCHED),
        query(r#"{ user(id: "1") { id strictName } }"#),
    );
    assert_eq!(reply["data"], json!({"user": null}));
    assert_eq!(reply["errors"][0]["path"], json!(["user", "strictName"]));
    // A non-null root field that fails nulls the whole data.
    let (_, reply, _) = run(
        gateway(BATCHED),
        query(r#"{ requiredUser(id: "999") { id } }"#),
    );
    assert_eq!(reply["data"], Value::Null);
    assert_eq!(reply["errors"][0]["path"], json!(["requiredUser"]));
}

#[test]
fn wrong_shapes_are_field_errors() {
    let (_, reply, _) = run_with(gateway(BATCHED), query("{ users { id } }"), |_| {
        CallOutcome::response(200, br#"{"id": "1"}"#.to_vec())
    });
    assert_eq!(reply["data"], json!({"users": null}));
    assert_eq!(
        reply["errors"][0]["extensions"]["code"],
        "UPSTREAM_BAD_RESPONSE"
    );
}

#[test]
fn abstract_types_resolve_from_typename() {
    let q = r#"{ a: node(id: "1") { id ... on User { name } __typename } b: node(id: "o") { ... on Order { amount } } c: node(id: "x") { id } }"#;
    let (_, reply, _) = run(gateway(BATCHED), query(q));
    assert_eq!(
        reply["data"]["a"],
        json!({"id": "1", "name": "Alice", "__typename": "User"})
    );
    assert_eq!(reply["data"]["b"], json!({"amount": 1.5}));
    assert_eq!(reply["data"]["c"], Value::Null);
    assert_eq!(
        reply["errors"][0]["extensions"]["code"],
        "ABSTRACT_TYPE_UNRESOLVED"
    );
}

#[test]
fn mutation_fields_run_one_after_another() {
    let q = r#"mutation { a: createOrder(userId: "1", amount: 5) { id } b: createOrder(userId: "2", amount: 6) { id } }"#;
    let mut bodies = Vec::new();
    let (_, reply, waves) = run_with(gateway(BATCHED), query(q), |call| {
        bodies.push(String::from_utf8(call.request.body.clone().unwrap()).unwrap());
        let (status, body) = answer(&call.request.path);
        CallOutcome::response(status, body)
    });
    assert_eq!(
        waves,
        [
            vec!["/function/create-order"],
            vec!["/function/create-order"]
        ]
    );
    assert_eq!(
        bodies,
        [
            r#"{"userId":"1","amount":5}"#,
            r#"{"userId":"2","amount":6}"#
        ]
    );
    assert_eq!(reply["data"]["b"]["id"], "order-new");
}

#[test]
fn invalid_requests_call_nothing() {
    for (body, code) in [
        (query("{ nope }"), "GRAPHQL_VALIDATION_FAILED"),
        (query("{ user(id: "), "GRAPHQL_PARSE_FAILED"),
        (
            query("query($id: ID!) { user(id: $id) { id } }"),
            "BAD_USER_INPUT",
        ),
        (
            query("subscription { users { id } }"),
            "GRAPHQL_VALIDATION_FAILED",
        ),
    ] {
        let mut execution = Execution::start(gateway(BATCHED), &post(body.clone()), 0);
        assert!(execution.take_calls(0).is_empty(), "{body}");
        let reply = execution.reply().unwrap();
        let json: Value = serde_json::from_slice(&reply.body).unwrap();
        assert!(json.get("data").is_none(), "{json}");
        assert_eq!(json["errors"][0]["extensions"]["code"], code, "{json}");
        assert_eq!(
            reply.status, 200,
            "application/json answers GraphQL errors with 200"
        );
    }
    let mut strict = post(query("{ nope }"));
    strict
        .headers
        .push(("accept".into(), "application/graphql-response+json".into()));
    let reply = Execution::start(gateway(BATCHED), &strict, 0)
        .reply()
        .unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(reply.headers[0].1, "application/graphql-response+json");
}

#[test]
fn introspection_and_typename_are_answered_locally() {
    let q = r#"{ __typename __type(name: "User") { fields { name } } }"#;
    let (_, reply, waves) = run(gateway(BATCHED), query(q));
    assert!(waves.is_empty());
    assert_eq!(reply["data"]["__typename"], "Query");
    assert_eq!(reply["data"]["__type"]["fields"][0]["name"], "id");
    let (_, reply, _) = run(
        gateway(BATCHED),
        query("{ __schema { directives { name } } }"),
    );
    let names: Vec<&str> = reply["data"]["__schema"]["directives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"http"),
        "mapping directives are not exposed: {names:?}"
    );
}
