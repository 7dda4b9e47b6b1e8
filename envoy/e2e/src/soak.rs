//! The soak (`make soak`, and a short run in `tests/soak.rs`): real Envoy
//! with the filter and the mock functions on loopback under a bounded,
//! mixed load, judged request by request.
//!
//! - **Servers.** One mock-functions server (`--users`, 1000 by default,
//!   so the seed query asks for many distinct users) and one Envoy (one
//!   worker, so every listener shares one Wasm VM) with three listeners,
//!   copies of the demo's: [`DEMO`] (the demo's configuration), [`PEOPLE`]
//!   (the amplification schema of `tests/replies.rs`) and [`FAULTS`]
//!   (fields mapped to `status?code=500`, `hang` and `drip`, those two on an
//!   upstream with a [`SHORT_TIMEOUT_MS`] timeout).
//! - **Load.** [`Options::concurrency`] client threads (keep-alive, one
//!   connection pool each) take requests in turn from a fixed, shuffled mix
//!   ([`MIX`]): valid queries (the seed query for every user, over POST and
//!   GET; three root fields; the list of every user with their orders,
//!   batched), every bad input of the README's faults table, failing,
//!   hanging and dripping functions. A warm-up of [`Options::warmup`]
//!   requests (the same mix) comes first, then [`Options::requests`].
//! - **Judged.** Every reply against what its kind must get: valid queries
//!   against the mock data set ([`mock_functions::DataSet`],
//!   [`mock_functions::answer_get`]), refusals by status, code and limit.
//! - **Measured.** Envoy's RSS (`VmRSS` of `/proc/<pid>/status`) after the
//!   warm-up, when half the requests are answered, and at the end; the
//!   count of each HTTP status, of each `errors[].extensions.code`, and per
//!   kind the count and latencies.
//!
//! It fails (see [`Report::failures`]) on a 5xx that is not a GraphQL JSON
//! body with `errors` (a dead or broken VM: Envoy's own local replies), on
//! a valid query answered wrongly, on any other reply its kind must not
//! get, on a request with no reply within [`Options::request_timeout`], on
//! RSS growth after the warm-up ([`rss_growth_allowed`]: the end more than
//! 10% + 16 MiB above the middle), on a trap in Envoy's log or a VM reload
//! (`wasm.<plugin>.vm_reload*`), on Envoy exiting, on calls still in flight at the mock functions after the run,
//! and when the wall-clock cap ([`Options::max_wall`]) stops the run early.
//! Nothing is pinned: this is not a benchmark.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mock_functions::{answer_get, DataSet};
use serde_json::{json, Value};

use crate::config::{self, DEMO_CLUSTER};
use crate::http::{Client, Reply};
use crate::paths::Paths;
use crate::process::ProcessGuard;
use crate::sandbox::spawn_mock;
use crate::solo::{solo_config, start_envoy, RunningEnvoy};

/// The demo's configuration (`envoy/envoy.yaml`).
pub const DEMO: &str = "soak-demo";
/// The amplification schema (`corpus/people.graphql`), default limits.
pub const PEOPLE: &str = "soak-people";
/// Fields mapped to failing, hanging and dripping functions.
pub const FAULTS: &str = "soak-faults";
/// The timeout of the faults listener's `short` upstream (`hang`, the slow
/// `drip`): a hanging call ends this quickly.
pub const SHORT_TIMEOUT_MS: u64 = 250;
/// The faults listener's request deadline.
pub const FAULTS_DEADLINE_MS: u64 = 2000;
/// The slow `drip`'s pause per byte: its ~50-byte answer would take 10 s.
pub const SLOW_DRIP_MS: u64 = 200;
/// The faults listener's `max_body_bytes`: under Envoy's buffer limit
/// (1 MiB), so that the filter itself refuses a larger body.
pub const FAULTS_MAX_BODY_BYTES: usize = 64 * 1024;

/// RSS may grow from the middle to the end by this fraction ...
pub const RSS_GROWTH_RATIO: f64 = 0.10;
/// ... plus this many bytes.
pub const RSS_GROWTH_SLACK: u64 = 16 << 20;

/// What in Envoy's log means the Wasm VM trapped or failed.
const TRAP_MARKERS: [&str; 4] = [
    "RuntimeError",
    "Uncaught",
    "wasm trap",
    "Function: proxy_on_",
];

/// How long the mock functions may take to see every call end after the run.
const DRAIN: Duration = Duration::from_secs(5);

/// How a soak runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Requests measured (after the warm-up).
    pub requests: u64,
    /// Requests before the first RSS sample (the same mix).
    pub warmup: u64,
    /// Client threads, each with its own keep-alive connections.
    pub concurrency: usize,
    /// The client's bound on each request.
    pub request_timeout: Duration,
    /// The bound on the whole run (warm-up and requests); past it no new
    /// request starts, and the run fails.
    pub max_wall: Duration,
    /// Users of the mock functions' data set.
    pub users: u32,
    /// The work directory's name under `<target>/envoy-e2e/`.
    pub name: String,
    /// Known deviations of the filter ([`Verdict::Tolerated`]) fail too.
    pub strict: bool,
}

impl Default for Options {
    /// `make soak`'s defaults.
    fn default() -> Options {
        Options {
            requests: 100_000,
            warmup: 10_000,
            concurrency: 32,
            request_timeout: Duration::from_secs(10),
            max_wall: Duration::from_secs(900),
            users: 1000,
            name: "soak".into(),
            // Both deviations seen under soak are fixed: any is a failure
            // (SOAK_STRICT=0 only counts them).
            strict: true,
        }
    }
}

fn env_number(name: &str) -> Result<Option<u64>, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={v:?} is not a non-negative integer")),
        _ => Ok(None),
    }
}

impl Options {
    /// `self` with what the environment overrides: `SOAK_REQUESTS`,
    /// `SOAK_WARMUP` (default: a tenth of the requests, 400 to 10,000),
    /// `SOAK_CONCURRENCY`, `SOAK_TIMEOUT_MS`, `SOAK_MAX_SECONDS`,
    /// `SOAK_USERS`, `SOAK_STRICT` (default 1: known deviations fail; 0:
    /// they are only counted).
    pub fn from_env(mut self) -> Result<Options, String> {
        if let Some(n) = env_number("SOAK_STRICT")? {
            self.strict = n != 0;
        }
        if let Some(n) = env_number("SOAK_REQUESTS")? {
            self.requests = n.max(1);
            self.warmup = (self.requests / 10).clamp(400, 10_000);
        }
        if let Some(n) = env_number("SOAK_WARMUP")? {
            self.warmup = n;
        }
        if let Some(n) = env_number("SOAK_CONCURRENCY")? {
            self.concurrency = usize::try_from(n).unwrap_or(usize::MAX).clamp(1, 1024);
        }
        if let Some(n) = env_number("SOAK_TIMEOUT_MS")? {
            self.request_timeout = Duration::from_millis(n.max(1));
        }
        if let Some(n) = env_number("SOAK_MAX_SECONDS")? {
            self.max_wall = Duration::from_secs(n.max(1));
        }
        if let Some(n) = env_number("SOAK_USERS")? {
            self.users = u32::try_from(n).unwrap_or(u32::MAX).max(3);
        }
        Ok(self)
    }
}

// ---------------------------------------------------------------------------
// The servers

/// The mock functions and one Envoy; dropping it stops Envoy, then the mock
/// functions (by PID, see [`crate::process`]).
#[derive(Debug)]
pub struct Servers {
    envoy: ProcessGuard,
    mock: ProcessGuard,
    /// Where the mock functions listen.
    pub functions: SocketAddr,
    /// Envoy's admin address.
    pub admin: SocketAddr,
    /// The port of each listener, by name.
    pub ports: BTreeMap<String, u16>,
    /// Envoy's log.
    pub envoy_log: PathBuf,
}

