//! Configurations: a bad one is refused with a clear log line and 500s,
//! and a new one never changes requests already in flight.

use crate::hosts::{body_of, config, post, Host, SEED_QUERY, SEED_REPLY};
use crate::play::{answer_all, assert_idle, reply_json, respond};
use serde_json::json;

/// [`Host::config`] with `Query.inventory` mapped to an upstream that does
/// not exist.
fn bad_config(host: Host) -> String {
    let bad = host.config().replace(
        r#"upstream: \"warehouse\", path: \"/inventory"#,
        r#"upstream: \"nope\", path: \"/inventory"#,
    );
    assert!(bad.contains("nope"));
    bad
}

/// Asserts the plugin answers a 500 `GATEWAY_MISCONFIGURED` without calls.
fn assert_refuses_requests(plugin: &host_tests::Plugin) {
    let request = post(plugin, SEED_QUERY);
    assert!(request.calls().is_empty());
    assert_eq!(request.expect_reply().status, 500);
    let reply = reply_json(&request);
    assert_eq!(
        reply["errors"][0]["extensions"]["code"],
        "GATEWAY_MISCONFIGURED"
    );
}

on_both_hosts! {
    /// A bad configuration is logged with the field and the problem, and
    /// every request gets a 500 GraphQL error without any call.
    fn bad_configuration(host: Host) {
        let plugin = host.plugin_with(&bad_config(host));
        let logged = plugin.logs().iter().any(|l| {
            l.message.contains("invalid configuration")
                && l.message.contains("Query.inventory")
                && l.message.contains("nope")
        });
        assert!(logged, "{:?}", plugin.logs());
        assert_refuses_requests(&plugin);
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// A configuration replaced while a request waits for its first call:
    /// that request finishes with the configuration it started with (its
    /// nested call keeps the old path prefix), later ones use the new one.
    fn reconfigured_while_in_flight(host: Host) {
        let plugin = host.plugin();
        let mut old = post(&plugin, SEED_QUERY);
        let profile = old.pending_calls().remove(0);
        assert_eq!(profile.path(), Some("/function/user-profile?id=1"));

        let new_schema = config(host.target(), host.target(), "/v2").replace(
            r#"  inventory(sku: String!): Inventory @http(upstream: \"warehouse\", path: \"/inventory?sku={args.sku}\")\n"#,
            "",
        );
        assert!(!new_schema.contains("inventory(sku"));
        assert!(plugin.reconfigure(&new_schema));

        respond(&mut old, &profile);
        let orders = old.pending_calls().remove(0);
        assert_eq!(orders.path(), Some("/function/user-orders-batch?ids=1"));
        respond(&mut old, &orders);
        assert_eq!(reply_json(&old).to_string(), SEED_REPLY);

        let mut new = post(&plugin, SEED_QUERY);
        assert_eq!(new.pending_calls()[0].path(), Some("/v2/user-profile?id=1"));
        assert_eq!(answer_all(&mut new).to_string(), SEED_REPLY);

        let gone = post(&plugin, &body_of(r#"{ inventory(sku: "sku-1") { quantity } }"#));
        assert!(gone.calls().is_empty(), "validated against the new schema");
        assert_eq!(reply_json(&gone)["errors"][0]["extensions"]["code"], json!("GRAPHQL_VALIDATION_FAILED"));
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// A bad configuration arriving while a request is in flight: that
    /// request still finishes normally, new ones get 500s, and a good
    /// configuration afterwards brings the plugin back.
    fn bad_reconfiguration_while_in_flight(host: Host) {
        let plugin = host.plugin();
        let mut old = post(&plugin, SEED_QUERY);
        plugin.reconfigure(bad_config(host));
        assert_eq!(answer_all(&mut old).to_string(), SEED_REPLY);
        assert_refuses_requests(&plugin);
        plugin.reconfigure(host.config());
        let mut again = post(&plugin, SEED_QUERY);
        assert_eq!(answer_all(&mut again).to_string(), SEED_REPLY);
        assert_idle(&plugin);
    }
}
