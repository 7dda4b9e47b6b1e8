//! The shared answer cache (`answer_cache`, engine/src/answer_cache.rs and
//! filter/src/flights.rs) in real Envoy (1.40, V8) with TWO workers
//! (`--concurrency 2`), in front of the mock functions, all on loopback.
//!
//! Envoy keeps shared data per `vm_id`, process-wide: every worker's VM of
//! the filter reads and writes one cache. Three mock-function servers, each
//! behind a cluster of its own, answer every 2xx with one `cache-control`
//! (their `--cache-control` option):
//!
//! | mock | `cache-control` | cluster |
//! |---|---|---|
//! | lasting | `max-age=60` (and `--users 100003`) | `openfaas` |
//! | short | `max-age=1` | `functions-short` |
//! | no-store | `no-store` | `functions-no-store` |
//!
//! Listeners (each the demo's GraphQL listener, one VM configuration, so one
//! shared cache; each sends its own `:authority`, part of a cache key, so no
//! two listeners share an entry: identical calls of two listeners of one
//! `vm_id` would, and the one that stored the entry would set its lifetime
//! for both):
//!
//! - `cache-shared` (lasting; the answers' own lifetime): an answer stored
//!   by one worker serves the other. A first seed query makes two function
//!   calls; then seed queries, each over a new connection, make none, and
//!   `answer_cache.hits` counts every call they did not make. Envoy's
//!   per-worker listener counters (`listener.<name>.worker_<n>.
//!   downstream_cx_total`) must show that both workers took some of those
//!   connections (rounds of `SHARED_RUN` connections, up to
//!   `MAX_SHARED_ROUNDS`, until both did). The same listener shows the
//!   reply's `cache-control` counting down: `max-age=60` when stored, less
//!   the whole seconds the answer spent in the cache when served from it.
//! - `cache-ttl` (lasting, upstream `cache: {ttl_ms: 1000}`): the configured
//!   lifetime wins over the answers' 60 s: served from the cache at once,
//!   called again after 1.5 s.
//! - `cache-short` (short): an answer's own `max-age=1` expires the same way.
//! - `cache-no-store` and `cache-no-store-ttl` (no-store; the second with an
//!   upstream `cache: {ttl_ms: 60000}`): never kept, every request calls the
//!   functions, whatever the configuration says.
//! - `cache-bounded` (lasting, `max_bytes` 1 MiB, `max_entry_bytes` 4096:
//!   256 slots): 100,000 requests for distinct users, over a few keep-alive
//!   connections; Envoy's resident memory (`VmRSS` of its PID) after the
//!   first 10,000 (warm-up) and at the end must differ by less than
//!   `RSS_GROWTH_BOUND`, every request must store its answer, and stores
//!   into live slots must count as evictions.
//!
//! The tests run serially (they read process-wide counters and the mocks'
//! call counts, reset before each test). Every request is bounded
//! (`REQUEST_TIMEOUT`), the load of the last test too (`LOAD_DEADLINE`), and
//! every process is stopped by PID (its process group).
//!
//! Run: `cargo test -p envoy-e2e --test cache` (after `make setup wasm
//! functions`). Without Envoy, the mock functions or the filter, every test
//! fails with a message saying how to get them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use envoy_e2e::config;
use envoy_e2e::http::{Client, Reply};
use envoy_e2e::paths::Paths;
use envoy_e2e::process::ProcessGuard;
use envoy_e2e::sandbox::{spawn_mock, with_log_tail};
use envoy_e2e::soak;
use envoy_e2e::solo::{solo_config, start_envoy_with, RunningEnvoy};
use envoy_e2e::trials::{Harness, Test};
use envoy_e2e::workers::{self, envoy_with_workers, name_listener_stats};
use serde_json::{json, Value};

/// Envoy's worker threads.
const WORKERS: usize = 2;

const SHARED: &str = "cache-shared";
const TTL: &str = "cache-ttl";
const SHORT: &str = "cache-short";
const NO_STORE: &str = "cache-no-store";
const NO_STORE_TTL: &str = "cache-no-store-ttl";
const BOUNDED: &str = "cache-bounded";

/// The clusters of the short-lived and the no-store mocks (the lasting one
/// is the demo's `openfaas`).
const SHORT_CLUSTER: &str = "functions-short";
const NO_STORE_CLUSTER: &str = "functions-no-store";

