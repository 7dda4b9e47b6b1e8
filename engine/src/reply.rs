//! The reply writer: the plan walked over the fetched answers, written in
//! one pass straight to the response body.
//!
//! It applies the spec's `CompleteValue()`: result coercion of leaves,
//! objects of abstract types resolved to their concrete type, `__typename`,
//! and null propagation — a null in a non-null position nulls the nearest
//! nullable ancestor, whose bytes are already written and are cut back to
//! `null`. Field errors are written as they are met, with their path, into
//! an errors buffer appended at the end. Objects, list items and bytes are
//! counted as they are written: past a limit the writing stops at once.

use crate::abstract_type::object_type;
use crate::answer::{write_float, write_int, write_str, Node};
use crate::config::Gateway;
use crate::error::{ErrorCode, FieldError};
use crate::fetched::{ErrorId, Fetched, ObjRef, Resolved};
use crate::limits::LimitExceeded;
use crate::plan::{FieldPlan, FieldSource, LeafKind, ParentKey, Plan, SetId, Shape};
use apollo_compiler::schema::Type;
use std::fmt::Write as _;

/// A written reply body.
#[derive(Debug)]
pub struct Written {
    /// `{"data": …, "errors": […]}`.
    pub body: Vec<u8>,
    /// How many errors it has.
    pub errors: usize,
}

/// Writes the response of an executed operation.
pub fn write(gateway: &Gateway, plan: &Plan, fetched: &Fetched) -> Result<Written, LimitExceeded> {
    let mut writer = Writer {
        gateway,
        plan,
        fetched,
        // Sized from the answers: the reply is rarely much larger.
        out: Vec::with_capacity(
            fetched
                .held_body_bytes()
                .saturating_add(256)
                .min(gateway.limits.max_reply_bytes.saturating_add(1)),
        ),
        errors: Vec::new(),
        error_count: 0,
        path: PATH.with(std::cell::Cell::take),
        objects: 0,
        max_objects: gateway.limits.max_reply_objects,
        max_bytes: gateway.limits.max_reply_bytes,
    };
    writer.out.extend_from_slice(b"{\"data\":");
    let start = writer.out.len();
    let root = fetched.root();
    match writer.object(root, plan.root_type.as_str(), plan.root) {
        Ok(()) => {}
        Err(Stop::Null) => {
            writer.out.truncate(start);
            writer.out.extend_from_slice(b"null");
        }
        Err(Stop::Limit(exceeded)) => return Err(exceeded),
    }
    for error in &fetched.introspection_errors {
        if writer.error_count > 0 {
            writer.errors.push(b',');
        }
        writer.error_count += 1;
        let _ = serde_json::to_writer(&mut writer.errors, error);
    }
    if writer.error_count > 0 {
        writer.out.extend_from_slice(b",\"errors\":[");
        writer.out.extend_from_slice(&writer.errors);
        writer.out.push(b']');
    }
    writer.out.push(b'}');
    if writer.out.len() > writer.max_bytes {
        return Err(writer.bytes_exceeded());
    }
    let mut path = std::mem::take(&mut writer.path);
    path.clear();
    if path.capacity() <= 1024 {
        PATH.with(|p| p.set(path));
    }
    Ok(Written {
        body: writer.out,
        errors: writer.error_count,
    })
}

/// Why writing a value stopped.
enum Stop {
    /// A null in a non-null position: the nearest nullable ancestor is null.
    Null,
    /// A reply limit was hit: nothing more is written.
    Limit(LimitExceeded),
}

/// One step of a response path: a plan field (its response key), or a
/// list index.
#[derive(Debug, Clone, Copy)]
enum Step {
    Field(u32),
    Index(usize),
}

thread_local! {
    /// The path buffer, kept between replies on this thread.
    static PATH: std::cell::Cell<Vec<Step>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A value to complete.
#[derive(Clone, Copy)]
enum Value<'v> {
    Null,
    At(ObjRef),
    Items(&'v [ObjRef]),
    /// A key the parent's answer (this one) does not have.
    Absent(crate::fetched::AnswerId),
    Failed(ErrorId),
}

struct Writer<'a> {
    gateway: &'a Gateway,
    plan: &'a Plan,
    fetched: &'a Fetched,
    out: Vec<u8>,
    errors: Vec<u8>,
    error_count: usize,
    path: Vec<Step>,
    objects: usize,
    max_objects: usize,
    max_bytes: usize,
}

