//! Batched answers follow one rule, whatever their form (an object keyed by
//! key, or a list of items with `itemKey`): a key the function leaves out
//! is "no data" (null, or `[]` for a list field) by default, or an
//! `UPSTREAM_BAD_RESPONSE` error with `batch: {missing: "error"}`; a parent
//! without the key is null, without an error, in both cases.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::upstream::CallOutcome;
use serde_json::{json, Value};
use std::sync::Arc;

const SCHEMA: &str = r#"
type Query { people: [Person] @http(upstream: "fn", path: "/people") }
type Person {
  id: ID
  name: String
  friends: [Person] @http(upstream: "fn", path: "/friends-by-key", batch: {key: "id", param: "ids"MISSING})
  best: Person @http(upstream: "fn", path: "/best-by-key", batch: {key: "id", param: "ids"MISSING})
  friendItems: [Person] @http(upstream: "fn", path: "/friend-items", batch: {key: "id", param: "ids", itemKey: "of"MISSING})
  bestItem: Person @http(upstream: "fn", path: "/best-items", batch: {key: "id", param: "ids", itemKey: "of"MISSING})
}
"#;

const QUERY: &str =
    "{ people { name friends { name } best { name } friendItems { name } bestItem { name } } }";

fn gateway(missing: &str) -> Result<Gateway, String> {
    let config = json!({
        "schema": SCHEMA.replace("MISSING", missing),
        "upstreams": {"fn": {"target": "functions"}}
    });
    Gateway::from_json(&config.to_string()).map_err(|e| e.to_string())
}

/// Three people: 1 and 2 have an id, the third none. Every batched
/// function answers for key 1 only.
fn answer(path: &str) -> Value {
    let route = path.split_once('?').map_or(path, |(route, _)| route);
    match route {
        "/people" => {
            json!([{"id": "1", "name": "one"}, {"id": 2, "name": "two"}, {"name": "nobody"}])
        }
        "/friends-by-key" => json!({"1": [{"name": "f1"}]}),
        "/best-by-key" => json!({"1": {"name": "b1"}}),
        "/friend-items" => json!([{"of": "1", "name": "f1"}, {"of": 1, "name": "f2"}]),
        "/best-items" => json!([{"of": 1, "name": "b1"}]),
        other => panic!("unexpected call {other}"),
    }
}

/// Runs [`QUERY`]; returns the body and the paths called.
fn run(gateway: Gateway) -> (Value, Vec<String>) {
    let request = HttpRequest::post_json(json!({ "query": QUERY }).to_string().into_bytes());
    let mut execution = Execution::start(Arc::new(gateway), &request, 0);
    let mut made = Vec::new();
    loop {
        let calls = execution.take_calls(0);
        if calls.is_empty() {
            break;
        }
        for call in calls {
            let body = answer(&call.request.path).to_string().into_bytes();
            execution.on_call_outcome(call.id, CallOutcome::response(200, body), 0);
            made.push(call.request.path.clone());
        }
    }
    let reply = execution.reply().expect("finished");
    (serde_json::from_slice(&reply.body).unwrap(), made)
}

/// Person 1 as every configuration answers it, and person 3 (no key).
fn the_others(people: &Value) {
    assert_eq!(
        people[0],
        json!({"name": "one", "friends": [{"name": "f1"}], "best": {"name": "b1"},
               "friendItems": [{"name": "f1"}, {"name": "f2"}], "bestItem": {"name": "b1"}})
    );
    assert_eq!(
        people[2],
        json!({"name": "nobody", "friends": null, "best": null, "friendItems": null, "bestItem": null}),
        "a parent without the key is null, without an error"
    );
}

#[test]
fn a_left_out_key_is_no_data_by_default_in_both_forms() {
    for missing in ["", r#", missing: "null""#] {
        let (body, made) = run(gateway(missing).unwrap());
        let people = &body["data"]["people"];
        the_others(people);
        assert_eq!(
            people[1],
            json!({"name": "two", "friends": [], "best": null, "friendItems": [], "bestItem": null}),
            "{missing}"
        );
        assert!(body.get("errors").is_none(), "{body}");
        // The parent without the key is not sent.
        for path in &made[1..] {
            assert!(path.ends_with("?ids=1,2"), "{path}");
        }
    }
}

#[test]
fn a_left_out_key_is_an_error_with_missing_error_in_both_forms() {
    let (body, _) = run(gateway(r#", missing: "error""#).unwrap());
    let people = &body["data"]["people"];
    the_others(people);
    assert_eq!(
        people[1],
        json!({"name": "two", "friends": null, "best": null, "friendItems": null, "bestItem": null})
    );
    let errors = body["errors"].as_array().unwrap();
    let mut paths: Vec<String> = errors
        .iter()
        .map(|e| {
            e["path"].as_array().unwrap()[2]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    paths.sort();
    assert_eq!(paths, ["best", "bestItem", "friendItems", "friends"]);
    for error in errors {
        assert_eq!(error["path"][1], 1, "{error}");
        assert_eq!(error["extensions"]["code"], "UPSTREAM_BAD_RESPONSE");
        assert_eq!(error["extensions"]["upstream"], "fn");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("function fn left key \"2\" out")
                && message.contains("Person.")
                && message.contains("missing: \"error\""),
            "{message}"
        );
    }
}

#[test]
fn an_unknown_missing_value_is_refused_when_the_configuration_loads() {
    let e = gateway(r#", missing: "empty""#).unwrap_err();
    assert!(
        e.starts_with("schema field Person.friends")
            && e.contains(r#"batch missing "empty" is not one of "null""#),
        "{e}"
    );
}
