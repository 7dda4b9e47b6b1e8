//! GraphiQL at the GraphQL path (`graphiql` in the configuration, off by
//! default): a browser's `GET` that prefers `text/html` and carries no
//! GraphQL request gets a small HTML page that loads GraphiQL from
//! `assets_url` and sends its queries to the same path with `POST`.
//!
//! Only the page is here (a few KB in the filter); GraphiQL, React and
//! their CSS are served by whatever hosts `assets_url`: `graphiql.mjs`
//! (an ES module exporting `GraphiQL`, `createElement` and `createRoot`)
//! and `graphiql.css`, as `envoy/e2e/js/graphiql-bundle.mjs` builds them.

use crate::request::HttpRequest;
use crate::response::{Outcome, Reply};
use serde::Deserialize;
use std::fmt;

/// `graphiql` as written in the configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGraphiql {
    #[serde(default)]
    enabled: bool,
    assets_url: Option<String>,
}

/// `graphiql`, checked: the page (built once), or nothing when disabled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graphiql {
    page: Option<String>,
}

/// Why `graphiql` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphiqlError(String);

impl fmt::Display for GraphiqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "graphiql.{}", self.0)
    }
}

impl std::error::Error for GraphiqlError {}

/// The page; `{{ASSETS}}` is the checked `assets_url` (which holds no
/// character that means anything in HTML or in a JavaScript string).
///
/// Queries go to the page's own path, with `POST` and the browser's
/// cookies (same origin only). A link may pre-fill the editor from its
/// fragment, which never reaches the gateway: `#query=…&variables=…`; with
/// `&run=1` the page runs it once. Until that run is over, every request
/// the page sends goes over `GET`, whatever its name (GraphiQL names the
/// operation as the document does, so a name cannot be trusted), so a
/// link can only ever run a query (the gateway refuses a mutation over
/// `GET`), never a mutation in the name of whoever opens it. The page may
/// not be framed by another site (`frame-ancestors 'none'`).
const TEMPLATE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>GraphiQL</title>
<style>body{margin:0}#graphiql{height:100vh}</style>
<link rel="stylesheet" crossorigin href="{{ASSETS}}graphiql.css">
</head>
<body>
<div id="graphiql">Loading GraphiQL&hellip;</div>
<script type="module">
import { GraphiQL, createElement, createRoot } from "{{ASSETS}}graphiql.mjs";
const endpoint = location.pathname;
const link = new URLSearchParams(location.hash.slice(1));
let once = link.get("run") === "1", ran = false;
async function fetcher(params) {
  const accept = "application/graphql-response+json, application/json";
  let response;
  if (once) {
    // GraphiQL's own schema request goes this way too, and does not end
    // the link's run.
    if (params.operationName !== "IntrospectionQuery") {
      once = false;
      ran = true;
    }
    const url = new URLSearchParams({ query: params.query });
    if (params.variables) url.set("variables", JSON.stringify(params.variables));
    if (params.operationName) url.set("operationName", params.operationName);
    response = await fetch(endpoint + "?" + url, { headers: { accept } });
  } else {
    response = await fetch(endpoint, {
      method: "POST",
      headers: { accept, "content-type": "application/json" },
      body: JSON.stringify(params),
      credentials: "same-origin",
    });
  }
  return response.json();
}
const props = { fetcher };
if (link.get("query")) props.initialQuery = link.get("query");
if (link.get("variables")) props.initialVariables = link.get("variables");
createRoot(document.getElementById("graphiql")).render(createElement(GraphiQL, props));
if (once) {
  let tries = 0;
  const timer = setInterval(() => {
    const button = document.querySelector(".graphiql-execute-button");
    if (ran || ++tries > 150) {
      clearInterval(timer);
      once = false;
    } else if (button && tries % 5 === 1) button.click();
  }, 200);
}
</script>
</body>
</html>
"#;

impl Graphiql {
    /// Check `graphiql` and build its page.
    pub fn load(raw: RawGraphiql) -> Result<Self, GraphiqlError> {
        let assets = match raw.assets_url {
            Some(url) => Some(check_assets_url(&url)?),
            None => None,
        };
        if !raw.enabled {
            return Ok(Graphiql::default());
        }
        let Some(assets) = assets else {
            return Err(GraphiqlError(
                "assets_url is required when GraphiQL is enabled: the http(s) URL of a \
                 folder serving graphiql.mjs and graphiql.css (see the README, \"GraphiQL\")"
                    .into(),
            ));
        };
        Ok(Graphiql {
            page: Some(TEMPLATE.replace("{{ASSETS}}", &assets)),
        })
    }

