//! `render`: every gateway file the repository ships is the rendering of
//! deploy/graphql-aggregator.yaml with the flags of its line in the
//! Makefile's `render` target, byte for byte; Envoy accepts a rendering
//! (`envoy --mode validate`, when Envoy and the filter are built); and
//! render refuses what it cannot render.

// Helpers fail the test by panicking, as tests do.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file `make render` must regenerate.
const SHIPPED: [&str; 6] = [
    "envoy/envoy.yaml",
    "kong-wasm/kong.yml",
    "kong-wasm/kong-plugins.yml",
    "kubernetes/istio/graphql.yaml",
    "kubernetes/envoy-gateway/graphql.yaml",
    "kubernetes/kong/graphql.yaml",
];

/// The source every shipped file is rendered from.
const SOURCE: &str = "deploy/graphql-aggregator.yaml";

/// Runs the binary in `dir`: exit code, stdout, stderr.
fn run(dir: &Path, args: &[String]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_graphql-aggregator"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs");
    (
        output.status.code().expect("an exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Shell words: plain, or in single quotes (all the Makefile uses).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' | '\t' if !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            other => {
                word.push(other);
                in_word = true;
            }
        }
    }
    assert!(!quoted, "unbalanced quote in {line:?}");
    if in_word {
        out.push(word);
    }
    out
}

/// The `render` target's lines: (file, the flags after the source), from
/// `$(RENDER) FLAGS -o FILE`.
fn make_render_lines() -> Vec<(String, Vec<String>, String)> {
    let makefile = std::fs::read_to_string(repo().join("Makefile")).expect("the Makefile");
    let recipe: Vec<&str> = makefile
        .lines()
        .skip_while(|l| *l != "render:")
        .skip(1)
        .take_while(|l| l.starts_with('\t'))
        .collect();
    assert!(
        makefile.contains(&format!(
            "RENDER := $(CARGO) run --locked -q -p graphql-aggregator-cli -- render {SOURCE}\n"
        )),
        "the Makefile's RENDER renders {SOURCE}"
    );
    recipe
        .iter()
        .filter_map(|line| line.trim().strip_prefix("$(RENDER) "))
        .map(|flags| {
            let mut args = words(flags);
            let at = args
                .iter()
                .position(|a| a == "-o")
                .expect("each `make render` line writes with -o FILE");
            let file = args.get(at + 1).expect("-o FILE").clone();
            args.drain(at..at + 2);
            (file, args, flags.to_string())
        })
        .collect()
}

#[test]
fn make_render_regenerates_every_shipped_file() {
    let mut files: Vec<String> = make_render_lines().into_iter().map(|(f, _, _)| f).collect();
    files.sort();
    let mut expected: Vec<String> = SHIPPED.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(files, expected);
}

#[test]
fn shipped_files_are_up_to_date() {
    let mut stale = Vec::new();
    for (file, flags, line) in make_render_lines() {
        let mut args = vec!["render".to_string(), SOURCE.to_string()];
        args.extend(flags);
        let (code, out, err) = run(&repo(), &args);
        assert_eq!(code, 0, "render for {file} failed:\n{err}");
        let shipped = std::fs::read_to_string(repo().join(&file)).expect("the shipped file");
        if out != shipped {
            let (n, (a, b)) = shipped
                .lines()
                .chain(std::iter::repeat("<end of file>"))
                .zip(out.lines().chain(std::iter::repeat("<end of file>")))
                .enumerate()
                .find(|(_, (a, b))| a != b)
                .unwrap_or((0, ("", "")));
            stale.push(format!(
                "{file} is out of date (line {}: shipped {a:?}, rendered {b:?}); regenerate it with \
                 `make render`, or: cargo run -p graphql-aggregator-cli -- render {SOURCE} {line}",
                n + 1
            ));
        }
    }
    assert!(stale.is_empty(), "{}", stale.join("\n"));
}

/// A schema description holding what YAML and JSON escape differently.
const AWKWARD_SCHEMA: &str = "\"\"\"\nQuotes \" and ' and \\ backslash, a\ttab, é 漢字 🚀, \
NEL \u{85}, LS \u{2028}, PS \u{2029}, a # and a : and {{ filter_config }}\n\"\"\"\n\
type Query {\n  user(id: ID!): User @http(upstream: \"fn\", path: \"/user?id={args.id}\")\n}\n\
type User {\n  id: ID!\n}\n";

