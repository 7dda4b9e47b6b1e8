//! End-to-end tests: a real Envoy (1.40, V8) with the graphql-aggregator
//! filter in front of the mock functions, all on loopback.
//!
//! A custom harness (libtest-mimic): ONE sandbox is started on the first test
//! that needs it and stopped by PID after the last one, pass or fail. Tests
//! run serially: they read shared mock counters, reset before each test.
//!
//! Listeners (see `envoy_e2e::config`):
//! - `graphql`: the demo's envoy/envoy.yaml as-is (ports aside), fast mocks;
//! - `graphql-nobatch`: the same schema, `User.orders` one call per user;
//! - `graphql-slow`: like nobatch plus `echo`, on mocks delayed 100 ms (echo 400 ms);
//! - `graphql-invalid`: an `@http` naming an unknown upstream.
//!
//! Run: `cargo test -p envoy-e2e` (after `make wasm functions`), or
//! `make e2e`. `cargo test -p envoy-e2e -- errors` runs a subset.

use std::collections::BTreeSet;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use envoy_e2e::config::{
    self, DEMO_CLUSTER, DEMO_LISTENER, INVALID_LISTENER, NOBATCH_LISTENER, SLOW_LISTENER,
    UNKNOWN_UPSTREAM,
};
use envoy_e2e::http::Reply;
use envoy_e2e::paths::Paths;
use envoy_e2e::process::ProcessGuard;
use envoy_e2e::sandbox::{CREATE_ORDER_DELAY_MS, SLOW_DELAY_MS, SLOW_ECHO_DELAY_MS};
use envoy_e2e::Sandbox;
use graphql_corpus::{Case, Variant};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Harness

struct Shared {
    paths: Paths,
    sandbox: OnceLock<Result<Sandbox, String>>,
}

impl Shared {
    fn sandbox(&self) -> Result<&Sandbox, Failed> {
        self.sandbox
            .get_or_init(|| {
                let started = Instant::now();
                let sandbox = Sandbox::start(self.paths.clone());
                if let Ok(s) = &sandbox {
                    eprintln!(
                        "envoy-e2e: sandbox up in {:?}: Envoy admin {}, listeners {:?}, mocks {} (fast) {} (slow); log {}",
                        started.elapsed(),
                        s.admin,
                        s.ports,
                        s.fast.addr,
                        s.slow.addr,
                        s.envoy_log.display()
                    );
                }
                sandbox
            })
            .as_ref()
            .map_err(|e| Failed::from(format!("the sandbox did not start: {e}")))
    }
}

type SandboxTest = fn(&Sandbox);
type StaticTest = fn(&Paths);

const SANDBOX_TESTS: &[(&str, SandboxTest)] = &[
    (
        "demo::seed_query_answers_exactly",
        seed_query_answers_exactly,
    ),
    (
        "demo::non_graphql_path_is_404_without_calls",
        non_graphql_path_is_404,
    ),
    (
        "demo::graphql_route_never_contacts_the_openfaas_upstream",
        graphql_route_never_contacts_upstream,
    ),
    ("demo::get_request_is_answered", get_request_is_answered),
    (
        "parallel::concurrent_requests_get_their_own_answers",
        concurrent_requests_get_their_own_answers,
    ),
    (
        "parallel::identical_concurrent_requests_share_their_calls",
        identical_concurrent_requests_share_their_calls,
    ),
    (
        "demo::a_chunked_post_is_answered",
        a_chunked_post_is_answered,
    ),
    (
        "parallel::root_fields_are_fetched_concurrently",
        root_fields_are_fetched_concurrently,
    ),
    (
        "parallel::nested_call_starts_as_soon_as_its_parent_arrives",
        nested_call_starts_when_parent_arrives,
    ),
    (
        "batching::users_orders_with_batch_take_two_calls",
        users_orders_with_batch_take_two_calls,
    ),
    (
        "batching::users_orders_without_batch_take_one_call_per_user",
        users_orders_without_batch_take_one_call_per_user,
    ),
    (
        "batching::users_orders_without_batch_are_all_in_flight_together",
        users_orders_without_batch_are_all_in_flight_together,
    ),
    (
        "errors::unknown_field_is_a_validation_error_without_calls",
        unknown_field_is_a_validation_error,
    ),
    (
        "errors::syntax_error_is_a_parse_error_without_calls",
        syntax_error_is_a_parse_error,
    ),
    (
        "errors::graphql_response_media_type_keeps_the_400",
        graphql_response_media_type_keeps_the_400,
    ),
    (
        "errors::missing_required_variable_is_bad_user_input_without_calls",
        missing_variable_is_bad_user_input,
    ),
    (
        "errors::function_404_nulls_only_its_field",
        function_404_nulls_only_its_field,
    ),
    (
        "config::invalid_configuration_answers_500_and_is_logged",
        invalid_configuration_answers_500_and_is_logged,
    ),
    (
        "graphql::introspection_rebuilds_the_configured_schema_in_graphql_js",
        introspection_rebuilds_the_configured_schema,
    ),
    (
        "graphql::mutations_run_one_after_another",
        mutations_run_one_after_another,
    ),
    (
        "contracts::envelopes_and_renamed_keys",
        envelopes_and_renamed_keys,
    ),
    (
        "contracts::constant_renamed_and_argument_headers",
        constant_renamed_and_argument_headers,
    ),
    (
        "observability::metrics_in_prometheus",
        metrics_in_prometheus,
    ),
    (
        "faults::a_hanging_function_is_cut_off_at_the_deadline",
        a_hanging_function_is_cut_off_at_the_deadline,
    ),
    (
        "faults::arguments_cannot_inject_paths_parameters_or_headers",
        arguments_cannot_inject,
    ),
];

