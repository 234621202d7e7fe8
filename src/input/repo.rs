//! The one door to the repository's files. A repository is untrusted input: every path is
//! resolved to its real path and refused when that leaves the repository root; only regular
//! files are opened (checked before opening, and again on the open handle, which is opened
//! without following a final symlink and without blocking on a FIFO); every read is bounded by
//! a documented limit per kind of file. Nothing read from a refused file is ever reported.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Most bytes read from `krobs.toml`.
pub const CONFIG_LIMIT: u64 = 1024 * 1024;
/// Most bytes read from a `.dockerignore`.
pub const IGNORE_LIMIT: u64 = 1024 * 1024;
/// Most bytes read from a language's `Dockerfile`.
pub const DOCKERFILE_LIMIT: u64 = 1024 * 1024;
/// The documentation header must end within this many bytes of a script's start.
pub const HEADER_LIMIT: usize = 64 * 1024;

/// Why a repository path was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The real path is outside the repository root.
    Outside,
    /// Not a regular file (a FIFO, device, socket or folder).
    NotRegular(&'static str),
    /// Larger than the limit for its kind.
    TooLarge { limit: u64, what: &'static str },
    /// Missing, unreadable, a symlink loop, ...
    Io(std::io::Error),
}

/// A refused repository path; `path` is as the user wrote it (repository-relative).
#[derive(Debug)]
pub struct RepoError {
    pub path: String,
    pub refusal: Refusal,
}

impl RepoError {
    pub fn is_not_found(&self) -> bool {
        matches!(&self.refusal, Refusal::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Outside => f.write_str(
                "resolves to a path outside the repository: Krobs reads only files inside it; replace the symlink with the file itself",
            ),
            Refusal::NotRegular(kind) => {
                write!(f, "is a {kind}, not a regular file: replace it with a file")
            }
            Refusal::TooLarge { limit, what } => write!(
                f,
                "is larger than {} KiB, the limit for {what}: make it smaller",
                limit / 1024
            ),
            Refusal::Io(e) => write!(f, "cannot read: {e}"),
        }
    }
}

impl fmt::Display for RepoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.refusal {
            Refusal::Io(e) => write!(f, "cannot read `{}`: {e}", self.path),
            refusal => write!(f, "`{}` {refusal}", self.path),
        }
    }
}

impl std::error::Error for RepoError {}

/// A repository root, by its real path.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
}

impl Repo {
    /// The repository rooted at `root` (resolved to its real path).
    pub fn new(root: &Path) -> Result<Repo, RepoError> {
        let root = std::fs::canonicalize(root).map_err(|e| RepoError {
            path: root.display().to_string(),
            refusal: Refusal::Io(e),
        })?;
        Ok(Repo { root })
    }

