//! Every bad input gets one clear line naming the file, field or language, and what to do.
//! The exact messages are pinned here.

use crate::support::{bash_script, krobs_command, problems, Repo, Run, CONFIG};
use krobs::exit;

#[test]
fn missing_config_file() {
    let repo = Repo::fixture();
    repo.krobs(&["--dry-run", "--config", "nope.toml"])
        .failure(exit::INPUT)
        .stderr_is("error: cannot read `nope.toml`: No such file or directory (os error 2); create it or point `--config` at one");
}

/// Without `--config`, krobs.toml is found upward from the working folder, as git and cargo
/// do; its paths (languages, the manifest) stay relative to its own folder.
#[test]
fn config_is_found_upward_from_a_subfolder() {
    let repo = Repo::fixture();
    let sub = repo.path("languages/python");
    let in_sub = |args: &[&str]| Run::new(krobs_command(), &sub, args, &[]);
    let lint = in_sub(&["lint", "--json"]).success().json();
    assert_eq!(
        lint["languages"],
        serde_json::json!(["bash", "python"]),
        "{lint}"
    );
    assert_eq!(lint["problems"], serde_json::json!([]), "{lint}");
    in_sub(&["--dry-run"]).success();
    assert!(repo.path("out/manifest.preview.json").is_file());
    assert!(!sub.join("out").exists());

    repo.write("krobs.toml", "[registry\nkind = \"oci\"\n");
    in_sub(&["--dry-run"])
        .failure(exit::INPUT)
        .stderr_is("error: ../../krobs.toml:1:10: unclosed table, expected `]`");

    repo.remove("krobs.toml");
    let cwd = sub.canonicalize().unwrap();
    let root = repo.path("").canonicalize().unwrap();
    in_sub(&["lint"]).failure(exit::INPUT).stderr_is(&format!(
        "error: no `krobs.toml` in `{}` or a folder above it up to the git repository's root `{}`: run krobs-build inside a Krobs repository, create `krobs.toml` at its root, or point `--config` at one",
        cwd.display(),
        root.display()
    ));
}

#[test]
fn malformed_toml() {
    let repo = Repo::fixture();
    repo.write("krobs.toml", "[registry\nkind = \"oci\"\n");
    repo.krobs(&["--dry-run"])
        .failure(exit::INPUT)
        .stderr_is("error: krobs.toml:1:10: unclosed table, expected `]`");
}

#[test]
fn unknown_key() {
    let repo = Repo::fixture();
    repo.write("krobs.toml", format!("{CONFIG}\n[build]\nconcurency = 4\n"));
    repo.krobs(&["--dry-run"])
        .failure(exit::INPUT)
        .stderr_is("error: krobs.toml:11:1: unknown field `concurency`, expected one of `concurrency`, `platform`, `build_args`, `network`");
}

#[test]
fn wrong_type() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        format!("{CONFIG}\n[languages.bash]\ncommand = \"bash {{script}}\"\n"),
    );
    repo.krobs(&["--dry-run"]).failure(exit::INPUT).stderr_is(
        "error: krobs.toml:11:11: invalid type: string \"bash {script}\", expected a sequence",
    );
}

#[test]
fn unknown_registry_kind() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        CONFIG.replace("kind = \"oci\"", "kind = \"gcr\""),
    );
    repo.krobs(&["--dry-run"])
        .failure(exit::INPUT)
        .stderr_is("error: krobs.toml:4:8: unknown registry kind `gcr`: use `ecr` or `oci`");
}

#[test]
fn missing_dockerfile() {
    let repo = Repo::fixture();
    repo.remove("languages/python/Dockerfile");
    repo.krobs(&["--dry-run"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/python: missing Dockerfile for language `python`: add `languages/python/Dockerfile`",
    ]));
}

