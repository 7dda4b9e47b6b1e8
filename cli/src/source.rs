//! A configuration file (YAML or JSON) and its schema, loaded the way the
//! filter will see them: one JSON document with the SDL inline. Keeps what
//! is needed to point back into the files: where each key is, where each
//! line of the SDL is, and which key each byte of the JSON came from.

use crate::problem::{Location, Position, Problem};
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// The configuration's language, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.json`.
    Json,
    /// `.yaml` or `.yml`.
    Yaml,
}

impl Format {
    /// The format of `path`, by its extension.
    pub fn of(path: &Path) -> Option<Format> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("json") => Some(Format::Json),
            Some("yaml" | "yml") => Some(Format::Yaml),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        })
    }
}

/// Why a configuration file could not be turned into the filter's JSON.
#[derive(Debug)]
pub enum SourceError {
    /// The file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file name ends in neither `.yaml`, `.yml` nor `.json`.
    UnknownFormat(PathBuf),
    /// The text does not parse.
    Syntax {
        /// The language it should be in.
        format: Format,
        /// The parser's message, without its position.
        message: String,
        /// Where the parser stopped.
        position: Position,
    },
    /// The document is not a mapping of keys.
    NotAnObject,
    /// Both `schema` and `schema_file` are given.
    BothSchemas(Position),
    /// Neither `schema` nor `schema_file` is given.
    NoSchema,
    /// `schema_file` is not a string.
    SchemaFileNotText(Position),
    /// The schema file cannot be read.
    SchemaFile {
        /// Where `schema_file` is in the configuration.
        position: Position,
        /// The file, as resolved.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl SourceError {
    /// The error as a problem in `config` (the configuration file).
    pub fn problem(&self, config: &Path) -> Problem {
        let at = |position| Location::new(config, position);
        match self {
            SourceError::Read { path, error } => {
                Problem::error(at(Position::START), format!("cannot read {}: {error}", path.display()))
            }
            SourceError::UnknownFormat(path) => Problem::error(
                at(Position::START),
                format!("{} is neither YAML nor JSON", path.display()),
            )
            .with_hint("name the configuration *.yaml, *.yml or *.json"),
            SourceError::Syntax {
                format,
                message,
                position,
            } => Problem::error(at(*position), format!("{format} syntax: {message}")),
            SourceError::NotAnObject => Problem::error(
                at(Position::START),
                "the configuration must be a mapping of keys (schema_file, upstreams, limits, …)",
            ),
            SourceError::BothSchemas(position) => Problem::error(
                at(*position),
                "both `schema` and `schema_file` are set; the schema must come from one place",
            )
            .with_hint("keep `schema_file: schema.graphql` and remove the inline `schema`"),
            SourceError::NoSchema => Problem::error(
                at(Position::START),
                "no schema: set `schema_file` (a GraphQL file next to this one) or an inline `schema`",
            )
            .with_hint("schema_file: schema.graphql"),
            SourceError::SchemaFileNotText(position) => Problem::error(
                at(*position),
                "`schema_file` must be a path, e.g. schema.graphql",
            ),
            SourceError::SchemaFile {
                position,
                path,
                error,
            } => Problem::error(
                at(*position),
                format!("cannot read schema file {}: {error}", path.display()),
            )
            .with_hint("`schema_file` is relative to the directory of the configuration file"),
        }
    }
}

/// Where the SDL came from, to point into it.
#[derive(Debug, Clone)]
pub enum SchemaOrigin {
    /// `schema_file`: its positions are the SDL's.
    File(PathBuf),
    /// `schema` inline: SDL positions mapped into the configuration file
    /// when the text could be followed (a JSON string, a YAML literal
    /// block); otherwise the `schema` key.
    Inline(InlineMap),
}

/// How the inline SDL's characters map to the configuration text.
#[derive(Debug, Clone)]
pub enum InlineMap {
    /// The byte offset in the configuration of each character of the SDL
    /// (a quoted string, escapes decoded).
    Quoted(Vec<usize>),
    /// A literal block (`schema: |`): SDL line `n` is configuration line
    /// `first_line + n - 1`, indented by `indent` columns.
    Block {
        /// The configuration line of the SDL's first line.
        first_line: usize,
        /// The block's indentation.
        indent: usize,
    },
    /// Not followed: positions are reported at the `schema` key.
    Key(Position),
}

/// A key of the engine's JSON, or an item of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A key.
    Key(String),
    /// A list item.
    Index(usize),
}