/// The faults listener's filter configuration.
pub fn faults_filter_config() -> Value {
    let schema = format!(
        "type Query {{\n\
         \x20 user(id: ID!): User @http(upstream: \"fn\", path: \"/user-profile?id={{args.id}}\")\n\
         \x20 failing: Failure @http(upstream: \"fn\", path: \"/status?code=500\")\n\
         \x20 hanging: Failure @http(upstream: \"short\", path: \"/hang\")\n\
         \x20 dripping(id: ID!): User @http(upstream: \"short\", path: \"/drip?id={{args.id}}&ms={SLOW_DRIP_MS}\")\n\
         \x20 dripped(id: ID!): User @http(upstream: \"fn\", path: \"/drip?id={{args.id}}&ms=1\")\n\
         }}\n\
         type User {{ id: ID! name: String email: String }}\n\
         type Failure {{ status: Int hung: Int }}\n"
    );
    let upstream = |timeout_ms: u64| {
        json!({
            "target": DEMO_CLUSTER,
            "authority": "functions",
            "path_prefix": "/function",
            "timeout_ms": timeout_ms,
        })
    };
    json!({
        "schema": schema,
        "upstreams": {"fn": upstream(5000), "short": upstream(SHORT_TIMEOUT_MS)},
        "deadline_ms": FAULTS_DEADLINE_MS,
        "limits": {"max_body_bytes": FAULTS_MAX_BODY_BYTES},
    })
}

impl Servers {
    /// Starts the mock functions (`--users users`) and Envoy with the three
    /// listeners, in `<target>/envoy-e2e/<name>/`, and waits until every
    /// listener is up.
    pub fn start(paths: &Paths, name: &str, users: u32) -> Result<Servers, String> {
        paths.check()?;
        if let Some(warning) = paths.staleness_warning() {
            eprintln!("envoy-e2e: {warning}");
        }
        let work = paths.work.join(name);
        std::fs::create_dir_all(&work)
            .map_err(|e| format!("cannot create {}: {e}", work.display()))?;
        let mut command = Command::new(&paths.mock_functions);
        command.arg(format!("--users={users}"));
        let (mock, functions) = spawn_mock(command, name, &work.join("mock-functions.log"))?;

        let demo = config::load_yaml(&paths.demo_config)?;
        let listeners = [
            (DEMO, config::demo_filter_config(&demo)?),
            (PEOPLE, graphql_corpus::people_filter_config(DEMO_CLUSTER)),
            (FAULTS, faults_filter_config()),
        ];
        let wasm = paths
            .wasm
            .canonicalize()
            .map_err(|e| format!("{}: {e}", paths.wasm.display()))?;
        let generated = solo_config(&demo, &wasm, functions.port(), &listeners)?;
        let names: Vec<&str> = listeners.iter().map(|(n, _)| *n).collect();
        let RunningEnvoy {
            envoy,
            admin,
            ports,
            envoy_log,
            ..
        } = start_envoy(paths, &work, &generated, &names)?;
        Ok(Servers {
            envoy,
            mock,
            functions,
            admin,
            ports,
            envoy_log,
        })
    }

    /// Envoy's PID.
    pub fn envoy_pid(&self) -> u32 {
        self.envoy.pid()
    }

    /// `http://127.0.0.1:<port>/graphql` of a listener.
    pub fn graphql_url(&self, listener: &str) -> Result<String, String> {
        self.ports
            .get(listener)
            .map(|port| format!("http://127.0.0.1:{port}/graphql"))
            .ok_or_else(|| format!("no listener {listener}"))
    }

    /// `Err` when Envoy has exited.
    pub fn check_envoy_running(&self) -> Result<(), String> {
        self.envoy.check_running()
    }

