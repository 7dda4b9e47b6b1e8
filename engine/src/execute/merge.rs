//! Merging: a call's answer becomes the value of the fields that waited for
//! it, and the walk along the plan that finds, below those values, the
//! function-backed fields to call next.
//!
//! The walk only enters selection sets that call a function somewhere
//! below; everything else is read from the answers when the reply is
//! written. It carries how many places of the response the value fills, so
//! the objects and list items the reply will have are known before the next
//! wave is dispatched: a reply that would be over `max_reply_objects`
//! stops the request before any more function is called.

use super::calls::Waiter;
use super::interpret::interpret;
use super::{CallId, Run};
use crate::config::Gateway;
use crate::error::{ErrorCode, FieldError};
use crate::fetched::{ObjRef, Resolved};
use crate::limits::LimitExceeded;
use crate::plan::{FieldId, FieldSource, ParentKey, Plan, SetId, Shape};
use crate::upstream::CallOutcome;
use apollo_compiler::schema::Type;
use apollo_compiler::Name;

impl Run {
    /// A call's outcome: parsed once, kept, and delivered to its waiters.
    /// Returns whether the answer was the function's data (not a failure,
    /// an HTTP error, or an envelope's error), which others may share.
    pub(super) fn answer(&mut self, gateway: &Gateway, id: CallId, outcome: CallOutcome) -> bool {
        let Some((waiters, upstream)) = self.calls.answered(id) else {
            return false;
        };
        let limits = &gateway.limits;
        let envelope = gateway
            .upstreams
            .get(upstream.as_ref())
            .and_then(|u| u.envelope.as_ref());
        let interpreted = interpret(&upstream, outcome, limits.max_response_bytes, envelope);
        let is_data = interpreted.is_ok();
        let result = match interpreted {
            Ok(data) => {
                let max = limits.max_held_answer_bytes;
                match self.fetched.add_answer(data.answer, upstream.clone(), max) {
                    Ok(answer) => Ok((answer, data.node)),
                    // The answer is dropped: it is not held, and later
                    // answers are measured without it.
                    Err(held) => {
                        let exceeded = LimitExceeded {
                            limit: "max_held_answer_bytes",
                            max,
                            actual: held,
                            at: None,
                        };
                        Err(self
                            .fetched
                            .add_error(limit_error(&exceeded).blame(&upstream)))
                    }
                }
            }
            Err(error) => Err(self.fetched.add_error(error)),
        };
        self.calls.complete(id, result);
        for waiter in waiters {
            if self.stopped.is_some() {
                // The request is answered with the limit alone.
                return is_data;
            }
            self.deliver(gateway, waiter, id);
        }
        is_data
    }

    /// Delivers one waiter of an already answered call; false when none is
    /// waiting.
    pub(super) fn deliver_ready(&mut self, gateway: &Gateway) -> bool {
        if self.stopped.is_some() {
            return false;
        }
        match self.calls.next_ready() {
            Some((waiter, id)) => {
                self.deliver(gateway, waiter, id);
                true
            }
            None => false,
        }
    }

    /// A call's result becomes the value of the field that waited for it,
    /// which is then walked for the calls below it.
    fn deliver(&mut self, gateway: &Gateway, waiter: Waiter, call: CallId) {
        let Some((result, _)) = self.calls.result(call) else {
            return;
        };
        let plan = self.plan.clone();
        let value = match result {
            Err(error) => Resolved::Failed(error),
            Ok((_, None)) => Resolved::Null,
            Ok((answer, Some(node))) => {
                match self.share(gateway, &plan, &waiter, call, answer, node) {
                    Ok(value) => value,
                    Err(error) => Resolved::Failed(self.fetched.add_error(error)),
                }
            }
        };
        let Some(entry) = self.fetched.entry_mut(waiter.at, waiter.field) else {
            return;
        };
        entry.value = value.clone();
        let occurrences = entry.occurrences;
        self.walk_resolved(gateway, &plan, waiter.field, &value, occurrences);
    }

