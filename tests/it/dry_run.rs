//! `krobs-build --dry-run`: the plan, the JSON report, the manifest preview, and what git says
//! changed across squash merges, merge commits, reverts, shallow clones and first commits.

use crate::support::{bash_script, copy_project_into, Repo};
use krobs::exit;
use serde_json::Value;

fn languages(v: &Value) -> Vec<&str> {
    v["languages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect()
}

fn language<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["languages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no language {name} in {v}"))
}

fn changed(v: &Value, name: &str) -> Vec<String> {
    language(v, name)["changed_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn dry_run_on_this_repository() {
    let repo = Repo::new();
    copy_project_into(&repo);
    repo.commit_all("the project");
    let run = repo.krobs(&["--dry-run"]).success();
    for lang in ["bash", "python", "ruby", "scala"] {
        assert!(
            run.stdout
                .contains(&format!("\n{lang}  build-if-missing\n")),
            "{run}"
        );
    }

    let v = repo.krobs(&["--dry-run", "--json"]).success().json();
    assert_eq!(languages(&v), ["bash", "python", "ruby", "scala"]);
    let scripts = v["scripts"].as_array().unwrap();
    for lang in ["bash", "python", "ruby", "scala"] {
        let n = scripts.iter().filter(|s| s["language"] == lang).count();
        assert!(n >= 2, "{lang} has {n} scripts, expected at least two");
    }
    for s in scripts {
        assert!(!s["owner"].as_str().unwrap().is_empty(), "{s}");
        assert!(!s["description"].as_str().unwrap().is_empty(), "{s}");
        // Every script is listed by id with its owner in the human report too.
        let line = format!(
            "  script   {}  owner {}",
            s["id"].as_str().unwrap(),
            s["owner"].as_str().unwrap()
        );
        assert!(run.stdout.contains(&line), "missing `{line}`\n{run}");
        assert_eq!(s["sha256"].as_str().unwrap().len(), 64);
    }
    for l in v["languages"].as_array().unwrap() {
        let digest = l["input_digest"].as_str().unwrap();
        assert!(digest.starts_with("sha256:") && digest.len() == 71, "{l}");
        assert_eq!(
            l["tag"].as_str().unwrap(),
            format!("input-{}", &digest[7..39])
        );
        assert_eq!(
            l["image"].as_str().unwrap(),
            format!(
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/krobs/{}:{}",
                l["name"].as_str().unwrap(),
                l["tag"].as_str().unwrap()
            )
        );
        assert_eq!(l["action"], "build-if-missing");
        assert_eq!(l["status"], "planned");
        // Without `--since` nothing was asked of git.
        assert_eq!(l["changed_files"], Value::Null);
    }

    // The preview has the manifest's shape, with no image digests.
    let preview: Value = serde_json::from_slice(
        &std::fs::read(repo.path("out/krobs-manifest.preview.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(preview["format"], "krobs-manifest/v1");
    assert_eq!(preview["preview"], true);
    assert_eq!(
        preview["commit"].as_str().unwrap(),
        repo.git(&["rev-parse", "HEAD"])
    );
    assert_eq!(preview["scripts"].as_array().unwrap().len(), scripts.len());
    for l in preview["languages"].as_array().unwrap() {
        assert_eq!(l["image"], Value::Null);
        assert_eq!(l["digest"], Value::Null);
        assert_eq!(l.get("status"), None, "run facts are the report's: {l}");
    }
    for s in preview["scripts"].as_array().unwrap() {
        let job = &s["job"];
        assert!(job["active_deadline_seconds"].as_u64().unwrap() > 0, "{s}");
        if s["header"]["schedule"].is_string() {
            assert_eq!(job["kind"], "CronJob");
            assert_eq!(job["concurrency_policy"], "Forbid");
        } else {
            assert_eq!(job["kind"], "Job");
        }
    }
}

#[test]
fn same_inputs_same_digests_and_byte_identical_preview_from_any_path() {
    let a = Repo::fixture();
    a.commit_all("one");
    let b = Repo::fixture();
    b.commit_all("one");
    let va = a.krobs(&["--dry-run", "--json"]).success().json();
    let first = std::fs::read(a.path("out/manifest.preview.json")).unwrap();
    let vb = b.krobs(&["--dry-run", "--json"]).success().json();
    for lang in ["bash", "python"] {
        assert_eq!(
            language(&va, lang)["input_digest"],
            language(&vb, lang)["input_digest"]
        );
    }
    a.krobs(&["--dry-run"]).success();
    assert_eq!(
        first,
        std::fs::read(a.path("out/manifest.preview.json")).unwrap(),
        "the preview is deterministic"
    );
}

#[test]
fn only_restricts_and_every_flag_reads_its_environment_variable() {
    let repo = Repo::fixture();
    repo.commit_all("one");
    let v = repo
        .krobs(&["--dry-run", "--json", "--only", "python"])
        .success()
        .json();
    assert_eq!(languages(&v), ["python"]);
    assert!(v["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["language"] == "python"));

    std::fs::rename(repo.path("krobs.toml"), repo.path("other.toml")).unwrap();
    let v = repo
        .krobs_env(
            &[],
            &[
                ("KROBS_DRY_RUN", "1"),
                ("KROBS_JSON", "true"),
                ("KROBS_ONLY", "bash"),
                ("KROBS_CONFIG", "other.toml"),
                ("KROBS_SINCE", "HEAD"),
                ("KROBS_ALLOW_DIRTY", "1"),
            ],
        )
        .success()
        .json();
    assert_eq!(v["dry_run"], true);
    assert_eq!(languages(&v), ["bash"]);
    assert_eq!(v["since"]["rev"], "HEAD");
    // The rename left the tree dirty (`krobs.toml` is gone from it).
    let reason = v["publication"]["tags"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("`krobs.toml` differs from commit ")
            && reason.ends_with(": `--allow-dirty` publishes the manifest by digest only"),
        "{v}"
    );
}

#[test]
fn only_languages_changed_by_the_pr_are_listed() {
    let repo = Repo::fixture();
    let base = repo.commit_all("base");
    repo.write_exec(
        "languages/bash/scripts/hello.sh",
        bash_script("team-a", "echo hello, world"),
    );
    repo.write("README.md", "docs\n");
    repo.commit_all("change bash");
    let v = repo
        .krobs(&["--dry-run", "--json", "--since", &base])
        .success()
        .json();
    assert_eq!(changed(&v, "bash"), ["languages/bash/scripts/hello.sh"]);
    assert_eq!(changed(&v, "python"), Vec::<String>::new());
    assert_eq!(v["since"]["base"], base.as_str());
    let text = repo.krobs(&["--dry-run", "--since", &base]).success();
    assert!(
        text.stdout
            .contains("  changed  languages/bash/scripts/hello.sh\n"),
        "{text}"
    );
    assert!(
        text.stdout
            .contains("  changed  nothing since the base revision\n"),
        "{text}"
    );
}

#[test]
fn squash_merge_and_force_pushed_base() {
    let repo = Repo::fixture();
    let base = repo.commit_all("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write_exec(
        "languages/bash/scripts/hello.sh",
        bash_script("team-a", "echo one"),
    );
    repo.commit_all("wip 1");
    repo.write_exec(
        "languages/bash/scripts/second.sh",
        bash_script("team-a", "echo two"),
    );
    repo.commit_all("wip 2");
    let feature_tip = repo.git(&["rev-parse", "HEAD"]);
    repo.git(&["checkout", "-q", "main"]);
    repo.git(&["merge", "-q", "--squash", "feature"]);
    repo.commit_all("squashed PR");

    let v = repo
        .krobs(&["--dry-run", "--json", "--since", &base])
        .success()
        .json();
    assert_eq!(
        changed(&v, "bash"),
        [
            "languages/bash/scripts/hello.sh",
            "languages/bash/scripts/second.sh"
        ]
    );
    assert!(changed(&v, "python").is_empty());

    // A base that is not an ancestor of HEAD (the branch was squashed or force-pushed away):
    // the merge base still tells what HEAD brings.
    let v = repo
        .krobs(&["--dry-run", "--json", "--since", &feature_tip])
        .success()
        .json();
    assert_eq!(v["since"]["base"], base.as_str());
    assert_eq!(
        changed(&v, "bash"),
        [
            "languages/bash/scripts/hello.sh",
            "languages/bash/scripts/second.sh"
        ]
    );
}

#[test]
fn merge_commit_lists_what_the_merge_brought() {
    let repo = Repo::fixture();
    repo.commit_all("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write(
        "languages/python/scripts/report.py",
        "# ---\n# owner = \"team-b\"\n# description = \"Reports v2.\"\n# ---\n",
    );
    repo.commit_all("python change");
    repo.git(&["checkout", "-q", "main"]);
    repo.write_exec(
        "languages/bash/scripts/hello.sh",
        bash_script("team-a", "echo main moved"),
    );
    let before_merge = repo.commit_all("bash change on main");
    repo.git(&["merge", "-q", "--no-ff", "-m", "merge feature", "feature"]);

    let v = repo
        .krobs(&["--dry-run", "--json", "--since", &before_merge])
        .success()
        .json();
    assert_eq!(
        changed(&v, "python"),
        ["languages/python/scripts/report.py"]
    );
    assert!(
        changed(&v, "bash").is_empty(),
        "bash changed before the merge, on main"
    );
}

#[test]
fn revert_restores_the_digest_and_git_only_explains() {
    let repo = Repo::fixture();
    let base = repo.commit_all("base");
    let v0 = repo.krobs(&["--dry-run", "--json"]).success().json();
    repo.write_exec(
        "languages/bash/scripts/hello.sh",
        bash_script("team-a", "echo broken"),
    );
    let change = repo.commit_all("change");
    let v1 = repo.krobs(&["--dry-run", "--json"]).success().json();
    repo.git(&["revert", "--no-edit", &change]);

    let since_change = repo
        .krobs(&["--dry-run", "--json", "--since", &change])
        .success()
        .json();
    assert_eq!(
        changed(&since_change, "bash"),
        ["languages/bash/scripts/hello.sh"]
    );
    let since_base = repo
        .krobs(&["--dry-run", "--json", "--since", &base])
        .success()
        .json();
    assert!(changed(&since_base, "bash").is_empty());

    let digest = |v: &Value| language(v, "bash")["input_digest"].clone();
    assert_ne!(digest(&v0), digest(&v1));
    assert_eq!(
        digest(&since_base),
        digest(&v0),
        "a revert gives back the original identity"
    );
}

#[test]
fn unknown_revision_warns_and_goes_on() {
    let repo = Repo::fixture();
    repo.commit_all("base");
    let run = repo
        .krobs(&["--dry-run", "--json", "--since", "no-such-rev"])
        .success();
    assert_eq!(
        run.stderr,
        "warning: cannot tell what changed since `no-such-rev`: `no-such-rev` is not a known revision; every language is still checked by its input digest\n"
    );
    let v = run.json();
    assert_eq!(languages(&v), ["bash", "python"]);
    assert!(v["since"]["warning"]
        .as_str()
        .unwrap()
        .contains("no-such-rev"));
    assert_eq!(language(&v, "bash")["action"], "build-if-missing");
}

#[test]
fn first_commit_and_no_commit() {
    let repo = Repo::fixture();
    repo.krobs(&["--dry-run", "--since", "HEAD~1"]).success().stderr_is(
        "warning: cannot tell what changed since `HEAD~1`: the repository has no commit yet; every language is still checked by its input digest",
    );
    repo.commit_all("first");
    repo.krobs(&["--dry-run", "--since", "HEAD~1"]).success().stderr_is(
        "warning: cannot tell what changed since `HEAD~1`: `HEAD~1` is not a known revision; every language is still checked by its input digest",
    );
}

#[test]
fn shallow_clone() {
    let origin = Repo::fixture();
    let base = origin.commit_all("base");
    origin.write_exec(
        "languages/bash/scripts/hello.sh",
        bash_script("team-a", "echo 2"),
    );
    origin.commit_all("second");
    let clone = tempfile::tempdir().unwrap();
    let url = format!("file://{}", origin.root.display());
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--depth", "1", &url])
        .arg(clone.path().join("c"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cwd = clone.path().join("c");
    let run = crate::support::Run::new(
        crate::support::krobs_command(),
        &cwd,
        &["--dry-run", "--json", "--since", &base],
        &[],
    )
    .success();
    assert_eq!(
        run.stderr,
        format!("warning: cannot tell what changed since `{base}`: `{base}` is not in this shallow clone (fetch more history, e.g. `git fetch --unshallow`); every language is still checked by its input digest\n")
    );
    assert_eq!(languages(&run.json()), ["bash", "python"]);
}

#[test]
fn schema_subcommand_prints_the_published_schema() {
    let repo = Repo::fixture();
    let run = repo.krobs(&["schema"]).success();
    let schema = run.json();
    assert_eq!(schema["properties"]["format"]["const"], "krobs-manifest/v1");
    assert_eq!(
        run.stdout,
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/manifest-v1.schema.json"
        ))
        .unwrap()
    );
}

#[test]
fn schema_report_prints_the_report_schema() {
    let repo = Repo::fixture();
    let run = repo.krobs(&["schema", "report"]).success();
    assert_eq!(
        run.json()["properties"]["format"]["const"],
        "krobs-report/v1"
    );
    assert_eq!(
        run.stdout,
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/report-v1.schema.json"
        ))
        .unwrap()
    );
    assert_eq!(
        repo.krobs(&["schema", "manifest"]).success().stdout,
        repo.krobs(&["schema"]).success().stdout
    );
}

#[test]
fn schema_monitor_prints_the_monitor_event_schema() {
    let repo = Repo::fixture();
    let run = repo.krobs(&["schema", "monitor"]).success();
    assert_eq!(
        run.stdout,
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/monitor-event-v1.schema.json"
        ))
        .unwrap()
    );
    let kinds: Vec<Value> = run.json()["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["properties"]["event"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            serde_json::json!({"const": "start"}),
            serde_json::json!({"enum": ["finish", "failure"]}),
            serde_json::json!({"const": "message"}),
            serde_json::json!({"const": "metric"})
        ]
    );
}

/// `--since` explains the run; the manifest does not depend on it.
#[test]
fn the_manifest_is_the_same_with_and_without_since() {
    let repo = Repo::fixture();
    let base = repo.commit_all("base");
    repo.write_exec(
        "languages/bash/scripts/hello.sh",
        bash_script("team-a", "echo hello again"),
    );
    repo.commit_all("bash: hello again");
    let manifest = || std::fs::read(repo.path("out/manifest.preview.json")).unwrap();
    let without = repo.krobs(&["--dry-run", "--json"]).success();
    let bytes = manifest();
    let with = repo
        .krobs(&["--dry-run", "--json", "--since", &base])
        .success();
    assert_eq!(
        changed(&with.json(), "bash"),
        ["languages/bash/scripts/hello.sh"]
    );
    assert_eq!(
        language(&without.json(), "bash")["changed_files"],
        Value::Null
    );
    assert_eq!(manifest(), bytes, "--since changed the manifest\n{with}");
    assert_eq!(
        with.json()["manifest"]["sha256"],
        without.json()["manifest"]["sha256"]
    );
}

#[test]
fn language_overrides_path_extra_inputs_comment_and_command() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        format!(
            "{}\n[languages.node]\npath = \"tools/node\"\ncommand = [\"node\", \"--unhandled-rejections=strict\", \"{{script}}\"]\nextra_inputs = [\"shared/es\"]\ncomment = \"//\"\nimage_scripts_dir = \"/srv/krobs\"\n",
            crate::support::CONFIG
        ),
    );
    repo.write("tools/node/Dockerfile", "FROM node:22-slim\nCOPY . /srv/\n");
    repo.write(
        "tools/node/scripts/ping.js",
        "// ---\n// owner = \"team-c\"\n// description = \"Pings.\"\n// ---\nconsole.log('ping')\n",
    );
    repo.write("shared/es/client.js", "module.exports = {}\n");
    let base = repo.commit_all("node");
    let v = repo.krobs(&["--dry-run", "--json"]).success().json();
    assert_eq!(languages(&v), ["bash", "node", "python"]);
    let script = v["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "node/ping")
        .unwrap()
        .clone();
    assert_eq!(script["path"], "tools/node/scripts/ping.js");
    assert_eq!(script["image_path"], "/srv/krobs/ping.js");
    assert_eq!(
        script["command"],
        serde_json::json!([
            "/opt/krobs/bin/krobs-run",
            "--id",
            "node/ping",
            "--",
            "node",
            "--unhandled-rejections=strict",
            "/srv/krobs/ping.js"
        ])
    );
    assert_eq!(
        language(&v, "node")["context_files"],
        3,
        "Dockerfile, the script and the extra input"
    );

    // The extra input is part of the identity, and of what changed.
    repo.write("shared/es/client.js", "module.exports = { v: 2 }\n");
    repo.commit_all("shared change");
    let v2 = repo
        .krobs(&["--dry-run", "--json", "--since", &base])
        .success()
        .json();
    assert_ne!(
        language(&v, "node")["input_digest"],
        language(&v2, "node")["input_digest"]
    );
    assert_eq!(
        language(&v, "bash")["input_digest"],
        language(&v2, "bash")["input_digest"]
    );
    assert_eq!(changed(&v2, "node"), ["shared/es/client.js"]);
    assert!(changed(&v2, "bash").is_empty());
}

