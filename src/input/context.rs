//! A language's build context as the Docker daemon would receive it: the language folder
//! minus what `.dockerignore` leaves out (the Dockerfile and `.dockerignore` are always sent),
//! plus the configured extra inputs. The same list feeds the input digest and the build tar,
//! so what is hashed is exactly what is built.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use walkdir::WalkDir;

use crate::input::dockerignore::{DockerIgnore, MatchInfo};
use crate::input::problem::Problem;
use crate::input::repo::{kind_of, Repo, IGNORE_LIMIT};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// A regular file, by the type its folder's entry gave the walk: its mode and size are
    /// taken from the open file when it is read (see [`FileRead`], [`Entry::append_to`]).
    File,
    Symlink {
        target: String,
    },
}

/// One entry of the build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the context, `/`-separated.
    pub rel: String,
    /// Where it is on disk.
    pub source: PathBuf,
    pub kind: EntryKind,
    /// A file's one read, kept (see [`Entry::read`]).
    read: OnceLock<FileRead>,
}

/// What the one read of a context file gives: whoever needs its content afterwards (the input
/// digest, the check for a documentation header outside `scripts/`) takes it from here, so
/// that a file is opened and read once per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    pub sha256: [u8; 32],
    /// Whether any execute bit is set, as the open file gives it.
    pub executable: bool,
    /// The first line of the file's first [`LEAD_PREFIX`] bytes that is not a `#!` line, with
    /// its trailing blanks trimmed, when at most [`LEAD_MAX`] bytes long and holding `---`
    /// (else it cannot be a fence): what a header's opening fence (`# ---`) is compared with.
    pub lead: Option<String>,
}

/// How far into a file a documentation header's fence is looked for.
pub const LEAD_PREFIX: usize = 4096;
/// The longest first line kept: far longer than any comment marker's fence.
pub const LEAD_MAX: usize = 256;

impl Entry {
    fn new(rel: String, source: PathBuf, kind: EntryKind) -> Entry {
        Entry {
            rel,
            source,
            kind,
            read: OnceLock::new(),
        }
    }

    /// Reads the file through the repository's door, streaming it in fixed-size chunks, once:
    /// later calls answer from what the first one kept.
    pub fn read(&self) -> std::io::Result<&FileRead> {
        if let Some(read) = self.read.get() {
            return Ok(read);
        }
        let read = read_file(&self.source)?;
        Ok(self.read.get_or_init(|| read))
    }

    /// Appends this entry to `tar` at `path` the way every tar Krobs writes has it (see
    /// [`tar_header`]): mode 0755 for a folder (`path/`) or an executable, 0644 for another
    /// file, 0777 for a symlink. A file goes through the repository's door (still a regular
    /// file, not swapped since the walk) and is read exactly to the size it has when opened,
    /// which must be at most `size_limit` (else `FileTooLarge`, before anything is read); its
    /// mode is the open file's.
    /// Returns the bytes of file data appended.
    pub fn append_to<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        path: &str,
        size_limit: u64,
    ) -> std::io::Result<u64> {
        match &self.kind {
            EntryKind::Dir => {
                let mut h = tar_header(tar::EntryType::Directory, 0o755, 0);
                tar.append_data(&mut h, format!("{path}/"), std::io::empty())?;
                Ok(0)
            }
            EntryKind::File => {
                let (file, meta) = open_found(&self.source)?;
                let size = meta.len();
                if size > size_limit {
                    return Err(std::io::Error::from(std::io::ErrorKind::FileTooLarge));
                }
                let mode = if is_executable(&meta) { 0o755 } else { 0o644 };
                let mut h = tar_header(tar::EntryType::Regular, mode, size);
                let data = Exactly {
                    inner: file.take(size),
                };
                tar.append_data(&mut h, path, data)?;
                Ok(size)
            }
            EntryKind::Symlink { target } => {
                let mut h = tar_header(tar::EntryType::Symlink, 0o777, 0);
                tar.append_link(&mut h, path, target)?;
                Ok(0)
            }
        }
    }
}

/// A tar header as Krobs writes every entry, so that the same content gives the same bytes
/// anywhere: GNU format, owner and group 0, mtime 0.
pub fn tar_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// A file's first `len` bytes, exactly: a file that shrank since its size was read is an
/// error, not a short entry in the tar.
struct Exactly<R> {
    inner: std::io::Take<R>,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.inner.limit() > 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "it shrank while Krobs read it: rerun once nothing writes to it",
            ));
        }
        Ok(n)
    }
}

