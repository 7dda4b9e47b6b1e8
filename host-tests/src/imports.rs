//! The `env` module: every `proxy_*` host function the Rust `proxy-wasm`
//! 0.2.5 SDK imports (ABI 0.2.1), with the semantics of the profile's host.
//!
//! Rules that hold for all of them:
//! * every guest pointer is bounds-checked; a bad one records a
//!   [`crate::Violation`] and returns `InvalidMemoryAccess`;
//! * a call on a context that is not alive, an out-of-range enum value, a
//!   second local reply, or a request call after the request's reply is a
//!   violation too (the test panics at the next API call);
//! * where the real hosts answer with a status instead (e.g. Envoy's
//!   BadArgument for request headers after `on_http_request_headers`
//!   returned Continue), the host answers the same and leaves a hint that is
//!   printed if the filter then traps.

use crate::abi::{decode_pairs, encode_pairs, BufferType, LogLevel, MapType, Status, StreamType};
use crate::profile::HostKind;
use crate::state::{mem, CallRecord, Effective, HostState};
use crate::types::{find_header, Call, CallState, LocalReply, Metric, MetricKind, ReplySource};
use std::time::Duration;
use wasmi::{Caller, Error, Linker};

type Ctx<'a> = Caller<'a, HostState>;
type R = Result<i32, Error>;

/// Every `env` function this host defines.
pub(crate) const ENV_FUNCTIONS: &[&str] = &[
    "proxy_log",
    "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_add_header_map_value",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_send_local_response",
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_status",
    "proxy_set_effective_context",
    "proxy_call_foreign_function",
    "proxy_done",
    "proxy_define_metric",
    "proxy_get_metric",
    "proxy_record_metric",
    "proxy_increment_metric",
];

/// Registers the `env` functions on `linker`.
pub(crate) fn define(linker: &mut Linker<HostState>) -> Result<(), wasmi::errors::LinkerError> {
    linker.func_wrap("env", "proxy_log", proxy_log)?;
    linker.func_wrap("env", "proxy_get_log_level", proxy_get_log_level)?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        proxy_get_current_time_nanoseconds,
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        proxy_set_tick_period_milliseconds,
    )?;
    linker.func_wrap("env", "proxy_get_buffer_bytes", proxy_get_buffer_bytes)?;
    linker.func_wrap("env", "proxy_set_buffer_bytes", proxy_set_buffer_bytes)?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        proxy_get_header_map_pairs,
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        proxy_set_header_map_pairs,
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        proxy_get_header_map_value,
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        proxy_remove_header_map_value,
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        proxy_replace_header_map_value,
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        proxy_add_header_map_value,
    )?;
    linker.func_wrap("env", "proxy_get_property", proxy_get_property)?;
    linker.func_wrap("env", "proxy_set_property", proxy_set_property)?;
    linker.func_wrap("env", "proxy_get_shared_data", proxy_get_shared_data)?;
    linker.func_wrap("env", "proxy_set_shared_data", proxy_set_shared_data)?;
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        proxy_register_shared_queue,
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        proxy_resolve_shared_queue,
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        proxy_dequeue_shared_queue,
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        proxy_enqueue_shared_queue,
    )?;
    linker.func_wrap("env", "proxy_continue_stream", proxy_continue_stream)?;
    linker.func_wrap("env", "proxy_close_stream", proxy_close_stream)?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        proxy_send_local_response,
    )?;
    linker.func_wrap("env", "proxy_http_call", proxy_http_call)?;
    linker.func_wrap("env", "proxy_grpc_call", proxy_grpc_call)?;
    linker.func_wrap("env", "proxy_grpc_stream", proxy_grpc_stream)?;
    linker.func_wrap("env", "proxy_grpc_send", proxy_grpc_send)?;
    linker.func_wrap("env", "proxy_grpc_cancel", proxy_grpc_cancel)?;
    linker.func_wrap("env", "proxy_grpc_close", proxy_grpc_close)?;
    linker.func_wrap("env", "proxy_get_status", proxy_get_status)?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        proxy_set_effective_context,
    )?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        proxy_call_foreign_function,
    )?;
    linker.func_wrap("env", "proxy_done", proxy_done)?;
    linker.func_wrap("env", "proxy_define_metric", proxy_define_metric)?;
    linker.func_wrap("env", "proxy_get_metric", proxy_get_metric)?;
    linker.func_wrap("env", "proxy_record_metric", proxy_record_metric)?;
    linker.func_wrap("env", "proxy_increment_metric", proxy_increment_metric)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// helpers

fn st(status: Status) -> R {
    Ok(status.code())
}

/// Records a violation and returns `status`.
fn misuse(caller: &mut Ctx<'_>, call: &str, message: impl Into<String>, status: Status) -> R {
    caller.data_mut().violation(call, message);
    st(status)
}

/// Reads guest memory or records an out-of-bounds violation.
fn read(caller: &mut Ctx<'_>, call: &str, what: &str, ptr: i32, len: i32) -> Result<Vec<u8>, i32> {
    match mem::read(caller, ptr, len) {
        Some(bytes) => Ok(bytes),
        None => {
            let size = caller
                .data()
                .memory
                .map(|m| m.data_size(&*caller))
                .unwrap_or(0);
            caller.data_mut().violation(
                call,
                format!(
                    "{what}: pointer {:#x} + {} bytes is outside the VM's {size}-byte memory",
                    ptr as u32, len as u32
                ),
            );
            Err(Status::InvalidMemoryAccess.code())
        }
    }
}

