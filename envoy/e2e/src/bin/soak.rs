//! `make soak`: real Envoy with the filter and the mock functions on
//! loopback under a bounded, mixed load (valid queries, every bad input of
//! the README's faults table, failing, hanging and dripping functions),
//! judged request by request, with Envoy's RSS after the warm-up, at the
//! middle and at the end. See [`envoy_e2e::soak`] for the rules.
//!
//! Environment: `SOAK_REQUESTS` (default 100000), `SOAK_WARMUP` (default a
//! tenth of the requests, 400 to 10000), `SOAK_CONCURRENCY` (32),
//! `SOAK_TIMEOUT_MS` (each request, 10000), `SOAK_MAX_SECONDS` (the whole
//! run, 900), `SOAK_USERS` (1000); `ENVOY`, `MOCK_FUNCTIONS`,
//! `GRAPHQL_AGGREGATOR_WASM` as for the end-to-end tests. Exits 1 when a
//! rule is broken, 2 when the soak could not run.

use std::process::ExitCode;

use envoy_e2e::paths::Paths;
use envoy_e2e::soak::{self, Options};

fn main() -> ExitCode {
    let options = match Options::default().from_env() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    match soak::run(&Paths::discover(), &options) {
        Ok(report) => {
            println!("{report}");
            if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("soak: could not run: {e}");
            ExitCode::from(2)
        }
    }
}
