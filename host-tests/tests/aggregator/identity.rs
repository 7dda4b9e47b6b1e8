//! Issue 16 through the gateways: the identity step (a client's
//! credential turned into the platform's view of the user before any
//! field's call, its values in every template position, per credential in
//! the answer cache), headers of the functions' answers back to the client
//! (`response_headers`), and versions of the configuration fetched from a
//! registry by the root context's tick (`config_source`).

use crate::hosts::{
    body_of, config, merged, post, post_headers_with, Host, SEED_QUERY, SEED_REPLY,
};
use crate::play::{answer, answer_all, assert_idle, reply_json, respond};
use host_tests::{fixtures, Call, Delivery, Failure, LogLevel, Plugin, Profile, Request};
use serde_json::{json, Value};
use std::time::Duration;

// ---------------------------------------------------------------------------
// configurations

/// Fields that read the identity in every template position: a path and
/// its query (`me`), a body (`note`), a field's `@http` header
/// (`greeting`); the `openfaas` upstream adds an identity header of its
/// own to each of their calls. `public` (on `warehouse`) reads nothing.
const IDENTITY_SCHEMA: &str = r#"
type Query {
  me: Profile @http(upstream: "openfaas", path: "/users/{identity.uid}?tenant={identity.tenant}")
  note(text: String!): Note @http(upstream: "openfaas", method: "POST", path: "/notes", body: "{\"text\": \"{args.text}\", \"owner\": \"{identity.uid}\"}", dedupe: true)
  greeting: String @http(upstream: "openfaas", path: "/greeting", headers: [{name: "x-caller", value: "user {identity.uid}"}])
  public: String @http(upstream: "warehouse", path: "/public")
}
type Profile { id: ID name: String }
type Note { text: String owner: String }
"#;

/// [`IDENTITY_SCHEMA`] with this `identity` step, its function on the `id`
/// upstream (1 s timeout), and `extra` merged in.
fn identity_config(host: Host, identity: Value, extra: Value) -> String {
    let base = json!({
        "schema": IDENTITY_SCHEMA,
        "upstreams": {
            "openfaas": {"target": host.target(), "authority": "gateway", "path_prefix": "/function",
                         "headers": {"x-platform-uid": "{identity.uid}"}},
            "warehouse": {"target": host.target(), "authority": "gateway", "path_prefix": "/function"},
            "id": {"target": host.target(), "authority": "gateway", "path_prefix": "/function",
                   "timeout_ms": 1000},
        },
        "identity": identity,
    });
    merged(base, extra)
}

/// The issue's identity step: a session cookie, required, its identity
/// under `user`, kept 5 s per credential.
fn required() -> Value {
    json!({"upstream": "id", "path": "/identity", "credential_headers": ["cookie"],
           "result": "user", "required": true, "cache_ttl_ms": 5000})
}

/// The answer cache, 64 slots of 16 KiB.
fn answer_cache() -> Value {
    json!({"max_bytes": 1048576, "max_entry_bytes": 16384})
}

/// The demo configuration ([`Host::config`]) with `extra` merged in.
fn demo_with(host: Host, extra: Value) -> String {
    merged(serde_json::from_str(&host.config()).unwrap(), extra)
}

/// The issue's header rules; `x-version` with precedence `precedence`.
fn rules(precedence: i64) -> Value {
    json!({"set-cookie": "append", "x-trace-id": "first", "x-ratelimit-remaining": "last",
           "x-version": {"precedence": precedence}})
}

// ---------------------------------------------------------------------------
// requests and answers

/// A `POST /graphql` of `query` with these extra headers, sent.
fn ask(plugin: &Plugin, query: &str, headers: &[(&str, &str)]) -> Request {
    let mut request = post_headers_with(plugin, headers);
    request.body(body_of(query).as_bytes());
    request
}

/// Answers `call` with a JSON `body` and these extra headers.
fn reply_to(plugin: &Plugin, call: &Call, status: u32, headers: &[(&str, &str)], body: &str) {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    plugin.respond(call.token, status, &all, body.as_bytes());
}

/// Answers `call` as the mock functions would, with these extra headers.
fn respond_with(plugin: &Plugin, call: &Call, headers: &[(&str, &str)]) {
    let answer = answer(call);
    let mut all = vec![("content-type", answer.content_type())];
    all.extend_from_slice(headers);
    plugin.respond(
        call.token,
        u32::from(answer.status),
        &all,
        answer.body.as_bytes(),
    );
}

/// The identity function's answer for a user.
fn identity_of(uid: &str, tenant: &str) -> String {
    json!({"user": {"uid": uid, "tenant": tenant}}).to_string()
}

/// The user a test's session cookie stands for.
fn uid_of(cookie: &str) -> &'static str {
    if cookie.contains("alice") {
        "u-1"
    } else if cookie.contains("bob") {
        "u-2"
    } else {
        panic!("no user for {cookie:?}")
    }
}

fn is_identity_call(call: &Call) -> bool {
    call.path() == Some("/function/identity")
}

/// Answers a call of [`IDENTITY_SCHEMA`]: the identity call from its
/// cookie, `me` with the uid of its path, `note` echoing its body,
/// `greeting` naming its `x-caller`.
fn play(plugin: &Plugin, call: &Call) {
    let path = call.path().unwrap_or_default().to_string();
    let body = if is_identity_call(call) {
        identity_of(uid_of(call.header("cookie").unwrap()), "acme corp")
    } else if let Some(rest) = path.strip_prefix("/function/users/") {
        let uid = rest.split('?').next().unwrap();
        json!({"id": uid, "name": format!("name of {uid}")}).to_string()
    } else if path == "/function/notes" {
        call.body_text()
    } else if path == "/function/greeting" {
        json!(format!(
            "hello {}",
            call.header("x-caller").unwrap_or("stranger")
        ))
        .to_string()
    } else if path == "/function/public" {
        json!("for everyone").to_string()
    } else {
        panic!("unexpected call {path}")
    };
    reply_to(plugin, call, 200, &[], &body);
}

/// Plays every call (new ones as they come) until these requests replied;
/// returns how many calls were made.
fn play_until_replied(plugin: &Plugin, requests: &[&Request]) -> usize {
    let mut made = 0;
    while requests.iter().any(|r| r.reply().is_none()) {
        let calls = plugin.pending_calls();
        assert!(!calls.is_empty(), "no reply and no call in flight");
        for call in calls {
            made += 1;
            play(plugin, &call);
        }
    }
    made
}

fn metric(plugin: &Plugin, name: &str) -> i64 {
    plugin.metric(name).map_or(0, |m| m.value)
}

