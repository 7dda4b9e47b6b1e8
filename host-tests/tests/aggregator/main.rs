//! The built graphql-aggregator `.wasm`, driven through the Proxy-Wasm ABI as
//! Envoy 1.40 and Kong 3.9 drive it: every scenario runs once per host
//! profile (`<scenario>::envoy`, `<scenario>::kong`).
//!
//! The functions are played in-process by `mock_functions::answer_get`, the
//! same answers the real mock functions serve.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// Defines a scenario as a module with one test per host profile.
macro_rules! on_both_hosts {
    ($(#[doc = $doc:literal])* fn $name:ident($host:ident: Host) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn scenario($host: Host) $body

            #[test]
            fn envoy() {
                scenario(Host::Envoy)
            }

            #[test]
            fn kong() {
                scenario(Host::Kong)
            }
        }
    };
}

mod hosts;
mod play;

mod amplification;
mod bodies;
mod coalescing;
mod configuration;
mod failures;
mod faults;
mod graphiql;
mod identity;
mod load;
mod observability;
mod orders;
mod persisted;
