//! Krobs side by side with the daemon-free peers, `crane` (go-containerregistry) and `oras`,
//! doing the same work on the same registry.
//!
//! Run with `bash tests/run.sh --bench peers` (the set-up of the tests: Docker Engine, base
//! images, the Maven mirror of the Scala build); it needs `go` (1.24 or newer). The peers are
//! built here from the Go module proxy at pinned versions ([`CRANE`], [`ORAS`]) into
//! `target/tmp/peers/` (once; `go install`, module mode): they are measuring sticks, never
//! dependencies of Krobs. One `docker-registry` with htpasswd (bcrypt) auth on loopback serves
//! both sides; Krobs first publishes this repository's four languages (the Docker Engine
//! builds their runtimes once), then:
//!
//! 1. **Nothing changed** (4 languages, same commit): `krobs-build` against the floor, `crane
//!    digest` of the 4 content tags, 4 processes at once (one lookup each).
//! 2. **One script changed** (one language; a fresh comment line per run and side, committed):
//!    `krobs-build`'s whole run (scripts layer on the runtime through the registry API, the
//!    content, `latest` and `git-` tags, the release manifest published as an OCI artifact
//!    under `git-<commit>` and `latest`) against the same work by the peers: `crane append`
//!    of the same scripts layer (made beforehand by GNU tar + `gzip -n`, not timed) onto the
//!    same runtime under a content tag, then at once `crane tag` of the two extra tags and
//!    `oras push` of the release manifest Krobs wrote in the same round, under its two tags.
//!    Sides alternate in order.
//!
//! For each: medians (min, max), ratios against the targets (one-script change at most 1.0x
//! the peers, no-op within 2x the floor), the HTTP requests each side made (the registry's
//! access log, by kind) and the bytes it uploaded (new blobs in the registry's storage). The
//! figures are printed whether or not a target is met; the bench fails only when something
//! does not work. `KROBS_BENCH_RUNS` (default 7) sets the runs per side; `KROBS_BENCH_LANGUAGE`
//! (default `bash`) the language whose script changes; `KROBS_BENCH_BIN` another `krobs-build`
//! to measure (an older build, to compare), instead of this build's.

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

use figures::{cargo_lists, cpus, load_average, median_u64, nanos, verdict, Stats};
use fixture::{
    append_comment, commit_change, copy_dir, exit_unless_services, first_file, krobs_command,
    scratch_repo, settings, stored_blobs, PASSWORD, USER,
};

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use services::{describe, Registry};

/// The peers, as `go install` takes them.
const CRANE: (&str, &str) = (
    "github.com/google/go-containerregistry/cmd/crane",
    "v0.22.1",
);
const ORAS: (&str, &str) = ("oras.land/oras/cmd/oras", "v1.3.6");

const ARTIFACT_TYPE: &str = "application/vnd.krobs.manifest.v1+json";
const CHANGE_TARGET: f64 = 1.0;
const NOOP_TARGET: f64 = 2.0;

fn main() {
    if cargo_lists() {
        return;
    }
    exit_unless_services("peers", "the set-up of the tests");
    let (runs, language) = settings();
    let crane = go_install(CRANE);
    let oras = go_install(ORAS);
    let bench = Bench::new(crane, oras);
    println!(
        "peers benchmark: {}; registry {} (htpasswd bcrypt auth), crane {}, oras {}; {} CPUs, load average {}",
        bench.bin.display(),
        bench.registry.addr(),
        CRANE.1,
        ORAS.1,
        cpus(),
        load_average().unwrap_or_else(|| "?".to_string()),
    );
    let t = Instant::now();
    bench.krobs();
    println!(
        "set-up: first krobs run (4 runtimes built by the Docker Engine) {:.1} s",
        t.elapsed().as_secs_f64()
    );
    bench.krobs(); // warm

    noop(&bench, runs);
    change(&bench, runs, &language);
}

