//! Proxy-Wasm ABI 0.2.1 constants and the header-map wire format.
//!
//! Numbers follow the spec and the Rust SDK's `types.rs`; the pair encoding is
//! the one both Envoy (proxy-wasm-cpp-host `marshalPairs`/`toPairs`) and
//! ngx_wasm_module use: a little-endian `u32` count, then `count` pairs of
//! `u32` key/value sizes, then every key and value followed by a NUL byte.

use std::fmt;

/// A Proxy-Wasm `WasmResult` / SDK `Status` as returned by host calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// The requested item does not exist.
    NotFound = 1,
    /// An argument was not acceptable, or the item is not available now.
    BadArgument = 2,
    /// A value could not be serialized.
    SerializationFailure = 3,
    /// A value could not be parsed.
    ParseFailure = 4,
    /// A property expression was invalid.
    BadExpression = 5,
    /// A pointer/size pair did not lie inside the VM's memory.
    InvalidMemoryAccess = 6,
    /// A queue was empty.
    Empty = 7,
    /// A compare-and-swap value did not match.
    CasMismatch = 8,
    /// A result did not match.
    ResultMismatch = 9,
    /// The host failed internally.
    InternalFailure = 10,
    /// A connection broke (Envoy's status for a reset HTTP call).
    BrokenConnection = 11,
    /// The host does not implement the call.
    Unimplemented = 12,
}

impl Status {
    /// The value handed back to the VM.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The `LogLevel` of `proxy_log` / `proxy_get_log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum LogLevel {
    /// Level 0.
    Trace = 0,
    /// Level 1.
    Debug = 1,
    /// Level 2.
    Info = 2,
    /// Level 3.
    Warn = 3,
    /// Level 4.
    Error = 4,
    /// Level 5.
    Critical = 5,
}

impl LogLevel {
    /// Decodes an ABI value; `None` when out of range.
    pub fn from_raw(raw: u32) -> Option<LogLevel> {
        Some(match raw {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        };
        f.write_str(s)
    }
}

/// `MapType` of the header-map host calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapType {
    /// 0: the downstream request's headers.
    RequestHeaders,
    /// 1: the downstream request's trailers.
    RequestTrailers,
    /// 2: the response headers.
    ResponseHeaders,
    /// 3: the response trailers.
    ResponseTrailers,
    /// 4: gRPC initial metadata.
    GrpcReceiveInitialMetadata,
    /// 5: gRPC trailing metadata.
    GrpcReceiveTrailingMetadata,
    /// 6: the headers of the HTTP call response being delivered.
    HttpCallResponseHeaders,
    /// 7: the trailers of the HTTP call response being delivered.
    HttpCallResponseTrailers,
}

impl MapType {
    /// Decodes an ABI value; `None` when out of range.
    pub fn from_raw(raw: u32) -> Option<MapType> {
        Some(match raw {
            0 => MapType::RequestHeaders,
            1 => MapType::RequestTrailers,
            2 => MapType::ResponseHeaders,
            3 => MapType::ResponseTrailers,
            4 => MapType::GrpcReceiveInitialMetadata,
            5 => MapType::GrpcReceiveTrailingMetadata,
            6 => MapType::HttpCallResponseHeaders,
            7 => MapType::HttpCallResponseTrailers,
            _ => return None,
        })
    }
}

/// `BufferType` of `proxy_get_buffer_bytes` / `proxy_set_buffer_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufferType {
    /// 0: the downstream request body.
    HttpRequestBody,
    /// 1: the response body.
    HttpResponseBody,
    /// 2: TCP downstream data.
    DownstreamData,
    /// 3: TCP upstream data.
    UpstreamData,
    /// 4: the body of the HTTP call response being delivered.
    HttpCallResponseBody,
    /// 5: a gRPC message.
    GrpcReceiveBuffer,
    /// 6: the VM configuration (`proxy_on_vm_start`).
    VmConfiguration,
    /// 7: the plugin configuration (`proxy_on_configure`).
    PluginConfiguration,
    /// 8: foreign-function call data.
    CallData,
}

