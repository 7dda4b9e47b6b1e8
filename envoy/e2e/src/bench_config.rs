//! `make bench`'s Envoy configuration, derived from the demo's
//! `envoy/envoy.yaml` like the sandbox's (see [`crate::config`]).
//!
//! Four mock-function servers sit behind four clusters:
//!
//! - [`MANY_CLUSTER`] (the demo's `openfaas`): a data set of many users, for
//!   the rows that ask for another user on every request;
//! - [`FIFTY_CLUSTER`]: the default 50 users, for the rows that list every
//!   user (their size stays what it always was);
//! - [`SLOW_CLUSTER`]: every function delayed, for the latency runs;
//! - [`HOT_CLUSTER`]: the hot-key rows' functions (the bench starts them
//!   answering with a `cache-control`).
//!
//! Listeners:
//!
//! - [`FILTER_LISTENER`]: the demo's, unchanged but for its port and the
//!   filter's path;
//! - [`FILTER_FIFTY_LISTENER`], [`FILTER_FIFTY_NOBATCH_LISTENER`],
//!   [`FILTER_SLOW_LISTENER`]: copies of it calling the other clusters (the
//!   second without the batch form of `User.orders`);
//! - [`CEILING_LISTENER`]: the same chain with the ceiling filter
//!   (`bench/ceiling`) in place of the real one;
//! - [`DIRECT_LISTENER`]: the router alone, proxying everything to
//!   [`MANY_CLUSTER`] (the plain-proxy limit);
//! - [`HOT_LISTENERS`]: copies of the filter's listener calling
//!   [`HOT_CLUSTER`], one per setting of call reduction across requests
//!   (in-flight coalescing, the shared answer cache), each in a Wasm VM of
//!   its own so that no row shares its answer cache (the host's shared
//!   data, per `vm_id`) or its calls in flight with another.

use std::path::Path;

use serde_json::{json, Value};

use crate::config::{
    array_mut, filter_config, hcm_mut, named_mut, plugin_mut, schema_without_batch, set,
    DEMO_CLUSTER, DEMO_LISTENER,
};

/// The many-users cluster: the demo's own.
pub const MANY_CLUSTER: &str = DEMO_CLUSTER;
/// The 50-users cluster.
pub const FIFTY_CLUSTER: &str = "functions-50";
/// The delayed cluster.
pub const SLOW_CLUSTER: &str = "functions-slow";
/// The hot-key rows' cluster.
pub const HOT_CLUSTER: &str = "functions-hot";

/// The real filter on the demo configuration ([`MANY_CLUSTER`]).
pub const FILTER_LISTENER: &str = DEMO_LISTENER;
/// The real filter calling [`FIFTY_CLUSTER`].
pub const FILTER_FIFTY_LISTENER: &str = "graphql-50";
/// The real filter calling [`FIFTY_CLUSTER`], one orders call per user.
pub const FILTER_FIFTY_NOBATCH_LISTENER: &str = "graphql-50-nobatch";
/// The real filter calling [`SLOW_CLUSTER`].
pub const FILTER_SLOW_LISTENER: &str = "graphql-slow";
/// The ceiling filter calling [`MANY_CLUSTER`].
pub const CEILING_LISTENER: &str = "ceiling";
/// Envoy's router alone, proxying to [`MANY_CLUSTER`].
pub const DIRECT_LISTENER: &str = "direct";
/// The real filter calling [`HOT_CLUSTER`], no coalescing, no answer cache
/// (the hot-key rows' baseline).
pub const FILTER_HOT_BASELINE_LISTENER: &str = "graphql-hot-baseline";
/// The real filter calling [`HOT_CLUSTER`], coalescing, no answer cache.
pub const FILTER_HOT_COALESCE_LISTENER: &str = "graphql-hot-coalesce";
/// The real filter calling [`HOT_CLUSTER`], coalescing and the answer cache.
pub const FILTER_HOT_CACHE_LISTENER: &str = "graphql-hot-cache";
/// The shared answer cache of [`FILTER_HOT_CACHE_LISTENER`], bytes in all
/// (the filter's default).
pub const HOT_CACHE_MAX_BYTES: u64 = 8 << 20;
/// The shared answer cache of [`FILTER_HOT_CACHE_LISTENER`], bytes per
/// entry: the seed query's entries take well under 1 KiB, and the cache is
/// direct-mapped (`max_bytes / max_entry_bytes` slots), so that 2048 slots
/// rather than the default's 128 make it unlikely that two of the hot
/// keys share a slot.
pub const HOT_CACHE_MAX_ENTRY_BYTES: u64 = 4 << 10;

