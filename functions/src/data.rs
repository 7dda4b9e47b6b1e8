//! The fixed, deterministic data set behind the mock functions.

use serde_json::{json, Map, Value};

/// Number of inventory SKUs (`sku-1` ..= `sku-20`).
pub const SKU_COUNT: u32 = 20;

/// Number of people (`1` ..= `30`) behind `person` and `people-batch`.
///
/// Every person is a friend of every person, themselves included, so each
/// level of `friends` multiplies a reply by this number while the calls stay
/// one batched call per level: the amplification tests' data set.
pub const PEOPLE: u32 = 30;

/// The users, orders and inventory the functions answer from.
#[derive(Clone, Copy, Debug)]
pub struct DataSet {
    users: u32,
}

impl DataSet {
    /// A data set with users `1..=users`.
    pub const fn new(users: u32) -> DataSet {
        DataSet { users }
    }

    /// Resolves a user id (canonical decimal, `1..=N`) to its number.
    fn user_number(&self, id: &str) -> Option<u32> {
        parse_canonical(id).filter(|k| (1..=self.users).contains(k))
    }

    /// The user object for `id`, or `None` if there is no such user.
    pub fn user(&self, id: &str) -> Option<Value> {
        self.user_number(id).map(user_object)
    }

    /// Every user object, in id order.
    pub fn users(&self) -> Value {
        Value::Array((1..=self.users).map(user_object).collect())
    }

    /// The orders of user `id`; an empty list for unknown users.
    pub fn orders(&self, id: &str) -> Value {
        self.user_number(id)
            .map(orders_of)
            .unwrap_or_else(|| Value::Array(Vec::new()))
    }