/// A file the walk found, through the repository's door ([`open_found`](crate::input::repo::open_found)).
fn open_found(path: &Path) -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
    crate::input::repo::open_found(path).map_err(|r| match r {
        crate::input::repo::Refusal::Io(e) => e,
        other => std::io::Error::other(other.to_string()),
    })
}

fn is_executable(meta: &std::fs::Metadata) -> bool {
    meta.permissions().mode() & 0o111 != 0
}

/// How much of a file one `read` asks for.
const CHUNK: usize = 64 * 1024;

thread_local! {
    /// Each thread's read buffer, zeroed once rather than once per file.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn read_file(path: &Path) -> std::io::Result<FileRead> {
    let (mut file, meta) = open_found(path)?;
    let mut h = Sha256::new();
    let mut prefix = [0u8; LEAD_PREFIX];
    let mut kept = 0;
    let mut total = 0u64;
    BUFFER.with_borrow_mut(|buf| {
        buf.resize(CHUNK, 0);
        loop {
            let n = file.read(buf)?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            let more = n.min(LEAD_PREFIX - kept);
            prefix[kept..kept + more].copy_from_slice(&buf[..more]);
            kept += more;
            h.update(&buf[..n]);
            total += n as u64;
            // A short read that ends at the size the open file has is its end: one read less
            // per file. A file that grew or shrank since is read on to the end all the same.
            if n < buf.len() && total == meta.len() {
                return Ok(());
            }
        }
    })?;
    let prefix = &prefix[..kept];
    // Found in the bytes: decoding the whole prefix of a binary file costs more than hashing it.
    let first = prefix
        .split(|b| *b == b'\n')
        .find(|l| !l.starts_with(b"#!"));
    let lead = first
        .filter(|l| !prefix.is_empty() && l.len() <= LEAD_MAX)
        // Decoding every binary file's first bytes would cost more than this search.
        .filter(|l| l.windows(3).any(|w| w == b"---"))
        .map(|l| String::from_utf8_lossy(l).trim_end().to_string());
    Ok(FileRead {
        sha256: h.finalize().into(),
        executable: is_executable(&meta),
        lead,
    })
}

/// The sorted entries of one build context.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub entries: Vec<Entry>,
    /// Regular files `.dockerignore` leaves out (lint checks none of them is a documented
    /// script).
    pub ignored: Vec<Entry>,
    /// The language's `.dockerignore`, to ask about paths the walk did not meet.
    pub ignore: DockerIgnore,
}

impl Context {
    /// Walks `dir` (and each extra input) of the repository into a context. `dir` and
    /// `extra_inputs` are repository-relative and `/`-separated; each must resolve inside the
    /// repository.
    pub fn collect(
        repo: &Repo,
        dir: &str,
        extra_inputs: &[String],
    ) -> Result<Context, Vec<Problem>> {
        let mut problems = Vec::new();
        let base = match repo.resolve(dir) {
            Ok(base) => base,
            Err(e) => return Err(vec![Problem::new(dir, e.refusal.to_string())]),
        };
        let ignore = read_ignore(repo, dir, &mut problems);

        let mut entries = Vec::new();
        let mut ignored = Vec::new();
        let mut walker = Walker {
            ignore: &ignore,
            entries: &mut entries,
            ignored: &mut ignored,
            problems: &mut problems,
        };
        walker.walk(&base, dir, "");
        for extra in extra_inputs {
            match repo.resolve(extra) {
                Ok(source) => walker.walk(&source, extra, extra),
                Err(e) if e.is_not_found() => walker.problems.push(Problem::new(
                    extra.clone(),
                    format!(
                        "extra input of `{dir}` does not exist: fix `extra_inputs` in krobs.toml"
                    ),
                )),
                Err(e) => walker.problems.push(Problem::new(
                    extra.clone(),
                    format!("extra input of `{dir}` {}", e.refusal),
                )),
            }
        }
        sort_and_merge(&mut entries, dir, &mut problems);

        if problems.is_empty() {
            Ok(Context {
                entries,
                ignored,
                ignore,
            })
        } else {
            Err(problems)
        }
    }