/// A loaded configuration.
#[derive(Debug)]
pub struct ConfigSource {
    /// The configuration file, as named.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// The SDL.
    pub sdl: String,
    /// Where the SDL came from.
    pub origin: SchemaOrigin,
    /// The configuration as the filter receives it: JSON, SDL inline.
    pub json: String,
    /// The key path each part of `json` starts, by byte offset.
    marks: Vec<(usize, Vec<Segment>)>,
}

impl ConfigSource {
    /// Read and parse a configuration file and its schema file.
    pub fn load(path: &Path) -> Result<ConfigSource, SourceError> {
        let format = Format::of(path).ok_or_else(|| SourceError::UnknownFormat(path.into()))?;
        let text = std::fs::read_to_string(path).map_err(|error| SourceError::Read {
            path: path.into(),
            error,
        })?;
        let mut value = parse(&text, format)?;
        let object = value.as_object_mut().ok_or(SourceError::NotAnObject)?;
        let inline = object.get("schema").cloned();
        let (sdl, origin) = match (inline, object.get("schema_file").cloned()) {
            (Some(_), Some(_)) => {
                return Err(SourceError::BothSchemas(find_key(&text, &["schema"])))
            }
            (None, None) => return Err(SourceError::NoSchema),
            (None, Some(file)) => {
                let position = find_key(&text, &["schema_file"]);
                let name = file
                    .as_str()
                    .ok_or(SourceError::SchemaFileNotText(position))?;
                let schema_path = path.parent().unwrap_or(Path::new("")).join(name);
                let sdl = std::fs::read_to_string(&schema_path).map_err(|error| {
                    SourceError::SchemaFile {
                        position,
                        path: schema_path.clone(),
                        error,
                    }
                })?;
                // `schema` where `schema_file` was: the filter's JSON keeps
                // the file's order.
                let rest = std::mem::take(object);
                for (key, item) in rest {
                    if key == "schema_file" {
                        object.insert("schema".into(), Value::String(sdl.clone()));
                    } else {
                        object.insert(key, item);
                    }
                }
                (sdl, SchemaOrigin::File(schema_path))
            }
            // Not a string: the engine says so, at the key.
            (Some(inline), None) => {
                let sdl = inline.as_str().unwrap_or_default().to_string();
                let map = inline_map(&text, format, &sdl);
                (sdl, SchemaOrigin::Inline(map))
            }
        };
        let mut json = String::new();
        let mut marks = Vec::new();
        write_json(&value, &mut Vec::new(), &mut json, &mut marks);
        Ok(ConfigSource {
            path: path.into(),
            text,
            sdl,
            origin,
            json,
            marks,
        })
    }

    /// A location in the configuration file.
    pub fn at(&self, position: Position) -> Location {
        Location::new(&self.path, position)
    }

    /// Where the key at `path` is in the configuration file (the first
    /// occurrence of each key after its parent's; list items at their
    /// list's key). The deepest key found, or the file's start.
    pub fn locate(&self, path: &[&str]) -> Location {
        self.at(find_key(&self.text, path))
    }

    /// Where a position of the SDL (as the engine reports it) is.
    pub fn schema_at(&self, line: usize, column: usize) -> Location {
        match &self.origin {
            SchemaOrigin::File(path) => Location::new(path, Position { line, column }),
            SchemaOrigin::Inline(InlineMap::Block { first_line, indent }) => self.at(Position {
                line: first_line + line.saturating_sub(1),
                column: column + indent,
            }),
            SchemaOrigin::Inline(InlineMap::Quoted(offsets)) => {
                match char_index(&self.sdl, line, column).and_then(|i| offsets.get(i)) {
                    Some(offset) => self.at(Position::of_offset(&self.text, *offset)),
                    None => self.locate(&["schema"]),
                }
            }
            SchemaOrigin::Inline(InlineMap::Key(position)) => self.at(*position),
        }
    }

    /// Whether SDL positions are exact (false: reported at the `schema` key).
    pub fn schema_positions_exact(&self) -> bool {
        !matches!(self.origin, SchemaOrigin::Inline(InlineMap::Key(_)))
    }

