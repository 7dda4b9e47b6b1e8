//! Tests of the test host itself, against the fixture filter in
//! `fixtures/test-filter` (built on first use) and a few WAT modules.

use host_tests::{
    fixtures, CallState, Delivery, Failure, HostError, HostKind, LogLevel, Module, Plugin, Profile,
    ReplySource,
};
use std::time::Duration;

const CONFIG_ENVOY: &str = "upstream=functions";
const CONFIG_KONG: &str = "upstream=127.0.0.1:8080";

fn envoy() -> Plugin {
    Plugin::new(
        &fixtures::test_filter(),
        Profile::envoy(["functions"]),
        CONFIG_ENVOY,
    )
}

fn kong() -> Plugin {
    Plugin::new(&fixtures::test_filter(), Profile::kong(), CONFIG_KONG)
}

fn both() -> [Plugin; 2] {
    [envoy(), kong()]
}

fn post(action: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "POST".into()),
        (":path", "/graphql".into()),
        (":authority", "localhost".into()),
        ("content-type", "application/json".into()),
        ("x-fixture", action.to_string()),
    ]
}

fn headers<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn starts_configures_and_reads_both_configurations() {
    let module = fixtures::test_filter();
    for profile in [Profile::envoy(["functions"]), Profile::kong()] {
        let plugin = Plugin::builder(&module, profile)
            .vm_configuration("vm-conf")
            .configuration("upstream=x")
            .start()
            .unwrap();
        assert!(plugin.vm_started());
        assert!(plugin.configured());
        assert!(plugin.has_log("vm start: vm-conf"), "{:?}", plugin.logs());
        assert!(plugin.has_log("configured: upstream=x"));
    }
}

#[test]
fn rejected_configuration_is_visible() {
    let plugin = Plugin::new(&fixtures::test_filter(), Profile::kong(), "reject");
    assert!(!plugin.configured());
    assert!(plugin.reconfigure("upstream=a:1"));
    assert!(plugin.configured());
    assert!(!plugin.reconfigure("reject"));
}

#[test]
fn envoy_delivers_chunks_with_cumulative_sizes() {
    let plugin = envoy();
    let h = post("echo");
    let mut req = plugin.request(&headers(&h));
    req.body_chunks(&[b"{", b"\"q\"", b":1}"]);
    let reply = req.expect_reply();
    assert_eq!(reply.status, 200);
    assert!(
        reply.body_text().contains("body={\"q\":1}"),
        "{}",
        reply.body_text()
    );
    // HTTP/1.1 (measured with curl): the data, then an empty chunk with end_of_stream.
    assert!(
        reply
            .body_text()
            .contains("body_calls=4 sizes=[1, 4, 7, 7]"),
        "{}",
        reply.body_text()
    );
    assert_eq!(reply.source, ReplySource::Filter);
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    assert_eq!(
        reply.header("content-length"),
        Some(reply.body.len().to_string().as_str())
    );

    let plugin = Plugin::new(
        &fixtures::test_filter(),
        Profile::envoy(["functions"]).with_http2(),
        CONFIG_ENVOY,
    );
    let mut req = plugin.request(&headers(&h));
    req.body_chunks(&[b"{", b"\"q\"", b":1}"]);
    assert!(req
        .expect_reply()
        .body_text()
        .contains("body_calls=3 sizes=[1, 4, 7]"));
}

#[test]
fn local_replies_pass_through_the_response_callbacks() {
    for plugin in both() {
        let h = post("mark-response");
        let mut req = plugin.request(&headers(&h));
        req.body(b"{}");
        let reply = req.expect_reply();
        assert_eq!(reply.header("x-marked"), Some("yes"), "{reply:?}");
        assert!(
            plugin.has_log("response headers n=4 eos=false status=200"),
            "{:?}",
            plugin.logs()
        );
        assert!(plugin.has_log(&format!("response body size={} eos=true", reply.body.len())));
        // Envoy 1.40 order: on_log, then on_done.
        let messages: Vec<String> = plugin.logs().into_iter().map(|l| l.message).collect();
        let log = messages
            .iter()
            .position(|m| *m == format!("log {}", req.id()))
            .unwrap();
        let done = messages
            .iter()
            .position(|m| *m == format!("done {}", req.id()))
            .unwrap();
        assert!(log < done, "{messages:?}");
    }
}

