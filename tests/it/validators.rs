//! Outside validators, installed by `tests/run.sh`: the CircleCI config against CircleCI's
//! schema, and the manifest preview and the dry run's report of this repository against their
//! published JSON Schemas.

use std::process::Command;

use crate::support::services::require_services;
use crate::support::{copy_project_into, Repo, Run};

#[test]
fn circleci_config_is_valid() {
    require_services();
    let mut cmd = Command::new("check-jsonschema");
    cmd.args([
        "--builtin-schema",
        "vendor.circle-ci",
        ".circleci/config.yml",
    ]);
    let run = Run::new(
        cmd,
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &[],
        &[],
    )
    .success();
    assert!(run.stdout.contains("ok -- validation done"), "{run}");
}

#[test]
fn manifest_preview_matches_the_published_schema() {
    require_services();
    let repo = Repo::new();
    copy_project_into(&repo);
    repo.commit_all("the project");
    repo.krobs(&["--dry-run"]).success();
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/manifest-v1.schema.json"
    );
    let mut cmd = Command::new("check-jsonschema");
    cmd.args(["--schemafile", schema, "out/krobs-manifest.preview.json"]);
    Run::new(cmd, &repo.root, &[], &[]).success();

    // The schema is not a check that cannot fail: a preview claiming a digest is refused.
    let text = std::fs::read_to_string(repo.path("out/krobs-manifest.preview.json")).unwrap();
    let broken = text.replacen("\"digest\": null", "\"digest\": \"sha256:abc\"", 1);
    assert_ne!(text, broken);
    std::fs::write(repo.path("out/broken.json"), broken).unwrap();
    let mut cmd = Command::new("check-jsonschema");
    cmd.args(["--schemafile", schema, "out/broken.json"]);
    let run = Run::new(cmd, &repo.root, &[], &[]);
    assert_ne!(run.code, Some(0), "{run}");

    // Nor is a command that does not go through krobs-run.
    let bypass = text.replacen("\"/opt/krobs/bin/krobs-run\",", "", 1);
    assert_ne!(text, bypass);
    std::fs::write(repo.path("out/bypass.json"), bypass).unwrap();
    let mut cmd = Command::new("check-jsonschema");
    cmd.args(["--schemafile", schema, "out/bypass.json"]);
    let run = Run::new(cmd, &repo.root, &[], &[]);
    assert_ne!(run.code, Some(0), "{run}");
}

/// The monitor event schema is a valid draft 2020-12 schema, and not one that takes anything.
#[test]
fn monitor_event_schema_is_valid_and_strict() {
    require_services();
    let repo = Repo::new();
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/monitor-event-v1.schema.json"
    );
    let mut cmd = Command::new("check-jsonschema");
    cmd.args(["--check-metaschema", schema]);
    Run::new(cmd, &repo.root, &[], &[]).success();
    let good = r#"{"version":1,"event":"metric","krob":"python/x","host":"h","time":"2026-01-01T00:00:00Z","metric":{"name":"krobs.n","value":1,"type":"count","tags":{}}}"#;
    for (file, event, valid) in [
        ("good.json", good.to_string(), true),
        ("extra.json", good.replacen("\"host\"", "\"extra\":1,\"host\"", 1), false),
        ("type.json", good.replacen("\"count\"", "\"histogram\"", 1), false),
        (
            "finish.json",
            r#"{"version":1,"event":"finish","krob":"python/x","host":"h","time":"2026-01-01T00:00:00Z","exit_code":3,"signal":null,"duration_seconds":1.5,"output_tail":[]}"#.to_string(),
            false,
        ),
    ] {
        std::fs::write(repo.path(file), event).unwrap();
        let mut cmd = Command::new("check-jsonschema");
        cmd.args(["--schemafile", schema, file]);
        let run = Run::new(cmd, &repo.root, &[], &[]);
        assert_eq!(run.code == Some(0), valid, "{file}: {run}");
    }
}

#[test]
fn dry_run_report_matches_the_published_schema() {
    require_services();
    let repo = Repo::new();
    copy_project_into(&repo);
    repo.commit_all("the project");
    let run = repo
        .krobs(&["--dry-run", "--json", "--since", "HEAD"])
        .success();
    std::fs::write(repo.path("report.json"), &run.stdout).unwrap();
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/report-v1.schema.json");
    let mut cmd = Command::new("check-jsonschema");
    cmd.args(["--schemafile", schema, "report.json"]);
    Run::new(cmd, &repo.root, &[], &[]).success();

    // With a disabled language too (`disabled` lists it).
    let config = std::fs::read_to_string(repo.path("krobs.toml")).unwrap();
    let disabled = config.replace("[languages.ruby]\n", "[languages.ruby]\nenabled = false\n");
    assert_ne!(config, disabled);
    std::fs::write(repo.path("krobs.toml"), disabled).unwrap();
    let disabled = repo.krobs(&["--dry-run", "--json"]).success();
    assert_eq!(disabled.json()["disabled"], serde_json::json!(["ruby"]));
    std::fs::write(repo.path("disabled.json"), &disabled.stdout).unwrap();
    let mut cmd = Command::new("check-jsonschema");
    cmd.args(["--schemafile", schema, "disabled.json"]);
    Run::new(cmd, &repo.root, &[], &[]).success();
    std::fs::write(repo.path("krobs.toml"), config).unwrap();

    // Not a check that cannot fail: a report with a status it does not know is refused.
    let broken = run
        .stdout
        .replacen("\"status\":\"planned\"", "\"status\":\"done\"", 1);
    assert_ne!(run.stdout, broken);
    std::fs::write(repo.path("broken.json"), broken).unwrap();
    let mut cmd = Command::new("check-jsonschema");
    cmd.args(["--schemafile", schema, "broken.json"]);
    let run = Run::new(cmd, &repo.root, &[], &[]);
    assert_ne!(run.code, Some(0), "{run}");
}
