//! Batching: the calls a list of parents would multiply, made once. Parents
//! gathered while an answer is merged become one call per chunk of
//! `max_batch_size` distinct keys; the batched answer is indexed once by
//! key, and each parent finds its share in it by key, never by position.
//!
//! One rule for both forms of answer (an object keyed by key, or a list of
//! items carrying their key under `itemKey`):
//!
//! * a key the answer has: the object form's member value (the last, if
//!   the key repeats); the list form's items with that key (all of them for
//!   a list field, the first for a single value);
//! * a key the answer leaves out: `batch.missing` decides. `"null"` (the
//!   default) means no data: null for a single value, `[]` for a list
//!   field, no error. `"error"` makes it null with an
//!   `UPSTREAM_BAD_RESPONSE` error naming the key and the upstream;
//! * a parent without the key (absent, null, or an object or a list) is
//!   not sent: its field is null, without an error, whatever `missing`
//!   says;
//! * an answer of the wrong form (not an object, or not a list, as the
//!   form says) is `UPSTREAM_BAD_RESPONSE` for every parent of that call.

use super::calls::{BatchKey, Waiter};
use super::Run;
use crate::answer::{Answer, Node, NodeId};
use crate::config::Gateway;
use crate::error::{ErrorCode, FieldError};
use crate::fetched::{AnswerId, ObjRef, Resolved};
use crate::plan::FieldId;
use crate::schema::{Batch, Missing, ResolverId};
use crate::template::encode;
use crate::upstream::UpstreamRequest;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The batched fields gathered while merging, grouped by the request they
/// share (without the keys) and their resolver, in order of first
/// appearance. A wave has few groups, found by a scan; past
/// [`BatchGroups::SCANNED`] an index by the standard (keyed) hasher takes
/// over, since the requests carry values the client chose.
/// The parents waiting for one batched request.
type Group = ((ResolverId, UpstreamRequest), Vec<Waiter>);

#[derive(Debug, Default)]
pub(super) struct BatchGroups {
    groups: Vec<Group>,
    index: HashMap<(ResolverId, UpstreamRequest), usize>,
    /// The group of each plan field's parents in this wave (a batched
    /// template never reads the parent, so they all send the same).
    by_field: Vec<(FieldId, usize)>,
}

impl BatchGroups {
    const SCANNED: usize = 8;
    const FIELDS_REMEMBERED: usize = 16;

    /// Adds a parent to the group of its plan field, if one was made in
    /// this wave (gives the waiter back otherwise).
    pub(super) fn join_field(&mut self, field: FieldId, waiter: Waiter) -> Result<(), Waiter> {
        let group = self
            .by_field
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, g)| *g);
        match group.and_then(|g| self.groups.get_mut(g)) {
            Some((_, waiters)) => {
                waiters.push(waiter);
                Ok(())
            }
            None => Err(waiter),
        }
    }

    /// Adds a parent waiting for the batch of `(resolver, request)`, which
    /// the other parents of plan field `field` join in this wave.
    pub(super) fn add(
        &mut self,
        resolver: ResolverId,
        field: FieldId,
        request: UpstreamRequest,
        waiter: Waiter,
    ) {
        let found = if self.groups.len() <= Self::SCANNED {
            self.groups
                .iter()
                .position(|((r, q), _)| *r == resolver && *q == request)
        } else {
            if self.index.is_empty() {
                let keys = self.groups.iter().enumerate();
                self.index
                    .extend(keys.map(|(i, (key, _))| (key.clone(), i)));
            }
            self.index.get(&(resolver, request.clone())).copied()
        };
        let group = match found {
            Some(group) => group,
            None => {
                let group = self.groups.len();
                if !self.index.is_empty() {
                    self.index.insert((resolver, request.clone()), group);
                }
                self.groups.push(((resolver, request), Vec::new()));
                group
            }
        };
        if let Some((_, waiters)) = self.groups.get_mut(group) {
            waiters.push(waiter);
        }
        if self.by_field.len() < Self::FIELDS_REMEMBERED {
            self.by_field.push((field, group));
        }
    }

    /// Whether no parent waits.
    pub(super) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Empties the groups, keeping their room.
    pub(super) fn clear(&mut self) {
        self.groups.clear();
        self.index.clear();
        self.by_field.clear();
    }

    /// The groups gathered so far, leaving none.
    fn take(&mut self) -> Vec<Group> {
        self.index.clear();
        self.by_field.clear();
        std::mem::take(&mut self.groups)
    }

    /// Takes back the emptied vector [`BatchGroups::take`] gave, to keep
    /// its room for the next wave.
    fn give_back(&mut self, mut emptied: Vec<Group>) {
        if self.groups.is_empty() && emptied.capacity() <= 64 {
            emptied.clear();
            self.groups = emptied;
        }
    }
}

