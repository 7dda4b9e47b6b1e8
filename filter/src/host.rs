//! Host calls that report failure instead of trapping.
//!
//! The proxy-wasm SDK panics when a host call returns a status it does not
//! expect (Envoy answers `BadArgument` for the headers of a call that was
//! reset, and for request headers read after they were forwarded). A panic
//! is an outage, so the calls the filter makes on data it does not control
//! go through these wrappers, which turn every status into a `Result`.

#![allow(unsafe_code)]

use proxy_wasm::types::{BufferType, MapType};
use std::ptr::null_mut;

#[allow(clashing_extern_declarations)]
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map_type: u32, data: *mut *mut u8, size: *mut usize) -> u32;
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
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
}

/// A host call's non-OK status (1 NotFound, 2 BadArgument, 10 InternalFailure...).
pub type HostStatus = u32;

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

/// Take ownership of memory the host filled through the SDK's allocator.
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

/// All pairs of a header map; names and values that are not UTF-8 are
/// converted lossily.
pub fn header_pairs(map: MapType) -> Result<Vec<(String, String)>, HostStatus> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: the out-pointers are valid for writes.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    // SAFETY: on any status the host either wrote nothing or a buffer it allocated.
    let bytes = unsafe { owned(data, size) };
    if status != OK {
        return Err(status);
    }
    Ok(parse_map(&bytes))
}

