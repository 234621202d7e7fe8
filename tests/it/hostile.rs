//! A repository is untrusted input: hostile repositories through the real binary. Each case
//! pins the exact message; none may hang, read outside the repository, print what a refused
//! file holds, or read a huge file into memory.

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    bash_script, children_max_rss_kib, krobs_command, problems, Repo, Run, CONFIG, MAX_RSS_KIB,
};
use krobs::exit;

/// What a secret outside the repository holds; it must never be printed.
const SECRET: &str = "AWS_SECRET_ACCESS_KEY=hunter2-do-not-print";

/// `krobs-build` in the repository, killed (and the test failed) if it runs longer than 60 s:
/// a FIFO must never block a run.
fn krobs(repo: &Repo, args: &[&str]) -> Run {
    let mut cmd = krobs_command();
    cmd.current_dir(&repo.root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the binary starts");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        out.read_to_end(&mut s).map(|_| s)
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        err.read_to_end(&mut s).map(|_| s)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("krobs-build {args:?} did not finish in 60 s (blocked on a FIFO?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap().unwrap();
    let stderr = err_reader.join().unwrap().unwrap();
    let run = Run {
        command: format!("krobs-build {}", args.join(" ")),
        cwd: repo.root.clone(),
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"),
        "a secret was printed\n{run}"
    );
    run
}

fn lint(repo: &Repo) -> Run {
    krobs(repo, &["lint"])
}

/// A file outside the repository holding a secret, and its path.
fn secret(repo: &Repo) -> std::path::PathBuf {
    let p = repo.root.parent().unwrap().join("secret.env");
    fs::write(&p, format!("{SECRET}\n")).unwrap();
    p
}

fn fifo(repo: &Repo, rel: &str) {
    let p = repo.path(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let out = Command::new("mkfifo").arg(&p).output().unwrap();
    assert!(out.status.success(), "mkfifo: {out:?}");
}

fn link(repo: &Repo, target: impl AsRef<std::path::Path>, rel: &str) {
    let p = repo.path(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    if p.symlink_metadata().is_ok() {
        repo.remove(rel);
    }
    symlink(target, p).unwrap();
}

/// A sparse file of `len` bytes starting with `head`.
fn sparse(repo: &Repo, rel: &str, head: &str, len: u64) {
    repo.write(rel, head);
    fs::OpenOptions::new()
        .write(true)
        .open(repo.path(rel))
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn config_with(extra: &str) -> String {
    format!("{CONFIG}\n{extra}\n")
}

const OUTSIDE: &str = "resolves to a path outside the repository: Krobs reads only files inside it; replace the symlink with the file itself";

// ---------------------------------------------------------------------------------------------
// The configuration file
// ---------------------------------------------------------------------------------------------

#[test]
fn config_symlinked_outside_is_refused_unread() {
    let repo = Repo::fixture();
    let s = secret(&repo);
    link(&repo, &s, "krobs.toml");
    lint(&repo)
        .failure(exit::INPUT)
        .stderr_is(&format!("error: `krobs.toml` {OUTSIDE}"));
}

#[test]
fn config_symlinked_to_process_environment_is_refused_unread() {
    let repo = Repo::fixture();
    link(&repo, "/proc/self/environ", "krobs.toml");
    lint(&repo)
        .failure(exit::INPUT)
        .stderr_is(&format!("error: `krobs.toml` {OUTSIDE}"));
}

#[test]
fn config_fifo_does_not_block() {
    let repo = Repo::fixture();
    repo.remove("krobs.toml");
    fifo(&repo, "krobs.toml");
    lint(&repo)
        .failure(exit::INPUT)
        .stderr_is("error: `krobs.toml` is a FIFO, not a regular file: replace it with a file");
}

#[test]
fn config_device_is_refused() {
    let repo = Repo::fixture();
    krobs(&repo, &["lint", "--config", "/dev/zero"])
        .failure(exit::INPUT)
        .stderr_is(
            "error: `/dev/zero` is a character device, not a regular file: replace it with a file",
        );
}

#[test]
fn config_folder_is_refused() {
    let repo = Repo::fixture();
    repo.remove("krobs.toml");
    fs::create_dir(repo.path("krobs.toml")).unwrap();
    lint(&repo)
        .failure(exit::INPUT)
        .stderr_is("error: `krobs.toml` is a folder, not a regular file: replace it with a file");
}

#[test]
fn config_huge_sparse_file_is_refused_in_bounded_memory() {
    let repo = Repo::fixture();
    sparse(&repo, "krobs.toml", CONFIG, 8 << 30);
    lint(&repo).failure(exit::INPUT).stderr_is(
        "error: `krobs.toml` is larger than 1024 KiB, the limit for krobs.toml: make it smaller",
    );
    assert!(children_max_rss_kib() < MAX_RSS_KIB);
}

#[test]
fn config_symlink_loop_is_an_error_not_a_hang() {
    let repo = Repo::fixture();
    repo.remove("krobs.toml");
    link(&repo, "b.toml", "krobs.toml");
    link(&repo, "krobs.toml", "b.toml");
    lint(&repo).failure(exit::INPUT).stderr_is(
        "error: cannot read `krobs.toml`: Too many levels of symbolic links (os error 40); create it or point `--config` at one",
    );
}

#[test]
fn config_not_utf8() {
    let repo = Repo::fixture();
    repo.write("krobs.toml", b"repository = \"\xff\"\n");
    lint(&repo)
        .failure(exit::INPUT)
        .stderr_is("error: `krobs.toml` is not UTF-8 text: save it as UTF-8");
}

// ---------------------------------------------------------------------------------------------
// Names: registry hosts, the repository template, languages, scripts
// ---------------------------------------------------------------------------------------------

const HOST_RULE: &str = "is not a registry host: use letters, digits, `-` and `.`, an optional `:port`, and no path (e.g. `registry.example.com:5000`)";

#[test]
fn host_with_scheme() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        CONFIG.replace("registry.example.com:5000", "https://registry.example.com"),
    );
    lint(&repo).failure(exit::INPUT).stderr_is(
        "error: krobs.toml:5:8: `registry.host` must not have a scheme (`https://`): give the host alone, e.g. `registry.example.com:5000`",
    );
}

#[test]
fn host_with_password_never_prints_it() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        CONFIG.replace(
            "registry.example.com:5000",
            "ci:hunter2@registry.example.com",
        ),
    );
    lint(&repo).failure(exit::INPUT).stderr_is(
        "error: krobs.toml:5:8: `registry.host` must not hold credentials (`user:password@`): give the host alone and pass credentials through `KROBS_REGISTRY_USERNAME`/`KROBS_REGISTRY_PASSWORD` or `docker login`",
    );
}

#[test]
fn host_with_path() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        CONFIG.replace("registry.example.com:5000", "registry.example.com/team"),
    );
    lint(&repo).failure(exit::INPUT).stderr_is(&format!(
        "error: krobs.toml:5:8: `registry.host` {HOST_RULE}"
    ));
}