/// The lasting mock's `cache-control`, and its lifetime in seconds.
const LASTING: &str = "max-age=60";
const LASTING_S: u64 = 60;
/// The short mock's.
const SHORT_LIVED: &str = "max-age=1";
const NO_STORE_VALUE: &str = "no-store";

/// The cache of every listener but `cache-bounded`: 4096 slots, so that the
/// few keys of a test do not share one (a shared slot keeps one of them).
const ROOMY_CACHE_BYTES: usize = 16 << 20;
/// `cache-bounded`'s cache: 256 slots.
const BOUNDED_CACHE_BYTES: usize = 1 << 20;
const MAX_ENTRY_BYTES: usize = 4096;
/// The configured lifetime of `cache-ttl`.
const TTL_MS: u64 = 1000;
/// The configured lifetime of `cache-no-store-ttl` (which must not matter).
const NO_STORE_TTL_MS: u64 = 60_000;

/// Seed queries per round over new connections, and rounds until both
/// workers took some (each round misses a worker with probability 2^-11
/// under SO_REUSEPORT's hashing).
const SHARED_RUN: usize = 12;
const MAX_SHARED_ROUNDS: usize = 4;

/// Requests of the memory test: distinct users, the warm-up first.
const DISTINCT_KEYS: u64 = 100_000;
const WARM_UP: u64 = 10_000;
/// Concurrent keep-alive connections of the memory test's load.
const LOAD_CONNECTIONS: usize = 4;
/// The most the memory test's load may take, in all.
const LOAD_DEADLINE: Duration = Duration::from_secs(120);
/// What Envoy's resident memory may grow by between the warm-up and the
/// end: twice the cache's values (the host copies a value into its map on
/// every store and frees the old one; a VM's linear memory keeps the
/// largest it ever held) plus 8 MiB for allocator and V8 heap noise.
/// Measured with `max_bytes` 1 GiB instead (262,144 slots, so about 83,000
/// of the entries stayed): RSS grew by 19.6 MiB over the same run, about
/// 245 bytes an entry. A cache that kept everything would exceed this
/// bound twice over; the bounded one grows by ~0 MiB.
const RSS_GROWTH_BOUND: u64 = 2 * BOUNDED_CACHE_BYTES as u64 + (8 << 20);
/// The memory test's first user: users 3 and above have generated answers
/// (`User <id>`).
const FIRST_USER: u64 = 3;
/// The lasting mock's users: every id of the memory test is one.
const USERS: u64 = FIRST_USER + DISTINCT_KEYS;

/// Any single request the test makes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The demo's seed query (README, demo.sh): two calls, `user-profile` and
/// `user-orders-batch`.
const SEED_QUERY: &str = "query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }";
/// One call: `user-profile`.
const USER_QUERY: &str = "query User($id: ID!) { user(id: $id) { id name } }";

fn seed_body(user: u64) -> String {
    json!({"query": SEED_QUERY, "variables": {"userId": user.to_string()}}).to_string()
}

fn user_body(user: u64) -> String {
    json!({"query": USER_QUERY, "variables": {"id": user.to_string()}}).to_string()
}

/// The seed answer for user 1.
fn seed_data() -> Value {
    json!({"user": {
        "id": "1", "name": "Alice", "email": "alice@example.com",
        "orders": [
            {"id": "order-101", "amount": 99.99},
            {"id": "order-102", "amount": 19.5}
        ]
    }})
}

/// `USER_QUERY`'s answer for a generated user (3 and above).
fn user_data(user: u64) -> Value {
    json!({"user": {"id": user.to_string(), "name": format!("User {user}")}})
}

// ---------------------------------------------------------------------------
// Harness

const TESTS: &[(&str, Test<Cache>)] = &[
    (
        "shared::an_answer_cached_by_one_worker_serves_the_other",
        cached_by_one_worker_serves_the_other,
    ),
    (
        "ttl::the_reply_cache_control_counts_down_while_cached",
        reply_cache_control_counts_down,
    ),
    ("ttl::a_configured_ttl_expires", configured_ttl_expires),
    ("ttl::an_answer_max_age_expires", answer_max_age_expires),
    (
        "no_store::no_store_answers_are_never_cached",
        no_store_is_never_cached,
    ),
    (
        "bounded::memory_stays_within_the_bound_under_100000_distinct_keys",
        memory_stays_within_the_bound,
    ),
];

