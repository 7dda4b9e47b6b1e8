//! The plan cache: each distinct GraphQL document (with its operation name)
//! is parsed, validated and measured against the limits once per VM, and
//! each of its plans — one per combination of the values its
//! `@skip`/`@include` variables take — compiled once. Variables are still
//! coerced per request.
//!
//! A bounded least-recently-used map looked up by a hash of the text (no
//! key is allocated to look up); one cache per plugin configuration (a new
//! configuration starts an empty cache, since validation depends on the
//! schema). Documents refused by a limit are never cached.

use crate::plan::Plan;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Name};
use std::collections::HashMap;
use std::sync::Arc;

/// The most plans kept per document (combinations of condition values).
pub const MAX_VARIANTS: usize = 16;

/// The most plan fields the cache holds in all (a plan field takes a few
/// hundred bytes): past it, the least recently used documents go.
pub const MAX_CACHED_PLAN_FIELDS: usize = 100_000;

/// A parsed, validated and measured document.
#[derive(Debug)]
pub struct Prepared {
    /// The validated document.
    pub document: Arc<Valid<ExecutableDocument>>,
    /// The variables its `@skip`/`@include` conditions read.
    pub conditions: Vec<Name>,
    variants: Vec<(u64, Arc<Plan>)>,
    /// The fields of its plans, in all.
    fields: usize,
}

impl Prepared {
    /// A document not planned yet.
    pub fn new(document: Arc<Valid<ExecutableDocument>>, conditions: Vec<Name>) -> Self {
        Prepared {
            document,
            conditions,
            variants: Vec::new(),
            fields: 0,
        }
    }

    /// The plan for these condition values, if compiled.
    pub fn plan(&self, conditions: u64) -> Option<Arc<Plan>> {
        self.variants
            .iter()
            .find(|(c, _)| *c == conditions)
            .map(|(_, p)| p.clone())
    }

    /// Keeps a plan (up to [`MAX_VARIANTS`] per document).
    fn add_plan(&mut self, conditions: u64, plan: Arc<Plan>) {
        // One document's plans keep at most a quarter of the cache.
        let fields = self.fields.saturating_add(plan.fields.len());
        if self.variants.len() < MAX_VARIANTS && fields <= MAX_CACHED_PLAN_FIELDS / 4 {
            self.fields = self.fields.saturating_add(plan.fields.len());
            self.variants.push((conditions, plan));
        }
    }
}

/// A cached document: its text (to tell hash collisions apart), what was
/// prepared from it, and when it was last used.
#[derive(Debug)]
struct Entry {
    query: Box<str>,
    operation_name: Option<Box<str>>,
    prepared: Prepared,
    used: u64,
}

/// A bounded LRU cache of prepared documents, with hit/miss counters.
#[derive(Debug)]
pub struct PlanCache {
    capacity: usize,
    /// By the hash of the text (already a hash: not hashed again).
    entries: HashMap<u64, Entry, crate::hashing::BuildFast>,
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
    /// An empty cache holding at most `capacity` documents (0 disables it).
    pub fn new(capacity: usize) -> Self {
        PlanCache {
            capacity,
            entries: HashMap::default(),
            clock: 0,
            hits: 0,
            misses: 0,
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

    /// Remembers a prepared document, evicting the least recently used one
    /// when full; gives it back when the cache keeps nothing.
    pub fn insert(
        &mut self,
        key: Key,
        query: &str,
        operation_name: Option<&str>,
        prepared: Prepared,
    ) -> Result<(), Prepared> {
        if self.capacity == 0 {
            return Err(prepared);
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key.0) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.clock += 1;
        let entry = Entry {
            query: query.into(),
            operation_name: operation_name.map(Into::into),
            prepared,
            used: self.clock,
        };
        self.entries.insert(key.0, entry);
        Ok(())
    }

    /// Keeps a plan of a cached document, then evicts the least recently
    /// used documents (never this one) while the cache holds more than
    /// [`MAX_CACHED_PLAN_FIELDS`] plan fields.
    pub fn add_plan(
        &mut self,
        key: Key,
        query: &str,
        operation_name: Option<&str>,
        conditions: u64,
        plan: Arc<Plan>,
    ) {
        let Some(prepared) = self.peek(key, query, operation_name) else {
            return;
        };
        if plan.fields.len() > MAX_CACHED_PLAN_FIELDS {
            return;
        }
        prepared.add_plan(conditions, plan);
        loop {
            if self.plan_fields() <= MAX_CACHED_PLAN_FIELDS {
                return;
            }
            let oldest = self
                .entries
                .iter()
                .filter(|(k, _)| **k != key.0)
                .min_by_key(|(_, entry)| entry.used)
                .map(|(k, _)| *k);
            match oldest {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => return,
            }
        }
    }

    /// The plan fields the cache holds, in all.
    pub fn plan_fields(&self) -> usize {
        self.entries.values().map(|e| e.prepared.fields).sum()
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
    use apollo_compiler::Schema;

    fn prepared(query: &str) -> Prepared {
        let schema =
            Schema::parse_and_validate("type Query { a: Int b: Int }", "s.graphql").unwrap();
        let document =
            Arc::new(ExecutableDocument::parse_and_validate(&schema, query, "q.graphql").unwrap());
        Prepared::new(document, Vec::new())
    }

    fn get(cache: &mut PlanCache, query: &str, name: Option<&str>) -> bool {
        cache
            .get(PlanCache::key(query, name), query, name)
            .is_some()
    }

    fn insert(cache: &mut PlanCache, query: &str) {
        let _ = cache.insert(PlanCache::key(query, None), query, None, prepared(query));
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
    }
}