#[test]
fn host_with_space_and_bad_port() {
    for host in ["registry example.com", "registry.example.com:50a0"] {
        let repo = Repo::fixture();
        repo.write(
            "krobs.toml",
            CONFIG.replace("registry.example.com:5000", host),
        );
        lint(&repo).failure(exit::INPUT).stderr_is(&format!(
            "error: krobs.toml:5:8: `registry.host` {HOST_RULE}"
        ));
    }
}

#[test]
fn ecr_host_override_is_checked_too() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        "[registry]\nkind = \"ecr\"\naccount_id = \"123456789012\"\nregion = \"eu-west-1\"\nhost = \"http://localhost:4566\"\n",
    );
    lint(&repo).failure(exit::INPUT).stderr_is(
        "error: krobs.toml:5:8: `registry.host` must not have a scheme (`https://`): give the host alone, e.g. `registry.example.com:5000`",
    );
}

#[test]
fn repository_template_with_tag() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        CONFIG.replace("krobs/{language}", "krobs/{language}:latest"),
    );
    lint(&repo).failure(exit::INPUT).stderr_is(
        "error: krobs.toml:1:14: `repository = \"krobs/{language}:latest\"` must not name a tag (`:tag`): Krobs tags the images itself (e.g. `krobs/{language}`)",
    );
}

#[test]
fn repository_template_upper_case_spaces_and_dots() {
    for template in [
        "Krobs/{language}",
        "krobs team/{language}",
        "krobs/../{language}",
    ] {
        let repo = Repo::fixture();
        repo.write("krobs.toml", CONFIG.replace("krobs/{language}", template));
        lint(&repo).failure(exit::INPUT).stderr_is(&format!(
            "error: krobs.toml:1:14: `repository = \"{template}\"` is not an image repository path: use `/`-separated parts of lowercase letters and digits, joined by `.`, `_`, `__` or `-` (e.g. `krobs/{{language}}`)"
        ));
    }
}