/// 1. Nothing changed: Krobs's no-op against `crane digest` of every content tag at once.
fn noop(bench: &Bench, runs: usize) {
    let tags: Vec<String> = bench.content_tags();
    let (mut krobs, mut floor) = (Side::default(), Side::default());
    for i in 0..runs {
        for first in [i % 2 == 0, i % 2 == 1] {
            if first {
                krobs.measure(bench, || {
                    bench.krobs();
                });
            } else {
                floor.measure(bench, || {
                    let children: Vec<_> = tags
                        .iter()
                        .map(|t| bench.peer(&bench.crane, &["digest", t]).spawn().unwrap())
                        .collect();
                    for c in children {
                        expect_ok(c.wait_with_output().unwrap(), "crane digest");
                    }
                });
            }
        }
    }
    let ratio = krobs.median() / floor.median();
    println!(
        "no-op (4 languages): krobs {:.1} ms, crane digest x4 at once (the floor) {:.1} ms, ratio {ratio:.2}x (target <= {NOOP_TARGET:.1}x) {}",
        krobs.median(),
        floor.median(),
        verdict(ratio <= NOOP_TARGET)
    );
    println!("  krobs {}", krobs.summary());
    println!("  floor {}", floor.summary());
}

/// 2. One script changed: Krobs's whole run against crane append + crane tag + oras push.
fn change(bench: &Bench, runs: usize, language: &str) {
    let (mut krobs, mut peers, mut layers) = (Side::default(), Side::default(), Vec::new());
    let runtime = bench.runtime_ref(language);
    for i in 0..runs {
        for krobs_side in [i % 2 == 0, i % 2 == 1] {
            let stamp = format!("run {i} at {}", nanos());
            if krobs_side {
                bench.change_krobs(language, &format!("krobs {stamp}"));
                krobs.measure(bench, || {
                    bench.krobs();
                });
                continue;
            }
            let t = Instant::now();
            let layer = bench.peer_layer(language, &format!("peers {stamp}"));
            layers.push(t.elapsed());
            let release = bench.release_copy(i);
            let image = format!("{}/krobs/{language}:peer-{i}", bench.registry.addr());
            peers.measure(bench, || {
                bench.peers_publish(i, &runtime, &layer, &image, &release)
            });
        }
    }
    let ratio = krobs.median() / peers.median();
    println!(
        "one-script change ({language}): krobs {:.1} ms, crane append + crane tag x2 + oras push {:.1} ms, ratio {ratio:.2}x (target <= {CHANGE_TARGET:.1}x) {}",
        krobs.median(),
        peers.median(),
        verdict(ratio <= CHANGE_TARGET)
    );
    println!("  krobs {}", krobs.summary());
    println!("  peers {}", peers.summary());
    println!(
        "  not timed on the peers' side: making their layer with tar | gzip -n, {:.1} ms (median); Krobs makes its own inside its run",
        Stats::of(&layers).median
    );
}

fn expect_ok(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

// -------------------------------------------------------------------------------------------------
// One side: times, requests, bytes
// -------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Side {
    times: Vec<Duration>,
    /// Per run: the requests by kind (`HEAD manifest`, `PUT blob upload`, ...).
    requests: Vec<BTreeMap<String, usize>>,
    bytes: Vec<u64>,
}

impl Side {
    fn measure(&mut self, bench: &Bench, f: impl FnOnce()) {
        let log_at = bench.registry.log().len();
        let blobs = stored_blobs(&bench.registry);
        let t = Instant::now();
        f();
        self.times.push(t.elapsed());
        self.requests
            .push(requests(&bench.registry.log()[log_at..]));
        let now = stored_blobs(&bench.registry);
        self.bytes.push(
            now.iter()
                .filter(|(p, _)| !blobs.contains_key(*p))
                .map(|(_, n)| n)
                .sum(),
        );
    }

    fn median(&self) -> f64 {
        Stats::of(&self.times).median
    }

    fn summary(&self) -> String {
        let counts: BTreeSet<usize> = self.requests.iter().map(|r| r.values().sum()).collect();
        let last = self.requests.last().cloned().unwrap_or_default();
        let kinds: Vec<String> = last.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!(
            "{} over {} runs; HTTP requests per run {} ({}); bytes uploaded {} (median)",
            Stats::of(&self.times),
            self.times.len(),
            counts
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join("/"),
            kinds.join(", "),
            median_u64(&self.bytes),
        )
    }
}

