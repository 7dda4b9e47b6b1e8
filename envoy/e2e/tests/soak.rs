//! A short soak in `make test`: the same load, judge and rules as `make
//! soak` (`envoy_e2e::soak`), with 3,000 requests after a warm-up of 600,
//! on a sandbox of its own (`<target>/envoy-e2e/soak-test/`). Every request
//! has a client timeout and the whole run a wall-clock cap of 75 s; every
//! process started is stopped by PID.
//!
//! Run: `cargo test -p envoy-e2e --test soak -- --nocapture` (after `make
//! setup wasm functions`) to see the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use envoy_e2e::paths::Paths;
use envoy_e2e::soak::{self, Options};

#[test]
fn a_short_soak_keeps_every_rule() {
    let options = Options {
        requests: 3_000,
        warmup: 600,
        concurrency: 32,
        request_timeout: Duration::from_secs(10),
        max_wall: Duration::from_secs(75),
        users: 1000,
        name: "soak-test".into(),
        ..Options::default()
    };
    let started = Instant::now();
    let report = soak::run(&Paths::discover(), &options)
        .unwrap_or_else(|e| panic!("the soak could not run: {e}"));
    eprintln!("{report}\n(in {:.1} s)", started.elapsed().as_secs_f64());
    assert!(report.failures.is_empty(), "{report}");
}