/// One header's value; `Ok(None)` when absent.
pub fn header_value(map: MapType, name: &str) -> Result<Option<String>, HostStatus> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: the key is a valid slice and the out-pointers are valid for writes.
    let status = unsafe {
        proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    // SAFETY: as above.
    let bytes = unsafe { owned(data, size) };
    match status {
        OK => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

/// Bytes of a buffer (request body, call response body, configuration).
pub fn buffer(buffer: BufferType, start: usize, max_size: usize) -> Result<Vec<u8>, HostStatus> {
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

/// Send a local reply to the client.
pub fn send_local_response(
    status: u16,
    headers: &[(impl AsRef<str>, impl AsRef<str>)],
    body: &[u8],
) -> Result<(), HostStatus> {
    let map = serialize_map(headers);
    // Kong makes the details the status line's reason phrase (`200
    // graphql_aggregator`, measured); empty, both hosts use the standard one.
    let details = "";
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

/// A property of the request or the host (`["request", "protocol"]`);
/// `Ok(None)` when the host does not have it.
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, HostStatus> {
    let mut encoded = Vec::new();
    for part in path {
        encoded.extend_from_slice(part.as_bytes());
        encoded.push(0);
    }
    encoded.pop();
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: the path is a live slice and the out-pointers are valid for writes.
    let status =
        unsafe { proxy_get_property(encoded.as_ptr(), encoded.len(), &mut data, &mut size) };
    // SAFETY: as for the header maps.
    let bytes = unsafe { owned(data, size) };
    match status {
        OK => Ok(Some(bytes)),
        NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

/// Makes `context_id` the context later host calls act for (a request
/// answered from the root context's tick).
pub fn set_effective_context(context_id: u32) -> Result<(), HostStatus> {
    // SAFETY: a plain value.
    let status = unsafe { proxy_set_effective_context(context_id) };
    if status == OK {
        Ok(())
    } else {
        Err(status)
    }
}

/// Asks for `proxy_on_tick` every `period_ms` milliseconds (root context
/// only; Kong traps when it is set twice, so set it once per VM).
pub fn set_tick_period(period_ms: u32) -> Result<(), HostStatus> {
    // SAFETY: a plain value.
    let status = unsafe { proxy_set_tick_period_milliseconds(period_ms) };
    if status == OK {
        Ok(())
    } else {
        Err(status)
    }
}

/// The host's wall clock in milliseconds since the Unix epoch; 0 when the
/// host will not say.
pub fn now_ms() -> u64 {
    let mut nanos: u64 = 0;
    // SAFETY: the out-pointer is valid for a write.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    if status == OK {
        nanos / 1_000_000
    } else {
        0
    }
}

/// The kinds of metric the host keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter = 0,
    /// A value set as it is (proxy-wasm's record on a gauge).
    Gauge = 1,
    /// A distribution of recorded values.
    Histogram = 2,
}

/// Define a metric; its id, or the host's status.
pub fn define_metric(kind: MetricKind, name: &str) -> Result<u32, HostStatus> {
    let mut id = 0;
    // SAFETY: the name is a live slice; the out-pointer is valid for a write.
    let status = unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) };
    if status == OK {
        Ok(id)
    } else {
        Err(status)
    }
}

/// Add to a counter (failures are ignored: metrics never break a request).
pub fn increment_metric(id: u32, by: i64) {
    // SAFETY: plain values.
    let _ = unsafe { proxy_increment_metric(id, by) };
}

/// Record a value into a histogram, or set a gauge (failures are ignored).
pub fn record_metric(id: u32, value: u64) {
    // SAFETY: plain values.
    let _ = unsafe { proxy_record_metric(id, value) };
}

/// A value of the host's shared data (Envoy: process-wide, per `vm_id`;
/// Kong: the `nginx_wasm_main_shm_kv` zone) with its compare-and-swap
/// version; `Ok(None)` when the key has no value.
pub fn shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, HostStatus> {
    let mut data = null_mut();
    let mut size = 0;
    let mut cas = 0;
    // SAFETY: the key is a live slice and the out-pointers are valid for writes.
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    // SAFETY: as for the header maps.
    let bytes = unsafe { owned(data, size) };
    match status {
        OK => Ok(Some((bytes, cas))),
        NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

/// Sets a shared-data value; with `cas` other than 0, only if the value is
/// still at that version (`Err(8)`, CasMismatch, otherwise).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), HostStatus> {
    // SAFETY: the key and the value are live slices.
    let status =
        unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) };
    if status == OK {
        Ok(())
    } else {
        Err(status)
    }
}

/// Proxy-Wasm header map encoding: count, then (name size, value size)
/// pairs, then the NUL-terminated names and values.
fn serialize_map(map: &[(impl AsRef<str>, impl AsRef<str>)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&u32::try_from(map.len()).unwrap_or(0).to_le_bytes());
    for (name, value) in map {
        let (name, value) = (name.as_ref(), value.as_ref());
        bytes.extend_from_slice(&u32::try_from(name.len()).unwrap_or(0).to_le_bytes());
        bytes.extend_from_slice(&u32::try_from(value.len()).unwrap_or(0).to_le_bytes());
    }
    for (name, value) in map {
        bytes.extend_from_slice(name.as_ref().as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(value.as_ref().as_bytes());
        bytes.push(0);
    }
    bytes
}

/// Decode a header map, stopping (not trapping) at the first malformed entry.
fn parse_map(bytes: &[u8]) -> Vec<(String, String)> {
    let read_u32 = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let mut pairs = Vec::new();
    let Some(count) = read_u32(0) else {
        return pairs;
    };
    let Some(mut at) = count.checked_mul(8).and_then(|n| n.checked_add(4)) else {
        return pairs;
    };
    for index in 0..count {
        let sizes = index.checked_mul(8).and_then(|n| n.checked_add(4));
        let (Some(name_size), Some(value_size)) = (
            sizes.and_then(read_u32),
            sizes.and_then(|s| s.checked_add(4)).and_then(read_u32),
        ) else {
            break;
        };
        let take = |at: usize, size: usize| bytes.get(at..at.checked_add(size)?);
        let Some(name) = take(at, name_size) else {
            break;
        };
        at = at.saturating_add(name_size).saturating_add(1);
        let Some(value) = take(at, value_size) else {
            break;
        };
        at = at.saturating_add(value_size).saturating_add(1);
        pairs.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    pairs
}

/// The `:status` of the call whose answer is being read (in its
/// callback); `None` when the call failed: Envoy then gives no header map
/// at all (`num_headers` 0), Kong only a `:dispatch_status`.
pub fn call_status(num_headers: usize) -> Option<u16> {
    if num_headers == 0 {
        return None;
    }
    header_value(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| s.parse::<u16>().ok())
}
