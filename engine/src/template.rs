//! Request templates: how a field's arguments and its parent object become a
//! function call's path, query string and JSON body.
//!
//! A template names values with placeholders in braces:
//!
//! * `{args.id}`: the field's (coerced) argument `id`; `{args.input.name}`
//!   reads into an input object;
//! * `{parent.id}`: the key `id` of the parent object as the parent's function
//!   returned it (raw JSON, so keys the schema does not expose work too);
//! * `{identity.uid}`: the key `uid` of the request's identity, as the
//!   identity step found it (`{identity}` alone: the identity itself).
//!
//! Every substituted value is percent-encoded, so an argument can never add a
//! path segment, a query parameter or a fragment.

use crate::answer::{Answer, Node, NodeId};
use apollo_compiler::response::{JsonMap, JsonValue as Value};
use apollo_compiler::Name;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::borrow::Cow;
use std::fmt;

/// Characters left as they are in a substituted value: RFC 3986 unreserved
/// characters except `.` (so that `..` can never name a parent directory).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// Where a placeholder reads its value from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// `{args.name.sub}`: a field argument, then keys inside it.
    Argument(Vec<String>),
    /// `{parent.key.sub}`: a key of the parent object's JSON, then keys inside it.
    Parent(Vec<String>),
    /// `{identity.key.sub}`: keys inside the request's identity (none:
    /// the identity itself).
    Identity(Vec<String>),
}

impl Source {
    /// Parse the inside of a placeholder, e.g. `args.id`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = text.trim().split('.').map(str::to_string);
        let root = parts.next().unwrap_or_default();
        let path: Vec<String> = parts.collect();
        if root == "identity" && !path.iter().any(String::is_empty) {
            return Ok(Source::Identity(path));
        }
        if path.is_empty() || path.iter().any(String::is_empty) {
            return Err(TemplateError::BadPlaceholder(text.to_string()));
        }
        match root.as_str() {
            "args" => Ok(Source::Argument(path)),
            "parent" => Ok(Source::Parent(path)),
            _ => Err(TemplateError::BadPlaceholder(text.to_string())),
        }
    }

    /// Look the value up; `None` when absent or null.
    pub fn lookup<'a>(&self, values: &Values<'a>) -> Option<Found<'a>> {
        match self {
            Source::Argument(path) => values
                .argument(path)
                .filter(|v| !v.is_null())
                .map(Found::Json),
            Source::Parent(path) => {
                let (answer, object) = values.parent?;
                answer
                    .lookup(object, path)
                    .filter(|n| !answer.is_null(*n))
                    .map(|n| Found::Node(answer, n))
            }
            Source::Identity(path) => {
                let mut value = values.identity?;
                for key in path {
                    value = value.as_object()?.get(key.as_str())?;
                }
                (!value.is_null()).then_some(Found::Json(value))
            }
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Argument(path) => write!(f, "{{args.{}}}", path.join(".")),
            Source::Parent(path) => write!(f, "{{parent.{}}}", path.join(".")),
            Source::Identity(path) if path.is_empty() => f.write_str("{identity}"),
            Source::Identity(path) => write!(f, "{{identity.{}}}", path.join(".")),
        }
    }
}

/// The values a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// The field's coerced arguments (for arguments in `bound`: their
    /// values when the variable is absent).
    pub args: &'a JsonMap,
    /// Arguments given as a variable, read from the request's coerced
    /// variables: `(argument, variable)` pairs, and the variables.
    pub bound: Option<(&'a [(Name, Name)], &'a JsonMap)>,
    /// The parent object: a node of the answer it came from (none for
    /// root fields).
    pub parent: Option<(&'a Answer, NodeId)>,
    /// The request's identity (none: no identity step, or an optional
    /// identity the client did not give).
    pub identity: Option<&'a Value>,
}

