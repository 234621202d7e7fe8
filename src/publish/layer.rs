//! The scripts layer Krobs writes itself, and the image it makes on top of a runtime.
//!
//! The layer is a tar of Krobs's entrypoint at `/opt/krobs/bin/krobs-run` (mode 0755) and of a
//! language's `scripts/` placed at its `image_scripts_dir`: parent folders first, entries sorted by path, mtime 0, owner and group 0, mode 0755 for folders
//! and executables and 0644 for the rest, gzipped with fixed settings and an empty gzip header
//! (no name, no time). The same scripts give the same bytes on any machine.
//!
//! The image is the runtime's config with the layer's diff_id and a history entry appended and
//! Krobs's labels merged, under a manifest of the runtime's media type family (Docker v2
//! schema 2 or OCI). Config and manifests are edited as JSON values so that every field of the
//! runtime Krobs does not know about is kept. A runtime published as an index gets the layer on
//! every platform and a new index.

use std::collections::BTreeMap;
use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use std::path::Path;

use crate::input::context::{tar_header, Context};
use crate::plan::digest::DigestError;
use crate::plan::discover::SCRIPTS_DIR;
use crate::publish::entrypoint;

/// The creation time of the history entry: fixed, so the config is reproducible.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A blob: its bytes, `sha256:` digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub bytes: Bytes,
    pub digest: String,
}

impl Blob {
    pub fn new(bytes: impl Into<Bytes>) -> Blob {
        let bytes = bytes.into();
        let digest = sha256(&bytes);
        Blob { bytes, digest }
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// `sha256:` + hex of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A blob known by its digest and size, its bytes not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digested {
    /// `sha256:` + hex.
    pub digest: String,
    pub size: u64,
}

/// The gzipped scripts layer, described: its bytes are written again where they are uploaded
/// (see [`write_layer`]), so that a plan holds no script in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptsLayer {
    /// The `.tar.gz`: its digest and size (what the manifest names).
    pub blob: Digested,
    /// sha256 of the uncompressed tar (what the config's `rootfs.diff_ids` names).
    pub diff_id: String,
    /// Where the scripts are in the image.
    pub image_dir: String,
}

/// Describes the layer of the `scripts/` entries of a language's context, at `image_dir`,
/// streaming: tar, gzip and both digests at once, no bytes kept. The layer is part of the
/// image's identity: a file that cannot be read is a digest error.
pub fn scripts_layer(context: &Context, image_dir: &str) -> Result<ScriptsLayer, DigestError> {
    write_layer(context, image_dir, std::io::sink()).map(|(layer, _)| layer)
}

/// Writes the gzipped layer into `out` as it is made, and describes it.
pub fn write_layer<W: Write>(
    context: &Context,
    image_dir: &str,
    out: W,
) -> Result<(ScriptsLayer, W), DigestError> {
    let image_dir = format!("/{}", image_dir.trim_matches('/'));
    let fail = |cause| DigestError {
        path: Path::new(SCRIPTS_DIR).to_path_buf(),
        cause,
    };
    let tar = write_tar(context, &image_dir, Hashing::new(gzip(Hashing::new(out))))?;
    let diff_id = tar.digest();
    let gz = tar.inner.finish().map_err(fail)?;
    let blob = Digested {
        digest: gz.digest(),
        size: gz.len,
    };
    Ok((
        ScriptsLayer {
            blob,
            diff_id,
            image_dir,
        },
        gz.inner,
    ))
}

