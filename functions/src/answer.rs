//! What every function answers, as plain data: the server sends exactly
//! these answers, and tests that play the functions in-process (the
//! engine's tests, host-tests) use them directly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde_json::{json, Map, Value};

use crate::data::DataSet;
use crate::function::Function;

/// A function's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The `content-type` header value.
    pub content_type: &'static str,
    /// Other headers (e.g. `allow` on a 405), one line each: a name may
    /// repeat (`cookie-profile`'s two `set-cookie` lines).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: String,
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

impl Answer {
    fn json(status: u16, value: &Value) -> Answer {
        Answer {
            status,
            content_type: JSON,
            headers: Vec::new(),
            body: value.to_string(),
        }
    }

    fn text(status: u16, text: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type: TEXT,
            headers: Vec::new(),
            body: text.into(),
        }
    }

    /// The `content-type` header value.
    pub fn content_type(&self) -> &'static str {
        self.content_type
    }
}

/// One HTTP request to a function.
#[derive(Clone, Copy, Debug)]
pub struct FunctionRequest<'a> {
    /// The method, upper case.
    pub method: &'a str,
    /// The query string's decoded `(name, value)` pairs.
    pub query: &'a [(String, String)],
    /// The raw query string (without `?`), if any.
    pub raw_query: Option<&'a str>,
    /// The path as received (e.g. `/function/echo`).
    pub path: &'a str,
    /// Request headers, names lower case.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
}

impl FunctionRequest<'_> {
    /// First non-empty value of query parameter `name`.
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// The orders `create-order` has made, counted per user: the n-th order of
/// user `u` is `order-u-n`. Shared by every request of one server.
#[derive(Debug, Default)]
pub struct OrderBook {
    per_user: Mutex<HashMap<String, u64>>,
}