#[test]
fn kong_delivers_the_body_once() {
    let plugin = kong();
    let h = post("echo");
    let mut req = plugin.request(&headers(&h));
    req.body_chunks(&[b"{", b"\"q\"", b":1}"]);
    let reply = req.expect_reply();
    assert!(
        reply.body_text().contains("body_calls=1 sizes=[7]"),
        "{}",
        reply.body_text()
    );
}

#[test]
fn kong_never_calls_on_request_body_for_an_empty_body() {
    let plugin = kong();
    let h = post("echo");
    let mut req = plugin.request(&headers(&h));
    req.body(b"");
    assert_eq!(req.body_callbacks(), 0);
    assert!(
        req.reply().is_none(),
        "the fixture only replies from a body callback"
    );
    assert!(req.forwarded(), "Kong lets the request through");
}

#[test]
fn envoy_bodiless_request_gets_end_of_stream_in_headers() {
    let plugin = envoy();
    let mut req = plugin.request(&[
        (":method", "GET"),
        (":path", "/graphql?query={a}"),
        (":authority", "h"),
        ("x-fixture", "echo"),
    ]);
    req.end();
    let reply = req.expect_reply();
    assert!(
        reply.body_text().contains("body=<none> body_calls=0"),
        "{}",
        reply.body_text()
    );
    // Kong: end_of_stream is never true in headers, so the fixture waits for a body that never comes.
    let plugin = kong();
    let mut req = plugin.request(&[
        (":method", "GET"),
        (":path", "/graphql"),
        ("x-fixture", "echo"),
    ]);
    req.end();
    assert!(req.reply().is_none());
    assert!(req.forwarded());
}

#[test]
fn envoy_dispatch_to_unknown_cluster_is_bad_argument() {
    let plugin = Plugin::new(
        &fixtures::test_filter(),
        Profile::envoy(["functions"]),
        "upstream=nope",
    );
    let h = post("dispatch");
    let mut req = plugin.request(&headers(&h));
    req.body(b"{}");
    let reply = req.expect_reply();
    assert_eq!(reply.status, 502);
    assert_eq!(reply.body_text(), "dispatch error: BadArgument");
    assert!(plugin.report().contains("not a known cluster"));
}

#[test]
fn kong_dispatch_target_must_parse_as_host_port() {
    let plugin = Plugin::new(
        &fixtures::test_filter(),
        Profile::kong(),
        "upstream=functions:http",
    );
    let h = post("dispatch");
    let mut req = plugin.request(&headers(&h));
    req.body(b"{}");
    assert_eq!(
        req.expect_reply().body_text(),
        "dispatch error: InternalFailure"
    );
    assert!(plugin
        .host_logs()
        .iter()
        .any(|l| l.contains("dispatch failed: invalid port")));
    // A bare name is fine for nginx (port 80); it fails later, at resolution.
    let plugin = Plugin::new(
        &fixtures::test_filter(),
        Profile::kong(),
        "upstream=functions",
    );
    let mut req = plugin.request(&headers(&h));
    req.body(b"{}");
    let call = req.pending_calls().remove(0);
    req.fail(call.token, Failure::ResolverFailure);
    assert!(req
        .expect_reply()
        .body_text()
        .contains("dispatch_status=resolver failure"));
}