#[test]
fn a_target_stage_the_dockerfile_lacks_is_a_lint_problem() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        format!("{CONFIG}\n[languages.python]\ntarget = \"slim\"\n"),
    );
    repo.write(
        "languages/python/Dockerfile",
        "FROM python:3.12-slim AS base\nFROM base AS full\n",
    );
    repo.krobs(&["lint"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/python/Dockerfile: has no stage `slim` (`[languages.python] target` in krobs.toml): name one with `FROM ... AS slim`, or use one of `base`, `full`",
    ]));
    // Named, it is fine, and it is part of the runtime's input digest.
    let runtime_tag = |target: &str| {
        repo.write(
            "krobs.toml",
            format!("{CONFIG}\n[languages.python]\ntarget = \"{target}\"\n"),
        );
        repo.krobs(&["lint"]).success();
        let run = repo.krobs(&["--dry-run", "--json"]).success();
        let report = run.json();
        let python = report["languages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == "python")
            .unwrap()
            .clone();
        python["runtime_tag"].as_str().unwrap().to_string()
    };
    assert_ne!(runtime_tag("base"), runtime_tag("full"));
}

#[test]
fn a_dockerfile_copying_scripts_breaks_the_runtime_contract() {
    let repo = Repo::fixture();
    repo.write(
        "languages/python/Dockerfile",
        "FROM python:3.12-slim\nCOPY scripts/ /opt/krobs/scripts/\n",
    );
    repo.krobs(&["lint"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/python/Dockerfile:2: copies `scripts/`: the Dockerfile builds the runtime only, and Krobs lays `scripts/` on top of it as a layer of its own (at `image_scripts_dir`); remove the line",
    ]));
}

#[test]
fn scripts_cannot_go_where_the_entrypoint_is() {
    let repo = Repo::fixture();
    for dir in ["/opt/krobs/bin", "/opt/krobs/bin/tools/"] {
        repo.write(
            "krobs.toml",
            format!("{CONFIG}\n[languages.python]\nimage_scripts_dir = \"{dir}\"\n"),
        );
        repo.krobs(&["lint"]).failure(exit::INPUT).stderr_is(&problems(&[
            &format!("languages/python: `languages.python.image_scripts_dir = \"{dir}\"` is inside `/opt/krobs/bin`, where Krobs puts its entrypoint `krobs-run`: choose another folder, e.g. `/opt/krobs/scripts`"),
        ]));
    }
}

/// A Dockerfile with no `FROM` builds no runtime: refused before anything is planned.
#[test]
fn a_dockerfile_without_from_is_refused() {
    for (text, what) in [
        ("", "is empty"),
        (
            "# syntax=docker/dockerfile:1\n\n# nothing yet\n",
            "is empty",
        ),
        ("ARG BASE_IMAGE=debian\nRUN true\n", "has no `FROM` line"),
    ] {
        let repo = Repo::fixture();
        repo.write("languages/python/Dockerfile", text);
        for args in [&["lint"][..], &["--dry-run"]] {
            repo.krobs(args).failure(exit::INPUT).stderr_is(&problems(&[&format!(
                "languages/python/Dockerfile: {what}: it builds the language's runtime, so start it with `FROM <base image>` (e.g. `ARG BASE_IMAGE=debian:bookworm-slim`, then `FROM ${{BASE_IMAGE}}`)"
            )]));
        }
        assert!(!repo.path("out/manifest.preview.json").exists());
    }
    // A byte-order mark before `FROM` is still a Dockerfile (the Engine reads it so).
    let repo = Repo::fixture();
    repo.write(
        "languages/python/Dockerfile",
        "\u{feff}FROM python:3.12-slim\n",
    );
    repo.krobs(&["lint"]).success();
}

#[test]
fn empty_language_folder() {
    let repo = Repo::fixture();
    std::fs::create_dir_all(repo.path("languages/go")).unwrap();
    repo.krobs(&["--dry-run"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/go: empty language folder: add a `Dockerfile` and `scripts/`, or remove the folder",
    ]));
}

#[test]
fn language_without_scripts() {
    let repo = Repo::fixture();
    repo.remove("languages/python/scripts");
    repo.krobs(&["lint"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/python: language `python` has no scripts: add one under `languages/python/scripts/` or remove the folder",
    ]));
}

#[test]
fn missing_header() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/bare.sh",
        "#!/bin/bash\necho no docs\n",
    );
    repo.krobs(&["lint"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/bare.sh:2: missing documentation header: start the script with a `# ---` block naming `owner` and `description` (after an optional `#!` line)",
    ]));
}

