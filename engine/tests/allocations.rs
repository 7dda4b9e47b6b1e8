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

const LIST_100: &str = r#"{"query":"{ users { id name orders { id amount } } }"}"#;

/// The calls a request made, with the mock functions' answers, recorded by
/// an uncounted run so that the counted one hands out ready answers.
fn record_answers(
    gateway: &Arc<Gateway>,
    cache: &mut PlanCache,
    body: &str,
    data: &DataSet,
) -> Vec<(String, Vec<u8>)> {
    let request = HttpRequest::post_json(body.as_bytes().to_vec());
    let mut execution = Execution::start_cached(gateway.clone(), &request, 0, Some(cache));
    let mut answers = Vec::new();
    loop {
        let calls = execution.take_calls(0);
        if calls.is_empty() {
            break;
        }
        for call in calls {
            let answer = answer_get(data, &call.request.path);
            answers.push((call.request.path.clone(), answer.body.clone().into_bytes()));
            execution.on_call_outcome(
                call.id,
                CallOutcome::response(answer.status, answer.body.into_bytes()),
                0,
            );
        }
    }
    answers
}

/// A request's allocations by phase: start, calls and answers, reply.
fn allocations(
    gateway: &Arc<Gateway>,
    cache: &mut PlanCache,
    body: &str,
    answers: &[(String, Vec<u8>)],
    reply_starts: &[u8],
) -> [u64; 3] {
    let request = HttpRequest::post_json(body.as_bytes().to_vec());
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
    assert!(
        reply.body.starts_with(reply_starts),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    drop(reply);
    [started - before, answered - started, done - answered]
}

/// The counter is global: the tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn gateway() -> Arc<Gateway> {
    let mut config = graphql_corpus::filter_config(graphql_corpus::Variant::Public, "fn");
    config["limits"] = serde_json::json!({"max_calls": 1000});
    Arc::new(Gateway::from_json(&config.to_string()).unwrap())
}

#[test]
fn the_seed_query_with_a_warm_cache_makes_few_allocations() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let gateway = gateway();
    let mut cache = PlanCache::new(16);
    let answers = record_answers(&gateway, &mut cache, SEED, &DataSet::new(50));
    assert_eq!(answers.len(), 2);
    let reply_starts = br#"{"data":{"user":{"id":"7""#;
    allocations(&gateway, &mut cache, SEED, &answers, reply_starts); // warms the spares
    let phases = allocations(&gateway, &mut cache, SEED, &answers, reply_starts);
    let total: u64 = phases.iter().sum();
    println!("seed query allocations: {total} (start, calls, reply: {phases:?})");
    assert!(
        total <= 40,
        "{total} allocations (start, calls, reply: {phases:?})"
    );
}

/// Parents of a batched field share one rendered request: allocations do
/// not grow with the list (100 users and their orders, batched).
#[test]
fn a_batched_list_makes_allocations_per_call_not_per_parent() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let gateway = gateway();
    let mut cache = PlanCache::new(16);
    let answers = record_answers(&gateway, &mut cache, LIST_100, &DataSet::new(100));
    assert_eq!(answers.len(), 2, "users, then one batch of orders");
    let reply_starts = br#"{"data":{"users":[{"id":"1""#;
    allocations(&gateway, &mut cache, LIST_100, &answers, reply_starts);
    let phases = allocations(&gateway, &mut cache, LIST_100, &answers, reply_starts);
    let total: u64 = phases.iter().sum();
    println!("100 users with orders, allocations: {total} (start, calls, reply: {phases:?})");
    assert!(
        total <= 60,
        "{total} allocations for 100 parents (start, calls, reply: {phases:?})"
    );
}
