#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
//! The mock functions' data and answers, without the HTTP server: what
//! `GET /user-profile?id=1` and the others return, for tests that play the
//! functions in-process (the engine's tests, host-tests).
//!
//! The `mock-functions` binary (feature `server`, on by default) serves the
//! same answers over HTTP.
//!
//! Faults, for tests of the gateway's timeouts and deadlines (the timing is
//! the server's; in-process, [`answer`] gives the content at once):
//!
//! - `GET /drip?id=ID&ms=N`: `user-profile`'s answer for `ID` (default `1`),
//!   a valid JSON object: the status and headers at once, then the body one
//!   byte per frame, N ms before each byte (default 200, [`drip_ms`]; once
//!   the pauses reach 60 s, the rest at once, [`drip_pause`]). The call
//!   stays in `/_stats`' `in_flight` until the last byte or until the
//!   client goes away.
//! - `GET /hang?ms=N`: reads the request and sends nothing until the client
//!   goes away (then the call ends, and leaves `in_flight`); after N ms
//!   (default and at most 60,000, [`hang_ms`]) it gives up with `504
//!   {"hung": N}`.
//! - `GET /sleep?ms=N` answers after N ms; `GET /status?code=N` answers
//!   with status N.
//!
//! Identity and headers for the client:
//!
//! - `GET /identity`: the credential is the cookie `session=TOKEN` (in a
//!   `cookie` header of `name=value` pairs separated by `; `), or else
//!   `authorization: Bearer TOKEN` ([`credential`]). `good-N`, N a user of
//!   the data set, is `200 {"uid": "u-N", "name": "<user N's name>"}`;
//!   `slow-N` the same after 2,000 ms ([`identity_delay_ms`]); `broken` is
//!   `500 {"error": "identity store down"}`; any other token, or none, is
//!   `401 {"error": "invalid credential"}`.
//! - `GET /cookie-profile?id=ID`: `user-profile`'s answer for `ID`; a 200
//!   adds `set-cookie: seen-ID=1; Path=/; HttpOnly` and
//!   `set-cookie: last=ID; Path=/` (two lines), and the server adds to
//!   every answer `x-trace-id: fn-N` and `x-ratelimit-remaining: 1000 - N`
//!   for its N-th call since `/_reset` ([`CallCounter`]).

pub mod answer;
pub mod data;
pub mod function;

pub use answer::{
    answer, answer_get, answer_path, credential, drip_ms, drip_pause, hang_ms, identity_delay_ms,
    parse_query, sleep_ms, Answer, CallCounter, FunctionRequest, OrderBook,
};
pub use data::DataSet;
pub use function::Function;