fn read_str(
    caller: &mut Ctx<'_>,
    call: &str,
    what: &str,
    ptr: i32,
    len: i32,
) -> Result<String, i32> {
    read(caller, call, what, ptr, len).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Writes a return value or records an out-of-bounds violation.
fn ret_u32(caller: &mut Ctx<'_>, call: &str, ptr: i32, value: u32) -> Result<(), i32> {
    if mem::write_u32(caller, ptr, value) {
        Ok(())
    } else {
        caller.data_mut().violation(
            call,
            format!(
                "return pointer {:#x} is outside the VM's memory",
                ptr as u32
            ),
        );
        Err(Status::InvalidMemoryAccess.code())
    }
}

/// `copyToPointerSize` or an out-of-bounds violation.
fn ret_bytes(caller: &mut Ctx<'_>, call: &str, data: &[u8], ptr_ptr: i32, size_ptr: i32) -> R {
    if mem::copy_out(caller, data, ptr_ptr, size_ptr)? {
        st(Status::Ok)
    } else {
        misuse(
            caller,
            call,
            format!(
                "return pointers {:#x}/{:#x} are outside the VM's memory",
                ptr_ptr as u32, size_ptr as u32
            ),
            Status::InvalidMemoryAccess,
        )
    }
}

macro_rules! tryv {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return Ok(code),
        }
    };
}

fn pairs_to_strings(pairs: crate::abi::RawPairs) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect()
}

fn read_pairs(
    caller: &mut Ctx<'_>,
    call: &str,
    what: &str,
    ptr: i32,
    len: i32,
) -> Result<Vec<(String, String)>, i32> {
    let bytes = read(caller, call, what, ptr, len)?;
    match decode_pairs(&bytes) {
        Ok(pairs) => Ok(pairs_to_strings(pairs)),
        Err(why) => {
            caller
                .data_mut()
                .violation(call, format!("{what}: malformed header map: {why}"));
            Err(Status::BadArgument.code())
        }
    }
}

/// The effective context as a live request, for calls that need one.
/// `Err` carries the status to return (a violation is recorded for a dead context).
fn live_request(caller: &mut Ctx<'_>, call: &str) -> Result<Option<u32>, i32> {
    match caller.data().effective() {
        Effective::Http(id) => Ok(Some(id)),
        Effective::Root => Ok(None),
        Effective::Gone(id) => {
            caller.data_mut().violation(
                call,
                format!("host call for context {id}, which does not exist (never created, or already deleted)"),
            );
            Err(Status::BadArgument.code())
        }
    }
}

/// For calls that change a request: a violation once the request has its reply.
fn check_not_ended(caller: &mut Ctx<'_>, call: &str, id: u32) -> Result<(), i32> {
    let state = caller.data();
    let Some(ctx) = state.http.get(&id) else {
        return Ok(());
    };
    let what = if ctx.reply.is_some() || ctx.stashed_reply.is_some() {
        "after the request's local reply"
    } else if ctx.reset {
        "after the request was reset (close_stream)"
    } else {
        return Ok(());
    };
    caller
        .data_mut()
        .violation(call, format!("{call} for request {id} {what}"));
    Err(Status::BadArgument.code())
}

const ENVOY_HEADERS_HINT: &str = "Envoy nulls a request's header map once on_http_request_headers returns Continue \
     (and after continue_stream): reading a request header later gets BadArgument, which the Rust SDK turns \
     into a panic. Read what you need in on_http_request_headers and keep it.";

const ENVOY_FAILED_CALL_HINT: &str = "Envoy delivers a call that failed without a response (a reset) as \
     proxy_on_http_call_response(token, 0 headers, 0 body, 0 trailers) with no response message: reading a \
     call-response header then gets BadArgument, which the Rust SDK turns into a panic. Check num_headers == 0 \
     first (get_http_call_response_headers() is safe: it returns an empty list).";

// ---------------------------------------------------------------------------
// logging, time, ticks

fn proxy_log(mut caller: Ctx<'_>, level: i32, ptr: i32, len: i32) -> R {
    let Some(level) = LogLevel::from_raw(level as u32) else {
        return misuse(
            &mut caller,
            "proxy_log",
            format!("log level {level} is not 0..=5"),
            Status::BadArgument,
        );
    };
    let message = tryv!(read_str(&mut caller, "proxy_log", "message", ptr, len));
    caller.data_mut().log(level, message);
    st(Status::Ok)
}

fn proxy_get_log_level(mut caller: Ctx<'_>, ptr: i32) -> R {
    let level = caller.data().profile.log_level() as u32;
    tryv!(ret_u32(&mut caller, "proxy_get_log_level", ptr, level));
    st(Status::Ok)
}

fn proxy_get_current_time_nanoseconds(mut caller: Ctx<'_>, ptr: i32) -> R {
    let now = caller.data().wall.as_nanos() as u64;
    if !mem::write_u64(&mut caller, ptr, now) {
        return misuse(
            &mut caller,
            "proxy_get_current_time_nanoseconds",
            "return pointer outside the VM's memory",
            Status::InvalidMemoryAccess,
        );
    }
    st(Status::Ok)
}

fn proxy_set_tick_period_milliseconds(mut caller: Ctx<'_>, period: i32) -> R {
    let state = caller.data_mut();
    let period = Duration::from_millis(period as u32 as u64);
    if state.kind() == HostKind::Kong {
        if state.effective != state.root_id {
            return st(Status::Ok); // ngx_wasm_module ignores it outside the root context
        }
        if state.tick_period.is_some() {
            state.violation(
                "proxy_set_tick_period_milliseconds",
                "tick period already set (Kong traps)",
            );
            return Err(Error::new("tick_period already set"));
        }
    }
    if period.is_zero() {
        state.tick_period = None;
        state.next_tick = None;
    } else {
        state.tick_period = Some(period);
        state.next_tick = Some(state.monotonic + period);
    }
    st(Status::Ok)
}

// ---------------------------------------------------------------------------
// buffers

