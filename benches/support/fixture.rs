//! What the pipeline and peers benchmarks share: the scratch repository they publish (its
//! `krobs.toml`, a script change, git, a copy of a tree) and how they print figures.
//! Included by each with `#[path]`, beside `tests/it/support/services.rs` as `crate::services`.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::services;

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

pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
