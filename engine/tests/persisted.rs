//! Persisted queries through the whole engine: Apollo's automatic
//! persisted queries (the not-found round trip, registration in the shared
//! store, hash mismatches, registrations off) and trusted documents (only
//! the manifest's operations run, and a refused request calls nothing).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::persisted::{self, MemoryStore, SharedStore, Source};
use graphql_aggregator_engine::plan_cache::PlanCache;
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::response::Reply;
use graphql_aggregator_engine::upstream::CallOutcome;
use serde_json::{json, Value};
use std::sync::Arc;

const SCHEMA: &str = r#"type Query { hello(name: String): String @http(upstream: "greeter", path: "/hello?name={args.name}") }
type Mutation { poke: Int @http(upstream: "greeter", method: "POST", path: "/poke") }"#;

const QUERY: &str = r#"query Hello { hello(name: "ann") }"#;
const LISTED: &str = r#"query Listed { hello(name: "listed") }"#;

fn gateway(persisted_queries: Option<Value>) -> Arc<Gateway> {
    let mut config = json!({
        "schema": SCHEMA,
        "upstreams": {"greeter": {"target": "greeter"}},
    });
    if let Some(settings) = persisted_queries {
        config["persisted_queries"] = settings;
    }
    Arc::new(Gateway::from_json(&config.to_string()).unwrap())
}

fn manifest() -> Value {
    json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{"id": hash(LISTED), "body": LISTED, "name": "Listed", "type": "query"}],
    })
}

fn hash(document: &str) -> String {
    persisted::hex(&persisted::sha256(document))
}

fn extensions(hash: &str) -> Value {
    json!({"persistedQuery": {"version": 1, "sha256Hash": hash}})
}

/// A value as a URL parameter.
fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn post(body: Value) -> HttpRequest {
    HttpRequest::post_json(body.to_string().into_bytes())
}

fn accept(mut request: HttpRequest, media: &str) -> HttpRequest {
    request.headers.push(("accept".into(), media.into()));
    request
}

/// Starts a request with the store; answers every call with `"hi"`.
fn run(
    gateway: &Arc<Gateway>,
    request: &HttpRequest,
    cache: Option<&mut PlanCache>,
    store: &mut MemoryStore,
) -> (Reply, Vec<String>, persisted::Report) {
    let mut execution = Execution::start_with_store(
        gateway.clone(),
        request,
        0,
        cache,
        Some(store as &mut dyn SharedStore),
    );
    let report = execution.persisted().clone();
    let mut paths = Vec::new();
    while !execution.is_finished() {
        let calls = execution.take_calls(0);
        assert!(!calls.is_empty());
        for call in calls {
            paths.push(call.request.path.clone());
            execution.on_call_outcome(call.id, CallOutcome::response(200, br#""hi""#.to_vec()), 0);
        }
    }
    (execution.reply().unwrap(), paths, report)
}

fn body(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap()
}

fn code(reply: &Reply) -> Value {
    body(reply)["errors"][0]["extensions"]["code"].clone()
}

fn header<'r>(reply: &'r Reply, name: &str) -> Option<&'r str> {
    reply
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_ref())
}

