//! The configured GraphQL schema: the `@http` mapping directive, the
//! resolvers it declares, and the client-facing schema without it.

use crate::config::ConfigError;
use crate::key_path;
use crate::template::{BodyTemplate, HeaderTemplate, PathTemplate, Source};
use crate::upstream::{is_hop_by_hop, RESERVED};
use apollo_compiler::ast::Value;
use apollo_compiler::schema::{Component, ExtendedType, FieldDefinition};
use apollo_compiler::validation::{DiagnosticList, Valid};
use apollo_compiler::{Name, Node, Schema};
use std::collections::HashMap;

/// Definitions the filter adds in front of the configured SDL, so that the
/// schema can use `@http` without declaring it. They are removed from the
/// client-facing schema (validation and introspection never see them).
pub const PRELUDE: &str = r#"
"Resolve this field by calling a function over HTTP."
directive @http(
  "Name of an entry in the configuration's `upstreams` table."
  upstream: String!
  "HTTP method."
  method: String = "GET"
  "Path and query template, e.g. `/user-profile?id={args.id}`."
  path: String!
  "JSON body template, e.g. `{\"order\": \"{args.input}\"}`."
  body: String
  "Batch the calls a list of parents would make into one call."
  batch: HttpBatch
  "Headers to send, with templated values, e.g. `[{name: \"x-user\", value: \"{args.user}\"}]`."
  headers: [HttpHeader!]
  "Where the field's value is in the answer (a dotted key path, e.g. `result.items`), after the upstream's envelope is unwrapped."
  select: String
  "Whether identical calls of one request may share one answer. GET calls always do; other methods only with `dedupe: true`. Mutation root fields never do: each one runs."
  dedupe: Boolean
  "Keep this field's answers in the answer cache shared across requests for `ttl_ms`, whatever their `cache-control` allows (but `no-store`, `no-cache`, `private`)."
  cache: HttpCache
) on FIELD_DEFINITION

"How long a field's answers are kept."
input HttpCache {
  "Milliseconds, 1 to 86400000."
  ttl_ms: Int!
}

"Read this field from another key of the parent object: `user_name`, or a nested `address.city`."
directive @from(
  "The key path in the parent's JSON."
  path: String!
) on FIELD_DEFINITION

"A header a function call carries."
input HttpHeader {
  "The header's name."
  name: String!
  "Its value: text with `{args.*}`/`{parent.*}` placeholders (a line break in the result refuses the call)."
  value: String!
}

"Read the concrete type of an interface or union from a key of the function's JSON (without it: `__typename`)."
directive @discriminator(
  "The key (a dotted path) whose value names the type, e.g. `kind`."
  field: String!
  "Values of that key mapped to type names, e.g. `{user: \"User\"}`. Values not listed must be type names."
  types: DiscriminatorTypes
) on INTERFACE | UNION

"An object of `value: \"TypeName\"` pairs."
scalar DiscriminatorTypes

"How a field whose function accepts many keys at once is batched."
input HttpBatch {
  "The parent object's key whose values are sent together, e.g. `id`."
  key: String!
  "The query parameter that carries the keys."
  param: String!
  "What joins the keys in that parameter."
  separator: String = ","
  "When the function answers a list: the item key holding the parent's key. When absent the answer must be an object keyed by the parent's key."
  itemKey: String
  "A key the answer leaves out: `\"null\"` (no data: null, or `[]` for a list field) or `\"error\"` (`UPSTREAM_BAD_RESPONSE`)."
  missing: String = "null"
}
"#;

const DIRECTIVE: &str = "http";
const BATCH_INPUT: &str = "HttpBatch";
const HEADER_INPUT: &str = "HttpHeader";
const CACHE_INPUT: &str = "HttpCache";
const DISCRIMINATOR: &str = "discriminator";
const FROM: &str = "from";
const DISCRIMINATOR_TYPES: &str = "DiscriminatorTypes";
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Identifies a resolver inside [`Resolvers`].
pub type ResolverId = usize;

