//! The plan cache: each distinct GraphQL document (with its operation name)
//! is parsed, validated and measured against the limits once per VM, and
//! each of its plans — one per combination of the values its
//! `@skip`/`@include` variables take — compiled once. Variables are still
//! coerced per request.
//!
//! A least-recently-used map looked up by a hash of the text (no key is
//! allocated to look up); one cache per plugin configuration (a new
//! configuration starts an empty cache, since validation depends on the
//! schema). It is bounded three ways: by documents (`plan_cache_size`), by
//! bytes (`limits.max_plan_cache_bytes`, each entry's memory estimated from
//! above: see [`document_bytes`] and [`Plan::held_bytes`]) and by plan
//! fields ([`MAX_CACHED_PLAN_FIELDS`]). Past a bound the least recently used
//! documents go; a document or a plan that would take more than a quarter
//! of a bound is not kept (its requests are planned each time). Documents
//! refused by a limit are never cached: a document is kept once a request
//! with it has been planned and passed every check.

use crate::plan::Plan;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Name};
use std::collections::HashMap;
use std::sync::Arc;

/// The most plans kept per document (combinations of condition values).
pub const MAX_VARIANTS: usize = 16;

/// The most plan fields the cache holds in all: past it, the least
/// recently used documents go.
pub const MAX_CACHED_PLAN_FIELDS: usize = 100_000;

/// The default of `limits.max_plan_cache_bytes`: 16 MiB.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// What a document's parsed and validated form takes per byte of its text,
/// besides its tokens: apollo-compiler keeps the text, string values are
/// copied, and the cache keeps its own copy of the text as the key.
/// Measured by `engine/tests/plan_cache_memory.rs` (a 64 KB string
/// argument: 4.1 bytes per byte, its plan's copy included).
pub const BYTES_PER_TEXT_BYTE: usize = 4;

/// What a document's parsed and validated form takes per lexical token
/// (whitespace included), at most: a field, an argument or a value is a
/// node of a few dozen to a few hundred bytes. Measured (64-bit, with 16
/// bytes of allocator overhead per block) by
/// `engine/tests/plan_cache_memory.rs`: at most about 150 bytes per token
/// (`{ users { orders{id}ordersEach{id}… } }`), 30 to 80 for most
/// documents; a fifth more for a margin.
pub const BYTES_PER_TOKEN: usize = 192;

/// What a cached document takes whatever its size (the entry, the
/// document's maps, the operation).
pub const BYTES_PER_DOCUMENT: usize = 4096;

/// The memory a parsed and validated document of `text_len` bytes and
/// `tokens` lexical tokens takes in the cache (its text included, its plans
/// not), estimated from above.
pub fn document_bytes(text_len: usize, tokens: usize) -> usize {
    BYTES_PER_DOCUMENT
        .saturating_add(text_len.saturating_mul(BYTES_PER_TEXT_BYTE))
        .saturating_add(tokens.saturating_mul(BYTES_PER_TOKEN))
}

/// A parsed, validated and measured document.
#[derive(Debug)]
pub struct Prepared {
    /// The validated document.
    pub document: Arc<Valid<ExecutableDocument>>,
    /// The variables its `@skip`/`@include` conditions read.
    pub conditions: Vec<Name>,
    variants: Vec<(u64, Arc<Plan>)>,
    /// The lexical tokens of its text (the parser counts them).
    tokens: usize,
    /// The fields of its plans, in all.
    fields: usize,
    /// The memory of its plans, in all (estimated).
    plan_bytes: usize,
}

impl Prepared {
    /// A document of `tokens` lexical tokens, not planned yet.
    pub fn new(
        document: Arc<Valid<ExecutableDocument>>,
        conditions: Vec<Name>,
        tokens: usize,
    ) -> Self {
        Prepared {
            document,
            conditions,
            variants: Vec::new(),
            tokens,
            fields: 0,
            plan_bytes: 0,
        }
    }

    /// The plan for these condition values, if compiled.
    pub fn plan(&self, conditions: u64) -> Option<Arc<Plan>> {
        self.variants
            .iter()
            .find(|(c, _)| *c == conditions)
            .map(|(_, p)| p.clone())
    }
}

