//! `make bench`: the filter against the limit and the peers, on loopback,
//! in one run. Envoy (one worker) with the filter and the release-built
//! mock functions, the Node peer (Apollo Server 5 + dataloader), and wrk.
//!
//! Writes `bench/results.md` (a table) and `bench/results.svg` (a chart).
//! `BENCH_SECONDS` (default 5) and `BENCH_CONNECTIONS` (default 16) bound
//! each run.

use envoy_e2e::config::{DEMO_LISTENER, DIRECT_LISTENER, NOBATCH_LISTENER, SLOW_LISTENER};
use envoy_e2e::paths::Paths;
use envoy_e2e::process::ProcessGuard;
use envoy_e2e::sandbox::{Delays, Sandbox};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

const SEED: &str = r#"{"query":"query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }","variables":{"userId":"1"}}"#;
const THREE_ROOTS: &str = r#"{"query":"{ user(id: \"1\") { name } users { id } inventory(sku: \"sku-1\") { quantity } }"}"#;
const USERS_ORDERS: &str = r#"{"query":"{ users { id name orders { id amount } } }"}"#;
/// Every function delayed this much in the latency runs.
const DELAY_MS: u64 = 50;

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

struct Bench {
    repo: PathBuf,
    seconds: u64,
    connections: u64,
}

impl Bench {
    /// wrk against `url`, POSTing `body` (GET when `None`), or with a script.
    fn wrk(
        &self,
        url: &str,
        body: Option<&str>,
        connections: u64,
        seconds: u64,
    ) -> Result<Run, String> {
        let mut command = Command::new("wrk");
        command.args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--timeout",
            "5s",
            "--latency",
        ]);
        if let Some(body) = body {
            let file = self.repo.join("target/bench-body.json");
            std::fs::write(&file, body).map_err(|e| e.to_string())?;
            command.env("BENCH_BODY_FILE", &file);
            command.arg("-s").arg(self.repo.join("bench/post.lua"));
        }
        command.arg(url);
        let output = command
            .output()
            .map_err(|e| format!("cannot run wrk: {e}"))?;
        parse_wrk(&String::from_utf8_lossy(&output.stdout))
    }

    /// The client by hand: the two seed calls one after the other.
    fn by_hand(&self, base: &str, seconds: u64) -> Result<Run, String> {
        let output = Command::new("wrk")
            .args([
                "-t1",
                &format!("-c{}", self.connections),
                &format!("-d{seconds}s"),
                "--timeout",
                "5s",
                "--latency",
            ])
            .env("BENCH_PATH_1", "/function/user-profile?id=1")
            .env("BENCH_PATH_2", "/function/user-orders?id=1")
            .arg("-s")
            .arg(self.repo.join("bench/by-hand.lua"))
            .arg(base)
            .output()
            .map_err(|e| format!("cannot run wrk: {e}"))?;
        let calls = parse_wrk(&String::from_utf8_lossy(&output.stdout))?;
        // Two sequential requests make one page.
        Ok(Run {
            requests: calls.requests / 2,
            rps: calls.rps / 2.0,
            p50_ms: calls.p50_ms * 2.0,
            p99_ms: calls.p99_ms * 2.0,
            errors: calls.errors,
        })
    }
}