fn proxy_get_buffer_bytes(
    mut caller: Ctx<'_>,
    kind: i32,
    start: i32,
    max: i32,
    ptr_ptr: i32,
    size_ptr: i32,
) -> R {
    const CALL: &str = "proxy_get_buffer_bytes";
    let Some(kind) = BufferType::from_raw(kind as u32) else {
        return misuse(
            &mut caller,
            CALL,
            format!("buffer type {kind} is not 0..=8"),
            Status::BadArgument,
        );
    };
    let envoy = caller.data().kind() == HostKind::Envoy;
    let request = tryv!(live_request(&mut caller, CALL));
    let state = caller.data();
    // None = NotFound; Some(bytes) = the buffer.
    let buffer: Option<Vec<u8>> = match kind {
        BufferType::VmConfiguration => Some(state.vm_config.clone()),
        BufferType::PluginConfiguration => {
            if envoy && !state.in_configure {
                None // Envoy: only while proxy_on_configure runs (temp_plugin_)
            } else {
                Some(state.plugin_config.clone())
            }
        }
        BufferType::HttpRequestBody => match request.and_then(|id| state.http.get(&id)) {
            Some(ctx) if envoy => Some(ctx.body.clone()),
            Some(ctx) if ctx.body_read => Some(ctx.body.clone()),
            Some(_) => None,
            None => {
                if envoy {
                    Some(Vec::new())
                } else {
                    return st(Status::BadArgument);
                }
            }
        },
        BufferType::HttpCallResponseBody => match &state.call_response {
            Some(resp) if resp.has_message => Some(resp.body.clone()),
            Some(_) => None,
            None if envoy => None,
            None => return st(Status::BadArgument),
        },
        BufferType::HttpResponseBody => match request.and_then(|id| state.http.get(&id)) {
            Some(ctx) if ctx.in_response_body => Some(ctx.response_body.clone()),
            _ if envoy => Some(Vec::new()),
            _ => None,
        },
        BufferType::CallData if envoy => Some(Vec::new()),
        BufferType::CallData => return st(Status::BadArgument),
        _ => None,
    };
    let Some(buffer) = buffer else {
        return st(Status::NotFound);
    };
    let start = start as u32 as usize;
    let max = max as u32 as usize;
    if start > buffer.len() {
        return misuse(
            &mut caller,
            CALL,
            format!(
                "start {start} is past the end of the {kind:?} buffer ({} bytes)",
                buffer.len()
            ),
            Status::BadArgument,
        );
    }
    let end = start.saturating_add(max).min(buffer.len());
    let slice = &buffer[start..end];
    if slice.is_empty() {
        // Envoy returns Ok without touching the return pointers; Kong NotFound.
        return st(if envoy { Status::Ok } else { Status::NotFound });
    }
    ret_bytes(&mut caller, CALL, slice, ptr_ptr, size_ptr)
}

fn proxy_set_buffer_bytes(
    mut caller: Ctx<'_>,
    kind: i32,
    start: i32,
    size: i32,
    ptr: i32,
    len: i32,
) -> R {
    const CALL: &str = "proxy_set_buffer_bytes";
    let Some(kind) = BufferType::from_raw(kind as u32) else {
        return misuse(
            &mut caller,
            CALL,
            format!("buffer type {kind} is not 0..=8"),
            Status::BadArgument,
        );
    };
    let data = tryv!(read(&mut caller, CALL, "data", ptr, len));
    let request = tryv!(live_request(&mut caller, CALL));
    let Some(id) = request else {
        return st(Status::BadArgument);
    };
    match kind {
        BufferType::HttpRequestBody => tryv!(check_not_ended(&mut caller, CALL, id)),
        BufferType::HttpResponseBody => {}
        _ => return st(Status::BadArgument),
    }
    let envoy = caller.data().kind() == HostKind::Envoy;
    let Some(ctx) = caller.data_mut().http.get_mut(&id) else {
        return st(Status::BadArgument);
    };
    let (start, size) = (start as u32 as usize, size as u32 as usize);
    let body = match kind {
        BufferType::HttpResponseBody if ctx.in_response_body => &mut ctx.response_body,
        BufferType::HttpResponseBody => return st(Status::BadArgument),
        _ => &mut ctx.body,
    };
    if envoy {
        // Envoy Buffer::copyFrom
        if start == 0 && size == 0 {
            body.splice(0..0, data);
        } else if start == 0 && size >= body.len() {
            *body = data;
        } else if start >= body.len() {
            body.extend_from_slice(&data);
        } else {
            return st(Status::BadArgument);
        }
    } else if start == 0 && size == 0 && !data.is_empty() {
        body.splice(0..0, data);
    } else {
        let size = if start > 0 && size == 0 {
            data.len()
        } else {
            size
        };
        let from = start.min(body.len());
        let to = start.saturating_add(size).min(body.len());
        body.splice(from..to, data);
    }
    st(Status::Ok)
}

// ---------------------------------------------------------------------------
// header maps

/// Where a map's contents come from right now. `Err(status)` when the host
/// has no such map at the moment.
fn map_contents(
    caller: &mut Ctx<'_>,
    call: &str,
    map: MapType,
    request: Option<u32>,
) -> Result<Vec<(String, String)>, Status> {
    let envoy = caller.data().kind() == HostKind::Envoy;
    let state = caller.data();
    match map {
        MapType::RequestHeaders => match request.and_then(|id| state.http.get(&id)) {
            Some(ctx) if ctx.headers_visible || !envoy => Ok(ctx.headers.clone()),
            Some(_) => {
                caller.data_mut().hint(ENVOY_HEADERS_HINT);
                Err(Status::BadArgument)
            }
            None => Err(Status::BadArgument),
        },
        MapType::ResponseHeaders => match request.and_then(|id| state.http.get(&id)) {
            Some(ctx) if !envoy || ctx.response_headers_visible => Ok(ctx.response_headers.clone()),
            _ => Err(Status::BadArgument),
        },
        MapType::HttpCallResponseHeaders | MapType::HttpCallResponseTrailers => {
            match &state.call_response {
                Some(resp) if resp.has_message => Ok(if map == MapType::HttpCallResponseHeaders {
                    resp.headers.clone()
                } else {
                    resp.trailers.clone()
                }),
                Some(_) => {
                    caller.data_mut().hint(ENVOY_FAILED_CALL_HINT);
                    Err(Status::BadArgument)
                }
                None => Err(Status::BadArgument),
            }
        }
        MapType::RequestTrailers | MapType::ResponseTrailers => {
            if envoy {
                Err(Status::BadArgument)
            } else {
                Ok(Vec::new())
            }
        }
        MapType::GrpcReceiveInitialMetadata | MapType::GrpcReceiveTrailingMetadata => {
            let _ = call;
            Err(Status::BadArgument)
        }
    }
}

