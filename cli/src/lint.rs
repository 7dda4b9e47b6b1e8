//! Warnings about configurations the filter accepts but that probably do
//! not do what was meant: per-parent calls under lists (N+1), upstreams and
//! mapped fields nothing uses, `{parent.KEY}` placeholders the parent type
//! does not declare, and limits that contradict each other.

use crate::load::Loaded;
use crate::problem::{Location, Problem};
use crate::reach::Reach;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::Name;
use graphql_aggregator_engine::config::Gateway;
use graphql_aggregator_engine::schema::Resolver;
use graphql_aggregator_engine::template::Source;

/// The list size the N+1 report counts calls for.
pub const REPORTED_LIST_SIZE: u64 = 100;

/// Every warning about a loaded configuration, in the order of the lints.
pub fn lints(loaded: &Loaded) -> Vec<Problem> {
    let gateway = &loaded.gateway;
    let reach = Reach::of(&gateway.schema, |t, f| {
        gateway.resolvers.find(t, f).is_some()
    });
    let mut found = Vec::new();
    found.extend(per_parent_calls(loaded, &reach));
    found.extend(unused_upstreams(loaded));
    found.extend(unreachable_fields(loaded, &reach));
    found.extend(undeclared_parent_keys(loaded));
    found.extend(contradicting_limits(loaded));
    found
}

/// Every resolver of the gateway.
pub fn resolvers(gateway: &Gateway) -> impl Iterator<Item = &Resolver> {
    (0..gateway.resolvers.len()).filter_map(|id| gateway.resolvers.get(id))
}

/// The type and field of a resolver's `Type.field`.
fn split(coordinate: &str) -> Option<(Name, Name)> {
    let (type_name, field) = coordinate.split_once('.')?;
    Some((Name::new(type_name).ok()?, Name::new(field).ok()?))
}

/// The `{parent.*}` paths a resolver's path, body and headers read.
pub fn parent_paths(resolver: &Resolver) -> Vec<Vec<String>> {
    let body: Vec<&Source> = resolver.body.iter().flat_map(|b| b.sources()).collect();
    resolver
        .path
        .sources()
        .chain(body)
        .chain(resolver.headers.iter().flat_map(|h| h.sources()))
        .filter_map(|source| match source {
            Source::Parent(path) => Some(path.clone()),
            Source::Argument(_) | Source::Identity(_) => None,
        })
        .collect()
}

/// Where `Type.field` is defined, in the schema file or the inline schema.
pub fn field_location(loaded: &Loaded, coordinate: &str) -> Location {
    let schema = &loaded.gateway.schema;
    let position = split(coordinate).and_then(|(type_name, field_name)| {
        let fields = match schema.types.get(&type_name)? {
            ExtendedType::Object(o) => &o.fields,
            ExtendedType::Interface(i) => &i.fields,
            _ => return None,
        };
        fields
            .get(&field_name)?
            .location()?
            .line_column(&schema.sources)
    });
    match position {
        Some(p) => loaded.source.schema_at(p.line, p.column),
        None => loaded.source.schema_at(1, 1),
    }
}

