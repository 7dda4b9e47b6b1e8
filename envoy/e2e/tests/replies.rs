//! Issue 12 through real Envoy (1.40, V8): replies stay bounded and
//! coercion errors name the field, never the function's data.
//!
//! - `amplification::*`: a self-referencing batched field. The mock
//!   functions' 30 people are each a friend of all 30 (themselves included),
//!   so `{ person(id: "1") { friends { ... } } }` grows 30 times per level
//!   while the calls stay one batched call per level. Three, four and six
//!   levels must each be answered within 100 ms (from sending the request to
//!   having read the whole body, after one warm-up of the same request),
//!   either complete without errors or refused as a whole with
//!   `LIMIT_EXCEEDED` on `max_reply_objects` / `max_reply_bytes` (defaults
//!   100,000 objects and list items, 4 MiB). Three levels (27,931 objects)
//!   fit, so their reply must be complete. Then the seed query on the demo
//!   listener (the same Wasm VM) is answered exactly, and Envoy's log shows
//!   no trap.
//! - `coercion::*`: a leaf the function answered with a value that is not an
//!   `Int` is a field error that names `Quirk.count`, `Int` and the upstream,
//!   and the reply carries none of the function's data (which a corpus case
//!   cannot assert). Numeric IDs and a bad item in `[[Cell]]` are corpus
//!   cases (`corpus/cases/coercion.yaml`).
//!
//! A custom harness (libtest-mimic): ONE sandbox of its own (the mock
//! functions and one Envoy, `envoy_e2e::solo`), started on the first test
//! that needs it and stopped by PID after the last one; tests run serially,
//! in the order listed, on the main thread. Every request has a bounded
//! timeout, so a hung or trapping filter fails a test instead of hanging it.
//!
//! Run: `cargo test -p envoy-e2e --test replies` (after `make setup wasm
//! functions`); `-- amplification` runs a subset.

use std::process::ExitCode;
use std::time::Duration;

use envoy_e2e::config::{self, DEMO_CLUSTER, DEMO_LISTENER};
use envoy_e2e::http::{Client, Reply};
use envoy_e2e::paths::Paths;
use envoy_e2e::solo::Solo;
use envoy_e2e::trials::{Harness, Test};
use graphql_corpus::{friends_query, people_filter_config, Variant};
use serde_json::{json, Value};

/// The people's listener (`corpus/people.graphql`).
const PEOPLE_LISTENER: &str = "graphql-people";
/// The corpus schema's listener.
const CORPUS_LISTENER: &str = "graphql-corpus";

/// What an amplified request may take, warm.
const BUDGET: Duration = Duration::from_millis(100);
/// The client's bound on any one request (a hung filter fails the test).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The people: ids `1..=30`.
const PEOPLE: usize = 30;

/// The demo's seed request and its exact answer (as in `tests/e2e.rs`).
const SEED_REQUEST: &str = r#"{"query":"query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }","variables":{"userId":"1"}}"#;
const SEED_ANSWER: &str = r#"{"data":{"user":{"id":"1","name":"Alice","email":"alice@example.com","orders":[{"id":"order-101","amount":99.99},{"id":"order-102","amount":19.5}]}}}"#;

/// What in Envoy's log means the Wasm VM trapped or a callback failed.
const TRAP_MARKERS: [&str; 4] = ["RuntimeError", "unreachable", "Uncaught", "failed"];

// ---------------------------------------------------------------------------
// Harness

/// The sandbox: the demo's, the people's and the corpus schema's
/// listeners on one Envoy.
fn start(paths: &Paths) -> Result<Solo, String> {
    let demo = config::load_yaml(&paths.demo_config)?;
    let listeners = [
        (DEMO_LISTENER, config::demo_filter_config(&demo)?),
        (PEOPLE_LISTENER, people_filter_config(DEMO_CLUSTER)),
        (
            CORPUS_LISTENER,
            graphql_corpus::filter_config(Variant::Public, DEMO_CLUSTER),
        ),
    ];
    Solo::start(paths, "replies", &listeners)
}

/// In this order: the coercion checks first, so that a trap in the
/// amplification tests (which breaks the shared VM) cannot spoil them.
const TESTS: &[(&str, Test<Solo>)] = &[
    (
        "coercion::an_object_for_an_int_names_the_field_and_leaks_nothing",
        an_object_for_an_int_leaks_nothing,
    ),
    (
        "coercion::text_for_an_int_names_the_field_and_leaks_nothing",
        text_for_an_int_leaks_nothing,
    ),
    (
        "amplification::friends_3_levels_complete_within_100ms",
        friends_3_levels,
    ),
    (
        "amplification::friends_4_levels_within_100ms",
        friends_4_levels,
    ),
    (
        "amplification::friends_6_levels_within_100ms",
        friends_6_levels,
    ),
];

