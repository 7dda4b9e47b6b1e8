//! A small blocking HTTP client for loopback (ureq, no proxy, no TLS).

use std::time::{Duration, Instant};

use serde_json::Value;

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `content-type`, if any.
    pub content_type: Option<String>,
    /// Every header (names lower case).
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
    /// Time from sending the request to having read the whole body.
    pub elapsed: Duration,
}

impl Reply {
    /// The body parsed as JSON; panics (fails the test) with the body if it
    /// is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer is not JSON ({e}): status {}, body {:?}",
                self.status, self.body
            )
        })
    }
}

/// A client with a bounded timeout that never turns statuses into errors.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
}

impl Default for Client {
    fn default() -> Self {
        Client::new(Duration::from_secs(10))
    }
}

impl Client {
    /// A client whose every request ends within `timeout`.
    pub fn new(timeout: Duration) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .proxy(None)
            .build()
            .into();
        Client { agent }
    }

    fn finish(
        started: Instant,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, String> {
        let mut response = result.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_string(), value)
            })
            .collect();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        Ok(Reply {
            status,
            content_type,
            headers,
            body,
            elapsed: started.elapsed(),
        })
    }

    /// GET `url`.
    pub fn get(&self, url: &str) -> Result<Reply, String> {
        let started = Instant::now();
        Client::finish(started, self.agent.get(url).call())
    }

    /// POST `body` to `url` with the given headers.
    pub fn post(&self, url: &str, headers: &[(&str, &str)], body: &str) -> Result<Reply, String> {
        let mut request = self.agent.post(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let started = Instant::now();
        Client::finish(started, request.send(body))
    }

    /// Any request: `method url` with these headers and body (none when empty).
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Reply, String> {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let started = Instant::now();
        let result = if body.is_empty() {
            let request = builder.body(()).map_err(|e| e.to_string())?;
            self.agent.run(request)
        } else {
            let request = builder.body(body.to_vec()).map_err(|e| e.to_string())?;
            self.agent.run(request)
        };
        Client::finish(started, result)
    }

    /// POST a JSON body.
    pub fn post_json(&self, url: &str, body: &str) -> Result<Reply, String> {
        self.post(url, &[("content-type", "application/json")], body)
    }
}
