//! The scripts layer Krobs writes itself: part of an image's identity, so the plan computes
//! its digest, and publishing writes the same bytes again where they are uploaded.
//!
//! The layer is a tar of Krobs's entrypoint at `/opt/krobs/bin/krobs-run` (mode 0755) and of a
//! language's `scripts/` placed at its `image_scripts_dir`: parent folders first, entries sorted by path, mtime 0, owner and group 0, mode 0755 for folders
//! and executables and 0644 for the rest, gzipped with fixed settings and an empty gzip header
//! (no name, no time). The same scripts give the same bytes on any machine.

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use sha2::{Digest as _, Sha256};

use std::path::Path;

use crate::input::context::{tar_header, Context};
use crate::plan::digest::{Digest, DigestError};
use crate::plan::discover::SCRIPTS_DIR;
use crate::plan::entrypoint;

/// A blob: its bytes, `sha256:` digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub bytes: Bytes,
    pub digest: String,
}

impl Blob {
    pub fn new(bytes: impl Into<Bytes>) -> Blob {
        let bytes = bytes.into();
        let digest = Digest::of(&bytes).into_string();
        Blob { bytes, digest }
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
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
        Digest::finish(self.hash.clone()).into_string()
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
        assert_eq!(la.blob.digest, Digest::of(&bytes).into_string());
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
        assert_eq!(la.diff_id, Digest::of(&tar).into_string());

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
        assert_eq!(layer.blob.digest, Digest::of(&at_once).into_string());
        assert_eq!(layer.blob.size, at_once.len() as u64);
        assert_eq!(layer.diff_id, Digest::of(&tar).into_string());
    }
}
