//! The plan cache's memory, measured: a counting allocator follows the
//! bytes live, and what a cached document (with its plan) really holds is
//! compared with what the cache estimates for it. The estimate must never
//! be below the real bytes, for documents of every shape: small, 64 KB
//! wide, deep fragments, long argument lists, a long string.
//!
//! `cargo test --release -p graphql-aggregator-engine --test
//! plan_cache_memory -- --nocapture` prints the measures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_precision_loss
)]

use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::limits::Limits;
use graphql_aggregator_engine::plan_cache::{PlanCache, DEFAULT_MAX_BYTES};
use graphql_aggregator_engine::request::HttpRequest;
use serde_json::{json, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::sync::Arc;

struct Counting;

/// Bytes allocated and not freed yet.
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Allocations not freed yet.
static BLOCKS: AtomicIsize = AtomicIsize::new(0);

/// What an allocator takes per block besides the bytes asked for, at most
/// (a header, and the rounding up to its alignment: dlmalloc, which
/// `wasm32-wasip1` uses, takes 4 to 8 bytes and rounds to 8).
const BLOCK_OVERHEAD: usize = 16;

fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

// SAFETY: forwards to the system allocator, counting bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(signed(layout.size()), Relaxed);
        BLOCKS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(signed(layout.size()), Relaxed);
        BLOCKS.fetch_sub(1, Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(signed(new_size) - signed(layout.size()), Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The corpus configuration, with limits raised so that every shape is
/// planned (an operator may raise them too).
fn gateway() -> Arc<Gateway> {
    let mut config = graphql_corpus::filter_config(graphql_corpus::Variant::Public, "fn");
    config["limits"] = json!({
        "max_calls": 100_000, "max_aliases": 100_000, "max_query_tokens": 100_000,
        "max_root_fields": 100_000, "max_depth": 64, "max_plan_cache_bytes": 1_u64 << 30,
    });
    Arc::new(Gateway::from_json(&config.to_string()).unwrap())
}

/// What caching `body`'s document and plan really holds (the bytes of its
/// blocks, and [`BLOCK_OVERHEAD`] per block), and what the cache
/// estimates.
fn measure(gateway: &Arc<Gateway>, body: &Value) -> (usize, usize) {
    let request = HttpRequest::post_json(body.to_string().into_bytes());
    let mut cache = PlanCache::new(16);
    // The cache's table made, and everything a first request of this
    // document allocates once per thread, before counting.
    let warm = HttpRequest::post_json(br#"{"query": "{ __typename }"}"#.to_vec());
    drop(Execution::start_cached(
        gateway.clone(),
        &warm,
        0,
        Some(&mut cache),
    ));
    let mut uncached = Execution::start_cached(gateway.clone(), &request, 0, None);
    if let Some(reply) = uncached.reply() {
        panic!("refused: {}", String::from_utf8_lossy(&reply.body));
    }
    drop(uncached);
    let (len, estimated) = (cache.len(), cache.bytes());
    let (before, blocks) = (LIVE.load(Relaxed), BLOCKS.load(Relaxed));
    drop(Execution::start_cached(
        gateway.clone(),
        &request,
        0,
        Some(&mut cache),
    ));
    let blocks = usize::try_from(BLOCKS.load(Relaxed) - blocks).unwrap_or(0);
    let held = LIVE.load(Relaxed) - before + signed(blocks * BLOCK_OVERHEAD);
    assert_eq!(cache.len(), len + 1, "cached");
    (
        usize::try_from(held).unwrap_or(0),
        cache.bytes() - estimated,
    )
}

/// `text` repeated until the document is about `size` bytes long.
fn repeat(text: &str, size: usize) -> String {
    text.repeat(size / text.len())
}

/// `part(0)`, `part(1)`… while they fit in `size` bytes.
fn until(size: usize, part: impl Fn(usize) -> String) -> String {
    let mut text = String::new();
    for i in 0.. {
        let next = part(i);
        if text.len() + next.len() > size {
            break;
        }
        text.push_str(&next);
    }
    text
}

#[test]
fn the_estimate_is_never_below_the_bytes_held() {
    let before = LIVE.load(Relaxed);
    let gateway = gateway();
    println!(
        "the corpus configuration ({} bytes of SDL) holds {} bytes",
        graphql_corpus::SCHEMA.len(),
        LIVE.load(Relaxed) - before
    );
    let kb64 = 64 * 1024 - 100;
    let mut fragments = String::from(r#"{ user(id: "1") { ...F0 } }"#);
    for i in 0..60 {
        fragments.push_str(&format!(
            " fragment F{i} on User {{ id name email ordersEach {{ id userId }} ...F{} }}",
            i + 1
        ));
    }
    fragments.push_str(" fragment F60 on User { id }");
    let wide_roots = until(kb64 - 20, |i| format!("u{i}: user(id: \"{i}\") {{ id }} "));
    let wide_variables = until(kb64 - 40, |i| format!("u{i}: user(id: $id) {{ id }} "));
    let wide_aliases = until(kb64 - 30, |i| format!("a{i}: name "));
    let spreads = until(kb64 / 6, |i| format!("...F{i} "));
    let count = spreads.matches("...").count();
    let spread_fragments: String = (0..count)
        .map(|i| format!("fragment F{i} on User {{ f{i}: name }}\n"))
        .collect();
    let union = until(kb64 - 40, |i| {
        format!("... on User {{ u{i}: name }} ... on Inventory {{ s{i}: sku }} ")
    });
    let shapes: Vec<(&str, Value)> = vec![
        (
            "the seed query",
            json!({"query": "query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }",
                   "variables": {"userId": "1"}}),
        ),
        (
            "64 KB wide: aliases",
            json!({"query": format!(r#"{{ user(id: "1") {{ {wide_aliases} }} }}"#)}),
        ),
        (
            "64 KB wide: root fields with arguments",
            json!({"query": format!("{{ {wide_roots} }}")}),
        ),
        (
            "64 KB wide: root fields with variables",
            json!({"query": format!("query($id: ID!) {{ {wide_variables} }}"),
                   "variables": {"id": "1"}}),
        ),
        (
            "64 KB of fragment spreads",
            json!({"query": format!(r#"{{ user(id: "1") {{ {spreads} }} }} {spread_fragments}"#)}),
        ),
        ("deep fragments", json!({"query": fragments})),
        (
            "64 KB of one leaf repeated",
            json!({"query": format!("{{ users {{ {} }} }}", repeat("id ", kb64))}),
        ),
        (
            "64 KB of one object repeated",
            json!({"query": format!("{{ users {{ {} }} }}", repeat("orders{id}", kb64))}),
        ),
        (
            "64 KB of one inline fragment repeated",
            json!({"query": format!("{{ users {{ {} }} }}", repeat("...{id}", kb64))}),
        ),
        (
            "64 KB of nested objects repeated",
            json!({"query": format!("{{ users {{ {} }} }}", repeat("orders{id}ordersEach{id}", kb64))}),
        ),
        (
            "64 KB list argument (strings)",
            json!({"query": format!("{{ echo(tags: [{}]) {{ body }} }}", repeat("\"\" ", kb64))}),
        ),
        (
            "64 KB list argument (enum values)",
            json!({"query": format!("{{ echo(statuses: [{}]) {{ body }} }}", repeat("PAID ", kb64))}),
        ),
        (
            "64 KB variable default",
            json!({"query": format!("query($t: [String] = [{}]) {{ echo(tags: $t) {{ body }} }}", repeat("\"\" ", kb64))}),
        ),
        (
            "64 KB of conditions",
            json!({"query": format!("query($v: Boolean = true) {{ users {{ {} }} }}", until(kb64 - 60, |i| format!("a{i}: id @include(if: $v) "))),
                   "variables": {"v": false}}),
        ),
        (
            "15,000 tokens of aliases",
            json!({"query": format!(r#"{{ user(id: "1") {{ {} }} }}"#, until(15_000 / 5 * 10, |i| format!("a{i}: name ")).split(' ').take(2990 * 2).collect::<Vec<_>>().join(" "))}),
        ),
        (
            "15,000 tokens of list items",
            json!({"query": format!("{{ echo(tags: [{}]) {{ body }} }}", "\"\" ".repeat(7490))}),
        ),
        (
            "64 KB string argument",
            json!({"query": format!("{{ echoQuery(q: \"{}\") {{ body }} }}", "x".repeat(kb64))}),
        ),
        (
            "64 KB of inline fragments on a union",
            json!({"query": format!("{{ search(text: \"a\") {{ {union} }} }}")}),
        ),
    ];
    let mut worst: f64 = 0.0;
    for (name, body) in &shapes {
        let text = body["query"].as_str().unwrap().len();
        let (held, estimated) = measure(&gateway, body);
        let ratio = estimated as f64 / held as f64;
        println!(
            "{name}: {text} bytes of text, {held} bytes held ({:.1} per byte), {estimated} estimated ({ratio:.2}x)",
            held as f64 / text as f64
        );
        assert!(
            estimated >= held,
            "{name}: estimated {estimated} bytes, below the {held} held"
        );
        worst = worst.max(held as f64 / text as f64);
        // Within the default token limit, a document is cached under the
        // default bound (a quarter of it at most).
        let mut parser = apollo_compiler::parser::Parser::new();
        let _ = parser.parse_ast(body["query"].as_str().unwrap(), "q.graphql");
        if parser.tokens_reached() <= Limits::default().max_query_tokens {
            assert!(
                estimated <= DEFAULT_MAX_BYTES / 4,
                "{name}: {estimated} bytes, not cached under the default bound"
            );
        }
    }
    println!("at most {worst:.1} bytes held per byte of text");
}
