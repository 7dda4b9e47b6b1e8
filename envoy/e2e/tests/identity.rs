//! Issue 16 through real Envoy (1.40, V8): identity (login-state
//! conversion), configuration from a registry, and headers back to the
//! client, in front of the mock functions, all on loopback.
//!
//! ONE sandbox of its own (`envoy_e2e::solo`: the mock functions behind
//! cluster `openfaas`, one Envoy with one worker), with four listeners,
//! each the demo's GraphQL listener with a filter configuration of its own.
//! The identity function, the registry and the functions are all the same
//! mock-functions server (`/function/identity`, `/_registry/graphql`,
//! `/function/echo`...):
//!
//! - `identity-required`: `identity` from the `cookie` header (mock
//!   `GET /identity`: `session=good-<n>` is user `u-<n>`, anything else a
//!   401, `broken` a 500, `slow-<n>` answers after 2 s, past the identity
//!   upstream's `IDENTITY_TIMEOUT_MS`), kept in the answer cache for a
//!   minute. The `openfaas` upstream sends `x-platform-uid: {identity.uid}`
//!   with every call; `whoami` calls `/echo?uid={identity.uid}` with an
//!   `@http` header `x-user-name: {identity.name}`. The echo shows what the
//!   function received: the uid under both names, never the cookie. A
//!   second request with the same cookie does not call the identity
//!   function again; another cookie does (cached per credential). A
//!   refused cookie, a failing identity function (500, timeout) and a
//!   request without a cookie each get a 401 with `UNAUTHENTICATED`, and no
//!   function but the identity function is called (none at all without a
//!   cookie).
//! - `identity-optional`: the same with `required: false`: without a cookie
//!   the request runs, no identity call is made and `x-platform-uid` is not
//!   sent.
//! - `registry`: an inline configuration with `config_source` polling
//!   `/_registry/graphql` every second, with `version_header`. It serves as
//!   `inline` until the registry has a document; a document PUT into the
//!   registry (a new root field) is in service within `SWAP_BOUND`, without
//!   restarting Envoy, and replies say its revision; a bad document (an
//!   unknown upstream) and one holding a `config_source` are refused
//!   (`config.refused`, a log line) while the good one stays in service;
//!   the next good one is taken.
//! - `response-headers`: `cookie-profile` (two `set-cookie` lines,
//!   `x-trace-id`, `x-ratelimit-remaining` counting down) behind an upstream
//!   that passes them back: both cookies reach the client as separate
//!   `set-cookie` headers, `x-trace-id` too, and the reply is `no-store`;
//!   with two calls, `first` and `last` take one value each, from different
//!   answers; an upstream passing only `x-trace-id` passes no cookie, and
//!   an answer from the answer cache passes nothing.
//!
//! Last, Envoy's log holds none of the credentials the tests sent.
//!
//! A custom harness (libtest-mimic, `envoy_e2e::trials::Harness`): the
//! sandbox is started on the first test, the tests run serially in the
//! order listed (the mock's counters are reset before each; the registry
//! keeps its documents), and every process is stopped by PID after the
//! last one. Every request has a bounded timeout (`REQUEST_TIMEOUT`), and
//! every wait a bound.
//!
//! Run: `cargo test -p envoy-e2e --test identity` (after `make setup wasm
//! functions`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use envoy_e2e::config::DEMO_CLUSTER;
use envoy_e2e::http::{Client, Reply};
use envoy_e2e::paths::Paths;
use envoy_e2e::sandbox::with_log_tail;
use envoy_e2e::solo::Solo;
use envoy_e2e::trials::{Harness, Test};
use envoy_e2e::workers;
use serde_json::{json, Value};

const REQUIRED: &str = "identity-required";
const OPTIONAL: &str = "identity-optional";
const REGISTRY: &str = "registry";
const HEADERS: &str = "response-headers";

/// The client's bound on any one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The identity upstream's `timeout_ms`: the mock answers `slow-<n>` after
/// 2 s (`mock_functions::SLOW_IDENTITY_MS`).
const IDENTITY_TIMEOUT_MS: u64 = 500;
/// How long identities are kept in the answer cache.
const IDENTITY_TTL_MS: u64 = 60_000;

/// The registry document's name, its poll interval, and the reply header
/// naming the version in service.
const REGISTRY_PATH: &str = "/_registry/graphql";
const POLL_MS: u64 = 1_000;
const VERSION_HEADER: &str = "x-graphql-config-version";
/// The most a new registry version may take to be in service (or refused).
const SWAP_BOUND: Duration = Duration::from_secs(10);
/// How often a wait looks again.
const WAIT_STEP: Duration = Duration::from_millis(100);

/// A header Envoy's router adds to every answer of a call: an answer header
/// without a cookie, which the answer cache may keep.
const ENVOY_TIME_HEADER: &str = "x-envoy-upstream-service-time";

/// The filter's metrics in Envoy's `/stats`.
const METRICS: &str = "wasmcustom.graphql_aggregator";

/// The cookies the tests send (none of them may reach Envoy's log).
const GOOD_1: &str = "session=good-1";
const GOOD_2: &str = "session=good-2";
const GOOD_3: &str = "session=good-3";
const REFUSED: &str = "session=refused-e2e-4711";
const BROKEN: &str = "session=broken";
const SLOW: &str = "session=slow-1";
/// What of them would show a credential in the log.
const SECRETS: [&str; 7] = [
    "good-1",
    "good-2",
    "good-3",
    "refused-e2e-4711",
    "session=broken",
    "slow-1",
    "session=",
];

/// The schema of both identity listeners.
const IDENTITY_SCHEMA: &str = r#"
scalar JSON