#[test]
fn language_folder_upper_case() {
    let repo = Repo::fixture();
    fs::rename(repo.path("languages/python"), repo.path("languages/Python")).unwrap();
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/Python: language name `Python` is not valid: it names an image repository and Kubernetes Jobs, so use lowercase letters and digits joined by `-` or `_` (e.g. `python`): rename the folder",
    ]));
}

#[test]
fn language_folder_with_space_and_dots() {
    let repo = Repo::fixture();
    fs::rename(
        repo.path("languages/python"),
        repo.path("languages/py thon.."),
    )
    .unwrap();
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/py thon..: language name `py thon..` is not valid: it names an image repository and Kubernetes Jobs, so use lowercase letters and digits joined by `-` or `_` (e.g. `py-thon`): rename the folder",
    ]));
}

#[test]
fn configured_language_name_with_dot() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        config_with("[languages.\"py.thon\"]\npath = \"languages/python\""),
    );
    lint(&repo).failure(exit::INPUT).stderr_is(
        "error: krobs.toml:10:12: language name `py.thon` is not valid: it names an image repository and Kubernetes Jobs, so use lowercase letters and digits joined by `-` or `_` (e.g. `py-thon`)",
    );
}

#[test]
fn script_ids_that_map_to_one_kubernetes_name() {
    let repo = Repo::fixture();
    repo.write("languages/bash/scripts/ops/drain.sh", bash_script("a", "x"));
    repo.write("languages/bash/scripts/ops_drain.sh", bash_script("a", "x"));
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/ops/drain.sh: script id `bash/ops/drain` maps to the Kubernetes name `krobs-bash-ops-drain`, as `languages/bash/scripts/ops_drain.sh` does: rename one of them",
        "languages/bash/scripts/ops_drain.sh: script id `bash/ops_drain` maps to the Kubernetes name `krobs-bash-ops-drain`, as `languages/bash/scripts/ops/drain.sh` does: rename one of them",
    ]));
}

#[test]
fn script_name_ending_in_dash() {
    let repo = Repo::fixture();
    repo.write("languages/bash/scripts/drain-.sh", bash_script("a", "x"));
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/drain-.sh: script id `bash/drain-`: its Kubernetes name `krobs-bash-drain-` is not an RFC 1123 label: use lowercase letters, digits and `-`, starting and ending with a letter or digit",
    ]));
}

#[test]
fn cron_script_name_too_long_for_a_cronjob() {
    let repo = Repo::fixture();
    let name = "a".repeat(42);
    repo.write(
        &format!("languages/bash/scripts/{name}.sh"),
        "# ---\n# owner = \"a\"\n# description = \"b\"\n# schedule = \"@daily\"\n# ---\n",
    );
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[&format!(
        "languages/bash/scripts/{name}.sh: script id `bash/{name}`: its Kubernetes name `krobs-bash-{name}` is 53 characters long, more than the 52 it may have (Kubernetes allows 52 for a CronJob, 63 for a Job less its run suffix): shorten the file name"
    )]));
}

// ---------------------------------------------------------------------------------------------
// Paths that leave the repository, through every path setting
// ---------------------------------------------------------------------------------------------

#[test]
fn languages_dir_absolute_or_parent() {
    for (dir, rule) in [
        (
            "/etc",
            "`/etc` must be a path relative to the repository root",
        ),
        ("../x", "`../x` must stay inside the repository (no `..`)"),
    ] {
        let repo = Repo::fixture();
        repo.write("krobs.toml", format!("languages_dir = \"{dir}\"\n{CONFIG}"));
        lint(&repo)
            .failure(exit::INPUT)
            .stderr_is(&format!("error: krobs.toml:1:17: `languages_dir`: {rule}"));
    }
}

#[test]
fn languages_dir_symlinked_outside() {
    let repo = Repo::fixture();
    let outside = repo.root.parent().unwrap().join("other-languages");
    crate::support::copy_dir(&repo.path("languages"), &outside);
    repo.remove("languages");
    link(&repo, &outside, "languages");
    lint(&repo)
        .failure(exit::INPUT)
        .stderr_is(&problems(&[&format!(
            "languages: (`languages_dir`) {OUTSIDE}"
        )]));
}

#[test]
fn language_path_symlinked_outside() {
    let repo = Repo::fixture();
    let outside = repo.root.parent().unwrap().join("ruby");
    crate::support::copy_dir(&repo.path("languages/bash"), &outside);
    link(&repo, &outside, "vendor/ruby");
    repo.write(
        "krobs.toml",
        config_with("[languages.ruby]\npath = \"vendor/ruby\""),
    );
    lint(&repo)
        .failure(exit::INPUT)
        .stderr_is(&problems(&[&format!("vendor/ruby: {OUTSIDE}")]));
}