impl OrderBook {
    /// Records one more order of `user` and returns its number (1, 2, ...).
    fn next(&self, user: &str) -> u64 {
        let mut per_user = self.per_user.lock().unwrap_or_else(PoisonError::into_inner);
        let n = per_user.entry(user.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    /// Forgets every order.
    pub fn clear(&self) {
        self.per_user
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// The per-server count of `cookie-profile` calls behind its
/// `x-trace-id` and `x-ratelimit-remaining` headers; `/_reset` clears it.
///
/// [`answer`] leaves these two headers out (it keeps no such state): the
/// server adds [`CallCounter::next_headers`] to every `cookie-profile`
/// answer, and so can a test that plays the function in-process.
#[derive(Debug, Default)]
pub struct CallCounter {
    calls: AtomicU64,
}

/// `cookie-profile`'s `x-ratelimit-remaining` before its first call.
pub const RATE_LIMIT: u64 = 1_000;

impl CallCounter {
    /// Counts one more call and returns its headers: for the N-th call
    /// since the last [`CallCounter::clear`], `x-trace-id: fn-N` and
    /// `x-ratelimit-remaining: 1000 - N` (at least 0; [`RATE_LIMIT`]).
    pub fn next_headers(&self) -> [(&'static str, String); 2] {
        let n = self.calls.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        [
            ("x-trace-id", format!("fn-{n}")),
            (
                "x-ratelimit-remaining",
                RATE_LIMIT.saturating_sub(n).to_string(),
            ),
        ]
    }

    /// Counts from zero again.
    pub fn clear(&self) {
        self.calls.store(0, Ordering::Relaxed);
    }
}

/// What `function` answers to `request`.
pub fn answer(
    data: &DataSet,
    orders: &OrderBook,
    function: Function,
    request: &FunctionRequest<'_>,
) -> Answer {
    let allowed: &[&str] = match function {
        Function::Echo => &[],
        Function::CreateOrder => &["POST"],
        _ => &["GET", "HEAD"],
    };
    if !allowed.is_empty() && !allowed.contains(&request.method) {
        let mut answer = Answer::text(
            405,
            format!("{} does not accept {}", function.name(), request.method),
        );
        answer.headers.push(("allow", allowed.join(", ")));
        return answer;
    }
    let param = |name| request.param(name);
    match function {
        Function::UserProfile => user_profile(data, param("id")),
        Function::UserOrders => match param("id") {
            None => Answer::text(400, "user id is required"),
            Some(id) => Answer::json(200, &data.orders(id)),
        },
        Function::UserOrdersBatch => match param("ids") {
            None => Answer::text(400, "user ids are required"),
            Some(ids) => Answer::json(200, &data.orders_batch(ids)),
        },
        Function::Users => Answer::json(200, &data.users()),
        Function::Inventory => match param("sku") {
            None => Answer::text(400, "sku is required"),
            Some(sku) => match DataSet::inventory(sku) {
                Some(item) => Answer::json(200, &item),
                None => Answer::text(404, format!("sku {sku} not found")),
            },
        },
        Function::Node => match param("id") {
            None => Answer::text(400, "id is required"),
            Some(id) => match data.node(id) {
                Some(node) => Answer::json(200, &node),
                None => Answer::text(404, format!("no node with id {id}")),
            },
        },
        Function::Search => Answer::json(200, &data.search(param("text").unwrap_or_default())),
        Function::PlatformProfile => Answer::json(200, &platform_profile(data, param("id"))),
        Function::Sleep => Answer::json(200, &json!({ "slept": sleep_ms(request.query) })),
        Function::Echo => Answer::json(200, &echo(request)),
        Function::Status => {
            match param("code")
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..=599).contains(c))
            {
                Some(code) => Answer::json(code, &json!({ "status": code })),
                None => Answer::text(400, "code must be an HTTP status between 200 and 599"),
            }
        }
        Function::NotJson => Answer::text(200, "this is not json"),
        Function::CreateOrder => create_order(orders, request.body),
        Function::Person => match param("id") {
            None => Answer::text(400, "person id is required"),
            Some(id) => match DataSet::person(id) {
                Some(person) => Answer::json(200, &person),
                None => Answer::text(404, format!("person with id {id} not found")),
            },
        },
        Function::PeopleBatch => match param("ids") {
            None => Answer::text(400, "person ids are required"),
            Some(ids) => Answer::json(200, &DataSet::people_batch(ids)),
        },
        Function::Quirks => match param("kind") {
            None => Answer::text(400, "kind is required"),
            Some(kind) => match DataSet::quirk(kind) {
                Some(value) => Answer::json(200, &value),
                None => Answer::text(404, format!("no quirk named {kind}")),
            },
        },
        // The server sends this body one byte at a time (see `drip_pause`).
        Function::Drip => {
            let id = param("id").unwrap_or("1");
            match data.user(id) {
                Some(user) => Answer::json(200, &user),
                None => Answer::text(404, format!("user with id {id} not found")),
            }
        }
        // What the server answers once it gives up waiting (`hang_ms`).
        Function::Hang => Answer::json(504, &json!({ "hung": hang_ms(request.query) })),
        // The server waits `identity_delay_ms` first.
        Function::Identity => identity(data, request.headers),
        Function::CookieProfile => cookie_profile(data, param("id")),
    }
}

fn user_profile(data: &DataSet, id: Option<&str>) -> Answer {
    match id {
        None => Answer::text(400, "user id is required"),
        Some(id) => match data.user(id) {
            Some(user) => Answer::json(200, &user),
            None => Answer::text(404, format!("user with id {id} not found")),
        },
    }
}

/// `user-profile`'s answer, plus two `set-cookie` lines when it is a 200
/// (the id is then a plain number, safe in a header).
fn cookie_profile(data: &DataSet, id: Option<&str>) -> Answer {
    let mut answer = user_profile(data, id);
    if let (200, Some(id)) = (answer.status, id) {
        answer
            .headers
            .push(("set-cookie", format!("seen-{id}=1; Path=/; HttpOnly")));
        answer
            .headers
            .push(("set-cookie", format!("last={id}; Path=/")));
    }
    answer
}

/// How long `identity` waits before it answers a `slow-N` token.
pub const SLOW_IDENTITY_MS: u64 = 2_000;

/// The login credential of a request with these headers (names lower
/// case): the first non-empty `session` cookie of any `cookie` header,
/// or else the token of `authorization: Bearer TOKEN`.
pub fn credential(headers: &[(String, String)]) -> Option<&str> {
    let session = headers
        .iter()
        .filter(|(name, _)| name == "cookie")
        .flat_map(|(_, value)| value.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| name.trim() == "session")
        .map(|(_, value)| {
            let value = value.trim();
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
        })
        .find(|value| !value.is_empty());
    session.or_else(|| {
        headers
            .iter()
            .filter(|(name, _)| name == "authorization")
            .filter_map(|(_, value)| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .find(|token| !token.is_empty())
    })
}

/// How long `identity` waits before it answers a request with these
/// headers: [`SLOW_IDENTITY_MS`] for a `slow-...` credential, else 0.
pub fn identity_delay_ms(headers: &[(String, String)]) -> u64 {
    match credential(headers) {
        Some(token) if token.starts_with("slow-") => SLOW_IDENTITY_MS,
        _ => 0,
    }
}

/// `identity`'s answer: `good-N` and `slow-N` (N a user of `data`) are
/// user N, `broken` is a 500, anything else a 401.
fn identity(data: &DataSet, headers: &[(String, String)]) -> Answer {
    let token = credential(headers);
    if token == Some("broken") {
        return Answer::json(500, &json!({ "error": "identity store down" }));
    }
    let user = token
        .and_then(|t| t.strip_prefix("good-").or_else(|| t.strip_prefix("slow-")))
        .and_then(|n| Some((n, data.user(n)?)));
    match user {
        Some((n, user)) => Answer::json(
            200,
            &json!({ "uid": format!("u-{n}"), "name": user["name"] }),
        ),
        None => Answer::json(401, &json!({ "error": "invalid credential" })),
    }
}

/// The longest `sleep` waits.
pub const MAX_SLEEP_MS: u64 = 60_000;

/// How long `sleep` waits for these query parameters (`ms`, capped).
pub fn sleep_ms(query: &[(String, String)]) -> u64 {
    query
        .iter()
        .find(|(k, _)| k == "ms")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .unwrap_or(0)
        .min(MAX_SLEEP_MS)
}

/// `drip`'s pause before each byte when `ms` is not given.
pub const DEFAULT_DRIP_MS: u64 = 200;

/// The longest `drip` drips: past it, the rest of the body goes at once.
pub const MAX_DRIP_MS: u64 = 60_000;

/// The longest `hang` waits for its client to go away before it answers
/// (a 504); also its default.
pub const MAX_HANG_MS: u64 = 60_000;

/// The first `ms` query parameter as a number, if it is one.
fn ms_param(query: &[(String, String)]) -> Option<u64> {
    query
        .iter()
        .find(|(k, _)| k == "ms")
        .and_then(|(_, v)| v.parse::<u64>().ok())
}

/// How long `drip` pauses before each byte for these query parameters
/// (`ms`, default [`DEFAULT_DRIP_MS`], at most [`MAX_DRIP_MS`]).
pub fn drip_ms(query: &[(String, String)]) -> u64 {
    ms_param(query).unwrap_or(DEFAULT_DRIP_MS).min(MAX_DRIP_MS)
}

/// The pause before byte `index` (0-based) of a `drip` answer that pauses
/// `ms` before each byte: `ms` while the pauses so far stay within
/// [`MAX_DRIP_MS`], then 0 (the rest goes at once, so no answer drips for
/// longer than that).
pub fn drip_pause(ms: u64, index: usize) -> u64 {
    let bytes = u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1);
    if ms.saturating_mul(bytes) <= MAX_DRIP_MS {
        ms
    } else {
        0
    }
}

/// How long `hang` waits for its client to go away before it gives up
/// (`ms`, default and at most [`MAX_HANG_MS`]).
pub fn hang_ms(query: &[(String, String)]) -> u64 {
    ms_param(query).unwrap_or(MAX_HANG_MS).min(MAX_HANG_MS)
}

/// The answer to `method path_and_query` with no headers, where the path is
/// `/<name>` or `/function/<name>` as the server routes it; 404 otherwise.
pub fn answer_path(
    data: &DataSet,
    orders: &OrderBook,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Answer {
    let (path, raw_query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let name = path.strip_prefix("/function").unwrap_or(path);
    let Some(function) = name.strip_prefix('/').and_then(Function::from_name) else {
        return Answer::text(404, format!("no route for {path}"));
    };
    let query = parse_query(raw_query.unwrap_or_default());
    let request = FunctionRequest {
        method,
        query: &query,
        raw_query,
        path,
        headers: &[],
        body,
    };
    answer(data, orders, function, &request)
}

/// `GET path_and_query` (see [`answer_path`]), for the functions that keep
/// no state.
pub fn answer_get(data: &DataSet, path_and_query: &str) -> Answer {
    answer_path(data, &OrderBook::default(), "GET", path_and_query, b"")
}

/// Decodes a query string into `(name, value)` pairs.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn echo(request: &FunctionRequest<'_>) -> Value {
    let mut headers = Map::new();
    for (name, value) in request.headers {
        match headers.get_mut(name) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            _ => {
                headers.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    let body = if request.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(request.body)
            .unwrap_or_else(|_| String::from_utf8_lossy(request.body).into_owned().into())
    };
    json!({
        "method": request.method,
        "path": request.path,
        "query": request.query.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "rawQuery": request.raw_query,
        "headers": headers,
        "body": body,
    })
}

/// The platform-style answer: an envelope around snake_case keys.
fn platform_profile(data: &DataSet, id: Option<&str>) -> Value {
    let user = id.and_then(|id| data.user(id));
    match (id, user) {
        (Some(id), Some(user)) => json!({
            "code": 0,
            "msg": "ok",
            "data": {"user": {
                "user_id": id,
                "user_name": user["name"],
                "contact": {"email_address": user["email"]},
            }},
        }),
        (id, _) => json!({
            "code": 40401,
            "msg": format!("user {} not found", id.unwrap_or("")),
            "data": null,
        }),
    }
}

fn create_order(orders: &OrderBook, body: &[u8]) -> Answer {
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    let fields = parsed.ok().and_then(|v| match v {
        Value::Object(mut o) => Some((o.remove("userId")?, o.remove("amount")?)),
        _ => None,
    });
    let Some((user_id, amount)) = fields else {
        return Answer::text(400, "body must be a JSON object with userId and amount");
    };
    let user = match &user_id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let number = orders.next(&user);
    Answer::json(
        200,
        &json!({
            "id": format!("order-{user}-{number}"),
            "userId": user_id,
            "amount": amount,
            "itemCount": 1,
            "orderNumber": number,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_the_server() {
        let data = DataSet::new(3);
        let seed = answer_get(&data, "/function/user-profile?id=1");
        assert_eq!(seed.status, 200);
        assert_eq!(
            seed.body,
            r#"{"id":"1","name":"Alice","email":"alice@example.com"}"#
        );
        let batch: Value =
            serde_json::from_str(&answer_get(&data, "/user-orders-batch?ids=2%2C9").body).unwrap();
        assert_eq!(
            batch,
            json!({"2": [{"id": "order-201", "amount": 250.0, "itemCount": 5}]})
        );
        assert_eq!(answer_get(&data, "/user-profile?id=9").status, 404);
        assert_eq!(
            answer_get(&data, "/function/person?id=3").body,
            r#"{"id":"3","name":"Person 3"}"#
        );
        let friends: Value =
            serde_json::from_str(&answer_get(&data, "/people-batch?ids=1%2C2").body).unwrap();
        assert_eq!(friends["2"].as_array().map(Vec::len), Some(30));
        assert_eq!(
            answer_get(&data, "/quirks?kind=numeric-id").body,
            r#"{"id":7,"ids":[8,"nine",10]}"#
        );
        assert_eq!(answer_get(&data, "/quirks?kind=nope").status, 404);
        assert_eq!(answer_get(&data, "/nope").status, 404);
        assert_eq!(answer_get(&data, "/not-json").content_type, TEXT);
        let post = answer_path(&data, &OrderBook::default(), "POST", "/users", b"");
        assert_eq!(
            (post.status, post.headers),
            (405, vec![("allow", "GET, HEAD".into())])
        );
    }

    #[test]
    fn drip_answers_a_user_and_hang_gives_up() {
        let data = DataSet::new(3);
        let drip = answer_get(&data, "/function/drip?id=2&ms=5");
        assert_eq!((drip.status, drip.content_type), (200, JSON));
        assert_eq!(drip.body, answer_get(&data, "/user-profile?id=2").body);
        // Without an id: user 1, as the seed query's user.
        assert_eq!(
            answer_get(&data, "/drip").body,
            r#"{"id":"1","name":"Alice","email":"alice@example.com"}"#
        );
        assert_eq!(answer_get(&data, "/drip?id=9").status, 404);
        let hang = answer_get(&data, "/hang?ms=250");
        assert_eq!((hang.status, hang.body.as_str()), (504, r#"{"hung":250}"#));
        assert_eq!(answer_get(&data, "/hang").body, r#"{"hung":60000}"#);
        let post = answer_path(&data, &OrderBook::default(), "POST", "/hang", b"");
        assert_eq!(post.status, 405);
    }

    #[test]
    fn drip_and_hang_timings_are_bounded() {
        let q = |raw: &str| parse_query(raw);
        assert_eq!(drip_ms(&q("")), DEFAULT_DRIP_MS);
        assert_eq!(drip_ms(&q("ms=0")), 0);
        assert_eq!(drip_ms(&q("ms=15&ms=99")), 15);
        assert_eq!(drip_ms(&q("ms=nope")), DEFAULT_DRIP_MS);
        assert_eq!(drip_ms(&q("ms=999999999")), MAX_DRIP_MS);
        assert_eq!(hang_ms(&q("")), MAX_HANG_MS);
        assert_eq!(hang_ms(&q("ms=300")), 300);
        assert_eq!(hang_ms(&q("ms=-1")), MAX_HANG_MS);
        assert_eq!(hang_ms(&q("ms=70000")), MAX_HANG_MS);
        // 200 ms per byte: 300 bytes are 60 s, then the rest goes at once.
        assert_eq!(drip_pause(200, 0), 200);
        assert_eq!(drip_pause(200, 299), 200);
        assert_eq!(drip_pause(200, 300), 0);
        assert_eq!(drip_pause(0, usize::MAX), 0);
        assert_eq!(drip_pause(MAX_DRIP_MS, 0), MAX_DRIP_MS);
        assert_eq!(drip_pause(MAX_DRIP_MS, 1), 0);
        let total: u64 = (0..10_000).map(|i| drip_pause(7, i)).sum();
        assert!(total <= MAX_DRIP_MS, "{total}");
    }

    #[test]
    fn orders_are_numbered_per_user() {
        let (data, book) = (DataSet::new(3), OrderBook::default());
        let order = |user: &str| {
            let body = format!(r#"{{"userId": "{user}", "amount": 5}}"#);
            let a = answer_path(&data, &book, "POST", "/create-order", body.as_bytes());
            serde_json::from_str::<Value>(&a.body).unwrap()["id"].clone()
        };
        assert_eq!(order("a"), "order-a-1");
        assert_eq!(order("a"), "order-a-2");
        assert_eq!(order("b"), "order-b-1");
        book.clear();
        assert_eq!(order("a"), "order-a-1");
    }

    fn with_headers(data: &DataSet, target: &str, headers: &[(&str, &str)]) -> Answer {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (path, raw_query) = target.split_once('?').unwrap_or((target, ""));
        let query = parse_query(raw_query);
        let request = FunctionRequest {
            method: "GET",
            query: &query,
            raw_query: Some(raw_query),
            path,
            headers: &headers,
            body: b"",
        };
        let function = Function::from_name(path.trim_start_matches('/')).unwrap();
        answer(data, &OrderBook::default(), function, &request)
    }

    #[test]
    fn identity_maps_credentials_to_users() {
        let data = DataSet::new(3);
        let identity = |headers: &[(&str, &str)]| {
            let a = with_headers(&data, "/identity", headers);
            (a.status, a.body)
        };
        let ok = |uid: &str, name: &str| (200, format!(r#"{{"uid":"{uid}","name":"{name}"}}"#));
        let invalid = (401, r#"{"error":"invalid credential"}"#.to_owned());
        assert_eq!(
            identity(&[("cookie", "session=good-1")]),
            ok("u-1", "Alice")
        );
        assert_eq!(
            identity(&[("cookie", "theme=dark; session=good-3; lang=en")]),
            ok("u-3", "User 3")
        );
        assert_eq!(
            identity(&[("cookie", "a=b"), ("cookie", "session=good-2")]),
            ok("u-2", "Bob")
        );
        assert_eq!(
            identity(&[("authorization", "Bearer good-2")]),
            ok("u-2", "Bob")
        );
        assert_eq!(
            identity(&[("authorization", "bearer slow-1")]),
            ok("u-1", "Alice")
        );
        // The cookie wins over the bearer token.
        assert_eq!(
            identity(&[
                ("cookie", "session=bad"),
                ("authorization", "Bearer good-1")
            ]),
            invalid
        );
        for bad in [
            &[][..],
            &[("cookie", "session=good-4")],
            &[("cookie", "session=good-01")],
            &[("cookie", "session=")],
            &[("cookie", "sessionx=good-1")],
            &[("authorization", "Basic good-1")],
            &[("authorization", "Bearer")],
            &[("authorization", "good-1")],
        ] {
            assert_eq!(identity(bad), invalid, "{bad:?}");
        }
        let broken = with_headers(&data, "/identity", &[("cookie", "session=broken")]);
        assert_eq!(
            (broken.status, broken.content_type, broken.body.as_str()),
            (500, JSON, r#"{"error":"identity store down"}"#)
        );
        let headers = |token: &str| vec![("cookie".to_owned(), format!("session={token}"))];
        assert_eq!(identity_delay_ms(&headers("slow-1")), SLOW_IDENTITY_MS);
        assert_eq!(identity_delay_ms(&headers("good-1")), 0);
        assert_eq!(identity_delay_ms(&[]), 0);
    }

    #[test]
    fn cookie_profile_is_a_profile_with_cookies_and_counted_headers() {
        let data = DataSet::new(3);
        let a = with_headers(&data, "/cookie-profile?id=2", &[]);
        assert_eq!(a.body, answer_get(&data, "/user-profile?id=2").body);
        assert_eq!(
            a.headers,
            vec![
                ("set-cookie", "seen-2=1; Path=/; HttpOnly".to_owned()),
                ("set-cookie", "last=2; Path=/".to_owned()),
            ]
        );
        let missing = with_headers(&data, "/cookie-profile?id=9", &[]);
        assert_eq!((missing.status, missing.headers), (404, vec![]));
        let counter = CallCounter::default();
        let values = |h: [(&str, String); 2]| h.map(|(_, v)| v);
        assert_eq!(values(counter.next_headers()), ["fn-1", "999"]);
        assert_eq!(values(counter.next_headers()), ["fn-2", "998"]);
        counter.clear();
        let [trace, remaining] = counter.next_headers();
        assert_eq!(
            [trace, remaining],
            [
                ("x-trace-id", "fn-1".to_owned()),
                ("x-ratelimit-remaining", "999".to_owned())
            ]
        );
    }

    #[test]
    fn echo_reflects_the_request() {
        let data = DataSet::new(1);
        let a = answer_path(
            &data,
            &OrderBook::default(),
            "POST",
            "/echo?x=1&x=2",
            b"{\"a\":1}",
        );
        let v: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v["query"], json!([["x", "1"], ["x", "2"]]));
        assert_eq!(v["rawQuery"], "x=1&x=2");
        assert_eq!(v["body"], json!({"a": 1}));
    }
}