fn main() -> ExitCode {
    // Serial, on one shared VM (timings too).
    Harness {
        name: "the replies sandbox",
        start,
        describe: |s| {
            format!(
                "Envoy admin {}, listeners {:?}, functions {}; log {}",
                s.admin,
                s.ports,
                s.functions,
                s.envoy_log.display()
            )
        },
        each: |solo, test| test(solo),
    }
    .run(TESTS)
}

// ---------------------------------------------------------------------------
// Helpers

fn client() -> Client {
    Client::new(REQUEST_TIMEOUT)
}

fn graphql_request(query: &str) -> String {
    json!({ "query": query }).to_string()
}

fn post(solo: &Solo, client: &Client, listener: &str, body: &str) -> Result<Reply, String> {
    let url = solo.graphql_url(listener);
    client.post_json(&url, body).map_err(|e| {
        format!(
            "POST {url} {body}: no complete reply within {REQUEST_TIMEOUT:?} ({e}){}",
            envoy_state(solo)
        )
    })
}

fn envoy_state(solo: &Solo) -> String {
    match solo.check_envoy_running() {
        Ok(()) => String::new(),
        Err(e) => format!("; {e}"),
    }
}

fn json_of(reply: &Reply) -> Result<Value, String> {
    serde_json::from_str(&reply.body).map_err(|e| {
        format!(
            "not JSON ({e}): status {}, body {}",
            reply.status,
            truncated(&reply.body)
        )
    })
}

fn truncated(text: &str) -> String {
    match text.char_indices().nth(2_000) {
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
        None => text.to_string(),
    }
}