impl<'a> Writer<'a> {
    /// Writes an object of concrete type `type_name` with set `set`.
    fn object(&mut self, at: ObjRef, type_name: &str, set: SetId) -> Result<(), Stop> {
        self.count()?;
        let plan = self.plan;
        let fields = plan
            .sets
            .get(set as usize)
            .and_then(|s| s.fields_for(type_name))
            .unwrap_or_default();
        self.out.push(b'{');
        for (i, id) in fields.iter().enumerate() {
            let Some(field) = plan.fields.get(*id as usize) else {
                continue;
            };
            if i > 0 {
                self.out.push(b',');
            }
            self.out.extend_from_slice(&field.key_json);
            self.path.push(Step::Field(*id));
            let written = self
                .field(at, type_name, *id, field)
                .and_then(|()| self.check_bytes());
            self.path.pop();
            written?;
        }
        self.out.push(b'}');
        Ok(())
    }

    /// Writes one field's value.
    fn field(
        &mut self,
        at: ObjRef,
        type_name: &str,
        id: u32,
        field: &'a FieldPlan,
    ) -> Result<(), Stop> {
        match &field.source {
            FieldSource::Typename => {
                write_str(&mut self.out, type_name);
                Ok(())
            }
            FieldSource::Introspection => {
                let value = self
                    .fetched
                    .introspection
                    .as_ref()
                    .and_then(|data| data.get(field.key.as_str()));
                match value {
                    Some(value) => {
                        let _ = serde_json::to_writer(&mut self.out, value);
                        Ok(())
                    }
                    None => self.complete(field, &field.ty, Value::Null),
                }
            }
            FieldSource::Parent(key) => {
                let answer = self.fetched.answer(at.answer).map(|h| &h.answer);
                let node = answer.and_then(|a| match key {
                    ParentKey::Name(name) => a.get(at.node, name),
                    ParentKey::Path(path) => a.lookup(at.node, path),
                });
                let value = match node {
                    Some(node) => Value::At(ObjRef {
                        answer: at.answer,
                        node,
                    }),
                    None => Value::Absent(at.answer),
                };
                self.complete(field, &field.ty, value)
            }
            FieldSource::Call { .. } => {
                let fetched = self.fetched;
                let value = match fetched.entry(at, id).map(|e| &e.value) {
                    Some(Resolved::Value(value)) => Value::At(*value),
                    Some(Resolved::Items(items)) => Value::Items(items),
                    Some(Resolved::Null) => Value::Null,
                    Some(Resolved::Failed(error)) => Value::Failed(*error),
                    Some(Resolved::Pending) | None => {
                        let error = if self.plan.mutation && self.path.len() == 1 {
                            FieldError::new(
                                ErrorCode::NotExecuted,
                                format!(
                                    "{} was not executed: the request stopped before it started",
                                    field.coordinate
                                ),
                            )
                        } else {
                            FieldError::new(
                                ErrorCode::InternalError,
                                format!("internal error: {} was never resolved", field.coordinate),
                            )
                        };
                        self.field_error(field, &error);
                        if field.ty.is_non_null() {
                            return Err(Stop::Null);
                        }
                        self.out.extend_from_slice(b"null");
                        return Ok(());
                    }
                };
                self.complete(field, &field.ty, value)
            }
        }
    }

    /// The spec's `CompleteValue()`, with null propagation: a nullable
    /// position that gets a null from below is cut back to `null`.
    fn complete(
        &mut self,
        field: &'a FieldPlan,
        ty: &'a Type,
        value: Value<'_>,
    ) -> Result<(), Stop> {
        let mark = self.out.len();
        match self.complete_inner(field, ty, value) {
            Err(Stop::Null) if !ty.is_non_null() => {
                self.out.truncate(mark);
                self.out.extend_from_slice(b"null");
                Ok(())
            }
            other => other,
        }
    }

