//! GraphiQL in a real browser: headless Chromium opens the GraphiQL page
//! that the filter serves at `/graphql` of a real Envoy (the demo's
//! configuration plus `graphiql`), loads GraphiQL from a static server of
//! this test, runs the seed query through Envoy and the mock functions, and
//! shows its data. Everything on loopback.
//!
//! The assets: GraphiQL 5 and React 19 ship no browser bundle in their npm
//! packages (ES modules with bare imports, and CommonJS), so the test
//! bundles them from `envoy/e2e/js/node_modules` with esbuild
//! (`envoy/e2e/js/graphiql-bundle.mjs`) into
//! `<target>/envoy-e2e/graphiql/assets/`: `graphiql.mjs`, `graphiql.css`
//! and the editor's font, which a static server in this process serves
//! (with CORS, as module scripts need) as `assets_url`.
//!
//! Chromium is driven by its command line only: the page's link fragment
//! (`#query=…&variables=…&run=1`, a feature of the page: see
//! `engine/src/graphiql.rs`) fills the editor and runs the query once, and
//! `--dump-dom` / `--screenshot` give the page after it ran
//! (`<target>/envoy-e2e/graphiql/graphiql.png`).
//!
//! Requires Chromium (`apt-get install chromium`, done by `make`'s
//! debian-tools, or `$CHROMIUM`), Node.js and the npm packages (`npm ci
//! --prefix envoy/e2e/js`): without them the test fails saying so. Every
//! process is bounded in time and stopped by PID (its process group).
//!
//! Run: `cargo test -p envoy-e2e --test graphiql` (after `make setup wasm
//! functions` and the npm install).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use envoy_e2e::config;
use envoy_e2e::http::Client;
use envoy_e2e::paths::Paths;
use envoy_e2e::process::ProcessGuard;
use envoy_e2e::solo::Solo;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::json;

/// The listener with GraphiQL enabled.
const LISTENER: &str = "graphiql";
/// The demo's seed query and what it must show.
const SEED_QUERY: &str = "query GetUserWithOrders($userId: ID!) { user(id: $userId) { id name email orders { id amount } } }";
const SEED_VARIABLES: &str = r#"{"userId": "1"}"#;
const SEED_EMAIL: &str = "alice@example.com";
/// The most one Chromium run may take (wall clock) before it is killed.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(90);
/// Chromium's virtual time budget: the page's timers run this far at most.
const VIRTUAL_TIME_MS: u64 = 60_000;
/// The most the esbuild run may take.
const BUNDLE_DEADLINE: Duration = Duration::from_secs(120);
/// Any request the test makes itself.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The npm packages the assets are built from.
const PACKAGES: [&str; 6] = [
    "graphiql",
    "react",
    "react-dom",
    "esbuild",
    "monaco-editor",
    "monaco-graphql",
];

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let trial = Trial::test(
        "graphiql::chromium_runs_the_seed_query_through_envoy",
        || browser_runs_the_seed_query(&Paths::discover()).map_err(Failed::from),
    );
    libtest_mimic::run(&args, vec![trial]).exit_code()
}