/// Envoy's log lines written since `offset` that show a trap or a failed
/// Wasm callback.
fn trap_lines(solo: &Solo, offset: usize) -> Vec<String> {
    let text = solo.envoy_log_text();
    text.get(offset..)
        .unwrap_or_default()
        .lines()
        .filter(|line| TRAP_MARKERS.iter().any(|m| line.contains(m)))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// Coercion

/// `quirk(kind)` answered with a `count` that is not an Int: one field error
/// naming `Quirk.count`, `Int` and upstream `fn`, with code and upstream in
/// its extensions, and none of `leaks` anywhere in the reply.
fn uncoercible_count(solo: &Solo, kind: &str, leaks: &[&str]) -> Result<(), String> {
    let query = format!(r#"{{ quirk(kind: "{kind}") {{ count }} }}"#);
    let reply = post(solo, &client(), CORPUS_LISTENER, &graphql_request(&query))?;
    let body = json_of(&reply)?;
    let mut problems = Vec::new();
    if reply.status != 200 {
        problems.push(format!("status {}, expected 200", reply.status));
    }
    for leak in leaks {
        if reply.body.contains(leak) {
            problems.push(format!("the reply contains the function's data {leak:?}"));
        }
    }
    if body.get("data") != Some(&json!({"quirk": {"count": null}})) {
        problems.push(format!(
            "data {}, expected {{\"quirk\":{{\"count\":null}}}}",
            body.get("data").unwrap_or(&Value::Null)
        ));
    }
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    if errors.len() != 1 {
        problems.push(format!("{} errors, expected 1", errors.len()));
    }
    if let Some(error) = errors.first() {
        let message = error["message"].as_str().unwrap_or_default();
        let expected = "function fn answered a value for Quirk.count that is not a valid Int";
        if !message.contains(expected) {
            problems.push(format!("message {message:?}, expected {expected:?}"));
        }
        if error["path"] != json!(["quirk", "count"]) {
            problems.push(format!("path {}, expected [quirk, count]", error["path"]));
        }
        if error["extensions"]["code"] != "UPSTREAM_BAD_RESPONSE" {
            problems.push(format!(
                "extensions.code {}, expected UPSTREAM_BAD_RESPONSE",
                error["extensions"]["code"]
            ));
        }
        if error["extensions"]["upstream"] != "fn" {
            problems.push(format!(
                "extensions.upstream {}, expected \"fn\"",
                error["extensions"]["upstream"]
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{query}:\n  - {}\n  reply: {}",
            problems.join("\n  - "),
            reply.body
        ))
    }
}

/// `{"count": {"secret": "hunter2"}}` where `count: Int`.
fn an_object_for_an_int_leaks_nothing(solo: &Solo) -> Result<(), String> {
    uncoercible_count(solo, "count-object", &["hunter2", "secret"])
}

/// `{"count": "abc"}` where `count: Int`.
fn text_for_an_int_leaks_nothing(solo: &Solo) -> Result<(), String> {
    uncoercible_count(solo, "count-text", &["abc"])
}

// ---------------------------------------------------------------------------
// Amplification

/// Checks that `value` is `levels` levels of complete friend lists (every
/// person, in id order) and returns the number of leaves.
fn count_complete(value: &Value, levels: usize, at: &str) -> Result<usize, String> {
    if levels == 0 {
        return match value["id"].as_str() {
            Some(_) => Ok(1),
            None => Err(format!("{at}: a leaf without an id: {value}")),
        };
    }
    let friends = value["friends"].as_array().ok_or_else(|| {
        format!(
            "{at}.friends is not a list: {}",
            truncated(&value.to_string())
        )
    })?;
    if friends.len() != PEOPLE {
        return Err(format!(
            "{at}.friends has {} people, expected {PEOPLE}",
            friends.len()
        ));
    }
    let mut leaves = 0;
    for (i, friend) in friends.iter().enumerate() {
        let at = format!("{at}.friends[{i}]");
        if levels == 1 && *friend != json!({"id": (i + 1).to_string()}) {
            return Err(format!("{at} is {friend}, expected id {}", i + 1));
        }
        leaves += count_complete(friend, levels - 1, &at)?;
    }
    Ok(leaves)
}

/// An amplified reply: complete without errors (`Ok("complete...")`), or
/// refused as a whole on a reply limit (`Ok("refused...")`).
fn judge(reply: &Reply, levels: usize) -> Result<String, String> {
    let body = json_of(reply)?;
    match body.get("errors") {
        None => {
            if reply.status != 200 {
                return Err(format!("status {} without errors", reply.status));
            }
            let leaves = count_complete(&body["data"]["person"], levels, "data.person")?;
            let want = PEOPLE.pow(u32::try_from(levels).unwrap_or(u32::MAX));
            if leaves != want {
                return Err(format!("{leaves} ids at the bottom, expected {want}"));
            }
            Ok(format!("complete, {leaves} ids at the bottom"))
        }
        Some(errors) => {
            let error = &errors[0];
            let limit = error["extensions"]["limit"].as_str().unwrap_or_default();
            if error["extensions"]["code"] != "LIMIT_EXCEEDED"
                || !["max_reply_objects", "max_reply_bytes"].contains(&limit)
            {
                return Err(format!(
                    "errors[0] is not LIMIT_EXCEEDED on max_reply_objects or max_reply_bytes: \
                     status {}, {}",
                    reply.status,
                    truncated(&reply.body)
                ));
            }
            if body.get("data").is_some() {
                return Err(format!(
                    "a LIMIT_EXCEEDED reply has no data: {}",
                    truncated(&reply.body)
                ));
            }
            Ok(format!(
                "refused on {limit} (status {}): {}",
                reply.status, error["message"]
            ))
        }
    }
}

/// `levels` levels of friends: a warm-up, the measured request, then the
/// seed query on the demo listener and Envoy's log.
fn amplified(solo: &Solo, levels: usize, must_complete: bool) -> Result<(), String> {
    let log_offset = solo.envoy_log_text().len();
    let client = client();
    let body = graphql_request(&friends_query(levels));
    let mut problems = Vec::new();

    // Warm-up: the plan cache and the connections.
    if let Err(e) = post(solo, &client, PEOPLE_LISTENER, &body) {
        problems.push(format!("warm-up: {e}"));
    }
    match post(solo, &client, PEOPLE_LISTENER, &body) {
        Err(e) => problems.push(e),
        Ok(reply) => {
            let outcome = judge(&reply, levels);
            eprintln!(
                "envoy-e2e (replies): {levels} levels of friends: {} bytes in {:?}: {}",
                reply.body.len(),
                reply.elapsed,
                match &outcome {
                    Ok(o) => o.clone(),
                    Err(e) => format!("WRONG: {e}"),
                }
            );
            if reply.elapsed > BUDGET {
                problems.push(format!(
                    "answered in {:?}, more than {BUDGET:?} ({} bytes)",
                    reply.elapsed,
                    reply.body.len()
                ));
            }
            match outcome {
                Err(e) => problems.push(e),
                Ok(o) if must_complete && !o.starts_with("complete") => {
                    problems.push(format!("{levels} levels fit the default limits, but: {o}"))
                }
                Ok(_) => {}
            }
        }
    }

    // A normal request right after, on the same VM.
    match post(solo, &client, DEMO_LISTENER, SEED_REQUEST) {
        Err(e) => problems.push(format!("the seed query after: {e}")),
        Ok(reply) if reply.status != 200 || reply.body != SEED_ANSWER => problems.push(format!(
            "the seed query after: status {}, body {}",
            reply.status,
            truncated(&reply.body)
        )),
        Ok(_) => {}
    }

    let traps = trap_lines(solo, log_offset);
    if !traps.is_empty() {
        problems.push(format!(
            "Envoy's log shows a trap or a failed callback:\n    {}",
            traps.join("\n    ")
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{levels} levels of friends ({}):\n  - {}",
            friends_query(levels),
            problems.join("\n  - ")
        ))
    }
}

fn friends_3_levels(solo: &Solo) -> Result<(), String> {
    amplified(solo, 3, true)
}

fn friends_4_levels(solo: &Solo) -> Result<(), String> {
    amplified(solo, 4, false)
}

fn friends_6_levels(solo: &Solo) -> Result<(), String> {
    amplified(solo, 6, false)
}