fn main() -> ExitCode {
    Harness {
        name: "the answer-cache sandbox",
        start: Cache::start,
        describe: |c| {
            format!(
                "Envoy pid {}, admin {}, {WORKERS} workers, listeners {:?}; mocks: lasting {}, \
                 short {}, no-store {}; log {}",
                c.envoy.envoy.pid(),
                c.envoy.admin,
                c.envoy.ports,
                c.lasting.addr,
                c.short.addr,
                c.no_store.addr,
                c.envoy.envoy_log.display()
            )
        },
        // The tests share process-wide counters and the mocks' counts.
        each: |cache, test| {
            cache
                .reset_calls()
                .and_then(|()| cache.envoy.envoy.check_running())
                .and_then(|()| test(cache))
                .and_then(|()| cache.envoy.envoy.check_running())
                .map_err(|e| cache.with_log_tail(e))
        },
    }
    .run(TESTS)
}

/// One mock-functions server and its call counters.
struct Mock {
    _process: ProcessGuard,
    addr: SocketAddr,
}

impl Mock {
    fn start(
        paths: &Paths,
        work: &std::path::Path,
        name: &str,
        args: &[&str],
    ) -> Result<Mock, String> {
        let mut command = Command::new(&paths.mock_functions);
        command.args(args);
        let (process, addr) = spawn_mock(command, name, &work.join(format!("mock-{name}.log")))?;
        Ok(Mock {
            _process: process,
            addr,
        })
    }

    /// Function calls since the last reset.
    fn calls(&self, client: &Client) -> Result<u64, String> {
        let url = format!("http://{}/_stats", self.addr);
        let reply = client.get(&url)?;
        if reply.status != 200 {
            return Err(format!("GET {url}: {} {}", reply.status, reply.body));
        }
        let stats: Value =
            serde_json::from_str(&reply.body).map_err(|e| format!("GET {url}: not JSON ({e})"))?;
        stats["total"]
            .as_u64()
            .ok_or_else(|| format!("GET {url}: no total: {stats}"))
    }

    fn reset(&self, client: &Client) -> Result<(), String> {
        let url = format!("http://{}/_reset", self.addr);
        let reply = client.post(&url, &[], "")?;
        if reply.status != 200 {
            return Err(format!("POST {url}: {} {}", reply.status, reply.body));
        }
        Ok(())
    }
}

/// The mock functions, Envoy with two workers.
struct Cache {
    // Field order is drop order: Envoy stops before the mock functions.
    envoy: RunningEnvoy,
    lasting: Mock,
    short: Mock,
    no_store: Mock,
    work: PathBuf,
    client: Client,
}

/// The answer cache's counters (process-wide: every listener's and
/// worker's VM counts into the same ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CacheStats {
    hits: u64,
    misses: u64,
    stores: u64,
    evictions: u64,
}

impl CacheStats {
    fn since(self, before: CacheStats) -> CacheStats {
        CacheStats {
            hits: self.hits.saturating_sub(before.hits),
            misses: self.misses.saturating_sub(before.misses),
            stores: self.stores.saturating_sub(before.stores),
            evictions: self.evictions.saturating_sub(before.evictions),
        }
    }
}

/// A listener's filter configuration: the demo's, with an answer cache of
/// `cache_bytes`, its own `:authority` (so no two listeners share a cache
/// key), calling `target`, with the upstream's configured lifetime if any.
fn listener_config(
    base: &Value,
    name: &str,
    cache_bytes: usize,
    target: &str,
    ttl_ms: Option<u64>,
) -> Value {
    let mut config = base.clone();
    config["answer_cache"] = json!({"max_bytes": cache_bytes, "max_entry_bytes": MAX_ENTRY_BYTES});
    let upstream = &mut config["upstreams"][config::DEMO_CLUSTER];
    upstream["target"] = json!(target);
    upstream["authority"] = json!(format!("{name}.gateway:8080"));
    if let Some(ttl_ms) = ttl_ms {
        upstream["cache"] = json!({"ttl_ms": ttl_ms});
    }
    config
}

/// Adds a copy of the demo's functions cluster named `name`, at
/// `127.0.0.1:port`.
fn add_cluster(generated: &mut Value, name: &str, port: u16) -> Result<(), String> {
    let clusters = generated
        .pointer_mut("/static_resources/clusters")
        .and_then(Value::as_array_mut)
        .ok_or("the generated Envoy configuration has no clusters")?;
    let mut cluster = clusters
        .iter()
        .find(|c| c["name"] == config::DEMO_CLUSTER)
        .cloned()
        .ok_or("the generated Envoy configuration has no cluster openfaas")?;
    cluster["name"] = json!(name);
    cluster["load_assignment"]["cluster_name"] = json!(name);
    let port_value = cluster
        .pointer_mut(
            "/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value",
        )
        .ok_or("the demo's functions cluster has no endpoint port")?;
    *port_value = json!(port);
    clusters.push(cluster);
    Ok(())
}

