//! The two gateways, the filter's configuration in each one's terms, and
//! client requests.

use host_tests::{fixtures, Plugin, Profile, Request};
use serde_json::{json, Value};

/// A gateway the filter runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// Envoy 1.40: targets are cluster names.
    Envoy,
    /// Kong 3.9: targets are `host:port`.
    Kong,
}

impl Host {
    /// The host model, with the one cluster Envoy knows.
    pub fn profile(self) -> Profile {
        match self {
            Host::Envoy => Profile::envoy(["openfaas"]),
            Host::Kong => Profile::kong(),
        }
    }

    /// The functions' gateway, as this host's dispatch target.
    pub fn target(self) -> &'static str {
        match self {
            Host::Envoy => "openfaas",
            Host::Kong => "127.0.0.1:8081",
        }
    }

    /// A target this host refuses at dispatch time (Envoy: an unknown
    /// cluster, BadArgument; Kong: a bad port, InternalFailure).
    pub fn refused_target(self) -> &'static str {
        match self {
            Host::Envoy => "no_such_cluster",
            Host::Kong => "127.0.0.1:99999",
        }
    }

    /// The demo configuration for this host.
    pub fn config(self) -> String {
        config(self.target(), self.target(), "/function")
    }

    /// A fresh VM with the demo configuration.
    pub fn plugin(self) -> Plugin {
        self.plugin_with(&self.config())
    }

    /// A fresh VM with this configuration.
    pub fn plugin_with(self, config: &str) -> Plugin {
        Plugin::new(&fixtures::aggregator(), self.profile(), config)
    }
}

/// The demo schema: `user`, `users` (50, with orders batched by key or
/// fetched per user) on the `openfaas` upstream; `inventory` on `warehouse`.
pub const SCHEMA: &str = r#"
type Query {
  user(id: ID!): User @http(upstream: "openfaas", path: "/user-profile?id={args.id}")
  users: [User] @http(upstream: "openfaas", path: "/users")
  inventory(sku: String!): Inventory @http(upstream: "warehouse", path: "/inventory?sku={args.sku}")
}
type User {
  id: ID!
  name: String
  email: String
  orders: [Order] @http(upstream: "openfaas", path: "/user-orders-batch", batch: {key: "id", param: "ids"})
  ordersEach: [Order] @http(upstream: "openfaas", path: "/user-orders?id={parent.id}")
}
type Order { id: ID! amount: Float itemCount: Int }
type Inventory { sku: String! inStock: Boolean quantity: Int }
"#;

/// A configuration of [`SCHEMA`] with both upstreams' targets and the
/// functions' path prefix.
pub fn config(openfaas: &str, warehouse: &str, path_prefix: &str) -> String {
    json!({
        "schema": SCHEMA,
        "upstreams": {
            "openfaas": {"target": openfaas, "authority": "gateway", "path_prefix": path_prefix},
            "warehouse": {"target": warehouse, "authority": "gateway", "path_prefix": path_prefix},
        }
    })
    .to_string()
}

/// The seed's request and its exact expected reply.
pub const SEED_QUERY: &str = r#"{"query":"query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }","variables":{"userId":"1"}}"#;
/// See [`SEED_QUERY`].
pub const SEED_REPLY: &str = r#"{"data":{"user":{"id":"1","name":"Alice","email":"alice@example.com","orders":[{"id":"order-101","amount":99.99},{"id":"order-102","amount":19.5}]}}}"#;

/// A GraphQL request body for `query` with no variables.
pub fn body_of(query: &str) -> String {
    json!({ "query": query }).to_string()
}

/// A `POST /graphql` whose headers have not been sent yet.
pub fn post_headers(plugin: &Plugin) -> Request {
    post_headers_with(plugin, &[])
}

/// A `POST /graphql` with these extra headers, not sent yet.
pub fn post_headers_with(plugin: &Plugin, extra: &[(&str, &str)]) -> Request {
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/graphql"),
        (":authority", "localhost"),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    plugin.request(&headers)
}

/// A `POST /graphql` with this body, sent.
pub fn post(plugin: &Plugin, body: &str) -> Request {
    let mut request = post_headers(plugin);
    request.body(body.as_bytes());
    request
}

/// Merges `extra` into `config`: top-level keys are replaced, except
/// `upstreams`, whose entries' settings are merged one by one.
pub fn merged(mut config: Value, extra: Value) -> String {
    for (k, v) in extra.as_object().unwrap() {
        match (config.get_mut(k), v) {
            (Some(Value::Object(old)), Value::Object(new)) if k == "upstreams" => {
                for (name, settings) in new {
                    let entry = old.entry(name.clone()).or_insert(json!({}));
                    for (s, value) in settings.as_object().unwrap() {
                        entry[s] = value.clone();
                    }
                }
            }
            _ => config[k] = v.clone(),
        }
    }
    config.to_string()
}
