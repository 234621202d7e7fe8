//! The image Krobs makes on top of a runtime: the runtime's config with the scripts layer's
//! diff_id and a history entry appended and Krobs's labels merged, under a manifest of the
//! runtime's media type family (Docker v2 schema 2 or OCI). Config and manifests are edited as
//! JSON values so that every field of the runtime Krobs does not know about is kept. A runtime
//! published as an index gets the layer on every platform and a new index.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::plan::layer::{Blob, ScriptsLayer};

/// The creation time of the history entry: fixed, so the config is reproducible.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
#[cfg(test)]
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The runtime, as the registry serves it.
#[derive(Debug, Clone)]
pub enum Runtime {
    /// One image: its manifest and its config.
    Image { manifest: Blob, config: Blob },
    /// An index: every platform's manifest and config, in the index's order. Entries that
    /// are not images of a platform (attestations) are left out of the new index.
    Index {
        index: Blob,
        images: Vec<(Blob, Blob)>,
    },
}

/// The image Krobs puts together: blobs to upload, child manifests (of an index) to put by
/// digest, and the top manifest to put under the content tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Config blobs, one per platform.
    pub configs: Vec<Blob>,
    /// Platform manifests, put by digest before `top` (empty for a single image).
    pub children: Vec<(String, Blob)>,
    /// The manifest (or index) put under the tag, and its media type.
    pub media_type: String,
    pub top: Blob,
}

impl Image {
    pub fn digest(&self) -> &str {
        &self.top.digest
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("the runtime `{image}` has a manifest Krobs cannot read ({why}): rebuild it with `docker build` (Docker v2 schema 2 or OCI)")]
    Manifest { image: String, why: String },
    #[error("the runtime `{image}` has a config Krobs cannot read ({why}): rebuild it")]
    Config { image: String, why: String },
}

/// The media type a manifest declares (or the registry served it as).
pub fn media_type_of(bytes: &[u8], served: Option<&str>) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.get("mediaType")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| served.map(str::to_string))
}

/// Whether a media type names an index (several platforms).
pub fn is_index(media_type: &str) -> bool {
    media_type == DOCKER_LIST || media_type == OCI_INDEX
}

/// The digests of the platform images an index lists (attestations left out).
pub fn index_images(image: &str, index: &[u8]) -> Result<Vec<String>, ComposeError> {
    let v: Value = serde_json::from_slice(index).map_err(|e| ComposeError::Manifest {
        image: image.to_string(),
        why: e.to_string(),
    })?;
    Ok(index_entries(&v)
        .iter()
        .filter(|m| is_platform_image(m))
        .filter_map(|m| m.get("digest").and_then(Value::as_str).map(str::to_string))
        .collect())
}

/// The config digest a platform manifest names.
pub fn config_digest(image: &str, manifest: &[u8]) -> Result<String, ComposeError> {
    let v: Value = serde_json::from_slice(manifest).map_err(|e| ComposeError::Manifest {
        image: image.to_string(),
        why: e.to_string(),
    })?;
    v.pointer("/config/digest")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ComposeError::Manifest {
            image: image.to_string(),
            why: "no `config.digest`".to_string(),
        })
}