    /// Stops Envoy, then the mock functions (also done on drop).
    pub fn stop(&mut self) {
        self.envoy.stop();
        self.mock.stop();
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The resident set of process `pid` (`VmRSS`) and its peak (`VmHWM`), in
/// bytes.
pub fn rss_of(pid: u32) -> Result<(u64, u64), String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let field = |name: &str| -> Result<u64, String> {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| format!("{path} has no {name} line in kB"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The most RSS may be at the end, given the middle's.
pub fn rss_growth_allowed(middle: u64) -> u64 {
    let grown = (middle as f64 * (1.0 + RSS_GROWTH_RATIO)) as u64;
    grown.saturating_add(RSS_GROWTH_SLACK)
}

// ---------------------------------------------------------------------------
// The mix

/// One kind of request of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The seed query (user and orders, batched) for one of the users.
    Seed,
    /// The same over `GET /graphql?query=…&variables=…`.
    SeedGet,
    /// Three root fields: a user, every user's id, one SKU's stock.
    ThreeRoots,
    /// Every user with their orders: one `users` call, orders batched.
    UsersList,
    /// The seed query for a user the function does not know (404).
    UnknownUser,
    /// A user through `drip` at 1 ms per byte: complete, within its timeout.
    Dripped,
    /// A user and a field whose function answers 500.
    Failing,
    /// A user and a field whose function hangs (cut at the short timeout).
    Hanging,
    /// A field whose function drips 200 ms per byte (cut at the short timeout).
    Dripping,
    /// A body that is not JSON.
    InvalidJson,
    /// `content-type: text/plain`.
    WrongContentType,
    /// A JSON body without `query`.
    MissingQuery,
    /// A document that does not parse (`application/json`: 200).
    ParseError,
    /// The same with `accept: application/graphql-response+json` (400).
    ParseErrorStrict,
    /// An unknown field.
    ValidationError,
    /// 40 levels of `friends` (`max_depth` 32).
    OverDeep,
    /// 70 aliases (`max_aliases` 64).
    TooManyAliases,
    /// 40 root fields (`max_root_fields` 32).
    TooManyRootFields,
    /// A body over the default `max_body_bytes` (1 MiB), which is also
    /// Envoy's buffer limit.
    Oversized,
    /// A 100 KiB body to the faults listener (`max_body_bytes` 64 KiB).
    OversizedForFilter,
    /// Three levels of self-referencing batched friends: 27,931 objects, complete.
    Friends3,
    /// Four levels: over `max_reply_objects`, refused as a whole.
    Friends4,
    /// Six levels: refused as a whole.
    Friends6,
    /// `PUT`: 405.
    WrongMethod,
}

/// The mix: each kind with its weight (requests per 200).
pub const MIX: [(Kind, u32); 24] = [
    (Kind::Seed, 95),
    (Kind::SeedGet, 10),
    (Kind::ThreeRoots, 8),
    (Kind::UsersList, 5),
    (Kind::UnknownUser, 4),
    (Kind::Dripped, 5),
    (Kind::Failing, 7),
    (Kind::Hanging, 5),
    (Kind::Dripping, 4),
    (Kind::InvalidJson, 5),
    (Kind::WrongContentType, 5),
    (Kind::MissingQuery, 5),
    (Kind::ParseError, 5),
    (Kind::ParseErrorStrict, 3),
    (Kind::ValidationError, 5),
    (Kind::OverDeep, 5),
    (Kind::TooManyAliases, 5),
    (Kind::TooManyRootFields, 5),
    (Kind::Oversized, 1),
    (Kind::OversizedForFilter, 2),
    (Kind::Friends3, 1),
    (Kind::Friends4, 4),
    (Kind::Friends6, 2),
    (Kind::WrongMethod, 4),
];

impl Kind {
    /// A short name, for the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Seed => "seed query",
            Kind::SeedGet => "seed query, GET",
            Kind::ThreeRoots => "3 root fields",
            Kind::UsersList => "every user + orders (batched)",
            Kind::UnknownUser => "unknown user (404)",
            Kind::Dripped => "drip 1 ms/byte (complete)",
            Kind::Failing => "function answers 500",
            Kind::Hanging => "function hangs",
            Kind::Dripping => "function drips 200 ms/byte",
            Kind::InvalidJson => "invalid JSON",
            Kind::WrongContentType => "wrong content type",
            Kind::MissingQuery => "missing query",
            Kind::ParseError => "invalid GraphQL",
            Kind::ParseErrorStrict => "invalid GraphQL, graphql-response+json",
            Kind::ValidationError => "unknown field",
            Kind::OverDeep => "over-deep (40 levels)",
            Kind::TooManyAliases => "too many aliases",
            Kind::TooManyRootFields => "too many root fields",
            Kind::Oversized => "oversized body (1 MiB)",
            Kind::OversizedForFilter => "oversized body (64 KiB limit)",
            Kind::Friends3 => "friends x3 (27,931 objects)",
            Kind::Friends4 => "friends x4 (amplified)",
            Kind::Friends6 => "friends x6 (amplified)",
            Kind::WrongMethod => "PUT",
        }
    }

    /// A valid query, whose data is checked against the data set.
    fn is_valid_query(self) -> bool {
        matches!(
            self,
            Kind::Seed
                | Kind::SeedGet
                | Kind::ThreeRoots
                | Kind::UsersList
                | Kind::UnknownUser
                | Kind::Dripped
                | Kind::Failing
                | Kind::Hanging
                | Kind::Dripping
                | Kind::Friends3
        )
    }
}

/// The mix expanded to one slot per weight unit, shuffled with a fixed seed
/// (the same order on every run).
pub fn deck() -> Vec<Kind> {
    let mut deck: Vec<Kind> = MIX
        .iter()
        .flat_map(|&(kind, weight)| std::iter::repeat_n(kind, usize::try_from(weight).unwrap_or(0)))
        .collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..deck.len()).rev() {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let j = usize::try_from(r % (i as u64 + 1)).unwrap_or(0);
        deck.swap(i, j);
    }
    deck
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Its kind.
    pub kind: Kind,
    /// The listener it goes to.
    pub listener: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// Appended to `/graphql` (a query string, for GET).
    pub query_string: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// The body (shared: the oversized one is 1 MiB).
    pub body: Arc<Vec<u8>>,
    /// The user it is about (for valid queries).
    pub user: u32,
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const SEED_QUERY: &str = "query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }";
const THREE_ROOTS_QUERY: &str = "query ThreeRoots($userId: ID!, $sku: String!) { user(id: $userId) { name } users { id } inventory(sku: $sku) { quantity } }";
const USERS_LIST_QUERY: &str = "{ users { id name orders { id amount } } }";
const FAILING_QUERY: &str =
    "query Failing($id: ID!) { user(id: $id) { id name } failing { status } }";
const HANGING_QUERY: &str =
    "query Hanging($id: ID!) { user(id: $id) { id name } hanging { hung } }";
const DRIPPING_QUERY: &str =
    "query Dripping($id: ID!) { dripping(id: $id) { id name } user(id: $id) { email } }";
const DRIPPED_QUERY: &str = "query Dripped($id: ID!) { dripped(id: $id) { id name email } }";

/// The size of the oversized body: over the default `max_body_bytes`.
const OVERSIZED_BYTES: usize = (1 << 20) + 1024;
/// The size of the body over the faults listener's `max_body_bytes`.
const OVERSIZED_FOR_FILTER_BYTES: usize = 100 * 1024;

/// SplitMix64: a well-spread, fixed function of `x`.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Builds the requests of the mix.
#[derive(Debug)]
pub struct Mix {
    deck: Vec<Kind>,
    users: u32,
    oversized: Arc<Vec<u8>>,
    oversized_for_filter: Arc<Vec<u8>>,
}

/// A valid GraphQL request padded to `size` bytes.
fn padded_body(size: usize) -> Arc<Vec<u8>> {
    let mut body = br#"{"query":"{ __typename }","extensions":{"pad":""#.to_vec();
    body.resize(size.saturating_sub(3), b'x');
    body.extend_from_slice(b"\"}}");
    Arc::new(body)
}

impl Mix {
    /// The mix for a data set of `users` users.
    pub fn new(users: u32) -> Mix {
        Mix {
            deck: deck(),
            users: users.max(1),
            oversized: padded_body(OVERSIZED_BYTES),
            oversized_for_filter: padded_body(OVERSIZED_FOR_FILTER_BYTES),
        }
    }