    /// Whether the page is served.
    pub fn enabled(&self) -> bool {
        self.page.is_some()
    }

    /// The page, when this request is a browser asking for it: GraphiQL is
    /// enabled, the request is a `GET` with neither `query` nor
    /// `extensions` in its URL, and its `accept` prefers `text/html` to
    /// every JSON media type. Any other request is left alone.
    pub fn page_for(&self, request: &HttpRequest) -> Option<Reply> {
        let page = self.page.as_ref()?;
        if request.method != "GET" || has_graphql_parameter(&request.path) {
            return None;
        }
        if !prefers_html(request.header("accept")?) {
            return None;
        }
        Some(Reply {
            status: 200,
            headers: vec![
                ("content-type".into(), "text/html; charset=utf-8".into()),
                ("cache-control".into(), "no-store".into()),
                // The same URL answers JSON to other clients.
                ("vary".into(), "accept".into()),
                ("x-content-type-options".into(), "nosniff".into()),
                ("referrer-policy".into(), "no-referrer".into()),
                // No other site may frame it (a click on Run in a frame).
                ("x-frame-options".into(), "DENY".into()),
                (
                    "content-security-policy".into(),
                    "frame-ancestors 'none'".into(),
                ),
            ],
            body: page.as_bytes().to_vec(),
            outcome: Outcome::Ok,
        })
    }
}

/// `assets_url`, checked and with a trailing `/`: an absolute `http` or
/// `https` URL with a host, made of characters that cannot end an HTML
/// attribute or a JavaScript string, nor start a tag (no quotes, `<`, `>`,
/// `\`, spaces, `&`), and with no query or fragment (file names are
/// appended to it).
fn check_assets_url(url: &str) -> Result<String, GraphiqlError> {
    let refuse = |why: &str| Err(GraphiqlError(format!("assets_url {url:?}: {why}")));
    let rest = match url.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            rest
        }
        _ => return refuse("must be an absolute http:// or https:// URL"),
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') || host.starts_with('@') {
        return refuse("has no host");
    }
    if url.len() > 2048 {
        return refuse("is longer than 2048 characters");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~:/%@+,;=!$*()[]".contains(c);
    if let Some(bad) = url.chars().find(|c| !allowed(*c)) {
        return refuse(&format!(
            "{bad:?} is not allowed (no quotes, <, >, \\, &, spaces, query or fragment)"
        ));
    }
    let mut checked = url.to_string();
    if !checked.ends_with('/') {
        checked.push('/');
    }
    Ok(checked)
}

/// Whether the URL's query string names `query` or `extensions`: such a
/// GET is a GraphQL request, whatever its `accept`.
fn has_graphql_parameter(path: &str) -> bool {
    let Some((_, query)) = path.split_once('?') else {
        return false;
    };
    query.split('&').any(|pair| {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        // Names are decoded as the request's parameters are (`%71uery`).
        let name = name.replace('+', " ");
        let name = percent_encoding::percent_decode_str(&name).decode_utf8_lossy();
        name == "query" || name == "extensions"
    })
}

/// Whether `accept` prefers `text/html` to JSON: `text/html` is listed
/// with a quality above 0, and above that of every JSON media type listed
/// (`application/json`, `application/graphql-response+json`, `*/*` and
/// `application/*` count as JSON). A tie goes to JSON (API clients are
/// left as they are).
fn prefers_html(accept: &str) -> bool {
    let mut html: Option<u32> = None;
    let mut json: u32 = 0;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .find_map(quality)
            .unwrap_or(1000);
        match media.as_str() {
            "text/html" => html = Some(html.map_or(quality, |q| q.max(quality))),
            "application/json" | "application/graphql-response+json" | "application/*" | "*/*" => {
                json = json.max(quality)
            }
            _ => {}
        }
    }
    html.is_some_and(|html| html > 0 && html > json)
}

