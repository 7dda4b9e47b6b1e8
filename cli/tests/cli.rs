//! The built `graphql-aggregator` binary on the fixtures of
//! `tests/fixtures/`: each problem's message, its place (file, line,
//! column) and the exit status; and the plans `explain` shows.

// Helpers fail the test by panicking, as tests do.
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

/// The fixtures' directory: configurations name their schema files
/// relative to themselves, and problems are printed with the path given.
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs the binary in the fixtures' directory: its exit code and output.
fn run(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_graphql-aggregator"))
        .args(args)
        .current_dir(fixtures())
        .output()
        .expect("the binary runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().expect("an exit code"), text)
}

/// `check CONFIG`: asserts the status and that a line starts with `at`
/// (`file:line:column: severity:`) and holds `message`; gives the output.
fn check(config: &str, status: i32, at: &str, message: &str) -> String {
    let (code, out) = run(&["check", config]);
    assert_eq!(code, status, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{at} ")) && l.contains(message)),
        "expected `{at} …{message}…` in:\n{out}"
    );
    out
}

#[test]
fn the_demo_configuration_is_clean() {
    let (code, out) = run(&["check", "demo.yaml", "--deny-warnings"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "demo.yaml: ok");
}

#[test]
fn json_syntax_errors_point_into_the_configuration() {
    check(
        "json-syntax.json",
        1,
        "json-syntax.json:4:39: error:",
        "JSON syntax: trailing comma",
    );
}

#[test]
fn yaml_syntax_errors_point_into_the_configuration() {
    let out = check(
        "yaml-syntax.yaml",
        1,
        "yaml-syntax.yaml:5:4: error:",
        "YAML syntax: did not find expected key",
    );
    assert!(!out.contains("at line"), "{out}");
}

#[test]
fn schema_errors_point_into_the_schema_file() {
    check(
        "schema-syntax.yaml",
        1,
        "schema-syntax.graphql:7:9: error:",
        "invalid schema: cannot find type `Strin`",
    );
}

#[test]
fn a_bad_http_mapping_points_at_its_field() {
    let out = check(
        "bad-field.yaml",
        1,
        "bad-field.graphql:3:3: error:",
        "Query.stock: @http names upstream \"inventory\", which is not in the configuration's `upstreams`",
    );
    assert!(
        out.contains("  hint: declare that upstream under `upstreams:`"),
        "{out}"
    );
}

#[test]
fn a_bad_upstream_points_at_its_setting() {
    check(
        "bad-upstream.yaml",
        1,
        "bad-upstream.yaml:6:5: error:",
        "upstreams.openfaas: `path_prefix` must start with `/`",
    );
}

#[test]
fn an_unknown_key_points_at_the_key() {
    check(
        "unknown-key.yaml",
        1,
        "unknown-key.yaml:5:5: error:",
        "upstreams.openfaas.timeout: unknown field `timeout`, expected one of",
    );
}

#[test]
fn a_missing_schema_file_points_at_schema_file() {
    let out = check(
        "missing-schema-file.yaml",
        1,
        "missing-schema-file.yaml:5:1: error:",
        "cannot read schema file missing.graphql",
    );
    assert!(out.contains("hint: `schema_file` is relative"), "{out}");
}

#[test]
fn schema_and_schema_file_exclude_each_other() {
    check(
        "both-schemas.yaml",
        1,
        "both-schemas.yaml:5:1: error:",
        "both `schema` and `schema_file` are set",
    );
}

#[test]
fn an_inline_yaml_block_schema_maps_to_its_lines() {
    check(
        "inline-block.yaml",
        1,
        "inline-block.yaml:8:29: error:",
        "invalid schema: cannot find type `Strin`",
    );
}

#[test]
fn an_inline_json_schema_maps_to_its_characters() {
    check(
        "inline-json.json",
        1,
        "inline-json.json:3:30: error:",
        "Query.user: template uses {args.nope} but the field has no argument `nope`",
    );
}

#[test]
fn lint_n_plus_one_names_the_field_the_list_and_the_calls() {
    let out = check(
        "per-parent.yaml",
        0,
        "per-parent.graphql:14:3: warning:",
        "User.ordersEach: one call per User under Query.users: 101 calls for a list of 100; add `batch: {key, param}` if the function accepts many keys",
    );
    assert!(
        out.contains("batch: {key: \"id\", param: \"ids\"}"),
        "{out}"
    );
    let (code, _) = run(&["check", "per-parent.yaml", "--deny-warnings"]);
    assert_eq!(code, 1, "warnings fail with --deny-warnings");
}

#[test]
fn lint_unused_upstream() {
    check(
        "unused-upstream.yaml",
        0,
        "unused-upstream.yaml:5:3: warning:",
        "upstream `legacy` is not used by any field",
    );
}

#[test]
fn lint_unreachable_mapped_field() {
    check(
        "unreachable.yaml",
        0,
        "unreachable.graphql:11:3: warning:",
        "Report.rows: no query can reach it: type Report is not reachable",
    );
}

#[test]
fn lint_parent_key_the_type_does_not_declare() {
    let out = check(
        "parent-key.yaml",
        0,
        "parent-key.graphql:7:3: warning:",
        "Order.buyer: {parent.userId} reads `userId`, which type Order does not declare as a field",
    );
    assert!(
        out.contains("hint: fine if the function behind Order answers `userId`"),
        "{out}"
    );
}

#[test]
fn lint_contradicting_limits() {
    let out = check(
        "limits.yaml",
        0,
        "limits.yaml:6:5: warning:",
        "upstreams.openfaas.timeout_ms (20000) is above deadline_ms (10000)",
    );
    check(
        "limits.yaml",
        0,
        "limits.yaml:9:3: warning:",
        "limits.max_held_answer_bytes (1048576) is below twice limits.max_response_bytes (1048576)",
    );
    check(
        "limits.yaml",
        0,
        "limits.yaml:11:3: warning:",
        "limits.max_query_bytes (131072) is above limits.max_body_bytes (65536)",
    );
    assert!(out.contains("0 error(s), 3 warning(s)"), "{out}");
    let (code, _) = run(&["check", "limits.yaml", "--deny-warnings"]);
    assert_eq!(code, 1);
}

const SEED: &str = "query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }";

#[test]
fn explain_the_seed_query_two_waves_two_calls() {
    let (code, out) = run(&[
        "explain",
        "demo.yaml",
        SEED,
        "--variables",
        r#"{"userId": "1"}"#,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "wave 1:\n  user  (Query.user)  openfaas GET /user-profile?id={args.id}\n    1 call"
        ),
        "{out}"
    );
    assert!(out.contains("wave 2:\n  user.orders[]  (User.orders)  openfaas GET /user-orders-batch\n    1 call: batched"), "{out}");
    assert!(out.contains("total: 2 waves, 2 calls at most"), "{out}");
}

/// With an identity step, the identity call is the first wave, alone.
#[test]
fn explain_the_identity_call_first() {
    let plan = explain_json(
        "identity.yaml",
        "{ user(id: \"1\") { id orders { id } } }",
        "50",
    );
    assert_eq!(plan["waves"], 3);
    assert_eq!(plan["calls"], 3);
    assert_eq!(plan["steps"][0]["field"], "identity");
    assert_eq!(plan["steps"][0]["path"], "/function/identity");
    assert_eq!(plan["steps"][1]["wave"], 2);
    // Its upstream is used, though no field calls it.
    let (code, out) = run(&["check", "identity.yaml", "--deny-warnings"]);
    assert_eq!(code, 0, "{out}");
}

/// `explain … --format json`, parsed.
fn explain_json(config: &str, query: &str, list_size: &str) -> serde_json::Value {
    let (code, out) = run(&[
        "explain",
        config,
        query,
        "--list-size",
        list_size,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).expect("JSON")
}

#[test]
fn explain_a_batched_list_two_calls() {
    let plan = explain_json("demo.yaml", "{ users { id orders { id } } }", "50");
    assert_eq!(plan["waves"], 2);
    assert_eq!(plan["calls"], 2);
    let orders = &plan["steps"][1];
    assert_eq!(orders["field"], "User.orders");
    assert_eq!(orders["mode"], "batched");
    assert_eq!(orders["parents"], 50);
    assert_eq!(orders["batch"]["max_keys"], 100);
    // 250 users: three chunks of at most 100 keys.
    let plan = explain_json("demo.yaml", "{ users { id orders { id } } }", "250");
    assert_eq!(plan["calls"], 4);
}

#[test]
fn explain_a_per_parent_field_one_call_per_item() {
    let plan = explain_json(
        "per-parent.yaml",
        "{ users { id ordersEach { id } } }",
        "50",
    );
    assert_eq!(plan["waves"], 2);
    assert_eq!(plan["calls"], 51);
    assert_eq!(plan["steps"][1]["mode"], "per_parent");
    assert_eq!(plan["steps"][1]["path"], "/user-orders?user={parent.id}");
    let (_, out) = run(&[
        "explain",
        "per-parent.yaml",
        "{ users { id ordersEach { id } } }",
        "--list-size",
        "500",
    ]);
    assert!(
        out.contains("501 calls at most, over limits.max_calls (200)"),
        "{out}"
    );
}

#[test]
fn explain_refuses_what_the_filter_refuses() {
    let (code, out) = run(&["explain", "demo.yaml", "{ user(id: 1) { nope } }"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines().any(|l| l
            == "<query>:1:17: error: type `User` does not have a field `nope` [GRAPHQL_VALIDATION_FAILED]"),
        "{out}"
    );
    let (code, out) = run(&["explain", "demo.yaml", SEED]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[BAD_USER_INPUT]"), "{out}");
}

#[test]
fn explain_reads_the_query_from_a_file() {
    let (code, out) = run(&["explain", "demo.yaml", "users.graphql", "--list-size", "10"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("total: 2 waves, 2 calls at most"), "{out}");
}
