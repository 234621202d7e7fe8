//! The whole pipeline against the naive one, side by side in one invocation, on this
//! repository's four languages (bash, python, ruby, scala) built from the local base image.
//!
//! Run with `bash tests/run.sh --bench pipeline` (it starts the Docker Engine and makes the base
//! image, then runs `cargo bench --bench pipeline`); without those services this fails and says
//! so. Everything runs against a real registry (`docker-registry` with htpasswd auth, started
//! here on a free loopback port) and the real Docker Engine:
//!
//! 1. **No-op**: `krobs-build` (the release binary) when every language is already in the
//!    registry, against the naive pipeline: `docker build` + `docker push` of every language
//!    with the docker CLI (classic builder, `DOCKER_BUILDKIT=0`). Twice: with the naive side's
//!    layer cache warm, so each of its builds is all cache hits (that favours it), and with
//!    `--no-cache`, as on a CI runner that starts without a layer cache.
//!    The naive side builds the image the old way: its copies of the Dockerfiles copy
//!    `scripts/` into the image (`COPY scripts/ /opt/krobs/scripts/` after `lib/`).
//! 2. **One-script change**: a comment line appended to one script of one language (a fresh
//!    line per measured run, so neither side hits a cached result), then `krobs-build` (which
//!    puts a new scripts layer on the language's runtime through the registry API, no build)
//!    against `docker build && docker push` of that one image the old way, from its own copy
//!    of the folder with its own fresh line. Both sides start from the same warm cache state;
//!    the order of the sides rotates from run to run. A third side builds the old way with the
//!    one `LABEL` line of provenance krobs used to append. The bytes each side uploaded are the
//!    bytes of the blobs new in the registry's storage after its run.
//! 3. **Runtime change**: a comment line appended to a file of the language's `lib/`, then
//!    `krobs-build` (the Docker Engine builds and pushes the runtime, then the scripts layer
//!    goes on) against `docker build && docker push` the old way.
//!
//! Medians (with min/max) are printed with their ratios and the targets (no-op at least 50x
//! faster; one-script change at most 0.25x of raw docker; runtime change within 1.1x). The
//! figures are printed whether or not a target is met; the bench fails only when something
//! does not work.
//!
//! `KROBS_BENCH_RUNS` (default 7) sets the runs of each slow measurement (the naive no-op and
//! each side of the change); the krobs no-op runs `2 * runs + 1` times. `KROBS_BENCH_LANGUAGE`
//! (default `bash`) picks the language whose script changes. `KROBS_BENCH_LOG=1` prints every
//! krobs-build run's progress lines on stderr, each with when it arrived.

#[path = "support/figures.rs"]
mod figures;
#[path = "support/fixture.rs"]
mod fixture;
// The tests' registry and HTTP server (tests/it/support), of which a bench uses a part.
#[allow(dead_code)]
#[path = "../tests/it/support/http_server.rs"]
mod http_server;
#[allow(dead_code)]
#[path = "../tests/it/support/services.rs"]
mod services;

use figures::{cargo_lists, cpus, load_average, median_u64, ms, nanos, verdict, Stats};
use fixture::{
    append_comment, commit_change, copy_dir, exit_unless_services, first_file, krobs_command,
    scratch_repo, settings, stored_blobs, LANGUAGES, PASSWORD, USER,
};

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use services::{describe, DockerCli, Registry};

const NOOP_TARGET: f64 = 50.0;
const CHANGE_TARGET: f64 = 0.25;
const RUNTIME_TARGET: f64 = 1.1;

fn main() {
    if cargo_lists() {
        return;
    }
    exit_unless_services(
        "pipeline",
        "a Docker Engine, the local base image and the registry binary",
    );
    let (runs, language) = settings();
    let bench = Bench::new();
    print_setting(&bench);
    set_up(&bench);
    let krobs_noop = noop(&bench, runs);
    noop_on_a_cold_runner(&bench, runs, &krobs_noop);
    one_script_change(&bench, runs, &language);
    runtime_change(&bench, runs, &language);
    // bench drops here: the registry stops, the temporary copies and the images go.
}

