//! Input digest against `sha256sum` over the same files, side by side in one invocation.
//!
//! `cargo bench --bench digest` generates a 10,000-file, ~100 MB language folder, warms the
//! page cache, then times (best of several runs) the whole input digest (walk, .dockerignore,
//! hashing, combining) and `sha256sum` over the same files, and prints the ratio. Then the
//! whole `krobs-build --dry-run` (the release binary) on a repository whose one language holds
//! the same files in `lib/` (its runtime), against `sha256sum` on two processes (`xargs -P2`),
//! with the target (at most 0.5x: each file opened and read once, hashed on every core).
//! Set `KROBS_BENCH_FILES` / `KROBS_BENCH_MB` to change the tree.

#[allow(dead_code)] // the statistics and the machine's figures are the other benches'
#[path = "support/figures.rs"]
mod figures;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use figures::{cargo_lists, env_or, verdict};
use krobs::input::context::Context;
use krobs::plan::digest::{self, BuildInputs};

/// A deterministic tree: `files` files spread over 100 folders, sizes varying around the mean.
fn generate(root: &Path, files: usize, total_bytes: usize, folder: &str) -> Vec<String> {
    let lang = root.join("languages/big");
    std::fs::create_dir_all(&lang).unwrap();
    std::fs::write(
        lang.join("Dockerfile"),
        "FROM scratch\nCOPY . /opt/krobs/\n",
    )
    .unwrap();
    let mean = total_bytes / files;
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut paths = vec!["Dockerfile".to_string()];
    let mut buf = Vec::new();
    for i in 0..files - 1 {
        let dir = format!("{folder}/d{:03}", i % 100);
        std::fs::create_dir_all(lang.join(&dir)).unwrap();
        let size = mean / 2 + (next() as usize % mean.max(1));
        buf.clear();
        while buf.len() < size {
            buf.extend_from_slice(&next().to_le_bytes());
        }
        buf.truncate(size);
        let rel = format!("{dir}/f{i:05}.dat");
        std::fs::write(lang.join(&rel), &buf).unwrap();
        paths.push(rel);
    }
    paths
}

/// The paths as `xargs -0` reads them.
fn nul_separated(paths: &[String]) -> Vec<u8> {
    paths
        .iter()
        .flat_map(|p| [p.as_bytes(), b"\0"].concat())
        .collect()
}

/// `sha256sum` of the NUL-separated `list` of paths (relative to `dir`) through `xargs -0`
/// with `xargs_args` (e.g. two processes), its output discarded.
fn sha256sum(dir: &Path, list: &[u8], xargs_args: &[&str]) {
    let mut child = Command::new("xargs")
        .arg("-0")
        .args(xargs_args)
        .arg("sha256sum")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("xargs and sha256sum are installed");
    child.stdin.take().unwrap().write_all(list).unwrap();
    assert!(child.wait().unwrap().success());
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn main() {
    if cargo_lists() {
        return;
    }
    let files = env_or("KROBS_BENCH_FILES", 10_000);
    let mb = env_or("KROBS_BENCH_MB", 100);
    let runs = 5;
    input_digest(files, mb, runs);
    dry_run(files, mb, runs);
}

/// The input digest of a language folder holding the tree in `scripts/`, against `sha256sum`
/// over the same files.
fn input_digest(files: usize, mb: usize, runs: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let paths = generate(tmp.path(), files, mb * 1024 * 1024, "scripts");
    let lang = tmp.path().join("languages/big");
    let bytes: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(lang.join(p)).unwrap().len())
        .sum();
    let inputs = BuildInputs {
        build_args: BTreeMap::new(),
        base_image: None,
        platform: "linux/amd64".into(),
        target: None,
    };
    let krobs = || {
        let ctx = Context::collect(
            &krobs::input::repo::Repo::new(tmp.path()).unwrap(),
            "languages/big",
            &[],
        )
        .unwrap();
        std::hint::black_box(digest::compute(&ctx, &inputs).unwrap());
    };
    let list = nul_separated(&paths);
    let sha256sum = || sha256sum(&lang, &list, &[]);

    // Warm the page cache for both.
    krobs();
    sha256sum();
    let t_krobs = best_of(runs, krobs);
    let t_sum = best_of(runs, sha256sum);
    let mib = bytes as f64 / (1024.0 * 1024.0);
    println!(
        "tree: {files} files, {mib:.1} MiB; best of {runs} runs each, warm cache, {} threads",
        rayon::current_num_threads()
    );
    println!(
        "krobs input digest: {:>8.1} ms  ({:.0} MiB/s)",
        t_krobs.as_secs_f64() * 1e3,
        mib / t_krobs.as_secs_f64()
    );
    println!(
        "sha256sum:          {:>8.1} ms  ({:.0} MiB/s)",
        t_sum.as_secs_f64() * 1e3,
        mib / t_sum.as_secs_f64()
    );
    println!(
        "ratio sha256sum / krobs: {:.2}x (above 1 means the input digest is faster)",
        t_sum.as_secs_f64() / t_krobs.as_secs_f64()
    );
}

