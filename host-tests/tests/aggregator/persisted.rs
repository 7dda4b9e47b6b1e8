//! Persisted queries on the built filter: Apollo's automatic persisted
//! queries round trip through the host's shared data, and trusted
//! documents refuse anything the manifest does not list, without a call.

use crate::hosts::{post, Host, SCHEMA};
use crate::play::{answer_all, assert_idle, reply_json};
use host_tests::{fixtures, Plugin, Request};
use serde_json::{json, Value};

/// A document and its SHA-256 (`printf '%s' … | sha256sum`).
const APQ: &str = r#"query Apq { user(id: "1") { name } }"#;
const APQ_HASH: &str = "d63dab666840f431f2106f6fe15482c7e97a37b7e2419c5794db7eb637cb1981";
/// Its registry slot with the default 1024 slots: the hash's first eight
/// bytes, modulo 1024.
const APQ_KEY: &str = "gqa:pq:49";

const LISTED: &str = r#"query Listed { inventory(sku: "sku-1") { quantity } }"#;
const LISTED_HASH: &str = "ec1d438b876f5afb760fa369608ebcea3585506f717e209d84defc83c054b394";

fn extensions(hash: &str) -> Value {
    json!({"persistedQuery": {"version": 1, "sha256Hash": hash}})
}

/// The demo configuration with these `persisted_queries`.
fn config(host: Host, persisted_queries: Value) -> String {
    let mut config: Value = serde_json::from_str(&host.config()).unwrap();
    config["persisted_queries"] = persisted_queries;
    config.to_string()
}

fn manifest() -> Value {
    json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{"id": LISTED_HASH, "body": LISTED, "name": "Listed", "type": "query"}],
    })
}

/// A GET whose only parameter is `extensions` (what a CDN can cache).
fn get_by_hash(plugin: &Plugin, hash: &str) -> Request {
    let encoded: String = extensions(hash)
        .to_string()
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let path = format!("/graphql?extensions={encoded}");
    let mut request = plugin.request(&[
        (":method", "GET"),
        (":path", path.as_str()),
        (":authority", "localhost"),
    ]);
    request.end();
    request
}

fn code(reply: &Value) -> &Value {
    &reply["errors"][0]["extensions"]["code"]
}

fn counter(plugin: &Plugin, name: &str) -> i64 {
    plugin
        .metric(&format!("graphql_aggregator.persisted.{name}"))
        .unwrap_or_else(|| panic!("no metric persisted.{name}: {:?}", plugin.metrics()))
        .value
}

