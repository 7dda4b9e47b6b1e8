//! Both OCI forms through a real registry (Debian's `docker-registry`,
//! distribution 2.8, on 127.0.0.1): pushed, their manifests read back and
//! checked against what Istio's and Envoy Gateway's fetchers require, and
//! the `.wasm` pulled back byte-identical.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The registry process, killed by PID when dropped.
struct Registry {
    child: Child,
    addr: String,
    _dir: TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_registry() -> Registry {
    let binary = std::env::var("DOCKER_REGISTRY").unwrap_or_else(|_| "docker-registry".into());
    let dir = std::env::temp_dir().join(format!("oci-registry-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("storage")).unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
        dir.join("storage").display()
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
    let child = Command::new(&binary)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {binary} ({e}): install Debian's docker-registry (`make debian-tools`)")
        });
    let registry = Registry {
        child,
        addr,
        _dir: TempDir(dir),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(&registry.addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "the registry did not listen on {} within 15 s",
            registry.addr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    registry
}

fn wasm_path() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = std::env::var_os("GRAPHQL_AGGREGATOR_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("dist/graphql-aggregator.wasm"));
    assert!(
        path.is_file(),
        "no filter at {} — run `make wasm` first",
        path.display()
    );
    path
}

fn oci(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_oci"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "oci {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn sha256_of(path: &std::path::Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn both_forms_round_trip_through_a_registry() {
    let registry = start_registry();
    let wasm = wasm_path();
    let wasm_text = wasm.to_str().unwrap();
    let original = sha256_of(&wasm);
    let out_dir = TempDir(std::env::temp_dir().join(format!("oci-pull-{}", std::process::id())));
    std::fs::create_dir_all(&out_dir.0).unwrap();

    for form in ["compat", "module"] {
        let reference = format!("{}/wasm/graphql-aggregator:0.1.0-{form}", registry.addr);
        oci(&[
            "push",
            "--form",
            form,
            "--annotation",
            "org.opencontainers.image.version=0.1.0",
            "--annotation",
            "org.opencontainers.image.source=https://example.com/graphql-aggregator",
            "--annotation",
            "org.opencontainers.image.revision=0123abc",
            wasm_text,
            &reference,
        ]);
        let manifest: Value = serde_json::from_str(&oci(&["manifest", &reference])).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        let annotations = &manifest["annotations"];
        assert_eq!(annotations["org.opencontainers.image.version"], "0.1.0");
        assert_eq!(annotations["org.opencontainers.image.revision"], "0123abc");
        assert_eq!(
            annotations["org.opencontainers.image.source"],
            "https://example.com/graphql-aggregator"
        );
        let layers = manifest["layers"].as_array().unwrap();
        let types: Vec<&str> = layers
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap())
            .collect();
        match form {
            "compat" => {
                // Istio / Envoy Gateway: the LAST layer is a tar+gzip holding plugin.wasm.
                assert_eq!(
                    manifest["config"]["mediaType"],
                    "application/vnd.oci.image.config.v1+json"
                );
                assert_eq!(
                    types.last(),
                    Some(&"application/vnd.oci.image.layer.v1.tar+gzip")
                );
                assert_eq!(annotations["module.wasm.image/variant"], "compat");
            }
            _ => {
                // Exactly two layers, one of them the module.
                assert_eq!(
                    types,
                    [
                        "application/vnd.module.wasm.config.v1+json",
                        "application/vnd.module.wasm.content.layer.v1+wasm"
                    ]
                );
                // `oras pull` names the file after the title: Kong's filter name.
                assert_eq!(
                    layers[1]["annotations"]["org.opencontainers.image.title"],
                    "graphql-aggregator.wasm"
                );
            }
        }
        let out = out_dir.0.join(format!("{form}.wasm"));
        oci(&["pull", &reference, out.to_str().unwrap()]);
        assert_eq!(
            sha256_of(&out),
            original,
            "{form}: the pulled module differs"
        );
    }
    drop(registry);
}