/// A temporary directory with a configuration using `AWKWARD_SCHEMA`.
fn awkward_config(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "graphql-aggregator-render-{name}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("schema.graphql"), AWKWARD_SCHEMA).expect("schema");
    std::fs::write(
        dir.join("config.yaml"),
        "schema_file: schema.graphql\nupstreams:\n  fn:\n    target: \"fn: it's #1\"\n    path_prefix: /function\n",
    )
    .expect("config");
    dir
}

#[test]
fn every_form_renders_awkward_text() {
    let dir = awkward_config("forms");
    let meta = repo().join("kong-wasm/graphql-aggregator.meta.json");
    for target in [
        "envoy",
        "kong",
        "kong-plugins",
        "istio",
        "envoy-gateway",
        "kong-kubernetes",
    ] {
        let mut args: Vec<String> = ["render", "config.yaml", "--for", target]
            .map(String::from)
            .to_vec();
        args.extend(["--kong-meta".to_string(), meta.display().to_string()]);
        // render reads its output back and fails if anything was lost.
        let (code, out, err) = run(&dir, &args);
        assert_eq!(code, 0, "--for {target}: {err}");
        assert!(out.contains("fn: it's #1"), "--for {target}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn render_refuses_what_it_cannot_render() {
    let dir = awkward_config("refusals");
    let cases: [(&[&str], &str); 5] = [
        (&["--for", "kong-kubernetes"], "needs --kong-meta"),
        (
            &["--for", "kong", "--upstream-target", "nope=x"],
            "no upstream \"nope\"",
        ),
        (&["--for", "kong", "--set", "limits=text"], "not JSON"),
        (
            &["--for", "kong", "--set", "limits.max_calls=0"],
            "the filter refuses the configuration with the overrides",
        ),
        (&["--for", "kong", "--set", "nope"], "expected NAME=VALUE"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["render".to_string(), "config.yaml".to_string()];
        args.extend(flags.iter().map(|s| s.to_string()));
        let (code, out, err) = run(&dir, &args);
        assert_ne!(code, 0, "{flags:?}");
        assert!(out.is_empty(), "{flags:?}: nothing printed on failure");
        assert!(
            err.contains(message),
            "{flags:?}: expected {message:?} in {err}"
        );
    }
    std::fs::write(
        dir.join("bad.yaml"),
        "schema_file: missing.graphql\nupstreams: {}\n",
    )
    .expect("bad config");
    let (code, out, err) = run(
        &dir,
        &["render", "bad.yaml", "--for", "envoy"].map(String::from),
    );
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("bad.yaml:1:1: error: cannot read schema file"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Envoy (yaml-cpp, and the filter's own configure in the Wasm VM) accepts
/// a rendering carrying awkward text (about five seconds: V8 compiles the
/// filter). Needs `make envoy wasm`, which `make unit` runs first.
#[test]
fn envoy_validates_a_rendering() {
    let envoy = std::env::var_os("ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/envoy"));
    let wasm = repo().join("dist/graphql-aggregator.wasm");
    assert!(
        envoy.exists() && wasm.exists(),
        "this test needs {} and {}: run `make envoy wasm` first",
        envoy.display(),
        wasm.display()
    );
    let dir = awkward_config("envoy");
    let (code, out, err) = run(
        &dir,
        &["render", "config.yaml", "--for", "envoy"].map(String::from),
    );
    assert_eq!(code, 0, "{err}");
    // The template's relative path of the filter, from the repository.
    let config = dir.join("envoy.yaml");
    std::fs::write(&config, out).expect("write");
    let output = Command::new(&envoy)
        .args(["--mode", "validate", "--use-dynamic-base-id", "-c"])
        .arg(&config)
        .current_dir(repo())
        .output()
        .expect("envoy runs");
    let log = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && log.contains("OK"),
        "envoy --mode validate -c {}:\n{log}",
        config.display()
    );
    std::fs::remove_dir_all(&dir).ok();
}
