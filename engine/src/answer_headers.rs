//! Headers back to the client: which headers of the functions' answers
//! reach the client's reply (an upstream's `response_headers`), and how
//! the values of several calls combine.
//!
//! * `"append"`: every value of every call, each its own header line
//!   (`set-cookie` is always this: cookies cannot be merged);
//! * `"first"` / `"last"`: the value of the first / last answer to carry
//!   the header, in the order answers arrived;
//! * `{"precedence": N}`: the value of the answer whose upstream has the
//!   highest precedence, whatever the order answers arrived in (the first
//!   of equals).
//!
//! Only the answers of calls this request sent itself count: an answer
//! taken from the answer cache or joined from another request's call
//! brings no header (a cookie is never handed from one client to
//! another). Hop-by-hop and framing headers, and the headers the reply
//! sets itself, can never be configured. A reply carrying `set-cookie` is
//! never stored by a shared cache (`private`).

use crate::upstream::is_hop_by_hop;
use serde::Deserialize;
use std::borrow::Cow;

/// Headers the reply sets itself, or that describe its body, its
/// location or its authentication: never taken from a function's answer
/// (they would describe the function's answer, not the merged reply).
pub const REPLY_OWNED: [&str; 19] = [
    "content-type",
    "content-encoding",
    "content-language",
    "content-location",
    "content-range",
    "content-disposition",
    "content-digest",
    "digest",
    "cache-control",
    "vary",
    "etag",
    "last-modified",
    "expires",
    "age",
    "date",
    "location",
    "www-authenticate",
    "x-frame-options",
    "content-security-policy",
];

/// At most this many header lines are taken from answers into one reply.
pub const MAX_LINES: usize = 64;

/// At most this many bytes (names and values) are taken from answers into
/// one reply.
pub const MAX_BYTES: usize = 16 * 1024;

/// A rule as written: `"append"`, `"first"`, `"last"` or
/// `{"precedence": N}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRule {
    /// `"append"`, `"first"` or `"last"`.
    Named(String),
    /// `{"precedence": N}`.
    Precedence {
        /// Higher wins.
        precedence: i64,
    },
}

/// How the values of one answer header combine in the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Every value, each its own line.
    Append,
    /// The first answer's value.
    First,
    /// The last answer's value.
    Last,
    /// The value of the upstream with the highest precedence.
    Precedence(i64),
}

impl Rule {
    /// Checks a rule for header `name` (lower-cased by the caller).
    pub fn load(name: &str, raw: RawRule) -> Result<Rule, String> {
        let plain = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plain {
            return Err(format!(
                "`response_headers` key {name:?} is not a header name"
            ));
        }
        if is_hop_by_hop(name) {
            return Err(format!(
                "`response_headers.{name}` is a hop-by-hop or framing header, which never reaches the client"
            ));
        }
        if REPLY_OWNED.contains(&name) {
            return Err(format!(
                "`response_headers.{name}` is set by the gateway for its own reply and cannot come from a function"
            ));
        }
        let rule = match raw {
            RawRule::Named(text) => match text.as_str() {
                "append" => Rule::Append,
                "first" => Rule::First,
                "last" => Rule::Last,
                other => {
                    return Err(format!(
                        "`response_headers.{name}` is {other:?}; use \"append\", \"first\", \"last\" or {{\"precedence\": N}}"
                    ))
                }
            },
            RawRule::Precedence { precedence } => Rule::Precedence(precedence),
        };
        if name == "set-cookie" && rule != Rule::Append {
            return Err(
                "`response_headers.set-cookie` must be \"append\": cookies cannot be merged, each is its own line".into(),
            );
        }
        Ok(rule)
    }

    /// Whether two upstreams' rules for one header agree on how values
    /// combine (precedences may differ: that is their point).
    pub fn same_kind(self, other: Rule) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

/// The answer headers a reply takes, gathered as answers arrive.
#[derive(Debug, Default)]
pub struct Gathered {
    /// `(name, value, precedence)` in the order they were taken.
    lines: Vec<(String, String, i64)>,
    bytes: usize,
    /// Lines left out for `MAX_LINES` or `MAX_BYTES`.
    dropped: usize,
}

impl Gathered {
    /// Takes the headers `rules` name from one answer's `headers`
    /// (lower-case names as the host gives them, any order).
    pub fn take(&mut self, rules: &[(String, Rule)], headers: &[(String, String)]) {
        for (name, rule) in rules {
            let mut values = headers
                .iter()
                .filter(|(n, v)| {
                    n.eq_ignore_ascii_case(name) && crate::upstream::is_safe_header_value(v)
                })
                .map(|(_, v)| v.as_str());
            match rule {
                Rule::Append => {
                    for value in values {
                        self.push(name, value, 0);
                    }
                }
                Rule::First | Rule::Last | Rule::Precedence(_) => {
                    // One value per answer: its last line.
                    let Some(value) = values.next_back() else {
                        continue;
                    };
                    let precedence = match rule {
                        Rule::Precedence(p) => *p,
                        _ => 0,
                    };
                    match self.lines.iter().position(|(n, _, _)| n == name) {
                        None => self.push(name, value, precedence),
                        Some(index) => {
                            let replace = match rule {
                                Rule::Last => true,
                                Rule::Precedence(p) => {
                                    self.lines.get(index).is_some_and(|(_, _, held)| *p > *held)
                                }
                                _ => false,
                            };
                            if replace {
                                self.replace(index, value, precedence);
                            }
                        }
                    }
                }
            }
        }
    }