/// A tree that is not HEAD (a changed file, staged or not, or a new file where the build reads)
/// is no commit's release: a real run refuses, naming a file and the fix, before it touches
/// Docker or a registry; a dry run says so; `--allow-dirty` publishes by digest only. Untracked
/// files the build never reads (`out/`, notes at the root) change nothing.
#[test]
fn a_tree_that_is_not_head_is_no_commits_release() {
    let repo = Repo::fixture();
    let commit = repo.commit_all("base");
    let short = &commit[..12];
    let script = "languages/bash/scripts/hello.sh";
    repo.write_exec(script, bash_script("team-a", "echo changed"));
    let refusal = format!("`{script}` differs from commit {short}: a release named by a commit must be that commit; commit the change, or pass `--allow-dirty` to publish by digest only, moving no `git-`/`latest` tag");
    repo.krobs(&[])
        .failure(exit::INPUT)
        .stderr_is(&format!("error: {refusal}"));
    repo.git(&["add", "-A"]);
    repo.krobs(&[])
        .failure(exit::INPUT)
        .stderr_is(&format!("error: {refusal}"));

    let tags = |v: &Value| -> Vec<(String, String, String)> {
        v["publication"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let s = |k: &str| t[k].as_str().unwrap().to_string();
                (s("tag"), s("action"), s("reason"))
            })
            .collect()
    };
    let both = |action: &str, reason: &str| {
        [format!("git-{short}"), "latest".to_string()]
            .map(|tag| (tag, action.to_string(), reason.to_string()))
            .to_vec()
    };
    let dry = repo
        .krobs(&["--dry-run", "--json"])
        .success()
        .stderr_is(&format!("warning: a real run refuses: {refusal}"));
    let v = dry.json();
    assert_eq!(
        tags(&v),
        both(
            "skipped",
            &format!("a real run refuses: `{script}` differs from commit {short}; commit it, or pass `--allow-dirty`")
        )
    );
    assert_eq!(v["commit"], Value::Null, "a dirty tree is no commit's: {v}");
    let allowed = format!("`{script}` differs from commit {short}: `--allow-dirty` publishes the manifest by digest only");
    let v = repo
        .krobs(&["--dry-run", "--json", "--allow-dirty"])
        .success()
        .stderr_is(&format!("warning: {allowed}"))
        .json();
    assert_eq!(tags(&v), both("skipped", &allowed));

    let commit = repo.commit_all("the change");
    let short = &commit[..12];
    repo.write_exec(
        "languages/bash/scripts/new.sh",
        bash_script("team-a", "echo new"),
    );
    repo.write_exec(
        "languages/bash/scripts/other.sh",
        bash_script("team-a", "echo other"),
    );
    repo.krobs(&[]).failure(exit::INPUT).stderr_is(&format!(
        "error: `languages/bash/scripts/new.sh` is not in commit {short} (and 1 more file): a release named by a commit must be that commit; commit the change, or pass `--allow-dirty` to publish by digest only, moving no `git-`/`latest` tag"
    ));
    repo.remove("languages/bash/scripts/new.sh");
    repo.remove("languages/bash/scripts/other.sh");
    repo.write("notes.txt", "mine\n");
    repo.write("out/old.json", "{}\n");
    let v = repo
        .krobs(&["--dry-run", "--json"])
        .success()
        .stderr_is("")
        .json();
    assert_eq!(v["commit"], commit.as_str());
    assert_eq!(tags(&v)[0].1, "planned", "{v}");
}

