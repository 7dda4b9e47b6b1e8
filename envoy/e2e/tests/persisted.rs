//! Persisted queries through a real GraphQL client: Apollo Client 4 with
//! `PersistedQueryLink` (`envoy/e2e/js/persisted-client.mjs`, run by Node)
//! against real Envoy (1.40, V8) with TWO workers (`--concurrency 2`) and the
//! filter, in front of the mock functions, all on loopback.
//!
//! Two listeners, each the demo's GraphQL listener (its schema and
//! upstream) plus `persisted_queries`:
//!
//! - `persisted-apq`: automatic persisted queries. A first client process
//!   shows the whole round trip: a hash-only GET, `PersistedQueryNotFound`
//!   (`PERSISTED_QUERY_NOT_FOUND`) without any function call, the retry
//!   (POST, query and hash) that registers the document, and the seed
//!   answer. Then fresh client processes send only hash-only GETs, every one
//!   over a new connection, and get the answer without a retry. Envoy's
//!   per-worker listener counters
//!   (`listener.<name>.worker_<n>.downstream_cx_total`) must show that both
//!   workers took some of those connections, so the registration made on
//!   one worker is seen by the other (shared data); a fresh client runs
//!   again, up to `MAX_FRESH_CLIENTS` times, until both workers were hit.
//! - `persisted-trusted`: trusted documents (`only_listed: true`) with a
//!   manifest listing the seed query. The listed document is served by hash
//!   alone (and in full). An unlisted one is refused, and the mock functions
//!   receive no call for it: by hash with `PERSISTED_QUERY_NOT_IN_LIST`
//!   (which the client does not retry), in full, with or without its hash,
//!   with `QUERY_NOT_IN_SAFELIST` (Apollo Router's codes); the attempts
//!   register nothing.
//!
//! The manifest lists the seed query as this client sends it: Apollo Client
//! adds `__typename` to every selection set before hashing, so the script
//! first prints its documents without touching the network (mode
//! `documents`), as Apollo's manifest generator would.
//!
//! Node.js and the npm packages (`npm ci --prefix envoy/e2e/js`, done by
//! `make e2e`) are required: without them every test fails with a message
//! saying so. Every Node run is bounded (`NODE_DEADLINE`, and the script's
//! own timeouts) and killed by PID (its process group) when it overruns.
//!
//! Run: `cargo test -p envoy-e2e --test persisted` (after `make setup wasm
//! functions` and the npm install).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use envoy_e2e::config;
use envoy_e2e::http::Client;
use envoy_e2e::paths::Paths;
use envoy_e2e::process::ProcessGuard;
use envoy_e2e::sandbox::{spawn_mock, with_log_tail};
use envoy_e2e::solo::{solo_config, start_envoy_with, RunningEnvoy};
use envoy_e2e::trials::{Harness, Test};
use envoy_e2e::workers::{self, envoy_with_workers, name_listener_stats};
use serde_json::{json, Value};

/// The listener with automatic persisted queries.
const APQ: &str = "persisted-apq";
/// The listener with trusted documents only.
const TRUSTED: &str = "persisted-trusted";
/// Envoy's worker threads.
const WORKERS: usize = 2;
/// Hash-only requests of one fresh client (each over a new connection).
const HASH_ONLY_RUNS: usize = 8;
/// Fresh clients tried until both workers took some of their connections
/// (each misses a worker with probability 2^-7 under SO_REUSEPORT).
const MAX_FRESH_CLIENTS: usize = 5;
/// The most one Node run may take before it is killed.
const NODE_DEADLINE: Duration = Duration::from_secs(60);
/// The script's own bounds (below `NODE_DEADLINE`).
const SCRIPT_TOTAL_MS: u64 = 45_000;
const SCRIPT_REQUEST_MS: u64 = 5_000;
/// Any request the test makes itself.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The APQ protocol's "send the text" answer.
const NOT_FOUND_MESSAGE: &str = "PersistedQueryNotFound";
const NOT_FOUND_CODE: &str = "PERSISTED_QUERY_NOT_FOUND";
/// `only_listed`: a hash alone that the manifest does not list (Apollo
/// Router's code too).
const TRUSTED_ERROR_CODE: &str = "PERSISTED_QUERY_NOT_IN_LIST";
/// `only_listed`: a document sent in full that the manifest does not list.
const SAFELIST_ERROR_CODE: &str = "QUERY_NOT_IN_SAFELIST";

