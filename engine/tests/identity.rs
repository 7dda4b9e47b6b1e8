//! The identity step (`identity`), headers back to the client
//! (`response_headers`) and the configuration's version header, driven
//! through `Execution` as a host drives it.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::{Execution, PendingCall, IDENTITY_CALL};
use graphql_aggregator_engine::request::HttpRequest;
use graphql_aggregator_engine::upstream::{CallFailure, CallOutcome};
use serde_json::{json, Value};
use std::sync::Arc;

const SCHEMA: &str = r#"
type Query {
  me: Profile @http(upstream: "fn", path: "/users/{identity.uid}?tenant={identity.tenant}")
  note(text: String!): Note @http(upstream: "fn", method: "POST", path: "/notes", body: "{\"text\": \"{args.text}\", \"owner\": \"{identity.uid}\"}", dedupe: true)
  greeting: String @http(upstream: "fn", path: "/greeting", headers: [{name: "x-caller", value: "user {identity.uid}"}])
  public: String @http(upstream: "other", path: "/public")
}
type Profile { id: ID name: String }
type Note { text: String owner: String }
"#;

fn config(identity: Value) -> Value {
    json!({
        "schema": SCHEMA,
        "upstreams": {
            "fn": {"target": "functions", "headers": {"x-platform-uid": "{identity.uid}"},
                   "response_headers": {"set-cookie": "append", "x-trace-id": "first",
                                        "x-ratelimit-remaining": "last", "x-version": {"precedence": 1}}},
            "other": {"target": "functions",
                      "response_headers": {"set-cookie": "append", "x-trace-id": "first",
                                           "x-ratelimit-remaining": "last", "x-version": {"precedence": 9}}},
            "id": {"target": "identity", "path_prefix": "/function", "forward_headers": ["x-tenant-hint"]}
        },
        "identity": identity,
        "deadline_ms": 1000
    })
}

fn gateway(identity: Value) -> Arc<Gateway> {
    Arc::new(Gateway::from_json(&config(identity).to_string()).expect("valid config"))
}

fn required() -> Value {
    json!({"upstream": "id", "path": "/identity", "credential_headers": ["cookie", "authorization"],
           "result": "user", "cache_ttl_ms": 5000})
}

fn request(query: &str, headers: &[(&str, &str)]) -> HttpRequest {
    let mut request = HttpRequest::post_json(json!({ "query": query }).to_string().into_bytes());
    for (name, value) in headers {
        request.headers.push((name.to_string(), value.to_string()));
    }
    request
}

/// Why the engine refuses this configuration.
fn refusal(config: &Value) -> String {
    Gateway::from_json(&config.to_string())
        .unwrap_err()
        .to_string()
}

fn header<'a>(call: &'a PendingCall, name: &str) -> Option<&'a str> {
    call.request
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn finish(execution: &mut Execution) -> (u16, Value, Vec<(String, String)>) {
    let reply = execution.reply().expect("finished");
    let headers = reply
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (
        reply.status,
        serde_json::from_slice(&reply.body).unwrap(),
        headers,
    )
}

const ALICE: &[u8] = br#"{"user": {"uid": "u-1", "tenant": "acme corp"}}"#;

#[test]
fn a_required_identity_without_a_credential_is_refused_before_any_call() {
    let mut execution = Execution::start(gateway(required()), &request("{ me { id } }", &[]), 0);
    assert!(execution.take_calls(0).is_empty());
    let (status, body, headers) = finish(&mut execution);
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert!(body.get("data").is_none());
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("cookie or authorization"), "{message}");
    assert!(headers.contains(&("cache-control".into(), "no-store".into())));
    assert!(headers.contains(&("www-authenticate".into(), "Bearer realm=\"graphql\"".into())));
}