fn print_setting(bench: &Bench) {
    println!(
        "pipeline benchmark: {} from {}, registry {} (htpasswd auth), Docker Engine {}",
        LANGUAGES.join(", "),
        services::base_image(),
        bench.registry.addr(),
        services::docker_host().unwrap_or_else(|| "(default socket)".to_string()),
    );
    println!(
        "  krobs-build: {}; machine: {} CPUs, load average {}",
        bench.bin.display(),
        cpus(),
        load_average().unwrap_or_else(|| "unknown".to_string()),
    );
}

/// Fills the registry with krobs, warms the naive side's cache and repositories.
fn set_up(bench: &Bench) {
    let cold = bench.krobs();
    cold.expect_statuses(&[], "the first run (empty registry)");
    let t = Instant::now();
    bench.naive_all(false);
    println!(
        "set-up: first krobs run (empty registry, 4 built) {:.1} ms; naive warm-up (4 builds + pushes) {:.1} ms",
        ms(cold.elapsed),
        ms(t.elapsed())
    );
    bench
        .krobs()
        .expect_statuses(&LANGUAGES, "the warm-up no-op run");
}

/// Section 1, the no-op with the naive side's cache warm: krobs `2 * runs + 1` times and the
/// naive pipeline `runs` times, interleaved. Krobs's figures, for the cold-runner comparison.
fn noop(bench: &Bench, runs: usize) -> Stats {
    let mut krobs_noop = Vec::new();
    let mut naive_noop = Vec::new();
    let mut naive_builds = Vec::new();
    let mut naive_pushes = Vec::new();
    let krobs_runs = 2 * runs + 1;
    for i in 0..krobs_runs.max(runs) {
        if i < krobs_runs {
            let run = bench.krobs();
            run.expect_statuses(&LANGUAGES, "a no-op run");
            krobs_noop.push(run.elapsed);
        }
        if i < runs {
            let (build, push) = bench.naive_all(false);
            naive_noop.push(build + push);
            naive_builds.push(build);
            naive_pushes.push(push);
        }
    }
    let k = Stats::of(&krobs_noop);
    let n = Stats::of(&naive_noop);
    let ratio = n.median / k.median;
    println!(
        "no-op: krobs {:.1} ms, naive docker build+push {:.1} ms, ratio {:.1}x (target >= {NOOP_TARGET:.0}x)",
        k.median, n.median, ratio
    );
    println!(
        "  target {}; krobs {k} over {} runs; naive {n} over {runs} runs (builds {:.1} ms, pushes {:.1} ms, medians)",
        verdict(ratio >= NOOP_TARGET),
        krobs_noop.len(),
        Stats::of(&naive_builds).median,
        Stats::of(&naive_pushes).median,
    );
    println!(
        "  note: the naive side's Docker layer cache is warm (every build step is a cache hit and every layer is already in the registry), which favours it"
    );
    k
}

/// Section 1 on a cold runner: a CI runner starts without a layer cache: the naive pipeline then runs every step.
fn noop_on_a_cold_runner(bench: &Bench, runs: usize, k: &Stats) {
    let cold_runs = runs.div_ceil(2).max(2);
    let cold: Vec<Duration> = (0..cold_runs)
        .map(|_| {
            let (build, push) = bench.naive_all(true);
            build + push
        })
        .collect();
    let c = Stats::of(&cold);
    println!(
        "no-op on a cold runner: krobs {:.1} ms, naive docker build --no-cache + push {:.1} ms, ratio {:.1}x (target >= {NOOP_TARGET:.0}x) {}",
        k.median,
        c.median,
        c.median / k.median,
        verdict(c.median / k.median >= NOOP_TARGET),
    );
    println!("  naive without cache {c} over {cold_runs} runs");
}

/// A side of a change: krobs-build, raw docker the old way, raw docker the old way with
/// krobs's former `LABEL` line.
#[derive(Clone, Copy)]
enum Side {
    Krobs,
    Docker,
    Same,
}

/// The one-script change's orders: each side takes each place in turn.
const ORDERS: [[Side; 3]; 3] = [
    [Side::Krobs, Side::Docker, Side::Same],
    [Side::Docker, Side::Same, Side::Krobs],
    [Side::Same, Side::Krobs, Side::Docker],
];