#[test]
fn malformed_header() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/bad.sh",
        "# ---\n# owner = team-a\n# description = \"x\"\n# ---\n",
    );
    repo.krobs(&["lint"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/bad.sh:2: malformed header: invalid boolean, expected `true` (the header is TOML: quote text, e.g. `owner = \"team (#channel)\"`)",
    ]));
}

#[test]
fn unclosed_header() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/open.sh",
        "# ---\n# owner = \"a\"\n# description = \"x\"\necho\n",
    );
    repo.krobs(&["lint"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/open.sh:1: documentation header is never closed: end it with a `# ---` line before line 4",
    ]));
}

#[test]
fn malformed_close_is_one_line() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/close.sh",
        "# ---\n# owner = \"a\"\n# description = \"x\"\n#---\necho\nexit 0\n",
    );
    repo.krobs(&["lint"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/close.sh:4: header close `#---` is not `# ---`: write it exactly `# ---`",
    ]));
}

#[test]
fn header_below_other_lines_is_found() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/blank.sh",
        "#!/bin/bash\n\n# ---\n# owner = \"a\"\n# description = \"x\"\n# ---\n",
    );
    repo.write(
        "languages/bash/scripts/strict.sh",
        "#!/bin/bash\nset -e\n# ---\n# owner = \"a\"\n# description = \"x\"\n# ---\n",
    );
    repo.krobs(&["lint"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/blank.sh:3: documentation header found at line 3, but it must start right after the `#!` line: remove the blank line",
        "languages/bash/scripts/strict.sh:3: documentation header found at line 3, but it must start right after the `#!` line: move line 2 below the header's closing `# ---`",
    ]));
}

#[test]
fn every_header_problem_in_user_terms() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/types.sh",
        "# ---\n# owner = \"a\"\n# description = \"x\"\n# retries = \"2\"\n# scedule = \"every 5 minutes\"\n# timeout = 30\n# ---\n",
    );
    repo.write(
        "languages/bash/scripts/every.sh",
        "# ---\n# owner = \"a\"\n# description = \"x\"\n# schedule = \"every 5 minutes\"\n# ---\n",
    );
    repo.krobs(&["lint"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/every.sh:4: header `schedule = \"every 5 minutes\"` is not a valid cron expression: expected exactly 5 fields, found 3; use five fields `minute hour day-of-month month day-of-week`, or for a fixed interval `schedule = \"@every 5m\"`",
        "languages/bash/scripts/types.sh:4: header `retries` must be a whole number, like `retries = 2`, not text",
        "languages/bash/scripts/types.sh:5: header has unknown key `scedule`: did you mean `schedule`?",
        "languages/bash/scripts/types.sh:6: header `timeout` must be quoted text, like `timeout = \"2h\"`, not a number",
    ]));
}

#[test]
fn bad_cron_and_every_problem_at_once() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/cron.sh",
        "# ---\n# owner = \"a\"\n# description = \"x\"\n# schedule = \"*/5 * * *\"\n# ---\n",
    );
    repo.write(
        "languages/python/scripts/nodoc.py",
        "# ---\n# schedule = \"0 0 31 2 *\"\n# retries = 99\n# ---\n",
    );
    repo.krobs(&["lint"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/cron.sh:4: header `schedule = \"*/5 * * *\"` is not a valid cron expression: expected exactly 5 fields, found 4; use five fields `minute hour day-of-month month day-of-week`, e.g. \"*/15 * * * *\"",
        "languages/python/scripts/nodoc.py:1: header has no `description`: add `description = \"what it does and the env it takes\"`",
        "languages/python/scripts/nodoc.py:1: header has no `owner`: add `owner = \"team (#channel)\"`",
        "languages/python/scripts/nodoc.py:3: header `retries = 99` is out of range: use 0 to 10",
    ]));
}

#[test]
fn symlink_escaping_the_folder() {
    let repo = Repo::fixture();
    repo.write("secrets.env", "TOKEN=x\n");
    std::os::unix::fs::symlink("../../secrets.env", repo.path("languages/bash/secrets.env"))
        .unwrap();
    repo.krobs(&["--dry-run"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/secrets.env: symlink points outside `bash` (to `../../secrets.env`): Docker cannot follow it; copy the file in instead",
    ]));
}

