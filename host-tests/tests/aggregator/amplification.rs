//! Amplification (issue 12): a self-referencing batched field. The mock
//! functions' 30 people are each a friend of all 30 (themselves included),
//! so every level of `Person.friends` multiplies the reply by 30 while the
//! calls stay one batched call per level. Three levels fit the default reply
//! limits (27,931 objects); four and six do not, and must be refused with
//! `LIMIT_EXCEEDED` (`max_reply_objects` or `max_reply_bytes`), never run
//! the VM out of memory or trap. The VM must then serve the seed query.
//!
//! The filter runs metered: at most [`FUEL`] Wasm instructions and
//! [`MAX_MEMORY_BYTES`] of linear memory per VM, so a filter that runs away
//! fails the test in bounded time (a trap: "all fuel consumed", or an
//! allocation failure) instead of hanging it.

use crate::hosts::{body_of, post, Host, SCHEMA, SEED_QUERY, SEED_REPLY};
use crate::play::{assert_idle, reply_json, respond};
use host_tests::{fixtures, Plugin, Request};
use serde_json::{json, Value};

/// The people: ids `1..=30`, everyone everyone's friend.
const PEOPLE: usize = 30;

/// Wasm instructions one VM may run in all (configuration, the amplified
/// request and the seed query): about 10 s of wasmi, 5 times what the
/// engine of commit 7266ccf spent on the whole three-level scenario (2.1
/// billion). That engine ran out of it on four and six levels.
const FUEL: u64 = 10_000_000_000;

/// How far one VM's linear memory may grow. A complete three-level reply is
/// under 1 MB of JSON.
const MAX_MEMORY_BYTES: usize = 512 << 20;

/// Waves of calls answered before giving up (one per level, plus one).
const MAX_WAVES: usize = 16;

/// The schema of `corpus/people.graphql` (upstream `fn`) merged into the
/// demo schema, so the seed query runs on the same VM after the amplified
/// request.
fn people_and_demo_schema() -> String {
    let people = include_str!("../../../corpus/people.graphql");
    let (_, rest) = people
        .split_once("type Query {\n")
        .expect("corpus/people.graphql has a `type Query {` line");
    let (fields, types) = rest
        .split_once("}\n")
        .expect("corpus/people.graphql closes its Query type");
    assert!(
        SCHEMA.contains("type Query {\n"),
        "the demo schema has a `type Query {{` line"
    );
    format!(
        "{}{types}",
        SCHEMA.replacen("type Query {\n", &format!("type Query {{\n{fields}"), 1)
    )
}

/// A fresh metered VM with the demo's upstreams and `fn` (the people's),
/// every limit at its default.
fn people_plugin(host: Host) -> Plugin {
    let upstream =
        json!({"target": host.target(), "authority": "gateway", "path_prefix": "/function"});
    let config = json!({
        "schema": people_and_demo_schema(),
        "upstreams": {"openfaas": upstream, "warehouse": upstream, "fn": upstream},
    })
    .to_string();
    let plugin = Plugin::builder(&fixtures::aggregator_metered(), host.profile())
        .configuration(config)
        .fuel(FUEL)
        .max_memory_bytes(MAX_MEMORY_BYTES)
        .start()
        .unwrap_or_else(|e| panic!("host-tests: cannot start the filter: {e}"));
    assert!(plugin.configured(), "{}", plugin.report());
    plugin
}

/// `{ person(id: "1") { friends { ... { id } } } }`, `levels` deep.
fn friends_query(levels: usize) -> String {
    format!(
        "{{ person(id: \"1\") {{ {}id{} }} }}",
        "friends { ".repeat(levels),
        " }".repeat(levels)
    )
}

/// Answers the request's calls wave by wave until it replies; returns the
/// number of calls. At most [`MAX_WAVES`] waves.
fn answer_bounded(request: &mut Request) -> usize {
    let mut calls = 0;
    for _ in 0..MAX_WAVES {
        if request.reply().is_some() {
            return calls;
        }
        let pending = request.pending_calls();
        assert!(
            !pending.is_empty(),
            "the filter neither replied nor has calls in flight"
        );
        for call in pending {
            calls += 1;
            respond(request, &call);
        }
    }
    assert!(
        request.reply().is_some(),
        "no reply after {MAX_WAVES} waves of calls ({calls} calls)"
    );
    calls
}

