//! Hand-written command-line parsing (no clap, to keep builds fast).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mock_functions::Function;

/// Usage text printed by `--help` and after argument errors.
pub const USAGE: &str = "\
usage: mock-functions [--listen ADDR] [--delay-ms N] [--delay FUNCTION=MS]...
                      [--users N] [--only FUNCTION]... [--cache-control VALUE]
                      [--registry-file NAME=PATH]...

  --listen ADDR          address to listen on (default 127.0.0.1:8081; port 0 = any)
  --delay-ms N           every function waits N ms before answering (default 0)
  --delay FUNCTION=MS    per-function delay, overrides --delay-ms (repeatable)
  --users N              size of the users data set (default 50)
  --only FUNCTION        serve only these functions, others 404 (repeatable)
  --cache-control VALUE  every function's 2xx answer carries `cache-control: VALUE`
                         (e.g. max-age=1; default: no cache-control header)
  --registry-file NAME=PATH
                         the registry starts with the file's bytes as document NAME,
                         revision 1 (repeatable)

functions: user-profile user-orders user-orders-batch users inventory node search
           platform-profile sleep echo
           status not-json create-order person people-batch quirks drip hang
           identity cookie-profile

identity and headers for the client:
  /identity           credential: cookie `session=TOKEN`, or else
                      `authorization: Bearer TOKEN`; good-N (N a user) answers
                      {\"uid\":\"u-N\",\"name\":...}, slow-N the same after 2000 ms,
                      broken a 500, anything else (or nothing) a 401
  /cookie-profile?id=ID
                      user-profile's answer for ID; a 200 adds
                      `set-cookie: seen-ID=1; Path=/; HttpOnly` and
                      `set-cookie: last=ID; Path=/`; every answer adds
                      `x-trace-id: fn-N` and `x-ratelimit-remaining: 1000-N` for
                      the N-th call since /_reset

faults:
  /sleep?ms=N         answers {\"slept\":N} after N ms (at most 60000)
  /status?code=N      answers with HTTP status N
  /drip?id=ID&ms=N    user-profile's answer for ID (default 1): the headers at once,
                      then the body one byte at a time, N ms before each byte
                      (default 200; after 60 s in all, the rest at once)
  /hang?ms=N          reads the request and answers nothing until the client goes
                      away; gives up after N ms (default and at most 60000) with a 504

registry (not functions; /_reset keeps the documents and registry_fetches):
  PUT /_registry/NAME     stores the body (at most 4 MiB, else 413) as the next
                          revision of NAME: {\"revision\":N}
  GET /_registry/NAME     the document, `etag: \"N\"`, `cache-control: no-cache`;
                          304 if `if-none-match` names it; 404 if none; counted
                          in /_stats' registry_fetches
  DELETE /_registry/NAME  removes the document";

/// Parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Delay of every function without its own `--delay`.
    pub default_delay: Duration,
    /// Per-function delay overrides, last one wins.
    pub delays: Vec<(Function, Duration)>,
    /// Number of users in the data set.
    pub users: u32,
    /// Functions to serve; empty means all.
    pub only: Vec<Function>,
    /// The `cache-control` header of every 2xx function answer (none by
    /// default).
    pub cache_control: Option<String>,
    /// Registry documents to load at start: `(name, file)`, in order.
    pub registry_files: Vec<(String, PathBuf)>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            default_delay: Duration::ZERO,
            delays: Vec::new(),
            users: 50,
            only: Vec::new(),
            cache_control: None,
            registry_files: Vec::new(),
        }
    }
}

impl Config {
    /// The delay that `function` waits before answering.
    pub fn delay_of(&self, function: Function) -> Duration {
        self.delays
            .iter()
            .rev()
            .find(|(f, _)| *f == function)
            .map_or(self.default_delay, |(_, d)| *d)
    }

