//! (b) Any function answers for a fixed plan: the first byte picks the
//! status, the rest is cut into the bodies of successive calls.
#![no_main]

mod common;

use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::upstream::{CallFailure, CallOutcome};
use libfuzzer_sys::fuzz_target;

const QUERY: &[u8] = br#"{"query": "{ user(id: \"1\") { id name score orders { id amount count } each { id } } users { id name orders { amount } each { count } } node(id: \"n\") { id ... on User { name } ... on Order { amount } } search(text: \"x\") { ... on User { id } ... on Order { amount } } }"}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let parts: Vec<&[u8]> = rest.split(|b| *b == 0xff).collect();
    let execution = Execution::start(
        common::gateway(),
        &HttpRequest::post_json(QUERY.to_vec()),
        0,
    );
    common::run_to_reply(execution, |round, _| {
        let body = parts
            .get(round % parts.len().max(1))
            .copied()
            .unwrap_or_default();
        match first.wrapping_add(round as u8) % 8 {
            0 => CallOutcome::Failed(CallFailure::Timeout),
            1 => CallOutcome::Failed(CallFailure::Unavailable("reset".into())),
            2 => CallOutcome::response(404, body.to_vec()),
            _ => CallOutcome::response(200, body.to_vec()),
        }
    });
});
