//! End-to-end test: runs the real binary on an ephemeral port and talks to it
//! with a tiny std-only HTTP/1.1 client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The running binary; killed (by PID) when dropped, even if a test panics.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-functions"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn mock-functions");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut server = Server {
        child,
        addr: String::new(),
    };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(TIMEOUT)
        .expect("no `listening on` line in time");
    server.addr = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    server
}

struct Response {
    status: u16,
    content_type: String,
    /// Every header line, names lower case, in order.
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The values of every `name` header line, in order.
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of the one `name` header line.
    fn header(&self, name: &str) -> &str {
        match self.header_values(name)[..] {
            [value] => value,
            ref values => panic!("{name}: {values:?} in {:?}", self.headers),
        }
    }
}

/// One request on a fresh connection (`Connection: close`), read to EOF.
fn request(addr: &str, method: &str, target: &str, body: Option<&str>) -> Response {
    request_with(addr, method, target, &[], body.unwrap_or("").as_bytes())
}

/// Like [`request`], with extra request headers and a body of bytes.
fn request_with(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let raw = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("end of headers");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').expect("header line");
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let value_of = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let content_type = value_of("content-type").unwrap_or_default();
    let content_length = value_of("content-length").and_then(|v| v.parse::<usize>().ok());
    let body = match content_length {
        Some(n) => body.get(..n).expect("full body").to_owned(),
        None => body.to_owned(),
    };
    Response {
        status,
        content_type,
        headers,
        body,
    }
}

fn get(addr: &str, target: &str) -> Response {
    request(addr, "GET", target, None)
}

