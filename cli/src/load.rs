//! A configuration file loaded by the engine exactly as the filter loads
//! it (`Gateway::from_json` on the same JSON), with the engine's errors and
//! warnings pointed back at the configuration and schema files.

use crate::problem::{Location, Position, Problem};
use crate::source::{without_position, ConfigSource, Segment};
use graphql_aggregator_engine::config::{ConfigError, Gateway};
use std::path::Path;

/// A configuration the engine accepted, with its sources and the engine's
/// own warnings.
#[derive(Debug)]
pub struct Loaded {
    /// The files.
    pub source: ConfigSource,
    /// The checked configuration, as the filter would hold it.
    pub gateway: Gateway,
    /// The engine's warnings, located.
    pub warnings: Vec<Problem>,
}

/// Load `path`: the problems that keep the filter from using it, or the
/// configuration.
pub fn load(path: &Path) -> Result<Loaded, Vec<Problem>> {
    let source = ConfigSource::load(path).map_err(|e| vec![e.problem(path)])?;
    match Gateway::from_json(&source.json) {
        Ok(gateway) => {
            let warnings = gateway
                .warnings
                .iter()
                .map(|w| engine_warning(&source, w))
                .collect();
            Ok(Loaded {
                source,
                gateway,
                warnings,
            })
        }
        Err(error) => Err(engine_error(&source, &error)),
    }
}

/// One of the engine's warnings (`Type.field (line L, column C) …`).
fn engine_warning(source: &ConfigSource, warning: &str) -> Problem {
    match sdl_positions(warning).first() {
        Some((message, Some((line, column)))) => {
            let rest = warning
                .split_once(')')
                .map(|(_, rest)| rest)
                .unwrap_or_default();
            let text = format!("{}{rest}", message.trim_end());
            Problem::warning(source.schema_at(*line, *column), text)
        }
        _ => Problem::warning(source.locate(&["schema"]), warning),
    }
}

/// The engine's error, as problems at their places.
pub fn engine_error(source: &ConfigSource, error: &ConfigError) -> Vec<Problem> {
    match error {
        ConfigError::Json(message) => vec![json_error(source, message)],
        ConfigError::Schema(message) => sdl_positions(message)
            .into_iter()
            .map(|(text, at)| {
                let (location, text) = schema_place(source, at, &text);
                Problem::error(location, format!("invalid schema: {text}"))
            })
            .collect(),
        ConfigError::Field {
            coordinate,
            at,
            problem,
        } => {
            let position = sdl_positions(at).first().and_then(|(_, p)| *p);
            let (location, text) =
                schema_place(source, position, &format!("{coordinate}: {problem}"));
            let mut found = Problem::error(location, text);
            if problem.contains("not in the configuration's `upstreams`") {
                found = found.with_hint(format!(
                    "declare that upstream under `upstreams:` in {}, or name one that is declared",
                    source.path.display()
                ));
            } else if problem.contains("has no argument") {
                found = found.with_hint("`{args.NAME}` must name an argument of the field; `{parent.KEY}` reads the parent object");
            }
            vec![found]
        }
        ConfigError::Type { name, problem } => {
            let location = source
                .type_at(name)
                .unwrap_or_else(|| source.schema_at(1, 1));
            vec![Problem::error(location, format!("{name}: {problem}"))]
        }
        ConfigError::Upstream { name, problem } => {
            // The setting the problem names (`target`, `envelope.success`…),
            // else the upstream's own key.
            let setting = backticked(problem)
                .into_iter()
                .map(|s| s.split('.').map(str::to_string).collect::<Vec<_>>())
                .find(|keys| {
                    let mut path = vec!["upstreams", name.as_str()];
                    path.extend(keys.iter().map(String::as_str));
                    let full = source.locate(&path);
                    full != source.locate(&["upstreams", name])
                });
            let mut path = vec!["upstreams", name.as_str()];
            if let Some(keys) = &setting {
                path.extend(keys.iter().map(String::as_str));
            }
            vec![Problem::error(
                source.locate(&path),
                format!("upstreams.{name}: {problem}"),
            )]
        }
    }
}

/// An error of the configuration's shape (serde's, or the engine's own).
fn json_error(source: &ConfigSource, message: &str) -> Problem {
    let text = without_position(message);
    if let Some(column) = serde_column(message) {
        let path = source.json_path_at(column);
        let shown: Vec<String> = path
            .iter()
            .map(|s| match s {
                Segment::Key(k) => k.clone(),
                Segment::Index(i) => i.to_string(),
            })
            .collect();
        let text = if shown.is_empty() {
            text
        } else {
            format!("{}: {text}", shown.join("."))
        };
        return Problem::error(source.locate_segments(&path), text);
    }
    // The engine's own checks start with the setting's dotted name.
    let name: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let keys: Vec<&str> = name.split('.').filter(|k| !k.is_empty()).collect();
    let location = if keys.is_empty() {
        source.at(Position::START)
    } else {
        source.locate(&keys)
    };
    Problem::error(location, text)
}

/// The column of serde's ` at line 1 column C`.
fn serde_column(message: &str) -> Option<usize> {
    let (_, tail) = message.rsplit_once(" at line ")?;
    let (_, column) = tail.split_once(" column ")?;
    column.trim().parse().ok()
}

/// Words of `text` between backticks.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Where an SDL problem is; the message says the SDL position itself when
/// the configuration's inline text could not be followed.
fn schema_place(
    source: &ConfigSource,
    at: Option<(usize, usize)>,
    text: &str,
) -> (Location, String) {
    match at {
        Some((line, column)) if source.schema_positions_exact() => {
            (source.schema_at(line, column), text.to_string())
        }
        Some((line, column)) => (
            source.schema_at(line, column),
            format!("{text} (schema line {line}, column {column})"),
        ),
        None => (source.schema_at(1, 1), text.to_string()),
    }
}

/// Splits `message (line L, column C); message (line L, column C)` into
/// its messages and their SDL positions.
pub fn sdl_positions(text: &str) -> Vec<(String, Option<(usize, usize)>)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(" (line ") {
        let after = rest.get(open + 7..).unwrap_or_default();
        let parsed = after.split_once(')').and_then(|(inside, tail)| {
            let (line, column) = inside.split_once(", column ")?;
            Some((line.parse().ok()?, column.parse().ok()?, tail))
        });
        match parsed {
            Some((line, column, tail)) => {
                let message = rest.get(..open).unwrap_or_default().to_string();
                found.push((message, Some((line, column))));
                rest = tail.strip_prefix("; ").unwrap_or(tail);
            }
            None => break,
        }
    }
    if !rest.trim().is_empty() {
        found.push((rest.to_string(), None));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_diagnostics_with_their_positions() {
        let found = sdl_positions("a (line 1, column 2); b c (line 3, column 4)");
        assert_eq!(
            found,
            [
                ("a".to_string(), Some((1, 2))),
                ("b c".to_string(), Some((3, 4)))
            ]
        );
        assert_eq!(sdl_positions("no position"), [("no position".into(), None)]);
    }
}
