//! A sandbox of its own for a test file: one mock-functions server (no
//! delays) and one Envoy whose listeners each carry a filter configuration
//! the test gives, derived from the demo's `envoy/envoy.yaml` like
//! [`crate::config::sandbox_config`]'s listeners.
//!
//! Every listener is a copy of the demo's GraphQL listener (the same Wasm
//! VM configuration, so they share one VM per worker, as in a gateway with
//! several routes: a trap on one breaks them all until the VM is reloaded).
//! [`Solo::start_with`] loads another filter module and edits the generated
//! configuration (e.g. a VM and a failure policy per listener). It runs in
//! `<target>/envoy-e2e/<name>/`, apart from the main sandbox, and stops
//! every process it started by PID (process groups, see
//! [`crate::process`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::{
    self, array_mut, hcm_mut, named_mut, plugin_mut, set, DEMO_CLUSTER, DEMO_LISTENER,
};
use crate::http::Client;
use crate::paths::Paths;
use crate::process::ProcessGuard;
use crate::sandbox::{listener_ports, spawn_mock, with_log_tail, STARTUP_DEADLINE};

/// The mock functions and one Envoy; dropping it stops Envoy, then the mock.
#[derive(Debug)]
pub struct Solo {
    envoy: ProcessGuard,
    mock: ProcessGuard,
    /// Where the mock functions listen (behind cluster `openfaas`).
    pub functions: SocketAddr,
    /// Envoy's admin address.
    pub admin: SocketAddr,
    /// The port of each listener, by name.
    pub ports: BTreeMap<String, u16>,
    /// Envoy's log (its stdout and stderr).
    pub envoy_log: PathBuf,
    /// The generated Envoy configuration.
    pub envoy_config: PathBuf,
}

/// The Wasm filter's `config` (a `PluginConfig`: `failure_policy`,
/// `vm_config`, ...) of the listener named `listener` in a configuration
/// made by [`solo_config`].
pub fn plugin_config_mut<'a>(
    config: &'a mut Value,
    listener: &str,
) -> Result<&'a mut Value, String> {
    let listeners = array_mut(config, "/static_resources/listeners")?;
    plugin_mut(named_mut(listeners, listener)?)
}

/// The demo's Envoy configuration with only `listeners` (name, filter
/// configuration), each a copy of the demo's GraphQL listener on an
/// ephemeral port; cluster `openfaas` at `127.0.0.1:functions_port`; the
/// admin on an ephemeral port.
pub fn solo_config(
    demo: &Value,
    wasm: &Path,
    functions_port: u16,
    listeners: &[(&str, Value)],
) -> Result<Value, String> {
    let mut config = demo.clone();
    set(
        &mut config,
        "/admin/address/socket_address/port_value",
        json!(0),
    )?;
    let mut template = named_mut(
        array_mut(&mut config, "/static_resources/listeners")?,
        DEMO_LISTENER,
    )?
    .clone();
    set(
        &mut template,
        "/address/socket_address/port_value",
        json!(0),
    )?;
    set(
        plugin_mut(&mut template)?,
        "/vm_config/code/local/filename",
        json!(wasm.display().to_string()),
    )?;
    let mut out = Vec::new();
    for (name, filter_config) in listeners {
        let mut listener = template.clone();
        set(&mut listener, "/name", json!(name))?;
        set(
            hcm_mut(&mut listener)?,
            "/stat_prefix",
            json!(name.replace('-', "_")),
        )?;
        let plugin = plugin_mut(&mut listener)?;
        // A plugin name of its own: a root context per configuration.
        set(plugin, "/name", json!(format!("graphql-aggregator-{name}")))?;
        set(
            plugin,
            "/configuration/value",
            json!(format!("{filter_config:#}\n")),
        )?;
        out.push(listener);
    }
    *array_mut(&mut config, "/static_resources/listeners")? = out;
    let cluster = named_mut(
        array_mut(&mut config, "/static_resources/clusters")?,
        DEMO_CLUSTER,
    )?;
    set(
        cluster,
        "/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value",
        json!(functions_port),
    )?;
    Ok(config)
}

