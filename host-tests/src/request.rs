//! [`Request`]: one downstream request through the filter (one http context).

use crate::profile::Failure;
use crate::state::Phase;
use crate::types::{Call, CallState, Delivery, LocalReply};
use crate::vm::Vm;
use std::cell::RefCell;
use std::rc::Rc;

/// A downstream request in flight on a [`crate::Plugin`].
///
/// Many can be open on one plugin at once (each has its own context id) and
/// their calls can be answered in any order. The request ends (`proxy_on_done`,
/// `proxy_on_log`, `proxy_on_delete`) when the filter replies locally or
/// resets it, on [`Request::finish`], or when it is dropped.
pub struct Request {
    vm: Rc<RefCell<Vm>>,
    id: u32,
}

impl Request {
    pub(crate) fn new(vm: Rc<RefCell<Vm>>, id: u32) -> Request {
        Request { vm, id }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vm) -> T) -> T {
        let out = f(&mut self.vm.borrow_mut());
        self.vm.borrow_mut().check();
        out
    }

    fn started(&self) -> bool {
        self.vm
            .borrow()
            .store
            .data()
            .http
            .get(&self.id)
            .is_some_and(|c| c.phase != Phase::New)
    }

    fn require_started(&self, what: &str) {
        assert!(
            self.started(),
            "host-tests: {what} on request {} before its headers were sent: call body(), body_chunks(), body_chunk() or end() first",
            self.id
        );
    }

    /// The http context id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends the headers (if not sent yet) and the whole body, the way the
    /// profile's host delivers it. Envoy: headers with end_of_stream = false,
    /// then the data with end_of_stream = false and an empty chunk with
    /// end_of_stream = true (HTTP/1.1, measured; `Profile::with_http2` puts
    /// end_of_stream on the data); an empty body means headers with
    /// end_of_stream = true. Kong: headers (never end_of_stream), then one
    /// `on_http_request_body` with eof, and none at all for an empty body.
    pub fn body(&mut self, body: &[u8]) -> &mut Request {
        if body.is_empty() && !self.started() {
            return self.end();
        }
        self.body_chunk(body, true)
    }

    /// Sends the body in these chunks. Envoy calls `on_http_request_body` per
    /// chunk with the size buffered so far (cumulative while the filter
    /// pauses), end_of_stream as in [`Request::body`]; Kong still delivers
    /// the whole body once.
    pub fn body_chunks(&mut self, chunks: &[&[u8]]) -> &mut Request {
        if chunks.is_empty() {
            return self.body(&[]);
        }
        for (i, chunk) in chunks.iter().enumerate() {
            self.body_chunk(chunk, i + 1 == chunks.len());
        }
        self
    }

    /// Sends one body chunk (headers first if not sent yet, with end_of_stream = false).
    pub fn body_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> &mut Request {
        let id = self.id;
        let started = self.started();
        self.with(|vm| {
            if !started {
                vm.deliver_headers(id, false);
            }
            vm.deliver_body(id, chunk, end_of_stream);
        });
        self
    }

    /// Sends the headers of a request without a body (a GET): Envoy passes
    /// end_of_stream = true; Kong passes false and never calls `on_http_request_body`.
    pub fn end(&mut self) -> &mut Request {
        let id = self.id;
        assert!(
            !self.started(),
            "host-tests: end() on request {id} whose headers were already sent"
        );
        self.with(|vm| vm.deliver_headers(id, true));
        self
    }

    /// Calls this request dispatched that wait for an answer.
    pub fn pending_calls(&self) -> Vec<Call> {
        self.require_started("pending_calls()");
        self.calls_in(&[CallState::Pending])
    }

    /// Every call this request dispatched, answered or not.
    pub fn calls(&self) -> Vec<Call> {
        self.calls_in(&[
            CallState::Pending,
            CallState::Answered,
            CallState::Cancelled,
            CallState::Orphaned,
        ])
    }

    fn calls_in(&self, states: &[CallState]) -> Vec<Call> {
        let id = self.id;
        self.with(|vm| {
            vm.store
                .data()
                .calls
                .values()
                .filter(|c| c.call.context_id == id && states.contains(&c.state))
                .map(|c| c.call.clone())
                .collect()
        })
    }

    /// Where call `token` stands.
    pub fn call_state(&self, token: u32) -> Option<CallState> {
        self.with(|vm| vm.store.data().calls.get(&token).map(|c| c.state))
    }

    fn own_call(&self, token: u32) {
        let vm = self.vm.borrow();
        match vm.store.data().calls.get(&token) {
            None => panic!(
                "host-tests: unknown call token {token} (request {})",
                self.id
            ),
            Some(c) if c.call.context_id != self.id => panic!(
                "host-tests: call token {token} belongs to context {}, not to request {}",
                c.call.context_id, self.id
            ),
            Some(_) => {}
        }
    }

    /// Answers call `token` with an HTTP response (`:status` is added).
    /// Returns whether the filter saw it: a call the host cancelled (Kong
    /// after a reply) is [`Delivery::Dropped`]; Envoy delivers late answers to
    /// the root context ([`Delivery::DeliveredToRoot`]).
    pub fn respond(
        &mut self,
        token: u32,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Delivery {
        self.own_call(token);
        self.with(|vm| vm.respond(token, status, headers, body))
    }

    /// Fails call `token` the way the profile's host reports `failure` (see
    /// [`Failure`]: on Envoy only a reset mid-response arrives with 0 headers,
    /// timeouts and connection errors are 504/503 responses; on Kong every
    /// failure is 0 headers plus a `:dispatch_status` pseudo-header).
    pub fn fail(&mut self, token: u32, failure: Failure) -> Delivery {
        self.own_call(token);
        self.with(|vm| vm.fail(token, failure))
    }

    /// The local reply, once the filter (or the host) sent one.
    pub fn reply(&self) -> Option<LocalReply> {
        let id = self.id;
        self.with(|vm| vm.store.data().http.get(&id).and_then(|c| c.reply.clone()))
    }

    /// The local reply; panics with the filter's recent logs when there is none.
    pub fn expect_reply(&self) -> LocalReply {
        match self.reply() {
            Some(reply) => reply,
            None => {
                let vm = self.vm.borrow();
                panic!(
                    "host-tests: request {} has no local reply\n{}",
                    self.id,
                    vm.context_report()
                )
            }
        }
    }

    /// Whether the filter let the whole request through to the upstream.
    pub fn forwarded(&self) -> bool {
        let id = self.id;
        self.with(|vm| vm.store.data().http.get(&id).is_some_and(|c| c.forwarded))
    }

    /// The body bytes the filter let through to the upstream so far.
    pub fn forwarded_body(&self) -> Vec<u8> {
        let id = self.id;
        self.with(|vm| {
            vm.store
                .data()
                .http
                .get(&id)
                .map(|c| c.forwarded_body.clone())
                .unwrap_or_default()
        })
    }

    /// The request headers as the filter left them.
    pub fn headers(&self) -> Vec<(String, String)> {
        let id = self.id;
        self.with(|vm| {
            vm.store
                .data()
                .http
                .get(&id)
                .map(|c| c.headers.clone())
                .unwrap_or_default()
        })
    }

    /// How many times `proxy_on_request_body` ran.
    pub fn body_callbacks(&self) -> usize {
        let id = self.id;
        self.with(|vm| {
            vm.store
                .data()
                .http
                .get(&id)
                .map_or(0, |c| c.body_callbacks)
        })
    }

    /// Whether the filter reset the stream (`close_stream`).
    pub fn is_reset(&self) -> bool {
        let id = self.id;
        self.with(|vm| vm.store.data().http.get(&id).is_some_and(|c| c.reset))
    }

    /// Whether `proxy_on_delete` ran for this request.
    pub fn is_finished(&self) -> bool {
        let id = self.id;
        self.with(|vm| {
            vm.store
                .data()
                .http
                .get(&id)
                .is_some_and(|c| c.phase == Phase::Deleted)
        })
    }

    /// Ends the request now (`proxy_on_done`, `proxy_on_log`,
    /// `proxy_on_delete`), as when the client goes away. Pending calls are
    /// cancelled (Kong) or left in flight on the root context (Envoy).
    pub fn finish(&mut self) {
        let id = self.id;
        self.with(|vm| vm.finish(id));
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if let Ok(mut vm) = self.vm.try_borrow_mut() {
            vm.finish(self.id);
            vm.check();
        }
    }
}