fn decode_map_type(caller: &mut Ctx<'_>, call: &str, raw: i32) -> Result<MapType, i32> {
    MapType::from_raw(raw as u32).ok_or_else(|| {
        caller
            .data_mut()
            .violation(call, format!("map type {raw} is not 0..=7"));
        Status::BadArgument.code()
    })
}

fn proxy_get_header_map_pairs(mut caller: Ctx<'_>, map: i32, ptr_ptr: i32, size_ptr: i32) -> R {
    const CALL: &str = "proxy_get_header_map_pairs";
    let map = tryv!(decode_map_type(&mut caller, CALL, map));
    let request = tryv!(live_request(&mut caller, CALL));
    let envoy = caller.data().kind() == HostKind::Envoy;
    let pairs = match map_contents(&mut caller, CALL, map, request) {
        Ok(pairs) => pairs,
        // Envoy's getHeaderMapPairs turns a missing map into an empty list.
        Err(_) if envoy => Vec::new(),
        Err(status) => return st(status),
    };
    if pairs.is_empty() {
        return ret_bytes(&mut caller, CALL, &[], ptr_ptr, size_ptr);
    }
    ret_bytes(&mut caller, CALL, &encode_pairs(&pairs), ptr_ptr, size_ptr)
}

fn proxy_get_header_map_value(
    mut caller: Ctx<'_>,
    map: i32,
    key_ptr: i32,
    key_len: i32,
    ptr_ptr: i32,
    size_ptr: i32,
) -> R {
    const CALL: &str = "proxy_get_header_map_value";
    let map = tryv!(decode_map_type(&mut caller, CALL, map));
    let key = tryv!(read_str(&mut caller, CALL, "key", key_ptr, key_len));
    let request = tryv!(live_request(&mut caller, CALL));
    let envoy = caller.data().kind() == HostKind::Envoy;
    let pairs = match map_contents(&mut caller, CALL, map, request) {
        Ok(pairs) => pairs,
        Err(status) if envoy => return st(status),
        Err(_) => return st(Status::NotFound),
    };
    match find_header(&pairs, &key) {
        Some(value) => {
            let value = value.as_bytes().to_vec();
            ret_bytes(&mut caller, CALL, &value, ptr_ptr, size_ptr)
        }
        None => st(Status::NotFound),
    }
}

enum Edit {
    Add(String, String),
    Replace(String, String),
    Remove(String),
    SetAll(Vec<(String, String)>),
}

fn edit_map(caller: &mut Ctx<'_>, call: &str, map: MapType, edit: Edit) -> R {
    let request = tryv!(live_request(caller, call));
    let envoy = caller.data().kind() == HostKind::Envoy;
    let lower = |s: String| if envoy { s.to_ascii_lowercase() } else { s };
    let apply = |headers: &mut Vec<(String, String)>, edit: Edit| match edit {
        Edit::Add(k, v) => headers.push((lower(k), v)),
        Edit::Replace(k, v) => {
            let k = lower(k);
            if let Some(i) = headers
                .iter()
                .position(|(hk, _)| hk.eq_ignore_ascii_case(&k))
            {
                headers[i].1 = v;
                let mut n = 0;
                headers.retain(|(hk, _)| {
                    let dup = hk.eq_ignore_ascii_case(&k);
                    n += usize::from(dup);
                    !dup || n == 1
                });
            } else {
                headers.push((k, v));
            }
        }
        Edit::Remove(k) => headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(&k)),
        Edit::SetAll(pairs) => *headers = pairs.into_iter().map(|(k, v)| (lower(k), v)).collect(),
    };
    match map {
        MapType::RequestHeaders => {
            let Some(id) = request else {
                return st(Status::BadArgument);
            };
            tryv!(check_not_ended(caller, call, id));
            let Some(ctx) = caller.data_mut().http.get_mut(&id) else {
                return st(Status::BadArgument);
            };
            if envoy && !ctx.headers_visible {
                caller.data_mut().hint(ENVOY_HEADERS_HINT);
                return st(Status::BadArgument);
            }
            apply(&mut ctx.headers, edit);
            st(Status::Ok)
        }
        MapType::ResponseHeaders => {
            let Some(id) = request else {
                return st(Status::BadArgument);
            };
            let Some(ctx) = caller.data_mut().http.get_mut(&id) else {
                return st(Status::BadArgument);
            };
            if envoy && !ctx.response_headers_visible {
                return st(Status::BadArgument);
            }
            apply(&mut ctx.response_headers, edit);
            st(Status::Ok)
        }
        // ngx_wasm_module answers Ok for read-only maps (NGX_ABORT); Envoy has no mutable map.
        MapType::HttpCallResponseHeaders | MapType::HttpCallResponseTrailers if !envoy => {
            st(Status::Ok)
        }
        _ => st(Status::BadArgument),
    }
}

