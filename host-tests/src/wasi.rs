//! `wasi_snapshot_preview1`: the WASI functions a Rust `wasm32-wasip1`
//! filter imports, with each host's behaviour.
//!
//! * `fd_write` to fd 1/2 is captured ([`crate::Plugin::stdout`] /
//!   [`crate::Plugin::stderr`]); other fds get `EBADF`.
//! * `random_get` is a deterministic stream from the profile's seed.
//! * `clock_time_get` reads the test clock (realtime = 0 and monotonic = 1;
//!   both hosts know both; Envoy 1.40 was checked with `std::time::Instant`).
//! * `environ_*`/`args_*` are empty; `proc_exit` is a violation and a trap.
//! * Which names exist is the profile's list (see `profile.rs`): a module
//!   importing anything else fails to instantiate, as it would on that host.

use crate::profile::{HostKind, ALL_WASI};
use crate::state::{mem, HostState};
use wasmi::{Caller, Error, Linker};

type Ctx<'a> = Caller<'a, HostState>;
type R = Result<i32, Error>;

const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const ENOSYS: i32 = 52;
const ENOTDIR: i32 = 54;
const ENOTSUP: i32 = 58;

const MODULE: &str = "wasi_snapshot_preview1";

/// Every WASI function this host defines (before the profile filters them).
pub(crate) fn names() -> &'static [&'static str] {
    ALL_WASI
}

/// Registers the WASI functions on `linker`.
pub(crate) fn define(linker: &mut Linker<HostState>) -> Result<(), wasmi::errors::LinkerError> {
    linker.func_wrap(MODULE, "fd_write", fd_write)?;
    linker.func_wrap(MODULE, "fd_read", fd_read)?;
    linker.func_wrap(MODULE, "fd_seek", fd_seek)?;
    linker.func_wrap(MODULE, "fd_close", fd_close)?;
    linker.func_wrap(MODULE, "fd_fdstat_get", fd_fdstat_get)?;
    linker.func_wrap(MODULE, "fd_prestat_get", fd_prestat_get)?;
    linker.func_wrap(MODULE, "fd_prestat_dir_name", fd_prestat_dir_name)?;
    linker.func_wrap(MODULE, "path_open", path_open)?;
    linker.func_wrap(MODULE, "environ_get", environ_get)?;
    linker.func_wrap(MODULE, "environ_sizes_get", environ_sizes_get)?;
    linker.func_wrap(MODULE, "args_get", args_get)?;
    linker.func_wrap(MODULE, "args_sizes_get", args_sizes_get)?;
    linker.func_wrap(MODULE, "clock_time_get", clock_time_get)?;
    linker.func_wrap(MODULE, "random_get", random_get)?;
    linker.func_wrap(MODULE, "proc_exit", proc_exit)?;
    linker.func_wrap(MODULE, "sched_yield", sched_yield)?;
    linker.func_wrap(MODULE, "poll_oneoff", poll_oneoff)?;
    linker.func_wrap(MODULE, "clock_res_get", clock_res_get)?;
    linker.func_wrap(MODULE, "fd_fdstat_set_flags", fd_fdstat_set_flags)?;
    Ok(())
}

fn fault(caller: &mut Ctx<'_>, call: &str, what: &str) -> R {
    caller
        .data_mut()
        .violation(call, format!("{what}: pointer outside the VM's memory"));
    Ok(EFAULT)
}

fn kong(caller: &Ctx<'_>) -> bool {
    caller.data().kind() == HostKind::Kong
}

fn fd_write(mut caller: Ctx<'_>, fd: i32, iovs: i32, iovs_len: i32, nwritten_ptr: i32) -> R {
    if fd != 1 && fd != 2 {
        return Ok(EBADF);
    }
    let mut out = Vec::new();
    for i in 0..iovs_len as u32 {
        let at = iovs.wrapping_add((i * 8) as i32);
        let (Some(ptr), Some(len)) = (
            mem::read_u32(&caller, at),
            mem::read_u32(&caller, at.wrapping_add(4)),
        ) else {
            return fault(&mut caller, "fd_write", "iovec");
        };
        match mem::read(&caller, ptr as i32, len as i32) {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => return fault(&mut caller, "fd_write", "iovec buffer"),
        }
    }
    let written = out.len() as u32;
    let state = caller.data_mut();
    if fd == 1 {
        state.stdout.extend_from_slice(&out);
    } else {
        state.stderr.extend_from_slice(&out);
    }
    if !mem::write_u32(&mut caller, nwritten_ptr, written) {
        return fault(&mut caller, "fd_write", "nwritten");
    }
    Ok(SUCCESS)
}

fn fd_read(caller: Ctx<'_>, _fd: i32, _iovs: i32, _len: i32, _nread: i32) -> R {
    Ok(if kong(&caller) { EBADF } else { ENOSYS })
}