    /// The real path of the root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The real path of a repository-relative path, refused when it is outside the root.
    /// Symlinks are followed (a loop is an error); the path must exist.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, RepoError> {
        let err = |refusal| RepoError {
            path: rel.to_string(),
            refusal,
        };
        if Path::new(rel).is_absolute() {
            return Err(err(Refusal::Outside));
        }
        let real = std::fs::canonicalize(self.root.join(rel)).map_err(|e| err(Refusal::Io(e)))?;
        if !real.starts_with(&self.root) {
            return Err(err(Refusal::Outside));
        }
        Ok(real)
    }

    /// The whole content of a regular file inside the repository, at most `limit` bytes.
    pub fn read(&self, rel: &str, limit: u64, what: &'static str) -> Result<Vec<u8>, RepoError> {
        let real = self.resolve(rel)?;
        let err = |refusal| RepoError {
            path: rel.to_string(),
            refusal,
        };
        let (file, meta) = open_regular(&real).map_err(err)?;
        if meta.len() > limit {
            return Err(err(Refusal::TooLarge { limit, what }));
        }
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| err(Refusal::Io(e)))?;
        if bytes.len() as u64 > limit {
            return Err(err(Refusal::TooLarge { limit, what }));
        }
        Ok(bytes)
    }

    /// Where an output file may be written: inside the repository (its nearest existing
    /// ancestor resolves inside the root) and either absent or a regular file (not a symlink).
    pub fn check_output(&self, rel: &Path) -> Result<(), RepoError> {
        let shown = rel.display().to_string();
        let err = |refusal| RepoError {
            path: shown.clone(),
            refusal,
        };
        let full = self.root.join(rel);
        let mut ancestor = full.parent();
        while let Some(a) = ancestor {
            match std::fs::canonicalize(a) {
                Ok(real) if real.starts_with(&self.root) => break,
                Ok(_) => return Err(err(Refusal::Outside)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => ancestor = a.parent(),
                Err(e) => return Err(err(Refusal::Io(e))),
            }
        }
        match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.file_type().is_file() => Ok(()),
            Ok(meta) => Err(err(Refusal::NotRegular(kind_of(&meta)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err(Refusal::Io(e))),
        }
    }
}

/// What a script file gives: its first bytes (for the header) and the sha256 of all of it,
/// read streaming.
#[derive(Debug, Clone)]
pub struct ScriptRead {
    /// At most `HEADER_LIMIT` bytes from the start.
    pub prefix: Vec<u8>,
    /// Whether the file is longer than `prefix`.
    pub truncated: bool,
    /// Lowercase hex sha256 of the whole file.
    pub sha256: String,
}

/// Reads a regular file (already found inside the repository by a walk that does not follow
/// symlinks): the first `prefix_limit` bytes, and the sha256 of all of it, streaming.
pub fn read_script(path: &Path, prefix_limit: usize) -> Result<ScriptRead, Refusal> {
    let (mut file, _) = open_regular(path)?;
    let mut h = Sha256::new();
    let mut prefix = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(Refusal::Io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        let room = prefix_limit - prefix.len();
        prefix.extend_from_slice(&buf[..n.min(room)]);
        truncated |= n > room;
    }
    Ok(ScriptRead {
        prefix,
        truncated,
        sha256: hex::encode(h.finalize()),
    })
}

/// The first `limit` bytes of a regular file (found by a walk that does not follow symlinks).
pub fn read_prefix(path: &Path, limit: u64) -> Result<Vec<u8>, Refusal> {
    let (file, _) = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(Refusal::Io)?;
    Ok(bytes)
}

/// Opens a regular file: refused before opening when `lstat` says it is anything else, and
/// opened with `O_NOFOLLOW | O_NONBLOCK` and checked again on the handle, so that a file
/// swapped for a FIFO or a symlink in between is refused instead of blocking or leading out.
pub fn open_regular(path: &Path) -> Result<(File, Metadata), Refusal> {
    let meta = std::fs::symlink_metadata(path).map_err(Refusal::Io)?;
    if !meta.file_type().is_file() {
        return Err(Refusal::NotRegular(kind_of(&meta)));
    }
    open_found(path)
}

/// Opens a file that a walk not following symlinks found to be a regular file: the type its
/// folder's entry gave stands for the `lstat` of [`open_regular`], so that the walk and the
/// open look the path up once each. The handle is checked all the same: a file swapped for a
/// FIFO, a symlink or a folder since the walk is refused, and nothing blocks.
pub fn open_found(path: &Path) -> Result<(File, Metadata), Refusal> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Refusal::NotRegular("symlink"),
            _ => Refusal::Io(e),
        })?;
    let meta = file.metadata().map_err(Refusal::Io)?;
    if !meta.file_type().is_file() {
        return Err(Refusal::NotRegular(kind_of(&meta)));
    }
    Ok((file, meta))
}

/// A name for the kind of a file that is not a regular file.
pub fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "folder"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn refuses_escapes_fifos_and_large_files() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("repo");
        fs::create_dir(&root).unwrap();
        fs::write(t.path().join("secret"), "s3cret").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("out")).unwrap();
        fs::write(root.join("big"), vec![b'a'; 2048]).unwrap();
        let repo = Repo::new(&root).unwrap();
        let e = repo.read("out", 10, "tests").unwrap_err();
        assert!(matches!(e.refusal, Refusal::Outside), "{e}");
        assert!(!e.to_string().contains("s3cret"));
        let e = repo.read("big", 1024, "tests").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`big` is larger than 1 KiB, the limit for tests: make it smaller"
        );
        assert_eq!(repo.read("big", 4096, "tests").unwrap().len(), 2048);
        assert!(matches!(
            repo.read("/etc/passwd", 10, "t").unwrap_err().refusal,
            Refusal::Outside
        ));
    }
}