/// What each hot-key listener adds to the filter's top-level configuration.
pub fn hot_settings(listener: &str) -> Option<Value> {
    let off = json!({"max_bytes": 0});
    match listener {
        FILTER_HOT_BASELINE_LISTENER => Some(json!({"coalesce": false, "answer_cache": off})),
        FILTER_HOT_COALESCE_LISTENER => Some(json!({"coalesce": true, "answer_cache": off})),
        FILTER_HOT_CACHE_LISTENER => Some(json!({
            "coalesce": true,
            "answer_cache": {
                "max_bytes": HOT_CACHE_MAX_BYTES,
                "max_entry_bytes": HOT_CACHE_MAX_ENTRY_BYTES,
            },
        })),
        _ => None,
    }
}

/// The hot-key listeners.
pub const HOT_LISTENERS: [&str; 3] = [
    FILTER_HOT_BASELINE_LISTENER,
    FILTER_HOT_COALESCE_LISTENER,
    FILTER_HOT_CACHE_LISTENER,
];
/// Every listener of the bench configuration.
pub const BENCH_LISTENERS: [&str; 9] = [
    FILTER_LISTENER,
    FILTER_FIFTY_LISTENER,
    FILTER_FIFTY_NOBATCH_LISTENER,
    FILTER_SLOW_LISTENER,
    CEILING_LISTENER,
    DIRECT_LISTENER,
    FILTER_HOT_BASELINE_LISTENER,
    FILTER_HOT_COALESCE_LISTENER,
    FILTER_HOT_CACHE_LISTENER,
];

/// The ports of the four mock-function servers.
#[derive(Debug, Clone, Copy)]
pub struct ClusterPorts {
    /// Behind [`MANY_CLUSTER`].
    pub many: u16,
    /// Behind [`FIFTY_CLUSTER`].
    pub fifty: u16,
    /// Behind [`SLOW_CLUSTER`].
    pub slow: u16,
    /// Behind [`HOT_CLUSTER`].
    pub hot: u16,
}

fn at<'a>(value: &'a mut Value, pointer: &str) -> Result<&'a mut Value, String> {
    value
        .pointer_mut(pointer)
        .ok_or_else(|| format!("the Envoy configuration has nothing at {pointer}"))
}

/// A copy of `listener` under another name (and stat prefix).
fn renamed(listener: &Value, name: &str) -> Result<Value, String> {
    let mut copy = listener.clone();
    set(&mut copy, "/name", json!(name))?;
    set(
        hcm_mut(&mut copy)?,
        "/stat_prefix",
        json!(name.replace('-', "_")),
    )?;
    Ok(copy)
}

/// A copy of the filter's listener whose filter calls `cluster`, with its
/// configuration also changed by `edit`.
fn filter_listener(
    demo: &Value,
    name: &str,
    cluster: &str,
    edit: impl FnOnce(&mut Value) -> Result<(), String>,
) -> Result<Value, String> {
    let mut listener = renamed(demo, name)?;
    let plugin = plugin_mut(&mut listener)?;
    // A plugin name of its own: a root context per configuration.
    set(plugin, "/name", json!(format!("graphql-aggregator-{name}")))?;
    let mut config = filter_config(plugin)?;
    set(
        &mut config,
        &format!("/upstreams/{DEMO_CLUSTER}/target"),
        json!(cluster),
    )?;
    edit(&mut config)?;
    set(
        plugin,
        "/configuration/value",
        json!(format!("{config:#}\n")),
    )?;
    Ok(listener)
}