    /// The waiter's part of a call's data: its `select` path, then its share
    /// of a batched answer.
    fn share(
        &mut self,
        gateway: &Gateway,
        plan: &Plan,
        waiter: &Waiter,
        call: CallId,
        answer: crate::fetched::AnswerId,
        node: crate::answer::NodeId,
    ) -> Result<Resolved, FieldError> {
        let Some(held) = self.fetched.answer(answer) else {
            return Ok(Resolved::Null);
        };
        let resolver = gateway.resolvers.get(waiter.resolver);
        let select = resolver.map_or(&[][..], |r| r.select.as_slice());
        let node = if select.is_empty() || held.answer.is_null(node) {
            node
        } else {
            match held.answer.lookup(node, select) {
                Some(inner) => inner,
                None => {
                    let mut error = FieldError::new(
                        ErrorCode::UpstreamBadResponse,
                        format!("the function's answer has no `{}`", select.join(".")),
                    );
                    error.upstream = held.upstream.clone();
                    return Err(error);
                }
            }
        };
        match &waiter.batch_key {
            None => Ok(Resolved::Value(ObjRef { answer, node })),
            Some(key) => {
                let list = plan
                    .fields
                    .get(waiter.field as usize)
                    .is_some_and(|f| f.ty.is_list());
                self.batch_share(gateway, waiter, key.as_str(), call, answer, node, list)
            }
        }
    }

    /// Walks a resolved field value filling `occurrences` places.
    pub(super) fn walk_resolved(
        &mut self,
        gateway: &Gateway,
        plan: &Plan,
        field: FieldId,
        value: &Resolved,
        occurrences: u64,
    ) {
        let Some(field_plan) = plan.fields.get(field as usize) else {
            return;
        };
        let Shape::Composite { set, abstract_type } = &field_plan.shape else {
            return;
        };
        let ty = &field_plan.ty;
        if !plan.sets.get(*set as usize).is_some_and(|s| s.fetches) {
            // Nothing to call below: only a list of objects' first level is
            // counted now (a list item, and an object where there is one);
            // the rest is counted while the reply is written.
            let one_level =
                matches!(ty, Type::List(inner) | Type::NonNullList(inner) if !inner.is_list());
            let counted = match value {
                Resolved::Value(at) if one_level => self.fetched.answer(at.answer).map_or(0, |h| {
                    let items = h.answer.items(at.node);
                    items.len() + items.iter().filter(|i| h.answer.is_object(**i)).count()
                }),
                Resolved::Items(items) => items.len().saturating_mul(2),
                _ => 0,
            };
            let counted = u64::try_from(counted).unwrap_or(u64::MAX);
            self.count(occurrences.saturating_mul(counted), &field_plan.coordinate);
            return;
        }
        match value {
            Resolved::Value(at) => self.walk_value(
                gateway,
                plan,
                *at,
                ty,
                *set,
                abstract_type.as_ref(),
                occurrences,
                &field_plan.coordinate,
            ),
            Resolved::Items(items) => {
                let inner = ty.item_type();
                for item in items.iter() {
                    self.count(occurrences, &field_plan.coordinate);
                    self.walk_value(
                        gateway,
                        plan,
                        *item,
                        inner,
                        *set,
                        abstract_type.as_ref(),
                        occurrences,
                        &field_plan.coordinate,
                    );
                }
            }
            Resolved::Pending | Resolved::Null | Resolved::Failed(_) => {}
        }
    }