    fn push(&mut self, name: &str, value: &str, precedence: i64) {
        let size = name.len() + value.len();
        if self.lines.len() >= MAX_LINES || self.bytes + size > MAX_BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes += size;
        self.lines
            .push((name.to_string(), value.to_string(), precedence));
    }

    fn replace(&mut self, index: usize, value: &str, precedence: i64) {
        let Some(line) = self.lines.get_mut(index) else {
            return;
        };
        let size = self.bytes - line.1.len() + value.len();
        if size > MAX_BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes = size;
        line.1 = value.to_string();
        line.2 = precedence;
    }

    /// Whether nothing was taken.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Whether a `set-cookie` was taken.
    pub fn sets_cookie(&self) -> bool {
        self.lines.iter().any(|(n, _, _)| n == "set-cookie")
    }

    /// Lines left out because a reply takes at most [`MAX_LINES`] lines and
    /// [`MAX_BYTES`] bytes from answers.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// The reply's header lines, in the order taken.
    pub fn into_headers(self) -> impl Iterator<Item = (Cow<'static, str>, Cow<'static, str>)> {
        self.lines
            .into_iter()
            .map(|(name, value, _)| (Cow::Owned(name), Cow::Owned(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, raw: serde_json::Value) -> Result<Rule, String> {
        Rule::load(name, serde_json::from_value(raw).unwrap())
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rules_load_and_refuse_what_never_reaches_a_client() {
        assert_eq!(rule("set-cookie", "append".into()), Ok(Rule::Append));
        assert_eq!(rule("x-trace-id", "first".into()), Ok(Rule::First));
        assert_eq!(rule("x-ratelimit-remaining", "last".into()), Ok(Rule::Last));
        assert_eq!(
            rule("x-version", serde_json::json!({"precedence": 3})),
            Ok(Rule::Precedence(3))
        );
        for (name, raw, problem) in [
            (
                "set-cookie",
                serde_json::json!("first"),
                "must be \"append\"",
            ),
            ("connection", serde_json::json!("last"), "hop-by-hop"),
            ("transfer-encoding", serde_json::json!("last"), "hop-by-hop"),
            ("content-length", serde_json::json!("last"), "hop-by-hop"),
            (
                "content-type",
                serde_json::json!("last"),
                "set by the gateway",
            ),
            (
                "cache-control",
                serde_json::json!("append"),
                "set by the gateway",
            ),
            (":status", serde_json::json!("last"), "not a header name"),
            ("x-a", serde_json::json!("newest"), "use \"append\""),
        ] {
            let error = rule(name, raw).unwrap_err();
            assert!(error.contains(problem), "{name}: {error}");
        }
    }

    #[test]
    fn values_combine_as_their_rules_say() {
        let mut gathered = Gathered::default();
        let a = [
            ("set-cookie".to_string(), Rule::Append),
            ("x-first".to_string(), Rule::First),
            ("x-last".to_string(), Rule::Last),
            ("x-ranked".to_string(), Rule::Precedence(1)),
        ];
        let b = [
            ("set-cookie".to_string(), Rule::Append),
            ("x-first".to_string(), Rule::First),
            ("x-last".to_string(), Rule::Last),
            ("x-ranked".to_string(), Rule::Precedence(5)),
        ];
        gathered.take(
            &b,
            &headers(&[
                ("set-cookie", "b=1"),
                ("x-first", "b"),
                ("x-last", "b"),
                ("x-ranked", "b"),
            ]),
        );
        gathered.take(
            &a,
            &headers(&[
                ("set-cookie", "a=1"),
                ("Set-Cookie", "a=2"),
                ("x-first", "a"),
                ("x-last", "a"),
                ("x-ranked", "a"),
                ("x-unlisted", "a"),
            ]),
        );
        assert!(gathered.sets_cookie());
        let lines: Vec<(String, String)> = gathered
            .into_headers()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            lines,
            headers(&[
                ("set-cookie", "b=1"),
                ("x-first", "b"),
                ("x-last", "a"),
                ("x-ranked", "b"),
                ("set-cookie", "a=1"),
                ("set-cookie", "a=2"),
            ])
        );
    }

    #[test]
    fn a_reply_takes_a_bounded_number_of_lines_and_bytes() {
        let mut gathered = Gathered::default();
        let rules = [("set-cookie".to_string(), Rule::Append)];
        let many: Vec<(String, String)> = (0..200)
            .map(|i| ("set-cookie".to_string(), format!("c{i}=1")))
            .collect();
        gathered.take(&rules, &many);
        assert_eq!(gathered.lines.len(), MAX_LINES);
        assert_eq!(gathered.dropped(), 200 - MAX_LINES);
        let mut big = Gathered::default();
        let huge = vec![("set-cookie".to_string(), "x".repeat(MAX_BYTES))];
        big.take(&rules, &huge);
        assert!(big.is_empty());
        assert_eq!(big.dropped(), 1);
        let unsafe_value = vec![("set-cookie".to_string(), "a=1\r\nx: y".to_string())];
        big.take(&rules, &unsafe_value);
        assert!(big.is_empty());
    }
}