#[test]
fn unknown_only_name() {
    let repo = Repo::fixture();
    repo.krobs(&["--dry-run", "--only", "bash,pyhton"])
        .failure(exit::INPUT)
        .stderr_is(
            "error: unknown language `pyhton` in `--only`: known languages are `bash`, `python`",
        );
}

/// `--only ""` (or a trailing comma) names no language: refused (exit 2), not read as "every
/// language". An empty `KROBS_ONLY` is unset, as an empty environment variable usually is.
#[test]
fn an_empty_only_name_is_refused() {
    let repo = Repo::fixture();
    for only in ["", "bash,", ",", " "] {
        for args in [
            &["--dry-run", "--only", only][..],
            &["lint", "--only", only],
        ] {
            repo.krobs(args).failure(exit::USAGE).stderr_is(
                "error: `--only` got an empty language name: name the languages, e.g. `--only python,ruby`, or leave `--only` out to run every language",
            );
        }
    }
    assert!(!repo.path("out/manifest.preview.json").exists());
    let v = repo
        .krobs_env(&["--dry-run", "--json"], &[("KROBS_ONLY", "")])
        .success()
        .json();
    assert_eq!(v["languages"].as_array().unwrap().len(), 2, "{v}");
}

#[test]
fn non_utf8_file_name() {
    use std::os::unix::ffi::OsStrExt;
    let repo = Repo::fixture();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.sh");
    std::fs::write(repo.path("languages/bash/scripts").join(name), "x").unwrap();
    repo.krobs(&["--dry-run"])
        .failure(exit::INPUT)
        .stderr_is(&problems(&[
            "languages/bash/scripts/caf\u{FFFD}.sh: file name is not valid UTF-8: rename it",
        ]));
}

#[test]
fn unreadable_file() {
    use std::os::unix::fs::PermissionsExt;
    // Permission bits do not stop root, so the binary runs as `nobody` here.
    let repo = Repo::fixture();
    repo.write("languages/bash/scripts/secret.sh", bash_script("a", "true"));
    let mut p = repo.root.clone();
    while p.pop() {
        if p == std::env::temp_dir() {
            break;
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for dir in [
        "",
        "languages",
        "languages/bash",
        "languages/bash/scripts",
        "languages/python",
        "languages/python/scripts",
    ] {
        std::fs::set_permissions(repo.path(dir), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(
        repo.path("languages/bash/scripts/secret.sh"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_krobs-build"),
    ]);
    crate::support::Run::new(cmd, &repo.root, &["lint"], &[])
        .failure(exit::INPUT)
        .stderr_is(&problems(&[
            "languages/bash/scripts/secret.sh: cannot read: Permission denied (os error 13)",
        ]));
}

#[test]
fn duplicate_script_ids() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/hello.bash",
        bash_script("a", "echo"),
    );
    repo.krobs(&["lint"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/hello.bash: duplicate script id `bash/hello` (also `languages/bash/scripts/hello.sh`): rename one of them",
        "languages/bash/scripts/hello.sh: duplicate script id `bash/hello` (also `languages/bash/scripts/hello.bash`): rename one of them",
    ]));
}

#[test]
fn bad_script_name() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/Drain Node.sh",
        bash_script("a", "echo"),
    );
    repo.krobs(&["lint"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/scripts/Drain Node.sh: script name makes a bad id: use lowercase letters, digits, `-` and `_` (the id names Kubernetes Jobs) (e.g. `drain-node`)",
    ]));
}

#[test]
fn bad_dockerignore_line() {
    let repo = Repo::fixture();
    repo.write("languages/bash/.dockerignore", "*.tmp\n!\n");
    repo.krobs(&["--dry-run"]).failure(exit::INPUT).stderr_is(&problems(&[
        "languages/bash/.dockerignore:2: a lone `!` excludes nothing: remove the line or add a pattern",
    ]));
}

