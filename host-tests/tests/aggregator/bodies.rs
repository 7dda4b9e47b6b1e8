//! How the request reaches the filter: in odd chunks, empty, or as a GET.

use crate::hosts::{post, post_headers, post_headers_with, Host, SEED_QUERY, SEED_REPLY};
use crate::play::{answer_all, assert_idle, reply_json};
use host_tests::HostKind;

on_both_hosts! {
    /// A body in 1-byte chunks (Envoy calls the filter per chunk with
    /// cumulative sizes; Kong still delivers it once).
    fn body_in_one_byte_chunks(host: Host) {
        let plugin = host.plugin();
        let mut request = post_headers(&plugin);
        let chunks: Vec<&[u8]> = SEED_QUERY.as_bytes().chunks(1).collect();
        request.body_chunks(&chunks);
        let expected_callbacks = match host {
            // HTTP/1.1: a last empty chunk carries end_of_stream.
            Host::Envoy => SEED_QUERY.len() + 1,
            Host::Kong => 1,
        };
        assert_eq!(request.body_callbacks(), expected_callbacks);
        assert_eq!(answer_all(&mut request).to_string(), SEED_REPLY);
        assert!(!request.forwarded(), "the body never goes upstream");
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// A POST with an empty body is a request error, answered at once (Kong
    /// never calls the body callback for it).
    fn empty_body(host: Host) {
        let plugin = host.plugin();
        let mut request = post_headers_with(&plugin, &[("content-length", "0")]);
        request.body(b"");
        assert!(request.calls().is_empty());
        let reply = request.expect_reply();
        assert_eq!(reply.status, 400, "{}", reply.body_text());
        let body = reply_json(&request);
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("empty"), "{body}");
        assert!(body.get("data").is_none());
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// A query in the URL of a GET (no body at all).
    fn get_request(host: Host) {
        let plugin = host.plugin();
        let path = "/graphql?query=query%20GetUserWithOrders(%24userId%3A%20ID!)%20%7B%20user(id%3A%20%24userId)%20%7B%20id%20name%20email%20orders%20%7B%20id%20amount%20%7D%20%7D%20%7D&variables=%7B%22userId%22%3A%221%22%7D";
        let mut request = plugin.request(&[
            (":method", "GET"),
            (":path", path),
            (":authority", "localhost"),
            ("accept", "application/json"),
        ]);
        request.end();
        assert_eq!(request.body_callbacks(), 0);
        assert_eq!(answer_all(&mut request).to_string(), SEED_REPLY);
        assert_idle(&plugin);
    }
}

/// Envoy over HTTP/2: end_of_stream comes with the last data chunk.
#[test]
fn envoy_http2_body() {
    let plugin = host_tests::Plugin::new(
        &host_tests::fixtures::aggregator(),
        Host::Envoy.profile().with_http2(),
        Host::Envoy.config(),
    );
    let mut request = post(&plugin, SEED_QUERY);
    assert_eq!(answer_all(&mut request).to_string(), SEED_REPLY);
}

on_both_hosts! {
    /// Requests that cannot have a body are answered from their headers:
    /// on Kong, end_of_stream never comes at headers time and no body
    /// callback comes for an empty body, so a request the filter waited on
    /// went to the route's service (measured: a POST without
    /// content-length, an HTTP/1.0 POST, OPTIONS, DELETE). Nothing reaches
    /// the route's service or a function.
    fn requests_without_a_body_are_answered_from_their_headers(host: Host) {
        let plugin = host.plugin();
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u32);
        let cases: [Case; 5] = [
            // curl -X POST, and an HTTP/1.0 POST: neither a length nor chunks.
            ("POST", &[], 400),
            ("POST", &[("content-length", "0")], 400),
            ("OPTIONS", &[], 405),
            ("DELETE", &[], 405),
            ("PUT", &[("content-length", "0")], 405),
        ];
        for (method, extra, status) in cases {
            let mut headers = vec![
                (":method", method),
                (":path", "/graphql"),
                (":authority", "localhost"),
                ("content-type", "application/json"),
            ];
            headers.extend_from_slice(extra);
            let mut request = plugin.request(&headers);
            request.end();
            assert!(!request.forwarded(), "{method} {extra:?} reached the route's service");
            assert!(request.calls().is_empty());
            let reply = request.expect_reply();
            assert_eq!(reply.status, status, "{method} {extra:?}: {}", reply.body_text());
            let body = reply_json(&request);
            assert!(body["errors"][0]["message"].is_string(), "{body}");
        }
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// An empty chunked body: Envoy ends the stream with an empty chunk and
    /// the filter answers 400; Kong calls nothing at all, so the request goes
    /// on to the route's service — the one case the filter cannot see,
    /// which is why the shipped Kong route's service is fail-closed (an
    /// upstream with no targets: Kong answers 503 itself, no function is
    /// called).
    fn an_empty_chunked_body(host: Host) {
        let plugin = host.plugin();
        let mut request = post_headers_with(&plugin, &[("transfer-encoding", "chunked")]);
        request.body_chunk(b"", true);
        assert!(request.calls().is_empty());
        match host {
            Host::Envoy => {
                assert_eq!(request.expect_reply().status, 400);
                assert!(!request.forwarded());
            }
            Host::Kong => {
                assert!(request.reply().is_none());
                assert!(request.forwarded(), "Kong gives the filter nothing to answer");
                // The route's service answers it.
                request.finish();
            }
        }
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// Every reply has the standard reason phrase: Kong puts a non-empty
    /// details string of `send_local_response` in the status line
    /// (measured: `HTTP/1.1 200 graphql_aggregator`).
    fn replies_have_the_standard_reason_phrase(host: Host) {
        let plugin = host.plugin();
        let kind = match host {
            Host::Envoy => HostKind::Envoy,
            Host::Kong => HostKind::Kong,
        };
        let mut ok = post(&plugin, SEED_QUERY);
        answer_all(&mut ok);
        assert_eq!(ok.expect_reply().reason_phrase(kind), "OK");
        let bad = post(&plugin, "{");
        assert_eq!(bad.expect_reply().reason_phrase(kind), "Bad Request");
        assert_idle(&plugin);
    }
}