/// Section 2, the one-script change: a fresh comment line in the first script of `language`
/// per side and run, the order rotating.
fn one_script_change(bench: &Bench, runs: usize, language: &str) {
    let script = first_file(&bench.repo, language, "scripts");
    let mut samples = ChangeSamples::default();
    for i in 0..runs {
        for side in ORDERS[i % 3] {
            // a fresh line for each side and run, made before the clock starts
            let stamp = format!("run {i} at {}", nanos());
            samples.measure(bench, side, language, &script, &stamp);
        }
    }
    samples.print(language, runs);
}

/// What the one-script change measured, side by side.
#[derive(Default)]
struct ChangeSamples {
    krobs: Vec<Duration>,
    krobs_bytes: Vec<u64>,
    docker: Vec<Duration>,
    docker_builds: Vec<Duration>,
    docker_pushes: Vec<Duration>,
    docker_bytes: Vec<u64>,
    same: Vec<Duration>,
}

impl ChangeSamples {
    /// One side's run after its own change (`stamp`) to `script` of `language`.
    fn measure(&mut self, bench: &Bench, side: Side, language: &str, script: &str, stamp: &str) {
        match side {
            Side::Krobs => {
                bench.change_krobs(language, script, &format!("krobs {stamp}"));
                let stored = stored_blobs(&bench.registry);
                let run = bench.krobs();
                let bytes = bench.uploaded_since(&stored, Some("krobs/manifest"));
                self.krobs_bytes.push(bytes);
                run.expect_statuses(&others(language), "a one-script change run");
                self.krobs.push(run.elapsed);
            }
            Side::Docker => {
                bench.change_naive(language, script, &format!("docker {stamp}"));
                let stored = stored_blobs(&bench.registry);
                let (build, push) = bench.naive_one(language, "latest", false);
                self.docker_bytes.push(bench.uploaded_since(&stored, None));
                self.docker.push(build + push);
                self.docker_builds.push(build);
                self.docker_pushes.push(push);
            }
            Side::Same => {
                append_comment(
                    &bench.same.join("languages").join(language).join(script),
                    &format!("same {stamp}"),
                );
                let (build, push) = bench.raw_one(&bench.same, "same", language, "latest", false);
                self.same.push(build + push);
            }
        }
    }

    fn print(&self, language: &str, runs: usize) {
        let k = Stats::of(&self.krobs);
        let d = Stats::of(&self.docker);
        let ratio = k.median / d.median;
        println!(
            "one-script change ({language}): krobs {:.1} ms, raw docker build+push {:.1} ms, ratio {:.2}x (target <= {CHANGE_TARGET:.2}x)",
            k.median, d.median, ratio
        );
        println!(
            "  target {}; krobs {k}; raw docker {d}; {runs} runs each, a fresh change per run, order rotating",
            verdict(ratio <= CHANGE_TARGET),
        );
        println!(
            "  raw docker: build {:.1} ms, push {:.1} ms (medians)",
            Stats::of(&self.docker_builds).median,
            Stats::of(&self.docker_pushes).median,
        );
        let same = Stats::of(&self.same);
        println!(
            "  raw docker building the image the old way with krobs's former LABEL line: {same}; krobs against it: {:.2}x",
            k.median / same.median
        );
        let (krobs_bytes, docker_bytes) = (
            median_u64(&self.krobs_bytes),
            median_u64(&self.docker_bytes),
        );
        println!(
            "  bytes uploaded for the image (new blobs in the registry, medians; krobs's release manifest artifact left out): krobs {} B, raw docker {} B ({:.3}x)",
            krobs_bytes,
            docker_bytes,
            krobs_bytes as f64 / docker_bytes.max(1) as f64
        );
    }
}

