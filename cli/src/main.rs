//! `graphql-aggregator`: checks a filter configuration and explains the
//! plan of a request, natively, with the filter's own engine.
//!
//! ```sh
//! graphql-aggregator check graphql-aggregator.yaml --deny-warnings
//! graphql-aggregator explain graphql-aggregator.yaml '{ users { id orders { id } } }' --list-size 50
//! graphql-aggregator render graphql-aggregator.yaml --for envoy > envoy.yaml
//! ```

mod explain;
mod lint;
mod load;
mod problem;
mod reach;
mod render;
mod source;

use clap::{Parser, Subcommand, ValueEnum};

/// Writes to standard output; a closed pipe (`… | head`) ends the program
/// quietly, as Unix tools do, instead of panicking as `print!` would.
fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(2);
    }
}

/// `print!` through [`write_out`].
macro_rules! out {
    ($($arg:tt)*) => { write_out(format_args!($($arg)*)) };
}

/// `println!` through [`write_out`].
macro_rules! outln {
    ($($arg:tt)*) => { write_out(format_args!("{}\n", format_args!($($arg)*))) };
}
use problem::Severity;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Check a graphql-aggregator configuration, or explain how a request is
/// answered, with the filter's own engine.
#[derive(Debug, Parser)]
#[command(name = "graphql-aggregator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load a configuration as the filter would and report every problem
    /// (`file:line:column: error|warning: message`). Exit status: 0 when
    /// clean, 1 on errors (and on warnings with --deny-warnings).
    Check {
        /// The configuration: YAML (.yaml, .yml) or JSON (.json), the
        /// filter's keys, with `schema_file` (relative to it) or `schema`.
        config: PathBuf,
        /// Fail on warnings too.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Show the plan of one request without calling anything: waves,
    /// calls, batching, and the worst case for lists of --list-size items.
    Explain {
        /// The configuration (as for `check`).
        config: PathBuf,
        /// The GraphQL document: a file, or the text itself.
        query: String,
        /// The variables, a JSON object.
        #[arg(long)]
        variables: Option<String>,
        /// The operation to plan, when the document has several.
        #[arg(long)]
        operation: Option<String>,
        /// The size assumed for every list.
        #[arg(long, default_value_t = 100)]
        list_size: u64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print a gateway's configuration file with the filter's configuration
    /// embedded (escaped for its place). The configuration is checked first
    /// (as `check` does, after the overrides); problems go to stderr and the
    /// exit status is 1.
    Render {
        /// The configuration (as for `check`).
        config: PathBuf,
        /// The gateway's file.
        #[arg(long = "for", value_enum)]
        target: render::Target,
        /// Set an upstream's `target` (repeatable), e.g. openfaas=functions:8081.
        #[arg(long, value_name = "NAME=TARGET", value_parser = render::pair)]
        upstream_target: Vec<(String, String)>,
        /// Set an upstream's `authority` (repeatable).
        #[arg(long, value_name = "NAME=AUTHORITY", value_parser = render::pair)]
        upstream_authority: Vec<(String, String)>,
        /// Set a key to a JSON value (repeatable); KEY may be a dotted path,
        /// e.g. persisted_queries='{"automatic": true}' or
        /// upstreams.openfaas.forward_headers='["authorization"]'.
        #[arg(long, value_name = "KEY=JSON", value_parser = render::pair)]
        set: Vec<(String, String)>,
        /// Kong's meta.json, carried by `--for kong-kubernetes`
        /// (kong-wasm/graphql-aggregator.meta.json).
        #[arg(long, value_name = "FILE")]
        kong_meta: Option<PathBuf>,
        /// Write the file here (only when rendering succeeds) instead of
        /// printing it.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// How `explain` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// For people.
    Text,
    /// For tools.
    Json,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check {
            config,
            deny_warnings,
        } => check(&config, deny_warnings),
        Command::Explain {
            config,
            query,
            variables,
            operation,
            list_size,
            format,
        } => explain(&config, &query, variables, operation, list_size, format),
        Command::Render {
            config,
            target,
            upstream_target,
            upstream_authority,
            set,
            kong_meta,
            output,
        } => {
            let overrides = render::Overrides {
                targets: upstream_target,
                authorities: upstream_authority,
                sets: set,
            };
            render(
                &config,
                target,
                &overrides,
                kong_meta.as_deref(),
                output.as_deref(),
            )
        }
    }
}

/// `render`: the gateway's file, or why the configuration cannot be used.
fn render(
    config: &Path,
    target: render::Target,
    overrides: &render::Overrides,
    kong_meta: Option<&Path>,
    output: Option<&Path>,
) -> ExitCode {
    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::FAILURE
    };
    let loaded = match load::load(config) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for problem in errors {
                eprintln!("{problem}");
            }
            return ExitCode::FAILURE;
        }
    };
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    let mut value: serde_json::Value = match serde_json::from_str(&loaded.source.json) {
        Ok(value) => value,
        Err(e) => return fail(format!("{}: {e}", config.display())),
    };
    if let Err(e) = render::apply(&mut value, overrides) {
        return fail(e);
    }
    if let Err(e) = graphql_aggregator_engine::config::Gateway::from_json(&value.to_string()) {
        return fail(format!(
            "the filter refuses the configuration with the overrides: {e}"
        ));
    }
    let meta = match kong_meta.map(std::fs::read_to_string).transpose() {
        Ok(meta) => meta,
        Err(e) => return fail(format!("--kong-meta: {e}")),
    };
    let text = match render::render(target, &value, meta.as_deref()) {
        Ok(text) => text,
        Err(e) => return fail(e),
    };
    match output {
        None => {
            out!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => {
            let tmp = path.with_extension("render-tmp");
            match std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, path)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(format!("cannot write {}: {e}", path.display())),
            }
        }
    }
}