/// How one schema field is resolved by a function call.
#[derive(Debug, Clone)]
pub struct Resolver {
    /// `Type.field`, for messages.
    pub coordinate: String,
    /// The upstream's name in the configuration.
    pub upstream: String,
    /// HTTP method, upper case.
    pub method: std::sync::Arc<str>,
    /// Path and query template.
    pub path: PathTemplate,
    /// JSON body template, if any.
    pub body: Option<BodyTemplate>,
    /// Batch form, if the function accepts many keys at once.
    pub batch: Option<Batch>,
    /// Headers with templated values.
    pub headers: Vec<HeaderTemplate>,
    /// Where the value is in the (unwrapped) answer; empty: the whole answer.
    pub select: Vec<String>,
    /// Whether identical calls of one request share one answer: always for
    /// GET, for other methods only with `dedupe: true`. Mutation root
    /// fields are never de-duplicated, whatever this says.
    pub dedupe: bool,
    /// `@http(cache: {ttl_ms})`: how long answers are kept in the answer
    /// cache; `None`: as the upstream says.
    pub cache_ttl_ms: Option<u64>,
}

impl Resolver {
    /// Every placeholder of its path, body and headers.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.path
            .sources()
            .chain(self.body.iter().flat_map(|b| b.sources()))
            .chain(self.headers.iter().flat_map(|h| h.sources()))
    }
}

/// The batch form of a resolver: one call for many parents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The key of the parent object whose values are sent (a dotted path).
    pub key: Vec<String>,
    /// The query parameter carrying the keys.
    pub param: String,
    /// What joins the keys.
    pub separator: String,
    /// The separator as it is written in the query string (percent-encoded,
    /// but for `,`).
    pub encoded_separator: String,
    /// The query parameter's name, percent-encoded.
    pub encoded_param: String,
    /// For list answers: the item key that holds a parent's key. `None`: the
    /// answer is an object keyed by the parent's key.
    pub item_key: Option<Vec<String>>,
    /// What a key the answer leaves out gives.
    pub missing: Missing,
}

/// What a parent gets when the batched answer has nothing for its key (the
/// object form has no member of that name; the list form has no item whose
/// `itemKey` is that key). The rule is the same for both forms.
///
/// A parent that has no batch key itself (absent, null, or not a scalar)
/// sends nothing and gets null, whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missing {
    /// `"null"` (the default): no data. The field is null, or `[]` when it
    /// is a list; no error.
    #[default]
    Null,
    /// `"error"`: the field is null with an `UPSTREAM_BAD_RESPONSE` error
    /// that names the key and the upstream.
    Error,
}

/// How the concrete type of an interface or union is read from a
/// function's JSON (`@discriminator`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discriminator {
    /// The key (a dotted path) whose value names the type.
    pub field: Vec<String>,
    /// Values of that key mapped to object type names. Values not listed
    /// must be type names themselves.
    pub types: Vec<(String, Name)>,
}

impl Discriminator {
    /// The type name a discriminator value stands for.
    pub fn type_for<'a>(&'a self, value: &'a str) -> &'a str {
        self.types
            .iter()
            .find(|(v, _)| v == value)
            .map_or(value, |(_, t)| t.as_str())
    }
}

/// All resolvers of a schema, looked up by type and field name.
#[derive(Debug, Clone, Default)]
pub struct Resolvers {
    list: Vec<Resolver>,
    by_field: HashMap<(Name, Name), ResolverId>,
}

impl Resolvers {
    /// The resolver of `type_name.field_name`, if that field has `@http`.
    pub fn find(&self, type_name: &Name, field_name: &Name) -> Option<(ResolverId, &Resolver)> {
        let id = *self
            .by_field
            .get(&(type_name.clone(), field_name.clone()))?;
        Some((id, self.list.get(id)?))
    }

    /// A resolver by id.
    pub fn get(&self, id: ResolverId) -> Option<&Resolver> {
        self.list.get(id)
    }

    /// Every resolver, in the order the schema maps them.
    pub fn iter(&self) -> impl Iterator<Item = &Resolver> {
        self.list.iter()
    }