impl<'a> Values<'a> {
    /// The value at an argument path (`[argument, keys inside it...]`).
    fn argument(&self, path: &[String]) -> Option<&'a Value> {
        let (name, rest) = path.split_first()?;
        let from_variable = self.bound.and_then(|(bound, variables)| {
            let (_, variable) = bound
                .iter()
                .find(|(argument, _)| argument.as_str() == name.as_str())?;
            variables.get(variable.as_str())
        });
        let mut value = match from_variable {
            Some(value) => value,
            None => self.args.get(name.as_str())?,
        };
        for key in rest {
            value = value.as_object()?.get(key.as_str())?;
        }
        Some(value)
    }
}

/// A value a placeholder found: in the arguments, or in the parent's answer.
#[derive(Debug, Clone, Copy)]
pub enum Found<'a> {
    /// An argument value.
    Json(&'a Value),
    /// A node of the parent's answer.
    Node(&'a Answer, NodeId),
}

impl Found<'_> {
    /// The items of a list value.
    fn items(&self) -> Option<Vec<Found<'_>>> {
        match self {
            Found::Json(Value::Array(items)) => Some(items.iter().map(Found::Json).collect()),
            Found::Node(answer, node) if matches!(answer.node(*node), Node::Array(_)) => Some(
                answer
                    .items(*node)
                    .iter()
                    .map(|i| Found::Node(answer, *i))
                    .collect(),
            ),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        match self {
            Found::Json(v) => v.is_null(),
            Found::Node(answer, node) => answer.is_null(*node),
        }
    }

    /// The value as JSON (for a body).
    fn to_json(self) -> Value {
        match self {
            Found::Json(v) => v.clone(),
            Found::Node(answer, node) => answer.to_value(node),
        }
    }
}

/// A template that cannot be used, found when the configuration is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{...}` that is not `args.<name>`, `parent.<key>` or `identity.<key>`.
    BadPlaceholder(String),
    /// A `{` without its `}` or the reverse.
    UnbalancedBrace(String),
    /// A character that is not allowed unencoded in a path or query string.
    BadCharacter {
        /// The template text.
        template: String,
        /// The offending character.
        character: char,
    },
    /// The path does not start with `/`.
    RelativePath(String),
    /// The JSON body template is not valid JSON.
    BadBody(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::BadPlaceholder(p) => write!(
                f,
                "placeholder `{{{p}}}` must be `{{args.<argument>}}`, `{{parent.<key>}}` or `{{identity.<key>}}`"
            ),
            TemplateError::UnbalancedBrace(t) => write!(f, "unbalanced `{{` or `}}` in `{t}`"),
            TemplateError::BadCharacter {
                template,
                character,
            } => write!(
                f,
                "character {character:?} is not allowed in `{template}`; percent-encode it"
            ),
            TemplateError::RelativePath(t) => write!(f, "path `{t}` must start with `/`"),
            TemplateError::BadBody(e) => write!(f, "body template is not valid JSON: {e}"),
        }
    }
}

impl std::error::Error for TemplateError {}

/// A value could not be rendered into a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// A value a path needs is absent or null.
    Missing(Source),
    /// A path value that would change the path's meaning (`.` or `..`).
    DotSegment(Source),
    /// A header value with a line break or NUL, which could end the header
    /// and start another one.
    UnsafeHeader {
        /// The header's name.
        name: String,
    },
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Missing(s) => write!(f, "no value for {s}, which the request path needs"),
            RenderError::DotSegment(s) => {
                write!(f, "value of {s} may not be `.` or `..` in a request path")
            }
            RenderError::UnsafeHeader { name } => write!(
                f,
                "the value for header {name} contains a line break or NUL; the call is refused"
            ),
        }
    }
}

impl std::error::Error for RenderError {}

/// Literal text or a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Value(Source),
}

fn parse_pieces(text: &str, template: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let (literal, after) = rest.split_at(open);
        if literal.contains('}') {
            return Err(TemplateError::UnbalancedBrace(template.to_string()));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal.to_string()));
        }
        let after = after.get(1..).unwrap_or_default();
        let close = after
            .find('}')
            .ok_or_else(|| TemplateError::UnbalancedBrace(template.to_string()))?;
        let (inside, tail) = after.split_at(close);
        if inside.contains('{') {
            return Err(TemplateError::UnbalancedBrace(template.to_string()));
        }
        pieces.push(Piece::Value(Source::parse(inside)?));
        rest = tail.get(1..).unwrap_or_default();
    }
    if rest.contains('}') {
        return Err(TemplateError::UnbalancedBrace(template.to_string()));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_string()));
    }
    Ok(pieces)
}