#[test]
fn calls_are_recorded_and_answered_in_any_order() {
    for plugin in both() {
        let kind = plugin.profile().kind();
        let mut h = post("dispatch");
        h.push(("x-calls", "3".into()));
        let mut req = plugin.request(&headers(&h));
        req.body(b"{}");
        let calls = req.pending_calls();
        assert_eq!(calls.len(), 3);
        // Envoy 1.40 hands out 4, 8, 12, ...; ngx_wasm_module 0, 1, 2, ...
        let expected = if kind == HostKind::Envoy {
            vec![4, 8, 12]
        } else {
            vec![0, 1, 2]
        };
        assert_eq!(calls.iter().map(|c| c.token).collect::<Vec<_>>(), expected);
        assert_eq!(calls[1].path(), Some("/call/1"));
        assert_eq!(calls[1].method(), Some("POST"));
        assert_eq!(calls[1].body_text(), "call 1");
        assert_eq!(calls[1].timeout_ms, 1000);
        assert_eq!(calls[1].context_id, req.id());
        assert_eq!(
            req.respond(
                calls[2].token,
                200,
                &[("Content-Type", "text/plain")],
                b"two"
            ),
            Delivery::Delivered
        );
        assert_eq!(
            req.respond(calls[0].token, 201, &[], b"zero"),
            Delivery::Delivered
        );
        assert!(req.reply().is_none());
        assert_eq!(req.pending_calls().len(), 1);
        req.respond(calls[1].token, 500, &[], b"one");
        let text = req.expect_reply().body_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].contains("status=200 dispatch_status=- body=two"),
            "{text}"
        );
        assert!(lines[1].contains("status=201"), "{text}");
        assert!(lines[2].contains("status=500"), "{text}");
        assert!(req.is_finished(), "a local reply ends the stream");
        assert_eq!(plugin.live_requests(), 0);
    }
}

#[test]
fn failed_calls_look_like_each_host_reports_them() {
    let plugin = envoy();
    let mut h = post("dispatch");
    h.push(("x-calls", "4".into()));
    let mut req = plugin.request(&headers(&h));
    req.body(b"{}");
    let calls = req.pending_calls();
    req.fail(calls[0].token, Failure::Reset);
    req.fail(calls[1].token, Failure::Timeout);
    req.fail(calls[2].token, Failure::ConnectionTerminated);
    req.fail(calls[3].token, Failure::ConnectFailure);
    let text = req.expect_reply().body_text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("headers=0 status=- dispatch_status=- body= get_status=11/reset"),
        "{text}"
    );
    // Envoy keeps the root context's status code from the reset (measured): 11 with an empty message.
    assert!(
        lines[1].contains(
            "headers=3 status=504 dispatch_status=- body=upstream request timeout get_status=11/"
        ),
        "{text}"
    );
    assert!(lines[2].contains("status=503 dispatch_status=- body=upstream connect error or disconnect/reset before headers. reset reason: connection termination"), "{text}");
    assert!(
        lines[3].contains("reset reason: remote connection failure"),
        "{text}"
    );

    let plugin = kong();
    let mut h = post("dispatch");
    h.push(("x-calls", "2".into()));
    let mut req = plugin.request(&headers(&h));
    req.body(b"{}");
    let calls = req.pending_calls();
    req.fail(calls[0].token, Failure::Timeout);
    req.fail(calls[1].token, Failure::Reset);
    let text = req.expect_reply().body_text();
    assert!(
        text.contains("headers=0 status=- dispatch_status=timeout body="),
        "{text}"
    );
    assert!(text.contains("dispatch_status=broken connection"), "{text}");
}

#[test]
fn envoy_reset_call_has_no_header_map() {
    // Measured with Envoy 1.40: reading a call-response header after a reset panics the SDK.
    let plugin = envoy();
    plugin.set_strict(false);
    let h = post("naive-dispatch");
    let mut req = plugin.request(&headers(&h));
    req.body(b"{}");
    let token = req.pending_calls()[0].token;
    req.fail(token, Failure::Reset);
    assert!(plugin
        .trapped()
        .unwrap()
        .contains("proxy_on_http_call_response"));
    assert!(plugin.report().contains("Check num_headers == 0"));
    plugin.take_violations();
    // A real response is fine, and the Envoy router's header is there.
    let plugin = envoy();
    let mut req = plugin.request(&headers(&h));
    req.body(b"{}");
    let token = req.pending_calls()[0].token;
    req.respond(token, 200, &[("X-Up", "yes")], b"hi");
    assert!(req
        .expect_reply()
        .body_text()
        .contains("headers=3 status=200"));
}