const STATIC_TESTS: &[(&str, StaticTest)] = &[
    (
        "compose::envoy_config_is_the_demo_with_container_addresses",
        compose_envoy_config_matches_demo,
    ),
    (
        "compose::docker_compose_file_is_consistent",
        docker_compose_file_is_consistent,
    ),
    (
        "config::envoy_validates_demo_and_compose_configs",
        envoy_validates_demo_and_compose_configs,
    ),
];

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // Serial: the tests share the mocks' counters.
    args.test_threads = Some(1);
    let shared = Arc::new(Shared {
        paths: Paths::discover(),
        sandbox: OnceLock::new(),
    });
    let mut trials = Vec::new();
    for &(name, test) in SANDBOX_TESTS {
        let shared = Arc::clone(&shared);
        trials.push(Trial::test(name, move || {
            let sandbox = shared.sandbox()?;
            sandbox.reset();
            test(sandbox);
            Ok(())
        }));
    }
    // The GraphQL corpus (corpus/cases/*.yaml), one trial per case.
    match graphql_corpus::cases() {
        Ok(cases) => {
            for case in cases {
                let shared = Arc::clone(&shared);
                let name = format!("corpus::{}", case.id.replace(": ", "::"));
                trials.push(Trial::test(name, move || {
                    let sandbox = shared.sandbox()?;
                    sandbox.reset();
                    corpus_case(sandbox, &case).map_err(Failed::from)
                }));
            }
        }
        Err(e) => trials.push(Trial::test("corpus::load", move || Err(Failed::from(e)))),
    }
    for &(name, test) in STATIC_TESTS {
        let shared = Arc::clone(&shared);
        trials.push(Trial::test(name, move || {
            test(&shared.paths);
            Ok(())
        }));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    // Teardown, pass or fail: the last reference stops Envoy and the mocks
    // (by PID, whole process groups) before the exit code is returned.
    match Arc::try_unwrap(shared) {
        Ok(shared) => drop(shared),
        Err(_) => {
            eprintln!("envoy-e2e: the sandbox is still referenced; its processes die with us")
        }
    }
    conclusion.exit_code()
}

// ---------------------------------------------------------------------------
// Helpers

/// The demo's seed request (README, demo.sh).
const SEED_REQUEST: &str = r#"{"query":"query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }","variables":{"userId":"1"}}"#;

/// Its exact answer.
const SEED_ANSWER: &str = r#"{"data":{"user":{"id":"1","name":"Alice","email":"alice@example.com","orders":[{"id":"order-101","amount":99.99},{"id":"order-102","amount":19.5}]}}}"#;

fn request(query: &str) -> String {
    json!({ "query": query }).to_string()
}

fn assert_json_answer(reply: &Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "HTTP status (body: {})", reply.body);
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/json"),
        "content-type (body: {})",
        reply.body
    );
    reply.json()
}

