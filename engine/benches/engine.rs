//! Engine benchmarks (native): the cost of a request inside the gateway,
//! without the host. `cargo bench -p graphql-aggregator --bench engine`.
//!
//! * `compile/cold`: parse, validate and plan the seed query, no cache;
//! * `compile/cached`: the same with the document in the plan cache;
//! * `execute/seed`: the seed query end to end: plan, two calls, merge, reply;
//! * `execute/list_100`: 100 users and their orders (batched), merged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use criterion::{criterion_group, criterion_main, Criterion};
use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::plan_cache::PlanCache;
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::upstream::CallOutcome;
use mock_functions::{answer_get, DataSet};
use std::hint::black_box;
use std::sync::Arc;

const SEED: &str = r#"{"query":"query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }","variables":{"userId":"1"}}"#;
const LIST: &str = r#"{"query":"{ users { id name orders { id amount } } }"}"#;

fn gateway() -> Arc<Gateway> {
    let mut config = graphql_corpus::filter_config(graphql_corpus::Variant::Public, "fn");
    config["limits"] = serde_json::json!({"max_calls": 1000});
    Arc::new(Gateway::from_json(&config.to_string()).unwrap())
}

/// Runs a request to its reply with the mock functions' answers.
fn run(gateway: &Arc<Gateway>, body: &str, data: &DataSet, cache: &mut PlanCache) -> usize {
    let request = HttpRequest::post_json(body.as_bytes().to_vec());
    let mut execution = Execution::start_cached(gateway.clone(), &request, 0, Some(cache));
    loop {
        let calls = execution.take_calls(0);
        if calls.is_empty() {
            break;
        }
        for call in calls {
            let answer = answer_get(data, &call.request.path);
            execution.on_call_outcome(
                call.id,
                CallOutcome::response(answer.status, answer.body.into_bytes()),
                0,
            );
        }
    }
    execution.reply().unwrap().body.len()
}

fn benches(c: &mut Criterion) {
    let gateway = gateway();
    let request = HttpRequest::post_json(SEED.as_bytes().to_vec());
    let mut group = c.benchmark_group("compile");
    group.bench_function("cold", |b| {
        b.iter(|| {
            let mut execution = Execution::start(gateway.clone(), black_box(&request), 0);
            black_box(execution.take_calls(0).len())
        })
    });
    let mut cache = PlanCache::new(16);
    group.bench_function("cached", |b| {
        b.iter(|| {
            let mut execution =
                Execution::start_cached(gateway.clone(), black_box(&request), 0, Some(&mut cache));
            black_box(execution.take_calls(0).len())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("execute");
    let small = DataSet::new(50);
    let mut cache = PlanCache::new(16);
    group.bench_function("seed", |b| {
        b.iter(|| run(&gateway, SEED, &small, &mut cache))
    });
    let hundred = DataSet::new(100);
    group.bench_function("list_100", |b| {
        b.iter(|| run(&gateway, LIST, &hundred, &mut cache))
    });
    group.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
