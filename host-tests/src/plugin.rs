//! [`Plugin`]: one filter instance (one VM with its root context) as a
//! gateway worker holds it.

use crate::error::HostError;
use crate::module::Module;
use crate::profile::{Failure, Profile};
use crate::request::Request;
use crate::state::Phase;
use crate::types::{Call, CallState, Delivery, LogLine, Metric, Violation};
use crate::vm::{Bounds, Vm};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A configured filter in a fresh VM.
///
/// Starting one runs `_initialize` (when exported),
/// `proxy_on_context_create(root, 0)`, `proxy_on_vm_start` and
/// `proxy_on_configure` with the configuration readable as the
/// `PluginConfiguration` buffer. Every method checks the recorded ABI
/// violations and panics with a report when there are new ones (unless
/// [`Plugin::set_strict`] turned that off); so does dropping the plugin.
pub struct Plugin {
    vm: Rc<RefCell<Vm>>,
}

/// Options for starting a [`Plugin`].
pub struct PluginBuilder {
    module: Module,
    profile: Profile,
    vm_configuration: Vec<u8>,
    configuration: Vec<u8>,
    strict: bool,
    bounds: Bounds,
}

impl PluginBuilder {
    /// The VM configuration (`VmConfiguration` buffer, `proxy_on_vm_start`'s size).
    pub fn vm_configuration(mut self, bytes: impl AsRef<[u8]>) -> PluginBuilder {
        self.vm_configuration = bytes.as_ref().to_vec();
        self
    }

    /// The plugin configuration (`PluginConfiguration` buffer).
    pub fn configuration(mut self, bytes: impl AsRef<[u8]>) -> PluginBuilder {
        self.configuration = bytes.as_ref().to_vec();
        self
    }

    /// Collect violations instead of panicking (read them with [`Plugin::take_violations`]).
    pub fn lenient(mut self) -> PluginBuilder {
        self.strict = false;
        self
    }

    /// At most `fuel` Wasm instructions in all, starting the VM included:
    /// then the filter traps ("all fuel consumed"), which fails the test like
    /// any trap. Needs a metered module ([`Module::load_cached_metered`]);
    /// a metered module without a budget runs unbounded.
    pub fn fuel(mut self, fuel: u64) -> PluginBuilder {
        self.bounds.fuel = Some(fuel);
        self
    }

    /// The linear memory may grow to at most `bytes`; past that
    /// `memory.grow` fails (the filter's allocator then aborts: a trap).
    pub fn max_memory_bytes(mut self, bytes: usize) -> PluginBuilder {
        self.bounds.max_memory_bytes = Some(bytes);
        self
    }

    /// Instantiates and starts the VM.
    pub fn start(self) -> Result<Plugin, HostError> {
        let mut vm = Vm::start(
            &self.module,
            self.profile,
            self.vm_configuration,
            self.configuration,
            self.bounds,
        )?;
        vm.strict = self.strict;
        let plugin = Plugin {
            vm: Rc::new(RefCell::new(vm)),
        };
        plugin.check();
        Ok(plugin)
    }
}

impl Plugin {
    /// Starts `module` under `profile` with plugin configuration `configuration`.
    ///
    /// # Panics
    /// When the module cannot be instantiated (e.g. it imports a function the
    /// profile's host lacks; the message names it) or traps while starting.
    pub fn new(module: &Module, profile: Profile, configuration: impl AsRef<[u8]>) -> Plugin {
        match Plugin::builder(module, profile)
            .configuration(configuration)
            .start()
        {
            Ok(plugin) => plugin,
            Err(e) => panic!("host-tests: cannot start {}: {e}", module.name()),
        }
    }

    /// Like [`Plugin::new`] but returns the error.
    pub fn try_new(
        module: &Module,
        profile: Profile,
        configuration: impl AsRef<[u8]>,
    ) -> Result<Plugin, HostError> {
        Plugin::builder(module, profile)
            .configuration(configuration)
            .start()
    }

    /// A builder for the less common options.
    pub fn builder(module: &Module, profile: Profile) -> PluginBuilder {
        PluginBuilder {
            module: module.clone(),
            profile,
            vm_configuration: Vec::new(),
            configuration: Vec::new(),
            strict: true,
            bounds: Bounds::default(),
        }
    }