/// A cached document: its text (to tell hash collisions apart), what was
/// prepared from it, its memory and when it was last used.
#[derive(Debug)]
struct Entry {
    query: Box<str>,
    operation_name: Option<Box<str>>,
    prepared: Prepared,
    /// The document's memory, its plans' included (estimated).
    bytes: usize,
    used: u64,
}

/// A bounded LRU cache of prepared documents, with hit/miss counters.
#[derive(Debug)]
pub struct PlanCache {
    capacity: usize,
    max_bytes: usize,
    /// By the hash of the text (already a hash: not hashed again).
    entries: HashMap<u64, Entry, crate::hashing::BuildFast>,
    /// The memory of every entry, in all (estimated).
    bytes: usize,
    /// The plan fields of every entry, in all.
    fields: usize,
    clock: u64,
    /// Lookups that found their document.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
}

/// A document's key in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(u64);

impl PlanCache {
    /// An empty cache holding at most `capacity` documents (0 disables it)
    /// and [`DEFAULT_MAX_BYTES`]; [`crate::execute::Execution::start_cached`]
    /// applies the configuration's `limits.max_plan_cache_bytes`.
    pub fn new(capacity: usize) -> Self {
        Self::with_max_bytes(capacity, DEFAULT_MAX_BYTES)
    }

