//! Faults, limits and hostile input, natively against the engine: every
//! case names its error code and path, and the rest of the data survives.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::{Execution, PendingCall};
use graphql_aggregator_engine::plan_cache::PlanCache;
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::upstream::{CallFailure, CallOutcome};
use mock_functions::{answer_get, DataSet};
use serde_json::{json, Value};
use std::sync::Arc;

const SCHEMA: &str = r#"
type Query {
  user(id: ID!): User @http(upstream: "fn", path: "/user-profile?id={args.id}")
  strictUser(id: ID!): User! @http(upstream: "fn", path: "/user-profile?id={args.id}")
  users: [User] @http(upstream: "fn", path: "/users")
  inventory(sku: String!): Inventory @http(upstream: "fn", path: "/inventory?sku={args.sku}")
  lookup(q: String!): Echo @http(upstream: "fn", path: "/echo/{args.q}?q={args.q}")
  tagged(tag: String!): Echo @http(upstream: "fn", path: "/echo", headers: [{name: "x-tag", value: "t={args.tag}"}])
}
type User { id: ID! name: String
  orders: [Order] @http(upstream: "fn", path: "/user-orders-batch", batch: {key: "id", param: "ids"})
  ordersEach: [Order] @http(upstream: "fn", path: "/user-orders?id={parent.id}") }
type Order { id: ID! amount: Float }
type Inventory { sku: String! quantity: Int }
type Echo { path: String }
"#;