fn proxy_add_header_map_value(
    mut caller: Ctx<'_>,
    map: i32,
    kp: i32,
    kl: i32,
    vp: i32,
    vl: i32,
) -> R {
    const CALL: &str = "proxy_add_header_map_value";
    let map = tryv!(decode_map_type(&mut caller, CALL, map));
    let key = tryv!(read_str(&mut caller, CALL, "key", kp, kl));
    let value = tryv!(read_str(&mut caller, CALL, "value", vp, vl));
    edit_map(&mut caller, CALL, map, Edit::Add(key, value))
}

fn proxy_replace_header_map_value(
    mut caller: Ctx<'_>,
    map: i32,
    kp: i32,
    kl: i32,
    vp: i32,
    vl: i32,
) -> R {
    const CALL: &str = "proxy_replace_header_map_value";
    let map = tryv!(decode_map_type(&mut caller, CALL, map));
    let key = tryv!(read_str(&mut caller, CALL, "key", kp, kl));
    let value = tryv!(read_str(&mut caller, CALL, "value", vp, vl));
    edit_map(&mut caller, CALL, map, Edit::Replace(key, value))
}

fn proxy_remove_header_map_value(mut caller: Ctx<'_>, map: i32, kp: i32, kl: i32) -> R {
    const CALL: &str = "proxy_remove_header_map_value";
    let map = tryv!(decode_map_type(&mut caller, CALL, map));
    let key = tryv!(read_str(&mut caller, CALL, "key", kp, kl));
    edit_map(&mut caller, CALL, map, Edit::Remove(key))
}

fn proxy_set_header_map_pairs(mut caller: Ctx<'_>, map: i32, ptr: i32, len: i32) -> R {
    const CALL: &str = "proxy_set_header_map_pairs";
    let map = tryv!(decode_map_type(&mut caller, CALL, map));
    let pairs = tryv!(read_pairs(&mut caller, CALL, "map", ptr, len));
    edit_map(&mut caller, CALL, map, Edit::SetAll(pairs))
}

// ---------------------------------------------------------------------------
// properties

fn builtin_property(state: &HostState, request: Option<u32>, path: &[&str]) -> Option<Vec<u8>> {
    let header = |name: &str| -> Option<Vec<u8>> {
        let ctx = state.http.get(&request?)?;
        find_header(&ctx.headers, name).map(|v| v.as_bytes().to_vec())
    };
    match path {
        ["plugin_name"] => Some(state.profile.plugin_name().as_bytes().to_vec()),
        ["plugin_root_id"] | ["plugin_vm_id"] => Some(Vec::new()),
        ["request", "path"] => header(":path"),
        ["request", "url_path"] => {
            header(":path").map(|p| p.split(|b| *b == b'?').next().unwrap_or_default().to_vec())
        }
        ["request", "method"] => header(":method"),
        ["request", "host"] => header(":authority"),
        ["request", "scheme"] => header(":scheme"),
        ["request", "id"] => header("x-request-id"),
        // Envoy: "HTTP/1.1" or "HTTP/2"; nginx's $server_protocol: "HTTP/1.1"
        // or "HTTP/2.0".
        ["request", "protocol"] => request.map(|_| match (state.kind(), state.profile.http2()) {
            (_, false) => b"HTTP/1.1".to_vec(),
            (crate::HostKind::Envoy, true) => b"HTTP/2".to_vec(),
            (crate::HostKind::Kong, true) => b"HTTP/2.0".to_vec(),
        }),
        ["request", "headers", name] => header(name),
        _ => None,
    }
}

fn proxy_get_property(mut caller: Ctx<'_>, pp: i32, pl: i32, ptr_ptr: i32, size_ptr: i32) -> R {
    const CALL: &str = "proxy_get_property";
    let raw = tryv!(read(&mut caller, CALL, "path", pp, pl));
    let request = tryv!(live_request(&mut caller, CALL));
    let state = caller.data();
    let value = match state.properties.get(&raw) {
        Some(v) => Some(v.clone()),
        None => {
            let text = String::from_utf8_lossy(&raw).into_owned();
            let parts: Vec<&str> = text.split('\0').collect();
            builtin_property(state, request, &parts)
        }
    };
    match value {
        Some(v) => ret_bytes(&mut caller, CALL, &v, ptr_ptr, size_ptr),
        None => st(Status::NotFound),
    }
}

fn proxy_set_property(mut caller: Ctx<'_>, pp: i32, pl: i32, vp: i32, vl: i32) -> R {
    const CALL: &str = "proxy_set_property";
    let path = tryv!(read(&mut caller, CALL, "path", pp, pl));
    let value = tryv!(read(&mut caller, CALL, "value", vp, vl));
    tryv!(live_request(&mut caller, CALL));
    caller.data_mut().properties.insert(path, value);
    st(Status::Ok)
}

// ---------------------------------------------------------------------------
// shared data and queues

fn shm_check(caller: &mut Ctx<'_>, call: &str) -> Result<(), Error> {
    let state = caller.data_mut();
    if state.kind() == HostKind::Kong && !state.profile.shm_kv() {
        state.violation(
            call,
            "Kong has no nginx_wasm_shm_kv zone: shared-data calls trap",
        );
        return Err(Error::new(
            "failed getting value from shm (could not resolve namespace)",
        ));
    }
    Ok(())
}

fn proxy_get_shared_data(
    mut caller: Ctx<'_>,
    kp: i32,
    kl: i32,
    ptr_ptr: i32,
    size_ptr: i32,
    cas_ptr: i32,
) -> R {
    const CALL: &str = "proxy_get_shared_data";
    shm_check(&mut caller, CALL)?;
    let key = tryv!(read_str(&mut caller, CALL, "key", kp, kl));
    let Some((value, cas)) = caller.data().shared.get(&key).cloned() else {
        return st(Status::NotFound);
    };
    let status = ret_bytes(&mut caller, CALL, &value, ptr_ptr, size_ptr)?;
    if status != Status::Ok.code() {
        return Ok(status);
    }
    tryv!(ret_u32(&mut caller, CALL, cas_ptr, cas));
    st(Status::Ok)
}

