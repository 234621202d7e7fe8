//! The manifest published as an OCI artifact next to the images, against the real services of
//! `bash tests/run.sh`: pulled back with `manifest pull` and with skopeo + a blob fetch, reruns
//! that move nothing, `latest` that never moves backwards nor with `--only`, ECR (moto) with the
//! manifest repository created mutable, and the errors of `manifest pull`, each pinned.

use std::process::Command;
use std::sync::Arc;

use crate::support::e2e_support::*;
use crate::support::http_server::{HttpServer, Reply, Request};
use crate::support::services::{python3, require_services, run_ok};
use crate::support::Repo;
use krobs::exit;
use serde_json::{json, Value};

const ARTIFACT_TYPE: &str = "application/vnd.krobs.manifest.v1+json";

fn short(commit: &str) -> &str {
    &commit[..12]
}

fn git_tag(commit: &str) -> String {
    format!("git-{}", short(commit))
}

/// `(action, reason)` of `tag` in a `--json` run's publication.
#[track_caller]
fn tag_outcome(run: &crate::support::Run, tag: &str) -> (String, String) {
    let report = run.json();
    let tags = report["publication"]["tags"].as_array().expect("tags");
    let t = tags
        .iter()
        .find(|t| t["tag"] == tag)
        .unwrap_or_else(|| panic!("no tag `{tag}` in the publication\n{run}"));
    (string(t, "action"), string(t, "reason"))
}

/// The tags of a publication, in order.
fn tag_names(run: &crate::support::Run) -> Vec<String> {
    run.json()["publication"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| string(t, "tag"))
        .collect()
}

/// The Harness view of a manifest, spelled out here independently of the binary: compact
/// JSON, keys in the agreed order, every script value a string.
fn harness_line(manifest: &Value, digest: &str) -> String {
    let s = |v: &Value| serde_json::to_string(v.as_str().unwrap_or("")).unwrap();
    let n = |v: &Value| serde_json::to_string(&v.as_u64().unwrap().to_string()).unwrap();
    let monitor = &manifest["monitor_url"];
    let scripts: Vec<String> = manifest["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let command = serde_json::to_string(&x["command"]).unwrap();
            let job = &x["job"];
            format!(
                "{{\"id\":{},\"language\":{},\"owner\":{},\"image\":{},\"command\":{},\"kind\":{},\"schedule\":{},\"timeout_seconds\":{},\"retries\":{},\"cpu\":{},\"memory\":{},\"monitor_url\":{}}}",
                s(&x["id"]),
                s(&x["language"]),
                s(&x["header"]["owner"]),
                s(&x["image"]),
                serde_json::to_string(&command).unwrap(),
                s(&job["kind"]),
                s(&job["schedule"]),
                n(&job["active_deadline_seconds"]),
                n(&job["backoff_limit"]),
                s(&job["resources"]["cpu_request"]),
                s(&job["resources"]["memory_request"]),
                s(monitor),
            )
        })
        .collect();
    format!(
        "{{\"manifest\":\"{digest}\",\"commit\":{},\"scripts\":[{}]}}\n",
        s(&manifest["commit"]),
        scripts.join(",")
    )
}

/// `skopeo inspect --raw` of `krobs/manifest:<reference>` in the pipeline's registry: the
/// artifact's exact bytes (skopeo's plain `inspect` reads images only).
fn skopeo_raw_bytes(p: &Pipeline, reference: &str) -> Vec<u8> {
    let (user, password) = p.creds();
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--retry-times",
        "0",
    ])
    .arg("--creds")
    .arg(format!("{user}:{password}"))
    .arg(format!(
        "docker://{}/krobs/manifest:{reference}",
        p.registry.addr()
    ));
    let out = run_ok(&mut cmd);
    p.record_output("skopeo inspect --raw", &out);
    out.stdout
}

fn skopeo_raw(p: &Pipeline, reference: &str) -> Value {
    serde_json::from_slice(&skopeo_raw_bytes(p, reference)).expect("skopeo prints the manifest")
}