fn start_peer(repo: &Path, functions: &str) -> Result<(ProcessGuard, String), String> {
    let dir = repo.join("bench/peer");
    if !dir.join("node_modules/@apollo/server").is_dir() {
        return Err(
            "the Node peer is not installed: run `make bench` (npm ci --prefix bench/peer)".into(),
        );
    }
    let port = free_port()?;
    let mut command = Command::new("node");
    command
        .arg("server.mjs")
        .current_dir(&dir)
        .env("FUNCTIONS", functions)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut peer = ProcessGuard::spawn("node peer", command)?;
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
    Ok((peer, format!("http://127.0.0.1:{port}/")))
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
fn criterion_us(repo: &Path, bench: &str) -> Option<f64> {
    let path = repo.join(format!("target/criterion/{bench}/new/estimates.json"));
    let estimates: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    Some(estimates["mean"]["point_estimate"].as_f64()? / 1000.0)
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

fn run() -> Result<String, String> {
    let paths = Paths::discover();
    let repo = paths.repo.clone();
    let env_u64 = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let bench = Bench {
        repo: repo.clone(),
        seconds: env_u64("BENCH_SECONDS", 5),
        connections: env_u64("BENCH_CONNECTIONS", 16),
    };
    Command::new("wrk").arg("--version").output().map_err(|_| {
        "wrk is not installed: `make bench` installs it (apt-get install wrk)".to_string()
    })?;
    let sandbox = Sandbox::start_with(
        paths,
        Delays {
            slow_ms: DELAY_MS,
            slow_echo_ms: DELAY_MS,
        },
    )?;
    let fast = format!("http://{}", sandbox.fast.addr);
    let (_peer, peer_url) = start_peer(&repo, &format!("{fast}/function"))?;
    let demo = sandbox.graphql_url(DEMO_LISTENER);
    let nobatch = sandbox.graphql_url(NOBATCH_LISTENER);
    let envoy_base = format!("http://127.0.0.1:{}", sandbox.port(DIRECT_LISTENER));
    let limit_url = format!("{envoy_base}/function/user-profile?id=1");
    let seconds = bench.seconds;
    let c = bench.connections;

    // Warm-up: every target once, briefly.
    for (url, body) in [
        (&demo, Some(SEED)),
        (&peer_url, Some(SEED)),
        (&limit_url, None),
    ] {
        bench.wrk(url, body, 4, 1)?;
    }

    type Scenario<'a> = (&'a str, &'a str, Option<&'a str>);
    let scenarios: Vec<Scenario> = vec![
        ("limit: Envoy proxying one call", &limit_url, None),
        ("filter: seed query", &demo, Some(SEED)),
        ("filter: 3 root fields", &demo, Some(THREE_ROOTS)),
        (
            "filter: 50 users + orders, batched",
            &demo,
            Some(USERS_ORDERS),
        ),
        (
            "filter: 50 users + orders, per user",
            &nobatch,
            Some(USERS_ORDERS),
        ),
        ("peer: seed query", &peer_url, Some(SEED)),
        ("peer: 3 root fields", &peer_url, Some(THREE_ROOTS)),
        (
            "peer: 50 users + orders (dataloader)",
            &peer_url,
            Some(USERS_ORDERS),
        ),
    ];
    let mut results: Vec<(String, Run, f64)> = Vec::new();
    for (name, url, body) in scenarios {
        sandbox.fast.reset();
        let run = bench.wrk(url, body, c, seconds)?;
        let calls = sandbox.fast.stats()["total"].as_u64().unwrap_or(0) as f64;
        let per_request = calls / run.requests.max(1) as f64;
        eprintln!(
            "bench: {name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            run.rps, run.p50_ms, run.p99_ms
        );
        results.push((name.to_string(), run, per_request));
    }
    sandbox.fast.reset();
    let by_hand = bench.by_hand(&envoy_base, seconds)?;
    results.push((
        "client by hand: seed page, 2 sequential calls".into(),
        by_hand,
        2.0,
    ));

    // Latency with every function delayed 50 ms: one connection.
    let slow = sandbox.graphql_url(SLOW_LISTENER);
    let delayed_seed = bench.wrk(&slow, Some(SEED), 1, seconds.min(3))?;
    let delayed_roots = bench.wrk(&slow, Some(THREE_ROOTS), 1, seconds.min(3))?;

    let find = |prefix: &str| {
        results
            .iter()
            .find(|(n, _, _)| n.starts_with(prefix))
            .map(|(_, r, _)| r.clone())
    };
    let limit = find("limit").unwrap_or_default();
    let peer_seed = find("peer: seed").unwrap_or_default();
    let filter_seed = find("filter: seed").unwrap_or_default();

    let mut table = String::new();
    let _ = writeln!(table, "Measured on {} with `make bench` ({} s per run, {} connections, Envoy 1.40 with one worker, wrk).\n", machine(), seconds, c);
    let _ = writeln!(
        table,
        "| scenario | req/s | p50 ms | p99 ms | calls/request | vs limit | vs peer (same query) |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|");
    for (name, run, calls) in &results {
        let vs_limit = run.rps / limit.rps.max(1e-9);
        let peer_same = if name.starts_with("filter: seed") {
            format!("{:.1}×", run.rps / peer_seed.rps.max(1e-9))
        } else if name.starts_with("filter: 3 root") {
            find("peer: 3 root").map_or(String::new(), |p| {
                format!("{:.1}×", run.rps / p.rps.max(1e-9))
            })
        } else if name.starts_with("filter: 50 users + orders, batched") {
            find("peer: 50 users").map_or(String::new(), |p| {
                format!("{:.1}×", run.rps / p.rps.max(1e-9))
            })
        } else {
            String::new()
        };
        let errors = if run.errors > 0 {
            format!(" ({} errors)", run.errors)
        } else {
            String::new()
        };
        let _ = writeln!(
            table,
            "| {name}{errors} | {:.0} | {:.2} | {:.2} | {calls:.1} | {:.0}% | {peer_same} |",
            run.rps,
            run.p50_ms,
            run.p99_ms,
            vs_limit * 100.0
        );
    }
    let wasm = std::fs::metadata(repo.join("dist/graphql-aggregator.wasm")).map_or(0, |m| m.len());
    let _ = writeln!(table);
    let _ = writeln!(
        table,
        "With every function delayed {DELAY_MS} ms (one connection): seed query p50 **{:.1} ms** (two waves; target < {} ms), 3 root fields p50 **{:.1} ms** (one wave; target < {} ms).",
        delayed_seed.p50_ms, 2 * DELAY_MS + 10, delayed_roots.p50_ms, DELAY_MS + 10
    );
    let _ = writeln!(
        table,
        "Seed query: the filter does **{:.0}%** of the plain-proxy limit and **{:.1}×** the Node peer's throughput, p99 {:.2} ms against the peer's {:.2} ms.",
        100.0 * filter_seed.rps / limit.rps.max(1e-9),
        filter_seed.rps / peer_seed.rps.max(1e-9),
        filter_seed.p99_ms,
        peer_seed.p99_ms
    );
    if let (Some(cold), Some(cached)) = (
        criterion_us(&repo, "compile/cold"),
        criterion_us(&repo, "compile/cached"),
    ) {
        let _ = writeln!(
            table,
            "Engine (criterion, native): parse+validate+plan the seed query {cold:.1} µs cold, {cached:.1} µs from the plan cache ({:.1}× faster).",
            cold / cached.max(1e-9)
        );
    }
    let _ = writeln!(
        table,
        "Filter size: {wasm} bytes (`dist/graphql-aggregator.wasm`, opt-level 3, wasm-opt -O3)."
    );

    let chart: Vec<(String, f64)> = results.iter().map(|(n, r, _)| (n.clone(), r.rps)).collect();
    std::fs::write(repo.join("bench/results.md"), &table).map_err(|e| e.to_string())?;
    std::fs::write(repo.join("bench/results.svg"), svg(&chart)).map_err(|e| e.to_string())?;
    let summary = json!({
        "delayed_seed_p50_ms": delayed_seed.p50_ms,
        "delayed_three_roots_p50_ms": delayed_roots.p50_ms,
    });
    eprintln!("bench: {summary}");
    Ok(table)
}

fn main() -> ExitCode {
    match run() {
        Ok(table) => {
            println!("{table}");
            println!("written: bench/results.md, bench/results.svg");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