fn proxy_set_shared_data(mut caller: Ctx<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32) -> R {
    const CALL: &str = "proxy_set_shared_data";
    shm_check(&mut caller, CALL)?;
    let key = tryv!(read_str(&mut caller, CALL, "key", kp, kl));
    let value = tryv!(read(&mut caller, CALL, "value", vp, vl));
    let shared = &mut caller.data_mut().shared;
    let current = shared.get(&key).map(|(_, c)| *c);
    let cas = cas as u32;
    if cas != 0 && current.is_some_and(|c| c != cas) {
        return st(Status::CasMismatch);
    }
    let next = current.unwrap_or(0).wrapping_add(1).max(1);
    shared.insert(key, (value, next));
    st(Status::Ok)
}

fn proxy_register_shared_queue(mut caller: Ctx<'_>, np: i32, nl: i32, token_ptr: i32) -> R {
    const CALL: &str = "proxy_register_shared_queue";
    let name = tryv!(read_str(&mut caller, CALL, "name", np, nl));
    let queues = &mut caller.data_mut().queues;
    let index = match queues.iter().position(|(n, _)| *n == name) {
        Some(i) => i,
        None => {
            queues.push((name, Default::default()));
            queues.len() - 1
        }
    };
    tryv!(ret_u32(&mut caller, CALL, token_ptr, index as u32 + 1));
    st(Status::Ok)
}

fn proxy_resolve_shared_queue(
    mut caller: Ctx<'_>,
    _vp: i32,
    _vl: i32,
    np: i32,
    nl: i32,
    token_ptr: i32,
) -> R {
    const CALL: &str = "proxy_resolve_shared_queue";
    let name = tryv!(read_str(&mut caller, CALL, "name", np, nl));
    let Some(index) = caller.data().queues.iter().position(|(n, _)| *n == name) else {
        return st(Status::NotFound);
    };
    tryv!(ret_u32(&mut caller, CALL, token_ptr, index as u32 + 1));
    st(Status::Ok)
}

fn proxy_enqueue_shared_queue(mut caller: Ctx<'_>, token: i32, ptr: i32, len: i32) -> R {
    const CALL: &str = "proxy_enqueue_shared_queue";
    let data = tryv!(read(&mut caller, CALL, "data", ptr, len));
    match caller
        .data_mut()
        .queues
        .get_mut((token as u32 as usize).wrapping_sub(1))
    {
        Some((_, q)) => {
            q.push_back(data);
            st(Status::Ok)
        }
        None => st(Status::NotFound),
    }
}

fn proxy_dequeue_shared_queue(mut caller: Ctx<'_>, token: i32, ptr_ptr: i32, size_ptr: i32) -> R {
    const CALL: &str = "proxy_dequeue_shared_queue";
    let item = match caller
        .data_mut()
        .queues
        .get_mut((token as u32 as usize).wrapping_sub(1))
    {
        Some((_, q)) => q.pop_front(),
        None => return st(Status::NotFound),
    };
    match item {
        Some(data) => ret_bytes(&mut caller, CALL, &data, ptr_ptr, size_ptr),
        None => st(Status::Empty),
    }
}

// ---------------------------------------------------------------------------
// stream control and local replies

fn proxy_continue_stream(mut caller: Ctx<'_>, stream: i32) -> R {
    const CALL: &str = "proxy_continue_stream";
    let Some(stream) = StreamType::from_raw(stream as u32) else {
        return misuse(
            &mut caller,
            CALL,
            format!("stream type {stream} is not 0..=3"),
            Status::BadArgument,
        );
    };
    let request = tryv!(live_request(&mut caller, CALL));
    match stream {
        StreamType::HttpRequest => {
            let Some(id) = request else {
                return misuse(
                    &mut caller,
                    CALL,
                    "continue_stream(HttpRequest) outside an http context",
                    Status::BadArgument,
                );
            };
            let state = caller.data();
            let ended = state
                .http
                .get(&id)
                .is_some_and(|c| c.reply.is_some() || c.stashed_reply.is_some() || c.reset);
            if ended {
                return misuse(
                    &mut caller,
                    CALL,
                    format!("continue_stream for request {id} after its local reply/reset"),
                    Status::BadArgument,
                );
            }
            if let Some(ctx) = caller.data_mut().http.get_mut(&id) {
                ctx.continue_requested = true;
            }
            st(Status::Ok)
        }
        StreamType::HttpResponse => st(Status::Ok),
        StreamType::Downstream | StreamType::Upstream => st(Status::BadArgument),
    }
}

fn proxy_close_stream(mut caller: Ctx<'_>, stream: i32) -> R {
    const CALL: &str = "proxy_close_stream";
    let Some(stream) = StreamType::from_raw(stream as u32) else {
        return misuse(
            &mut caller,
            CALL,
            format!("stream type {stream} is not 0..=3"),
            Status::BadArgument,
        );
    };
    let request = tryv!(live_request(&mut caller, CALL));
    match stream {
        StreamType::HttpRequest | StreamType::HttpResponse => {
            let Some(id) = request else {
                return misuse(
                    &mut caller,
                    CALL,
                    "close_stream outside an http context",
                    Status::BadArgument,
                );
            };
            tryv!(check_not_ended(&mut caller, CALL, id));
            if let Some(ctx) = caller.data_mut().http.get_mut(&id) {
                ctx.reset = true;
            }
            st(Status::Ok)
        }
        StreamType::Downstream | StreamType::Upstream => st(Status::BadArgument),
    }
}