/// The whole dry run of a repository whose language holds the tree in `lib/`, against
/// `sha256sum` on two processes.
fn dry_run(files: usize, mb: usize, runs: usize) {
    const TARGET: f64 = 0.5;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path();
    let paths = dry_run_repo(repo, files, mb);
    let bin = env!("CARGO_BIN_EXE_krobs-build");
    let krobs = || {
        let out = Command::new(bin)
            .arg("--dry-run")
            .current_dir(repo)
            .env_remove("KROBS_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "krobs-build --dry-run failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let half = (files / 2 + 1).to_string();
    let list = nul_separated(&paths);
    let lang = repo.join("languages/big");
    let sha256sum = || sha256sum(&lang, &list, &["-P2", "-n", &half]);
    krobs();
    sha256sum();
    let t_krobs = best_of(runs, krobs);
    let t_sum = best_of(runs, sha256sum);
    let ratio = t_krobs.as_secs_f64() / t_sum.as_secs_f64();
    println!(
        "krobs-build --dry-run: {:>8.1} ms  (the tree in lib/, best of {runs})",
        t_krobs.as_secs_f64() * 1e3
    );
    println!(
        "sha256sum x2 (xargs -P2): {:>5.1} ms",
        t_sum.as_secs_f64() * 1e3
    );
    println!(
        "ratio dry run / sha256sum x2: {ratio:.2}x (target <= {TARGET:.1}x) {}",
        verdict(ratio <= TARGET)
    );
}

/// A git repository at `repo` whose language `big` holds the generated tree in `lib/` and one
/// script, with a registry that refuses at once (the dry run's lookups fail fast and are
/// reported); the tree's paths, relative to the language folder.
fn dry_run_repo(repo: &Path, files: usize, mb: usize) -> Vec<String> {
    let paths = generate(repo, files, mb * 1024 * 1024, "lib");
    let lang = repo.join("languages/big");
    std::fs::create_dir_all(lang.join("scripts")).unwrap();
    std::fs::write(
        lang.join("scripts/hello.sh"),
        "#!/bin/bash\n# ---\n# owner = \"bench\"\n# description = \"says hello\"\n# ---\necho hello\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("krobs.toml"),
        "repository = \"krobs/{language}\"\n[registry]\nkind = \"oci\"\nhost = \"127.0.0.1:1\"\n[languages.big]\ncommand = [\"bash\", \"{script}\"]\n",
    )
    .unwrap();
    std::fs::write(repo.join(".gitignore"), "/out/\n").unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.email=bench@example.com",
            "-c",
            "user.name=Bench",
            "commit",
            "-q",
            "-m",
            "bench",
        ],
    ] {
        let ok = Command::new("git")
            .args(args)
            .current_dir(repo)
            .status()
            .unwrap();
        assert!(ok.success(), "git {args:?} failed");
    }
    paths
}
