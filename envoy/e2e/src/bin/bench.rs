//! `make bench`: the filter against its ceiling, the plain-proxy limit and
//! the Node peer, on loopback, in one run, under controlled conditions.
//!
//! - **Pinning.** wrk runs on one core (the first this process may use:
//!   core 0 here), every server of a row (the mock functions, Envoy, the
//!   Node peer) on another (core 1), with `taskset -c`. Without two usable
//!   cores, or without `taskset` (util-linux), nothing is pinned and the
//!   results say so.
//! - **Load.** `BENCH_CONNECTIONS` (default 64) connections from one wrk
//!   thread for `BENCH_SECONDS` (default 5) per run. `BENCH_ROUNDS`
//!   (default 3) rounds each run every row once; a row shows its median
//!   round and the lowest and highest.
//! - **Workload.** Rows about one user ask for another user on every
//!   request, 1 to [`MANY_USERS`] in turn (`bench/users.lua`), against mock
//!   functions serving that many users. Rows that list every user keep the
//!   default 50-user data set (the list's size is the workload).
//! - **Rows.** The plain-proxy limit (Envoy's router alone proxying one
//!   call), the ceiling (`bench/ceiling`: a minimal filter making the seed
//!   query's two calls and replying a constant), the real filter, the peer
//!   (Apollo Server 5 + dataloader, `bench/peer`), and a client calling the
//!   functions by hand; then the latency with every function delayed.
//!   Every target is warmed up first under the full load.
//! - **Hot keys.** A table of its own, from the same rounds: the seed query
//!   for only [`HOT_USERS`] users in turn, so that many requests in flight
//!   want the same function calls; the filter without call reduction across
//!   requests (the baseline), with in-flight coalescing, with coalescing
//!   and the shared answer cache (the functions answer with `cache-control:
//!   max-age=`[`HOT_MAX_AGE_S`]), and the peer. Calls per request are
//!   counted as in the main table: the calls the mock functions saw during
//!   the measured runs over the requests wrk completed.
//!   `BENCH_ONLY=hot` runs these rows alone (a trial: it writes
//!   `<target>/envoy-e2e/bench/results-hot.md`, not the repository's files).
//!
//! Writes `bench/results.md` and `bench/results.svg`, and the same text
//! between the `<!-- bench:begin -->` and `<!-- bench:end -->` markers of
//! `README.md`. The engine's criterion timings and heap figures come from
//! `<target>/criterion` and from the engine bench's output, which `make
//! bench` keeps in `<target>/bench-engine.txt` (`BENCH_ENGINE_OUTPUT`).

use envoy_e2e::bench_config::{
    bench_config, hot_settings, ClusterPorts, BENCH_LISTENERS, CEILING_LISTENER, DIRECT_LISTENER,
    FILTER_FIFTY_LISTENER, FILTER_FIFTY_NOBATCH_LISTENER, FILTER_HOT_BASELINE_LISTENER,
    FILTER_HOT_CACHE_LISTENER, FILTER_HOT_COALESCE_LISTENER, FILTER_LISTENER, FILTER_SLOW_LISTENER,
};
use envoy_e2e::config::load_yaml;
use envoy_e2e::http::Client;
use envoy_e2e::paths::Paths;
use envoy_e2e::process::ProcessGuard;
use envoy_e2e::sandbox::spawn_mock;
use envoy_e2e::solo::start_envoy_with;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

/// The seed query; `__USER__` becomes each request's user.
const SEED: &str = r#"{"query":"query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }","variables":{"userId":"__USER__"}}"#;
const THREE_ROOTS: &str = r#"{"query":"query ThreeRoots($userId: ID!) { user(id: $userId) { name } users { id } inventory(sku: \"sku-1\") { quantity } }","variables":{"userId":"__USER__"}}"#;
const USERS_ORDERS: &str = r#"{"query":"{ users { id name orders { id amount } } }"}"#;
/// Users of the many-users data set: one-user rows cycle through them all.
const MANY_USERS: u32 = 1000;
/// Users of the default data set (`mock-functions --users`' default).
const FIFTY_USERS: u32 = 50;
/// Every function delayed this much in the latency runs.
const DELAY_MS: u64 = 50;
/// Users of the hot-key rows, asked for in turn (1, 2, ..., 1, ...).
const HOT_USERS: u32 = 4;
/// The `cache-control: max-age` of the hot-key rows' functions, seconds.
const HOT_MAX_AGE_S: u64 = 1;
/// The hot-key filter rows' names: this, then the setting.
const HOT_FILTER: &str = "filter, hot keys: seed query, ";
/// The hot-key rows' baseline (no call reduction across requests).
const HOT_BASELINE: &str = "filter, hot keys: seed query, no coalescing, no cache";
const HOT_COALESCE: &str = "filter, hot keys: seed query, coalescing, no cache";
const HOT_CACHE: &str = "filter, hot keys: seed query, coalescing + answer cache";
/// Each target's warm-up, under the full load, before the rows.
const WARM_UP_SECONDS: u64 = 2;
/// The ceiling's target: the filter's share of the ceiling on the seed query.
const CEILING_TARGET: f64 = 0.80;
const README_BEGIN: &str = "<!-- bench:begin -->";
const README_END: &str = "<!-- bench:end -->";

