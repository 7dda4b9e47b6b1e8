//! (c) Any configuration: as JSON text, or as the SDL inside an otherwise
//! valid configuration. Loading it either works or says why; a loaded one
//! answers a request without panicking.
#![no_main]

use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::execute::Execution;
use graphql_aggregator_engine::request::HttpRequest;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let wrapped = serde_json_string(text);
    for config in [text.to_string(), wrapped] {
        if let Ok(gateway) = Gateway::from_json(&config) {
            let request = HttpRequest::post_json(br#"{"query": "{ __typename }"}"#.to_vec());
            let mut execution = Execution::start(Arc::new(gateway), &request, 0);
            let _ = execution.take_calls(0);
        }
    }
});

/// A configuration whose schema is `sdl`, with one upstream `fn`.
fn serde_json_string(sdl: &str) -> String {
    let mut escaped = String::with_capacity(sdl.len() + 64);
    for c in sdl.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            c if (c as u32) < 0x20 => escaped.push_str(&format!("\\u{:04x}", c as u32)),
            c => escaped.push(c),
        }
    }
    format!(r#"{{"schema": "{escaped}", "upstreams": {{"fn": {{"target": "fn"}}}}}}"#)
}
