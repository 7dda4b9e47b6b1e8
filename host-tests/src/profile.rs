//! Host profiles: what differs between Envoy 1.40 and Kong 3.9 (ngx_wasm_module).
//!
//! Everything host-specific lives behind [`Profile`] so that the ABI code in
//! `imports.rs` and the request driver in `request.rs` ask the profile instead
//! of branching on strings. The facts come from `shared/HOSTS.md` and from the
//! hosts' sources (Envoy `source/extensions/common/wasm/context.cc`,
//! proxy-wasm-cpp-host `src/exports.cc`, ngx_wasm_module
//! `src/common/proxy_wasm/ngx_proxy_wasm_host.c`,
//! `src/http/proxy_wasm/ngx_http_proxy_wasm_dispatch.c`,
//! `src/wasm/wasi/ngx_wasi_preview1_host.c`).

use crate::abi::{LogLevel, Status};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which gateway a [`Profile`] models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostKind {
    /// Envoy 1.40 with the V8 runtime (proxy-wasm-cpp-host).
    Envoy,
    /// Kong 3.9 (ngx_wasm_module, "WasmX").
    Kong,
}

/// How an HTTP call fails, in a gateway's terms. [`crate::Request::fail`]
/// turns it into what the profile's host really delivers (the Envoy shapes
/// were measured with Envoy 1.40 on this machine; see each variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The stream broke after the response had started. Envoy: the async
    /// client's `onFailure(Reset)`, delivered as 0 headers / 0 body / 0
    /// trailers with no response message at all (call-response header reads
    /// get BadArgument) and `proxy_get_status` = (BrokenConnection, "reset").
    /// Kong: `:dispatch_status: broken connection`.
    Reset,
    /// The upstream closed the connection before any response. Envoy: a 503
    /// "upstream connect error or disconnect/reset before headers. reset
    /// reason: connection termination". Kong: `broken connection`.
    ConnectionTerminated,
    /// The upstream refused the connection. Envoy: a 503 "... reset reason:
    /// remote connection failure". Kong: `broken connection`.
    ConnectFailure,
    /// The call's timeout expired. Envoy: a 504 "upstream request timeout"
    /// (3 headers, body of 24 bytes). Kong: `:dispatch_status: timeout`.
    Timeout,
    /// The target did not resolve. Envoy (no healthy host in the cluster): a
    /// 503 "no healthy upstream". Kong: `resolver failure`.
    ResolverFailure,
}

/// What the host hands to `proxy_on_http_call_response` for a failed call.
#[derive(Debug, Clone)]
pub(crate) struct FailedCallDelivery {
    /// Whether there is a response message (false: maps and body do not exist).
    pub has_message: bool,
    /// Headers readable through `HttpCallResponseHeaders`.
    pub headers: Vec<(String, String)>,
    /// The `num_headers` argument (Kong passes 0 even though `:dispatch_status` is readable).
    pub num_headers: usize,
    /// The body readable through `HttpCallResponseBody`.
    pub body: Vec<u8>,
    /// What `proxy_get_status` returns during the callback.
    pub status: (u32, String),
}

/// Why a dispatch was refused, and how the host reports it.
#[derive(Debug, Clone)]
pub(crate) struct DispatchRejection {
    /// Status returned to the filter.
    pub status: Status,
    /// The host's own log line (Envoy says nothing; Kong logs "dispatch failed: ...").
    pub host_log: Option<String>,
}

/// A gateway model: which targets exist, how bodies and failures arrive,
/// and the deterministic clock/random seed of the VM.
#[derive(Debug, Clone)]
pub struct Profile {
    kind: HostKind,
    clusters: BTreeSet<String>,
    log_level: LogLevel,
    seed: u64,
    start_time: Duration,
    body_limit: usize,
    shm_kv: bool,
    /// Dispatch targets this host answers with another status than its
    /// own (a host or version that differs from the profile).
    dispatch_statuses: Vec<(String, Status)>,
    allow_all_wasi: bool,
    plugin_name: String,
    http2: bool,
}

