//! The sandbox: two mock-function servers and one Envoy, on loopback.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::config::{self, LISTENERS};
use crate::http::{Client, Reply};
use crate::paths::Paths;
use crate::process::ProcessGuard;

/// Bound of every readiness wait.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(20);

/// The delay of every function of the slow mock (`--delay-ms`).
pub const SLOW_DELAY_MS: u64 = 100;
/// The fast mock's delay of `create-order` (mutations' serial order shows).
pub const CREATE_ORDER_DELAY_MS: u64 = 50;
/// The slow mock's `echo` delay: the sibling that outlives a parent + child chain.
pub const SLOW_ECHO_DELAY_MS: u64 = 400;

/// One mock-functions server.
#[derive(Debug)]
pub struct Mock {
    process: ProcessGuard,
    /// Where it listens.
    pub addr: SocketAddr,
    client: Client,
}

impl Mock {
    fn start(paths: &Paths, name: &str, args: &[String]) -> Result<Mock, String> {
        let log = paths.work.join(format!("mock-{name}.log"));
        let mut command = Command::new(&paths.mock_functions);
        command.args(args);
        let (process, addr) = spawn_mock(command, name, &log)?;
        Ok(Mock {
            process,
            addr,
            client: Client::default(),
        })
    }

    /// Zeroes the counters and the call log.
    pub fn reset(&self) {
        let reply = self
            .client
            .post(&format!("http://{}/_reset", self.addr), &[], "")
            .unwrap_or_else(|e| panic!("POST /_reset to the mock functions: {e}"));
        assert_eq!(reply.status, 200, "POST /_reset: {}", reply.body);
    }

    /// The `/_stats` document.
    pub fn stats(&self) -> Value {
        let reply = self
            .client
            .get(&format!("http://{}/_stats", self.addr))
            .unwrap_or_else(|e| panic!("GET /_stats from the mock functions: {e}"));
        assert_eq!(reply.status, 200, "GET /_stats: {}", reply.body);
        reply.json()
    }

    /// Stops the server (also done on drop).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// Everything the tests talk to. Dropping it stops Envoy, then the mocks.
#[derive(Debug)]
pub struct Sandbox {
    envoy: ProcessGuard,
    /// Mock functions without delays, behind cluster `openfaas`.
    pub fast: Mock,
    /// Mock functions with delays, behind cluster `functions-slow`.
    pub slow: Mock,
    /// Envoy's admin address.
    pub admin: SocketAddr,
    /// The port of each listener, by name.
    pub ports: BTreeMap<String, u16>,
    /// Envoy's log (its stdout and stderr).
    pub envoy_log: PathBuf,
    /// The generated Envoy configuration.
    pub envoy_config: PathBuf,
    /// A client for the tests.
    pub client: Client,
    /// The paths the sandbox was built from.
    pub paths: Paths,
}

/// How the sandbox's mocks are delayed.
#[derive(Debug, Clone, Copy)]
pub struct Delays {
    /// Every function of the slow mocks, in milliseconds.
    pub slow_ms: u64,
    /// `echo` on the slow mocks.
    pub slow_echo_ms: u64,
}

impl Default for Delays {
    fn default() -> Self {
        Delays {
            slow_ms: SLOW_DELAY_MS,
            slow_echo_ms: SLOW_ECHO_DELAY_MS,
        }
    }
}

impl Sandbox {
    /// Starts the mocks and Envoy and waits until every listener is up.
    pub fn start(paths: Paths) -> Result<Sandbox, String> {
        Sandbox::start_with(paths, Delays::default())
    }

