//! The Proxy-Wasm side: two sequential calls, one constant local reply.
//!
//! Host calls whose status depends on data the filter does not control go
//! through [`host`], which reports every status instead of trapping (the
//! SDK's own wrappers panic on statuses they do not expect).

#![allow(unsafe_code)]

use crate::{user_id, Settings, REPLY};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default)]
struct Root {
    settings: Rc<Settings>,
    /// Numbers the request ids made up for clients that sent none.
    next_request: Rc<Cell<u64>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config =
            host::buffer(BufferType::PluginConfiguration, 0, usize::MAX).unwrap_or_default();
        self.settings = Rc::new(Settings::parse(&config));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            settings: self.settings.clone(),
            next_request: self.next_request.clone(),
            request_id: String::new(),
            user: String::new(),
            stage: Stage::Headers,
            token: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the request headers.
    Headers,
    /// Not a POST to the GraphQL path: left alone.
    Ignored,
    /// Reading the body.
    Body,
    /// The profile call is in flight.
    Profile,
    /// The orders call is in flight.
    Orders,
    /// Replied.
    Done,
}

struct Stream {
    settings: Rc<Settings>,
    next_request: Rc<Cell<u64>>,
    request_id: String,
    user: String,
    stage: Stage,
    token: Option<u32>,
}