fn fd_seek(caller: Ctx<'_>, _fd: i32, _offset: i64, _whence: i32, _new: i32) -> R {
    Ok(if kong(&caller) { EBADF } else { SUCCESS })
}

fn fd_close(caller: Ctx<'_>, _fd: i32) -> R {
    Ok(if kong(&caller) { EBADF } else { SUCCESS })
}

fn fd_fdstat_get(mut caller: Ctx<'_>, fd: i32, stat_ptr: i32) -> R {
    // ngx_wasm_module: EBADF for every fd. proxy-wasm-cpp-host: stdout and
    // stderr are character devices with the fd_write right.
    if kong(&caller) || (fd != 1 && fd != 2) {
        return Ok(EBADF);
    }
    let mut stat = [0u8; 24];
    stat[8..16].copy_from_slice(&64u64.to_le_bytes());
    if !mem::write(&mut caller, stat_ptr, &stat) {
        return fault(&mut caller, "fd_fdstat_get", "fdstat");
    }
    Ok(SUCCESS)
}

fn fd_prestat_get(_caller: Ctx<'_>, _fd: i32, _ptr: i32) -> R {
    Ok(EBADF)
}

fn fd_prestat_dir_name(_caller: Ctx<'_>, _fd: i32, _ptr: i32, _len: i32) -> R {
    Ok(ENOTSUP)
}

#[allow(clippy::too_many_arguments)]
fn path_open(
    _caller: Ctx<'_>,
    _fd: i32,
    _dirflags: i32,
    _path: i32,
    _path_len: i32,
    _oflags: i32,
    _rights: i64,
    _inheriting: i64,
    _fdflags: i32,
    _fd_ptr: i32,
) -> R {
    Ok(ENOTDIR)
}

fn environ_get(_caller: Ctx<'_>, _environ: i32, _buf: i32) -> R {
    Ok(SUCCESS)
}

fn environ_sizes_get(mut caller: Ctx<'_>, count_ptr: i32, size_ptr: i32) -> R {
    if !mem::write_u32(&mut caller, count_ptr, 0) || !mem::write_u32(&mut caller, size_ptr, 0) {
        return fault(&mut caller, "environ_sizes_get", "result");
    }
    Ok(SUCCESS)
}

fn args_get(_caller: Ctx<'_>, _argv: i32, _buf: i32) -> R {
    Ok(SUCCESS)
}

fn args_sizes_get(mut caller: Ctx<'_>, count_ptr: i32, size_ptr: i32) -> R {
    if !mem::write_u32(&mut caller, count_ptr, 0) || !mem::write_u32(&mut caller, size_ptr, 0) {
        return fault(&mut caller, "args_sizes_get", "result");
    }
    Ok(SUCCESS)
}

fn clock_time_get(mut caller: Ctx<'_>, clock: i32, _precision: i64, time_ptr: i32) -> R {
    let state = caller.data();
    let now = match clock {
        0 => state.wall.as_nanos() as u64,
        1 => state.monotonic.as_nanos() as u64,
        _ => return Ok(ENOTSUP),
    };
    if !mem::write_u64(&mut caller, time_ptr, now) {
        return fault(&mut caller, "clock_time_get", "time");
    }
    Ok(SUCCESS)
}

fn clock_res_get(mut caller: Ctx<'_>, clock: i32, res_ptr: i32) -> R {
    if clock != 0 && clock != 1 {
        return Ok(ENOTSUP);
    }
    if !mem::write_u64(&mut caller, res_ptr, 1) {
        return fault(&mut caller, "clock_res_get", "resolution");
    }
    Ok(SUCCESS)
}

fn fd_fdstat_set_flags(_caller: Ctx<'_>, fd: i32, _flags: i32) -> R {
    Ok(if fd == 1 || fd == 2 { SUCCESS } else { EBADF })
}

fn random_get(mut caller: Ctx<'_>, buf: i32, len: i32) -> R {
    let len = len as u32 as usize;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        let word = caller.data_mut().next_random();
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    bytes.truncate(len);
    if !mem::write(&mut caller, buf, &bytes) {
        return fault(&mut caller, "random_get", "buffer");
    }
    Ok(SUCCESS)
}

fn proc_exit(mut caller: Ctx<'_>, code: i32) -> Result<(), Error> {
    caller
        .data_mut()
        .violation("proc_exit", format!("the module called proc_exit({code})"));
    Err(Error::i32_exit(code))
}

fn sched_yield(_caller: Ctx<'_>) -> R {
    Ok(SUCCESS)
}

fn poll_oneoff(mut caller: Ctx<'_>, _in: i32, _out: i32, _n: i32, _nevents: i32) -> R {
    caller.data_mut().violation(
        "poll_oneoff",
        "the module tried to block (thread::sleep?) inside a gateway worker",
    );
    Ok(ENOTSUP)
}
