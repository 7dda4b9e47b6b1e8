//! The host's side of one VM: everything the host functions read and write.
//!
//! It is the `wasmi::Store` data, so host functions reach it through
//! `Caller::data_mut`, and the driver (`plugin.rs`, `request.rs`) through
//! `Store::data_mut` between calls into the VM.

use crate::abi::LogLevel;
use crate::profile::{HostKind, Profile};
use crate::types::{Call, CallState, LocalReply, LogLine, Metric, Violation};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use wasmi::{Caller, Func, Memory, StoreLimits, Val};

/// An HTTP call the host knows about.
#[derive(Debug, Clone)]
pub(crate) struct CallRecord {
    pub call: Call,
    pub state: CallState,
}

/// The call response being delivered (only during `proxy_on_http_call_response`).
#[derive(Debug, Clone)]
pub(crate) struct CallResponse {
    /// False for Envoy's `onHttpCallFailure`: no response message at all, so
    /// the call-response maps and body do not exist (value reads get BadArgument).
    pub has_message: bool,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    pub status: (u32, String),
}

/// Where a request's context is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Created; headers not delivered yet.
    New,
    /// Headers delivered; the request is under way.
    Open,
    /// `proxy_on_done` returned false: waiting for `proxy_done`.
    AwaitingDone,
    /// `proxy_on_delete` ran.
    Deleted,
}

/// One downstream request's state (one http context).
#[derive(Debug, Clone)]
pub(crate) struct HttpCtx {
    pub phase: Phase,
    /// The request headers (mutable by the filter while visible).
    pub headers: Vec<(String, String)>,
    /// Envoy: `request_headers_` is non-null (until headers return Continue
    /// or `continue_stream` runs). Kong: always true.
    pub headers_visible: bool,
    /// Body the filter can read: Envoy's buffered data since the last
    /// Continue; Kong's whole body once read.
    pub body: Vec<u8>,
    /// Kong: the body has been read (before that the body buffer is NotFound).
    pub body_read: bool,
    /// Body received from the client but not shown to the filter yet.
    pub pending_body: Vec<u8>,
    /// The client finished sending (end_of_stream seen).
    pub client_done: bool,
    /// Whether the filter has seen the end of the stream.
    pub eos_delivered: bool,
    /// Headers returned Pause: Envoy's stop-all (body withheld until continue).
    pub stopped_in_headers: bool,
    /// What went to the upstream (body bytes let through).
    pub forwarded_body: Vec<u8>,
    /// The whole request was let through to the upstream.
    pub forwarded: bool,
    /// `send_local_response` during the current VM call, applied after it.
    pub stashed_reply: Option<LocalReply>,
    /// The reply the client got.
    pub reply: Option<LocalReply>,
    /// `continue_stream(HttpRequest)` during the current VM call.
    pub continue_requested: bool,
    /// `close_stream(HttpRequest)`: the stream was reset.
    pub reset: bool,
    /// Response headers: Kong lets the filter set them before any response
    /// (they go out with it); during the response phase they are the
    /// response's headers, `:status` included.
    pub response_headers: Vec<(String, String)>,
    /// The response body during `proxy_on_response_body`.
    pub response_body: Vec<u8>,
    /// Envoy: `response_headers_` is non-null (only inside `on_response_headers`).
    pub response_headers_visible: bool,
    /// Inside `proxy_on_response_body`.
    pub in_response_body: bool,
    /// Number of `proxy_on_request_body` calls.
    pub body_callbacks: usize,
}

impl HttpCtx {
    pub fn new(headers: Vec<(String, String)>) -> HttpCtx {
        HttpCtx {
            phase: Phase::New,
            headers,
            headers_visible: false,
            body: Vec::new(),
            body_read: false,
            pending_body: Vec::new(),
            client_done: false,
            eos_delivered: false,
            stopped_in_headers: false,
            forwarded_body: Vec::new(),
            forwarded: false,
            stashed_reply: None,
            reply: None,
            continue_requested: false,
            reset: false,
            response_headers: Vec::new(),
            response_body: Vec::new(),
            response_headers_visible: false,
            in_response_body: false,
            body_callbacks: 0,
        }
    }

