//! HTTP routing and the handlers of every mock function and `/_` endpoint.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::cli::Config;
use crate::stats::Stats;
use mock_functions::{answer, Answer, DataSet, Function};

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The command line the server was started with.
    pub config: Config,
    /// The data set behind the functions.
    pub data: DataSet,
    /// Counters and call log.
    pub stats: Stats,
    served: Vec<Function>,
}

impl AppState {
    /// State for a server started with `config`.
    pub fn new(config: Config) -> AppState {
        let served = config.served();
        AppState {
            data: DataSet::new(config.users),
            stats: Stats::new(served.clone()),
            served,
            config,
        }
    }
}

/// The complete router: functions at `/<name>` and `/function/<name>`, plus
/// `/_stats`, `/_reset` and `/_health`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/_stats", get(stats))
        .route("/_reset", post(reset))
        .route("/_health", get(health))
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
    json_response(StatusCode::OK, &state.stats.snapshot())
}

async fn reset(State(state): State<Arc<AppState>>) -> Response {
    state.stats.reset();
    json_response(StatusCode::OK, &json!({ "ok": true }))
}

/// One request to a function, as the dispatcher sees it.
struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    query: Vec<(String, String)>,
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
    let _call = state.stats.begin(f, logged_uri);
    let delay = state.config.delay_of(f);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let query = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let request = Request {
        method,
        uri,
        headers,
        body,
        query,
    };
    dispatch(&state, f, &request)
}

fn dispatch(state: &AppState, f: Function, req: &Request) -> Response {
    let allowed: &[Method] = match f {
        Function::Echo => &[],
        Function::CreateOrder => &[Method::POST],
        _ => &[Method::GET, Method::HEAD],
    };
    if !allowed.is_empty() && !allowed.contains(&req.method) {
        let allow = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let mut response = text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} does not accept {}", f.name(), req.method),
        );
        if let Ok(v) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert(header::ALLOW, v);
        }
        return response;
    }
    match f {
        Function::Echo => json_response(StatusCode::OK, &echo(req)),
        Function::CreateOrder => create_order(state, req),
        f => match answer(&state.data, f, &req.query) {
            Some(answer) => answer_response(answer),
            None => text_response(StatusCode::NOT_FOUND, format!("no function named {f}")),
        },
    }
}

fn answer_response(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(answer.content_type()),
        )],
        Body::from(answer.body),
    )
        .into_response()
}

fn echo(req: &Request) -> Value {
    let mut headers = Map::new();
    for name in req.headers.keys() {
        let values: Vec<_> = req
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_owned(), values.join(", ").into());
    }
    let body = if req.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&req.body)
            .unwrap_or_else(|_| String::from_utf8_lossy(&req.body).into_owned().into())
    };
    json!({
        "method": req.method.as_str(),
        "path": req.uri.path(),
        "query": req.query.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "rawQuery": req.uri.query(),
        "headers": headers,
        "body": body,
    })
}

fn create_order(state: &AppState, req: &Request) -> Response {
    let parsed: Result<Value, _> = serde_json::from_slice(&req.body);
    let fields = parsed.ok().and_then(|v| match v {
        Value::Object(mut o) => Some((o.remove("userId")?, o.remove("amount")?)),
        _ => None,
    });
    let Some((user_id, amount)) = fields else {
        return text_response(
            StatusCode::BAD_REQUEST,
            "body must be a JSON object with userId and amount",
        );
    };
    let seq = state.stats.next_order_seq();
    json_response(
        StatusCode::OK,
        &json!({
            "id": format!("order-new-{seq}"),
            "userId": user_id,
            "amount": amount,
            "itemCount": 1,
        }),
    )
}