#[test]
fn serves_data_counts_calls_and_runs_delayed_calls_concurrently() {
    let server = start(&["--users", "5", "--delay", "user-orders=300"]);
    let addr = server.addr.as_str();

    assert_eq!(get(addr, "/_health").json(), json!({"ok": true}));

    let r = get(addr, "/user-profile?id=1");
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "application/json")
    );
    assert_eq!(
        r.body,
        r#"{"id":"1","name":"Alice","email":"alice@example.com"}"#
    );
    let r = get(addr, "/function/user-profile?id=9");
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "user with id 9 not found")
    );
    assert!(r.content_type.starts_with("text/plain"));
    assert_eq!(get(addr, "/user-profile").status, 400);
    assert_eq!(
        get(addr, "/user-orders-batch?ids=2,9,3").body,
        r#"{"2":[{"id":"order-201","amount":250.0,"itemCount":5}],"3":[{"id":"order-301","amount":30.5,"itemCount":1}]}"#
    );
    assert_eq!(get(addr, "/users").json().as_array().map(Vec::len), Some(5));
    let r = get(addr, "/status?code=503");
    assert_eq!((r.status, r.json()), (503, json!({"status": 503})));
    let r = get(addr, "/not-json");
    assert_eq!((r.status, r.body.as_str()), (200, "this is not json"));

    let echo = request(
        addr,
        "POST",
        "/function/echo?a=1&b=x%20y",
        Some(r#"{"q":1}"#),
    )
    .json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/function/echo");
    assert_eq!(echo["query"], json!([["a", "1"], ["b", "x y"]]));
    assert_eq!(echo["rawQuery"], "a=1&b=x%20y");
    assert_eq!(echo["headers"]["content-type"], "application/json");
    assert_eq!(echo["body"], json!({"q": 1}));

    let order = |body| request(addr, "POST", "/create-order", Some(body)).json();
    assert_eq!(order(r#"{"userId":"1","amount":5}"#)["id"], "order-1-1");
    assert_eq!(
        order(r#"{"userId":"1","amount":7.5}"#),
        json!({"id":"order-1-2","userId":"1","amount":7.5,"itemCount":1,"orderNumber":2})
    );

    let stats = get(addr, "/_stats").json();
    assert_eq!(stats["total"], 10);
    assert_eq!(stats["calls"]["user-profile"], 3);
    assert_eq!(stats["calls"]["create-order"], 2);
    assert_eq!(stats["in_flight"], 0);
    assert_eq!(stats["max_in_flight"], 1);
    assert_eq!(stats["log"][1]["uri"], "/function/user-profile?id=9");

    // Reset, then two concurrent delayed calls must overlap.
    assert_eq!(
        request(addr, "POST", "/_reset", None).json(),
        json!({"ok": true})
    );
    let started = Instant::now();
    let workers: Vec<_> = ["/user-orders?id=1", "/function/user-orders?id=2"]
        .into_iter()
        .map(|target| {
            let addr = addr.to_owned();
            thread::spawn(move || get(&addr, target))
        })
        .collect();
    for w in workers {
        let r = w.join().expect("request thread");
        assert_eq!(r.status, 200);
        assert!(r.json().is_array());
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    let stats = get(addr, "/_stats").json();
    assert_eq!(stats["total"], 2);
    assert_eq!(stats["calls"]["user-orders"], 2);
    assert_eq!(stats["max_in_flight"], 2);
    assert_eq!(stats["max_in_flight_by_function"]["user-orders"], 2);
    let log = stats["log"].as_array().expect("log");
    assert_eq!(log.len(), 2);
    let span = |e: &Value| {
        (
            e["started_us"].as_u64().expect("started_us"),
            e["finished_us"].as_u64().expect("finished_us"),
        )
    };
    let ((s0, f0), (s1, f1)) = (span(&log[0]), span(&log[1]));
    assert!(s0 < f1 && s1 < f0, "calls did not overlap: {log:?}");
    assert!(f0 - s0 >= 300_000 && f1 - s1 >= 300_000, "{log:?}");
    // The orders were forgotten too.
    assert_eq!(order(r#"{"userId":"1","amount":1}"#)["id"], "order-1-1");

    // SIGTERM ends the process cleanly.
    let mut server = server;
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let deadline = Instant::now() + TIMEOUT;
    let exit = loop {
        if let Some(exit) = server.child.try_wait().expect("try_wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit after SIGTERM: {exit}");
}

#[test]
fn only_serves_the_selected_functions() {
    let server = start(&["--only", "users", "--users", "2"]);
    let addr = server.addr.as_str();
    assert_eq!(
        get(addr, "/function/users").json().as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(get(addr, "/user-profile?id=1").status, 404);
    assert_eq!(get(addr, "/echo").status, 404);
    let stats = get(addr, "/_stats").json();
    assert_eq!(stats["total"], 1);
    assert_eq!(stats["calls"], json!({"users": 1}));
}

#[test]
fn serves_people_and_quirks() {
    let server = start(&[]);
    let addr = server.addr.as_str();
    let r = get(addr, "/function/person?id=30");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"{"id":"30","name":"Person 30"}"#)
    );
    assert_eq!(get(addr, "/person?id=31").status, 404);
    let friends = get(addr, "/function/people-batch?ids=1,30,99").json();
    let keys: Vec<&String> = friends.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["1", "30"]);
    for list in [&friends["1"], &friends["30"]] {
        let ids: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap())
            .collect();
        let everyone: Vec<String> = (1..=30).map(|k| k.to_string()).collect();
        assert_eq!(ids, everyone);
    }
    assert_eq!(friends["1"][1], json!({"id": "2", "name": "Person 2"}));
    assert_eq!(
        get(addr, "/quirks?kind=count-object").body,
        r#"{"count":{"secret":"hunter2"}}"#
    );
    assert_eq!(get(addr, "/quirks?kind=other").status, 404);
    let stats = get(addr, "/_stats").json();
    assert_eq!(stats["calls"]["person"], 2);
    assert_eq!(stats["calls"]["people-batch"], 1);
    assert_eq!(stats["calls"]["quirks"], 2);
}

/// Sends `GET target` on a fresh connection (`Connection: close`) and
/// leaves the response to the caller.
fn open_get(addr: &str, target: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    let head = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

/// Decodes a chunked body (no trailers).
fn unchunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap(), 16)
            .expect("hex chunk size");
        raw = &raw[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// `/_stats`' `in_flight` becomes `want` within a few seconds.
fn wait_in_flight(addr: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = get(addr, "/_stats").json();
        // This very `/_stats` request is not counted: it is not a function.
        if stats["in_flight"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "in_flight stayed {} (want {want})",
            stats["in_flight"]
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn drip_sends_one_byte_at_a_time() {
    let server = start(&["--users", "3"]);
    let addr = server.addr.as_str();
    let expected = get(addr, "/user-profile?id=2").body;
    let ms = 10;
    let started = Instant::now();
    let mut stream = open_get(addr, &format!("/function/drip?id=2&ms={ms}"));
    let mut raw = Vec::new();
    let mut reads = 0;
    let mut buf = [0u8; 4096];
    let mut checked_in_flight = false;
    loop {
        let n = stream.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        reads += 1;
        if !checked_in_flight && raw.windows(4).any(|w| w == b"\r\n\r\n") {
            // Headers are out, the body is dripping: still in flight.
            assert_eq!(get(addr, "/_stats").json()["in_flight"], 1);
            checked_in_flight = true;
        }
    }
    let elapsed = started.elapsed();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: application/json"));
    assert!(head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    let body = unchunk(body.as_bytes());
    assert_eq!(String::from_utf8(body).unwrap(), expected);
    let min = Duration::from_millis(ms * expected.len() as u64);
    assert!(elapsed >= min, "{} bytes in {elapsed:?}", expected.len());
    // One byte per frame, 10 ms apart: far more reads than one.
    assert!(reads > expected.len() / 2, "{reads} reads");
    wait_in_flight(addr, 0);
    assert_eq!(get(addr, "/_stats").json()["calls"]["drip"], 1);

    // A client that goes away mid-body ends the call.
    let mut stream = open_get(addr, "/drip?ms=100");
    let n = stream.read(&mut buf).expect("read the headers");
    assert!(n > 0);
    assert_eq!(get(addr, "/_stats").json()["in_flight"], 1);
    drop(stream);
    wait_in_flight(addr, 0);
}

#[test]
fn hang_answers_nothing_until_the_client_goes_away() {
    let server = start(&[]);
    let addr = server.addr.as_str();
    // The bound: a 504 after `ms`.
    let started = Instant::now();
    let r = get(addr, "/hang?ms=300");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!((r.status, r.json()), (504, json!({"hung": 300})));

    // Nothing at all within 500 ms, then the client goes away: the call
    // leaves `in_flight` (the handler is dropped, no task waits 60 s).
    let mut stream = open_get(addr, "/function/hang");
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    let err = stream.read(&mut buf).expect_err("hang answered");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    let stats = get(addr, "/_stats").json();
    assert_eq!(stats["in_flight"], 1);
    assert_eq!(stats["calls"]["hang"], 2);
    drop(stream);
    wait_in_flight(addr, 0);
}

/// `GET target` with these request headers.
fn get_with(addr: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    request_with(addr, "GET", target, headers, b"")
}

#[test]
fn identity_verifies_credentials() {
    let server = start(&["--users", "3"]);
    let addr = server.addr.as_str();
    let identity = |headers: &[(&str, &str)]| get_with(addr, "/identity", headers);

    let r = identity(&[("Cookie", "session=good-1")]);
    assert_eq!(
        (r.status, r.content_type.as_str(), r.body.as_str()),
        (200, "application/json", r#"{"uid":"u-1","name":"Alice"}"#)
    );
    let r = identity(&[("Cookie", "theme=dark; session=good-3; lang=en")]);
    assert_eq!(r.json(), json!({"uid": "u-3", "name": "User 3"}));
    let r = get_with(
        addr,
        "/function/identity",
        &[("Authorization", "Bearer good-2")],
    );
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"uid": "u-2", "name": "Bob"}))
    );

    let invalid = json!({"error": "invalid credential"});
    for headers in [
        &[][..],
        &[("Cookie", "session=good-4")],
        &[("Cookie", "session=nope")],
        &[("Cookie", "other=good-1")],
        &[("Authorization", "Bearer good-0")],
        &[("Authorization", "Basic good-1")],
    ] {
        let r = identity(headers);
        assert_eq!(
            (r.status, r.content_type.as_str(), r.json()),
            (401, "application/json", invalid.clone()),
            "{headers:?}"
        );
    }
    let r = identity(&[("Cookie", "session=broken")]);
    assert_eq!(
        (r.status, r.json()),
        (500, json!({"error": "identity store down"}))
    );

    let started = Instant::now();
    let r = identity(&[("Authorization", "Bearer slow-2")]);
    assert!(started.elapsed() >= Duration::from_millis(2_000));
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"uid": "u-2", "name": "Bob"}))
    );

    let stats = get(addr, "/_stats").json();
    assert_eq!(stats["calls"]["identity"], 11);
    assert_eq!(stats["total"], 11);
}

#[test]
fn cookie_profile_sends_cookies_and_counted_headers() {
    let server = start(&["--users", "3"]);
    let addr = server.addr.as_str();
    let profile = get(addr, "/user-profile?id=2").body;

    let r = get(addr, "/cookie-profile?id=2");
    assert_eq!(
        (r.status, r.content_type.as_str(), r.body.as_str()),
        (200, "application/json", profile.as_str())
    );
    assert_eq!(
        r.header_values("set-cookie"),
        ["seen-2=1; Path=/; HttpOnly", "last=2; Path=/"]
    );
    assert_eq!(r.header("x-trace-id"), "fn-1");
    assert_eq!(r.header("x-ratelimit-remaining"), "999");
    assert!(r.header_values("connection").iter().all(|v| *v == "close"));

    let r = get(addr, "/function/cookie-profile?id=1");
    assert_eq!(
        r.header_values("set-cookie"),
        ["seen-1=1; Path=/; HttpOnly", "last=1; Path=/"]
    );
    assert_eq!(r.header("x-trace-id"), "fn-2");
    assert_eq!(r.header("x-ratelimit-remaining"), "998");

    // Unknown: user-profile's 404, no cookies, still counted.
    let r = get(addr, "/cookie-profile?id=9");
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "user with id 9 not found")
    );
    assert!(r.header_values("set-cookie").is_empty());
    assert_eq!(r.header("x-trace-id"), "fn-3");
    assert_eq!(r.header("x-ratelimit-remaining"), "997");

    let stats = get(addr, "/_stats").json();
    assert_eq!(stats["calls"]["cookie-profile"], 3);
    assert_eq!(stats["calls"]["user-profile"], 1);

    // `/_reset` starts both counters again.
    request(addr, "POST", "/_reset", None);
    let r = get(addr, "/cookie-profile?id=3");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-trace-id"), "fn-1");
    assert_eq!(r.header("x-ratelimit-remaining"), "999");
    assert_eq!(get(addr, "/_stats").json()["calls"]["cookie-profile"], 1);
}