    /// Whether `.dockerignore` leaves the context path `rel` out, whether or not it exists
    /// yet (a file Krobs writes later).
    pub fn leaves_out(&self, rel: &str) -> bool {
        self.ignore.matches(rel, None).0
    }

    /// Reads every file `wanted` picks ([`Entry::read`]), in parallel; a file that cannot be
    /// read is left for whoever needs it to report.
    pub fn read_files(&self, wanted: impl Fn(&Entry) -> bool + Sync) {
        self.entries
            .par_iter()
            .filter(|e| matches!(e.kind, EntryKind::File) && wanted(e))
            .for_each(|e| {
                let _ = e.read();
            });
    }

    /// Number of regular files.
    pub fn file_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::File))
            .count()
    }
}

/// The language's `.dockerignore` (none is an empty one); a bad one is noted in `problems`.
fn read_ignore(repo: &Repo, dir: &str, problems: &mut Vec<Problem>) -> DockerIgnore {
    let ignore_rel = format!("{dir}/.dockerignore");
    match repo.read(&ignore_rel, IGNORE_LIMIT, "a `.dockerignore`") {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => match DockerIgnore::parse(&text) {
                Ok(ignore) => ignore,
                Err(e) => {
                    problems.push(Problem::at(&ignore_rel, e.line, e.message));
                    DockerIgnore::default()
                }
            },
            Err(_) => {
                problems.push(Problem::new(
                    &ignore_rel,
                    "not UTF-8 text: save it as UTF-8",
                ));
                DockerIgnore::default()
            }
        },
        Err(e) if e.is_not_found() => DockerIgnore::default(),
        Err(e) => {
            problems.push(Problem::new(&ignore_rel, e.refusal.to_string()));
            DockerIgnore::default()
        }
    }
}

/// Sorts the entries by context path and keeps one of each: a folder met twice is one folder,
/// anything else met twice is a collision noted in `problems`.
fn sort_and_merge(entries: &mut Vec<Entry>, dir: &str, problems: &mut Vec<Problem>) {
    entries.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    for pair in entries.windows(2) {
        if pair[0].rel == pair[1].rel && pair[0].kind != EntryKind::Dir {
            problems.push(Problem::new(
                format!("{dir}/{}", pair[0].rel),
                format!(
                    "extra input collides with `{}` in the build context: rename one of them",
                    pair[1].source.display()
                ),
            ));
        }
    }
    entries.dedup_by(|a, b| a.rel == b.rel);
}

struct Walker<'a> {
    ignore: &'a DockerIgnore,
    entries: &'a mut Vec<Entry>,
    ignored: &'a mut Vec<Entry>,
    problems: &'a mut Vec<Problem>,
}

