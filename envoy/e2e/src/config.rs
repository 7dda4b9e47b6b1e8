//! Envoy configurations derived from the demo's `envoy/envoy.yaml`.
//!
//! Nothing here is a hand-written copy of the demo: the sandbox's listeners
//! and the docker-compose configuration are the demo's document with a few
//! named edits, so a change to the demo is what the tests exercise.

use std::path::Path;

pub use graphql_corpus::Variant;
use serde_json::{json, Value};

/// The demo's GraphQL listener.
pub const DEMO_LISTENER: &str = "graphql";
/// The demo's functions cluster (and the filter's upstream of the same name).
pub const DEMO_CLUSTER: &str = "openfaas";
/// Listener (b): the demo's schema without the batch form of `User.orders`.
pub const NOBATCH_LISTENER: &str = "graphql-nobatch";
/// Listener (c): like (b), plus a slow `echo` root field, calling the
/// delayed mock functions.
pub const SLOW_LISTENER: &str = "graphql-slow";
/// Listener (d): an invalid configuration (an `@http` naming an unknown upstream).
pub const INVALID_LISTENER: &str = "graphql-invalid";
/// The corpus listeners: the corpus schema (`corpus/schema.graphql`) with
/// introspection on and off, on the fast mocks.
pub const CORPUS_LISTENERS: [(&str, Variant); 2] = [
    ("graphql-corpus", Variant::Public),
    ("graphql-corpus-private", Variant::Private),
];
/// The corpus schema with a short request deadline (`DEADLINE_MS`).
pub const DEADLINE_LISTENER: &str = "graphql-deadline";
/// The deadline of `DEADLINE_LISTENER`, in milliseconds.
pub const DEADLINE_MS: u64 = 500;
/// A listener without the filter proxying everything to the functions: the
/// benchmark's limit (the same Envoy proxying one call).
pub const DIRECT_LISTENER: &str = "direct";
/// The cluster of the delayed mock functions.
pub const SLOW_CLUSTER: &str = "functions-slow";
/// The upstream that listener (d)'s schema names but does not declare.
pub const UNKNOWN_UPSTREAM: &str = "nowhere";
/// Every listener of the sandbox.
pub const LISTENERS: [&str; 8] = [
    DEMO_LISTENER,
    NOBATCH_LISTENER,
    SLOW_LISTENER,
    INVALID_LISTENER,
    CORPUS_LISTENERS[0].0,
    CORPUS_LISTENERS[1].0,
    DEADLINE_LISTENER,
    DIRECT_LISTENER,
];

/// The corpus listener of a variant.
pub fn corpus_listener(variant: Variant) -> &'static str {
    match variant {
        Variant::Public => CORPUS_LISTENERS[0].0,
        Variant::Private => CORPUS_LISTENERS[1].0,
    }
}

/// The compose service that runs the mock functions.
pub const COMPOSE_FUNCTIONS_HOST: &str = "functions";

/// Reads a YAML file into JSON values (key order kept).
pub fn load_yaml(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_norway::from_str(&text).map_err(|e| format!("{} is not valid YAML: {e}", path.display()))
}

pub(crate) fn array_mut<'a>(
    value: &'a mut Value,
    pointer: &str,
) -> Result<&'a mut Vec<Value>, String> {
    value
        .pointer_mut(pointer)
        .and_then(Value::as_array_mut)
        .ok_or_else(|| format!("the Envoy configuration has no list at {pointer}"))
}

pub(crate) fn named_mut<'a>(list: &'a mut [Value], name: &str) -> Result<&'a mut Value, String> {
    list.iter_mut()
        .find(|item| item.get("name").and_then(Value::as_str) == Some(name))
        .ok_or_else(|| format!("the Envoy configuration has no entry named {name:?}"))
}

fn listener_mut<'a>(config: &'a mut Value, name: &str) -> Result<&'a mut Value, String> {
    named_mut(array_mut(config, "/static_resources/listeners")?, name)
}

fn cluster_mut<'a>(config: &'a mut Value, name: &str) -> Result<&'a mut Value, String> {
    named_mut(array_mut(config, "/static_resources/clusters")?, name)
}

