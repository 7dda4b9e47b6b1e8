//! The configuration the request and response targets run against: a
//! schema with every kind of field (mapped, batched, per parent, abstract,
//! mutation, templated headers) and small limits so that they are reached.

use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::upstream::CallOutcome;
use std::sync::{Arc, OnceLock};

const CONFIG: &str = r#"{
  "schema": "type Query { user(id: ID!): User @http(upstream: \"fn\", path: \"/user-profile?id={args.id}\", headers: [{name: \"x-user\", value: \"{args.id}\"}]) users: [User] @http(upstream: \"fn\", path: \"/users\") node(id: ID!): Node @http(upstream: \"fn\", path: \"/node/{args.id}\") search(text: String, tags: [String]): [Hit] @http(upstream: \"fn\", path: \"/search?q={args.text}&tag={args.tags}\") } type Mutation { create(input: In!): User @http(upstream: \"fn\", method: \"POST\", path: \"/create\", body: \"{\\\"input\\\": \\\"{args.input}\\\", \\\"n\\\": \\\"{args.input.n}\\\"}\") } input In { n: Int = 1 name: String tags: [String!] } interface Node { id: ID! } union Hit @discriminator(field: \"kind\", types: {u: \"User\"}) = User | Order type User implements Node { id: ID! name: String score: Float orders: [Order] @http(upstream: \"fn\", path: \"/orders\", batch: {key: \"id\", param: \"ids\"}) each: [Order!]! @http(upstream: \"fn\", path: \"/orders/{parent.id}\") } type Order implements Node { id: ID! amount: Float count: Int }",
  "upstreams": {"fn": {"target": "fn", "forward_headers": ["authorization"]}},
  "limits": {"max_calls": 40, "max_depth": 12, "max_batch_size": 3, "max_concurrent_calls": 4, "max_response_bytes": 4096}
}"#;

/// The fuzzing gateway, loaded once.
pub fn gateway() -> Arc<Gateway> {
    static GATEWAY: OnceLock<Arc<Gateway>> = OnceLock::new();
    GATEWAY
        .get_or_init(|| Arc::new(Gateway::from_json(CONFIG).expect("the fuzz configuration loads")))
        .clone()
}

/// Runs an execution to its reply, answering every call with `answer`;
/// the clock advances 7 ms per call so that the deadline is reached too.
pub fn run_to_reply(mut execution: Execution, mut answer: impl FnMut(usize, &str) -> CallOutcome) {
    let mut now = 0;
    let mut round = 0;
    while !execution.is_finished() {
        let calls = execution.take_calls(now);
        assert!(
            !calls.is_empty() || execution.is_finished(),
            "stuck: nothing to dispatch, not finished"
        );
        for call in calls {
            now += 7;
            let outcome = answer(round, &call.request.path);
            execution.on_call_outcome(call.id, outcome, now);
            round += 1;
        }
    }
    let reply = execution.reply().expect("a finished execution has a reply");
    assert!(!reply.body.is_empty());
}