fn gateway_with(extra: Value) -> Arc<Gateway> {
    let mut config = json!({
        "schema": SCHEMA,
        "upstreams": {"fn": {"target": "functions", "path_prefix": "/function",
                              "forward_headers": ["authorization", "x-request-id"]}}
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    Arc::new(Gateway::from_json(&config.to_string()).expect("valid config"))
}

fn gateway() -> Arc<Gateway> {
    gateway_with(json!({}))
}

const DATA: DataSet = DataSet::new(50);

fn functions(call: &PendingCall) -> CallOutcome {
    let answer = answer_get(&DATA, &call.request.path);
    CallOutcome::response(answer.status, answer.body.into_bytes())
}

fn post(query: &str) -> HttpRequest {
    HttpRequest::post_json(json!({ "query": query }).to_string().into_bytes())
}

/// Runs to the reply at time 0, answering with `outcome`; returns the
/// status, the body and every call made.
fn run(
    gateway: Arc<Gateway>,
    request: &HttpRequest,
    mut outcome: impl FnMut(&PendingCall) -> CallOutcome,
) -> (u16, Value, Vec<PendingCall>) {
    let mut execution = Execution::start(gateway, request, 0);
    let mut made = Vec::new();
    loop {
        let calls = execution.take_calls(0);
        if calls.is_empty() {
            break;
        }
        for call in calls {
            execution.on_call_outcome(call.id, outcome(&call), 0);
            made.push(call);
        }
    }
    let reply = execution.reply().expect("finished");
    (
        reply.status,
        serde_json::from_slice(&reply.body).unwrap(),
        made,
    )
}

fn the_error(body: &Value) -> &Value {
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    &errors[0]
}

// ---------------------------------------------------------------------------
// Upstream faults: null at the path, a code, the rest kept.

/// `{ user(id: "1") { name } inventory(sku: "sku-1") { quantity } }` with
/// the user call answered by `fault`.
fn with_failing_user(fault: CallOutcome) -> Value {
    let q = r#"{ user(id: "1") { name } inventory(sku: "sku-1") { quantity } }"#;
    let (status, body, _) = run(gateway(), &post(q), |call| {
        if call.request.path.contains("user-profile") {
            fault.clone()
        } else {
            functions(call)
        }
    });
    assert_eq!(status, 200);
    assert_eq!(
        body["data"],
        json!({"user": null, "inventory": {"quantity": 7}}),
        "{body}"
    );
    assert_eq!(the_error(&body)["path"], json!(["user"]));
    body
}

fn code(body: &Value) -> &str {
    the_error(body)["extensions"]["code"].as_str().unwrap()
}

#[test]
fn every_upstream_fault_has_its_code() {
    let cases: Vec<(CallOutcome, &str)> = vec![
        (CallOutcome::Failed(CallFailure::Timeout), "UPSTREAM_TIMEOUT"),
        (CallOutcome::Failed(CallFailure::Unavailable("connection refused".into())), "UPSTREAM_UNAVAILABLE"),
        (CallOutcome::Failed(CallFailure::Unavailable("reset".into())), "UPSTREAM_UNAVAILABLE"),
        (CallOutcome::Failed(CallFailure::Rejected("BadArgument".into())), "UPSTREAM_UNAVAILABLE"),
        (CallOutcome::response(404, b"no".to_vec()), "UPSTREAM_HTTP_ERROR"),
        (CallOutcome::response(500, b"{}".to_vec()), "UPSTREAM_HTTP_ERROR"),
        (CallOutcome::response(200, b"<html>".to_vec()), "UPSTREAM_BAD_RESPONSE"),
        (CallOutcome::response(200, b"[1, 2]".to_vec()), "UPSTREAM_BAD_RESPONSE"),
        (CallOutcome::response(200, br#""a string""#.to_vec()), "UPSTREAM_BAD_RESPONSE"),
        (CallOutcome::Failed(CallFailure::TooLarge(5_000_000)), "UPSTREAM_RESPONSE_TOO_LARGE"),
        // Envoy's own answers for calls that never reached a function.
        (CallOutcome::response(504, b"upstream request timeout".to_vec()), "UPSTREAM_TIMEOUT"),
        (
            CallOutcome::response(
                503,
                b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure".to_vec(),
            ),
            "UPSTREAM_UNAVAILABLE",
        ),
        (CallOutcome::response(503, b"no healthy upstream".to_vec()), "UPSTREAM_UNAVAILABLE"),
    ];
    for (fault, expected) in cases {
        let body = with_failing_user(fault.clone());
        assert_eq!(code(&body), expected, "{fault:?}: {body}");
        assert_eq!(the_error(&body)["extensions"]["upstream"], "fn");
    }
    let body = with_failing_user(CallOutcome::response(502, vec![]));
    assert_eq!(the_error(&body)["extensions"]["status"], 502);
}

#[test]
fn an_answer_over_the_size_limit_is_refused() {
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(2000));
    let gateway = gateway_with(json!({"limits": {"max_response_bytes": 1000}}));
    let (_, body, _) = run(gateway, &post(r#"{ user(id: "1") { name } }"#), |_| {
        CallOutcome::response(200, big.clone().into_bytes())
    });
    assert_eq!(code(&body), "UPSTREAM_RESPONSE_TOO_LARGE", "{body}");
    assert!(the_error(&body)["message"]
        .as_str()
        .unwrap()
        .contains("max_response_bytes"));
}

#[test]
fn wrong_shapes_under_lists_null_their_own_field() {
    // A list where an object is expected, an object where a list is.
    let q = r#"{ users { id } inventory(sku: "sku-1") { quantity } }"#;
    let (_, body, _) = run(gateway(), &post(q), |call| {
        if call.request.path.contains("users") {
            CallOutcome::response(200, br#"{"id": "1"}"#.to_vec())
        } else {
            functions(call)
        }
    });
    assert_eq!(
        body["data"],
        json!({"users": null, "inventory": {"quantity": 7}})
    );
    assert_eq!(code(&body), "UPSTREAM_BAD_RESPONSE");
}

#[test]
fn a_batch_answer_missing_a_key_nulls_that_parent_with_an_error() {
    // With `batch: {missing: "error"}`; the default is "no data".
    let schema = SCHEMA.replace(
        r#"batch: {key: "id", param: "ids"}"#,
        r#"batch: {key: "id", param: "ids", missing: "error"}"#,
    );
    let gateway = gateway_with(json!({ "schema": schema }));
    let q = r#"{ users { id orders { id } } }"#;
    let (_, body, _) = run(gateway, &post(q), |call| {
        if call.request.path.contains("batch") {
            // Only user 1 answered.
            CallOutcome::response(200, br#"{"1": [{"id": "o1"}]}"#.to_vec())
        } else {
            CallOutcome::response(200, br#"[{"id": "1"}, {"id": "2"}]"#.to_vec())
        }
    });
    assert_eq!(
        body["data"],
        json!({"users": [{"id": "1", "orders": [{"id": "o1"}]}, {"id": "2", "orders": null}]})
    );
    assert_eq!(the_error(&body)["path"], json!(["users", 1, "orders"]));
    assert_eq!(code(&body), "UPSTREAM_BAD_RESPONSE");
    assert_eq!(the_error(&body)["extensions"]["upstream"], "fn");
}

#[test]
fn a_failing_non_null_field_nulls_its_parent() {
    let q = r#"{ strictUser(id: "999") { name } inventory(sku: "sku-1") { quantity } }"#;
    let (_, body, _) = run(gateway(), &post(q), functions);
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(the_error(&body)["path"], json!(["strictUser"]));
}

// ---------------------------------------------------------------------------
// The deadline.

#[test]
fn calls_carry_the_time_left_and_expire_at_the_deadline() {
    let gateway = gateway_with(json!({"deadline_ms": 1000}));
    let q = r#"{ user(id: "1") { name orders { id } } inventory(sku: "sku-1") { quantity } }"#;
    let mut execution = Execution::start(gateway, &post(q), 10_000);
    let first = execution.take_calls(10_000);
    assert_eq!(first.len(), 2);
    for call in &first {
        assert_eq!(call.request.timeout_ms, 1000);
        let header = call
            .request
            .host_headers()
            .into_iter()
            .find(|(k, _)| *k == "x-request-deadline-ms");
        assert_eq!(header, Some(("x-request-deadline-ms", "1000")));
    }
    // The user answers at +400 ms: its orders get the 600 ms left.
    let user = first
        .iter()
        .find(|c| c.request.path.contains("user-profile"))
        .unwrap();
    execution.on_call_outcome(user.id, functions(user), 10_400);
    let orders = execution.take_calls(10_400);
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].request.timeout_ms, 600);
    assert_eq!(
        orders[0]
            .request
            .deadline_header
            .map(|d| d.as_str().to_string())
            .as_deref(),
        Some("600")
    );
    // The inventory answers at the deadline: the orders call is abandoned.
    let inventory = first
        .iter()
        .find(|c| c.request.path.contains("inventory"))
        .unwrap();
    execution.on_call_outcome(inventory.id, functions(inventory), 11_000);
    assert!(execution.is_finished());
    let body: Value = serde_json::from_slice(&execution.reply().unwrap().body).unwrap();
    assert_eq!(
        body["data"],
        json!({"user": {"name": "Alice", "orders": null}, "inventory": {"quantity": 7}})
    );
    assert_eq!(the_error(&body)["path"], json!(["user", "orders"]));
    assert_eq!(code(&body), "UPSTREAM_TIMEOUT");
    // A late answer changes nothing.
    execution.on_call_outcome(orders[0].id, functions(&orders[0]), 11_500);
    assert!(execution.reply().is_none());
}

#[test]
fn nothing_is_dispatched_past_the_deadline() {
    let gateway = gateway_with(json!({"deadline_ms": 50}));
    let mut execution = Execution::start(gateway, &post(r#"{ user(id: "1") { name } }"#), 0);
    assert!(execution.take_calls(50).is_empty());
    let body: Value = serde_json::from_slice(&execution.reply().unwrap().body).unwrap();
    assert_eq!(body["data"], json!({"user": null}));
    assert_eq!(code(&body), "UPSTREAM_TIMEOUT");
}

// ---------------------------------------------------------------------------
// Limits, checked before any call.

/// A request refused by a limit: no call, `LIMIT_EXCEEDED` naming it, and
/// its document not cached.
fn refused(gateway: Arc<Gateway>, request: &HttpRequest, limit: &str) -> (u16, Value) {
    let mut cache = PlanCache::new(16);
    let execution = Execution::start_cached(gateway.clone(), request, 0, Some(&mut cache));
    assert!(execution.is_finished(), "{limit}: not refused at once");
    assert!(cache.is_empty(), "{limit}: the refused document was cached");
    let (status, body, calls) = run(gateway, request, functions);
    assert!(calls.is_empty(), "{limit}: calls were made");
    assert!(body.get("data").is_none(), "{body}");
    let error = the_error(&body);
    assert_eq!(error["extensions"]["code"], "LIMIT_EXCEEDED", "{body}");
    assert_eq!(error["extensions"]["limit"], limit, "{body}");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains(&format!("limits.{limit}")));
    (status, body)
}

#[test]
fn every_limit_refuses_before_any_call() {
    let small = |limits: Value| gateway_with(json!({ "limits": limits }));
    let big_body = HttpRequest::post_json(vec![b' '; 2000]);
    let (status, _) = refused(
        small(json!({"max_body_bytes": 1000})),
        &big_body,
        "max_body_bytes",
    );
    assert_eq!(status, 413);
    let long = format!("{{ user(id: \"1\") {{ name }} }} # {}", "x".repeat(500));
    refused(
        small(json!({"max_query_bytes": 100})),
        &post(&long),
        "max_query_bytes",
    );
    let many = format!("{{ user(id: \"1\") {{ {} }} }}", "name ".repeat(100));
    refused(
        small(json!({"max_query_tokens": 50})),
        &post(&many),
        "max_query_tokens",
    );
    let deep = r#"{ users { orders { id } } }"#;
    refused(small(json!({"max_depth": 2})), &post(deep), "max_depth");
    let aliases = r#"{ a: user(id: "1") { n: name } b: user(id: "2") { name } }"#;
    refused(
        small(json!({"max_aliases": 2})),
        &post(aliases),
        "max_aliases",
    );
    let roots = r#"{ user(id: "1") { name } users { id } inventory(sku: "sku-1") { sku } }"#;
    refused(
        small(json!({"max_root_fields": 2})),
        &post(roots),
        "max_root_fields",
    );
    let calls = r#"{ a: user(id: "1") { orders { id } } b: user(id: "2") { orders { id } } }"#;
    refused(small(json!({"max_calls": 3})), &post(calls), "max_calls");
    // More plan fields than a plan holds (20,000), within raised limits.
    let fields: String = (0..20_001).map(|i| format!("a{i}: name ")).collect();
    let wide = format!("{{ user(id: \"1\") {{ {fields} }} }}");
    refused(
        small(
            json!({"max_body_bytes": 1_000_000, "max_query_bytes": 1_000_000,
                     "max_query_tokens": 1_000_000, "max_aliases": 100_000}),
        ),
        &post(&wide),
        "plan_fields",
    );
}

#[test]
fn a_document_nested_ten_thousand_levels_is_refused_cleanly() {
    let gateway =
        gateway_with(json!({"limits": {"max_query_bytes": 200_000, "max_query_tokens": 100_000}}));
    let deep = format!("{}{}", "{ users ".repeat(10_000), "}".repeat(10_000));
    let (status, body) = refused(gateway.clone(), &post(&deep), "max_depth");
    assert_eq!(status, 200);
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("deeper"));
    let deep_values = format!(
        "{{ user(id: {}1{}) {{ name }} }}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    refused(gateway, &post(&deep_values), "max_depth");
}

#[test]
fn calls_beyond_the_limit_are_field_errors_as_lists_reveal_them() {
    let gateway = gateway_with(json!({"limits": {"max_calls": 11}}));
    let (_, body, calls) = run(
        gateway,
        &post("{ users { id ordersEach { id } } }"),
        functions,
    );
    assert_eq!(calls.len(), 11);
    let users = body["data"]["users"].as_array().unwrap();
    assert!(
        users[9]["ordersEach"].is_array(),
        "the first ten users got their orders"
    );
    assert_eq!(users[10]["ordersEach"], Value::Null);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 40);
    assert_eq!(errors[0]["path"], json!(["users", 10, "ordersEach"]));
    assert_eq!(errors[0]["extensions"]["code"], "LIMIT_EXCEEDED");
    assert_eq!(errors[0]["extensions"]["limit"], "max_calls");
    assert!(
        errors[0]["extensions"].get("upstream").is_none(),
        "not the parent's upstream's fault"
    );
}

#[test]
fn batched_calls_keep_their_headers_and_split_by_them() {
    let config = json!({
        "schema": r#"type Query { users: [User] @http(upstream: "fn", path: "/users") }
            type User { id: ID! orders: [Order] @http(upstream: "fn", path: "/user-orders-batch",
              batch: {key: "id", param: "ids"}, headers: [{name: "x-api-key", value: "k-1"}]) }
            type Order { id: ID! }"#,
        "upstreams": {"fn": {"target": "functions", "path_prefix": "/function"}}
    });
    let gateway = Arc::new(Gateway::from_json(&config.to_string()).unwrap());
    let (_, body, calls) = run(gateway, &post("{ users { orders { id } } }"), functions);
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(calls.len(), 2);
    assert!(calls[1]
        .request
        .headers
        .contains(&("x-api-key".to_string(), "k-1".to_string())));
}

#[test]
fn two_batched_fields_on_one_path_keep_their_own_parameter() {
    let config = json!({
        "schema": r#"type Query { users: [User] @http(upstream: "fn", path: "/users") }
            type User { id: ID!
              a: [Order] @http(upstream: "fn", path: "/user-orders-batch", batch: {key: "id", param: "ids"})
              b: [Order] @http(upstream: "fn", path: "/user-orders-batch", batch: {key: "id", param: "user"}) }
            type Order { id: ID! }"#,
        "upstreams": {"fn": {"target": "functions", "path_prefix": "/function"}}
    });
    let gateway = Arc::new(Gateway::from_json(&config.to_string()).unwrap());
    let (_, _, calls) = run(gateway, &post("{ users { a { id } b { id } } }"), functions);
    let paths: Vec<&str> = calls.iter().map(|c| c.request.path.as_str()).collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(
        paths[1].contains("?ids=1,2,") && paths[2].contains("?user=1,2,"),
        "{paths:?}"
    );
}

#[test]
fn reserved_headers_and_huge_timeouts_are_refused() {
    let config = |upstream: Value, schema: &str| {
        json!({"schema": schema, "upstreams": {"fn": upstream}}).to_string()
    };
    let plain = r#"type Query { a: String @http(upstream: "fn", path: "/a") }"#;
    let spoof = Gateway::from_json(&config(
        json!({"target": "t", "forward_headers": ["x-request-deadline-ms"]}),
        plain,
    ));
    assert!(spoof
        .unwrap_err()
        .to_string()
        .contains("set by the gateway"));
    let templated = r#"type Query { a: String @http(upstream: "fn", path: "/a", headers: [{name: "x-request-id", value: "x"}]) }"#;
    let e = Gateway::from_json(&config(json!({"target": "t"}), templated)).unwrap_err();
    assert!(e.to_string().contains("set by the gateway"), "{e}");
    let e = Gateway::from_json(&config(
        json!({"target": "t", "timeout_ms": 5_000_000_000u64}),
        plain,
    ))
    .unwrap_err();
    assert!(e.to_string().contains("24 hours"), "{e}");
}

#[test]
fn concurrent_calls_are_capped_and_the_rest_wait() {
    let gateway = gateway_with(json!({"limits": {"max_concurrent_calls": 2}}));
    let q = r#"{ a: user(id: "1") { name } b: user(id: "2") { name } c: inventory(sku: "sku-1") { sku } d: users { id } }"#;
    let mut execution = Execution::start(gateway, &post(q), 0);
    let first = execution.take_calls(0);
    assert_eq!(first.len(), 2);
    assert!(execution.take_calls(0).is_empty(), "two in flight already");
    execution.on_call_outcome(first[0].id, functions(&first[0]), 0);
    let next = execution.take_calls(0);
    assert_eq!(next.len(), 1);
    execution.on_call_outcome(first[1].id, functions(&first[1]), 0);
    execution.on_call_outcome(next[0].id, functions(&next[0]), 0);
    let last = execution.take_calls(0);
    assert_eq!(last.len(), 1);
    execution.on_call_outcome(last[0].id, functions(&last[0]), 0);
    let body: Value = serde_json::from_slice(&execution.reply().unwrap().body).unwrap();
    assert_eq!(body["data"]["b"]["name"], "Bob");
    assert!(body.get("errors").is_none());
}

#[test]
fn large_batches_are_split() {
    let gateway = gateway_with(json!({"limits": {"max_batch_size": 20}}));
    let (_, body, calls) = run(gateway, &post("{ users { id orders { id } } }"), functions);
    let batches: Vec<&str> = calls
        .iter()
        .map(|c| c.request.path.as_str())
        .filter(|p| p.contains("batch"))
        .collect();
    assert_eq!(batches.len(), 3, "{batches:?}");
    assert!(batches[0].ends_with("ids=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20"));
    assert!(batches[2].ends_with("ids=41,42,43,44,45,46,47,48,49,50"));
    let users = body["data"]["users"].as_array().unwrap();
    assert_eq!(users[44]["orders"], json!([{"id": "order-4501"}]));
    assert!(body.get("errors").is_none());
}

// ---------------------------------------------------------------------------
// Injection and headers.

#[test]
fn arguments_cannot_change_the_path_or_add_parameters() {
    let q = r#"{ lookup(q: "../admin?x=1&y=2") { path } }"#;
    let (_, _, calls) = run(gateway(), &post(q), functions);
    assert_eq!(
        calls[0].request.path,
        "/function/echo/%2E%2E%2Fadmin%3Fx%3D1%26y%3D2?q=%2E%2E%2Fadmin%3Fx%3D1%26y%3D2"
    );
    let (_, body, calls) = run(
        gateway(),
        &post(r#"{ lookup(q: "..") { path } }"#),
        functions,
    );
    assert!(calls.is_empty());
    assert_eq!(code(&body), "INVALID_FUNCTION_REQUEST");
}

#[test]
fn a_header_value_with_a_line_break_refuses_the_call() {
    let (_, _, calls) = run(
        gateway(),
        &post(r#"{ tagged(tag: "blue") { path } }"#),
        functions,
    );
    let headers = calls[0].request.host_headers();
    assert!(headers.contains(&("x-tag", "t=blue")), "{headers:?}");
    let q = r#"{ tagged(tag: "blue\r\nx-admin: yes") { path } user(id: "1") { name } }"#;
    let (_, body, calls) = run(gateway(), &post(q), functions);
    assert_eq!(calls.len(), 1, "only the user call is made");
    assert_eq!(
        body["data"],
        json!({"tagged": null, "user": {"name": "Alice"}})
    );
    assert_eq!(code(&body), "INVALID_FUNCTION_REQUEST");
    assert_eq!(the_error(&body)["path"], json!(["tagged"]));
}

#[test]
fn only_allowlisted_client_headers_are_forwarded() {
    let mut request = post(r#"{ user(id: "1") { name orders { id } } }"#);
    request.headers.extend([
        ("authorization".to_string(), "Bearer t".to_string()),
        ("x-request-id".to_string(), "bad\nvalue".to_string()),
        ("cookie".to_string(), "session=1".to_string()),
        ("connection".to_string(), "keep-alive".to_string()),
    ]);
    let (_, _, calls) = run(gateway(), &request, functions);
    assert_eq!(calls.len(), 2);
    for call in &calls {
        let names: Vec<&str> = call
            .request
            .headers
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(names, ["authorization"], "{}", call.request.path);
    }
}

#[test]
fn hop_by_hop_headers_cannot_be_allowlisted() {
    let config = json!({
        "schema": "type Query { a: String @http(upstream: \"fn\", path: \"/a\") }",
        "upstreams": {"fn": {"target": "t", "forward_headers": ["Connection"]}}
    });
    let e = Gateway::from_json(&config.to_string()).unwrap_err();
    assert!(e.to_string().contains("hop-by-hop"), "{e}");
}

// ---------------------------------------------------------------------------
// Bad client input.

#[test]
fn bad_client_input_gets_a_clear_error() {
    let cases: Vec<(&[u8], u16, &str)> = vec![
        (b"\xff\xfe{\"query\": 1}", 400, "not valid JSON"),
        (
            b"{\"query\": \"{ user(id: \\\"\xc3\x28\\\") { name } }\"}",
            400,
            "not valid JSON",
        ),
        (b"[]", 400, "JSON object"),
        (b"{\"query\": 5}", 400, "`query` must be"),
        (
            b"{\"query\": \"{ __typename }\", \"variables\": [1]}",
            400,
            "`variables` must be",
        ),
        (b"{}", 400, "no `query`"),
        (b"", 400, "empty"),
    ];
    for (bytes, status, message) in cases {
        let (got, body, calls) = run(
            gateway(),
            &HttpRequest::post_json(bytes.to_vec()),
            functions,
        );
        assert!(calls.is_empty());
        assert_eq!(got, status, "{body}");
        let text = the_error(&body)["message"].as_str().unwrap();
        assert!(
            text.contains(message),
            "{text:?} for {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// Arguments are copied into every call that uses them: a request whose
/// calls would carry more than `limits.max_call_bytes` of paths and bodies
/// gets `LIMIT_EXCEEDED` on the calls past it, which are never made.
#[test]
fn the_bytes_of_the_calls_a_request_makes_are_bounded() {
    let mut config = graphql_corpus::filter_config(graphql_corpus::Variant::Public, "fn");
    config["limits"] = serde_json::json!({"max_call_bytes": 4096});
    let gateway = std::sync::Arc::new(
        graphql_aggregator_engine::config::Gateway::from_json(&config.to_string()).unwrap(),
    );
    let long = "x".repeat(1500);
    let query = format!(
        r#"{{ a: user(id: "{long}") {{ id }} b: user(id: "{long}2") {{ id }} c: user(id: "{long}3") {{ id }} }}"#
    );
    let body = serde_json::json!({ "query": query }).to_string();
    let request = graphql_aggregator_engine::request::HttpRequest::post_json(body.into_bytes());
    let mut execution = graphql_aggregator_engine::execute::Execution::start(gateway, &request, 0);
    let calls = execution.take_calls(0);
    assert_eq!(
        calls.len(),
        2,
        "the third call would carry more than 4096 bytes"
    );
    for call in calls {
        let outcome = graphql_aggregator_engine::upstream::CallOutcome::response(404, Vec::new());
        execution.on_call_outcome(call.id, outcome, 0);
    }
    let reply: serde_json::Value =
        serde_json::from_slice(&execution.reply().unwrap().body).unwrap();
    let limited: Vec<&serde_json::Value> = reply["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["extensions"]["code"] == "LIMIT_EXCEEDED")
        .collect();
    assert_eq!(limited.len(), 1, "{reply}");
    assert_eq!(limited[0]["extensions"]["limit"], "max_call_bytes");
    assert_eq!(limited[0]["path"], serde_json::json!(["c"]));
}
