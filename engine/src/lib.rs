//! graphql-aggregator: a Proxy-Wasm filter that answers GraphQL requests by
//! fanning out to small HTTP/JSON functions and merging their answers.
//!
//! The crate is split in two:
//!
//! * the **engine** ([`config`], [`schema`], [`template`], [`upstream`],
//!   [`request`], [`plan`], [`execute`], [`abstract_type`], [`response`]) is plain Rust with no
//!   proxy-wasm types. It takes a GraphQL-over-HTTP request and the functions'
//!   answers as data, says which calls to make, and finally what to reply.
//! * the **adapter** (`adapter`, compiled for `wasm32` only) moves bytes
//!   between the Proxy-Wasm host (Envoy, Kong) and the engine.
//!
//! The usual flow, as the adapter drives it:
//!
//! ```
//! use graphql_aggregator_engine::config::Gateway;
//! use graphql_aggregator_engine::execute::Execution;
//! use graphql_aggregator_engine::request::HttpRequest;
//! use graphql_aggregator_engine::upstream::CallOutcome;
//!
//! let config = r#"{
//!   "schema": "type Query { hello: String @http(upstream: \"greeter\", path: \"/hello\") }",
//!   "upstreams": { "greeter": { "target": "greeter_cluster" } }
//! }"#;
//! let gateway = std::sync::Arc::new(Gateway::from_json(config).unwrap());
//! let request = HttpRequest::post_json(br#"{"query": "{ hello }"}"#.to_vec());
//! let mut execution = Execution::start(gateway, &request, 0);
//! let calls = execution.take_calls(0);
//! assert_eq!(calls[0].request.path, "/hello");
//! execution.on_call_outcome(calls[0].id, CallOutcome::response(200, br#""world""#.to_vec()), 0);
//! let reply = execution.reply().unwrap();
//! assert_eq!(reply.body, br#"{"data":{"hello":"world"}}"#);
//! ```

pub mod abstract_type;
pub mod answer;
pub mod answer_cache;
pub mod answer_headers;
pub mod arguments;
pub mod cache_control;
pub mod config;
pub mod config_source;
pub mod error;
pub mod execute;
pub mod fetched;
pub mod graphiql;
pub mod hashing;
pub mod identity;
pub mod key_path;
pub mod limits;
pub mod persisted;
pub mod plan;
pub mod plan_cache;
pub mod reply;
pub mod request;
pub mod response;
pub mod schema;
pub mod template;
pub mod upstream;