    /// How many fields are mapped to functions.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when no field is mapped.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The result of loading the configured SDL.
#[derive(Debug)]
pub struct LoadedSchema {
    /// The schema clients see: the configured one without `@http`.
    pub api: Valid<Schema>,
    /// The field-to-function mapping.
    pub resolvers: Resolvers,
    /// `@discriminator`s of interfaces and unions, by type name.
    pub discriminators: HashMap<Name, Discriminator>,
    /// Fields read from another key of their parent (`@from`), by type and field.
    pub renames: HashMap<(Name, Name), Vec<String>>,
    /// Problems that do not stop the configuration from loading.
    pub warnings: Vec<String>,
}

/// Parse and validate the SDL, extract its resolvers and check them against
/// the upstream names the configuration declares.
pub fn load(sdl: &str, upstreams: &[&str]) -> Result<LoadedSchema, ConfigError> {
    let full = Schema::builder()
        .parse(PRELUDE, "graphql-aggregator-prelude.graphql")
        .parse(sdl, "schema.graphql")
        .build()
        .map_err(|e| ConfigError::Schema(diagnostics(&e.errors)))?
        .validate()
        .map_err(|e| ConfigError::Schema(diagnostics(&e.errors)))?;
    let mut resolvers = Resolvers::default();
    let mut warnings = Vec::new();
    let roots: Vec<Name> = full
        .schema_definition
        .iter_root_operations()
        .map(|(_, name)| name.name.clone())
        .collect();
    let mutation_root = full
        .schema_definition
        .mutation
        .as_ref()
        .map(|m| m.name.clone());
    if full.schema_definition.query.is_none() {
        return Err(ConfigError::Schema("the schema has no Query type".into()));
    }
    let mut discriminators = HashMap::new();
    let mut renames = HashMap::new();
    for (type_name, ty) in &full.types {
        if let Some(directive) = ty.directives().get(DISCRIMINATOR) {
            let found = discriminator(&full, type_name, directive).map_err(|problem| {
                ConfigError::Type {
                    name: type_name.to_string(),
                    problem,
                }
            })?;
            discriminators.insert(type_name.clone(), found);
        }
        let fields = match ty {
            ExtendedType::Object(o) => &o.fields,
            ExtendedType::Interface(i) => &i.fields,
            _ => continue,
        };
        let is_root = roots.contains(type_name);
        for (field_name, field) in fields {
            let coordinate = format!("{type_name}.{field_name}");
            let at = location(&full, field);
            if let Some(from) = field.directives.get(FROM) {
                if ty.is_interface() {
                    return Err(ConfigError::Field {
                        coordinate,
                        at,
                        problem: "@from belongs on the fields of object types, not interfaces"
                            .into(),
                    });
                }
                if field.directives.has(DIRECTIVE) {
                    return Err(ConfigError::Field {
                        coordinate,
                        at,
                        problem: "@from and @http exclude each other: a field is read from its parent or fetched".into(),
                    });
                }
                if is_root {
                    return Err(ConfigError::Field {
                        coordinate,
                        at,
                        problem: "@from on a root field: root fields have no parent object".into(),
                    });
                }
                let path = string_arg(from, "path").unwrap_or_default();
                let path = key_path::parse(&path).map_err(|problem| ConfigError::Field {
                    coordinate: coordinate.clone(),
                    at: at.clone(),
                    problem: format!("@from: {problem}"),
                })?;
                renames.insert((type_name.clone(), field_name.clone()), path);
                continue;
            }
            match field.directives.get(DIRECTIVE) {
                Some(directive) => {
                    if ty.is_interface() {
                        return Err(ConfigError::Field {
                            coordinate,
                            at,
                            problem: "@http belongs on the fields of object types, not interfaces"
                                .into(),
                        });
                    }
                    let resolver = resolver(&coordinate, field, directive, is_root, upstreams)
                        .map_err(|problem| ConfigError::Field {
                            coordinate: coordinate.clone(),
                            at: at.clone(),
                            problem,
                        })?;
                    let asks_dedupe = matches!(
                        directive
                            .specified_argument_by_name("dedupe")
                            .map(|v| v.as_ref()),
                        Some(Value::Boolean(true))
                    );
                    if asks_dedupe && mutation_root.as_ref() == Some(type_name) {
                        warnings.push(format!(
                            "{coordinate}{at}: `dedupe: true` is ignored on a mutation root \
                             field: every mutation field runs, one after another"
                        ));
                    }
                    resolvers.by_field.insert(
                        (type_name.clone(), field_name.clone()),
                        resolvers.list.len(),
                    );
                    resolvers.list.push(resolver);
                }
                None if is_root && field.ty.is_non_null() => {
                    return Err(ConfigError::Field {
                        coordinate,
                        at,
                        problem: "a non-null root field needs an @http directive: \
                                  root fields have no parent object to read from"
                            .into(),
                    })
                }
                None if is_root => warnings.push(format!(
                    "{coordinate}{at} has no @http directive and will always be null"
                )),
                None => {}
            }
        }
    }
    let api = api_schema(full.into_inner())?;
    Ok(LoadedSchema {
        api,
        resolvers,
        discriminators,
        renames,
        warnings,
    })
}

fn diagnostics(list: &DiagnosticList) -> String {
    list.iter()
        .map(|d| {
            let json = d.to_json();
            match json.locations.first() {
                Some(l) => format!("{} (line {}, column {})", json.message, l.line, l.column),
                None => json.message,
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn location(schema: &Schema, field: &Component<FieldDefinition>) -> String {
    field
        .location()
        .and_then(|span| span.line_column(&schema.sources))
        .map(|lc| format!(" (line {}, column {})", lc.line, lc.column))
        .unwrap_or_default()
}

fn string_arg(directive: &apollo_compiler::ast::Directive, name: &str) -> Option<String> {
    directive
        .specified_argument_by_name(name)
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

fn resolver(
    coordinate: &str,
    field: &FieldDefinition,
    directive: &apollo_compiler::ast::Directive,
    is_root: bool,
    upstreams: &[&str],
) -> Result<Resolver, String> {
    let upstream = string_arg(directive, "upstream").unwrap_or_default();
    if !upstreams.contains(&upstream.as_str()) {
        return Err(format!(
            "@http names upstream {upstream:?}, which is not in the configuration's `upstreams` \
             (known: {})",
            upstreams.join(", ")
        ));
    }
    let method = string_arg(directive, "method")
        .unwrap_or_else(|| "GET".to_string())
        .to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(format!(
            "method {method:?} is not one of {}",
            METHODS.join(", ")
        ));
    }
    let path_text = string_arg(directive, "path").unwrap_or_default();
    let path = PathTemplate::parse(&path_text).map_err(|e| e.to_string())?;
    let body = string_arg(directive, "body")
        .map(|b| BodyTemplate::parse(&b))
        .transpose()
        .map_err(|e| e.to_string())?;
    let batch = match directive
        .specified_argument_by_name("batch")
        .map(|v| v.as_ref())
    {
        Some(Value::Object(entries)) => Some(batch(entries)?),
        _ => None,
    };
    let mut headers = Vec::new();
    if let Some(Value::List(items)) = directive
        .specified_argument_by_name("headers")
        .map(|v| v.as_ref())
    {
        for item in items {
            let Value::Object(entries) = item.as_ref() else {
                continue;
            };
            let get = |key: &str| {
                entries
                    .iter()
                    .find(|(n, _)| n == key)
                    .and_then(|(_, v)| v.as_str())
                    .unwrap_or_default()
            };
            let header =
                HeaderTemplate::parse(get("name"), get("value")).map_err(|e| e.to_string())?;
            if is_hop_by_hop(&header.name) || RESERVED.contains(&header.name.as_str()) {
                return Err(format!(
                    "header {} is set by the gateway and cannot be configured",
                    header.name
                ));
            }
            headers.push(header);
        }
    }
    let sources = path
        .sources()
        .chain(body.iter().flat_map(|b| b.sources()))
        .chain(headers.iter().flat_map(|h| h.sources()));
    for source in sources {
        match source {
            Source::Argument(p) => {
                let name = p.first().map(String::as_str).unwrap_or_default();
                if !field.arguments.iter().any(|a| a.name == name) {
                    return Err(format!(
                        "template uses {source} but the field has no argument `{name}`"
                    ));
                }
            }
            Source::Parent(_) if is_root => {
                return Err(format!(
                    "template uses {source} but a root field has no parent"
                ))
            }
            Source::Parent(_) if batch.is_some() => {
                return Err(format!(
                    "template uses {source} in a batched field; the batch key is sent instead"
                ))
            }
            Source::Parent(_) | Source::Identity(_) => {}
        }
    }
    if batch.is_some() && is_root {
        return Err("a root field cannot be batched: it has no parents".into());
    }
    let dedupe = match directive
        .specified_argument_by_name("dedupe")
        .map(|v| v.as_ref())
    {
        Some(Value::Boolean(false)) if method == "GET" => {
            return Err(
                "`dedupe: false` on a GET field: identical GET calls of a request are \
                        always made once (a GET must be safe to share); use another method \
                        if every call must run"
                    .into(),
            )
        }
        Some(Value::Boolean(dedupe)) => *dedupe || method == "GET",
        _ => method == "GET",
    };
    Ok(Resolver {
        coordinate: coordinate.to_string(),
        upstream,
        method: method.as_str().into(),
        path,
        body,
        batch,
        headers,
        select: match string_arg(directive, "select") {
            Some(path) => key_path::parse(&path).map_err(|e| format!("select: {e}"))?,
            None => Vec::new(),
        },
        dedupe,
        cache_ttl_ms: cache_ttl(directive)?,
    })
}

/// `@http(cache: {ttl_ms})`, checked.
fn cache_ttl(directive: &apollo_compiler::ast::Directive) -> Result<Option<u64>, String> {
    let Some(Value::Object(entries)) = directive
        .specified_argument_by_name("cache")
        .map(|v| v.as_ref())
    else {
        return Ok(None);
    };
    let ttl = entries
        .iter()
        .find(|(name, _)| name == "ttl_ms")
        .and_then(|(_, value)| value.to_i32());
    match ttl {
        Some(ms) if ms > 0 && (ms as u64) <= crate::config::MAX_MILLIS => Ok(Some(ms as u64)),
        _ => Err("`cache: {ttl_ms}` must be between 1 and 86400000 milliseconds".into()),
    }
}

fn batch(entries: &[(Name, Node<Value>)]) -> Result<Batch, String> {
    let get = |name: &str| {
        entries
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_str())
            .map(str::to_string)
    };
    let dotted = |text: String| key_path::parse(&text).map_err(|e| format!("batch key: {e}"));
    let key = dotted(get("key").unwrap_or_default())?;
    let param = get("param").unwrap_or_default();
    if param.is_empty()
        || !param
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.[]".contains(c))
    {
        return Err(format!(
            "batch param {param:?} is not a plain query parameter name"
        ));
    }
    Ok(Batch {
        key,
        param,
        encoded_param: crate::template::encode_component(&get("param").unwrap_or_default()),
        encoded_separator: crate::template::encode_component(
            &get("separator").unwrap_or_else(|| ",".to_string()),
        )
        .replace("%2C", ","),
        separator: get("separator").unwrap_or_else(|| ",".to_string()),
        item_key: get("itemKey").map(dotted).transpose()?,
        missing: match get("missing").as_deref() {
            None | Some("null") => Missing::Null,
            Some("error") => Missing::Error,
            Some(other) => {
                return Err(format!(
                    "batch missing {other:?} is not one of \"null\" (a key the answer leaves \
                     out is null, or [] for a list) and \"error\" (it is an \
                     UPSTREAM_BAD_RESPONSE error)"
                ))
            }
        },
    })
}

/// A `@discriminator` on `type_name`, checked against its possible types.
fn discriminator(
    schema: &Schema,
    type_name: &Name,
    directive: &apollo_compiler::ast::Directive,
) -> Result<Discriminator, String> {
    let field_text = string_arg(directive, "field").unwrap_or_default();
    let field = key_path::parse(&field_text).map_err(|e| format!("@discriminator field: {e}"))?;
    let mut types = Vec::new();
    match directive
        .specified_argument_by_name("types")
        .map(|v| v.as_ref())
    {
        None | Some(Value::Null) => {}
        Some(Value::Object(entries)) => {
            for (value, target) in entries {
                let Some(target) = target.as_str() else {
                    return Err(format!(
                        "@discriminator types: the value of `{value}` must be a type name in quotes"
                    ));
                };
                if !schema.is_subtype(type_name, target) {
                    return Err(format!(
                        "@discriminator types maps `{value}` to {target:?}, which is not a possible type of {type_name}"
                    ));
                }
                let target = Name::new(target).map_err(|e| e.to_string())?;
                types.push((value.to_string(), target));
            }
        }
        Some(_) => {
            return Err("@discriminator types must be an object such as {user: \"User\"}".into())
        }
    }
    Ok(Discriminator { field, types })
}

/// The schema clients see: the prelude's definitions and every `@http` and
/// `@discriminator` application removed.
fn api_schema(mut schema: Schema) -> Result<Valid<Schema>, ConfigError> {
    schema.directive_definitions.shift_remove(DIRECTIVE);
    schema.directive_definitions.shift_remove(DISCRIMINATOR);
    schema.directive_definitions.shift_remove(FROM);
    schema.types.shift_remove(BATCH_INPUT);
    schema.types.shift_remove(HEADER_INPUT);
    schema.types.shift_remove(CACHE_INPUT);
    schema.types.shift_remove(DISCRIMINATOR_TYPES);
    for ty in schema.types.values_mut() {
        match ty {
            ExtendedType::Interface(i) if i.directives.has(DISCRIMINATOR) => {
                i.make_mut().directives.retain(|d| d.name != DISCRIMINATOR);
            }
            ExtendedType::Union(u) if u.directives.has(DISCRIMINATOR) => {
                u.make_mut().directives.retain(|d| d.name != DISCRIMINATOR);
            }
            _ => {}
        }
        let fields = match ty {
            ExtendedType::Object(o) => &mut o.make_mut().fields,
            ExtendedType::Interface(i) => &mut i.make_mut().fields,
            _ => continue,
        };
        for field in fields.values_mut() {
            if field.directives.has(DIRECTIVE) || field.directives.has(FROM) {
                field
                    .make_mut()
                    .directives
                    .0
                    .retain(|d| d.name != DIRECTIVE && d.name != FROM);
            }
        }
    }
    schema
        .validate()
        .map_err(|e| ConfigError::Schema(diagnostics(&e.errors)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDL: &str = r#"
        type Query { user(id: ID!): User @http(upstream: "profile", path: "/user-profile?id={args.id}") }
        type User { id: ID! name: String
          orders: [Order] @http(upstream: "orders", path: "/user-orders-batch", batch: {key: "id", param: "ids"}) }
        type Order { id: ID! amount: Float }
    "#;

    #[test]
    fn extracts_resolvers_and_strips_the_directive() {
        let loaded = load(SDL, &["profile", "orders"]).unwrap();
        assert_eq!(loaded.resolvers.len(), 2);
        let (_, orders) = loaded
            .resolvers
            .find(&Name::new("User").unwrap(), &Name::new("orders").unwrap())
            .unwrap();
        assert_eq!(orders.batch.as_ref().unwrap().param, "ids");
        let printed = loaded.api.to_string();
        assert!(!printed.contains("@http"), "{printed}");
        assert!(!printed.contains("HttpBatch"), "{printed}");
    }

    fn problem(sdl: &str) -> String {
        load(sdl, &["profile", "orders"]).unwrap_err().to_string()
    }

    #[test]
    fn names_the_field_and_the_problem() {
        let e = problem(r#"type Query { a: String @http(upstream: "nope", path: "/a") }"#);
        assert!(
            e.contains("Query.a") && e.contains("\"nope\"") && e.contains("line 1"),
            "{e}"
        );
        let e = problem(
            r#"type Query { a(id: ID): String @http(upstream: "profile", path: "/a?x={args.other}") }"#,
        );
        assert!(e.contains("no argument `other`"), "{e}");
        let e = problem(r#"type Query { a: String! }"#);
        assert!(
            e.contains("Query.a") && e.contains("non-null root field"),
            "{e}"
        );
        let e = problem(
            r#"type Query { a: String @http(upstream: "profile", path: "/a?x={parent.id}") }"#,
        );
        assert!(e.contains("root field has no parent"), "{e}");
        let e = problem("type Query { a: Strin }");
        assert!(e.contains("Strin"), "{e}");
    }

    #[test]
    fn the_filters_own_declarations_never_reach_clients() {
        let sdl =
            r#"type Query { a: String @http(upstream: "fn", path: "/a", cache: {ttl_ms: 1000}) }"#;
        let printed = load(sdl, &["fn"]).unwrap().api.to_string();
        for own in [
            "@http",
            "HttpBatch",
            "HttpHeader",
            "HttpCache",
            "DiscriminatorTypes",
            "@from",
        ] {
            assert!(!printed.contains(own), "{own} in {printed}");
        }
    }

    #[test]
    fn discriminators_are_checked_and_stripped() {
        let sdl = r#"type Query { s: [R] @http(upstream: "profile", path: "/s") }
            union R @discriminator(field: "meta.kind", types: {user: "User"}) = User | Item
            type User { id: ID } type Item { id: ID }"#;
        let loaded = load(sdl, &["profile"]).unwrap();
        let d = &loaded.discriminators[&Name::new("R").unwrap()];
        assert_eq!(d.field, ["meta", "kind"]);
        assert_eq!(d.type_for("user"), "User");
        assert_eq!(d.type_for("Item"), "Item");
        let printed = loaded.api.to_string();
        assert!(
            !printed.contains("discriminator") && !printed.contains("DiscriminatorTypes"),
            "{printed}"
        );

        let e = load(
            &sdl.replace(r#"user: "User""#, r#"user: "Query""#),
            &["profile"],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"schema type R: @discriminator types maps `user` to "Query", which is not a possible type of R"#
        );
        let e = load(&sdl.replace("meta.kind", "meta."), &["profile"]).unwrap_err();
        assert!(e.to_string().contains("not a key path"), "{e}");
    }

    #[test]
    fn nullable_root_field_without_directive_is_a_warning() {
        let loaded = load("type Query { a: String }", &[]).unwrap();
        assert_eq!(loaded.warnings.len(), 1);
    }
}
