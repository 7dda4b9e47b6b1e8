//! Engine benchmarks (native): the cost of a request inside the gateway,
//! without the host. `cargo bench -p graphql-aggregator-engine --bench engine`.
//!
//! * `compile/cold`: parse, validate and plan the seed query, no cache;
//! * `compile/cached`: the same with the document in the plan cache;
//! * `execute/seed`: the seed query end to end: plan, two calls, merge, reply;
//! * `execute/list_100`: 100 users and their orders (batched), merged.
//!
//! Before the timings it prints, per request, the heap allocations
//! (alloc + realloc calls) and the peak heap bytes above what was live
//! before the request, counted by a global allocator wrapping `System`:
//!
//! ```text
//! ALLOC seed allocations=N peak_bytes=M
//! ALLOC list_100 allocations=N peak_bytes=M
//! ```
//!
//! `make bench` keeps this output and puts the numbers into `bench/results.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use criterion::{criterion_group, criterion_main, Criterion};
use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::plan_cache::PlanCache;
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::upstream::CallOutcome;
use mock_functions::{answer_get, DataSet};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// `System`, counting allocation calls and live bytes.
struct Counting;

/// Whether allocations are counted now: only while [`heap_cost`] measures,
/// so that the timed runs pay nothing for the counters.
static COUNTING: AtomicBool = AtomicBool::new(false);
/// alloc, alloc_zeroed and realloc calls so far.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and not yet freed.
static CURRENT: AtomicUsize = AtomicUsize::new(0);
/// The highest `CURRENT` since it was last reset.
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    if !COUNTING.load(Relaxed) {
        return;
    }
    let now = CURRENT.fetch_add(bytes, Relaxed).saturating_add(bytes);
    PEAK.fetch_max(now, Relaxed);
}

fn shrank(bytes: usize) {
    if !COUNTING.load(Relaxed) {
        return;
    }
    let _ = CURRENT.fetch_update(Relaxed, Relaxed, |c| Some(c.saturating_sub(bytes)));
}

/// Runs `f` without counting: the harness's own allocations (the request
/// it builds, the answers it copies) are not the engine's.
fn uncounted<T>(f: impl FnOnce() -> T) -> T {
    let was = COUNTING.swap(false, Relaxed);
    let value = f();
    COUNTING.store(was, Relaxed);
    value
}