/// Every value of header `name` in the reply of `request`.
fn reply_headers(request: &Request, name: &str) -> Vec<String> {
    request
        .expect_reply()
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

/// Checks that `secret` is in no log line, no output of the filter and no
/// reply of these requests.
fn assert_never_shown(plugin: &Plugin, requests: &[&Request], secret: &str) {
    for line in plugin.logs() {
        assert!(!line.message.contains(secret), "logged: {line}");
    }
    assert!(!plugin.stdout().contains(secret));
    assert!(!plugin.stderr().contains(secret));
    for request in requests {
        let reply = request.expect_reply();
        assert!(!reply.body_text().contains(secret), "{}", reply.body_text());
        for (name, value) in &reply.headers {
            assert!(!value.contains(secret), "{name}: {value}");
        }
    }
}

/// Checks a 401 `UNAUTHENTICATED` reply without data whose message says
/// `says`, never kept by a cache.
fn assert_unauthenticated(request: &Request, says: &str) {
    let reply = request.expect_reply();
    assert_eq!(reply.status, 401, "{}", reply.body_text());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply_json(request);
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{body}"
    );
    assert!(body.get("data").is_none(), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains(says), "{message}");
}

// ---------------------------------------------------------------------------
// the identity step

on_both_hosts! {
    /// A request with a credential makes one call first, to the identity
    /// function (GET, the upstream's prefix and the step's path, the
    /// credential header as the client sent it, nothing else of the
    /// client's), and nothing else until it answers; then the identity's
    /// values reach a path and its query (encoded), a body, a field's
    /// `@http` header and the upstream's own `headers`, while the
    /// credential goes to the identity function only and shows nowhere.
    fn the_identity_call_goes_first_and_its_values_fill_every_template(host: Host) {
        let plugin = host.plugin_with(&identity_config(host, required(), json!({})));
        let cookie = "session=secret-alice-1; theme=dark";
        let request = ask(
            &plugin,
            r#"{ me { id name } note(text: "hi") { text owner } greeting }"#,
            &[("cookie", cookie), ("x-other", "no")],
        );
        let calls = plugin.pending_calls();
        assert_eq!(calls.len(), 1, "the identity call alone: {calls:?}");
        let identity = &calls[0];
        assert_eq!(identity.context_id, request.id());
        assert_eq!(identity.upstream, host.target());
        assert_eq!(identity.method(), Some("GET"));
        assert_eq!(identity.path(), Some("/function/identity"));
        assert_eq!(identity.header("cookie"), Some(cookie));
        assert_eq!(identity.header("x-other"), None);
        assert_eq!(identity.header("x-platform-uid"), None);
        assert_eq!(identity.body, None);
        assert_eq!(identity.timeout_ms, 1000);
        reply_to(&plugin, identity, 200, &[], &identity_of("u-1", "acme corp"));

        let calls = plugin.pending_calls();
        assert_eq!(calls.len(), 3, "{calls:?}");
        for call in &calls {
            assert_eq!(call.header("x-platform-uid"), Some("u-1"), "upstream header: {call:?}");
            assert_eq!(call.header("cookie"), None, "the credential stays with the identity call");
        }
        let find = |path: &str| calls.iter().find(|c| c.path().unwrap().starts_with(path)).unwrap();
        assert_eq!(find("/function/users/").path(), Some("/function/users/u-1?tenant=acme%20corp"));
        let note = find("/function/notes");
        assert_eq!(note.method(), Some("POST"));
        let sent: Value = serde_json::from_str(&note.body_text()).unwrap();
        assert_eq!(sent, json!({"text": "hi", "owner": "u-1"}));
        assert_eq!(find("/function/greeting").header("x-caller"), Some("user u-1"));
        for call in &calls {
            play(&plugin, call);
        }
        assert_eq!(
            reply_json(&request),
            json!({"data": {
                "me": {"id": "u-1", "name": "name of u-1"},
                "note": {"text": "hi", "owner": "u-1"},
                "greeting": "hello user u-1",
            }})
        );
        let reply = request.expect_reply();
        assert!(
            reply.header("cache-control").is_some_and(|c| c.contains("private") || c == "no-store"),
            "one user's data is never for a shared cache: {reply:?}"
        );
        assert_never_shown(&plugin, &[&request], "secret-alice-1");
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// A required identity and no credential (no credential header, an
    /// empty one, or a credential in a header the step does not name): 401
    /// `UNAUTHENTICATED` naming the header to send, and no call at all.
    fn a_required_identity_without_a_credential_is_refused_without_a_call(host: Host) {
        let plugin = host.plugin_with(&identity_config(host, required(), json!({})));
        for headers in [
            vec![],
            vec![("cookie", "")],
            vec![("authorization", "Bearer secret-token-9")],
        ] {
            let request = ask(&plugin, "{ greeting }", &headers);
            assert!(request.calls().is_empty(), "{headers:?}: {:?}", request.calls());
            assert_unauthenticated(&request, "send it in cookie");
            assert_never_shown(&plugin, &[&request], "secret-token-9");
        }
        assert_eq!(metric(&plugin, "graphql_aggregator.calls.id.ok"), 0);
        assert_idle(&plugin);
    }
}

/// How a test makes the identity call end.
enum Ending {
    /// An answer: status and body.
    Answer(u32, &'static str),
    /// A failure as the host reports it.
    Fail(Failure),
}

on_both_hosts! {
    /// The identity function refusing the credential (401, 403, or an
    /// answer without the identity) and failing (500, an answer that is
    /// not JSON, a connection failure): 401 `UNAUTHENTICATED` saying which,
    /// no other call, and the credential in no log line and no reply.
    fn refused_and_failing_identities_answer_401(host: Host) {
        let plugin = host.plugin_with(&identity_config(host, required(), json!({})));
        let cases = [
            (Ending::Answer(401, r#"{"error": "invalid credential"}"#), "refused (the identity function answered HTTP 401)"),
            (Ending::Answer(403, "{}"), "refused (the identity function answered HTTP 403)"),
            (Ending::Answer(200, r#"{"user": null}"#), "has no `user`"),
            (Ending::Answer(500, r#"{"error": "identity store down"}"#), "could not be verified"),
            (Ending::Answer(200, "not json"), "could not be verified"),
            (Ending::Fail(Failure::ConnectFailure), "could not be verified"),
            (Ending::Fail(Failure::Reset), "could not be verified"),
        ];
        let mut requests = Vec::new();
        for (ending, says) in cases {
            let request = ask(&plugin, "{ me { id } greeting }", &[("cookie", "session=secret-token-123")]);
            let calls = request.pending_calls();
            assert_eq!(calls.len(), 1);
            assert!(is_identity_call(&calls[0]));
            match ending {
                Ending::Answer(status, body) => reply_to(&plugin, &calls[0], status, &[], body),
                Ending::Fail(failure) => {
                    plugin.fail(calls[0].token, failure);
                }
            }
            assert_eq!(request.calls().len(), 1, "{says}: nothing after the identity call");
            assert_unauthenticated(&request, says);
            requests.push(request);
        }
        let all: Vec<&Request> = requests.iter().collect();
        assert_never_shown(&plugin, &all, "secret-token-123");
        assert_eq!(metric(&plugin, "graphql_aggregator.requests.unauthenticated"), 7);
        assert_idle(&plugin);
    }
}

/// Envoy: an identity call past its upstream's `timeout_ms` (1 s) is given
/// up by the tick, which answers the request 401 ("could not be
/// verified"); the host's own timer, firing afterwards, changes nothing.
#[test]
fn envoy_an_identity_call_past_its_timeout_is_answered_401_by_the_tick() {
    let host = Host::Envoy;
    let plugin = host.plugin_with(&identity_config(host, required(), json!({})));
    let request = ask(
        &plugin,
        "{ greeting }",
        &[("cookie", "session=secret-slow-1")],
    );
    let call = request.pending_calls().remove(0);
    assert_eq!(call.timeout_ms, 1000);
    plugin.advance(Duration::from_millis(950));
    assert!(request.reply().is_none(), "950 ms: still waiting");
    plugin.advance(Duration::from_millis(100));
    assert_unauthenticated(&request, "could not be verified");
    assert_eq!(request.calls().len(), 1);
    assert_eq!(
        plugin.fail(call.token, Failure::Timeout),
        Delivery::DeliveredToRoot
    );
    assert_eq!(metric(&plugin, "graphql_aggregator.calls.id.timeout"), 1);
    assert_never_shown(&plugin, &[&request], "secret-slow-1");
    assert_idle(&plugin);
}

/// Kong: the tick cannot act for a request, so an identity call that never
/// answers holds its request until Kong's own timer ends the call; that
/// timeout is answered 401 ("could not be verified") and nothing else is
/// called.
#[test]
fn kong_an_identity_call_timed_out_by_the_host_is_answered_401() {
    let host = Host::Kong;
    let plugin = host.plugin_with(&identity_config(host, required(), json!({})));
    let mut request = ask(
        &plugin,
        "{ greeting }",
        &[("cookie", "session=secret-slow-1")],
    );
    let call = request.pending_calls().remove(0);
    assert_eq!(call.timeout_ms, 1000);
    plugin.advance(Duration::from_millis(2000));
    assert!(request.reply().is_none(), "the tick never answers on Kong");
    assert_eq!(
        request.fail(call.token, Failure::Timeout),
        Delivery::Delivered
    );
    assert_unauthenticated(&request, "could not be verified");
    assert_eq!(request.calls().len(), 1);
    assert!(plugin.violations().is_empty(), "{:?}", plugin.violations());
    assert_never_shown(&plugin, &[&request], "secret-slow-1");
    assert_idle(&plugin);
}

on_both_hosts! {
    /// An optional identity and no credential: no identity call, the
    /// fields that do not need it run (a header whose value would come from
    /// the identity is not sent), a field whose path needs it fails alone;
    /// a credential that is sent is still verified, and refused with 401.
    fn an_optional_identity_is_absent_without_a_credential(host: Host) {
        let mut optional = required();
        optional["required"] = json!(false);
        let plugin = host.plugin_with(&identity_config(host, optional, json!({})));

        let request = ask(&plugin, "{ greeting public }", &[]);
        let calls = plugin.pending_calls();
        assert_eq!(calls.len(), 2, "no identity call: {calls:?}");
        for call in &calls {
            assert!(!is_identity_call(call));
            assert_eq!(call.header("x-caller"), None);
            assert_eq!(call.header("x-platform-uid"), None);
        }
        for call in &calls {
            play(&plugin, call);
        }
        assert_eq!(
            reply_json(&request),
            json!({"data": {"greeting": "hello stranger", "public": "for everyone"}})
        );

        let request = ask(&plugin, "{ me { id } public }", &[]);
        assert_eq!(play_until_replied(&plugin, &[&request]), 1, "only `public` is called");
        let body = reply_json(&request);
        assert_eq!(body["data"], json!({"me": null, "public": "for everyone"}), "{body}");
        assert_eq!(body["errors"][0]["path"], json!(["me"]), "{body}");

        let request = ask(&plugin, "{ public }", &[("cookie", "session=secret-bad-1")]);
        let calls = request.pending_calls();
        assert_eq!(calls.len(), 1);
        assert!(is_identity_call(&calls[0]));
        reply_to(&plugin, &calls[0], 401, &[], "{}");
        assert_unauthenticated(&request, "refused");
        assert_never_shown(&plugin, &[&request], "secret-bad-1");
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// With the answer cache on, a credential's identity is kept for
    /// `cache_ttl_ms` in the host's shared data: the same cookie again
    /// makes no identity call (a cache hit) and its calls carry its own
    /// uid; another cookie makes its own identity call and never gets the
    /// first user's uid; after 5 s the first cookie is verified again. The
    /// shared data never holds a credential.
    fn the_answer_cache_keeps_each_credentials_identity_apart(host: Host) {
        let config = identity_config(host, required(), json!({"answer_cache": answer_cache()}));
        let plugin = host.plugin_with(&config);
        let alice = [("cookie", "session=secret-alice-1")];
        let bob = [("cookie", "session=secret-bob-2")];

        let first = ask(&plugin, "{ greeting }", &alice);
        let calls = plugin.pending_calls();
        assert_eq!(calls.len(), 1);
        assert!(is_identity_call(&calls[0]));
        assert_eq!(play_until_replied(&plugin, &[&first]), 2);
        assert_eq!(reply_json(&first)["data"]["greeting"], "hello user u-1");
        assert_eq!(metric(&plugin, "graphql_aggregator.answer_cache.stores"), 1, "the identity");

        // The same cookie: straight to the field, with its own uid.
        let again = ask(&plugin, "{ greeting }", &alice);
        let calls = plugin.pending_calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(!is_identity_call(&calls[0]), "served from the answer cache");
        assert_eq!(calls[0].header("x-caller"), Some("user u-1"));
        assert_eq!(metric(&plugin, "graphql_aggregator.answer_cache.hits"), 1);
        play(&plugin, &calls[0]);
        assert_eq!(reply_json(&again)["data"]["greeting"], "hello user u-1");

        // Another cookie: its own identity call, its own uid only.
        let other = ask(&plugin, "{ greeting }", &bob);
        let calls = plugin.pending_calls();
        assert_eq!(calls.len(), 1);
        assert!(is_identity_call(&calls[0]));
        assert_eq!(calls[0].header("cookie"), Some("session=secret-bob-2"));
        play_until_replied(&plugin, &[&other]);
        assert_eq!(reply_json(&other)["data"]["greeting"], "hello user u-2");
        for call in other.calls() {
            assert!(!format!("{call:?}").contains("u-1"), "{call:?}");
        }
        assert_eq!(metric(&plugin, "graphql_aggregator.answer_cache.hits"), 1);

        // Past `cache_ttl_ms`: verified again.
        plugin.advance(Duration::from_millis(5001));
        let later = ask(&plugin, "{ greeting }", &alice);
        let calls = plugin.pending_calls();
        assert_eq!(calls.len(), 1);
        assert!(is_identity_call(&calls[0]), "the identity expired");
        play_until_replied(&plugin, &[&later]);
        assert_eq!(reply_json(&later)["data"]["greeting"], "hello user u-1");

        for slot in 0..64 {
            if let Some(entry) = plugin.shared_data(&format!("graphql-aggregator:answer:{slot}")) {
                let text = String::from_utf8_lossy(&entry);
                assert!(!text.contains("secret-"), "slot {slot} holds a credential: {text}");
            }
        }
        assert_never_shown(&plugin, &[&first, &again, &other, &later], "secret-");
        assert_idle(&plugin);
    }
}

/// Concurrent requests with the same cookie share one identity call on
/// Envoy (and then one call per identical field call), a request with
/// another cookie never joins it; Kong, which cannot act for another
/// request, makes every call. Every request gets its own user's data.
#[test]
fn concurrent_requests_with_one_credential_share_the_identity_call_on_envoy() {
    for host in [Host::Envoy, Host::Kong] {
        let plugin = host.plugin_with(&identity_config(host, required(), json!({})));
        let a = ask(
            &plugin,
            "{ greeting }",
            &[("cookie", "session=secret-alice-1")],
        );
        let b = ask(
            &plugin,
            "{ greeting }",
            &[("cookie", "session=secret-alice-1")],
        );
        let c = ask(
            &plugin,
            "{ greeting }",
            &[("cookie", "session=secret-bob-2")],
        );
        let identities = plugin.pending_calls();
        assert!(identities.iter().all(is_identity_call));
        let mut cookies: Vec<&str> = identities
            .iter()
            .map(|c| c.header("cookie").unwrap())
            .collect();
        cookies.sort_unstable();
        let expected: &[&str] = match host {
            Host::Envoy => &["session=secret-alice-1", "session=secret-bob-2"],
            Host::Kong => &[
                "session=secret-alice-1",
                "session=secret-alice-1",
                "session=secret-bob-2",
            ],
        };
        assert_eq!(cookies, expected, "{host:?}");
        let made = play_until_replied(&plugin, &[&a, &b, &c]);
        assert_eq!(
            made,
            2 * expected.len(),
            "{host:?}: an identity and a greeting each"
        );
        for (request, uid) in [(&a, "u-1"), (&b, "u-1"), (&c, "u-2")] {
            assert_eq!(
                reply_json(request)["data"]["greeting"],
                format!("hello user {uid}"),
                "{host:?}"
            );
        }
        let joined = metric(&plugin, "graphql_aggregator.coalesced_calls");
        assert_eq!(joined, if host == Host::Envoy { 2 } else { 0 }, "{host:?}");
        assert_idle(&plugin);
    }
}

/// Envoy: a request that shared another's identity call keeps it when the
/// request that sent it leaves (its client hung up): the identity still
/// reaches the request that joined, which goes on with its own calls.
#[test]
fn envoy_a_joined_identity_call_outlives_the_request_that_sent_it() {
    let host = Host::Envoy;
    let plugin = host.plugin_with(&identity_config(host, required(), json!({})));
    let mut a = ask(
        &plugin,
        "{ greeting }",
        &[("cookie", "session=secret-alice-1")],
    );
    let b = ask(
        &plugin,
        "{ greeting }",
        &[("cookie", "session=secret-alice-1")],
    );
    let calls = plugin.pending_calls();
    assert_eq!(calls.len(), 1, "b joined a's identity call: {calls:?}");
    assert_eq!(calls[0].context_id, a.id());
    a.finish();
    play(&plugin, &calls[0]);
    let next = plugin.pending_calls();
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].header("x-caller"), Some("user u-1"));
    play(&plugin, &next[0]);
    assert_eq!(reply_json(&b)["data"]["greeting"], "hello user u-1");
    assert_idle(&plugin);
}

on_both_hosts! {
    /// The identity function's own answer headers follow its upstream's
    /// rules (a renewed session cookie reaches the client, whose reply is
    /// then `no-store`), and an identity answer that sets a cookie is never
    /// kept in the answer cache: the same cookie is verified again.
    fn an_identity_answer_that_sets_a_cookie_is_passed_on_and_never_kept(host: Host) {
        let config = identity_config(host, required(), json!({
            "answer_cache": answer_cache(),
            "upstreams": {"id": {"response_headers": {"set-cookie": "append"}}},
        }));
        let plugin = host.plugin_with(&config);
        for round in 0..2 {
            let request = ask(&plugin, "{ greeting }", &[("cookie", "session=secret-alice-1")]);
            let calls = plugin.pending_calls();
            assert_eq!(calls.len(), 1);
            assert!(is_identity_call(&calls[0]), "round {round}: verified again");
            reply_to(
                &plugin,
                &calls[0],
                200,
                &[("set-cookie", "session=renewed-1; HttpOnly"), ("x-trace-id", "id-1")],
                &identity_of("u-1", "acme"),
            );
            play_until_replied(&plugin, &[&request]);
            assert_eq!(reply_json(&request)["data"]["greeting"], "hello user u-1");
            assert_eq!(reply_headers(&request, "set-cookie"), ["session=renewed-1; HttpOnly"]);
            assert!(reply_headers(&request, "x-trace-id").is_empty(), "not listed");
            assert_eq!(reply_headers(&request, "cache-control"), ["no-store"]);
        }
        assert_eq!(metric(&plugin, "graphql_aggregator.answer_cache.stores"), 0);
        assert_eq!(metric(&plugin, "graphql_aggregator.answer_cache.hits"), 0);
        assert_idle(&plugin);
    }
}

// ---------------------------------------------------------------------------
// headers back to the client

/// A user and an inventory item: one call on `openfaas`, one on
/// `warehouse`.
const TWO_UPSTREAMS: &str = r#"{ user(id: "1") { name } inventory(sku: "sku-1") { quantity } }"#;

fn is_user_call(call: &Call) -> bool {
    call.path().unwrap_or_default().contains("/user-profile")
}

on_both_hosts! {
    /// Answer headers reach the reply by their rules, whatever order the
    /// answers come in: every `set-cookie` line of every answer
    /// (`append`), `x-trace-id` of the first answer, `x-ratelimit-remaining`
    /// of the last, `x-version` of the upstream with the higher precedence;
    /// unlisted and hop-by-hop headers never; a reply that sets a cookie is
    /// `no-store`. Without a cookie the reply stays cacheable, by the
    /// client alone (`private`).
    fn answer_headers_reach_the_reply_by_their_rules(host: Host) {
        let config = demo_with(host, json!({"upstreams": {
            "openfaas": {"response_headers": rules(1)},
            "warehouse": {"response_headers": rules(9)},
        }}));
        let plugin = host.plugin_with(&config);
        for user_first in [true, false] {
            let request = post(&plugin, &body_of(TWO_UPSTREAMS));
            let mut calls = request.pending_calls();
            assert_eq!(calls.len(), 2);
            calls.sort_by_key(|c| is_user_call(c) != user_first);
            for call in &calls {
                let who = if is_user_call(call) { "openfaas" } else { "warehouse" };
                let mut headers = vec![
                    ("set-cookie", format!("{who}-a=1; Path=/")),
                    ("x-trace-id", format!("trace-{who}")),
                    ("x-ratelimit-remaining", format!("left-{who}")),
                    ("x-version", format!("v-{who}")),
                    ("x-unlisted", who.to_string()),
                    ("connection", "close".to_string()),
                    ("keep-alive", "timeout=5".to_string()),
                ];
                if who == "openfaas" {
                    headers.push(("set-cookie", "openfaas-b=2".to_string()));
                }
                let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                respond_with(&plugin, call, &headers);
            }
            let body = reply_json(&request);
            assert_eq!(body["data"], json!({"user": {"name": "Alice"}, "inventory": {"quantity": 7}}));
            let (first, last) = if user_first { ("openfaas", "warehouse") } else { ("warehouse", "openfaas") };
            let mut cookies = reply_headers(&request, "set-cookie");
            cookies.sort();
            assert_eq!(cookies, ["openfaas-a=1; Path=/", "openfaas-b=2", "warehouse-a=1; Path=/"]);
            assert_eq!(reply_headers(&request, "x-trace-id"), [format!("trace-{first}")]);
            assert_eq!(reply_headers(&request, "x-ratelimit-remaining"), [format!("left-{last}")]);
            assert_eq!(reply_headers(&request, "x-version"), ["v-warehouse"], "precedence 9 wins");
            for never in ["x-unlisted", "connection", "keep-alive"] {
                assert!(reply_headers(&request, never).is_empty(), "{never}");
            }
            assert_eq!(reply_headers(&request, "cache-control"), ["no-store"]);
        }

        // No cookie: the answers' caching holds, for this client only.
        let request = post(&plugin, &body_of(TWO_UPSTREAMS));
        for call in request.pending_calls() {
            respond_with(&plugin, &call, &[("cache-control", "max-age=60"), ("x-trace-id", "t")]);
        }
        reply_json(&request);
        assert_eq!(reply_headers(&request, "x-trace-id"), ["t"]);
        assert_eq!(reply_headers(&request, "cache-control"), ["private, max-age=60"]);
        assert_idle(&plugin);
    }
}

/// Two identical concurrent requests: on Envoy the second joins the
/// first's call and gets the data but none of the answer's headers (a
/// cookie is never handed to another client); on Kong each request makes
/// its own call and gets its own cookie.
#[test]
fn a_request_that_joined_a_call_never_gets_the_senders_cookie() {
    for host in [Host::Envoy, Host::Kong] {
        let config = demo_with(
            host,
            json!({"upstreams": {"openfaas": {"response_headers": rules(1)}}}),
        );
        let plugin = host.plugin_with(&config);
        let query = body_of(r#"{ user(id: "1") { name } }"#);
        let a = post(&plugin, &query);
        let b = post(&plugin, &query);
        let calls = plugin.pending_calls();
        assert_eq!(
            calls.len(),
            if host == Host::Envoy { 1 } else { 2 },
            "{host:?}"
        );
        for call in &calls {
            let cookie = format!("seen-1=for-{}", call.context_id);
            respond_with(
                &plugin,
                call,
                &[("set-cookie", &cookie), ("x-trace-id", "trace-1")],
            );
        }
        for request in [&a, &b] {
            assert_eq!(
                reply_json(request)["data"]["user"]["name"],
                "Alice",
                "{host:?}"
            );
        }
        assert_eq!(
            reply_headers(&a, "set-cookie"),
            [format!("seen-1=for-{}", a.id())],
            "{host:?}"
        );
        assert_eq!(reply_headers(&a, "x-trace-id"), ["trace-1"]);
        match host {
            Host::Envoy => {
                assert!(
                    reply_headers(&b, "set-cookie").is_empty(),
                    "the sender's cookie"
                );
                assert!(reply_headers(&b, "x-trace-id").is_empty());
                assert_eq!(metric(&plugin, "graphql_aggregator.coalesced_calls"), 1);
            }
            Host::Kong => {
                assert_eq!(
                    reply_headers(&b, "set-cookie"),
                    [format!("seen-1=for-{}", b.id())]
                );
            }
        }
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// An answer served from the answer cache brings no header (the header
    /// went to the client whose call fetched it), and an answer carrying
    /// `set-cookie` is never stored: the next request calls again.
    fn cached_answers_bring_no_headers_and_cookies_are_never_cached(host: Host) {
        let config = demo_with(host, json!({
            "answer_cache": answer_cache(),
            "upstreams": {"openfaas": {"response_headers": rules(1)}},
        }));
        let plugin = host.plugin_with(&config);
        let one = body_of(r#"{ user(id: "1") { name } }"#);
        let two = body_of(r#"{ user(id: "2") { name } }"#);

        let first = post(&plugin, &one);
        let calls = plugin.pending_calls();
        respond_with(&plugin, &calls[0], &[("cache-control", "max-age=60"), ("x-trace-id", "trace-1")]);
        assert_eq!(reply_json(&first)["data"]["user"]["name"], "Alice");
        assert_eq!(reply_headers(&first, "x-trace-id"), ["trace-1"]);
        assert_eq!(metric(&plugin, "graphql_aggregator.answer_cache.stores"), 1);

        let cached = post(&plugin, &one);
        assert!(cached.calls().is_empty(), "served from the answer cache");
        assert_eq!(reply_json(&cached)["data"]["user"]["name"], "Alice");
        assert!(reply_headers(&cached, "x-trace-id").is_empty(), "{:?}", cached.expect_reply());
        assert_eq!(metric(&plugin, "graphql_aggregator.answer_cache.hits"), 1);

        for round in 0..2 {
            let request = post(&plugin, &two);
            let calls = request.pending_calls();
            assert_eq!(calls.len(), 1, "round {round}: a cookie's answer was not kept");
            respond_with(&plugin, &calls[0], &[("cache-control", "max-age=60"), ("set-cookie", "seen-2=1")]);
            assert_eq!(reply_json(&request)["data"]["user"]["name"], "Bob");
            assert_eq!(reply_headers(&request, "set-cookie"), ["seen-2=1"]);
            assert_eq!(reply_headers(&request, "cache-control"), ["no-store"]);
        }
        assert_eq!(metric(&plugin, "graphql_aggregator.answer_cache.stores"), 1);
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// A reply takes at most 64 header lines and 16 KiB from the answers;
    /// the rest is left out and counted
    /// (`graphql_aggregator.response_headers.dropped`).
    fn a_reply_takes_a_bounded_number_of_answer_headers(host: Host) {
        let config = demo_with(host, json!({"upstreams": {"openfaas": {"response_headers": rules(1)}}}));
        let plugin = host.plugin_with(&config);
        let query = body_of(r#"{ user(id: "1") { name } }"#);

        let request = post(&plugin, &query);
        let cookies: Vec<String> = (0..100).map(|i| format!("c{i}=1")).collect();
        let headers: Vec<(&str, &str)> = cookies.iter().map(|c| ("set-cookie", c.as_str())).collect();
        respond_with(&plugin, &request.pending_calls()[0], &headers);
        assert_eq!(reply_json(&request)["data"]["user"]["name"], "Alice");
        assert_eq!(reply_headers(&request, "set-cookie"), cookies[..64]);
        assert_eq!(metric(&plugin, "graphql_aggregator.response_headers.dropped"), 36);

        // 3 cookies of 7,000 bytes: the third would pass 16 KiB.
        let request = post(&plugin, &query);
        let big: Vec<String> = (0..3).map(|i| format!("b{i}={}", "x".repeat(7000))).collect();
        let headers: Vec<(&str, &str)> = big.iter().map(|c| ("set-cookie", c.as_str())).collect();
        respond_with(&plugin, &request.pending_calls()[0], &headers);
        assert_eq!(reply_json(&request)["data"]["user"]["name"], "Alice");
        assert_eq!(reply_headers(&request, "set-cookie"), big[..2]);
        assert_eq!(metric(&plugin, "graphql_aggregator.response_headers.dropped"), 37);
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// Rules that could never hold are refused with the configuration: a
    /// hop-by-hop header (`connection`), and `set-cookie` other than
    /// `append`; the log names the problem and every request gets the 500
    /// `GATEWAY_MISCONFIGURED` error without a call.
    fn impossible_header_rules_refuse_the_configuration(host: Host) {
        for (rules, problem) in [
            (json!({"connection": "last"}), "hop-by-hop"),
            (json!({"set-cookie": "first"}), "must be \"append\""),
        ] {
            let config = demo_with(host, json!({"upstreams": {"openfaas": {"response_headers": rules}}}));
            let plugin = host.plugin_with(&config);
            let logged = plugin.logs().iter().any(|l| {
                l.message.contains("invalid configuration") && l.message.contains(problem)
            });
            assert!(logged, "{problem}: {:?}", plugin.logs());
            let request = post(&plugin, SEED_QUERY);
            assert!(request.calls().is_empty());
            assert_eq!(request.expect_reply().status, 500);
            assert_eq!(reply_json(&request)["errors"][0]["extensions"]["code"], "GATEWAY_MISCONFIGURED");
            assert_idle(&plugin);
        }
    }
}

// ---------------------------------------------------------------------------
// configuration from a registry

const VERSION_HEADER: &str = "x-graphql-config-version";

/// The registry, as this host's dispatch target.
fn registry_target(host: Host) -> &'static str {
    match host {
        Host::Envoy => "registry",
        Host::Kong => "127.0.0.1:8090",
    }
}

/// A fresh VM whose host knows the registry too, with this configuration.
fn registry_plugin(host: Host, config: &str) -> Plugin {
    let profile = match host {
        Host::Envoy => Profile::envoy(["openfaas", "registry"]),
        Host::Kong => Profile::kong(),
    };
    Plugin::new(&fixtures::aggregator(), profile, config)
}

/// The demo configuration fetching its versions from the registry every
/// second (the issue's `config_source`, with `extra` settings).
fn sourced_config(host: Host, extra: Value) -> String {
    let mut source = json!({"upstream": "registry", "path": "/_registry/graphql", "poll_ms": 1000,
                            "version_header": VERSION_HEADER});
    for (k, v) in extra.as_object().unwrap() {
        source[k] = v.clone();
    }
    demo_with(
        host,
        json!({
            "upstreams": {"registry": {"target": registry_target(host), "authority": "registry"}},
            "config_source": source,
        }),
    )
}

/// A version the registry serves: the demo configuration with the `/v2`
/// path prefix and without `Query.inventory`.
fn version_two(host: Host) -> String {
    let text = config(host.target(), host.target(), "/v2").replace(
        r#"  inventory(sku: String!): Inventory @http(upstream: \"warehouse\", path: \"/inventory?sku={args.sku}\")\n"#,
        "",
    );
    assert!(!text.contains("inventory(sku"));
    text
}

/// The one fetch of the registry in flight: dispatched by the root
/// context, a GET of the configuration's path.
fn fetch(plugin: &Plugin, host: Host) -> Call {
    let root = plugin.root_id();
    let calls: Vec<Call> = plugin
        .pending_calls()
        .into_iter()
        .filter(|c| c.context_id == root)
        .collect();
    assert_eq!(calls.len(), 1, "one fetch: {calls:?}");
    let call = calls.into_iter().next().unwrap();
    assert_eq!(call.upstream, registry_target(host));
    assert_eq!(call.method(), Some("GET"));
    assert_eq!(call.path(), Some("/_registry/graphql"));
    assert_eq!(call.header(":authority"), Some("registry"));
    assert_eq!(call.timeout_ms, 1000, "never longer than poll_ms");
    call
}

/// The tick's first fetch, answered with [`version_two`] as version `7`.
fn serve_version_seven(plugin: &Plugin, host: Host) {
    plugin.tick();
    let call = fetch(plugin, host);
    reply_to(plugin, &call, 200, &[("etag", "\"7\"")], &version_two(host));
}

/// Checks that the root context has no fetch in flight.
fn assert_no_fetch(plugin: &Plugin) {
    let root = plugin.root_id();
    let fetches: Vec<Call> = plugin
        .pending_calls()
        .into_iter()
        .filter(|c| c.context_id == root)
        .collect();
    assert!(fetches.is_empty(), "{fetches:?}");
}

/// Runs `{ user(id: "1") { name } }`: the path of its call and the reply's
/// configuration version.
fn served(plugin: &Plugin) -> (String, String) {
    let mut request = post(plugin, &body_of(r#"{ user(id: "1") { name } }"#));
    let path = request.pending_calls()[0].path().unwrap().to_string();
    assert_eq!(answer_all(&mut request)["data"]["user"]["name"], "Alice");
    let version = request
        .expect_reply()
        .header(VERSION_HEADER)
        .unwrap()
        .to_string();
    (path, version)
}

fn config_metric(plugin: &Plugin, event: &str) -> i64 {
    metric(plugin, &format!("graphql_aggregator.config.{event}"))
}

on_both_hosts! {
    /// The inline configuration serves (`inline`) until a fetch succeeds:
    /// the tick fetches from the root context, a failed fetch changes
    /// nothing; the next fetch goes out only after `poll_ms`; a version
    /// answered with `etag: "7"` is checked and swapped in (new requests
    /// use it and say `7`, `config.fetches.ok`, the version gauge); later
    /// fetches are conditional (`if-none-match`), a 304 and a failure keep
    /// version 7. Kong allows the root's own calls from its tick.
    fn a_registry_version_is_swapped_in(host: Host) {
        let plugin = registry_plugin(host, &sourced_config(host, json!({})));
        assert_no_fetch(&plugin);
        assert_eq!(served(&plugin), ("/function/user-profile?id=1".into(), "inline".into()));

        plugin.tick();
        let first = fetch(&plugin, host);
        assert_eq!(first.header("if-none-match"), None);
        assert_eq!(first.header("accept"), Some("application/json"));
        reply_to(&plugin, &first, 500, &[], r#"{"error": "registry down"}"#);
        assert_eq!(config_metric(&plugin, "fetches.failed"), 1);
        assert!(plugin.has_log("fetching the configuration failed"), "{:?}", plugin.logs());
        assert_eq!(served(&plugin).1, "inline");

        // The next fetch waits for poll_ms.
        plugin.tick();
        plugin.advance(Duration::from_millis(950));
        assert_no_fetch(&plugin);
        plugin.advance(Duration::from_millis(50));
        let second = fetch(&plugin, host);
        assert_eq!(second.header("if-none-match"), None, "no version seen yet");
        reply_to(&plugin, &second, 200, &[("etag", "\"7\"")], &version_two(host));
        assert_eq!(config_metric(&plugin, "fetches.ok"), 1);
        assert_eq!(config_metric(&plugin, "version"), 7);
        assert!(plugin.has_log("configuration 7 in service"), "{:?}", plugin.logs());
        assert_eq!(served(&plugin), ("/v2/user-profile?id=1".into(), "7".into()));

        plugin.advance(Duration::from_millis(1000));
        let third = fetch(&plugin, host);
        assert_eq!(third.header("if-none-match"), Some("\"7\""));
        plugin.respond(third.token, 304, &[("etag", "\"7\"")], b"");
        assert_eq!(config_metric(&plugin, "fetches.not_modified"), 1);

        plugin.advance(Duration::from_millis(1000));
        let fourth = fetch(&plugin, host);
        plugin.fail(fourth.token, Failure::ConnectFailure);
        assert_eq!(config_metric(&plugin, "fetches.failed"), 2);
        assert_eq!(config_metric(&plugin, "version"), 7);
        assert_eq!(config_metric(&plugin, "fetches.ok"), 1);
        assert_eq!(served(&plugin), ("/v2/user-profile?id=1".into(), "7".into()));
        assert!(plugin.violations().is_empty(), "{:?}", plugin.violations());
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// A version that does not load is refused, logged as an error, and
    /// counted (`config.refused`), and requests keep being served by the
    /// version in service: text that is not JSON, a schema mapped to an
    /// upstream that does not exist, a version with a `config_source` of
    /// its own. A refused version's tag is not fetched again.
    fn a_bad_registry_version_is_refused_and_the_old_one_stays(host: Host) {
        let plugin = registry_plugin(host, &sourced_config(host, json!({})));
        serve_version_seven(&plugin, host);
        assert_eq!(config_metric(&plugin, "version"), 7);

        let unknown_upstream = version_two(host).replace(
            r#"upstream: \"openfaas\", path: \"/users\""#,
            r#"upstream: \"nope\", path: \"/users\""#,
        );
        assert!(unknown_upstream.contains("nope"));
        let with_source = sourced_config(host, json!({}));
        let bad = [
            ("8", "{\"schema\": not json".to_string(), "configuration is not valid"),
            ("9", unknown_upstream, "nope"),
            ("10", with_source, "may not have a `config_source`"),
        ];
        let mut seen = "7";
        for (refused, (tag, text, problem)) in bad.iter().enumerate() {
            plugin.advance(Duration::from_millis(1000));
            let call = fetch(&plugin, host);
            assert_eq!(call.header("if-none-match"), Some(format!("\"{seen}\"").as_str()));
            reply_to(&plugin, &call, 200, &[("etag", &format!("\"{tag}\""))], text);
            assert_eq!(config_metric(&plugin, "refused"), refused as i64 + 1, "{tag}");
            let logged = plugin.logs().iter().any(|l| {
                l.level == LogLevel::Error
                    && l.message.contains(&format!("configuration {tag} from the registry refused"))
                    && l.message.contains(problem)
            });
            assert!(logged, "{tag}: {:?}", plugin.logs());
            assert_eq!(config_metric(&plugin, "version"), 7);
            assert_eq!(served(&plugin), ("/v2/user-profile?id=1".into(), "7".into()), "{tag}");
            seen = tag;
        }
        assert_eq!(config_metric(&plugin, "fetches.ok"), 1);
        assert!(plugin.violations().is_empty(), "{:?}", plugin.violations());
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// An answer larger than `config_source.max_bytes` is refused without
    /// being read (a failed fetch, logged with the limit); the inline
    /// configuration keeps serving.
    fn an_oversized_registry_answer_is_refused(host: Host) {
        let plugin = registry_plugin(host, &sourced_config(host, json!({"max_bytes": 1024})));
        plugin.tick();
        let call = fetch(&plugin, host);
        let padded = format!("{}{}", version_two(host), " ".repeat(1024));
        reply_to(&plugin, &call, 200, &[("etag", "\"7\"")], &padded);
        assert_eq!(config_metric(&plugin, "fetches.failed"), 1);
        assert_eq!(config_metric(&plugin, "fetches.ok"), 0);
        assert_eq!(config_metric(&plugin, "version"), 0);
        assert!(plugin.has_log("over config_source.max_bytes (1024)"), "{:?}", plugin.logs());
        assert_eq!(served(&plugin), ("/function/user-profile?id=1".into(), "inline".into()));
        assert!(plugin.violations().is_empty(), "{:?}", plugin.violations());
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// A fetch the host never answers holds the next one back for its
    /// timeout and a second, then is given up and another goes out; the
    /// lost fetch's late answer changes nothing, the new one's version is
    /// swapped in.
    fn a_lost_registry_fetch_is_given_up(host: Host) {
        let plugin = registry_plugin(host, &sourced_config(host, json!({})));
        plugin.tick();
        let lost = fetch(&plugin, host);
        plugin.advance(Duration::from_millis(1950));
        assert_eq!(fetch(&plugin, host), lost, "one fetch at a time");
        plugin.advance(Duration::from_millis(50));
        let root = plugin.root_id();
        let fresh: Vec<Call> = plugin
            .pending_calls()
            .into_iter()
            .filter(|c| c.context_id == root && c.token != lost.token)
            .collect();
        assert_eq!(fresh.len(), 1, "{fresh:?}");
        plugin.fail(lost.token, Failure::Timeout);
        assert_eq!(config_metric(&plugin, "fetches.failed"), 0, "not the registry's fetch any more");
        reply_to(&plugin, &fresh[0], 200, &[("etag", "\"7\"")], &version_two(host));
        assert_eq!(config_metric(&plugin, "fetches.ok"), 1);
        assert_eq!(served(&plugin), ("/v2/user-profile?id=1".into(), "7".into()));
        assert!(plugin.violations().is_empty(), "{:?}", plugin.violations());
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// A version swapped in while a request waits for its first call: that
    /// request finishes under the version it started with (its nested call
    /// keeps the old path prefix, its reply says `inline`); later requests
    /// use version 7 (the new prefix, the new schema without `inventory`).
    fn a_request_in_flight_keeps_the_version_it_started_with(host: Host) {
        let plugin = registry_plugin(host, &sourced_config(host, json!({})));
        let mut old = post(&plugin, SEED_QUERY);
        let profile = old.pending_calls().remove(0);
        assert_eq!(profile.path(), Some("/function/user-profile?id=1"));

        serve_version_seven(&plugin, host);
        assert_eq!(config_metric(&plugin, "version"), 7);

        respond(&mut old, &profile);
        let orders = old.pending_calls().remove(0);
        assert_eq!(orders.path(), Some("/function/user-orders-batch?ids=1"));
        respond(&mut old, &orders);
        assert_eq!(reply_json(&old).to_string(), SEED_REPLY);
        assert_eq!(old.expect_reply().header(VERSION_HEADER), Some("inline"));

        let mut new = post(&plugin, SEED_QUERY);
        assert_eq!(new.pending_calls()[0].path(), Some("/v2/user-profile?id=1"));
        assert_eq!(answer_all(&mut new).to_string(), SEED_REPLY);
        assert_eq!(new.expect_reply().header(VERSION_HEADER), Some("7"));

        let gone = post(&plugin, &body_of(r#"{ inventory(sku: "sku-1") { quantity } }"#));
        assert!(gone.calls().is_empty(), "validated against version 7");
        assert_eq!(reply_json(&gone)["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
        assert_eq!(gone.expect_reply().header(VERSION_HEADER), Some("7"));
        assert!(plugin.violations().is_empty(), "{:?}", plugin.violations());
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// A registry that answers in full every time (no `ETag`) with a
    /// version that does not load: it is checked, logged and counted as
    /// refused once; the same text again is "not modified". A registry
    /// that keeps failing the same way is logged once, counted every time.
    fn a_refused_version_without_etag_is_refused_once(host: Host) {
        let plugin = registry_plugin(host, &sourced_config(host, json!({})));
        plugin.tick();
        for _ in 0..3 {
            let call = fetch(&plugin, host);
            reply_to(&plugin, &call, 200, &[], "{\"schema\": not json");
            plugin.advance(Duration::from_millis(1000));
        }
        assert_eq!(config_metric(&plugin, "refused"), 1);
        assert_eq!(config_metric(&plugin, "fetches.not_modified"), 2);
        let refusals = plugin
            .logs()
            .iter()
            .filter(|l| l.message.contains("from the registry refused"))
            .count();
        assert_eq!(refusals, 1, "{:?}", plugin.logs());
        for _ in 0..3 {
            let call = fetch(&plugin, host);
            reply_to(&plugin, &call, 503, &[], "{}");
            plugin.advance(Duration::from_millis(1000));
        }
        assert_eq!(config_metric(&plugin, "fetches.failed"), 3);
        let failures = plugin
            .logs()
            .iter()
            .filter(|l| l.message.contains("fetching the configuration failed"))
            .count();
        assert_eq!(failures, 1, "{:?}", plugin.logs());
        let call = fetch(&plugin, host);
        reply_to(&plugin, &call, 200, &[], &version_two(host));
        assert_eq!(config_metric(&plugin, "fetches.ok"), 1);
        assert!(served(&plugin).1.starts_with("sha256:"), "a version named by its text");
        assert!(plugin.violations().is_empty(), "{:?}", plugin.violations());
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// Configured again with the same `config_source` (Kong reconfigures
    /// its filter chains on any change), the version from the registry
    /// stays in service; with another `config_source`, the new inline
    /// configuration serves until its registry answers.
    fn a_reconfiguration_keeps_the_registry_version(host: Host) {
        let config = sourced_config(host, json!({}));
        let plugin = registry_plugin(host, &config);
        serve_version_seven(&plugin, host);
        assert_eq!(served(&plugin).1, "7");
        assert!(plugin.reconfigure(&config));
        assert_eq!(served(&plugin), ("/v2/user-profile?id=1".into(), "7".into()));
        assert!(plugin.reconfigure(sourced_config(host, json!({"poll_ms": 2000}))));
        assert_eq!(served(&plugin), ("/function/user-profile?id=1".into(), "inline".into()));
        assert!(plugin.violations().is_empty(), "{:?}", plugin.violations());
    }
}

on_both_hosts! {
    /// Replies the filter makes without the engine (a body declared over
    /// `max_body_bytes`) name the configuration version too.
    fn filter_made_replies_name_the_version(host: Host) {
        let plugin = registry_plugin(
            host,
            &merged(
                serde_json::from_str(&sourced_config(host, json!({}))).unwrap(),
                json!({"limits": {"max_body_bytes": 100}}),
            ),
        );
        let mut request = post_headers_with(&plugin, &[("content-length", "5000")]);
        request.body_chunk(&[b' '; 50], false);
        let reply = request.expect_reply();
        assert_eq!(reply.status, 413);
        assert_eq!(reply.header(VERSION_HEADER), Some("inline"));
    }
}

/// A registry the host refuses to call (Envoy: a cluster it does not
/// know) fails every poll, counted each time and logged once; the inline
/// configuration keeps serving.
#[test]
fn envoy_a_registry_the_host_refuses_is_logged_once() {
    let plugin = Plugin::new(
        &fixtures::aggregator(),
        Profile::envoy(["openfaas"]),
        sourced_config(Host::Envoy, json!({})),
    );
    for _ in 0..3 {
        plugin.tick();
        plugin.advance(Duration::from_millis(1000));
    }
    assert!(config_metric(&plugin, "fetches.failed") >= 3);
    let lines = plugin
        .logs()
        .iter()
        .filter(|l| l.message.contains("fetching the configuration failed"))
        .count();
    assert_eq!(lines, 1, "{:?}", plugin.logs());
    assert_eq!(served(&plugin).1, "inline");
}
