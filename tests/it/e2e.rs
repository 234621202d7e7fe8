//! End to end, against the real services of `bash tests/run.sh`: the real binary builds this
//! repository's languages through the Docker Engine, pushes them to a reference registry with
//! htpasswd auth (or to one standing in for ECR, with moto serving the ECR API), and writes the
//! manifest. Then: what the registry holds, what the manifest says, an image pulled back by
//! digest running one of its krobs, reruns, a one-script change, faults, and a secret scan at
//! the end of every test.
//!
//! Every test starts its own registry (and moto) on free loopback ports and its own copy of the
//! repository, so they run in parallel. Without the services they fail, never skip.

use std::sync::Arc;
use std::time::Duration;

use crate::support::e2e_support::*;
use crate::support::http_server::{HttpServer, Reply, Request};
use crate::support::services::{require_services, FlakyProxy};
use krobs::exit;
use serde_json::{json, Value};

// -------------------------------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------------------------------

/// The `languages` entries of a report or manifest.
fn entries(v: &Value) -> &Vec<Value> {
    v["languages"].as_array().expect("a `languages` array")
}

/// `git-<first 12 of commit>`, the extra tag of a commit.
fn git_tag(commit: &str) -> String {
    format!("git-{}", &commit[..12])
}

/// The manifest without what a new commit changes for every language: `commit` itself.
fn without_commit(manifest: &Value) -> Value {
    let mut m = manifest.clone();
    m.as_object_mut().unwrap().remove("commit");
    m
}

/// The manifest without one language's entry and its scripts.
fn without_language(manifest: &Value, name: &str) -> Value {
    let mut m = manifest.clone();
    m["languages"]
        .as_array_mut()
        .unwrap()
        .retain(|l| l["name"] != name);
    m["scripts"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["language"] != name);
    m
}

/// The one `Step N/M : ...` line of `language`'s build log that ends with `instruction`.
#[track_caller]
fn step_line(stderr: &str, language: &str, instruction: &str) -> String {
    let prefix = format!("[{language}] Step ");
    let found: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.ends_with(&format!(" : {instruction}")))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one `{prefix}N/M : {instruction}` line in:\n{stderr}"
    );
    found[0]
        .strip_prefix(&format!("[{language}] "))
        .unwrap()
        .to_string()
}

/// Whether `language`'s progress lines (`[language] ...`, padded to the longest name) hold one
/// that starts with `text`.
fn logged(stderr: &str, language: &str, text: &str) -> bool {
    stderr.lines().any(|l| {
        l.strip_prefix('[')
            .and_then(|l| l.strip_prefix(language))
            .map(|l| l.trim_start_matches(' '))
            .and_then(|l| l.strip_prefix("] "))
            .is_some_and(|l| l.starts_with(text))
    })
}

#[track_caller]
fn assert_nothing_built(run: &crate::support::Run) {
    assert!(
        !run.stderr.contains("Step ") && !run.stderr.contains("] building"),
        "nothing should have been built\n{run}"
    );
}

// -------------------------------------------------------------------------------------------------
// 1. End to end
// -------------------------------------------------------------------------------------------------