/// The requests in a stretch of the registry's log (its access log lines), by method and kind.
fn requests(log: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        let Some(at) = line.find("] \"") else {
            continue;
        };
        let mut parts = line[at + 3..].split_whitespace();
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !path.starts_with("/v2/") {
            continue;
        }
        let path = path.split('?').next().unwrap_or(path);
        let kind = if path == "/v2/" {
            "ping"
        } else if path.contains("/blobs/uploads/") {
            "blob upload"
        } else if path.contains("/blobs/") {
            "blob"
        } else if path.contains("/manifests/") {
            "manifest"
        } else if path.contains("/tags/") {
            "tag list"
        } else {
            "other"
        };
        *out.entry(format!("{method} {kind}")).or_default() += 1;
    }
    out
}

// -------------------------------------------------------------------------------------------------
// The set-up
// -------------------------------------------------------------------------------------------------

/// `go install MODULE@VERSION` into `target/tmp/peers/<name>-<version>/` unless already there.
fn go_install((module, version): (&str, &str)) -> PathBuf {
    let name = module.rsplit('/').next().unwrap();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("peers")
        .join(format!("{name}-{version}"));
    let bin = root.join(name);
    if bin.is_file() {
        return bin;
    }
    fs::create_dir_all(&root).unwrap();
    let t = Instant::now();
    let mut cmd = Command::new("go");
    cmd.args(["install", &format!("{module}@{version}")])
        .env("GOBIN", &root)
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0");
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run `go` (1.24 or newer is needed to build the peers): {e}")
    });
    assert!(
        out.status.success(),
        "building {name} failed:\n{}",
        describe(&cmd, &out)
    );
    println!(
        "built {name} {version} from the Go module proxy in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    bin
}

struct Bench {
    registry: Registry,
    bin: PathBuf,
    crane: PathBuf,
    oras: PathBuf,
    /// The krobs repository (a git repository with `krobs.toml` and `languages/`).
    repo: PathBuf,
    tmp: tempfile::TempDir,
}