/// A batched answer's entries, sorted by the hash of their key: found in
/// logarithmic time, with the key compared to rule out collisions.
#[derive(Debug)]
pub(super) struct BatchIndex {
    /// The node it indexes (an object keyed by key, or a list of items).
    source: NodeId,
    /// The item key it was built for (`None`: an object keyed by key).
    item_key: Option<Vec<String>>,
    /// `(hash of the key, position in the source, the value)`.
    entries: Vec<(u64, u32, NodeId)>,
    /// The items found for a key, shared by every parent with that key:
    /// by the position in `entries` of the key's first entry.
    shares: HashMap<u32, Arc<[ObjRef]>, crate::hashing::BuildFast>,
    /// The items of a key with no entry (none), shared.
    no_items: Option<Arc<[ObjRef]>>,
}

fn hash(key: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

impl BatchIndex {
    fn build(answer: &Answer, source: NodeId, batch: &Batch) -> Self {
        let mut buffer = String::new();
        let mut entries = Vec::new();
        match &batch.item_key {
            None => {
                for (position, (key, value)) in answer.members(source).iter().enumerate() {
                    let position = u32::try_from(position).unwrap_or(u32::MAX);
                    entries.push((hash(answer.text(*key)), position, *value));
                }
            }
            Some(item_key) => {
                for (position, item) in answer.items(source).iter().enumerate() {
                    let key = answer
                        .lookup(*item, item_key)
                        .and_then(|k| answer.scalar_text(k, &mut buffer));
                    if let Some(key) = key {
                        let position = u32::try_from(position).unwrap_or(u32::MAX);
                        entries.push((hash(key), position, *item));
                    }
                }
            }
        }
        entries.sort_unstable_by_key(|(h, p, _)| (*h, *p));
        BatchIndex {
            source,
            item_key: batch.item_key.clone(),
            entries,
            shares: HashMap::default(),
            no_items: None,
        }
    }

    /// The values whose key is `key`, in answer order.
    fn find<'i>(
        &'i self,
        answer: &'i Answer,
        batch: &'i Batch,
        key: &'i str,
    ) -> impl Iterator<Item = NodeId> + 'i {
        self.find_entries(answer, batch, key)
            .map(|(_, value)| value)
    }

    /// [`BatchIndex::find`], with each value's position in `entries`.
    fn find_entries<'i>(
        &'i self,
        answer: &'i Answer,
        batch: &'i Batch,
        key: &'i str,
    ) -> impl Iterator<Item = (usize, NodeId)> + 'i {
        let wanted = hash(key);
        let start = self.entries.partition_point(|(h, _, _)| *h < wanted);
        let mut buffer = String::new();
        self.entries
            .get(start..)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .take_while(move |(_, (h, _, _))| *h == wanted)
            .filter(move |(_, (_, position, value))| {
                let text = match &batch.item_key {
                    None => answer
                        .members(self.source)
                        .get(*position as usize)
                        .map(|(k, _)| answer.text(*k)),
                    Some(item_key) => answer
                        .lookup(*value, item_key)
                        .and_then(|k| answer.scalar_text(k, &mut buffer)),
                };
                text == Some(key)
            })
            .map(move |(i, (_, _, value))| (start + i, *value))
    }

    /// An empty list of items, shared.
    fn no_items(&mut self) -> Arc<[ObjRef]> {
        self.no_items.get_or_insert_with(|| Arc::from([])).clone()
    }

    /// The items of a key (an empty list when it has none), made once per
    /// key and shared by every parent with that key.
    fn share(
        &mut self,
        answer: &Answer,
        batch: &Batch,
        key: &str,
        answer_id: AnswerId,
    ) -> Arc<[ObjRef]> {
        let at = |node| ObjRef {
            answer: answer_id,
            node,
        };
        let first = self.find_entries(answer, batch, key).next().map(|(i, _)| i);
        let Some(first) = first.and_then(|i| u32::try_from(i).ok()) else {
            return self.no_items();
        };
        if let Some(items) = self.shares.get(&first) {
            return items.clone();
        }
        let items: Arc<[ObjRef]> = self.find(answer, batch, key).map(at).collect();
        self.shares.insert(first, items.clone());
        items
    }
}