    /// The functions this server answers, in catalogue order.
    pub fn served(&self) -> Vec<Function> {
        Function::ALL
            .into_iter()
            .filter(|f| self.only.is_empty() || self.only.contains(f))
            .collect()
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the server.
    Run(Config),
    /// Print usage and exit successfully.
    Help,
}

/// Parses the arguments after the program name; `Err` holds a message.
///
/// Accepts both `--flag value` and `--flag=value`.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut config = Config::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg, None),
        };
        if flag == "--help" || flag == "-h" {
            return Ok(Command::Help);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                config.listen = v.parse().map_err(|_| {
                    format!("--listen: `{v}` is not an address like 127.0.0.1:8081")
                })?;
            }
            "--delay-ms" => config.default_delay = millis(&flag, &value()?)?,
            "--delay" => {
                let v = value()?;
                let (name, ms) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--delay: expected FUNCTION=MS, got `{v}`"))?;
                config
                    .delays
                    .push((function(&flag, name)?, millis(&flag, ms)?));
            }
            "--users" => {
                let v = value()?;
                config.users = v
                    .parse()
                    .map_err(|_| format!("--users: `{v}` is not a non-negative integer"))?;
            }
            "--only" => {
                let f = function(&flag, &value()?)?;
                if !config.only.contains(&f) {
                    config.only.push(f);
                }
            }
            "--cache-control" => {
                let v = value()?;
                // A header value: visible ASCII and spaces, not empty.
                if v.trim().is_empty() || !v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                    return Err(format!(
                        "--cache-control: `{v}` is not a header value like max-age=1"
                    ));
                }
                config.cache_control = Some(v);
            }
            "--registry-file" => {
                let v = value()?;
                let (name, path) = v
                    .split_once('=')
                    .filter(|(name, path)| {
                        !name.is_empty() && !name.contains('/') && !path.is_empty()
                    })
                    .ok_or_else(|| format!("--registry-file: expected NAME=PATH, got `{v}`"))?;
                config
                    .registry_files
                    .push((name.to_owned(), PathBuf::from(path)));
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Command::Run(config))
}

fn millis(flag: &str, v: &str) -> Result<Duration, String> {
    v.parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("{flag}: `{v}` is not a number of milliseconds"))
}

fn function(flag: &str, name: &str) -> Result<Function, String> {
    Function::from_name(name).ok_or_else(|| format!("{flag}: unknown function `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Command::Run(c) => Ok(c),
            Command::Help => Err("help".into()),
        }
    }

    #[test]
    fn defaults() {
        let c = run(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(c.served(), Function::ALL.to_vec());
        assert_eq!(c.delay_of(Function::Echo), Duration::ZERO);
    }

    #[test]
    fn all_flags() {
        let c = run(&[
            "--listen=127.0.0.1:0",
            "--delay-ms",
            "5",
            "--delay",
            "user-orders=100",
            "--delay=user-orders=150",
            "--users",
            "3",
            "--only",
            "users",
            "--only=user-orders",
            "--cache-control",
            "max-age=1, s-maxage=2",
            "--registry-file",
            "config=/tmp/a.json",
            "--registry-file=other=b=c.json",
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.delay_of(Function::UserOrders), Duration::from_millis(150));
        assert_eq!(c.delay_of(Function::Users), Duration::from_millis(5));
        assert_eq!(c.users, 3);
        assert_eq!(c.served(), vec![Function::UserOrders, Function::Users]);
        assert_eq!(c.cache_control.as_deref(), Some("max-age=1, s-maxage=2"));
        assert_eq!(
            c.registry_files,
            [
                ("config".to_owned(), PathBuf::from("/tmp/a.json")),
                ("other".to_owned(), PathBuf::from("b=c.json")),
            ]
        );
        let c = run(&["--cache-control=no-store"]).unwrap();
        assert_eq!(c.cache_control.as_deref(), Some("no-store"));
        assert_eq!(Config::default().cache_control, None);
    }

    #[test]
    fn errors_are_messages() {
        for bad in [
            &["--listen"][..],
            &["--listen", "nope"],
            &["--delay", "nope=5"],
            &["--delay", "echo"],
            &["--delay-ms", "-1"],
            &["--only", "x"],
            &["--users", "many"],
            &["--cache-control"],
            &["--cache-control", ""],
            &["--cache-control", "max-age=1\nx: y"],
            &["--registry-file"],
            &["--registry-file", "config"],
            &["--registry-file", "=a.json"],
            &["--registry-file", "a/b=a.json"],
            &["--registry-file", "config="],
            &["--frobnicate"],
        ] {
            let err = run(bad).unwrap_err();
            assert!(!err.is_empty() && err != "help", "{bad:?}");
        }
        assert_eq!(parse(["--help".to_string()]), Ok(Command::Help));
    }

    #[test]
    fn usage_names_every_function() {
        for f in Function::ALL {
            assert!(
                USAGE.split_whitespace().any(|w| w == f.name()),
                "{f} is missing from the usage text"
            );
        }
        for fault in [
            "/drip?id=ID&ms=N",
            "/hang?ms=N",
            "/identity",
            "/cookie-profile?id=ID",
            "/_registry/NAME",
        ] {
            assert!(USAGE.contains(fault), "{fault}");
        }
    }
}