    /// [`Sandbox::start`] with other delays for the slow mocks.
    pub fn start_with(paths: Paths, delays: Delays) -> Result<Sandbox, String> {
        paths.check()?;
        if let Some(warning) = paths.staleness_warning() {
            eprintln!("envoy-e2e: {warning}");
        }
        std::fs::create_dir_all(&paths.work)
            .map_err(|e| format!("cannot create {}: {e}", paths.work.display()))?;
        // create-order takes a while, so that two mutations dispatched
        // together would overlap in the call log.
        let fast = Mock::start(
            &paths,
            "fast",
            &[format!("--delay=create-order={CREATE_ORDER_DELAY_MS}")],
        )?;
        let slow = Mock::start(
            &paths,
            "slow",
            &[
                format!("--delay-ms={}", delays.slow_ms),
                format!("--delay=echo={}", delays.slow_echo_ms),
            ],
        )?;

        let demo = config::load_yaml(&paths.demo_config)?;
        let wasm = paths
            .wasm
            .canonicalize()
            .map_err(|e| format!("{}: {e}", paths.wasm.display()))?;
        let generated = config::sandbox_config(&demo, &wasm, fast.addr.port(), slow.addr.port())?;
        let crate::solo::RunningEnvoy {
            envoy,
            admin,
            ports,
            envoy_log,
            envoy_config,
        } = crate::solo::start_envoy(&paths, &paths.work, &generated, &LISTENERS)?;
        let client = Client::new(Duration::from_secs(10));
        let log_path = envoy_log.clone();
        let failed = move |problem: String| with_log_tail(&problem, &log_path, 30);
        let sandbox = Sandbox {
            envoy,
            fast,
            slow,
            admin,
            ports,
            envoy_log,
            envoy_config,
            client,
            paths,
        };
        // Warm-up: the first request of each listener is not measured.
        for name in LISTENERS {
            sandbox
                .client
                .post_json(&sandbox.graphql_url(name), r#"{"query":"{ __typename }"}"#)
                .map_err(|e| failed(format!("warm-up request to listener {name}: {e}")))?;
        }
        Ok(sandbox)
    }

    /// The port of a listener.
    pub fn port(&self, listener: &str) -> u16 {
        *self
            .ports
            .get(listener)
            .unwrap_or_else(|| panic!("no listener {listener}"))
    }

    /// `http://127.0.0.1:<port>/graphql` of a listener.
    pub fn graphql_url(&self, listener: &str) -> String {
        format!("http://127.0.0.1:{}/graphql", self.port(listener))
    }

    /// POSTs a GraphQL request (JSON text) to a listener.
    pub fn graphql(&self, listener: &str, body: &str) -> Reply {
        self.client
            .post_json(&self.graphql_url(listener), body)
            .unwrap_or_else(|e| panic!("POST {}: {e}", self.graphql_url(listener)))
    }

    /// Resets both mocks' counters.
    pub fn reset(&self) {
        self.fast.reset();
        self.slow.reset();
    }

    /// The value of an Envoy counter or gauge (0 when it does not exist yet).
    pub fn envoy_stat(&self, name: &str) -> u64 {
        let url = format!("http://{}/stats?format=json&filter=^{name}$", self.admin);
        let reply = self
            .client
            .get(&url)
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(reply.status, 200, "GET {url}: {}", reply.body);
        reply.json()["stats"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .and_then(|s| s["value"].as_u64())
            .unwrap_or(0)
    }

    /// Envoy's `/stats/prometheus` samples: metric name (with labels, as
    /// printed) → value.
    pub fn prometheus(&self) -> BTreeMap<String, f64> {
        let url = format!("http://{}/stats/prometheus", self.admin);
        let reply = self
            .client
            .get(&url)
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(reply.status, 200, "GET {url}: {}", reply.body);
        reply
            .body
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    /// Envoy's log so far.
    pub fn envoy_log_text(&self) -> String {
        std::fs::read_to_string(&self.envoy_log).unwrap_or_default()
    }

    /// Stops Envoy, then the mocks (also done on drop).
    pub fn stop(&mut self) {
        self.envoy.stop();
        self.fast.stop();
        self.slow.stop();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `mock-functions` from `command` (its program and arguments; the
/// listen address, pipes and log are set here) on an ephemeral loopback
/// port, and waits until it says where it listens.
pub fn spawn_mock(
    mut command: Command,
    name: &str,
    log: &std::path::Path,
) -> Result<(ProcessGuard, SocketAddr), String> {
    let stderr = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    command
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    let mut process = ProcessGuard::spawn(&format!("mock-functions ({name})"), command)?;
    let stdout = process
        .child_mut()
        .stdout
        .take()
        .ok_or("mock-functions has no stdout pipe")?;
    // The first line announces the address; the rest is drained so the
    // server can never block on a full pipe.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    let line = match rx.recv_timeout(STARTUP_DEADLINE) {
        Ok(Some(Ok(line))) => line,
        _ => {
            return Err(format!(
                "mock-functions ({name}) did not announce its address within {STARTUP_DEADLINE:?}; see {}",
                log.display()
            ))
        }
    };
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|a| a.trim().parse().ok())
        .ok_or_else(|| format!("mock-functions ({name}) said {line:?}"))?;
    Ok((process, addr))
}

/// The port each listener is bound to, from Envoy's admin API.
pub(crate) fn listener_ports(
    client: &Client,
    admin: SocketAddr,
) -> Result<BTreeMap<String, u16>, String> {
    let url = format!("http://{admin}/listeners?format=json");
    let reply = client.get(&url)?;
    let value: Value = serde_json::from_str(&reply.body)
        .map_err(|e| format!("GET {url}: not JSON ({e}): {}", reply.body))?;
    let mut ports = BTreeMap::new();
    for status in value["listener_statuses"].as_array().into_iter().flatten() {
        let name = status["name"].as_str().unwrap_or_default();
        let port = status["local_address"]["socket_address"]["port_value"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0);
        if let Some(port) = port {
            ports.insert(name.to_string(), port);
        }
    }
    Ok(ports)
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A failure message followed by the last `lines` lines of Envoy's log.
pub fn with_log_tail(problem: &str, envoy_log: &std::path::Path, lines: usize) -> String {
    format!(
        "{problem}\n--- last lines of {} ---\n{}",
        envoy_log.display(),
        log_tail(envoy_log, lines)
    )
}