    /// Orders of several users keyed by id, from a comma-separated id list.
    ///
    /// Blank entries are skipped, surrounding spaces are trimmed, unknown
    /// users are omitted; keys keep the order of first appearance.
    pub fn orders_batch(&self, ids: &str) -> Value {
        let mut out = Map::new();
        for id in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some(k) = self.user_number(id) {
                out.entry(id.to_owned()).or_insert_with(|| orders_of(k));
            }
        }
        Value::Object(out)
    }

    /// A user (`__typename: "User"`) or an order (`__typename: "Order"`) by
    /// id, as a `Node` interface function answers.
    pub fn node(&self, id: &str) -> Option<Value> {
        let (mut found, typename) = match self.user(id) {
            Some(user) => (user, "User"),
            None => (self.order(id)?, "Order"),
        };
        let object = found.as_object_mut()?;
        object.insert("__typename".to_owned(), typename.into());
        Some(found)
    }

    /// The order with this id, if any user has it.
    fn order(&self, id: &str) -> Option<Value> {
        (1..=self.users)
            .filter_map(|k| match orders_of(k) {
                Value::Array(items) => Some(items),
                _ => None,
            })
            .flatten()
            .find(|o| o.get("id").and_then(Value::as_str) == Some(id))
    }

    /// Users whose name and SKUs whose code contain `text` (ignoring case),
    /// each tagged with `"kind": "user"` or `"kind": "inventory"`; the text
    /// `mystery` adds an item of an unknown kind.
    pub fn search(&self, text: &str) -> Value {
        let needle = text.to_lowercase();
        let mut hits = Vec::new();
        for k in 1..=self.users {
            let mut user = user_object(k);
            let name = user.get("name").and_then(Value::as_str).unwrap_or_default();
            if !needle.is_empty() && name.to_lowercase().contains(&needle) {
                if let Some(o) = user.as_object_mut() {
                    o.insert("kind".to_owned(), "user".into());
                }
                hits.push(user);
            }
        }
        for n in 1..=SKU_COUNT {
            let sku = format!("sku-{n}");
            if !needle.is_empty() && sku.contains(&needle) {
                if let Some(mut item) = DataSet::inventory(&sku) {
                    if let Some(o) = item.as_object_mut() {
                        o.insert("kind".to_owned(), "inventory".into());
                    }
                    hits.push(item);
                }
            }
        }
        if needle == "mystery" {
            hits.push(json!({ "kind": "gadget", "id": "g-1" }));
        }
        Value::Array(hits)
    }

    /// Stock of `sku` (`sku-1` ..= `sku-20`), or `None` for other SKUs.
    pub fn inventory(sku: &str) -> Option<Value> {
        let n = sku
            .strip_prefix("sku-")
            .and_then(parse_canonical)
            .filter(|n| (1..=SKU_COUNT).contains(n))?;
        let quantity = n * 7 % 50;
        Some(json!({ "sku": sku, "inStock": quantity > 0, "quantity": quantity }))
    }

    /// Person `id` (`1` ..= [`PEOPLE`]): `{"id": "1", "name": "Person 1"}`.
    pub fn person(id: &str) -> Option<Value> {
        person_number(id).map(person_object)
    }

    /// The friends of several people keyed by id, from a comma-separated id
    /// list: every person's friends are all [`PEOPLE`] people (themselves
    /// included), as `{"id", "name"}` objects in id order.
    ///
    /// Blank entries are skipped, surrounding spaces are trimmed, unknown
    /// ids are omitted; keys keep the order of first appearance.
    pub fn people_batch(ids: &str) -> Value {
        let everyone = Value::Array((1..=PEOPLE).map(person_object).collect());
        let mut out = Map::new();
        for id in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if person_number(id).is_some() && !out.contains_key(id) {
                out.insert(id.to_owned(), everyone.clone());
            }
        }
        Value::Object(out)
    }

    /// A fixed answer whose values test the filter's result coercion, by
    /// `kind`:
    ///
    /// - `numeric-id`: IDs as JSON numbers, `{"id": 7, "ids": [8, "nine", 10]}`;
    /// - `grid`: a list of lists of cells whose item `[0][1]` is a string
    ///   instead of an object;
    /// - `count-object`: `{"count": {"secret": "hunter2"}}`, an object where
    ///   an `Int` is expected (the reply must not leak it);
    /// - `count-text`: `{"count": "abc"}`.
    pub fn quirk(kind: &str) -> Option<Value> {
        Some(match kind {
            "numeric-id" => json!({ "id": 7, "ids": [8, "nine", 10] }),
            "grid" => json!({ "grid": [
                [{ "x": 0, "y": 0 }, "not a cell"],
                [{ "x": 1, "y": 0 }, { "x": 1, "y": 1 }],
            ] }),
            "count-object" => json!({ "count": { "secret": "hunter2" } }),
            "count-text" => json!({ "count": "abc" }),
            _ => return None,
        })
    }
}

/// Resolves a person id (canonical decimal, `1..=PEOPLE`) to its number.
fn person_number(id: &str) -> Option<u32> {
    parse_canonical(id).filter(|k| (1..=PEOPLE).contains(k))
}

fn person_object(k: u32) -> Value {
    json!({ "id": k.to_string(), "name": format!("Person {k}") })
}

/// Parses a canonical decimal number: digits only, no sign, no leading zero.
fn parse_canonical(s: &str) -> Option<u32> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

fn user_object(k: u32) -> Value {
    match k {
        1 => json!({ "id": "1", "name": "Alice", "email": "alice@example.com" }),
        2 => json!({ "id": "2", "name": "Bob", "email": "bob@example.com" }),
        k => json!({
            "id": k.to_string(),
            "name": format!("User {k}"),
            "email": format!("user{k}@example.com"),
        }),
    }
}