pub(crate) fn set(value: &mut Value, pointer: &str, new: Value) -> Result<(), String> {
    let slot = value
        .pointer_mut(pointer)
        .ok_or_else(|| format!("the Envoy configuration has nothing at {pointer}"))?;
    *slot = new;
    Ok(())
}

/// The HTTP connection manager of a listener (its first filter chain's).
pub(crate) fn hcm_mut(listener: &mut Value) -> Result<&mut Value, String> {
    let filters = array_mut(listener, "/filter_chains/0/filters")?;
    let hcm = named_mut(filters, "envoy.filters.network.http_connection_manager")?;
    hcm.get_mut("typed_config")
        .ok_or_else(|| "the HTTP connection manager has no typed_config".to_string())
}

/// The Wasm filter's `config` (a `PluginConfig`) of a listener.
pub(crate) fn plugin_mut(listener: &mut Value) -> Result<&mut Value, String> {
    let filters = array_mut(hcm_mut(listener)?, "/http_filters")?;
    let wasm = named_mut(filters, "envoy.filters.http.wasm")?;
    wasm.pointer_mut("/typed_config/config")
        .ok_or_else(|| "the Wasm filter has no typed_config.config".to_string())
}

/// The filter's own JSON configuration, parsed.
pub(crate) fn filter_config(plugin: &Value) -> Result<Value, String> {
    let text = plugin
        .pointer("/configuration/value")
        .and_then(Value::as_str)
        .ok_or_else(|| "the Wasm filter has no configuration.value string".to_string())?;
    serde_json::from_str(text)
        .map_err(|e| format!("the Wasm filter's configuration is not JSON: {e}"))
}

fn set_filter_config(plugin: &mut Value, config: &Value) -> Result<(), String> {
    set(
        plugin,
        "/configuration/value",
        Value::String(format!("{config:#}\n")),
    )
}

fn schema_mut(config: &mut Value) -> Result<&mut String, String> {
    match config.get_mut("schema") {
        Some(Value::String(s)) => Ok(s),
        _ => Err("the filter configuration has no `schema` string".into()),
    }
}

/// The demo's filter configuration (the JSON its listener hands the filter).
pub fn demo_filter_config(demo: &Value) -> Result<Value, String> {
    let mut demo = demo.clone();
    filter_config(plugin_mut(listener_mut(&mut demo, DEMO_LISTENER)?)?)
}

/// Replaces the `@http(...)` of `User.orders` with the one-call-per-user form.
pub fn schema_without_batch(schema: &str) -> Result<String, String> {
    let mut found = false;
    let lines: Vec<String> = schema
        .lines()
        .map(|line| match line.split_once("@http(") {
            Some((field, _)) if line.trim_start().starts_with("orders") && !found => {
                found = true;
                format!(
                    "{field}@http(upstream: \"{DEMO_CLUSTER}\", path: \"/user-orders?id={{parent.id}}\")"
                )
            }
            _ => line.to_string(),
        })
        .collect();
    if !found {
        return Err(
            "the demo schema has no `orders` field with @http; update envoy/e2e/src/config.rs"
                .into(),
        );
    }
    Ok(lines.join("\n") + "\n")
}

/// Adds a root field `echo(tag)` calling the `echo` function, and its type.
fn schema_with_echo(schema: &str) -> Result<String, String> {
    let head = "type Query {\n";
    let at = schema
        .find(head)
        .ok_or_else(|| "the demo schema has no `type Query {` line".to_string())?;
    let (before, after) = schema.split_at(at + head.len());
    Ok(format!(
        "{before}  echo(tag: String): Echo @http(upstream: \"{DEMO_CLUSTER}\", path: \"/echo?tag={{args.tag}}\")\n{after}\n\
         type Echo {{\n  method: String\n  path: String\n  rawQuery: String\n}}\n"
    ))
}

/// Makes the first `@http` of the schema name an upstream that does not exist.
fn schema_with_unknown_upstream(schema: &str) -> Result<String, String> {
    let known = format!("upstream: \"{DEMO_CLUSTER}\"");
    if !schema.contains(&known) {
        return Err(format!("the demo schema has no `{known}`"));
    }
    Ok(schema.replacen(&known, &format!("upstream: \"{UNKNOWN_UPSTREAM}\""), 1))
}