/// The WASI functions ngx_wasm_module provides (`ngx_wasi_preview1_host.c`).
const KONG_WASI: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "clock_time_get",
    "environ_get",
    "environ_sizes_get",
    "fd_close",
    "fd_fdstat_get",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "fd_read",
    "fd_seek",
    "fd_write",
    "path_open",
    "proc_exit",
    "random_get",
];

/// Every WASI function this host implements. Envoy 1.40 provides all of
/// them (checked by loading modules importing each into Envoy 1.40: it
/// accepts these and more, e.g. `fd_readdir`, `sock_accept`, which this host
/// does not implement).
pub(crate) const ALL_WASI: &[&str] = &[
    "fd_write",
    "fd_read",
    "fd_seek",
    "fd_close",
    "fd_fdstat_get",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "path_open",
    "environ_get",
    "environ_sizes_get",
    "args_get",
    "args_sizes_get",
    "clock_time_get",
    "random_get",
    "proc_exit",
    "sched_yield",
    "poll_oneoff",
    "clock_res_get",
    "fd_fdstat_set_flags",
];

impl Profile {
    /// Envoy 1.40; `clusters` are the cluster names `dispatch_http_call` may target.
    pub fn envoy<I, S>(clusters: I) -> Profile
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Profile {
            kind: HostKind::Envoy,
            clusters: clusters.into_iter().map(Into::into).collect(),
            ..Profile::base(HostKind::Envoy)
        }
    }

    /// Kong 3.9 (ngx_wasm_module); dispatch targets are `host[:port]` or `unix:/path`.
    pub fn kong() -> Profile {
        Profile::base(HostKind::Kong)
    }

    fn base(kind: HostKind) -> Profile {
        Profile {
            kind,
            clusters: BTreeSet::new(),
            log_level: LogLevel::Info,
            seed: 0x5eed_0f7e_57ed_5eed,
            // 2023-11-14T22:13:20Z: a fixed, round start for the test clock.
            start_time: Duration::from_secs(1_700_000_000),
            body_limit: 1 << 20,
            shm_kv: true,
            dispatch_statuses: Vec::new(),
            allow_all_wasi: false,
            plugin_name: "graphql-aggregator".into(),
            http2: false,
        }
    }

    /// The level `proxy_get_log_level` reports (default `Info`, both hosts' default).
    /// Every `proxy_log` line is captured whatever this says.
    pub fn with_log_level(mut self, level: LogLevel) -> Profile {
        self.log_level = level;
        self
    }

    /// Seed of the deterministic `random_get` stream.
    pub fn with_seed(mut self, seed: u64) -> Profile {
        self.seed = seed;
        self
    }

    /// Wall-clock time the test clock starts at.
    pub fn with_start_time(mut self, start: SystemTime) -> Profile {
        self.start_time = start.duration_since(UNIX_EPOCH).unwrap_or_default();
        self
    }

    /// Request body limit; a larger body gets a 413 from the host itself
    /// (Envoy `per_connection_buffer_limit_bytes`, Kong `client_max_body_size`; both 1 MiB here).
    pub fn with_body_limit(mut self, bytes: usize) -> Profile {
        self.body_limit = bytes;
        self
    }

    /// Answers every dispatch to `target` with `status` (and no call),
    /// as a host could that returns statuses this profile's host does not
    /// (the SDK's `dispatch_http_call` panicked on any but BadArgument and
    /// InternalFailure).
    pub fn dispatch_status(mut self, target: &str, status: Status) -> Profile {
        self.dispatch_statuses.push((target.to_string(), status));
        self
    }

    /// Kong without an `nginx_wasm_shm_kv` zone: shared-data calls trap.
    pub fn without_shm_kv(mut self) -> Profile {
        self.shm_kv = false;
        self
    }

    /// Accept every WASI import this host implements, not only the profile's own list.
    pub fn allow_all_wasi(mut self) -> Profile {
        self.allow_all_wasi = true;
        self
    }

    /// The client speaks HTTP/2 (the `request.protocol` property says so).
    /// Envoy: end_of_stream comes with the last data chunk. By default (HTTP/1.1 with a content-length, as measured
    /// with curl against Envoy 1.40) the data arrives with end_of_stream =
    /// false and a separate empty chunk carries end_of_stream = true.
    pub fn with_http2(mut self) -> Profile {
        self.http2 = true;
        self
    }

    /// The `plugin_name` property (Envoy) / filter name (Kong).
    pub fn with_plugin_name(mut self, name: impl Into<String>) -> Profile {
        self.plugin_name = name.into();
        self
    }

    /// Which host this is.
    pub fn kind(&self) -> HostKind {
        self.kind
    }

    /// A human name for messages.
    pub fn name(&self) -> &'static str {
        match self.kind {
            HostKind::Envoy => "Envoy 1.40",
            HostKind::Kong => "Kong 3.9 (ngx_wasm_module)",
        }
    }

    /// The Envoy clusters a dispatch may name.
    pub fn clusters(&self) -> impl Iterator<Item = &str> {
        self.clusters.iter().map(String::as_str)
    }

    /// The level `proxy_get_log_level` reports.
    pub fn log_level(&self) -> LogLevel {
        self.log_level
    }

    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    pub(crate) fn start_time(&self) -> Duration {
        self.start_time
    }

    /// Whether Envoy sends end_of_stream in a separate, empty body callback.
    pub(crate) fn separate_end_of_stream(&self) -> bool {
        self.kind == HostKind::Envoy && !self.http2
    }

    /// Whether the client speaks HTTP/2 ([`Profile::with_http2`]).
    pub(crate) fn http2(&self) -> bool {
        self.http2
    }

    pub(crate) fn body_limit(&self) -> usize {
        self.body_limit
    }

    pub(crate) fn shm_kv(&self) -> bool {
        self.shm_kv
    }

    pub(crate) fn plugin_name(&self) -> &str {
        &self.plugin_name
    }

    /// Whether the host provides this `wasi_snapshot_preview1` import.
    pub(crate) fn provides_wasi(&self, name: &str) -> bool {
        if self.allow_all_wasi {
            return ALL_WASI.contains(&name);
        }
        match self.kind {
            HostKind::Envoy => ALL_WASI.contains(&name),
            HostKind::Kong => KONG_WASI.contains(&name),
        }
    }

    /// First HTTP call token and the step between tokens: Envoy 1.40 hands
    /// out 4, 8, 12, ... per VM (measured); ngx_wasm_module 0, 1, 2, ... (a
    /// process-wide `static uint32_t callout_ids = 0`).
    pub(crate) fn call_tokens(&self) -> (u32, u32) {
        match self.kind {
            HostKind::Envoy => (4, 4),
            HostKind::Kong => (0, 1),
        }
    }

    /// Checks a `dispatch_http_call` the way the host does before starting it.
    pub(crate) fn check_dispatch(
        &self,
        target: &str,
        headers: &[(String, String)],
        timeout_ms: u32,
    ) -> Result<(), DispatchRejection> {
        let has = |name: &str| headers.iter().any(|(k, v)| k == name && !v.is_empty());
        if let Some((_, status)) = self.dispatch_statuses.iter().find(|(t, _)| t == target) {
            return Err(DispatchRejection {
                status: *status,
                host_log: None,
            });
        }
        match self.kind {
            HostKind::Envoy => {
                // Context::httpCall: negative timeout, unknown cluster, or a
                // missing :path/:method/:authority are all BadArgument.
                let bad = timeout_ms > i32::MAX as u32
                    || !self.clusters.contains(target)
                    || !headers.iter().any(|(k, _)| k == ":path")
                    || !headers.iter().any(|(k, _)| k == ":method")
                    || !headers.iter().any(|(k, _)| k == ":authority");
                if bad {
                    return Err(DispatchRejection {
                        status: Status::BadArgument,
                        host_log: None,
                    });
                }
                Ok(())
            }
            HostKind::Kong => {
                // ngx_http_proxy_wasm_dispatch: a failure logs "dispatch failed: ..."
                // and the host call returns an error status (result_err).
                let reject = |why: String| DispatchRejection {
                    status: Status::InternalFailure,
                    host_log: Some(format!("dispatch failed: {why}")),
                };
                if let Err(why) = kong_parse_target(target) {
                    return Err(reject(why));
                }
                if !has(":method") {
                    return Err(reject("no :method".into()));
                }
                if !has(":path") {
                    return Err(reject("no :path".into()));
                }
                Ok(())
            }
        }
    }

    /// What a failed call looks like to the filter on this host.
    pub(crate) fn failed_call(&self, failure: Failure) -> FailedCallDelivery {
        match self.kind {
            HostKind::Envoy => {
                // Router local replies inside the async client arrive as
                // ordinary responses (measured with Envoy 1.40).
                let local = |status: u32, body: &str| FailedCallDelivery {
                    has_message: true,
                    headers: vec![
                        (":status".into(), status.to_string()),
                        ("content-length".into(), body.len().to_string()),
                        ("content-type".into(), "text/plain".into()),
                    ],
                    num_headers: 3,
                    body: body.as_bytes().to_vec(),
                    status: (0, String::new()),
                };
                const BEFORE_HEADERS: &str =
                    "upstream connect error or disconnect/reset before headers. reset reason: ";
                match failure {
                    Failure::Reset => FailedCallDelivery {
                        has_message: false,
                        headers: Vec::new(),
                        num_headers: 0,
                        body: Vec::new(),
                        status: (Status::BrokenConnection as u32, "reset".into()),
                    },
                    Failure::ConnectionTerminated => {
                        local(503, &format!("{BEFORE_HEADERS}connection termination"))
                    }
                    Failure::ConnectFailure => {
                        local(503, &format!("{BEFORE_HEADERS}remote connection failure"))
                    }
                    Failure::Timeout => local(504, "upstream request timeout"),
                    Failure::ResolverFailure => local(503, "no healthy upstream"),
                }
            }
            HostKind::Kong => {
                let status = match failure {
                    Failure::Timeout => "timeout",
                    Failure::Reset | Failure::ConnectionTerminated | Failure::ConnectFailure => {
                        "broken connection"
                    }
                    Failure::ResolverFailure => "resolver failure",
                };
                FailedCallDelivery {
                    has_message: true,
                    headers: vec![(":dispatch_status".into(), status.into())],
                    num_headers: 0,
                    body: Vec::new(),
                    status: (0, String::new()),
                }
            }
        }
    }
}

