//! The compiled plan of one operation: everything about a request that
//! depends only on its document (and on the values of the variables its
//! `@skip`/`@include` conditions read), computed once and cached.
//!
//! A plan is a graph of selection sets. Each set knows, per concrete object
//! type, its fields in response order (the spec's `CollectFields()` done
//! once): the response key already escaped as JSON, the field's type and
//! leaf coercion, where its value comes from (a function call with its
//! arguments bound, a key of the parent's JSON, `__typename`,
//! introspection) and the set of its sub-selection. Sets are shared: the
//! same fragment under the same type compiles once, so a plan's size is
//! bounded by its document's, however often fragments are spread.

use crate::arguments::{argument_values, uses_variables};
use crate::config::Gateway;
use crate::limits::LimitExceeded;
use crate::schema::ResolverId;
use apollo_compiler::ast::Value;
use apollo_compiler::executable::{Field, Operation, OperationType, Selection, SelectionSet};
use apollo_compiler::parser::SourceSpan;
use apollo_compiler::response::JsonMap;
use apollo_compiler::schema::{ExtendedType, FieldDefinition, ObjectType, Type};
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Name, Node, Schema};
use indexmap::IndexMap;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The most fields one plan may hold (fields of all selection sets, per
/// concrete type). A document within the other limits stays far below.
pub const MAX_PLAN_FIELDS: usize = 20_000;

/// Identifies a selection set of a [`Plan`].
pub type SetId = u32;

/// Identifies a field of a [`Plan`].
pub type FieldId = u32;

/// The compiled plan of one operation.
#[derive(Debug)]
pub struct Plan {
    /// The validated document (introspection and error locations read it).
    pub document: Arc<Valid<ExecutableDocument>>,
    /// The operation's name, if it has one.
    pub operation_name: Option<Name>,
    /// Every field of every set.
    pub fields: Vec<FieldPlan>,
    /// Every selection set.
    pub sets: Vec<SelectionSetPlan>,
    /// The operation's root selection set.
    pub root: SetId,
    /// The root type (`Query` or `Mutation`).
    pub root_type: Name,
    /// Whether the operation is a mutation (root fields run one after
    /// another).
    pub mutation: bool,
    /// Whether the root selects `__schema` or `__type`.
    pub introspection: bool,
    /// How many root fields the operation selects.
    pub root_fields: usize,
}

impl Plan {
    /// The memory this plan holds, in bytes, estimated from above: its
    /// fields and sets with what they own (response keys, coordinates,
    /// types, constant argument values). The document it shares with its
    /// cache entry is not counted.
    pub fn held_bytes(&self) -> usize {
        let fields = self
            .fields
            .iter()
            .map(FieldPlan::held_bytes)
            .fold(0, usize::saturating_add);
        let spare_fields = self.fields.capacity().saturating_sub(self.fields.len());
        let sets = self
            .sets
            .iter()
            .map(SelectionSetPlan::held_bytes)
            .fold(0, usize::saturating_add);
        let spare_sets = self.sets.capacity().saturating_sub(self.sets.len());
        std::mem::size_of::<Plan>()
            .saturating_add(fields)
            .saturating_add(spare_fields.saturating_mul(std::mem::size_of::<FieldPlan>()))
            .saturating_add(sets)
            .saturating_add(spare_sets.saturating_mul(std::mem::size_of::<SelectionSetPlan>()))
    }
}

/// A selection set, compiled for each object type its values can have.
#[derive(Debug, Default)]
pub struct SelectionSetPlan {
    /// The fields per concrete object type, in response order.
    pub types: Vec<(Name, Vec<FieldId>)>,
    /// Whether a function is called somewhere at or below this set (if not,
    /// its values are read from their parent's JSON when the reply is
    /// written, and never walked before).
    pub fetches: bool,
}

impl SelectionSetPlan {
    /// The memory this set holds (itself included), in bytes.
    fn held_bytes(&self) -> usize {
        let ids = self
            .types
            .iter()
            .map(|(_, ids)| {
                ids.capacity()
                    .saturating_mul(std::mem::size_of::<FieldId>())
            })
            .fold(0, usize::saturating_add);
        std::mem::size_of::<SelectionSetPlan>()
            .saturating_add(
                self.types
                    .capacity()
                    .saturating_mul(std::mem::size_of::<(Name, Vec<FieldId>)>()),
            )
            .saturating_add(ids)
    }

    /// The fields selected on objects of `type_name`.
    pub fn fields_for(&self, type_name: &str) -> Option<&[FieldId]> {
        self.types
            .iter()
            .find(|(name, _)| name == type_name)
            .map(|(_, fields)| fields.as_slice())
    }
}

/// One field of a selection set, for one concrete parent type.
#[derive(Debug)]
pub struct FieldPlan {
    /// The response key (alias or name).
    pub key: Name,
    /// `"key":`, escaped, ready to write.
    pub key_json: Box<[u8]>,
    /// `Type.field`, for messages.
    pub coordinate: Box<str>,
    /// Where the field is in the document (its first selection).
    pub location: Option<SourceSpan>,
    /// The field's output type.
    pub ty: Type,
    /// Leaf coercion, or the sub-selection.
    pub shape: Shape,
    /// Where its value comes from.
    pub source: FieldSource,
}

impl FieldPlan {
    /// The memory this field holds (itself included), in bytes, estimated
    /// from above.
    fn held_bytes(&self) -> usize {
        let source = match &self.source {
            FieldSource::Typename | FieldSource::Introspection => 0,
            FieldSource::Parent(ParentKey::Name(_)) => 0,
            FieldSource::Parent(ParentKey::Path(path)) => path
                .iter()
                .map(|key| key.capacity().saturating_add(std::mem::size_of::<String>()))
                .fold(0, usize::saturating_add),
            FieldSource::Call { arguments, .. } => arguments.held_bytes(),
        };
        std::mem::size_of::<FieldPlan>()
            .saturating_add(self.key_json.len())
            .saturating_add(self.coordinate.len())
            .saturating_add(type_bytes(&self.ty))
            .saturating_add(source)
    }
}

/// The heap a type holds: a box per list level.
fn type_bytes(ty: &Type) -> usize {
    match ty {
        Type::Named(_) | Type::NonNullNamed(_) => 0,
        Type::List(inner) | Type::NonNullList(inner) => {
            std::mem::size_of::<Type>().saturating_add(type_bytes(inner))
        }
    }
}

/// The memory a JSON value holds (itself included), in bytes, estimated
/// from above: its items (lists are collected at their length), room for
/// twice the members it has (maps grow by doubling), and the bytes of its
/// strings and keys.
fn json_bytes(value: &apollo_compiler::response::JsonValue) -> usize {
    use apollo_compiler::response::JsonValue;
    let own = std::mem::size_of::<JsonValue>();
    match value {
        JsonValue::Null | JsonValue::Bool(_) | JsonValue::Number(_) => own,
        JsonValue::String(text) => own.saturating_add(text.as_str().len()),
        JsonValue::Array(items) => items
            .iter()
            .map(json_bytes)
            .fold(own, usize::saturating_add),
        JsonValue::Object(map) => own.saturating_add(map_bytes(map)),
    }
}

/// [`json_bytes`] of a map's entries (without the map itself).
fn map_bytes(map: &JsonMap) -> usize {
    use apollo_compiler::response::JsonValue;
    // An entry: its hash, its key and its value, room for as many more,
    // and an index slot.
    let entry = 2 * (std::mem::size_of::<u64>() + 2 * std::mem::size_of::<JsonValue>()) + 16;
    map.iter()
        .map(|(key, value)| {
            entry
                .saturating_add(key.as_str().len())
                .saturating_add(json_bytes(value))
        })
        .fold(std::mem::size_of::<JsonMap>(), usize::saturating_add)
}

/// What a field's values are.
#[derive(Debug, Clone)]
pub enum Shape {
    /// A scalar or an enum, coerced as the spec says.
    Leaf(LeafKind),
    /// Objects; the set says what is selected on them. `abstract_type` is
    /// the interface or union the concrete type must be resolved for.
    Composite {
        /// The sub-selection.
        set: SetId,
        /// The interface or union, when the type is abstract.
        abstract_type: Option<Name>,
    },
}

/// The spec's result coercion of a leaf type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafKind {
    /// `Int`: a 32-bit integer (an integral float within range too).
    Int,
    /// `Float`: any number.
    Float,
    /// `String`.
    String,
    /// `Boolean`.
    Boolean,
    /// `ID`: a string, or an integer serialised as a string.
    Id,
    /// An enum: one of its values.
    Enum(Name),
    /// A custom scalar: any JSON, passed through.
    Custom,
}