/// A copy of the demo listener under another name, with its filter
/// configuration changed by `edit`.
fn derived_listener(
    demo_listener: &Value,
    name: &str,
    edit: impl FnOnce(&mut Value) -> Result<(), String>,
) -> Result<Value, String> {
    let mut listener = demo_listener.clone();
    set(&mut listener, "/name", json!(name))?;
    set(
        hcm_mut(&mut listener)?,
        "/stat_prefix",
        json!(name.replace('-', "_")),
    )?;
    let plugin = plugin_mut(&mut listener)?;
    // A plugin name of its own: a root context per configuration.
    set(plugin, "/name", json!(format!("graphql-aggregator-{name}")))?;
    let mut config = filter_config(plugin)?;
    edit(&mut config)?;
    set_filter_config(plugin, &config)?;
    Ok(listener)
}

/// The sandbox's Envoy configuration.
///
/// - Listener `graphql` is the demo's, unchanged but for its port (0: Envoy
///   picks one; the harness reads it from the admin API) and the absolute
///   path of the filter.
/// - `graphql-nobatch`, `graphql-slow` and `graphql-invalid` are copies of it
///   with their filter configuration edited (see the constants);
///   `graphql-corpus` and `graphql-corpus-private` carry the corpus's.
/// - Cluster `openfaas` points at `fast_port`; `functions-slow`, a copy of
///   it, at `slow_port`. The admin listens on an ephemeral port.
pub fn sandbox_config(
    demo: &Value,
    wasm: &Path,
    fast_port: u16,
    slow_port: u16,
) -> Result<Value, String> {
    let mut config = demo.clone();
    set(
        &mut config,
        "/admin/address/socket_address/port_value",
        json!(0),
    )?;

    let demo_listener = listener_mut(&mut config, DEMO_LISTENER)?;
    set(
        demo_listener,
        "/address/socket_address/port_value",
        json!(0),
    )?;
    set(
        plugin_mut(demo_listener)?,
        "/vm_config/code/local/filename",
        json!(wasm.display().to_string()),
    )?;
    let demo_listener = demo_listener.clone();

    let nobatch = derived_listener(&demo_listener, NOBATCH_LISTENER, |c| {
        let schema = schema_mut(c)?;
        *schema = schema_without_batch(schema)?;
        Ok(())
    })?;
    let slow = derived_listener(&demo_listener, SLOW_LISTENER, |c| {
        let schema = schema_mut(c)?;
        *schema = schema_with_echo(&schema_without_batch(schema)?)?;
        let target = c
            .pointer_mut(&format!("/upstreams/{DEMO_CLUSTER}/target"))
            .ok_or_else(|| format!("the demo filter has no upstream {DEMO_CLUSTER:?}"))?;
        *target = json!(SLOW_CLUSTER);
        Ok(())
    })?;
    let invalid = derived_listener(&demo_listener, INVALID_LISTENER, |c| {
        let schema = schema_mut(c)?;
        *schema = schema_with_unknown_upstream(schema)?;
        Ok(())
    })?;
    array_mut(&mut config, "/static_resources/listeners")?.extend([nobatch, slow, invalid]);
    for (name, variant) in CORPUS_LISTENERS {
        let corpus = derived_listener(&demo_listener, name, |c| {
            *c = graphql_corpus::filter_config(variant, DEMO_CLUSTER);
            Ok(())
        })?;
        array_mut(&mut config, "/static_resources/listeners")?.push(corpus);
    }
    let deadline = derived_listener(&demo_listener, DEADLINE_LISTENER, |c| {
        *c = graphql_corpus::filter_config(Variant::Public, DEMO_CLUSTER);
        c["deadline_ms"] = json!(DEADLINE_MS);
        Ok(())
    })?;
    array_mut(&mut config, "/static_resources/listeners")?.push(deadline);
    let mut direct = derived_listener(&demo_listener, DIRECT_LISTENER, |_| Ok(()))?;
    set(
        hcm_mut(&mut direct)?,
        "/route_config/virtual_hosts/0/routes",
        json!([{
            "match": {"prefix": "/"},
            "route": {"cluster": DEMO_CLUSTER},
            "typed_per_filter_config": {
                "envoy.filters.http.wasm": {
                    "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                    "disabled": true
                }
            }
        }]),
    )?;
    array_mut(&mut config, "/static_resources/listeners")?.push(direct);

    let fast = cluster_mut(&mut config, DEMO_CLUSTER)?;
    let endpoint = "/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address";
    set(fast, &format!("{endpoint}/port_value"), json!(fast_port))?;
    let mut slow_cluster = fast.clone();
    set(&mut slow_cluster, "/name", json!(SLOW_CLUSTER))?;
    set(
        &mut slow_cluster,
        "/load_assignment/cluster_name",
        json!(SLOW_CLUSTER),
    )?;
    set(
        &mut slow_cluster,
        &format!("{endpoint}/port_value"),
        json!(slow_port),
    )?;
    array_mut(&mut config, "/static_resources/clusters")?.push(slow_cluster);
    Ok(config)
}