/// The demo's seed query (README, demo.sh) and its variables.
const SEED_NAME: &str = "GetUserWithOrders";
const SEED_QUERY: &str = "query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }";
/// A document no manifest lists.
const UNLISTED_NAME: &str = "UnlistedUser";
const UNLISTED_QUERY: &str = "query UnlistedUser($id: ID!) { user(id: $id) { name } }";

/// The seed answer as Apollo Client asks for it (with `__typename`).
fn seed_data() -> Value {
    json!({"user": {
        "id": "1", "name": "Alice", "email": "alice@example.com",
        "orders": [
            {"id": "order-101", "amount": 99.99, "__typename": "Order"},
            {"id": "order-102", "amount": 19.5, "__typename": "Order"}
        ],
        "__typename": "User"
    }})
}

fn seed_operation() -> Value {
    json!({"name": SEED_NAME, "query": SEED_QUERY, "variables": {"userId": "1"}})
}

fn unlisted_operation() -> Value {
    json!({"name": UNLISTED_NAME, "query": UNLISTED_QUERY, "variables": {"id": "2"}})
}

// ---------------------------------------------------------------------------
// Harness

const TESTS: &[(&str, Test<Persisted>)] = &[
    (
        "apq::first_client_registers_then_fresh_clients_use_the_hash_on_both_workers",
        apq_round_trip_then_hash_only_on_both_workers,
    ),
    (
        "trusted::listed_document_is_served_by_hash_alone",
        trusted_listed_document_is_served,
    ),
    (
        "trusted::unlisted_document_is_refused_without_function_calls",
        trusted_unlisted_document_is_refused,
    ),
];

fn main() -> ExitCode {
    Harness {
        name: "the persisted-queries sandbox",
        start: Persisted::start,
        describe: |p| {
            format!(
                "Envoy admin {}, {WORKERS} workers, listeners {:?}, mocks {}, Apollo Client {}; log {}",
                p.envoy.admin,
                p.envoy.ports,
                p.functions,
                p.node.apollo_version,
                p.envoy.envoy_log.display()
            )
        },
        // The tests share the mocks' counters.
        each: |persisted, test| {
            persisted
                .reset_calls()
                .and_then(|()| test(persisted))
                .map_err(|e| persisted.with_log_tail(e))
        },
    }
    .run(TESTS)
}

/// The mock functions, Envoy with two workers, and Node with the client.
struct Persisted {
    // Field order is drop order: Envoy stops before the mock functions.
    envoy: RunningEnvoy,
    _mock: ProcessGuard,
    functions: SocketAddr,
    node: Node,
    work: PathBuf,
    client: Client,
    /// The seed query as the client sends it: (body, sha256).
    seed: Document,
    /// The unlisted query as the client sends it.
    unlisted: Document,
}

#[derive(Debug, Clone)]
struct Document {
    body: String,
    sha256: String,
}