/// Lint 1: a call made once per parent (a `{parent.*}` template without
/// `batch`, or a method that is not de-duplicated) under a list.
fn per_parent_calls(loaded: &Loaded, reach: &Reach) -> Vec<Problem> {
    let mut found = Vec::new();
    for resolver in resolvers(&loaded.gateway) {
        if resolver.batch.is_some() {
            continue;
        }
        let Some((type_name, _)) = split(&resolver.coordinate) else {
            continue;
        };
        let parents = parent_paths(resolver);
        if parents.is_empty() && resolver.dedupe {
            // The same call for every parent: made once.
            continue;
        }
        let Some(list) = reach.under_list.get(&type_name) else {
            continue;
        };
        let calls = REPORTED_LIST_SIZE + u64::from(list.fetched);
        let why = if parents.is_empty() {
            format!(
                "{} calls are not de-duplicated (add `dedupe: true` if identical calls may share one answer)",
                resolver.method
            )
        } else {
            "add `batch: {key, param}` if the function accepts many keys".to_string()
        };
        let mut problem = Problem::warning(
            field_location(loaded, &resolver.coordinate),
            format!(
                "{}: one call per {type_name} under {}: {calls} calls for a list of {REPORTED_LIST_SIZE}; {why}",
                resolver.coordinate, list.coordinate
            ),
        );
        if let [key] = parents.as_slice() {
            problem = problem.with_hint(format!(
                "e.g. @http(upstream: \"{}\", path: \"…\", batch: {{key: \"{}\", param: \"{}s\"}}), without `{{parent.{}}}` in the path: one call per {} keys",
                resolver.upstream,
                key.join("."),
                key.last().map(String::as_str).unwrap_or("key"),
                key.join("."),
                loaded.gateway.limits.max_batch_size
            ));
        }
        found.push(problem);
    }
    found
}

/// Lint 2: upstreams no field calls (the identity step's and the
/// configuration registry's are used).
fn unused_upstreams(loaded: &Loaded) -> Vec<Problem> {
    let gateway = &loaded.gateway;
    let used_otherwise = |name: &str| {
        gateway
            .identity
            .as_ref()
            .is_some_and(|i| i.upstream == name)
            || gateway
                .config_source
                .as_ref()
                .is_some_and(|c| c.upstream.name.as_ref() == name)
    };
    gateway
        .upstreams
        .keys()
        .filter(|name| !resolvers(gateway).any(|r| &r.upstream == *name))
        .filter(|name| !used_otherwise(name))
        .map(|name| {
            Problem::warning(
                loaded.source.locate(&["upstreams", name]),
                format!("upstream `{name}` is not used by any field"),
            )
            .with_hint(format!(
                "map a field to it with @http(upstream: \"{name}\", path: …), or remove it"
            ))
        })
        .collect()
}

/// Lint 3: mapped fields of types no query or mutation reaches.
fn unreachable_fields(loaded: &Loaded, reach: &Reach) -> Vec<Problem> {
    resolvers(&loaded.gateway)
        .filter_map(|resolver| {
            let (type_name, _) = split(&resolver.coordinate)?;
            if reach.reachable.contains(&type_name) {
                return None;
            }
            Some(
                Problem::warning(
                    field_location(loaded, &resolver.coordinate),
                    format!(
                        "{}: no query can reach it: type {type_name} is not reachable from the Query or Mutation type, so upstream `{}` is never called for it",
                        resolver.coordinate, resolver.upstream
                    ),
                )
                .with_hint(format!(
                    "return {type_name} from a field that Query reaches, or remove the type"
                )),
            )
        })
        .collect()
}