impl Run {
    /// Turns the batches gathered while merging into one call per chunk of
    /// distinct keys.
    pub(super) fn flush_batches(&mut self, gateway: &Gateway) {
        let max_batch = gateway.limits.max_batch_size.max(1);
        let mut batches = self.calls.batches.take();
        for ((resolver_id, template), waiters) in batches.drain(..) {
            let resolver = gateway.resolvers.get(resolver_id);
            let batch = resolver.and_then(|r| r.batch.as_ref());
            let (Some(resolver), Some(batch)) = (resolver, batch) else {
                for waiter in waiters {
                    let error = FieldError::new(
                        ErrorCode::InternalError,
                        "internal error: a batched field lost its batch form",
                    );
                    self.fail(waiter.at, waiter.field, error);
                }
                continue;
            };
            let Some(upstream) = gateway.upstreams.get(&resolver.upstream) else {
                continue;
            };
            // Distinct keys in order of first appearance, in chunks of at
            // most `max_batch_size` keys (one call each); each waiter goes
            // to its key's chunk.
            let mut distinct: Vec<&str> = Vec::with_capacity(waiters.len());
            let mut chunk_of_waiter: Vec<usize> = Vec::with_capacity(waiters.len());
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for waiter in &waiters {
                let key = waiter
                    .batch_key
                    .as_ref()
                    .map(BatchKey::as_str)
                    .unwrap_or_default();
                // Few keys: a scan; many: a map.
                let found = if distinct.len() <= 16 {
                    distinct.iter().position(|k| *k == key)
                } else {
                    if seen.is_empty() {
                        seen.extend(distinct.iter().enumerate().map(|(i, k)| (*k, i)));
                    }
                    seen.get(key).copied()
                };
                let position = match found {
                    Some(position) => position,
                    None => {
                        distinct.push(key);
                        if !seen.is_empty() {
                            seen.insert(key, distinct.len() - 1);
                        }
                        distinct.len() - 1
                    }
                };
                chunk_of_waiter.push(position / max_batch);
            }
            let separator = &batch.encoded_separator;
            let param = &batch.encoded_param;
            let mut requests: Vec<Option<UpstreamRequest>> = distinct
                .chunks(max_batch)
                .map(|keys| {
                    let mut path = String::with_capacity(
                        template.path.len() + param.len() + 2 + keys.len() * 4,
                    );
                    path.push_str(&template.path);
                    path.push(if template.path.contains('?') {
                        '&'
                    } else {
                        '?'
                    });
                    path.push_str(param);
                    path.push('=');
                    for (i, key) in keys.iter().enumerate() {
                        if i > 0 {
                            path.push_str(separator);
                        }
                        path.extend(encode(key));
                    }
                    Some(UpstreamRequest {
                        path,
                        ..template.clone()
                    })
                })
                .collect();
            drop(seen);
            let name = upstream.name.clone();
            // The first waiter of a chunk makes (or joins) its call; the
            // others join that call by its id.
            let mut calls: Vec<Option<super::CallId>> = vec![None; requests.len()];
            let mut refused: Vec<Option<crate::limits::LimitExceeded>> = vec![None; requests.len()];
            for (waiter, chunk) in waiters.into_iter().zip(chunk_of_waiter) {
                if let Some(Some(id)) = calls.get(chunk) {
                    self.calls.join(*id, waiter);
                    continue;
                }
                match requests.get_mut(chunk).and_then(Option::take) {
                    Some(request) => {
                        match self.try_enqueue(gateway, request, &name, waiter, resolver.dedupe) {
                            Ok(id) => {
                                if let Some(slot) = calls.get_mut(chunk) {
                                    *slot = Some(id);
                                }
                            }
                            Err(exceeded) => {
                                if let Some(slot) = refused.get_mut(chunk) {
                                    *slot = Some(exceeded);
                                }
                            }
                        }
                    }
                    // The chunk's call was refused by a limit: the same for
                    // every parent in it.
                    None => {
                        let exceeded = refused.get(chunk).cloned().flatten().unwrap_or(
                            crate::limits::LimitExceeded {
                                limit: "max_calls",
                                max: gateway.limits.max_calls,
                                actual: gateway.limits.max_calls.saturating_add(1),
                                at: None,
                            },
                        );
                        self.fail(
                            waiter.at,
                            waiter.field,
                            super::merge::limit_error(&exceeded),
                        );
                    }
                }
            }
        }
        self.calls.batches.give_back(batches);
    }