fn browser_runs_the_seed_query(paths: &Paths) -> Result<(), String> {
    let chromium = chromium()?;
    let work = paths.work.join("graphiql");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let assets = build_assets(paths, &work)?;
    let server = StaticServer::start(assets)?;
    let assets_url = format!("http://{}/", server.addr);

    let demo = config::load_yaml(&paths.demo_config)?;
    let mut filter = config::demo_filter_config(&demo)?;
    filter["graphiql"] = json!({"enabled": true, "assets_url": assets_url});
    let solo = Solo::start(paths, "graphiql", &[(LISTENER, filter)])?;
    let url = solo.graphql_url(LISTENER);
    let with_log = |e: String| {
        let log = solo.envoy_log_text();
        let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
        format!("{e}\n(Envoy log, last lines reversed:\n{tail})")
    };

    // The page, as a browser asks for it; JSON clients are unchanged.
    let client = Client::new(REQUEST_TIMEOUT);
    let html = [("accept".to_string(), "text/html".to_string())];
    let page = client.send("GET", &url, &html, b"")?;
    if page.status != 200 || !page.body.contains(&format!("{assets_url}graphiql.mjs")) {
        return Err(with_log(format!(
            "GET {url} (accept: text/html) answered {} {:?}:\n{}",
            page.status, page.content_type, page.body
        )));
    }
    let json_get = client.send(
        "GET",
        &url,
        &[("accept".into(), "application/json".into())],
        b"",
    )?;
    if json_get.status != 400 || !json_get.body.contains("BAD_REQUEST") {
        return Err(format!(
            "a JSON GET without a query changed: {} {}",
            json_get.status, json_get.body
        ));
    }

    let link = format!(
        "{url}#query={}&variables={}&run=1",
        encode(SEED_QUERY),
        encode(SEED_VARIABLES)
    );
    let profile = work.join("chromium-profile");
    // A headless browser on a loaded machine sometimes runs the page's
    // script before GraphiQL settles (seen about once in ten runs while a
    // build shared the two cores): up to three fresh browsers, each with a
    // fresh profile; a page that never shows the data fails all three.
    let mut shown = String::new();
    for attempt in 1..=3 {
        let dom = run_chromium(
            &chromium,
            &work,
            "dump-dom",
            &profile,
            &[
                "--dump-dom".to_string(),
                "--window-size=1280,800".to_string(),
            ],
            &link,
        )?;
        std::fs::write(work.join("graphiql.dom.html"), &dom).map_err(|e| e.to_string())?;
        // The response editor's text: tags, spaces and line wraps taken out.
        shown = visible_text(&dom);
        if shown.contains(&format!(r#""email":"{SEED_EMAIL}""#)) {
            break;
        }
        eprintln!("envoy-e2e: GraphiQL attempt {attempt} showed no data yet");
    }
    if !shown.contains(&format!(r#""email":"{SEED_EMAIL}""#))
        || !shown.contains(r#""data":{"user":"#)
    {
        return Err(with_log(format!(
            "the page did not show the seed's data (\"email\": \"{SEED_EMAIL}\") after running \
             it; DOM in {}; \
             static server saw: {:?}",
            work.join("graphiql.dom.html").display(),
            server.served()
        )));
    }
    let screenshot = work.join("graphiql.png");
    let _ = std::fs::remove_file(&screenshot);
    run_chromium(
        &chromium,
        &work,
        "screenshot",
        &work.join("chromium-profile-screenshot"),
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,800".to_string(),
        ],
        &link,
    )?;
    if !screenshot.exists() {
        return Err(format!("Chromium wrote no {}", screenshot.display()));
    }
    eprintln!(
        "envoy-e2e: GraphiQL ran the seed query through {url}; screenshot {}",
        screenshot.display()
    );
    Ok(())
}

/// The Chromium binary: `$CHROMIUM`, else `chromium` on the PATH; checked
/// by running `--version`.
fn chromium() -> Result<PathBuf, String> {
    let program = std::env::var_os("CHROMIUM")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromium"));
    let install = "install it: `apt-get install chromium` (Debian; `make debian-tools` does it \
                   as root), or set CHROMIUM to a Chromium/Chrome binary";
    let mut command = Command::new(&program);
    command
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut version = ProcessGuard::spawn("chromium --version", command)
        .map_err(|e| format!("Chromium is needed for the GraphiQL test ({e}); {install}"))?;
    match version.wait_exit(Duration::from_secs(30)) {
        Some(status) if status.success() => Ok(program),
        other => Err(format!(
            "`{} --version` failed ({other:?}); {install}",
            program.display()
        )),
    }
}

/// Bundles GraphiQL, React and React DOM into `<work>/assets/`.
fn build_assets(paths: &Paths, work: &Path) -> Result<PathBuf, String> {
    let js = paths.repo.join("envoy/e2e/js");
    for package in PACKAGES {
        let manifest = js.join("node_modules").join(package).join("package.json");
        if !manifest.exists() {
            return Err(format!(
                "the npm package {package} is not installed in {}: run `make e2e` or \
                 `npm ci --prefix envoy/e2e/js`",
                js.display()
            ));
        }
    }
    let assets = work.join("assets");
    let _ = std::fs::remove_dir_all(&assets);
    std::fs::create_dir_all(&assets).map_err(|e| format!("{}: {e}", assets.display()))?;
    let page_script = [
        "graphiql-bundle.mjs",
        "--bundle",
        "--format=esm",
        "--minify",
        "--log-level=warning",
        "--loader:.ttf=file",
        "--asset-names=[name]",
        "--define:process.env.NODE_ENV=\"production\"",
    ]
    .map(String::from)
    .into_iter()
    .chain([format!(
        "--outfile={}",
        assets.join("graphiql.mjs").display()
    )])
    .collect();
    let workers = [
        "--bundle",
        "--format=iife",
        "--minify",
        "--log-level=warning",
        "--entry-names=[name]",
        "monaco-editor/esm/vs/editor/editor.worker.js",
        "monaco-editor/esm/vs/language/json/json.worker.js",
        "monaco-graphql/esm/graphql.worker.js",
    ]
    .map(String::from)
    .into_iter()
    .chain([format!("--outdir={}", assets.display())])
    .collect();
    for (label, args) in [("esbuild-page", page_script), ("esbuild-workers", workers)] {
        esbuild(&js, work, label, args)?;
    }
    let files = [
        "graphiql.mjs",
        "graphiql.css",
        "editor.worker.js",
        "json.worker.js",
        "graphql.worker.js",
    ];
    for file in files {
        if !assets.join(file).exists() {
            return Err(format!(
                "esbuild wrote no {file} (logs in {})",
                work.display()
            ));
        }
    }
    Ok(assets)
}

/// Runs esbuild from `envoy/e2e/js` with `args`, bounded in time.
fn esbuild(js: &Path, work: &Path, label: &str, args: Vec<String>) -> Result<(), String> {
    let log = work.join(format!("{label}.log"));
    let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut command = Command::new(js.join("node_modules/.bin/esbuild"));
    command
        .current_dir(js)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().map_err(|e| e.to_string())?)
        .stderr(file);
    let mut esbuild = ProcessGuard::spawn(label, command).map_err(|e| {
        format!("{e}: Node.js and `npm ci --prefix envoy/e2e/js` are needed to build GraphiQL")
    })?;
    let status = esbuild.wait_exit(BUNDLE_DEADLINE);
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    esbuild.stop();
    match status {
        Some(status) if status.success() => Ok(()),
        other => Err(format!("{label} failed ({other:?}):\n{output}")),
    }
}

/// Runs headless Chromium on `url` with `extra` flags; its stdout.
fn run_chromium(
    chromium: &Path,
    work: &Path,
    label: &str,
    profile: &Path,
    extra: &[String],
    url: &str,
) -> Result<String, String> {
    let _ = std::fs::remove_dir_all(profile);
    let stdout_path = work.join(format!("chromium-{label}.stdout"));
    let stderr_path = work.join(format!("chromium-{label}.stderr"));
    let file =
        |path: &Path| std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()));
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--mute-audio",
            "--enable-logging=stderr",
            // Loopback only: the page's assets and its queries.
            "--proxy-server=direct://",
            "--proxy-bypass-list=*",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(file(&stdout_path)?)
        .stderr(file(&stderr_path)?);
    let mut process = ProcessGuard::spawn(&format!("chromium ({label})"), command)?;
    let pid = process.pid();
    let status = process.wait_exit(CHROMIUM_DEADLINE);
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let Some(status) = status else {
        process.stop();
        return Err(format!(
            "Chromium ({label}, pid {pid}) did not finish within {CHROMIUM_DEADLINE:?} and was \
             killed; stderr:\n{stderr}"
        ));
    };
    process.stop();
    if !status.success() {
        return Err(format!(
            "Chromium ({label}) failed ({status}); stderr:\n{stderr}"
        ));
    }
    std::fs::read_to_string(&stdout_path).map_err(|e| format!("{}: {e}", stdout_path.display()))
}

