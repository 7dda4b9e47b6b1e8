//! How the request reaches the filter: in odd chunks, empty, or as a GET.

use crate::hosts::{post, post_headers, post_headers_with, Host, SEED_QUERY, SEED_REPLY};
use crate::play::{answer_all, assert_idle, reply_json};

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