/// `[languages.x] enabled = false`: lint still checks x; nothing of x is built or published,
/// the plan says "disabled" in text and JSON, and the manifest lists none of its scripts.
#[test]
fn a_disabled_language_is_linted_but_not_built_or_listed() {
    let repo = Repo::fixture();
    let config = std::fs::read_to_string(repo.path("krobs.toml")).unwrap();
    repo.write(
        "krobs.toml",
        format!("{config}\n[languages.python]\nenabled = false\n"),
    );
    let text = repo.krobs(&["--dry-run"]).success().stdout;
    assert!(
        text.contains("\npython  disabled (`[languages.python] enabled = false`): linted, not built or published, no scripts in the manifest\n"),
        "{text}"
    );
    assert!(!text.contains("python/report"), "{text}");
    let v = repo.krobs(&["--dry-run", "--json"]).success().json();
    assert_eq!(v["disabled"], serde_json::json!(["python"]));
    assert_eq!(languages(&v), ["bash"]);
    let ids = |scripts: &Value| -> Vec<String> {
        scripts
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&v["scripts"]), ["bash/hello"]);
    let preview: Value =
        serde_json::from_slice(&std::fs::read(repo.path("out/manifest.preview.json")).unwrap())
            .unwrap();
    assert_eq!(ids(&preview["scripts"]), ["bash/hello"], "{preview}");
    assert!(!preview.to_string().contains("python"), "{preview}");

    // Lint still checks it, and so does a run: a broken header fails both.
    repo.write(
        "languages/python/scripts/report.py",
        "# ---\n# owner = \"team-b\"\n# ---\n",
    );
    // (The header's own wording is pinned in tests/it/errors.rs; here only that it is found.)
    let problem = "languages/python/scripts/report.py:1: ";
    let lint = repo.krobs(&["lint"]).failure(exit::INPUT);
    assert!(lint.stderr.contains(problem), "{lint}");
    let run = repo.krobs(&["--dry-run"]).failure(exit::INPUT);
    assert!(run.stderr.contains(problem), "{run}");

    repo.write(
        "krobs.toml",
        format!("{config}\n[languages.python]\nenabled = \"no\"\n"),
    );
    repo.krobs(&["lint"])
        .failure(exit::INPUT)
        .stderr_is("error: krobs.toml:11:11: invalid type: string \"no\", expected a boolean");
}

