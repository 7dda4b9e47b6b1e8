//! The two OCI forms of a Proxy-Wasm module that Istio's and Envoy
//! Gateway's image fetchers accept, built and read as plain data.
//!
//! * **compat**: an OCI image (config `application/vnd.oci.image.config.v1+json`)
//!   whose last layer is a `tar+gzip` holding `plugin.wasm`, annotated
//!   `module.wasm.image/variant: compat`;
//! * **module**: exactly two layers, `application/vnd.module.wasm.config.v1+json`
//!   (a small JSON) and `application/vnd.module.wasm.content.layer.v1+wasm`
//!   (the module itself). Both fetchers insist on the two *layers*: the wasm
//!   config pushed as the manifest's config instead leaves one layer, which
//!   they refuse.

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;

/// OCI image config media type (compat form).
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI tar+gzip layer media type (compat form).
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Wasm module config media type (module form).
pub const WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
/// Wasm module content layer media type (module form).
pub const WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// The manifest annotation that marks the compat form.
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// The file name the compat form's layer holds.
pub const PLUGIN_FILE: &str = "plugin.wasm";

/// Which form to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// The OCI image with `plugin.wasm` in a tar+gzip layer.
    Compat,
    /// The two-layer `application/vnd.module.wasm.*` artifact.
    Module,
}

impl Form {
    /// Parses `compat` or `module`.
    pub fn parse(text: &str) -> Result<Form, String> {
        match text {
            "compat" => Ok(Form::Compat),
            "module" => Ok(Form::Module),
            other => Err(format!("unknown form {other:?}: use compat or module")),
        }
    }
}

/// One blob with its media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// The content.
    pub data: Vec<u8>,
    /// Its media type.
    pub media_type: &'static str,
}

/// The file name the module form's wasm layer carries
/// (`org.opencontainers.image.title`), so that generic clients such as
/// `oras pull` write it under the name Kong takes the filter's name from.
pub const MODULE_TITLE: &str = "graphql-aggregator.wasm";

/// What to push: the config, the layers, and the manifest's annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The config blob.
    pub config: Blob,
    /// The layers, in order.
    pub layers: Vec<Blob>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

/// `sha256:<hex>` of some bytes.
pub fn digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Builds `form` of `wasm`, with these manifest annotations (the compat
/// form adds its variant annotation).
pub fn build(
    form: Form,
    wasm: &[u8],
    annotations: &BTreeMap<String, String>,
) -> Result<Image, String> {
    let mut annotations = annotations.clone();
    match form {
        Form::Compat => {
            let tar = tar_of(wasm)?;
            let diff_id = digest(&tar);
            let layer = gzip(&tar)?;
            let config = serde_json::json!({
                "architecture": "wasm",
                "os": "wasip1",
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "config": {},
            });
            annotations.insert(VARIANT_ANNOTATION.into(), "compat".into());
            Ok(Image {
                config: Blob {
                    data: config.to_string().into_bytes(),
                    media_type: OCI_CONFIG,
                },
                layers: vec![Blob {
                    data: layer,
                    media_type: OCI_LAYER_TAR_GZIP,
                }],
                annotations,
            })
        }
        Form::Module => {
            let module_config = serde_json::json!({
                "created": annotations.get("org.opencontainers.image.created"),
                "author": annotations.get("org.opencontainers.image.authors"),
                "description": annotations.get("org.opencontainers.image.description"),
            });
            let image_config = serde_json::json!({
                "architecture": "wasm",
                "os": "wasip1",
                "rootfs": {"type": "layers", "diff_ids": [digest(module_config.to_string().as_bytes()), digest(wasm)]},
                "config": {},
            });
            Ok(Image {
                config: Blob {
                    data: image_config.to_string().into_bytes(),
                    media_type: OCI_CONFIG,
                },
                layers: vec![
                    Blob {
                        data: module_config.to_string().into_bytes(),
                        media_type: WASM_CONFIG,
                    },
                    Blob {
                        data: wasm.to_vec(),
                        media_type: WASM_LAYER,
                    },
                ],
                annotations,
            })
        }
    }
}

/// A tar holding `plugin.wasm` (mode 0644, time 0: the same bytes every time).
fn tar_of(wasm: &[u8]) -> Result<Vec<u8>, String> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(wasm.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, PLUGIN_FILE, wasm)
        .map_err(|e| format!("cannot build the layer: {e}"))?;
    builder
        .into_inner()
        .map_err(|e| format!("cannot build the layer: {e}"))
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(data)
        .and_then(|()| encoder.finish())
        .map_err(|e| format!("cannot compress the layer: {e}"))
}

/// The `.wasm` inside a pulled image of either form, found by the layers'
/// media types (the compat form's last tar+gzip layer holding `plugin.wasm`).
pub fn extract(layers: &[Blob]) -> Result<Vec<u8>, String> {
    if let Some(module) = layers.iter().find(|l| l.media_type == WASM_LAYER) {
        return Ok(module.data.clone());
    }
    let layer = layers
        .iter()
        .rev()
        .find(|l| l.media_type == OCI_LAYER_TAR_GZIP)
        .ok_or("the image has neither a wasm content layer nor a tar+gzip layer")?;
    let mut archive = tar::Archive::new(GzDecoder::new(layer.data.as_slice()));
    let entries = archive
        .entries()
        .map_err(|e| format!("the layer is not a tar+gzip: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("the layer is not a tar+gzip: {e}"))?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        if path.file_name().is_some_and(|n| n == PLUGIN_FILE) {
            let mut wasm = Vec::new();
            entry.read_to_end(&mut wasm).map_err(|e| e.to_string())?;
            return Ok(wasm);
        }
    }
    Err(format!("the layer has no {PLUGIN_FILE}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WASM: &[u8] = b"\0asm\x01\0\0\0 pretend module";

    #[test]
    fn both_forms_round_trip() {
        let mut notes = BTreeMap::new();
        notes.insert(
            "org.opencontainers.image.version".to_string(),
            "1.2.3".to_string(),
        );
        let compat = build(Form::Compat, WASM, &notes).unwrap();
        assert_eq!(compat.config.media_type, OCI_CONFIG);
        assert_eq!(compat.layers.len(), 1);
        assert_eq!(compat.annotations[VARIANT_ANNOTATION], "compat");
        assert_eq!(
            compat.annotations["org.opencontainers.image.version"],
            "1.2.3"
        );
        assert_eq!(extract(&compat.layers).unwrap(), WASM);
        // Reproducible: the same module gives the same layer.
        assert_eq!(
            build(Form::Compat, WASM, &notes).unwrap().layers,
            compat.layers
        );

        let module = build(Form::Module, WASM, &notes).unwrap();
        let types: Vec<&str> = module.layers.iter().map(|l| l.media_type).collect();
        assert_eq!(types, [WASM_CONFIG, WASM_LAYER]);
        assert_eq!(module.layers[1].data, WASM);
        assert!(!module.annotations.contains_key(VARIANT_ANNOTATION));
        assert_eq!(extract(&module.layers).unwrap(), WASM);
    }

    #[test]
    fn digests_are_sha256() {
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