#[test]
fn the_identity_call_goes_first_and_alone_and_its_values_reach_every_template_position() {
    let gateway = gateway(required());
    // A cached reply varies by the credential.
    assert!(
        gateway.vary.contains("cookie") && gateway.vary.contains("authorization"),
        "{}",
        gateway.vary
    );
    let query = r#"{ me { id } note(text: "hi") { owner } greeting }"#;
    let cookie = "session=good-1; theme=dark";
    let client = request(
        query,
        &[
            ("cookie", cookie),
            ("x-tenant-hint", "t1"),
            ("x-other", "no"),
        ],
    );
    let mut execution = Execution::start(gateway, &client, 0);
    let calls = execution.take_calls(0);
    assert_eq!(calls.len(), 1, "only the identity call: {calls:?}");
    let identity = &calls[0];
    assert_eq!(identity.id, IDENTITY_CALL);
    assert_eq!(identity.request.path, "/function/identity");
    assert_eq!(identity.request.method.as_ref(), "GET");
    assert_eq!(header(identity, "cookie"), Some(cookie));
    assert_eq!(
        header(identity, "x-tenant-hint"),
        Some("t1"),
        "the upstream's own forwarding holds"
    );
    assert_eq!(header(identity, "x-other"), None);
    let shareable = identity
        .shareable
        .expect("a GET identity call may be shared per credential");
    assert_eq!(shareable.ttl_ms, Some(5000));
    assert!(
        execution.take_calls(0).is_empty(),
        "nothing else before the identity is known"
    );
    execution.on_call_outcome(IDENTITY_CALL, CallOutcome::response(200, ALICE.to_vec()), 1);
    let calls = execution.take_calls(1);
    assert_eq!(calls.len(), 3, "{calls:?}");
    let me = calls
        .iter()
        .find(|c| c.request.path.starts_with("/users"))
        .unwrap();
    assert_eq!(
        me.request.path, "/users/u-1?tenant=acme%20corp",
        "path and query"
    );
    assert_eq!(
        header(me, "x-platform-uid"),
        Some("u-1"),
        "an upstream's header"
    );
    assert_eq!(
        header(me, "cookie"),
        None,
        "the credential goes to the identity function only"
    );
    let note = calls.iter().find(|c| c.request.path == "/notes").unwrap();
    let sent: Value = serde_json::from_slice(note.request.body.as_ref().unwrap()).unwrap();
    assert_eq!(sent, json!({"text": "hi", "owner": "u-1"}), "a body");
    let greeting = calls
        .iter()
        .find(|c| c.request.path == "/greeting")
        .unwrap();
    assert_eq!(
        header(greeting, "x-caller"),
        Some("user u-1"),
        "a field's header"
    );
    for call in &calls {
        let answer: &[u8] = match call.request.path.as_str() {
            "/notes" => br#"{"text": "hi", "owner": "u-1"}"#,
            "/greeting" => br#""hello""#,
            _ => br#"{"id": "u-1", "name": "Alice"}"#,
        };
        execution.on_call_outcome(call.id, CallOutcome::response(200, answer.to_vec()), 2);
    }
    let (status, body, _) = finish(&mut execution);
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"data": {"me": {"id": "u-1"}, "note": {"owner": "u-1"}, "greeting": "hello"}})
    );
}

