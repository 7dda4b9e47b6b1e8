//! How the schema's types are reached from its root operations: which
//! types a query can reach at all, and the list under which each type is
//! first reached (what multiplies a per-parent call).

use apollo_compiler::schema::ExtendedType;
use apollo_compiler::{Name, Schema};
use std::collections::{HashMap, HashSet, VecDeque};

/// A list field that yields objects of a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParent {
    /// `Type.field` of the list.
    pub coordinate: String,
    /// Whether that list field is itself fetched (one call for the list).
    pub fetched: bool,
}

/// The schema's types as a query reaches them.
#[derive(Debug, Default)]
pub struct Reach {
    /// Types reachable from Query or Mutation.
    pub reachable: HashSet<Name>,
    /// For each type reachable under a list: the nearest list on the
    /// shortest way there.
    pub under_list: HashMap<Name, ListParent>,
}

/// The object types a value of `name` can be.
pub fn possible_objects(schema: &Schema, name: &Name) -> Vec<Name> {
    match schema.types.get(name) {
        Some(ExtendedType::Object(_)) => vec![name.clone()],
        Some(ExtendedType::Interface(_) | ExtendedType::Union(_)) => schema
            .types
            .iter()
            .filter(|(n, t)| t.is_object() && schema.is_subtype(name, n))
            .map(|(n, _)| n.clone())
            .collect(),
        _ => Vec::new(),
    }
}

impl Reach {
    /// Walks the schema from its query and mutation roots (breadth first).
    /// `fetched` says whether `Type.field` is mapped to a function.
    pub fn of(schema: &Schema, fetched: impl Fn(&Name, &Name) -> bool) -> Reach {
        let mut reach = Reach::default();
        let mut queue: VecDeque<(Name, Option<ListParent>)> = VecDeque::new();
        let roots = [
            schema.schema_definition.query.as_ref(),
            schema.schema_definition.mutation.as_ref(),
        ];
        for root in roots.into_iter().flatten() {
            queue.push_back((root.name.clone(), None));
        }
        // Each type is walked once outside lists and once under one.
        let mut seen: HashSet<(Name, bool)> = HashSet::new();
        while let Some((type_name, list)) = queue.pop_front() {
            if !seen.insert((type_name.clone(), list.is_some())) {
                continue;
            }
            reach.reachable.insert(type_name.clone());
            if let Some(list) = &list {
                reach
                    .under_list
                    .entry(type_name.clone())
                    .or_insert_with(|| list.clone());
            }
            let fields = match schema.types.get(&type_name) {
                Some(ExtendedType::Object(o)) => &o.fields,
                _ => continue,
            };
            for (field_name, field) in fields {
                let target = field.ty.inner_named_type();
                let next = if field.ty.is_list() {
                    Some(ListParent {
                        coordinate: format!("{type_name}.{field_name}"),
                        fetched: fetched(&type_name, field_name),
                    })
                } else {
                    list.clone()
                };
                for object in possible_objects(schema, target) {
                    queue.push_back((object, next.clone()));
                }
                // Interfaces and unions are reachable names too.
                reach.reachable.insert(target.clone());
            }
        }
        reach
    }
}
