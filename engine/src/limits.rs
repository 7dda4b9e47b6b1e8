//! Limits that keep one request from taking the gateway or the functions
//! down, and the measures a request is checked against **before any call is
//! dispatched**: body and document size, tokens, depth, aliases, root
//! fields and planned calls. Calls made, calls in flight and batch sizes are
//! also enforced while the request runs.

use crate::schema::Resolvers;
use apollo_compiler::executable::{Operation, Selection, SelectionSet};
use apollo_compiler::response::{JsonMap, JsonValue};
use apollo_compiler::{ExecutableDocument, Name};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Every limit, with safe defaults. Configured under `"limits"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Largest GraphQL document, in bytes.
    pub max_query_bytes: usize,
    /// Most lexical tokens in the document.
    pub max_query_tokens: usize,
    /// Deepest selection nesting, fragments expanded (`{ a { b } }` is 2).
    pub max_depth: usize,
    /// Most aliased fields in the document.
    pub max_aliases: usize,
    /// Most root fields the operation selects.
    pub max_root_fields: usize,
    /// Most function calls one request may make (planned and actual).
    pub max_calls: usize,
    /// Most calls of one request in flight at once; the others wait.
    pub max_concurrent_calls: usize,
    /// Most keys in one batched call; more keys are split over several calls.
    pub max_batch_size: usize,
    /// Largest function answer, in bytes; larger answers are a field error.
    pub max_response_bytes: usize,
    /// Most bytes of parsed function answers one request holds at once; an
    /// answer that would go over is a field error.
    pub max_held_answer_bytes: usize,
    /// Most objects plus list items in one reply. Counted while children
    /// are planned (so no function is called for a reply that would be
    /// refused) and while the reply is written; over it, the request is
    /// answered with this error alone.
    pub max_reply_objects: usize,
    /// Largest reply body, in bytes (data and errors).
    pub max_reply_bytes: usize,
    /// Most bytes the plan cache of one configuration holds per VM (worker
    /// thread), estimated from above for each document and its plans: past
    /// it, the least recently used documents go, and a document (or a
    /// plan) that would take more than a quarter of it is not kept (its
    /// requests are planned each time). 0 keeps nothing. Never refuses a
    /// request.
    pub max_plan_cache_bytes: usize,
    /// Most bytes of paths, headers and bodies of the function calls one
    /// request makes (arguments are copied into every call that uses
    /// them): a call that would go over is a field error.
    pub max_call_bytes: usize,
}

/// Every limit's configuration name.
pub const NAMES: &[&str] = &[
    "max_body_bytes",
    "max_query_bytes",
    "max_query_tokens",
    "max_depth",
    "max_aliases",
    "max_root_fields",
    "max_calls",
    "max_concurrent_calls",
    "max_batch_size",
    "max_response_bytes",
    "max_held_answer_bytes",
    "max_reply_objects",
    "max_reply_bytes",
    "max_plan_cache_bytes",
    "max_call_bytes",
];

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_query_bytes: 64 * 1024,
            max_query_tokens: 15_000,
            max_depth: 32,
            max_aliases: 64,
            max_root_fields: 32,
            max_calls: 200,
            max_concurrent_calls: 64,
            max_batch_size: 100,
            max_response_bytes: 1024 * 1024,
            // A parsed answer takes 2–12× its body (12× for an array of
            // one-digit numbers): room for a few answers at the largest.
            max_held_answer_bytes: 32 * 1024 * 1024,
            max_reply_objects: 100_000,
            max_reply_bytes: 4 * 1024 * 1024,
            max_plan_cache_bytes: crate::plan_cache::DEFAULT_MAX_BYTES,
            max_call_bytes: 8 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// The limits that are zero (which would refuse everything).
    /// `max_plan_cache_bytes` is not one of them: 0 only turns the plan
    /// cache off.
    pub fn zeros(&self) -> Vec<&'static str> {
        let all = [
            ("max_body_bytes", self.max_body_bytes),
            ("max_query_bytes", self.max_query_bytes),
            ("max_query_tokens", self.max_query_tokens),
            ("max_depth", self.max_depth),
            ("max_root_fields", self.max_root_fields),
            ("max_calls", self.max_calls),
            ("max_concurrent_calls", self.max_concurrent_calls),
            ("max_batch_size", self.max_batch_size),
            ("max_response_bytes", self.max_response_bytes),
            ("max_held_answer_bytes", self.max_held_answer_bytes),
            ("max_reply_objects", self.max_reply_objects),
            ("max_reply_bytes", self.max_reply_bytes),
            ("max_call_bytes", self.max_call_bytes),
        ];
        all.into_iter()
            .filter(|(_, v)| *v == 0)
            .map(|(n, _)| n)
            .collect()
    }

    /// How deep the parser may recurse: enough for any document within
    /// `max_depth`, small enough to keep the Wasm stack safe.
    pub fn parser_recursion_limit(&self) -> usize {
        self.max_depth.saturating_mul(2).saturating_add(16).min(512)
    }
}

/// A request over one of the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    /// The limit's configuration name, e.g. `max_depth`.
    pub limit: &'static str,
    /// Its configured value.
    pub max: usize,
    /// What the request has (at least this much).
    pub actual: usize,
    /// Where in the reply (a response path) or the schema (a field
    /// coordinate) it was hit, for limits that are hit while executing.
    pub at: Option<String>,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.limit {
            "max_body_bytes" => "the request body has more bytes",
            "max_query_bytes" => "the query document has more bytes",
            "max_query_tokens" => "the query document has more tokens",
            "max_depth" => "the query nests selections (or argument values) deeper",
            "max_aliases" => "the query has more aliases",
            "max_root_fields" => "the operation selects more root fields",
            "max_calls" => "the request needs more function calls",
            "max_reply_objects" => "the reply has more objects and list items",
            "max_reply_bytes" => "the reply has more bytes",
            "max_held_answer_bytes" => "the function answers held for this request have more bytes",
            "max_call_bytes" => {
                "the function calls of this request have more bytes of paths, headers and bodies"
            }
            "plan_fields" => "the query's plan has more fields (fragments expanded per type)",
            _ => "the request exceeds a limit",
        };
        write!(
            f,
            "{what} than this gateway allows: {} > {} (`limits.{}`)",
            self.actual, self.max, self.limit
        )?;
        match &self.at {
            Some(at) => write!(f, ", at {at}"),
            None => Ok(()),
        }
    }
}

impl LimitExceeded {
    /// The error's `extensions`: `code`, `limit`, `max`, `actual`.
    pub fn extensions(&self) -> JsonMap {
        let mut map = JsonMap::new();
        map.insert("code", JsonValue::from("LIMIT_EXCEEDED"));
        map.insert("limit", JsonValue::from(self.limit));
        map.insert("max", JsonValue::from(self.max));
        map.insert("actual", JsonValue::from(self.actual));
        if let Some(at) = &self.at {
            map.insert("at", JsonValue::from(at.as_str()));
        }
        map
    }
}

/// Checks a size against a limit.
pub fn check(limit: &'static str, max: usize, actual: usize) -> Result<(), LimitExceeded> {
    if actual > max {
        Err(LimitExceeded {
            limit,
            max,
            actual,
            at: None,
        })
    } else {
        Ok(())
    }
}

/// Checks the selected operation of a valid document: depth, aliases, and
/// the calls it will make at least (one per mapped field selected, lists
/// not yet known). Root fields are counted by the plan.
pub fn check_operation(
    limits: &Limits,
    resolvers: &Resolvers,
    document: &ExecutableDocument,
    operation: &Operation,
) -> Result<(), LimitExceeded> {
    let mut walk = Walk {
        document,
        resolvers,
        fragments: HashMap::new(),
        in_progress: HashSet::new(),
    };
    let measure = walk.measure(&operation.selection_set);
    check("max_depth", limits.max_depth, measure.depth)?;
    check("max_aliases", limits.max_aliases, measure.aliases)?;
    check("max_calls", limits.max_calls, measure.calls)
}

/// What a selection set costs: its depth (1 for a set of leaves), its
/// aliases, and the calls its mapped fields make at least.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Measure {
    depth: usize,
    aliases: usize,
    calls: usize,
}

impl Measure {
    /// Two parts of one selection set: side by side.
    fn beside(self, other: Measure) -> Measure {
        Measure {
            depth: self.depth.max(other.depth),
            aliases: self.aliases.saturating_add(other.aliases),
            calls: self.calls.saturating_add(other.calls),
        }
    }
}

/// Measures selection sets, each fragment once: a fragment spread many
/// times (or spreads of spreads) is not walked again, so a small document
/// cannot make this exponential. Its cost is added per spread, saturating:
/// each spread is a place in the response that needs its calls.
struct Walk<'a> {
    document: &'a ExecutableDocument,
    resolvers: &'a Resolvers,
    fragments: HashMap<Name, Measure>,
    in_progress: HashSet<Name>,
}

impl Walk<'_> {
    fn measure(&mut self, set: &SelectionSet) -> Measure {
        let mut total = Measure::default();
        for selection in &set.selections {
            let part = match selection {
                Selection::Field(field) => {
                    let below = if field.selection_set.selections.is_empty() {
                        Measure::default()
                    } else {
                        self.measure(&field.selection_set)
                    };
                    Measure {
                        depth: below.depth.saturating_add(1),
                        aliases: below
                            .aliases
                            .saturating_add(usize::from(field.alias.is_some())),
                        calls: below.calls.saturating_add(usize::from(
                            self.resolvers.find(&set.ty, &field.name).is_some(),
                        )),
                    }
                }
                Selection::InlineFragment(inline) => self.measure(&inline.selection_set),
                Selection::FragmentSpread(spread) => self.fragment(&spread.fragment_name),
            };
            total = total.beside(part);
        }
        total
    }

    fn fragment(&mut self, name: &Name) -> Measure {
        if let Some(known) = self.fragments.get(name) {
            return *known;
        }
        // Validation refuses cycles; this guard only keeps a bug from
        // recursing forever.
        if !self.in_progress.insert(name.clone()) {
            return Measure::default();
        }
        let measure = match self.document.fragments.get(name) {
            Some(fragment) => self.measure(&fragment.selection_set),
            None => Measure::default(),
        };
        self.in_progress.remove(name);
        self.fragments.insert(name.clone(), measure);
        measure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Gateway;

    #[test]
    fn every_name_is_a_limit_and_every_limit_has_a_name() {
        let all: serde_json::Map<String, serde_json::Value> =
            NAMES.iter().map(|n| (n.to_string(), 7.into())).collect();
        let limits: Limits = serde_json::from_value(all.into()).unwrap();
        // Every field was set from a name: none kept its default.
        let defaults = format!("{:?}", Limits::default());
        let set = format!("{limits:?}");
        assert_eq!(set.matches(": 7").count(), NAMES.len(), "{set}");
        assert_eq!(defaults.matches(": ").count(), NAMES.len(), "{defaults}");
    }

    fn gateway(limits: &str) -> Gateway {
        let config = format!(
            r#"{{"schema": "type Query {{ user(id: ID): User @http(upstream: \"fn\", path: \"/u\") }} type User {{ id: ID friend: User @http(upstream: \"fn\", path: \"/f\") name: String }}",
                "upstreams": {{"fn": {{"target": "fn"}}}}, "limits": {limits}}}"#
        );
        Gateway::from_json(&config).unwrap()
    }

    fn check_query(gateway: &Gateway, query: &str) -> Result<(), LimitExceeded> {
        let document =
            ExecutableDocument::parse_and_validate(&gateway.schema, query, "q.graphql").unwrap();
        let operation = document.operations.get(None).unwrap();
        check_operation(&gateway.limits, &gateway.resolvers, &document, operation)
    }

    #[test]
    fn depth_counts_through_fragments() {
        let g = gateway(r#"{"max_depth": 3}"#);
        assert!(check_query(&g, "{ user { friend { name } } }").is_ok());
        let e = check_query(
            &g,
            "{ user { ...F } } fragment F on User { friend { friend { name } } }",
        )
        .unwrap_err();
        assert_eq!((e.limit, e.max, e.actual), ("max_depth", 3, 4));
        assert!(e.to_string().contains("`limits.max_depth`"), "{e}");
    }

    #[test]
    fn aliases_and_planned_calls() {
        let g = gateway(r#"{"max_aliases": 1, "max_root_fields": 2, "max_calls": 3}"#);
        let e = check_query(&g, "{ a: user { id } b: user { id } }").unwrap_err();
        assert_eq!(e.limit, "max_aliases");
        let e = check_query(&g, "{ user { friend { friend { friend { id } } } } }").unwrap_err();
        assert_eq!((e.limit, e.actual), ("max_calls", 4));
    }

    #[test]
    fn fragments_spread_many_times_are_measured_once() {
        let g = gateway(r#"{"max_calls": 1000000}"#);
        let mut query = String::from("{ user { ...F0 } }\n");
        for i in 0..40 {
            query.push_str(&format!(
                "fragment F{i} on User {{ ...F{next} ...F{next} }}\n",
                next = i + 1
            ));
        }
        query.push_str("fragment F40 on User { friend { id } }");
        // 2^40 spread paths: measured in no time, and refused by its calls.
        let e = check_query(&g, &query).unwrap_err();
        assert_eq!(e.limit, "max_calls");
        assert!(e.actual > 1 << 30, "{}", e.actual);
    }

    #[test]
    fn zero_limits_are_named() {
        let limits = Limits {
            max_calls: 0,
            max_plan_cache_bytes: 0,
            ..Limits::default()
        };
        assert_eq!(limits.zeros(), ["max_calls"], "0 turns the plan cache off");
    }

    #[test]
    fn the_plan_cache_bound_is_configured_under_limits() {
        assert_eq!(Limits::default().max_plan_cache_bytes, 16 * 1024 * 1024);
        let g = gateway(r#"{"max_plan_cache_bytes": 1000000}"#);
        assert_eq!(g.limits.max_plan_cache_bytes, 1_000_000);
        let config = r#"{"schema": "type Query { a: Int }", "limits": {"max_plan_cache_byte": 1}}"#;
        let e = Gateway::from_json(config).unwrap_err().to_string();
        assert!(
            e.contains("unknown field `max_plan_cache_byte`")
                && e.contains("`max_plan_cache_bytes`"),
            "{e}"
        );
    }
}
