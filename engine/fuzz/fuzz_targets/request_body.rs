//! (a) Any request body, as a POST with `application/json`: the engine
//! answers it (an error or data), never panics, never hangs.
#![no_main]

mod common;

use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::upstream::CallOutcome;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let request = HttpRequest::post_json(data.to_vec());
    let execution = Execution::start(common::gateway(), &request, 0);
    common::run_to_reply(execution, |_, path| {
        let body = if path.contains("orders") {
            r#"{"1": [{"id": "o1", "amount": 1}], "2": []}"#
        } else if path.contains("users") || path.contains("search") {
            r#"[{"id": "1", "kind": "u", "name": "A"}, {"id": "2", "__typename": "Order"}]"#
        } else {
            r#"{"id": "1", "name": "A", "__typename": "User"}"#
        };
        CallOutcome::response(200, body.as_bytes().to_vec())
    });
});
