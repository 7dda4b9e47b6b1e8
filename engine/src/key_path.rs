//! Dotted key paths into a function's JSON (`data.user`, `address.city`):
//! how the configuration writes them and how an answer is walked with them.
//! Batch keys, `select`, `@from`, `@discriminator` and envelopes all use them.

use apollo_compiler::response::{JsonMap, JsonValue};

/// Parses `a.b.c`; an empty path or an empty segment is refused.
pub fn parse(text: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = text.split('.').map(str::to_string).collect();
    if text.is_empty() || parts.iter().any(String::is_empty) {
        return Err(format!(
            "{text:?} is not a key path such as `data` or `data.user`"
        ));
    }
    Ok(parts)
}

/// The value at `path` in `object`, if every key on the way exists.
pub fn lookup<'a>(object: &'a JsonMap, path: &[String]) -> Option<&'a JsonValue> {
    let (first, rest) = path.split_first()?;
    let mut value = object.get(first.as_str())?;
    for key in rest {
        value = value.as_object()?.get(key.as_str())?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_walks() {
        assert_eq!(parse("a.b").unwrap(), ["a", "b"]);
        assert!(parse("").is_err() && parse("a..b").is_err() && parse(".a").is_err());
        let object = JsonValue::from(serde_json::json!({"a": {"b": 1}, "c": null}));
        let object = object.as_object().unwrap();
        assert_eq!(
            lookup(object, &parse("a.b").unwrap()),
            Some(&JsonValue::from(1))
        );
        assert_eq!(lookup(object, &parse("c").unwrap()), Some(&JsonValue::Null));
        assert_eq!(lookup(object, &parse("a.x").unwrap()), None);
        assert_eq!(lookup(object, &parse("c.d").unwrap()), None);
    }
}