/// Section 3, the runtime change: a fresh comment line in the first file of `language`'s
/// `lib/` per side and run, the order alternating.
fn runtime_change(bench: &Bench, runs: usize, language: &str) {
    let lib = first_file(&bench.repo, language, "lib");
    let mut krobs_runtime = Vec::new();
    let mut krobs_stages = Vec::new();
    let mut docker_runtime = Vec::new();
    for i in 0..runs {
        let stamp = format!("run {i} at {}", nanos());
        let krobs_first = i % 2 == 0;
        for krobs_side in [krobs_first, !krobs_first] {
            if krobs_side {
                bench.change_krobs(language, &lib, &format!("krobs {stamp}"));
                let run = bench.krobs();
                run.expect_statuses(&others(language), "a runtime change run");
                krobs_stages.extend(run.stages(language));
                krobs_runtime.push(run.elapsed);
            } else {
                bench.change_naive(language, &lib, &format!("docker {stamp}"));
                let (build, push) = bench.naive_one(language, "latest", false);
                docker_runtime.push(build + push);
            }
        }
    }
    let k = Stats::of(&krobs_runtime);
    let d = Stats::of(&docker_runtime);
    let ratio = k.median / d.median;
    println!(
        "runtime change ({language} {lib}): krobs {:.1} ms, raw docker build+push {:.1} ms, ratio {:.2}x (target <= {RUNTIME_TARGET:.1}x) {}",
        k.median,
        d.median,
        ratio,
        verdict(ratio <= RUNTIME_TARGET)
    );
    println!("  krobs {k}; raw docker {d}; {runs} runs each, order alternating");
    println!("  krobs {}", Stages::medians(&krobs_stages));
}

/// Every language but `language`: what a run that changed `language` reuses.
fn others(language: &str) -> Vec<&'static str> {
    LANGUAGES.into_iter().filter(|l| *l != language).collect()
}

/// Inserts `COPY scripts/` after the `COPY lib/` line: the Dockerfile as it was before the
/// scripts became a layer of their own.
fn the_old_way(dockerfile: &str) -> String {
    let lib = "COPY lib/ /opt/krobs/lib/\n";
    assert!(dockerfile.contains(lib), "no `{lib}` line in\n{dockerfile}");
    dockerfile.replace(lib, &format!("{lib}COPY scripts/ /opt/krobs/scripts/\n"))
}

/// The provenance line krobs used to append to every Dockerfile.
fn former_label_line() -> String {
    format!(
        "\nLABEL \"dev.krobs.input-digest\"=\"sha256:{zeros64}\" \"dev.krobs.scripts\"=\"bench/a,bench/b\" \"org.opencontainers.image.revision\"=\"{zeros40}\" \"org.opencontainers.image.source\"=\"https://example.com/krobs.git\" \"org.opencontainers.image.title\"=\"krobs-bench\"\n",
        zeros64 = "0".repeat(64),
        zeros40 = "0".repeat(40)
    )
}

/// A copy of this repository's `languages/` at `root`, each Dockerfile built [`the_old_way`]
/// and ending with `tail`.
fn old_way_copy(root: &Path, tail: &str) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&source.join("languages"), &root.join("languages"));
    for language in LANGUAGES {
        let dockerfile = root.join("languages").join(language).join("Dockerfile");
        let text = fs::read_to_string(&dockerfile).unwrap();
        fs::write(&dockerfile, the_old_way(&text) + tail).unwrap();
    }
}

// -------------------------------------------------------------------------------------------------
// Where a krobs run spent its time
// -------------------------------------------------------------------------------------------------

/// Where a krobs run that built one language spent its time, from when its progress lines
/// (`[lang] building`, the first `Step ` line of the build, `[lang] pushing`, `[lang] built
/// and pushed`) arrived on stderr. Informative only: a line it does not find leaves it out.
struct Stages {
    /// Start to `building`: config, discovery, digests, git, registry check and lookups.
    before_build: Duration,
    /// `building` to the first build step: the build context and the cache.
    cache: Duration,
    /// First build step to `pushing`: the Docker build itself.
    build: Duration,
    /// `pushing` to `built and pushed`: runtime push, digest, scripts layer, config,
    /// manifest, verification, extra tags.
    push: Duration,
    /// `built and pushed` to exit: the other languages, final verification, manifest, report.
    after: Duration,
    /// Daemon pushes (`The push refers to repository` lines).
    daemon_pushes: usize,
    /// `LABEL` steps of the build (the classic builder makes one step per `labels` entry).
    label_steps: usize,
}