/// Every language disabled: lint still passes, but a run (dry or real) refuses before Docker or
/// the registry is touched, since a release listing no krob would take every CronJob off the
/// cluster at the next schedules sync; no preview is written. `--only` naming a disabled
/// language alone is refused the same way.
#[test]
fn a_run_with_every_language_disabled_is_refused() {
    let repo = Repo::fixture();
    let config = std::fs::read_to_string(repo.path("krobs.toml")).unwrap();
    repo.write(
        "krobs.toml",
        format!(
            "{config}\n[languages.python]\nenabled = false\n[languages.bash]\nenabled = false\n"
        ),
    );
    repo.commit_all("retire everything");
    repo.krobs(&["lint"]).success();
    let refusal = "error: every language is disabled in `krobs.toml` (bash, python: `enabled = false`): a release would list no krob, and the next schedules sync would take every krob's CronJob off the cluster; enable a language to release";
    for args in [&["--dry-run"][..], &[]] {
        repo.krobs(args).failure(exit::INPUT).stderr_is(refusal);
    }
    assert!(!repo.path("out/manifest.preview.json").exists());
    assert!(!repo.path("out/manifest.json").exists());

    repo.write(
        "krobs.toml",
        format!("{config}\n[languages.python]\nenabled = false\n"),
    );
    repo.commit_all("bash again");
    repo.krobs(&["--dry-run", "--only", "python"])
        .failure(exit::INPUT)
        .stderr_is("error: `--only` selects only disabled languages (python: `enabled = false` in `krobs.toml`): nothing to build; enable one, or select an enabled language");
    repo.krobs(&["--dry-run", "--only", "python,bash"])
        .success();
}

