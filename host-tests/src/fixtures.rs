//! Where the modules under test come from.
//!
//! * [`aggregator`]: the built graphql-aggregator filter, from
//!   `GRAPHQL_AGGREGATOR_WASM` or `target/wasm32-wasip1/wasm/graphql_aggregator.wasm`.
//! * [`test_filter`]: the tiny fixture filter in `host-tests/fixtures/test-filter`,
//!   built on first use into `target/host-tests-fixtures` (never committed).
//!
//! Both are compiled once per test binary.

use crate::module::Module;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The environment variable that overrides the aggregator's path.
pub const AGGREGATOR_ENV: &str = "GRAPHQL_AGGREGATOR_WASM";

/// The workspace root (the parent of `host-tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The workspace's target directory (`CARGO_TARGET_DIR` when set).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// Path of the built aggregator `.wasm`.
///
/// # Panics
/// When the file does not exist, with the command that builds it.
pub fn aggregator_wasm() -> PathBuf {
    let path = match std::env::var_os(AGGREGATOR_ENV) {
        Some(p) => PathBuf::from(p),
        None => target_dir().join("wasm32-wasip1/wasm/graphql_aggregator.wasm"),
    };
    assert!(
        path.is_file(),
        "host-tests: no filter at {} — run `make wasm` first \
         (cargo build -p graphql-aggregator --target wasm32-wasip1 --profile wasm), \
         or point {AGGREGATOR_ENV} at a built .wasm",
        path.display()
    );
    path
}

/// The aggregator, compiled once per test binary.
pub fn aggregator() -> Module {
    let path = aggregator_wasm();
    match Module::load_cached(&path) {
        Ok(module) => module,
        Err(e) => panic!("host-tests: cannot load {}: {e}", path.display()),
    }
}

/// The aggregator compiled with fuel metering (see
/// [`Module::load_cached_metered`]), once per test binary.
pub fn aggregator_metered() -> Module {
    let path = aggregator_wasm();
    match Module::load_cached_metered(&path) {
        Ok(module) => module,
        Err(e) => panic!("host-tests: cannot load {}: {e}", path.display()),
    }
}

/// Path of the fixture filter's `.wasm`, building it on first use.
///
/// # Panics
/// When the build fails (the message has cargo's output).
pub fn test_filter_wasm() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build_test_filter) {
        Ok(path) => path.clone(),
        Err(e) => panic!("host-tests: cannot build the fixture filter:\n{e}"),
    }
}

/// The fixture filter, compiled once per test binary.
pub fn test_filter() -> Module {
    let path = test_filter_wasm();
    match Module::load_cached(&path) {
        Ok(module) => module,
        Err(e) => panic!("host-tests: cannot load {}: {e}", path.display()),
    }
}

fn build_test_filter() -> Result<PathBuf, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/test-filter/Cargo.toml");
    let target = target_dir().join("host-tests-fixtures");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = || {
        Command::new(&cargo)
            .arg("build")
            .arg("--release")
            .args(["--target", "wasm32-wasip1"])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))
    };
    let mut output = build()?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() && stderr.contains("target may not be installed") {
        let added = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip1"])
            .status();
        if added.is_ok_and(|s| s.success()) {
            output = build()?;
        }
    }
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let wasm = target.join("wasm32-wasip1/release/host_tests_fixture_filter.wasm");
    if wasm.is_file() {
        Ok(wasm)
    } else {
        Err(format!("cargo succeeded but {} is missing", wasm.display()))
    }
}
