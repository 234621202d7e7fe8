//! The Docker Engine is the oracle for what a build context holds: for each `.dockerignore` of
//! a corpus, the same folder is built by `docker build` (a Dockerfile that copies the context
//! and lists it) and collected by Krobs (`Context::collect`, the list Krobs hashes and sends);
//! the two lists must be equal. Run with `bash tests/run.sh` (fails, never skips, without it).

use crate::support::services;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use krobs::input::context::{Context, EntryKind};
use krobs::input::dockerignore::DockerIgnore;
use krobs::input::repo::Repo;

/// The files every case starts from (besides the Dockerfile and the `.dockerignore`).
const TREE: &[&str] = &[
    "a.txt",
    "b.txt",
    "a.md",
    "README.md",
    ".hidden",
    "{b,c}",
    "[x]",
    "x",
    "y",
    "xfoo",
    "space name.txt",
    "docs/a.md",
    "docs/keep.md",
    "docs/sub/deep.md",
    "docs/sub/keep.md",
    "src/main.py",
    "src/lib/util.py",
    "src/lib/__pycache__/util.pyc",
    "src/__pycache__/main.pyc",
    "build/out.bin",
    "build/keep/k.txt",
    "scripts/run.sh",
    "scripts/old-run.sh",
    "scripts/notes.txt",
    "foo/bar/baz.txt",
    "node_modules/pkg/index.js",
];

/// `.dockerignore` files: BOM, CRLF, comments, `!` re-includes, `**`, braces, character
/// classes, leading `/`, `./`, `..`, trailing spaces, escapes, order.
const CORPUS: &[&str] = &[
    "",
    "*.txt\n",
    "**/*.md\n",
    "docs\n!docs/keep.md\n",
    "docs/\n!docs/**/keep.md\n",
    "docs\n!**/keep.md\n",
    "\u{feff}*.txt\n",
    "*.txt\r\nbuild\r\n",
    "# comment\n#*.txt\n   a.md   \n",
    "*.txt   \n\t\n",
    "/build\n/docs/sub\n",
    "./build\n./src/../docs\n",
    "{b,c}\n",
    "{a,b}.txt\n",
    "[ab].txt\n",
    "[^a].txt\n",
    "[!a].txt\n",
    "?.txt\n",
    "**/__pycache__\n",
    "src/**/*.pyc\n",
    "**\n!scripts\n",
    "*\n!scripts\n!scripts/**\n",
    "**/foo\n",
    "foo/**\n",
    "node_modules\n.hidden\n",
    "space name.txt\n",
    "\\[x\\]\n",
    "*.md\n!README.md\nREADME.md\n",
    "!a.txt\n*.txt\n",
    "build/*\n!build/keep\n",
    "docs/*/deep.md\n",
    "**/keep*\n!docs/**\n",
    "scripts/old*\n",
    "x\ny\n# no final newline",
    "*/*.md\n",
    "src/lib\n!src/lib/util.py\n",
    "docs/sub/\n!docs/sub/keep.md\n",
    "!\u{20}\u{20}src\nsrc\n",
    "**/*.py\n!src/**\n",
    "*/\n",
    "Dockerfile\n.dockerignore\n*.txt\n",
    "docs/**\n!docs/sub/keep.md\n",
    "*.TXT\nSRC\n",
    "src/[lm]*\n",
    "**foo\n",
    "[[]x]\n",
    "build\n!build/keep/**\n",
];

const DOCKERFILE: &str = "FROM {BASE}\nCOPY . /ctx/\nRUN cd /ctx && find . -mindepth 1 -type d | sed 's/^/KROBS-DIR /' && find . -mindepth 1 ! -type d | sed 's/^/KROBS-FILE /'\n";