    /// A parent's share of a batched answer (at `node` of answer `answer`),
    /// matched by key; a key the answer leaves out gives what
    /// `batch.missing` says (see the module's rule).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn batch_share(
        &mut self,
        gateway: &Gateway,
        waiter: &Waiter,
        key: &str,
        call: super::CallId,
        answer_id: AnswerId,
        node: NodeId,
        list: bool,
    ) -> Result<Resolved, FieldError> {
        let batch = gateway
            .resolvers
            .get(waiter.resolver)
            .and_then(|r| r.batch.as_ref());
        let (Some(batch), Some(held)) = (batch, self.fetched.answer(answer_id)) else {
            return Ok(Resolved::Null);
        };
        let answer = &held.answer;
        let upstream = held.upstream.as_ref();
        let shape_ok = matches!(
            (&batch.item_key, answer.node(node)),
            (None, Node::Object(_)) | (Some(_), Node::Array(_))
        );
        if !shape_ok {
            let expected = match batch.item_key {
                None => "an object keyed by the batch keys",
                Some(_) => "a list of items carrying the batch key",
            };
            let coordinate = gateway
                .resolvers
                .get(waiter.resolver)
                .map_or("", |r| r.coordinate.as_str());
            return Err(FieldError::bad_shape(upstream, coordinate, expected));
        }
        let Some((_, indexes)) = self.calls.result(call) else {
            return Ok(Resolved::Null);
        };
        // Built once per node and batch form: two fields may share a call
        // and read it with different item keys.
        let position = indexes
            .iter()
            .position(|i| i.source == node && i.item_key == batch.item_key);
        let position = match position {
            Some(position) => position,
            None => {
                indexes.push(BatchIndex::build(answer, node, batch));
                indexes.len() - 1
            }
        };
        let Some(index) = indexes.get_mut(position) else {
            return Ok(Resolved::Null);
        };
        let at = |node| ObjRef {
            answer: answer_id,
            node,
        };
        let found = match &batch.item_key {
            None => index.find(answer, batch, key).last().map(at),
            Some(_) if list => {
                let items = index.share(answer, batch, key, answer_id);
                if !items.is_empty() {
                    return Ok(Resolved::Items(items));
                }
                None
            }
            Some(_) => index.find(answer, batch, key).next().map(at),
        };
        match (found, batch.missing) {
            (Some(value), _) => Ok(Resolved::Value(value)),
            (None, Missing::Null) if list => Ok(Resolved::Items(index.no_items())),
            (None, Missing::Null) => Ok(Resolved::Null),
            (None, Missing::Error) => {
                let coordinate = gateway
                    .resolvers
                    .get(waiter.resolver)
                    .map_or("", |r| r.coordinate.as_str());
                let function = upstream.map_or("", |u| u.as_ref());
                let mut error = FieldError::new(
                    ErrorCode::UpstreamBadResponse,
                    format!(
                        "function {function} left key {key:?} out of its batched answer for \
                         {coordinate} (`batch: {{missing: \"error\"}}`)"
                    ),
                );
                error.upstream = upstream.cloned();
                Err(error)
            }
        }
    }
}
