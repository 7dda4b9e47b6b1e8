//! GraphiQL at the GraphQL path (`graphiql`): a browser's GET gets the
//! page, from its headers alone; every other request is unchanged.

use crate::hosts::{post, Host, SEED_QUERY, SEED_REPLY};
use crate::play::{answer_all, assert_idle};

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The host's configuration with GraphiQL enabled (or as given).
fn config_with(host: Host, graphiql: serde_json::Value) -> String {
    let mut config: serde_json::Value = serde_json::from_str(&host.config()).unwrap();
    config["graphiql"] = graphiql;
    config.to_string()
}

fn get(plugin: &host_tests::Plugin, path: &str, accept: &str) -> host_tests::Request {
    let mut request = plugin.request(&[
        (":method", "GET"),
        (":path", path),
        (":authority", "localhost"),
        ("accept", accept),
    ]);
    request.end();
    request
}

on_both_hosts! {
    /// Enabled: a browser gets the page (no call, nothing upstream); JSON
    /// clients, GETs carrying a query and POSTs are served as before.
    fn browser_gets_the_page(host: Host) {
        let plugin = host.plugin_with(&config_with(
            host,
            serde_json::json!({"enabled": true, "assets_url": "http://127.0.0.1:9/assets"}),
        ));
        assert!(plugin.configured());
        let request = get(&plugin, "/graphql", BROWSER);
        assert!(request.calls().is_empty());
        assert!(!request.forwarded());
        let reply = request.expect_reply();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let page = reply.body_text();
        assert!(page.contains(r#"href="http://127.0.0.1:9/assets/graphiql.css""#), "{page}");
        assert!(page.contains(r#"from "http://127.0.0.1:9/assets/graphiql.mjs""#), "{page}");
        assert!(page.len() < 8192);

        // A JSON GET without a query is still a request error.
        let request = get(&plugin, "/graphql", "application/json");
        let reply = request.expect_reply();
        assert_eq!(reply.status, 400, "{}", reply.body_text());
        assert!(reply.body_text().contains("BAD_REQUEST"));

        // A browser's GET with a query runs it.
        let path = "/graphql?query=query%20GetUserWithOrders(%24userId%3A%20ID!)%20%7B%20user(id%3A%20%24userId)%20%7B%20id%20name%20email%20orders%20%7B%20id%20amount%20%7D%20%7D%20%7D&variables=%7B%22userId%22%3A%221%22%7D";
        let mut request = get(&plugin, path, BROWSER);
        assert_eq!(answer_all(&mut request).to_string(), SEED_REPLY);

        // What GraphiQL sends: a POST.
        let mut request = post(&plugin, SEED_QUERY);
        assert_eq!(answer_all(&mut request).to_string(), SEED_REPLY);
        assert_idle(&plugin);
    }
}

on_both_hosts! {
    /// Disabled (the default): a browser's GET is answered as always.
    fn disabled_by_default(host: Host) {
        for config in [
            host.config(),
            config_with(host, serde_json::json!({"enabled": false})),
        ] {
            let plugin = host.plugin_with(&config);
            let request = get(&plugin, "/graphql", BROWSER);
            let reply = request.expect_reply();
            assert_eq!(reply.status, 400, "{}", reply.body_text());
            assert!(reply.header("content-type").unwrap().starts_with("application/json"));
            assert_idle(&plugin);
        }
    }
}

on_both_hosts! {
    /// An `assets_url` that could break out of the page is refused when
    /// the configuration loads.
    fn refuses_an_unsafe_assets_url(host: Host) {
        let plugin = host.plugin_with(&config_with(
            host,
            serde_json::json!({"enabled": true, "assets_url": "https://x.example/\"><script>"}),
        ));
        let logged = plugin.logs().iter().any(|l| {
            l.message.contains("invalid configuration") && l.message.contains("graphiql.assets_url")
        });
        assert!(logged, "{:?}", plugin.logs());
        let request = get(&plugin, "/graphql", BROWSER);
        let reply = request.expect_reply();
        assert_eq!(reply.status, 500);
        assert!(reply.body_text().contains("GATEWAY_MISCONFIGURED"));
    }
}