/// The digest of the artifact `krobs/manifest:<reference>`, from the bytes skopeo reads.
fn artifact_digest(p: &Pipeline, reference: &str) -> String {
    format!(
        "sha256:{}",
        krobs::plan::digest::bytes_sha256(&skopeo_raw_bytes(p, reference))
    )
}

/// The manifest PUTs into `krobs/manifest` so far, by path.
fn artifact_puts(p: &Pipeline) -> Vec<String> {
    p.registry_requests()
        .into_iter()
        .filter(|(m, path)| m == "PUT" && path.starts_with("/v2/krobs/manifest/manifests/"))
        .map(|(_, path)| path)
        .collect()
}

/// A blob of `krobs/manifest`, fetched with a plain HTTP GET (Python's urllib, basic auth),
/// as any tool without krobs would.
fn blob(p: &Pipeline, digest: &str) -> Vec<u8> {
    let (user, password) = p.creds();
    let script = r#"
import base64, sys, urllib.request
req = urllib.request.Request(sys.argv[1])
auth = base64.b64encode(sys.stdin.read().encode()).decode()
req.add_header("Authorization", "Basic " + auth)
sys.stdout.buffer.write(urllib.request.urlopen(req).read())
"#;
    let mut child = Command::new(python3())
        .arg("-c")
        .arg(script)
        .arg(format!(
            "http://{}/v2/krobs/manifest/blobs/{digest}",
            p.registry.addr()
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        format!("{user}:{password}").as_bytes(),
    )
    .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    p.record_output("blob GET", &out);
    assert!(
        out.status.success(),
        "GET blob {digest} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

// -------------------------------------------------------------------------------------------------
// Publish, pull back, rerun
// -------------------------------------------------------------------------------------------------

/// A real run publishes the manifest as the agreed OCI artifact, tagged `git-<commit>` and
/// `latest`; `manifest pull` (by tag, commit and digest) and skopeo + a blob fetch give back the
/// bytes written to `out/`; the Harness view is the agreed line; a rerun moves nothing.
#[test]
fn the_manifest_is_published_as_an_oci_artifact_and_pulls_back_byte_for_byte() {
    require_services();
    let p = Pipeline::oci();
    let commit = p.head();
    let host = p.host();

    let run = p.krobs(&["--json"]).success();
    p.check_report_schema(&run);
    let report = run.json();
    let bytes = p.manifest_bytes();
    let sha = string(&report["manifest"], "sha256");
    let publication = &report["publication"];
    let digest = string(publication, "digest");
    assert_eq!(publication["repository"], format!("{host}/krobs/manifest"));
    assert_eq!(
        publication["reference"],
        format!("{host}/krobs/manifest@{digest}"),
        "{run}"
    );
    assert_eq!(publication["uploaded"], true, "{run}");
    assert_eq!(publication["repository_created"], false, "{run}");
    assert_eq!(tag_names(&run), [git_tag(&commit), "latest".to_string()]);
    assert_eq!(
        tag_outcome(&run, &git_tag(&commit)),
        ("moved".into(), "names this commit's release".into())
    );
    assert_eq!(
        tag_outcome(&run, "latest"),
        ("moved".into(), "was not set".into())
    );
    // Put under its two tags and not a third time by digest: a tag is reachable by digest.
    let mut puts = artifact_puts(&p);
    puts.sort();
    assert_eq!(
        puts,
        [
            format!("/v2/krobs/manifest/manifests/{}", git_tag(&commit)),
            "/v2/krobs/manifest/manifests/latest".to_string()
        ]
    );

    // The artifact, as any OCI tool reads it.
    for reference in ["latest", &git_tag(&commit)] {
        assert_eq!(artifact_digest(&p, reference), digest);
    }
    let raw = skopeo_raw(&p, "latest");
    assert_eq!(
        raw,
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": ARTIFACT_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                "size": 2
            },
            "layers": [{
                "mediaType": ARTIFACT_TYPE,
                "digest": sha,
                "size": bytes.len(),
                "annotations": {"org.opencontainers.image.title": "krobs-manifest.json"}
            }]
        })
    );
    assert_eq!(
        blob(&p, &sha),
        bytes,
        "the layer is the manifest written to out/"
    );
    assert_eq!(blob(&p, &string(&raw["config"], "digest")), b"{}");

    // `manifest pull`: the same bytes by tag, by commit (short and full) and by digest.
    for reference in [
        None,
        Some("latest".to_string()),
        Some(git_tag(&commit)),
        Some(commit.clone()),
        Some(digest.clone()),
    ] {
        let mut args = vec!["manifest", "pull"];
        args.extend(reference.as_deref());
        let pulled = p.krobs(&args).success();
        assert_eq!(pulled.stdout.as_bytes(), bytes.as_slice(), "{pulled}");
        assert_eq!(pulled.stderr, "", "{pulled}");
    }
    let harness = p
        .krobs(&["manifest", "pull", "--format", "harness"])
        .success();
    let manifest = p.manifest();
    assert_eq!(harness.stdout.lines().count(), 1, "{harness}");
    // The flat attributes as spelled out below; what Harness renders from (`version`,
    // `step_timeout`, `values`, `releases`) is held against the artifact script and the
    // Go templates in tests/it/harness.rs.
    let mut flat: Value = serde_json::from_str(&harness.stdout).unwrap();
    let releases = flat.as_object_mut().unwrap().remove("releases").unwrap();
    assert_eq!(releases[0]["release"], sha.as_str(), "{harness}");
    for script in flat["scripts"].as_array_mut().unwrap() {
        let script = script.as_object_mut().unwrap();
        let id = script["id"].as_str().unwrap().to_string();
        assert_eq!(script.remove("version").unwrap(), format!("{id}@{sha}"));
        let deadline: u64 = script["timeout_seconds"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            script.remove("step_timeout").unwrap(),
            format!("{}s", deadline + 600)
        );
        assert!(script
            .remove("values")
            .unwrap()
            .as_str()
            .is_some_and(|v| !v.is_empty()));
    }
    let expected: Value = serde_json::from_str(&harness_line(&manifest, &sha)).unwrap();
    assert_eq!(flat, expected, "{harness}");
    // Flat strings, for Harness artifact attributes; one script of this repository checked
    // by hand so that the spelled-out view above cannot drift with the binary.
    let view: Value = serde_json::from_str(&harness.stdout).unwrap();
    let retry = view["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "bash/retry_failed_allocations")
        .expect("bash/retry_failed_allocations in the view");
    assert_eq!(retry["language"], "bash");
    assert_eq!(retry["kind"], "Job");
    assert_eq!(retry["schedule"], "");
    assert_eq!(retry["cpu"], "100m");
    assert_eq!(retry["memory"], "256Mi");
    assert_eq!(retry["monitor_url"], "");
    assert_eq!(
        retry["image"],
        language(&manifest, "bash")["image"],
        "{retry}"
    );
    assert!(
        retry["command"]
            .as_str()
            .unwrap()
            .starts_with("[\"/opt/krobs/bin/krobs-run\",\"--id\",\"bash/retry_failed_allocations\",\"--\",\"bash\",\"/opt/krobs/scripts/"),
        "{retry}"
    );

    // The rerun: the same manifest, found in the registry; no tag moves, nothing is put.
    let puts = p.manifest_puts();
    let uploads = p.blob_uploads(None);
    let rerun = p.krobs(&["--json"]).success();
    assert_eq!(p.manifest_bytes(), bytes, "{rerun}");
    let again = &rerun.json()["publication"];
    assert_eq!(again["digest"], digest.as_str());
    assert_eq!(again["uploaded"], false, "{rerun}");
    for tag in [git_tag(&commit), "latest".to_string()] {
        assert_eq!(
            tag_outcome(&rerun, &tag),
            ("unchanged".into(), "already names this manifest".into())
        );
    }
    assert_eq!(p.manifest_puts(), puts, "the rerun put a manifest\n{rerun}");
    assert_eq!(p.blob_uploads(None), uploads, "{rerun}");
    let text = p.krobs(&[]).success();
    // The publication, then the run's durations as the last line.
    let (body, took) = text.stdout.trim_end().rsplit_once('\n').unwrap();
    assert!(
        format!("{body}\n").ends_with(&format!(
            "published {host}/krobs/manifest@{digest} (already in the registry)\n  {}  unchanged: already names this manifest\n  latest            unchanged: already names this manifest\n",
            git_tag(&commit)
        )),
        "{text}"
    );
    assert!(
        took.starts_with("took ") && took.contains(", manifest "),
        "{text}"
    );

    // `render --manifest REF` reads the published release: the same object as from the file,
    // with the published manifest's digest in its annotations.
    let from_file = p
        .krobs(&["render", "bash/retry_failed_allocations", "--name", "retry"])
        .success();
    for reference in ["latest", &git_tag(&commit), &digest] {
        let from_registry = p
            .krobs(&[
                "render",
                "bash/retry_failed_allocations",
                "--name",
                "retry",
                "--manifest",
                reference,
            ])
            .success();
        assert_eq!(from_registry.stdout, from_file.stdout, "{from_registry}");
    }
    assert!(
        from_file.stdout.contains(&sha),
        "the rendered Job names the manifest digest\n{from_file}"
    );
    let missing = p
        .krobs(&[
            "render",
            "bash/retry_failed_allocations",
            "--manifest",
            "git-000000000000",
        ])
        .failure(exit::REGISTRY);
    assert!(
        missing.stderr.starts_with("error: ") && missing.stderr.lines().count() == 1,
        "{missing}"
    );

    // A repository of images is not a manifest repository.
    p.edit_config(|t| {
        t.replace(
            "path = \"out/krobs-manifest.json\"",
            "path = \"out/krobs-manifest.json\"\nrepository = \"krobs/bash\"",
        )
    });
    let wrong = p.krobs(&["manifest", "pull"]).failure(exit::REGISTRY);
    assert_eq!(
        wrong.stderr,
        format!("error: `{host}/krobs/bash:latest` is not a krobs manifest artifact: its artifactType is missing, not `{ARTIFACT_TYPE}`\n")
    );
    p.assert_no_secrets();
}

// -------------------------------------------------------------------------------------------------
// `latest`
// -------------------------------------------------------------------------------------------------

/// Two merges publishing out of order leave `latest` on the newer commit; a run with `--only`
/// publishes its partial manifest by digest only and moves no tag; a newer full run moves
/// `latest` again, and so does a commit unrelated to it (said so).
#[test]
fn latest_never_moves_backwards_nor_with_only() {
    require_services();
    let p = Pipeline::oci();
    let a = p.head();
    let b = p.commit("b: an empty merge");

    // B publishes first, then A (an older CI job that finished late).
    let run_b = p.krobs(&["--json"]).success();
    assert_eq!(tag_outcome(&run_b, "latest").0, "moved", "{run_b}");
    let b_digest = string(&run_b.json()["publication"], "digest");
    p.repo.git(&["checkout", "-q", &a]);
    let run_a = p.krobs(&["--json"]).success();
    p.check_report_schema(&run_a);
    let kept = format!(
        "names `{}`, a newer commit than `{}` (it descends from it): `latest` never moves backwards",
        short(&b),
        short(&a)
    );
    assert_eq!(tag_outcome(&run_a, "latest"), ("kept".into(), kept.clone()));
    assert_eq!(tag_outcome(&run_a, &git_tag(&a)).0, "moved");
    assert_eq!(artifact_digest(&p, "latest"), b_digest);
    let pulled_text = |reference: &str| p.krobs(&["manifest", "pull", reference]).success().stdout;
    let pulled =
        |reference: &str| -> Value { serde_json::from_str(&pulled_text(reference)).unwrap() };
    assert_eq!(pulled("latest")["commit"], b.as_str());
    assert_eq!(pulled(&git_tag(&a))["commit"], a.as_str());
    // Said in the text report too.
    let text = p.krobs(&[]).success();
    assert!(
        text.stdout
            .contains(&format!("\n  latest            kept: {kept}\n")),
        "{text}"
    );

    // C, a child of B, with `--only bash`: published by digest, no tag moves.
    p.repo.git(&["checkout", "-q", "main"]);
    let c = p.commit("c: another empty merge");
    let puts = artifact_puts(&p).len();
    let only = p.krobs(&["--json", "--only", "bash"]).success();
    p.check_report_schema(&only);
    let why = "a run restricted with `--only` publishes its partial manifest by digest only";
    for tag in [git_tag(&c), "latest".to_string()] {
        assert_eq!(tag_outcome(&only, &tag), ("skipped".into(), why.into()));
    }
    let partial_digest = string(&only.json()["publication"], "digest");
    assert_eq!(
        artifact_puts(&p)[puts..],
        [format!("/v2/krobs/manifest/manifests/{partial_digest}")],
        "one PUT, by digest\n{only}"
    );
    assert_eq!(artifact_digest(&p, "latest"), b_digest);
    p.krobs(&["manifest", "pull", &git_tag(&c)])
        .failure(exit::REGISTRY);
    assert_eq!(names(&pulled(&partial_digest)), ["bash"]);
    let content_path = p
        .repo
        .root
        .join(only.json()["manifest"]["content_path"].as_str().unwrap());
    assert_eq!(
        pulled_text(&partial_digest),
        std::fs::read_to_string(content_path).unwrap()
    );

    // C in full: `latest` moves forward.
    let run_c = p.krobs(&["--json"]).success();
    assert_eq!(
        tag_outcome(&run_c, "latest"),
        (
            "moved".into(),
            format!("named `{}`, an older commit", short(&b))
        )
    );
    assert_eq!(pulled("latest")["commit"], c.as_str());

    // A commit that shares no history with C: `latest` moves, and the report says why.
    p.repo.git(&["checkout", "-q", "--orphan", "rewritten"]);
    let d = p.commit("d: history rewritten");
    let run_d = p.krobs(&["--json"]).success();
    assert_eq!(
        tag_outcome(&run_d, "latest"),
        (
            "moved".into(),
            format!(
                "named `{}`, a commit unrelated to this one (neither descends from the other)",
                short(&c)
            )
        )
    );
    assert_eq!(pulled("latest")["commit"], d.as_str());

    // A dry run says where the manifest would go, and touches no tag.
    let puts = p.manifest_puts();
    let uploads = p.blob_uploads(None);
    let dry = p.krobs(&["--dry-run", "--json"]).success();
    p.check_report_schema(&dry);
    let publication = &dry.json()["publication"];
    assert_eq!(
        publication["repository"],
        format!("{}/krobs/manifest", p.host())
    );
    assert_eq!(publication["reference"], Value::Null);
    assert_eq!(
        tag_outcome(&dry, "latest"),
        (
            "planned".into(),
            "moves unless it names a release of a newer commit".into()
        )
    );
    assert_eq!(
        tag_outcome(&dry, &git_tag(&d)),
        ("planned".into(), "names this commit's release".into())
    );
    let dry_text = p.krobs(&["--dry-run"]).success();
    assert!(
        dry_text.stdout.contains(&format!(
            "\nthe manifest would be published to {}/krobs/manifest (a real run publishes it)\n",
            p.host()
        )),
        "{dry_text}"
    );
    assert_eq!(p.manifest_puts(), puts, "{dry}");
    assert_eq!(p.blob_uploads(None), uploads, "{dry}");
    p.assert_no_secrets();
}

// -------------------------------------------------------------------------------------------------
// ECR
// -------------------------------------------------------------------------------------------------

/// Creates an ECR repository in moto with the given tag mutability.
fn create_ecr_repository(p: &Pipeline, name: &str, mutability: &str) {
    let moto = p.moto.as_ref().expect("an ECR pipeline");
    let script = r#"
import sys, boto3
ecr = boto3.client("ecr", endpoint_url=sys.argv[1], region_name=sys.argv[2],
                   aws_access_key_id="testing", aws_secret_access_key="testing")
ecr.create_repository(repositoryName=sys.argv[3], imageTagMutability=sys.argv[4])
"#;
    let mut cmd = Command::new(python3());
    cmd.arg("-c")
        .arg(script)
        .arg(moto.endpoint())
        .arg(ECR_REGION)
        .arg(name)
        .arg(mutability);
    let out = run_ok(&mut cmd);
    p.record_output("boto3 create_repository", &out);
}

/// ECR (moto, with the registry host override): the manifest repository is created with
/// mutable tags and no scan, said so; the manifest is published and pulled back with the same
/// ECR token; a rerun creates nothing and moves nothing.
#[test]
fn ecr_creates_the_manifest_repository_mutable_and_publishes_there() {
    require_services();
    let p = Pipeline::ecr(true);
    let commit = p.head();
    let run = p.krobs(&["--json"]).success();
    p.check_report_schema(&run);
    assert!(
        run.stderr.contains(
            "created ECR repository `krobs/manifest` for the manifest (mutable tags: `latest` moves)"
        ),
        "{run}"
    );
    let publication = &run.json()["publication"];
    assert_eq!(publication["repository_created"], true, "{run}");
    assert_eq!(
        tag_outcome(&run, "latest"),
        ("moved".into(), "was not set".into())
    );
    let repo = p
        .ecr_repositories()
        .into_iter()
        .find(|r| r["repositoryName"] == "krobs/manifest")
        .expect("krobs/manifest in ECR");
    assert_eq!(repo["imageTagMutability"], "MUTABLE", "{repo}");
    assert_eq!(
        repo["imageScanningConfiguration"]["scanOnPush"], false,
        "{repo}"
    );
    let digest = string(publication, "digest");
    assert_eq!(artifact_digest(&p, "latest"), digest);
    assert_eq!(artifact_digest(&p, &git_tag(&commit)), digest);
    let pulled = p.krobs(&["manifest", "pull"]).success();
    assert_eq!(pulled.stdout.as_bytes(), p.manifest_bytes().as_slice());

    let puts = p.manifest_puts();
    let rerun = p.krobs(&["--json"]).success();
    assert!(!rerun.stderr.contains("created ECR repository"), "{rerun}");
    assert_eq!(rerun.json()["publication"]["repository_created"], false);
    assert_eq!(tag_outcome(&rerun, "latest").0, "unchanged", "{rerun}");
    assert_eq!(p.manifest_puts(), puts, "{rerun}");
    p.assert_no_secrets();
}

/// An ECR manifest repository with immutable tags is refused before anything is built: exit 6,
/// with the command that fixes it.
#[test]
fn ecr_refuses_an_immutable_manifest_repository_before_any_build() {
    require_services();
    let p = Pipeline::ecr(true);
    create_ecr_repository(&p, "krobs/manifest", "IMMUTABLE");
    let run = p.krobs(&["--only", "bash"]).failure(exit::AWS);
    assert_eq!(
        error_line(&run),
        "error: ECR repository `krobs/manifest` has immutable tags, but the manifest's `latest` tag must move: run `aws ecr put-image-tag-mutability --repository-name krobs/manifest --image-tag-mutability MUTABLE`, or set `[manifest] repository` in krobs.toml to a repository with mutable tags"
    );
    assert_eq!(p.blob_uploads(None), 0, "{run}");
    p.assert_no_manifest(&run);
    p.assert_no_secrets();
}

/// With creation off, a missing manifest repository is refused before any build: exit 6, with
/// the command that creates it right (mutable tags).
#[test]
fn ecr_without_creation_refuses_a_missing_manifest_repository_before_any_build() {
    require_services();
    let p = Pipeline::ecr(false);
    create_ecr_repository(&p, "krobs/bash", "IMMUTABLE");
    let run = p.krobs(&["--only", "bash"]).failure(exit::AWS);
    assert_eq!(
        error_line(&run),
        format!("error: ECR repository `krobs/manifest` for the manifest does not exist in account `{ECR_ACCOUNT}`: create it with mutable tags (`aws ecr create-repository --repository-name krobs/manifest --image-tag-mutability MUTABLE`) or set `registry.create_repositories = true` in krobs.toml")
    );
    assert_eq!(p.blob_uploads(None), 0, "{run}");
    p.assert_no_manifest(&run);

    // Created as the message says, the run goes through.
    create_ecr_repository(&p, "krobs/manifest", "MUTABLE");
    let run = p.krobs(&["--json", "--only", "bash"]).success();
    assert_eq!(run.json()["publication"]["repository_created"], false);
    p.assert_no_secrets();
}

// -------------------------------------------------------------------------------------------------
// `manifest pull` errors
// -------------------------------------------------------------------------------------------------

/// A tag (or commit) nothing published: exit 5 naming the repository and the tag; a reference
/// that is no tag nor digest: exit 2.
#[test]
fn pulling_a_missing_tag_or_a_bad_reference_is_one_line() {
    require_services();
    let p = Pipeline::oci();
    let repository = format!("{}/krobs/manifest", p.host());
    for (reference, tag) in [
        ("latest", "latest"),
        ("git-0123456789ab", "git-0123456789ab"),
        (
            "0123456789abcdef0123456789abcdef01234567",
            "git-0123456789ab",
        ),
    ] {
        let run = p
            .krobs(&["manifest", "pull", reference])
            .failure(exit::REGISTRY);
        assert_eq!(
            run.stderr,
            format!("error: no manifest `{tag}` in `{repository}`: pull `latest` or the `git-<commit>` of a commit a real run published\n")
        );
        assert_eq!(run.stdout, "");
    }
    let run = p
        .krobs(&["manifest", "pull", "sha256:abc"])
        .failure(exit::USAGE);
    assert_eq!(
        run.stderr,
        "error: `sha256:abc` is not a manifest reference: give `latest`, a commit (40 hex, or the tag `git-<first 12 hex>`), or the artifact's digest `sha256:<64 hex>`\n"
    );
    p.assert_no_secrets();
}

/// A registry (here a fake one) serving content that does not match its digests: a layer whose
/// descriptor lies, and an artifact that is not the digest it was asked by. Exit 5, never the
/// bytes.
#[test]
fn pulling_content_that_does_not_match_its_digest_is_refused() {
    let real = b"{\"format\":\"krobs-manifest/v1\"}\n".to_vec();
    let tampered = b"{\"format\":\"krobs-manifest/v1\",\"evil\":1}\n".to_vec();
    let layer_digest = format!("sha256:{}", krobs::plan::digest::bytes_sha256(&real));
    let artifact = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": ARTIFACT_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "size": 2
        },
        "layers": [{"mediaType": ARTIFACT_TYPE, "digest": layer_digest, "size": real.len()}]
    })
    .to_string();
    let asked_digest = format!("sha256:{}", "0".repeat(64));
    let found_digest = format!(
        "sha256:{}",
        krobs::plan::digest::bytes_sha256(artifact.as_bytes())
    );
    let tampered_text = String::from_utf8(tampered.clone()).unwrap();
    let blob_path = format!("/v2/krobs/manifest/blobs/{layer_digest}");
    let fake = HttpServer::start(
        &[],
        Arc::new(move |req: Request| {
            if req.path.starts_with("/v2/krobs/manifest/manifests/") {
                Reply::text(200, artifact.clone())
            } else if req.path == blob_path {
                Reply::text(200, tampered_text.clone())
            } else {
                Reply::text(404, "")
            }
        }),
    );
    let host = fake.url().trim_start_matches("http://").to_string();
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        crate::support::CONFIG.replace("registry.example.com:5000", &host),
    );
    let docker_config = tempfile::tempdir().unwrap();
    let env = [("DOCKER_CONFIG", docker_config.path().to_str().unwrap())];

    let run = repo
        .krobs_env(&["manifest", "pull"], &env)
        .failure(exit::REGISTRY);
    assert_eq!(
        run.stderr,
        format!(
            "error: `{host}/krobs/manifest:latest`: the registry served a manifest layer whose sha256 is `sha256:{}`, not `{layer_digest}`; do not deploy it, publish the release again\n",
            krobs::plan::digest::bytes_sha256(&tampered)
        )
    );
    assert_eq!(run.stdout, "");

    let run = repo
        .krobs_env(&["manifest", "pull", &asked_digest], &env)
        .failure(exit::REGISTRY);
    assert_eq!(
        run.stderr,
        format!("error: `{host}/krobs/manifest@{asked_digest}`: the registry served an artifact whose sha256 is `{found_digest}`, not `{asked_digest}`; do not deploy it, publish the release again\n")
    );
    assert_eq!(run.stdout, "");
    // The layer was never read for an artifact that is not what was asked.
    let asked: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        asked.iter().filter(|p| p.contains("/blobs/")).count(),
        1,
        "{asked:?}"
    );
}
