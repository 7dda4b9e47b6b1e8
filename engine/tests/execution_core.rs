//! The execution core: result coercion as the spec says it, errors as typed
//! values at any list depth, and bounded output (a self-referencing batched
//! field cannot make the reply, or the work, grow without bound).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::response::Outcome;
use graphql_aggregator_engine::upstream::CallOutcome;
use serde_json::{json, Value};
use std::sync::Arc;

const SCHEMA: &str = r#"
type Query {
  item: Item @http(upstream: "items", path: "/item")
  grid: [[Cell]] @http(upstream: "items", path: "/grid")
  strictGrid: [[Cell!]] @http(upstream: "items", path: "/grid")
  person(id: ID!): Person @http(upstream: "people", path: "/person?id={args.id}")
}
type Item { id: ID count: Int ratio: Float label: String kind: Kind ids: [ID] }
enum Kind { SMALL LARGE }
type Cell { x: Int }
type Person {
  id: ID!
  name: String
  friends: [Person] @http(upstream: "people", path: "/people-batch", batch: {key: "id", param: "ids"})
}
"#;

fn gateway(limits: Value) -> Arc<Gateway> {
    let config = json!({
        "schema": SCHEMA,
        "upstreams": {"items": {"target": "items"}, "people": {"target": "people"}},
        "limits": limits,
    });
    Arc::new(Gateway::from_json(&config.to_string()).unwrap())
}

/// 30 people, every one a friend of every other one.
fn people_answer(path: &str) -> Value {
    let person = |id: u32| json!({"id": id.to_string(), "name": format!("P{id}")});
    if let Some(id) = path.strip_prefix("/person?id=") {
        return person(id.parse().unwrap());
    }
    let ids = path.split_once("ids=").unwrap().1;
    let mut out = serde_json::Map::new();
    for id in ids.split(',') {
        let friends: Vec<Value> = (1..=30)
            .filter(|f| f.to_string() != id)
            .map(person)
            .collect();
        out.insert(id.to_string(), Value::Array(friends));
    }
    Value::Object(out)
}

/// Runs a query to its reply; `answer` plays the functions. Returns the
/// reply's body, its outcome and the calls made.
fn run(
    gateway: Arc<Gateway>,
    query: &str,
    answer: impl Fn(&str) -> Value,
) -> (Value, Outcome, Vec<String>) {
    let body = json!({"query": query}).to_string().into_bytes();
    let mut execution = Execution::start(gateway, &HttpRequest::post_json(body), 0);
    let mut calls = Vec::new();
    loop {
        let pending = execution.take_calls(0);
        if pending.is_empty() {
            break;
        }
        for call in pending {
            calls.push(call.request.path.clone());
            let body = answer(&call.request.path).to_string().into_bytes();
            execution.on_call_outcome(call.id, CallOutcome::response(200, body), 0);
        }
    }
    let reply = execution.reply().expect("finished");
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    (body, reply.outcome, calls)
}

fn item(answer: Value) -> impl Fn(&str) -> Value {
    move |_| answer.clone()
}

#[test]
fn ids_returned_as_numbers_are_strings() {
    let (body, _, _) = run(
        gateway(json!({})),
        "{ item { id ids } }",
        item(json!({"id": 7, "ids": [1, "2", 3]})),
    );
    assert_eq!(
        body.to_string(),
        r#"{"data":{"item":{"id":"7","ids":["1","2","3"]}}}"#
    );
}

#[test]
fn leaves_are_coerced_as_the_spec_says() {
    let (body, outcome, _) = run(
        gateway(json!({})),
        "{ item { count ratio label kind } }",
        item(json!({"count": 5.0, "ratio": 5, "label": "x", "kind": "LARGE"})),
    );
    assert_eq!(
        body.to_string(),
        r#"{"data":{"item":{"count":5,"ratio":5.0,"label":"x","kind":"LARGE"}}}"#
    );
    assert_eq!(outcome, Outcome::Ok);
    for (bad, field) in [
        (json!({"count": 2_147_483_648_i64}), "count"),
        (json!({"count": 1.5}), "count"),
        (json!({"ratio": "1"}), "ratio"),
        (json!({"label": 1}), "label"),
        (json!({"kind": "HUGE"}), "kind"),
    ] {
        let (body, outcome, _) = run(
            gateway(json!({})),
            &format!("{{ item {{ {field} }} }}"),
            item(bad),
        );
        assert_eq!(body["data"]["item"][field], Value::Null, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "UPSTREAM_BAD_RESPONSE"
        );
        assert_eq!(outcome, Outcome::Partial);
    }
}

