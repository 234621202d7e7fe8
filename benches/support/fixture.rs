//! What the pipeline and peers benchmarks share: the credentials and languages they publish,
//! their settings, the scratch repository (its `krobs.toml`, a script change, git, a copy of a
//! tree), the `krobs-build` command they time and the registry's stored blobs they count.
//! Included by each with `#[path]`, beside `tests/it/support/services.rs` as `crate::services`
//! and `figures.rs` as `crate::figures`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::figures::env_or;
use crate::services::{self, Registry};

pub const USER: &str = "krobs";
/// `~`, `?` and `>`: characters that bollard's standard base64 would break.
pub const PASSWORD: &str = "s3cr~t?pa>ss";
/// This repository's languages, each published by both benches.
pub const LANGUAGES: [&str; 4] = ["bash", "python", "ruby", "scala"];

/// Exits with what to do unless the services of `bash tests/run.sh` are there; `needs` says
/// what the bench `name` needs.
pub fn exit_unless_services(name: &str, needs: &str) {
    if let Some(problem) = services::services_problem(|var| std::env::var(var).ok()) {
        eprintln!(
            "error: the {name} benchmark needs {needs}: run it with `bash tests/run.sh --bench {name}`\n  ({problem})"
        );
        std::process::exit(1);
    }
}

/// `KROBS_BENCH_RUNS` (default 7, at least 1) and `KROBS_BENCH_LANGUAGE` (default `bash`, one
/// of [`LANGUAGES`]).
pub fn settings() -> (usize, String) {
    let runs = env_or("KROBS_BENCH_RUNS", 7).max(1);
    let language = std::env::var("KROBS_BENCH_LANGUAGE").unwrap_or_else(|_| "bash".to_string());
    assert!(
        LANGUAGES.contains(&language.as_str()),
        "KROBS_BENCH_LANGUAGE=`{language}` is not one of {LANGUAGES:?}"
    );
    (runs, language)
}

/// The scratch repository at `repo`: this repository's `languages/`, `krobs.toml` for the
/// registry at `host` (`by` names the bench), `/out/` ignored, all committed.
pub fn scratch_repo(repo: &Path, host: &str, by: &str) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&source.join("languages"), &repo.join("languages"));
    fs::write(repo.join(".gitignore"), "/out/\n").unwrap();
    fs::write(repo.join("krobs.toml"), krobs_toml(host, by)).unwrap();
    git(repo, &["init", "-q", "-b", "main"]);
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "krobs benchmark"]);
}

/// A comment line appended to `file` (relative to the repository), committed (as a merge
/// would be).
pub fn commit_change(repo: &Path, file: &Path, text: &str) {
    append_comment(&repo.join(file), text);
    git(repo, &["commit", "-q", "-am", &format!("bench: {text}")]);
}

/// The first file (by name, leaving out `.md` notes) of a language's `folder` (`scripts`,
/// `lib`) in the repository at `root`, as `<folder>/<name>`.
pub fn first_file(root: &Path, language: &str, folder: &str) -> String {
    let dir = root.join("languages").join(language).join(folder);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".md"))
        .collect();
    names.sort();
    let name = names
        .first()
        .unwrap_or_else(|| panic!("no file in {}", dir.display()));
    format!("{folder}/{name}")
}

/// `krobs-build --json --progress plain` in `repo` with the bench's registry credentials,
/// `docker_config` as the docker CLI's config (none: nothing krobs should fall back to), the
/// tests' Docker Engine and none of the `KROBS_*` settings of the calling shell; stdin closed.
pub fn krobs_command(bin: &Path, repo: &Path, docker_config: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--json", "--progress", "plain"])
        .current_dir(repo)
        .env("KROBS_REGISTRY_USERNAME", USER)
        .env("KROBS_REGISTRY_PASSWORD", PASSWORD)
        .env("DOCKER_CONFIG", docker_config)
        .stdin(Stdio::null());
    for name in [
        "KROBS_CONFIG",
        "KROBS_ONLY",
        "KROBS_DRY_RUN",
        "KROBS_SINCE",
        "KROBS_JSON",
        "KROBS_PROGRESS",
        "KROBS_LOG",
    ] {
        cmd.env_remove(name);
    }
    if let Some(host) = services::docker_host() {
        cmd.env("DOCKER_HOST", host);
    }
    cmd
}

/// The blobs in the registry's storage and their sizes.
pub fn stored_blobs(registry: &Registry) -> BTreeMap<PathBuf, u64> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, u64>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                walk(&entry.path(), out);
            } else if entry.file_name() == "data" {
                out.insert(entry.path(), meta.len());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        &registry.storage_dir().join("docker/registry/v2/blobs"),
        &mut out,
    );
    out
}

/// The scratch repository's `krobs.toml`, for a registry at `host`; `by` names the bench.
pub fn krobs_toml(host: &str, by: &str) -> String {
    format!(
        r#"# written by {by}
repository = "krobs/{{language}}"

[registry]
kind = "oci"
host = "{host}"

[build]
concurrency = 2
build_args = {{ BASE_IMAGE = "{base}" }}
network = "host"

[manifest]
path = "out/krobs-manifest.json"

[languages.python]
command = ["python3", "{{script}}"]

[languages.ruby]
command = ["ruby", "{{script}}"]

[languages.scala]
command = ["amm", "--silent", "{{script}}"]
build_args = {{ MAVEN_REPOSITORY = "{mirror}", FETCH_IMAGE = "{fetch}" }}

[languages.bash]
command = ["bash", "{{script}}"]
"#,
        base = services::base_image(),
        mirror = services::maven_mirror(),
        fetch = services::debian_base("KROBS_TEST_BASE_BASH"),
    )
}

/// Appends `# text` (`//` for Scala) as a new last line.
pub fn append_comment(path: &Path, text: &str) {
    let comment = if path.extension().is_some_and(|e| e == "sc") {
        "//"
    } else {
        "#"
    };
    let mut body = fs::read_to_string(path).unwrap();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    body.push_str(&format!("{comment} benchmark change: {text}\n"));
    fs::write(path, body).unwrap();
}

pub fn git(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("git");
    cmd.args([
        "-c",
        "user.email=bench@example.com",
        "-c",
        "user.name=Krobs Bench",
        "-c",
        "commit.gpgsign=false",
    ])
    .args(args)
    .current_dir(dir);
    services::run_ok(&mut cmd);
}

/// Copies a tree, keeping permissions and symbolic links.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}