#[test]
fn language_path_with_parent() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        config_with("[languages.ruby]\npath = \"../ruby\""),
    );
    lint(&repo).failure(exit::INPUT).stderr_is(
        "error: krobs.toml:11:8: `languages.ruby.path`: `../ruby` must stay inside the repository (no `..`)",
    );
}

#[test]
fn extra_input_symlinked_outside_never_enters_the_context() {
    let repo = Repo::fixture();
    let s = secret(&repo);
    link(&repo, &s, "shared/creds.env");
    repo.write(
        "krobs.toml",
        config_with("[languages.bash]\nextra_inputs = [\"shared/creds.env\"]"),
    );
    lint(&repo)
        .failure(exit::INPUT)
        .stderr_is(&problems(&[&format!(
            "shared/creds.env: extra input of `languages/bash` {OUTSIDE}"
        )]));
}

#[test]
fn extra_input_absolute() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        config_with("[languages.bash]\nextra_inputs = [\"/etc/passwd\"]"),
    );
    lint(&repo).failure(exit::INPUT).stderr_is(
        "error: krobs.toml:11:17: `languages.bash.extra_inputs`: `/etc/passwd` must be a path relative to the repository root",
    );
}

#[test]
fn manifest_path_outside() {
    for (path, rule) in [
        (
            "/tmp/m.json",
            "`/tmp/m.json` must be a path relative to the repository root",
        ),
        (
            "../m.json",
            "`../m.json` must stay inside the repository (no `..`)",
        ),
    ] {
        let repo = Repo::fixture();
        repo.write("krobs.toml", CONFIG.replace("out/manifest.json", path));
        lint(&repo)
            .failure(exit::INPUT)
            .stderr_is(&format!("error: krobs.toml:8:8: `manifest.path`: {rule}"));
    }
}

#[test]
fn manifest_folder_symlinked_outside() {
    let repo = Repo::fixture();
    let outside = repo.root.parent().unwrap().join("elsewhere");
    fs::create_dir(&outside).unwrap();
    link(&repo, &outside, "out");
    krobs(&repo, &["--dry-run"])
        .failure(exit::INPUT)
        .stderr_is(&format!(
            "error: `[manifest] path`: `out/manifest.json` {OUTSIDE}"
        ));
    assert!(!outside.join("manifest.json").exists());
}

#[test]
fn manifest_path_that_is_a_fifo_or_symlink_is_not_replaced() {
    let repo = Repo::fixture();
    fifo(&repo, "out/manifest.json");
    krobs(&repo, &["--dry-run"]).failure(exit::INPUT).stderr_is(
        "error: `[manifest] path`: `out/manifest.json` is a FIFO, not a regular file: replace it with a file",
    );
    let repo = Repo::fixture();
    repo.write("out/real.json", "{}");
    link(&repo, "real.json", "out/manifest.json");
    krobs(&repo, &["--dry-run"]).failure(exit::INPUT).stderr_is(
        "error: `[manifest] path`: `out/manifest.json` is a symlink, not a regular file: replace it with a file",
    );
    assert_eq!(
        fs::read_to_string(repo.path("out/real.json")).unwrap(),
        "{}"
    );
}

#[test]
fn failed_run_leaves_the_previous_preview_untouched() {
    let repo = Repo::fixture();
    repo.write("out/manifest.json", "previous\n");
    repo.write("languages/bash/scripts/bad.sh", "echo no header\n");
    krobs(&repo, &["--dry-run"]).failure(exit::INPUT);
    assert_eq!(
        fs::read_to_string(repo.path("out/manifest.json")).unwrap(),
        "previous\n"
    );
}

/// A dry run whose report cannot be written (stdout full) fails, and its preview is not put
/// in place: the previous one stays, and no temporary file is left beside it.
#[test]
fn a_dry_run_that_cannot_print_its_report_writes_no_preview() {
    let repo = Repo::fixture();
    let full = || {
        let mut cmd = krobs_command();
        cmd.current_dir(&repo.root)
            .stdout(fs::File::create("/dev/full").unwrap());
        cmd
    };
    for args in [&["--dry-run"][..], &["--dry-run", "--json"]] {
        let run = Run::new(full(), &repo.root, args, &[]).failure(exit::INTERNAL);
        assert!(
            run.stderr.ends_with(
                "error: cannot write to stdout: No space left on device (os error 28)\n"
            ),
            "{run}"
        );
        assert!(!repo.path("out/manifest.preview.json").exists(), "{run}");
    }
    repo.write("out/manifest.preview.json", "previous preview\n");
    Run::new(full(), &repo.root, &["--dry-run"], &[]).failure(exit::INTERNAL);
    assert_eq!(
        fs::read_to_string(repo.path("out/manifest.preview.json")).unwrap(),
        "previous preview\n"
    );
    let left: Vec<_> = fs::read_dir(repo.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["manifest.preview.json"]);
    // Printed, it is put in place.
    krobs(&repo, &["--dry-run"]).success();
    let preview: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.path("out/manifest.preview.json")).unwrap()).unwrap();
    assert_eq!(preview["preview"], true);
}

