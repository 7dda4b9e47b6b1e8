//! `mock-functions`: small HTTP/JSON functions (OpenFaaS-style) used by the
//! graphql-aggregator demo, end-to-end tests and benchmarks.
//!
//! Every function is served at `/<name>` and at `/function/<name>`;
//! `/_stats`, `/_reset` and `/_health` expose call counters, and
//! `/_registry/<name>` keeps configuration documents. See `--help`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod cli;
mod registry;
mod routes;
mod stats;

use std::future::IntoFuture;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

/// How long in-flight requests may still run after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let config = match cli::parse(std::env::args().skip(1)) {
        Ok(cli::Command::Run(config)) => config,
        Ok(cli::Command::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("mock-functions: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let documents = match read_registry_files(&config) {
        Ok(documents) => documents,
        Err(message) => return startup_error(message),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return startup_error(format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(serve(config, documents))
}

/// The `--registry-file` documents, `(name, bytes)`, read before the server
/// listens.
fn read_registry_files(config: &cli::Config) -> Result<Vec<(String, Bytes)>, String> {
    config
        .registry_files
        .iter()
        .map(|(name, path)| {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("--registry-file: cannot read {}: {e}", path.display()))?;
            if bytes.len() > registry::MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "--registry-file: {} is larger than {} bytes",
                    path.display(),
                    registry::MAX_DOCUMENT_BYTES
                ));
            }
            Ok((name.clone(), Bytes::from(bytes)))
        })
        .collect()
}

fn startup_error(message: String) -> ExitCode {
    eprintln!("mock-functions: {message}");
    ExitCode::from(2)
}

async fn serve(config: cli::Config, documents: Vec<(String, Bytes)>) -> ExitCode {
    // Signal handlers go in before announcing readiness so that a signal sent
    // right after the `listening on` line is never missed.
    let (stop_serving, stop_waiting) = match (Shutdown::new(), Shutdown::new()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return startup_error(format!("cannot install signal handlers: {e}"))
        }
    };
    let listener = match TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => return startup_error(format!("cannot listen on {}: {e}", config.listen)),
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => return startup_error(format!("cannot read the listening address: {e}")),
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "listening on {addr}").and_then(|()| stdout.flush()) {
        return startup_error(format!("cannot write to stdout: {e}"));
    }
    drop(stdout);

    let state = routes::AppState::new(config);
    for (name, body) in documents {
        state.registry.put(&name, body);
    }
    let app = routes::router(Arc::new(state));
    // Small JSON answers: never let Nagle's algorithm delay them.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(stop_serving.wait())
        .into_future();
    let forced = async {
        stop_waiting.wait().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mock-functions: server error: {e}");
                ExitCode::FAILURE
            }
        },
        () = forced => ExitCode::SUCCESS,
    }
}

/// Waits for SIGTERM or SIGINT; each instance is notified independently.
struct Shutdown {
    #[cfg(unix)]
    signals: [tokio::signal::unix::Signal; 2],
}

impl Shutdown {
    #[cfg(unix)]
    fn new() -> std::io::Result<Shutdown> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Shutdown {
            signals: [
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ],
        })
    }

    #[cfg(not(unix))]
    fn new() -> std::io::Result<Shutdown> {
        Ok(Shutdown {})
    }

    #[cfg(unix)]
    async fn wait(self) {
        let [mut term, mut int] = self.signals;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }

    #[cfg(not(unix))]
    async fn wait(self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