/// The gzip encoder of the layer: fixed settings and an empty gzip header (no file name,
/// mtime 0, OS byte fixed by the encoder).
fn gzip<W: Write>(out: W) -> GzEncoder<W> {
    GzBuilder::new().mtime(0).write(out, Compression::new(6))
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hash: Sha256::new(),
            len: 0,
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hash.clone().finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the uncompressed tar of the layer into `out`; `image_dir` starts with `/`.
fn write_tar<W: Write>(context: &Context, image_dir: &str, out: W) -> Result<W, DigestError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| DigestError { path, cause }
    };
    let scripts = Path::new(SCRIPTS_DIR);
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    let dir_header = || tar_header(tar::EntryType::Directory, 0o755, 0);
    // Krobs's entrypoint (its folders, then the file), then the folders down to the scripts
    // folder that are not there yet, then the folder itself.
    let mut folders = Vec::new();
    let mut add_folders = |tar: &mut tar::Builder<W>, path: &str| -> std::io::Result<()> {
        let mut parent = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            parent.push_str(part);
            parent.push('/');
            if !folders.contains(&parent) {
                tar.append_data(&mut dir_header(), &parent, std::io::empty())?;
                folders.push(parent.clone());
            }
        }
        Ok(())
    };
    let (bin, name) = entrypoint::PATH
        .rsplit_once('/')
        .unwrap_or(("", entrypoint::PATH));
    add_folders(&mut tar, bin).map_err(err(scripts))?;
    let mut h = tar_header(
        tar::EntryType::Regular,
        0o755,
        entrypoint::BYTES.len() as u64,
    );
    tar.append_data(
        &mut h,
        format!("{}/{name}", bin.trim_start_matches('/')),
        entrypoint::BYTES,
    )
    .map_err(err(scripts))?;
    let inside = image_dir.trim_start_matches('/');
    add_folders(&mut tar, inside).map_err(err(scripts))?;
    let prefix = format!("{SCRIPTS_DIR}/");
    for entry in &context.entries {
        let Some(sub) = entry.rel.strip_prefix(&prefix) else {
            continue;
        };
        // Through the door, as the digest read it, and no more than the file's size.
        entry
            .append_to(&mut tar, &format!("{inside}/{sub}"), u64::MAX)
            .map_err(err(&entry.source))?;
    }
    tar.into_inner().map_err(err(scripts))
}

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
    use std::fs;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    fn language(root: &Path, reversed: bool, exec_mode: u32) {
        let d = root.join("l");
        let mut files = vec![
            ("scripts/b.sh", "echo b\n"),
            ("scripts/a.sh", "echo a\n"),
            ("scripts/sub/c.sh", "echo c\n"),
            ("lib/x.sh", "x\n"),
        ];
        if reversed {
            files.reverse();
        }
        fs::create_dir_all(d.join("scripts/sub")).unwrap();
        fs::create_dir_all(d.join("lib")).unwrap();
        fs::write(d.join("Dockerfile"), "FROM x\n").unwrap();
        for (p, text) in files {
            fs::write(d.join(p), text).unwrap();
        }
        fs::set_permissions(
            d.join("scripts/a.sh"),
            fs::Permissions::from_mode(exec_mode),
        )
        .unwrap();
    }

    fn context_of(root: &Path) -> Context {
        Context::collect(&crate::input::repo::Repo::new(root).unwrap(), "l", &[]).unwrap()
    }

    /// The layer as described at plan time, and its bytes as written for an upload.
    fn layer_of(root: &Path) -> (ScriptsLayer, Vec<u8>) {
        let ctx = context_of(root);
        let described = scripts_layer(&ctx, "/opt/krobs/scripts").unwrap();
        let (written, bytes) = write_layer(&ctx, "opt/krobs/scripts/", Vec::new()).unwrap();
        assert_eq!(described, written, "described and written alike");
        (described, bytes)
    }

    fn entries(bytes: &[u8]) -> Vec<(String, u32, u64, u64, u64)> {
        let tar = flate2::read::GzDecoder::new(bytes);
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_layer_is_the_same_whatever_the_order_mtimes_owners_and_modes() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        language(a.path(), false, 0o755);
        language(b.path(), true, 0o700);
        let f = b.path().join("l/scripts/b.sh");
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::os::unix::fs::chown(&f, Some(4242), Some(4242)).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();

        let (la, bytes) = layer_of(a.path());
        assert_eq!(
            (&la, &bytes),
            (&layer_of(b.path()).0, &layer_of(b.path()).1),
            "same scripts, same bytes"
        );
        assert_eq!(la.blob.digest, sha256(&bytes));
        assert_eq!(la.blob.size, bytes.len() as u64);
        assert_eq!(
            entries(&bytes),
            [
                ("opt/".to_string(), 0o755, 0, 0, 0),
                ("opt/krobs/".to_string(), 0o755, 0, 0, 0),
                ("opt/krobs/bin/".to_string(), 0o755, 0, 0, 0),
                ("opt/krobs/bin/krobs-run".to_string(), 0o755, 0, 0, 0),
                ("opt/krobs/scripts/".to_string(), 0o755, 0, 0, 0),
                ("opt/krobs/scripts/a.sh".to_string(), 0o755, 0, 0, 0),
                ("opt/krobs/scripts/b.sh".to_string(), 0o644, 0, 0, 0),
                ("opt/krobs/scripts/sub/".to_string(), 0o755, 0, 0, 0),
                ("opt/krobs/scripts/sub/c.sh".to_string(), 0o644, 0, 0, 0),
            ]
        );
        // The gzip header carries no name and no time.
        assert_eq!(&bytes[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
        // The diff_id is the sha256 of the tar.
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(la.diff_id, sha256(&tar));

        fs::write(a.path().join("l/scripts/b.sh"), "echo B\n").unwrap();
        assert_ne!(layer_of(a.path()).0.blob.digest, la.blob.digest);
    }

    #[test]
    fn streaming_gives_the_bytes_of_the_whole_tar_gzipped_at_once() {
        // Before it streamed, the layer was the whole tar in memory, gzipped in one write:
        // streaming must not change a byte (nor, so, any image digest), whatever the sizes.
        let t = tempfile::tempdir().unwrap();
        language(t.path(), false, 0o755);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for (i, len) in [0usize, 1, 511, 512, 513, 65_535, 1 << 20, 3 << 20]
            .into_iter()
            .enumerate()
        {
            let text: Vec<u8> = (0..len)
                .map(|j| {
                    // Half noise, half text, so that deflate has both kinds of block.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    if (j / 4096) % 2 == 0 {
                        (state >> 56) as u8
                    } else {
                        b"echo a\n"[j % 7]
                    }
                })
                .collect();
            fs::write(t.path().join(format!("l/scripts/f{i}.sh")), text).unwrap();
        }
        let ctx = context_of(t.path());
        let tar = write_tar(&ctx, "/opt/krobs/scripts", Vec::new()).unwrap();
        let mut gz = gzip(Vec::new());
        gz.write_all(&tar).unwrap();
        let at_once = gz.finish().unwrap();
        let (layer, streamed) = write_layer(&ctx, "/opt/krobs/scripts", Vec::new()).unwrap();
        assert!(streamed == at_once, "streamed bytes differ");
        assert_eq!(layer.blob.digest, sha256(&at_once));
        assert_eq!(layer.blob.size, at_once.len() as u64);
        assert_eq!(layer.diff_id, sha256(&tar));
    }

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
                digest: sha256(b"layer"),
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
            assert_eq!(image.top.digest, sha256(&image.top.bytes));
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