/// Starts `mock-functions` on an ephemeral loopback port; returns it with
/// its address.
fn start_mock(paths: &Paths, work: &Path) -> Result<(ProcessGuard, SocketAddr), String> {
    let log = work.join("mock-functions.log");
    spawn_mock(Command::new(&paths.mock_functions), "solo", &log)
}

impl Solo {
    /// Starts the mock functions and Envoy with `listeners` (name, filter
    /// configuration), in `<target>/envoy-e2e/<name>/`, and waits until
    /// every listener is up.
    pub fn start(paths: &Paths, name: &str, listeners: &[(&str, Value)]) -> Result<Solo, String> {
        paths.check()?;
        if let Some(warning) = paths.staleness_warning() {
            eprintln!("envoy-e2e: {warning}");
        }
        Solo::start_with(paths, name, &paths.wasm, listeners, |_| Ok(()))
    }

    /// [`Solo::start`] with the filter module `wasm` instead of
    /// `paths.wasm`, and `edit` applied to the generated Envoy configuration
    /// before Envoy starts (see [`plugin_config_mut`]).
    pub fn start_with(
        paths: &Paths,
        name: &str,
        wasm: &Path,
        listeners: &[(&str, Value)],
        edit: impl FnOnce(&mut Value) -> Result<(), String>,
    ) -> Result<Solo, String> {
        let paths = &Paths {
            wasm: wasm.to_path_buf(),
            ..paths.clone()
        };
        paths.check()?;
        let work = paths.work.join(name);
        std::fs::create_dir_all(&work)
            .map_err(|e| format!("cannot create {}: {e}", work.display()))?;
        let (mock, functions) = start_mock(paths, &work)?;

        let demo = config::load_yaml(&paths.demo_config)?;
        let wasm = paths
            .wasm
            .canonicalize()
            .map_err(|e| format!("{}: {e}", paths.wasm.display()))?;
        let mut generated = solo_config(&demo, &wasm, functions.port(), listeners)?;
        edit(&mut generated)?;
        let names: Vec<&str> = listeners.iter().map(|(n, _)| *n).collect();
        let RunningEnvoy {
            envoy,
            admin,
            ports,
            envoy_log,
            envoy_config,
        } = start_envoy(paths, &work, &generated, &names)?;
        Ok(Solo {
            envoy,
            mock,
            functions,
            admin,
            ports,
            envoy_log,
            envoy_config,
        })
    }

    /// `http://127.0.0.1:<port>/graphql` of a listener.
    pub fn graphql_url(&self, listener: &str) -> String {
        let port = self
            .ports
            .get(listener)
            .unwrap_or_else(|| panic!("no listener {listener}"));
        format!("http://127.0.0.1:{port}/graphql")
    }