/// Where a field's value comes from.
#[derive(Debug, Clone)]
pub enum FieldSource {
    /// `__typename`.
    Typename,
    /// `__schema` or `__type` (answered by apollo-compiler).
    Introspection,
    /// A key of the parent's JSON: the field's name, or its `@from` path.
    Parent(ParentKey),
    /// A function call.
    Call {
        /// The resolver in the gateway's table.
        resolver: ResolverId,
        /// The arguments it is called with.
        arguments: Arguments,
    },
}

/// The key of the parent's JSON a field is read from.
#[derive(Debug, Clone)]
pub enum ParentKey {
    /// The field's own name.
    Name(Name),
    /// An `@from` key path.
    Path(Vec<String>),
}

/// A field's argument values.
#[derive(Debug, Clone)]
pub enum Arguments {
    /// Without variables: the same for every request.
    Constant(Arc<JsonMap>),
    /// Some given as a variable (`id: $id`), the others without variables:
    /// the constant ones (and the defaults of those whose variable is
    /// absent) computed once, the bound ones read from the variables.
    Bound {
        /// Values without variables, and defaults.
        constants: Arc<JsonMap>,
        /// `(argument, variable)` pairs.
        bound: Arc<[(Name, Name)]>,
    },
    /// Using variables inside lists or input objects: computed per request
    /// from the field and its definition.
    PerRequest(Node<Field>, Node<FieldDefinition>),
}