/// `check`: every problem, then the verdict as the exit status.
fn check(config: &Path, deny_warnings: bool) -> ExitCode {
    let problems = match load::load(config) {
        Ok(loaded) => {
            let mut all = loaded.warnings.clone();
            all.extend(lint::lints(&loaded));
            all
        }
        Err(errors) => errors,
    };
    for problem in &problems {
        outln!("{problem}");
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let warnings = problems.len() - errors;
    if problems.is_empty() {
        outln!("{}: ok", config.display());
    } else {
        outln!("{errors} error(s), {warnings} warning(s)");
    }
    if errors > 0 || (deny_warnings && warnings > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `explain`: the plan, or why the filter would refuse the request.
fn explain(
    config: &Path,
    query: &str,
    variables: Option<String>,
    operation: Option<String>,
    list_size: u64,
    format: Format,
) -> ExitCode {
    let loaded = match load::load(config) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for problem in errors {
                outln!("{problem}");
            }
            return ExitCode::FAILURE;
        }
    };
    let (query_name, text) = match std::fs::read_to_string(query) {
        Ok(text) => (query.to_string(), text),
        Err(_) => ("<query>".to_string(), query.to_string()),
    };
    let variables = match variables.as_deref().map(serde_json::from_str).transpose() {
        Ok(v) => v,
        Err(e) => {
            outln!("error: --variables is not JSON: {e}");
            return ExitCode::FAILURE;
        }
    };
    let request = explain::Request {
        query: text,
        variables,
        operation,
    };
    match explain::explain(loaded.gateway, &request, list_size) {
        Ok(explanation) => {
            match format {
                Format::Text => out!("{explanation}"),
                Format::Json => outln!("{:#}", explanation.to_json()),
            }
            ExitCode::SUCCESS
        }
        Err(explain::ExplainError::Refused { errors }) => {
            for error in errors {
                let at = match error.location {
                    Some((line, column)) => format!("{query_name}:{line}:{column}"),
                    None => query_name.clone(),
                };
                let code = error.code.map(|c| format!(" [{c}]")).unwrap_or_default();
                outln!("{at}: error: {}{code}", error.message);
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            outln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
