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