fn counted() {
    if COUNTING.load(Relaxed) {
        ALLOCATIONS.fetch_add(1, Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are
// updated around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            counted();
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc_zeroed`'s contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            counted();
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            counted();
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What one request costs the heap.
struct HeapCost {
    /// alloc + realloc calls per request.
    allocations: f64,
    /// The most bytes live at once during a request, above what was live
    /// before it (the largest over the runs).
    peak_bytes: usize,
}

/// Runs `request` once to warm it up (plan cache), then `RUNS` times counted.
fn heap_cost(mut request: impl FnMut()) -> HeapCost {
    const RUNS: u32 = 100;
    request();
    // Live bytes are counted from here: frees of older blocks saturate.
    CURRENT.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
    let before = ALLOCATIONS.load(Relaxed);
    let mut peak_bytes = 0;
    for _ in 0..RUNS {
        let base = CURRENT.load(Relaxed);
        PEAK.store(base, Relaxed);
        request();
        peak_bytes = peak_bytes.max(PEAK.load(Relaxed).saturating_sub(base));
    }
    let allocations = ALLOCATIONS.load(Relaxed).saturating_sub(before);
    COUNTING.store(false, Relaxed);
    HeapCost {
        allocations: allocations as f64 / f64::from(RUNS),
        peak_bytes,
    }
}

/// Prints the machine-readable `ALLOC` line, with the targets and the
/// previous engine's figures beside it.
fn report(name: &str, cost: &HeapCost, note: &str) {
    println!(
        "ALLOC {name} allocations={:.0} peak_bytes={} ({note})",
        cost.allocations, cost.peak_bytes
    );
}

const SEED: &str = r#"{"query":"query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }","variables":{"userId":"1"}}"#;
const LIST: &str = r#"{"query":"{ users { id name orders { id amount } } }"}"#;

fn gateway() -> Arc<Gateway> {
    let mut config = graphql_corpus::filter_config(graphql_corpus::Variant::Public, "fn");
    config["limits"] = serde_json::json!({"max_calls": 1000});
    Arc::new(Gateway::from_json(&config.to_string()).unwrap())
}

/// The mock functions' answers (`answer_get`), computed once per path so
/// that the timings and the heap figures are the engine's alone. A request
/// makes a few distinct calls, so a scan finds them. Every call still gets
/// its own copy of the body, as a host hands the filter a fresh buffer.
struct Functions {
    data: DataSet,
    answers: Vec<(String, u16, Vec<u8>)>,
}

impl Functions {
    fn new(users: u32) -> Functions {
        Functions {
            data: DataSet::new(users),
            answers: Vec::new(),
        }
    }

    fn answer(&mut self, path: &str) -> CallOutcome {
        let known = self.answers.iter().position(|(p, _, _)| p == path);
        let at = known.unwrap_or_else(|| {
            uncounted(|| {
                let answer = answer_get(&self.data, path);
                let body = answer.body.into_bytes();
                self.answers.push((path.to_string(), answer.status, body));
            });
            self.answers.len() - 1
        });
        let (_, status, body) = &self.answers[at];
        uncounted(|| CallOutcome::response(*status, body.clone()))
    }
}

/// Runs a request to its reply with the mock functions' answers.
/// The request is built once by the caller (the host hands the engine a
/// request it has read already).
fn run(
    gateway: &Arc<Gateway>,
    request: &HttpRequest,
    functions: &mut Functions,
    cache: &mut PlanCache,
) -> usize {
    let mut execution = Execution::start_cached(gateway.clone(), request, 0, Some(cache));
    loop {
        let calls = execution.take_calls(0);
        if calls.is_empty() {
            break;
        }
        for call in calls {
            let outcome = functions.answer(&call.request.path);
            execution.on_call_outcome(call.id, outcome, 0);
        }
    }
    execution.reply().unwrap().body.len()
}

fn benches(c: &mut Criterion) {
    let gateway = gateway();
    heap_costs(&gateway);
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
    let mut small = Functions::new(50);
    let mut cache = PlanCache::new(16);
    let seed = HttpRequest::post_json(SEED.as_bytes().to_vec());
    group.bench_function("seed", |b| {
        b.iter(|| run(&gateway, &seed, &mut small, &mut cache))
    });
    let mut hundred = Functions::new(100);
    let list = HttpRequest::post_json(LIST.as_bytes().to_vec());
    group.bench_function("list_100", |b| {
        b.iter(|| run(&gateway, &list, &mut hundred, &mut cache))
    });
    group.finish();
}

/// Per-request heap figures of the two `execute` benchmarks.
fn heap_costs(gateway: &Arc<Gateway>) {
    let mut small = Functions::new(50);
    let mut cache = PlanCache::new(16);
    let seed_request = HttpRequest::post_json(SEED.as_bytes().to_vec());
    let seed = heap_cost(|| {
        black_box(run(gateway, &seed_request, &mut small, &mut cache));
    });
    report(
        "seed",
        &seed,
        "warm plan cache; target <= 40 allocations; previous engine 237",
    );
    let mut hundred = Functions::new(100);
    let list_request = HttpRequest::post_json(LIST.as_bytes().to_vec());
    let list = heap_cost(|| {
        black_box(run(gateway, &list_request, &mut hundred, &mut cache));
    });
    report(
        "list_100",
        &list,
        "100 users, orders batched; previous engine ~9,000",
    );
}

criterion_group!(engine, benches);
criterion_main!(engine);
