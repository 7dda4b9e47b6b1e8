//! Which identical calls are made once: GET calls always, other methods
//! only with `@http(dedupe: true)`, mutation root fields never (each one
//! runs, one after another, and one the deadline kept from starting says
//! so).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::{Execution, PendingCall};
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::upstream::CallOutcome;
use serde_json::{json, Value};
use std::sync::Arc;

const SCHEMA: &str = r#"
type Query {
  counter: Counter @http(upstream: "fn", path: "/counter")
  search(text: String!): Counter @http(upstream: "fn", method: "POST", path: "/search", body: "{\"text\": \"{args.text}\"}")
  lookup(text: String!): Counter @http(upstream: "fn", method: "POST", path: "/lookup", body: "{\"text\": \"{args.text}\"}", dedupe: true)
  counters: [Counter] @http(upstream: "fn", path: "/counters")
}
type Mutation {
  incr: Counter @http(upstream: "fn", method: "POST", path: "/incr")
  incrShared: Counter @http(upstream: "fn", method: "POST", path: "/incr", dedupe: true)
}
type Counter {
  value: Int
  name: String
  audit: Counter @http(upstream: "fn", method: "POST", path: "/audit", body: "{\"name\": \"{parent.name}\"}")
  snapshot: Counter @http(upstream: "fn", path: "/snapshot")
}
"#;

fn gateway_with(schema: &str) -> Arc<Gateway> {
    let config = json!({
        "schema": schema,
        "upstreams": {"fn": {"target": "functions"}},
        "deadline_ms": 1000
    });
    Arc::new(Gateway::from_json(&config.to_string()).expect("valid config"))
}

fn gateway() -> Arc<Gateway> {
    gateway_with(SCHEMA)
}

fn post(query: &str) -> HttpRequest {
    HttpRequest::post_json(json!({ "query": query }).to_string().into_bytes())
}

/// A function that counts: every call it gets answers the next number.
fn counting() -> impl FnMut(&PendingCall) -> CallOutcome {
    let mut calls = 0;
    move |call| {
        calls += 1;
        let body = if call.request.path == "/counters" {
            json!([{"value": 0, "name": "a"}, {"value": 0, "name": "a"}])
        } else {
            json!({"value": calls, "name": "a"})
        };
        CallOutcome::response(200, body.to_string().into_bytes())
    }
}

/// Runs to the reply at time 0; returns the body and the paths called.
fn run(
    gateway: Arc<Gateway>,
    query: &str,
    mut outcome: impl FnMut(&PendingCall) -> CallOutcome,
) -> (Value, Vec<String>) {
    let mut execution = Execution::start(gateway, &post(query), 0);
    let mut made = Vec::new();
    loop {
        let calls = execution.take_calls(0);
        if calls.is_empty() {
            break;
        }
        for call in calls {
            execution.on_call_outcome(call.id, outcome(&call), 0);
            made.push(call.request.path.clone());
        }
    }
    let reply = execution.reply().expect("finished");
    (serde_json::from_slice(&reply.body).unwrap(), made)
}

#[test]
fn identical_mutation_fields_each_run() {
    let (body, made) = run(
        gateway(),
        "mutation { a: incr { value } b: incr { value } }",
        counting(),
    );
    assert_eq!(made, ["/incr", "/incr"]);
    assert_eq!(
        body,
        json!({"data": {"a": {"value": 1}, "b": {"value": 2}}})
    );
}

#[test]
fn a_mutation_field_shares_no_answer_made_before_it_ran() {
    // The GET under `b` reads the state after `b`: it is made again.
    let (body, made) = run(
        gateway(),
        "mutation { a: incr { snapshot { value } } b: incr { snapshot { value } } }",
        counting(),
    );
    assert_eq!(made, ["/incr", "/snapshot", "/incr", "/snapshot"]);
    assert_eq!(
        body["data"],
        json!({"a": {"snapshot": {"value": 2}}, "b": {"snapshot": {"value": 4}}})
    );
    // Within one mutation field's selection, identical GETs are made once.
    let (_, made) = run(
        gateway(),
        "mutation { a: incr { snapshot { value } again: snapshot { value } } }",
        counting(),
    );
    assert_eq!(made, ["/incr", "/snapshot"]);
}