impl Stages {
    fn medians(all: &[Stages]) -> String {
        if all.is_empty() {
            return "stages: not available (its progress lines were not recognised)".to_string();
        }
        let med =
            |f: fn(&Stages) -> Duration| Stats::of(&all.iter().map(f).collect::<Vec<_>>()).median;
        let counts = |f: fn(&Stages) -> usize| {
            all.iter()
                .map(f)
                .collect::<BTreeSet<usize>>()
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("/")
        };
        format!(
            "stages (medians over {} runs, from its progress lines): start to `building` {:.1} ms (config, digests, git, registry check, lookups); cache source {:.1} ms; docker build {:.1} ms ({} LABEL steps); push, verify, tags {:.1} ms ({} daemon push per run); done to exit {:.1} ms (other languages' tags, verification, manifest)",
            all.len(),
            med(|s| s.before_build),
            med(|s| s.cache),
            med(|s| s.build),
            counts(|s| s.label_steps),
            med(|s| s.push),
            counts(|s| s.daemon_pushes),
            med(|s| s.after),
        )
    }
}

// -------------------------------------------------------------------------------------------------
// The set-up: a registry, a logged-in docker CLI, a krobs repository and a naive copy
// -------------------------------------------------------------------------------------------------

struct Bench {
    registry: Registry,
    cli: DockerCli,
    bin: PathBuf,
    /// The krobs repository (a git repository with `krobs.toml` and `languages/`).
    repo: PathBuf,
    /// The naive pipeline's copy of `languages/`.
    naive: PathBuf,
    /// A third copy whose Dockerfiles end with the `LABEL` line krobs used to append: raw
    /// docker building the image krobs built before its labels moved to the image config.
    same: PathBuf,
    /// Every image reference (`host/repo:tag`, in this bench's registry) and image id seen
    /// here, removed on drop.
    images: std::cell::RefCell<Images>,
    _tmp: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let registry = Registry::start(&[(USER, PASSWORD)]);
        let cli = DockerCli::new();
        let login = cli.login(&registry.addr(), USER, PASSWORD);
        assert!(
            login.status.success(),
            "docker login {} failed:\n{}",
            registry.addr(),
            String::from_utf8_lossy(&login.stderr)
        );

        let tmp = tempfile::Builder::new()
            .prefix("krobs-bench-")
            .tempdir()
            .unwrap();
        let repo = tmp.path().join("repo");
        scratch_repo(&repo, &registry.addr(), "benches/pipeline.rs");
        let naive = tmp.path().join("naive");
        old_way_copy(&naive, "");
        let same = tmp.path().join("same");
        old_way_copy(&same, &former_label_line());

