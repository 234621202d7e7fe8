//! Input digests: the identity of a language image, computed from everything that can change
//! it and nothing that cannot (absolute path, file system order, mtimes, owners).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use crate::input::context::{Context, EntryKind, FileRead};

/// Bumped whenever what goes into the digest changes, so old tags are never reused wrongly.
/// v2: the runtime's context no longer holds `scripts/`, which ride on it as a layer.
pub const FORMAT: &str = "krobs-input-digest/v2";

/// A content digest by the one rule registries, manifests and Krobs's file names share:
/// `sha256:` and 64 lowercase hex digits. Made here, or parsed; never assembled elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// The sha256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::finish(Sha256::new_with_prefix(bytes))
    }

    /// What `hasher` has seen.
    pub fn finish(hasher: Sha256) -> Digest {
        Digest(format!("sha256:{}", hex::encode(hasher.finalize())))
    }

    /// `text` when it is a digest: `sha256:` and 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Digest> {
        let hex = text.strip_prefix("sha256:")?;
        is_sha256_hex(hex).then(|| Digest(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 64 lowercase hex digits: a sha256 as Krobs writes it.
pub fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A language's input digest (or an image's, of its runtime and scripts layer).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InputDigest(Digest);

impl InputDigest {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn hex(&self) -> &str {
        self.0.hex()
    }

    /// The image tag that names this content: `input-` + the first 32 hex digits (128 bits).
    pub fn tag(&self) -> String {
        format!("input-{}", &self.hex()[..32])
    }

    /// The tag of the runtime this digest names: `runtime-` + the first 32 hex digits.
    pub fn runtime_tag(&self) -> String {
        format!("runtime-{}", &self.hex()[..32])
    }
}

/// What goes into an image's digest besides its runtime's and its scripts layer's.
pub const IMAGE_FORMAT: &str = "krobs-image/v1";

/// The identity of an image: its runtime's input digest and its scripts layer's digest, so
/// identical runtime and scripts give the same tag on any machine, at any commit.
pub fn image(runtime: &InputDigest, layer_digest: &str) -> InputDigest {
    let mut h = Sha256::new();
    field(&mut h, IMAGE_FORMAT.as_bytes());
    field(&mut h, runtime.as_str().as_bytes());
    field(&mut h, layer_digest.as_bytes());
    InputDigest(Digest::finish(h))
}

impl fmt::Display for InputDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read `{}` for the input digest: {cause}", path.display())]
pub struct DigestError {
    pub path: PathBuf,
    pub cause: std::io::Error,
}

/// Everything besides the context that shapes the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInputs {
    pub build_args: BTreeMap<String, String>,
    pub base_image: Option<String>,
    pub platform: String,
    /// The Dockerfile stage built (`[languages.x] target`); `None`: the last stage.
    pub target: Option<String>,
}

/// Digests a context and its build inputs. File contents are hashed in parallel, streamed in
/// fixed-size chunks; only one 32-byte hash per file is kept.
pub fn compute(context: &Context, inputs: &BuildInputs) -> Result<InputDigest, DigestError> {
    let reads: Vec<Option<&FileRead>> = context
        .entries
        .par_iter()
        .map(|e| match e.kind {
            EntryKind::File => e.read().map(Some).map_err(|cause| DigestError {
                path: e.source.clone(),
                cause,
            }),
            _ => Ok(None),
        })
        .collect::<Result<_, _>>()?;

    let mut h = Sha256::new();
    field(&mut h, FORMAT.as_bytes());
    field(&mut h, b"platform");
    field(&mut h, inputs.platform.as_bytes());
    field(&mut h, b"base");
    field(
        &mut h,
        inputs.base_image.as_deref().unwrap_or("").as_bytes(),
    );
    // Only when set, so that the digests of languages without one stay what they were.
    if let Some(target) = &inputs.target {
        field(&mut h, b"target");
        field(&mut h, target.as_bytes());
    }
    for (k, v) in &inputs.build_args {
        field(&mut h, b"arg");
        field(&mut h, k.as_bytes());
        field(&mut h, v.as_bytes());
    }
    for (entry, read) in context.entries.iter().zip(&reads) {
        match (&entry.kind, read) {
            (EntryKind::Dir, _) => {
                field(&mut h, b"dir");
                field(&mut h, entry.rel.as_bytes());
            }
            (EntryKind::File, Some(read)) => {
                field(&mut h, if read.executable { b"exe" } else { b"file" });
                field(&mut h, entry.rel.as_bytes());
                field(&mut h, &read.sha256);
            }
            (EntryKind::Symlink { target }, _) => {
                field(&mut h, b"link");
                field(&mut h, entry.rel.as_bytes());
                field(&mut h, target.as_bytes());
            }
            (EntryKind::File, None) => unreachable!("every file was hashed"),
        }
    }
    let digest = InputDigest(Digest::finish(h));
    tracing::debug!(files = reads.len(), %digest, "input digest");
    Ok(digest)
}

