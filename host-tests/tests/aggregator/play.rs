//! Playing the functions: answering the filter's calls with the mock
//! functions' data, and reading the filter's reply.

use host_tests::{Call, Plugin, Request};
use mock_functions::{answer_get, Answer, DataSet};
use serde_json::Value;

/// The data set the real mock functions serve by default (50 users).
pub const DATA: DataSet = DataSet::new(50);

/// The function's answer to a call, whatever the upstream's path prefix
/// (the function is the last path segment).
pub fn answer(call: &Call) -> Answer {
    let path = call.path().unwrap_or_default();
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let name = route.rsplit('/').next().unwrap_or_default();
    answer_get(&DATA, &format!("/{name}?{query}"))
}

/// What identifies a call within one request: its path and body.
pub fn key_of(call: &Call) -> String {
    format!("{} {}", call.path().unwrap_or_default(), call.body_text())
}

/// Answers `call` the way the functions would.
pub fn respond(request: &mut Request, call: &Call) {
    let answer = answer(call);
    request.respond(
        call.token,
        u32::from(answer.status),
        &[("content-type", answer.content_type())],
        answer.body.as_bytes(),
    );
}

/// [`respond`] through the plugin, for calls of any request.
pub fn respond_on(plugin: &Plugin, call: &Call) {
    let answer = answer(call);
    plugin.respond(
        call.token,
        u32::from(answer.status),
        &[("content-type", answer.content_type())],
        answer.body.as_bytes(),
    );
}

/// Answers every call (oldest first, new ones as they are dispatched) until
/// the filter replies; returns the reply's JSON after checking the request
/// ended cleanly.
pub fn answer_all(request: &mut Request) -> Value {
    while request.reply().is_none() {
        let calls = request.pending_calls();
        assert!(
            !calls.is_empty(),
            "the filter neither replied nor has calls in flight"
        );
        for call in calls {
            respond(request, &call);
        }
    }
    reply_json(request)
}

/// The reply's body as JSON, after checking that the request is over: a
/// reply was sent, no call of it is still in flight, and the host ended
/// the stream.
pub fn reply_json(request: &Request) -> Value {
    let reply = request.expect_reply();
    assert!(
        request.pending_calls().is_empty(),
        "replied with calls still in flight"
    );
    assert!(request.is_finished(), "the stream did not end");
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{reply:?}"
    );
    serde_json::from_slice(&reply.body).expect("the reply is JSON")
}

/// Checks that nothing is left on the VM: no live request, no call in
/// flight, no trap.
pub fn assert_idle(plugin: &Plugin) {
    assert_eq!(plugin.live_requests(), 0, "requests still alive");
    assert!(plugin.pending_calls().is_empty(), "calls still in flight");
    assert_eq!(plugin.trapped(), None);
}