/// Checks that `value` is `levels` levels of complete friend lists (every
/// person, in id order) and returns the number of leaves.
fn count_complete(value: &Value, levels: usize, at: &str) -> usize {
    if levels == 0 {
        assert!(
            value["id"].is_string(),
            "{at}: a leaf without an id: {value}"
        );
        return 1;
    }
    let friends = value["friends"]
        .as_array()
        .unwrap_or_else(|| panic!("{at}: friends is not a list: {value}"));
    assert_eq!(friends.len(), PEOPLE, "{at}: friends");
    friends
        .iter()
        .enumerate()
        .map(|(i, friend)| {
            let at = format!("{at}.friends[{i}]");
            if levels == 1 {
                assert_eq!(friend, &json!({"id": (i + 1).to_string()}), "{at}");
            }
            count_complete(friend, levels - 1, &at)
        })
        .sum()
}

/// What an amplified reply must be: complete without errors, or refused as
/// a whole with `LIMIT_EXCEEDED` on a reply limit. Returns a description.
fn judge(reply: &Value, levels: usize) -> String {
    match reply.get("errors") {
        None => {
            let person = &reply["data"]["person"];
            let leaves = count_complete(person, levels, "person");
            assert_eq!(leaves, PEOPLE.pow(levels as u32));
            format!("complete, {leaves} ids at the bottom")
        }
        Some(errors) => {
            let error = &errors[0];
            assert_eq!(
                error["extensions"]["code"],
                "LIMIT_EXCEEDED",
                "an amplified reply that is not complete must be refused on a reply limit: {}",
                truncated(reply)
            );
            let limit = error["extensions"]["limit"].as_str().unwrap_or_default();
            assert!(
                ["max_reply_objects", "max_reply_bytes"].contains(&limit),
                "refused on {limit:?}, not on a reply limit: {}",
                truncated(reply)
            );
            assert!(
                reply.get("data").is_none(),
                "a LIMIT_EXCEEDED reply has no data: {}",
                truncated(reply)
            );
            format!("refused on {limit}: {}", error["message"])
        }
    }
}

fn truncated(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(2_000) {
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
        None => text,
    }
}

/// The amplified request on a fresh VM, then the seed query on the same VM.
fn amplified(host: Host, levels: usize, must_complete: bool) {
    let plugin = people_plugin(host);
    let before = plugin.memory_size_bytes();
    println!("{host:?}: {levels} levels of friends: linear memory {before} bytes before");
    let mut request = post(&plugin, &body_of(&friends_query(levels)));
    let calls = answer_bounded(&mut request);
    let reply = reply_json(&request);
    let after = plugin.memory_size_bytes();
    let fuel = FUEL - plugin.fuel_left().unwrap_or_default();
    let outcome = judge(&reply, levels);
    println!(
        "{host:?}: {levels} levels of friends: {outcome}; {calls} calls; linear memory \
         {before} bytes before, {after} after; {fuel} Wasm instructions so far"
    );
    if must_complete {
        assert!(
            reply.get("errors").is_none(),
            "{levels} levels fit the default limits: {}",
            truncated(&reply)
        );
    }
    drop(request);

    let mut seed = post(&plugin, SEED_QUERY);
    answer_bounded(&mut seed);
    let seed_reply = seed.expect_reply();
    assert_eq!(
        String::from_utf8_lossy(&seed_reply.body),
        SEED_REPLY,
        "the seed query after the amplified request"
    );
    reply_json(&seed);
    drop(seed);
    println!(
        "{host:?}: after the seed query, linear memory {} bytes",
        plugin.memory_size_bytes()
    );
    assert_idle(&plugin);
}

on_both_hosts! {
    /// Three levels (27,000 ids at the bottom, 27,931 objects) fit the
    /// default reply limits: the whole reply, exactly.
    fn friends_three_levels_complete(host: Host) {
        amplified(host, 3, true);
    }
}

on_both_hosts! {
    /// Four levels (810,000 ids) exceed the default reply limits: refused
    /// with LIMIT_EXCEEDED, the VM intact.
    fn friends_four_levels_bounded(host: Host) {
        amplified(host, 4, false);
    }
}

on_both_hosts! {
    /// Six levels (729,000,000 ids): refused like four, as cheaply.
    fn friends_six_levels_bounded(host: Host) {
        amplified(host, 6, false);
    }
}

#[test]
fn the_people_schema_merges_into_the_demo_schema() {
    let schema = people_and_demo_schema();
    assert!(schema.starts_with("\ntype Query {\n  person(id: ID!): Person @http("));
    assert!(schema.contains("  user(id: ID!): User @http("));
    assert!(schema.contains("type Person {\n"));
    assert_eq!(schema.matches("type Query").count(), 1);
    assert_eq!(
        friends_query(2),
        r#"{ person(id: "1") { friends { friends { id } } } }"#
    );
}