type Query {
  "The echo, with the uid in the query and the name in a header."
  whoami: Echo @http(upstream: "openfaas", path: "/echo?uid={identity.uid}",
                     headers: [{name: "x-user-name", value: "{identity.name}"}])
  "The echo, without identity placeholders of its own."
  plain: Echo @http(upstream: "openfaas", path: "/echo")
  user(id: ID!): User @http(upstream: "openfaas", path: "/user-profile?id={args.id}")
}

type Echo {
  path: String
  rawQuery: String
  headers: JSON
}

type User {
  id: ID!
  name: String
}
"#;

/// The registry listener's inline schema, and what its versions add.
const USER_FIELD: &str =
    r#"user(id: ID!): User @http(upstream: "openfaas", path: "/user-profile?id={args.id}")"#;
const INVENTORY_FIELD: &str = r#"inventory(sku: String!): Inventory @http(upstream: "openfaas", path: "/inventory?sku={args.sku}")"#;
const USERS_FIELD: &str = r#"users: [User] @http(upstream: "openfaas", path: "/users")"#;
const TYPES: &str = "type User { id: ID! name: String }\n\
                     type Inventory { sku: String! inStock: Boolean quantity: Int }";

/// The response-headers listener's schema.
const HEADERS_SCHEMA: &str = r#"
type Query {
  "Passes set-cookie, x-trace-id and x-ratelimit-remaining back."
  profile(id: ID!): User @http(upstream: "cookies", path: "/cookie-profile?id={args.id}")
  "Passes only x-trace-id back; answers kept a minute."
  traced(id: ID!): User @http(upstream: "traced", path: "/cookie-profile?id={args.id}")
  "Passes Envoy's x-envoy-upstream-service-time back; answers kept a minute."
  timed(id: ID!): User @http(upstream: "timed", path: "/user-profile?id={args.id}")
  "Passes nothing back."
  user(id: ID!): User @http(upstream: "openfaas", path: "/user-profile?id={args.id}")
}

type User {
  id: ID!
  name: String
}
"#;

// ---------------------------------------------------------------------------
// Configurations

/// The functions' upstream as in the demo (behind the OpenFaaS-style
/// gateway's `/function` prefix).
fn functions_upstream() -> Value {
    json!({
        "target": DEMO_CLUSTER,
        "authority": "gateway.openfaas:8080",
        "path_prefix": "/function",
        "timeout_ms": 5000
    })
}

/// An identity listener's configuration. The identity upstream's
/// `:authority` is the listener's own, so that the two listeners (one Wasm
/// VM, one answer cache) never share a cached identity.
fn identity_config(listener: &str, required: bool) -> Value {
    let mut functions = functions_upstream();
    functions["headers"] = json!({"x-platform-uid": "{identity.uid}"});
    json!({
        "schema": IDENTITY_SCHEMA,
        "upstreams": {
            "openfaas": functions,
            "identity": {
                "target": DEMO_CLUSTER,
                "authority": format!("{listener}.identity:8080"),
                "path_prefix": "/function",
                "timeout_ms": IDENTITY_TIMEOUT_MS
            }
        },
        "identity": {
            "upstream": "identity",
            "method": "GET",
            "path": "/identity",
            "credential_headers": ["cookie"],
            "result": "",
            "required": required,
            "cache_ttl_ms": IDENTITY_TTL_MS
        },
        "answer_cache": {"max_bytes": 1 << 20, "max_entry_bytes": 4096}
    })
}

/// A configuration of the registry listener's functions with these root
/// fields (no `config_source`: what the registry serves).
fn registry_version(fields: &[&str]) -> Value {
    json!({
        "schema": format!("type Query {{\n  {}\n}}\n{TYPES}\n", fields.join("\n  ")),
        "upstreams": {"openfaas": functions_upstream()}
    })
}

/// The registry listener's inline configuration: `user` only, and where
/// newer versions come from.
fn registry_inline() -> Value {
    let mut config = registry_version(&[USER_FIELD]);
    config["upstreams"]["registry"] = json!({"target": DEMO_CLUSTER, "timeout_ms": 2000});
    config["config_source"] = json!({
        "upstream": "registry",
        "path": REGISTRY_PATH,
        "poll_ms": POLL_MS,
        "max_bytes": 1 << 20,
        "version_header": VERSION_HEADER
    });
    config
}

fn headers_config() -> Value {
    let mut cookies = functions_upstream();
    cookies["authority"] = json!("cookies.openfaas:8080");
    cookies["response_headers"] = json!({
        "set-cookie": "append",
        "x-trace-id": "first",
        "x-ratelimit-remaining": "last"
    });
    let mut traced = functions_upstream();
    traced["authority"] = json!("traced.openfaas:8080");
    traced["response_headers"] = json!({"x-trace-id": "first"});
    traced["cache"] = json!({"ttl_ms": 60_000});
    let mut timed = functions_upstream();
    timed["authority"] = json!("timed.openfaas:8080");
    timed["response_headers"] = json!({ENVOY_TIME_HEADER: "last"});
    timed["cache"] = json!({"ttl_ms": 60_000});
    json!({
        "schema": HEADERS_SCHEMA,
        "upstreams": {
            "openfaas": functions_upstream(),
            "cookies": cookies,
            "traced": traced,
            "timed": timed
        },
        "answer_cache": {"max_bytes": 1 << 20, "max_entry_bytes": 4096}
    })
}

// ---------------------------------------------------------------------------
// Harness

fn start(paths: &Paths) -> Result<Solo, String> {
    let listeners = [
        (REQUIRED, identity_config(REQUIRED, true)),
        (OPTIONAL, identity_config(OPTIONAL, false)),
        (REGISTRY, registry_inline()),
        (HEADERS, headers_config()),
    ];
    Solo::start(paths, "identity", &listeners)
}