    /// Walks a value of type `ty` whose objects select `set`.
    #[allow(clippy::too_many_arguments)]
    fn walk_value(
        &mut self,
        gateway: &Gateway,
        plan: &Plan,
        at: ObjRef,
        ty: &Type,
        set: SetId,
        abstract_type: Option<&Name>,
        occurrences: u64,
        label: &str,
    ) {
        if self.stopped.is_some() {
            return;
        }
        let Some(held) = self.fetched.answer(at.answer) else {
            return;
        };
        let answer = &held.answer;
        match ty {
            Type::List(inner) | Type::NonNullList(inner) => {
                let items = answer.items(at.node);
                // Indexing by position: the items are copied out so that
                // the walk below may add answers.
                for i in 0..items.len() {
                    let Some(held) = self.fetched.answer(at.answer) else {
                        return;
                    };
                    let Some(node) = held.answer.items(at.node).get(i).copied() else {
                        return;
                    };
                    self.count(occurrences, label);
                    let item = ObjRef {
                        answer: at.answer,
                        node,
                    };
                    self.walk_value(
                        gateway,
                        plan,
                        item,
                        inner,
                        set,
                        abstract_type,
                        occurrences,
                        label,
                    );
                }
            }
            Type::Named(named) | Type::NonNullNamed(named) => {
                if !answer.is_object(at.node) {
                    return; // the reply writer reports the wrong shape
                }
                let resolved = crate::abstract_type::object_type(
                    gateway,
                    named,
                    abstract_type,
                    answer,
                    at.node,
                );
                let Ok(concrete) = resolved else {
                    return; // reported by the reply writer
                };
                self.walk_object(gateway, plan, at, concrete.as_str(), set, occurrences);
            }
        }
    }

    /// Walks an object of concrete type `type_name` that selects `set`.
    pub(super) fn walk_object(
        &mut self,
        gateway: &Gateway,
        plan: &Plan,
        at: ObjRef,
        type_name: &str,
        set: SetId,
        occurrences: u64,
    ) {
        self.count(occurrences, type_name);
        let Some(fields) = plan
            .sets
            .get(set as usize)
            .and_then(|s| s.fields_for(type_name))
        else {
            return;
        };
        for field in fields {
            if self.stopped.is_some() {
                return;
            }
            self.field_at(gateway, plan, at, *field, occurrences);
        }
    }

    /// Plans what one field of the object `at` needs.
    pub(super) fn field_at(
        &mut self,
        gateway: &Gateway,
        plan: &Plan,
        at: ObjRef,
        field: FieldId,
        occurrences: u64,
    ) {
        let Some(field_plan) = plan.fields.get(field as usize) else {
            return;
        };
        match &field_plan.source {
            FieldSource::Call {
                resolver,
                arguments,
            } => self.field_call(gateway, at, field, *resolver, arguments, occurrences),
            FieldSource::Parent(key) => {
                let Shape::Composite { set, abstract_type } = &field_plan.shape else {
                    return;
                };
                if !plan.sets.get(*set as usize).is_some_and(|s| s.fetches) {
                    return;
                }
                let Some(held) = self.fetched.answer(at.answer) else {
                    return;
                };
                let child = match key {
                    ParentKey::Name(name) => held.answer.get(at.node, name),
                    ParentKey::Path(path) => held.answer.lookup(at.node, path),
                };
                if let Some(child) = child {
                    let child = ObjRef {
                        answer: at.answer,
                        node: child,
                    };
                    self.walk_value(
                        gateway,
                        plan,
                        child,
                        &field_plan.ty,
                        *set,
                        abstract_type.as_ref(),
                        occurrences,
                        &field_plan.coordinate,
                    );
                }
            }
            FieldSource::Typename | FieldSource::Introspection => {}
        }
    }

    /// Counts `occurrences` more objects or list items of the reply; over
    /// `max_reply_objects`, the request stops.
    pub(super) fn count(&mut self, occurrences: u64, at: &str) {
        self.reply_objects = self.reply_objects.saturating_add(occurrences);
        let max = self.max_reply_objects;
        if self.reply_objects > max as u64 && self.stopped.is_none() {
            self.stopped = Some(LimitExceeded {
                limit: "max_reply_objects",
                max,
                actual: usize::try_from(self.reply_objects).unwrap_or(usize::MAX),
                at: Some(at.to_string()),
            });
        }
    }
}

/// A limit error as a field error (with `limit`, `max`, `actual`).
pub(super) fn limit_error(exceeded: &LimitExceeded) -> FieldError {
    let mut error = FieldError::new(ErrorCode::LimitExceeded, exceeded.to_string())
        .with("limit", exceeded.limit.into())
        .with("max", exceeded.max.into())
        .with("actual", exceeded.actual.into());
    if let Some(at) = &exceeded.at {
        error = error.with("at", at.as_str().into());
    }
    error
}