    /// Request number `i` (the same for the same `i` on every run).
    pub fn request(&self, i: u64) -> Request {
        let len = u64::try_from(self.deck.len()).unwrap_or(1).max(1);
        let slot = usize::try_from(i % len).unwrap_or(0);
        let kind = self.deck.get(slot).copied().unwrap_or(Kind::Seed);
        // Users in a scattered order, independent of the kind.
        let user = u32::try_from(splitmix64(i) % u64::from(self.users)).unwrap_or(0) + 1;
        let json_body = |query: &str, variables: Value| {
            Arc::new(
                json!({"query": query, "variables": variables})
                    .to_string()
                    .into_bytes(),
            )
        };
        let json_headers = vec![("content-type".to_string(), "application/json".to_string())];
        let mut request = Request {
            kind,
            listener: DEMO,
            method: "POST",
            query_string: String::new(),
            headers: json_headers,
            body: Arc::new(Vec::new()),
            user,
        };
        let id = user.to_string();
        match kind {
            Kind::Seed => request.body = json_body(SEED_QUERY, json!({"userId": id})),
            Kind::SeedGet => {
                request.method = "GET";
                request.headers.clear();
                request.query_string = format!(
                    "?query={}&variables={}",
                    percent_encode(SEED_QUERY),
                    percent_encode(&json!({"userId": id}).to_string())
                );
            }
            Kind::ThreeRoots => {
                let sku = format!("sku-{}", user % 20 + 1);
                request.body = json_body(THREE_ROOTS_QUERY, json!({"userId": id, "sku": sku}));
            }
            Kind::UsersList => request.body = json_body(USERS_LIST_QUERY, json!({})),
            Kind::UnknownUser => {
                request.user = self.users + 1 + user % 100;
                request.body = json_body(SEED_QUERY, json!({"userId": request.user.to_string()}));
            }
            Kind::Dripped => {
                request.listener = FAULTS;
                request.body = json_body(DRIPPED_QUERY, json!({"id": id}));
            }
            Kind::Failing => {
                request.listener = FAULTS;
                request.body = json_body(FAILING_QUERY, json!({"id": id}));
            }
            Kind::Hanging => {
                request.listener = FAULTS;
                request.body = json_body(HANGING_QUERY, json!({"id": id}));
            }
            Kind::Dripping => {
                request.listener = FAULTS;
                request.body = json_body(DRIPPING_QUERY, json!({"id": id}));
            }
            Kind::InvalidJson => {
                request.body = Arc::new(
                    format!(r#"{{"query": "{{ user(id: \"{id}\") {{ name }} }}""#).into_bytes(),
                );
            }
            Kind::WrongContentType => {
                request.headers = vec![("content-type".into(), "text/plain".into())];
                request.body = json_body(SEED_QUERY, json!({"userId": id}));
            }
            Kind::MissingQuery => {
                request.body = Arc::new(
                    json!({"variables": {"userId": id}})
                        .to_string()
                        .into_bytes(),
                );
            }
            Kind::ParseError | Kind::ParseErrorStrict => {
                if kind == Kind::ParseErrorStrict {
                    request
                        .headers
                        .push(("accept".into(), "application/graphql-response+json".into()));
                }
                let query = format!("{{ user(id: \"{id}\") {{ name ");
                request.body = json_body(&query, json!({}));
            }
            Kind::ValidationError => {
                let query = format!("{{ user(id: \"{id}\") {{ name nope }} }}");
                request.body = json_body(&query, json!({}));
            }
            Kind::OverDeep => {
                request.listener = PEOPLE;
                request.body = json_body(&graphql_corpus::friends_query(40), json!({}));
            }
            Kind::TooManyAliases => {
                let aliases: String = (0..70).map(|a| format!("a{a}: name ")).collect();
                let query = format!("{{ user(id: \"{id}\") {{ {aliases}}} }}");
                request.body = json_body(&query, json!({}));
            }
            Kind::TooManyRootFields => {
                let roots: String = (0..40)
                    .map(|r| {
                        format!(
                            "u{r}: user(id: \"{}\") {{ id }} ",
                            (user + r) % self.users + 1
                        )
                    })
                    .collect();
                request.body = json_body(&format!("{{ {roots}}}"), json!({}));
            }
            Kind::Oversized => request.body = Arc::clone(&self.oversized),
            Kind::OversizedForFilter => {
                request.listener = FAULTS;
                request.body = Arc::clone(&self.oversized_for_filter);
            }
            Kind::Friends3 | Kind::Friends4 | Kind::Friends6 => {
                let levels = match kind {
                    Kind::Friends3 => 3,
                    Kind::Friends4 => 4,
                    _ => 6,
                };
                request.listener = PEOPLE;
                request.body = json_body(&graphql_corpus::friends_query(levels), json!({}));
            }
            Kind::WrongMethod => {
                request.method = "PUT";
                request.body = json_body(SEED_QUERY, json!({"userId": id}));
            }
        }
        request
    }
}

// ---------------------------------------------------------------------------
// Judging

/// What a reply was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// What its kind must get.
    Ok,
    /// A 5xx that is not a GraphQL JSON body with `errors`: Envoy's own
    /// local reply, a dead or broken VM.
    BrokenVm(String),
    /// A valid query whose answer is not the data set's.
    Wrong(String),
    /// Another reply than its kind must get.
    Unexpected(String),
    /// A known deviation of the filter (see [`TOLERATED_OVERSIZED`],
    /// [`TOLERATED_DRIP_RESET`]): counted, a failure only with
    /// [`Options::strict`].
    Tolerated(&'static str),
}

/// A body over 1 MiB on Envoy's default limits is refused by Envoy's own
/// buffer limit (`413 Payload Too Large`, text) before the filter sees it
/// over `max_body_bytes`.
pub const TOLERATED_OVERSIZED: &str =
    "413 from Envoy's buffer limit, not the filter's LIMIT_EXCEEDED";
/// A function that sent its headers and is cut at its timeout mid-body is
/// reported `UPSTREAM_UNAVAILABLE` when Envoy's timer fires a little before
/// the filter's clock says the timeout has passed.
pub const TOLERATED_DRIP_RESET: &str =
    "drip cut at its timeout reported UPSTREAM_UNAVAILABLE, not UPSTREAM_TIMEOUT";

/// The expected answers, from the mock data set.
#[derive(Debug)]
pub struct Expected {
    data: DataSet,
    users_list: Value,
    all_ids: Value,
}

fn pick(object: &Value, keys: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for key in keys {
        out.insert((*key).to_string(), object[*key].clone());
    }
    Value::Object(out)
}

impl Expected {
    /// For a data set of `users` users.
    pub fn new(users: u32) -> Expected {
        let data = DataSet::new(users);
        let all = data.users();
        let list = all.as_array().cloned().unwrap_or_default();
        let users_list = Value::Array(
            list.iter()
                .map(|u| {
                    let id = u["id"].as_str().unwrap_or_default();
                    let mut user = pick(u, &["id", "name"]);
                    user["orders"] = orders_of(&data, id);
                    user
                })
                .collect(),
        );
        let all_ids = Value::Array(list.iter().map(|u| pick(u, &["id"])).collect());
        Expected {
            data,
            users_list,
            all_ids,
        }
    }

    fn user(&self, id: u32, keys: &[&str]) -> Value {
        self.data
            .user(&id.to_string())
            .map_or(Value::Null, |u| pick(&u, keys))
    }

    fn seed(&self, id: u32) -> Value {
        let mut user = self.user(id, &["id", "name", "email"]);
        if user.is_object() {
            user["orders"] = orders_of(&self.data, &id.to_string());
        }
        json!({ "user": user })
    }

    /// What the `drip` function answers for `id`, through the same code the
    /// server runs.
    fn dripped(&self, id: u32) -> Value {
        let answer = answer_get(&self.data, &format!("/drip?id={id}&ms=1"));
        serde_json::from_str::<Value>(&answer.body)
            .map(|u| pick(&u, &["id", "name", "email"]))
            .unwrap_or(Value::Null)
    }
}

fn orders_of(data: &DataSet, id: &str) -> Value {
    Value::Array(
        data.orders(id)
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| pick(o, &["id", "amount"]))
            .collect(),
    )
}

/// JSON equality where key order counts (a GraphQL response follows the
/// selection's order) and numbers compare as numbers (`250` is `250.0`).
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same_json(vx, vy))
        }
        _ => a == b,
    }
}

fn truncated(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
        None => text.to_string(),
    }
}

/// The codes of a reply's `errors`, in order.
fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            e["extensions"]["code"]
                .as_str()
                .unwrap_or("(no code)")
                .to_string()
        })
        .collect()
}