        Bench {
            registry,
            cli,
            bin: PathBuf::from(env!("CARGO_BIN_EXE_krobs-build")),
            repo,
            naive,
            same,
            images: Default::default(),
            _tmp: tmp,
        }
    }

    /// One `krobs-build --json` run in the krobs repository, timed from spawn to exit.
    fn krobs(&self) -> KrobsRun {
        // the docker CLI's config: none, no credentials krobs should fall back to
        let no_docker_config = self._tmp.path().join("no-docker-config");
        let mut cmd = krobs_command(&self.bin, &self.repo, &no_docker_config);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        let stderr = child.stderr.take().unwrap();
        let lines = std::thread::spawn(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .map(|l| (start.elapsed(), l))
                .collect::<Vec<_>>()
        });
        let mut stdout = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let status = child.wait().unwrap();
        let elapsed = start.elapsed();
        let lines = lines.join().unwrap();
        if !status.success() {
            panic!(
                "krobs-build failed in {}: {status}\n--- stdout\n{stdout}\n--- stderr\n{}",
                self.repo.display(),
                lines
                    .iter()
                    .map(|(_, l)| l.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        if std::env::var_os("KROBS_BENCH_LOG").is_some() {
            eprintln!("--- krobs-build ({:.1} ms), its stderr:", ms(elapsed));
            for (t, l) in &lines {
                eprintln!("{:9.1} ms  {l}", ms(*t));
            }
        }
        self.remember_images();
        KrobsRun {
            elapsed,
            stdout,
            lines,
        }
    }

    /// What the naive build of `language` is given: the local base image, and for Scala the
    /// loopback Maven mirror of `tests/run.sh`, reached on the host's network (as krobs.toml's
    /// `[build] network` does for krobs-build).
    fn naive_build_args(&self, language: &str) -> Vec<String> {
        let mut args = vec![
            "--build-arg".to_string(),
            format!("BASE_IMAGE={}", services::base_image()),
            "--network".to_string(),
            "host".to_string(),
        ];
        if language == "scala" {
            args.extend([
                "--build-arg".to_string(),
                format!("MAVEN_REPOSITORY={}", services::maven_mirror()),
                "--build-arg".to_string(),
                format!(
                    "FETCH_IMAGE={}",
                    services::debian_base("KROBS_TEST_BASE_BASH")
                ),
            ]);
        }
        args
    }

    /// `docker build` (without the layer cache if `no_cache`) then `docker push` of one language
    /// of the naive copy, as `naive/<language>:<tag>`; the two times.
    fn naive_one(&self, language: &str, tag: &str, no_cache: bool) -> (Duration, Duration) {
        self.raw_one(&self.naive, "naive", language, tag, no_cache)
    }

    /// `docker build` then `docker push` of one language of the copy at `root`, as
    /// `<repository>/<language>:<tag>`; the two times.
    fn raw_one(
        &self,
        root: &Path,
        repository: &str,
        language: &str,
        tag: &str,
        no_cache: bool,
    ) -> (Duration, Duration) {
        let image = format!("{}/{repository}/{language}:{tag}", self.registry.addr());
        let dir = root.join("languages").join(language);
        let mut args = vec![
            "build".to_string(),
            "--force-rm".to_string(),
            "-t".to_string(),
            image.clone(),
        ];
        args.extend(self.naive_build_args(language));
        if no_cache {
            args.push("--no-cache".to_string());
        }
        args.push(dir.display().to_string());
        let t = Instant::now();
        self.docker_ok(&args);
        let build = t.elapsed();
        let t = Instant::now();
        self.docker_ok(&["push".to_string(), image]);
        let push = t.elapsed();
        self.remember_images();
        (build, push)
    }

    /// The naive pipeline: every language built and pushed, one after the other; the summed
    /// build and push times.
    fn naive_all(&self, no_cache: bool) -> (Duration, Duration) {
        LANGUAGES
            .iter()
            .map(|l| self.naive_one(l, "latest", no_cache))
            .fold((Duration::ZERO, Duration::ZERO), |(b, p), (b1, p1)| {
                (b + b1, p + p1)
            })
    }

    fn docker_ok(&self, args: &[String]) -> Output {
        let mut cmd = self.cli.command(args);
        let out = services::run(&mut cmd);
        if !out.status.success() {
            panic!("docker failed:\n{}", describe(&cmd, &out));
        }
        out
    }

    /// Bytes of the blobs stored since `before`: what was uploaded (a blob already there is
    /// not uploaded again by either side), leaving out the blobs of repository `except`.
    fn uploaded_since(&self, before: &BTreeMap<PathBuf, u64>, except: Option<&str>) -> u64 {
        let excepted = |blob: &Path| {
            let hex = blob
                .parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            except.is_some_and(|repo| {
                self.registry
                    .storage_dir()
                    .join("docker/registry/v2/repositories")
                    .join(repo)
                    .join("_layers/sha256")
                    .join(hex)
                    .exists()
            })
        };
        stored_blobs(&self.registry)
            .iter()
            .filter(|(p, _)| !before.contains_key(*p) && !excepted(p))
            .map(|(_, n)| n)
            .sum()
    }

    /// A comment line appended to a file (`scripts/...`, `lib/...`) of a language of the krobs
    /// repository, committed (as a merge would be).
    fn change_krobs(&self, language: &str, file: &str, text: &str) {
        let file = Path::new("languages").join(language).join(file);
        commit_change(&self.repo, &file, text);
    }

    /// A comment line appended to the same script of the naive copy.
    fn change_naive(&self, language: &str, script: &str, text: &str) {
        append_comment(
            &self.naive.join("languages").join(language).join(script),
            text,
        );
    }

    /// Records every image tagged in this bench's registry (reference and id), for removal on
    /// drop; called after each run, so that images a later build untags are known too.
    fn remember_images(&self) {
        let out = self.cli.run(&[
            "images",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}",
        ]);
        let prefix = format!("{}/", self.registry.addr());
        let mut images = self.images.borrow_mut();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((reference, id)) = line.split_once(' ') {
                if reference.starts_with(&prefix) {
                    if !reference.ends_with(":<none>") {
                        images.references.insert(reference.to_string());
                    }
                    images.ids.insert(id.to_string());
                }
            }
        }
    }
}