// ---------------------------------------------------------------------------------------------
// Dockerfiles, .dockerignore files and scripts that are not regular files, or huge
// ---------------------------------------------------------------------------------------------

#[test]
fn dockerfile_fifo() {
    let repo = Repo::fixture();
    repo.remove("languages/bash/Dockerfile");
    fifo(&repo, "languages/bash/Dockerfile");
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/Dockerfile: is a FIFO, not a regular file: replace it with a file",
    ]));
}

#[test]
fn dockerfile_symlinked_outside() {
    let repo = Repo::fixture();
    let s = secret(&repo);
    link(&repo, &s, "languages/bash/Dockerfile");
    lint(&repo)
        .failure(exit::INPUT)
        .stderr_is(&problems(&[&format!(
            "languages/bash/Dockerfile: {OUTSIDE}"
        )]));
}

#[test]
fn dockerfile_symlinked_to_a_device() {
    let repo = Repo::fixture();
    link(&repo, "/dev/zero", "languages/bash/Dockerfile");
    lint(&repo)
        .failure(exit::INPUT)
        .stderr_is(&problems(&[&format!(
            "languages/bash/Dockerfile: {OUTSIDE}"
        )]));
}

#[test]
fn dockerfile_huge_sparse() {
    let repo = Repo::fixture();
    sparse(&repo, "languages/bash/Dockerfile", "FROM x\n", 4 << 30);
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/Dockerfile: is larger than 1024 KiB, the limit for a Dockerfile: make it smaller",
    ]));
    assert!(children_max_rss_kib() < MAX_RSS_KIB);
}

#[test]
fn dockerignore_fifo() {
    let repo = Repo::fixture();
    fifo(&repo, "languages/bash/.dockerignore");
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/.dockerignore: is a FIFO, not a file, folder or symlink: remove it or add it to `.dockerignore`",
        "languages/bash/.dockerignore: is a FIFO, not a regular file: replace it with a file",
    ]));
}

#[test]
fn dockerignore_symlinked_to_process_environment() {
    let repo = Repo::fixture();
    link(&repo, "/proc/self/environ", "languages/bash/.dockerignore");
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        &format!("languages/bash/.dockerignore: {OUTSIDE}"),
        "languages/bash/.dockerignore: symlink points outside `bash` (to `/proc/self/environ`): Docker cannot follow it; copy the file in instead",
    ]));
}

#[test]
fn dockerignore_huge_sparse() {
    let repo = Repo::fixture();
    sparse(&repo, "languages/bash/.dockerignore", "*.tmp\n", 2 << 30);
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/.dockerignore: is larger than 1024 KiB, the limit for a `.dockerignore`: make it smaller",
    ]));
    assert!(children_max_rss_kib() < MAX_RSS_KIB);
}

#[test]
fn script_fifo() {
    let repo = Repo::fixture();
    fifo(&repo, "languages/bash/scripts/wait.sh");
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/wait.sh: is a FIFO, not a file, folder or symlink: remove it or add it to `.dockerignore`",
    ]));
}

/// A character device (the same as `/dev/zero`) inside the repository: made with `mknod`,
/// which the test suite can do since it runs as root (`tests/run.sh`).
#[test]
fn device_files_inside_the_repository_are_never_read() {
    let cases = [
        (
            "languages/bash/scripts/zero.sh",
            "languages/bash/scripts/zero.sh: is a character device, not a file, folder or symlink: remove it or add it to `.dockerignore`",
        ),
        (
            "languages/bash/Dockerfile",
            "languages/bash/Dockerfile: is a character device, not a regular file: replace it with a file",
        ),
    ];
    for (rel, problem) in cases {
        let repo = Repo::fixture();
        let p = repo.path(rel);
        if p.exists() {
            repo.remove(rel);
        }
        let out = Command::new("mknod")
            .args([p.to_str().unwrap(), "c", "1", "5"])
            .output()
            .unwrap();
        assert!(out.status.success(), "mknod (needs root): {out:?}");
        let started = Instant::now();
        lint(&repo)
            .failure(exit::INPUT)
            .stderr_is(&problems(&[problem]));
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

#[test]
fn script_symlinked_outside() {
    let repo = Repo::fixture();
    let s = secret(&repo);
    link(&repo, &s, "languages/bash/scripts/env.sh");
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[&format!(
        "languages/bash/scripts/env.sh: symlink points outside `bash` (to `{}`): Docker cannot follow it; copy the file in instead",
        s.display()
    )]));
}