impl Arguments {
    /// The arguments of `field` (with its `definition`) in a plan.
    fn of(schema: &Schema, definition: &Node<FieldDefinition>, field: &Node<Field>) -> Self {
        let constants = || Arc::new(argument_values(schema, definition, field, &JsonMap::new()));
        if !uses_variables(field) {
            return Arguments::Constant(constants());
        }
        let mut bound = Vec::new();
        for argument in &field.arguments {
            match argument.value.as_ref() {
                apollo_compiler::ast::Value::Variable(variable) => {
                    bound.push((argument.name.clone(), variable.clone()));
                }
                value if crate::arguments::value_uses_variables(value) => {
                    return Arguments::PerRequest(field.clone(), definition.clone());
                }
                _ => {}
            }
        }
        Arguments::Bound {
            constants: constants(),
            bound: bound.into(),
        }
    }

    /// The memory these arguments hold, in bytes, estimated from above
    /// (the constant values; per-request arguments share the document).
    fn held_bytes(&self) -> usize {
        // An `Arc`'s counts.
        let counts = 2 * std::mem::size_of::<usize>();
        match self {
            Arguments::Constant(values) => counts.saturating_add(map_bytes(values)),
            Arguments::Bound { constants, bound } => counts
                .saturating_add(map_bytes(constants))
                .saturating_add(counts)
                .saturating_add(
                    bound
                        .len()
                        .saturating_mul(std::mem::size_of::<(Name, Name)>()),
                ),
            Arguments::PerRequest(..) => 0,
        }
    }

    /// The argument values for a request's coerced variables: a map, and
    /// the arguments to read from the variables instead.
    pub fn values<'a>(
        &'a self,
        schema: &Schema,
        variables: &JsonMap,
    ) -> (Cow<'a, JsonMap>, &'a [(Name, Name)]) {
        match self {
            Arguments::Constant(values) => (Cow::Borrowed(values.as_ref()), &[]),
            Arguments::Bound { constants, bound } => (Cow::Borrowed(constants.as_ref()), bound),
            Arguments::PerRequest(field, definition) => (
                Cow::Owned(argument_values(schema, definition, field, variables)),
                &[],
            ),
        }
    }
}

/// Why an operation cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// Over a limit.
    Limit(LimitExceeded),
    /// The document has no such operation.
    NoOperation(String),
}