#[test]
fn refused_failing_and_late_identities_answer_401_and_call_nothing_else() {
    let cases: Vec<(CallOutcome, &str)> = vec![
        (
            CallOutcome::response(401, br#"{"error": "invalid"}"#.to_vec()),
            "refused (the identity function answered HTTP 401)",
        ),
        (
            CallOutcome::response(403, b"{}".to_vec()),
            "refused (the identity function answered HTTP 403)",
        ),
        (
            CallOutcome::response(200, br#"{"user": null}"#.to_vec()),
            "has no `user`",
        ),
        (
            CallOutcome::response(500, b"{}".to_vec()),
            "could not be verified",
        ),
        (
            CallOutcome::response(200, b"not json".to_vec()),
            "could not be verified",
        ),
        (
            CallOutcome::Failed(CallFailure::Timeout),
            "could not be verified",
        ),
        (
            CallOutcome::Failed(CallFailure::Unavailable("reset".into())),
            "could not be verified",
        ),
    ];
    for (outcome, expected) in cases {
        let client = request("{ me { id } }", &[("cookie", "session=secret-token-123")]);
        let mut execution = Execution::start(gateway(required()), &client, 0);
        assert_eq!(execution.take_calls(0).len(), 1);
        execution.on_call_outcome(IDENTITY_CALL, outcome, 1);
        assert!(execution.is_finished());
        assert!(execution.take_calls(1).is_empty());
        let (status, body, _) = finish(&mut execution);
        assert_eq!(status, 401);
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
        assert!(
            !body.to_string().contains("secret-token"),
            "never the credential: {body}"
        );
    }
    // The request's deadline passes while the identity call is out.
    let client = request("{ me { id } }", &[("authorization", "Bearer slow")]);
    let mut execution = Execution::start(gateway(required()), &client, 0);
    let identity = execution.take_calls(0);
    assert_eq!(identity[0].request.timeout_ms, 1000, "cut to the deadline");
    assert!(execution.take_calls(1000).is_empty());
    let (status, body, _) = finish(&mut execution);
    assert_eq!(status, 401);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{body}"
    );
}

#[test]
fn an_optional_identity_is_absent_without_a_credential() {
    let mut optional = required();
    optional["required"] = json!(false);
    let gateway = gateway(optional);
    let mut execution = Execution::start(gateway.clone(), &request("{ greeting public }", &[]), 0);
    let calls = execution.take_calls(0);
    assert_eq!(calls.len(), 2, "no identity call: {calls:?}");
    let greeting = calls
        .iter()
        .find(|c| c.request.path == "/greeting")
        .unwrap();
    assert_eq!(
        header(greeting, "x-caller"),
        None,
        "a header whose value is absent is not sent"
    );
    assert_eq!(header(greeting, "x-platform-uid"), None);
    // A path that needs the identity fails its field, with an error.
    let mut execution = Execution::start(gateway.clone(), &request("{ me { id } }", &[]), 0);
    assert!(execution.take_calls(0).is_empty());
    let (status, body, _) = finish(&mut execution);
    assert_eq!(status, 200);
    assert_eq!(body["data"]["me"], Value::Null);
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "INVALID_FUNCTION_REQUEST"
    );
    // A credential that is sent is verified, optional or not.
    let client = request("{ greeting }", &[("cookie", "session=bad")]);
    let mut execution = Execution::start(gateway, &client, 0);
    execution.take_calls(0);
    execution.on_call_outcome(IDENTITY_CALL, CallOutcome::response(401, b"{}".to_vec()), 1);
    assert_eq!(finish(&mut execution).0, 401);
}

#[test]
fn identity_placeholders_need_an_identity_step() {
    let mut without = config(json!(null));
    without.as_object_mut().unwrap().remove("identity");
    let error = refusal(&without);
    assert!(error.contains("no `identity` step"), "{error}");
    let mut args_in_upstream = config(required());
    args_in_upstream["upstreams"]["other"]["headers"] = json!({"x-a": "{args.id}"});
    let error = refusal(&args_in_upstream);
    assert!(error.contains("may only use `{identity.<key>}`"), "{error}");
}