#[test]
fn symlink_chain_leading_out() {
    let repo = Repo::fixture();
    link(&repo, "b", "languages/bash/lib/a");
    link(&repo, "../../../../secret.env", "languages/bash/lib/b");
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/lib/b: symlink points outside `bash` (to `../../../../secret.env`): Docker cannot follow it; copy the file in instead",
    ]));
}

#[test]
fn symlink_loop_in_scripts() {
    let repo = Repo::fixture();
    link(&repo, "b.sh", "languages/bash/scripts/a.sh");
    link(&repo, "a.sh", "languages/bash/scripts/b.sh");
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/a.sh: scripts must be regular files, not symlinks: copy the file in",
        "languages/bash/scripts/b.sh: scripts must be regular files, not symlinks: copy the file in",
    ]));
}

#[test]
fn huge_sparse_script_is_hashed_streaming() {
    let repo = Repo::fixture();
    sparse(
        &repo,
        "languages/bash/scripts/big.sh",
        &bash_script("a", "exit 0"),
        256 << 20,
    );
    lint(&repo).success().stderr_is("");
    assert!(children_max_rss_kib() < MAX_RSS_KIB);
}

#[test]
fn huge_sparse_script_gets_its_layer_described_streaming() {
    // The plan names the image by the scripts layer's digest: tar, gzip and both digests are
    // computed as the script is read, not from a copy of it in memory.
    let repo = Repo::fixture();
    sparse(
        &repo,
        "languages/bash/scripts/big.sh",
        &bash_script("a", "exit 0"),
        256 << 20,
    );
    let run = krobs(&repo, &["--dry-run"]).success();
    assert!(run.stdout.contains("script   bash/big "), "{run}");
    assert!(children_max_rss_kib() < MAX_RSS_KIB);
}

#[test]
fn header_must_end_within_its_limit() {
    let repo = Repo::fixture();
    let mut text = String::from("# ---\n# owner = \"a\"\n");
    while text.len() < 70 * 1024 {
        text.push_str("# description = \"padding padding padding\"\n");
    }
    repo.write("languages/bash/scripts/long.sh", text);
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/long.sh:1: documentation header does not end within the first 64 KiB of the script: keep it short and close it with a `# ---` line",
    ]));
}

// ---------------------------------------------------------------------------------------------
// Output: escapes, lint reports, JSON
// ---------------------------------------------------------------------------------------------

#[test]
fn escape_sequences_in_a_header_are_escaped() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/x.sh",
        "# ---\n# owner = \"a\"\n# description = \"b\"\n# schedule = \"\\u001b[2J\\u001b]0;pwned\\u0007\"\n# ---\n",
    );
    let run = lint(&repo).failure(exit::INPUT);
    assert!(!run.stderr.contains('\u{1b}'), "{run}");
    run.stderr_is(&problems(&[
        "languages/bash/scripts/x.sh:4: header `schedule = \"\\u001b[2J\\u001b]0;pwned\\u0007\"` is not a valid cron expression: expected exactly 5 fields, found 1; use five fields `minute hour day-of-month month day-of-week`, e.g. \"*/15 * * * *\"",
    ]));
}

#[test]
fn control_characters_in_file_names_are_escaped() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/a\rb\u{202e}.sh",
        bash_script("a", "x"),
    );
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/a\\u000db\\u202e.sh: script name makes a bad id: use lowercase letters, digits, `-` and `_` (the id names Kubernetes Jobs) (e.g. `a-b`)",
    ]));
}

#[test]
fn documented_script_excluded_by_dockerignore() {
    let repo = Repo::fixture();
    repo.write("languages/bash/.dockerignore", "scripts/old*\n");
    repo.write(
        "languages/bash/scripts/old-cleanup.sh",
        bash_script("a", "x"),
    );
    repo.write("languages/bash/scripts/old-notes.txt", "not a script\n");
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/old-cleanup.sh: documented script is excluded by `.dockerignore`, so no image holds it: remove the pattern that excludes it, or the script",
    ]));
}