/// What the build sees of the context Krobs sends: (folders, other entries), paths without
/// `./`. The folders include every parent of an entry (the daemon creates them when it
/// copies). Krobs always sends (and hashes) the Dockerfile and `.dockerignore`, which shape
/// the image; the daemon reads them, then drops them from what `COPY` sees when the
/// `.dockerignore` excludes them, as the Docker client does.
fn krobs_list(root: &Path, ignore: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let repo = Repo::new(root).unwrap();
    let ctx = Context::collect(&repo, "ctx", &[])
        .unwrap_or_else(|p| panic!("Krobs refused the context: {p:?}"));
    let ignore = DockerIgnore::parse(ignore).unwrap();
    let mut dirs = BTreeSet::new();
    let mut files = BTreeSet::new();
    for e in &ctx.entries {
        if (e.rel == "Dockerfile" || e.rel == ".dockerignore") && ignore.excludes(&e.rel) {
            continue;
        }
        let mut parent = e.rel.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            dirs.insert(p.to_string());
            parent = p;
        }
        match e.kind {
            EntryKind::Dir => {
                dirs.insert(e.rel.clone());
            }
            _ => {
                files.insert(e.rel.clone());
            }
        }
    }
    (dirs, files)
}

/// What the Docker Engine received, listed by the build itself.
fn docker_list(
    context: &Path,
    case: usize,
) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let tag = format!("krobs-oracle-{}-{case}", std::process::id());
    let mut cmd = Command::new("docker");
    if let Some(host) = services::docker_host() {
        cmd.env("DOCKER_HOST", host);
    }
    // The classic builder: the one Krobs drives through the Engine API.
    cmd.env("DOCKER_BUILDKIT", "0")
        .args(["build", "--no-cache", "--rm", "--force-rm", "-t", &tag])
        .arg(context);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    let _ = Command::new("docker")
        .envs(services::docker_host().map(|h| ("DOCKER_HOST", h)))
        .args(["image", "rm", "--force", &tag])
        .output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "docker build failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut dirs = BTreeSet::new();
    let mut files = BTreeSet::new();
    for line in stdout.lines() {
        if let Some(p) = line.strip_prefix("KROBS-DIR ./") {
            dirs.insert(p.to_string());
        } else if let Some(p) = line.strip_prefix("KROBS-FILE ./") {
            files.insert(p.to_string());
        }
    }
    Ok((dirs, files))
}

/// One case: Krobs's list and the Docker Engine's for `ignore` over [`TREE`]; `None` when
/// they agree, else what differs.
fn compare(i: usize, ignore: &str, base: &str) -> Option<String> {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    for f in TREE {
        let p = ctx.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, f).unwrap();
    }
    fs::create_dir_all(ctx.join("empty")).unwrap();
    fs::write(ctx.join("Dockerfile"), DOCKERFILE.replace("{BASE}", base)).unwrap();
    fs::write(ctx.join(".dockerignore"), ignore).unwrap();
    let krobs = krobs_list(tmp.path(), ignore);
    match docker_list(&ctx, i) {
        Ok(docker) if docker == krobs => None,
        Ok(docker) => Some(format!(
            "case {i} {ignore:?}:\n  only Docker: {:?} {:?}\n  only Krobs:  {:?} {:?}",
            docker.0.difference(&krobs.0).collect::<Vec<_>>(),
            docker.1.difference(&krobs.1).collect::<Vec<_>>(),
            krobs.0.difference(&docker.0).collect::<Vec<_>>(),
            krobs.1.difference(&docker.1).collect::<Vec<_>>(),
        )),
        Err(e) => Some(format!("case {i} {ignore:?}: {e}")),
    }
}

/// Builds at once: a classic build spends most of its time waiting on the Engine (container
/// create, commit, remove), so a few side by side take little more than one.
const BUILDS_AT_ONCE: usize = 4;

#[test]
fn krobs_and_the_docker_engine_agree_on_every_context() {
    services::require_services();
    let base = services::base_image();
    assert!(CORPUS.len() >= 30);
    let next = AtomicUsize::new(0);
    let mut failures: Vec<(usize, String)> = thread::scope(|s| {
        let workers: Vec<_> = (0..BUILDS_AT_ONCE)
            .map(|_| {
                s.spawn(|| {
                    let mut found = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(ignore) = CORPUS.get(i) else {
                            return found;
                        };
                        found.extend(compare(i, ignore, &base).map(|f| (i, f)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {} ignore files differ:\n{}",
        failures.len(),
        CORPUS.len(),
        failures
            .iter()
            .map(|(_, f)| f.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
