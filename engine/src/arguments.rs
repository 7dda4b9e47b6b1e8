//! Argument values: what a field's function is called with, as the spec's
//! `CoerceArgumentValues()` gives them.

use apollo_compiler::ast::Value;
use apollo_compiler::executable::Field;
use apollo_compiler::response::{JsonMap, JsonValue as Json};
use apollo_compiler::schema::{FieldDefinition, Type};
use apollo_compiler::Schema;
use serde_json::Number;

/// Whether a field's arguments use variables (if not, their values are
/// the same for every request and are computed once, with the plan).
pub fn uses_variables(field: &Field) -> bool {
    field
        .arguments
        .iter()
        .any(|a| value_uses_variables(&a.value))
}

/// Whether an input value is or contains a variable.
pub fn value_uses_variables(value: &Value) -> bool {
    match value {
        Value::Variable(_) => true,
        Value::List(items) => items.iter().any(|i| value_uses_variables(i)),
        Value::Object(fields) => fields.iter().any(|(_, v)| value_uses_variables(v)),
        _ => false,
    }
}

/// The argument values of a field as JSON, as the spec's
/// `CoerceArgumentValues()` gives them: variables substituted (from already
/// coerced variable values), defaults filled in, also inside input objects,
/// and a single value given for a list wrapped in a list. Arguments that are
/// absent and have no default are left out.
pub fn argument_values(
    schema: &Schema,
    definition: &FieldDefinition,
    field: &Field,
    variables: &JsonMap,
) -> JsonMap {
    let mut out = JsonMap::new();
    for argument in &definition.arguments {
        let given = field
            .arguments
            .iter()
            .find(|a| a.name == argument.name)
            .and_then(|a| match a.value.as_ref() {
                Value::Variable(v) => variables.get(v.as_str()).cloned(),
                other => Some(input_value(schema, &argument.ty, other, variables)),
            });
        let value = given.or_else(|| {
            argument
                .default_value
                .as_ref()
                .map(|d| input_value(schema, &argument.ty, d, variables))
        });
        if let Some(value) = value {
            out.insert(argument.name.as_str(), value);
        }
    }
    out
}

/// A literal input value of type `ty` as JSON, with input-object defaults
/// and list wrapping applied.
fn input_value(schema: &Schema, ty: &Type, value: &Value, variables: &JsonMap) -> Json {
    match (value, ty) {
        (Value::Variable(v), _) => variables.get(v.as_str()).cloned().unwrap_or(Json::Null),
        (Value::Null, _) => Json::Null,
        (Value::List(items), Type::List(inner) | Type::NonNullList(inner)) => Json::Array(
            items
                .iter()
                .map(|item| input_value(schema, inner, item, variables))
                .collect(),
        ),
        (single, Type::List(inner) | Type::NonNullList(inner)) => {
            Json::Array(vec![input_value(schema, inner, single, variables)])
        }
        (Value::Object(given), Type::Named(name) | Type::NonNullNamed(name)) => {
            let Some(input) = schema.get_input_object(name) else {
                return to_json(value, variables);
            };
            let mut out = JsonMap::new();
            for (field_name, field) in &input.fields {
                let supplied = given
                    .iter()
                    .find(|(k, _)| k == field_name)
                    .map(|(_, v)| v.as_ref())
                    .filter(|v| match v {
                        // An input field given an absent variable is absent.
                        Value::Variable(var) => variables.contains_key(var.as_str()),
                        _ => true,
                    });
                let value = match (supplied, &field.default_value) {
                    (Some(v), _) => input_value(schema, &field.ty, v, variables),
                    (None, Some(default)) => input_value(schema, &field.ty, default, variables),
                    (None, None) => continue,
                };
                out.insert(field_name.as_str(), value);
            }
            Json::Object(out)
        }
        _ => to_json(value, variables),
    }
}

/// A GraphQL input value as JSON.
pub fn to_json(value: &Value, variables: &JsonMap) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Enum(name) => Json::String(name.as_str().into()),
        Value::Variable(v) => variables.get(v.as_str()).cloned().unwrap_or(Json::Null),
        Value::String(s) => Json::String(s.as_str().into()),
        Value::Float(f) => f
            .try_to_f64()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Json::Null, Json::Number),
        Value::Int(i) => match i.as_str().parse::<i64>() {
            Ok(n) => Json::Number(n.into()),
            Err(_) => i
                .try_to_f64()
                .ok()
                .and_then(Number::from_f64)
                .map_or(Json::Null, Json::Number),
        },
        Value::Boolean(b) => Json::Bool(*b),
        Value::List(items) => Json::Array(items.iter().map(|i| to_json(i, variables)).collect()),
        Value::Object(fields) => Json::Object(
            fields
                .iter()
                .filter_map(|(k, v)| match v.as_ref() {
                    // An input field given an absent variable is absent.
                    Value::Variable(var) if !variables.contains_key(var.as_str()) => None,
                    v => Some((k.as_str().into(), to_json(v, variables))),
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apollo_compiler::executable::Selection;
    use apollo_compiler::ExecutableDocument;
    use serde_json::json;

    const SDL: &str =
        "type Query { user(id: ID!, limit: Int = 10, tags: [String], page: Page): User }
        input Page { size: Int = 20 after: String sort: [String] = [\"id\"] }
        interface Named { name: String } type User implements Named { id: ID name: String }";

    fn setup(
        query: &str,
    ) -> (
        apollo_compiler::validation::Valid<Schema>,
        apollo_compiler::validation::Valid<ExecutableDocument>,
    ) {
        let schema = Schema::parse_and_validate(SDL, "s.graphql").unwrap();
        let doc = ExecutableDocument::parse_and_validate(&schema, query, "q.graphql").unwrap();
        (schema, doc)
    }

    #[test]
    fn arguments_use_variables_and_defaults() {
        let (schema, doc) =
            setup("query($id: ID!, $t: String) { user(id: $id, tags: [\"a\", $t]) { id } }");
        let op = doc.operations.get(None).unwrap();
        let Some(Selection::Field(field)) = op.selection_set.selections.first() else {
            panic!()
        };
        let def = schema.type_field("Query", "user").unwrap();
        let vars = Json::from(json!({"id": "7", "t": "b"}))
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(
            Json::Object(argument_values(&schema, def, field, &vars)),
            Json::from(json!({"id": "7", "limit": 10, "tags": ["a", "b"]}))
        );
    }

    #[test]
    fn literal_input_objects_get_their_defaults_and_lists_their_wrapping() {
        let (schema, doc) = setup(
            "query($a: String) { user(id: 1, tags: \"x\", page: {after: $a, sort: \"name\"}) { id } }",
        );
        let op = doc.operations.get(None).unwrap();
        let Some(Selection::Field(field)) = op.selection_set.selections.first() else {
            panic!()
        };
        let def = schema.type_field("Query", "user").unwrap();
        assert_eq!(
            Json::Object(argument_values(&schema, def, field, &JsonMap::new())),
            Json::from(
                json!({"id": 1, "limit": 10, "tags": ["x"], "page": {"size": 20, "sort": ["name"]}})
            )
        );
    }
}