/// Dry run, real run, every image in the registry at the digest the manifest names, the manifest
/// valid and content-named, and an image pulled back by digest running its baked bash krob
/// against a fake Elasticsearch and a fake monitor.
#[test]
fn end_to_end_publishes_every_language_and_an_image_pulled_by_digest_runs_its_krob() {
    require_services();
    let p = Pipeline::oci();
    let commit = p.head();
    // A CI checkout's remote may carry a token: the source label must not.
    let token = "ghs_E2eT0kenN0tReal";
    p.repo.git(&[
        "remote",
        "add",
        "origin",
        &format!("https://x-access-token:{token}@github.example/acme/krobs.git"),
    ]);
    p.add_secret("a token in the git remote", token);

    // The dry run looks the tags up with the credentials at hand: all missing, all to build.
    let dry = p.krobs(&["--dry-run", "--json"]).success();
    let plan = dry.json();
    assert_eq!(plan["dry_run"], true, "{dry}");
    assert_eq!(names(&plan), LANGUAGES, "{dry}");
    for l in entries(&plan) {
        assert_eq!(l["registry"], "missing", "{l}\n{dry}");
        assert_eq!(l["action"], "build", "{l}\n{dry}");
        assert_eq!(l["status"], "planned", "{l}\n{dry}");
    }
    let preview: Value = serde_json::from_slice(
        &std::fs::read(p.repo.path("out/krobs-manifest.preview.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(preview["preview"], true);
    assert!(
        !p.manifest_path().exists(),
        "a dry run never writes the release record"
    );
    let looked_up = p.registry_requests();
    for lang in LANGUAGES {
        let tag = string(language(&plan, lang), "tag");
        assert!(
            looked_up.contains(&("HEAD".into(), format!("/v2/krobs/{lang}/manifests/{tag}"))),
            "the dry run did not look `{lang}` up: {looked_up:?}"
        );
    }
    assert_eq!(p.manifest_puts(), 0, "a dry run pushes nothing");

    // The real run.
    let run = p.krobs(&["--json"]).success();
    let report = run.json();
    assert_eq!(report["dry_run"], false, "{run}");
    let manifest = p.manifest();
    assert_eq!(manifest["preview"], false);
    assert_eq!(manifest["commit"], commit.as_str());
    assert_eq!(names(&manifest), LANGUAGES);
    for lang in LANGUAGES {
        let m = language(&manifest, lang);
        let r = language(&report, lang);
        let digest = string(m, "digest");
        let tag = string(r, "tag");
        // How the run went is the report's; the manifest holds only the release.
        assert_eq!(m.get("status"), None, "{m}");
        assert_eq!(r["status"], "built", "{r}");
        assert_eq!(
            r["digest"],
            digest.as_str(),
            "the report and the manifest disagree"
        );
        assert_eq!(m["input_digest"], r["input_digest"]);
        assert_eq!(
            m["image"],
            format!("{}/krobs/{lang}@{digest}", p.host()),
            "{m}"
        );
        // The manifest names the tags of the content; the report adds this commit's tag.
        assert_eq!(m["tags"], json!([tag, "latest"]), "{m}");
        assert_eq!(r["tags"], json!([tag, "latest", git_tag(&commit)]), "{r}");
        // Every tag is in the registry at that digest.
        for t in r["tags"].as_array().unwrap() {
            let t = t.as_str().unwrap();
            assert_eq!(
                p.skopeo_digest(&format!("krobs/{lang}:{t}")),
                digest,
                "`krobs/{lang}:{t}` in the registry is not the manifest's image"
            );
        }
    }
    for s in manifest["scripts"].as_array().unwrap() {
        let lang = string(s, "language");
        assert_eq!(s["image"], language(&manifest, &lang)["image"], "{s}");
    }

    // Valid against the published schema; content-named copy beside it, byte for byte.
    p.check_manifest_schema();
    let hex = sha256sum(&p.manifest_path());
    assert_eq!(
        report["manifest"]["sha256"],
        format!("sha256:{hex}"),
        "{run}"
    );
    let copy = format!("{hex}.json");
    assert_eq!(
        std::fs::read(p.repo.path(&format!("out/{copy}"))).expect("the content-named copy"),
        p.manifest_bytes()
    );
    assert_eq!(
        p.out_files(),
        [
            copy,
            "krobs-manifest.json".to_string(),
            "krobs-manifest.preview.json".to_string()
        ],
        "out/ holds the manifest, its content-named copy and the dry run's preview only (no temporary files)"
    );

    // Pull the bash image back from the registry by digest: nothing local is left to use.
    let bash = language(&manifest, "bash");
    let image = string(bash, "image");
    p.forget_local_images("bash");
    assert!(
        !p.docker_run(&["image", "inspect", &image]).status.success(),
        "{image} is still local"
    );
    let (user, password) = p.creds();
    let login = p.docker.login(&p.registry.addr(), user, password);
    p.record_output("docker login", &login);
    assert!(login.status.success(), "docker login failed");
    p.docker_ok(&["pull", &image]);
    let digest = string(bash, "digest");
    assert!(
        p.registry_requests()
            .contains(&("GET".into(), format!("/v2/krobs/bash/manifests/{digest}"))),
        "the pull did not fetch the manifest by digest from the registry"
    );

    // Its labels are content only: the input digests and the scripts, no commit, no source.
    let labels = p.docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &image,
    ]);
    let labels: Value = serde_json::from_slice(&labels.stdout).unwrap();
    assert_eq!(
        labels.get("org.opencontainers.image.revision"),
        None,
        "{labels}"
    );
    assert_eq!(
        labels.get("org.opencontainers.image.source"),
        None,
        "{labels}"
    );
    assert!(
        string(&labels, "dev.krobs.runtime-digest").starts_with("sha256:"),
        "{labels}"
    );
    assert!(
        string(&labels, "dev.krobs.scripts-layer").starts_with("sha256:"),
        "{labels}"
    );
    assert_eq!(
        labels["dev.krobs.input-digest"], bash["input_digest"],
        "{labels}"
    );
    assert_eq!(
        labels["org.opencontainers.image.title"], "krobs-bash",
        "{labels}"
    );
    assert_eq!(
        labels["dev.krobs.scripts"], "bash/clear_read_only_blocks,bash/retry_failed_allocations",
        "{labels}"
    );

    // Run a baked krob the way the manifest says, against fakes of Elasticsearch and the monitor.
    let es = HttpServer::start(
        &[],
        Arc::new(|req: Request| {
            if req.method == "GET" && req.path == "/_cat/shards" {
                Reply::text(
                    200,
                    "logs-2026.11 0 p UNASSIGNED ALLOCATION_FAILED\n\
                     logs-2026.11 0 r STARTED\n\
                     logs-2026.11 1 p STARTED\n",
                )
            } else {
                Reply::text(404, "{\"error\":\"not faked\"}")
            }
        }),
    );
    let monitor = HttpServer::start(&[], Arc::new(|_| Reply::text(200, "{}")));
    let script = manifest["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "bash/retry_failed_allocations")
        .expect("the bash krob in the manifest");
    let command: Vec<String> = script["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let es_env = format!("ELASTICSEARCH_URL={}", es.url());
    let monitor_env = format!("KROBS_MONITOR_URL={}/events", monitor.url());
    let mut args = vec![
        "run",
        "--rm",
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "-e",
        es_env.as_str(),
        "-e",
        monitor_env.as_str(),
        "-e",
        "DRY_RUN=1",
        &image,
    ];
    args.extend(command.iter().map(String::as_str));
    let krob = p.docker_run(&args);
    let krob_text = format!(
        "docker {}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&krob.stdout),
        String::from_utf8_lossy(&krob.stderr)
    );
    assert_eq!(krob.status.code(), Some(0), "the krob failed:\n{krob_text}");

    let es_requests: Vec<(String, String)> = es
        .requests()
        .into_iter()
        .map(|r| (r.method.clone(), r.target()))
        .collect();
    assert_eq!(
        es_requests,
        [(
            "GET".to_string(),
            "/_cat/shards?h=index,shard,prirep,state,unassigned.reason".to_string()
        )],
        "a dry run only reads the shards\n{krob_text}"
    );
    let events: Vec<Value> = monitor
        .requests()
        .iter()
        .map(|r| {
            assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/events"));
            serde_json::from_str(&r.body)
                .unwrap_or_else(|e| panic!("a monitor event is not JSON ({e}): {}", r.body))
        })
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    // krobs-run posts `start` in the background while the command starts, so the script's own
    // `message` may arrive before it; the outcome always comes last.
    let mut before_finish = kinds[..kinds.len().saturating_sub(1)].to_vec();
    before_finish.sort_unstable();
    assert_eq!(
        (before_finish, kinds.last().copied()),
        (vec!["message", "start"], Some("finish")),
        "{events:?}\n{krob_text}"
    );
    for e in &events {
        assert_eq!(e["krob"], "bash/retry_failed_allocations", "{e}");
    }
    // by kind, not position: `start` and the `message` may come in either order (above)
    let of = |kind: &str| events.iter().find(|e| e["event"] == kind).unwrap();
    assert_eq!(of("start")["command"], json!(command[4..]), "{krob_text}");
    assert_eq!(
        of("message")["text"],
        "DRY_RUN: would retry allocation of 1 shards"
    );
    assert_eq!(
        of("message")["details"]["failed_before"],
        json!(["logs-2026.11[0]p"])
    );
    assert_eq!(events[2]["exit_code"], 0, "{krob_text}");

    p.assert_no_secrets();
}

// -------------------------------------------------------------------------------------------------
// 2. A second run
// -------------------------------------------------------------------------------------------------

/// A rerun of the same commit finds every tag in the registry: no build, no push, no new
/// manifest PUT; the report says `reused` where it said `built`, and the manifest is
/// byte-identical to the first run's, and from one no-op run to the next.
#[test]
fn a_second_run_builds_and_pushes_nothing() {
    require_services();
    let p = Pipeline::oci();
    let run = p.krobs(&["--json"]).success();
    for l in entries(&run.json()) {
        assert_eq!(l["status"], "built", "{l}\n{run}");
    }
    let first = p.manifest();
    let first_bytes = p.manifest_bytes();
    let puts = p.manifest_puts();
    let uploads = p.blob_uploads(None);
    let requests_before = p.registry_requests().len();

    let second = p.krobs(&["--json"]).success();
    let report = second.json();
    for l in entries(&report) {
        assert_eq!(l["status"], "reused", "{l}\n{second}");
        assert_eq!(l["registry"], "present", "{l}");
        assert_eq!(l["action"], "reuse", "{l}");
        let name = string(l, "name");
        assert_eq!(l["digest"], language(&first, &name)["digest"], "{l}");
    }
    assert_nothing_built(&second);
    assert_eq!(
        p.manifest_puts(),
        puts,
        "a no-op run PUT a manifest\n{second}"
    );
    assert_eq!(
        p.blob_uploads(None),
        uploads,
        "a no-op run uploaded blobs\n{second}"
    );
    let new_requests = &p.registry_requests()[requests_before..];
    assert!(
        new_requests.iter().all(|(m, _)| m == "HEAD" || m == "GET"),
        "a no-op run only reads the registry: {new_requests:?}"
    );

    // The manifest is the first one, byte for byte: built or reused is the report's.
    assert_eq!(
        p.manifest_bytes(),
        first_bytes,
        "a rerun of the same commit wrote another manifest\n{second}"
    );
    assert_eq!(
        report["manifest"]["sha256"],
        run.json()["manifest"]["sha256"]
    );

    // Deterministic: another no-op run, with `--since` this time, writes the same bytes.
    let third = p.krobs(&["--json", "--since", "HEAD"]).success();
    for l in entries(&third.json()) {
        assert_eq!(l["changed_files"], json!([]), "{l}\n{third}");
    }
    assert_eq!(
        p.manifest_bytes(),
        first_bytes,
        "same inputs, different manifest bytes\n{third}"
    );

    // Every language says how long it took, in the JSON report, the text report and the
    // plain progress lines, and the text report ends with the run's total and its phases.
    for l in entries(&report) {
        assert!(l["duration_ms"].is_u64(), "{l}");
    }
    let text = p.krobs(&["--progress", "plain"]).success();
    let secs = r"(\d+\.\d|\d+m\d\d)s";
    for l in entries(&report) {
        let name = string(l, "name");
        let line = regex::Regex::new(&format!(r"(?m)^{name}  reused in {secs}$")).unwrap();
        assert!(line.is_match(&text.stdout), "{name}\n{text}");
        let plain = format!(
            r"(?m)^\[{name} *\] reused sha256:[0-9a-f]{{64}} \(already in the registry\) in {secs}$"
        );
        assert!(
            regex::Regex::new(&plain).unwrap().is_match(&text.stderr),
            "{name}\n{text}"
        );
    }
    let total = format!(r"\ntook {secs}: plan {secs}, images {secs}, manifest {secs}\n$");
    assert!(
        regex::Regex::new(&total).unwrap().is_match(&text.stdout),
        "{text}"
    );

    p.assert_no_secrets();
}

// -------------------------------------------------------------------------------------------------
// 3. A one-script change
// -------------------------------------------------------------------------------------------------

/// Changing one python script makes a new python image only, without a build (a new scripts
/// layer on the same runtime: two blobs, the layer and the config); the manifest changes in
/// python's entry, python's scripts and the commit, nowhere else.
#[test]
fn changing_one_script_rebuilds_only_its_language_and_the_manifest_changes_only_there() {
    require_services();
    let p = Pipeline::oci();
    let before = p.head();
    p.krobs(&[]).success();
    // A no-op run with `--since`: the manifest does not depend on it.
    let noop = p.krobs(&["--json", "--since", "HEAD"]).success();
    for l in entries(&noop.json()) {
        assert_eq!(l["status"], "reused", "{l}\n{noop}");
    }
    let old = p.manifest();
    let uploads: Vec<usize> = LANGUAGES.iter().map(|l| p.blob_uploads(Some(l))).collect();

    let script = "languages/python/scripts/expunge_deletes.py";
    let mut text = std::fs::read_to_string(p.repo.path(script)).unwrap();
    text.push_str("# Tuned after the November incident.\n");
    p.repo.write(script, text);
    let after = p.commit("expunge_deletes: a comment");

    // The plan says what the run will do: python needs its scripts layer only.
    let dry = p.krobs(&["--dry-run", "--since", &before]).success();
    for expected in [
        "languages, ".to_string(),
        " (the registry read, nothing written; Docker and AWS not touched)\n".to_string(),
        format!(
            "changes since `{before}` (merge base {}): 1 file\n",
            &before[..12]
        ),
        "\npython  scripts layer only, runtime present (no build)\n".to_string(),
        "\nbash  reuse\n".to_string(),
    ] {
        assert!(dry.stdout.contains(&expected), "{expected:?}\n{dry}");
    }
    let dry = p.krobs(&["--dry-run", "--json"]).success();
    assert_eq!(
        language(&dry.json(), "python")["action"],
        "append-scripts",
        "{dry}"
    );
    p.check_report_schema(&dry);

    let run = p.krobs(&["--json", "--since", &before]).success();
    let report = run.json();
    for l in entries(&report) {
        let expected = if l["name"] == "python" {
            "built"
        } else {
            "reused"
        };
        assert_eq!(l["status"], expected, "{l}\n{run}");
    }
    for lang in LANGUAGES {
        assert!(
            !logged(&run.stderr, lang, "Step "),
            "`{lang}` was built\n{run}"
        );
    }
    for (lang, before) in LANGUAGES.iter().zip(uploads) {
        let now = p.blob_uploads(Some(lang));
        if *lang == "python" {
            assert_eq!(now, before + 2, "python: the layer and the config\n{run}");
        } else {
            assert_eq!(now, before, "`{lang}` was pushed again\n{run}");
        }
    }

    let new = p.manifest();
    assert_eq!(new["commit"], after.as_str());
    assert_eq!(
        language(&report, "python")["changed_files"],
        json!([script])
    );
    for lang in ["bash", "ruby", "scala"] {
        assert_eq!(
            language(&report, lang)["changed_files"],
            json!([]),
            "{lang}"
        );
        // A reused image keeps the tag of the commit that made it: no tag per commit piles up
        // on it (ECR allows 1,000 per image); this commit's release names it.
        assert_eq!(
            language(&report, lang)["tags"],
            language(&old, lang)["tags"],
            "{}",
            language(&report, lang)
        );
        assert!(
            !p.skopeo_finds(&format!("krobs/{lang}:{}", git_tag(&after))),
            "`{lang}` was tagged with the commit that did not change it"
        );
        assert_eq!(
            p.skopeo_digest(&format!("krobs/{lang}:{}", git_tag(&before))),
            string(language(&new, lang), "digest")
        );
    }
    assert_eq!(
        p.skopeo_digest(&format!("krobs/python:{}", git_tag(&after))),
        string(language(&new, "python"), "digest")
    );
    // What did change, did.
    assert_ne!(
        language(&new, "python")["digest"],
        language(&old, "python")["digest"]
    );
    assert_ne!(
        language(&new, "python")["input_digest"],
        language(&old, "python")["input_digest"]
    );
    // Nothing else changed.
    assert_eq!(
        without_language(&without_commit(&new), "python"),
        without_language(&without_commit(&old), "python"),
        "the manifest changed outside python's entry, python's scripts and the commit"
    );

    p.assert_no_secrets();
}

// -------------------------------------------------------------------------------------------------
// 4. Faults
// -------------------------------------------------------------------------------------------------

/// A RUN step that fails: exit 4, one error line naming the language and the step, the last log
/// lines after it, no manifest.
#[test]
fn a_failing_run_step_names_the_language_and_the_step_and_writes_no_manifest() {
    require_services();
    let p = Pipeline::oci();
    p.append_to_dockerfile("ruby", "RUN echo about to fail && false");
    p.commit("ruby: a failing step");

    let run = p.krobs(&["--only", "bash,ruby"]).failure(exit::DOCKER);
    let step = step_line(&run.stderr, "ruby", "RUN echo about to fail && false");
    let error = error_line(&run);
    assert!(
        error.starts_with(&format!("error: build [ruby] failed at `{step}`: ")),
        "{error}\n{run}"
    );
    assert!(error.contains("returned a non-zero code: 1"), "{error}");
    let tail = lines_after_error(&run);
    assert!(
        tail.iter().all(|l| l.starts_with("  | ")) && tail.contains(&"  | about to fail".into()),
        "the error should end with the step's last log lines: {tail:?}\n{run}"
    );
    p.assert_no_manifest(&run);
    p.assert_no_secrets();
}

/// Two languages fail: both are named in one error line that gives the first one's cause;
/// the language that succeeded is still pushed (a rerun reuses it), and no manifest is written.
#[test]
fn several_failing_languages_are_all_named() {
    require_services();
    let p = Pipeline::oci();
    p.append_to_dockerfile("ruby", "RUN echo ruby fails && false");
    p.append_to_dockerfile("python", "RUN echo python fails && false");
    p.commit("two failing steps");

    let run = p
        .krobs(&["--only", "bash,python,ruby"])
        .failure(exit::DOCKER);
    let error = error_line(&run);
    assert!(
        error.starts_with(
            "error: 2 of 3 languages failed (`python`, `ruby`); first: build [python] failed at `"
        ),
        "{error}\n{run}"
    );
    for lang in ["python", "ruby"] {
        let pad = " ".repeat(6 - lang.len());
        let line = run
            .stderr
            .lines()
            .find(|l| l.starts_with(&format!("[{lang}{pad}] failed after ")));
        assert!(
            line.is_some_and(|l| l.contains(&format!("s: build [{lang}] failed at `"))),
            "the progress names `{lang}`'s failure and how long it took\n{run}"
        );
    }
    p.assert_no_manifest(&run);
    let bash = p
        .krobs(&["--json", "--dry-run", "--only", "bash"])
        .success();
    assert_eq!(
        language(&bash.json(), "bash")["registry"],
        "present",
        "{bash}"
    );
    p.assert_no_secrets();
}

/// On a terminal the progress is a live display (one line per language, redrawn), and the
/// run ends with each language's outcome and the report.
#[test]
fn on_a_terminal_progress_is_live_and_ends_with_each_outcome() {
    require_services();
    let p = Pipeline::oci();
    let run = p.krobs_on_terminal(&["--only", "bash,python"]).success();
    // indicatif redraws in place: cursor movement and line clearing.
    assert!(run.stdout.contains("\u{1b}["), "no live display\n{run}");
    for lang in ["bash", "python"] {
        assert!(
            run.stdout.contains(&format!("{lang} "))
                && run.stdout.contains("built and pushed sha256:"),
            "`{lang}` has no outcome line\n{run}"
        );
    }
    assert!(run.stdout.contains("krobs-build at "), "no report\n{run}");
    // No colour or style codes (SGR: ESC [ digits/semicolons m) anywhere, so NO_COLOR holds.
    let sgr = run.stdout.split("\u{1b}[").skip(1).any(|rest| {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ';'));
        end.is_some_and(|i| rest[i..].starts_with('m'))
    });
    assert!(!sgr, "colour in the output\n{run}");
    p.assert_no_secrets();
}

/// The registry stops while a slow language is building: exit 5 naming the registry, no
/// manifest. After a restart (same storage) the rerun succeeds and reuses what the failed run
/// had already pushed.
#[test]
fn the_registry_stopped_mid_run_fails_without_a_manifest_and_the_rerun_reuses_what_was_pushed() {
    require_services();
    let mut p = Pipeline::oci();
    // One build at a time: bash is built and pushed, then python builds slowly.
    p.edit_config(|t| t.replace("concurrency = 2", "concurrency = 1"));
    // The nonce keeps the step out of the build cache of an earlier run of this test.
    let slow = format!("RUN echo slow step {} && sleep 5", nonce());
    p.append_to_dockerfile("python", &slow);
    p.commit("python: a slow step");

    let mut bg = p.spawn(&["--only", "bash,python"]);
    bg.wait_for(
        "bash pushed and python's slow step started",
        Duration::from_secs(120),
        |stderr| {
            logged(stderr, "bash", "built and pushed")
                && stderr
                    .lines()
                    .any(|l| l.starts_with("[python] Step ") && l.ends_with(&slow))
        },
    );
    assert!(
        !logged(&bg.stderr(), "python", "pushing"),
        "python reached its push before the registry was stopped:\n{}",
        bg.stderr()
    );
    p.registry.stop();
    let run = p.wait(bg);
    assert_eq!(
        run.code,
        Some(exit::REGISTRY.into()),
        "expected the registry's exit code\n{run}"
    );
    let error = error_line(&run);
    assert!(
        error.contains("[python]") && error.contains(&p.registry.addr()),
        "the error should name the language and the registry: {error}\n{run}"
    );
    p.assert_no_manifest(&run);

    p.registry.restart();
    let rerun = p.krobs(&["--json", "--only", "bash,python"]).success();
    let report = rerun.json();
    assert_eq!(language(&report, "bash")["status"], "reused", "{rerun}");
    assert_eq!(language(&report, "python")["status"], "built", "{rerun}");
    let manifest = p.manifest_of(&rerun);
    for lang in ["bash", "python"] {
        let m = language(&manifest, lang);
        let tag = string(language(&report, lang), "tag");
        assert_eq!(
            p.skopeo_digest(&format!("krobs/{lang}:{tag}")),
            string(m, "digest")
        );
    }
    // The rerun after the failure wrote the manifest any later run of the commit writes.
    let again = p.krobs(&["--json", "--only", "bash,python"]).success();
    assert_eq!(
        again.json()["manifest"]["sha256"],
        report["manifest"]["sha256"],
        "{again}"
    );
    p.assert_no_secrets();
}

/// Wrong credentials: exit 5 before anything is built, naming the registry and the user; the
/// password (right or wrong) appears nowhere. A dry run says the state is unknown, and why.
#[test]
fn wrong_credentials_stop_the_run_before_any_build() {
    require_services();
    let p = Pipeline::oci();
    let wrong = "wr0ng~pa?ss>word";
    p.add_secret("the wrong password", wrong);
    let env = [("KROBS_REGISTRY_PASSWORD", wrong)];

    let run = p.krobs_with(&[], &env).failure(exit::REGISTRY);
    let error = error_line(&run);
    assert!(
        error.contains(&format!("registry `{}`", p.host())) && error.contains(&format!("`{USER}`")),
        "the error should name the registry and the user: {error}\n{run}"
    );
    assert_nothing_built(&run);
    assert_eq!(run.stdout, "", "{run}");
    p.assert_no_manifest(&run);
    assert_eq!(p.blob_uploads(None), 0);

    // With `--json`, the failure is one JSON object on stdout too, in the report's schema.
    let json = p.krobs_with(&["--json"], &env).failure(exit::REGISTRY);
    let message = error_line(&json);
    assert_eq!(
        json.json(),
        json!({
            "format": "krobs-report/v1",
            "error": { "exit_code": exit::REGISTRY, "message": message.trim_start_matches("error: ") },
        }),
        "{json}"
    );
    p.check_report_schema(&json);

    let dry = p.krobs_with(&["--dry-run", "--json"], &env).success();
    for l in entries(&dry.json()) {
        assert_eq!(l["registry"], "unknown", "{l}\n{dry}");
        let note = string(l, "registry_note");
        assert!(note.contains(&p.host()) && note.contains(USER), "{note}");
        // An OCI registry: nothing about AWS.
        assert!(note.ends_with("check the user name and password"), "{note}");
    }
    // `--strict`: a dry run that cannot read the registry fails.
    let strict = p
        .krobs_with(&["--dry-run", "--strict"], &env)
        .failure(exit::REGISTRY);
    let line = error_line(&strict);
    assert!(
        line.starts_with(&format!(
            "error: `--strict` dry run: the registry `{}` could not be read for [bash]: ",
            p.host()
        )),
        "{strict}"
    );
    p.assert_no_secrets();
}

/// The Docker Engine out of reach: exit 4 with the address and what to do; nothing pushed, no
/// manifest. Docker is only needed when something must be built: the lookups come first.
#[test]
fn an_unreachable_docker_engine_is_a_docker_error() {
    require_services();
    let p = Pipeline::oci();
    let socket = format!("unix:///tmp/krobs-no-such-docker-{}.sock", nonce());
    let run = p
        .krobs_with(&[], &[("DOCKER_HOST", &socket)])
        .failure(exit::DOCKER);
    // Every language needs its runtime built, so every language says it.
    assert_eq!(
        error_line(&run),
        format!(
            "error: 4 of 4 languages failed (`bash`, `python`, `ruby`, `scala`); first: cannot reach the Docker Engine ({socket}): Socket not found: {}; start it or set `DOCKER_HOST`",
            socket.trim_start_matches("unix://")
        ),
        "{run}"
    );
    assert_nothing_built(&run);
    p.assert_no_manifest(&run);
    assert_eq!(p.blob_uploads(None), 0);
    p.assert_no_secrets();
}

/// A `DOCKER_HOST` without a scheme, or with `ssh://`, says what to set instead.
#[test]
fn a_docker_host_krobs_cannot_use_says_what_to_set() {
    require_services();
    let p = Pipeline::oci();
    let run = p
        .krobs_with(&[], &[("DOCKER_HOST", "localhost:2375")])
        .failure(exit::DOCKER);
    assert_eq!(
        error_line(&run),
        "error: 4 of 4 languages failed (`bash`, `python`, `ruby`, `scala`); first: `DOCKER_HOST=localhost:2375` has no scheme; set `DOCKER_HOST=tcp://localhost:2375` (with `DOCKER_TLS_VERIFY=1` for a TLS port)",
        "{run}"
    );
    let run = p
        .krobs_with(&[], &[("DOCKER_HOST", "ssh://builder@build-host")])
        .failure(exit::DOCKER);
    assert!(
        error_line(&run).contains("first: `DOCKER_HOST=ssh://builder@build-host` is not supported: Krobs does not tunnel the Engine's API through ssh; forward its socket"),
        "{run}"
    );
    assert_nothing_built(&run);
    p.assert_no_manifest(&run);
    p.assert_no_secrets();
}

/// A base image the Engine cannot pull (here: no such image, no internet) names the image the
/// language resolved and the `build_args` key that sets it, after the Engine's own words.
#[test]
fn a_base_image_that_cannot_be_pulled_names_the_image_and_the_key() {
    require_services();
    let p = Pipeline::oci();
    let missing = format!("krobs-test/no-such-base-{}:1", nonce());
    p.edit_config(|text| on_base(&without_base(text, "bash"), "bash", &missing));
    let run = p.krobs(&["--only", "bash"]).failure(exit::DOCKER);
    let line = error_line(&run);
    assert!(
        line.starts_with("error: build [bash] failed at `Step 2/"),
        "{run}"
    );
    assert!(line.contains(" : FROM ${BASE_IMAGE}`: "), "{run}");
    assert!(
        line.ends_with(&format!("; the base image `{missing}` cannot be pulled: load it into the Docker Engine, or set `[languages.bash] build_args = {{ BASE_IMAGE = \"<image>\" }}` in krobs.toml to one it has or can pull; last lines:")),
        "{run}"
    );
    assert_eq!(p.blob_uploads(None), 0, "{run}");
    p.assert_no_manifest(&run);
    p.assert_no_secrets();
}

/// `text` with the `BASE_IMAGE` of `language`'s own section taken out.
fn without_base(text: &str, language: &str) -> String {
    let section = format!("[languages.{language}]\n");
    let start = text.find(&section).expect("the language's section") + section.len();
    let end = text[start..]
        .find('\n')
        .map_or(text.len(), |i| start + i + 1);
    assert!(
        text[start..end].starts_with("build_args = { BASE_IMAGE"),
        "{text}"
    );
    format!("{}{}", &text[..start], &text[end..])
}

/// ECR, a repository missing and `create_repositories = false`: exit 6 naming the repository
/// and the setting; nothing built, nothing created.
#[test]
fn ecr_repository_missing_with_creation_off_is_an_aws_error() {
    require_services();
    let p = Pipeline::ecr(false);
    let run = p.krobs(&[]).failure(exit::AWS);
    let error = error_line(&run);
    assert!(
        error.contains("ECR repository `krobs/bash`")
            && error.contains(ECR_ACCOUNT)
            && error.contains("`registry.create_repositories = true`"),
        "{error}\n{run}"
    );
    assert_nothing_built(&run);
    p.assert_no_manifest(&run);
    assert_eq!(
        p.ecr_repositories(),
        Vec::<Value>::new(),
        "nothing is created"
    );
    let asked: Vec<_> = p
        .registry_requests()
        .into_iter()
        .filter(|(_, path)| path.starts_with("/v2/krobs/"))
        .collect();
    assert!(
        asked.is_empty(),
        "no repository should even be asked: {asked:?}"
    );
    p.assert_no_secrets();
}

/// ECR with creation on: the repositories are created with immutable tags and scan on push,
/// `latest` is skipped (and said so); a rerun against the same moto succeeds, and an immutable
/// tag that already names other content is left where it is.
#[test]
fn ecr_repositories_are_created_immutable_and_reruns_succeed_without_moving_tags() {
    require_services();
    let p = Pipeline::ecr(true);
    let commit = p.head();
    let only = ["--json", "--only", "bash,python"];

    let first = p.krobs(&only).success();
    for lang in ["bash", "python"] {
        assert!(
            first.stderr.contains(&format!(
                "created ECR repository `krobs/{lang}` (immutable tags, scan on push)"
            )),
            "{first}"
        );
        assert!(
            logged(
                &first.stderr,
                lang,
                &format!("`krobs/{lang}` has immutable tags: `latest` is not moved")
            ),
            "{first}"
        );
    }
    let mut repos = p.ecr_repositories();
    repos.sort_by_key(|r| r["repositoryName"].as_str().unwrap().to_string());
    let repo_names: Vec<&str> = repos
        .iter()
        .map(|r| r["repositoryName"].as_str().unwrap())
        .collect();
    // The manifest's repository too, with mutable tags (tests/it/publish_manifest.rs).
    assert_eq!(
        repo_names,
        ["krobs/bash", "krobs/manifest", "krobs/python"],
        "{repos:?}"
    );
    repos.retain(|r| r["repositoryName"] != "krobs/manifest");
    for r in &repos {
        assert_eq!(r["imageTagMutability"], "IMMUTABLE", "{r}");
        assert_eq!(r["imageScanningConfiguration"]["scanOnPush"], true, "{r}");
        assert_eq!(r["registryId"], ECR_ACCOUNT, "{r}");
    }
    let manifest = p.manifest_of(&first);
    for lang in ["bash", "python"] {
        let m = language(&manifest, lang);
        let tag = string(language(&first.json(), lang), "tag");
        assert_eq!(m["tags"], json!([tag]), "no `latest`: {m}");
        assert_eq!(
            language(&first.json(), lang)["tags"],
            json!([tag, git_tag(&commit)]),
            "no `latest`"
        );
        assert_eq!(
            p.skopeo_digest(&format!("krobs/{lang}:{tag}")),
            string(m, "digest")
        );
        assert!(
            !p.skopeo_finds(&format!("krobs/{lang}:latest")),
            "`latest` was pushed"
        );
    }

    // Rerun against the same moto: nothing to create, nothing to build, nothing to push.
    let puts = p.manifest_puts();
    let second = p.krobs(&only).success();
    for l in entries(&second.json()) {
        assert_eq!(l["status"], "reused", "{l}\n{second}");
    }
    assert!(
        !second.stderr.contains("created ECR repository"),
        "{second}"
    );
    assert!(
        second.stderr.contains("`latest` is not moved"),
        "the rerun should still say why `latest` is skipped\n{second}"
    );
    assert_nothing_built(&second);
    assert_eq!(p.manifest_puts(), puts, "{second}");

    // bash changes without a new commit: that tree is not the commit, so a real run refuses,
    // and `--allow-dirty` publishes it by digest only: the commit's tag stays where it is.
    let old_bash = string(language(&manifest, "bash"), "digest");
    let script = "languages/bash/scripts/retry_failed_allocations.sh";
    let mut text = std::fs::read_to_string(p.repo.path(script)).unwrap();
    text.push_str("# uncommitted change\n");
    p.repo.write(script, text);
    let refused = p.krobs(&only).failure(exit::INPUT);
    assert_eq!(
        refused.stderr,
        format!("error: `{script}` differs from commit {}: a release named by a commit must be that commit; commit the change, or pass `--allow-dirty` to publish by digest only, moving no `git-`/`latest` tag\n", &commit[..12]),
        "{refused}"
    );
    assert_eq!(p.manifest_puts(), puts, "{refused}");
    let third = p
        .krobs(&["--json", "--only", "bash,python", "--allow-dirty"])
        .success();
    let report = third.json();
    let bash = language(&report, "bash");
    assert_eq!(bash["status"], "built", "{third}");
    let new_tag = string(bash, "tag");
    assert_eq!(bash["tags"], json!([new_tag]), "{third}");
    assert_eq!(report["commit"], Value::Null, "{third}");
    assert_eq!(
        p.skopeo_digest(&format!("krobs/bash:{}", git_tag(&commit))),
        old_bash
    );
    assert_eq!(
        p.skopeo_digest(&format!("krobs/bash:{new_tag}")),
        string(language(&p.manifest_of(&third), "bash"), "digest")
    );
    assert_eq!(language(&report, "python")["status"], "reused", "{third}");

    p.assert_no_secrets();
}

/// A registry answering 429 (with `Retry-After`) twice and then 503 twice before relaying: the
/// run retries and succeeds, and both proxies sent their failures.
#[test]
fn a_registry_answering_429_and_503_a_few_times_is_retried() {
    require_services();
    let p = Pipeline::oci();
    let unavailable = FlakyProxy::start(&p.registry.addr(), 2, 503);
    let throttling = FlakyProxy::start(&unavailable.addr(), 2, 429);
    p.use_host(&throttling.addr());

    let run = p.krobs(&["--json", "--only", "bash"]).success();
    assert_eq!(throttling.failures_sent(), 2, "{run}");
    assert_eq!(unavailable.failures_sent(), 2, "{run}");
    let manifest = p.manifest_of(&run);
    let bash = language(&manifest, "bash");
    assert_eq!(language(&run.json(), "bash")["status"], "built", "{run}");
    assert_eq!(
        bash["image"],
        format!(
            "{}/krobs/bash@{}",
            throttling.addr(),
            string(bash, "digest")
        )
    );
    let tag = string(language(&run.json(), "bash"), "tag");
    assert_eq!(
        p.skopeo_digest(&format!("krobs/bash:{tag}")),
        string(bash, "digest")
    );
    p.assert_no_secrets();
}

/// A registry that keeps answering 503: the run gives up after the documented 6 attempts, says
/// so, and builds nothing.
#[test]
fn a_registry_that_keeps_failing_is_given_up_on_and_the_error_counts_the_attempts() {
    require_services();
    let p = Pipeline::oci();
    // The first call is the lookup of bash's content tag, which also checks the credentials.
    let plan = p
        .krobs(&["--dry-run", "--json", "--only", "bash"])
        .success();
    let tag = string(language(&plan.json(), "bash"), "tag");
    std::fs::remove_dir_all(p.repo.path("out")).unwrap(); // the dry run's preview
    let down = FlakyProxy::start(&p.registry.addr(), 1000, 503);
    p.use_host(&down.addr());

    let run = p.krobs(&["--only", "bash"]).failure(exit::REGISTRY);
    let error = error_line(&run);
    assert!(
        error.contains(&format!(
            "registry `{}` answered 503 Service Unavailable to `HEAD /v2/krobs/bash/manifests/{tag}` after 6 attempts",
            down.addr()
        )),
        "{error}\n{run}"
    );
    assert_eq!(down.failures_sent(), 6, "{run}");
    assert_nothing_built(&run);
    p.assert_no_manifest(&run);
    p.assert_no_secrets();
}

// -------------------------------------------------------------------------------------------------
// Cache
// -------------------------------------------------------------------------------------------------

/// A runner without the layers of a language (CI runners are cold) rebuilds a changed runtime
/// from the layers of its previous image in the registry (`cache_from`), instead of running
/// every step again, also when the previous commit reused that image.
#[test]
fn a_cold_runner_rebuilds_a_changed_language_with_the_layers_of_its_previous_image() {
    require_services();
    let p = Pipeline::oci();
    // Right after FROM, so that the whole build chain is this test's own and can be removed
    // without touching the build cache of the other tests.
    let probe = format!("RUN echo cache probe {}", nonce());
    let rel = "languages/bash/Dockerfile";
    let dockerfile = std::fs::read_to_string(p.repo.path(rel)).unwrap();
    assert!(dockerfile.contains("FROM ${BASE_IMAGE}\n"), "{dockerfile}");
    p.repo.write(
        rel,
        dockerfile.replace(
            "FROM ${BASE_IMAGE}\n",
            &format!("FROM ${{BASE_IMAGE}}\n{probe}\n"),
        ),
    );
    let base = p.commit("bash: a step of this test's own");
    p.krobs(&["--only", "bash"]).success();
    // A commit that leaves bash as it is: its image is reused and not tagged with that commit,
    // so the build below finds the previous image through `latest`, not `git-<parent>`.
    p.repo.write("NOTES.md", "Nothing a build reads.\n");
    let unchanged = p.commit("notes");
    p.krobs(&["--only", "bash"]).success();
    assert!(p.skopeo_finds(&format!("krobs/bash:{}", git_tag(&base))));
    assert!(!p.skopeo_finds(&format!("krobs/bash:{}", git_tag(&unchanged))));

    // A cold runner: nothing local knows the probe step any more.
    p.make_cold("bash");
    let left = p.local_images_mentioning(&probe);
    assert!(
        left.is_empty(),
        "images still hold the probe step: {left:?}"
    );

    // A change to the runtime (a script change would need no build at all).
    let lib = "languages/bash/lib/krobs_es.sh";
    let mut text = std::fs::read_to_string(p.repo.path(lib)).unwrap();
    text.push_str("# a comment\n");
    p.repo.write(lib, text);
    p.commit("bash: a comment in lib");
    let run = p.krobs(&["--only", "bash", "--since", &base]).success();
    let step = step_line(&run.stderr, "bash", &probe);
    let bash_lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("[bash] "))
        .collect();
    let at = bash_lines.iter().position(|l| l.ends_with(&step)).unwrap();
    assert_eq!(
        bash_lines.get(at + 1).copied(),
        Some("[bash]  ---> Using cache"),
        "the step before the changed files should come from the previous image in the registry \
         (`cache_from`), not run again\n{run}"
    );
    p.assert_no_secrets();
}