#[test]
fn header_outside_scripts_is_reported() {
    let repo = Repo::fixture();
    repo.write("languages/bash/lib/rotate.sh", bash_script("a", "x"));
    repo.write("languages/bash/lib/util.sh", "# helpers\n");
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/lib/rotate.sh: has a documentation header but is not under `scripts/`, so it is not a krob: move it to `languages/bash/scripts/` or remove the header",
    ]));
}

#[test]
fn cron_by_the_cronjob_controllers_dialect() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/every.sh",
        "# ---\n# owner = \"a\"\n# description = \"b\"\n# schedule = \"@every 90m\"\n# ---\n",
    );
    lint(&repo).success();
    repo.write(
        "languages/bash/scripts/sunday.sh",
        "# ---\n# owner = \"a\"\n# description = \"b\"\n# schedule = \"0 0 * * 7\"\n# ---\n",
    );
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/sunday.sh:4: header `schedule = \"0 0 * * 7\"` is not a valid cron expression: day-of-week field: end of range (7) above maximum (6) in `7`; use five fields `minute hour day-of-month month day-of-week`, e.g. \"*/15 * * * *\"",
    ]));
}

#[test]
fn lint_json_prints_json_with_problems() {
    let repo = Repo::fixture();
    repo.write("languages/bash/scripts/bad.sh", "echo\n");
    let run = krobs(&repo, &["lint", "--json"]).failure(exit::INPUT);
    assert_eq!(
        run.json(),
        serde_json::json!({
            "problems": [{
                "path": "languages/bash/scripts/bad.sh",
                "line": 1,
                "message": "missing documentation header: start the script with a `# ---` block naming `owner` and `description` (after an optional `#!` line)",
            }],
            "languages": [],
            "scripts": [],
        })
    );
}

#[test]
fn lint_json_still_clean_json_when_fine() {
    let repo = Repo::fixture();
    let run = krobs(&repo, &["lint", "--json"]).success();
    assert_eq!(run.json()["problems"], serde_json::json!([]));
}

#[test]
fn lint_json_prints_json_for_a_configuration_error() {
    let repo = Repo::fixture();
    repo.write("krobs.toml", "[registry\n");
    let run = krobs(&repo, &["lint", "--json"]).failure(exit::INPUT);
    assert_eq!(
        run.json(),
        serde_json::json!({
            "problems": [{
                "path": "krobs.toml",
                "line": 1,
                "message": "unclosed table, expected `]`",
            }],
            "languages": [],
            "scripts": [],
        })
    );
    run.stderr_is("error: krobs.toml:1:10: unclosed table, expected `]`");
}

#[test]
fn sockets_are_refused_as_dockerfile_and_as_script() {
    let repo = Repo::fixture();
    repo.remove("languages/bash/Dockerfile");
    let _dockerfile =
        std::os::unix::net::UnixListener::bind(repo.path("languages/bash/Dockerfile")).unwrap();
    let _script =
        std::os::unix::net::UnixListener::bind(repo.path("languages/python/scripts/sock.py"))
            .unwrap();
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/Dockerfile: is a socket, not a regular file: replace it with a file",
        "languages/python/scripts/sock.py: is a socket, not a file, folder or symlink: remove it or add it to `.dockerignore`",
    ]));
}

#[test]
fn image_name_too_long() {
    let repo = Repo::fixture();
    let long = "r".repeat(240);
    repo.write(
        "krobs.toml",
        CONFIG.replace("krobs/{language}", &format!("{long}/{{language}}")),
    );
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        &format!("krobs.toml: the image name `registry.example.com:5000/{long}/bash` is 271 characters long, more than the 255 an image reference allows: shorten `repository` or the language name"),
        &format!("krobs.toml: the image name `registry.example.com:5000/{long}/python` is 273 characters long, more than the 255 an image reference allows: shorten `repository` or the language name"),
    ]));
}

#[test]
fn language_path_that_does_not_exist() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        config_with("[languages.ruby]\npath = \"vendor/ruby\""),
    );
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "vendor/ruby: the folder of language `ruby` does not exist: create it or fix `[languages.ruby] path` in krobs.toml",
    ]));
}

#[test]
fn a_dry_run_never_writes_the_release_record() {
    // The preview has its own path, so a failed real run after a dry run cannot leave a
    // preview where Harness and `render` read the release.
    let repo = Repo::fixture();
    repo.write("out/manifest.json", "previous release\n");
    krobs(&repo, &["--dry-run"]).success();
    assert_eq!(
        fs::read_to_string(repo.path("out/manifest.json")).unwrap(),
        "previous release\n"
    );
    let preview: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.path("out/manifest.preview.json")).unwrap()).unwrap();
    assert_eq!(preview["preview"], true);
}