fn check_literals(pieces: &[Piece], template: &str, extra: &[char]) -> Result<(), TemplateError> {
    for piece in pieces {
        if let Piece::Literal(text) = piece {
            let bad = text.chars().find(|c| {
                !(c.is_ascii_alphanumeric() || "-._~!$'()*+,;:@%".contains(*c) || extra.contains(c))
            });
            if let Some(character) = bad {
                return Err(TemplateError::BadCharacter {
                    template: template.to_string(),
                    character,
                });
            }
        }
    }
    Ok(())
}

fn sources(pieces: &[Piece]) -> impl Iterator<Item = &Source> {
    pieces.iter().filter_map(|p| match p {
        Piece::Value(s) => Some(s),
        Piece::Literal(_) => None,
    })
}

/// The text a scalar contributes to a URL, before encoding (borrowed when
/// it is a string).
fn scalar_text(value: Found<'_>) -> Cow<'_, str> {
    match value {
        Found::Json(Value::String(s)) => Cow::Borrowed(s.as_str()),
        Found::Json(Value::Null) => Cow::Borrowed(""),
        Found::Json(other) => Cow::Owned(other.to_string()),
        Found::Node(answer, node) => match answer.node(node) {
            Node::Str(span) => Cow::Borrowed(answer.text(span)),
            Node::Null => Cow::Borrowed(""),
            Node::Array(_) | Node::Object(_) => {
                let mut out = Vec::new();
                answer.write_json(node, &mut out);
                Cow::Owned(String::from_utf8(out).unwrap_or_default())
            }
            _ => {
                let mut buffer = String::new();
                answer.scalar_text(node, &mut buffer);
                Cow::Owned(buffer)
            }
        },
    }
}

/// Percent-encode one value for a path segment or a query parameter.
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// A value percent-encoded for a path segment or a query parameter, as
/// pieces to append (no allocation).
pub fn encode(text: &str) -> impl Iterator<Item = &str> {
    utf8_percent_encode(text, COMPONENT)
}

/// The template as written in `@http(path:)` (for tools that show a
/// resolver, such as the `graphql-aggregator` CLI): its placeholders as
/// `{args.*}`/`{parent.*}`; a query parameter written without `=` is shown
/// with one (`?flag` as `?flag=`), which renders the same.
impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_pieces(f, &self.path)?;
        for (i, (name, value)) in self.query.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            f.write_str(name)?;
            f.write_str("=")?;
            write_pieces(f, value)?;
        }
        Ok(())
    }
}

fn write_pieces(f: &mut fmt::Formatter<'_>, pieces: &[Piece]) -> fmt::Result {
    for piece in pieces {
        match piece {
            Piece::Literal(text) => f.write_str(text)?,
            Piece::Value(source) => write!(f, "{source}")?,
        }
    }
    Ok(())
}

/// A path-and-query template such as `/users/{args.id}/orders?limit={args.limit}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    path: Vec<Piece>,
    query: Vec<(String, Vec<Piece>)>,
}