#[test]
fn apq_round_trip_registers_and_finds_the_document() {
    let gateway = gateway(None);
    let mut store = MemoryStore::default();
    let mut cache = PlanCache::new(16);
    let only_hash = post(json!({"extensions": extensions(&hash(QUERY))}));

    // 1. The hash alone: not found, nothing called, not cacheable.
    let (reply, calls, report) = run(&gateway, &only_hash, Some(&mut cache), &mut store);
    assert_eq!(reply.status, 200);
    assert!(calls.is_empty());
    assert_eq!(
        body(&reply),
        json!({"errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]})
    );
    assert_eq!(header(&reply, "cache-control"), Some("no-store"));
    assert!(report.miss() && !report.hit());

    // 2. The hash with the document: run, and registered.
    let both = post(json!({"query": QUERY, "extensions": extensions(&hash(QUERY))}));
    let (reply, calls, report) = run(&gateway, &both, Some(&mut cache), &mut store);
    assert_eq!(body(&reply), json!({"data": {"hello": "hi"}}));
    assert_eq!(calls, ["/hello?name=ann"]);
    assert!(report.registered);
    assert_eq!(report.source, Some(Source::SentWithHash));
    assert_eq!(store.entries.len(), 1);
    let (key, value) = store.entries.iter().next().unwrap();
    assert!(key.starts_with("gqa:pq:"), "{key}");
    assert_eq!(value.len(), 32 + QUERY.len());

    // 3. The hash alone again: found in the registry, and its plan in the
    //    plan cache (the document was planned once, by step 2).
    let hits = cache.hits;
    let (reply, calls, report) = run(&gateway, &only_hash, Some(&mut cache), &mut store);
    assert_eq!(body(&reply), json!({"data": {"hello": "hi"}}));
    assert_eq!(calls, ["/hello?name=ann"]);
    assert_eq!(report.source, Some(Source::Registry));
    assert!(report.hit() && !report.registered);
    assert_eq!(
        cache.hits,
        hits + 1,
        "the hash-only path hits the plan cache"
    );
    assert_eq!(cache.len(), 1);
}

#[test]
fn apq_over_get_with_the_extensions_parameter() {
    let gateway = gateway(None);
    let mut store = MemoryStore::default();
    let encoded = encode(&extensions(&hash(QUERY)).to_string());
    let get = HttpRequest {
        method: "GET".into(),
        path: format!("/graphql?extensions={encoded}"),
        ..HttpRequest::default()
    };
    let (reply, calls, _) = run(&gateway, &get, None, &mut store);
    assert_eq!(code(&reply), "PERSISTED_QUERY_NOT_FOUND");
    assert!(calls.is_empty());
    // Registered by a POST (what Apollo Client's retry sends), then served
    // to the GET, which a CDN may cache.
    let both = post(json!({"query": QUERY, "extensions": extensions(&hash(QUERY))}));
    run(&gateway, &both, None, &mut store);
    let (reply, calls, _) = run(&gateway, &get, None, &mut store);
    assert_eq!(body(&reply), json!({"data": {"hello": "hi"}}));
    assert_eq!(calls.len(), 1);
    // A GET with the document and its hash registers too.
    let other = r#"{ hello(name: "bob") }"#;
    let query = encode(other);
    let encoded = encode(&extensions(&hash(other)).to_string());
    let get_both = HttpRequest {
        method: "GET".into(),
        path: format!("/graphql?query={query}&extensions={encoded}"),
        ..HttpRequest::default()
    };
    let (_, _, report) = run(&gateway, &get_both, None, &mut store);
    assert!(report.registered);
    // A registered mutation still needs POST.
    let mutation = "mutation { poke }";
    run(
        &gateway,
        &post(json!({"query": mutation, "extensions": extensions(&hash(mutation))})),
        None,
        &mut store,
    );
    let encoded = encode(&extensions(&hash(mutation)).to_string());
    let get = HttpRequest {
        method: "GET".into(),
        path: format!("/graphql?extensions={encoded}"),
        ..HttpRequest::default()
    };
    let (reply, calls, _) = run(&gateway, &get, None, &mut store);
    assert_eq!((reply.status, calls.len()), (405, 0));
}

#[test]
fn not_found_statuses_follow_the_media_type() {
    let gateway = gateway(None);
    let mut store = MemoryStore::default();
    let only_hash = post(json!({"extensions": extensions(&hash(QUERY))}));
    // Apollo Client 4's default Accept.
    let modern = accept(
        only_hash.clone(),
        "application/graphql-response+json,application/json;q=0.9",
    );
    let (reply, _, _) = run(&gateway, &modern, None, &mut store);
    assert_eq!(reply.status, 404);
    assert_eq!(
        header(&reply, "content-type"),
        Some("application/graphql-response+json")
    );
    assert_eq!(code(&reply), "PERSISTED_QUERY_NOT_FOUND");
    let (reply, _, _) = run(
        &gateway,
        &accept(only_hash, "application/json"),
        None,
        &mut store,
    );
    assert_eq!(reply.status, 200);
}

#[test]
fn a_hash_that_is_not_the_documents_is_refused_and_not_registered() {
    let gateway = gateway(None);
    let mut store = MemoryStore::default();
    let wrong = hash("{ something else }");
    let request = post(json!({"query": QUERY, "extensions": extensions(&wrong)}));
    let (reply, calls, report) = run(&gateway, &request, None, &mut store);
    assert!(calls.is_empty());
    assert_eq!(code(&reply), "PERSISTED_QUERY_HASH_MISMATCH");
    let message = body(&reply)["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains(&wrong) && message.contains(&hash(QUERY)),
        "{message}"
    );
    assert!(!report.registered);
    assert!(store.entries.is_empty());
    let strict = accept(request, "application/graphql-response+json");
    let (reply, _, _) = run(&gateway, &strict, None, &mut store);
    assert_eq!(reply.status, 400);
}

#[test]
fn documents_refused_by_validation_are_not_registered() {
    let gateway = gateway(None);
    let mut store = MemoryStore::default();
    let invalid = "{ nope }";
    let request = post(json!({"query": invalid, "extensions": extensions(&hash(invalid))}));
    let (reply, _, report) = run(&gateway, &request, None, &mut store);
    assert_eq!(code(&reply), "GRAPHQL_VALIDATION_FAILED");
    assert!(!report.registered && store.entries.is_empty());
}

#[test]
fn without_registrations_an_unknown_hash_is_not_supported() {
    let gateway = gateway(Some(json!({"automatic": false, "manifest": manifest()})));
    let mut store = MemoryStore::default();
    let (reply, calls, _) = run(
        &gateway,
        &post(json!({"extensions": extensions(&hash(QUERY))})),
        None,
        &mut store,
    );
    assert!(calls.is_empty());
    assert_eq!(
        body(&reply),
        json!({"errors": [{"message": "PersistedQueryNotSupported", "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"}}]})
    );
    // Sent in full with its hash: run, never registered.
    let both = post(json!({"query": QUERY, "extensions": extensions(&hash(QUERY))}));
    let (reply, _, report) = run(&gateway, &both, None, &mut store);
    assert_eq!(body(&reply), json!({"data": {"hello": "hi"}}));
    assert!(!report.registered && store.entries.is_empty());
    // The manifest still answers hashes.
    let listed = post(json!({"extensions": extensions(&hash(LISTED))}));
    let (reply, calls, report) = run(&gateway, &listed, None, &mut store);
    assert_eq!(body(&reply), json!({"data": {"hello": "hi"}}));
    assert_eq!(calls, ["/hello?name=listed"]);
    assert_eq!(report.source, Some(Source::Manifest));
}

#[test]
fn trusted_documents_refuse_unlisted_documents_without_any_call() {
    let gateway = gateway(Some(json!({"only_listed": true, "manifest": manifest()})));
    let mut store = MemoryStore::default();
    // Even a document some other configuration registered.
    persisted::register(&mut store, &persisted::sha256(QUERY), QUERY, 1024, 65536);

    let (reply, calls, report) = run(
        &gateway,
        &post(json!({"extensions": extensions(&hash(QUERY))})),
        None,
        &mut store,
    );
    assert!(calls.is_empty());
    assert_eq!(code(&reply), "PERSISTED_QUERY_NOT_IN_LIST");
    assert!(report.untrusted());
    let message = body(&reply)["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("trusted documents"), "{message}");

    let (reply, calls, _) = run(&gateway, &post(json!({"query": QUERY})), None, &mut store);
    assert!(calls.is_empty());
    assert_eq!(code(&reply), "QUERY_NOT_IN_SAFELIST");
    let strict = accept(
        post(json!({"query": QUERY})),
        "application/graphql-response+json",
    );
    let (reply, calls, _) = run(&gateway, &strict, None, &mut store);
    assert_eq!((reply.status, calls.len()), (403, 0));
    let (reply, calls, _) = run(
        &gateway,
        &post(json!({"query": QUERY, "extensions": extensions(&hash(QUERY))})),
        None,
        &mut store,
    );
    assert_eq!(
        (code(&reply), calls.len()),
        (json!("QUERY_NOT_IN_SAFELIST"), 0)
    );
    // Introspection is a document like any other.
    let (reply, calls, _) = run(
        &gateway,
        &post(json!({"query": "{ __typename }"})),
        None,
        &mut store,
    );
    assert_eq!(
        (code(&reply), calls.len()),
        (json!("QUERY_NOT_IN_SAFELIST"), 0)
    );

    // The listed document runs, by hash or in full.
    for request in [
        post(json!({"extensions": extensions(&hash(LISTED))})),
        post(json!({"query": LISTED})),
        post(json!({"query": LISTED, "extensions": extensions(&hash(LISTED))})),
    ] {
        let (reply, calls, report) = run(&gateway, &request, None, &mut store);
        assert_eq!(body(&reply), json!({"data": {"hello": "hi"}}));
        assert_eq!(calls, ["/hello?name=listed"]);
        assert!(!report.registered);
    }
}

#[test]
fn registrations_replace_their_slot_and_stay_within_the_bounds() {
    // One slot: the second registration replaces the first.
    let gateway = gateway(Some(json!({"max_registered": 1})));
    let mut store = MemoryStore::default();
    let other = r#"{ hello(name: "zed") }"#;
    for document in [QUERY, other] {
        let request = post(json!({"query": document, "extensions": extensions(&hash(document))}));
        let (_, _, report) = run(&gateway, &request, None, &mut store);
        assert!(report.registered);
    }
    assert_eq!(store.entries.keys().collect::<Vec<_>>(), ["gqa:pq:0"]);
    let (reply, _, _) = run(
        &gateway,
        &post(json!({"extensions": extensions(&hash(QUERY))})),
        None,
        &mut store,
    );
    assert_eq!(code(&reply), "PERSISTED_QUERY_NOT_FOUND", "replaced");
    let (reply, _, _) = run(
        &gateway,
        &post(json!({"extensions": extensions(&hash(other))})),
        None,
        &mut store,
    );
    assert_eq!(body(&reply), json!({"data": {"hello": "hi"}}));

    // A stored value over this configuration's document limit is not used.
    let small = Arc::new(
        Gateway::from_json(
            &json!({
                "schema": SCHEMA,
                "upstreams": {"greeter": {"target": "greeter"}},
                "limits": {"max_query_bytes": 16},
                "persisted_queries": {"max_registered": 1},
            })
            .to_string(),
        )
        .unwrap(),
    );
    let (reply, calls, _) = run(
        &small,
        &post(json!({"extensions": extensions(&hash(other))})),
        None,
        &mut store,
    );
    assert_eq!(
        (code(&reply), calls.len()),
        (json!("PERSISTED_QUERY_NOT_FOUND"), 0)
    );
    // And a document over it is refused by the limit, before any hashing
    // or registration.
    let request = post(json!({"query": other, "extensions": extensions(&hash(other))}));
    let before = store.entries.clone();
    let (reply, _, report) = run(&small, &request, None, &mut store);
    assert_eq!(code(&reply), "LIMIT_EXCEEDED");
    assert!(!report.registered);
    assert_eq!(store.entries, before);
}

#[test]
fn without_a_store_hashes_are_found_in_the_manifest_only() {
    let gateway = gateway(Some(json!({"manifest": manifest()})));
    let mut execution = Execution::start(
        gateway.clone(),
        &post(json!({"extensions": extensions(&hash(LISTED))})),
        0,
    );
    assert_eq!(execution.take_calls(0).len(), 1);
    let mut execution = Execution::start(
        gateway,
        &post(json!({"extensions": extensions(&hash(QUERY))})),
        0,
    );
    assert!(execution.is_finished());
    assert_eq!(
        code(&execution.reply().unwrap()),
        "PERSISTED_QUERY_NOT_FOUND"
    );
}

#[test]
fn configuration_errors_name_the_setting() {
    let load = |settings: Value| {
        Gateway::from_json(
            &json!({
                "schema": SCHEMA,
                "upstreams": {"greeter": {"target": "greeter"}},
                "persisted_queries": settings,
            })
            .to_string(),
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    let e = load(json!({"only_listed": true}));
    assert!(
        e.contains("persisted_queries") && e.contains("manifest"),
        "{e}"
    );
    let mut bad = manifest();
    bad["operations"][0]["body"] = json!("query Listed { hello(name: \"other\") }");
    let e = load(json!({"manifest": bad}));
    assert!(
        e.contains("manifest operation Listed") && e.contains("SHA-256"),
        "{e}"
    );
    let invalid = "query Broken { nope }";
    let e = load(json!({"manifest": {
        "format": "apollo-persisted-query-manifest", "version": 1,
        "operations": [{"id": hash(invalid), "body": invalid, "name": "Broken", "type": "query"}],
    }}));
    assert!(
        e.contains("manifest operation Broken") && e.contains("nope"),
        "{e}"
    );
}