    /// The stream is over for the filter: replied, reset or deleted.
    pub fn ended(&self) -> bool {
        self.reply.is_some() || self.reset || self.phase == Phase::Deleted
    }
}

/// What the effective context is.
pub(crate) enum Effective {
    Root,
    Http(u32),
    /// A context id that is not (or no longer) alive.
    Gone(u32),
}

/// The host state of one VM.
pub(crate) struct HostState {
    pub profile: Profile,
    pub root_id: u32,
    pub next_context_id: u32,
    /// The context host calls act on (`proxy_set_effective_context` changes it).
    pub effective: u32,
    /// The callback running now, for messages.
    pub callback: Option<&'static str>,
    /// Kong: the context the filter last asked to act for in this
    /// callback (`proxy_set_effective_context`, which does nothing there);
    /// the root's id when it asked for none.
    pub kong_wished_context: u32,
    /// `proxy_on_configure` is running (Envoy shows the plugin configuration only then).
    pub in_configure: bool,
    pub http: BTreeMap<u32, HttpCtx>,
    pub calls: BTreeMap<u32, CallRecord>,
    pub next_token: u32,
    pub token_step: u32,
    pub call_response: Option<CallResponse>,
    /// Envoy keeps the root context's status code from the last failed call
    /// (only the message is cleared): later successes report it too (measured).
    pub sticky_status_code: u32,
    pub vm_config: Vec<u8>,
    pub plugin_config: Vec<u8>,
    pub logs: Vec<LogLine>,
    pub host_logs: Vec<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub violations: Vec<Violation>,
    pub hints: Vec<String>,
    /// Wall clock, since the Unix epoch.
    pub wall: Duration,
    /// Monotonic clock.
    pub monotonic: Duration,
    pub rng: u64,
    pub tick_period: Option<Duration>,
    pub next_tick: Option<Duration>,
    pub shared: BTreeMap<String, (Vec<u8>, u32)>,
    pub queues: Vec<(String, VecDeque<Vec<u8>>)>,
    pub metrics: Vec<Metric>,
    pub properties: BTreeMap<Vec<u8>, Vec<u8>>,
    pub memory: Option<Memory>,
    pub malloc: Option<Func>,
    /// Contexts that called `proxy_done` during the current VM call.
    pub done_called: BTreeSet<u32>,
    /// How far the linear memory may grow (unlimited unless the plugin
    /// was started with a cap).
    pub limits: StoreLimits,
}

impl HostState {
    pub fn new(profile: Profile, vm_config: Vec<u8>, plugin_config: Vec<u8>) -> HostState {
        let wall = profile.start_time();
        let rng = profile.seed();
        let (first_token, profile_step) = profile.call_tokens();
        HostState {
            profile,
            root_id: 1,
            next_context_id: 2,
            effective: 1,
            kong_wished_context: 1,
            callback: None,
            in_configure: false,
            http: BTreeMap::new(),
            calls: BTreeMap::new(),
            next_token: first_token,
            token_step: profile_step,
            call_response: None,
            sticky_status_code: 0,
            vm_config,
            plugin_config,
            logs: Vec::new(),
            host_logs: Vec::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            violations: Vec::new(),
            hints: Vec::new(),
            wall,
            monotonic: Duration::from_secs(1),
            rng,
            tick_period: None,
            next_tick: None,
            shared: BTreeMap::new(),
            queues: Vec::new(),
            metrics: Vec::new(),
            properties: BTreeMap::new(),
            memory: None,
            malloc: None,
            done_called: BTreeSet::new(),
            limits: StoreLimits::default(),
        }
    }

    pub fn kind(&self) -> HostKind {
        self.profile.kind()
    }

    pub fn effective(&self) -> Effective {
        if self.effective == self.root_id {
            Effective::Root
        } else if self
            .http
            .get(&self.effective)
            .is_some_and(|c| c.phase != Phase::Deleted)
        {
            Effective::Http(self.effective)
        } else {
            Effective::Gone(self.effective)
        }
    }