#[test]
fn a_coercion_error_names_the_field_type_and_upstream_but_no_data() {
    let (body, _, _) = run(
        gateway(json!({})),
        "{ item { count } }",
        item(json!({"count": {"secret": "hunter2"}})),
    );
    let error = &body["errors"][0];
    let message = error["message"].as_str().unwrap();
    assert_eq!(
        message,
        "function items answered a value for Item.count that is not a valid Int"
    );
    assert_eq!(error["extensions"]["upstream"], "items");
    assert_eq!(error["path"], json!(["item", "count"]));
    assert_eq!(error["locations"], json!([{"line": 1, "column": 10}]));
    let text = body.to_string();
    assert!(
        !text.contains("hunter2") && !text.contains("secret"),
        "{text}"
    );
}

#[test]
fn a_failed_item_of_a_nested_list_keeps_its_code_and_path() {
    let grid = json!([[{"x": 1}, "oops"], [{"x": 2}]]);
    let (body, _, _) = run(gateway(json!({})), "{ grid { x } }", item(grid.clone()));
    assert_eq!(
        body["data"],
        json!({"grid": [[{"x": 1}, null], [{"x": 2}]]})
    );
    assert_eq!(body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(body["errors"][0]["path"], json!(["grid", 0, 1]));
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "UPSTREAM_BAD_RESPONSE"
    );
    assert_eq!(body["errors"][0]["extensions"]["upstream"], "items");
    // A non-null item nulls its inner list, and only that.
    let (body, _, _) = run(gateway(json!({})), "{ strictGrid { x } }", item(grid));
    assert_eq!(body["data"], json!({"strictGrid": [null, [{"x": 2}]]}));
    assert_eq!(body["errors"][0]["path"], json!(["strictGrid", 0, 1]));
}

#[test]
fn every_code_in_a_reply_is_a_known_code() {
    let known = [
        "UPSTREAM_BAD_RESPONSE",
        "UPSTREAM_HTTP_ERROR",
        "LIMIT_EXCEEDED",
        "NOT_EXECUTED",
    ];
    let (body, _, _) = run(
        gateway(json!({})),
        "{ item { count } grid { x } }",
        |path: &str| match path {
            "/item" => json!({"count": "many"}),
            _ => json!([["no"]]),
        },
    );
    for error in body["errors"].as_array().unwrap() {
        let code = error["extensions"]["code"].as_str().unwrap();
        assert!(known.contains(&code), "{code}");
    }
}

fn friends_query(levels: usize) -> String {
    let mut query = String::from("{ person(id: \"1\") { id ");
    for _ in 0..levels {
        query.push_str("friends { id ");
    }
    for _ in 0..levels {
        query.push_str("} ");
    }
    query.push_str("} }");
    query
}

#[test]
fn a_self_referencing_batch_fits_or_is_refused_early() {
    // 3 levels: 29^3 people, within the default limits, in one call per
    // level (each batching the keys of the whole level once).
    let (body, outcome, calls) = run(gateway(json!({})), &friends_query(3), people_answer);
    assert_eq!(outcome, Outcome::Ok);
    assert_eq!(calls.len(), 4, "{calls:?}");
    let level1 = body["data"]["person"]["friends"].as_array().unwrap();
    let leaves: usize = level1
        .iter()
        .flat_map(|f| f["friends"].as_array().unwrap())
        .map(|f| f["friends"].as_array().unwrap().len())
        .sum();
    assert_eq!(leaves, 29 * 29 * 29);

    // 4 and 6 levels: refused when the fourth level's answer shows its
    // size, before the reply is built and before any deeper call.
    for levels in [4, 6] {
        let (body, outcome, calls) = run(gateway(json!({})), &friends_query(levels), people_answer);
        assert_eq!(outcome, Outcome::LimitExceeded, "{levels}: {body}");
        assert!(body.get("data").is_none(), "{body}");
        let error = &body["errors"][0];
        assert_eq!(error["extensions"]["code"], "LIMIT_EXCEEDED");
        assert_eq!(error["extensions"]["limit"], "max_reply_objects");
        assert_eq!(error["extensions"]["max"], 100_000);
        assert!(error["extensions"]["at"].is_string(), "{error}");
        assert!(calls.len() <= 5, "{levels}: {calls:?}");
    }
}

