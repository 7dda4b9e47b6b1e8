//! Child processes in their own process group, stopped by PID.
//!
//! Every child is started with `process_group(0)`, so it leads a group whose
//! id is its PID. Stopping sends SIGTERM to that group, waits, then SIGKILL.
//! The leader is reaped only after the signals, so its PID (and group id)
//! cannot be reused in between. On Linux a child also gets SIGKILL when the
//! test harness dies (`PR_SET_PDEATHSIG`), which covers Ctrl-C and a killed
//! `cargo test`, where no destructor runs.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// How long a group gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// A running child; dropping it stops its whole process group.
#[derive(Debug)]
pub struct ProcessGuard {
    name: String,
    child: Child,
    stopped: bool,
}

impl ProcessGuard {
    /// Starts `command` in a new process group.
    pub fn spawn(name: &str, mut command: Command) -> Result<ProcessGuard, String> {
        command.process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name} ({command:?}): {e}"))?;
        Ok(ProcessGuard {
            name: name.to_string(),
            child,
            stopped: false,
        })
    }

    /// The child's PID, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Mutable access to the child (its piped stdio).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// `Err` with a message when the process has exited. It is not reaped,
    /// so the PID stays reserved until [`ProcessGuard::stop`].
    pub fn check_running(&self) -> Result<(), String> {
        match self.exit_status() {
            None => Ok(()),
            Some(status) => Err(format!("{} exited early ({status})", self.name)),
        }
    }

    /// The exit status, without reaping: `None` while it runs.
    fn exit_status(&self) -> Option<String> {
        let pid: libc::id_t = self.pid();
        // SAFETY: an all-zero siginfo_t is a valid value, and waitid only
        // writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is valid for writes; WNOWAIT leaves the child waitable.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: after a successful waitid, si_pid and si_status are set.
        let (child, status) = unsafe { (info.si_pid(), info.si_status()) };
        if rc != 0 {
            // Already reaped (by stop): it is not running.
            return Some("already reaped".into());
        }
        (child != 0).then(|| match info.si_code {
            libc::CLD_EXITED => format!("exit code {status}"),
            _ => format!("killed by signal {status}"),
        })
    }

    /// Waits up to `timeout` for the process to exit by itself, then reaps
    /// it. `None` (still running, stopped later by [`ProcessGuard::stop`]) on
    /// timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.exit_status().is_none() {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever the leader left behind in its group goes too.
        self.signal_group(libc::SIGKILL);
        self.stopped = true;
        self.child.wait().ok()
    }

    fn signal_group(&self, signal: libc::c_int) {
        if let Ok(pgid) = libc::pid_t::try_from(self.pid()) {
            // SAFETY: plain syscall. The leader is not reaped yet, so the
            // group id still names our group.
            unsafe {
                libc::kill(-pgid, signal);
            }
        }
    }

    /// Stops the process group: SIGTERM, up to [`GRACE`] for the leader to
    /// exit, then SIGKILL to whatever is left of the group, then reap.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + GRACE;
        while self.exit_status().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal_group(libc::SIGKILL);
        if let Err(e) = self.child.wait() {
            eprintln!("envoy-e2e: cannot reap {}: {e}", self.name);
        }
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.stop();
    }
}
