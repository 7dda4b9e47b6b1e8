//! A small Proxy-Wasm (ABI 0.2.1) host on [`wasmi`] that loads a built
//! filter `.wasm` and drives it the way Envoy 1.40 or Kong 3.9
//! (ngx_wasm_module) would, deterministically and fast, for tests.
//!
//! ```no_run
//! use host_tests::{fixtures, Failure, Plugin, Profile};
//!
//! let module = fixtures::aggregator(); // compiled once per test binary
//! let plugin = Plugin::new(&module, Profile::envoy(["openfaas"]), r#"{"schema": "..."}"#);
//! assert!(plugin.configured());
//! let mut req = plugin.request(&[
//!     (":method", "POST"),
//!     (":path", "/graphql"),
//!     (":authority", "localhost"),
//!     ("content-type", "application/json"),
//! ]);
//! req.body(br#"{"query":"{ a }"}"#);
//! let calls = req.pending_calls();
//! req.respond(calls[0].token, 200, &[("content-type", "application/json")], br#"{"a":1}"#);
//! if let Some(call) = req.pending_calls().first() {
//!     req.fail(call.token, Failure::Timeout);
//! }
//! let reply = req.expect_reply();
//! assert_eq!(reply.status, 200);
//! ```
//!
//! * [`Module`] compiles a `.wasm` once; each [`Plugin`] is a fresh VM
//!   (store + instance) with its root context started and configured.
//! * [`Request`] is one downstream request (one http context); many can be
//!   in flight on one plugin and their calls answered in any order.
//! * [`Profile`] holds what differs between the hosts: dispatch targets,
//!   how bodies arrive, how failed calls look, which WASI functions exist.
//! * ABI misuse (bad pointers, unknown context ids, a second local reply,
//!   request calls after the reply, ...) and traps are recorded as
//!   [`Violation`]s; the next API call (or drop) panics with a report that
//!   includes the filter's recent logs.
//!
//! # How the profiles differ
//!
//! | | Envoy 1.40 ([`Profile::envoy`]) | Kong 3.9 ([`Profile::kong`]) |
//! |---|---|---|
//! | dispatch target | a known cluster, else BadArgument | `host[:port]` / `unix:/path` (nginx `ngx_parse_url`), else InternalFailure + host log "dispatch failed: ..." |
//! | required call headers | `:method`, `:path`, `:authority` (BadArgument) | `:method`, `:path` |
//! | call tokens | 4, 8, 12, ... | 0, 1, 2, ... |
//! | request headers | end_of_stream true only without a body | end_of_stream always false |
//! | request body | per chunk, cumulative while paused; HTTP/1.1: a last empty chunk carries end_of_stream | once, eof = true; never for an empty body |
//! | request header map | gone (BadArgument) once headers returned Continue, and after `continue_stream` | always readable |
//! | failed call | reset: 0 headers, no maps (reads get BadArgument), status 11 "reset"; timeout 504, connect errors 503 | 0 headers; map holds only `:dispatch_status` |
//! | call responses | go to the root context (`proxy_on_http_call_response(root, ...)`); after the request ended: [`Delivery::DeliveredToRoot`] | go to the request; cancelled after its reply ([`Delivery::Dropped`]) |
//! | after the last call | the request stays paused | the filter chain resumes (the request goes upstream) |
//! | second local reply | ignored (violation here) | trap |
//! | plugin configuration buffer | only during `proxy_on_configure` | always |
//! | WASI | every function this host implements | ngx_wasm_module's list (no `sched_yield`, `poll_oneoff`) |
//!
//! Both run `on_http_response_headers`/`on_http_response_body` on a local
//! reply (the filter may change it), then end the stream with `proxy_on_log`,
//! `proxy_on_done`, `proxy_on_delete`. The Envoy rows marked "measured" in the
//! sources were checked against the Envoy 1.40 binary with the fixture filter.

mod abi;
mod error;
pub mod fixtures;
mod imports;
mod module;
mod plugin;
mod profile;
mod request;
mod state;
mod types;
mod vm;
mod wasi;

pub use abi::{Action, LogLevel, Status};
pub use error::HostError;
pub use module::Module;
pub use plugin::{Plugin, PluginBuilder};
pub use profile::{Failure, HostKind, Profile};
pub use request::Request;
pub use types::{
    Call, CallState, Delivery, LocalReply, LogLine, Metric, MetricKind, ReplySource, Violation,
};

/// The header-map wire format, for tests that build raw ABI buffers.
pub mod wire {
    pub use crate::abi::{decode_pairs, encode_pairs, RawPairs};
}