    /// Envoy's log so far.
    pub fn envoy_log_text(&self) -> String {
        std::fs::read_to_string(&self.envoy_log).unwrap_or_default()
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

impl Drop for Solo {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An Envoy started by [`start_envoy`], ready.
pub struct RunningEnvoy {
    /// The process (stopped on drop).
    pub envoy: ProcessGuard,
    /// Its admin interface.
    pub admin: SocketAddr,
    /// Listener ports by name.
    pub ports: BTreeMap<String, u16>,
    /// Its log file.
    pub envoy_log: PathBuf,
    /// The configuration file it runs.
    pub envoy_config: PathBuf,
}

impl RunningEnvoy {
    /// `http://127.0.0.1:<port>/graphql` of a listener.
    pub fn graphql_url(&self, listener: &str) -> Result<String, String> {
        let port = self
            .ports
            .get(listener)
            .ok_or_else(|| format!("Envoy has no listener {listener}"))?;
        Ok(format!("http://127.0.0.1:{port}/graphql"))
    }
}

/// Writes `generated` to `<work>/envoy.yaml`, starts one Envoy worker on it
/// (in its own process group, stopped by PID), and waits until its admin
/// interface is ready and every listener of `listeners` is up.
pub fn start_envoy(
    paths: &Paths,
    work: &Path,
    generated: &Value,
    listeners: &[&str],
) -> Result<RunningEnvoy, String> {
    start_envoy_with(
        Command::new(&paths.envoy),
        "info",
        paths,
        work,
        generated,
        listeners,
    )
}

/// [`start_envoy`] through `command` (Envoy itself, or Envoy under
/// `taskset`), logging at `log_level`.
pub fn start_envoy_with(
    mut command: Command,
    log_level: &str,
    paths: &Paths,
    work: &Path,
    generated: &Value,
    listeners: &[&str],
) -> Result<RunningEnvoy, String> {
    let envoy_config = work.join("envoy.yaml");
    let text = serde_norway::to_string(generated).map_err(|e| e.to_string())?;
    std::fs::write(&envoy_config, text)
        .map_err(|e| format!("cannot write {}: {e}", envoy_config.display()))?;

    let envoy_log = work.join("envoy.log");
    let admin_file = work.join("admin-address");
    let _ = std::fs::remove_file(&admin_file);
    let log = File::create(&envoy_log).map_err(|e| format!("{}: {e}", envoy_log.display()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", envoy_log.display()))?;
    command
        .arg("-c")
        .arg(&envoy_config)
        .args(["--concurrency", "1", "--log-level", log_level])
        // A base id no other Envoy uses (a running demo keeps 0).
        .arg("--use-dynamic-base-id")
        .arg("--base-id-path")
        .arg(work.join("base-id"))
        .arg("--admin-address-path")
        .arg(&admin_file)
        // As in the demo: Envoy runs from the repository root.
        .current_dir(&paths.repo)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let envoy = ProcessGuard::spawn("envoy", command)?;

    let client = Client::new(Duration::from_secs(5));
    let deadline = Instant::now() + STARTUP_DEADLINE;
    let failed = |problem: String| with_log_tail(&problem, &envoy_log, 30);
    let admin: SocketAddr = loop {
        envoy.check_running().map_err(failed)?;
        let text = std::fs::read_to_string(&admin_file).unwrap_or_default();
        if let Ok(addr) = text.trim().parse() {
            break addr;
        }
        if Instant::now() > deadline {
            return Err(failed(format!(
                "Envoy did not open its admin interface within {STARTUP_DEADLINE:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    loop {
        envoy.check_running().map_err(failed)?;
        let ready = client.get(&format!("http://{admin}/ready"));
        if matches!(&ready, Ok(r) if r.status == 200) {
            break;
        }
        if Instant::now() > deadline {
            return Err(failed(format!(
                "Envoy was not ready within {STARTUP_DEADLINE:?}: {ready:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ports = listener_ports(&client, admin).map_err(failed)?;
    if let Some(missing) = listeners.iter().find(|n| !ports.contains_key(**n)) {
        return Err(failed(format!(
            "Envoy has no listener {missing}; it has {ports:?}"
        )));
    }
    Ok(RunningEnvoy {
        envoy,
        admin,
        ports,
        envoy_log,
        envoy_config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_copies_of_the_demo_listener() {
        let paths = Paths::discover();
        let demo = config::load_yaml(&paths.demo_config).unwrap();
        let generated = solo_config(
            &demo,
            Path::new("/x/filter.wasm"),
            4321,
            &[
                ("a", json!({"schema": "A"})),
                ("b-c", json!({"schema": "B"})),
            ],
        )
        .unwrap();
        let mut listeners = generated["static_resources"]["listeners"].clone();
        let listeners = listeners.as_array_mut().unwrap();
        assert_eq!(listeners.len(), 2);
        let b = &mut listeners[1];
        assert_eq!(b["name"], "b-c");
        assert_eq!(b["address"]["socket_address"]["port_value"], 0);
        assert_eq!(hcm_mut(b).unwrap()["stat_prefix"], "b_c");
        let plugin = plugin_mut(b).unwrap();
        assert_eq!(plugin["name"], "graphql-aggregator-b-c");
        assert_eq!(
            plugin["vm_config"]["code"]["local"]["filename"],
            "/x/filter.wasm"
        );
        let text = plugin["configuration"]["value"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(text).unwrap(),
            json!({"schema": "B"})
        );
        let clusters = generated["static_resources"]["clusters"]
            .as_array()
            .unwrap();
        let openfaas = clusters.iter().find(|c| c["name"] == DEMO_CLUSTER).unwrap();
        assert_eq!(
            openfaas.pointer(
                "/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value"
            ),
            Some(&json!(4321))
        );
        assert_eq!(
            generated["admin"]["address"]["socket_address"]["port_value"],
            0
        );
    }
}