/// Compile the plan of `operation` for the given coerced variables (only
/// the values its `@skip`/`@include` conditions read matter).
pub fn compile(
    gateway: &Gateway,
    document: &Arc<Valid<ExecutableDocument>>,
    operation: &Operation,
    variables: &JsonMap,
) -> Result<Plan, PlanError> {
    let root_type = operation.object_type().clone();
    let mut compiler = Compiler {
        gateway,
        document,
        variables,
        fields: Vec::new(),
        sets: Vec::new(),
        memo: HashMap::new(),
        by_groups: HashMap::new(),
    };
    let root = compiler.set(&root_type, &[&operation.selection_set])?;
    let root_fields = compiler
        .sets
        .get(root as usize)
        .and_then(|s| s.types.first())
        .map_or(0, |(_, fields)| fields.len());
    let introspection = compiler
        .sets
        .get(root as usize)
        .and_then(|s| s.types.first())
        .is_some_and(|(_, fields)| {
            fields.iter().any(|f| {
                compiler
                    .fields
                    .get(*f as usize)
                    .is_some_and(|f| matches!(f.source, FieldSource::Introspection))
            })
        });
    // A plan is kept for long (in the plan cache): no spare room.
    let mut fields = compiler.fields;
    let mut sets = compiler.sets;
    fields.shrink_to_fit();
    sets.shrink_to_fit();
    Ok(Plan {
        document: document.clone(),
        operation_name: operation.name.clone(),
        fields,
        sets,
        root,
        root_type,
        mutation: operation.operation_type == OperationType::Mutation,
        introspection,
        root_fields,
    })
}

/// The variables an operation's `@skip`/`@include` conditions read, in
/// document order (each once): the plan depends on their values only.
pub fn condition_variables(document: &ExecutableDocument) -> Vec<Name> {
    let mut names: Vec<Name> = Vec::new();
    let mut visit = |set: &SelectionSet| {
        let mut stack = vec![set];
        while let Some(set) = stack.pop() {
            for selection in &set.selections {
                for directive in selection.directives().iter() {
                    if directive.name == "skip" || directive.name == "include" {
                        if let Some(Value::Variable(v)) = directive
                            .specified_argument_by_name("if")
                            .map(|v| v.as_ref())
                        {
                            if !names.contains(v) {
                                names.push(v.clone());
                            }
                        }
                    }
                }
                match selection {
                    Selection::Field(f) => stack.push(&f.selection_set),
                    Selection::InlineFragment(i) => stack.push(&i.selection_set),
                    Selection::FragmentSpread(_) => {}
                }
            }
        }
    };
    for operation in document.operations.iter() {
        visit(&operation.selection_set);
    }
    for fragment in document.fragments.values() {
        visit(&fragment.selection_set);
    }
    names
}

/// The compile state: the plan so far and the sets already compiled, by
/// their type and the document's selection sets merged into them.
struct Compiler<'a> {
    gateway: &'a Gateway,
    document: &'a ExecutableDocument,
    variables: &'a JsonMap,
    fields: Vec<FieldPlan>,
    sets: Vec<SelectionSetPlan>,
    /// Sets by what they collect (type, and field nodes per object type).
    memo: HashMap<(Name, Vec<usize>), SetId>,
    /// Sets by the document's selection sets merged into them (type, and
    /// the selection sets' addresses): found without collecting again.
    by_groups: HashMap<(Name, Vec<usize>), SetId>,
}

/// The fields of one object, grouped by response key, in document order.
type GroupedFields<'a> = IndexMap<&'a Name, Vec<&'a Node<Field>>>;