impl BufferType {
    /// Decodes an ABI value; `None` when out of range.
    pub fn from_raw(raw: u32) -> Option<BufferType> {
        Some(match raw {
            0 => BufferType::HttpRequestBody,
            1 => BufferType::HttpResponseBody,
            2 => BufferType::DownstreamData,
            3 => BufferType::UpstreamData,
            4 => BufferType::HttpCallResponseBody,
            5 => BufferType::GrpcReceiveBuffer,
            6 => BufferType::VmConfiguration,
            7 => BufferType::PluginConfiguration,
            8 => BufferType::CallData,
            _ => return None,
        })
    }
}

/// `StreamType` of `proxy_continue_stream` / `proxy_close_stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    /// 0: the HTTP request.
    HttpRequest,
    /// 1: the HTTP response.
    HttpResponse,
    /// 2: TCP downstream.
    Downstream,
    /// 3: TCP upstream.
    Upstream,
}

impl StreamType {
    /// Decodes an ABI value; `None` when out of range.
    pub fn from_raw(raw: u32) -> Option<StreamType> {
        Some(match raw {
            0 => StreamType::HttpRequest,
            1 => StreamType::HttpResponse,
            2 => StreamType::Downstream,
            3 => StreamType::Upstream,
            _ => return None,
        })
    }
}

/// The `Action` a filter callback returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// 0: let the stream go on.
    Continue,
    /// 1: stop (Envoy: `StopIteration` for headers, `StopIterationAndBuffer` for a body).
    Pause,
    /// Any other value (Envoy knows 2 and 3 for data, which this host treats as `Pause`).
    Other(i32),
}

impl Action {
    /// Decodes a callback's return value.
    pub fn from_raw(raw: i32) -> Action {
        match raw {
            0 => Action::Continue,
            1 => Action::Pause,
            other => Action::Other(other),
        }
    }

    /// Whether the stream stops here.
    pub fn stops(self) -> bool {
        !matches!(self, Action::Continue)
    }
}

/// Serializes header pairs in the Proxy-Wasm map format.
pub fn encode_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut size = 4;
    for (k, v) in pairs {
        size += 8 + k.as_ref().len() + v.as_ref().len() + 2;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// Raw `(key, value)` byte pairs.
pub type RawPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Parses the Proxy-Wasm map format; `Err` with a reason when malformed.
pub fn decode_pairs(bytes: &[u8]) -> Result<RawPairs, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let read_u32 = |at: usize| -> Result<usize, String> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| format!("map truncated at byte {at} of {}", bytes.len()))
    };
    let count = read_u32(0)?;
    if count.saturating_mul(8).saturating_add(4) > bytes.len() {
        return Err(format!(
            "map claims {count} pairs but is only {} bytes",
            bytes.len()
        ));
    }
    let mut sizes = Vec::with_capacity(count);
    for i in 0..count {
        sizes.push((read_u32(4 + i * 8)?, read_u32(8 + i * 8)?));
    }
    let mut at = 4 + count * 8;
    let mut out = Vec::with_capacity(count);
    for (ks, vs) in sizes {
        let key = bytes
            .get(at..at + ks)
            .ok_or_else(|| format!("map key overruns the buffer at byte {at}"))?
            .to_vec();
        at += ks;
        if bytes.get(at) != Some(&0) {
            return Err(format!("map key not NUL-terminated at byte {at}"));
        }
        at += 1;
        let value = bytes
            .get(at..at + vs)
            .ok_or_else(|| format!("map value overruns the buffer at byte {at}"))?
            .to_vec();
        at += vs;
        if bytes.get(at) != Some(&0) {
            return Err(format!("map value not NUL-terminated at byte {at}"));
        }
        at += 1;
        out.push((key, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let pairs = [
            (":path", "/graphql"),
            ("content-type", "application/json"),
            ("x-empty", ""),
        ];
        let bytes = encode_pairs(&pairs);
        let back = decode_pairs(&bytes).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], (b":path".to_vec(), b"/graphql".to_vec()));
        assert_eq!(back[2], (b"x-empty".to_vec(), Vec::new()));
    }

    #[test]
    fn malformed_pairs_are_rejected() {
        assert!(decode_pairs(&[5, 0, 0, 0]).is_err());
        let mut bytes = encode_pairs(&[("a", "b")]);
        bytes.pop();
        assert!(decode_pairs(&bytes).is_err());
        assert_eq!(decode_pairs(&[]).unwrap(), RawPairs::new());
    }
}
