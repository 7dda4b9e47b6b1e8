//! `graphql-aggregator`: checks a filter configuration and explains the
//! plan of a request, natively, with the filter's own engine.
//!
//! ```sh
//! graphql-aggregator check graphql-aggregator.yaml --deny-warnings
//! graphql-aggregator explain graphql-aggregator.yaml '{ users { id orders { id } } }' --list-size 50
//! ```

mod explain;
mod lint;
mod load;
mod problem;
mod reach;
mod source;

use clap::{Parser, Subcommand, ValueEnum};
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
        println!("{problem}");
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let warnings = problems.len() - errors;
    if problems.is_empty() {
        println!("{}: ok", config.display());
    } else {
        println!("{errors} error(s), {warnings} warning(s)");
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
                println!("{problem}");
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
            println!("error: --variables is not JSON: {e}");
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
                Format::Text => print!("{explanation}"),
                Format::Json => println!("{:#}", explanation.to_json()),
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
                println!("{at}: error: {}{code}", error.message);
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
