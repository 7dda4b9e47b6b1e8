//! The trap filter (tests only, never shipped).
//!
//! Every request gets a local reply `200 ok`, with header
//! `x-trap-filter-served: <n>`, the number of requests this Wasm VM has
//! answered (1 for the first request after the VM was created, so a test can
//! see that a VM was replaced). A request with header `x-trap: 1` makes the
//! filter trap (`unreachable`), which breaks the VM exactly like a panic in
//! the real filter would (the real filter is built with `panic = "abort"`).
//!
//! `envoy/e2e/tests/reload.rs` loads it into Envoy under
//! `failure_policy: FAIL_RELOAD` and `FAIL_CLOSED` to show what each does
//! after a trap. It is compiled for `wasm32` only; natively the crate is
//! empty.

#![cfg(target_arch = "wasm32")]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::Cell;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// The header that makes the filter trap (with value `1`).
const TRAP_HEADER: &str = "x-trap";
/// The reply header that counts the requests this VM answered.
const SERVED_HEADER: &str = "x-trap-filter-served";

#[derive(Default)]
struct Root {
    /// Requests answered by this VM (shared by its streams).
    served: Rc<Cell<u64>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            served: self.served.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    served: Rc<Cell<u64>>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.get_http_request_header(TRAP_HEADER).as_deref() == Some("1") {
            proxy_wasm::hostcalls::log(LogLevel::Warn, "trap-filter: x-trap: 1, trapping").ok();
            // The Wasm `unreachable` instruction: a trap, as a panic is
            // under panic = "abort".
            core::arch::wasm32::unreachable();
        }
        let served = self.served.get().saturating_add(1);
        self.served.set(served);
        self.send_http_response(
            200,
            vec![
                ("content-type", "text/plain"),
                (SERVED_HEADER, &served.to_string()),
            ],
            Some(b"ok"),
        );
        Action::Pause
    }
}
