//! What a request has fetched: the functions' answers, parsed once, and
//! what each function-backed field resolved to. Execution writes it; the
//! reply writer reads it, together with the plan.
//!
//! A field value is addressed by the object it belongs to (a node of an
//! answer) and the plan field: the same object reached through many paths
//! of the response resolves each of its fields once.

use crate::answer::{Answer, NodeId};
use crate::error::FieldError;
use crate::plan::FieldId;
use apollo_compiler::response::{GraphQLError, JsonMap};
use std::collections::HashMap;
use std::sync::Arc;

/// Identifies an answer of a request.
pub type AnswerId = u32;

/// Identifies an error of a request.
pub type ErrorId = u32;

/// A value inside one of the request's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjRef {
    /// The answer.
    pub answer: AnswerId,
    /// The node in it.
    pub node: NodeId,
}

/// What a function-backed field resolved to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// Its call has not answered yet.
    Pending,
    /// `null`: the function gave nothing for it.
    Null,
    /// A value in an answer.
    Value(ObjRef),
    /// A list made of items of an answer (a batched answer's items that
    /// carry this parent's key).
    Items(Arc<[ObjRef]>),
    /// A field error.
    Failed(ErrorId),
}

/// A field value and how many places of the response it fills.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What it resolved to.
    pub value: Resolved,
    /// How many places of the response it fills (so far).
    pub occurrences: u64,
}

/// A parsed answer and the function that gave it.
#[derive(Debug)]
pub struct Held {
    /// The answer.
    pub answer: Answer,
    /// The upstream that answered (none for the operation's root object).
    pub upstream: Option<Arc<str>>,
}

/// Everything a request fetched.
#[derive(Debug)]
pub struct Fetched {
    answers: Vec<Held>,
    entries: HashMap<(ObjRef, FieldId), Entry, crate::hashing::BuildFast>,
    errors: Vec<FieldError>,
    held_bytes: usize,
    /// The introspection fields' values (`__schema`, `__type`), by
    /// response key, when the operation selects any.
    pub introspection: Option<JsonMap>,
    /// Errors apollo-compiler gave while answering them.
    pub introspection_errors: Vec<GraphQLError>,
}

impl Default for Fetched {
    fn default() -> Self {
        Fetched::new()
    }
}

impl Fetched {
    /// A store whose only answer is the operation's root object, `{}`.
    pub fn new() -> Self {
        Fetched {
            answers: vec![Held {
                answer: Answer::empty_object(),
                upstream: None,
            }],
            entries: HashMap::default(),
            errors: Vec::new(),
            held_bytes: 0,
            introspection: None,
            introspection_errors: Vec::new(),
        }
    }

    /// Empties the store for another request, keeping its containers;
    /// false (nothing kept) when they grew too large to keep.
    pub fn reset(&mut self) -> bool {
        if self.entries.capacity() > 4096 || self.answers.capacity() > 256 {
            return false;
        }
        for held in self.answers.drain(1..) {
            held.answer.recycle();
        }
        self.entries.clear();
        self.errors.clear();
        self.held_bytes = 0;
        self.introspection = None;
        self.introspection_errors.clear();
        true
    }

    /// The operation's root object.
    pub fn root(&self) -> ObjRef {
        ObjRef { answer: 0, node: 0 }
    }

    /// Keeps an answer if the answers held stay within `max_bytes`:
    /// returns its id, or (the answer dropped) the bytes it would have made.
    pub fn add_answer(
        &mut self,
        answer: Answer,
        upstream: Arc<str>,
        max_bytes: usize,
    ) -> Result<AnswerId, usize> {
        let held = self.held_bytes.saturating_add(answer.held_bytes());
        if held > max_bytes {
            return Err(held);
        }
        self.held_bytes = held;
        let id = AnswerId::try_from(self.answers.len()).unwrap_or(AnswerId::MAX);
        self.answers.push(Held {
            answer,
            upstream: Some(upstream),
        });
        Ok(id)
    }

    /// The bodies of the answers held, in bytes.
    pub fn held_body_bytes(&self) -> usize {
        self.answers
            .iter()
            .map(|h| h.answer.body_len())
            .fold(0, usize::saturating_add)
    }

    /// An answer.
    pub fn answer(&self, id: AnswerId) -> Option<&Held> {
        self.answers.get(id as usize)
    }

    /// Records an error; its id is shared by every field it applies to.
    pub fn add_error(&mut self, error: FieldError) -> ErrorId {
        self.errors.push(error);
        ErrorId::try_from(self.errors.len() - 1).unwrap_or(ErrorId::MAX)
    }

    /// An error.
    pub fn error(&self, id: ErrorId) -> Option<&FieldError> {
        self.errors.get(id as usize)
    }

    /// A field's entry.
    pub fn entry(&self, at: ObjRef, field: FieldId) -> Option<&Entry> {
        self.entries.get(&(at, field))
    }

    /// A field's entry, to update.
    pub fn entry_mut(&mut self, at: ObjRef, field: FieldId) -> Option<&mut Entry> {
        self.entries.get_mut(&(at, field))
    }

    /// Creates a field's entry (pending, filling `occurrences` places).
    pub fn insert_entry(&mut self, at: ObjRef, field: FieldId, occurrences: u64) {
        self.entries.insert(
            (at, field),
            Entry {
                value: Resolved::Pending,
                occurrences,
            },
        );
    }

    /// Every entry still pending gets `error` (the request ran out of time).
    pub fn fail_pending(&mut self, error: ErrorId) {
        for entry in self.entries.values_mut() {
            if entry.value == Resolved::Pending {
                entry.value = Resolved::Failed(error);
            }
        }
    }
}
