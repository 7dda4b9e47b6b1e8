//! What the data functions answer, as plain data: the same answers the
//! server sends, for tests that play the functions without a socket.

use serde_json::{json, Value};

use crate::data::DataSet;
use crate::function::Function;

/// A function's answer: status, content type and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Whether the body is JSON (`application/json`) or text (`text/plain`).
    pub json: bool,
    /// The body.
    pub body: String,
}

impl Answer {
    fn json(status: u16, value: &Value) -> Answer {
        Answer {
            status,
            json: true,
            body: value.to_string(),
        }
    }

    fn text(status: u16, text: impl Into<String>) -> Answer {
        Answer {
            status,
            json: false,
            body: text.into(),
        }
    }

    /// The `content-type` header value.
    pub fn content_type(&self) -> &'static str {
        if self.json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        }
    }
}

/// The answer of a function that depends only on its query parameters
/// (every function but `echo` and `create-order`, which read the request and
/// return `None` here). `query` holds decoded `(name, value)` pairs.
pub fn answer(data: &DataSet, function: Function, query: &[(String, String)]) -> Option<Answer> {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let answer = match function {
        Function::UserProfile => match param("id") {
            None => Answer::text(400, "user id is required"),
            Some(id) => match data.user(id) {
                Some(user) => Answer::json(200, &user),
                None => Answer::text(404, format!("user with id {id} not found")),
            },
        },
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
        Function::Echo | Function::CreateOrder => return None,
    };
    Some(answer)
}

/// The answer to `GET path_and_query`, where the path is `/<name>` or
/// `/function/<name>` as the server routes it; 404 for anything else.
pub fn answer_get(data: &DataSet, path_and_query: &str) -> Answer {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let name = path.strip_prefix("/function").unwrap_or(path);
    let function = name.strip_prefix('/').and_then(Function::from_name);
    let query: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match function.and_then(|f| answer(data, f, &query)) {
        Some(answer) => answer,
        None => Answer::text(404, format!("no route for {path}")),
    }
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
        assert_eq!(answer_get(&data, "/echo").status, 404);
        assert_eq!(answer_get(&data, "/nope").status, 404);
        assert!(!answer_get(&data, "/not-json").json);
    }
}