impl Persisted {
    fn start(paths: &Paths) -> Result<Persisted, String> {
        paths.check()?;
        if let Some(warning) = paths.staleness_warning() {
            eprintln!("envoy-e2e: {warning}");
        }
        let work = paths.work.join("persisted");
        std::fs::create_dir_all(&work)
            .map_err(|e| format!("cannot create {}: {e}", work.display()))?;
        let node = Node::find(paths, &work)?;

        // The documents exactly as the client hashes and sends them.
        let report = node.run(
            "documents",
            &json!({"mode": "documents", "operations": [seed_operation(), unlisted_operation()]}),
        )?;
        if let Some(mismatch) = report.get("mismatch") {
            return Err(format!(
                "the client sent a query text whose sha256 is not the hash it sent: {mismatch}"
            ));
        }
        let document = |name: &str| -> Result<Document, String> {
            let found = report["documents"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|d| d["operation"] == name)
                .ok_or_else(|| format!("the client hashed no document for {name}: {report:#}"))?;
            Ok(Document {
                body: found["body"].as_str().unwrap_or_default().to_string(),
                sha256: found["sha256"].as_str().unwrap_or_default().to_string(),
            })
        };
        let (seed, unlisted) = (document(SEED_NAME)?, document(UNLISTED_NAME)?);

        let demo = config::load_yaml(&paths.demo_config)?;
        let base = config::demo_filter_config(&demo)?;
        let mut apq = base.clone();
        apq["persisted_queries"] = json!({"automatic": true, "max_registered": 64});
        let mut trusted = base;
        trusted["persisted_queries"] = json!({
            "only_listed": true,
            "manifest": {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [
                    {"id": seed.sha256, "body": seed.body, "name": SEED_NAME, "type": "query"}
                ]
            }
        });

        let (mock, functions) = spawn_mock(
            Command::new(&paths.mock_functions),
            "persisted",
            &work.join("mock-functions.log"),
        )?;
        let wasm = paths
            .wasm
            .canonicalize()
            .map_err(|e| format!("{}: {e}", paths.wasm.display()))?;
        let mut generated = solo_config(
            &demo,
            &wasm,
            functions.port(),
            &[(APQ, apq), (TRUSTED, trusted)],
        )?;
        // Listener stats under each listener's name.
        name_listener_stats(&mut generated)?;
        let envoy = start_envoy_with(
            envoy_with_workers(paths, WORKERS),
            "info",
            paths,
            &work,
            &generated,
            &[APQ, TRUSTED],
        )?;
        let persisted = Persisted {
            envoy,
            _mock: mock,
            functions,
            node,
            work,
            client: Client::new(REQUEST_TIMEOUT),
            seed,
            unlisted,
        };
        workers::check_workers(&persisted.client, persisted.envoy.admin, WORKERS)?;
        Ok(persisted)
    }

    /// Runs the client against a listener: `operations`, each `repeat` times.
    fn run_client(
        &self,
        label: &str,
        listener: &str,
        operations: &[Value],
        repeat: usize,
    ) -> Result<Value, String> {
        self.node.run(
            label,
            &json!({
                "url": self.envoy.graphql_url(listener)?,
                "operations": operations,
                "repeat": repeat,
                "requestTimeoutMs": SCRIPT_REQUEST_MS,
                "totalTimeoutMs": SCRIPT_TOTAL_MS,
            }),
        )
    }

    /// Connections each worker accepted on a listener so far, by worker
    /// index (see [`workers::worker_connections`]).
    fn worker_connections(&self, listener: &str) -> Result<Vec<u64>, String> {
        workers::worker_connections(&self.client, self.envoy.admin, listener, WORKERS)
    }

    /// The mock functions' `/_stats` document.
    fn calls(&self) -> Result<Value, String> {
        let url = format!("http://{}/_stats", self.functions);
        let reply = self.client.get(&url)?;
        if reply.status != 200 {
            return Err(format!("GET {url}: {} {}", reply.status, reply.body));
        }
        serde_json::from_str(&reply.body).map_err(|e| format!("GET {url}: not JSON ({e})"))
    }

    fn call_count(&self) -> Result<u64, String> {
        self.calls()?["total"]
            .as_u64()
            .ok_or_else(|| "the mock functions' /_stats has no total".to_string())
    }

    fn reset_calls(&self) -> Result<(), String> {
        let url = format!("http://{}/_reset", self.functions);
        let reply = self.client.post(&url, &[], "")?;
        if reply.status != 200 {
            return Err(format!("POST {url}: {} {}", reply.status, reply.body));
        }
        Ok(())
    }

    /// A failure message with the end of Envoy's log.
    fn with_log_tail(&self, message: String) -> String {
        format!(
            "{}\n(work directory {})",
            with_log_tail(&message, &self.envoy.envoy_log, 20),
            self.work.display()
        )
    }
}

// ---------------------------------------------------------------------------
// Node and the client script

struct Node {
    program: PathBuf,
    dir: PathBuf,
    work: PathBuf,
    apollo_version: String,
}