/// The ceiling filter's configuration: the cluster, `:authority`, path
/// prefix and timeout of the real filter's upstream `openfaas`, so that its
/// calls are the real filter's calls.
pub fn ceiling_settings(demo_filter_config: &Value) -> Result<Value, String> {
    let upstream = demo_filter_config
        .pointer(&format!("/upstreams/{DEMO_CLUSTER}"))
        .ok_or_else(|| format!("the demo filter has no upstream {DEMO_CLUSTER:?}"))?;
    let text = |key: &str, default: &str| {
        upstream
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let timeout = upstream
        .get("timeout_ms")
        .and_then(Value::as_u64)
        .unwrap_or(5000);
    // The ceiling reads plain string values only.
    Ok(json!({
        "cluster": text("target", DEMO_CLUSTER),
        "authority": text("authority", "gateway.openfaas:8080"),
        "path_prefix": text("path_prefix", ""),
        "graphql_path": "/graphql",
        "timeout_ms": timeout.to_string(),
    }))
}

/// The bench's Envoy configuration (see the module documentation). Every
/// listener and the admin listen on port 0 (Envoy picks; the admin API
/// tells which).
pub fn bench_config(
    demo: &Value,
    filter_wasm: &Path,
    ceiling_wasm: &Path,
    ports: ClusterPorts,
) -> Result<Value, String> {
    let mut config = demo.clone();
    set(
        &mut config,
        "/admin/address/socket_address/port_value",
        json!(0),
    )?;
    let mut demo_listener = named_mut(
        array_mut(&mut config, "/static_resources/listeners")?,
        DEMO_LISTENER,
    )?
    .clone();
    set(
        &mut demo_listener,
        "/address/socket_address/port_value",
        json!(0),
    )?;
    set(
        plugin_mut(&mut demo_listener)?,
        "/vm_config/code/local/filename",
        json!(filter_wasm.display().to_string()),
    )?;

    let fifty = filter_listener(&demo_listener, FILTER_FIFTY_LISTENER, FIFTY_CLUSTER, |_| {
        Ok(())
    })?;
    let nobatch = filter_listener(
        &demo_listener,
        FILTER_FIFTY_NOBATCH_LISTENER,
        FIFTY_CLUSTER,
        |c| {
            let schema = at(c, "/schema")?;
            let text = schema
                .as_str()
                .ok_or("the filter's schema is not a string")?;
            *schema = json!(schema_without_batch(text)?);
            Ok(())
        },
    )?;
    let slow = filter_listener(&demo_listener, FILTER_SLOW_LISTENER, SLOW_CLUSTER, |_| {
        Ok(())
    })?;
    let mut hot = Vec::new();
    for name in HOT_LISTENERS {
        let settings = hot_settings(name).ok_or_else(|| format!("no settings for {name}"))?;
        let mut listener = filter_listener(&demo_listener, name, HOT_CLUSTER, |c| {
            let (Some(config), Some(settings)) = (c.as_object_mut(), settings.as_object()) else {
                return Err("the filter's configuration is not an object".into());
            };
            for (key, value) in settings {
                config.insert(key.clone(), value.clone());
            }
            Ok(())
        })?;
        // A VM of its own: its own shared data (the answer cache) and its
        // own calls in flight.
        set(
            plugin_mut(&mut listener)?,
            "/vm_config/vm_id",
            json!(format!("graphql-aggregator-{name}")),
        )?;
        hot.push(listener);
    }

    let mut ceiling = renamed(&demo_listener, CEILING_LISTENER)?;
    let ceiling_plugin = plugin_mut(&mut ceiling)?;
    let settings = ceiling_settings(&filter_config(ceiling_plugin)?)?;
    set(ceiling_plugin, "/name", json!("bench-ceiling"))?;
    set(ceiling_plugin, "/root_id", json!("bench-ceiling"))?;
    set(ceiling_plugin, "/vm_config/vm_id", json!("bench-ceiling"))?;
    set(
        ceiling_plugin,
        "/vm_config/code/local/filename",
        json!(ceiling_wasm.display().to_string()),
    )?;
    set(
        ceiling_plugin,
        "/configuration/value",
        json!(settings.to_string()),
    )?;

    // The limit: the router alone, no Wasm, no buffer.
    let mut direct = renamed(&demo_listener, DIRECT_LISTENER)?;
    let direct_hcm = hcm_mut(&mut direct)?;
    let router = named_mut(
        array_mut(direct_hcm, "/http_filters")?,
        "envoy.filters.http.router",
    )?
    .clone();
    set(direct_hcm, "/http_filters", json!([router]))?;
    set(
        direct_hcm,
        "/route_config/virtual_hosts/0/routes",
        json!([{"match": {"prefix": "/"}, "route": {"cluster": MANY_CLUSTER}}]),
    )?;

    let mut listeners = vec![demo_listener, fifty, nobatch, slow, ceiling, direct];
    listeners.extend(hot);
    set(&mut config, "/static_resources/listeners", json!(listeners))?;

    let clusters = array_mut(&mut config, "/static_resources/clusters")?;
    let many = named_mut(clusters, DEMO_CLUSTER)?;
    let endpoint = "/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address";
    set(many, &format!("{endpoint}/port_value"), json!(ports.many))?;
    let template = many.clone();
    for (name, port) in [
        (FIFTY_CLUSTER, ports.fifty),
        (SLOW_CLUSTER, ports.slow),
        (HOT_CLUSTER, ports.hot),
    ] {
        let mut cluster = template.clone();
        set(&mut cluster, "/name", json!(name))?;
        set(&mut cluster, "/load_assignment/cluster_name", json!(name))?;
        set(&mut cluster, &format!("{endpoint}/port_value"), json!(port))?;
        clusters.push(cluster);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_yaml;
    use crate::paths::Paths;

    #[test]
    fn bench_config_from_the_demo() {
        let paths = Paths::discover();
        let demo = load_yaml(&paths.demo_config).unwrap();
        let ports = ClusterPorts {
            many: 1001,
            fifty: 1002,
            slow: 1003,
            hot: 1004,
        };
        let mut config =
            bench_config(&demo, Path::new("/f.wasm"), Path::new("/c.wasm"), ports).unwrap();
        let listeners = array_mut(&mut config, "/static_resources/listeners").unwrap();
        let names: Vec<&str> = listeners
            .iter()
            .filter_map(|l| l["name"].as_str())
            .collect();
        assert_eq!(names, BENCH_LISTENERS);
        for listener in listeners.iter_mut() {
            assert_eq!(listener["address"]["socket_address"]["port_value"], 0);
            assert_eq!(
                listener["address"]["socket_address"]["address"],
                "127.0.0.1"
            );
        }
        let target = |listeners: &mut Vec<Value>, name: &str| {
            let config =
                filter_config(plugin_mut(named_mut(listeners, name).unwrap()).unwrap()).unwrap();
            config["upstreams"][DEMO_CLUSTER]["target"].clone()
        };
        assert_eq!(target(listeners, FILTER_LISTENER), MANY_CLUSTER);
        assert_eq!(target(listeners, FILTER_FIFTY_LISTENER), FIFTY_CLUSTER);
        assert_eq!(target(listeners, FILTER_SLOW_LISTENER), SLOW_CLUSTER);
        let nobatch = filter_config(
            plugin_mut(named_mut(listeners, FILTER_FIFTY_NOBATCH_LISTENER).unwrap()).unwrap(),
        )
        .unwrap();
        assert!(!nobatch["schema"].as_str().unwrap().contains("batch"));
        let mut vms = Vec::new();
        for name in HOT_LISTENERS {
            let plugin = plugin_mut(named_mut(listeners, name).unwrap()).unwrap();
            vms.push(plugin["vm_config"]["vm_id"].clone());
            let config = filter_config(plugin).unwrap();
            assert_eq!(config["upstreams"][DEMO_CLUSTER]["target"], HOT_CLUSTER);
            for (key, value) in hot_settings(name).unwrap().as_object().unwrap() {
                assert_eq!(&config[key], value, "{name}: {key}");
            }
            assert!(config["schema"].as_str().unwrap().contains("batch"));
        }
        assert_eq!(
            vms,
            HOT_LISTENERS.map(|n| json!(format!("graphql-aggregator-{n}")))
        );
        let demo_vm = plugin_mut(named_mut(listeners, FILTER_LISTENER).unwrap()).unwrap()
            ["vm_config"]["vm_id"]
            .clone();
        assert_eq!(demo_vm, "graphql-aggregator");

        let ceiling = plugin_mut(named_mut(listeners, CEILING_LISTENER).unwrap()).unwrap();
        assert_eq!(ceiling["vm_config"]["code"]["local"]["filename"], "/c.wasm");
        assert_eq!(ceiling["vm_config"]["vm_id"], "bench-ceiling");
        let settings: Value =
            serde_json::from_str(ceiling["configuration"]["value"].as_str().unwrap()).unwrap();
        assert_eq!(settings["cluster"], MANY_CLUSTER);
        assert_eq!(settings["authority"], "gateway.openfaas:8080");
        assert_eq!(settings["path_prefix"], "/function");
        assert_eq!(settings["timeout_ms"], "5000");

        let direct = hcm_mut(named_mut(listeners, DIRECT_LISTENER).unwrap()).unwrap();
        assert_eq!(direct["http_filters"].as_array().unwrap().len(), 1);
        assert_eq!(
            direct["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["cluster"],
            MANY_CLUSTER
        );

        let clusters = array_mut(&mut config, "/static_resources/clusters").unwrap();
        let port = |clusters: &mut Vec<Value>, name: &str| {
            named_mut(clusters, name).unwrap()["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
                ["endpoint"]["address"]["socket_address"]["port_value"]
                .clone()
        };
        assert_eq!(port(clusters, MANY_CLUSTER), 1001);
        assert_eq!(port(clusters, FIFTY_CLUSTER), 1002);
        assert_eq!(port(clusters, SLOW_CLUSTER), 1003);
        assert_eq!(port(clusters, HOT_CLUSTER), 1004);
    }
}
