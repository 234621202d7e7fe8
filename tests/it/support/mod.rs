//! The test harness: runs the real `krobs-build` binary in temporary git repositories and
//! prints command, cwd, exit code, stdout and stderr when an expectation fails.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A temporary repository.
pub struct Repo {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
}

/// A valid `krobs.toml` for an OCI registry nobody contacts in a dry run.
pub const CONFIG: &str = r#"repository = "krobs/{language}"

[registry]
kind = "oci"
host = "registry.example.com:5000"

[manifest]
path = "out/manifest.json"
"#;

/// Most memory (resident) a run may use on a huge file (each huge file is larger).
pub const MAX_RSS_KIB: i64 = 150 * 1024;

/// Peak resident memory of the largest child this test process waited for, in KiB.
pub fn children_max_rss_kib() -> i64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    usage.ru_maxrss
}

/// What `krobs-build` prints for these problems: one line each, then the summary.
pub fn problems(lines: &[&str]) -> String {
    let n = lines.len();
    let (s, them) = if n == 1 { ("", "it") } else { ("s", "them") };
    format!(
        "{}\nerror: {n} problem{s} in the repository: fix {them} and run `krobs-build lint` again",
        lines.join("\n")
    )
}

/// A documented bash script.
pub fn bash_script(owner: &str, body: &str) -> String {
    format!(
        "#!/usr/bin/env bash\n# ---\n# owner = \"{owner}\"\n# description = \"Test krob.\"\n# ---\n{body}\n"
    )
}

impl Repo {
    /// An empty git repository with an identity configured.
    pub fn new() -> Repo {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("repo");
        fs::create_dir(&root).unwrap();
        let repo = Repo { _tmp: tmp, root };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "test@example.com"]);
        repo.git(&["config", "user.name", "Krobs Test"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo
    }

    /// A repository with `krobs.toml` and two languages (`bash` and `python`), not committed.
    pub fn fixture() -> Repo {
        let repo = Repo::new();
        repo.write(".gitignore", "/out/\n");
        repo.write("krobs.toml", CONFIG);
        repo.write(
            "languages/bash/Dockerfile",
            "ARG BASE_IMAGE=debian:bookworm-slim\nFROM ${BASE_IMAGE}\n",
        );
        repo.write_exec(
            "languages/bash/scripts/hello.sh",
            bash_script("team-a", "echo hello"),
        );
        repo.write(
            "languages/python/Dockerfile",
            "ARG BASE_IMAGE=python:3.12-slim\nFROM ${BASE_IMAGE}\n",
        );
        repo.write(
            "languages/python/scripts/report.py",
            "# ---\n# owner = \"team-b\"\n# description = \"Reports.\"\n# schedule = \"0 3 * * *\"\n# ---\nprint('hi')\n",
        );
        repo
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, contents).unwrap();
    }

    pub fn write_exec(&self, rel: &str, contents: impl AsRef<[u8]>) {
        self.write(rel, contents);
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn remove(&self, rel: &str) {
        let p = self.path(rel);
        if p.is_dir() {
            fs::remove_dir_all(p).unwrap();
        } else {
            fs::remove_file(p).unwrap();
        }
    }

    /// Runs git in the repository and returns its trimmed stdout; panics with its output.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(args)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Commits everything; returns the new commit.
    pub fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// `krobs-build` with `args`, run in the repository root.
    pub fn krobs(&self, args: &[&str]) -> Run {
        Run::new(krobs_command(), &self.root, args, &[])
    }

    /// `krobs-build` with extra environment variables.
    pub fn krobs_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        Run::new(krobs_command(), &self.root, args, env)
    }
}

/// The real binary, with no `KROBS_*` variables leaking in from the caller's environment.
pub fn krobs_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_krobs-build"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KROBS_") || k == "NO_COLOR" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// One finished run of a command.
pub struct Run {
    pub command: String,
    pub cwd: PathBuf,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(mut cmd: Command, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        cmd.current_dir(cwd).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let env_text: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        let command = format!(
            "{}{} {}",
            env_text.concat(),
            cmd.get_program().to_string_lossy(),
            args.join(" ")
        );
        let out = cmd.output().expect("the command starts");
        Run {
            command,
            cwd: cwd.to_path_buf(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(self.code, Some(0), "expected success\n{self}");
        self
    }

    /// Asserts a given non-zero exit code.
    #[track_caller]
    pub fn failure(self, code: u8) -> Run {
        assert_eq!(
            self.code,
            Some(code.into()),
            "expected exit code {code}\n{self}"
        );
        self
    }

    /// Asserts stderr holds exactly these lines.
    #[track_caller]
    pub fn stderr_is(self, expected: &str) -> Run {
        assert_eq!(
            self.stderr.trim_end(),
            expected.trim_end(),
            "unexpected stderr\n{self}"
        );
        self
    }

    /// The parsed stdout.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e})\n{self}"))
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.command)?;
        writeln!(f, "cwd:     {}", self.cwd.display())?;
        writeln!(f, "exit:    {:?}", self.code)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

/// Copies this repository's `krobs.toml` and `languages/` into `repo`.
pub fn copy_project_into(repo: &Repo) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"));
    fs::copy(src.join("krobs.toml"), repo.path("krobs.toml")).unwrap();
    fs::copy(src.join(".gitignore"), repo.path(".gitignore")).unwrap();
    copy_dir(&src.join("languages"), &repo.path("languages"));
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}
pub mod e2e_support;
pub mod fake_es;
pub mod http_server;
pub mod krobs_monitor;
pub mod monitor;
pub mod releases;
pub mod services;

/// The one document of `yaml` as PyYAML (a YAML 1.1 reader, as kubectl's) reads it, as JSON.
pub fn read_yaml(yaml: &str) -> serde_json::Value {
    let docs = pyyaml_documents(yaml, true);
    assert_eq!(docs.len(), 1, "{yaml}");
    docs[0].clone()
}

/// Every document of a YAML stream as PyYAML (a YAML 1.1 reader, as kubectl's) reads it, as
/// JSON; empty documents (`null`) kept or left out.
pub fn pyyaml_documents(yaml: &str, keep_empty: bool) -> Vec<serde_json::Value> {
    let keep = if keep_empty { "True" } else { "d is not None" };
    let mut child = Command::new("python3")
        .args([
            "-c",
            &format!("import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if {keep}], sys.stdout)"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "PyYAML cannot read:\n{yaml}");
    serde_json::from_slice(&out.stdout).unwrap()
}
