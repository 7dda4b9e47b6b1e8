//! Issue 13: a trapped Wasm VM must come back.
//!
//! A trap (a panic in the filter) breaks the worker's Wasm VM. The demo's
//! `envoy/envoy.yaml` ships `failure_policy: FAIL_RELOAD`: the next request
//! on that worker starts a fresh VM, at most once per backoff
//! (`reload_config`, 1 s base: 1 to 1.5 s after the VM's last (re)load).
//! With `FAIL_CLOSED` (the bug) every later request got a 503 until Envoy
//! restarted.
//!
//! One real Envoy (1.40, V8, one worker, loopback) with the test-only trap
//! filter (`envoy/e2e/trap-filter`: every request gets `200 ok`, header
//! `x-trap: 1` makes it execute `unreachable`) on two copies of the demo's
//! listener, each with a VM of its own:
//!
//! - `trap-reload` keeps the demo's failure policy, which must be
//!   `FAIL_RELOAD`. Three rounds: a normal request is answered, a trapping
//!   request gets a 5xx or a reset, and then normal requests are answered
//!   again within `RECOVERY_DEADLINE`, by a new VM (the filter's request
//!   counter starts again at 1). Rounds 1 and 2 trap within a backoff of the
//!   VM's (re)load (Envoy's start, round 1's reload), so requests fail until
//!   it has passed; round 3 traps after an idle past the backoff, so the
//!   very next request gets a new VM.
//! - `trap-closed` has `FAIL_CLOSED`: after its trap, every request fails
//!   for longer than `trap-reload` took to come back.
//!
//! Envoy's log must show exactly the four traps (`Uncaught RuntimeError:
//! unreachable`), and its stats three successful reloads, all on
//! `trap-reload`.
//!
//! Run: `cargo test -p envoy-e2e --test reload` after `make setup functions
//! trap-filter` (the trap filter: `$TRAP_FILTER_WASM`, else
//! `<target>/wasm32-wasip1/release/trap_filter.wasm`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use envoy_e2e::config::DEMO_LISTENER;
use envoy_e2e::http::{Client, Reply};
use envoy_e2e::paths::Paths;
use envoy_e2e::solo::{self, Solo};
use serde_json::{json, Value};

/// The listener with the demo's failure policy (`FAIL_RELOAD`).
const RELOAD: &str = "trap-reload";
/// The listener with `FAIL_CLOSED`.
const CLOSED: &str = "trap-closed";
/// How long a trapped VM may take to come back: the backoff is at most
/// 1.5 s (base 1 s, jittered), counted from the VM's last (re)load.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(5);
/// The least time `FAIL_CLOSED` must keep failing: past the longest backoff.
const CLOSED_MINIMUM: Duration = Duration::from_secs(2);
/// Idle time after which the next trap is reloaded at once: past the
/// longest backoff since the last reload.
const IDLE_PAST_BACKOFF: Duration = Duration::from_secs(2);
/// Between two requests while waiting.
const POLL: Duration = Duration::from_millis(50);
/// Any one request's bound.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Envoy's log line for a trap in a callback.
const TRAP_LOG: &str = "Uncaught RuntimeError: unreachable";
/// The trap filter's reply header: requests answered by this VM.
const SERVED: &str = "x-trap-filter-served";

/// The trap filter: `$TRAP_FILTER_WASM`, else the default release build.
fn trap_filter(paths: &Paths) -> PathBuf {
    let wasm = std::env::var_os("TRAP_FILTER_WASM")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = paths.work.parent().unwrap_or(&paths.work);
            target.join("wasm32-wasip1/release/trap_filter.wasm")
        });
    assert!(
        wasm.is_file(),
        "the trap filter is not built at {}: run `make trap-filter` (or `cargo build --locked \
         --release -p trap-filter --target wasm32-wasip1`), or set TRAP_FILTER_WASM",
        wasm.display()
    );
    wasm
}

/// One request's outcome, for messages: `200 ok (served 3)`, `503 ""`, or
/// the transport error (a reset).
fn describe(outcome: &Result<Reply, String>) -> String {
    match outcome {
        Ok(r) => match served(r) {
            Some(n) => format!("{} {:?} (served {n})", r.status, r.body),
            None => format!("{} {:?}", r.status, r.body),
        },
        Err(e) => format!("error: {e}"),
    }
}

fn served(reply: &Reply) -> Option<u64> {
    reply
        .headers
        .iter()
        .find(|(name, _)| name == SERVED)
        .and_then(|(_, value)| value.parse().ok())
}