    fn check(&self) {
        self.vm.borrow_mut().check();
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vm) -> T) -> T {
        let out = f(&mut self.vm.borrow_mut());
        self.check();
        out
    }

    /// What the last `proxy_on_configure` returned (false = configuration rejected).
    pub fn configured(&self) -> bool {
        self.with(|vm| vm.configured)
    }

    /// What `proxy_on_vm_start` returned.
    pub fn vm_started(&self) -> bool {
        self.with(|vm| vm.vm_started)
    }

    /// Runs `proxy_on_configure` again on the same root context with a new
    /// configuration; requests in flight carry on. Returns its result.
    pub fn reconfigure(&self, configuration: impl AsRef<[u8]>) -> bool {
        let configuration = configuration.as_ref().to_vec();
        self.with(|vm| {
            vm.store.data_mut().plugin_config = configuration;
            vm.configure()
        })
    }

    /// A new downstream request with these headers (pseudo-headers included).
    /// The headers reach the filter with the first of [`Request::body`],
    /// [`Request::body_chunks`], [`Request::body_chunk`] or [`Request::end`],
    /// since Envoy's `end_of_stream` depends on whether a body follows.
    pub fn request(&self, headers: &[(&str, &str)]) -> Request {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let id = self.with(|vm| vm.create_request(headers));
        Request::new(self.vm.clone(), id)
    }

    /// Every `proxy_log` line so far.
    pub fn logs(&self) -> Vec<LogLine> {
        self.with(|vm| vm.store.data().logs.clone())
    }

    /// Whether some log line contains `needle`.
    pub fn has_log(&self, needle: &str) -> bool {
        self.with(|vm| {
            vm.store
                .data()
                .logs
                .iter()
                .any(|l| l.message.contains(needle))
        })
    }

    /// Lines the host itself logged (e.g. Kong's "dispatch failed: ...").
    pub fn host_logs(&self) -> Vec<String> {
        self.with(|vm| vm.store.data().host_logs.clone())
    }

    /// What the filter wrote to stdout.
    pub fn stdout(&self) -> String {
        self.with(|vm| String::from_utf8_lossy(&vm.store.data().stdout).into_owned())
    }

    /// What the filter wrote to stderr.
    pub fn stderr(&self) -> String {
        self.with(|vm| String::from_utf8_lossy(&vm.store.data().stderr).into_owned())
    }

    /// Size of the VM's linear memory in bytes (it only grows).
    pub fn memory_size_bytes(&self) -> usize {
        self.with(|vm| match vm.store.data().memory {
            Some(memory) => memory.data_size(&vm.store),
            None => 0,
        })
    }

    /// The fuel left, on a metered module ([`PluginBuilder::fuel`]).
    pub fn fuel_left(&self) -> Option<u64> {
        self.with(|vm| vm.store.get_fuel().ok())
    }

    /// Every metric the filter defined.
    pub fn metrics(&self) -> Vec<Metric> {
        self.with(|vm| vm.store.data().metrics.clone())
    }

    /// The metric called `name`.
    pub fn metric(&self, name: &str) -> Option<Metric> {
        self.with(|vm| {
            vm.store
                .data()
                .metrics
                .iter()
                .find(|m| m.name == name)
                .cloned()
        })
    }

    /// A shared-data value.
    pub fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        self.with(|vm| vm.store.data().shared.get(key).map(|(v, _)| v.clone()))
    }

    /// Sets a property the filter can read with `proxy_get_property`.
    pub fn set_property(&self, path: &[&str], value: impl AsRef<[u8]>) {
        let key = path.join("\0").into_bytes();
        let value = value.as_ref().to_vec();
        self.with(|vm| {
            vm.store.data_mut().properties.insert(key, value);
        })
    }

    /// Every HTTP call dispatched so far (any request, or the root context), with its state.
    pub fn calls(&self) -> Vec<(Call, CallState)> {
        self.with(|vm| {
            vm.store
                .data()
                .calls
                .values()
                .map(|c| (c.call.clone(), c.state))
                .collect()
        })
    }

    /// Calls still waiting for an answer, from any context.
    pub fn pending_calls(&self) -> Vec<Call> {
        self.with(|vm| {
            vm.store
                .data()
                .calls
                .values()
                .filter(|c| c.state == CallState::Pending)
                .map(|c| c.call.clone())
                .collect()
        })
    }

    /// Answers any call by token (see [`Request::respond`]); for calls made
    /// from the root context, or late answers after a request ended.
    pub fn respond(
        &self,
        token: u32,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Delivery {
        self.with(|vm| vm.respond(token, status, headers, body))
    }

    /// Fails any call by token (see [`Request::fail`]).
    pub fn fail(&self, token: u32, failure: Failure) -> Delivery {
        self.with(|vm| vm.fail(token, failure))
    }

    /// Runs `proxy_on_tick` once, now.
    pub fn tick(&self) {
        self.with(|vm| vm.tick())
    }

    /// Moves the test clock (wall and monotonic) forward by `by`, running
    /// `proxy_on_tick` for every tick period that elapses.
    pub fn advance(&self, by: Duration) {
        self.with(|vm| vm.advance(by))
    }

    /// The test clock's wall time.
    pub fn now(&self) -> SystemTime {
        self.with(|vm| UNIX_EPOCH + vm.store.data().wall)
    }

    /// The tick period the filter asked for.
    pub fn tick_period(&self) -> Option<Duration> {
        self.with(|vm| vm.store.data().tick_period)
    }

    /// Number of http contexts created and not yet deleted.
    pub fn live_requests(&self) -> usize {
        self.with(|vm| {
            vm.store
                .data()
                .http
                .values()
                .filter(|c| c.phase != Phase::Deleted)
                .count()
        })
    }

    /// The root context's id: the [`Call::context_id`] of calls the root
    /// context dispatched (e.g. from its tick).
    pub fn root_id(&self) -> u32 {
        self.with(|vm| vm.root_id())
    }

    /// The profile this plugin runs under.
    pub fn profile(&self) -> Profile {
        self.with(|vm| vm.store.data().profile.clone())
    }

    /// Whether the VM trapped (and is now broken, as in a gateway).
    pub fn trapped(&self) -> Option<String> {
        self.with(|vm| vm.failed.clone())
    }

    /// Turns panicking on violations on (default) or off.
    pub fn set_strict(&self, strict: bool) {
        self.vm.borrow_mut().strict = strict;
    }

    /// All violations recorded so far (reported or not).
    pub fn violations(&self) -> Vec<Violation> {
        self.vm.borrow().store.data().violations.clone()
    }

    /// Returns the violations not yet reported and marks them reported.
    pub fn take_violations(&self) -> Vec<Violation> {
        let mut vm = self.vm.borrow_mut();
        let all = vm.store.data().violations.clone();
        let new = all[vm.reported.min(all.len())..].to_vec();
        vm.reported = all.len();
        new
    }

    /// Logs, host logs, stderr and hints, as printed on failures.
    pub fn report(&self) -> String {
        self.vm.borrow().context_report()
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if let Ok(mut vm) = self.vm.try_borrow_mut() {
            vm.check();
        }
    }
}
