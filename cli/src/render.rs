//! `render`: a gateway's configuration file with the filter's configuration
//! embedded, from a template kept in `cli/templates/`.
//!
//! A template is the shipped file with its comments; a line holding only
//! `{{ NAME }}` (after its indentation) is a placeholder, replaced by the
//! rendered text with every non-empty line indented as the placeholder is:
//!
//! - `{{ filter_config }}`: the filter's configuration, as pretty JSON text
//!   (Envoy: the `StringValue` in a literal block) or as a YAML mapping
//!   (Kong's `config`, Istio's `pluginConfig`, Envoy Gateway's `config`);
//! - `{{ kong_yml }}`: the Kong template, rendered (Kubernetes' ConfigMap);
//! - `{{ meta_json }}`: Kong's meta.json, as the file has it.
//!
//! Every rendering is read back before it is printed: the configuration the
//! gateway will see must equal the one rendered.

use serde_json::{Map, Value};
use std::fmt::Write as _;

/// The gateway (and the form of the file) to render for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Envoy's static configuration (the demo): the JSON as a
    /// `google.protobuf.StringValue` in the Wasm filter's `configuration`.
    Envoy,
    /// Kong 3.7+ DB-less configuration: the filter in a route's filter chain.
    Kong,
    /// Kong 3.9+ DB-less configuration: the filter through `plugins:`.
    KongPlugins,
    /// Istio: a WasmPlugin's `pluginConfig` (with its Gateway and route).
    Istio,
    /// Envoy Gateway: an EnvoyExtensionPolicy's wasm `config` (with its
    /// Gateway and routes).
    EnvoyGateway,
    /// Kong 3.9 in Kubernetes: meta.json (--kong-meta) and the `kong`
    /// rendering in ConfigMaps, with Kong's Deployment.
    KongKubernetes,
}

impl Target {
    fn template(self) -> &'static str {
        match self {
            Target::Envoy => include_str!("../templates/envoy.yaml"),
            Target::Kong => include_str!("../templates/kong.yml"),
            Target::KongPlugins => include_str!("../templates/kong-plugins.yml"),
            Target::Istio => include_str!("../templates/istio.yaml"),
            Target::EnvoyGateway => include_str!("../templates/envoy-gateway.yaml"),
            Target::KongKubernetes => include_str!("../templates/kong-kubernetes.yaml"),
        }
    }
}

/// Changes to the configuration for one gateway's file.
#[derive(Debug, Default)]
pub struct Overrides {
    /// `--upstream-target NAME=TARGET`.
    pub targets: Vec<(String, String)>,
    /// `--upstream-authority NAME=AUTHORITY`.
    pub authorities: Vec<(String, String)>,
    /// `--set KEY=JSON` (KEY: dot-separated keys, e.g.
    /// `upstreams.openfaas.forward_headers`).
    pub sets: Vec<(String, String)>,
}

/// Splits `NAME=VALUE` (clap's value parser).
pub fn pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