    /// The key path of the engine's JSON at a 1-based column of its one
    /// line (as serde reports it).
    pub fn json_path_at(&self, column: usize) -> Vec<Segment> {
        let offset = column.saturating_sub(1);
        self.marks
            .iter()
            .take_while(|(start, _)| *start <= offset)
            .last()
            .map(|(_, path)| path.clone())
            .unwrap_or_default()
    }

    /// [`ConfigSource::locate`] for a path of the engine's JSON.
    pub fn locate_segments(&self, path: &[Segment]) -> Location {
        let keys: Vec<&str> = path
            .iter()
            .map_while(|s| match s {
                Segment::Key(k) => Some(k.as_str()),
                Segment::Index(_) => None,
            })
            .collect();
        self.locate(&keys)
    }

    /// Where a type's definition is in the SDL, if it can be found.
    pub fn type_at(&self, name: &str) -> Option<Location> {
        for keyword in ["type", "interface", "union", "input", "enum", "scalar"] {
            let needle = format!("{keyword} {name}");
            let mut from = 0;
            while let Some(found) = self.sdl.get(from..).and_then(|s| s.find(&needle)) {
                let start = from + found;
                let end = start + needle.len();
                let before_ok = start == 0
                    || !self
                        .sdl
                        .get(..start)
                        .and_then(|s| s.chars().last())
                        .is_some_and(is_name_char);
                let after_ok = !self
                    .sdl
                    .get(end..)
                    .and_then(|s| s.chars().next())
                    .is_some_and(is_name_char);
                if before_ok && after_ok {
                    let p = Position::of_offset(&self.sdl, start + keyword.len() + 1);
                    return Some(self.schema_at(p.line, p.column));
                }
                from = end;
            }
        }
        None
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The configuration text as a JSON value, or where it stops parsing.
fn parse(text: &str, format: Format) -> Result<Value, SourceError> {
    match format {
        Format::Json => serde_json::from_str(text).map_err(|e| SourceError::Syntax {
            format,
            message: without_position(&e.to_string()),
            position: Position {
                line: e.line().max(1),
                column: e.column().max(1),
            },
        }),
        Format::Yaml => serde_norway::from_str(text).map_err(|e| SourceError::Syntax {
            format,
            message: without_position(&e.to_string()),
            position: e.location().map_or(Position::START, |l| Position {
                line: l.line().max(1),
                column: l.column().max(1),
            }),
        }),
    }
}

/// A parser's message without its positions (` at line L column C`).
pub fn without_position(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i + " at line ".len()..).unwrap_or_default();
        let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let line = digits(after);
        let tail = after.get(line..).unwrap_or_default();
        match tail.strip_prefix(" column ") {
            Some(column) if line > 0 => rest = column.get(digits(column)..).unwrap_or_default(),
            _ => {
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where `path` is in `text`: each key searched after the previous one.
fn find_key(text: &str, path: &[&str]) -> Position {
    let mut from = 0;
    let mut found = None;
    for key in path {
        match find_one_key(text, key, from) {
            Some(offset) => {
                found = Some(offset);
                from = offset + key.len();
            }
            None => break,
        }
    }
    found.map_or(Position::START, |offset| Position::of_offset(text, offset))
}

/// The offset of the first `key` written as a key (`key:`, `"key":`,
/// `'key':`) at or after `from`.
fn find_one_key(text: &str, key: &str, from: usize) -> Option<usize> {
    let mut start = from;
    while let Some(found) = text.get(start..).and_then(|s| s.find(key)) {
        let at = start + found;
        let end = at + key.len();
        let before = text.get(..at).and_then(|s| s.chars().last());
        let quoted = matches!(before, Some('"' | '\''));
        let plain_start = before.is_none_or(|c| c.is_whitespace() || c == '{' || c == ',');
        let mut rest = text.get(end..).unwrap_or_default();
        if quoted {
            rest = rest.strip_prefix(['"', '\'']).unwrap_or("\u{0}");
        }
        if (quoted || plain_start) && rest.trim_start_matches([' ', '\t']).starts_with(':') {
            return Some(if quoted { at - 1 } else { at });
        }
        start = end;
    }
    None
}

/// The index (in characters) of a 1-based line and column of `text`.
fn char_index(text: &str, line: usize, column: usize) -> Option<usize> {
    let mut index = 0;
    for (n, l) in text.split('\n').enumerate() {
        if n + 1 == line {
            return Some(index + column.saturating_sub(1));
        }
        index += l.chars().count() + 1;
    }
    None
}

/// How the inline `schema` maps to the configuration text.
fn inline_map(text: &str, format: Format, sdl: &str) -> InlineMap {
    let key = find_key(text, &["schema"]);
    let Some(key_offset) = find_one_key(text, "schema", 0) else {
        return InlineMap::Key(key);
    };
    let after = text.get(key_offset..).unwrap_or_default();
    let Some(colon) = after.find(':') else {
        return InlineMap::Key(key);
    };
    let value_offset = key_offset + colon + 1;
    let value = text.get(value_offset..).unwrap_or_default();
    let trimmed = value.trim_start_matches([' ', '\t']);
    let value_offset = value_offset + (value.len() - trimmed.len());
    if trimmed.starts_with('"') {
        if let Some(offsets) = quoted_offsets(text, value_offset + 1, sdl) {
            return InlineMap::Quoted(offsets);
        }
    } else if format == Format::Yaml && trimmed.starts_with('|') {
        let first_line = key.line + 1;
        let lines: Vec<&str> = text.split('\n').collect();
        let indent = lines
            .iter()
            .skip(first_line - 1)
            .find(|l| !l.trim().is_empty())
            .map_or(0, |l| l.len() - l.trim_start_matches(' ').len());
        // Followed only if every SDL line is where the block puts it.
        let matches = sdl.split('\n').enumerate().all(|(n, sdl_line)| {
            let config_line = lines.get(first_line - 1 + n).copied().unwrap_or_default();
            sdl_line.is_empty() || config_line.get(indent..) == Some(sdl_line)
        });
        if matches {
            return InlineMap::Block { first_line, indent };
        }
    }
    InlineMap::Key(key)
}

/// The offset of each character of a double-quoted string starting at
/// `start` (after its quote), if decoding it gives `expected`.
fn quoted_offsets(text: &str, start: usize, expected: &str) -> Option<Vec<usize>> {
    let mut offsets = Vec::new();
    let mut decoded = String::new();
    let mut chars = text.get(start..)?.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let offset = start + i;
        match c {
            '"' => break,
            '\\' => {
                let (_, escaped) = chars.next()?;
                let value = match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'u' => {
                        let hex: String = (0..4)
                            .filter_map(|_| chars.next().map(|(_, h)| h))
                            .collect();
                        char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
                    }
                    other => other,
                };
                decoded.push(value);
            }
            other => decoded.push(other),
        }
        offsets.push(offset);
    }
    (decoded == expected).then_some(offsets)
}

/// Writes `value` as compact JSON, marking where each key's part starts
/// (and, after an object or a list, that its parent's part goes on).
fn write_json(
    value: &Value,
    path: &mut Vec<Segment>,
    out: &mut String,
    marks: &mut Vec<(usize, Vec<Segment>)>,
) {
    match value {
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                path.push(Segment::Key(key.clone()));
                marks.push((out.len(), path.clone()));
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_json(item, path, out, marks);
                path.pop();
            }
            marks.push((out.len(), path.clone()));
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                path.push(Segment::Index(i));
                marks.push((out.len(), path.clone()));
                write_json(item, path, out, marks);
                path.pop();
            }
            marks.push((out.len(), path.clone()));
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_after_their_parents() {
        let text = "a:\n  x: 1\nupstreams:\n  b:\n    x: 2\n";
        assert_eq!(
            find_key(text, &["upstreams", "b", "x"]),
            Position { line: 5, column: 5 }
        );
        let json = r#"{"schema_file": "s", "schema": "t"}"#;
        assert_eq!(find_key(json, &["schema"]).column, 22);
    }

    #[test]
    fn positions_are_taken_out_of_parser_messages() {
        assert_eq!(
            without_position("did not find expected key at line 5 column 4, while parsing a block mapping at line 3 column 3"),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(
            without_position("trailing comma at line 4 column 39"),
            "trailing comma"
        );
    }

    #[test]
    fn quoted_strings_map_back_to_their_characters() {
        let text = r#"{"schema": "a\nbc"}"#;
        let offsets = quoted_offsets(text, 12, "a\nbc").unwrap();
        assert_eq!(offsets, [12, 13, 15, 16]);
        assert!(quoted_offsets(text, 12, "other").is_none());
    }
}