#[test]
fn calls_pending_after_the_reply_are_cancelled() {
    for plugin in both() {
        let kind = plugin.profile().kind();
        let mut h = post("first-wins");
        h.push(("x-calls", "3".into()));
        let mut req = plugin.request(&headers(&h));
        req.body(b"{}");
        let calls = req.pending_calls();
        req.respond(calls[1].token, 200, &[], b"fast");
        assert!(req.expect_reply().body_text().contains("body=fast"));
        assert!(req.pending_calls().is_empty());
        let late = req.respond(calls[0].token, 200, &[], b"late");
        match kind {
            HostKind::Kong => {
                assert_eq!(late, Delivery::Dropped);
                assert_eq!(req.call_state(calls[2].token), Some(CallState::Cancelled));
            }
            HostKind::Envoy => {
                // Envoy's calls belong to the root context; the SDK finds no context and drops it.
                assert_eq!(late, Delivery::DeliveredToRoot);
                assert_eq!(req.call_state(calls[2].token), Some(CallState::Orphaned));
                assert_eq!(
                    req.fail(calls[2].token, Failure::Timeout),
                    Delivery::DeliveredToRoot
                );
            }
        }
    }
}

#[test]
fn concurrent_requests_keep_their_own_state() {
    for plugin in both() {
        let h = post("dispatch");
        let mut a = plugin.request(&headers(&h));
        let mut b = plugin.request(&headers(&h));
        assert_ne!(a.id(), b.id());
        a.body(b"{}");
        b.body(b"{}");
        let (ca, cb) = (a.pending_calls().remove(0), b.pending_calls().remove(0));
        assert_eq!(ca.context_id, a.id());
        b.respond(cb.token, 200, &[], b"for b");
        a.respond(ca.token, 200, &[], b"for a");
        assert!(a.expect_reply().body_text().contains("body=for a"));
        assert!(b.expect_reply().body_text().contains("body=for b"));
        assert_eq!(
            b.expect_reply().header("x-fixture-context"),
            Some(b.id().to_string().as_str())
        );
    }
}

#[test]
#[should_panic(expected = "belongs to context")]
fn answering_another_requests_call_panics() {
    let plugin = envoy();
    let h = post("dispatch");
    let mut a = plugin.request(&headers(&h));
    let mut b = plugin.request(&headers(&h));
    a.body(b"{}");
    b.body(b"{}");
    let token = a.pending_calls()[0].token;
    b.respond(token, 200, &[], b"");
}

#[test]
fn reconfigure_keeps_in_flight_requests_on_the_old_config() {
    let plugin = envoy();
    let h = post("echo");
    let mut old = plugin.request(&headers(&h));
    old.body_chunk(b"{", false);
    assert!(plugin.reconfigure("upstream=other"));
    old.body_chunk(b"}", true);
    assert!(old
        .expect_reply()
        .body_text()
        .contains("config=upstream=functions"));
    let mut new = plugin.request(&headers(&h));
    new.body(b"{}");
    assert!(new
        .expect_reply()
        .body_text()
        .contains("config=upstream=other"));
}