#[test]
fn reply_limits_are_enforced_while_writing() {
    // Objects: 1 + 29 friends (each an object and a list item).
    let (body, outcome, _) = run(
        gateway(json!({"max_reply_objects": 50})),
        &friends_query(1),
        people_answer,
    );
    assert_eq!(outcome, Outcome::LimitExceeded, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["limit"],
        "max_reply_objects"
    );
    let (body, outcome, _) = run(
        gateway(json!({"max_reply_objects": 60})),
        &friends_query(1),
        people_answer,
    );
    assert_eq!(outcome, Outcome::Ok, "{body}");

    let (body, outcome, _) = run(
        gateway(json!({"max_reply_bytes": 200})),
        &friends_query(1),
        people_answer,
    );
    assert_eq!(outcome, Outcome::LimitExceeded, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["limit"], "max_reply_bytes");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("person.friends"));
}

#[test]
fn answers_held_are_bounded() {
    let (body, _, _) = run(
        gateway(json!({"max_held_answer_bytes": 64})),
        "{ item { label } }",
        item(json!({"label": "x".repeat(200)})),
    );
    assert_eq!(body["data"], json!({"item": null}));
    assert_eq!(body["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
    assert_eq!(
        body["errors"][0]["extensions"]["limit"],
        "max_held_answer_bytes"
    );
    assert_eq!(body["errors"][0]["extensions"]["upstream"], "items");
}

#[test]
fn the_same_object_reached_twice_resolves_its_fields_once() {
    // Person 2 is a friend of 1 and of 3: the batch for the second level
    // asks for each key once, and the reply repeats what it resolved.
    let (body, _, calls) = run(gateway(json!({})), &friends_query(2), people_answer);
    assert_eq!(calls.len(), 3, "{calls:?}");
    let second = calls[2].split_once("ids=").unwrap().1;
    assert_eq!(second.split(',').count(), 29);
    assert_eq!(
        body["data"]["person"]["friends"][0]["friends"]
            .as_array()
            .unwrap()
            .len(),
        29
    );
}

/// Runs `query` with `variables` through `cache`, answering `/a` and `/b`.
fn run_cached(
    gateway: &Arc<Gateway>,
    cache: &mut graphql_aggregator_engine::plan_cache::PlanCache,
    query: &str,
    variables: Value,
) -> Value {
    let body = json!({"query": query, "variables": variables})
        .to_string()
        .into_bytes();
    let request = HttpRequest::post_json(body);
    let mut execution = Execution::start_cached(gateway.clone(), &request, 0, Some(cache));
    loop {
        let pending = execution.take_calls(0);
        if pending.is_empty() {
            break;
        }
        for call in pending {
            let answer = if call.request.path == "/a" { "1" } else { "2" };
            execution.on_call_outcome(call.id, CallOutcome::response(200, answer.into()), 0);
        }
    }
    serde_json::from_slice(&execution.reply().unwrap().body).unwrap()
}

#[test]
fn a_plan_is_never_reused_for_other_condition_values() {
    let config = json!({
        "schema": "type Query { a: Int @http(upstream: \"fn\", path: \"/a\") b: Int @http(upstream: \"fn\", path: \"/b\") }",
        "upstreams": {"fn": {"target": "fn"}}
    });
    let gateway = Arc::new(Gateway::from_json(&config.to_string()).unwrap());
    let mut cache = graphql_aggregator_engine::plan_cache::PlanCache::new(8);
    // 33 condition variables: more than a plan's key holds.
    let declared: String = (0..33)
        .map(|i| format!("$v{i}: Boolean = false "))
        .collect();
    let selected: String = (0..33)
        .map(|i| match i {
            16 => "a @include(if: $v16) ".to_string(),
            32 => "b @include(if: $v32) ".to_string(),
            _ => format!("x{i}: __typename @include(if: $v{i}) "),
        })
        .collect();
    let query = format!("query Q({declared}) {{ {selected} }}");
    let first = run_cached(&gateway, &mut cache, &query, json!({"v16": true}));
    assert_eq!(first["data"], json!({"a": 1}));
    let second = run_cached(&gateway, &mut cache, &query, json!({"v32": true}));
    assert_eq!(second["data"], json!({"b": 2}));
    // Few conditions: each combination has its own cached plan.
    let query = "query Q($x: Boolean!) { a @include(if: $x) b @skip(if: $x) }";
    let with = run_cached(&gateway, &mut cache, query, json!({"x": true}));
    let without = run_cached(&gateway, &mut cache, query, json!({"x": false}));
    assert_eq!(
        (with["data"].clone(), without["data"].clone()),
        (json!({"a": 1}), json!({"b": 2}))
    );
}

#[test]
fn fields_sharing_a_batched_call_read_it_with_their_own_item_key() {
    let config = json!({
        "schema": r#"type Query { users: [User] @http(upstream: "fn", path: "/users") }
            type User { id: ID
              bought: [Order] @http(upstream: "fn", path: "/orders", batch: {key: "id", param: "ids", itemKey: "buyer"})
              sold: [Order] @http(upstream: "fn", path: "/orders", batch: {key: "id", param: "ids", itemKey: "seller"}) }
            type Order { id: ID }"#,
        "upstreams": {"fn": {"target": "fn"}}
    });
    let gateway = Arc::new(Gateway::from_json(&config.to_string()).unwrap());
    let (body, _, calls) = run(
        gateway,
        "{ users { bought { id } sold { id } } }",
        |path: &str| {
            if path == "/users" {
                json!([{"id": "1"}])
            } else {
                json!([{"id": "o1", "buyer": "1", "seller": "9"}, {"id": "o2", "buyer": "9", "seller": "1"}])
            }
        },
    );
    assert_eq!(calls.len(), 2, "one call serves both fields: {calls:?}");
    assert_eq!(
        body["data"],
        json!({"users": [{"bought": [{"id": "o1"}], "sold": [{"id": "o2"}]}]})
    );
}

#[test]
fn an_answer_refused_for_its_size_is_not_held() {
    let config = json!({
        "schema": "type Query { big: String @http(upstream: \"fn\", path: \"/big\") small: String @http(upstream: \"fn\", path: \"/small\") }",
        "upstreams": {"fn": {"target": "fn"}},
        "limits": {"max_held_answer_bytes": 2000}
    });
    let gateway = Arc::new(Gateway::from_json(&config.to_string()).unwrap());
    let (body, _, _) = run(gateway, "{ big small }", |path: &str| {
        if path == "/big" {
            json!("x".repeat(4000))
        } else {
            json!("ok")
        }
    });
    assert_eq!(body["data"], json!({"big": null, "small": "ok"}), "{body}");
    assert_eq!(body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["errors"][0]["extensions"]["limit"],
        "max_held_answer_bytes"
    );
}

#[test]
fn a_missing_non_null_value_names_the_function() {
    let config = json!({
        "schema": "type Query { user: User @http(upstream: \"fn\", path: \"/u\") } type User { id: ID! name: String! }",
        "upstreams": {"fn": {"target": "fn"}}
    });
    let gateway = Arc::new(Gateway::from_json(&config.to_string()).unwrap());
    let (body, _, _) = run(gateway, "{ user { id name } }", |_| json!({"id": "1"}));
    assert_eq!(body["data"], json!({"user": null}));
    let error = &body["errors"][0];
    assert_eq!(error["path"], json!(["user", "name"]));
    assert_eq!(error["extensions"]["upstream"], "fn");
    assert!(
        error["message"].as_str().unwrap().contains("User.name"),
        "{error}"
    );
}
