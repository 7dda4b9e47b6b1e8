//! Errors of loading and instantiating a module.

use std::fmt;

/// Why a module could not be loaded or a plugin could not start.
#[derive(Debug)]
pub enum HostError {
    /// The `.wasm` file could not be read.
    Io {
        /// The path that was read.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// wasmi rejected the module (invalid Wasm, unsupported feature).
    Compile(String),
    /// The module imports functions the profile's host does not provide (or
    /// that this test host does not implement; each entry says which).
    MissingImports {
        /// The profile's host name.
        host: &'static str,
        /// `module::name` of each import that is missing.
        imports: Vec<String>,
    },
    /// Instantiation failed (a signature mismatch, a trapping start function).
    Instantiate(String),
    /// A required export is missing or has the wrong type.
    Export(String),
    /// `_initialize`, `proxy_on_context_create` or `proxy_on_vm_start` trapped or failed.
    Start(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Io { path, error } => write!(f, "cannot read {path}: {error}"),
            HostError::Compile(e) => write!(f, "cannot compile the module: {e}"),
            HostError::MissingImports { host, imports } => write!(
                f,
                "the module imports functions the test host cannot provide under the {host} profile: {}",
                imports.join(", ")
            ),
            HostError::Instantiate(e) => write!(f, "cannot instantiate the module: {e}"),
            HostError::Export(e) => write!(f, "bad exports: {e}"),
            HostError::Start(e) => write!(f, "the VM did not start: {e}"),
        }
    }
}

impl std::error::Error for HostError {}