#[test]
fn headers_after_continue_are_bad_argument_on_envoy_only() {
    let plugin = kong();
    let h = post("headers-in-body");
    let mut req = plugin.request(&headers(&h));
    req.body(b"{}");
    assert_eq!(req.expect_reply().body_text(), "late path=/graphql");

    let plugin = envoy();
    plugin.set_strict(false);
    let mut req = plugin.request(&headers(&h));
    req.body(b"{}");
    let trap = plugin.trapped().expect("the SDK panics on BadArgument");
    assert!(trap.contains("proxy_on_request_body"), "{trap}");
    assert!(plugin
        .report()
        .contains("Envoy nulls a request's header map"));
    assert!(plugin
        .logs()
        .iter()
        .any(|l| l.level == LogLevel::Critical && l.message.contains("unexpected status: 2")));
    assert!(!plugin.take_violations().is_empty());
}

#[test]
#[should_panic(expected = "outside the VM's")]
fn out_of_bounds_pointer_is_a_violation() {
    let plugin = envoy();
    let h = post("bad-pointer");
    plugin.request(&headers(&h)).body(b"{}");
}

/// `proxy_set_effective_context` for a context that does not exist:
/// proxy-wasm-cpp-host (Envoy) answers BadArgument, a filter may ask;
/// ngx_wasm_module (Kong) does nothing and answers OK.
#[test]
fn unknown_context_id_is_refused_on_envoy_and_ignored_on_kong() {
    for (plugin, status) in [(envoy(), "status=2"), (kong(), "status=0")] {
        let h = post("bad-context");
        let mut request = plugin.request(&headers(&h));
        request.body(b"{}");
        assert_eq!(request.expect_reply().body_text(), status);
        assert!(plugin.take_violations().is_empty());
    }
}

#[test]
#[should_panic(expected = "a second local reply")]
fn second_local_reply_is_a_violation() {
    let plugin = envoy();
    let h = post("double-reply");
    plugin.request(&headers(&h)).body(b"{}");
}

#[test]
fn kong_traps_on_a_second_local_reply() {
    let plugin = kong();
    plugin.set_strict(false);
    let h = post("double-reply");
    plugin.request(&headers(&h)).body(b"{}");
    assert!(plugin
        .trapped()
        .unwrap()
        .contains("local response already stashed"));
    let v = plugin.take_violations();
    assert!(
        v.iter().any(|v| v.message.contains("a second local reply")),
        "{v:?}"
    );
}

#[test]
#[should_panic(expected = "after the request's local reply")]
fn dispatch_after_reply_is_a_violation() {
    let plugin = envoy();
    let h = post("reply-then-dispatch");
    plugin.request(&headers(&h)).body(b"{}");
}

#[test]
#[should_panic(expected = "continue_stream for request")]
fn continue_after_reply_is_a_violation() {
    let plugin = kong();
    let h = post("reply-then-continue");
    plugin.request(&headers(&h)).body(b"{}");
}

#[test]
#[should_panic(expected = "fixture panic on purpose")]
fn a_trap_panics_with_the_filter_logs() {
    let plugin = envoy();
    let h = post("panic");
    plugin.request(&headers(&h)).body(b"{}");
}

#[test]
fn clock_and_random_are_deterministic() {
    let module = fixtures::test_filter();
    let run = |profile: Profile, action: &str| -> String {
        let plugin = Plugin::new(&module, profile, CONFIG_ENVOY);
        let h = post(action);
        let mut req = plugin.request(&headers(&h));
        req.body(b"{}");
        req.expect_reply().body_text()
    };
    let t = run(Profile::envoy(["functions"]), "time");
    assert_eq!(t, "proxy=1700000000000000000 wasi=1700000000000000000");
    let r1 = run(Profile::kong(), "random");
    assert_eq!(r1, run(Profile::kong(), "random"));
    assert_ne!(r1, run(Profile::kong().with_seed(7), "random"));

    let plugin = envoy();
    plugin.advance(Duration::from_millis(1500));
    let h = post("time");
    let mut req = plugin.request(&headers(&h));
    req.body(b"{}");
    assert_eq!(
        req.expect_reply().body_text(),
        "proxy=1700000001500000000 wasi=1700000001500000000"
    );
}