/// Applies the overrides to the filter's configuration.
pub fn apply(config: &mut Value, overrides: &Overrides) -> Result<(), String> {
    let upstream_keys = [
        ("target", "--upstream-target", &overrides.targets),
        ("authority", "--upstream-authority", &overrides.authorities),
    ];
    for (key, flag, pairs) in upstream_keys {
        for (name, value) in pairs {
            let upstream = config
                .get_mut("upstreams")
                .and_then(|u| u.get_mut(name.as_str()))
                .and_then(Value::as_object_mut)
                .ok_or_else(|| {
                    format!("{flag} {name}=…: the configuration has no upstream {name:?}")
                })?;
            upstream.insert(key.into(), Value::String(value.clone()));
        }
    }
    for (path, json) in &overrides.sets {
        let value: Value = serde_json::from_str(json).map_err(|e| {
            format!("--set {path}={json}: not JSON ({e}); a string is written '\"text\"'")
        })?;
        let keys: Vec<&str> = path.split('.').collect();
        if keys.iter().any(|k| k.is_empty()) {
            return Err(format!("--set {path}=…: empty key in the path"));
        }
        let mut slot = &mut *config;
        for key in &keys {
            let object = slot.as_object_mut().ok_or_else(|| {
                format!("--set {path}=…: {key:?} is under something that is not a mapping")
            })?;
            slot = object
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        *slot = value;
    }
    Ok(())
}

/// The file for `target`, with `config` embedded; `kong_meta` is the text of
/// Kong's meta.json (needed for `kong-kubernetes` only).
pub fn render(target: Target, config: &Value, kong_meta: Option<&str>) -> Result<String, String> {
    let out = fill(target.template(), |name| match name {
        "filter_config" => Ok(match target {
            Target::Envoy => json_text(config),
            _ => yaml_mapping(config)?,
        }),
        "kong_yml" => render(Target::Kong, config, None),
        "meta_json" => {
            let text = kong_meta.ok_or("--for kong-kubernetes needs --kong-meta FILE (kong-wasm/graphql-aggregator.meta.json)")?;
            serde_json::from_str::<Value>(text)
                .map_err(|e| format!("--kong-meta: not JSON: {e}"))?;
            if !literal_safe(text) || text.starts_with([' ', '\n']) {
                return Err("--kong-meta: the file holds characters a YAML block cannot".into());
            }
            Ok(text.to_string())
        }
        other => Err(format!("template placeholder {{{{ {other} }}}} is unknown")),
    })?;
    verify(target, &out, config, kong_meta)?;
    Ok(out)
}

/// The template with each placeholder line replaced.
fn fill(
    template: &str,
    mut value: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() * 2);
    for line in template.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let trimmed = body.trim_start_matches(' ');
        let name = trimmed
            .strip_prefix("{{")
            .and_then(|s| s.strip_suffix("}}"))
            .map(str::trim);
        match name {
            Some(name) => {
                let indent = &body[..body.len() - trimmed.len()];
                for rendered in value(name)?.split_inclusive('\n') {
                    if rendered != "\n" {
                        out.push_str(indent);
                    }
                    out.push_str(rendered);
                }
            }
            None => out.push_str(line),
        }
    }
    Ok(out)
}

/// Pretty JSON (two spaces, as Envoy's demo has it), ending with a line
/// break, with the characters YAML treats as line breaks or refuses in a
/// block (DEL, C1 controls, U+2028, U+2029, BOM, U+FFFE/F) escaped.
pub fn json_text(value: &Value) -> String {
    let mut out = String::new();
    for c in format!("{value:#}").chars() {
        if needs_escape(c) && c != '\n' {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    out
}

/// A character a YAML literal block cannot hold as it is.
fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
}

/// Whether `text` can be a literal block's content verbatim.
fn literal_safe(text: &str) -> bool {
    !text.chars().any(needs_escape)
}

/// A mapping as block YAML at column 0 (the caller indents it).
pub fn yaml_mapping(value: &Value) -> Result<String, String> {
    let map = value
        .as_object()
        .ok_or("the filter's configuration is not a mapping")?;
    let mut out = String::new();
    if map.is_empty() {
        out.push_str("{}\n");
    } else {
        mapping(&mut out, map, 0);
    }
    Ok(out)
}

fn mapping(out: &mut String, map: &Map<String, Value>, indent: usize) {
    for (key, item) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&scalar_text(key));
        out.push(':');
        after_key(out, item, indent);
    }
}

fn sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        let mut nested = String::new();
        match item {
            Value::Object(map) if !map.is_empty() => mapping(&mut nested, map, indent + 2),
            Value::Array(list) if !list.is_empty() => sequence(&mut nested, list, indent + 2),
            Value::String(s) if block(s).is_some() => {
                nested.push_str(&" ".repeat(indent + 2));
                literal(&mut nested, s, indent);
            }
            other => {
                nested.push_str(&" ".repeat(indent + 2));
                nested.push_str(&inline(other));
                nested.push('\n');
            }
        }
        // The item's first line starts with the dash.
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        out.push_str(&nested[indent + 2..]);
    }
}

/// What follows `key:` (a space and a scalar, or nested lines).
fn after_key(out: &mut String, item: &Value, indent: usize) {
    match item {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            mapping(out, map, indent + 2);
        }
        Value::Array(list) if !list.is_empty() => {
            out.push('\n');
            sequence(out, list, indent + 2);
        }
        Value::String(s) if block(s).is_some() => {
            out.push(' ');
            literal(out, s, indent);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

/// A literal block's header (`|` or `|-`), if `s` can be one.
fn block(s: &str) -> Option<&'static str> {
    let multi_line = s.trim_end_matches('\n').contains('\n');
    let ok = multi_line
        && literal_safe(s)
        && !s.contains(['\t', '\r'])
        && !s.starts_with([' ', '\n'])
        && !s.ends_with("\n\n");
    ok.then(|| if s.ends_with('\n') { "|" } else { "|-" })
}

/// `|` and the lines of `s`, indented under a key at `indent`.
fn literal(out: &mut String, s: &str, indent: usize) {
    out.push_str(block(s).unwrap_or("|"));
    out.push('\n');
    for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
        if !line.is_empty() {
            out.push_str(&" ".repeat(indent + 2));
            out.push_str(line);
        }
        out.push('\n');
    }
}