/// Every object key of a JSON document, depth first, in document order.
fn keys_in_order(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let path = format!("{prefix}/{key}");
                out.push(path.clone());
                keys_in_order(item, &path, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                keys_in_order(item, &format!("{prefix}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A request error: `errors` with a message and this code, and no `data`.
fn assert_request_error(body: &Value, code: &str) -> String {
    let object = body.as_object().expect("the answer is a JSON object");
    assert!(
        !object.contains_key("data"),
        "a request error has no `data` key: {body}"
    );
    let errors = body["errors"].as_array().expect("`errors` is a list");
    assert!(!errors.is_empty(), "`errors` is empty: {body}");
    for error in errors {
        let message = error["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "error without a message: {body}");
        assert_eq!(error["extensions"]["code"], code, "error code in {body}");
    }
    errors[0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn assert_no_calls(sandbox: &Sandbox) {
    let fast = sandbox.fast.stats();
    let slow = sandbox.slow.stats();
    assert_eq!(fast["total"], 0, "no function may be called: {fast}");
    assert_eq!(slow["total"], 0, "no function may be called: {slow}");
}

/// The mock log's entries for one function.
fn log_of<'a>(stats: &'a Value, function: &str) -> Vec<&'a Value> {
    stats["log"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["function"] == function)
        .collect()
}

fn micros(entry: &Value, key: &str) -> u64 {
    entry[key]
        .as_u64()
        .unwrap_or_else(|| panic!("log entry without {key}: {entry}"))
}

/// The orders every user of the mock data set has, as the query selects
/// them (`{ id amount }`).
fn expected_orders(user: u32) -> Value {
    match user {
        1 => json!([{"id": "order-101", "amount": 99.99}, {"id": "order-102", "amount": 19.5}]),
        2 => json!([{"id": "order-201", "amount": 250.0}]),
        k => json!([{"id": format!("order-{k}01"), "amount": f64::from(k) * 10.0 + 0.5}]),
    }
}

fn expected_user_name(user: u32) -> String {
    match user {
        1 => "Alice".into(),
        2 => "Bob".into(),
        k => format!("User {k}"),
    }
}

const USERS_ORDERS: &str = "{ users { id name orders { id amount } } }";
const USER_COUNT: u32 = 50;

fn assert_users_with_orders(body: &Value) {
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    let users = body["data"]["users"]
        .as_array()
        .expect("data.users is a list");
    assert_eq!(users.len(), USER_COUNT as usize, "number of users");
    for (k, user) in (1..=USER_COUNT).zip(users) {
        assert_eq!(
            *user,
            json!({"id": k.to_string(), "name": expected_user_name(k), "orders": expected_orders(k)}),
            "user {k}"
        );
    }
}

// ---------------------------------------------------------------------------
// 1. Seed query and the demo route

fn seed_query_answers_exactly(sandbox: &Sandbox) {
    let reply = sandbox.graphql(DEMO_LISTENER, SEED_REQUEST);
    let body = assert_json_answer(&reply, 200);
    let expected: Value = serde_json::from_str(SEED_ANSWER).expect("SEED_ANSWER is JSON");
    assert_eq!(body, expected, "parsed answer");
    let (mut got, mut want) = (Vec::new(), Vec::new());
    keys_in_order(&body, "", &mut got);
    keys_in_order(&expected, "", &mut want);
    assert_eq!(got, want, "key order");
    assert_eq!(reply.body, SEED_ANSWER, "answer text");

    let stats = sandbox.fast.stats();
    assert_eq!(stats["total"], 2, "function calls: {stats}");
    let uris: Vec<&Value> = stats["log"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["uri"])
        .collect();
    assert_eq!(
        uris,
        [
            "/function/user-profile?id=1",
            "/function/user-orders-batch?ids=1"
        ],
        "calls: {stats}"
    );
}

fn non_graphql_path_is_404(sandbox: &Sandbox) {
    let upstream = format!("cluster.{DEMO_CLUSTER}.upstream_rq_total");
    let before = sandbox.envoy_stat(&upstream);
    let base = format!("http://127.0.0.1:{}", sandbox.port(DEMO_LISTENER));
    let expected = "not found: GraphQL is served at /graphql\n";
    for path in ["/", "/other", "/graphql/x", "/function/user-profile?id=1"] {
        let reply = sandbox
            .client
            .get(&format!("{base}{path}"))
            .expect("GET to the demo listener");
        assert_eq!(reply.status, 404, "GET {path}: {}", reply.body);
        assert_eq!(reply.body, expected, "GET {path}");
    }
    let reply = sandbox
        .client
        .post_json(&format!("{base}/graph"), SEED_REQUEST)
        .expect("POST to the demo listener");
    assert_eq!(reply.status, 404, "POST /graph: {}", reply.body);
    assert_eq!(reply.body, expected, "POST /graph");
    assert_no_calls(sandbox);
    assert_eq!(
        sandbox.envoy_stat(&upstream) - before,
        0,
        "requests to cluster {DEMO_CLUSTER}"
    );
}

fn graphql_route_never_contacts_upstream(sandbox: &Sandbox) {
    // Every request Envoy makes to cluster `openfaas` counts here, the
    // filter's calls and anything the router would forward alike. The mock
    // counts only function calls, so a forwarded /graphql request would show
    // as one request more at Envoy than calls at the mock.
    let upstream = format!("cluster.{DEMO_CLUSTER}.upstream_rq_total");
    let before = sandbox.envoy_stat(&upstream);
    let requests = [
        SEED_REQUEST.to_string(),
        request(USERS_ORDERS),
        request("{ a: user(id:\"1\") { name } b: user(id:\"999\") { name } }"),
        request("{ user(id:\"1\") { nope } }"),
    ];
    for body in &requests {
        let reply = sandbox.graphql(DEMO_LISTENER, body);
        assert_eq!(reply.status, 200, "{body}: {}", reply.body);
    }
    let stats = sandbox.fast.stats();
    let calls = stats["total"].as_u64().expect("total");
    assert_eq!(calls, 2 + 2 + 2, "function calls: {stats}");
    for entry in stats["log"].as_array().into_iter().flatten() {
        let uri = entry["uri"].as_str().unwrap_or_default();
        assert!(uri.starts_with("/function/"), "unexpected call {uri}");
    }
    assert_eq!(
        sandbox.envoy_stat(&upstream) - before,
        calls,
        "requests Envoy sent to cluster {DEMO_CLUSTER} (must be exactly the function calls)"
    );
}

fn get_request_is_answered(sandbox: &Sandbox) {
    // GraphQL over HTTP GET: the query in the URL, no body.
    let url = format!(
        "{}?query=%7B%20user(id%3A%222%22)%20%7B%20name%20%7D%20%7D",
        sandbox.graphql_url(DEMO_LISTENER)
    );
    let reply = sandbox.client.get(&url).expect("GET /graphql");
    let body = assert_json_answer(&reply, 200);
    assert_eq!(body, json!({"data": {"user": {"name": "Bob"}}}));
    assert_eq!(sandbox.fast.stats()["total"], 1);
}

// ---------------------------------------------------------------------------
// 2, 3. Parallelism

fn concurrent_requests_get_their_own_answers(sandbox: &Sandbox) {
    // Several clients at once on the one worker: every answer must be made of
    // its own calls' responses.
    const CLIENTS: u32 = 8;
    let started = Instant::now();
    let replies: Vec<(u32, Reply)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=CLIENTS)
            .map(|k| {
                scope.spawn(move || {
                    let query =
                        format!("{{ user(id:\"{k}\") {{ id name orders {{ id amount }} }} }}");
                    (k, sandbox.graphql(SLOW_LISTENER, &request(&query)))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let elapsed = started.elapsed();
    for (k, reply) in &replies {
        let body = assert_json_answer(reply, 200);
        assert_eq!(
            body,
            json!({"data": {"user": {"id": k.to_string(), "name": expected_user_name(*k), "orders": expected_orders(*k)}}}),
            "client {k}"
        );
    }
    let stats = sandbox.slow.stats();
    assert_eq!(stats["total"], 2 * CLIENTS, "function calls: {stats}");
    assert_eq!(
        stats["max_in_flight_by_function"]["user-profile"], CLIENTS,
        "the clients' first calls overlap: {stats}"
    );
    // Each request is two sequential 100 ms calls; one after the other the
    // clients would take CLIENTS x 200 ms.
    let bound = Duration::from_millis(4 * SLOW_DELAY_MS);
    assert!(
        elapsed < bound,
        "{CLIENTS} clients took {elapsed:?} (bound {bound:?})"
    );
}

fn identical_concurrent_requests_share_their_calls(sandbox: &Sandbox) {
    // Eight clients ask for the same user at once (the functions take
    // 100 ms): the later requests join the first one's calls in flight.
    const CLIENTS: u32 = 8;
    const JOINED: &str = "wasmcustom.graphql_aggregator.coalesced_calls";
    let before = sandbox.envoy_stat(JOINED);
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| scope.spawn(|| sandbox.graphql(SLOW_LISTENER, SEED_REQUEST)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    for reply in &replies {
        assert_json_answer(reply, 200);
        assert_eq!(reply.body, SEED_ANSWER);
    }
    let stats = sandbox.slow.stats();
    assert_eq!(
        stats["total"], 2,
        "one user-profile and one orders call for {CLIENTS} requests: {stats}"
    );
    assert_eq!(
        sandbox.envoy_stat(JOINED) - before,
        u64::from(2 * (CLIENTS - 1))
    );
}

fn a_chunked_post_is_answered(sandbox: &Sandbox) {
    // Envoy takes `transfer-encoding` off before the filter sees the
    // headers: the request must not be taken for one without a body.
    use std::io::{Read, Write};
    let port = sandbox.port(DEMO_LISTENER);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = SEED_REQUEST.as_bytes();
    let mut request = format!(
        "POST /graphql HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    stream.write_all(&request).expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(SEED_ANSWER), "{response}");
}

fn root_fields_are_fetched_concurrently(sandbox: &Sandbox) {
    let query =
        "{ user(id:\"1\") { name } users { id } inventory(sku:\"sku-1\") { sku quantity } }";
    let reply = sandbox.graphql(SLOW_LISTENER, &request(query));
    let body = assert_json_answer(&reply, 200);
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    assert_eq!(body["data"]["user"], json!({"name": "Alice"}));
    assert_eq!(
        body["data"]["users"].as_array().map(Vec::len),
        Some(USER_COUNT as usize)
    );
    assert_eq!(
        body["data"]["inventory"],
        json!({"sku": "sku-1", "quantity": 7})
    );

    let stats = sandbox.slow.stats();
    assert_eq!(stats["total"], 3, "function calls: {stats}");
    assert_eq!(
        stats["max_in_flight"], 3,
        "the three root calls must be in flight together: {stats}"
    );
    let bound = Duration::from_millis(2 * SLOW_DELAY_MS);
    assert!(
        reply.elapsed < bound,
        "three {SLOW_DELAY_MS} ms calls in parallel took {:?} (bound {bound:?})",
        reply.elapsed
    );
}

fn nested_call_starts_when_parent_arrives(sandbox: &Sandbox) {
    // user-profile (100 ms) then user-orders (100 ms), beside echo (400 ms):
    // the orders call must not wait for the slow sibling.
    let query = "{ user(id:\"1\") { name orders { id } } echo(tag:\"slow\") { path rawQuery } }";
    let reply = sandbox.graphql(SLOW_LISTENER, &request(query));
    let body = assert_json_answer(&reply, 200);
    assert_eq!(
        body,
        json!({"data": {
            "user": {"name": "Alice", "orders": [{"id": "order-101"}, {"id": "order-102"}]},
            "echo": {"path": "/function/echo", "rawQuery": "tag=slow"}
        }})
    );

    let stats = sandbox.slow.stats();
    assert_eq!(stats["total"], 3, "function calls: {stats}");
    let profile = log_of(&stats, "user-profile");
    let orders = log_of(&stats, "user-orders");
    let echo = log_of(&stats, "echo");
    assert!(
        profile.len() == 1 && orders.len() == 1 && echo.len() == 1,
        "calls: {stats}"
    );
    let (profile, orders, echo) = (profile[0], orders[0], echo[0]);
    assert_eq!(orders["uri"], "/function/user-orders?id=1");
    assert!(
        micros(echo, "started_us") < micros(profile, "finished_us"),
        "root fields start together: {stats}"
    );
    assert!(
        micros(orders, "started_us") >= micros(profile, "finished_us"),
        "the orders call needs the user: {stats}"
    );
    assert!(
        micros(orders, "started_us") < micros(echo, "finished_us"),
        "the orders call must start as soon as the user arrives, before the {SLOW_ECHO_DELAY_MS} ms \
         sibling finishes: {stats}"
    );
}

// ---------------------------------------------------------------------------
// 4. N+1

fn users_orders_with_batch_take_two_calls(sandbox: &Sandbox) {
    let reply = sandbox.graphql(DEMO_LISTENER, &request(USERS_ORDERS));
    let body = assert_json_answer(&reply, 200);
    assert_users_with_orders(&body);

    let stats = sandbox.fast.stats();
    assert_eq!(stats["total"], 2, "function calls: {stats}");
    assert_eq!(stats["calls"]["users"], 1);
    assert_eq!(stats["calls"]["user-orders-batch"], 1);
    let batch = log_of(&stats, "user-orders-batch");
    let uri = batch[0]["uri"].as_str().expect("uri");
    let all: Vec<String> = (1..=USER_COUNT).map(|k| k.to_string()).collect();
    assert_eq!(
        uri,
        format!("/function/user-orders-batch?ids={}", all.join(",")),
        "one batch call with every user id"
    );
}

fn users_orders_without_batch(sandbox: &Sandbox, listener: &str, stats: &dyn Fn() -> Value) {
    let reply = sandbox.graphql(listener, &request(USERS_ORDERS));
    let body = assert_json_answer(&reply, 200);
    assert_users_with_orders(&body);
    let stats = stats();
    assert_eq!(stats["total"], 1 + USER_COUNT, "function calls: {stats}");
    assert_eq!(stats["calls"]["users"], 1);
    assert_eq!(stats["calls"]["user-orders"], USER_COUNT);
    let uris: BTreeSet<&str> = log_of(&stats, "user-orders")
        .iter()
        .filter_map(|e| e["uri"].as_str())
        .collect();
    let expected: BTreeSet<String> = (1..=USER_COUNT)
        .map(|k| format!("/function/user-orders?id={k}"))
        .collect();
    assert_eq!(
        uris,
        expected.iter().map(String::as_str).collect(),
        "one call per user, no duplicates"
    );
}

fn users_orders_without_batch_take_one_call_per_user(sandbox: &Sandbox) {
    users_orders_without_batch(sandbox, NOBATCH_LISTENER, &|| sandbox.fast.stats());
}

fn users_orders_without_batch_are_all_in_flight_together(sandbox: &Sandbox) {
    let started = Instant::now();
    users_orders_without_batch(sandbox, SLOW_LISTENER, &|| sandbox.slow.stats());
    let elapsed = started.elapsed();
    let stats = sandbox.slow.stats();
    assert_eq!(
        stats["max_in_flight_by_function"]["user-orders"], USER_COUNT,
        "all {USER_COUNT} order calls must be in flight together: {stats}"
    );
    let orders = log_of(&stats, "user-orders");
    let last_start = orders.iter().map(|e| micros(e, "started_us")).max();
    let first_end = orders.iter().map(|e| micros(e, "finished_us")).min();
    assert!(
        last_start < first_end,
        "every order call starts before the first one ends: {stats}"
    );
    // Sequential calls would take 100 ms + 50 x 100 ms.
    let bound = Duration::from_millis(10 * SLOW_DELAY_MS);
    assert!(
        elapsed < bound,
        "users then 50 parallel calls took {elapsed:?} (bound {bound:?})"
    );
}

// ---------------------------------------------------------------------------
// 5. Errors

fn unknown_field_is_a_validation_error(sandbox: &Sandbox) {
    let reply = sandbox.graphql(DEMO_LISTENER, &request("{ user(id:\"1\") { id nope } }"));
    let body = assert_json_answer(&reply, 200);
    let message = assert_request_error(&body, "GRAPHQL_VALIDATION_FAILED");
    assert!(
        message.contains("nope"),
        "message names the field: {message}"
    );
    assert_no_calls(sandbox);
}

fn syntax_error_is_a_parse_error(sandbox: &Sandbox) {
    let reply = sandbox.graphql(DEMO_LISTENER, &request("{ user(id:\"1\") { name }"));
    let body = assert_json_answer(&reply, 200);
    assert_request_error(&body, "GRAPHQL_PARSE_FAILED");
    assert_no_calls(sandbox);
}

fn graphql_response_media_type_keeps_the_400(sandbox: &Sandbox) {
    let reply = sandbox
        .client
        .post(
            &sandbox.graphql_url(DEMO_LISTENER),
            &[
                ("content-type", "application/json"),
                ("accept", "application/graphql-response+json"),
            ],
            &request("{ user(id:\"1\") { name }"),
        )
        .expect("POST");
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/graphql-response+json")
    );
    assert_request_error(&reply.json(), "GRAPHQL_PARSE_FAILED");
    assert_no_calls(sandbox);
}

fn missing_variable_is_bad_user_input(sandbox: &Sandbox) {
    let body = json!({
        "query": "query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name } }",
        "variables": {}
    });
    let reply = sandbox.graphql(DEMO_LISTENER, &body.to_string());
    let body = assert_json_answer(&reply, 200);
    let message = assert_request_error(&body, "BAD_USER_INPUT");
    assert!(
        message.contains("userId"),
        "message names the variable: {message}"
    );
    assert_no_calls(sandbox);
}

fn function_404_nulls_only_its_field(sandbox: &Sandbox) {
    let query = "{ a: user(id:\"1\") { name } b: user(id:\"999\") { name } }";
    let reply = sandbox.graphql(DEMO_LISTENER, &request(query));
    let body = assert_json_answer(&reply, 200);
    assert_eq!(body["data"]["a"]["name"], "Alice", "{body}");
    assert!(
        body["data"]
            .as_object()
            .is_some_and(|d| d.contains_key("b")),
        "data.b is present: {body}"
    );
    assert_eq!(body["data"]["b"], Value::Null, "{body}");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "exactly one error: {body}");
    let error = &errors[0];
    assert_eq!(error["path"], json!(["b"]));
    assert_eq!(error["extensions"]["code"], "UPSTREAM_HTTP_ERROR");
    assert_eq!(error["extensions"]["status"], 404);
    assert_eq!(error["extensions"]["upstream"], DEMO_CLUSTER);
    assert!(
        !error["message"].as_str().unwrap_or_default().is_empty(),
        "{body}"
    );
    let stats = sandbox.fast.stats();
    assert_eq!(stats["calls"]["user-profile"], 2, "{stats}");
    assert_eq!(stats["total"], 2, "{stats}");
}

// ---------------------------------------------------------------------------
// 6. Invalid configuration

fn invalid_configuration_answers_500_and_is_logged(sandbox: &Sandbox) {
    let reply = sandbox.graphql(INVALID_LISTENER, SEED_REQUEST);
    let body = assert_json_answer(&reply, 500);
    assert_request_error(&body, "GATEWAY_MISCONFIGURED");
    assert_no_calls(sandbox);

    // The filter says why in Envoy's log, naming the unknown upstream.
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let log = sandbox.envoy_log_text();
        let found = log
            .lines()
            .find(|l| {
                l.contains("graphql-aggregator: invalid configuration")
                    && l.contains(&format!("\"{UNKNOWN_UPSTREAM}\""))
            })
            .map(str::to_string);
        if let Some(line) = found {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "Envoy's log ({}) has no `graphql-aggregator: invalid configuration` line naming \
             {UNKNOWN_UPSTREAM:?}",
            sandbox.envoy_log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        line.contains("Query.user"),
        "the line names the field: {line}"
    );
}

// ---------------------------------------------------------------------------
// docker-compose and config validity (no sandbox)

fn differences(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => differences(v, w, &format!("{path}/{k}"), out),
                    None => out.push(format!("{path}/{k}: only in the expected config")),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{path}/{k}: only in the compose config"));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differences(v, w, &format!("{path}/{i}"), out);
            }
        }
        _ if a != b => {
            let short = |v: &Value| {
                let text = v.to_string();
                match text.char_indices().nth(160) {
                    Some((at, _)) => format!("{}...", &text[..at]),
                    None => text,
                }
            };
            out.push(format!(
                "{path}: expected {}, compose has {}",
                short(a),
                short(b)
            ));
        }
        _ => {}
    }
}

fn compose_envoy_config_matches_demo(paths: &Paths) {
    let demo = config::load_yaml(&paths.demo_config).expect("demo config");
    if std::env::var_os("ENVOY_E2E_WRITE_COMPOSE_CONFIG").is_some() {
        let text = config::compose_config_text(&demo).expect("compose config");
        std::fs::write(&paths.compose_config, text).expect("write the compose config");
        eprintln!("envoy-e2e: wrote {}", paths.compose_config.display());
    }
    let expected = config::compose_config(&demo).expect("compose config");
    let actual = config::load_yaml(&paths.compose_config).expect("compose envoy config");
    let mut diff = Vec::new();
    differences(&expected, &actual, "", &mut diff);
    assert!(
        diff.is_empty(),
        "{} drifted from envoy/envoy.yaml; regenerate it with \
         `ENVOY_E2E_WRITE_COMPOSE_CONFIG=1 cargo test -p envoy-e2e -- compose`:\n{}",
        paths.compose_config.display(),
        diff.join("\n")
    );
}

/// A path without `.` and `..` components (lexically).
fn normalize(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn port_of(value: &Value) -> u64 {
    value["socket_address"]["port_value"]
        .as_u64()
        .expect("port_value")
}

fn docker_compose_file_is_consistent(paths: &Paths) {
    let compose = config::load_yaml(&paths.compose_file).expect("docker-compose.yaml");
    let envoy_config = config::load_yaml(&paths.compose_config).expect("compose envoy config");
    let compose_dir = paths.compose_file.parent().expect("envoy/");
    let services = compose["services"]
        .as_object()
        .expect("services is a mapping");
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(names, ["functions", "envoy"], "services");

    // Every bind mount's source exists (dist/ only after `make wasm`).
    let mut targets = Vec::new();
    for (name, service) in services {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let spec = volume.as_str().expect("short volume syntax");
            let mut parts = spec.split(':');
            let source = parts.next().unwrap_or_default();
            let target = parts.next().unwrap_or_default();
            assert!(target.starts_with('/'), "{name}: volume {spec}");
            if source.starts_with('.') {
                let path = compose_dir.join(source);
                assert!(
                    path.exists() || source.contains("dist"),
                    "{name}: mount source {} does not exist",
                    path.display()
                );
            }
            targets.push((name.as_str(), source, target));
        }
    }

    // Envoy reads the compose copy of the demo configuration, and the filter
    // at the (relative) path that configuration names.
    let envoy = &services["envoy"];
    let command: Vec<&str> = envoy["command"]
        .as_array()
        .expect("envoy command is a list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let config_path = command
        .iter()
        .skip_while(|a| **a != "-c")
        .nth(1)
        .copied()
        .expect("envoy -c <config>");
    assert!(
        targets.iter().any(|(s, source, target)| *s == "envoy"
            && *target == config_path
            && source.ends_with("docker-compose.envoy.yaml")),
        "envoy mounts docker-compose.envoy.yaml at {config_path}: {targets:?}"
    );
    let wasm = envoy_config
        .pointer("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters/0/typed_config/config/vm_config/code/local/filename")
        .and_then(Value::as_str)
        .expect("wasm filename");
    let working_dir = envoy["working_dir"].as_str().expect("envoy working_dir");
    let wasm_in_container = format!("{working_dir}/{wasm}");
    let on_host = targets.iter().find_map(|(s, source, target)| {
        let rest = wasm_in_container.strip_prefix(&format!("{target}/"))?;
        (*s == "envoy").then(|| normalize(&compose_dir.join(source).join(rest)))
    });
    assert_eq!(
        on_host,
        Some(normalize(&paths.repo.join("dist/graphql-aggregator.wasm"))),
        "envoy must find the filter at {wasm_in_container}: {targets:?}"
    );

    // Ports: the functions listen where the cluster points, Envoy's listener
    // is published.
    let cluster = envoy_config
        .pointer("/static_resources/clusters/0/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address")
        .expect("cluster endpoint");
    assert_eq!(cluster["socket_address"]["address"], "functions");
    let functions_port = port_of(cluster);
    let functions_command = services["functions"]["command"].to_string();
    assert!(
        functions_command.contains(&format!("0.0.0.0:{functions_port}")),
        "functions listen on 0.0.0.0:{functions_port}: {functions_command}"
    );
    let listener_port = port_of(
        envoy_config
            .pointer("/static_resources/listeners/0/address")
            .expect("listener address"),
    );
    let published: Vec<String> = envoy["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    assert!(
        published
            .iter()
            .any(|p| p.ends_with(&format!(":{listener_port}"))),
        "envoy publishes port {listener_port}: {published:?}"
    );
}

fn envoy_validates_demo_and_compose_configs(paths: &Paths) {
    if let Err(e) = paths.check() {
        panic!("{e}");
    }
    std::fs::create_dir_all(&paths.work).expect("create the work directory");
    for (name, config) in [
        ("demo", &paths.demo_config),
        ("compose", &paths.compose_config),
    ] {
        let log = paths.work.join(format!("validate-{name}.log"));
        let file = std::fs::File::create(&log).expect("create the validate log");
        let mut command = Command::new(&paths.envoy);
        command
            .args(["--mode", "validate", "--use-dynamic-base-id", "-c"])
            .arg(config)
            .current_dir(&paths.repo)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        let mut envoy = ProcessGuard::spawn("envoy --mode validate", command).expect("spawn");
        let status = envoy.wait_exit(Duration::from_secs(20));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            status.is_some_and(|s| s.success())
                && text.contains("configuration")
                && text.contains("OK"),
            "envoy --mode validate -c {}: {status:?}\n{text}",
            config.display()
        );
    }
}

// ---------------------------------------------------------------------------
// GraphQL completeness: the corpus, introspection, mutations

/// One corpus case through Envoy (function-call counts are checked natively).
fn corpus_case(sandbox: &Sandbox, case: &Case) -> Result<(), String> {
    let url = format!(
        "http://127.0.0.1:{}{}",
        sandbox.port(config::corpus_listener(case.variant)),
        case.path
    );
    let reply = sandbox
        .client
        .send(&case.method, &url, &case.headers, &case.body)
        .map_err(|e| format!("{}: {e}", case.id))?;
    case.check(reply.status, &reply.headers, reply.body.as_bytes())
}

/// graphql-js's standard introspection query, answered by the filter,
/// rebuilt by graphql-js's `buildClientSchema` and printed, equals the
/// configured SDL printed by graphql-js (mapping directives dropped).
fn introspection_rebuilds_the_configured_schema(sandbox: &Sandbox) {
    let dir = sandbox.paths.repo.join("envoy/e2e/js");
    let modules = dir.join("node_modules/graphql");
    assert!(
        modules.is_dir(),
        "graphql-js is not installed: run `make e2e` (it runs `npm ci --prefix envoy/e2e/js`)"
    );
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
    let listener = config::corpus_listener(Variant::Public);
    for file in [
        "introspection-query.graphql",
        "introspection-query-full.graphql",
    ] {
        let query = std::fs::read_to_string(dir.join(file)).expect("introspection query file");
        let reply = sandbox.graphql(listener, &request(&query));
        let introspection = assert_json_answer(&reply, 200);
        assert!(
            introspection.get("errors").is_none(),
            "{file}: {introspection}"
        );
        let input = json!({ "sdl": graphql_corpus::SCHEMA, "introspection": introspection });
        let mut child = Command::new(&node)
            .arg(dir.join("print-schemas.mjs"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {node} (Node.js is needed for this test): {e}"));
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("node stdin");
            stdin
                .write_all(input.to_string().as_bytes())
                .expect("write to node");
        }
        let output = child.wait_with_output().expect("node finished");
        assert!(
            output.status.success(),
            "node print-schemas.mjs failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed: Value = serde_json::from_slice(&output.stdout).expect("node prints JSON");
        let (expected, actual) = (
            printed["expected"].as_str().unwrap_or_default(),
            printed["actual"].as_str().unwrap_or_default(),
        );
        assert!(
            expected.contains("union SearchResult = User | Inventory"),
            "{expected}"
        );
        assert!(
            !actual.contains("@http") && !actual.contains("HttpBatch"),
            "{actual}"
        );
        assert_eq!(
            actual, expected,
            "{file}: the introspected schema differs from the configured one"
        );
    }
}

/// Root mutation fields run one after another: the second `create-order`
/// call starts only after the first one answered (each takes
/// CREATE_ORDER_DELAY_MS), and it sees the first one's order.
fn mutations_run_one_after_another(sandbox: &Sandbox) {
    let query = r#"mutation {
        first: createOrder(input: {userId: "serial", amount: 1}) { id orderNumber }
        second: createOrder(input: {userId: "serial", amount: 2}) { id orderNumber }
        third: createOrder(input: {userId: "serial", amount: 3}) { orderNumber }
    }"#;
    let reply = sandbox.graphql(config::corpus_listener(Variant::Public), &request(query));
    let body = assert_json_answer(&reply, 200);
    assert_eq!(
        body,
        json!({"data": {
            "first": {"id": "order-serial-1", "orderNumber": 1},
            "second": {"id": "order-serial-2", "orderNumber": 2},
            "third": {"orderNumber": 3}
        }})
    );
    let stats = sandbox.fast.stats();
    let calls = log_of(&stats, "create-order");
    assert_eq!(calls.len(), 3, "{stats}");
    for pair in calls.windows(2) {
        assert!(
            micros(pair[1], "started_us") >= micros(pair[0], "finished_us"),
            "a mutation field started before the previous one answered: {stats}"
        );
    }
    let total = micros(calls[2], "finished_us") - micros(calls[0], "started_us");
    assert!(total >= 3 * CREATE_ORDER_DELAY_MS * 1000, "{stats}");
}

// ---------------------------------------------------------------------------
// Faults and injection

/// One function never answers in time, another answers at once: the reply
/// comes by the deadline (plus 100 ms), with the quick field's data and
/// `UPSTREAM_TIMEOUT` on the other.
fn a_hanging_function_is_cut_off_at_the_deadline(sandbox: &Sandbox) {
    let query = r#"{ slow: sleep(ms: 30000) { slept } fast: user(id: "1") { name } }"#;
    let reply = sandbox.graphql(config::DEADLINE_LISTENER, &request(query));
    let body = assert_json_answer(&reply, 200);
    assert!(
        reply.elapsed < Duration::from_millis(config::DEADLINE_MS + 100),
        "answered after {:?}, the deadline is {} ms",
        reply.elapsed,
        config::DEADLINE_MS
    );
    assert_eq!(
        body["data"],
        json!({"slow": null, "fast": {"name": "Alice"}}),
        "{body}"
    );
    assert_eq!(body["errors"][0]["path"], json!(["slow"]));
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UPSTREAM_TIMEOUT",
        "{body}"
    );
    let stats = sandbox.fast.stats();
    let sleep = log_of(&stats, "sleep");
    assert_eq!(sleep.len(), 1, "{stats}");
    assert_eq!(sleep[0]["uri"], "/function/sleep?ms=30000");
}

/// `../admin?x=1&y=2` reaches the function as one encoded parameter; a
/// header value with CR/LF is never sent (the call is refused), a clean
/// one is.
fn arguments_cannot_inject(sandbox: &Sandbox) {
    let listener = config::corpus_listener(Variant::Public);
    let query = r#"{ echoQuery(q: "../admin?x=1&y=2") { path query rawQuery } }"#;
    let body = assert_json_answer(&sandbox.graphql(listener, &request(query)), 200);
    assert_eq!(
        body["data"]["echoQuery"],
        json!({"path": "/function/echo", "query": [["q", "../admin?x=1&y=2"]], "rawQuery": "q=%2E%2E%2Fadmin%3Fx%3D1%26y%3D2"})
    );

    let clean = r#"{ echoHeader(value: "blue") { headers } }"#;
    let body = assert_json_answer(&sandbox.graphql(listener, &request(clean)), 200);
    assert_eq!(
        body["data"]["echoHeader"]["headers"]["x-tag"], "blue",
        "{body}"
    );

    sandbox.reset();
    let injected = r#"{ echoHeader(value: "a\r\nx-injected: yes") { headers } }"#;
    let body = assert_json_answer(&sandbox.graphql(listener, &request(injected)), 200);
    assert_eq!(body["data"], json!({"echoHeader": null}));
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "INVALID_FUNCTION_REQUEST"
    );
    let stats = sandbox.fast.stats();
    assert_eq!(stats["total"], 0, "the function was called: {stats}");
}

// ---------------------------------------------------------------------------
// Observability

/// The filter's metrics in Envoy's Prometheus output count what happened
/// (as deltas: every listener's plugin adds to the same metrics).
fn metrics_in_prometheus(sandbox: &Sandbox) {
    let read = |name: &str| -> f64 {
        sandbox
            .prometheus()
            .get(&format!("graphql_aggregator_{name}{{}}"))
            .copied()
            .unwrap_or(0.0)
    };
    let names = [
        "requests_ok",
        "requests_partial",
        "requests_request_error",
        "calls_openfaas_ok",
        "calls_openfaas_http_error",
        "plan_cache_hits",
        "plan_cache_misses",
        "call_latency_ms_count",
    ];
    let before: Vec<f64> = names.iter().map(|n| read(n)).collect();
    for _ in 0..3 {
        assert_json_answer(&sandbox.graphql(DEMO_LISTENER, SEED_REQUEST), 200);
    }
    let partial = request(r#"{ user(id: "999") { name } }"#);
    assert_json_answer(&sandbox.graphql(DEMO_LISTENER, &partial), 200);
    assert_json_answer(&sandbox.graphql(DEMO_LISTENER, &request("{ nope }")), 200);
    let delta: Vec<f64> = names
        .iter()
        .zip(&before)
        .map(|(n, b)| read(n) - b)
        .collect();
    let text = format!("{:?}", names.iter().zip(&delta).collect::<Vec<_>>());
    assert_eq!(delta[0], 3.0, "requests_ok: {text}");
    assert_eq!(delta[1], 1.0, "requests_partial: {text}");
    assert_eq!(delta[2], 1.0, "requests_request_error: {text}");
    assert_eq!(delta[3], 6.0, "calls_openfaas_ok: {text}");
    assert_eq!(delta[4], 1.0, "calls_openfaas_http_error: {text}");
    assert_eq!(delta[5] + delta[6], 5.0, "plan cache lookups: {text}");
    assert!(delta[5] >= 2.0, "the seed query is validated once: {text}");
    // Histograms reach the admin output at Envoy's next stats flush (every
    // 5 s), which may also bring earlier tests' calls: at least ours.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut latencies = delta[7];
    while latencies < 7.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        latencies = read("call_latency_ms_count") - before[7];
    }
    assert!(latencies >= 7.0, "call latencies recorded: {text}");
}

// ---------------------------------------------------------------------------
// Real functions' contracts

/// A function answering in a `{code, msg, data}` envelope with snake_case
/// keys serves camelCase fields; its failure code becomes null plus
/// `UPSTREAM_ERROR` with its code and message, the other fields kept.
fn envelopes_and_renamed_keys(sandbox: &Sandbox) {
    let listener = config::corpus_listener(Variant::Public);
    let ok = r#"{ profile(id: "1") { userId userName email } }"#;
    let body = assert_json_answer(&sandbox.graphql(listener, &request(ok)), 200);
    assert_eq!(
        body,
        json!({"data": {"profile": {"userId": "1", "userName": "Alice", "email": "alice@example.com"}}})
    );
    let failing = r#"{ profile(id: "999") { userName } user(id: "2") { name } }"#;
    let body = assert_json_answer(&sandbox.graphql(listener, &request(failing)), 200);
    assert_eq!(
        body["data"],
        json!({"profile": null, "user": {"name": "Bob"}})
    );
    let error = &body["errors"][0];
    assert_eq!(error["path"], json!(["profile"]));
    assert_eq!(error["extensions"]["code"], "UPSTREAM_ERROR");
    assert_eq!(error["extensions"]["functionCode"], 40401);
    assert_eq!(error["extensions"]["functionMessage"], "user 999 not found");
    assert_eq!(error["extensions"]["upstream"], "platform");
}

/// The function receives the upstream's constant header, the client's
/// `authorization` renamed to `x-user-token`, and a header built from an
/// argument; an argument with CR/LF refuses the call.
fn constant_renamed_and_argument_headers(sandbox: &Sandbox) {
    let url = sandbox.graphql_url(config::corpus_listener(Variant::Public));
    let body = request(r#"{ whoami(tenant: "acme") { headers } }"#);
    let headers = [
        ("content-type", "application/json"),
        ("authorization", "Bearer t-1"),
    ];
    let reply = sandbox.client.post(&url, &headers, &body).expect("POST");
    let answer = assert_json_answer(&reply, 200);
    let seen = &answer["data"]["whoami"]["headers"];
    assert_eq!(seen["x-internal-token"], "s3cret", "{seen}");
    assert_eq!(seen["x-user-token"], "Bearer t-1", "{seen}");
    assert_eq!(seen["x-tenant"], "acme", "{seen}");
    assert!(
        seen.get("authorization").is_none(),
        "not forwarded as is: {seen}"
    );

    sandbox.reset();
    let evil = request(r#"{ whoami(tenant: "acme\r\nx-admin: yes") { headers } }"#);
    let reply = sandbox.client.post(&url, &headers, &evil).expect("POST");
    let answer = assert_json_answer(&reply, 200);
    assert_eq!(answer["data"], json!({"whoami": null}));
    assert_eq!(
        answer["errors"][0]["extensions"]["code"],
        "INVALID_FUNCTION_REQUEST"
    );
    assert_eq!(sandbox.fast.stats()["total"], 0, "no call was made");
}
