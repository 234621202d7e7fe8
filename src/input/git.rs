//! What git says changed. It explains the plan; it never decides it: every failure here is a
//! warning, and the run goes on with input digests alone.

use std::path::Path;
use std::process::Command;

/// Files changed between a revision and HEAD, or why that could not be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// `--since` was not given.
    NotAsked,
    /// Paths relative to the repository root, sorted.
    Files { base: String, files: Vec<String> },
    /// Git could not tell; the message says why and that digests alone decide.
    Unknown { warning: String },
}

impl Changes {
    /// The changed files under any of `prefixes` (folders, repository-relative).
    pub fn under(&self, prefixes: &[&str]) -> Option<Vec<String>> {
        match self {
            Changes::Files { files, .. } => Some(
                files
                    .iter()
                    .filter(|f| {
                        prefixes.iter().any(|p| {
                            f.strip_prefix(p)
                                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                        })
                    })
                    .cloned()
                    .collect(),
            ),
            _ => None,
        }
    }
}

fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("git failed")
            .trim()
            .to_string())
    }
}

/// The commit HEAD points at, if `root` is in a git repository with commits.
pub fn head_commit(root: &Path) -> Option<String> {
    git(root, &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Whether `ancestor` is an ancestor of (or the same commit as) `descendant`; `None` when
/// git cannot tell (a commit this clone does not have).
pub fn is_ancestor(root: &Path, ancestor: &str, descendant: &str) -> Option<bool> {
    let status = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["merge-base", "--is-ancestor", ancestor, descendant])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    match status.code() {
        Some(0) => Some(true),
        Some(1) => Some(false),
        _ => None,
    }
}

/// HEAD's first parent: the previous commit of the main line.
pub fn first_parent(root: &Path) -> Option<String> {
    git(
        root,
        &["rev-parse", "--verify", "--quiet", "HEAD^1^{commit}"],
    )
    .ok()
    .map(|s| s.trim().to_string())
    .filter(|s| !s.is_empty())
}

/// Files changed between `rev` and HEAD, taken from their merge base so that a force push or
/// a branch that moved on still lists what this HEAD brings; for a merge commit that is what
/// the merge brought to the first-parent line.
pub fn changes_since(root: &Path, rev: &str) -> Changes {
    let unknown = |why: String| {
        Changes::Unknown {
        warning: format!(
            "cannot tell what changed since `{rev}`: {why}; every language is still checked by its input digest"
        ),
    }
    };
    if head_commit(root).is_none() {
        return unknown("the repository has no commit yet".to_string());
    }
    let shallow = git(root, &["rev-parse", "--is-shallow-repository"])
        .map(|s| s.trim() == "true")
        .unwrap_or(false);
    let spec = format!("{rev}^{{commit}}");
    let rev_commit = match git(root, &["rev-parse", "--verify", "--quiet", "--end-of-options", &spec]) {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ if shallow => {
            return unknown(format!(
                "`{rev}` is not in this shallow clone (fetch more history, e.g. `git fetch --unshallow`)"
            ))
        }
        _ => return unknown(format!("`{rev}` is not a known revision")),
    };
    let base = match git(root, &["merge-base", &rev_commit, "HEAD"]) {
        Ok(b) if !b.trim().is_empty() => b.trim().to_string(),
        _ if shallow => {
            return unknown(format!(
                "the history joining `{rev}` and HEAD is not in this shallow clone"
            ))
        }
        _ => return unknown(format!("`{rev}` and HEAD share no history")),
    };
    match git(
        root,
        &[
            "diff",
            "--name-only",
            "-z",
            "--no-renames",
            "--relative",
            &base,
            "HEAD",
            "--",
        ],
    ) {
        Ok(out) => {
            let mut files: Vec<String> = out
                .split('\0')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            files.sort();
            Changes::Files { base, files }
        }
        Err(e) => unknown(e),
    }
}

/// The working tree is not the commit a release would be named by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: a release named by a commit must be that commit; commit the change, or pass `--allow-dirty` to publish by digest only, moving no `git-`/`latest` tag")]
pub struct DirtyTree {
    /// What differs, e.g. ``` `languages/x/scripts/a.py` differs from commit 0123456789ab ```.
    pub what: String,
}

/// Whether the files under `root` are `commit`: no tracked file changed, staged or not, and
/// no untracked file (unless git ignores it) under `inputs`, the repository-relative folders
/// the build reads. Untracked files elsewhere (`out/`, notes) never reach a release.
pub fn check_tree(root: &Path, commit: &str, inputs: &[String]) -> Result<(), DirtyTree> {
    let short = &commit[..commit.len().min(12)];
    let unknown = |why: String| DirtyTree {
        what: format!("cannot tell whether the working tree is commit {short}: {why}"),
    };
    let names = |out: String| -> Vec<String> {
        out.split('\0')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let changed = names(
        git(
            root,
            &[
                "diff",
                "HEAD",
                "--name-only",
                "-z",
                "--no-renames",
                "--relative",
                "--",
            ],
        )
        .map_err(unknown)?,
    );
    let untracked = if inputs.is_empty() {
        Vec::new()
    } else {
        let mut args = vec![
            "--literal-pathspecs",
            "ls-files",
            "--others",
            "--exclude-standard",
            "-z",
            "--",
        ];
        args.extend(inputs.iter().map(String::as_str));
        names(git(root, &args).map_err(unknown)?)
    };
    let more = |n: usize| match n {
        0 => String::new(),
        1 => " (and 1 more file)".to_string(),
        n => format!(" (and {n} more files)"),
    };
    let total = changed.len() + untracked.len();
    match (changed.first(), untracked.first()) {
        (Some(file), _) => Err(DirtyTree {
            what: format!("`{file}` differs from commit {short}{}", more(total - 1)),
        }),
        (None, Some(file)) => Err(DirtyTree {
            what: format!("`{file}` is not in commit {short}{}", more(total - 1)),
        }),
        (None, None) => Ok(()),
    }
}

/// `git-<first 12 hex of the commit>`, the tag of a commit's images and manifest.
pub fn commit_tag(commit: &str) -> String {
    format!("git-{}", &commit[..commit.len().min(12)])
}