const TESTS: &[(&str, Test<Solo>)] = &[
    (
        "identity::a_cookie_becomes_the_uid_the_function_receives",
        cookie_becomes_the_uid,
    ),
    (
        "identity::identities_are_cached_per_credential",
        identities_are_cached_per_credential,
    ),
    (
        "identity::a_refused_cookie_gets_401_and_no_function_call",
        refused_cookie_gets_401,
    ),
    (
        "identity::no_cookie_gets_401_and_no_call_at_all",
        no_cookie_gets_401,
    ),
    (
        "identity::a_failing_identity_function_gets_401",
        failing_identity_gets_401,
    ),
    (
        "identity::an_optional_identity_without_cookie_runs_without_it",
        optional_identity_without_cookie,
    ),
    (
        "response_headers::both_set_cookie_lines_reach_the_client_and_the_reply_is_no_store",
        set_cookie_reaches_the_client,
    ),
    (
        "response_headers::first_and_last_take_one_value_each_from_different_answers",
        first_and_last,
    ),
    (
        "response_headers::only_the_configured_headers_of_an_upstream_pass",
        only_configured_headers_pass,
    ),
    (
        "response_headers::answers_setting_cookies_are_never_cached",
        answers_setting_cookies_are_never_cached,
    ),
    (
        "response_headers::answers_from_the_answer_cache_bring_no_headers",
        cached_answers_bring_no_headers,
    ),
    (
        "registry::versions_are_swapped_in_without_restart_and_bad_ones_refused",
        registry_versions,
    ),
    (
        "identity::no_credential_reaches_the_log",
        no_credential_in_the_log,
    ),
];

fn main() -> ExitCode {
    Harness {
        name: "the identity sandbox",
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
        // The tests read the mock's call counters: zeroed before each.
        each: |solo, test| {
            reset_calls(solo)
                .and_then(|()| solo.check_envoy_running())
                .and_then(|()| test(solo))
                .and_then(|()| solo.check_envoy_running())
                .map_err(|e| with_log_tail(&e, &solo.envoy_log, 30))
        },
    }
    .run(TESTS)
}

// ---------------------------------------------------------------------------
// Helpers

fn client() -> Client {
    Client::new(REQUEST_TIMEOUT)
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(message())
    }
}

fn graphql_request(query: &str) -> String {
    json!({ "query": query }).to_string()
}

/// POSTs `query` to a listener, with a `cookie` header when given.
fn post(solo: &Solo, listener: &str, query: &str, cookie: Option<&str>) -> Result<Reply, String> {
    let url = solo.graphql_url(listener);
    let mut headers = vec![("content-type", "application/json")];
    if let Some(cookie) = cookie {
        headers.push(("cookie", cookie));
    }
    client()
        .post(&url, &headers, &graphql_request(query))
        .map_err(|e| {
            let state = solo
                .check_envoy_running()
                .err()
                .map(|e| format!("; {e}"))
                .unwrap_or_default();
            format!("POST {url} {query}: no complete reply within {REQUEST_TIMEOUT:?} ({e}){state}")
        })
}

fn json_of(reply: &Reply) -> Result<Value, String> {
    serde_json::from_str(&reply.body).map_err(|e| {
        format!(
            "not JSON ({e}): status {}, body {}",
            reply.status, reply.body
        )
    })
}

/// Every value of header `name` in the reply, in order.
fn header_values<'a>(reply: &'a Reply, name: &str) -> Vec<&'a str> {
    reply
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    header_values(reply, name).first().copied()
}

/// The reply is 200 with `data` equal to `expected` and no errors.
fn ensure_data(reply: &Reply, expected: &Value, what: &str) -> Result<Value, String> {
    let answer = json_of(reply).map_err(|e| format!("{what}: {e}"))?;
    ensure(
        reply.status == 200 && answer["data"] == *expected && answer.get("errors").is_none(),
        || {
            format!(
                "{what}: expected 200 with data {expected} and no errors, got {} {answer}",
                reply.status
            )
        },
    )?;
    Ok(answer)
}

/// The reply is a 401 whose only error is `UNAUTHENTICATED` with a message
/// starting with `message`, no `data`, and `cache-control: no-store`.
fn ensure_unauthenticated(reply: &Reply, message: &str, what: &str) -> Result<Value, String> {
    let answer = json_of(reply).map_err(|e| format!("{what}: {e}"))?;
    let errors = answer["errors"].as_array().cloned().unwrap_or_default();
    let said = errors
        .first()
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default();
    ensure(
        reply.status == 401
            && answer.get("data").is_none()
            && errors.len() == 1
            && errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
            && said.starts_with(message),
        || {
            format!(
                "{what}: expected a 401 with one UNAUTHENTICATED error saying {message:?}..., \
                 no data; got {} {answer}",
                reply.status
            )
        },
    )?;
    ensure(header(reply, "cache-control") == Some("no-store"), || {
        format!(
            "{what}: a 401 must be no-store: cache-control {:?}",
            header_values(reply, "cache-control")
        )
    })?;
    Ok(answer)
}

/// The mock's `/_stats` document.
fn stats(solo: &Solo) -> Result<Value, String> {
    let url = format!("http://{}/_stats", solo.functions);
    let reply = client().get(&url)?;
    if reply.status != 200 {
        return Err(format!("GET {url}: {} {}", reply.status, reply.body));
    }
    json_of(&reply).map_err(|e| format!("GET {url}: {e}"))
}

/// Calls of `function` since the last reset.
fn calls_of(stats: &Value, function: &str) -> u64 {
    stats["calls"][function].as_u64().unwrap_or(0)
}

fn total_calls(stats: &Value) -> u64 {
    stats["total"].as_u64().unwrap_or(0)
}