impl Context for Stream {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _: usize,
    ) {
        if self.token != Some(token) {
            return;
        }
        self.token = None;
        // A failed call has no headers (Envoy: a reset or a local timeout).
        let status = if num_headers == 0 {
            None
        } else {
            host::header_value(MapType::HttpCallResponseHeaders, ":status")
                .ok()
                .flatten()
        };
        // Read the answer, as the real filter must.
        let body = host::buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default();
        if status.as_deref() != Some("200") || body.is_empty() {
            self.reply(502, r#"{"errors":[{"message":"a call failed"}]}"#);
            return;
        }
        match self.stage {
            Stage::Profile => {
                let path = self.settings.orders_path(&self.user);
                self.dispatch(Stage::Orders, &path);
            }
            Stage::Orders => self.reply(200, REPLY),
            _ => {}
        }
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let header = |name: &str| {
            host::header_value(MapType::HttpRequestHeaders, name)
                .ok()
                .flatten()
        };
        let method = header(":method").unwrap_or_default();
        let path = header(":path").unwrap_or_default();
        if method != "POST" || !self.settings.is_graphql_path(&path) {
            self.stage = Stage::Ignored;
            return Action::Continue;
        }
        self.request_id = header("x-request-id").unwrap_or_else(|| {
            let n = self.next_request.get().wrapping_add(1);
            self.next_request.set(n);
            format!("ceiling-{n:x}")
        });
        if end_of_stream {
            self.reply(400, r#"{"errors":[{"message":"no body"}]}"#);
            return Action::Pause;
        }
        self.stage = Stage::Body;
        // Continue: Envoy turns a Pause here into stop-all, and the body
        // would never come. The buffer filter behind holds the headers.
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.stage {
            Stage::Ignored => return Action::Continue,
            Stage::Body => {}
            _ => return Action::Pause,
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = host::buffer(BufferType::HttpRequestBody, 0, body_size).unwrap_or_default();
        match user_id(&body) {
            Some(user) => {
                self.user = user.to_string();
                let path = self.settings.profile_path(user);
                self.dispatch(Stage::Profile, &path);
            }
            None => self.reply(400, r#"{"errors":[{"message":"no userId variable"}]}"#),
        }
        Action::Pause
    }
}

impl Stream {
    /// Dispatches `GET path` with the real filter's headers; a refused call
    /// ends the request with a 502.
    fn dispatch(&mut self, stage: Stage, path: &str) {
        let settings = self.settings.clone();
        let deadline = settings.timeout_ms.to_string();
        let headers = vec![
            (":method", "GET"),
            (":path", path),
            (":authority", settings.authority.as_str()),
            ("accept", "application/json"),
            ("x-request-deadline-ms", deadline.as_str()),
            ("x-request-id", self.request_id.as_str()),
        ];
        let dispatched = proxy_wasm::hostcalls::dispatch_http_call(
            &settings.cluster,
            headers,
            None,
            Vec::new(),
            Duration::from_millis(settings.timeout_ms),
        );
        match dispatched {
            Ok(token) => {
                self.token = Some(token);
                self.stage = stage;
            }
            Err(_) => self.reply(502, r#"{"errors":[{"message":"the call was refused"}]}"#),
        }
    }

    fn reply(&mut self, status: u16, body: &str) {
        if self.stage == Stage::Done {
            return;
        }
        self.stage = Stage::Done;
        // A refused reply (the stream is gone) is nothing to act on.
        let _ = host::send_local_response(
            status,
            &[
                ("content-type", "application/json"),
                ("cache-control", "no-store"),
            ],
            body.as_bytes(),
        );
    }
}

/// Host calls that report failure instead of trapping.
mod host {
    use proxy_wasm::types::{BufferType, MapType};
    use std::ptr::null_mut;

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            value_data: *mut *mut u8,
            value_size: *mut usize,
        ) -> u32;
        fn proxy_get_buffer_bytes(
            buffer_type: u32,
            start: usize,
            max_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        fn proxy_send_local_response(
            status_code: u32,
            details_data: *const u8,
            details_size: usize,
            body_data: *const u8,
            body_size: usize,
            headers_data: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
    }

    const OK: u32 = 0;
    const NOT_FOUND: u32 = 1;

    /// Takes ownership of memory the host filled through the SDK's allocator.
    ///
    /// # Safety
    /// `data` must be null or a pointer the host got from
    /// `proxy_on_memory_allocate(size)`.
    unsafe fn owned(data: *mut u8, size: usize) -> Vec<u8> {
        if data.is_null() || size == 0 {
            return Vec::new();
        }
        // SAFETY: the SDK's allocator made a Vec of exactly this capacity.
        unsafe { Vec::from_raw_parts(data, size, size) }
    }

    /// One header's value (lossy UTF-8); `Ok(None)` when absent.
    pub fn header_value(map: MapType, name: &str) -> Result<Option<String>, u32> {
        let mut data = null_mut();
        let mut size = 0;
        // SAFETY: the key is a live slice and the out-pointers are valid for writes.
        let status = unsafe {
            proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size)
        };
        // SAFETY: the host wrote nothing or a buffer it allocated.
        let bytes = unsafe { owned(data, size) };
        match status {
            OK => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            NOT_FOUND => Ok(None),
            other => Err(other),
        }
    }

    /// Bytes of a buffer (request body, call answer, configuration).
    pub fn buffer(buffer: BufferType, start: usize, max_size: usize) -> Result<Vec<u8>, u32> {
        let mut data = null_mut();
        let mut size = 0;
        // SAFETY: the out-pointers are valid for writes.
        let status =
            unsafe { proxy_get_buffer_bytes(buffer as u32, start, max_size, &mut data, &mut size) };
        // SAFETY: as above.
        let bytes = unsafe { owned(data, size) };
        match status {
            OK => Ok(bytes),
            NOT_FOUND => Ok(Vec::new()),
            other => Err(other),
        }
    }

    /// Sends a local reply.
    pub fn send_local_response(
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), u32> {
        let map = serialize_map(headers);
        let details = "bench_ceiling";
        // SAFETY: every pointer/length pair describes a live slice.
        let result = unsafe {
            proxy_send_local_response(
                u32::from(status),
                details.as_ptr(),
                details.len(),
                body.as_ptr(),
                body.len(),
                map.as_ptr(),
                map.len(),
                -1,
            )
        };
        if result == OK {
            Ok(())
        } else {
            Err(result)
        }
    }

    /// Proxy-Wasm header map encoding: count, (name size, value size)
    /// pairs, then the NUL-terminated names and values.
    fn serialize_map(map: &[(&str, &str)]) -> Vec<u8> {
        let size = |n: usize| u32::try_from(n).unwrap_or(0).to_le_bytes();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&size(map.len()));
        for (name, value) in map {
            bytes.extend_from_slice(&size(name.len()));
            bytes.extend_from_slice(&size(value.len()));
        }
        for (name, value) in map {
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(value.as_bytes());
            bytes.push(0);
        }
        bytes
    }
}
