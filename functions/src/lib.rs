#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//! The mock functions' data and answers, without the HTTP server: what
//! `GET /user-profile?id=1` and the others return, for tests that play the
//! functions in-process (the engine's tests, host-tests).
//!
//! The `mock-functions` binary (feature `server`, on by default) serves the
//! same answers over HTTP.

pub mod answer;
pub mod data;
pub mod function;

pub use answer::{
    answer, answer_get, answer_path, parse_query, sleep_ms, Answer, FunctionRequest, OrderBook,
};
pub use data::DataSet;
pub use function::Function;