/// A scalar or an empty collection on one line.
fn inline(value: &Value) -> String {
    match value {
        Value::String(s) => scalar_text(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

/// A string plain when nothing could read it otherwise, else double-quoted.
fn scalar_text(s: &str) -> String {
    const WORDS: [&str; 11] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "",
    ];
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
        && !WORDS.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_string()
    } else {
        json_text(&Value::String(s.to_string()))
            .trim_end_matches('\n')
            .to_string()
    }
}

/// Reads the rendering back as its gateway will: every embedded
/// configuration must be `config`, and Kubernetes' meta.json the file's.
fn verify(
    target: Target,
    text: &str,
    config: &Value,
    kong_meta: Option<&str>,
) -> Result<(), String> {
    let docs = documents(text)?;
    let mut found = Vec::new();
    match target {
        Target::Envoy => {
            for doc in &docs {
                envoy_configs(doc, &mut found)?;
            }
        }
        Target::Kong | Target::KongPlugins => {
            for doc in &docs {
                kong_configs(doc, &mut found);
            }
        }
        Target::Istio => {
            for doc in docs.iter().filter(|d| d["kind"] == "WasmPlugin") {
                found.push(doc["spec"]["pluginConfig"].clone());
            }
        }
        Target::EnvoyGateway => {
            for doc in docs.iter().filter(|d| d["kind"] == "EnvoyExtensionPolicy") {
                for wasm in doc["spec"]["wasm"].as_array().into_iter().flatten() {
                    found.push(wasm["config"].clone());
                }
            }
        }
        Target::KongKubernetes => {
            let mut metas = 0;
            for doc in docs.iter().filter(|d| d["kind"] == "ConfigMap") {
                let Some(data) = doc["data"].as_object() else {
                    continue;
                };
                if let Some(kong) = data.get("kong.yml").and_then(Value::as_str) {
                    for inner in documents(kong)? {
                        kong_configs(&inner, &mut found);
                    }
                }
                if let Some(meta) = data
                    .get("graphql-aggregator.meta.json")
                    .and_then(Value::as_str)
                {
                    let carried: Value = serde_json::from_str(meta)
                        .map_err(|e| format!("the rendered meta.json is not JSON: {e}"))?;
                    let file: Option<Value> = kong_meta.and_then(|m| serde_json::from_str(m).ok());
                    if Some(carried) != file {
                        return Err("the rendered meta.json differs from --kong-meta".into());
                    }
                    metas += 1;
                }
            }
            if metas != 1 {
                return Err(format!("the rendering carries {metas} meta.json, not 1"));
            }
        }
    }
    if found.is_empty() {
        return Err("the rendering embeds no filter configuration (template error)".into());
    }
    match found.iter().find(|f| *f != config) {
        Some(other) => Err(format!(
            "the rendering reads back as another configuration (a bug of render):\n{other:#}"
        )),
        None => Ok(()),
    }
}

fn documents(text: &str) -> Result<Vec<Value>, String> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| {
            serde::Deserialize::deserialize(doc)
                .map_err(|e| format!("the rendering is not valid YAML: {e}"))
        })
        .collect()
}

