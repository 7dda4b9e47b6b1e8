//! Real functions' contracts, natively: envelopes, selected results,
//! renamed keys, per-upstream headers and the reply's cache-control.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
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
type Query {
  item(id: ID!): Item @http(upstream: "plain", path: "/item?id={args.id}")
  wrapped(id: ID!): Item @http(upstream: "platform", path: "/item?id={args.id}", select: "result.item")
  other: Item @http(upstream: "plain", path: "/other")
}
type Mutation { touch: Item @http(upstream: "plain", method: "POST", path: "/touch") }
type Item { id: ID itemName: String @from(path: "item_name") city: String @from(path: "address.city") }
"#;

fn gateway() -> Arc<Gateway> {
    let config = json!({
        "schema": SCHEMA,
        "upstreams": {
            "plain": {"target": "t", "headers": {"x-token": "abc"}, "rename_headers": {"authorization": "x-user-token"}},
            "platform": {"target": "t", "envelope": {"code": "status.code", "success": [0, "OK"], "message": "status.msg", "data": "payload"}}
        }
    });
    Arc::new(Gateway::from_json(&config.to_string()).unwrap())
}

/// The headers of each call made.
type SentHeaders = Vec<Vec<(String, String)>>;

/// Runs `query` without client headers, every call answered 200 with
/// `answer(path)` and its `cache-control`; returns the reply's body and
/// cache-control, and the headers of each call.
fn run(
    query: &str,
    answer: impl Fn(&str) -> (Value, Option<&'static str>),
) -> (Value, Option<String>, SentHeaders) {
    run_as(query, &[], answer)
}

/// [`run`], the client sending `client` headers.
fn run_as(
    query: &str,
    client: &[(&str, &str)],
    answer: impl Fn(&str) -> (Value, Option<&'static str>),
) -> (Value, Option<String>, SentHeaders) {
    let mut request = HttpRequest::post_json(json!({ "query": query }).to_string().into_bytes());
    for (name, value) in client {
        request.headers.push((name.to_string(), value.to_string()));
    }
    let mut execution = Execution::start(gateway(), &request, 0);
    let mut headers = Vec::new();
    loop {
        let calls = execution.take_calls(0);
        if calls.is_empty() {
            break;
        }
        for call in calls {
            let (body, cache) = answer(&call.request.path);
            headers.push(call.request.headers.to_vec());
            let outcome = CallOutcome::response(200, body.to_string().into_bytes());
            execution.on_call_answer(call.id, outcome, cache, 0);
        }
    }
    let reply = execution.reply().unwrap();
    let cache = reply
        .headers
        .iter()
        .find(|(k, _)| k == "cache-control")
        .map(|(_, v)| v.to_string());
    (serde_json::from_slice(&reply.body).unwrap(), cache, headers)
}

fn item(_: &str) -> (Value, Option<&'static str>) {
    (
        json!({"id": "1", "item_name": "Lamp", "address": {"city": "Lyon"}}),
        Some("max-age=60"),
    )
}

#[test]
fn renamed_and_nested_keys_are_read_from_the_parent() {
    let (body, _, headers) = run_as(
        r#"{ item(id: "1") { id itemName city } }"#,
        &[("authorization", "Bearer u")],
        item,
    );
    assert_eq!(
        body,
        json!({"data": {"item": {"id": "1", "itemName": "Lamp", "city": "Lyon"}}})
    );
    let sent = &headers[0];
    assert!(
        sent.contains(&("x-token".to_string(), "abc".to_string())),
        "{sent:?}"
    );
    assert!(
        sent.contains(&("x-user-token".to_string(), "Bearer u".to_string())),
        "{sent:?}"
    );
    assert!(!sent.iter().any(|(k, _)| k == "authorization"), "{sent:?}");
}

#[test]
fn envelopes_unwrap_and_select_reaches_into_the_data() {
    let ok = |_: &str| {
        (
            json!({"status": {"code": "OK"}, "payload": {"result": {"item": {"id": "7", "item_name": "Desk"}}}}),
            Some("max-age=5"),
        )
    };
    let (body, _, _) = run(r#"{ wrapped(id: "7") { id itemName } }"#, ok);
    assert_eq!(
        body,
        json!({"data": {"wrapped": {"id": "7", "itemName": "Desk"}}})
    );

    let failed = |_: &str| {
        (
            json!({"status": {"code": 4001, "msg": "no such item"}, "payload": null}),
            None,
        )
    };
    let (body, cache, _) = run(r#"{ wrapped(id: "7") { id } }"#, failed);
    assert_eq!(body["data"], json!({"wrapped": null}));
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["code"], "UPSTREAM_ERROR");
    assert_eq!(error["extensions"]["functionCode"], 4001);
    assert_eq!(error["extensions"]["functionMessage"], "no such item");
    assert_eq!(cache.as_deref(), Some("no-store"));

    let bare = |_: &str| (json!({"item": {"id": "7"}}), None);
    let (body, _, _) = run(r#"{ wrapped(id: "7") { id } }"#, bare);
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UPSTREAM_BAD_RESPONSE",
        "{body}"
    );
}

#[test]
fn the_reply_is_cached_as_the_most_restrictive_answer_allows() {
    // Every answer cacheable: the smallest max-age.
    let answers = |path: &str| {
        let cache = if path.starts_with("/other") {
            Some("public, max-age=15")
        } else {
            Some("max-age=60")
        };
        (json!({"id": "1"}), cache)
    };
    let (_, cache, _) = run(r#"{ item(id: "1") { id } other { id } }"#, answers);
    assert_eq!(cache.as_deref(), Some("max-age=15, s-maxage=15"));
    // s-maxage kept apart: the smallest of each, an answer without
    // s-maxage bounding shared caches by its max-age.
    let answers = |path: &str| {
        let cache = if path.starts_with("/other") {
            Some("max-age=600, s-maxage=20")
        } else {
            Some("max-age=60")
        };
        (json!({"id": "1"}), cache)
    };
    let (_, cache, _) = run(r#"{ item(id: "1") { id } other { id } }"#, answers);
    assert_eq!(cache.as_deref(), Some("max-age=60, s-maxage=20"));
    // One no-store.
    let answers = |path: &str| {
        let cache = if path.starts_with("/other") {
            Some("no-store")
        } else {
            Some("max-age=60")
        };
        (json!({"id": "1"}), cache)
    };
    let (_, cache, _) = run(r#"{ item(id: "1") { id } other { id } }"#, answers);
    assert_eq!(cache.as_deref(), Some("no-store"));
    // An error in the reply.
    let answers = |path: &str| {
        let body = if path.starts_with("/other") {
            json!("not an object")
        } else {
            json!({"id": "1"})
        };
        (body, Some("max-age=60"))
    };
    let (body, cache, _) = run(r#"{ item(id: "1") { id } other { id } }"#, answers);
    assert!(body.get("errors").is_some());
    assert_eq!(cache.as_deref(), Some("no-store"));
    // A mutation.
    let (_, cache, _) = run("mutation { touch { id } }", item);
    assert_eq!(cache.as_deref(), Some("no-store"));
    // A private answer keeps the reply private.
    let answers = |_: &str| (json!({"id": "1"}), Some("private, max-age=30"));
    let (_, cache, _) = run(r#"{ item(id: "1") { id } }"#, answers);
    assert_eq!(cache.as_deref(), Some("private, max-age=30"));
}

#[test]
fn a_reply_fetched_with_the_clients_headers_is_never_shared() {
    let answers = |_: &str| (json!({"id": "1"}), Some("max-age=60, s-maxage=30"));
    let query = r#"{ item(id: "1") { id } }"#;
    // `plain` renames the client's authorization: the answer may be the
    // client's alone.
    let (_, cache, sent) = run_as(query, &[("authorization", "Bearer u")], answers);
    assert!(sent[0].iter().any(|(k, _)| k == "x-user-token"), "{sent:?}");
    assert_eq!(cache.as_deref(), Some("private, max-age=60"));
    // The request id is forwarded to every function, and does not count.
    let (_, cache, sent) = run_as(query, &[("x-request-id", "r-1")], answers);
    assert!(sent[0].iter().any(|(k, _)| k == "x-request-id"), "{sent:?}");
    assert_eq!(cache.as_deref(), Some("max-age=60, s-maxage=30"));
    // Nor does a client header no upstream takes.
    let (_, cache, _) = run_as(query, &[("x-other", "1")], answers);
    assert_eq!(cache.as_deref(), Some("max-age=60, s-maxage=30"));
    // `platform` takes no client header: the same answer, shared.
    let wrapped = |_: &str| {
        (
            json!({"status": {"code": 0}, "payload": {"result": {"item": {"id": "7"}}}}),
            Some("max-age=60"),
        )
    };
    let (body, cache, _) = run_as(
        r#"{ wrapped(id: "7") { id } }"#,
        &[("authorization", "Bearer u")],
        wrapped,
    );
    assert_eq!(body["data"]["wrapped"]["id"], "7", "{body}");
    assert_eq!(cache.as_deref(), Some("max-age=60, s-maxage=60"));
}

#[test]
fn contract_settings_are_checked_when_the_configuration_loads() {
    let load = |upstream: Value, schema: &str| {
        Gateway::from_json(&json!({"schema": schema, "upstreams": {"u": upstream}}).to_string())
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let plain = r#"type Query { a: A @http(upstream: "u", path: "/a") } type A { b: String }"#;
    let e = load(
        json!({"target": "t", "envelope": {"code": "", "success": [0]}}),
        plain,
    );
    assert!(
        e.contains("upstreams.u") && e.contains("envelope.code"),
        "{e}"
    );
    let e = load(
        json!({"target": "t", "envelope": {"code": "code", "success": []}}),
        plain,
    );
    assert!(e.contains("envelope.success"), "{e}");
    let e = load(
        json!({"target": "t", "headers": {"x-token": "a\r\nx-evil: 1"}}),
        plain,
    );
    assert!(e.contains("line break"), "{e}");
    let e = load(
        json!({"target": "t", "rename_headers": {"authorization": "host"}}),
        plain,
    );
    assert!(e.contains("set by the gateway"), "{e}");
    let e = load(
        json!({"target": "t"}),
        r#"type Query { a: A @http(upstream: "u", path: "/a") } type A { b: String @from(path: "x..y") }"#,
    );
    assert!(e.contains("A.b") && e.contains("@from"), "{e}");
    let e = load(
        json!({"target": "t"}),
        r#"type Query { a: A @http(upstream: "u", path: "/a", select: ".x") } type A { b: String }"#,
    );
    assert!(e.contains("Query.a") && e.contains("select"), "{e}");
}

#[test]
fn configured_headers_win_over_the_clients() {
    let config = json!({
        "schema": r#"type Query { a: Item @http(upstream: "u", path: "/a", headers: [{name: "x-scope", value: "read"}]) }
                     type Item { id: ID }"#,
        "upstreams": {"u": {"target": "t", "forward_headers": ["x-token", "x-scope"], "headers": {"x-token": "internal"}}}
    });
    let gateway = Arc::new(Gateway::from_json(&config.to_string()).unwrap());
    let mut request = HttpRequest::post_json(br#"{"query": "{ a { id } }"}"#.to_vec());
    request.headers.extend([
        ("x-token".to_string(), "forged".to_string()),
        ("x-scope".to_string(), "admin".to_string()),
    ]);
    let mut execution = Execution::start(gateway, &request, 0);
    let calls = execution.take_calls(0);
    let sent = &calls[0].request.headers;
    let values = |name: &str| {
        sent.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(values("x-token"), ["internal"]);
    assert_eq!(values("x-scope"), ["read"]);
}

#[test]
fn from_on_an_interface_and_odd_upstream_names_are_refused() {
    let e = Gateway::from_json(
        &json!({
            "schema": r#"type Query { a: I @http(upstream: "u", path: "/a") }
                         interface I { x: String @from(path: "y") } type T implements I { x: String }"#,
            "upstreams": {"u": {"target": "t"}}
        })
        .to_string(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("I.x") && e.to_string().contains("interfaces"),
        "{e}"
    );
    let e = Gateway::from_json(
        &json!({"schema": "type Query { a: String @http(upstream: \"a.b\", path: \"/a\") }", "upstreams": {"a.b": {"target": "t"}}})
            .to_string(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("upstreams.a.b"), "{e}");
}

/// A cacheable reply varies by every client header a call may carry (here
/// `authorization`, renamed for `plain`), so that a shared cache never hands
/// a reply made without a client's credentials to a client that sends them.
#[test]
fn a_cacheable_reply_varies_by_the_client_headers_calls_may_carry() {
    let request = HttpRequest::post_json(
        json!({"query": r#"{ item(id: "1") { id } }"#})
            .to_string()
            .into_bytes(),
    );
    let mut execution = Execution::start(gateway(), &request, 0);
    for call in execution.take_calls(0) {
        let outcome = CallOutcome::response(200, br#"{"id": "1"}"#.to_vec());
        execution.on_call_answer(call.id, outcome, Some("max-age=60"), 0);
    }
    let reply = execution.reply().unwrap();
    let header = |name: &str| {
        reply
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
    };
    assert_eq!(
        header("cache-control").as_deref(),
        Some("max-age=60, s-maxage=60")
    );
    assert_eq!(header("vary").as_deref(), Some("accept, authorization"));
}