    fn complete_inner(
        &mut self,
        field: &'a FieldPlan,
        ty: &'a Type,
        value: Value<'_>,
    ) -> Result<(), Stop> {
        let at = match value {
            Value::Failed(error) => {
                if let Some(error) = self.fetched.error(error) {
                    self.field_error(field, error);
                }
                return Err(Stop::Null);
            }
            Value::Null => return self.null(field, ty, None),
            Value::Absent(answer) => {
                let upstream = self
                    .fetched
                    .answer(answer)
                    .and_then(|h| h.upstream.as_ref());
                return self.null(field, ty, upstream);
            }
            Value::Items(items) => return self.list(field, ty, items.iter().copied()),
            Value::At(at) => at,
        };
        let fetched = self.fetched;
        let Some(held) = fetched.answer(at.answer) else {
            return self.null(field, ty, None);
        };
        let answer = &held.answer;
        let node = answer.node(at.node);
        if node == Node::Null {
            return self.null(field, ty, held.upstream.as_ref());
        }
        match ty {
            Type::List(_) | Type::NonNullList(_) => {
                if !matches!(node, Node::Array(_)) {
                    return self.bad_shape(field, at, "a list");
                }
                let items = answer.items(at.node).iter().map(|node| ObjRef {
                    answer: at.answer,
                    node: *node,
                });
                self.list(field, ty, items)
            }
            Type::Named(named) | Type::NonNullNamed(named) => match &field.shape {
                Shape::Leaf(kind) => {
                    if self.leaf(kind, at) {
                        Ok(())
                    } else {
                        let upstream = held.upstream.as_ref();
                        let message = match upstream {
                            Some(u) => format!(
                                "function {u} answered a value for {} that is not a valid {named}",
                                field.coordinate
                            ),
                            None => {
                                format!("the value of {} is not a valid {named}", field.coordinate)
                            }
                        };
                        let mut error = FieldError::new(ErrorCode::UpstreamBadResponse, message);
                        error.upstream = upstream.cloned();
                        self.field_error(field, &error);
                        Err(Stop::Null)
                    }
                }
                Shape::Composite { set, abstract_type } => {
                    if !matches!(node, Node::Object(_)) {
                        return self.bad_shape(field, at, "an object");
                    }
                    let resolved =
                        object_type(self.gateway, named, abstract_type.as_ref(), answer, at.node);
                    let concrete = match resolved {
                        Ok(name) => name,
                        Err(mut error) => {
                            error.upstream = held.upstream.clone();
                            self.field_error(field, &error);
                            return Err(Stop::Null);
                        }
                    };
                    self.object(at, concrete.as_str(), *set)
                }
            },
        }
    }