impl PathTemplate {
    /// Parse and check a template.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let (path_text, query_text) = match template.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (template, None),
        };
        if !path_text.starts_with('/') {
            return Err(TemplateError::RelativePath(template.to_string()));
        }
        let path = parse_pieces(path_text, template)?;
        check_literals(&path, template, &['/', '='])?;
        let mut query = Vec::new();
        for pair in query_text
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name_pieces = parse_pieces(name, template)?;
            if sources(&name_pieces).next().is_some() {
                return Err(TemplateError::BadPlaceholder(format!(
                    "{name} (query parameter names cannot be placeholders)"
                )));
            }
            check_literals(&name_pieces, template, &[])?;
            let value_pieces = parse_pieces(value, template)?;
            check_literals(&value_pieces, template, &['/', '?'])?;
            query.push((name.to_string(), value_pieces));
        }
        Ok(PathTemplate { path, query })
    }

    /// Every placeholder in the template.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        sources(&self.path).chain(self.query.iter().flat_map(|(_, v)| sources(v)))
    }

    /// Render the path and query string.
    pub fn render(&self, values: &Values<'_>) -> Result<String, RenderError> {
        let mut out = String::new();
        self.render_into(values, &mut out)?;
        Ok(out)
    }

    /// Render the path and query string at the end of `out`.
    pub fn render_into(&self, values: &Values<'_>, out: &mut String) -> Result<(), RenderError> {
        for piece in &self.path {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Value(source) => {
                    let value = source
                        .lookup(values)
                        .ok_or_else(|| RenderError::Missing(source.clone()))?;
                    let text = scalar_text(value);
                    if text == "." || text == ".." || text.is_empty() {
                        return Err(RenderError::DotSegment(source.clone()));
                    }
                    out.extend(utf8_percent_encode(&text, COMPONENT));
                }
            }
        }
        let mut separator = '?';
        let mut start_pair = |out: &mut String, name: &str| {
            out.push(separator);
            separator = '&';
            out.push_str(name);
            out.push('=');
        };
        for (name, pieces) in &self.query {
            if let [Piece::Value(source)] = pieces.as_slice() {
                let found = source.lookup(values);
                match (found, found.as_ref().and_then(Found::items)) {
                    (None, _) => {}
                    (Some(_), Some(items)) => {
                        for item in items.into_iter().filter(|i| !i.is_null()) {
                            start_pair(out, name);
                            out.extend(utf8_percent_encode(&scalar_text(item), COMPONENT));
                        }
                    }
                    (Some(value), None) => {
                        start_pair(out, name);
                        out.extend(utf8_percent_encode(&scalar_text(value), COMPONENT));
                    }
                }
                continue;
            }
            start_pair(out, name);
            for piece in pieces {
                match piece {
                    Piece::Literal(literal) => out.push_str(literal),
                    Piece::Value(source) => {
                        if let Some(value) = source.lookup(values) {
                            out.extend(utf8_percent_encode(&scalar_text(value), COMPONENT));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A header template: a name and a value with placeholders, interpolated as
/// text (not percent-encoded) and refused when the result holds a line break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTemplate {
    /// The header's name, lower case.
    pub name: String,
    value: Vec<Piece>,
}

impl HeaderTemplate {
    /// Parse a header template; the name must be a plain header name.
    pub fn parse(name: &str, value: &str) -> Result<Self, TemplateError> {
        let lower = name.to_ascii_lowercase();
        if lower.is_empty()
            || !lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(TemplateError::BadCharacter {
                template: name.to_string(),
                character: name
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
                    .unwrap_or(' '),
            });
        }
        let value_pieces = parse_pieces(value, value)?;
        if value_pieces
            .iter()
            .any(|p| matches!(p, Piece::Literal(t) if !crate::upstream::is_safe_header_value(t)))
        {
            return Err(TemplateError::BadCharacter {
                template: value.to_string(),
                character: '\n',
            });
        }
        Ok(HeaderTemplate {
            name: lower,
            value: value_pieces,
        })
    }

    /// Every placeholder in the value.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        sources(&self.value)
    }

    /// The header value; `None` (the header is not sent) when a value it
    /// needs is absent, rather than a half-empty `Bearer `.
    pub fn render(&self, values: &Values<'_>) -> Result<Option<String>, RenderError> {
        let mut text = String::new();
        for piece in &self.value {
            match piece {
                Piece::Literal(t) => text.push_str(t),
                Piece::Value(s) => match s.lookup(values) {
                    Some(value) => text.push_str(&scalar_text(value)),
                    None => return Ok(None),
                },
            }
        }
        if crate::upstream::is_safe_header_value(&text) {
            Ok(Some(text))
        } else {
            Err(RenderError::UnsafeHeader {
                name: self.name.clone(),
            })
        }
    }
}

/// A JSON body template. String leaves that are exactly one placeholder
/// (`"{args.input}"`) are replaced by the value as JSON (objects, lists and
/// numbers keep their type; absent values become `null`); placeholders inside
/// longer strings are interpolated as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTemplate {
    root: BodyNode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyNode {
    Literal(Value),
    Whole(Source),
    Text(Vec<Piece>),
    Array(Vec<BodyNode>),
    Object(Vec<(String, BodyNode)>),
}

impl BodyTemplate {
    /// Parse a JSON body template.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let json: Value = serde_json::from_str::<Value>(template)
            .map_err(|e| TemplateError::BadBody(e.to_string()))?;
        Ok(BodyTemplate {
            root: Self::node(json)?,
        })
    }

    fn node(value: Value) -> Result<BodyNode, TemplateError> {
        Ok(match value {
            Value::String(text) => {
                let text = text.as_str().to_string();
                let pieces = parse_pieces(&text, &text)?;
                match pieces.as_slice() {
                    [Piece::Value(source)] => BodyNode::Whole(source.clone()),
                    _ if sources(&pieces).next().is_none() => {
                        BodyNode::Literal(Value::String(text.into()))
                    }
                    _ => BodyNode::Text(pieces),
                }
            }
            Value::Array(items) => BodyNode::Array(
                items
                    .into_iter()
                    .map(Self::node)
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => BodyNode::Object(
                map.into_iter()
                    .map(|(k, v)| Ok((k.as_str().to_string(), Self::node(v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => BodyNode::Literal(other),
        })
    }

    /// Every placeholder in the template.
    pub fn sources(&self) -> Vec<&Source> {
        fn walk<'a>(node: &'a BodyNode, out: &mut Vec<&'a Source>) {
            match node {
                BodyNode::Literal(_) => {}
                BodyNode::Whole(s) => out.push(s),
                BodyNode::Text(pieces) => out.extend(sources(pieces)),
                BodyNode::Array(items) => items.iter().for_each(|i| walk(i, out)),
                BodyNode::Object(entries) => entries.iter().for_each(|(_, v)| walk(v, out)),
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// Render the body as JSON bytes.
    pub fn render(&self, values: &Values<'_>) -> Vec<u8> {
        fn walk(node: &BodyNode, values: &Values<'_>) -> Value {
            match node {
                BodyNode::Literal(v) => v.clone(),
                BodyNode::Whole(s) => s.lookup(values).map_or(Value::Null, Found::to_json),
                BodyNode::Text(pieces) => Value::String(
                    pieces
                        .iter()
                        .map(|p| match p {
                            Piece::Literal(t) => t.clone(),
                            Piece::Value(s) => s
                                .lookup(values)
                                .map(scalar_text)
                                .unwrap_or_default()
                                .into_owned(),
                        })
                        .collect::<String>()
                        .into(),
                ),
                BodyNode::Array(items) => {
                    Value::Array(items.iter().map(|i| walk(i, values)).collect())
                }
                BodyNode::Object(entries) => Value::Object(
                    entries
                        .iter()
                        .map(|(k, v)| (k.as_str().into(), walk(v, values)))
                        .collect(),
                ),
            }
        }
        walk(&self.root, values).to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_template_displays_as_written() {
        for text in [
            "/users",
            "/user-profile?id={args.id}",
            "/u/{parent.id}/o?a=1&b={args.x.y}",
        ] {
            assert_eq!(PathTemplate::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn a_header_missing_its_value_is_not_sent() {
        let header = HeaderTemplate::parse("Authorization", "Bearer {args.token}").unwrap();
        assert_eq!(header.name, "authorization");
        let (with, none, evil) = (
            map(json!({"token": "t1"})),
            JsonMap::new(),
            map(json!({"token": "t\r\nx: y"})),
        );
        let values = |args| Values {
            args,
            bound: None,
            parent: None,
            identity: None,
        };
        assert_eq!(header.render(&values(&with)), Ok(Some("Bearer t1".into())));
        assert_eq!(header.render(&values(&none)), Ok(None));
        assert!(header.render(&values(&evil)).is_err());
        assert!(HeaderTemplate::parse("bad name", "x").is_err());
    }
    use serde_json::json;

    fn map(v: serde_json::Value) -> JsonMap {
        Value::from(v).as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn bound_arguments_read_the_variables_and_fall_back_to_the_constants() {
        let template = PathTemplate::parse("/u?id={args.id}&page={args.page.size}").unwrap();
        let constants = map(json!({"id": "default", "page": {"size": 20}}));
        let bound = [
            (Name::new_unchecked("id"), Name::new_unchecked("userId")),
            (Name::new_unchecked("page"), Name::new_unchecked("paging")),
        ];
        let render = |variables: serde_json::Value| {
            let variables = map(variables);
            template.render(&Values {
                args: &constants,
                bound: Some((&bound, &variables)),
                parent: None,
                identity: None,
            })
        };
        assert_eq!(
            render(json!({"userId": "7", "paging": {"size": 5}})).unwrap(),
            "/u?id=7&page=5"
        );
        assert_eq!(render(json!({})).unwrap(), "/u?id=default&page=20");
        assert_eq!(
            render(json!({"userId": null})).unwrap(),
            "/u?page=20",
            "a variable given as null is null, not the default"
        );
    }

    fn render(
        template: &str,
        args: serde_json::Value,
        parent: serde_json::Value,
    ) -> Result<String, RenderError> {
        let args = map(args);
        let parent = Answer::parse(parent.to_string().as_bytes()).unwrap();
        PathTemplate::parse(template).unwrap().render(&Values {
            args: &args,
            bound: None,
            parent: Some((&parent, parent.root())),
            identity: None,
        })
    }

    #[test]
    fn substitutes_arguments_and_parent_keys() {
        assert_eq!(
            render("/user-profile?id={args.id}", json!({"id": "1"}), json!({})).unwrap(),
            "/user-profile?id=1"
        );
        assert_eq!(
            render("/users/{parent.id}/orders", json!({}), json!({"id": 7})).unwrap(),
            "/users/7/orders"
        );
    }

    #[test]
    fn encodes_values_so_they_cannot_change_the_url() {
        assert_eq!(
            render(
                "/u?id={args.id}",
                json!({"id": "../admin?x=1&y=2"}),
                json!({})
            )
            .unwrap(),
            "/u?id=%2E%2E%2Fadmin%3Fx%3D1%26y%3D2"
        );
        assert_eq!(
            render("/u/{args.id}", json!({"id": "a/b c"}), json!({})).unwrap(),
            "/u/a%2Fb%20c"
        );
        assert_eq!(
            render("/u/{args.id}", json!({"id": ".."}), json!({})),
            Err(RenderError::DotSegment(Source::Argument(vec!["id".into()])))
        );
    }

    #[test]
    fn absent_query_values_are_left_out_and_lists_repeat() {
        assert_eq!(
            render("/o?limit={args.limit}&a=1", json!({}), json!({})).unwrap(),
            "/o?a=1"
        );
        assert_eq!(
            render("/o?id={args.ids}", json!({"ids": ["1", "2"]}), json!({})).unwrap(),
            "/o?id=1&id=2"
        );
        assert_eq!(
            render("/u/{args.id}", json!({}), json!({})),
            Err(RenderError::Missing(Source::Argument(vec!["id".into()])))
        );
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(matches!(
            PathTemplate::parse("/u/{id}"),
            Err(TemplateError::BadPlaceholder(_))
        ));
        assert!(matches!(
            PathTemplate::parse("/u/{args.id"),
            Err(TemplateError::UnbalancedBrace(_))
        ));
        assert!(matches!(
            PathTemplate::parse("u"),
            Err(TemplateError::RelativePath(_))
        ));
        assert!(matches!(
            PathTemplate::parse("/a b"),
            Err(TemplateError::BadCharacter { character: ' ', .. })
        ));
    }

    #[test]
    fn body_keeps_json_types_and_interpolates_text() {
        let template =
            BodyTemplate::parse(r#"{"order": "{args.input}", "note": "for {args.user}", "n": 1}"#)
                .unwrap();
        let args = map(json!({"input": {"amount": 9.5}, "user": "Al"}));
        let body = template.render(&Values {
            args: &args,
            bound: None,
            parent: None,
            identity: None,
        });
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            json!({"order": {"amount": 9.5}, "note": "for Al", "n": 1})
        );
    }
}