#[test]
fn monotonic_clock_exists_on_both_hosts() {
    for plugin in both() {
        let h = post("instant");
        let mut req = plugin.request(&headers(&h));
        req.body(b"{}");
        assert!(req.expect_reply().body_text().starts_with("elapsed="));
    }
}

#[test]
fn stdout_stderr_metrics_and_shared_data() {
    for plugin in both() {
        let h = post("print");
        plugin.request(&headers(&h)).body(b"{}");
        assert_eq!(plugin.stdout(), "to stdout\n");
        assert_eq!(plugin.stderr(), "to stderr\n");

        let h = post("metrics");
        let mut req = plugin.request(&headers(&h));
        req.body(b"{}");
        assert_eq!(req.expect_reply().body_text(), "requests=2");
        assert_eq!(plugin.metric("fixture_requests").unwrap().value, 2);

        let h = post("shared");
        let mut req = plugin.request(&headers(&h));
        req.body(b"v1");
        assert_eq!(
            req.expect_reply().body_text(),
            "set=Ok(()) got=v1 cas=Some(1)"
        );
        assert_eq!(plugin.shared_data("fixture").as_deref(), Some(&b"v1"[..]));
    }
}

#[test]
fn kong_without_shm_zone_traps_on_shared_data() {
    let plugin = Plugin::new(
        &fixtures::test_filter(),
        Profile::kong().without_shm_kv(),
        CONFIG_KONG,
    );
    plugin.set_strict(false);
    let h = post("shared");
    plugin.request(&headers(&h)).body(b"v1");
    assert!(plugin.trapped().is_some());
    assert!(plugin
        .take_violations()
        .iter()
        .any(|v| v.message.contains("nginx_wasm_shm_kv")));
}

#[test]
fn memory_size_grows_with_allocations() {
    let plugin = envoy();
    let before = plugin.memory_size_bytes();
    assert!(before >= 64 * 1024);
    let mut h = post("alloc");
    h.push(("x-bytes", (4 << 20).to_string()));
    plugin.request(&headers(&h)).body(b"{}");
    assert!(plugin.memory_size_bytes() >= before + (4 << 20));
}

#[test]
fn requests_end_with_done_log_and_delete() {
    for plugin in both() {
        let h = post("dispatch-silent");
        let mut req = plugin.request(&headers(&h));
        req.body(b"{}");
        assert_eq!(plugin.live_requests(), 1);
        req.finish();
        assert!(req.is_finished());
        assert_eq!(plugin.live_requests(), 0);
        assert!(plugin.has_log(&format!("log {}", req.id())));
        drop(req);
        let req = plugin.request(&headers(&h));
        drop(req);
        assert_eq!(plugin.live_requests(), 0);
    }
}

#[test]
fn kong_resumes_after_the_last_call_envoy_waits() {
    let mut h = post("dispatch-silent");
    h.push(("x-calls", "2".into()));
    for plugin in both() {
        let kind = plugin.profile().kind();
        let mut req = plugin.request(&headers(&h));
        req.body(b"{}");
        for call in req.pending_calls() {
            req.respond(call.token, 200, &[], b"");
        }
        assert!(req.reply().is_none());
        assert_eq!(req.forwarded(), kind == HostKind::Kong, "{kind:?}");
    }
}

#[test]
fn pausing_in_headers_withholds_the_body_until_continue() {
    for plugin in both() {
        let h = post("pause-headers");
        let mut req = plugin.request(&headers(&h));
        req.body(b"payload");
        assert_eq!(req.body_callbacks(), 0);
        let call = req.pending_calls().remove(0);
        req.respond(call.token, 200, &[], b"");
        assert_eq!(req.body_callbacks(), 1);
        assert_eq!(req.expect_reply().body_text(), "after calls body=payload");
    }
}