on_both_hosts! {
    /// The APQ round trip: the hash alone is not found (and calls
    /// nothing), the hash with the document runs and registers it in the
    /// host's shared data, and the hash alone then runs from the registry,
    /// over POST and over GET.
    fn apq_round_trip(host: Host) {
        // On by default on Envoy; on Kong only when asked for (its
        // shared-data zone must be configured).
        let plugin = match host {
            Host::Envoy => host.plugin(),
            Host::Kong => host.plugin_with(&config(host, json!({"automatic": true}))),
        };
        let only_hash = json!({"extensions": extensions(APQ_HASH)}).to_string();

        let miss = post(&plugin, &only_hash);
        assert!(miss.calls().is_empty(), "nothing is called for an unknown hash");
        let reply = miss.expect_reply();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert_eq!(
            reply_json(&miss),
            json!({"errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]})
        );
        assert_eq!(plugin.shared_data(APQ_KEY), None);

        let mut register = post(
            &plugin,
            &json!({"query": APQ, "extensions": extensions(APQ_HASH)}).to_string(),
        );
        assert_eq!(answer_all(&mut register), json!({"data": {"user": {"name": "Alice"}}}));
        let stored = plugin.shared_data(APQ_KEY).expect("registered in the shared data");
        assert_eq!(stored.len(), 32 + APQ.len());
        assert!(stored.ends_with(APQ.as_bytes()));

        let mut hit = post(&plugin, &only_hash);
        assert_eq!(hit.pending_calls().len(), 1);
        assert_eq!(answer_all(&mut hit), json!({"data": {"user": {"name": "Alice"}}}));

        let mut by_get = get_by_hash(&plugin, APQ_HASH);
        assert_eq!(answer_all(&mut by_get), json!({"data": {"user": {"name": "Alice"}}}));

        assert_eq!(counter(&plugin, "misses"), 1);
        assert_eq!(counter(&plugin, "registrations"), 1);
        assert_eq!(counter(&plugin, "hits"), 2);
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// Under `application/graphql-response+json` (Apollo Client 4's first
    /// choice) the not-found reply is a 404, and a hash that is not the
    /// document's is refused without registering anything.
    fn apq_statuses_and_mismatch(host: Host) {
        let plugin = host.plugin_with(&config(host, json!({"automatic": true})));
        let mut request = plugin.request(&[
            (":method", "POST"),
            (":path", "/graphql"),
            (":authority", "localhost"),
            ("content-type", "application/json"),
            ("accept", "application/graphql-response+json,application/json;q=0.9"),
        ]);
        request.body(json!({"extensions": extensions(APQ_HASH)}).to_string().as_bytes());
        let reply = request.expect_reply();
        assert_eq!(reply.status, 404);
        assert_eq!(reply.header("content-type"), Some("application/graphql-response+json"));
        assert!(request.calls().is_empty());

        let wrong = post(
            &plugin,
            &json!({"query": LISTED, "extensions": extensions(APQ_HASH)}).to_string(),
        );
        assert!(wrong.calls().is_empty());
        assert_eq!(code(&reply_json(&wrong)), "PERSISTED_QUERY_HASH_MISMATCH");
        assert_eq!(plugin.shared_data(APQ_KEY), None);
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// Trusted documents: an unlisted document is refused by hash or in
    /// full, and nothing is called for it; the listed one runs by hash
    /// (from the manifest: the shared data is never touched) and in full.
    fn trusted_documents_refuse_unlisted(host: Host) {
        let trusted = config(host, json!({"only_listed": true, "manifest": manifest()}));
        let plugin = host.plugin_with(&trusted);
        assert!(plugin.configured());

        let by_hash = post(&plugin, &json!({"extensions": extensions(APQ_HASH)}).to_string());
        let reply = reply_json(&by_hash);
        assert_eq!(code(&reply), "PERSISTED_QUERY_NOT_IN_LIST");
        assert!(reply["errors"][0]["message"].as_str().unwrap().contains("trusted documents"));
        let in_full = post(&plugin, &json!({"query": APQ}).to_string());
        assert_eq!(code(&reply_json(&in_full)), "QUERY_NOT_IN_SAFELIST");
        let registering = post(
            &plugin,
            &json!({"query": APQ, "extensions": extensions(APQ_HASH)}).to_string(),
        );
        assert_eq!(code(&reply_json(&registering)), "QUERY_NOT_IN_SAFELIST");
        assert!(plugin.calls().is_empty(), "no function was called: {:?}", plugin.calls());
        assert_eq!(plugin.shared_data(APQ_KEY), None);

        let mut listed = post(&plugin, &json!({"extensions": extensions(LISTED_HASH)}).to_string());
        assert_eq!(answer_all(&mut listed), json!({"data": {"inventory": {"quantity": 7}}}));
        let mut listed_in_full = post(&plugin, &json!({"query": LISTED}).to_string());
        assert_eq!(answer_all(&mut listed_in_full), json!({"data": {"inventory": {"quantity": 7}}}));
        assert_eq!(counter(&plugin, "refusals"), 3);
        assert_eq!(counter(&plugin, "hits"), 1);
        assert_idle(&plugin);
    }
}

/// Kong without an shm zone traps on any shared-data call, and a Kong
/// upgraded to this filter may have none: there APQ is off unless the
/// configuration turns it on, so a client's hash alone is answered
/// `PersistedQueryNotSupported` (clients then send documents in full),
/// and documents sent with their hash run unregistered.
#[test]
fn apq_is_off_by_default_on_kong() {
    let plugin = Plugin::new(
        &fixtures::aggregator(),
        Host::Kong.profile().without_shm_kv(),
        Host::Kong.config(),
    );
    assert!(plugin.has_log("automatic persisted queries are off on this host"));
    let only_hash = post(
        &plugin,
        &json!({"extensions": extensions(APQ_HASH)}).to_string(),
    );
    assert_eq!(
        code(&reply_json(&only_hash)),
        "PERSISTED_QUERY_NOT_SUPPORTED"
    );
    let mut full = post(
        &plugin,
        &json!({"query": APQ, "extensions": extensions(APQ_HASH)}).to_string(),
    );
    assert_eq!(
        answer_all(&mut full),
        json!({"data": {"user": {"name": "Alice"}}})
    );
    assert_eq!(plugin.trapped(), None);
    assert_idle(&plugin);
}

/// Kong without an shm zone traps on any shared-data call: trusted
/// documents (registrations off) never make one, so they work there.
#[test]
fn trusted_documents_need_no_shm_zone_on_kong() {
    let trusted = config(
        Host::Kong,
        json!({"only_listed": true, "manifest": manifest()}),
    );
    let plugin = Plugin::new(
        &fixtures::aggregator(),
        Host::Kong.profile().without_shm_kv(),
        &trusted,
    );
    let refused = post(
        &plugin,
        &json!({"extensions": extensions(APQ_HASH)}).to_string(),
    );
    assert_eq!(code(&reply_json(&refused)), "PERSISTED_QUERY_NOT_IN_LIST");
    let mut listed = post(
        &plugin,
        &json!({"extensions": extensions(LISTED_HASH)}).to_string(),
    );
    assert_eq!(
        answer_all(&mut listed),
        json!({"data": {"inventory": {"quantity": 7}}})
    );
    assert_idle(&plugin);
}

/// A manifest whose id is not its body's SHA-256 is a configuration error
/// naming the operation: every request then gets the 500.
#[test]
fn a_bad_manifest_is_a_configuration_error() {
    let mut bad = manifest();
    bad["operations"][0]["id"] = json!(APQ_HASH);
    let plugin = Host::Envoy.plugin_with(&config(Host::Envoy, json!({"manifest": bad})));
    let logged = plugin.logs().iter().any(|l| {
        l.message.contains("invalid configuration")
            && l.message.contains("manifest operation Listed")
            && l.message.contains("SHA-256")
    });
    assert!(logged, "{:?}", plugin.logs());
    let request = post(&plugin, &json!({"query": LISTED}).to_string());
    assert_eq!(request.expect_reply().status, 500);
    assert!(SCHEMA.contains("inventory"));
}