#[test]
fn a_mutation_root_field_runs_whatever_its_dedupe_says() {
    let config = json!({"schema": SCHEMA, "upstreams": {"fn": {"target": "functions"}}});
    let gateway = Gateway::from_json(&config.to_string()).unwrap();
    assert!(
        gateway
            .warnings
            .iter()
            .any(|w| w.contains("Mutation.incrShared") && w.contains("ignored")),
        "{:?}",
        gateway.warnings
    );
    let (body, made) = run(
        Arc::new(gateway),
        "mutation { a: incrShared { value } b: incrShared { value } }",
        counting(),
    );
    assert_eq!(made, ["/incr", "/incr"]);
    assert_eq!(
        body,
        json!({"data": {"a": {"value": 1}, "b": {"value": 2}}})
    );
}

#[test]
fn identical_get_calls_are_made_once() {
    let (body, made) = run(
        gateway(),
        "{ a: counter { value } b: counter { value } }",
        counting(),
    );
    assert_eq!(made, ["/counter"]);
    assert_eq!(
        body,
        json!({"data": {"a": {"value": 1}, "b": {"value": 1}}})
    );
}

#[test]
fn identical_non_get_calls_are_made_once_only_with_dedupe() {
    // POST without `dedupe`: each runs.
    let (body, made) = run(
        gateway(),
        r#"{ a: search(text: "x") { value } b: search(text: "x") { value } }"#,
        counting(),
    );
    assert_eq!(made, ["/search", "/search"]);
    assert_eq!(
        body,
        json!({"data": {"a": {"value": 1}, "b": {"value": 2}}})
    );
    // POST with `dedupe: true`: made once, the answer shared.
    let (body, made) = run(
        gateway(),
        r#"{ a: lookup(text: "x") { value } b: lookup(text: "x") { value } }"#,
        counting(),
    );
    assert_eq!(made, ["/lookup"]);
    assert_eq!(
        body,
        json!({"data": {"a": {"value": 1}, "b": {"value": 1}}})
    );
    // Under a list: two parents sending the same POST make two calls.
    let (_, made) = run(gateway(), "{ counters { audit { value } } }", counting());
    assert_eq!(made, ["/counters", "/audit", "/audit"]);
}

#[test]
fn dedupe_false_on_a_get_field_is_refused() {
    let schema = SCHEMA.replace(
        r#"@http(upstream: "fn", path: "/counter")"#,
        r#"@http(upstream: "fn", path: "/counter", dedupe: false)"#,
    );
    let config = json!({"schema": schema, "upstreams": {"fn": {"target": "functions"}}});
    let e = Gateway::from_json(&config.to_string()).unwrap_err();
    let message = e.to_string();
    assert!(
        message.starts_with("schema field Query.counter") && message.contains("`dedupe: false`"),
        "{message}"
    );
}