/// Runs `{ greeting public }` with an identity, answering each call with
/// `headers`, and gives the reply's headers.
fn reply_headers(
    answer: impl Fn(&PendingCall) -> Vec<(String, String)>,
    order: impl Fn(&mut Vec<PendingCall>),
) -> Vec<(String, String)> {
    let mut optional = required();
    optional["required"] = json!(false);
    let mut execution =
        Execution::start(gateway(optional), &request("{ greeting public }", &[]), 0);
    let mut calls = execution.take_calls(0);
    order(&mut calls);
    for call in &calls {
        let headers = answer(call);
        execution.on_call_answer_with_headers(
            call.id,
            CallOutcome::response(200, br#""x""#.to_vec()),
            Some("max-age=60"),
            &headers,
            1,
        );
    }
    finish(&mut execution).2
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn answer_headers_reach_the_reply_by_their_rules() {
    let answer = |call: &PendingCall| {
        let who = if call.request.path == "/greeting" {
            "fn"
        } else {
            "other"
        };
        pairs(&[
            ("set-cookie", &format!("{who}=1")),
            ("x-trace-id", who),
            ("x-ratelimit-remaining", who),
            ("x-version", who),
            ("x-unlisted", who),
            ("connection", "close"),
        ])
    };
    for reversed in [false, true] {
        let headers = reply_headers(answer, |calls| {
            calls.sort_by_key(|c| c.request.path.clone());
            if reversed {
                calls.reverse();
            }
        });
        let get = |name: &str| -> Vec<&str> {
            headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        let (first, last) = if reversed {
            ("other", "fn")
        } else {
            ("fn", "other")
        };
        let mut cookies = get("set-cookie");
        cookies.sort();
        assert_eq!(
            cookies,
            ["fn=1", "other=1"],
            "every cookie, each its own line"
        );
        assert_eq!(get("x-trace-id"), [first]);
        assert_eq!(get("x-ratelimit-remaining"), [last]);
        assert_eq!(
            get("x-version"),
            ["other"],
            "the higher precedence, whatever the order"
        );
        assert!(get("x-unlisted").is_empty());
        assert!(get("connection").is_empty());
        assert_eq!(
            get("cache-control"),
            ["no-store"],
            "a reply that sets a cookie is never cached"
        );
    }
    // Without a cookie, the reply may be cached, by the client alone.
    let headers = reply_headers(|_| pairs(&[("x-trace-id", "t")]), |_| {});
    let cache_control: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k == "cache-control")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cache_control, ["private, max-age=60"]);
    // Answers handed over without headers (from the cache, or another
    // request's call) bring none.
    let headers = reply_headers(|_| Vec::new(), |_| {});
    assert!(!headers
        .iter()
        .any(|(k, _)| k == "set-cookie" || k == "x-trace-id"));
}

#[test]
fn the_identity_functions_own_headers_follow_its_rules_too() {
    let mut with_rules = config(required());
    with_rules["upstreams"]["id"]["response_headers"] = json!({"set-cookie": "append"});
    let gateway = Arc::new(Gateway::from_json(&with_rules.to_string()).unwrap());
    let client = request("{ public }", &[("cookie", "session=good-1")]);
    let mut execution = Execution::start(gateway, &client, 0);
    execution.take_calls(0);
    execution.on_call_answer_with_headers(
        IDENTITY_CALL,
        CallOutcome::response(200, ALICE.to_vec()),
        None,
        &pairs(&[("set-cookie", "session=good-1-renewed")]),
        1,
    );
    let call = execution.take_calls(1).pop().unwrap();
    execution.on_call_outcome(call.id, CallOutcome::response(200, br#""x""#.to_vec()), 2);
    let headers = finish(&mut execution).2;
    assert!(headers.contains(&("set-cookie".into(), "session=good-1-renewed".into())));
}

#[test]
fn response_header_rules_agree_across_upstreams() {
    let mut clash = config(required());
    clash["upstreams"]["other"]["response_headers"]["x-trace-id"] = json!("last");
    let error = refusal(&clash);
    assert!(error.contains("one header takes one rule"), "{error}");
    let mut framing = config(required());
    framing["upstreams"]["other"]["response_headers"] = json!({"transfer-encoding": "last"});
    let error = refusal(&framing);
    assert!(error.contains("hop-by-hop"), "{error}");
}

#[test]
fn replies_name_the_configuration_version_when_asked() {
    let mut with_source = config(required());
    with_source["config_source"] =
        json!({"upstream": "other", "path": "/config", "version_header": "X-Config-Version"});
    let mut gateway = Gateway::from_json(&with_source.to_string()).unwrap();
    assert_eq!(gateway.version, "inline");
    gateway.version = "42".into();
    let mut execution = Execution::start(Arc::new(gateway), &request("{ public }", &[]), 0);
    let (status, _, headers) = finish(&mut execution);
    assert_eq!(status, 401, "even a refusal says which version refused it");
    assert!(
        headers.contains(&("x-config-version".into(), "42".into())),
        "{headers:?}"
    );
}

/// The identity function may share an upstream with fields: the identity
/// call goes without identity headers, the fields' calls with them.
#[test]
fn an_upstream_serving_the_identity_and_fields_sends_identity_headers_on_field_calls_only() {
    let mut shared = required();
    shared["upstream"] = json!("fn");
    let gateway = gateway(shared);
    let client = request("{ greeting }", &[("cookie", "session=good-1")]);
    let mut execution = Execution::start(gateway, &client, 0);
    let identity = execution.take_calls(0).pop().unwrap();
    assert_eq!(header(&identity, "x-platform-uid"), None);
    execution.on_call_outcome(IDENTITY_CALL, CallOutcome::response(200, ALICE.to_vec()), 1);
    let greeting = execution.take_calls(1).pop().unwrap();
    assert_eq!(header(&greeting, "x-platform-uid"), Some("u-1"));
}

/// A client's value never stands in for a templated header whose value
/// is absent, and a credential sent on several lines reaches the
/// identity function whole.
#[test]
fn templated_headers_are_never_a_clients_and_credentials_are_whole() {
    let mut optional = config(json!({"upstream": "id", "path": "/identity",
        "credential_headers": ["cookie"], "result": "user", "required": false}));
    optional["upstreams"]["fn"]["forward_headers"] = json!(["x-platform-uid", "x-caller"]);
    let gateway = Arc::new(Gateway::from_json(&optional.to_string()).unwrap());
    let client = request(
        "{ greeting }",
        &[("x-platform-uid", "admin"), ("x-caller", "admin")],
    );
    let mut execution = Execution::start(gateway.clone(), &client, 0);
    let greeting = execution.take_calls(0).pop().unwrap();
    assert_eq!(
        header(&greeting, "x-platform-uid"),
        None,
        "an upstream's identity header"
    );
    assert_eq!(
        header(&greeting, "x-caller"),
        None,
        "a field's identity header"
    );
    let client = request(
        "{ greeting }",
        &[("cookie", "session=good-1"), ("cookie", "lang=en")],
    );
    let mut execution = Execution::start(gateway, &client, 0);
    let identity = execution.take_calls(0).pop().unwrap();
    assert_eq!(header(&identity, "cookie"), Some("session=good-1; lang=en"));
}

/// The identity function's own headers reach a 401 (a cookie that clears
/// a dead session), and a client without a credential registers no
/// persisted query.
#[test]
fn a_refusal_keeps_the_identity_functions_headers_and_registers_nothing() {
    let mut with_rules = config(required());
    with_rules["upstreams"]["id"]["response_headers"] = json!({"set-cookie": "append"});
    let gateway = Arc::new(Gateway::from_json(&with_rules.to_string()).unwrap());
    let client = request("{ public }", &[("cookie", "session=expired")]);
    let mut execution = Execution::start(gateway.clone(), &client, 0);
    execution.take_calls(0);
    execution.on_call_answer_with_headers(
        IDENTITY_CALL,
        CallOutcome::response(401, b"{}".to_vec()),
        None,
        &pairs(&[("set-cookie", "session=; Max-Age=0")]),
        1,
    );
    let (status, _, headers) = finish(&mut execution);
    assert_eq!(status, 401);
    assert!(headers.contains(&("set-cookie".into(), "session=; Max-Age=0".into())));
    assert!(headers.contains(&("cache-control".into(), "no-store".into())));

    struct Store(usize);
    impl graphql_aggregator_engine::persisted::SharedStore for Store {
        fn get(&mut self, _: &str) -> Option<Vec<u8>> {
            None
        }
        fn set(&mut self, _: &str, _: &[u8]) -> bool {
            self.0 += 1;
            true
        }
    }
    let query = "{ public }";
    let hash = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(query.as_bytes());
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let body = json!({"query": query, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
    let mut store = Store(0);
    let mut execution = Execution::start_with_store(
        gateway,
        &HttpRequest::post_json(body.to_string().into_bytes()),
        0,
        None,
        Some(&mut store),
    );
    assert_eq!(finish(&mut execution).0, 401);
    assert_eq!(store.0, 0, "nothing registered");
}

/// A version header cannot also come from a function.
#[test]
fn the_version_header_has_one_source() {
    let mut clash = config(required());
    clash["config_source"] =
        json!({"upstream": "other", "path": "/config", "version_header": "x-version"});
    let error = refusal(&clash);
    assert!(error.contains("a reply header has one source"), "{error}");
}

/// An identity lifetime without an answer cache to keep it in is said.
#[test]
fn an_identity_lifetime_without_an_answer_cache_is_a_warning() {
    let gateway = gateway(required());
    assert!(
        gateway
            .warnings
            .iter()
            .any(|w| w.contains("identity.cache_ttl_ms has no effect")),
        "{:?}",
        gateway.warnings
    );
    let mut cached = config(required());
    cached["answer_cache"] = json!({"max_bytes": 1048576});
    let gateway = Gateway::from_json(&cached.to_string()).unwrap();
    assert!(gateway.warnings.is_empty(), "{:?}", gateway.warnings);
}