/// Every function with calls since the last reset.
fn called(stats: &Value) -> Vec<(String, u64)> {
    stats["calls"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, n)| Some((name.clone(), n.as_u64()?)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn reset_calls(solo: &Solo) -> Result<(), String> {
    let url = format!("http://{}/_reset", solo.functions);
    let reply = client().post(&url, &[], "")?;
    if reply.status != 200 {
        return Err(format!("POST {url}: {} {}", reply.status, reply.body));
    }
    Ok(())
}

/// One of the filter's metrics (`config.refused`...).
fn metric(solo: &Solo, name: &str) -> Result<u64, String> {
    workers::envoy_stat(&client(), solo.admin, &format!("{METRICS}.{name}"))
}

/// Polls `probe` every `WAIT_STEP`, at most `bound`, until it gives a
/// value (`Ok(Ok(value))`): the value and how long it took. `Ok(Err(state))`
/// is "not yet", and the last state is in the error after `bound`.
fn wait_for<T>(
    bound: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<Result<T, String>, String>,
) -> Result<(T, Duration), String> {
    let started = Instant::now();
    loop {
        let state = match probe()? {
            Ok(value) => return Ok((value, started.elapsed())),
            Err(state) => state,
        };
        if started.elapsed() > bound {
            return Err(format!("{what}: not within {bound:?}; last: {state}"));
        }
        std::thread::sleep(WAIT_STEP);
    }
}

// ---------------------------------------------------------------------------
// Identity

const WHOAMI: &str = "{ whoami { path rawQuery headers } }";

/// (a) The cookie `session=good-1` becomes uid `u-1`: the echo receives it
/// in its query (`{identity.uid}` in the path), as `x-platform-uid` (the
/// upstream's `headers` template) and the name as `x-user-name` (the
/// field's `@http` header); the cookie itself is not sent to it.
fn cookie_becomes_the_uid(solo: &Solo) -> Result<(), String> {
    let reply = post(solo, REQUIRED, WHOAMI, Some(GOOD_1))?;
    let answer = json_of(&reply)?;
    ensure(
        reply.status == 200 && answer.get("errors").is_none(),
        || format!("expected 200 without errors: {} {answer}", reply.status),
    )?;
    let echo = &answer["data"]["whoami"];
    ensure(
        echo["path"] == "/function/echo" && echo["rawQuery"] == "uid=u-1",
        || format!("the echo must be called as /function/echo?uid=u-1: {echo}"),
    )?;
    let seen = &echo["headers"];
    ensure(
        seen["x-platform-uid"] == "u-1" && seen["x-user-name"] == "Alice",
        || format!("the function must receive x-platform-uid: u-1 and x-user-name: Alice: {seen}"),
    )?;
    ensure(seen.get("cookie").is_none(), || {
        format!("the credential must go to the identity function only: {seen}")
    })?;
    let stats = stats(solo)?;
    ensure(
        calls_of(&stats, "identity") == 1
            && calls_of(&stats, "echo") == 1
            && total_calls(&stats) == 2,
        || format!("one identity call, one echo: {:?}", called(&stats)),
    )?;
    eprintln!(
        "envoy-e2e: {GOOD_1} → echo received {} with x-platform-uid {} and x-user-name {}",
        echo["rawQuery"], seen["x-platform-uid"], seen["x-user-name"]
    );
    Ok(())
}

/// The identity of a cookie is kept (`cache_ttl_ms`): the same cookie again
/// makes no identity call; another cookie makes its own, and gets its own
/// uid.
fn identities_are_cached_per_credential(solo: &Solo) -> Result<(), String> {
    // good-2 is new to this listener's cache: called, then kept.
    let mut uids = Vec::new();
    for (i, cookie) in [GOOD_2, GOOD_2, GOOD_3, GOOD_2].into_iter().enumerate() {
        let reply = post(solo, REQUIRED, WHOAMI, Some(cookie))?;
        let answer = json_of(&reply)?;
        ensure(reply.status == 200, || {
            format!("request {i} ({cookie}): {} {answer}", reply.status)
        })?;
        uids.push(answer["data"]["whoami"]["headers"]["x-platform-uid"].clone());
    }
    ensure(
        uids == [json!("u-2"), json!("u-2"), json!("u-3"), json!("u-2")],
        || format!("each cookie must get its own uid (good-2, good-2, good-3, good-2): {uids:?}"),
    )?;
    let stats = stats(solo)?;
    ensure(
        calls_of(&stats, "identity") == 2 && calls_of(&stats, "echo") == 4,
        || {
            format!(
                "the identity function must be called once per cookie (2), the echo per \
                 request (4): {:?}",
                called(&stats)
            )
        },
    )?;
    Ok(())
}

/// (b) A cookie the identity function refuses (401): the reply is a 401
/// `UNAUTHENTICATED`, and no function but the identity function is called.
fn refused_cookie_gets_401(solo: &Solo) -> Result<(), String> {
    let reply = post(
        solo,
        REQUIRED,
        "{ whoami { path } user(id: \"1\") { name } }",
        Some(REFUSED),
    )?;
    let answer = ensure_unauthenticated(
        &reply,
        "the credential was refused (the identity function answered HTTP 401)",
        "a refused cookie",
    )?;
    ensure(!reply.body.contains("refused-e2e-4711"), || {
        format!("the reply must not echo the credential: {answer}")
    })?;
    let stats = stats(solo)?;
    ensure(
        calls_of(&stats, "identity") == 1 && total_calls(&stats) == 1,
        || {
            format!(
                "only the identity function may be called, once: {:?}",
                called(&stats)
            )
        },
    )?;
    eprintln!(
        "envoy-e2e: refused cookie → {} {}",
        reply.status, reply.body
    );
    Ok(())
}

/// (b) No cookie at all: a 401 saying which header to send, and no call at
/// all (not even the identity function).
fn no_cookie_gets_401(solo: &Solo) -> Result<(), String> {
    let reply = post(
        solo,
        REQUIRED,
        "{ whoami { path } user(id: \"1\") { name } }",
        None,
    )?;
    let answer = ensure_unauthenticated(
        &reply,
        "this gateway needs a credential: send it in cookie",
        "no cookie",
    )?;
    let expected = json!({"errors": [{
        "message": "this gateway needs a credential: send it in cookie",
        "extensions": {"code": "UNAUTHENTICATED"}
    }]});
    ensure(answer == expected, || {
        format!("the 401's body must be exactly {expected}: {answer}")
    })?;
    let stats = stats(solo)?;
    ensure(total_calls(&stats) == 0, || {
        format!("no function may be called: {:?}", called(&stats))
    })?;
    // A query that calls nothing is refused just the same.
    let reply = post(solo, REQUIRED, "{ __typename }", None)?;
    ensure_unauthenticated(
        &reply,
        "this gateway needs a credential",
        "no cookie, { __typename }",
    )?;
    Ok(())
}

/// The identity function fails: a 500 (`broken`), or no answer within the
/// identity upstream's timeout (`slow-1`): a 401 "could not be verified",
/// the slow one at the timeout, and no other function called.
fn failing_identity_gets_401(solo: &Solo) -> Result<(), String> {
    let reply = post(solo, REQUIRED, WHOAMI, Some(BROKEN))?;
    ensure_unauthenticated(
        &reply,
        "the credential could not be verified",
        "the identity function answering 500",
    )?;
    let reply = post(solo, REQUIRED, WHOAMI, Some(SLOW))?;
    ensure_unauthenticated(
        &reply,
        "the credential could not be verified",
        "the identity function answering after its timeout",
    )?;
    let bound = Duration::from_millis(IDENTITY_TIMEOUT_MS + 1000);
    ensure(reply.elapsed < bound, || {
        format!(
            "the identity call must time out after {IDENTITY_TIMEOUT_MS} ms: answered after {:?}",
            reply.elapsed
        )
    })?;
    let stats = stats(solo)?;
    ensure(
        calls_of(&stats, "identity") == 2 && total_calls(&stats) == 2,
        || {
            format!(
                "only the identity function may be called, once per request: {:?}",
                called(&stats)
            )
        },
    )?;
    eprintln!(
        "envoy-e2e: identity 500 and timeout → 401; the timeout answered in {:.0?}",
        reply.elapsed
    );
    Ok(())
}

/// `required: false`: without a cookie the request runs, no identity call
/// is made, and the header whose value is the absent uid is not sent; with
/// one, the identity is used as on the required listener.
fn optional_identity_without_cookie(solo: &Solo) -> Result<(), String> {
    let reply = post(solo, OPTIONAL, "{ plain { path headers } }", None)?;
    let answer = json_of(&reply)?;
    ensure(
        reply.status == 200 && answer.get("errors").is_none(),
        || format!("expected 200 without errors: {} {answer}", reply.status),
    )?;
    let seen = &answer["data"]["plain"]["headers"];
    ensure(
        seen.is_object() && seen.get("x-platform-uid").is_none(),
        || format!("without an identity, x-platform-uid must not be sent: {seen}"),
    )?;
    let stats = stats(solo)?;
    ensure(
        calls_of(&stats, "identity") == 0 && calls_of(&stats, "echo") == 1,
        || format!("no identity call, one echo: {:?}", called(&stats)),
    )?;
    let reply = post(solo, OPTIONAL, "{ plain { headers } }", Some(GOOD_3))?;
    let answer = json_of(&reply)?;
    ensure(
        answer["data"]["plain"]["headers"]["x-platform-uid"] == "u-3",
        || {
            format!(
                "with a cookie, the optional identity is used: {} {answer}",
                reply.status
            )
        },
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Response headers

/// (d) `cookie-profile`'s two `set-cookie` lines reach the client as two
/// `set-cookie` headers, with its `x-trace-id` and `x-ratelimit-remaining`;
/// the reply is `no-store` and keeps its own `content-type`.
fn set_cookie_reaches_the_client(solo: &Solo) -> Result<(), String> {
    let reply = post(solo, HEADERS, "{ profile(id: \"1\") { id name } }", None)?;
    ensure_data(
        &reply,
        &json!({"profile": {"id": "1", "name": "Alice"}}),
        "profile 1",
    )?;
    let mut cookies = header_values(&reply, "set-cookie");
    cookies.sort_unstable();
    ensure(
        cookies == ["last=1; Path=/", "seen-1=1; Path=/; HttpOnly"],
        || format!("both set-cookie lines, each its own header: {cookies:?}"),
    )?;
    ensure(header_values(&reply, "x-trace-id") == ["fn-1"], || {
        format!(
            "x-trace-id: fn-1: {:?}",
            header_values(&reply, "x-trace-id")
        )
    })?;
    ensure(
        header_values(&reply, "x-ratelimit-remaining") == ["999"],
        || {
            format!(
                "x-ratelimit-remaining: 999: {:?}",
                header_values(&reply, "x-ratelimit-remaining")
            )
        },
    )?;
    ensure(
        header_values(&reply, "cache-control") == ["no-store"],
        || {
            format!(
                "a reply with set-cookie must be no-store: {:?}",
                header_values(&reply, "cache-control")
            )
        },
    )?;
    ensure(
        header_values(&reply, "content-type").len() == 1
            && header(&reply, "content-type").is_some_and(|t| t.starts_with("application/json")),
        || {
            format!(
                "the reply keeps its one content-type: {:?}",
                header_values(&reply, "content-type")
            )
        },
    )?;
    eprintln!(
        "envoy-e2e: reply headers: set-cookie {cookies:?}, x-trace-id {:?}, cache-control {:?}",
        header(&reply, "x-trace-id"),
        header(&reply, "cache-control")
    );
    Ok(())
}

/// Two calls (profiles 1 and 2): four `set-cookie` lines (`append`), one
/// `x-trace-id` (`first`) and one `x-ratelimit-remaining` (`last`). Call N
/// says `fn-N` and `1000 - N`, so the first and the last answer to arrive
/// are the two calls: the trace id's N and the rate limit's N are 1 and 2,
/// in either order.
fn first_and_last(solo: &Solo) -> Result<(), String> {
    let reply = post(
        solo,
        HEADERS,
        "{ a: profile(id: \"1\") { id } b: profile(id: \"2\") { id } }",
        None,
    )?;
    ensure_data(
        &reply,
        &json!({"a": {"id": "1"}, "b": {"id": "2"}}),
        "two profiles",
    )?;
    let mut cookies = header_values(&reply, "set-cookie");
    cookies.sort_unstable();
    ensure(
        cookies
            == [
                "last=1; Path=/",
                "last=2; Path=/",
                "seen-1=1; Path=/; HttpOnly",
                "seen-2=1; Path=/; HttpOnly",
            ],
        || format!("every set-cookie line of both answers: {cookies:?}"),
    )?;
    let traces = header_values(&reply, "x-trace-id");
    let remaining = header_values(&reply, "x-ratelimit-remaining");
    let trace_n = match traces.as_slice() {
        [one] => one.strip_prefix("fn-").and_then(|n| n.parse::<u64>().ok()),
        _ => None,
    };
    let remaining_n = match remaining.as_slice() {
        [one] => one.parse::<u64>().ok().map(|r| 1000u64.saturating_sub(r)),
        _ => None,
    };
    ensure(
        matches!(
            (trace_n, remaining_n),
            (Some(1), Some(2)) | (Some(2), Some(1))
        ),
        || {
            format!(
                "one x-trace-id (the first answer's) and one x-ratelimit-remaining (the last \
                 answer's), from the two different calls: x-trace-id {traces:?}, \
                 x-ratelimit-remaining {remaining:?}"
            )
        },
    )?;
    let stats = stats(solo)?;
    ensure(calls_of(&stats, "cookie-profile") == 2, || {
        format!("two calls: {:?}", called(&stats))
    })?;
    Ok(())
}

/// An upstream passing only `x-trace-id` passes no cookie, and a field
/// without `response_headers` passes nothing.
fn only_configured_headers_pass(solo: &Solo) -> Result<(), String> {
    let reply = post(solo, HEADERS, "{ user(id: \"2\") { name } }", None)?;
    ensure_data(&reply, &json!({"user": {"name": "Bob"}}), "user 2")?;
    for name in [
        "set-cookie",
        "x-trace-id",
        "x-ratelimit-remaining",
        ENVOY_TIME_HEADER,
    ] {
        ensure(header(&reply, name).is_none(), || {
            format!(
                "an upstream without response_headers passes no {name}: {:?}",
                reply.headers
            )
        })?;
    }
    let reply = post(solo, HEADERS, "{ traced(id: \"2\") { name } }", None)?;
    ensure_data(&reply, &json!({"traced": {"name": "Bob"}}), "traced 2")?;
    ensure(
        header(&reply, "set-cookie").is_none()
            && header(&reply, "x-ratelimit-remaining").is_none()
            && header_values(&reply, "x-trace-id") == ["fn-1"],
        || format!("only x-trace-id (fn-1) may pass: {:?}", reply.headers),
    )?;
    Ok(())
}

/// An answer that sets a cookie is its client's alone: never kept in the
/// answer cache, whatever its upstream's `cache` says (`traced` keeps
/// answers a minute). The same query again calls the function again, and
/// passes that call's own `x-trace-id`.
fn answers_setting_cookies_are_never_cached(solo: &Solo) -> Result<(), String> {
    let stores_before = metric(solo, "answer_cache.stores")?;
    let query = "{ traced(id: \"3\") { name } }";
    for (i, trace) in ["fn-1", "fn-2"].into_iter().enumerate() {
        let reply = post(solo, HEADERS, query, None)?;
        ensure_data(&reply, &json!({"traced": {"name": "User 3"}}), "traced 3")?;
        ensure(header_values(&reply, "x-trace-id") == [trace], || {
            format!(
                "request {i}: each request calls the function and passes its own x-trace-id \
                 {trace}: {:?}",
                reply.headers
            )
        })?;
    }
    let calls = calls_of(&stats(solo)?, "cookie-profile");
    let stores = metric(solo, "answer_cache.stores")? - stores_before;
    ensure(calls == 2 && stores == 0, || {
        format!("two calls, nothing kept: {calls} calls, {stores} answers kept")
    })?;
    Ok(())
}

/// An answer the request took from the answer cache brings no header: the
/// request did not call the function. `timed` passes the
/// `x-envoy-upstream-service-time` Envoy adds to every answer, and keeps
/// answers a minute: the first request has it, the second (no call) not.
fn cached_answers_bring_no_headers(solo: &Solo) -> Result<(), String> {
    let query = "{ timed(id: \"4\") { name } }";
    let first = post(solo, HEADERS, query, None)?;
    ensure_data(&first, &json!({"timed": {"name": "User 4"}}), "timed 4")?;
    ensure(header_values(&first, ENVOY_TIME_HEADER).len() == 1, || {
        format!(
            "the call's answer passes its {ENVOY_TIME_HEADER}: {:?}",
            first.headers
        )
    })?;
    let second = post(solo, HEADERS, query, None)?;
    ensure_data(
        &second,
        &json!({"timed": {"name": "User 4"}}),
        "timed 4 again",
    )?;
    let calls = calls_of(&stats(solo)?, "user-profile");
    ensure(calls == 1, || {
        format!("the second request must be answered from the answer cache: {calls} calls")
    })?;
    ensure(header(&second, ENVOY_TIME_HEADER).is_none(), || {
        format!(
            "an answer from the answer cache must bring no header: {:?}",
            second.headers
        )
    })?;
    eprintln!(
        "envoy-e2e: {ENVOY_TIME_HEADER}: {:?} from the call, none from the answer cache",
        header(&first, ENVOY_TIME_HEADER)
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Registry

/// PUTs a document into the registry; its revision.
fn registry_put(solo: &Solo, document: &str) -> Result<u64, String> {
    let url = format!("http://{}{REGISTRY_PATH}", solo.functions);
    let reply = client().send(
        "PUT",
        &url,
        &[("content-type".into(), "application/json".into())],
        document.as_bytes(),
    )?;
    let answer = json_of(&reply).map_err(|e| format!("PUT {url}: {e}"))?;
    match (reply.status, answer["revision"].as_u64()) {
        (200, Some(revision)) => Ok(revision),
        _ => Err(format!("PUT {url}: {} {}", reply.status, reply.body)),
    }
}

/// The registry listener's answer to `inventory(sku: "sku-3")` and the
/// version its reply names.
fn inventory_probe(solo: &Solo) -> Result<(Reply, Value, Option<String>), String> {
    let reply = post(
        solo,
        REGISTRY,
        "{ inventory(sku: \"sku-3\") { sku quantity } }",
        None,
    )?;
    let answer = json_of(&reply)?;
    let version = header(&reply, VERSION_HEADER).map(str::to_string);
    Ok((reply, answer, version))
}

fn inventory_served(answer: &Value) -> bool {
    answer["data"] == json!({"inventory": {"sku": "sku-3", "quantity": 21}})
        && answer.get("errors").is_none()
}

fn validation_failed(answer: &Value) -> bool {
    answer["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
}

#[derive(Debug, Clone, Copy)]
struct ConfigMetrics {
    ok: u64,
    not_modified: u64,
    failed: u64,
    refused: u64,
    version: u64,
}

fn config_metrics(solo: &Solo) -> Result<ConfigMetrics, String> {
    Ok(ConfigMetrics {
        ok: metric(solo, "config.fetches.ok")?,
        not_modified: metric(solo, "config.fetches.not_modified")?,
        failed: metric(solo, "config.fetches.failed")?,
        refused: metric(solo, "config.refused")?,
        version: metric(solo, "config.version")?,
    })
}

/// Waits until the registry listener's replies name `version` (and serve
/// `inventory` or not, as `inventory` says).
fn wait_for_version(solo: &Solo, version: &str, inventory: bool) -> Result<Duration, String> {
    let what = format!(
        "the registry listener serving version {version} ({VERSION_HEADER}: {version}, {} \
         inventory)",
        if inventory { "with" } else { "without" }
    );
    let ((), took) = wait_for(SWAP_BOUND, &what, || {
        let (reply, answer, seen) = inventory_probe(solo)?;
        let served = if inventory {
            inventory_served(&answer)
        } else {
            validation_failed(&answer)
        };
        Ok(if seen.as_deref() == Some(version) && served {
            Ok(())
        } else {
            Err(format!(
                "{} {VERSION_HEADER}: {seen:?} {answer}",
                reply.status
            ))
        })
    })?;
    Ok(took)
}

/// (c) The registry listener serves its inline configuration (`inline`,
/// no `inventory`) while the registry has no document; a version PUT into
/// the registry is in service within `SWAP_BOUND`, without restarting
/// Envoy, and replies name its revision; a bad version and one holding a
/// `config_source` are refused (`config.refused`, a log line) and the good
/// one stays; the next good one is taken.
fn registry_versions(solo: &Solo) -> Result<(), String> {
    // The inline configuration serves, and says so.
    let (reply, answer, version) = inventory_probe(solo)?;
    ensure(
        version.as_deref() == Some("inline") && validation_failed(&answer),
        || {
            format!(
                "before the registry has a document, the inline configuration serves \
                 ({VERSION_HEADER}: inline, no inventory field): {} {version:?} {answer}",
                reply.status
            )
        },
    )?;
    let user = post(solo, REGISTRY, "{ user(id: \"1\") { name } }", None)?;
    ensure_data(
        &user,
        &json!({"user": {"name": "Alice"}}),
        "user 1 (inline)",
    )?;
    // The first fetch (on the first tick) found nothing: a failed fetch.
    let (before, _) = wait_for(
        SWAP_BOUND,
        "the registry's 404 counted as a failed fetch (config.fetches.failed)",
        || {
            let now = config_metrics(solo)?;
            Ok(if now.failed >= 1 {
                Ok(now)
            } else {
                Err(format!("{now:?}"))
            })
        },
    )?;

    // Version 1: a new root field.
    let good = registry_version(&[USER_FIELD, INVENTORY_FIELD]).to_string();
    let revision = registry_put(solo, &good)?;
    ensure(revision == 1, || {
        format!("the first PUT must be revision 1: {revision}")
    })?;
    let took = wait_for_version(solo, "1", true)?;
    let user = post(solo, REGISTRY, "{ user(id: \"2\") { name } }", None)?;
    ensure_data(
        &user,
        &json!({"user": {"name": "Bob"}}),
        "user 2 (version 1)",
    )?;
    let loaded = config_metrics(solo)?;
    ensure(loaded.ok > before.ok && loaded.version == 1, || {
        format!("a loaded version counts fetches.ok, and the gauge is 1: {before:?} → {loaded:?}")
    })?;
    eprintln!("envoy-e2e: registry version 1 in service {took:.1?} after the PUT; {loaded:?}");

    // Unchanged: the polls are answered 304.
    let fetches_before = stats(solo)?["registry_fetches"].as_u64().unwrap_or(0);
    std::thread::sleep(Duration::from_millis(POLL_MS * 5 / 2));
    let fetches = stats(solo)?["registry_fetches"].as_u64().unwrap_or(0) - fetches_before;
    let unchanged = config_metrics(solo)?;
    eprintln!(
        "envoy-e2e: unchanged for {} ms: {fetches} registry fetches, {} not modified",
        POLL_MS * 5 / 2,
        unchanged.not_modified - loaded.not_modified
    );
    ensure(
        fetches >= 1 && unchanged.not_modified > loaded.not_modified && unchanged.ok == loaded.ok,
        || {
            format!(
                "the filter keeps polling ({fetches} fetches in {} ms), and an unchanged \
                 version is not modified: {loaded:?} → {unchanged:?}",
                POLL_MS * 5 / 2
            )
        },
    )?;

    // Version 2: not valid (an unknown upstream): refused, 1 stays.
    let log_offset = solo.envoy_log_text().len();
    let bad = json!({
        "schema": format!(
            "type Query {{\n  {USER_FIELD}\n  broken: User @http(upstream: \"nowhere\", path: \"/x\")\n}}\n{TYPES}\n"
        ),
        "upstreams": {"openfaas": functions_upstream()}
    })
    .to_string();
    ensure(registry_put(solo, &bad)? == 2, || {
        "the second PUT must be revision 2".into()
    })?;
    let (refused, took) = wait_for(
        SWAP_BOUND,
        "version 2 (an unknown upstream) refused (config.refused)",
        || {
            let now = config_metrics(solo)?;
            Ok(if now.refused > unchanged.refused {
                Ok(now)
            } else {
                Err(format!("{now:?}"))
            })
        },
    )?;
    let (reply, answer, version) = inventory_probe(solo)?;
    ensure(
        version.as_deref() == Some("1") && inventory_served(&answer) && refused.version == 1,
        || {
            format!(
                "after a refused version, version 1 stays in service: {} {VERSION_HEADER}: \
                 {version:?} {answer}; {refused:?}",
                reply.status
            )
        },
    )?;
    let log = solo.envoy_log_text();
    let lines: Vec<&str> = log
        .get(log_offset..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("nowhere"))
        .collect();
    ensure(!lines.is_empty(), || {
        "Envoy's log must say why version 2 was refused (its unknown upstream `nowhere`)".into()
    })?;
    eprintln!(
        "envoy-e2e: registry version 2 refused {took:.1?} after the PUT: {}",
        lines[0]
    );

    // Version 3: valid, but with a `config_source` of its own: refused.
    let mut nested = registry_inline();
    nested["schema"] = registry_version(&[USER_FIELD, USERS_FIELD])["schema"].clone();
    ensure(registry_put(solo, &nested.to_string())? == 3, || {
        "the third PUT must be revision 3".into()
    })?;
    let (nested_refused, _) = wait_for(
        SWAP_BOUND,
        "version 3 (with a config_source of its own) refused (config.refused)",
        || {
            let now = config_metrics(solo)?;
            Ok(if now.refused > refused.refused {
                Ok(now)
            } else {
                Err(format!("{now:?}"))
            })
        },
    )?;
    let (_, answer, version) = inventory_probe(solo)?;
    ensure(
        version.as_deref() == Some("1") && inventory_served(&answer),
        || format!("version 1 stays after version 3 is refused: {version:?} {answer}"),
    )?;

    // Version 4: valid again (users, no inventory): taken.
    let next = registry_version(&[USER_FIELD, USERS_FIELD]).to_string();
    ensure(registry_put(solo, &next)? == 4, || {
        "the fourth PUT must be revision 4".into()
    })?;
    let took = wait_for_version(solo, "4", false)?;
    let users = post(solo, REGISTRY, "{ users { id } }", None)?;
    let answer = json_of(&users)?;
    ensure(
        users.status == 200
            && answer["data"]["users"]
                .as_array()
                .is_some_and(|u| !u.is_empty())
            && header(&users, VERSION_HEADER) == Some("4"),
        || format!("version 4 serves users: {} {answer}", users.status),
    )?;
    let last = config_metrics(solo)?;
    ensure(last.version == 4 && last.ok > nested_refused.ok, || {
        format!("version 4 loaded, the gauge is 4: {nested_refused:?} → {last:?}")
    })?;
    eprintln!("envoy-e2e: registry version 4 in service {took:.1?} after the PUT; {last:?}");
    Ok(())
}

// ---------------------------------------------------------------------------
// The log

/// Nothing of the credentials the tests sent is in Envoy's log (the
/// filter's lines about refused, failing and slow identities included).
fn no_credential_in_the_log(solo: &Solo) -> Result<(), String> {
    let log = solo.envoy_log_text();
    let found: Vec<&str> = log
        .lines()
        .filter(|line| SECRETS.iter().any(|s| line.contains(s)))
        .collect();
    ensure(found.is_empty(), || {
        format!("Envoy's log holds credentials: {found:#?}")
    })?;
    let identity_lines = log.lines().filter(|l| l.contains("identity")).count();
    eprintln!(
        "envoy-e2e: no credential in Envoy's log ({} lines, {identity_lines} about identity)",
        log.lines().count()
    );
    Ok(())
}