    fn list(
        &mut self,
        field: &'a FieldPlan,
        ty: &'a Type,
        items: impl Iterator<Item = ObjRef>,
    ) -> Result<(), Stop> {
        let inner = match ty {
            Type::List(inner) | Type::NonNullList(inner) => inner.as_ref(),
            Type::Named(_) | Type::NonNullNamed(_) => {
                // A batched answer's items for a field that is not a list:
                // the first one.
                let mut items = items;
                return match items.next() {
                    Some(first) => self.complete_inner(field, ty, Value::At(first)),
                    None => self.null(field, ty, None),
                };
            }
        };
        self.out.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.count()?;
            self.path.push(Step::Index(i));
            let written = self.complete(field, inner, Value::At(item));
            self.path.pop();
            written?;
        }
        self.out.push(b']');
        Ok(())
    }

    /// A null: fine where the type allows it, an error (naming the function
    /// whose answer lacked the value, when known) where it does not.
    fn null(
        &mut self,
        field: &FieldPlan,
        ty: &Type,
        upstream: Option<&std::sync::Arc<str>>,
    ) -> Result<(), Stop> {
        if ty.is_non_null() {
            let mut error = FieldError::new(
                ErrorCode::UpstreamBadResponse,
                match upstream {
                    Some(u) => format!(
                        "{} is non-null ({ty}) but function {u} gave no value for it",
                        field.coordinate
                    ),
                    None => format!(
                        "{} is non-null ({ty}) but no value was given for it",
                        field.coordinate
                    ),
                },
            );
            error.upstream = upstream.cloned();
            self.field_error(field, &error);
            return Err(Stop::Null);
        }
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn bad_shape(&mut self, field: &FieldPlan, at: ObjRef, expected: &str) -> Result<(), Stop> {
        let upstream = self
            .fetched
            .answer(at.answer)
            .and_then(|h| h.upstream.as_ref());
        let error = FieldError::bad_shape(upstream, &field.coordinate, expected);
        self.field_error(field, &error);
        Err(Stop::Null)
    }

    /// Writes a leaf value with the spec's result coercion; false (nothing
    /// written) when the value cannot be coerced.
    fn leaf(&mut self, kind: &LeafKind, at: ObjRef) -> bool {
        let Some(held) = self.fetched.answer(at.answer) else {
            return false;
        };
        let answer = &held.answer;
        let out = &mut self.out;
        match (kind, answer.node(at.node)) {
            (LeafKind::Int, Node::Int(i)) if i32::try_from(i).is_ok() => write_int(out, i),
            (LeafKind::Int, Node::Float(f))
                if f.fract() == 0.0 && f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX) =>
            {
                // Exact: f is integral and within i32.
                #[allow(clippy::cast_possible_truncation)]
                write_int(out, f as i64)
            }
            #[allow(clippy::cast_precision_loss)]
            (LeafKind::Float, Node::Int(i)) => write_float(out, i as f64),
            #[allow(clippy::cast_precision_loss)]
            (LeafKind::Float, Node::UInt(u)) => write_float(out, u as f64),
            (LeafKind::Float, Node::Float(f)) => write_float(out, f),
            (LeafKind::String | LeafKind::Id, Node::Str(span)) => write_str(out, answer.text(span)),
            (LeafKind::Boolean, Node::Bool(b)) => {
                out.extend_from_slice(if b { b"true" } else { b"false" })
            }
            (LeafKind::Id, Node::Int(i)) => {
                out.push(b'"');
                write_int(out, i);
                out.push(b'"');
            }
            (LeafKind::Id, Node::UInt(u)) => {
                out.push(b'"');
                let _ = serde_json::to_writer(&mut *out, &u);
                out.push(b'"');
            }
            (LeafKind::Enum(name), Node::Str(span)) => {
                let text = answer.text(span);
                let known = self
                    .gateway
                    .schema
                    .get_enum(name)
                    .is_some_and(|e| e.values.contains_key(text));
                if !known {
                    return false;
                }
                write_str(out, text);
            }
            (LeafKind::Custom, _) => answer.write_json(at.node, out),
            _ => return false,
        }
        true
    }

    /// Counts an object or a list item against `max_reply_objects`, and the
    /// bytes so far against `max_reply_bytes`.
    fn count(&mut self) -> Result<(), Stop> {
        self.objects += 1;
        if self.objects > self.max_objects {
            return Err(Stop::Limit(LimitExceeded {
                limit: "max_reply_objects",
                max: self.max_objects,
                actual: self.objects,
                at: self.path_text(),
            }));
        }
        self.check_bytes()
    }

    /// The bytes so far against `max_reply_bytes` (after every field, so a
    /// reply goes over by one value at most before it stops).
    fn check_bytes(&self) -> Result<(), Stop> {
        if self.out.len().saturating_add(self.errors.len()) > self.max_bytes {
            return Err(Stop::Limit(self.bytes_exceeded()));
        }
        Ok(())
    }

    fn bytes_exceeded(&self) -> LimitExceeded {
        LimitExceeded {
            limit: "max_reply_bytes",
            max: self.max_bytes,
            actual: self.out.len().saturating_add(self.errors.len()),
            at: self.path_text(),
        }
    }

    /// A plan field's response key.
    fn key(&self, id: u32) -> &'a str {
        let plan: &'a Plan = self.plan;
        plan.fields.get(id as usize).map_or("", |f| f.key.as_str())
    }

    /// The current path as text, `user.friends.3.name` (none at the root).
    fn path_text(&self) -> Option<String> {
        if self.path.is_empty() {
            return None;
        }
        let mut text = String::new();
        for (i, step) in self.path.iter().enumerate() {
            if i > 0 {
                text.push('.');
            }
            match step {
                Step::Field(id) => text.push_str(self.key(*id)),
                Step::Index(index) => {
                    let _ = write!(text, "{index}");
                }
            }
        }
        Some(text)
    }

    /// Writes a field error at the current path.
    fn field_error(&mut self, field: &FieldPlan, error: &FieldError) {
        let errors = &mut self.errors;
        if self.error_count > 0 {
            errors.push(b',');
        }
        self.error_count += 1;
        errors.extend_from_slice(b"{\"message\":");
        write_str(errors, &error.message);
        let location = field
            .location
            .and_then(|span| span.line_column(&self.plan.document.sources));
        if let Some(location) = location {
            errors.extend_from_slice(b",\"locations\":[{\"line\":");
            let _ = serde_json::to_writer(&mut *errors, &location.line);
            errors.extend_from_slice(b",\"column\":");
            let _ = serde_json::to_writer(&mut *errors, &location.column);
            errors.extend_from_slice(b"}]");
        }
        errors.extend_from_slice(b",\"path\":[");
        for (i, step) in self.path.iter().enumerate() {
            if i > 0 {
                errors.push(b',');
            }
            match step {
                Step::Field(id) => write_str(
                    errors,
                    self.plan
                        .fields
                        .get(*id as usize)
                        .map_or("", |f| f.key.as_str()),
                ),
                Step::Index(index) => {
                    let _ = serde_json::to_writer(&mut *errors, index);
                }
            }
        }
        errors.extend_from_slice(b"],\"extensions\":");
        let extensions = apollo_compiler::response::JsonValue::Object(error.extensions());
        let _ = serde_json::to_writer(&mut *errors, &extensions);
        errors.push(b'}');
    }
}