    /// Records an ABI misuse in host call `call`.
    pub fn violation(&mut self, call: &str, message: impl Into<String>) {
        let context_id = Some(self.effective);
        let message = match self.callback {
            Some(cb) => format!("{} (during {cb})", message.into()),
            None => message.into(),
        };
        self.violations.push(Violation {
            call: call.to_string(),
            context_id,
            message,
        });
    }

    /// Remembers an explanation to show if the test later fails.
    pub fn hint(&mut self, message: impl Into<String>) {
        let message = message.into();
        if !self.hints.contains(&message) {
            self.hints.push(message);
        }
    }

    /// Next value of the deterministic random stream (splitmix64).
    pub fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn log(&mut self, level: LogLevel, message: String) {
        let context_id = self.effective;
        self.logs.push(LogLine {
            level,
            message,
            context_id,
        });
    }
}

/// Memory access for host functions. Every pointer from the guest is
/// checked; `None`/`false` means out of bounds.
pub(crate) mod mem {
    use super::*;

    fn range(ptr: i32, len: i32) -> Option<(usize, usize)> {
        let start = ptr as u32 as usize;
        let end = start.checked_add(len as u32 as usize)?;
        Some((start, end))
    }

    /// Copies `len` bytes at `ptr` out of the guest.
    pub fn read(caller: &Caller<'_, HostState>, ptr: i32, len: i32) -> Option<Vec<u8>> {
        let memory = caller.data().memory?;
        let (start, end) = range(ptr, len)?;
        memory.data(caller).get(start..end).map(<[u8]>::to_vec)
    }

    /// Reads a little-endian `u32` at `ptr`.
    pub fn read_u32(caller: &Caller<'_, HostState>, ptr: i32) -> Option<u32> {
        let b = read(caller, ptr, 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Writes `bytes` at `ptr`.
    pub fn write(caller: &mut Caller<'_, HostState>, ptr: i32, bytes: &[u8]) -> bool {
        let Some(memory) = caller.data().memory else {
            return false;
        };
        let Some((start, end)) = range(ptr, bytes.len() as i32) else {
            return false;
        };
        match memory.data_mut(caller).get_mut(start..end) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    /// Writes a little-endian `u32` at `ptr`.
    pub fn write_u32(caller: &mut Caller<'_, HostState>, ptr: i32, value: u32) -> bool {
        write(caller, ptr, &value.to_le_bytes())
    }

    /// Writes a little-endian `u64` at `ptr`.
    pub fn write_u64(caller: &mut Caller<'_, HostState>, ptr: i32, value: u64) -> bool {
        write(caller, ptr, &value.to_le_bytes())
    }

    /// Allocates `len` bytes in the guest with its `proxy_on_memory_allocate`/`malloc`.
    pub fn alloc(caller: &mut Caller<'_, HostState>, len: usize) -> Result<u32, wasmi::Error> {
        let malloc = caller.data().malloc.ok_or_else(|| {
            wasmi::Error::new("the module exports neither proxy_on_memory_allocate nor malloc")
        })?;
        let mut out = [Val::I32(0)];
        malloc.call(&mut *caller, &[Val::I32(len as i32)], &mut out)?;
        match out[0] {
            Val::I32(p) if p != 0 => Ok(p as u32),
            _ => Err(wasmi::Error::new(format!(
                "guest allocator returned null for {len} bytes"
            ))),
        }
    }

    /// The proxy-wasm-cpp-host `copyToPointerSize`: allocate in the guest, copy
    /// `data` there and store pointer and size at `ptr_ptr`/`size_ptr`. An
    /// empty value is returned as a null pointer and size 0.
    /// `Ok(false)` means a return pointer was out of bounds.
    pub fn copy_out(
        caller: &mut Caller<'_, HostState>,
        data: &[u8],
        ptr_ptr: i32,
        size_ptr: i32,
    ) -> Result<bool, wasmi::Error> {
        let mut pointer = 0u32;
        if !data.is_empty() {
            pointer = alloc(caller, data.len())?;
            if !write(caller, pointer as i32, data) {
                return Err(wasmi::Error::new(
                    "guest allocator returned memory out of bounds",
                ));
            }
        }
        Ok(write_u32(caller, ptr_ptr, pointer) && write_u32(caller, size_ptr, data.len() as u32))
    }
}