// -------------------------------------------------------------------------------------------------
// 5. The secret scan
// -------------------------------------------------------------------------------------------------

/// The ECR flow, with internal logs on (`KROBS_LOG=debug`): dry run, a run that creates the
/// repository, builds and pushes, a rerun; the token moto hands out (and the password in it)
/// appears in none of the output, the manifest, or the images.
#[test]
fn secret_scan_over_the_ecr_flow_finds_neither_the_token_nor_the_password() {
    require_services();
    let p = Pipeline::ecr(true);
    let debug = [("KROBS_LOG", "debug")];
    let dry = p
        .krobs_with(&["--dry-run", "--json", "--only", "bash"], &debug)
        .success();
    assert_eq!(
        language(&dry.json(), "bash")["registry"],
        "unknown",
        "{dry}"
    );
    let run = p.krobs_with(&["--only", "bash"], &debug).success();
    assert!(
        run.stderr.contains("DEBUG"),
        "internal logs were not on\n{run}"
    );
    assert!(logged(&run.stderr, "bash", "built and pushed"), "{run}");
    p.krobs_with(&["--json", "--only", "bash"], &debug)
        .success();
    let inspect = p.docker_ok(&["image", "inspect", &p.local_images()[0]]);
    assert!(!inspect.stdout.is_empty());
    p.assert_no_secrets();
}

/// The same with every log on (`KROBS_LOG=trace`, what one sets to debug a CI run): the token
/// must not reach the CI log through a dependency's trace of the `GetAuthorizationToken` answer.
#[test]
fn secret_scan_over_the_ecr_flow_with_trace_logs_finds_neither_the_token_nor_the_password() {
    require_services();
    let p = Pipeline::ecr(true);
    let run = p
        .krobs_with(&["--only", "bash"], &[("KROBS_LOG", "trace")])
        .success();
    assert!(run.stderr.contains("TRACE"), "trace logs were not on");
    p.assert_no_secrets();
}
