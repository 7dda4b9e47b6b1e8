//! The GraphQL corpus (`corpus/cases/*.yaml`) against the engine, natively,
//! with the mock functions' own answers. The same cases run through real
//! Envoy in `envoy/e2e`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::upstream::CallOutcome;
use graphql_corpus::{cases, filter_config, Case, Variant};
use mock_functions::{answer_path, DataSet, OrderBook};
use std::collections::HashMap;
use std::sync::Arc;

/// The data set the mock functions serve by default.
const DATA: DataSet = DataSet::new(50);

fn run(gateway: &Arc<Gateway>, case: &Case) -> Result<(), String> {
    let request = HttpRequest {
        method: case.method.clone(),
        path: case.path.clone(),
        headers: case.headers.clone(),
        body: case.body.clone(),
    };
    let orders = OrderBook::default();
    let mut execution = Execution::start(gateway.clone(), &request, 0);
    let mut calls = 0;
    loop {
        let pending = execution.take_calls(0);
        if pending.is_empty() {
            break;
        }
        for call in pending {
            calls += 1;
            let r = &call.request;
            let body = r.body.as_deref().unwrap_or_default();
            let answer = answer_path(&DATA, &orders, &r.method, &r.path, body);
            let outcome = CallOutcome::response(answer.status, answer.body.into_bytes());
            execution.on_call_outcome(call.id, outcome, 0);
        }
    }
    let reply = execution
        .reply()
        .ok_or_else(|| format!("{}: no reply with nothing in flight", case.id))?;
    let headers: Vec<(String, String)> = reply
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    case.check(reply.status, &headers, &reply.body)?;
    match case.expected_calls() {
        Some(want) if want != calls => Err(format!(
            "{}: {calls} function calls, expected {want}",
            case.id
        )),
        _ => Ok(()),
    }
}

#[test]
fn corpus_against_the_engine() {
    let gateways: HashMap<Variant, Arc<Gateway>> = Variant::ALL
        .into_iter()
        .map(|v| {
            let config = filter_config(v, "functions").to_string();
            (
                v,
                Arc::new(Gateway::from_json(&config).expect("the corpus schema loads")),
            )
        })
        .collect();
    let cases = cases().unwrap();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| run(&gateways[&case.variant], case).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    println!("{} corpus cases passed", cases.len());
}

/// graphql-js's standard introspection queries (`getIntrospectionQuery()`,
/// with its defaults and with every option on) are answered without errors.
/// The e2e test rebuilds the schema from the answer with graphql-js.
#[test]
fn graphql_js_introspection_queries_are_answered() {
    let config = filter_config(Variant::Public, "functions").to_string();
    let gateway = Arc::new(Gateway::from_json(&config).unwrap());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/e2e/js");
    for file in [
        "introspection-query.graphql",
        "introspection-query-full.graphql",
    ] {
        let query = std::fs::read_to_string(dir.join(file)).unwrap();
        let body = serde_json::json!({ "query": query })
            .to_string()
            .into_bytes();
        let mut execution = Execution::start(gateway.clone(), &HttpRequest::post_json(body), 0);
        assert!(execution.take_calls(0).is_empty());
        let reply = execution.reply().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert!(json.get("errors").is_none(), "{file}: {json}");
        assert_eq!(
            json["data"]["__schema"]["queryType"]["name"], "Query",
            "{file}"
        );
        let types: Vec<&str> = json["data"]["__schema"]["types"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(
            types.contains(&"SearchResult") && !types.contains(&"HttpBatch"),
            "{types:?}"
        );
    }
}