fn orders_of(k: u32) -> Value {
    match k {
        1 => json!([
            { "id": "order-101", "amount": 99.99, "itemCount": 2 },
            { "id": "order-102", "amount": 19.5, "itemCount": 1 },
        ]),
        2 => json!([{ "id": "order-201", "amount": 250.0, "itemCount": 5 }]),
        k => json!([{
            "id": format!("order-{k}01"),
            "amount": f64::from(k) * 10.0 + 0.5,
            "itemCount": 1,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_follow_the_fixed_shape() {
        let d = DataSet::new(5);
        assert_eq!(
            d.user("1").map(|v| v.to_string()).as_deref(),
            Some(r#"{"id":"1","name":"Alice","email":"alice@example.com"}"#)
        );
        assert_eq!(
            d.user("2"),
            Some(json!({"id":"2","name":"Bob","email":"bob@example.com"}))
        );
        assert_eq!(
            d.user("5"),
            Some(json!({"id":"5","name":"User 5","email":"user5@example.com"}))
        );
        for unknown in ["0", "6", "01", "+1", "", "x", "99999999999999"] {
            assert_eq!(d.user(unknown), None, "{unknown:?}");
        }
        let all = d.users();
        let ids: Vec<_> = all
            .as_array()
            .into_iter()
            .flatten()
            .map(|u| u["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(ids, ["1", "2", "3", "4", "5"]);
    }

    #[test]
    fn orders_serialize_exactly() {
        let d = DataSet::new(50);
        assert_eq!(
            d.orders("1").to_string(),
            r#"[{"id":"order-101","amount":99.99,"itemCount":2},{"id":"order-102","amount":19.5,"itemCount":1}]"#
        );
        assert_eq!(
            d.orders("2").to_string(),
            r#"[{"id":"order-201","amount":250.0,"itemCount":5}]"#
        );
        assert_eq!(
            d.orders("7").to_string(),
            r#"[{"id":"order-701","amount":70.5,"itemCount":1}]"#
        );
        assert_eq!(d.orders("51"), json!([]));
    }

    #[test]
    fn batch_omits_unknown_users_and_keeps_order() {
        let d = DataSet::new(3);
        let b = d.orders_batch("3, 1,,9,3");
        assert_eq!(b, json!({"3": d.orders("3"), "1": d.orders("1")}));
        let keys: Vec<_> = b.as_object().into_iter().flat_map(|m| m.keys()).collect();
        assert_eq!(keys, ["3", "1"]);
        assert_eq!(d.orders_batch(""), json!({}));
    }

    #[test]
    fn everyone_is_everyones_friend() {
        assert_eq!(
            DataSet::person("1"),
            Some(json!({"id": "1", "name": "Person 1"}))
        );
        assert!(DataSet::person("30").is_some());
        for unknown in ["0", "31", "01", ""] {
            assert_eq!(DataSet::person(unknown), None, "{unknown:?}");
        }
        let batch = DataSet::people_batch("2, 1,,31,2");
        let keys: Vec<_> = batch
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .collect();
        assert_eq!(keys, ["2", "1"]);
        for friends in [&batch["1"], &batch["2"]] {
            let ids: Vec<_> = friends
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| f["id"].as_str().unwrap_or_default().to_owned())
                .collect();
            let everyone: Vec<_> = (1..=PEOPLE).map(|k| k.to_string()).collect();
            assert_eq!(ids, everyone);
        }
        assert_eq!(batch["2"][29], json!({"id": "30", "name": "Person 30"}));
        assert_eq!(DataSet::people_batch(""), json!({}));
    }

    #[test]
    fn quirks_are_fixed() {
        assert_eq!(DataSet::quirk("numeric-id").unwrap()["id"], json!(7));
        assert!(DataSet::quirk("grid").unwrap()["grid"][0][1].is_string());
        let leak = DataSet::quirk("count-object").unwrap().to_string();
        assert!(leak.contains("hunter2"));
        assert_eq!(
            DataSet::quirk("count-text").unwrap(),
            json!({"count": "abc"})
        );
        assert_eq!(DataSet::quirk("nope"), None);
    }

    #[test]
    fn inventory_covers_twenty_skus() {
        assert_eq!(
            DataSet::inventory("sku-1"),
            Some(json!({"sku":"sku-1","inStock":true,"quantity":7}))
        );
        assert_eq!(
            DataSet::inventory("sku-8"),
            Some(json!({"sku":"sku-8","inStock":true,"quantity":6}))
        );
        assert!(DataSet::inventory("sku-20").is_some());
        for unknown in ["sku-0", "sku-21", "sku-01", "sku-", "1"] {
            assert_eq!(DataSet::inventory(unknown), None, "{unknown:?}");
        }
    }
}