// ---------------------------------------------------------------------------------------------
// Settings that would put the wrong files into a build context
// ---------------------------------------------------------------------------------------------

/// An extra input joins the context at its repository path: one in a top-level `scripts/`
/// would land among the language's scripts and be listed at paths that do not exist.
#[test]
fn an_extra_input_that_lands_in_scripts_is_refused() {
    for extra in ["scripts", "./scripts/helpers/"] {
        let repo = Repo::fixture();
        repo.write_exec("scripts/helpers/other.sh", bash_script("team-x", "echo x"));
        repo.write(
            "krobs.toml",
            config_with(&format!("[languages.bash]\nextra_inputs = [\"{extra}\"]")),
        );
        let landing = if extra == "scripts" {
            "scripts"
        } else {
            "scripts/helpers"
        };
        for args in [&["lint"][..], &["--dry-run"]] {
            krobs(&repo, args).failure(exit::INPUT).stderr_is(&problems(&[&format!(
                "{landing}: extra input of `languages/bash` would join its build context at `{landing}`, inside the language's `scripts/`, and be taken for its scripts: move it out of the top-level `scripts/` folder and fix `[languages.bash] extra_inputs` in krobs.toml"
            )]));
        }
        assert!(!repo.path("out").exists(), "no preview for a refused run");
    }
}

/// git's own files change with every git command: in a build context they would make two
/// identical runs give two input digests. Refused, with both ways out; `.dockerignore`
/// leaving them out is one.
#[test]
fn git_files_in_a_build_context_are_refused() {
    let repo = Repo::fixture();
    repo.commit_all("one");
    repo.write(
        "krobs.toml",
        config_with("[languages.bash]\nextra_inputs = [\".git\"]"),
    );
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        ".git: git's own files are in the build context of `bash`, and they change with every git command (so would its input digest): add `**/.git` to `languages/bash/.dockerignore`, or remove `.git` from `[languages.bash] extra_inputs` in krobs.toml",
    ]));

    // A repository cloned inside a language folder.
    let repo = Repo::fixture();
    repo.write(
        "languages/python/vendor/es/.git/HEAD",
        "ref: refs/heads/main\n",
    );
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/python/vendor/es/.git: git's own files are in the build context of `python`, and they change with every git command (so would its input digest): add `**/.git` to `languages/python/.dockerignore`",
    ]));
    repo.write("languages/python/.dockerignore", "**/.git\n");
    lint(&repo).success();
}

/// The manifest (its preview, its copies by sha256) is written after the digests: in a build
/// context, the next identical run would get another digest. Refused, through the language
/// folder or an extra input, unless `.dockerignore` leaves it out.
#[test]
fn outputs_in_a_build_context_are_refused() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        config_with("[languages.bash]\nextra_inputs = [\"out\"]"),
    );
    repo.write("out/notes.txt", "x\n");
    for _ in 0..2 {
        krobs(&repo, &["--dry-run"]).failure(exit::INPUT).stderr_is(&problems(&[
            "krobs.toml: krobs-build writes `out/manifest.json` inside the build context of `bash` (at `out/manifest.json`), so its input digest would change from one run to the next: remove `out` from `[languages.bash] extra_inputs`, or set `[manifest] path` outside it, or leave `out` out in `languages/bash/.dockerignore`",
        ]));
    }
    assert!(!repo.path("out/manifest.preview.json").exists());

    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        CONFIG.replace("out/manifest.json", "languages/bash/out/manifest.json"),
    );
    lint(&repo).failure(exit::INPUT).stderr_is(&problems(&[
        "krobs.toml: krobs-build writes `languages/bash/out/manifest.json` inside the build context of `bash` (at `out/manifest.json`), so its input digest would change from one run to the next: set `[manifest] path` outside `languages/bash`, or leave `out` out in `languages/bash/.dockerignore`",
    ]));
    // Left out by `.dockerignore`: two dry runs, the second with the first's preview in
    // place, give one digest.
    repo.write("languages/bash/.dockerignore", "out\n");
    let digest = || {
        let v = krobs(&repo, &["--dry-run", "--json"]).success().json();
        v["languages"][0]["input_digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = digest();
    assert!(repo
        .path("languages/bash/out/manifest.preview.json")
        .is_file());
    assert_eq!(digest(), first);
}