impl Walker<'_> {
    /// Walks `source` (shown as `display` in problems) into entries whose context path starts
    /// with `prefix`, applying `.dockerignore` as the Docker client does while it walks.
    fn walk(&mut self, source: &Path, display: &str, prefix: &str) {
        let mut it = WalkDir::new(source)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter();
        // The match results of the folders above the current entry, by depth.
        let mut parents: Vec<MatchInfo> = Vec::new();
        while let Some(item) = it.next() {
            let entry = match item {
                Ok(entry) => entry,
                Err(e) => {
                    self.unreadable(&e, source, display);
                    continue;
                }
            };
            let Ok(sub) = entry.path().strip_prefix(source) else {
                continue;
            };
            let Some(sub) = sub.to_str() else {
                self.problems.push(Problem::new(
                    join(display, &sub.to_string_lossy()),
                    "file name is not valid UTF-8: rename it",
                ));
                if entry.file_type().is_dir() {
                    it.skip_current_dir();
                }
                continue;
            };
            let rel = if sub.is_empty() {
                if prefix.is_empty() {
                    continue; // the context root itself
                }
                prefix.to_string()
            } else {
                join(prefix, sub)
            };
            let depth = entry.depth() + usize::from(!prefix.is_empty());
            parents.truncate(depth.saturating_sub(1));
            let parent = if depth >= 2 { parents.last() } else { None };
            let (excluded, info) = self.ignore.matches(&rel, parent);
            let file_type = entry.file_type();
            if file_type.is_dir() {
                parents.push(info);
            }
            let always_sent = prefix.is_empty() && (rel == "Dockerfile" || rel == ".dockerignore");
            let shown = join(display, sub);
            if !always_sent && excluded {
                if file_type.is_dir() {
                    if !self.ignore.walk_excluded_dir(&rel) {
                        it.skip_current_dir();
                    }
                } else if file_type.is_file() {
                    self.ignored
                        .push(Entry::new(rel, entry.path().to_path_buf(), EntryKind::File));
                }
                continue;
            }
            if let Some(kind) = self.kind_of_entry(&entry, source, shown) {
                self.entries
                    .push(Entry::new(rel, entry.path().to_path_buf(), kind));
            }
        }
    }

    /// Notes an entry the walk could not read, at its path as shown under `display`.
    fn unreadable(&mut self, e: &walkdir::Error, source: &Path, display: &str) {
        let path = e
            .path()
            .and_then(|p| p.strip_prefix(source).ok())
            .map(|p| join(display, &p.to_string_lossy()))
            .unwrap_or_else(|| display.to_string());
        let why = e
            .io_error()
            .map(|io| io.to_string())
            .unwrap_or_else(|| e.to_string());
        self.problems
            .push(Problem::new(path, format!("cannot read: {why}")));
    }

    /// What a kept entry is (folder, file, symlink inside `source`), by the type its folder's
    /// entry gives, or `None` with a problem noted when it cannot go into a build context.
    fn kind_of_entry(
        &mut self,
        entry: &walkdir::DirEntry,
        source: &Path,
        shown: String,
    ) -> Option<EntryKind> {
        let file_type = entry.file_type();
        if file_type.is_dir() {
            Some(EntryKind::Dir)
        } else if file_type.is_file() {
            Some(EntryKind::File)
        } else if file_type.is_symlink() {
            match symlink_target(entry.path(), source) {
                Ok(target) => Some(EntryKind::Symlink { target }),
                Err(message) => {
                    self.problems.push(Problem::new(shown, message));
                    None
                }
            }
        } else {
            let what = entry.metadata().map_or("special file", |m| kind_of(&m));
            self.problems.push(Problem::new(
                shown,
                format!("is a {what}, not a file, folder or symlink: remove it or add it to `.dockerignore`"),
            ));
            None
        }
    }
}