/// What `envoy/docker-compose.envoy.yaml` must be: the demo with exactly
/// the edits a container needs.
///
/// - Listeners bind `0.0.0.0` (the published port must reach them).
/// - Cluster `openfaas` reaches the compose service `functions` by name, so
///   it is `STRICT_DNS` (a `STATIC` cluster takes IP addresses only), IPv4.
///
/// The admin interface stays on the container's loopback.
pub fn compose_config(demo: &Value) -> Result<Value, String> {
    let mut config = demo.clone();
    for listener in array_mut(&mut config, "/static_resources/listeners")? {
        set(
            listener,
            "/address/socket_address/address",
            json!("0.0.0.0"),
        )?;
    }
    let cluster = cluster_mut(&mut config, DEMO_CLUSTER)?;
    set(cluster, "/type", json!("STRICT_DNS"))?;
    let Some(fields) = cluster.as_object_mut() else {
        return Err("cluster is not a mapping".into());
    };
    fields.insert("dns_lookup_family".into(), json!("V4_ONLY"));
    for endpoints in array_mut(cluster, "/load_assignment/endpoints")? {
        for lb in array_mut(endpoints, "/lb_endpoints")? {
            set(
                lb,
                "/endpoint/address/socket_address/address",
                json!(COMPOSE_FUNCTIONS_HOST),
            )?;
        }
    }
    Ok(config)
}

/// The text of `envoy/docker-compose.envoy.yaml` generated from the demo.
pub fn compose_config_text(demo: &Value) -> Result<String, String> {
    let yaml = serde_norway::to_string(&compose_config(demo)?).map_err(|e| e.to_string())?;
    Ok(format!(
        "# GENERATED from envoy/envoy.yaml: do not edit, regenerate with\n\
         #   ENVOY_E2E_WRITE_COMPOSE_CONFIG=1 cargo test -p envoy-e2e -- compose\n\
         # (the envoy-e2e tests fail when it drifts from the demo).\n\
         #\n\
         # The demo configuration for docker-compose.yaml, where Envoy runs in a\n\
         # container: listeners bind 0.0.0.0, and cluster `openfaas` reaches the\n\
         # `functions` service by name (STRICT_DNS). Everything else, comments\n\
         # included, is in envoy/envoy.yaml.\n\
         {yaml}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "type Query {\n  user(id: ID!): User @http(upstream: \"openfaas\", path: \"/u?id={args.id}\")\n}\n\ntype User {\n  id: ID!\n  orders: [Order] @http(upstream: \"openfaas\", path: \"/b\", batch: {key: \"id\", param: \"ids\"})\n}\n";

    #[test]
    fn schema_edits() {
        let nobatch = schema_without_batch(SCHEMA).unwrap();
        assert!(nobatch.contains(
            "  orders: [Order] @http(upstream: \"openfaas\", path: \"/user-orders?id={parent.id}\")\n"
        ));
        assert!(!nobatch.contains("batch"));
        assert!(schema_without_batch("type Query { a: Int }").is_err());
        let echo = schema_with_echo(SCHEMA).unwrap();
        assert!(echo.starts_with("type Query {\n  echo(tag: String): Echo @http("));
        assert!(echo
            .ends_with("type Echo {\n  method: String\n  path: String\n  rawQuery: String\n}\n"));
        let bad = schema_with_unknown_upstream(SCHEMA).unwrap();
        assert_eq!(bad.matches("\"nowhere\"").count(), 1);
        assert!(bad.contains("user(id: ID!): User @http(upstream: \"nowhere\""));
    }
}
