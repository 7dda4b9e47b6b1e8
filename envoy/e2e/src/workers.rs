//! Envoy with several worker threads, and what shows which worker served a
//! connection: shared by the test files that prove something holds across
//! workers (`tests/persisted.rs`, `tests/cache.rs`).
//!
//! [`crate::solo::start_envoy_with`] always passes `--concurrency 1`;
//! [`envoy_with_workers`] is a command that replaces that value. Listener
//! statistics are named by each listener's `stat_prefix`
//! ([`name_listener_stats`]), so [`worker_connections`] can read
//! `listener.<prefix>.worker_<n>.downstream_cx_total` per listener.

use std::net::SocketAddr;
use std::process::Command;

use serde_json::{json, Value};

use crate::http::Client;
use crate::paths::Paths;

/// A listener's `stat_prefix`: its name, `-` as `_`.
pub fn stat_prefix(listener: &str) -> String {
    listener.replace('-', "_")
}

/// Gives every listener of a generated Envoy configuration a `stat_prefix`
/// of its name ([`stat_prefix`]): by address their statistics would be
/// `listener.127.0.0.1_0.*` for all of them (port 0, as configured).
pub fn name_listener_stats(generated: &mut Value) -> Result<(), String> {
    for listener in generated
        .pointer_mut("/static_resources/listeners")
        .and_then(Value::as_array_mut)
        .ok_or("the generated Envoy configuration has no listeners")?
    {
        let name = listener["name"].as_str().unwrap_or_default().to_string();
        listener["stat_prefix"] = json!(stat_prefix(&name));
    }
    Ok(())
}

/// Envoy with `workers` worker threads, for
/// [`crate::solo::start_envoy_with`]. That passes `--concurrency 1`, and
/// Envoy refuses an option given twice, so a POSIX shell replaces that one
/// value and `exec`s Envoy: the process keeps the PID (and process group)
/// it was started with, and is stopped by it. [`check_workers`] checks the
/// result.
pub fn envoy_with_workers(paths: &Paths, workers: usize) -> Command {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(
            r#"workers=$1; envoy=$2; shift 2; n=$#; prev=
for arg do
  if [ "$prev" = --concurrency ]; then set -- "$@" "$workers"; else set -- "$@" "$arg"; fi
  prev=$arg
done
shift "$n"
exec "$envoy" "$@""#,
        )
        .arg("envoy-with-workers")
        .arg(workers.to_string())
        .arg(&paths.envoy);
    command
}

/// GET `path` from Envoy's admin interface, as JSON.
pub fn admin_json(client: &Client, admin: SocketAddr, path: &str) -> Result<Value, String> {
    let url = format!("http://{admin}{path}");
    let reply = client.get(&url)?;
    if reply.status != 200 {
        return Err(format!("GET {url}: {} {}", reply.status, reply.body));
    }
    serde_json::from_str(&reply.body).map_err(|e| format!("GET {url}: not JSON ({e})"))
}

/// `Err` unless Envoy runs `workers` worker threads (its `/server_info`).
pub fn check_workers(client: &Client, admin: SocketAddr, workers: usize) -> Result<(), String> {
    let info = admin_json(client, admin, "/server_info")?;
    let concurrency = info["command_line_options"]["concurrency"].as_u64();
    if concurrency != Some(workers as u64) {
        return Err(format!(
            "Envoy runs {concurrency:?} workers, not {workers} (see /server_info)"
        ));
    }
    Ok(())
}

/// Connections each worker accepted on a listener so far
/// (`listener.<stat_prefix>.worker_<n>.downstream_cx_total`), by worker
/// index; `Err` unless Envoy has that counter for exactly `workers` workers.
pub fn worker_connections(
    client: &Client,
    admin: SocketAddr,
    listener: &str,
    workers: usize,
) -> Result<Vec<u64>, String> {
    let prefix = format!("listener.{}.worker_", stat_prefix(listener));
    let stats = admin_json(
        client,
        admin,
        &format!("/stats?format=json&filter={prefix}"),
    )?;
    let mut counts = vec![0; workers];
    let mut seen = 0;
    for stat in stats["stats"].as_array().into_iter().flatten() {
        let name = stat["name"].as_str().unwrap_or_default();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some(worker) = rest.strip_suffix(".downstream_cx_total") else {
            continue;
        };
        let index: usize = worker
            .parse()
            .map_err(|_| format!("unexpected stat name {name}"))?;
        let slot = counts
            .get_mut(index)
            .ok_or_else(|| format!("stat of a worker beyond {workers}: {name}"))?;
        *slot = stat["value"].as_u64().unwrap_or(0);
        seen += 1;
    }
    if seen != workers {
        return Err(format!(
            "Envoy has per-worker counters for {seen} workers of listener {listener}, not {workers}: {stats}"
        ));
    }
    Ok(counts)
}

/// What each worker took between two [`worker_connections`] readings.
pub fn delta(after: &[u64], before: &[u64]) -> Vec<u64> {
    after
        .iter()
        .zip(before)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect()
}

/// The value of one Envoy counter or gauge by its full name; `Err` when
/// Envoy has no such statistic (a misspelt name must not read as 0).
pub fn envoy_stat(client: &Client, admin: SocketAddr, name: &str) -> Result<u64, String> {
    let stats = admin_json(
        client,
        admin,
        &format!("/stats?format=json&filter=^{name}$"),
    )?;
    stats["stats"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == name)
        .and_then(|s| s["value"].as_u64())
        .ok_or_else(|| format!("Envoy has no statistic {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_get_a_stat_prefix_of_their_name() {
        let mut generated = json!({"static_resources": {"listeners": [
            {"name": "a-b"}, {"name": "c"}
        ]}});
        name_listener_stats(&mut generated).unwrap();
        let listeners = &generated["static_resources"]["listeners"];
        assert_eq!(listeners[0]["stat_prefix"], "a_b");
        assert_eq!(listeners[1]["stat_prefix"], "c");
        assert!(name_listener_stats(&mut json!({})).is_err());
    }

    #[test]
    fn the_wrapper_replaces_only_the_concurrency_value() {
        let paths = Paths::discover();
        let command = envoy_with_workers(&paths, 2);
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[2], "envoy-with-workers");
        assert_eq!(args[3], "2");
        // `echo` in place of Envoy: the arguments it would get.
        let script = &args[1];
        let output = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .args(["envoy-with-workers", "2", "echo"])
            .args(["-c", "x.yaml", "--concurrency", "1", "--log-level", "info"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "-c x.yaml --concurrency 2 --log-level info"
        );
    }
}
