//! The spec's `ResolveAbstractType()`: which object type a function's JSON
//! object is, when the schema says an interface or a union.
//!
//! In order: the type's `@discriminator` key (mapped through its `types`),
//! the object's `__typename`, and the only possible type when there is just
//! one. Anything else is a field error that says what to configure.

use crate::answer::{Answer, NodeId};
use crate::error::{ErrorCode, FieldError};
use crate::schema::Discriminator;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::{Name, Schema};
use std::collections::HashMap;

/// The object type of a field's value: `named` for an object type, or the
/// concrete type of `abstract_type` read from the object (`object`, a node
/// of `answer`).
pub fn object_type(
    gateway: &crate::config::Gateway,
    named: &Name,
    abstract_type: Option<&Name>,
    answer: &Answer,
    object: NodeId,
) -> Result<Name, FieldError> {
    match abstract_type {
        None => Ok(named.clone()),
        Some(declared) => concrete_type(
            &gateway.schema,
            &gateway.discriminators,
            declared,
            answer,
            object,
        ),
    }
}

/// The concrete object type of `object` (an object node of `answer`), a
/// value of the declared type.
pub fn concrete_type(
    schema: &Schema,
    discriminators: &HashMap<Name, Discriminator>,
    declared: &Name,
    answer: &Answer,
    object: NodeId,
) -> Result<Name, FieldError> {
    if let Some(ExtendedType::Object(_)) = schema.types.get(declared) {
        return Ok(declared.clone());
    }
    let mut buffer = String::new();
    if let Some(discriminator) = discriminators.get(declared) {
        let found = answer
            .lookup(object, &discriminator.field)
            .filter(|n| {
                matches!(
                    answer.node(*n),
                    crate::answer::Node::Str(_)
                        | crate::answer::Node::Int(_)
                        | crate::answer::Node::UInt(_)
                        | crate::answer::Node::Float(_)
                )
            })
            .and_then(|n| answer.scalar_text(n, &mut buffer))
            .map(str::to_string);
        if let Some(value) = found {
            let type_name = discriminator.type_for(&value);
            return possible(schema, declared, type_name).ok_or_else(|| {
                unresolved(
                    schema,
                    declared,
                    format!(
                        "the function's `{}` is {value:?}, which names no possible type of {declared}",
                        discriminator.field.join(".")
                    ),
                )
            });
        }
    }
    let typename = answer
        .get(object, "__typename")
        .and_then(|n| match answer.node(n) {
            crate::answer::Node::Str(span) => Some(answer.text(span)),
            _ => None,
        });
    if let Some(typename) = typename {
        return possible(schema, declared, typename).ok_or_else(|| {
            unresolved(
                schema,
                declared,
                format!("the function answered __typename {typename:?}, which is not a possible type of {declared}"),
            )
        });
    }
    let candidates = possible_types(schema, declared);
    if let [only] = candidates.as_slice() {
        return Ok(only.clone());
    }
    let how = match discriminators.get(declared) {
        Some(d) => format!("no `{}` and no `__typename`", d.field.join(".")),
        None => format!(
            "no `__typename` (add `@discriminator(field: \"...\")` to {declared} to read the type from another key)"
        ),
    };
    Err(unresolved(
        schema,
        declared,
        format!("the function's object has {how}"),
    ))
}

/// `type_name` as a name, if it is a possible type of `declared`.
fn possible(schema: &Schema, declared: &Name, type_name: &str) -> Option<Name> {
    if schema.is_subtype(declared, type_name) {
        Name::new(type_name).ok()
    } else {
        None
    }
}

/// Every object type an interface or union can be, in schema order.
fn possible_types(schema: &Schema, declared: &Name) -> Vec<Name> {
    schema
        .types
        .iter()
        .filter(|(name, ty)| ty.is_object() && schema.is_subtype(declared, name))
        .map(|(name, _)| name.clone())
        .collect()
}

fn unresolved(schema: &Schema, declared: &Name, why: String) -> FieldError {
    let names: Vec<String> = possible_types(schema, declared)
        .iter()
        .map(Name::to_string)
        .collect();
    FieldError::new(
        ErrorCode::AbstractTypeUnresolved,
        format!(
            "cannot decide the concrete type of {declared} ({}): {why}",
            names.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use apollo_compiler::Schema;

    const SDL: &str = "type Query { a: R i: I }
        union R = User | Item  union Solo = User
        interface I { id: ID } type User implements I { id: ID } type Item implements I { id: ID }";

    fn object(json: serde_json::Value) -> Answer {
        Answer::parse(json.to_string().as_bytes()).unwrap()
    }

    fn name(n: &str) -> Name {
        Name::new(n).unwrap()
    }

    #[test]
    fn discriminator_then_typename_then_the_only_type() {
        let schema = Schema::parse_and_validate(SDL, "s.graphql").unwrap();
        let mut discriminators = HashMap::new();
        discriminators.insert(
            name("R"),
            Discriminator {
                field: vec!["meta".into(), "kind".into()],
                types: vec![("user".into(), name("User"))],
            },
        );
        let decide = |t: &str, json| {
            let answer = object(json);
            concrete_type(&schema, &discriminators, &name(t), &answer, answer.root())
        };
        let kind = serde_json::json!({"meta": {"kind": "user"}, "__typename": "Item"});
        assert_eq!(decide("R", kind).unwrap(), "User");
        assert_eq!(
            decide("R", serde_json::json!({"meta": {"kind": "Item"}})).unwrap(),
            "Item"
        );
        assert_eq!(
            decide("I", serde_json::json!({"__typename": "Item"})).unwrap(),
            "Item"
        );
        assert_eq!(decide("Solo", serde_json::json!({})).unwrap(), "User");
        assert_eq!(
            decide("User", serde_json::json!({"__typename": "Item"})).unwrap(),
            "User"
        );

        let e = decide("R", serde_json::json!({"meta": {"kind": "gadget"}})).unwrap_err();
        assert!(
            e.message.contains("\"gadget\"") && e.message.contains("User, Item"),
            "{e:?}"
        );
        let e = decide("I", serde_json::json!({"id": 1})).unwrap_err();
        assert!(e.message.contains("@discriminator"), "{e:?}");
        let e = decide("I", serde_json::json!({"__typename": "Query"})).unwrap_err();
        assert_eq!(e.code, ErrorCode::AbstractTypeUnresolved);
    }
}
