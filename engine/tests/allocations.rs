//! Allocations per request, counted (not timed): the seed query with a warm
//! plan cache stays within its budget. A regression here is a design
//! regression (a copy, a clone, a map per request), whatever the clock says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::plan_cache::PlanCache;
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::upstream::CallOutcome;
use mock_functions::{answer_get, DataSet};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SEED: &str = r#"{"query":"query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }","variables":{"userId":"7"}}"#;

/// The seed query's allocations by phase: start, calls and answers, reply.
fn seed_allocations(
    gateway: &Arc<Gateway>,
    cache: &mut PlanCache,
    answers: &[(String, Vec<u8>)],
) -> [u64; 3] {
    let request = HttpRequest::post_json(SEED.as_bytes().to_vec());
    let mut outcomes: Vec<Option<CallOutcome>> = answers
        .iter()
        .map(|(_, body)| Some(CallOutcome::response(200, body.clone())))
        .collect();
    let before = ALLOCATIONS.load(Relaxed);
    let mut execution = Execution::start_cached(gateway.clone(), &request, 0, Some(cache));
    let started = ALLOCATIONS.load(Relaxed);
    let mut next = 0;
    loop {
        let calls = execution.take_calls(0);
        if calls.is_empty() {
            break;
        }
        for call in calls {
            let outcome = outcomes[next].take().unwrap();
            assert_eq!(call.request.path, answers[next].0);
            next += 1;
            execution.on_call_outcome(call.id, outcome, 0);
        }
    }
    let answered = ALLOCATIONS.load(Relaxed);
    let reply = execution.reply().unwrap();
    let done = ALLOCATIONS.load(Relaxed);
    assert!(reply.body.starts_with(br#"{"data":{"user":{"id":"7""#));
    drop(reply);
    [started - before, answered - started, done - answered]
}

#[test]
fn the_seed_query_with_a_warm_cache_makes_few_allocations() {
    let mut config = graphql_corpus::filter_config(graphql_corpus::Variant::Public, "fn");
    config["limits"] = serde_json::json!({"max_calls": 1000});
    let gateway = Arc::new(Gateway::from_json(&config.to_string()).unwrap());
    let data = DataSet::new(50);
    let answers: Vec<(String, Vec<u8>)> = [
        "/function/user-profile?id=7",
        "/function/user-orders-batch?ids=7",
    ]
    .iter()
    .map(|path| (path.to_string(), answer_get(&data, path).body.into_bytes()))
    .collect();
    let mut cache = PlanCache::new(16);
    seed_allocations(&gateway, &mut cache, &answers); // warms the cache
    let phases = seed_allocations(&gateway, &mut cache, &answers);
    let total: u64 = phases.iter().sum();
    println!("seed query allocations: {total} (start, calls, reply: {phases:?})");
    assert!(
        total <= 40,
        "{total} allocations (start, calls, reply: {phases:?})"
    );
}
