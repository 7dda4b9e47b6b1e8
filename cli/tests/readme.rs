//! The README's examples are real: the quick start's `schema.graphql` and
//! `graphql-aggregator.yaml`, taken from README.md as written, pass
//! `graphql-aggregator check --deny-warnings`, and `explain` gives what the
//! README shows for them.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

fn readme() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(path).expect("README.md")
}

/// The fenced block of `language` whose first line is `# name`.
fn block(readme: &str, language: &str, name: &str) -> String {
    let fence = format!("```{language}\n# {name}\n");
    let start = readme
        .find(&fence)
        .unwrap_or_else(|| panic!("README.md has no ```{language} block starting `# {name}`"));
    let body = &readme[start + fence.len()..];
    let end = body.find("\n```").expect("the block ends");
    body[..end].to_string()
}

fn run(dir: &PathBuf, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_graphql-aggregator"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().expect("an exit code"), text)
}

#[test]
fn the_quick_start_checks_clean_and_explains_as_shown() {
    let readme = readme();
    let dir =
        std::env::temp_dir().join(format!("graphql-aggregator-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("schema.graphql"),
        block(&readme, "graphql", "schema.graphql"),
    )
    .unwrap();
    std::fs::write(
        dir.join("graphql-aggregator.yaml"),
        block(&readme, "yaml", "graphql-aggregator.yaml"),
    )
    .unwrap();
    let (code, out) = run(
        &dir,
        &["check", "graphql-aggregator.yaml", "--deny-warnings"],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "graphql-aggregator.yaml: ok");
    // The README shows this explain output.
    let (code, out) = run(
        &dir,
        &[
            "explain",
            "graphql-aggregator.yaml",
            "{ users { id orders { id } } }",
            "--list-size",
            "50",
        ],
    );
    assert_eq!(code, 0, "{out}");
    for line in out.lines() {
        assert!(
            readme.contains(line.trim_end()),
            "README.md does not show `{line}`:\n{out}"
        );
    }
    let (code, out) = run(
        &dir,
        &["render", "graphql-aggregator.yaml", "--for", "envoy"],
    );
    assert_eq!(code, 0, "{out}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Every configuration in README.md's ```json blocks loads in the filter's
/// engine: whole configurations as they are, and snippets (`"key": {...}`)
/// of a top-level key or an upstream in a configuration of the demo's
/// schema. Blocks that are requests (`extensions`, `variables`) are not
/// configurations.
#[test]
fn every_configuration_in_the_readme_loads() {
    use graphql_aggregator_engine::config::{Gateway, KEYS};
    use serde_json::{json, Value};
    let readme = readme();
    let schema = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/schema.graphql"),
    )
    .expect("deploy/schema.graphql");
    let base = json!({"schema": schema, "upstreams": {"openfaas": {"target": "openfaas"}}});
    let mut checked = 0;
    for block in readme.split("```json\n").skip(1) {
        let text = &block[..block.find("\n```").expect("the block ends")];
        let value: Value = serde_json::from_str(text)
            .or_else(|_| serde_json::from_str(&format!("{{{text}}}")))
            .unwrap_or_else(|e| panic!("a ```json block of README.md is not JSON ({e}):\n{text}"));
        let object = value.as_object().expect("an object");
        let config = if object.contains_key("schema") {
            value.clone()
        } else if object.keys().all(|k| KEYS.contains(&k.as_str())) {
            let mut config = base.clone();
            for (k, v) in object {
                config[k] = v.clone();
            }
            config
        } else if object.values().all(|v| v.get("target").is_some()) {
            let mut config = base.clone();
            for (k, v) in object {
                config["upstreams"][k] = v.clone();
            }
            config
        } else {
            // A GraphQL request, not a configuration.
            assert!(
                object.contains_key("extensions") || object.contains_key("query"),
                "{text}"
            );
            continue;
        };
        if let Err(e) = Gateway::from_json(&config.to_string()) {
            panic!("README.md's configuration does not load: {e}\n{text}");
        }
        checked += 1;
    }
    assert!(
        checked >= 5,
        "only {checked} configurations found in README.md"
    );
}

/// The one source of every shipped gateway file checks clean, warnings
/// included.
#[test]
fn the_deploy_source_checks_clean() {
    let deploy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let (code, out) = run(
        &deploy,
        &["check", "graphql-aggregator.yaml", "--deny-warnings"],
    );
    assert_eq!(code, 0, "{out}");
}

/// `graphql-aggregator render … | head` ends quietly: a closed pipe is not
/// a crash (`print!` panicked on it).
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::process::Stdio;
    let deploy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut child = Command::new(env!("CARGO_BIN_EXE_graphql-aggregator"))
        .args(["render", "graphql-aggregator.yaml", "--for", "envoy"])
        .current_dir(&deploy)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Close the reading end before the output is written.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("it ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}
