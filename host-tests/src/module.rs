//! Compiling a `.wasm` once and sharing it between plugins and tests.

use crate::error::HostError;
use crate::imports;
use crate::profile::Profile;
use crate::state::HostState;
use crate::wasi;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use wasmi::{Config, Engine, ExternType, Linker};

/// A compiled Proxy-Wasm module. Cheap to clone (it is an `Arc`); every
/// [`crate::Plugin`] made from it gets its own fresh VM (store + instance).
#[derive(Clone)]
pub struct Module {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    size: usize,
    /// Compiled with fuel metering (see [`Module::load_cached_metered`]).
    metered: bool,
    engine: Engine,
    module: wasmi::Module,
    linker: Linker<HostState>,
    imports: Vec<(String, String)>,
    exports: Vec<String>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.inner.name)
            .field("size", &self.inner.size)
            .finish()
    }
}

fn engine(metered: bool) -> Engine {
    let mut config = Config::default();
    // Parsers and validators recurse; give them room comparable to V8's.
    config.set_max_recursion_depth(10_000);
    config.set_max_stack_height(16 * 1024 * 1024);
    config.consume_fuel(metered);
    Engine::new(&config)
}

fn linker(engine: &Engine) -> Result<Linker<HostState>, HostError> {
    let mut linker = Linker::new(engine);
    imports::define(&mut linker)
        .map_err(|e| HostError::Compile(format!("host function table: {e}")))?;
    wasi::define(&mut linker)
        .map_err(|e| HostError::Compile(format!("WASI function table: {e}")))?;
    Ok(linker)
}

impl Module {
    /// Reads and compiles `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Module, HostError> {
        Module::load_with(path.as_ref(), false)
    }

    fn load_with(path: &Path, metered: bool) -> Result<Module, HostError> {
        let bytes = std::fs::read(path).map_err(|error| HostError::Io {
            path: path.display().to_string(),
            error,
        })?;
        Module::compile(path.display().to_string(), &bytes, metered)
    }

    /// Like [`Module::load`], but compiles each path only once per process
    /// (test binary) and hands out clones afterwards.
    pub fn load_cached(path: impl AsRef<Path>) -> Result<Module, HostError> {
        Module::load_cached_with(path.as_ref(), false)
    }

    /// Like [`Module::load_cached`], compiled with fuel metering: a plugin
    /// of it runs at most [`crate::PluginBuilder::fuel`] Wasm instructions
    /// in all, then traps ("all fuel consumed"). Tests that could make a
    /// filter run away use it, so that they fail in bounded time instead
    /// of hanging.
    pub fn load_cached_metered(path: impl AsRef<Path>) -> Result<Module, HostError> {
        Module::load_cached_with(path.as_ref(), true)
    }

    fn load_cached_with(path: &Path, metered: bool) -> Result<Module, HostError> {
        static CACHE: OnceLock<Mutex<HashMap<(PathBuf, bool), Module>>> = OnceLock::new();
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        let mut cache = cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(module) = cache.get(&(key.clone(), metered)) {
            return Ok(module.clone());
        }
        let module = Module::load_with(&key, metered)?;
        cache.insert((key, metered), module.clone());
        Ok(module)
    }

    /// Compiles a module from binary Wasm (or WAT text, handy for small tests);
    /// `name` is used in messages.
    pub fn from_bytes(name: impl Into<String>, bytes: &[u8]) -> Result<Module, HostError> {
        Module::compile(name, bytes, false)
    }

    fn compile(name: impl Into<String>, bytes: &[u8], metered: bool) -> Result<Module, HostError> {
        let engine = engine(metered);
        let module =
            wasmi::Module::new(&engine, bytes).map_err(|e| HostError::Compile(e.to_string()))?;
        let imports = module
            .imports()
            .map(|i| (i.module().to_string(), i.name().to_string()))
            .collect();
        let exports = module.exports().map(|e| e.name().to_string()).collect();
        let linker = linker(&engine)?;
        Ok(Module {
            inner: Arc::new(Inner {
                name: name.into(),
                size: bytes.len(),
                metered,
                engine,
                module,
                linker,
                imports,
                exports,
            }),
        })
    }

    /// The name it was loaded under (its path for [`Module::load`]).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Size of the Wasm binary in bytes.
    pub fn size_bytes(&self) -> usize {
        self.inner.size
    }

    /// Whether it was compiled with fuel metering.
    pub fn is_metered(&self) -> bool {
        self.inner.metered
    }

    /// `(module, name)` of every import, in the module's order.
    pub fn imports(&self) -> &[(String, String)] {
        &self.inner.imports
    }

    /// Names of every export.
    pub fn exports(&self) -> &[String] {
        &self.inner.exports
    }

    /// Whether the module exports `name`.
    pub fn exports_fn(&self, name: &str) -> bool {
        matches!(
            self.inner.module.get_export(name),
            Some(ExternType::Func(_))
        )
    }

    /// Checks that `profile`'s host provides every function the module
    /// imports; the error names each missing `module::name`.
    pub fn check_imports(&self, profile: &Profile) -> Result<(), HostError> {
        let missing: Vec<String> = self
            .inner
            .imports
            .iter()
            .filter_map(|(module, name)| {
                let why = match module.as_str() {
                    "env" if imports::ENV_FUNCTIONS.contains(&name.as_str()) => return None,
                    "env" => {
                        "not a Proxy-Wasm ABI 0.2.1 host function; host-tests does not provide it"
                    }
                    "wasi_snapshot_preview1" if profile.provides_wasi(name) => return None,
                    "wasi_snapshot_preview1" if wasi::names().contains(&name.as_str()) => {
                        match profile.kind() {
                            crate::profile::HostKind::Kong => "ngx_wasm_module does not provide it",
                            crate::profile::HostKind::Envoy => "not provided by this profile",
                        }
                    }
                    "wasi_snapshot_preview1" => "host-tests does not implement it",
                    _ => "unknown import module",
                };
                Some(format!("{module}::{name} ({why})"))
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(HostError::MissingImports {
                host: profile.name(),
                imports: missing,
            })
        }
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn wasmi(&self) -> &wasmi::Module {
        &self.inner.module
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.inner.linker
    }
}
