//! One sandbox for the trials of a test binary (a libtest-mimic harness):
//! started on first use, shared by every trial, the trials run one after
//! another (they share the functions' counters and the VM), and the
//! sandbox stopped by PID after the last one, pass or fail.

use crate::paths::Paths;
use libtest_mimic::{Arguments, Failed, Trial};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// A trial: a test against the shared sandbox.
pub type Test<S> = fn(&S) -> Result<(), String>;

/// How a test binary's sandbox is started, described and used.
pub struct Harness<S> {
    /// What failure messages call it, e.g. `the answer-cache sandbox`.
    pub name: &'static str,
    /// Starts it (processes, configuration).
    pub start: fn(&Paths) -> Result<S, String>,
    /// The line printed once it is up (ports, PIDs, log).
    pub describe: fn(&S) -> String,
    /// Runs one test on it: resets counters, checks Envoy still runs, adds
    /// the log's tail to a failure... (`|sandbox, test| test(sandbox)` for
    /// nothing more).
    pub each: fn(&S, Test<S>) -> Result<(), String>,
}

impl<S: Send + Sync + 'static> Harness<S> {
    /// Runs `tests` (name, test) serially on one sandbox; the exit code.
    pub fn run(self, tests: &[(&'static str, Test<S>)]) -> ExitCode {
        let mut args = Arguments::from_args();
        args.test_threads = Some(1);
        let shared = Arc::new((Paths::discover(), OnceLock::<Result<S, String>>::new()));
        let harness = Arc::new(self);
        let trials = tests
            .iter()
            .map(|&(name, test)| {
                let shared = Arc::clone(&shared);
                let harness = Arc::clone(&harness);
                Trial::test(name, move || {
                    let (paths, sandbox) = &*shared;
                    let sandbox = sandbox
                        .get_or_init(|| {
                            let started = Instant::now();
                            let sandbox = (harness.start)(paths);
                            if let Ok(s) = &sandbox {
                                eprintln!(
                                    "envoy-e2e: {} up in {:?}: {}",
                                    harness.name,
                                    started.elapsed(),
                                    (harness.describe)(s)
                                );
                            }
                            sandbox
                        })
                        .as_ref()
                        .map_err(|e| {
                            Failed::from(format!("{} did not start: {e}", harness.name))
                        })?;
                    let started = Instant::now();
                    let result = (harness.each)(sandbox, test);
                    eprintln!("envoy-e2e: {name}: {:.1?}", started.elapsed());
                    result.map_err(Failed::from)
                })
            })
            .collect();
        let conclusion = libtest_mimic::run(&args, trials);
        // Teardown, pass or fail: the last reference stops the processes.
        match Arc::try_unwrap(shared) {
            Ok(shared) => drop(shared),
            Err(_) => {
                eprintln!("envoy-e2e: the sandbox is still referenced; its processes die with us")
            }
        }
        conclusion.exit_code()
    }
}