impl Bench {
    fn new(crane: PathBuf, oras: PathBuf) -> Bench {
        let registry = Registry::start(&[(USER, PASSWORD)]);
        let tmp = tempfile::Builder::new()
            .prefix("krobs-peers-")
            .tempdir()
            .unwrap();
        let repo = tmp.path().join("repo");
        scratch_repo(&repo, &registry.addr(), "benches/peers.rs");
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        let config = serde_json::json!({ "auths": { registry.addr(): { "auth": auth } } });
        fs::create_dir_all(tmp.path().join("docker")).unwrap();
        fs::write(tmp.path().join("docker/config.json"), config.to_string()).unwrap();
        Bench {
            registry,
            bin: std::env::var_os("KROBS_BENCH_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_krobs-build"))),
            crane,
            oras,
            repo,
            tmp,
        }
    }

    fn docker_config(&self) -> PathBuf {
        self.tmp.path().join("docker/config.json")
    }

    /// A peer's command, with the bench's docker config (the registry's credentials).
    fn peer(&self, bin: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("DOCKER_CONFIG", self.tmp.path().join("docker"))
            .env("HOME", self.tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// One `krobs-build --json` run; its JSON report.
    fn krobs(&self) -> serde_json::Value {
        let no_docker_config = self.tmp.path().join("no-docker-config");
        let mut cmd = krobs_command(&self.bin, &self.repo, &no_docker_config);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "krobs-build failed:\n{}",
            describe(&cmd, &out)
        );
        serde_json::from_slice(&out.stdout).expect("the --json report")
    }

    /// `host/repo:tag` of every language's image, from the last run's manifest.
    fn content_tags(&self) -> Vec<String> {
        let report = self.krobs();
        let languages = report["languages"]
            .as_array()
            .expect("`languages` in the report");
        languages
            .iter()
            .map(|l| {
                l["image"]
                    .as_str()
                    .expect("`image` of a language")
                    .to_string()
            })
            .collect()
    }

    /// `host/repo:runtime-...` of a language, from the last run's report.
    fn runtime_ref(&self, language: &str) -> String {
        let report = self.krobs();
        let l = report["languages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == language)
            .expect("the language in the report");
        let image = l["image"].as_str().unwrap();
        let repository = image.rsplit_once(':').unwrap().0;
        format!(
            "{repository}:{}",
            l["runtime_tag"].as_str().expect("`runtime_tag`")
        )
    }

    /// A comment line appended to the first script of a language, committed.
    fn change_krobs(&self, language: &str, text: &str) {
        let script = first_file(&self.repo, language, "scripts");
        commit_change(
            &self.repo,
            &Path::new("languages").join(language).join(script),
            text,
        );
    }

    /// The peers' scripts layer: the language's scripts (the first with its own new line) and
    /// krobs-run, laid out as Krobs lays them, as a deterministic tar.gz.
    fn peer_layer(&self, language: &str, text: &str) -> PathBuf {
        let stage = self.tmp.path().join("peer-stage");
        let _ = fs::remove_dir_all(&stage);
        let scripts = stage.join("opt/krobs/scripts");
        copy_dir(
            &self.repo.join("languages").join(language).join("scripts"),
            &scripts,
        );
        let script = first_file(&self.repo, language, "scripts");
        append_comment(&stage.join("opt/krobs").join(script), text);
        fs::create_dir_all(stage.join("opt/krobs/bin")).unwrap();
        let entrypoint = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/krobs-run");
        fs::copy(entrypoint, stage.join("opt/krobs/bin/krobs-run")).unwrap();
        let layer = self.tmp.path().join("peer-layer.tar.gz");
        let script = format!(
            "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C '{}' -cf - opt | gzip -n -6 > '{}'",
            stage.display(),
            layer.display()
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script]);
        services::run_ok(&mut cmd);
        layer
    }

    /// Krobs's release manifest of its last run, made new to the registry (whose storage is
    /// content-addressed) by trailing blanks, one more per `round`, in a folder of its own.
    fn release_copy(&self, round: usize) -> PathBuf {
        let dir = self.tmp.path().join(format!("release-{round}"));
        fs::create_dir_all(&dir).unwrap();
        let mut bytes = fs::read(self.repo.join("out/krobs-manifest.json")).unwrap();
        bytes.extend(std::iter::repeat_n(b' ', round + 1));
        bytes.push(b'\n');
        fs::write(dir.join("krobs-manifest.json"), bytes).unwrap();
        dir
    }

    /// The peers' side of a one-script change (`round`): `crane append` of `layer` onto
    /// `runtime` as `image`, then at once `crane tag` of the two extra tags and `oras push` of
    /// the release manifest copy in `release` under its two tags.
    fn peers_publish(
        &self,
        round: usize,
        runtime: &str,
        layer: &Path,
        image: &str,
        release: &Path,
    ) {
        let layer = layer.to_str().unwrap();
        let append = ["append", "-b", runtime, "-f", layer, "-t", image];
        expect_ok(
            self.peer(&self.crane, &append).output().unwrap(),
            "crane append",
        );
        let tag = |tag: String| {
            self.peer(&self.crane, &["tag", image, &tag])
                .spawn()
                .unwrap()
        };
        let children = [
            tag(format!("peer-latest-{round}")),
            tag(format!("peer-git-{round}")),
            self.oras_push(round, release),
        ];
        for c in children {
            expect_ok(c.wait_with_output().unwrap(), "crane tag / oras push");
        }
    }

    /// `oras push` of the release manifest copy in `release` as an artifact of Krobs's type,
    /// under `git-<round>` and `latest`; started, not awaited.
    fn oras_push(&self, round: usize, release: &Path) -> Child {
        let config = self.docker_config();
        let args = [
            "push",
            "--plain-http",
            "--registry-config",
            config.to_str().unwrap(),
            "--artifact-type",
            ARTIFACT_TYPE,
            &format!(
                "{}/krobs/peer-manifest:git-{round},latest",
                self.registry.addr()
            ),
            &format!("krobs-manifest.json:{ARTIFACT_TYPE}"),
        ];
        self.peer(&self.oras, &args)
            .current_dir(release)
            .spawn()
            .unwrap()
    }
}