#[derive(Default)]
struct Images {
    references: BTreeSet<String>,
    ids: BTreeSet<String>,
}

impl Drop for Bench {
    /// Untags what this bench tagged, then deletes the images it made unless something else
    /// still uses them (no `--force`: an image another test tagged, or the parent of one,
    /// stays). Parents go after their children, so the ids are tried in a few passes.
    fn drop(&mut self) {
        self.remember_images();
        let images = std::mem::take(&mut *self.images.borrow_mut());
        for reference in &images.references {
            let _ = self.cli.run(&["image", "rm", reference]);
        }
        let mut left: Vec<String> = images.ids.into_iter().collect();
        for _ in 0..8 {
            let before = left.len();
            left.retain(|id| {
                let out = self.cli.run(&["image", "rm", id]);
                !out.status.success()
                    && !String::from_utf8_lossy(&out.stderr).contains("No such image")
            });
            if left.is_empty() || left.len() == before {
                break;
            }
        }
    }
}

// -------------------------------------------------------------------------------------------------
// One krobs run and what it said
// -------------------------------------------------------------------------------------------------

struct KrobsRun {
    elapsed: Duration,
    /// The `--json` summary.
    stdout: String,
    /// The progress lines on stderr, each with when it arrived.
    lines: Vec<(Duration, String)>,
}

impl KrobsRun {
    /// `(language, status)` of every language in the JSON summary.
    fn statuses(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = self.stdout.as_str();
        while let Some(at) = rest.find("\"status\"") {
            let before = &rest[..at];
            let name = before
                .rfind("\"name\"")
                .and_then(|n| json_string_after(&before[n + "\"name\"".len()..]))
                .unwrap_or_default();
            rest = &rest[at + "\"status\"".len()..];
            if let Some(status) = json_string_after(rest) {
                out.push((name, status));
            }
        }
        out
    }

    /// Fails unless exactly `reused` were reused and every other language was built.
    fn expect_statuses(&self, reused: &[&str], what: &str) {
        let got = self.statuses();
        let mut expected: Vec<(String, String)> = LANGUAGES
            .iter()
            .map(|l| {
                let s = if reused.contains(l) {
                    "reused"
                } else {
                    "built"
                };
                (l.to_string(), s.to_string())
            })
            .collect();
        let mut sorted = got.clone();
        sorted.sort();
        expected.sort();
        assert_eq!(
            sorted, expected,
            "{what}: krobs-build did not build/reuse what was expected\n--- stdout\n{}",
            self.stdout
        );
    }

    /// When the first progress line of `language` containing `needle` arrived.
    fn at(&self, language: &str, needle: &str) -> Option<Duration> {
        self.lines
            .iter()
            .find(|(_, l)| {
                l.strip_prefix('[')
                    .is_some_and(|rest| rest.trim_start().starts_with(language))
                    && l.contains(needle)
            })
            .map(|(t, _)| *t)
    }

    fn stages(&self, language: &str) -> Option<Stages> {
        let building = self.at(language, "] building")?;
        let step = self.at(language, "] Step ")?;
        let pushing = self.at(language, "] pushing")?;
        let done = self.at(language, "] built and pushed")?;
        let count = |needle: &str| {
            self.lines
                .iter()
                .filter(|(_, l)| l.contains(needle))
                .count()
        };
        Some(Stages {
            before_build: building,
            cache: step.saturating_sub(building),
            build: pushing.saturating_sub(step),
            push: done.saturating_sub(pushing),
            after: self.elapsed.saturating_sub(done),
            daemon_pushes: count("The push refers to repository"),
            label_steps: count(" : LABEL "),
        })
    }
}

/// The JSON string value after a key: skips `:` and blanks, reads `"..."` (no escapes needed
/// for the names and statuses read here).
fn json_string_after(s: &str) -> Option<String> {
    let s = s.trim_start().strip_prefix(':')?.trim_start();
    let s = s.strip_prefix('"')?;
    let end = s.find('"')?;
    Some(s[..end].to_string())
}