#[allow(clippy::too_many_arguments)]
fn proxy_send_local_response(
    mut caller: Ctx<'_>,
    status: i32,
    dp: i32,
    dl: i32,
    bp: i32,
    bl: i32,
    hp: i32,
    hl: i32,
    grpc_status: i32,
) -> R {
    const CALL: &str = "proxy_send_local_response";
    let details = tryv!(read_str(&mut caller, CALL, "details", dp, dl));
    let body = tryv!(read(&mut caller, CALL, "body", bp, bl));
    let headers = tryv!(read_pairs(&mut caller, CALL, "headers", hp, hl));
    let request = tryv!(live_request(&mut caller, CALL));
    let Some(id) = request else {
        return misuse(
            &mut caller,
            CALL,
            "send_local_response outside an http context",
            Status::BadArgument,
        );
    };
    let kind = caller.data().kind();
    let state = caller.data();
    let Some(ctx) = state.http.get(&id) else {
        return st(Status::BadArgument);
    };
    if ctx.reply.is_some() || ctx.stashed_reply.is_some() {
        caller
            .data_mut()
            .violation(CALL, format!("a second local reply for request {id}"));
        if kind == HostKind::Kong {
            return Err(Error::new("bad usage: local response already stashed"));
        }
        return st(Status::Ok);
    }
    if ctx.reset {
        return misuse(
            &mut caller,
            CALL,
            format!("local reply for request {id} after close_stream"),
            Status::BadArgument,
        );
    }
    let status = status as u32;
    if kind == HostKind::Kong && !(100..=999).contains(&status) {
        return st(Status::BadArgument);
    }
    let headers = match kind {
        HostKind::Envoy => headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        HostKind::Kong => headers,
    };
    let reply = LocalReply {
        status,
        headers,
        body,
        details,
        grpc_status,
        source: ReplySource::Filter,
    };
    if let Some(ctx) = caller.data_mut().http.get_mut(&id) {
        ctx.stashed_reply = Some(reply);
    }
    st(Status::Ok)
}

// ---------------------------------------------------------------------------
// HTTP calls

#[allow(clippy::too_many_arguments)]
fn proxy_http_call(
    mut caller: Ctx<'_>,
    up: i32,
    ul: i32,
    hp: i32,
    hl: i32,
    bp: i32,
    bl: i32,
    tp: i32,
    tl: i32,
    timeout: i32,
    token_ptr: i32,
) -> R {
    const CALL: &str = "proxy_http_call";
    let upstream = tryv!(read_str(&mut caller, CALL, "upstream", up, ul));
    let headers = tryv!(read_pairs(&mut caller, CALL, "headers", hp, hl));
    let body = tryv!(read(&mut caller, CALL, "body", bp, bl));
    let trailers = tryv!(read_pairs(&mut caller, CALL, "trailers", tp, tl));
    // Like proxy-wasm-cpp-host: check the token pointer before starting anything.
    tryv!(ret_u32(&mut caller, CALL, token_ptr, 0));
    let request = tryv!(live_request(&mut caller, CALL));
    let context_id = match request {
        Some(id) => {
            if let Err(code) = check_not_ended(&mut caller, CALL, id) {
                return Ok(if code == Status::BadArgument.code() {
                    Status::InternalFailure.code()
                } else {
                    code
                });
            }
            id
        }
        None => {
            if caller.data().kind() == HostKind::Kong
                && caller.data().callback == Some("proxy_on_tick")
                && caller.data().kong_wished_context != caller.data().root_id
            {
                // ngx_wasm_module dispatches from a tick on a fake request,
                // for the root (a root's own call, e.g. a configuration
                // fetch, is fine); a filter that meant to act for a
                // request there (set_effective_context does nothing) acts
                // for none: this host counts it as a mistake.
                caller.data_mut().violation(
                    CALL,
                    "Kong: a call dispatched from the tick belongs to the root context, not to any request (set_effective_context does nothing there)",
                );
            }
            caller.data().root_id
        }
    };
    let timeout_ms = timeout as u32;
    if let Err(rejection) = caller
        .data()
        .profile
        .check_dispatch(&upstream, &headers, timeout_ms)
    {
        let state = caller.data_mut();
        if let Some(line) = rejection.host_log {
            state.host_logs.push(line);
        }
        if state.kind() == HostKind::Envoy && !state.profile.clusters().any(|c| c == upstream) {
            let known: Vec<&str> = state.profile.clusters().collect();
            let hint = format!(
                "Envoy: dispatch target {upstream:?} is not a known cluster (known: {known:?})"
            );
            state.hint(hint);
        }
        return st(rejection.status);
    }
    let state = caller.data_mut();
    let token = state.next_token;
    state.next_token = state.next_token.wrapping_add(state.token_step);
    let call = Call {
        token,
        context_id,
        upstream,
        headers,
        body: if body.is_empty() { None } else { Some(body) },
        trailers,
        timeout_ms,
    };
    state.calls.insert(
        token,
        CallRecord {
            call,
            state: CallState::Pending,
        },
    );
    tryv!(ret_u32(&mut caller, CALL, token_ptr, token));
    st(Status::Ok)
}

fn grpc_unsupported(caller: &mut Ctx<'_>, call: &str) -> R {
    misuse(
        caller,
        call,
        "gRPC calls are not modelled by host-tests",
        Status::InternalFailure,
    )
}

#[allow(clippy::too_many_arguments)]
fn proxy_grpc_call(
    mut caller: Ctx<'_>,
    _a: i32,
    _b: i32,
    _c: i32,
    _d: i32,
    _e: i32,
    _f: i32,
    _g: i32,
    _h: i32,
    _i: i32,
    _j: i32,
    _timeout: i32,
    _token_ptr: i32,
) -> R {
    grpc_unsupported(&mut caller, "proxy_grpc_call")
}

