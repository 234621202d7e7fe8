//! Outside validators, installed by `tests/run.sh`: the CircleCI config against CircleCI's
//! schema, and the manifest preview and the dry run's report of this repository against their
//! published JSON Schemas.

mod support;

use std::process::Command;

use support::services::require_services;
use support::{copy_project_into, Repo, Run};

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