/// One wrk run's figures.
#[derive(Debug, Clone, Default)]
struct Run {
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Parses wrk's `--latency` output.
fn parse_wrk(text: &str) -> Result<Run, String> {
    let mut run = Run::default();
    let millis = |v: &str| -> Option<f64> {
        let (number, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
        let n: f64 = number.parse().ok()?;
        Some(match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            "m" => n * 60_000.0,
            _ => return None,
        })
    };
    for line in text.lines().map(str::trim) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Requests/sec:", v] => run.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => run.p50_ms = millis(v).unwrap_or(0.0),
            ["99%", v] => run.p99_ms = millis(v).unwrap_or(0.0),
            [n, "requests", "in", ..] => run.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                run.errors += n.parse::<u64>().unwrap_or(0)
            }
            ["Socket", "errors:", rest @ ..] => {
                run.errors += rest
                    .iter()
                    .filter_map(|f| f.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    if run.requests == 0 {
        return Err(format!("wrk made no request:\n{text}"));
    }
    Ok(run)
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid for writes of its own size.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    let max = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    // SAFETY: CPU_ISSET only reads the set, for indices below CPU_SETSIZE.
    (0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Pins this process (and so the children that are not pinned otherwise).
fn pin_self(cpu: usize) {
    // SAFETY: an all-zero cpu_set_t is a valid (empty) set; CPU_SET writes
    // inside it; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Which core the load generator and the servers run on.
#[derive(Debug, Clone, Copy)]
struct Pinning {
    /// `(wrk's core, the servers' core)`; `None`: nothing pinned.
    cores: Option<(usize, usize)>,
}

impl Pinning {
    fn detect() -> (Pinning, String) {
        let cpus = allowed_cpus();
        let taskset = Command::new("taskset")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        match (taskset, cpus.as_slice()) {
            (true, [client, server, ..]) => (
                Pinning {
                    cores: Some((*client, *server)),
                },
                String::new(),
            ),
            (false, _) => (
                Pinning { cores: None },
                "taskset (util-linux) is not installed".into(),
            ),
            (true, _) => (
                Pinning { cores: None },
                format!("only {} usable core(s)", cpus.len()),
            ),
        }
    }

    fn command(core: Option<usize>, program: &OsStr) -> Command {
        match core {
            Some(core) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(core.to_string()).arg(program);
                command
            }
            None => Command::new(program),
        }
    }

    /// `program` on the load generator's core.
    fn client(&self, program: impl AsRef<OsStr>) -> Command {
        Pinning::command(self.cores.map(|(c, _)| c), program.as_ref())
    }

    /// `program` on the servers' core.
    fn server(&self, program: impl AsRef<OsStr>) -> Command {
        Pinning::command(self.cores.map(|(_, s)| s), program.as_ref())
    }

    /// Checks a server process's affinity (its `Cpus_allowed_list`).
    fn check(&self, name: &str, pid: u32) -> Result<(), String> {
        let Some((_, core)) = self.cores else {
            return Ok(());
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(str::trim)
            .unwrap_or("?");
        if allowed == core.to_string() {
            Ok(())
        } else {
            Err(format!(
                "{name} (pid {pid}) runs on CPUs {allowed}, not on core {core}"
            ))
        }
    }

    fn describe(&self, why_not: &str) -> String {
        match self.cores {
            Some((client, server)) => format!(
                "wrk pinned to core {client}; the mock functions, Envoy and the Node peer to core {server} (`taskset -c`)"
            ),
            None => format!("nothing pinned ({why_not})"),
        }
    }
}

/// One mock-functions server (stopped when dropped).
struct Mock {
    _process: ProcessGuard,
    addr: SocketAddr,
}

impl Mock {
    fn start(
        paths: &Paths,
        work: &Path,
        pin: &Pinning,
        name: &str,
        args: &[String],
    ) -> Result<Mock, String> {
        let log = work.join(format!("mock-{name}.log"));
        let mut command = pin.server(&paths.mock_functions);
        command.args(args);
        let (process, addr) = spawn_mock(command, name, &log)?;
        pin.check(&format!("mock-functions ({name})"), process.pid())?;
        Ok(Mock {
            _process: process,
            addr,
        })
    }

    fn url(&self) -> String {
        format!("http://{}/function", self.addr)
    }

    fn reset(&self, client: &Client) -> Result<(), String> {
        let reply = client.post(&format!("http://{}/_reset", self.addr), &[], "")?;
        if reply.status != 200 {
            return Err(format!("POST /_reset: {} {}", reply.status, reply.body));
        }
        Ok(())
    }

    /// Calls answered since the last reset.
    fn calls(&self, client: &Client) -> u64 {
        client
            .get(&format!("http://{}/_stats", self.addr))
            .ok()
            .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
            .and_then(|v| v["total"].as_u64())
            .unwrap_or(0)
    }
}

/// Envoy with the bench configuration.
struct Envoy {
    _process: ProcessGuard,
    ports: BTreeMap<String, u16>,
    version: String,
}

impl Envoy {
    fn start(
        paths: &Paths,
        work: &Path,
        pin: &Pinning,
        ceiling_wasm: &Path,
        ports: ClusterPorts,
    ) -> Result<Envoy, String> {
        let version = Command::new(&paths.envoy)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| envoy_version(&String::from_utf8_lossy(&o.stdout)))
            .unwrap_or_else(|| "unknown".into());
        let demo = load_yaml(&paths.demo_config)?;
        let absolute = |p: &Path| {
            p.canonicalize()
                .map_err(|e| format!("{}: {e}", p.display()))
        };
        let config = bench_config(
            &demo,
            &absolute(&paths.wasm)?,
            &absolute(ceiling_wasm)?,
            ports,
        )?;
        let started = start_envoy_with(
            pin.server(&paths.envoy),
            "warn",
            paths,
            work,
            &config,
            &BENCH_LISTENERS,
        )?;
        pin.check("envoy", started.envoy.pid())?;
        let (process, found) = (started.envoy, started.ports);
        Ok(Envoy {
            _process: process,
            ports: found,
            version,
        })
    }

    fn base(&self, listener: &str) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.ports.get(listener).copied().unwrap_or(0)
        )
    }

    fn graphql(&self, listener: &str) -> String {
        format!("{}/graphql", self.base(listener))
    }
}

/// The release in `envoy --version`'s `... version: <commit>/<release>/...`.
fn envoy_version(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("version:")?;
    let build = rest.split_whitespace().next()?;
    build.split('/').nth(1).map(str::to_string)
}

fn start_peer(
    repo: &Path,
    pin: &Pinning,
    name: &str,
    functions: &str,
) -> Result<(ProcessGuard, String), String> {
    let dir = repo.join("bench/peer");
    if !dir.join("node_modules/@apollo/server").is_dir() {
        return Err(
            "the Node peer is not installed: run `make bench` (npm ci --prefix bench/peer)".into(),
        );
    }
    let port = free_port()?;
    let mut command = pin.server("node");
    command
        .arg("server.mjs")
        .current_dir(&dir)
        .env("FUNCTIONS", functions)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut peer = ProcessGuard::spawn(name, command)?;
    let stdout = peer
        .child_mut()
        .stdout
        .take()
        .ok_or("the peer has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("the peer did not start: {e}"))?;
    if !line.starts_with("listening on") {
        return Err(format!("the peer said {line:?}"));
    }
    pin.check(name, peer.pid())?;
    Ok((peer, format!("http://127.0.0.1:{port}/")))
}

/// What wrk sends.
#[derive(Debug, Clone)]
enum Load {
    /// POST this JSON body, `__USER__` replaced by 1..=users in turn.
    Post { body: &'static str, users: u32 },
    /// GET this path, `__USER__` replaced by 1..=users in turn.
    Get { path: String, users: u32 },
    /// The seed page by hand: two GETs per page, for user 1..=users in turn.
    ByHand {
        first: String,
        second: String,
        users: u32,
    },
}

impl Load {
    fn users(&self) -> u32 {
        match self {
            Load::Post { body, users } if body.contains("__USER__") => *users,
            Load::Post { .. } => 0,
            Load::Get { users, .. } | Load::ByHand { users, .. } => *users,
        }
    }
}

struct Bench {
    rounds: u64,
    repo: PathBuf,
    work: PathBuf,
    seconds: u64,
    connections: u64,
    pin: Pinning,
}

impl Bench {
    fn wrk(&self, url: &str, load: &Load, connections: u64, seconds: u64) -> Result<Run, String> {
        let mut command = self.pin.client("wrk");
        command.args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--timeout",
            "5s",
            "--latency",
        ]);
        let script = match load {
            Load::Post { body, users } => {
                let file = self.work.join("body.json");
                std::fs::write(&file, body).map_err(|e| e.to_string())?;
                command
                    .env("BENCH_BODY_FILE", &file)
                    .env("BENCH_USERS", users.to_string());
                "bench/users.lua"
            }
            Load::Get { path, users } => {
                command
                    .env_remove("BENCH_BODY_FILE")
                    .env("BENCH_PATH", path)
                    .env("BENCH_USERS", users.to_string());
                "bench/users.lua"
            }
            Load::ByHand {
                first,
                second,
                users,
            } => {
                command
                    .env("BENCH_PATH_1", first)
                    .env("BENCH_PATH_2", second)
                    .env("BENCH_USERS", users.to_string());
                "bench/by-hand.lua"
            }
        };
        command.arg("-s").arg(self.repo.join(script)).arg(url);
        let output = command
            .output()
            .map_err(|e| format!("cannot run wrk: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "wrk failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let run = parse_wrk(&String::from_utf8_lossy(&output.stdout))?;
        Ok(match load {
            // Two calls make one page.
            Load::ByHand { .. } => Run {
                requests: run.requests / 2,
                rps: run.rps / 2.0,
                p50_ms: run.p50_ms * 2.0,
                p99_ms: run.p99_ms * 2.0,
                errors: run.errors,
            },
            _ => run,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Limit,
    Ceiling,
    Filter,
    Peer,
    ByHand,
}

/// One row of the table.
struct Row {
    name: &'static str,
    kind: Kind,
    /// Distinct users asked for in turn (0: the query names none).
    users: u32,
    /// The median round (by req/s).
    run: Result<Run, String>,
    /// The lowest and highest req/s over the rounds (more than one).
    spread: Option<(f64, f64)>,
    calls_per_request: f64,
    /// Calls the functions saw and requests wrk completed, every round.
    calls: (u64, u64),
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu}), Linux, loopback")
}

/// Criterion's mean estimate for a benchmark, in microseconds.
fn criterion_us(target: &Path, bench: &str) -> Option<f64> {
    let path = target.join(format!("criterion/{bench}/new/estimates.json"));
    let estimates: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    Some(estimates["mean"]["point_estimate"].as_f64()? / 1000.0)
}

/// The engine bench's `ALLOC <name> allocations=N peak_bytes=M` lines.
fn heap_figures(text: &str) -> BTreeMap<String, (f64, u64)> {
    let mut figures = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("ALLOC") {
            continue;
        }
        let Some(name) = words.next() else { continue };
        let (mut allocations, mut peak) = (None, None);
        for word in words {
            if let Some(v) = word.strip_prefix("allocations=") {
                allocations = v.parse::<f64>().ok();
            } else if let Some(v) = word.strip_prefix("peak_bytes=") {
                peak = v.parse::<u64>().ok();
            }
        }
        if let (Some(a), Some(p)) = (allocations, peak) {
            figures.insert(name.to_string(), (a, p));
        }
    }
    figures
}

fn svg(rows: &[(String, f64)]) -> String {
    let width = 760.0;
    let bar_h = 22.0;
    let left = 300.0;
    let max = rows.iter().map(|(_, v)| *v).fold(1.0, f64::max);
    let height = 40.0 + rows.len() as f64 * (bar_h + 8.0);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<text x="10" y="20" font-size="14" font-weight="bold">requests per second (higher is better)</text>
"#
    );
    for (i, (label, value)) in rows.iter().enumerate() {
        let y = 34.0 + i as f64 * (bar_h + 8.0);
        let w = (width - left - 90.0) * value / max;
        let colour = if label.starts_with("filter") {
            "#2b7bb9"
        } else if label.starts_with("ceiling") {
            "#5aa05a"
        } else if label.starts_with("peer") {
            "#d9822b"
        } else {
            "#888"
        };
        let _ = writeln!(
            out,
            r#"<text x="{tx}" y="{ty}" text-anchor="end">{label}</text><rect x="{left}" y="{y}" width="{w:.1}" height="{bar_h}" fill="{colour}"/><text x="{vx:.1}" y="{ty}">{value:.0}</text>"#,
            tx = left - 8.0,
            ty = y + 15.0,
            vx = left + w + 6.0,
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Replaces the text between the README's bench markers.
fn update_readme(repo: &Path, text: &str) -> Result<(), String> {
    let path = repo.join("README.md");
    let readme = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let (Some(begin), Some(end)) = (readme.find(README_BEGIN), readme.find(README_END)) else {
        return Err(format!(
            "README.md has no {README_BEGIN} ... {README_END} markers"
        ));
    };
    if end < begin {
        return Err("README.md's bench markers are out of order".into());
    }
    let updated = format!(
        "{}{README_BEGIN}\n{}\n{}",
        &readme[..begin],
        text.trim_end(),
        &readme[end..]
    );
    std::fs::write(&path, updated).map_err(|e| e.to_string())
}

fn ratio(a: &Run, b: Option<&Run>) -> Option<f64> {
    b.filter(|b| b.rps > 0.0).map(|b| a.rps / b.rps)
}

fn percent(r: Option<f64>) -> String {
    r.map_or(String::new(), |r| format!("{:.0}%", 100.0 * r))
}

/// A share that may be far below 1% (calls left by a cache).
fn fine_percent(r: f64) -> String {
    if r < 0.01 {
        format!("{:.2}%", 100.0 * r)
    } else {
        format!("{:.1}%", 100.0 * r)
    }
}

fn times(r: Option<f64>) -> String {
    r.map_or(String::new(), |r| format!("{r:.1}×"))
}

fn micros(us: Option<f64>) -> String {
    match us {
        Some(us) if us >= 1000.0 => format!("{:.2} ms", us / 1000.0),
        Some(us) => format!("{us:.1} µs"),
        None => "not measured".into(),
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "not met",
        None => "",
    }
}

/// POSTs the seed query for one user and says what came back (a check
/// before measuring, not a test: the bench goes on either way).
fn probe(client: &Client, name: &str, url: &str) {
    let body = SEED.replace("__USER__", "500");
    match client.post_json(url, &body) {
        Ok(reply) => eprintln!(
            "bench: {name}: seed query for user 500: HTTP {}, {} bytes: {}",
            reply.status,
            reply.body.len(),
            reply.body.chars().take(160).collect::<String>()
        ),
        Err(e) => eprintln!("bench: {name}: seed query for user 500 failed: {e}"),
    }
}

/// The hot-key table and what it measured.
fn hot_section(rows: &[Row], connections: u64, seconds: u64, rounds: u64) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let settings = |listener: &str| {
        hot_settings(listener).map_or_else(String::new, |v| {
            v.as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("\"{k}\": {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        })
    };
    let _ = writeln!(
        out,
        "Hot keys (the same run and rounds, {connections} connections, {seconds} s per run, median of {rounds}): the seed query for only {HOT_USERS} distinct users, 1 to {HOT_USERS} in turn, so that the requests in flight want the same {} function calls (`user-profile` and `user-orders-batch` of each user). The filter rows call mock functions ({MANY_USERS} users) that answer with `cache-control: max-age={HOT_MAX_AGE_S}`, each from a listener and a Wasm VM of its own (its own answer cache and calls in flight): the baseline, no call reduction across requests (`{}`); in-flight coalescing (`{}`); coalescing and the shared answer cache, the answers kept for the functions' max-age, {HOT_MAX_AGE_S} s (`{}`). The peer (dataloader: batching within a request only) asks for the same {HOT_USERS} users. Calls/request: the calls the mock functions counted during every measured run (reset before, read after), over the requests wrk completed in those runs.\n",
        2 * HOT_USERS,
        settings(FILTER_HOT_BASELINE_LISTENER),
        settings(FILTER_HOT_COALESCE_LISTENER),
        settings(FILTER_HOT_CACHE_LISTENER),
    );
    let _ = writeln!(
        out,
        "| hot keys | users | req/s | req/s, lowest–highest round | p50 ms | p99 ms | calls/request | calls ÷ requests | calls/request vs baseline | req/s vs baseline |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let baseline = rows.iter().find(|r| r.name == HOT_BASELINE);
    let baseline_run = baseline.and_then(|r| r.run.as_ref().ok());
    let baseline_calls = baseline
        .filter(|r| r.run.is_ok() && r.calls_per_request > 0.0)
        .map(|r| r.calls_per_request);
    let mut summary = Vec::new();
    for row in rows {
        let Ok(run) = &row.run else {
            let _ = writeln!(
                out,
                "| {} | {} | failed |  |  |  |  |  |  |  |",
                row.name, row.users
            );
            continue;
        };
        let errors = if run.errors > 0 {
            format!(" ({} errors)", run.errors)
        } else {
            String::new()
        };
        let calls_vs = baseline_calls.map(|b| row.calls_per_request / b);
        let rps_vs = ratio(run, baseline_run);
        let _ = writeln!(
            out,
            "| {}{errors} | {} | {:.0} | {} | {:.2} | {:.2} | {:.3} | {} ÷ {} | {} | {} |",
            row.name,
            row.users,
            run.rps,
            row.spread
                .map_or(String::new(), |(low, high)| format!("{low:.0}–{high:.0}")),
            run.p50_ms,
            run.p99_ms,
            row.calls_per_request,
            row.calls.0,
            row.calls.1,
            calls_vs.map_or(String::new(), fine_percent),
            times(rps_vs),
        );
        if row.name != HOT_BASELINE && row.kind == Kind::Filter {
            let what = row.name.strip_prefix(HOT_FILTER).unwrap_or(row.name);
            summary.push(format!(
                "{what}: **{:.3}** calls per request ({}) at **{}** the throughput",
                row.calls_per_request,
                calls_vs.map_or("?".into(), |r| format!(
                    "{} of the baseline's",
                    fine_percent(r)
                )),
                times(rps_vs),
            ));
        }
    }
    let _ = writeln!(out);
    if let (Some(base), Some(calls)) = (baseline_run, baseline_calls) {
        let _ = writeln!(
            out,
            "Hot keys, against the baseline ({calls:.3} calls per request, {:.0} req/s): {}.",
            base.rps,
            summary.join("; ")
        );
    }
    out
}

fn run() -> Result<(String, String), String> {
    let paths = Paths::discover();
    paths.check()?;
    let repo = paths.repo.clone();
    let target = paths
        .work
        .parent()
        .map_or_else(|| repo.join("target"), Path::to_path_buf);
    let work = paths.work.join("bench");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let env_u64 = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let ceiling_wasm = std::env::var_os("BENCH_CEILING_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("wasm32-wasip1/release/bench_ceiling.wasm"));
    if !ceiling_wasm.is_file() {
        return Err(format!(
            "the ceiling filter is not built at {}: run `make bench` (cargo build --release -p bench-ceiling --target wasm32-wasip1)",
            ceiling_wasm.display()
        ));
    }
    Command::new("wrk").arg("--version").output().map_err(|_| {
        "wrk is not installed: `make bench` installs it (apt-get install wrk)".to_string()
    })?;
    // Before this process pins itself (which narrows what it may use).
    let machine = machine();
    // Other work on the machine skews every row: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let (pin, why_not) = Pinning::detect();
    if let Some((client_core, _)) = pin.cores {
        // This driver idles during the runs; it stays off the servers' core.
        pin_self(client_core);
    } else {
        eprintln!("bench: warning: nothing pinned: {why_not}");
    }
    let bench = Bench {
        rounds: env_u64("BENCH_ROUNDS", 3).max(1),
        repo: repo.clone(),
        work: work.clone(),
        seconds: env_u64("BENCH_SECONDS", 5),
        connections: env_u64("BENCH_CONNECTIONS", 64),
        pin,
    };
    let only_hot = match std::env::var("BENCH_ONLY") {
        Ok(v) if v == "hot" => true,
        Ok(v) if !v.is_empty() => {
            return Err(format!(
                "BENCH_ONLY={v}: only `hot` (the hot-key rows alone) is known"
            ))
        }
        _ => false,
    };
    let client = Client::new(Duration::from_secs(10));

    let many = Mock::start(
        &paths,
        &work,
        &pin,
        "many",
        &[format!("--users={MANY_USERS}")],
    )?;
    let fifty = Mock::start(
        &paths,
        &work,
        &pin,
        "fifty",
        &[format!("--users={FIFTY_USERS}")],
    )?;
    let slow = Mock::start(
        &paths,
        &work,
        &pin,
        "slow",
        &[
            format!("--users={FIFTY_USERS}"),
            format!("--delay-ms={DELAY_MS}"),
        ],
    )?;
    // The hot-key rows' functions: the many-users data set, every answer
    // cacheable for HOT_MAX_AGE_S.
    let hot = Mock::start(
        &paths,
        &work,
        &pin,
        "hot",
        &[
            format!("--users={MANY_USERS}"),
            format!("--cache-control=max-age={HOT_MAX_AGE_S}"),
        ],
    )?;
    let ports = ClusterPorts {
        many: many.addr.port(),
        fifty: fifty.addr.port(),
        slow: slow.addr.port(),
        hot: hot.addr.port(),
    };
    let envoy = Envoy::start(&paths, &work, &pin, &ceiling_wasm, ports)?;
    let (_peer_many, peer_many) = start_peer(&repo, &pin, "node peer (many)", &many.url())?;
    let (_peer_fifty, peer_fifty) = start_peer(&repo, &pin, "node peer (fifty)", &fifty.url())?;

    let filter = envoy.graphql(FILTER_LISTENER);
    let ceiling = envoy.graphql(CEILING_LISTENER);
    probe(&client, "filter", &filter);
    probe(&client, "ceiling", &ceiling);
    probe(&client, "peer", &peer_many);
    for listener in [
        FILTER_HOT_BASELINE_LISTENER,
        FILTER_HOT_COALESCE_LISTENER,
        FILTER_HOT_CACHE_LISTENER,
    ] {
        probe(&client, listener, &envoy.graphql(listener));
    }

    let seconds = bench.seconds;
    let c = bench.connections;
    let rounds = bench.rounds;
    let seed = Load::Post {
        body: SEED,
        users: MANY_USERS,
    };
    let three = Load::Post {
        body: THREE_ROOTS,
        users: FIFTY_USERS,
    };
    let list = Load::Post {
        body: USERS_ORDERS,
        users: 1,
    };
    let direct = envoy.base(DIRECT_LISTENER);
    type Scenario<'a> = (&'static str, Kind, String, Load, &'a Mock);
    let mut scenarios: Vec<Scenario> = vec![
        (
            "limit: Envoy proxying one call",
            Kind::Limit,
            direct.clone(),
            Load::Get {
                path: "/function/user-profile?id=__USER__".into(),
                users: MANY_USERS,
            },
            &many,
        ),
        (
            "ceiling: 2 calls + constant reply, no GraphQL",
            Kind::Ceiling,
            ceiling.clone(),
            seed.clone(),
            &many,
        ),
        (
            "filter: seed query",
            Kind::Filter,
            filter.clone(),
            seed.clone(),
            &many,
        ),
        (
            "filter: 3 root fields",
            Kind::Filter,
            envoy.graphql(FILTER_FIFTY_LISTENER),
            three.clone(),
            &fifty,
        ),
        (
            "filter: 50 users + orders, batched",
            Kind::Filter,
            envoy.graphql(FILTER_FIFTY_LISTENER),
            list.clone(),
            &fifty,
        ),
        (
            "filter: 50 users + orders, per user",
            Kind::Filter,
            envoy.graphql(FILTER_FIFTY_NOBATCH_LISTENER),
            list.clone(),
            &fifty,
        ),
        (
            "peer: seed query",
            Kind::Peer,
            peer_many.clone(),
            seed.clone(),
            &many,
        ),
        (
            "peer: 3 root fields",
            Kind::Peer,
            peer_fifty.clone(),
            three.clone(),
            &fifty,
        ),
        (
            "peer: 50 users + orders (dataloader)",
            Kind::Peer,
            peer_fifty.clone(),
            list.clone(),
            &fifty,
        ),
        (
            "client by hand: seed page, 2 sequential calls",
            Kind::ByHand,
            direct.clone(),
            Load::ByHand {
                first: "/function/user-profile?id=__USER__".into(),
                second: "/function/user-orders?id=__USER__".into(),
                users: MANY_USERS,
            },
            &many,
        ),
    ];
    if only_hot {
        scenarios.clear();
    }
    // The hot-key rows come after the others in every round (the others'
    // order is unchanged); their own table.
    let main_count = scenarios.len();
    let hot_seed = Load::Post {
        body: SEED,
        users: HOT_USERS,
    };
    scenarios.extend([
        (
            HOT_BASELINE,
            Kind::Filter,
            envoy.graphql(FILTER_HOT_BASELINE_LISTENER),
            hot_seed.clone(),
            &hot,
        ),
        (
            HOT_COALESCE,
            Kind::Filter,
            envoy.graphql(FILTER_HOT_COALESCE_LISTENER),
            hot_seed.clone(),
            &hot,
        ),
        (
            HOT_CACHE,
            Kind::Filter,
            envoy.graphql(FILTER_HOT_CACHE_LISTENER),
            hot_seed.clone(),
            &hot,
        ),
        (
            "peer, hot keys: seed query",
            Kind::Peer,
            peer_many.clone(),
            hot_seed.clone(),
            &many,
        ),
    ]);

    // Warm-up: every target under the full load (V8's and Node's JITs,
    // connection pools, plan caches).
    for (name, _, url, load, _) in &scenarios {
        if let Err(e) = bench.wrk(url, load, c, WARM_UP_SECONDS) {
            eprintln!("bench: warm-up of {name}: {e}");
        }
    }

    // Rounds: each runs every row once, so that a burst of other work on
    // the machine hits one round of a row, not all of a row's runs.
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); scenarios.len()];
    let mut failures: Vec<Option<String>> = vec![None; scenarios.len()];
    let mut calls: Vec<(u64, u64)> = vec![(0, 0); scenarios.len()];
    // req/s of every row in every round (None: that run failed).
    let mut by_round: Vec<Vec<Option<f64>>> = vec![Vec::new(); scenarios.len()];
    for round in 1..=bench.rounds {
        for (i, (name, _, url, load, mock)) in scenarios.iter().enumerate() {
            mock.reset(&client)?;
            let run = bench.wrk(url, load, c, seconds);
            let made = mock.calls(&client);
            if let Some(list) = by_round.get_mut(i) {
                list.push(run.as_ref().ok().map(|r| r.rps));
            }
            match run {
                Ok(r) => {
                    eprintln!(
                        "bench: round {round}: {name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {:.1} calls/request{}",
                        r.rps,
                        r.p50_ms,
                        r.p99_ms,
                        made as f64 / r.requests.max(1) as f64,
                        if r.errors > 0 { format!(", {} errors", r.errors) } else { String::new() }
                    );
                    if let Some(total) = calls.get_mut(i) {
                        total.0 += made;
                        total.1 += r.requests;
                    }
                    if let Some(list) = runs.get_mut(i) {
                        list.push(r);
                    }
                }
                Err(e) => {
                    eprintln!("bench: round {round}: {name}: failed: {e}");
                    if let Some(slot) = failures.get_mut(i) {
                        *slot = Some(e);
                    }
                }
            }
        }
    }
    let mut rows: Vec<Row> = Vec::new();
    for (i, (name, kind, _, load, _)) in scenarios.iter().enumerate() {
        let mut list = runs.get(i).cloned().unwrap_or_default();
        list.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        let spread = match (list.first(), list.last()) {
            (Some(low), Some(high)) if list.len() > 1 => Some((low.rps, high.rps)),
            _ => None,
        };
        let median = list.get(list.len() / 2).cloned();
        let (made, requests) = calls.get(i).copied().unwrap_or_default();
        rows.push(Row {
            name,
            kind: *kind,
            users: load.users(),
            run: median.ok_or_else(|| {
                failures
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "no run".into())
            }),
            spread,
            calls_per_request: made as f64 / requests.max(1) as f64,
            calls: (made, requests),
        });
    }
    let hot_rows = rows.split_off(main_count.min(rows.len()));
    let hot_text = hot_section(&hot_rows, c, seconds, rounds);
    if only_hot {
        let text = format!(
            "Hot-key rows alone (`BENCH_ONLY=hot`, a trial): {c} connections from one wrk thread, {seconds} s per run after a {WARM_UP_SECONDS} s warm-up, each row the median of {rounds} rounds, Envoy {} with one worker; {}; the 1-minute load average before it was {load}.\n\n{hot_text}",
            envoy.version,
            pin.describe(&why_not),
        );
        let file = work.join("results-hot.md");
        std::fs::write(&file, &text).map_err(|e| format!("{}: {e}", file.display()))?;
        return Ok((text, file.display().to_string()));
    }

    // Latency with every function delayed: one connection.
    let slow_url = envoy.graphql(FILTER_SLOW_LISTENER);
    let delayed = |body: &'static str| {
        bench.wrk(
            &slow_url,
            &Load::Post {
                body,
                users: FIFTY_USERS,
            },
            1,
            seconds.min(3),
        )
    };
    let delayed_seed = delayed(SEED);
    let delayed_roots = delayed(THREE_ROOTS);

    let find = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .and_then(|r| r.run.as_ref().ok())
    };
    let limit = rows
        .iter()
        .find(|r| r.kind == Kind::Limit)
        .and_then(|r| r.run.as_ref().ok());
    let ceiling_run = rows
        .iter()
        .find(|r| r.kind == Kind::Ceiling)
        .and_then(|r| r.run.as_ref().ok());
    let peer_same = |name: &str| -> Option<&Run> {
        if name.ends_with("per user") {
            return None;
        }
        let query = name.split_once(": ").map_or(name, |(_, q)| q);
        let query = query.split(',').next().unwrap_or(query);
        rows.iter()
            .filter(|r| r.kind == Kind::Peer)
            .find(|r| r.name.contains(query))
            .and_then(|r| r.run.as_ref().ok())
    };

    let mut out = String::new();
    let pinning = pin.describe(&why_not);
    let _ = writeln!(
        out,
        "Measured on {machine} with `make bench`: {c} connections from one wrk thread, {seconds} s per run after a {WARM_UP_SECONDS} s warm-up, each row the median of {rounds} rounds (a round runs every row once), Envoy {} with one worker (`--concurrency 1`), release-built mock functions; {pinning}. Workload: rows about one user ask for another user on every request, 1 to {MANY_USERS} in turn ({MANY_USERS} distinct users, served by mock functions holding {MANY_USERS}); the 3-root-field rows cycle through {FIFTY_USERS} users, and the list rows list the {FIFTY_USERS} users of the default data set. All rows come from one run; the 1-minute load average before it was {load}.\n",
        envoy.version,
    );
    let _ = writeln!(
        out,
        "| scenario | users | req/s | req/s, lowest–highest round | p50 ms | p99 ms | calls/request | vs limit | vs ceiling | vs peer (same query) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let users = match row.users {
            0 | 1 => String::new(),
            n => n.to_string(),
        };
        let Ok(run) = &row.run else {
            let _ = writeln!(
                out,
                "| {} | {users} | failed |  |  |  |  |  |  |  |",
                row.name
            );
            continue;
        };
        let seed_shaped = row.name.ends_with("seed query") || row.kind == Kind::Ceiling;
        let vs_ceiling = if seed_shaped && row.kind != Kind::Ceiling {
            percent(ratio(run, ceiling_run))
        } else {
            String::new()
        };
        let vs_peer = if row.kind == Kind::Filter {
            times(ratio(run, peer_same(row.name)))
        } else {
            String::new()
        };
        let errors = if run.errors > 0 {
            format!(" ({} errors)", run.errors)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {}{errors} | {users} | {:.0} | {} | {:.2} | {:.2} | {:.1} | {} | {vs_ceiling} | {vs_peer} |",
            row.name,
            run.rps,
            row.spread
                .map_or(String::new(), |(low, high)| format!("{low:.0}–{high:.0}")),
            run.p50_ms,
            run.p99_ms,
            row.calls_per_request,
            percent(ratio(run, limit)),
        );
    }
    let _ = writeln!(out);

    let filter_seed = find("filter: seed query");
    // The filter's share of the ceiling within each round (the same minutes
    // of the machine), and their median.
    let index = |name: &str| scenarios.iter().position(|s| s.0 == name);
    let mut round_ratios: Vec<f64> = match (
        index("filter: seed query").and_then(|i| by_round.get(i)),
        scenarios
            .iter()
            .position(|s| s.1 == Kind::Ceiling)
            .and_then(|i| by_round.get(i)),
    ) {
        (Some(f), Some(c)) => f
            .iter()
            .zip(c)
            .filter_map(|(f, c)| Some(f.as_ref()? / c.as_ref().filter(|c| **c > 0.0)?))
            .collect(),
        _ => Vec::new(),
    };
    let rounds_text = round_ratios
        .iter()
        .map(|r| format!("{:.0}%", 100.0 * r))
        .collect::<Vec<_>>()
        .join(", ");
    round_ratios.sort_by(f64::total_cmp);
    let round_median = round_ratios.get(round_ratios.len() / 2).copied();
    let peer_seed = find("peer: seed query");
    if let Some(f) = filter_seed {
        let to_ceiling = ratio(f, ceiling_run);
        let _ = writeln!(
            out,
            "Seed query, {MANY_USERS} distinct users: the filter does **{}** of the ceiling (the rows' medians; within each round {}; target ≥ {:.0}%: {}), **{}** of the plain-proxy limit and **{}** the Node peer's throughput; p99 {:.2} ms against the ceiling's {} and the peer's {}. The ceiling itself (the same two calls and a local reply, no GraphQL) reaches {} of the limit.",
            to_ceiling.map_or(String::new(), |r| format!("{:.1}%", 100.0 * r)),
            match round_median {
                Some(m) => format!("{rounds_text}, median **{:.1}%**", 100.0 * m),
                None => "not measured".into(),
            },
            100.0 * CEILING_TARGET,
            verdict(round_median.or(to_ceiling).map(|r| r >= CEILING_TARGET)),
            percent(ratio(f, limit)),
            times(ratio(f, peer_seed)),
            f.p99_ms,
            ceiling_run.map_or("?".into(), |r| format!("{:.2} ms", r.p99_ms)),
            peer_seed.map_or("?".into(), |r| format!("{:.2} ms", r.p99_ms)),
            ceiling_run.map_or(String::new(), |r| percent(ratio(r, limit))),
        );
    } else {
        let _ = writeln!(out, "Seed query: the filter's row failed; no ratios.");
    }
    match (&delayed_seed, &delayed_roots) {
        (Ok(seed), Ok(roots)) => {
            let _ = writeln!(
                out,
                "With every function delayed {DELAY_MS} ms (one connection): seed query p50 **{:.1} ms** (two waves; target < {} ms), 3 root fields p50 **{:.1} ms** (one wave; target < {} ms).",
                seed.p50_ms,
                2 * DELAY_MS + 10,
                roots.p50_ms,
                DELAY_MS + 10
            );
        }
        (seed, roots) => {
            let _ = writeln!(
                out,
                "With every function delayed {DELAY_MS} ms: a run failed (seed: {}, 3 root fields: {}).",
                seed.as_ref().map_or_else(|e| e.lines().next().unwrap_or("").to_string(), |r| format!("{:.1} ms", r.p50_ms)),
                roots.as_ref().map_or_else(|e| e.lines().next().unwrap_or("").to_string(), |r| format!("{:.1} ms", r.p50_ms)),
            );
        }
    }
    let wasm = std::fs::metadata(&paths.wasm).map_or(0, |m| m.len());
    let _ = writeln!(
        out,
        "Filter size: {wasm} bytes (`dist/graphql-aggregator.wasm`, opt-level 3, wasm-opt -O3)."
    );
    if !hot_text.is_empty() {
        let _ = writeln!(out);
        out.push_str(hot_text.trim_end());
        out.push('\n');
    }

    // The engine, natively: criterion's means and the heap figures.
    let engine_output = std::env::var_os("BENCH_ENGINE_OUTPUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("bench-engine.txt"));
    let heap = heap_figures(&std::fs::read_to_string(&engine_output).unwrap_or_default());
    let seed_us = criterion_us(&target, "execute/seed");
    let list_us = criterion_us(&target, "execute/list_100");
    let seed_heap = heap.get("seed");
    let list_heap = heap.get("list_100");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Engine, natively (`cargo bench -p graphql-aggregator-engine`: criterion means; allocations and peak heap per request from a counting global allocator, the functions' answers prepared beforehand):\n"
    );
    let _ = writeln!(
        out,
        "| engine, per request | measured | target | met | previous engine |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|---:|");
    let allocations =
        |h: Option<&(f64, u64)>| h.map_or("not measured".into(), |(a, _)| format!("{a:.0}"));
    let peak =
        |h: Option<&(f64, u64)>| h.map_or("not measured".into(), |(_, p)| format!("{p} bytes"));
    let engine_rows = [
        (
            "seed query, warm plan cache: time",
            micros(seed_us),
            "≤ 6 µs",
            seed_us.map(|us| us <= 6.0),
            "~29 µs",
        ),
        (
            "seed query: allocations",
            allocations(seed_heap),
            "≤ 40",
            seed_heap.map(|(a, _)| *a <= 40.0),
            "237",
        ),
        ("seed query: peak heap", peak(seed_heap), "", None, ""),
        (
            "100 users + orders (batched): time",
            micros(list_us),
            "≤ 200 µs",
            list_us.map(|us| us <= 200.0),
            "1.34 ms",
        ),
        (
            "100 users + orders: allocations",
            allocations(list_heap),
            "",
            None,
            "~9,000",
        ),
        (
            "100 users + orders: peak heap",
            peak(list_heap),
            "",
            None,
            "",
        ),
        (
            "parse + validate + plan the seed query, no cache",
            micros(criterion_us(&target, "compile/cold")),
            "",
            None,
            "",
        ),
        (
            "the same from the plan cache",
            micros(criterion_us(&target, "compile/cached")),
            "",
            None,
            "",
        ),
    ];
    for (what, measured, goal, met, previous) in engine_rows {
        let _ = writeln!(
            out,
            "| {what} | {measured} | {goal} | {} | {previous} |",
            verdict(met)
        );
    }

    let chart: Vec<(String, f64)> = rows
        .iter()
        .map(|r| (r.name.to_string(), r.run.as_ref().map_or(0.0, |r| r.rps)))
        .collect();
    std::fs::write(repo.join("bench/results.md"), &out).map_err(|e| e.to_string())?;
    std::fs::write(repo.join("bench/results.svg"), svg(&chart)).map_err(|e| e.to_string())?;
    if let Err(e) = update_readme(&repo, &out) {
        eprintln!("bench: README.md not updated: {e}");
    }
    let hot_calls = |name: &str| {
        hot_rows
            .iter()
            .find(|r| r.name == name)
            .filter(|r| r.run.is_ok())
            .map(|r| r.calls_per_request)
    };
    let summary = json!({
        "hot_calls_per_request": {
            "baseline": hot_calls(HOT_BASELINE),
            "coalescing": hot_calls(HOT_COALESCE),
            "coalescing_and_cache": hot_calls(HOT_CACHE),
        },
        "filter_vs_ceiling": filter_seed.and_then(|f| ratio(f, ceiling_run)),
        "filter_vs_ceiling_round_median": round_median,
        "filter_vs_limit": filter_seed.and_then(|f| ratio(f, limit)),
        "filter_vs_peer": filter_seed.and_then(|f| ratio(f, peer_seed)),
        "delayed_seed_p50_ms": delayed_seed.as_ref().ok().map(|r| r.p50_ms),
        "delayed_three_roots_p50_ms": delayed_roots.as_ref().ok().map(|r| r.p50_ms),
    });
    eprintln!("bench: {summary}");
    Ok((
        out,
        "bench/results.md, bench/results.svg, README.md".to_string(),
    ))
}

fn main() -> ExitCode {
    match run() {
        Ok((table, written)) => {
            println!("{table}");
            println!("written: {written}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_engine_heap_lines() {
        let text = "Benchmarking x\nALLOC seed allocations=254 peak_bytes=15642 (warm plan cache)\nALLOC list_100 allocations=9292 peak_bytes=481890\nALLOC broken allocations=x\n";
        let figures = heap_figures(text);
        assert_eq!(figures.get("seed"), Some(&(254.0, 15642)));
        assert_eq!(figures.get("list_100"), Some(&(9292.0, 481890)));
        assert_eq!(figures.len(), 2);
    }

    #[test]
    fn reads_envoy_version() {
        let text = "\n/tmp/x/.venv/bin/envoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL\n";
        assert_eq!(envoy_version(text).as_deref(), Some("1.40.0"));
        assert_eq!(envoy_version("nothing"), None);
    }

    #[test]
    fn reads_wrk() {
        let text = "Running 1s test\n  Latency Distribution\n     50%  1.50ms\n     99%  12.00ms\n  1000 requests in 1.00s, 1 MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:   999.50\n";
        let run = parse_wrk(text).unwrap();
        assert_eq!(run.requests, 1000);
        assert_eq!(run.errors, 3);
        assert!((run.p50_ms - 1.5).abs() < 1e-9 && (run.p99_ms - 12.0).abs() < 1e-9);
        assert!(parse_wrk("nothing").is_err());
    }

    #[test]
    fn small_shares_keep_two_decimals() {
        assert_eq!(fine_percent(1.0), "100.0%");
        assert_eq!(fine_percent(0.083), "8.3%");
        assert_eq!(fine_percent(0.00065), "0.07%");
    }
}
