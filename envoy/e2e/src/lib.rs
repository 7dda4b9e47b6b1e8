//! The sandbox behind the Envoy end-to-end tests: the mock functions and one
//! real Envoy with several listeners, each with its own filter configuration.
//!
//! The tests themselves live in `tests/e2e.rs` (a custom libtest-mimic
//! harness); this library starts and stops the processes, generates Envoy's
//! configuration from the demo's `envoy/envoy.yaml`, and talks HTTP.

pub mod config;
pub mod http;
pub mod paths;
pub mod process;
pub mod sandbox;

pub use sandbox::Sandbox;
pub mod bench_config;
pub mod soak;
pub mod solo;
pub mod trials;
pub mod workers;