impl Cache {
    fn start(paths: &Paths) -> Result<Cache, String> {
        paths.check()?;
        if let Some(warning) = paths.staleness_warning() {
            eprintln!("envoy-e2e: {warning}");
        }
        let work = paths.work.join("cache");
        std::fs::create_dir_all(&work)
            .map_err(|e| format!("cannot create {}: {e}", work.display()))?;
        let users = USERS.to_string();
        let lasting = Mock::start(
            paths,
            &work,
            "lasting",
            &["--cache-control", LASTING, "--users", &users],
        )?;
        let short = Mock::start(paths, &work, "short", &["--cache-control", SHORT_LIVED])?;
        let no_store = Mock::start(
            paths,
            &work,
            "no-store",
            &["--cache-control", NO_STORE_VALUE],
        )?;

        let demo = config::load_yaml(&paths.demo_config)?;
        let base = config::demo_filter_config(&demo)?;
        let openfaas = config::DEMO_CLUSTER;
        let roomy = ROOMY_CACHE_BYTES;
        let listeners = [
            (
                SHARED,
                listener_config(&base, SHARED, roomy, openfaas, None),
            ),
            (
                TTL,
                listener_config(&base, TTL, roomy, openfaas, Some(TTL_MS)),
            ),
            (
                SHORT,
                listener_config(&base, SHORT, roomy, SHORT_CLUSTER, None),
            ),
            (
                NO_STORE,
                listener_config(&base, NO_STORE, roomy, NO_STORE_CLUSTER, None),
            ),
            (
                NO_STORE_TTL,
                listener_config(
                    &base,
                    NO_STORE_TTL,
                    roomy,
                    NO_STORE_CLUSTER,
                    Some(NO_STORE_TTL_MS),
                ),
            ),
            (
                BOUNDED,
                listener_config(&base, BOUNDED, BOUNDED_CACHE_BYTES, openfaas, None),
            ),
        ];
        let wasm = paths
            .wasm
            .canonicalize()
            .map_err(|e| format!("{}: {e}", paths.wasm.display()))?;
        let mut generated = solo_config(&demo, &wasm, lasting.addr.port(), &listeners)?;
        add_cluster(&mut generated, SHORT_CLUSTER, short.addr.port())?;
        add_cluster(&mut generated, NO_STORE_CLUSTER, no_store.addr.port())?;
        name_listener_stats(&mut generated)?;
        let names: Vec<&str> = listeners.iter().map(|(n, _)| *n).collect();
        let envoy = start_envoy_with(
            envoy_with_workers(paths, WORKERS),
            "info",
            paths,
            &work,
            &generated,
            &names,
        )?;
        let cache = Cache {
            envoy,
            lasting,
            short,
            no_store,
            work,
            client: Client::new(REQUEST_TIMEOUT),
        };
        workers::check_workers(&cache.client, cache.envoy.admin, WORKERS)?;
        // The filter took every configuration: each listener answers.
        for name in names {
            let reply = cache.post(name, r#"{"query":"{ __typename }"}"#)?;
            if reply.status != 200 || !reply.body.contains("Query") {
                return Err(format!(
                    "listener {name} does not answer {{ __typename }}: {} {}",
                    reply.status, reply.body
                ));
            }
        }
        Ok(cache)
    }

    /// POSTs a GraphQL request over the shared client's connections.
    fn post(&self, listener: &str, body: &str) -> Result<Reply, String> {
        let url = self.envoy.graphql_url(listener)?;
        self.client
            .post_json(&url, body)
            .map_err(|e| format!("POST {url}: {e}"))
    }

    /// POSTs a GraphQL request over a connection of its own (a new client).
    fn post_fresh(&self, listener: &str, body: &str) -> Result<Reply, String> {
        let url = self.envoy.graphql_url(listener)?;
        Client::new(REQUEST_TIMEOUT)
            .post_json(&url, body)
            .map_err(|e| format!("POST {url} (new connection): {e}"))
    }

    fn stats(&self) -> Result<CacheStats, String> {
        let stat = |event: &str| {
            workers::envoy_stat(
                &self.client,
                self.envoy.admin,
                &format!("wasmcustom.graphql_aggregator.answer_cache.{event}"),
            )
        };
        Ok(CacheStats {
            hits: stat("hits")?,
            misses: stat("misses")?,
            stores: stat("stores")?,
            evictions: stat("evictions")?,
        })
    }

    fn worker_connections(&self, listener: &str) -> Result<Vec<u64>, String> {
        workers::worker_connections(&self.client, self.envoy.admin, listener, WORKERS)
    }

    fn reset_calls(&self) -> Result<(), String> {
        for mock in [&self.lasting, &self.short, &self.no_store] {
            mock.reset(&self.client)?;
        }
        Ok(())
    }

    /// Envoy's resident memory and its peak in bytes (`VmRSS`, `VmHWM` of
    /// its PID).
    fn envoy_rss(&self) -> Result<(u64, u64), String> {
        let pid = self.envoy.envoy.pid();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map_err(|e| format!("cannot read /proc/{pid}/comm: {e}"))?;
        if comm.trim() != "envoy" {
            return Err(format!(
                "process {pid} is {:?}, not Envoy: its RSS would not be Envoy's",
                comm.trim()
            ));
        }
        soak::rss_of(pid)
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
// Checks

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(message())
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The reply is 200 with `data` equal to `expected` and no errors.
fn ensure_data(reply: &Reply, expected: &Value, what: &str) -> Result<(), String> {
    let answer: Value = serde_json::from_str(&reply.body)
        .map_err(|e| format!("{what}: not JSON ({e}): {} {}", reply.status, reply.body))?;
    ensure(
        reply.status == 200 && answer["data"] == *expected && answer.get("errors").is_none(),
        || {
            format!(
                "{what}: expected 200 with data {expected} and no errors, got {} {answer}",
                reply.status
            )
        },
    )
}

/// The `max-age` of a `cache-control` value.
fn max_age(cache_control: Option<&str>) -> Option<u64> {
    cache_control?
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|n| n.parse().ok())
}

// ---------------------------------------------------------------------------
// Tests

/// 1. An answer stored by one worker's VM is served by the other's: after
///    a first seed query (two calls, two stores), seed queries over new
///    connections reach both workers and make no call at all.
fn cached_by_one_worker_serves_the_other(c: &Cache) -> Result<(), String> {
    let before = c.stats()?;
    let connections_before = c.worker_connections(SHARED)?;
    let first = c.post_fresh(SHARED, &seed_body(1))?;
    ensure_data(&first, &seed_data(), "the first seed query")?;
    let first_worker = workers::delta(&c.worker_connections(SHARED)?, &connections_before);
    let calls = c.lasting.calls(&c.client)?;
    ensure(calls == 2, || {
        format!("the first seed query must call user-profile and user-orders-batch: {calls} calls")
    })?;
    let filled = c.stats()?.since(before);
    ensure(filled.stores == 2 && filled.hits == 0, || {
        format!("the first seed query must store its two answers: {filled:?}")
    })?;
    ensure(
        header(&first, "cache-control") == Some("max-age=60, s-maxage=60"),
        || {
            format!(
                "the first reply's cache-control must be the answers' {LASTING}: {:?}",
                header(&first, "cache-control")
            )
        },
    )?;
    eprintln!(
        "envoy-e2e: first seed query: 2 calls, 2 stores, served by worker {:?} (connections per \
         worker {first_worker:?})",
        first_worker.iter().position(|&n| n > 0)
    );

    let mut rounds = Vec::new();
    for round in 1..=MAX_SHARED_ROUNDS {
        let stats_before = c.stats()?;
        let connections_before = c.worker_connections(SHARED)?;
        for i in 0..SHARED_RUN {
            let reply = c.post_fresh(SHARED, &seed_body(1))?;
            ensure_data(
                &reply,
                &seed_data(),
                &format!("round {round}, seed query {i}"),
            )?;
            let cache_control = header(&reply, "cache-control");
            ensure(
                max_age(cache_control).is_some_and(|a| a <= LASTING_S),
                || format!("a reply from the cache must keep a max-age: {cache_control:?}"),
            )?;
        }
        let per_worker = workers::delta(&c.worker_connections(SHARED)?, &connections_before);
        let stats = c.stats()?.since(stats_before);
        let calls = c.lasting.calls(&c.client)?;
        ensure(calls == 2, || {
            format!(
                "{SHARED_RUN} seed queries served from the cache must call no function: \
                 {} more calls",
                calls.saturating_sub(2)
            )
        })?;
        ensure(per_worker.iter().sum::<u64>() == SHARED_RUN as u64, || {
            format!(
                "every request must be a connection of its own: {SHARED_RUN} requests, \
                 connections per worker {per_worker:?}"
            )
        })?;
        let expected_hits = 2 * SHARED_RUN as u64;
        ensure(
            stats.hits == expected_hits && stats.misses == 0 && stats.stores == 0,
            || {
                format!(
                    "{SHARED_RUN} seed queries must take {expected_hits} hits, no miss and no \
                     store: {stats:?}"
                )
            },
        )?;
        eprintln!(
            "envoy-e2e: round {round}: {SHARED_RUN} seed queries over new connections, \
             connections per worker {per_worker:?}, 0 function calls, answer_cache {stats:?}"
        );
        if per_worker.iter().all(|&n| n > 0) {
            return Ok(());
        }
        rounds.push(per_worker);
    }
    Err(format!(
        "{MAX_SHARED_ROUNDS} rounds never reached both workers (connections per worker per \
         round: {rounds:?}); the cache's sharing across workers is not shown"
    ))
}

/// 2a. The reply's `cache-control` counts down with the time its answers
///     spent in the cache: `max-age=60` when the functions answered, then,
///     served from the cache over two seconds later, 60 less the whole
///     seconds it was kept (at least 2, at most the time it took in all).
fn reply_cache_control_counts_down(c: &Cache) -> Result<(), String> {
    let user = 2;
    let expected = json!({"user": {
        "id": "2", "name": "Bob", "email": "bob@example.com",
        "orders": [{"id": "order-201", "amount": 250.0}]
    }});
    let started = Instant::now();
    let first = c.post_fresh(SHARED, &seed_body(user))?;
    let stored = Instant::now();
    ensure_data(&first, &expected, "the first query")?;
    let first_cc = header(&first, "cache-control").map(str::to_string);
    ensure(
        first_cc.as_deref() == Some("max-age=60, s-maxage=60"),
        || format!("the first reply must say max-age=60, s-maxage=60: {first_cc:?}"),
    )?;
    let wait = Duration::from_millis(2200);
    std::thread::sleep(wait);
    let second = c.post_fresh(SHARED, &seed_body(user))?;
    let kept_at_most = started.elapsed().as_secs() + 1;
    let kept_at_least = wait
        .as_secs()
        .max(stored.elapsed().as_secs().saturating_sub(1));
    ensure_data(&second, &expected, "the second query")?;
    let calls = c.lasting.calls(&c.client)?;
    ensure(calls == 2, || {
        format!("the second query must be served from the cache: {calls} calls in all")
    })?;
    let second_cc = header(&second, "cache-control").map(str::to_string);
    let age = max_age(second_cc.as_deref());
    let lowest = LASTING_S.saturating_sub(kept_at_most);
    let highest = LASTING_S - kept_at_least;
    ensure(
        age.is_some_and(|a| (lowest..=highest).contains(&a))
            && second_cc.as_deref() == age.map(|a| format!("max-age={a}, s-maxage={a}")).as_deref(),
        || {
            format!(
                "served from the cache {wait:?} later, the reply must say max-age=N, s-maxage=N \
                 with N in {lowest}..={highest}: {second_cc:?}"
            )
        },
    )?;
    eprintln!(
        "envoy-e2e: cache-control when stored: {first_cc:?}; from the cache {:.1?} later: \
         {second_cc:?}",
        stored.elapsed()
    );
    Ok(())
}

/// One query at once, again at once (from the cache), and again after its
/// lifetime (`lifetime_ms`) and half as much again: the functions are
/// called once, not at all, once.
fn expires(
    c: &Cache,
    listener: &str,
    mock: &Mock,
    lifetime_ms: u64,
    user: u64,
) -> Result<(), String> {
    let before = c.stats()?;
    let sent = Instant::now();
    let first = c.post(listener, &user_body(user))?;
    let answered = Instant::now();
    ensure_data(&first, &user_data(user), "the first query")?;
    let second = c.post(listener, &user_body(user))?;
    let second_sent_after = answered.duration_since(sent) + answered.elapsed();
    ensure_data(&second, &user_data(user), "the second query")?;
    ensure(
        second_sent_after < Duration::from_millis(lifetime_ms * 8 / 10),
        || {
            format!(
                "the second query ended {second_sent_after:?} after the first was sent: too slow \
                 to check a {lifetime_ms} ms lifetime"
            )
        },
    )?;
    let calls = mock.calls(&c.client)?;
    ensure(calls == 1, || {
        format!("within its lifetime the answer must come from the cache: {calls} calls, not 1")
    })?;
    let fresh = c.stats()?.since(before);
    ensure(fresh.stores == 1 && fresh.hits == 1, || {
        format!("one store, then one hit: {fresh:?}")
    })?;
    let second_cc = header(&second, "cache-control").map(str::to_string);

    let after = Duration::from_millis(lifetime_ms * 3 / 2);
    std::thread::sleep(after.saturating_sub(answered.elapsed()));
    let third = c.post(listener, &user_body(user))?;
    ensure_data(&third, &user_data(user), "the query after the lifetime")?;
    let calls = mock.calls(&c.client)?;
    ensure(calls == 2, || {
        format!("after its lifetime the answer must be fetched again: {calls} calls, not 2")
    })?;
    let stats = c.stats()?.since(before);
    ensure(
        stats.stores == 2 && stats.hits == 1 && stats.misses == 2,
        || format!("expired: a miss and a new store: {stats:?}"),
    )?;
    eprintln!(
        "envoy-e2e: {listener}: call, from the cache at {second_sent_after:.0?} (cache-control \
         {second_cc:?}), call again after {after:?}; answer_cache {stats:?}"
    );
    Ok(())
}

/// 2b. The upstream's `cache: {ttl_ms: 1000}` wins over the answers'
///     `max-age=60`.
fn configured_ttl_expires(c: &Cache) -> Result<(), String> {
    expires(c, TTL, &c.lasting, TTL_MS, 3)
}

/// 2c. An answer's own `max-age=1` expires.
fn answer_max_age_expires(c: &Cache) -> Result<(), String> {
    expires(c, SHORT, &c.short, 1000, 3)
}

/// 3. `no-store` answers are never kept, even with a configured lifetime:
///    every request calls the functions and the reply is `no-store`.
fn no_store_is_never_cached(c: &Cache) -> Result<(), String> {
    let runs = 4;
    let before = c.stats()?;
    for listener in [NO_STORE, NO_STORE_TTL] {
        for i in 0..runs {
            let reply = c.post_fresh(listener, &seed_body(1))?;
            ensure_data(&reply, &seed_data(), &format!("{listener}: seed query {i}"))?;
            ensure(header(&reply, "cache-control") == Some("no-store"), || {
                format!(
                    "{listener}: the reply must be no-store: {:?}",
                    header(&reply, "cache-control")
                )
            })?;
        }
    }
    let calls = c.no_store.calls(&c.client)?;
    let expected = 2 * 2 * runs;
    ensure(calls == expected, || {
        format!("every request must call both functions: {calls} calls, not {expected}")
    })?;
    let stats = c.stats()?.since(before);
    ensure(
        stats.stores == 0 && stats.hits == 0 && stats.misses == expected,
        || format!("nothing may be stored or served: {stats:?}"),
    )?;
    eprintln!(
        "envoy-e2e: no-store: {runs} seed queries on each of {NO_STORE} and {NO_STORE_TTL} \
         (upstream ttl_ms {NO_STORE_TTL_MS}): {calls} function calls, answer_cache {stats:?}"
    );
    Ok(())
}

/// What a load run did.
#[derive(Debug, Default)]
struct Load {
    ok: u64,
    failures: Vec<String>,
    failed: u64,
}

/// `USER_QUERY` for users `from..to` on `listener`, over `LOAD_CONNECTIONS`
/// keep-alive connections, until done or `deadline`. Every answer is
/// checked.
fn drive(c: &Cache, listener: &str, from: u64, to: u64, deadline: Instant) -> Result<Load, String> {
    let url = c.envoy.graphql_url(listener)?;
    let next = AtomicU64::new(from);
    let ok = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..LOAD_CONNECTIONS {
            scope.spawn(|| {
                let client = Client::new(REQUEST_TIMEOUT);
                loop {
                    if Instant::now() > deadline {
                        return;
                    }
                    let user = next.fetch_add(1, Ordering::Relaxed);
                    if user >= to {
                        return;
                    }
                    let problem = client
                        .post_json(&url, &user_body(user))
                        .map_err(|e| format!("user {user}: {e}"))
                        .and_then(|reply| {
                            ensure_data(&reply, &user_data(user), &format!("user {user}"))
                        })
                        .err();
                    match problem {
                        None => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(problem) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            let mut failures = failures.lock().unwrap_or_else(|p| p.into_inner());
                            if failures.len() < 5 {
                                failures.push(problem);
                            }
                        }
                    }
                }
            });
        }
    });
    Ok(Load {
        ok: ok.into_inner(),
        failed: failed.into_inner(),
        failures: failures.into_inner().unwrap_or_else(|p| p.into_inner()),
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// 4. 100,000 distinct keys through a 256-slot cache: every answer is
///    stored, live entries are evicted, and Envoy's memory stays within
///    `RSS_GROWTH_BOUND` of what it was after the warm-up.
fn memory_stays_within_the_bound(c: &Cache) -> Result<(), String> {
    let first_user = FIRST_USER;
    let end = first_user + DISTINCT_KEYS;
    let started = Instant::now();
    let deadline = started + LOAD_DEADLINE;
    let before = c.stats()?;
    let connections_before = c.worker_connections(BOUNDED)?;
    let (rss_start, _) = c.envoy_rss()?;

    let warm_up = drive(c, BOUNDED, first_user, first_user + WARM_UP, deadline)?;
    let warm_time = started.elapsed();
    let (rss_warm, _) = c.envoy_rss()?;
    let stats_warm = c.stats()?.since(before);
    eprintln!(
        "envoy-e2e: warm-up: {} requests in {warm_time:.1?} ({:.0}/s); Envoy RSS {:.1} MiB \
         (at start {:.1} MiB); answer_cache {stats_warm:?}",
        warm_up.ok + warm_up.failed,
        (warm_up.ok + warm_up.failed) as f64 / warm_time.as_secs_f64(),
        mib(rss_warm),
        mib(rss_start),
    );
    let rest = drive(c, BOUNDED, first_user + WARM_UP, end, deadline)?;
    let elapsed = started.elapsed();
    let (rss_end, peak) = c.envoy_rss()?;
    let stats = c.stats()?.since(before);
    let per_worker = workers::delta(&c.worker_connections(BOUNDED)?, &connections_before);
    let calls = c.lasting.calls(&c.client)?;

    let done = warm_up.ok + rest.ok;
    let failed = warm_up.failed + rest.failed;
    let growth = rss_end.saturating_sub(rss_warm);
    let slots = (BOUNDED_CACHE_BYTES / MAX_ENTRY_BYTES) as u64;
    eprintln!(
        "envoy-e2e: {done} distinct users answered ({failed} failed) in {elapsed:.1?} ({:.0}/s) \
         over {LOAD_CONNECTIONS} connections (per worker {per_worker:?}); {calls} function calls; \
         answer_cache {stats:?} ({slots} slots); Envoy RSS after the warm-up {:.1} MiB, at the \
         end {:.1} MiB (peak {:.1} MiB): growth {:.2} MiB (bound {:.1} MiB = 2 x max_bytes + 8 \
         MiB)",
        done as f64 / elapsed.as_secs_f64(),
        mib(rss_warm),
        mib(rss_end),
        mib(peak),
        mib(growth),
        mib(RSS_GROWTH_BOUND),
    );

    ensure(failed == 0 && done == DISTINCT_KEYS, || {
        format!(
            "{DISTINCT_KEYS} requests must all be answered with their user within \
             {LOAD_DEADLINE:?}: {done} were, {failed} failed, e.g. {:?}",
            warm_up
                .failures
                .iter()
                .chain(&rest.failures)
                .collect::<Vec<_>>()
        )
    })?;
    ensure(calls == DISTINCT_KEYS, || {
        format!("every distinct user must call user-profile once: {calls} calls")
    })?;
    ensure(
        stats.stores == DISTINCT_KEYS && stats.misses == DISTINCT_KEYS && stats.hits == 0,
        || format!("every request must miss and store its answer: {stats:?}"),
    )?;
    ensure(
        stats.evictions >= DISTINCT_KEYS - slots && stats.evictions <= stats.stores,
        || {
            format!(
                "with {slots} slots and 60 s lifetimes, all but at most {slots} stores must \
                 evict a live entry: {stats:?}"
            )
        },
    )?;
    ensure(growth < RSS_GROWTH_BOUND, || {
        format!(
            "Envoy's RSS grew by {:.2} MiB between the warm-up ({:.1} MiB) and the end ({:.1} \
             MiB): more than {:.1} MiB",
            mib(growth),
            mib(rss_warm),
            mib(rss_end),
            mib(RSS_GROWTH_BOUND)
        )
    })
}