/// sha256 of some bytes, as lowercase hex.
pub fn bytes_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Length-prefixed, so no two different inputs serialize alike.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// A small language folder; `root` may be any absolute path.
    fn tree(root: &Path) {
        let d = root.join("languages/py");
        fs::create_dir_all(d.join("scripts")).unwrap();
        fs::create_dir_all(d.join("lib")).unwrap();
        fs::write(
            d.join("Dockerfile"),
            "ARG BASE_IMAGE=python:3.12\nFROM ${BASE_IMAGE}\n",
        )
        .unwrap();
        fs::write(d.join(".dockerignore"), "*.log\n").unwrap();
        fs::write(d.join("scripts/a.py"), "print('a')\n").unwrap();
        fs::write(d.join("scripts/b.py"), "print('b')\n").unwrap();
        fs::write(d.join("lib/m.py"), "x = 1\n").unwrap();
        fs::write(d.join("debug.log"), "noise\n").unwrap();
    }

    fn inputs() -> BuildInputs {
        BuildInputs {
            build_args: BTreeMap::from([("BASE_IMAGE".into(), "python:3.12".into())]),
            base_image: Some("python:3.12".into()),
            platform: "linux/amd64".into(),
            target: None,
        }
    }

    fn digest_of(root: &Path, inputs: &BuildInputs) -> InputDigest {
        let ctx = Context::collect(
            &crate::input::repo::Repo::new(root).unwrap(),
            "languages/py",
            &[],
        )
        .unwrap();
        compute(&ctx, inputs).unwrap()
    }

    fn fresh() -> (tempfile::TempDir, InputDigest) {
        let t = tempfile::tempdir().unwrap();
        tree(t.path());
        let d = digest_of(t.path(), &inputs());
        (t, d)
    }

    #[test]
    fn format_and_tag() {
        let (_t, d) = fresh();
        assert!(d.as_str().starts_with("sha256:"));
        assert_eq!(d.hex().len(), 64);
        assert!(d
            .hex()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(d.tag(), format!("input-{}", &d.hex()[..32]));
    }

    #[test]
    fn invariant_under_absolute_path_order_mtime_and_owner() {
        let (_t, base) = fresh();

        // Another absolute path, files created in the opposite order.
        let t2 = tempfile::tempdir().unwrap();
        let nested = t2.path().join("some/deeper/place");
        let d = nested.join("languages/py");
        fs::create_dir_all(d.join("lib")).unwrap();
        fs::create_dir_all(d.join("scripts")).unwrap();
        fs::write(d.join("debug.log"), "other noise, ignored\n").unwrap();
        fs::write(d.join("lib/m.py"), "x = 1\n").unwrap();
        fs::write(d.join("scripts/b.py"), "print('b')\n").unwrap();
        fs::write(d.join("scripts/a.py"), "print('a')\n").unwrap();
        fs::write(d.join(".dockerignore"), "*.log\n").unwrap();
        fs::write(
            d.join("Dockerfile"),
            "ARG BASE_IMAGE=python:3.12\nFROM ${BASE_IMAGE}\n",
        )
        .unwrap();
        assert_eq!(digest_of(&nested, &inputs()), base);

        // Old mtimes and another owner and group.
        let f = d.join("scripts/a.py");
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::os::unix::fs::chown(&f, Some(4242), Some(4242)).unwrap();
        // Non-executable permission bits other than x do not count either.
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(digest_of(&nested, &inputs()), base);
    }

    #[test]
    fn sensitive_to_every_input() {
        let (t, base) = fresh();
        let d = t.path().join("languages/py");
        let mut seen = vec![base.clone()];
        let mut changed = |what: &str, digest: InputDigest| {
            assert!(!seen.contains(&digest), "{what} did not change the digest");
            seen.push(digest);
        };

        fs::write(d.join("scripts/a.py"), "print('A')\n").unwrap();
        changed("one byte", digest_of(t.path(), &inputs()));

        fs::set_permissions(d.join("scripts/b.py"), fs::Permissions::from_mode(0o755)).unwrap();
        changed("one executable bit", digest_of(t.path(), &inputs()));

        let mut i = inputs();
        i.build_args.insert("EXTRA".into(), "1".into());
        changed("one build arg", digest_of(t.path(), &i));

        let mut i = inputs();
        i.base_image = Some("python:3.13".into());
        changed("the base image", digest_of(t.path(), &i));

        let mut i = inputs();
        i.platform = "linux/arm64".into();
        changed("the platform", digest_of(t.path(), &i));
        i.target = Some("jre".into());
        changed("the target stage", digest_of(t.path(), &i));

        fs::write(d.join(".dockerignore"), "*.log\n!debug.log\n").unwrap();
        changed(
            "a file un-ignored by .dockerignore",
            digest_of(t.path(), &inputs()),
        );

        fs::rename(d.join("lib/m.py"), d.join("lib/n.py")).unwrap();
        changed("a rename", digest_of(t.path(), &inputs()));

        fs::create_dir(d.join("empty")).unwrap();
        changed("an empty folder", digest_of(t.path(), &inputs()));
    }

    #[test]
    fn ignored_files_do_not_count() {
        let (t, base) = fresh();
        fs::write(t.path().join("languages/py/debug.log"), "changed noise\n").unwrap();
        fs::write(t.path().join("languages/py/new.log"), "more noise\n").unwrap();
        assert_eq!(digest_of(t.path(), &inputs()), base);
    }
}