#[allow(clippy::too_many_arguments)]
fn proxy_grpc_stream(
    mut caller: Ctx<'_>,
    _a: i32,
    _b: i32,
    _c: i32,
    _d: i32,
    _e: i32,
    _f: i32,
    _g: i32,
    _h: i32,
    _token_ptr: i32,
) -> R {
    grpc_unsupported(&mut caller, "proxy_grpc_stream")
}

fn proxy_grpc_send(mut caller: Ctx<'_>, _token: i32, _p: i32, _l: i32, _end: i32) -> R {
    grpc_unsupported(&mut caller, "proxy_grpc_send")
}

fn proxy_grpc_cancel(mut caller: Ctx<'_>, _token: i32) -> R {
    grpc_unsupported(&mut caller, "proxy_grpc_cancel")
}

fn proxy_grpc_close(mut caller: Ctx<'_>, _token: i32) -> R {
    grpc_unsupported(&mut caller, "proxy_grpc_close")
}

fn proxy_get_status(mut caller: Ctx<'_>, code_ptr: i32, ptr_ptr: i32, size_ptr: i32) -> R {
    const CALL: &str = "proxy_get_status";
    let (code, message) = caller
        .data()
        .call_response
        .as_ref()
        .map(|r| r.status.clone())
        .unwrap_or_default();
    tryv!(ret_u32(&mut caller, CALL, code_ptr, code));
    ret_bytes(&mut caller, CALL, message.as_bytes(), ptr_ptr, size_ptr)
}

// ---------------------------------------------------------------------------
// contexts

fn proxy_set_effective_context(mut caller: Ctx<'_>, id: i32) -> R {
    let id = id as u32;
    let state = caller.data_mut();
    if state.kind() == HostKind::Kong {
        // ngx_wasm_module's proxy_set_effective_context does nothing and
        // answers OK: later calls still act for the context the host
        // called into (from a tick: the root, which has no request).
        state.kong_wished_context = id;
        return st(Status::Ok);
    }
    // proxy-wasm-cpp-host: BadArgument for a context that does not exist
    // (never created, or already deleted); a filter may ask.
    let alive = id == state.root_id
        || state
            .http
            .get(&id)
            .is_some_and(|c| c.phase != crate::state::Phase::Deleted);
    if !alive {
        return st(Status::BadArgument);
    }
    state.effective = id;
    st(Status::Ok)
}

fn proxy_done(mut caller: Ctx<'_>) -> R {
    let state = caller.data_mut();
    let id = state.effective;
    state.done_called.insert(id);
    st(Status::Ok)
}

fn proxy_call_foreign_function(
    mut caller: Ctx<'_>,
    np: i32,
    nl: i32,
    _ap: i32,
    _al: i32,
    _rp: i32,
    _rs: i32,
) -> R {
    let name = tryv!(read_str(
        &mut caller,
        "proxy_call_foreign_function",
        "name",
        np,
        nl
    ));
    caller
        .data_mut()
        .host_logs
        .push(format!("foreign function {name:?} is not available"));
    st(Status::NotFound)
}

// ---------------------------------------------------------------------------
// metrics

fn metric_index(id: i32) -> usize {
    ((id as u32) >> 2).wrapping_sub(1) as usize
}

fn proxy_define_metric(mut caller: Ctx<'_>, kind: i32, np: i32, nl: i32, id_ptr: i32) -> R {
    const CALL: &str = "proxy_define_metric";
    let kind = match kind {
        0 => MetricKind::Counter,
        1 => MetricKind::Gauge,
        2 => MetricKind::Histogram,
        _ => return st(Status::BadArgument),
    };
    let name = tryv!(read_str(&mut caller, CALL, "name", np, nl));
    let metrics = &mut caller.data_mut().metrics;
    let index = match metrics
        .iter()
        .position(|m| m.name == name && m.kind == kind)
    {
        Some(i) => i,
        None => {
            metrics.push(Metric {
                name,
                kind,
                value: 0,
                recorded: Vec::new(),
            });
            metrics.len() - 1
        }
    };
    let id = ((index as u32 + 1) << 2) | kind as u32;
    tryv!(ret_u32(&mut caller, CALL, id_ptr, id));
    st(Status::Ok)
}

fn proxy_increment_metric(mut caller: Ctx<'_>, id: i32, offset: i64) -> R {
    let envoy = caller.data().kind() == HostKind::Envoy;
    let Some(metric) = caller.data_mut().metrics.get_mut(metric_index(id)) else {
        return st(Status::NotFound);
    };
    match metric.kind {
        MetricKind::Counter if envoy && offset <= 0 => st(Status::BadArgument),
        MetricKind::Counter | MetricKind::Gauge => {
            metric.value = metric.value.wrapping_add(offset);
            st(Status::Ok)
        }
        MetricKind::Histogram => st(Status::BadArgument),
    }
}

fn proxy_record_metric(mut caller: Ctx<'_>, id: i32, value: i64) -> R {
    let Some(metric) = caller.data_mut().metrics.get_mut(metric_index(id)) else {
        return st(Status::NotFound);
    };
    match metric.kind {
        MetricKind::Counter => metric.value = metric.value.wrapping_add(value),
        MetricKind::Gauge => metric.value = value,
        MetricKind::Histogram => {
            metric.value = value;
            metric.recorded.push(value as u64);
        }
    }
    st(Status::Ok)
}

fn proxy_get_metric(mut caller: Ctx<'_>, id: i32, ptr: i32) -> R {
    let Some(metric) = caller.data().metrics.get(metric_index(id)).cloned() else {
        return st(Status::NotFound);
    };
    if metric.kind == MetricKind::Histogram {
        return st(Status::BadArgument);
    }
    if !mem::write_u64(&mut caller, ptr, metric.value as u64) {
        return misuse(
            &mut caller,
            "proxy_get_metric",
            "return pointer outside the VM's memory",
            Status::InvalidMemoryAccess,
        );
    }
    st(Status::Ok)
}
