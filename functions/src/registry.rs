//! The configuration registry: named documents kept in memory, each with a
//! revision, served at `/_registry/<name>` with an `etag`.
//!
//! Not a function: its requests are not calls in `/_stats`, and `/_reset`
//! keeps its documents and its fetch counter (tests reset the function
//! counters between steps while the registry keeps its document).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;

/// The largest document the registry stores (4 MiB); a larger `PUT` is a
/// 413.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// The current document of one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// 1 for the first document ever stored under the name, then one more
    /// per `PUT` (deleting does not start it again, so an etag never names
    /// two documents).
    pub revision: u64,
    /// The stored bytes, as received.
    pub body: Bytes,
}

impl Document {
    /// The `etag` header value: the revision in quotes.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.revision)
    }

    /// Whether an `if-none-match` header value names this document: `*`,
    /// or a comma-separated list holding its etag, quoted or not, strong
    /// or weak (`W/"3"`).
    pub fn matches(&self, if_none_match: &str) -> bool {
        let revision = self.revision.to_string();
        if_none_match.split(',').map(str::trim).any(|tag| {
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            let tag = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(tag);
            tag == "*" || tag == revision
        })
    }
}

/// The registry of one server; safe to share.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The current document of each name.
    documents: HashMap<String, Document>,
    /// The last revision of each name ever stored, deleted ones included.
    revisions: HashMap<String, u64>,
    /// `GET`s (and `HEAD`s) of any name, whatever they answered.
    fetches: u64,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `body` as the current document of `name`; returns its
    /// revision.
    pub fn put(&self, name: &str, body: Bytes) -> u64 {
        let mut inner = self.lock();
        let revision = inner.revisions.entry(name.to_owned()).or_insert(0);
        *revision += 1;
        let revision = *revision;
        inner
            .documents
            .insert(name.to_owned(), Document { revision, body });
        revision
    }

    /// Counts one fetch and returns the current document of `name`, if any.
    pub fn fetch(&self, name: &str) -> Option<Document> {
        let mut inner = self.lock();
        inner.fetches += 1;
        inner.documents.get(name).cloned()
    }

    /// Removes the current document of `name`; returns whether there was
    /// one.
    pub fn delete(&self, name: &str) -> bool {
        self.lock().documents.remove(name).is_some()
    }

    /// How many fetches there were since the server started (`/_stats`'
    /// `registry_fetches`).
    pub fn fetches(&self) -> u64 {
        self.lock().fetches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_grow_and_survive_deletes() {
        let registry = Registry::default();
        assert_eq!(registry.fetch("a"), None);
        assert_eq!(registry.put("a", Bytes::from_static(b"{}")), 1);
        assert_eq!(registry.put("a", Bytes::from_static(b"[]")), 2);
        assert_eq!(registry.put("b", Bytes::from_static(b"1")), 1);
        let a = registry.fetch("a").unwrap();
        assert_eq!((a.revision, a.body.as_ref()), (2, &b"[]"[..]));
        assert_eq!(a.etag(), "\"2\"");
        assert!(registry.delete("a"));
        assert!(!registry.delete("a"));
        assert_eq!(registry.fetch("a"), None);
        assert_eq!(registry.put("a", Bytes::new()), 3);
        assert_eq!(registry.fetches(), 3);
    }

    #[test]
    fn if_none_match_accepts_quoted_unquoted_weak_lists_and_star() {
        let doc = Document {
            revision: 12,
            body: Bytes::new(),
        };
        for yes in ["\"12\"", "12", "W/\"12\"", "\"1\", \"12\"", "*"] {
            assert!(doc.matches(yes), "{yes}");
        }
        for no in ["\"1\"", "1", "\"120\"", "", "\"12"] {
            assert!(!doc.matches(no), "{no}");
        }
    }
}