impl Node {
    /// Node.js and the client's npm packages, or an error saying how to get
    /// them (never a silent skip).
    fn find(paths: &Paths, work: &Path) -> Result<Node, String> {
        let dir = paths.repo.join("envoy/e2e/js");
        let program = std::env::var_os("NODE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("node"));
        let mut command = Command::new(&program);
        command
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut version = ProcessGuard::spawn("node --version", command).map_err(|e| {
            format!(
                "Node.js is needed for the persisted-queries client test and cannot be run \
                 ({e}); install it (Debian: apt-get install nodejs npm) or set NODE"
            )
        })?;
        match version.wait_exit(Duration::from_secs(10)) {
            Some(status) if status.success() => {}
            other => {
                return Err(format!(
                    "`{} --version` failed ({other:?}): Node.js is needed for this test",
                    program.display()
                ))
            }
        }
        let mut apollo_version = String::new();
        for package in ["@apollo/client", "graphql", "rxjs"] {
            let manifest = dir.join("node_modules").join(package).join("package.json");
            let text = std::fs::read_to_string(&manifest).map_err(|_| {
                format!(
                    "the npm package {package} is not installed in {}: run `make e2e` or \
                     `npm ci --prefix envoy/e2e/js`",
                    dir.display()
                )
            })?;
            if package == "@apollo/client" {
                let parsed: Value = serde_json::from_str(&text)
                    .map_err(|e| format!("{}: {e}", manifest.display()))?;
                apollo_version = parsed["version"].as_str().unwrap_or_default().to_string();
            }
        }
        if !apollo_version.starts_with("4.") {
            return Err(format!(
                "@apollo/client {apollo_version} is installed, 4.x is expected: run `npm ci --prefix envoy/e2e/js`"
            ));
        }
        Ok(Node {
            program,
            dir,
            work: work.to_path_buf(),
            apollo_version,
        })
    }

    /// Runs `persisted-client.mjs` with `spec` and returns its report. The
    /// process is killed (its group, by PID) after [`NODE_DEADLINE`].
    fn run(&self, label: &str, spec: &Value) -> Result<Value, String> {
        let stdout_path = self.work.join(format!("client-{label}.json"));
        let stderr_path = self.work.join(format!("client-{label}.stderr"));
        let file = |p: &Path| {
            std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
        };
        let mut command = Command::new(&self.program);
        command
            .arg(self.dir.join("persisted-client.mjs"))
            .arg(spec.to_string())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(file(&stdout_path)?)
            .stderr(file(&stderr_path)?);
        let mut node = ProcessGuard::spawn("node persisted-client.mjs", command)?;
        let pid = node.pid();
        let status = node.wait_exit(NODE_DEADLINE);
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let Some(status) = status else {
            node.stop();
            return Err(format!(
                "the client ({label}, pid {pid}) did not finish within {NODE_DEADLINE:?} and was \
                 killed; stderr:\n{stderr}"
            ));
        };
        let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        let report: Value = serde_json::from_str(stdout.trim()).map_err(|e| {
            format!(
                "the client ({label}) printed no JSON report ({e}), {status}; stdout:\n{stdout}\nstderr:\n{stderr}"
            )
        })?;
        if !status.success() || report.get("fatal").is_some() || report["timedOut"] == true {
            return Err(format!(
                "the client ({label}) failed ({status}): {report:#}\nstderr:\n{stderr}"
            ));
        }
        Ok(report)
    }
}

// ---------------------------------------------------------------------------
// Report checks

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(message())
    }
}

