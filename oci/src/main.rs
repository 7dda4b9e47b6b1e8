//! `oci`: publishes the filter's `.wasm` to an OCI registry in the forms
//! Istio and Envoy Gateway pull, and fetches it back.
//!
//! ```text
//! oci push [--form compat|module] [--annotation KEY=VALUE]... [--plain-http] WASM REF
//! oci pull [--plain-http] REF OUT
//! oci manifest [--plain-http] REF
//! ```
//!
//! Registries on `localhost`/`127.0.0.1` are spoken to over plain HTTP;
//! `--plain-http` forces it for others. Credentials come from
//! `OCI_USERNAME`/`OCI_PASSWORD` when set (anonymous otherwise).

mod image;

use image::{Blob, Form};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// The manifest's own media type.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

const USAGE: &str =
    "usage: oci push [--form compat|module] [--annotation KEY=VALUE]... [--plain-http] WASM REF
       oci pull [--plain-http] REF OUT
       oci manifest [--plain-http] REF";

enum Command {
    Push {
        form: Form,
        annotations: BTreeMap<String, String>,
        wasm: String,
        reference: String,
    },
    Pull {
        reference: String,
        out: String,
    },
    Manifest {
        reference: String,
    },
}

struct Cli {
    command: Command,
    plain_http: bool,
}

fn parse(args: Vec<String>) -> Result<Cli, String> {
    let mut args = args.into_iter();
    let verb = args.next().ok_or(USAGE)?;
    let mut form = Form::Compat;
    let mut annotations = BTreeMap::new();
    let mut plain_http = false;
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--form" => form = Form::parse(&args.next().ok_or("--form needs a value")?)?,
            "--annotation" => {
                let pair = args.next().ok_or("--annotation needs KEY=VALUE")?;
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--annotation {pair:?} is not KEY=VALUE"))?;
                if !v.is_empty() {
                    annotations.insert(k.to_string(), v.to_string());
                }
            }
            "--plain-http" => plain_http = true,
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}\n{USAGE}")),
            _ => positional.push(arg),
        }
    }
    let command = match (verb.as_str(), positional.as_slice()) {
        ("push", [wasm, reference]) => Command::Push {
            form,
            annotations,
            wasm: wasm.clone(),
            reference: reference.clone(),
        },
        ("pull", [reference, out]) => Command::Pull {
            reference: reference.clone(),
            out: out.clone(),
        },
        ("manifest", [reference]) => Command::Manifest {
            reference: reference.clone(),
        },
        _ => return Err(USAGE.to_string()),
    };
    Ok(Cli {
        command,
        plain_http,
    })
}

fn client(reference: &Reference, plain_http: bool) -> Client {
    let registry = reference.resolve_registry().to_string();
    let host = registry.split(':').next().unwrap_or_default();
    let protocol = if plain_http || host == "localhost" || host == "127.0.0.1" {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    Client::new(ClientConfig {
        protocol,
        ..ClientConfig::default()
    })
}

fn auth() -> RegistryAuth {
    match (std::env::var("OCI_USERNAME"), std::env::var("OCI_PASSWORD")) {
        (Ok(user), Ok(password)) => RegistryAuth::Basic(user, password),
        _ => RegistryAuth::Anonymous,
    }
}

fn reference(text: &str) -> Result<Reference, String> {
    text.parse()
        .map_err(|e| format!("{text:?} is not an image reference: {e}"))
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Push {
            form,
            annotations,
            wasm,
            reference: text,
        } => {
            let bytes = std::fs::read(&wasm).map_err(|e| format!("cannot read {wasm}: {e}"))?;
            if !bytes.starts_with(b"\0asm") {
                return Err(format!("{wasm} is not a WebAssembly module"));
            }
            let reference = reference(&text)?;
            let built = image::build(form, &bytes, &annotations)?;
            let layers: Vec<ImageLayer> = built
                .layers
                .iter()
                .map(|l| {
                    let title = (l.media_type == image::WASM_LAYER).then(|| {
                        BTreeMap::from([(
                            "org.opencontainers.image.title".to_string(),
                            image::MODULE_TITLE.to_string(),
                        )])
                    });
                    ImageLayer::new(l.data.clone(), l.media_type.to_string(), title)
                })
                .collect();
            let config = Config::new(
                built.config.data.clone(),
                built.config.media_type.to_string(),
                None,
            );
            let mut manifest = OciImageManifest::build(&layers, &config, Some(built.annotations));
            manifest.media_type = Some(OCI_MANIFEST.to_string());
            let pushed = client(&reference, cli.plain_http)
                .push(&reference, &layers, config, &auth(), Some(manifest))
                .await
                .map_err(|e| format!("push to {text} failed: {e}"))?;
            println!("pushed {text} ({form:?} form): {}", pushed.manifest_url);
            println!("wasm {}", image::digest(&bytes));
        }
        Command::Pull {
            reference: text,
            out,
        } => {
            let reference = reference(&text)?;
            let accepted = vec![
                image::WASM_LAYER,
                image::WASM_CONFIG,
                image::OCI_LAYER_TAR_GZIP,
            ];
            let pulled = client(&reference, cli.plain_http)
                .pull(&reference, &auth(), accepted)
                .await
                .map_err(|e| format!("pull of {text} failed: {e}"))?;
            let layers: Vec<Blob> = pulled
                .layers
                .into_iter()
                .map(|l| Blob {
                    media_type: match l.media_type.as_str() {
                        image::WASM_LAYER => image::WASM_LAYER,
                        image::WASM_CONFIG => image::WASM_CONFIG,
                        _ => image::OCI_LAYER_TAR_GZIP,
                    },
                    data: l.data.to_vec(),
                })
                .collect();
            let wasm = image::extract(&layers)?;
            std::fs::write(&out, &wasm).map_err(|e| format!("cannot write {out}: {e}"))?;
            println!(
                "pulled {text} to {out}: {} bytes, {}",
                wasm.len(),
                image::digest(&wasm)
            );
        }
        Command::Manifest { reference: text } => {
            let reference = reference(&text)?;
            let accepted = [
                OCI_MANIFEST,
                "application/vnd.docker.distribution.manifest.v2+json",
            ];
            let (raw, digest) = client(&reference, cli.plain_http)
                .pull_manifest_raw(&reference, &auth(), &accepted)
                .await
                .map_err(|e| format!("cannot read the manifest of {text}: {e}"))?;
            eprintln!("manifest digest {digest}");
            println!("{}", String::from_utf8_lossy(&raw));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // ring as the process's TLS provider (see Cargo.toml).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match parse(std::env::args().skip(1).collect()) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("oci: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oci: {e}");
            ExitCode::FAILURE
        }
    }
}
