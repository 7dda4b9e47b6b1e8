//! HTTP routing and the handlers of every mock function and `/_` endpoint.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::cli::Config;
use crate::registry::{Document, Registry, MAX_DOCUMENT_BYTES};
use crate::stats::{CallId, Stats};
use mock_functions::{
    answer, drip_ms, drip_pause, hang_ms, identity_delay_ms, parse_query, sleep_ms, Answer,
    CallCounter, DataSet, Function, FunctionRequest, OrderBook,
};

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The command line the server was started with.
    pub config: Config,
    /// The data set behind the functions.
    pub data: DataSet,
    /// Counters and call log.
    pub stats: Stats,
    /// The orders `create-order` made (cleared by `/_reset`).
    pub orders: OrderBook,
    /// The `cookie-profile` calls behind its `x-trace-id` and
    /// `x-ratelimit-remaining` headers (cleared by `/_reset`).
    pub cookie_profile_calls: CallCounter,
    /// The configuration registry at `/_registry/<name>` (kept by
    /// `/_reset`).
    pub registry: Registry,
    served: Vec<Function>,
}

impl AppState {
    /// State for a server started with `config`.
    pub fn new(config: Config) -> AppState {
        let served = config.served();
        AppState {
            data: DataSet::new(config.users),
            stats: Stats::new(served.clone()),
            orders: OrderBook::default(),
            cookie_profile_calls: CallCounter::default(),
            registry: Registry::default(),
            served,
            config,
        }
    }
}

/// The complete router: functions at `/<name>` and `/function/<name>`, plus
/// `/_stats`, `/_reset`, `/_health` and the registry at `/_registry/<name>`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/_stats", get(stats))
        .route("/_reset", post(reset))
        .route("/_health", get(health))
        .route(
            "/_registry/{name}",
            get(registry_get)
                .put(registry_put)
                .delete(registry_delete)
                .layer(DefaultBodyLimit::max(MAX_DOCUMENT_BYTES)),
        )
        .route("/{name}", any(function))
        .route("/function/{name}", any(function))
        .fallback(not_found)
        .with_state(state)
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        value.to_string(),
    )
        .into_response()
}

fn text_response(status: StatusCode, text: impl Into<String>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        Body::from(text.into()),
    )
        .into_response()
}

async fn not_found(uri: Uri) -> Response {
    text_response(
        StatusCode::NOT_FOUND,
        format!("no route for {}", uri.path()),
    )
}

async fn health() -> Response {
    json_response(StatusCode::OK, &json!({ "ok": true }))
}

async fn stats(State(state): State<Arc<AppState>>) -> Response {
    let mut snapshot = state.stats.snapshot();
    if let Some(fields) = snapshot.as_object_mut() {
        fields.insert(
            "registry_fetches".to_owned(),
            state.registry.fetches().into(),
        );
    }
    json_response(StatusCode::OK, &snapshot)
}

/// Zeroes the function counters and forgets the orders and the
/// `cookie-profile` calls; the registry keeps its documents and its fetch
/// counter.
async fn reset(State(state): State<Arc<AppState>>) -> Response {
    state.stats.reset();
    state.orders.clear();
    state.cookie_profile_calls.clear();
    json_response(StatusCode::OK, &json!({ "ok": true }))
}

/// `PUT /_registry/<name>`: stores the body (at most
/// [`MAX_DOCUMENT_BYTES`], else 413) as the next revision of `name`.
async fn registry_put(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => {
            let revision = state.registry.put(&name, body);
            json_response(StatusCode::OK, &json!({ "revision": revision }))
        }
        Err(rejection) => json_response(
            rejection.status(),
            &json!({ "error": rejection.body_text() }),
        ),
    }
}

/// `GET /_registry/<name>`: the current document with its `etag`, a 304
/// when `if-none-match` names it, a 404 when there is none.
async fn registry_get(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(document) = state.registry.fetch(&name) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": format!("no document named {name}") }),
        );
    };
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|value| value.to_str().is_ok_and(|v| document.matches(v)));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            document.body.clone(),
        )
            .into_response()
    };
    add_validators(&mut response, &document);
    response
}

/// The `etag` and `cache-control: no-cache` of a registry answer.
fn add_validators(response: &mut Response, document: &Document) {
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&document.etag()) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

/// `DELETE /_registry/<name>`: removes the current document (404 when
/// there is none).
async fn registry_delete(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    if state.registry.delete(&name) {
        json_response(StatusCode::OK, &json!({ "deleted": true }))
    } else {
        json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": format!("no document named {name}") }),
        )
    }
}

async fn function(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(f) = Function::from_name(&name).filter(|f| state.served.contains(f)) else {
        return text_response(StatusCode::NOT_FOUND, format!("no function named {name}"));
    };
    let logged_uri = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    // Dropped with this future, also when the client goes away mid-request
    // (hyper drops the handler), so `hang` is not in flight after that.
    let call = state.stats.begin(f, logged_uri);
    let delay = state.config.delay_of(f);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let query = parse_query(uri.query().unwrap_or(""));
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_owned(), value)
        })
        .collect();
    let wait_ms = match f {
        Function::Sleep => sleep_ms(&query),
        Function::Hang => hang_ms(&query),
        Function::Identity => identity_delay_ms(&headers),
        _ => 0,
    };
    if wait_ms > 0 {
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    }
    let request = FunctionRequest {
        method: method.as_str(),
        query: &query,
        raw_query: uri.query(),
        path: uri.path(),
        headers: &headers,
        body: &body,
    };
    let mut answer = answer(&state.data, &state.orders, f, &request);
    if f == Function::CookieProfile {
        answer
            .headers
            .extend(state.cookie_profile_calls.next_headers());
    }
    if let Some(value) = &state.config.cache_control {
        if (200..300).contains(&answer.status) {
            answer.headers.push(("cache-control", value.clone()));
        }
    }
    if f == Function::Drip {
        // In flight until the last byte is sent or the client goes away.
        let finish = FinishOnDrop {
            state: Arc::clone(&state),
            call: Some(call.detach()),
        };
        let ms = drip_ms(&query);
        return answer_response(answer, |body| drip_body(body.into_bytes(), ms, finish));
    }
    answer_response(answer, Body::from)
}

/// Records the end of a detached call when dropped (with the body that
/// carries it: after its last byte, or when the client went away).
struct FinishOnDrop {
    state: Arc<AppState>,
    call: Option<CallId>,
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            self.state.stats.finish(call);
        }
    }
}

/// `bytes` one byte per frame, `drip_pause` ms before each; once the
/// pauses reach their bound, the rest in one frame. hyper flushes every
/// frame before it waits for the next, so each byte leaves at once.
fn drip_body(bytes: Vec<u8>, ms: u64, finish: FinishOnDrop) -> Body {
    let stream = futures_util::stream::unfold(
        (bytes, 0usize, finish),
        move |(bytes, at, finish)| async move {
            let pause = drip_pause(ms, at);
            let chunk = if pause == 0 {
                bytes.get(at..).filter(|rest| !rest.is_empty())?.to_vec()
            } else {
                vec![*bytes.get(at)?]
            };
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            let next = at + chunk.len();
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(chunk)),
                (bytes, next, finish),
            ))
        },
    );
    Body::from_stream(stream)
}

fn answer_response(answer: Answer, body: impl FnOnce(String) -> Body) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(answer.content_type()),
        )],
        body(answer.body),
    )
        .into_response();
    // Appended, not inserted: a name may repeat (`set-cookie`).
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