impl<'a> Compiler<'a> {
    /// The set selecting `groups` (merged) on values of type `type_name`.
    fn set(&mut self, type_name: &Name, groups: &[&'a SelectionSet]) -> Result<SetId, PlanError> {
        // The same selection sets merged under the same type: known.
        let groups_key = (
            type_name.clone(),
            groups
                .iter()
                .map(|g| std::ptr::from_ref::<SelectionSet>(g) as usize)
                .collect::<Vec<usize>>(),
        );
        if let Some(id) = self.by_groups.get(&groups_key) {
            return Ok(*id);
        }
        let schema = &self.gateway.schema;
        // A set's identity is what it collects: the document's field nodes
        // (by address; the plan keeps the document alive) per object type.
        // The same fragment spread in many places is one set.
        let mut identity = Vec::new();
        let mut collected = Vec::new();
        for object_type in possible_types(schema, type_name) {
            let grouped = self.collect(object_type, groups);
            identity.push(std::ptr::from_ref::<ObjectType>(object_type) as usize);
            for fields in grouped.values() {
                identity.extend(
                    fields
                        .iter()
                        .map(|f| std::ptr::from_ref::<Node<Field>>(*f) as usize),
                );
                identity.push(0);
            }
            collected.push((object_type, grouped));
        }
        let memo_key = (type_name.clone(), identity);
        if let Some(id) = self.memo.get(&memo_key).copied() {
            self.by_groups.insert(groups_key, id);
            return Ok(id);
        }
        let id = SetId::try_from(self.sets.len()).map_err(|_| too_big(self.fields.len()))?;
        self.sets.push(SelectionSetPlan::default());
        self.memo.insert(memo_key, id);
        self.by_groups.insert(groups_key, id);
        let mut types = Vec::with_capacity(collected.len());
        let mut fetches = false;
        for (object_type, grouped) in collected {
            let mut ids = Vec::with_capacity(grouped.len());
            for (key, fields) in grouped {
                let (field, field_fetches) = self.field(object_type, key, &fields)?;
                fetches |= field_fetches;
                if self.fields.len() >= MAX_PLAN_FIELDS {
                    return Err(too_big(self.fields.len() + 1));
                }
                let id =
                    FieldId::try_from(self.fields.len()).map_err(|_| too_big(self.fields.len()))?;
                self.fields.push(field);
                ids.push(id);
            }
            types.push((object_type.name.clone(), ids));
        }
        if let Some(set) = self.sets.get_mut(id as usize) {
            set.types = types;
            set.fetches = fetches;
        }
        Ok(id)
    }

    /// One field of `object_type`, and whether a function is called at or
    /// below it.
    fn field(
        &mut self,
        object_type: &ObjectType,
        key: &Name,
        fields: &[&'a Node<Field>],
    ) -> Result<(FieldPlan, bool), PlanError> {
        let gateway = self.gateway;
        let schema = &gateway.schema;
        let first = fields.first().copied().ok_or_else(|| too_big(0))?;
        let name = &first.name;
        let coordinate = format!("{}.{}", object_type.name, name).into_boxed_str();
        let mut key_json = Vec::with_capacity(key.len() + 3);
        crate::answer::write_str(&mut key_json, key);
        key_json.push(b':');
        let location = first.location();
        let leaf = |kind| (Shape::Leaf(kind), false);
        let (source, ty) = match name.as_str() {
            "__typename" => (FieldSource::Typename, first.definition.ty.clone()),
            "__schema" | "__type" => (FieldSource::Introspection, first.definition.ty.clone()),
            _ => {
                let Some(definition) = object_type.fields.get(name) else {
                    return Err(PlanError::NoOperation(format!("no field {coordinate}")));
                };
                let source = match gateway.resolvers.find(&object_type.name, name) {
                    Some((resolver, _)) => FieldSource::Call {
                        resolver,
                        arguments: Arguments::of(schema, &definition.node, first),
                    },
                    None => FieldSource::Parent(
                        match gateway
                            .renames
                            .get(&(object_type.name.clone(), name.clone()))
                        {
                            Some(path) => ParentKey::Path(path.clone()),
                            None => ParentKey::Name(name.clone()),
                        },
                    ),
                };
                (source, definition.ty.clone())
            }
        };
        let calls = matches!(source, FieldSource::Call { .. });
        let (shape, below) = match &source {
            FieldSource::Introspection => (Shape::Leaf(LeafKind::Custom), false),
            _ => {
                let named = ty.inner_named_type();
                match schema.types.get(named) {
                    Some(ExtendedType::Scalar(_)) | None => leaf(scalar_kind(named)),
                    Some(ExtendedType::Enum(_)) => leaf(LeafKind::Enum(named.clone())),
                    Some(composite) => {
                        let groups: Vec<&'a SelectionSet> =
                            fields.iter().map(|f| &f.selection_set).collect();
                        let set = self.set(named, &groups)?;
                        let below = self.sets.get(set as usize).is_some_and(|s| s.fetches);
                        let abstract_type = (!composite.is_object()).then(|| named.clone());
                        (Shape::Composite { set, abstract_type }, below)
                    }
                }
            }
        };
        Ok((
            FieldPlan {
                key: key.clone(),
                key_json: key_json.into_boxed_slice(),
                coordinate,
                location,
                ty,
                shape,
                source,
            },
            calls || below,
        ))
    }

    /// The spec's `CollectFields()` for `object_type` over merged sets.
    fn collect(&self, object_type: &ObjectType, groups: &[&'a SelectionSet]) -> GroupedFields<'a> {
        let mut grouped = GroupedFields::new();
        let mut visited = HashSet::new();
        for group in groups {
            self.collect_into(object_type, &group.selections, &mut visited, &mut grouped);
        }
        grouped
    }

    fn collect_into(
        &self,
        object_type: &ObjectType,
        selections: &'a [Selection],
        visited: &mut HashSet<&'a Name>,
        grouped: &mut GroupedFields<'a>,
    ) {
        let schema = &self.gateway.schema;
        for selection in selections {
            if !is_included(selection, self.variables) {
                continue;
            }
            match selection {
                Selection::Field(field) => {
                    grouped.entry(field.response_key()).or_default().push(field)
                }
                Selection::FragmentSpread(spread) => {
                    if !visited.insert(&spread.fragment_name) {
                        continue;
                    }
                    let document: &'a ExecutableDocument = self.document;
                    if let Some(fragment) = document.fragments.get(&spread.fragment_name) {
                        if applies(schema, object_type, fragment.type_condition()) {
                            self.collect_into(
                                object_type,
                                &fragment.selection_set.selections,
                                visited,
                                grouped,
                            );
                        }
                    }
                }
                Selection::InlineFragment(inline) => {
                    let applies = inline
                        .type_condition
                        .as_ref()
                        .is_none_or(|c| applies(schema, object_type, c));
                    if applies {
                        self.collect_into(
                            object_type,
                            &inline.selection_set.selections,
                            visited,
                            grouped,
                        );
                    }
                }
            }
        }
    }
}

fn too_big(actual: usize) -> PlanError {
    PlanError::Limit(LimitExceeded {
        limit: "plan_fields",
        max: MAX_PLAN_FIELDS,
        actual,
        at: None,
    })
}

fn scalar_kind(name: &Name) -> LeafKind {
    match name.as_str() {
        "Int" => LeafKind::Int,
        "Float" => LeafKind::Float,
        "String" => LeafKind::String,
        "Boolean" => LeafKind::Boolean,
        "ID" => LeafKind::Id,
        _ => LeafKind::Custom,
    }
}

/// The object types a value of `type_name` can have, in schema order.
fn possible_types<'s>(schema: &'s Schema, type_name: &Name) -> Vec<&'s ObjectType> {
    match schema.types.get(type_name) {
        Some(ExtendedType::Object(object)) => vec![object.as_ref()],
        Some(_) => schema
            .types
            .values()
            .filter_map(|t| match t {
                ExtendedType::Object(o) if schema.is_subtype(type_name, &o.name) => {
                    Some(o.as_ref())
                }
                _ => None,
            })
            .collect(),
        None => Vec::new(),
    }
}

/// The spec's `DoesFragmentTypeApply()`.
pub fn applies(schema: &Schema, object_type: &ObjectType, condition: &Name) -> bool {
    match schema.types.get(condition) {
        Some(ExtendedType::Object(_)) => *condition == object_type.name,
        Some(ExtendedType::Interface(_)) => object_type.implements_interfaces.contains(condition),
        Some(ExtendedType::Union(u)) => u.members.contains(&object_type.name),
        _ => false,
    }
}

fn is_included(selection: &Selection, variables: &JsonMap) -> bool {
    let condition = |name: &str| -> Option<bool> {
        let value = selection
            .directives()
            .get(name)?
            .specified_argument_by_name("if")?;
        match value.as_ref() {
            Value::Boolean(b) => Some(*b),
            Value::Variable(v) => variables.get(v.as_str())?.as_bool(),
            _ => None,
        }
    };
    !condition("skip").unwrap_or(false) && condition("include").unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gateway() -> Gateway {
        let config = json!({
            "schema": "type Query { user(id: ID!): User @http(upstream: \"fn\", path: \"/u?id={args.id}\") }
                interface Named { name: String }
                type User implements Named { id: ID name: String friend: User @http(upstream: \"fn\", path: \"/f\") }",
            "upstreams": {"fn": {"target": "fn"}}
        });
        Gateway::from_json(&config.to_string()).unwrap()
    }

    fn plan(gateway: &Gateway, query: &str, variables: serde_json::Value) -> Plan {
        let document = Arc::new(
            ExecutableDocument::parse_and_validate(&gateway.schema, query, "q.graphql").unwrap(),
        );
        let operation = document.operations.get(None).unwrap();
        let variables = apollo_compiler::response::JsonValue::from(variables)
            .as_object()
            .cloned()
            .unwrap_or_default();
        compile(gateway, &document, operation, &variables).unwrap()
    }

    fn keys(plan: &Plan, set: SetId, type_name: &str) -> Vec<String> {
        plan.sets[set as usize]
            .fields_for(type_name)
            .unwrap()
            .iter()
            .map(|f| plan.fields[*f as usize].key.to_string())
            .collect()
    }

    fn user_set(plan: &Plan) -> SetId {
        let root = plan.sets[plan.root as usize].fields_for("Query").unwrap();
        match plan.fields[root[0] as usize].shape {
            Shape::Composite { set, .. } => set,
            _ => panic!("user is an object"),
        }
    }

    #[test]
    fn collects_fragments_aliases_and_conditions() {
        let g = gateway();
        let q = "query($s: Boolean!) { user(id: 1) { id ...F n: name @skip(if: $s) ... on Named { name } } }
                 fragment F on User { id name @include(if: false) }";
        let p = plan(&g, q, json!({"s": true}));
        assert_eq!(keys(&p, user_set(&p), "User"), ["id", "name"]);
        let p = plan(&g, q, json!({"s": false}));
        assert_eq!(keys(&p, user_set(&p), "User"), ["id", "n", "name"]);
        let document = ExecutableDocument::parse_and_validate(&g.schema, q, "q").unwrap();
        assert_eq!(condition_variables(&document), ["s"]);
    }

    #[test]
    fn knows_where_functions_are_called() {
        let g = gateway();
        let p = plan(&g, "{ user(id: 1) { id friend { name } } }", json!({}));
        let user = user_set(&p);
        assert!(p.sets[user as usize].fetches);
        assert!(p.sets[p.root as usize].fetches);
        let friend = p.sets[user as usize].fields_for("User").unwrap()[1];
        let Shape::Composite { set, .. } = p.fields[friend as usize].shape else {
            panic!()
        };
        assert!(
            !p.sets[set as usize].fetches,
            "friend's name is read, not fetched"
        );
        assert!(matches!(
            &p.fields[friend as usize].source,
            FieldSource::Call {
                arguments: Arguments::Constant(_),
                ..
            }
        ));
    }

    #[test]
    fn arguments_given_as_variables_are_bound_not_computed_per_request() {
        let g = gateway();
        let arguments = |query: &str| {
            let p = plan(&g, query, json!({"id": "1"}));
            let root = p.sets[p.root as usize].fields_for("Query").unwrap()[0];
            match &p.fields[root as usize].source {
                FieldSource::Call { arguments, .. } => arguments.clone(),
                _ => panic!("user calls a function"),
            }
        };
        let bound = arguments("query($id: ID!) { user(id: $id) { id } }");
        let Arguments::Bound { bound, .. } = bound else {
            panic!("{bound:?}")
        };
        assert_eq!(bound[0].0.as_str(), "id");
        assert_eq!(bound[0].1.as_str(), "id");
        assert!(matches!(
            arguments("{ user(id: 1) { id } }"),
            Arguments::Constant(_)
        ));
    }

    #[test]
    fn fragments_spread_many_times_compile_once() {
        let g = gateway();
        let mut query = String::from("{ user(id: 1) { ...F0 } }\n");
        for i in 0..30 {
            query.push_str(&format!(
                "fragment F{i} on User {{ friend {{ ...F{next} }} a{i}: friend {{ ...F{next} }} }}\n",
                next = i + 1
            ));
        }
        query.push_str("fragment F30 on User { id }");
        // 2^30 places in a response, a few dozen sets in the plan.
        let p = plan(&g, &query, json!({}));
        assert!(p.sets.len() < 100, "{}", p.sets.len());
    }
}