#[test]
fn configured_language_without_folder() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        format!("{CONFIG}\n[languages.go]\ncommand = [\"{{script}}\"]\n"),
    );
    repo.krobs(&["--dry-run"])
        .failure(exit::INPUT)
        .stderr_is(&problems(&[
            "krobs.toml: `[languages.go]` has no folder `languages/go`: create it or set `path`",
        ]));
}

#[test]
fn command_without_script_placeholder() {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        format!("{CONFIG}\n[languages.bash]\ncommand = [\"bash\"]\n"),
    );
    repo.krobs(&["--dry-run"])
        .failure(exit::INPUT)
        .stderr_is("error: krobs.toml:11:11: `languages.bash.command` never mentions `{script}`: add it where the script path goes");
}

#[test]
fn lint_ok_and_json() {
    let repo = Repo::fixture();
    let run = repo.krobs(&["lint"]).success();
    assert_eq!(
        run.stdout,
        "lint: 2 scripts in 2 languages are documented\n"
    );
    let v = repo.krobs(&["lint", "--json"]).success().json();
    assert_eq!(v["problems"], serde_json::json!([]));
    assert_eq!(v["scripts"][0]["id"], "bash/hello");
    assert_eq!(v["scripts"][1]["owner"], "team-b");
}

#[test]
fn the_summary_line_is_pinned_too() {
    // `problems` builds the expected stderr of the tests above; its summary is pinned here.
    assert_eq!(
        problems(&["a: x"]),
        "a: x\nerror: 1 problem in the repository: fix it and run `krobs-build lint` again"
    );
    assert_eq!(
        problems(&["a: x", "b: y"]),
        "a: x\nb: y\nerror: 2 problems in the repository: fix them and run `krobs-build lint` again"
    );
}

#[test]
fn flags_a_command_does_not_use_are_refused() {
    let repo = Repo::fixture();
    repo.krobs(&["render", "bash/hello", "--json"])
        .failure(exit::USAGE)
        .stderr_is("error: `--json` does not apply to `krobs-build render`: drop it; it prints YAML for `kubectl apply -f -`");
    repo.krobs(&["schema", "--only", "nosuch"])
        .failure(exit::USAGE)
        .stderr_is("error: `--only` does not apply to `krobs-build schema`: drop it");
    let run = repo.krobs(&["--strict"]).failure(exit::USAGE);
    assert!(run.stderr.contains("--dry-run"), "{run}");
    // Exported for a whole CI job, the same flags are a default, not a mistake of this command's.
    let env = [("KROBS_JSON", "1"), ("KROBS_ONLY", "bash")];
    let run = repo
        .krobs_env(&["render", "--harness-template", "krob"], &env)
        .success();
    assert!(run.stdout.contains("kind: Job"), "{run}");
    repo.krobs_env(&["schema"], &env).success();
    let run = repo.krobs_env(&["lint"], &env).success();
    assert!(
        run.stdout.starts_with('{'),
        "lint still honours KROBS_JSON\n{run}"
    );
}

#[test]
fn build_subcommand_points_at_the_bare_command() {
    let repo = Repo::fixture();
    let run = repo.krobs(&["build"]).failure(exit::USAGE);
    assert!(
        run.stderr
            .starts_with("error: unrecognized subcommand 'build'"),
        "{run}"
    );
    assert!(
        run.stderr.ends_with("\nthe bare command builds, pushes and publishes: run `krobs-build` (`krobs-build --dry-run` to see the plan first)\n"),
        "{run}"
    );
}

#[test]
fn lint_warns_when_a_schedule_is_shorter_than_the_timeout() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/often.sh",
        "# ---\n# owner = \"a\"\n# description = \"x\"\n# schedule = \"*/5 * * * *\"\n# ---\n",
    );
    let run = repo.krobs(&["lint"]).success();
    assert_eq!(
        run.stderr,
        "warning: languages/bash/scripts/often.sh: `schedule = \"*/5 * * * *\"` starts a run every 5m but `timeout` allows 1h: a run still going when the next is due makes Kubernetes skip that one (`concurrencyPolicy: Forbid`); set `timeout` to at most 5m\n",
        "{run}"
    );
    repo.write(
        "languages/bash/scripts/often.sh",
        "# ---\n# owner = \"a\"\n# description = \"x\"\n# schedule = \"*/5 * * * *\"\n# timeout = \"4m\"\n# ---\n",
    );
    let run = repo.krobs(&["lint"]).success();
    assert_eq!(run.stderr, "", "{run}");
}