/// Lint 4: `{parent.KEY}` where the parent type has no field `KEY` read
/// from the parent's JSON.
fn undeclared_parent_keys(loaded: &Loaded) -> Vec<Problem> {
    let gateway = &loaded.gateway;
    let mut found = Vec::new();
    for resolver in resolvers(gateway) {
        let Some((type_name, _)) = split(&resolver.coordinate) else {
            continue;
        };
        let Some(ExtendedType::Object(object)) = gateway.schema.types.get(&type_name) else {
            continue;
        };
        let mut reported: Vec<String> = Vec::new();
        for path in parent_paths(resolver) {
            let Some(key) = path.first() else { continue };
            if reported.contains(key) {
                continue;
            }
            // Keys `@from` reads are in the parent's JSON.
            let renamed_from = object.fields.keys().any(|f| {
                gateway
                    .renames
                    .get(&(type_name.clone(), f.clone()))
                    .is_some_and(|p| p.first() == Some(key))
            });
            let field = Name::new(key)
                .ok()
                .filter(|n| object.fields.contains_key(n));
            let hint = match &field {
                _ if renamed_from => continue,
                Some(name) if gateway.resolvers.find(&type_name, name).is_some() => format!(
                    "{type_name}.{key} is fetched by its own call, so the parent's JSON does not hold it; use a key of the parent's answer"
                ),
                Some(name) => match gateway.renames.get(&(type_name.clone(), name.clone())) {
                    Some(from) => format!(
                        "{type_name}.{key} is read from `{}` (@from): use {{parent.{}}}",
                        from.join("."),
                        from.join(".")
                    ),
                    None => continue,
                },
                None => format!(
                    "fine if the function behind {type_name} answers `{key}` without the schema exposing it; otherwise fix the name (fields of {type_name}: {})",
                    object
                        .fields
                        .keys()
                        .map(Name::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            reported.push(key.clone());
            found.push(
                Problem::warning(
                    field_location(loaded, &resolver.coordinate),
                    format!(
                        "{}: {{parent.{}}} reads `{key}`, which type {type_name} does not declare as a field",
                        resolver.coordinate,
                        path.join(".")
                    ),
                )
                .with_hint(hint),
            );
        }
    }
    found
}

/// Lint 5: limits that contradict each other.
///
/// * an upstream's `timeout_ms` above `deadline_ms`: each call's timeout
///   is cut to what is left of the request's deadline, so it never applies;
/// * `max_held_answer_bytes` below twice `max_response_bytes`: a parsed
///   answer takes 2–12× its body, so an answer `max_response_bytes`
///   allows is still refused once read;
/// * `max_query_bytes` above `max_body_bytes`: a POST body holds the
///   document, so POSTed documents are refused (413) before the document
///   limit is reached; only GET requests could use the difference.
fn contradicting_limits(loaded: &Loaded) -> Vec<Problem> {
    let gateway = &loaded.gateway;
    let source = &loaded.source;
    let limits = &gateway.limits;
    let deadline = gateway.deadline.as_millis();
    let mut found = Vec::new();
    for (name, upstream) in &gateway.upstreams {
        let timeout = upstream.timeout.as_millis();
        if timeout > deadline {
            found.push(
                Problem::warning(
                    source.locate(&["upstreams", name, "timeout_ms"]),
                    format!(
                        "upstreams.{name}.timeout_ms ({timeout}) is above deadline_ms ({deadline}): a call's timeout is cut to what is left of the request's deadline, so it never applies"
                    ),
                )
                .with_hint(format!(
                    "lower timeout_ms to at most {deadline}, or raise deadline_ms"
                )),
            );
        }
    }
    if limits.max_held_answer_bytes / 2 < limits.max_response_bytes {
        let key = explicit(source, "max_held_answer_bytes", "max_response_bytes");
        found.push(
            Problem::warning(
                source.locate(&["limits", key]),
                format!(
                    "limits.max_held_answer_bytes ({}) is below twice limits.max_response_bytes ({}): a parsed answer takes 2 to 12 times its body, so answers max_response_bytes allows are refused once read (LIMIT_EXCEEDED)",
                    limits.max_held_answer_bytes, limits.max_response_bytes
                ),
            )
            .with_hint(format!(
                "raise max_held_answer_bytes to at least {} or lower max_response_bytes",
                limits.max_response_bytes.saturating_mul(2)
            )),
        );
    }
    if limits.max_query_bytes > limits.max_body_bytes {
        let key = explicit(source, "max_query_bytes", "max_body_bytes");
        found.push(
            Problem::warning(
                source.locate(&["limits", key]),
                format!(
                    "limits.max_query_bytes ({}) is above limits.max_body_bytes ({}): a POSTed document is refused with 413 before its own limit is reached",
                    limits.max_query_bytes, limits.max_body_bytes
                ),
            )
            .with_hint("keep max_query_bytes at or below max_body_bytes"),
        );
    }
    found
}

/// The first of two limits the configuration sets (where the warning goes).
fn explicit<'a>(source: &crate::source::ConfigSource, first: &'a str, second: &'a str) -> &'a str {
    let set = |key: &str| source.locate(&["limits", key]) != source.locate(&["limits"]);
    if set(first) || !set(second) {
        first
    } else {
        second
    }
}
