//! The plan cache: each distinct GraphQL document (with its operation name)
//! is parsed and validated once per VM, not once per request. Variables are
//! still coerced, and limits checked, per request.
//!
//! A bounded least-recently-used map; one per plugin configuration (a new
//! configuration starts an empty cache, since validation depends on the
//! schema).

use apollo_compiler::validation::Valid;
use apollo_compiler::ExecutableDocument;
use std::collections::HashMap;
use std::sync::Arc;

/// A parsed and validated document.
pub type Compiled = Arc<Valid<ExecutableDocument>>;

/// The cache key: the document text and the operation name.
type Key = (String, Option<String>);

/// A bounded LRU cache of validated documents, with hit/miss counters.
#[derive(Debug)]
pub struct PlanCache {
    capacity: usize,
    entries: HashMap<Key, (Compiled, u64)>,
    clock: u64,
    /// Lookups that found their document.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
}

impl PlanCache {
    /// An empty cache holding at most `capacity` documents (0 disables it).
    pub fn new(capacity: usize) -> Self {
        PlanCache {
            capacity,
            entries: HashMap::new(),
            clock: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// The document compiled for `query` and `operation_name`, if cached.
    pub fn get(&mut self, query: &str, operation_name: Option<&str>) -> Option<Compiled> {
        self.clock += 1;
        let key = (query.to_string(), operation_name.map(str::to_string));
        match self.entries.get_mut(&key) {
            Some((compiled, used)) => {
                *used = self.clock;
                self.hits += 1;
                Some(compiled.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Remembers a compiled document, evicting the least recently used one
    /// when full.
    pub fn insert(&mut self, query: &str, operation_name: Option<&str>, compiled: Compiled) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.clock += 1;
        let key = (query.to_string(), operation_name.map(str::to_string));
        self.entries.insert(key, (compiled, self.clock));
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

    fn compiled(query: &str) -> Compiled {
        let schema =
            Schema::parse_and_validate("type Query { a: Int b: Int }", "s.graphql").unwrap();
        Arc::new(ExecutableDocument::parse_and_validate(&schema, query, "q.graphql").unwrap())
    }

    #[test]
    fn keeps_the_most_recently_used() {
        let mut cache = PlanCache::new(2);
        cache.insert("{ a }", None, compiled("{ a }"));
        cache.insert("{ b }", None, compiled("{ b }"));
        assert!(cache.get("{ a }", None).is_some()); // a is now the most recent
        cache.insert("{ a b }", None, compiled("{ a b }")); // evicts b
        assert!(cache.get("{ b }", None).is_none());
        assert!(cache.get("{ a }", None).is_some());
        assert!(
            cache.get("{ a }", Some("Op")).is_none(),
            "keyed by operation name too"
        );
        assert_eq!((cache.hits, cache.misses, cache.len()), (2, 2, 2));
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let mut cache = PlanCache::new(0);
        cache.insert("{ a }", None, compiled("{ a }"));
        assert!(cache.is_empty());
    }
}