/// Checks a reply with data and exactly these field errors (code, path).
fn partial(body: &Value, data: &Value, errors: &[(&str, Value)]) -> Result<(), String> {
    let mut problems = Vec::new();
    if !same_json(&body["data"], data) {
        problems.push(format!(
            "data {}, expected {}",
            truncated(&body["data"].to_string(), 300),
            truncated(&data.to_string(), 300)
        ));
    }
    let got: Vec<(String, Value)> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["extensions"]["code"].as_str().unwrap_or("").to_string(),
                e["path"].clone(),
            )
        })
        .collect();
    let want: Vec<(String, Value)> = errors
        .iter()
        .map(|(c, p)| ((*c).to_string(), p.clone()))
        .collect();
    if got != want {
        problems.push(format!("errors {got:?}, expected {want:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Checks a request error: this status, one error with this code (and one
/// of these limits), no `data`.
fn refused(
    reply: &Reply,
    body: &Value,
    status: u16,
    code: &str,
    limits: &[&str],
) -> Result<(), String> {
    let mut problems = Vec::new();
    if reply.status != status {
        problems.push(format!("status {}, expected {status}", reply.status));
    }
    let got = codes(body);
    if got.first().map(String::as_str) != Some(code) {
        problems.push(format!("codes {got:?}, expected [{code}]"));
    }
    if !limits.is_empty() {
        let limit = body["errors"][0]["extensions"]["limit"]
            .as_str()
            .unwrap_or("");
        if !limits.contains(&limit) {
            problems.push(format!("limit {limit:?}, expected one of {limits:?}"));
        }
    }
    if body.get("data").is_some() {
        problems.push("a request error with `data`".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Checks `levels` levels of complete friend lists; returns the leaves.
fn friends_complete(value: &Value, levels: usize) -> Result<usize, String> {
    if levels == 0 {
        return value["id"].as_str().map(|_| 1).ok_or_else(|| {
            format!(
                "a leaf without an id: {}",
                truncated(&value.to_string(), 200)
            )
        });
    }
    let friends = value["friends"]
        .as_array()
        .ok_or_else(|| "friends is not a list".to_string())?;
    let people = usize::try_from(mock_functions::data::PEOPLE).unwrap_or(0);
    if friends.len() != people {
        return Err(format!("{} friends, expected {people}", friends.len()));
    }
    let mut leaves = 0;
    for (i, friend) in friends.iter().enumerate() {
        if levels == 1 && friend["id"] != json!((i + 1).to_string()) {
            return Err(format!("friend {i} is {friend}"));
        }
        leaves += friends_complete(friend, levels - 1)?;
    }
    Ok(leaves)
}

impl Expected {
    /// Judges `reply` to `request`.
    pub fn judge(&self, request: &Request, reply: &Reply) -> Verdict {
        let body: Option<Value> = serde_json::from_str(&reply.body).ok();
        if reply.status >= 500 {
            let graphql = body
                .as_ref()
                .is_some_and(|b| b["errors"].as_array().is_some_and(|e| !e.is_empty()));
            if !graphql {
                return Verdict::BrokenVm(format!(
                    "status {} ({}), body {:?}",
                    reply.status,
                    reply.content_type.as_deref().unwrap_or("no content-type"),
                    truncated(&reply.body, 300)
                ));
            }
        }
        if request.kind == Kind::Oversized
            && reply.status == 413
            && reply.body.trim() == "Payload Too Large"
        {
            return Verdict::Tolerated(TOLERATED_OVERSIZED);
        }
        let Some(body) = body else {
            let problem = format!(
                "status {}, body not JSON: {:?}",
                reply.status,
                truncated(&reply.body, 300)
            );
            return if request.kind.is_valid_query() {
                Verdict::Wrong(problem)
            } else {
                Verdict::Unexpected(problem)
            };
        };
        let result = self.check(request, reply, &body);
        match result {
            Ok(()) => Verdict::Ok,
            Err(_) if self.tolerated(request, reply, &body) => match request.kind {
                Kind::Oversized => Verdict::Tolerated(TOLERATED_OVERSIZED),
                _ => Verdict::Tolerated(TOLERATED_DRIP_RESET),
            },
            Err(problem) => {
                let problem = format!("status {}: {problem}", reply.status);
                if request.kind.is_valid_query() {
                    Verdict::Wrong(problem)
                } else {
                    Verdict::Unexpected(problem)
                }
            }
        }
    }

    /// The known deviations: a dripping function cut at its timeout and
    /// reported unavailable (the data otherwise right).
    fn tolerated(&self, request: &Request, reply: &Reply, body: &Value) -> bool {
        request.kind == Kind::Dripping
            && reply.status == 200
            && partial(
                body,
                &json!({"dripping": null, "user": self.user(request.user, &["email"])}),
                &[("UPSTREAM_UNAVAILABLE", json!(["dripping"]))],
            )
            .is_ok()
    }

    fn check(&self, request: &Request, reply: &Reply, body: &Value) -> Result<(), String> {
        let ok_status = || {
            if reply.status == 200 {
                Ok(())
            } else {
                Err(format!("status {}, expected 200", reply.status))
            }
        };
        let user = request.user;
        match request.kind {
            Kind::Seed | Kind::SeedGet => {
                ok_status()?;
                partial(body, &self.seed(user), &[])
            }
            Kind::ThreeRoots => {
                ok_status()?;
                let sku = format!("sku-{}", user % 20 + 1);
                let inventory =
                    DataSet::inventory(&sku).map_or(Value::Null, |i| pick(&i, &["quantity"]));
                let data = json!({
                    "user": self.user(user, &["name"]),
                    "users": self.all_ids,
                    "inventory": inventory,
                });
                partial(body, &data, &[])
            }
            Kind::UsersList => {
                ok_status()?;
                partial(body, &json!({"users": self.users_list}), &[])
            }
            Kind::UnknownUser => {
                ok_status()?;
                partial(
                    body,
                    &json!({"user": null}),
                    &[("UPSTREAM_HTTP_ERROR", json!(["user"]))],
                )
            }
            Kind::Dripped => {
                ok_status()?;
                partial(body, &json!({"dripped": self.dripped(user)}), &[])
            }
            Kind::Failing => {
                ok_status()?;
                let data = json!({"user": self.user(user, &["id", "name"]), "failing": null});
                partial(body, &data, &[("UPSTREAM_HTTP_ERROR", json!(["failing"]))])
            }
            Kind::Hanging => {
                ok_status()?;
                let data = json!({"user": self.user(user, &["id", "name"]), "hanging": null});
                partial(body, &data, &[("UPSTREAM_TIMEOUT", json!(["hanging"]))])
            }
            Kind::Dripping => {
                ok_status()?;
                let data = json!({"dripping": null, "user": self.user(user, &["email"])});
                partial(body, &data, &[("UPSTREAM_TIMEOUT", json!(["dripping"]))])
            }
            Kind::InvalidJson | Kind::MissingQuery => refused(reply, body, 400, "BAD_REQUEST", &[]),
            Kind::WrongContentType => refused(reply, body, 415, "UNSUPPORTED_MEDIA_TYPE", &[]),
            Kind::ParseError => refused(reply, body, 200, "GRAPHQL_PARSE_FAILED", &[]),
            Kind::ParseErrorStrict => refused(reply, body, 400, "GRAPHQL_PARSE_FAILED", &[]),
            Kind::ValidationError => refused(reply, body, 200, "GRAPHQL_VALIDATION_FAILED", &[]),
            Kind::OverDeep => refused(reply, body, 200, "LIMIT_EXCEEDED", &["max_depth"]),
            Kind::TooManyAliases => refused(reply, body, 200, "LIMIT_EXCEEDED", &["max_aliases"]),
            Kind::TooManyRootFields => {
                refused(reply, body, 200, "LIMIT_EXCEEDED", &["max_root_fields"])
            }
            Kind::Oversized | Kind::OversizedForFilter => {
                refused(reply, body, 413, "LIMIT_EXCEEDED", &["max_body_bytes"])
            }
            Kind::Friends3 => {
                ok_status()?;
                if body.get("errors").is_some() {
                    return Err(format!("errors {:?}", codes(body)));
                }
                let leaves = friends_complete(&body["data"]["person"], 3)?;
                if leaves == 27_000 {
                    Ok(())
                } else {
                    Err(format!("{leaves} ids at the bottom, expected 27000"))
                }
            }
            Kind::Friends4 | Kind::Friends6 => refused(
                reply,
                body,
                200,
                "LIMIT_EXCEEDED",
                &["max_reply_objects", "max_reply_bytes"],
            ),
            Kind::WrongMethod => {
                refused(reply, body, 405, "METHOD_NOT_ALLOWED", &[])?;
                let allow = reply
                    .headers
                    .iter()
                    .find(|(name, _)| name == "allow")
                    .map(|(_, v)| v.as_str());
                if allow == Some("GET, POST") {
                    Ok(())
                } else {
                    Err(format!("allow {allow:?}, expected \"GET, POST\""))
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The run

/// How many samples of each kind of failure a report keeps.
const SAMPLES: usize = 5;

/// Per kind: count, latencies and failures.
#[derive(Debug, Default, Clone)]
pub struct KindTally {
    /// Requests sent.
    pub sent: u64,
    /// Latencies of the replies, in microseconds.
    pub latencies_us: Vec<u64>,
    /// Requests without a reply (transport error or client timeout).
    pub no_reply: u64,
    /// Replies judged other than [`Verdict::Ok`].
    pub failed: u64,
}

/// What the clients counted.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Replies by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// `errors[].extensions.code`, each error counted.
    pub codes: BTreeMap<String, u64>,
    /// `LIMIT_EXCEEDED` errors by `extensions.limit`.
    pub limits: BTreeMap<String, u64>,
    /// Per kind.
    pub kinds: BTreeMap<Kind, KindTally>,
    /// 5xx replies from a dead or broken VM.
    pub broken_vm: u64,
    /// Valid queries answered wrongly.
    pub wrong: u64,
    /// Other unexpected replies.
    pub unexpected: u64,
    /// Requests without a reply.
    pub no_reply: u64,
    /// Known deviations, by what they are.
    pub tolerated: BTreeMap<&'static str, u64>,
    /// The users the seed query asked for.
    pub seed_users: BTreeSet<u32>,
    /// Some of each, with the request.
    pub samples: Vec<String>,
}

impl Tally {
    fn sample(&mut self, what: &str, request: &Request, detail: &str) {
        let same = self.samples.iter().filter(|s| s.starts_with(what)).count();
        if same < SAMPLES {
            let body = String::from_utf8_lossy(&request.body);
            self.samples.push(format!(
                "{what}: {} ({} {} /graphql{} {}): {detail}",
                request.kind.name(),
                request.listener,
                request.method,
                truncated(&request.query_string, 200),
                truncated(&body, 200)
            ));
        }
    }

    fn record(
        &mut self,
        request: &Request,
        result: &Result<Reply, String>,
        verdict: Option<Verdict>,
    ) {
        if matches!(request.kind, Kind::Seed | Kind::SeedGet) {
            self.seed_users.insert(request.user);
        }
        let kind = self.kinds.entry(request.kind).or_default();
        kind.sent += 1;
        match result {
            Err(e) => {
                kind.no_reply += 1;
                self.no_reply += 1;
                self.sample("no reply", request, e);
            }
            Ok(reply) => {
                kind.latencies_us
                    .push(u64::try_from(reply.elapsed.as_micros()).unwrap_or(u64::MAX));
                *self.statuses.entry(reply.status).or_default() += 1;
                if let Ok(body) = serde_json::from_str::<Value>(&reply.body) {
                    for error in body["errors"].as_array().into_iter().flatten() {
                        let code = error["extensions"]["code"].as_str().unwrap_or("(no code)");
                        *self.codes.entry(code.to_string()).or_default() += 1;
                        if let Some(limit) = error["extensions"]["limit"].as_str() {
                            *self.limits.entry(limit.to_string()).or_default() += 1;
                        }
                    }
                }
                match verdict {
                    None | Some(Verdict::Ok) => {}
                    Some(Verdict::Tolerated(what)) => {
                        *self.tolerated.entry(what).or_default() += 1;
                        self.sample("tolerated", request, what);
                    }
                    Some(Verdict::BrokenVm(d)) => {
                        kind.failed += 1;
                        self.broken_vm += 1;
                        self.sample("broken VM", request, &d);
                    }
                    Some(Verdict::Wrong(d)) => {
                        kind.failed += 1;
                        self.wrong += 1;
                        self.sample("wrong answer", request, &d);
                    }
                    Some(Verdict::Unexpected(d)) => {
                        kind.failed += 1;
                        self.unexpected += 1;
                        self.sample("unexpected reply", request, &d);
                    }
                }
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.codes {
            *self.codes.entry(k).or_default() += v;
        }
        for (k, v) in other.limits {
            *self.limits.entry(k).or_default() += v;
        }
        for (k, v) in other.kinds {
            let mine = self.kinds.entry(k).or_default();
            mine.sent += v.sent;
            mine.no_reply += v.no_reply;
            mine.failed += v.failed;
            mine.latencies_us.extend(v.latencies_us);
        }
        self.broken_vm += other.broken_vm;
        self.wrong += other.wrong;
        self.unexpected += other.unexpected;
        self.no_reply += other.no_reply;
        self.seed_users.extend(other.seed_users);
        for (k, v) in other.tolerated {
            *self.tolerated.entry(k).or_default() += v;
        }
        for sample in other.samples {
            let what = sample.split(':').next().unwrap_or_default().to_string();
            if self.samples.iter().filter(|s| s.starts_with(&what)).count() < SAMPLES {
                self.samples.push(sample);
            }
        }
    }
}

/// One RSS sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    /// `VmRSS`, bytes.
    pub rss: u64,
    /// `VmHWM` (the peak so far), bytes.
    pub peak: u64,
    /// Requests answered when it was taken (warm-up included).
    pub after: u64,
}

/// The outcome of a soak.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// How it ran.
    pub requests: u64,
    /// Warm-up requests.
    pub warmup: u64,
    /// Client threads.
    pub concurrency: usize,
    /// Users of the data set.
    pub users: u32,
    /// Whether known deviations fail.
    pub strict: bool,
    /// Requests sent (warm-up included; fewer than planned when capped).
    pub sent: u64,
    /// The warm-up's wall time.
    pub warmup_time: Duration,
    /// The measured requests' wall time.
    pub time: Duration,
    /// Envoy's RSS after the warm-up, at the middle, at the end.
    pub rss: [Rss; 3],
    /// What the clients counted (warm-up included).
    pub tally: Tally,
    /// The filter's counters (`wasmcustom.graphql_aggregator.*` in Envoy's
    /// `/stats`) and Envoy's Wasm ones (`wasm.*`), those above 0.
    pub envoy_stats: BTreeMap<String, u64>,
    /// Calls per function at the mock functions.
    pub function_calls: BTreeMap<String, u64>,
    /// Calls still in flight at the mock functions after the run.
    pub in_flight_after: u64,
    /// Envoy's log.
    pub envoy_log: PathBuf,
    /// Every rule broken; empty when the soak passed.
    pub failures: Vec<String>,
}

fn mib(bytes: u64) -> String {
    let m = bytes as f64 / f64::from(1 << 20);
    format!("{m:.1} MiB")
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(rank).copied().unwrap_or(0)
}

fn ms(us: u64) -> String {
    let v = us as f64 / 1000.0;
    format!("{v:.1}")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.time.as_secs_f64().max(1e-9);
        let rate = self.requests as f64 / secs;
        writeln!(
            f,
            "soak: {} requests after a warm-up of {} ({} sent), {} clients, Envoy with 1 worker, \
             {} users; warm-up {:.1} s, requests {:.1} s ({rate:.0} req/s)",
            self.requests,
            self.warmup,
            self.sent,
            self.concurrency,
            self.users,
            self.warmup_time.as_secs_f64(),
            secs,
        )?;
        let [start, middle, end] = self.rss;
        writeln!(
            f,
            "Envoy RSS (VmRSS): start {} (after {} requests), middle {} (after {}), end {} (after {}); \
             peak (VmHWM) {}; rule: end <= middle x {:.2} + {} = {}",
            mib(start.rss),
            start.after,
            mib(middle.rss),
            middle.after,
            mib(end.rss),
            end.after,
            mib(end.peak),
            1.0 + RSS_GROWTH_RATIO,
            mib(RSS_GROWTH_SLACK),
            mib(rss_growth_allowed(middle.rss)),
        )?;
        let statuses: Vec<String> = self
            .tally
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        writeln!(f, "HTTP status: {}", statuses.join(", "))?;
        let codes: Vec<String> = self
            .tally
            .codes
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        writeln!(f, "errors[].extensions.code: {}", codes.join(", "))?;
        let limits: Vec<String> = self
            .tally
            .limits
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        writeln!(f, "LIMIT_EXCEEDED by limit: {}", limits.join(", "))?;
        writeln!(
            f,
            "no reply: {}; broken VM (5xx without a GraphQL body): {}; wrong answers: {}; \
             unexpected replies: {}",
            self.tally.no_reply, self.tally.broken_vm, self.tally.wrong, self.tally.unexpected
        )?;
        let tolerated: Vec<String> = self
            .tally
            .tolerated
            .iter()
            .map(|(what, n)| format!("{what}: {n}"))
            .collect();
        writeln!(
            f,
            "known deviations{}: {}",
            if self.strict {
                " (strict: failures)"
            } else {
                " (tolerated)"
            },
            if tolerated.is_empty() {
                "none".to_string()
            } else {
                tolerated.join("; ")
            }
        )?;
        writeln!(
            f,
            "the seed query asked for {} distinct users",
            self.tally.seed_users.len()
        )?;
        writeln!(
            f,
            "{:<40} {:>7} {:>8} {:>8} {:>8} {:>8} {:>6}",
            "kind", "sent", "p50 ms", "p99 ms", "max ms", "no reply", "failed"
        )?;
        for (kind, tally) in &self.tally.kinds {
            let mut sorted = tally.latencies_us.clone();
            sorted.sort_unstable();
            writeln!(
                f,
                "{:<40} {:>7} {:>8} {:>8} {:>8} {:>8} {:>6}",
                kind.name(),
                tally.sent,
                ms(percentile(&sorted, 0.5)),
                ms(percentile(&sorted, 0.99)),
                ms(sorted.last().copied().unwrap_or(0)),
                tally.no_reply,
                tally.failed
            )?;
        }
        let stats: Vec<String> = self
            .envoy_stats
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        writeln!(f, "Envoy counters: {}", stats.join(", "))?;
        let calls: Vec<String> = self
            .function_calls
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        writeln!(
            f,
            "function calls: {}; in flight after the run: {}",
            calls.join(", "),
            self.in_flight_after
        )?;
        for sample in &self.tally.samples {
            writeln!(f, "  {sample}")?;
        }
        writeln!(f, "Envoy log: {}", self.envoy_log.display())?;
        if self.failures.is_empty() {
            write!(f, "PASS: every rule held")
        } else {
            write!(f, "FAIL:\n  - {}", self.failures.join("\n  - "))
        }
    }
}

/// The shared state of one phase's clients.
struct Phase<'a> {
    mix: &'a Mix,
    expected: &'a Expected,
    urls: &'a BTreeMap<&'static str, String>,
    next: AtomicU64,
    done: AtomicU64,
    end: u64,
    /// The answered count at which `middle` is sampled (`u64::MAX`: never).
    middle_at: u64,
    middle: Mutex<Option<Result<Rss, String>>>,
    envoy_pid: u32,
    deadline: Instant,
    capped: &'a AtomicBool,
    timeout: Duration,
}

impl Phase<'_> {
    fn client(&self) -> Tally {
        let client = Client::new(self.timeout);
        let mut tally = Tally::default();
        loop {
            if Instant::now() >= self.deadline {
                self.capped.store(true, Ordering::Relaxed);
                break;
            }
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.end {
                break;
            }
            let request = self.mix.request(i);
            let url = match self.urls.get(request.listener) {
                Some(base) => format!("{base}{}", request.query_string),
                None => break,
            };
            let result = client.send(request.method, &url, &request.headers, &request.body);
            let verdict = result
                .as_ref()
                .ok()
                .map(|reply| self.expected.judge(&request, reply));
            tally.record(&request, &result, verdict);
            let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
            if done == self.middle_at {
                let sample = rss_of(self.envoy_pid).map(|(rss, peak)| Rss {
                    rss,
                    peak,
                    after: done,
                });
                *self.middle.lock().unwrap_or_else(PoisonError::into_inner) = Some(sample);
            }
        }
        tally
    }
}

/// Runs requests `start..end` of the mix on `concurrency` threads.
#[allow(clippy::too_many_arguments)]
fn run_phase(
    mix: &Mix,
    expected: &Expected,
    urls: &BTreeMap<&'static str, String>,
    range: (u64, u64),
    middle_at: u64,
    envoy_pid: u32,
    options: &Options,
    deadline: Instant,
    capped: &AtomicBool,
) -> Result<(Tally, Option<Rss>, u64), String> {
    let phase = Phase {
        mix,
        expected,
        urls,
        next: AtomicU64::new(range.0),
        done: AtomicU64::new(range.0),
        end: range.1,
        middle_at,
        middle: Mutex::new(None),
        envoy_pid,
        deadline,
        capped,
        timeout: options.request_timeout,
    };
    let mut tally = Tally::default();
    std::thread::scope(|scope| -> Result<(), String> {
        let handles: Vec<_> = (0..options.concurrency.max(1))
            .map(|_| scope.spawn(|| phase.client()))
            .collect();
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| "a client thread panicked".to_string())?;
            tally.merge(part);
        }
        Ok(())
    })?;
    let middle = phase
        .middle
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .transpose()?;
    Ok((tally, middle, phase.done.load(Ordering::Relaxed)))
}

/// The filter's counters and Envoy's Wasm counters, from the admin API.
fn envoy_counters(client: &Client, admin: SocketAddr) -> Result<BTreeMap<String, u64>, String> {
    let url = format!("http://{admin}/stats?format=json");
    let reply = client.get(&url)?;
    let value: Value =
        serde_json::from_str(&reply.body).map_err(|e| format!("GET {url}: not JSON ({e})"))?;
    Ok(value["stats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s["name"].as_str()?.to_string(), s["value"].as_u64()?)))
        .filter(|(name, value)| {
            *value > 0 && (name.starts_with("wasmcustom.") || name.starts_with("wasm."))
        })
        .collect())
}

/// The mock functions' `/_stats`: calls per function, and in flight.
fn function_stats(
    client: &Client,
    functions: SocketAddr,
) -> Result<(BTreeMap<String, u64>, u64), String> {
    let url = format!("http://{functions}/_stats");
    let reply = client.get(&url)?;
    let value: Value =
        serde_json::from_str(&reply.body).map_err(|e| format!("GET {url}: not JSON ({e})"))?;
    let calls = value["calls"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect();
    Ok((calls, value["in_flight"].as_u64().unwrap_or(u64::MAX)))
}

/// Runs a soak: starts the servers, warms up, runs the requests, judges,
/// stops every process it started. `Err` when it could not run at all; a
/// run that breaks a rule is an `Ok` report with [`Report::failures`].
pub fn run(paths: &Paths, options: &Options) -> Result<Report, String> {
    let started = Instant::now();
    let mut servers = Servers::start(paths, &options.name, options.users)?;
    eprintln!(
        "soak: Envoy (pid {}) admin {}, listeners {:?}, mock functions {}; log {}",
        servers.envoy_pid(),
        servers.admin,
        servers.ports,
        servers.functions,
        servers.envoy_log.display()
    );
    let mix = Mix::new(options.users);
    let expected = Expected::new(options.users);
    let mut urls = BTreeMap::new();
    for listener in [DEMO, PEOPLE, FAULTS] {
        urls.insert(listener, servers.graphql_url(listener)?);
    }
    let deadline = started + options.max_wall;
    let capped = AtomicBool::new(false);
    let pid = servers.envoy_pid();
    let mut report = Report {
        requests: options.requests,
        warmup: options.warmup,
        concurrency: options.concurrency,
        users: options.users,
        strict: options.strict,
        envoy_log: servers.envoy_log.clone(),
        ..Report::default()
    };

    let warmup_started = Instant::now();
    let (warm, _, done) = run_phase(
        &mix,
        &expected,
        &urls,
        (0, options.warmup),
        u64::MAX,
        pid,
        options,
        deadline,
        &capped,
    )?;
    report.warmup_time = warmup_started.elapsed();
    let (rss, peak) = rss_of(pid)?;
    report.rss[0] = Rss {
        rss,
        peak,
        after: done,
    };
    eprintln!(
        "soak: warm-up of {} requests in {:.1} s; Envoy RSS {}",
        options.warmup,
        report.warmup_time.as_secs_f64(),
        mib(rss)
    );

    let total = options.warmup + options.requests;
    let measured_started = Instant::now();
    let (tally, middle, done) = run_phase(
        &mix,
        &expected,
        &urls,
        (options.warmup, total),
        options.warmup + options.requests / 2,
        pid,
        options,
        deadline,
        &capped,
    )?;
    report.time = measured_started.elapsed();
    let (rss, peak) = rss_of(pid)?;
    report.rss[2] = Rss {
        rss,
        peak,
        after: done,
    };
    report.rss[1] = middle.unwrap_or(report.rss[2]);
    report.sent = done;
    report.tally = warm;
    report.tally.merge(tally);

    // After the run: every call must end at the functions (Envoy cancels
    // what timed out), Envoy must be alive and its log free of traps.
    let admin_client = Client::new(Duration::from_secs(5));
    let drain_deadline = Instant::now() + DRAIN;
    let (calls, in_flight) = loop {
        let (calls, in_flight) = function_stats(&admin_client, servers.functions)?;
        if in_flight == 0 || Instant::now() >= drain_deadline {
            break (calls, in_flight);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    report.function_calls = calls;
    report.in_flight_after = in_flight;
    report.envoy_stats = envoy_counters(&admin_client, servers.admin).unwrap_or_default();

    let mut failures = Vec::new();
    if let Err(e) = servers.check_envoy_running() {
        failures.push(format!("Envoy is not running after the soak: {e}"));
    }
    let log = std::fs::read_to_string(&servers.envoy_log).unwrap_or_default();
    let traps: Vec<&str> = log
        .lines()
        .filter(|line| TRAP_MARKERS.iter().any(|m| line.contains(m)))
        .take(SAMPLES)
        .collect();
    if !traps.is_empty() {
        failures.push(format!(
            "Envoy's log shows a trap or a failed Wasm callback:\n      {}",
            traps.join("\n      ")
        ));
    }
    // With FAIL_RELOAD (the demo's policy) a trap is healed by a reload:
    // Envoy counts them per plugin (`wasm.<plugin>.vm_reload*`).
    let reloads: Vec<String> = report
        .envoy_stats
        .iter()
        .filter(|(name, value)| name.contains(".vm_reload") && **value > 0)
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    if !reloads.is_empty() {
        failures.push(format!(
            "the Wasm VM was reloaded (it trapped): {}",
            reloads.join(", ")
        ));
    }
    let t = &report.tally;
    if t.broken_vm > 0 {
        failures.push(format!(
            "{} replies were 5xx without a GraphQL body (a dead or broken VM)",
            t.broken_vm
        ));
    }
    if t.wrong > 0 {
        failures.push(format!("{} valid queries were answered wrongly", t.wrong));
    }
    if t.unexpected > 0 {
        failures.push(format!(
            "{} replies were not what their kind must get",
            t.unexpected
        ));
    }
    let deviations: u64 = t.tolerated.values().sum();
    if options.strict && deviations > 0 {
        failures.push(format!(
            "{deviations} replies were known deviations (strict)"
        ));
    }
    if t.no_reply > 0 {
        failures.push(format!(
            "{} requests got no reply within {:?}",
            t.no_reply, options.request_timeout
        ));
    }
    if capped.load(Ordering::Relaxed) || done < total {
        failures.push(format!(
            "the wall-clock cap of {:?} stopped the run after {done} of {total} requests",
            options.max_wall
        ));
    }
    let allowed = rss_growth_allowed(report.rss[1].rss);
    if report.rss[2].rss > allowed {
        failures.push(format!(
            "Envoy's RSS kept growing: {} at the end, over {} (the middle's {} + {:.0}% + {})",
            mib(report.rss[2].rss),
            mib(allowed),
            mib(report.rss[1].rss),
            RSS_GROWTH_RATIO * 100.0,
            mib(RSS_GROWTH_SLACK)
        ));
    }
    if in_flight > 0 {
        failures.push(format!(
            "{in_flight} function calls were still in flight {DRAIN:?} after the run"
        ));
    }
    report.failures = failures;
    servers.stop();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deck_is_the_mix_in_a_fixed_order() {
        let deck = deck();
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        assert_eq!(deck.len(), usize::try_from(total).unwrap());
        assert_eq!(total, 200);
        assert_eq!(MIX.len(), 24);
        for (kind, weight) in MIX {
            let n = deck.iter().filter(|k| **k == kind).count();
            assert_eq!(n, usize::try_from(weight).unwrap(), "{kind:?}");
        }
        assert_eq!(deck, super::deck());
        // Shuffled: the first 20 are not all seed queries.
        assert!(deck[..20].iter().any(|k| *k != Kind::Seed));
    }

    #[test]
    fn expected_answers_come_from_the_data_set() {
        let expected = Expected::new(5);
        assert_eq!(
            expected.seed(1).to_string(),
            r#"{"user":{"id":"1","name":"Alice","email":"alice@example.com","orders":[{"id":"order-101","amount":99.99},{"id":"order-102","amount":19.5}]}}"#
        );
        assert_eq!(expected.seed(6), json!({"user": null}));
        assert_eq!(
            expected.dripped(2),
            json!({"id": "2", "name": "Bob", "email": "bob@example.com"})
        );
        assert_eq!(expected.users_list.as_array().map(Vec::len), Some(5));
        assert!(same_json(
            &json!({"a": 250, "b": [1]}),
            &json!({"a": 250.0, "b": [1.0]})
        ));
        assert!(!same_json(
            &json!({"a": 1, "b": 2}),
            &json!({"b": 2, "a": 1})
        ));
    }

    #[test]
    fn every_kind_builds_a_request() {
        let mix = Mix::new(1000);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..400 {
            let request = mix.request(i);
            seen.insert(request.kind);
            if request.method == "GET" {
                assert!(request.query_string.starts_with("?query=query%20GetUser"));
            }
            if request.kind == Kind::Oversized {
                assert!(request.body.len() > 1 << 20);
                serde_json::from_slice::<Value>(&request.body).unwrap();
            }
            if request.kind == Kind::UnknownUser {
                assert!(request.user > 1000);
            } else {
                assert!((1..=1000).contains(&request.user));
            }
        }
        assert_eq!(seen.len(), MIX.len());
    }

    #[test]
    fn a_5xx_without_graphql_errors_is_a_broken_vm() {
        let expected = Expected::new(5);
        let request = Mix::new(5).request(0);
        let reply = |status, body: &str| Reply {
            status,
            content_type: Some("text/plain".into()),
            headers: Vec::new(),
            body: body.into(),
            elapsed: Duration::ZERO,
        };
        assert!(matches!(
            expected.judge(&request, &reply(503, "wasm vm failed")),
            Verdict::BrokenVm(_)
        ));
        assert!(matches!(
            expected.judge(&request, &reply(500, r#"{"data":null}"#)),
            Verdict::BrokenVm(_)
        ));
        assert!(!matches!(
            expected.judge(
                &request,
                &reply(
                    500,
                    r#"{"errors":[{"message":"x","extensions":{"code":"GATEWAY_MISCONFIGURED"}}]}"#
                )
            ),
            Verdict::BrokenVm(_)
        ));
    }

    #[test]
    fn rss_rule() {
        assert_eq!(rss_growth_allowed(100 << 20), 126 << 20);
        let (rss, peak) = rss_of(std::process::id()).unwrap();
        assert!(rss > 0 && peak >= rss);
    }
}