/// The target of a symlink, refused when it leads outside `boundary`.
fn symlink_target(link: &Path, boundary: &Path) -> Result<String, String> {
    let target = std::fs::read_link(link).map_err(|e| format!("cannot read symlink: {e}"))?;
    let target_text = target
        .to_str()
        .ok_or_else(|| "symlink target is not valid UTF-8: replace the link".to_string())?
        .to_string();
    let escapes = || {
        format!(
            "symlink points outside `{}` (to `{target_text}`): Docker cannot follow it; copy the file in instead",
            boundary.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        )
    };
    if target.is_absolute() {
        return Err(escapes());
    }
    // Resolve lexically from the link's folder, relative to the boundary.
    let parent = link
        .parent()
        .and_then(|p| p.strip_prefix(boundary).ok())
        .unwrap_or(Path::new(""));
    let mut depth: Vec<Component> = parent.components().collect();
    for c in target.components() {
        match c {
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return Err(escapes());
                }
            }
            Component::CurDir => {}
            other => depth.push(other),
        }
    }
    Ok(target_text)
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_file_is_read_once_and_its_lead_kept() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("l");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("a.sh"), "#!/bin/sh\n# ---   \n# owner = \"x\"\n").unwrap();
        fs::write(d.join("long"), "x".repeat(LEAD_MAX + 1)).unwrap();
        fs::write(d.join("empty"), "").unwrap();
        fs::write(d.join("plain"), "echo hello\n# ---\n").unwrap();
        let ctx = Context::collect(&Repo::new(t.path()).unwrap(), "l", &[]).unwrap();
        ctx.read_files(|_| true);
        let lead = |rel: &str| {
            let e = ctx.entries.iter().find(|e| e.rel == rel).unwrap();
            e.read().unwrap().lead.clone()
        };
        assert_eq!(lead("a.sh").as_deref(), Some("# ---"));
        assert_eq!(lead("long"), None, "longer than any fence");
        assert_eq!(lead("plain"), None, "no fence");
        assert_eq!(lead("empty"), None);
        // What was read is kept: the files are gone, their reads answer all the same.
        let before: Vec<[u8; 32]> = ctx
            .entries
            .iter()
            .map(|e| e.read().unwrap().sha256)
            .collect();
        fs::remove_dir_all(&d).unwrap();
        let after: Vec<[u8; 32]> = ctx
            .entries
            .iter()
            .map(|e| e.read().unwrap().sha256)
            .collect();
        assert_eq!(before, after);
        assert_eq!(
            before[0],
            <[u8; 32]>::from(Sha256::digest(b"#!/bin/sh\n# ---   \n# owner = \"x\"\n"))
        );
    }

    #[test]
    fn a_file_is_hashed_whole_at_any_size() {
        let t = tempfile::tempdir().unwrap();
        let sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7];
        for (i, size) in sizes.into_iter().enumerate() {
            let bytes: Vec<u8> = (0..size).map(|j| (j * 7 + i) as u8).collect();
            let path = t.path().join(format!("f{i}"));
            fs::write(&path, &bytes).unwrap();
            let read = read_file(&path).unwrap();
            assert_eq!(
                read.sha256,
                <[u8; 32]>::from(Sha256::digest(&bytes)),
                "{size} bytes"
            );
        }
    }

    #[test]
    fn a_file_that_shrinks_while_it_is_read_is_an_error() {
        // The tar header already holds the size read before: fewer bytes would shift every
        // entry after it.
        let mut short = Exactly {
            inner: (&b"echo a\n"[..]).take(100),
        };
        let e = std::io::copy(&mut short, &mut std::io::sink()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("shrank"), "{e}");
        let mut exact = Exactly {
            inner: (&b"echo a\n"[..]).take(7),
        };
        assert_eq!(std::io::copy(&mut exact, &mut std::io::sink()).unwrap(), 7);
    }

    fn rels(ctx: &Context) -> Vec<&str> {
        ctx.entries.iter().map(|e| e.rel.as_str()).collect()
    }

    #[test]
    fn walks_sorted_and_applies_dockerignore() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("languages/py");
        fs::create_dir_all(d.join("scripts/__pycache__")).unwrap();
        fs::write(d.join("Dockerfile"), "FROM x\n").unwrap();
        fs::write(d.join(".dockerignore"), "**/__pycache__\nDockerfile\n").unwrap();
        fs::write(d.join("scripts/b.py"), "b").unwrap();
        fs::write(d.join("scripts/a.py"), "a").unwrap();
        fs::write(d.join("scripts/__pycache__/a.pyc"), "x").unwrap();
        let ctx = Context::collect(&Repo::new(t.path()).unwrap(), "languages/py", &[]).unwrap();
        assert_eq!(
            rels(&ctx),
            [
                ".dockerignore",
                "Dockerfile",
                "scripts",
                "scripts/a.py",
                "scripts/b.py"
            ]
        );
    }

    #[test]
    fn symlinks_inside_are_kept_outside_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("l");
        fs::create_dir_all(d.join("s")).unwrap();
        fs::write(d.join("Dockerfile"), "FROM x\n").unwrap();
        std::os::unix::fs::symlink("../Dockerfile", d.join("s/inside")).unwrap();
        let ctx = Context::collect(&Repo::new(t.path()).unwrap(), "l", &[]).unwrap();
        assert!(ctx.entries.iter().any(|e| e.kind
            == EntryKind::Symlink {
                target: "../Dockerfile".into()
            }));
        std::os::unix::fs::symlink("../../secret", d.join("s/out")).unwrap();
        let problems = Context::collect(&Repo::new(t.path()).unwrap(), "l", &[]).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "l/s/out");
        assert!(problems[0]
            .message
            .starts_with("symlink points outside `l`"));
    }

    #[test]
    fn extra_inputs_join_at_their_repository_path() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("l")).unwrap();
        fs::create_dir_all(t.path().join("shared/lib")).unwrap();
        fs::write(t.path().join("l/Dockerfile"), "FROM x\n").unwrap();
        fs::write(t.path().join("shared/lib/m.py"), "m").unwrap();
        let ctx = Context::collect(
            &Repo::new(t.path()).unwrap(),
            "l",
            &["shared/lib".to_string()],
        )
        .unwrap();
        assert_eq!(rels(&ctx), ["Dockerfile", "shared/lib", "shared/lib/m.py"]);
    }
}