#[test]
fn a_mutation_field_the_deadline_kept_from_starting_was_not_executed() {
    // The first field answers after the deadline: the second never starts.
    let mut execution = Execution::start(
        gateway(),
        &post("mutation { a: incr { value } b: incr { value } }"),
        0,
    );
    let first = execution.take_calls(0);
    assert_eq!(first.len(), 1);
    let answer = CallOutcome::response(200, br#"{"value": 1}"#.to_vec());
    execution.on_call_outcome(first[0].id, answer, 1000);
    assert!(execution.is_finished());
    let body: Value = serde_json::from_slice(&execution.reply().unwrap().body).unwrap();
    assert_eq!(
        body["data"],
        json!({"a": {"value": 1}, "b": null}),
        "{body}"
    );
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["path"], json!(["b"]));
    assert_eq!(errors[0]["extensions"]["code"], "NOT_EXECUTED");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("Mutation.incr was not executed"),
        "{body}"
    );

    // The first answers in time, the deadline passes before the second is
    // dispatched; a third is never reached.
    let mut execution = Execution::start(
        gateway(),
        &post("mutation { a: incr { value } b: incr { value } c: incr { value } }"),
        0,
    );
    let first = execution.take_calls(0);
    let answer = CallOutcome::response(200, br#"{"value": 1}"#.to_vec());
    execution.on_call_outcome(first[0].id, answer, 10);
    assert!(execution.take_calls(1000).is_empty());
    let body: Value = serde_json::from_slice(&execution.reply().unwrap().body).unwrap();
    assert_eq!(
        body["data"],
        json!({"a": {"value": 1}, "b": null, "c": null}),
        "{body}"
    );
    let codes: Vec<(&Value, &Value)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (&e["path"][0], &e["extensions"]["code"]))
        .collect();
    assert_eq!(
        codes,
        [
            (&json!("b"), &json!("NOT_EXECUTED")),
            (&json!("c"), &json!("NOT_EXECUTED"))
        ]
    );

    // A mutation field in flight at the deadline may have run: a timeout.
    let mut execution = Execution::start(gateway(), &post("mutation { a: incr { value } }"), 0);
    assert_eq!(execution.take_calls(0).len(), 1);
    assert!(execution.take_calls(1000).is_empty());
    let body: Value = serde_json::from_slice(&execution.reply().unwrap().body).unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UPSTREAM_TIMEOUT");
}

/// The calls of the first wave of `query`, with whether other requests may
/// share each (and its configured lifetime).
fn first_wave_sharing(gateway: Arc<Gateway>, query: &str) -> Vec<(String, Option<Option<u64>>)> {
    let mut execution = Execution::start(gateway, &post(query), 0);
    execution
        .take_calls(0)
        .into_iter()
        .map(|call| (call.request.path.clone(), call.shareable.map(|s| s.ttl_ms)))
        .collect()
}

#[test]
fn calls_other_requests_may_share_are_the_ones_a_request_may_share() {
    let sharing = first_wave_sharing(
        gateway(),
        r#"{ counter { value } search(text: "a") { value } lookup(text: "a") { value } }"#,
    );
    assert_eq!(
        sharing,
        [
            ("/counter".to_string(), Some(None)),
            ("/search".to_string(), None),
            ("/lookup".to_string(), Some(None)),
        ]
    );
    // Nothing of a mutation operation is shared with other requests, not
    // even its GET calls.
    let mut execution = Execution::start(
        gateway(),
        &post("mutation { incr { snapshot { value } } }"),
        0,
    );
    let calls = execution.take_calls(0);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].shareable, None);
    execution.on_call_outcome(
        calls[0].id,
        CallOutcome::Response {
            status: 200,
            body: br#"{"value": 1}"#.to_vec(),
        },
        0,
    );
    let children = execution.take_calls(0);
    assert_eq!(children[0].request.path, "/snapshot");
    assert_eq!(children[0].shareable, None);
}

#[test]
fn a_configured_lifetime_comes_from_the_field_else_the_upstream() {
    let schema = SCHEMA.replace(
        r#"counters: [Counter] @http(upstream: "fn", path: "/counters")"#,
        r#"counters: [Counter] @http(upstream: "fn", path: "/counters", cache: {ttl_ms: 5000})"#,
    );
    let config = json!({
        "schema": schema,
        "upstreams": {"fn": {"target": "functions", "cache": {"ttl_ms": 60000}}},
    });
    let gateway = Arc::new(Gateway::from_json(&config.to_string()).unwrap());
    let sharing = first_wave_sharing(gateway, "{ counter { value } counters { value } }");
    assert_eq!(
        sharing,
        [
            ("/counter".to_string(), Some(Some(60000))),
            ("/counters".to_string(), Some(Some(5000))),
        ]
    );
    for bad in ["0", "-1", "86400001"] {
        let schema = SCHEMA.replace(
            r#"path: "/counters")"#,
            &format!(r#"path: "/counters", cache: {{ttl_ms: {bad}}})"#),
        );
        let config = json!({"schema": schema, "upstreams": {"fn": {"target": "functions"}}});
        let error = Gateway::from_json(&config.to_string())
            .unwrap_err()
            .to_string();
        assert!(error.contains("ttl_ms"), "{bad}: {error}");
    }
}