#[test]
fn bodies_over_the_limit_get_413_from_the_host() {
    for profile in [Profile::envoy(["functions"]), Profile::kong()] {
        let plugin = Plugin::new(
            &fixtures::test_filter(),
            profile.with_body_limit(8),
            CONFIG_KONG,
        );
        let h = post("echo");
        let mut req = plugin.request(&headers(&h));
        req.body_chunks(&[b"12345", b"67890"]);
        let reply = req.expect_reply();
        assert_eq!((reply.status, reply.source), (413, ReplySource::Host));
    }
}

#[test]
fn close_stream_resets_the_request() {
    let plugin = kong();
    let h = post("close");
    let mut req = plugin.request(&headers(&h));
    req.body(b"{}");
    assert!(req.is_reset());
    assert!(req.is_finished());
}

#[test]
fn ticks_follow_the_test_clock() {
    let plugin = Plugin::new(
        &fixtures::test_filter(),
        Profile::envoy(["functions"]),
        "tick=100",
    );
    assert_eq!(plugin.tick_period(), Some(Duration::from_millis(100)));
    plugin.advance(Duration::from_millis(350));
    assert_eq!(
        plugin.logs().iter().filter(|l| l.message == "tick").count(),
        3
    );
}

#[test]
fn missing_imports_are_named_at_instantiation() {
    let wat = r#"(module
        (import "env" "proxy_frobnicate" (func (param i32) (result i32)))
        (import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))
        (memory (export "memory") 1)
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 1024))"#;
    let module = Module::from_bytes("frob.wat", wat.as_bytes()).unwrap();
    let err = Plugin::try_new(&module, Profile::kong(), "").err().unwrap();
    let text = err.to_string();
    assert!(matches!(err, HostError::MissingImports { .. }), "{text}");
    assert!(text.contains("env::proxy_frobnicate"), "{text}");
    assert!(
        text.contains("wasi_snapshot_preview1::sched_yield (ngx_wasm_module does not provide it)"),
        "{text}"
    );
    // Envoy 1.40 provides sched_yield: only the unknown proxy call is left.
    let err = Plugin::try_new(&module, Profile::envoy(["x"]), "")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("proxy_frobnicate") && !err.contains("sched_yield"),
        "{err}"
    );
}

#[test]
fn the_fixture_imports_are_all_provided_by_both_hosts() {
    let module = fixtures::test_filter();
    assert!(module
        .imports()
        .iter()
        .any(|(m, n)| m == "env" && n == "proxy_http_call"));
    module.check_imports(&Profile::envoy(["x"])).unwrap();
    module.check_imports(&Profile::kong()).unwrap();
}

#[test]
fn wat_misuse_of_buffers_and_maps_is_reported() {
    // A hand-written module whose on_configure asks for buffer type 42 and map type 9.
    let wat = r#"(module
        (import "env" "proxy_get_buffer_bytes" (func $gb (param i32 i32 i32 i32 i32) (result i32)))
        (import "env" "proxy_get_header_map_pairs" (func $gm (param i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 1024)
        (func (export "proxy_on_configure") (param i32 i32) (result i32)
            (drop (call $gb (i32.const 42) (i32.const 0) (i32.const 10) (i32.const 0) (i32.const 4)))
            (drop (call $gm (i32.const 9) (i32.const 0) (i32.const 4)))
            (drop (call $gb (i32.const 7) (i32.const 0) (i32.const 10) (i32.const 70000) (i32.const 4)))
            i32.const 1))"#;
    let module = Module::from_bytes("misuse.wat", wat.as_bytes()).unwrap();
    let plugin = Plugin::builder(&module, Profile::envoy(["x"]))
        .configuration("abc")
        .lenient()
        .start()
        .unwrap();
    let v: Vec<String> = plugin
        .take_violations()
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(v.len(), 3, "{v:#?}");
    assert!(v[0].contains("buffer type 42"), "{v:#?}");
    assert!(v[1].contains("map type 9"), "{v:#?}");
    assert!(v[2].contains("outside the VM's memory"), "{v:#?}");
}