fn is_ok(outcome: &Result<Reply, String>) -> bool {
    matches!(outcome, Ok(r) if r.status == 200 && r.body == "ok")
}

/// A failed request: a 5xx or no answer at all (a reset).
fn is_failure(outcome: &Result<Reply, String>) -> bool {
    match outcome {
        Ok(r) => r.status >= 500,
        Err(_) => true,
    }
}

struct Probe<'a> {
    solo: &'a Solo,
    client: Client,
}

impl Probe<'_> {
    fn request(&self, listener: &str, trap: bool) -> Result<Reply, String> {
        let headers = if trap {
            vec![("x-trap".to_string(), "1".to_string())]
        } else {
            Vec::new()
        };
        self.client
            .send("GET", &self.solo.graphql_url(listener), &headers, b"")
    }

    /// Panics with `message`, what was seen and the end of Envoy's log.
    fn fail(&self, message: &str) -> ! {
        panic!(
            "{}",
            envoy_e2e::sandbox::with_log_tail(message, &self.solo.envoy_log, 30)
        );
    }

    fn expect_ok(&self, listener: &str, what: &str) -> Reply {
        match self.request(listener, false) {
            Ok(r) if r.status == 200 && r.body == "ok" => r,
            other => self.fail(&format!("{listener}: {what}: got {}", describe(&other))),
        }
    }

    /// Sends the trapping request; it must fail (5xx or reset).
    fn trap(&self, listener: &str) -> String {
        let outcome = self.request(listener, true);
        if !is_failure(&outcome) {
            self.fail(&format!(
                "{listener}: the trapping request was answered: {}",
                describe(&outcome)
            ));
        }
        describe(&outcome)
    }

    /// Normal requests until one is answered `200 ok`, within
    /// [`RECOVERY_DEADLINE`]; returns how long that took and what the
    /// requests before it got.
    fn until_ok(&self, listener: &str) -> (Duration, Reply, Vec<String>) {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let outcome = self.request(listener, false);
            if let Ok(reply) = &outcome {
                if is_ok(&outcome) {
                    return (started.elapsed(), reply.clone(), seen);
                }
            }
            if !is_failure(&outcome) {
                self.fail(&format!(
                    "{listener}: after the trap, neither answered nor failed: {}",
                    describe(&outcome)
                ));
            }
            seen.push(describe(&outcome));
            if started.elapsed() > RECOVERY_DEADLINE {
                self.fail(&format!(
                    "{listener}: the trapped VM did not come back within {RECOVERY_DEADLINE:?}; \
                     {} requests failed: {:?}",
                    seen.len(),
                    summary(&seen)
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The counters `wasm.<plugin>.vm_reload*` from Envoy's admin.
    fn reload_stats(&self) -> Vec<(String, u64)> {
        let url = format!("http://{}/stats?filter=vm_reload", self.solo.admin);
        let text = match self.client.get(&url) {
            Ok(r) if r.status == 200 => r.body,
            other => self.fail(&format!("admin {url}: {other:?}")),
        };
        text.lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }
}

/// `["503 \"\" x12", "error: ... x1"]`: runs of equal outcomes.
fn summary(seen: &[String]) -> Vec<String> {
    let mut runs: Vec<(String, usize)> = Vec::new();
    for s in seen {
        match runs.last_mut() {
            Some((last, n)) if last == s => *n += 1,
            _ => runs.push((s.clone(), 1)),
        }
    }
    runs.into_iter().map(|(s, n)| format!("{s} x{n}")).collect()
}

/// The plugin name Solo gives a listener's filter (the stats' prefix).
fn plugin_name(listener: &str) -> String {
    format!("graphql-aggregator-{listener}")
}

/// A VM of its own per listener (the demo's listeners share one); the
/// demo's failure policy, which must be FAIL_RELOAD, on [`RELOAD`], and
/// FAIL_CLOSED on [`CLOSED`].
fn policies(config: &mut Value) -> Result<(), String> {
    for listener in [RELOAD, CLOSED] {
        let plugin = solo::plugin_config_mut(config, listener)?;
        let vm = plugin
            .pointer_mut("/vm_config/vm_id")
            .ok_or("the demo's Wasm filter has no vm_config.vm_id")?;
        *vm = json!(format!("trap-filter-{listener}"));
        let policy = plugin
            .get("failure_policy")
            .and_then(Value::as_str)
            .unwrap_or("UNSPECIFIED (FAIL_CLOSED)");
        if policy != "FAIL_RELOAD" {
            return Err(format!(
                "envoy/envoy.yaml's {DEMO_LISTENER} listener has failure_policy {policy}: \
                 it must be FAIL_RELOAD (a trapped VM must come back)"
            ));
        }
        if listener == CLOSED {
            let fields = plugin
                .as_object_mut()
                .ok_or("PluginConfig is not a mapping")?;
            fields.insert("failure_policy".into(), json!("FAIL_CLOSED"));
            fields.remove("reload_config");
        }
    }
    Ok(())
}

#[test]
fn a_trapped_vm_comes_back_with_fail_reload_and_not_with_fail_closed() {
    let paths = Paths::discover();
    let wasm = trap_filter(&paths);
    let began = Instant::now();
    let solo = Solo::start_with(
        &paths,
        "reload",
        &wasm,
        &[(RELOAD, json!({})), (CLOSED, json!({}))],
        policies,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let probe = Probe {
        solo: &solo,
        client: Client::new(REQUEST_TIMEOUT),
    };

    // FAIL_RELOAD, three times. Rounds 1 and 2 trap less than a backoff
    // after the VM was (re)loaded (at start, at round 1's reload), so the
    // requests inside the backoff fail; round 3 traps after an idle
    // IDLE_PAST_BACKOFF, so the very next request gets a new VM.
    let mut longest = Duration::ZERO;
    for round in 1..=3 {
        if round == 3 {
            std::thread::sleep(IDLE_PAST_BACKOFF);
        }
        probe.expect_ok(RELOAD, &format!("round {round}, before the trap"));
        let trapped = probe.trap(RELOAD);
        let (took, reply, failed) = probe.until_ok(RELOAD);
        assert_eq!(
            served(&reply),
            Some(1),
            "{RELOAD}: round {round}: the first answer after the trap must come from a new VM"
        );
        if round == 3 && !failed.is_empty() {
            probe.fail(&format!(
                "{RELOAD}: round 3: the VM was last loaded more than a backoff ago, so the \
                 first request after the trap must get a new VM; {} failed first: {:?}",
                failed.len(),
                summary(&failed)
            ));
        }
        for n in 2..=5 {
            let reply = probe.expect_ok(RELOAD, &format!("round {round}, after the reload"));
            assert_eq!(served(&reply), Some(n), "{RELOAD}: round {round}");
        }
        eprintln!(
            "{RELOAD} (FAIL_RELOAD), round {round}: the trapping request got {trapped}; \
             answered again after {took:?}, {} requests failed meanwhile: {:?}",
            failed.len(),
            summary(&failed)
        );
        longest = longest.max(took);
    }

    // FAIL_CLOSED: the VM never comes back.
    probe.expect_ok(CLOSED, "before the trap");
    let trapped = probe.trap(CLOSED);
    let watch = CLOSED_MINIMUM.max(longest + Duration::from_millis(500));
    let started = Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < watch {
        let outcome = probe.request(CLOSED, false);
        if !is_failure(&outcome) {
            probe.fail(&format!(
                "{CLOSED} (FAIL_CLOSED) answered {} after its trap: the bug's reproduction \
                 no longer holds",
                describe(&outcome)
            ));
        }
        seen.push(describe(&outcome));
        std::thread::sleep(POLL);
    }
    eprintln!(
        "{CLOSED} (FAIL_CLOSED): the trapping request got {trapped}; then {} requests in \
         {watch:?}, every one failed: {:?}",
        seen.len(),
        summary(&seen)
    );
    // The reloading listener was not affected by the other VM's trap.
    probe.expect_ok(RELOAD, "after the other listener's trap");

    // The log shows the four traps, and nothing else trapped.
    let log = solo.envoy_log_text();
    let traps = log.matches(TRAP_LOG).count();
    if traps != 4 {
        probe.fail(&format!(
            "Envoy's log shows {traps} traps ({TRAP_LOG:?}), expected 4"
        ));
    }
    // Envoy counted three reloads, all on the reloading listener's plugin.
    let stats = probe.reload_stats();
    let stat = |listener: &str, name: &str| {
        let key = format!("wasm.{}.{name}", plugin_name(listener));
        stats
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| probe.fail(&format!("no stat {key} in {stats:?}")))
    };
    assert_eq!(stat(RELOAD, "vm_reload_success"), 3, "{stats:?}");
    assert_eq!(stat(RELOAD, "vm_reload_failure"), 0, "{stats:?}");
    assert_eq!(stat(CLOSED, "vm_reload_success"), 0, "{stats:?}");
    eprintln!(
        "reload stats: {stats:?}; the whole test took {:?}",
        began.elapsed()
    );
    solo.check_envoy_running()
        .unwrap_or_else(|e| probe.fail(&format!("Envoy exited: {e}")));
}