/// Every Wasm `configuration.value` string of an Envoy document, parsed.
fn envoy_configs(value: &Value, found: &mut Vec<Value>) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            if let Some(text) = map
                .get("configuration")
                .and_then(|c| c.get("value"))
                .and_then(Value::as_str)
            {
                found.push(
                    serde_json::from_str(text)
                        .map_err(|e| format!("the rendered configuration is not JSON: {e}"))?,
                );
            }
            for item in map.values() {
                envoy_configs(item, found)?;
            }
        }
        Value::Array(items) => {
            for item in items {
                envoy_configs(item, found)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Every `config` of a `graphql-aggregator` filter or plugin of a Kong
/// declarative configuration.
fn kong_configs(value: &Value, found: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            if map.get("name").and_then(Value::as_str) == Some("graphql-aggregator") {
                if let Some(config) = map.get("config") {
                    found.push(config.clone());
                }
            }
            map.values().for_each(|v| kong_configs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| kong_configs(v, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    /// Strings a careless rendering would break, in every position.
    fn awkward() -> Value {
        let strings = [
            "plain",
            "with: colon",
            "#hash",
            "- dash",
            "yes",
            "No",
            "null",
            "~",
            "",
            "123",
            "1.5",
            "0x1F",
            "'single'",
            "\"double\"",
            "back\\slash",
            "tab\there",
            "cr\r\nlf",
            "line\nbreaks\n",
            "no final break\nhere",
            "two final breaks\n\n",
            "\nleading break",
            "  leading spaces\nx\n",
            "x\n  indented\n\n    deeper\n",
            "trailing spaces  \n  \n",
            "nel\u{85}ls\u{2028}ps\u{2029}bom\u{feff}del\u{7f}c1\u{9b}",
            "unicode é 漢字 🚀",
            "{ flow: [1, 2] }",
            "&anchor *alias !tag %dir @at `tick`",
            "type Query {\n  a: String @http(upstream: \"u\", path: \"/a?x={args.x}\")\n}\n",
        ];
        let mut map = Map::new();
        for (i, s) in strings.iter().enumerate() {
            map.insert(format!("k{i}"), json!(s));
            map.insert((*s).to_string(), json!(i));
        }
        json!({
            "schema": "type Query {\n  a: String\n}\n",
            "strings": map,
            "list": strings,
            "nested": [[1, [2]], {"a": [{"b": "x\ny\n"}]}, {}, [], null, true, -3, 0.25],
            "empty": {},
        })
    }

    #[test]
    fn every_value_reads_back_in_every_form() {
        let config = awkward();
        let meta = "{\n  \"config_schema\": {}\n}\n";
        for target in [
            Target::Envoy,
            Target::Kong,
            Target::KongPlugins,
            Target::Istio,
            Target::EnvoyGateway,
            Target::KongKubernetes,
        ] {
            // `render` verifies what it produced; it must succeed.
            render(target, &config, Some(meta)).unwrap();
        }
    }

    #[test]
    fn mappings_are_block_yaml_with_literal_blocks() {
        let config = json!({
            "schema": "type Query {\n  a: Int\n}\n",
            "upstreams": {"u": {"target": "functions:8081", "path_prefix": "/function",
                                "forward_headers": ["authorization", "x-request-id"]}},
            "persisted_queries": {"automatic": true},
        });
        assert_eq!(
            yaml_mapping(&config).unwrap(),
            "schema: |\n  type Query {\n    a: Int\n  }\nupstreams:\n  u:\n    target: \"functions:8081\"\n    path_prefix: /function\n    forward_headers:\n      - authorization\n      - x-request-id\npersisted_queries:\n  automatic: true\n"
        );
    }

    #[test]
    fn placeholders_take_their_indentation() {
        let out = fill("a:\n  b: |\n    {{ x }}\nc: 1\n", |_| {
            Ok("one\n\ntwo\n".into())
        })
        .unwrap();
        assert_eq!(out, "a:\n  b: |\n    one\n\n    two\nc: 1\n");
        assert!(fill("  {{ nope }}\n", |n| Err(n.to_string())).is_err());
    }

    #[test]
    fn overrides() {
        let mut config = json!({"upstreams": {"u": {"target": "t"}}});
        let overrides = Overrides {
            targets: vec![("u".into(), "host:1".into())],
            authorities: vec![("u".into(), "a:2".into())],
            sets: vec![
                ("persisted_queries".into(), r#"{"automatic": true}"#.into()),
                ("upstreams.u.forward_headers".into(), r#"["x"]"#.into()),
            ],
        };
        apply(&mut config, &overrides).unwrap();
        assert_eq!(
            config,
            json!({"upstreams": {"u": {"target": "host:1", "authority": "a:2", "forward_headers": ["x"]}},
                   "persisted_queries": {"automatic": true}})
        );
        let missing = Overrides {
            targets: vec![("v".into(), "x".into())],
            ..Overrides::default()
        };
        assert!(apply(&mut config, &missing)
            .unwrap_err()
            .contains("no upstream \"v\""));
        let not_json = Overrides {
            sets: vec![("a".into(), "text".into())],
            ..Overrides::default()
        };
        assert!(apply(&mut config, &not_json)
            .unwrap_err()
            .contains("not JSON"));
    }
}