    /// An empty cache holding at most `capacity` documents and `max_bytes`
    /// bytes (estimated); 0 for either disables it.
    pub fn with_max_bytes(capacity: usize, max_bytes: usize) -> Self {
        PlanCache {
            capacity,
            max_bytes,
            entries: HashMap::default(),
            bytes: 0,
            fields: 0,
            clock: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// Bounds the cache to `max_bytes` (estimated), evicting the least
    /// recently used documents now if it holds more.
    pub fn set_max_bytes(&mut self, max_bytes: usize) {
        if self.max_bytes != max_bytes {
            self.max_bytes = max_bytes;
            self.evict(None);
        }
    }

    /// The key of a document and operation name.
    pub fn key(query: &str, operation_name: Option<&str>) -> Key {
        Key(crate::hashing::hash_of(&(query, operation_name)))
    }

    /// The document prepared for `query` and `operation_name`, if cached.
    pub fn get(
        &mut self,
        key: Key,
        query: &str,
        operation_name: Option<&str>,
    ) -> Option<&mut Prepared> {
        self.clock += 1;
        let clock = self.clock;
        match self.entries.get_mut(&key.0) {
            Some(entry)
                if &*entry.query == query && entry.operation_name.as_deref() == operation_name =>
            {
                entry.used = clock;
                self.hits += 1;
                Some(&mut entry.prepared)
            }
            _ => {
                self.misses += 1;
                None
            }
        }
    }

    /// [`PlanCache::get`] without counting a hit or a miss.
    pub fn peek(
        &mut self,
        key: Key,
        query: &str,
        operation_name: Option<&str>,
    ) -> Option<&mut Prepared> {
        self.entries
            .get_mut(&key.0)
            .filter(|e| &*e.query == query && e.operation_name.as_deref() == operation_name)
            .map(|e| &mut e.prepared)
    }

    /// The largest entry kept: a quarter of the byte bound.
    fn max_entry_bytes(&self) -> usize {
        self.max_bytes / 4
    }

    /// Remembers a prepared document, evicting the least recently used
    /// ones to make room; gives it back when it is not kept (the cache is
    /// off, or it would take more than a quarter of the byte bound).
    pub fn insert(
        &mut self,
        key: Key,
        query: &str,
        operation_name: Option<&str>,
        prepared: Prepared,
    ) -> Result<(), Prepared> {
        let bytes = document_bytes(
            query.len() + operation_name.map_or(0, str::len),
            prepared.tokens,
        )
        .saturating_add(prepared.plan_bytes);
        if self.capacity == 0
            || bytes > self.max_entry_bytes()
            || prepared.fields > MAX_CACHED_PLAN_FIELDS / 4
        {
            return Err(prepared);
        }
        self.remove(key.0);
        self.clock += 1;
        let fields = prepared.fields;
        let entry = Entry {
            query: query.into(),
            operation_name: operation_name.map(Into::into),
            prepared,
            bytes,
            used: self.clock,
        };
        self.entries.insert(key.0, entry);
        self.bytes = self.bytes.saturating_add(bytes);
        self.fields = self.fields.saturating_add(fields);
        self.evict(Some(key.0));
        Ok(())
    }

    /// Keeps a plan of a cached document (up to [`MAX_VARIANTS`] per
    /// document, while the document stays within a quarter of the
    /// bounds), then evicts the least recently used documents (never this
    /// one) while the cache is over a bound.
    pub fn add_plan(
        &mut self,
        key: Key,
        query: &str,
        operation_name: Option<&str>,
        conditions: u64,
        plan: Arc<Plan>,
    ) {
        let max_entry_bytes = self.max_entry_bytes();
        let Some(entry) = self
            .entries
            .get_mut(&key.0)
            .filter(|e| &*e.query == query && e.operation_name.as_deref() == operation_name)
        else {
            return;
        };
        let plan_bytes = plan.held_bytes();
        let plan_fields = plan.fields.len();
        let bytes = entry.bytes.saturating_add(plan_bytes);
        let prepared = &mut entry.prepared;
        let fields = prepared.fields.saturating_add(plan_fields);
        if prepared.variants.len() >= MAX_VARIANTS
            || fields > MAX_CACHED_PLAN_FIELDS / 4
            || bytes > max_entry_bytes
        {
            return;
        }
        prepared.variants.push((conditions, plan));
        prepared.fields = fields;
        prepared.plan_bytes = prepared.plan_bytes.saturating_add(plan_bytes);
        entry.bytes = bytes;
        self.bytes = self.bytes.saturating_add(plan_bytes);
        self.fields = self.fields.saturating_add(plan_fields);
        self.evict(Some(key.0));
    }

    /// Removes an entry, if there is one.
    fn remove(&mut self, key: u64) {
        if let Some(entry) = self.entries.remove(&key) {
            self.bytes = self.bytes.saturating_sub(entry.bytes);
            self.fields = self.fields.saturating_sub(entry.prepared.fields);
        }
    }

    /// Evicts the least recently used documents (never `keep`) while the
    /// cache is over one of its bounds.
    fn evict(&mut self, keep: Option<u64>) {
        while self.entries.len() > self.capacity
            || self.bytes > self.max_bytes
            || self.fields > MAX_CACHED_PLAN_FIELDS
        {
            let oldest = self
                .entries
                .iter()
                .filter(|(k, _)| Some(**k) != keep)
                .min_by_key(|(_, entry)| entry.used)
                .map(|(k, _)| *k);
            match oldest {
                Some(oldest) => self.remove(oldest),
                None => return,
            }
        }
    }

    /// The plan fields the cache holds, in all.
    pub fn plan_fields(&self) -> usize {
        self.fields
    }

    /// The memory the cache holds, in bytes, as estimated (from above).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many documents are cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Gateway;

    fn gateway() -> Gateway {
        let config = r#"{"schema": "type Query { a: Int b: Int c(x: [Int]): Int @http(upstream: \"fn\", path: \"/c\") }",
                         "upstreams": {"fn": {"target": "fn"}}}"#;
        Gateway::from_json(config).unwrap()
    }

    /// A prepared document, counting a token per byte.
    fn prepared(gateway: &Gateway, query: &str) -> Prepared {
        let document = Arc::new(
            ExecutableDocument::parse_and_validate(&gateway.schema, query, "q.graphql").unwrap(),
        );
        Prepared::new(document, Vec::new(), query.len())
    }

    fn plan(gateway: &Gateway, query: &str) -> Arc<Plan> {
        let document = Arc::new(
            ExecutableDocument::parse_and_validate(&gateway.schema, query, "q.graphql").unwrap(),
        );
        let operation = document.operations.get(None).unwrap();
        let variables = apollo_compiler::response::JsonMap::new();
        Arc::new(crate::plan::compile(gateway, &document, operation, &variables).unwrap())
    }

    fn get(cache: &mut PlanCache, query: &str, name: Option<&str>) -> bool {
        cache
            .get(PlanCache::key(query, name), query, name)
            .is_some()
    }

    fn insert(cache: &mut PlanCache, query: &str) -> bool {
        let gateway = gateway();
        let prepared = prepared(&gateway, query);
        cache
            .insert(PlanCache::key(query, None), query, None, prepared)
            .is_ok()
    }

    #[test]
    fn keeps_the_most_recently_used() {
        let mut cache = PlanCache::new(2);
        insert(&mut cache, "{ a }");
        insert(&mut cache, "{ b }");
        assert!(get(&mut cache, "{ a }", None)); // a is now the most recent
        insert(&mut cache, "{ a b }"); // evicts b
        assert!(!get(&mut cache, "{ b }", None));
        assert!(get(&mut cache, "{ a }", None));
        assert!(
            !get(&mut cache, "{ a }", Some("Op")),
            "keyed by operation name too"
        );
        assert_eq!((cache.hits, cache.misses, cache.len()), (2, 2, 2));
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let mut cache = PlanCache::new(0);
        insert(&mut cache, "{ a }");
        assert!(cache.is_empty());
        let mut cache = PlanCache::with_max_bytes(16, 0);
        insert(&mut cache, "{ a }");
        assert!(cache.is_empty());
    }

    #[test]
    fn bytes_are_bounded_least_recently_used_first() {
        let one = document_bytes(5, 5);
        assert_eq!(
            one,
            BYTES_PER_DOCUMENT + 5 * BYTES_PER_TEXT_BYTE + 5 * BYTES_PER_TOKEN
        );
        // Room for four documents of five bytes.
        let mut cache = PlanCache::with_max_bytes(100, 4 * one + one / 2);
        for query in ["{ a }", "{ b }", "{a b}", "{b a}"] {
            assert!(insert(&mut cache, query));
        }
        assert_eq!((cache.len(), cache.bytes()), (4, 4 * one));
        assert!(get(&mut cache, "{ a }", None));
        assert!(insert(&mut cache, "{a  }")); // evicts { b }, the least recently used
        assert_eq!((cache.len(), cache.bytes()), (4, 4 * one));
        assert!(!get(&mut cache, "{ b }", None));
        assert!(get(&mut cache, "{ a }", None));
        // A smaller bound evicts at once, the most recently used last.
        cache.set_max_bytes(one + one / 2);
        assert_eq!((cache.len(), cache.bytes()), (1, one));
        assert!(get(&mut cache, "{ a }", None));
    }

    #[test]
    fn an_entry_over_a_quarter_of_the_bound_is_not_kept() {
        let query = "{ a b }";
        let bytes = document_bytes(query.len(), query.len());
        let mut cache = PlanCache::with_max_bytes(16, 4 * bytes - 1);
        assert!(!insert(&mut cache, query));
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
        let mut cache = PlanCache::with_max_bytes(16, 4 * bytes);
        assert!(insert(&mut cache, query));
        assert_eq!(cache.bytes(), bytes);
    }

    #[test]
    fn plans_are_counted_and_kept_within_a_quarter() {
        let gateway = gateway();
        let query = "{ a b c(x: [1, 2, 3]) }";
        let key = PlanCache::key(query, None);
        let plan = plan(&gateway, query);
        let plan_bytes = plan.held_bytes();
        assert!(
            plan_bytes > 3 * std::mem::size_of::<crate::plan::FieldPlan>(),
            "{plan_bytes}"
        );
        let document = document_bytes(query.len(), query.len());
        // Room for the document and one plan in a quarter.
        let mut cache = PlanCache::with_max_bytes(16, 4 * (document + plan_bytes));
        assert!(cache
            .insert(key, query, None, prepared(&gateway, query))
            .is_ok());
        cache.add_plan(key, query, None, 0, plan.clone());
        assert_eq!(cache.bytes(), document + plan_bytes);
        assert_eq!(cache.plan_fields(), plan.fields.len());
        // A second plan would go over the quarter: not kept.
        cache.add_plan(key, query, None, 1, plan.clone());
        assert_eq!(cache.bytes(), document + plan_bytes);
        let prepared = cache.peek(key, query, None).unwrap();
        assert!(prepared.plan(0).is_some() && prepared.plan(1).is_none());
    }
}