/// An unpinned base says what to do about it, and the text dry run says what it touched and
/// counts in the right number.
#[test]
fn unpinned_base_note_says_what_to_do_and_counts_agree() {
    let repo = Repo::fixture();
    repo.commit_all("one");
    let v = repo
        .krobs(&["--dry-run", "--json", "--only", "bash"])
        .success()
        .json();
    assert_eq!(
        language(&v, "bash")["notes"],
        serde_json::json!([
            "base image `debian:bookworm-slim` is not pinned by digest: if its tag moves, the input digest does not see it; pin it (`debian:bookworm-slim@sha256:...`), or for an image only in the local Engine give it a new tag whenever its content changes"
        ])
    );
    let run = repo
        .krobs_env(
            &["--dry-run", "--only", "bash"],
            &[("DOCKER_CONFIG", "/nonexistent")],
        )
        .success();
    let first = run.stdout.lines().next().unwrap_or_default().to_string();
    assert!(
        first.ends_with(": 1 language, 1 script (Docker, AWS and the registry not touched)"),
        "{run}"
    );
    assert!(run.stdout.contains("\n  context  "), "{run}");
}

/// `path = "tools/sh/"` (or `./tools//sh`) names the folder `tools/sh`: no `//` in the
/// manifest's paths or in messages, and the same digests as the plain spelling.
#[test]
fn a_language_path_is_normalised() {
    let digest_and_paths = |spelling: &str| {
        let repo = Repo::fixture();
        repo.write(
            "krobs.toml",
            format!(
                "{}\n[languages.sh]\npath = \"{spelling}\"\nextra_inputs = [\"./shared//lib/\"]\n",
                crate::support::CONFIG
            ),
        );
        repo.write("tools/sh/Dockerfile", "FROM busybox\n");
        repo.write_exec(
            "tools/sh/scripts/ping.sh",
            bash_script("team-s", "echo ping"),
        );
        repo.write("shared/lib/common.sh", "x=1\n");
        let v = repo.krobs(&["--dry-run", "--json"]).success().json();
        let preview = std::fs::read_to_string(repo.path("out/manifest.preview.json")).unwrap();
        assert!(!preview.contains("//"), "{preview}");
        let script = v["scripts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "sh/ping")
            .unwrap()
            .clone();
        assert_eq!(script["path"], "tools/sh/scripts/ping.sh");
        assert_eq!(language(&v, "sh")["context_files"], 3, "{v}");
        repo.write("tools/sh/scripts/Bad.sh", "echo\n");
        let run = repo.krobs(&["lint"]).failure(exit::INPUT);
        assert!(
            run.stderr
                .starts_with("tools/sh/scripts/Bad.sh: script name makes a bad id"),
            "{run}"
        );
        language(&v, "sh")["input_digest"].clone()
    };
    let plain = digest_and_paths("tools/sh");
    assert_eq!(digest_and_paths("tools/sh/"), plain);
    assert_eq!(digest_and_paths("./tools//sh"), plain);
}