#[test]
fn registry_serves_documents_with_etags() {
    let dir = std::env::temp_dir().join(format!("mock-functions-registry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let preloaded = dir.join("preloaded.json");
    std::fs::write(&preloaded, r#"{"preloaded":true}"#).unwrap();
    let server = start(&["--registry-file", &format!("boot={}", preloaded.display())]);
    let _ = std::fs::remove_dir_all(&dir);
    let addr = server.addr.as_str();
    let put = |name: &str, body: &[u8]| {
        request_with(addr, "PUT", &format!("/_registry/{name}"), &[], body)
    };

    let r = get(addr, "/_registry/boot");
    assert_eq!(
        (r.status, r.body.as_str(), r.header("etag")),
        (200, r#"{"preloaded":true}"#, "\"1\"")
    );

    let r = get(addr, "/_registry/config");
    assert_eq!(r.status, 404);
    assert!(r.header_values("etag").is_empty());

    let r = put("config", br#"{"v":1}"#);
    assert_eq!((r.status, r.json()), (200, json!({"revision": 1})));
    let r = get(addr, "/_registry/config");
    assert_eq!(
        (r.status, r.content_type.as_str(), r.body.as_str()),
        (200, "application/json", r#"{"v":1}"#)
    );
    assert_eq!(r.header("etag"), "\"1\"");
    assert_eq!(r.header("cache-control"), "no-cache");

    let r = put("config", br#"{"v":2}"#);
    assert_eq!((r.status, r.json()), (200, json!({"revision": 2})));

    // Not modified: the current etag, quoted or not.
    for tag in ["\"2\"", "2"] {
        let r = get_with(addr, "/_registry/config", &[("If-None-Match", tag)]);
        assert_eq!((r.status, r.body.as_str()), (304, ""), "{tag}");
        assert_eq!(r.header("etag"), "\"2\"");
    }
    // An old etag: the new document.
    let r = get_with(addr, "/_registry/config", &[("If-None-Match", "\"1\"")]);
    assert_eq!(
        (r.status, r.body.as_str(), r.header("etag")),
        (200, r#"{"v":2}"#, "\"2\"")
    );

    // `/_reset` keeps the documents and the fetch counter; calls to the
    // registry are not function calls.
    let stats = get(addr, "/_stats").json();
    assert_eq!(stats["registry_fetches"], 6);
    assert_eq!(stats["total"], 0);
    request(addr, "POST", "/_reset", None);
    assert_eq!(get(addr, "/_registry/config").status, 200);
    let stats = get(addr, "/_stats").json();
    assert_eq!(stats["registry_fetches"], 7);

    let r = request(addr, "DELETE", "/_registry/config", None);
    assert_eq!(r.status, 200);
    assert_eq!(get(addr, "/_registry/config").status, 404);
    assert_eq!(
        request(addr, "DELETE", "/_registry/config", None).status,
        404
    );
    // Revisions go on after a delete: an old etag never names a new document.
    let r = put("config", b"{}");
    assert_eq!(r.json(), json!({"revision": 3}));
    let r = get_with(addr, "/_registry/config", &[("If-None-Match", "\"1\"")]);
    assert_eq!((r.status, r.header("etag")), (200, "\"3\""));

    // At most 4 MiB.
    let limit = 4 * 1024 * 1024;
    let r = put("big", &vec![b' '; limit]);
    assert_eq!((r.status, r.json()), (200, json!({"revision": 1})));
    assert_eq!(get(addr, "/_registry/big").body.len(), limit);
    let r = put("big", &vec![b' '; limit + 1]);
    assert_eq!(r.status, 413);
    assert_eq!(get(addr, "/_registry/big").header("etag"), "\"1\"");
    assert_eq!(get(addr, "/_stats").json()["registry_fetches"], 11);
}