/// The text of an HTML document's body without tags, `&nbsp;` and white
/// space (the editors wrap long lines and pad with non-breaking spaces).
fn visible_text(html: &str) -> String {
    let body = html.find("<body").map_or(html, |at| &html[at..]);
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&nbsp;", "")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// Percent-encodes everything but ASCII letters and digits.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A static file server on loopback, in a thread of this process (it ends
/// with the process): the files of one folder, with CORS for module
/// scripts, and a list of what it served.
struct StaticServer {
    addr: SocketAddr,
    served: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl StaticServer {
    fn start(root: PathBuf) -> Result<StaticServer, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let served = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = served.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &root, &log);
                });
            }
        });
        Ok(StaticServer { addr, served })
    }

    fn served(&self) -> Vec<String> {
        self.served.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn serve(
    stream: TcpStream,
    root: &Path,
    log: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
        }
        let path = target.split(['?', '#']).next().unwrap_or_default();
        let name = path.trim_start_matches('/');
        let safe = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !name.starts_with('.');
        let body = if safe {
            let mut bytes = Vec::new();
            std::fs::File::open(root.join(name))
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .ok()
                .map(|_| bytes)
        } else {
            None
        };
        if let Ok(mut log) = log.lock() {
            log.push(format!(
                "{method} {target} {}",
                if body.is_some() { 200 } else { 404 }
            ));
        }
        let content_type = match Path::new(name).extension().and_then(|e| e.to_str()) {
            Some("mjs") | Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("ttf") => "font/ttf",
            _ => "application/octet-stream",
        };
        let (status, body) = match body {
            Some(body) => ("200 OK", body),
            None => ("404 Not Found", b"not found".to_vec()),
        };
        write!(
            writer,
            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
             access-control-allow-origin: *\r\ncache-control: no-store\r\n\r\n",
            body.len()
        )?;
        if method != "HEAD" {
            writer.write_all(&body)?;
        }
        writer.flush()?;
    }
}