/// Parses a Kong dispatch target like nginx's `ngx_parse_url` (with
/// `default_port = 80`, `no_resolve = 1`): `unix:/path`, `host`, `host:port`,
/// `[v6]:port`.
fn kong_parse_target(target: &str) -> Result<(), String> {
    if let Some(path) = target.strip_prefix("unix:") {
        return if path.is_empty() {
            Err("no path in the unix domain socket".into())
        } else {
            Ok(())
        };
    }
    if target.is_empty() {
        return Err("no host".into());
    }
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| "invalid IPv6 address".to_string())?;
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("invalid host".into()),
        };
        (&rest[..end], port)
    } else {
        match target.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (target, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    if host.contains('/') || host.contains(' ') {
        return Err("invalid host".into());
    }
    if let Some(port) = port {
        match port.parse::<u32>() {
            Ok(p) if (1..=65535).contains(&p) => {}
            _ => return Err("invalid port".into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kong_targets() {
        for ok in [
            "127.0.0.1:8080",
            "functions:8080",
            "localhost",
            "unix:/tmp/s.sock",
            "[::1]:80",
        ] {
            assert!(kong_parse_target(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ":80",
            "host:0",
            "host:99999",
            "host:http",
            "unix:",
            "a/b:80",
        ] {
            assert!(kong_parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn envoy_requires_known_cluster_and_pseudo_headers() {
        let p = Profile::envoy(["openfaas"]);
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let full = h(&[(":method", "POST"), (":path", "/"), (":authority", "x")]);
        assert!(p.check_dispatch("openfaas", &full, 1000).is_ok());
        assert!(p.check_dispatch("other", &full, 1000).is_err());
        let no_auth = h(&[(":method", "POST"), (":path", "/")]);
        assert_eq!(
            p.check_dispatch("openfaas", &no_auth, 1000)
                .unwrap_err()
                .status,
            Status::BadArgument
        );
        assert!(Profile::kong()
            .check_dispatch("fn:8080", &no_auth, 1000)
            .is_ok());
    }
}