#[test]
fn a_readme_in_scripts_is_documentation_not_a_krob() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/README.md",
        "# Bash krobs\n\nRun them with care.\n",
    );
    let run = repo.krobs(&["lint"]).success();
    assert_eq!(
        run.stdout, "lint: 2 scripts in 2 languages are documented\n",
        "{run}"
    );
}

/// Hidden files in `scripts/` (a `.gitkeep`, an editor's swap file) are no krobs: left out of
/// the scripts layer and its digest, with a note, instead of failing the run.
#[test]
fn hidden_files_in_scripts_are_left_out_with_a_note() {
    let repo = Repo::fixture();
    let digest = |repo: &Repo| {
        let v = repo.krobs(&["--dry-run", "--json"]).success().json();
        let bash = v["languages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == "bash")
            .unwrap()
            .clone();
        (bash, v["scripts"].as_array().unwrap().len())
    };
    let (before, scripts) = digest(&repo);
    repo.write("languages/bash/scripts/.gitkeep", "");
    repo.write("languages/bash/scripts/.cache/hello.sh.swp", "x");
    repo.write("languages/bash/scripts/sub/.gitkeep", "");
    repo.write_exec(
        "languages/bash/scripts/sub/deep.sh",
        bash_script("team-a", "echo deep"),
    );
    let notes = [
        "`languages/bash/scripts/.cache` is a hidden folder: not a krob, and left out of the scripts layer; rename it without the leading `.` to ship it",
        "`languages/bash/scripts/.gitkeep` is a hidden file: not a krob, and left out of the scripts layer; rename it without the leading `.` to ship it",
        "`languages/bash/scripts/sub/.gitkeep` is a hidden file: not a krob, and left out of the scripts layer; rename it without the leading `.` to ship it",
    ];
    let run = repo.krobs(&["lint"]).success();
    assert_eq!(
        run.stdout, "lint: 3 scripts in 2 languages are documented\n",
        "{run}"
    );
    let expected: Vec<String> = notes.iter().map(|n| format!("note: {n}")).collect();
    assert_eq!(run.stderr, expected.join("\n") + "\n", "{run}");
    let (after, _) = digest(&repo);
    assert_eq!(
        after["notes"].as_array().unwrap()[..3],
        notes.map(serde_json::Value::from)
    );
    repo.remove("languages/bash/scripts/sub/deep.sh");
    repo.remove("languages/bash/scripts/sub");
    let (without_sub, n) = digest(&repo);
    assert_eq!(n, scripts);
    assert_eq!(
        without_sub["scripts_layer"], before["scripts_layer"],
        "{without_sub}"
    );
    assert_eq!(
        without_sub["input_digest"], before["input_digest"],
        "{without_sub}"
    );
    assert_eq!(without_sub["context_files"], before["context_files"]);
}

/// A header is text: bytes that are not UTF-8 in it are refused with their line (they used
/// to reach the manifest as replacement characters). The body may hold any bytes.
#[test]
fn a_header_that_is_not_utf8_is_refused() {
    let repo = Repo::fixture();
    repo.write(
        "languages/bash/scripts/latin.sh",
        b"#!/usr/bin/env bash\n# ---\n# owner = \"caf\xe9\"\n# description = \"x\"\n# ---\necho\n",
    );
    for args in [&["lint"][..], &["--dry-run"]] {
        repo.krobs(args).failure(exit::INPUT).stderr_is(&problems(&[
            "languages/bash/scripts/latin.sh:3: the documentation header is not UTF-8 text: save the script as UTF-8",
        ]));
    }
    repo.write(
        "languages/bash/scripts/latin.sh",
        b"#!/usr/bin/env bash\n# ---\n# owner = \"a\"\n# description = \"x\"\n# ---\nprintf '\xe9\\n'\n",
    );
    repo.krobs(&["lint"]).success();
}