fn index_entries(v: &Value) -> Vec<Value> {
    v.get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn is_platform_image(entry: &Value) -> bool {
    let os = entry.pointer("/platform/os").and_then(Value::as_str);
    let attestation = entry
        .pointer("/annotations/vnd.docker.reference.type")
        .is_some();
    os != Some("unknown") && !attestation
}

/// Puts `layer` on top of `runtime` with `labels`; `image` names the runtime in errors.
pub fn compose(
    image: &str,
    runtime: &Runtime,
    layer: &ScriptsLayer,
    labels: &BTreeMap<String, String>,
) -> Result<Image, ComposeError> {
    match runtime {
        Runtime::Image { manifest, config } => {
            let (manifest, config, media_type) =
                compose_one(image, manifest, config, layer, labels)?;
            Ok(Image {
                configs: vec![config],
                children: Vec::new(),
                media_type,
                top: manifest,
            })
        }
        Runtime::Index { index, images } => {
            let mut v: Value =
                serde_json::from_slice(&index.bytes).map_err(|e| ComposeError::Manifest {
                    image: image.to_string(),
                    why: e.to_string(),
                })?;
            let media_type = media_type_of(&index.bytes, None).unwrap_or(OCI_INDEX.to_string());
            let mut configs = Vec::new();
            let mut children = Vec::new();
            let mut entries = Vec::new();
            let mut images = images.iter();
            for mut entry in index_entries(&v) {
                if !is_platform_image(&entry) {
                    continue;
                }
                let (manifest, config) = images.next().ok_or_else(|| ComposeError::Manifest {
                    image: image.to_string(),
                    why: "a platform's manifest is missing".to_string(),
                })?;
                let (new, config, child_type) =
                    compose_one(image, manifest, config, layer, labels)?;
                entry["digest"] = json!(new.digest);
                entry["size"] = json!(new.size());
                entry["mediaType"] = json!(child_type);
                configs.push(config);
                children.push((child_type, new));
                entries.push(entry);
            }
            v["manifests"] = Value::Array(entries);
            let top = Blob::new(to_bytes(&v));
            Ok(Image {
                configs,
                children,
                media_type,
                top,
            })
        }
    }
}

/// One platform: the new manifest, config, and the manifest's media type.
fn compose_one(
    image: &str,
    manifest: &Blob,
    config: &Blob,
    layer: &ScriptsLayer,
    labels: &BTreeMap<String, String>,
) -> Result<(Blob, Blob, String), ComposeError> {
    let bad_manifest = |why: String| ComposeError::Manifest {
        image: image.to_string(),
        why,
    };
    let bad_config = |why: String| ComposeError::Config {
        image: image.to_string(),
        why,
    };
    let mut m: Value =
        serde_json::from_slice(&manifest.bytes).map_err(|e| bad_manifest(e.to_string()))?;
    let media_type = media_type_of(&manifest.bytes, None).unwrap_or(OCI_MANIFEST.to_string());
    let layer_type = match media_type.as_str() {
        DOCKER_MANIFEST => DOCKER_LAYER,
        OCI_MANIFEST => OCI_LAYER,
        other => return Err(bad_manifest(format!("media type `{other}`"))),
    };

    let mut c: Value =
        serde_json::from_slice(&config.bytes).map_err(|e| bad_config(e.to_string()))?;
    let Some(c_obj) = c.as_object_mut() else {
        return Err(bad_config("not a JSON object".to_string()));
    };
    let rootfs = c_obj
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    match rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
        Some(ids) => ids.push(json!(layer.diff_id)),
        None => return Err(bad_config("no `rootfs.diff_ids`".to_string())),
    }
    let history = c_obj.entry("history").or_insert_with(|| json!([]));
    match history.as_array_mut() {
        Some(h) => h.push(json!({
            "created": EPOCH,
            "created_by": format!("krobs: scripts layer at {}", layer.image_dir),
            "comment": "written by krobs-build, not by the Docker Engine",
        })),
        None => return Err(bad_config("`history` is not a list".to_string())),
    }
    let inner = c_obj.entry("config").or_insert_with(|| json!({}));
    let Some(inner) = inner.as_object_mut() else {
        return Err(bad_config("`config` is not an object".to_string()));
    };
    let existing = inner.entry("Labels").or_insert(Value::Null);
    if !existing.is_object() {
        *existing = Value::Object(Map::new());
    }
    let map = existing.as_object_mut().expect("made an object above");
    for (k, v) in labels {
        map.insert(k.clone(), json!(v));
    }
    let config = Blob::new(to_bytes(&c));

    let Some(layers) = m.get_mut("layers").and_then(Value::as_array_mut) else {
        return Err(bad_manifest("no `layers`".to_string()));
    };
    layers.push(json!({
        "mediaType": layer_type,
        "size": layer.blob.size,
        "digest": layer.blob.digest,
    }));
    let Some(cfg) = m.get_mut("config").and_then(Value::as_object_mut) else {
        return Err(bad_manifest("no `config`".to_string()));
    };
    cfg.insert("digest".to_string(), json!(config.digest));
    cfg.insert("size".to_string(), json!(config.size()));
    Ok((Blob::new(to_bytes(&m)), config, media_type))
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a JSON value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::digest::Digest;
    use crate::plan::layer::Digested;
    fn config() -> Blob {
        Blob::new(
            serde_json::to_vec(&json!({
                "architecture": "amd64",
                "os": "linux",
                "created": "2026-01-01T00:00:00Z",
                "config": {"User": "10001:10001", "Labels": {"dev.krobs.runtime-digest": "sha256:r"}},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:base"]},
                "history": [{"created_by": "FROM"}],
                "unknown_field": {"kept": [1, 2.5, "x"]},
            }))
            .unwrap(),
        )
    }

    fn manifest(media_type: &str, layer_type: &str, config: &Blob) -> Blob {
        Blob::new(
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": media_type,
                "config": {"mediaType": DOCKER_CONFIG, "size": config.size(), "digest": config.digest},
                "layers": [{"mediaType": layer_type, "size": 10, "digest": "sha256:base"}],
            }))
            .unwrap(),
        )
    }

    fn layer() -> ScriptsLayer {
        ScriptsLayer {
            blob: Digested {
                digest: Digest::of(b"layer").into_string(),
                size: 5,
            },
            diff_id: "sha256:diff".to_string(),
            image_dir: "/opt/krobs/scripts".to_string(),
        }
    }

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("dev.krobs.scripts".to_string(), "l/a".to_string())])
    }

    fn check_one(image: &Image, manifest: &Blob, config: &Blob, layer_type: &str) {
        let m: Value = serde_json::from_slice(&manifest.bytes).unwrap();
        let c: Value = serde_json::from_slice(&config.bytes).unwrap();
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[1]["mediaType"], layer_type);
        assert_eq!(layers[1]["digest"], layer().blob.digest);
        assert_eq!(layers[1]["size"], 5);
        assert_eq!(m["config"]["digest"], config.digest);
        assert_eq!(m["config"]["size"], config.size());
        assert!(image.configs.contains(config));
        assert_eq!(
            c["rootfs"]["diff_ids"],
            json!(["sha256:base", "sha256:diff"])
        );
        assert_eq!(c["history"][1]["created"], EPOCH);
        assert_eq!(c["config"]["User"], "10001:10001");
        assert_eq!(
            c["config"]["Labels"]["dev.krobs.runtime-digest"],
            "sha256:r"
        );
        assert_eq!(c["config"]["Labels"]["dev.krobs.scripts"], "l/a");
        assert_eq!(c["unknown_field"], json!({"kept": [1, 2.5, "x"]}));
        assert_eq!(c["created"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn compose_keeps_the_media_type_family() {
        for (mt, lt) in [(DOCKER_MANIFEST, DOCKER_LAYER), (OCI_MANIFEST, OCI_LAYER)] {
            let config = config();
            let runtime = Runtime::Image {
                manifest: manifest(mt, lt, &config),
                config,
            };
            let image = compose("r", &runtime, &layer(), &labels()).unwrap();
            assert_eq!(image.media_type, mt);
            assert!(image.children.is_empty());
            assert_eq!(image.top.digest, Digest::of(&image.top.bytes).into_string());
            check_one(&image, &image.top, &image.configs[0], lt);
            // Reproducible.
            assert_eq!(image, compose("r", &runtime, &layer(), &labels()).unwrap());
        }
    }

    #[test]
    fn compose_puts_the_layer_on_every_platform_of_an_index() {
        let config = config();
        let amd = manifest(OCI_MANIFEST, OCI_LAYER, &config);
        let arm = manifest(DOCKER_MANIFEST, DOCKER_LAYER, &config);
        let index = Blob::new(
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {"mediaType": OCI_MANIFEST, "digest": amd.digest, "size": amd.size(),
                     "platform": {"architecture": "amd64", "os": "linux"}},
                    {"mediaType": OCI_MANIFEST, "digest": "sha256:att", "size": 1,
                     "platform": {"architecture": "unknown", "os": "unknown"},
                     "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
                    {"mediaType": DOCKER_MANIFEST, "digest": arm.digest, "size": arm.size(),
                     "platform": {"architecture": "arm64", "os": "linux"}},
                ],
            }))
            .unwrap(),
        );
        assert_eq!(
            index_images("r", &index.bytes).unwrap(),
            [amd.digest.clone(), arm.digest.clone()]
        );
        let runtime = Runtime::Index {
            index,
            images: vec![(amd, config.clone()), (arm, config)],
        };
        let image = compose("r", &runtime, &layer(), &labels()).unwrap();
        assert_eq!(image.media_type, OCI_INDEX);
        assert_eq!(image.children.len(), 2);
        let top: Value = serde_json::from_slice(&image.top.bytes).unwrap();
        let entries = top["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "the attestation is left out");
        for ((entry, (mt, child)), lt) in entries
            .iter()
            .zip(&image.children)
            .zip([OCI_LAYER, DOCKER_LAYER])
        {
            assert_eq!(entry["digest"], child.digest);
            assert_eq!(entry["size"], child.size());
            assert_eq!(entry["mediaType"], *mt);
            check_one(&image, child, &image.configs[0], lt);
        }
        assert_eq!(entries[1]["platform"]["architecture"], "arm64");
    }

    #[test]
    fn unknown_manifests_are_refused_with_the_runtime_named() {
        let config = config();
        let runtime = Runtime::Image {
            manifest: Blob::new(&br#"{"schemaVersion":1,"mediaType":"application/x"}"#[..]),
            config,
        };
        let e = compose("reg/krobs/l:runtime-x", &runtime, &layer(), &labels()).unwrap_err();
        assert!(e.to_string().starts_with(
            "the runtime `reg/krobs/l:runtime-x` has a manifest Krobs cannot read (media type `application/x`)"
        ), "{e}");
    }
}