fn requests(report: &Value) -> Vec<&Value> {
    report["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .collect()
}

fn results(report: &Value) -> Vec<&Value> {
    report["results"].as_array().into_iter().flatten().collect()
}

fn has_error(entry: &Value, message: Option<&str>, code: &str) -> bool {
    entry["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["code"] == code && message.is_none_or(|m| e["message"] == m))
}

/// Every request of the report was a hash-only GET answered with data and
/// no error, and every result is the seed answer.
fn ensure_hash_only_seed_answers(report: &Value, hash: &str, runs: usize) -> Result<(), String> {
    let requests = requests(report);
    ensure(requests.len() == runs, || {
        format!("{runs} runs must take {runs} requests (no retry): {report:#}")
    })?;
    for request in &requests {
        ensure(
            request["method"] == "GET"
                && request["hasQuery"] == false
                && request["sha256"] == hash
                && request["status"] == 200
                && request["hasData"] == true
                && request["errors"].as_array().is_some_and(Vec::is_empty),
            || format!("not a hash-only GET answered with data: {request}\nreport: {report:#}"),
        )?;
    }
    let results = results(report);
    ensure(results.len() == runs, || {
        format!("{runs} results expected: {report:#}")
    })?;
    for result in results {
        ensure(
            result["data"] == seed_data() && result["error"].is_null(),
            || {
                format!(
                    "not the seed answer: {result}\nexpected data: {}",
                    seed_data()
                )
            },
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Tests

/// APQ: the first client's full round trip registers the document; fresh
/// clients then get the answer by hash alone, from both workers.
fn apq_round_trip_then_hash_only_on_both_workers(p: &Persisted) -> Result<(), String> {
    let hash = p.seed.sha256.as_str();
    let before = p.worker_connections(APQ)?;
    let first = p.run_client("apq-first", APQ, &[seed_operation()], 1)?;
    let after = p.worker_connections(APQ)?;
    let requests = requests(&first);
    ensure(requests.len() == 2, || {
        format!("the first run must take exactly two requests (hash, then query + hash): {first:#}")
    })?;
    let (miss, register) = (requests[0], requests[1]);
    ensure(
        miss["method"] == "GET"
            && miss["hasQuery"] == false
            && miss["sha256"] == hash
            && miss["hasData"] == false
            && has_error(miss, Some(NOT_FOUND_MESSAGE), NOT_FOUND_CODE),
        || {
            format!(
                "request 1 must be a hash-only GET answered {NOT_FOUND_MESSAGE} ({NOT_FOUND_CODE}): {miss}\nreport: {first:#}"
            )
        },
    )?;
    ensure(
        register["method"] == "POST"
            && register["hasQuery"] == true
            && register["sha256"] == hash
            && register["status"] == 200
            && register["hasData"] == true
            && register["errors"].as_array().is_some_and(Vec::is_empty),
        || {
            format!("request 2 must be the POST with query and hash, answered with data: {register}\nreport: {first:#}")
        },
    )?;
    let result = results(&first);
    ensure(
        result.len() == 1 && result[0]["data"] == seed_data() && result[0]["error"].is_null(),
        || {
            format!(
                "the first client's answer is not the seed answer {}: {first:#}",
                seed_data()
            )
        },
    )?;
    // Only the registering request ran the query: user-profile and
    // user-orders-batch, once.
    let calls = p.calls()?;
    ensure(calls["total"] == 2, || {
        format!("the hash-only miss must call no function, the retry two: {calls}")
    })?;
    let delta: Vec<u64> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    eprintln!(
        "envoy-e2e: first client: GET hash-only -> {} {NOT_FOUND_MESSAGE}, POST query + hash -> {} \
         seed data (registered); 2 function calls; connections per worker {delta:?}",
        miss["status"], register["status"]
    );

    // Fresh client processes: hash-only GETs over new connections, until
    // both workers took some.
    let mut tried = Vec::new();
    for attempt in 1..=MAX_FRESH_CLIENTS {
        p.reset_calls()?;
        let before = p.worker_connections(APQ)?;
        let report = p.run_client(
            &format!("apq-fresh-{attempt}"),
            APQ,
            &[seed_operation()],
            HASH_ONLY_RUNS,
        )?;
        let after = p.worker_connections(APQ)?;
        ensure_hash_only_seed_answers(&report, hash, HASH_ONLY_RUNS)?;
        let calls = p.call_count()?;
        ensure(calls == 2 * HASH_ONLY_RUNS as u64, || {
            format!(
                "{HASH_ONLY_RUNS} answers must take {} function calls: {}",
                2 * HASH_ONLY_RUNS,
                calls
            )
        })?;
        let delta: Vec<u64> = after
            .iter()
            .zip(&before)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        ensure(delta.iter().sum::<u64>() == HASH_ONLY_RUNS as u64, || {
            format!(
                "every request must be a connection of its own: {HASH_ONLY_RUNS} requests, \
                 connections per worker {delta:?}"
            )
        })?;
        eprintln!(
            "envoy-e2e: fresh client {attempt}: {HASH_ONLY_RUNS} hash-only GETs answered with the \
             seed data, no retry; connections per worker {delta:?}"
        );
        if delta.iter().all(|&n| n > 0) {
            return Ok(());
        }
        tried.push(delta);
    }
    Err(format!(
        "{MAX_FRESH_CLIENTS} fresh clients never reached both workers (connections per worker \
         per client: {tried:?}); the registration's sharing is not shown"
    ))
}

/// Trusted documents: the manifest's document is served by hash alone,
/// without any registration, and in full.
fn trusted_listed_document_is_served(p: &Persisted) -> Result<(), String> {
    let runs = 2;
    let report = p.run_client("trusted-listed", TRUSTED, &[seed_operation()], runs)?;
    ensure_hash_only_seed_answers(&report, &p.seed.sha256, runs)?;
    let calls = p.calls()?;
    ensure(calls["total"] == 2 * runs as u64, || {
        format!(
            "{runs} answers must take {} function calls: {calls}",
            2 * runs
        )
    })
}

/// Trusted documents: a document the manifest does not list is refused
/// whichever way it comes, and no function is called: by hash alone
/// (`TRUSTED_ERROR_CODE`, which the client does not retry), and in full,
/// with or without its hash (`SAFELIST_ERROR_CODE`); the attempts register
/// nothing (a fresh client's hash is refused again).
fn trusted_unlisted_document_is_refused(p: &Persisted) -> Result<(), String> {
    let hash = p.unlisted.sha256.as_str();
    let report = p.run_client("trusted-unlisted", TRUSTED, &[unlisted_operation()], 1)?;
    ensure_refused_by_hash(&report, hash)?;
    let status = requests(&report)[0]["status"].clone();

    // In full, as a plain request and as an APQ registration would send it.
    let url = p.envoy.graphql_url(TRUSTED)?;
    let variables = json!({"id": "2"});
    let plain = json!({"query": UNLISTED_QUERY, "variables": variables});
    let with_hash = json!({
        "query": p.unlisted.body,
        "variables": variables,
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}
    });
    let mut full_statuses = Vec::new();
    for (what, body) in [("plain", plain), ("with its hash", with_hash)] {
        let reply = p.client.post_json(&url, &body.to_string())?;
        let answer: Value = serde_json::from_str(&reply.body).map_err(|e| {
            format!(
                "the unlisted document {what}: not JSON ({e}): {} {}",
                reply.status, reply.body
            )
        })?;
        ensure(
            answer.get("data").is_none_or(Value::is_null)
                && answer["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e["extensions"]["code"] == SAFELIST_ERROR_CODE),
            || {
                format!(
                    "the unlisted document sent in full ({what}) must be refused with \
                     {SAFELIST_ERROR_CODE}: {} {answer}",
                    reply.status
                )
            },
        )?;
        full_statuses.push(reply.status);
    }

    // Nothing was registered: a fresh client's hash is still refused.
    let again = p.run_client(
        "trusted-unlisted-again",
        TRUSTED,
        &[unlisted_operation()],
        1,
    )?;
    ensure_refused_by_hash(&again, hash)?;

    let calls = p.calls()?;
    ensure(calls["total"] == 0, || {
        format!("no function may be called for an unlisted document: {calls}")
    })?;
    eprintln!(
        "envoy-e2e: unlisted document refused by hash ({TRUSTED_ERROR_CODE}, HTTP {status}, no \
         retry), in full with and without its hash ({SAFELIST_ERROR_CODE}, HTTP {full_statuses:?}), \
         and by hash again; 0 function calls"
    );
    Ok(())
}

/// The client's one hash-only GET was refused with `TRUSTED_ERROR_CODE`
/// (Apollo Client does not retry that code) and it ends with that error
/// and no data.
fn ensure_refused_by_hash(report: &Value, hash: &str) -> Result<(), String> {
    let requests = requests(report);
    ensure(requests.len() == 1, || {
        format!("a refused hash must take exactly one request (no retry): {report:#}")
    })?;
    let request = requests[0];
    ensure(
        request["method"] == "GET"
            && request["hasQuery"] == false
            && request["sha256"] == hash
            && request["hasData"] == false
            && has_error(request, None, TRUSTED_ERROR_CODE),
        || {
            format!(
                "the unlisted document's hash-only GET must be refused with {TRUSTED_ERROR_CODE}: \
                 {request}\nreport: {report:#}"
            )
        },
    )?;
    let results = results(report);
    let refused = results.len() == 1
        && results[0]["data"].is_null()
        && results[0]["error"]["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["code"] == TRUSTED_ERROR_CODE);
    ensure(refused, || {
        format!("the client must end with no data and a {TRUSTED_ERROR_CODE} error: {report:#}")
    })
}