/// A quality value in thousandths (`0.9` → 900); `None` when malformed.
fn quality(text: &str) -> Option<u32> {
    let value: f32 = text.trim().parse().ok()?;
    if !(0.0..=1.0).contains(&value) {
        return None;
    }
    // In 0..=1000: the cast cannot truncate.
    let thousandths = (value * 1000.0).round() as u32;
    Some(thousandths)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROWSER: &str =
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";

    fn enabled() -> Graphiql {
        Graphiql::load(RawGraphiql {
            enabled: true,
            assets_url: Some("https://assets.example.com/graphiql/5.4.0".into()),
        })
        .unwrap()
    }

    fn get(path: &str, accept: Option<&str>) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            path: path.into(),
            headers: accept
                .map(|a| vec![("accept".to_string(), a.to_string())])
                .unwrap_or_default(),
            body: Vec::new(),
        }
    }

    #[test]
    fn serves_the_page_to_a_browser_only() {
        let graphiql = enabled();
        let reply = graphiql.page_for(&get("/graphql", Some(BROWSER))).unwrap();
        assert_eq!(reply.status, 200);
        let header = |name: &str| {
            reply
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_string())
        };
        assert_eq!(
            header("content-type").as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(header("cache-control").as_deref(), Some("no-store"));
        assert_eq!(header("vary").as_deref(), Some("accept"));
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
        assert_eq!(header("x-frame-options").as_deref(), Some("DENY"));
        assert_eq!(
            header("content-security-policy").as_deref(),
            Some("frame-ancestors 'none'")
        );
        let page = String::from_utf8(reply.body).unwrap();
        // Until a link's run is over, every request goes over GET: a name
        // (GraphiQL sends the document's own) cannot make it a POST.
        assert!(page.contains("if (once) {"), "{page}");
        assert!(!page.contains(r#"once && params.operationName"#), "{page}");
        assert!(page.contains(r#"href="https://assets.example.com/graphiql/5.4.0/graphiql.css""#));
        assert!(page.contains(r#"from "https://assets.example.com/graphiql/5.4.0/graphiql.mjs""#));
        assert!(!page.contains("{{"), "every placeholder is filled");
        assert!(page.len() < 8192, "a few KB: {}", page.len());
        // Other requests are GraphQL requests, as without GraphiQL.
        for request in [
            get("/graphql", Some("application/json")),
            get("/graphql", Some("*/*")),
            get("/graphql", None),
            get("/graphql", Some("text/html;q=0.5, application/json")),
            get("/graphql", Some("application/json, text/html")),
            get("/graphql", Some("text/html;q=0")),
            get("/graphql?query=%7Ba%7D", Some(BROWSER)),
            get("/graphql?extensions=%7B%7D", Some(BROWSER)),
            get("/graphql?variables=%7B%7D&query", Some(BROWSER)),
            get("/graphql?%71uery=%7Ba%7D", Some(BROWSER)),
            get("/graphql?ext%65nsions=%7B%7D", Some(BROWSER)),
            HttpRequest {
                method: "POST".into(),
                ..get("/graphql", Some(BROWSER))
            },
        ] {
            assert_eq!(graphiql.page_for(&request), None, "{request:?}");
        }
        assert!(graphiql
            .page_for(&get("/graphql?tab=1", Some("text/html")))
            .is_some());
        assert!(graphiql
            .page_for(&get("/graphql", Some("application/json;q=0.5, text/html")))
            .is_some());
    }

    #[test]
    fn is_off_by_default() {
        let off = Graphiql::load(RawGraphiql::default()).unwrap();
        assert!(!off.enabled());
        assert_eq!(off.page_for(&get("/graphql", Some(BROWSER))), None);
        let disabled = Graphiql::load(RawGraphiql {
            enabled: false,
            assets_url: Some("https://a.example/".into()),
        })
        .unwrap();
        assert_eq!(disabled.page_for(&get("/graphql", Some(BROWSER))), None);
    }

    #[test]
    fn checks_the_assets_url() {
        let load = |url: &str| {
            Graphiql::load(RawGraphiql {
                enabled: true,
                assets_url: Some(url.into()),
            })
        };
        for good in [
            "http://127.0.0.1:8080/",
            "https://unpkg.example/graphiql@5.4.0/dist",
            "HTTPS://cdn.example.com/a/b/",
        ] {
            assert!(load(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/graphiql/",
            "javascript:alert(1)",
            "ftp://example.com/",
            "https:///nohost/",
            "https://example.com/\"><script>alert(1)</script>",
            "https://example.com/'",
            "https://example.com/`",
            "https://example.com/a b/",
            "https://example.com/a\\b/",
            "https://example.com/?x=1",
            "https://example.com/#x",
            "https://example.com/a&b",
            "https://example.com/\n",
        ] {
            let e = load(bad).unwrap_err().to_string();
            assert!(e.starts_with("graphiql.assets_url"), "{bad:?}: {e}");
        }
        // Checked even while disabled, so turning it on cannot fail later.
        assert!(Graphiql::load(RawGraphiql {
            enabled: false,
            assets_url: Some("https://example.com/\"".into()),
        })
        .is_err());
        let e = Graphiql::load(RawGraphiql {
            enabled: true,
            assets_url: None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("assets_url is required"), "{e}");
    }

    #[test]
    fn a_json_get_is_unchanged_and_a_browser_gets_the_page() {
        use crate::config::Gateway;
        use crate::execute::Execution;
        use std::sync::Arc;
        let config = |graphiql: &str| {
            format!(
                r#"{{"schema": "type Query {{ hello: String @http(upstream: \"g\", path: \"/hello\") }}",
                    "upstreams": {{"g": {{"target": "g"}}}}{graphiql}}}"#
            )
        };
        let on = config(r#", "graphiql": {"enabled": true, "assets_url": "https://a.example/"}"#);
        let gateway = Arc::new(Gateway::from_json(&on).unwrap());
        let json = get("/graphql?query=%7Bhello%7D", Some("application/json"));
        let mut execution = Execution::start(gateway.clone(), &json, 0);
        assert_eq!(execution.take_calls(0).len(), 1, "the query runs");
        // The same GET from a browser runs too: it carries a query.
        let mut execution = Execution::start(
            gateway.clone(),
            &get("/graphql?query=%7Bhello%7D", Some(BROWSER)),
            0,
        );
        assert_eq!(execution.take_calls(0).len(), 1);
        let mut page = Execution::start(gateway.clone(), &get("/graphql", Some(BROWSER)), 0);
        assert!(page.is_finished());
        let page = page.reply().unwrap();
        assert_eq!(page.status, 200);
        assert!(String::from_utf8_lossy(&page.body).contains("https://a.example/graphiql.mjs"));
        let mut missing = Execution::start(gateway, &get("/graphql", Some("application/json")), 0);
        let missing = missing.reply().unwrap();
        assert_eq!(missing.status, 400);
        assert!(String::from_utf8_lossy(&missing.body).contains("BAD_REQUEST"));
        // Disabled (the default): a browser gets what it always got.
        for off in [
            config(""),
            config(r#", "graphiql": {"enabled": false}"#),
            config(r#", "graphiql": {}"#),
        ] {
            let gateway = Arc::new(Gateway::from_json(&off).unwrap());
            let mut execution = Execution::start(gateway, &get("/graphql", Some(BROWSER)), 0);
            let reply = execution.reply().unwrap();
            assert_eq!(reply.status, 400, "{off}");
            assert!(String::from_utf8_lossy(&reply.body).contains("BAD_REQUEST"));
        }
        let unknown = config(r#", "graphiql": {"enabled": true, "assets": "x"}"#);
        assert!(Gateway::from_json(&unknown).is_err());
        let bad = config(r#", "graphiql": {"enabled": true, "assets_url": "https://a/\"<"}"#);
        let e = Gateway::from_json(&bad).unwrap_err().to_string();
        assert!(e.contains("graphiql.assets_url"), "{e}");
    }

    #[test]
    fn reads_the_accept_header() {
        assert!(prefers_html(BROWSER));
        assert!(prefers_html("TEXT/HTML"));
        assert!(!prefers_html("text/html;q=0.8, */*;q=0.8"));
        assert!(!prefers_html("text/html;q=bad, application/json"));
        assert!(prefers_html(
            "application/graphql-response+json;q=0.1, text/html"
        ));
        assert!(!prefers_html(""));
    }
}
