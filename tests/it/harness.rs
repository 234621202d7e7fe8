//! What Harness runs: the Custom Artifact script `.harness/scripts/list-krobs.sh` against real
//! registries, held byte for byte against `krobs-build manifest pull --format harness`, and
//! the `.harness/` YAML held together: the artifact attributes are the Harness view's keys, the
//! values fill every placeholder of the Kubernetes template, and the rendered Job and CronJob
//! pass `kubernetes-validate --strict`. Run with
//! `bash tests/run.sh -E 'binary_id(krobs::it) & test(/^harness::/)'`.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::e2e_support::{Pipeline, USER};
use crate::support::http_server::{HttpServer, Reply, Request};
use crate::support::releases::{
    edge_repo, go_render, publish_fake, read_yaml_all, validate_kubernetes,
};
use crate::support::services::{
    base64_encode, http_request, moto_registry_password, python3, run_with_stdin, Moto, Registry,
};
use crate::support::{copy_project_into, read_yaml, Repo, Run};
use krobs::exit;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SCRIPT: &str = ".harness/scripts/list-krobs.sh";
const MEDIA_TYPE: &str = "application/vnd.krobs.manifest.v1+json";
/// The keys of each script in the Harness view, in their agreed order.
const VIEW_KEYS: [&str; 15] = [
    "id",
    "version",
    "language",
    "owner",
    "image",
    "command",
    "kind",
    "schedule",
    "timeout_seconds",
    "step_timeout",
    "retries",
    "cpu",
    "memory",
    "monitor_url",
    "values",
];
const PASSWORD: &str = "pa'ss \"w~rd?";

// -------------------------------------------------------------------------------------------------
// The artifact script against krobs-build's own publishing
// -------------------------------------------------------------------------------------------------

#[test]
fn the_artifact_script_prints_what_manifest_pull_prints() {
    let p = Pipeline::oci();
    // The run report names the published reference (CircleCI prints it with this jq path).
    let report = p.krobs(&["--progress", "plain", "--json"]).success().json();
    let published = report["publication"]["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("no .publication.reference in the report: {report}"))
        .to_string();
    let prefix = format!("{}/krobs/manifest@", p.host());
    let digest = published
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("`{published}` is not {prefix}sha256:..."))
        .to_string();
    let commit = p.head();
    let (user, password) = p.creds();
    let (user, password) = (user.to_string(), password.to_string());

    for reference in [None, Some(format!("git-{}", &commit[..12])), Some(digest)] {
        let mut args = vec!["manifest", "pull"];
        if let Some(r) = &reference {
            args.push(r);
        }
        args.extend(["--format", "harness"]);
        let pulled = p.krobs(&args).success();
        let listed = artifact_script(&p.host(), reference.as_deref(), Some((&user, &password)));
        p.record("the artifact script", &listed.stdout);
        p.record("the artifact script", &listed.stderr);
        let listed = listed.success();
        assert_eq!(
            listed.stdout, pulled.stdout,
            "the artifact script and `manifest pull --format harness` differ\n{listed}\n{pulled}"
        );
        assert_eq!(listed.stdout.lines().count(), 1, "{listed}");

        // And both say what the release manifest says.
        let view = listed.json();
        let manifest = p.manifest_bytes();
        assert_eq!(
            view["manifest"],
            format!("sha256:{}", sha256_hex(&manifest))
        );
        assert_eq!(view["commit"], commit.as_str());
        let manifest: Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(
            listed.stdout,
            format!(
                "{}\n",
                harness_view(&manifest, &sha256_of(&p.manifest_bytes()))
            )
        );
        let ids: Vec<&str> = view["scripts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        // Every script of this repository, one of them the python drain.
        let in_repo = walk_scripts(&p.repo.root.join("languages"));
        assert_eq!(ids.len(), in_repo, "{listed}");
        assert!(ids.contains(&"python/drain_node"), "{listed}");
    }
    p.assert_no_secrets();
}

// -------------------------------------------------------------------------------------------------
// The artifact script against a release pushed by hand (the agreed artifact format)
// -------------------------------------------------------------------------------------------------

#[test]
fn the_artifact_script_reads_the_agreed_artifact_with_basic_auth() {
    let registry = Registry::start(&[(USER, PASSWORD)]);
    let manifest = fixture_manifest(false);
    let pushed = push_release(
        &registry,
        "krobs/manifest",
        &manifest,
        &["latest", "git-0123456789ab"],
    );
    let expected = format!(
        "{}\n",
        harness_view(&serde_json::from_slice(&manifest).unwrap(), &pushed.layer)
    );
    assert!(expected.contains(r#""command":"[\"/opt/krobs/bin/krobs-run\",\"--id\",\"python/report\",\"--\",\"python3\",\"/opt/krobs/scripts/report.py\"]""#));
    assert!(expected.contains(
        r#""schedule":"","timeout_seconds":"3600","step_timeout":"4200s","retries":"1""#
    ));

    for reference in [None, Some("git-0123456789ab"), Some(pushed.oci.as_str())] {
        let run = artifact_script(&registry.addr(), reference, Some((USER, PASSWORD))).success();
        assert_eq!(run.stdout, expected, "{run}");
        assert_eq!(run.stderr, "", "{run}");
    }

    // Harness reads the result from $HARNESS_ARTIFACT_RESULT_PATH.
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("result.json");
    let run = script_command(
        &registry.addr(),
        None,
        Some((USER, PASSWORD)),
        &[("HARNESS_ARTIFACT_RESULT_PATH", result.to_str().unwrap())],
    )
    .success();
    assert_eq!(run.stdout, "", "{run}");
    assert_eq!(fs::read_to_string(&result).unwrap(), expected);
}

#[test]
fn the_artifact_script_answers_a_bearer_challenge() {
    let registry = Registry::start(&[(USER, PASSWORD)]);
    let manifest = fixture_manifest(false);
    let pushed = push_release(&registry, "krobs/manifest", &manifest, &["latest"]);
    let front = BearerFront::start(registry.addr());
    let run = artifact_script(&front.addr, None, Some((USER, PASSWORD))).success();
    let expected = harness_view(&serde_json::from_slice(&manifest).unwrap(), &pushed.layer);
    assert_eq!(run.stdout, format!("{expected}\n"), "{run}");
    assert!(front.tokens_issued() >= 1, "no token was asked for\n{run}");

    let run = artifact_script(&front.addr, None, Some((USER, "wrong"))).failure(exit::INTERNAL);
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "list-krobs: the token service of {} answered HTTP 401: check KROBS_REGISTRY_USERNAME / KROBS_REGISTRY_PASSWORD",
            front.addr
        ),
        "{run}"
    );
}

#[test]
fn the_artifact_script_gets_an_ecr_token_from_the_aws_cli() {
    // moto answers ECR's GetAuthorizationToken; the registry takes what it hands out (user AWS).
    let moto = Moto::start();
    let registry = Registry::start(&[("AWS", &moto_registry_password(moto.account()))]);
    let manifest = fixture_manifest(false);
    let pushed = push_release(&registry, "krobs/manifest", &manifest, &["latest"]);
    let expected = harness_view(&serde_json::from_slice(&manifest).unwrap(), &pushed.layer);

    let dir = tempfile::tempdir().unwrap();
    let (config, credentials) = (dir.path().join("config"), dir.path().join("credentials"));
    fs::write(&config, "").unwrap();
    fs::write(&credentials, "").unwrap();
    let aws_env = moto.aws_env();
    let mut env: Vec<(&str, &str)> = aws_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend([
        ("KROBS_REGISTRY_KIND", "ecr"),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
    ]);
    let run = script_command(&registry.addr(), None, None, &env).success();
    assert_eq!(run.stdout, format!("{expected}\n"), "{run}");
    assert!(
        moto.log().contains("POST / "),
        "moto saw no GetAuthorizationToken\n{}",
        moto.log()
    );
    assert!(
        !run.stderr.contains(&moto_registry_password(moto.account())),
        "{run}"
    );

    // Without the AWS CLI's credentials, one line says what to check.
    let no_keys: Vec<(&str, &str)> = env
        .iter()
        .copied()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"))
        .collect();
    let run = script_command(&registry.addr(), None, None, &no_keys).failure(exit::INTERNAL);
    assert_eq!(
        run.stderr.lines().last().unwrap(),
        "list-krobs: aws ecr get-login-password failed in us-east-1: check the delegate's AWS credentials",
        "{run}"
    );
}

#[test]
fn the_artifact_script_refuses_what_it_cannot_trust() {
    let registry = Registry::start(&[(USER, PASSWORD)]);
    let host = registry.addr();
    let manifest = fixture_manifest(false);
    let pushed = push_release(&registry, "krobs/manifest", &manifest, &["latest"]);

    // Credentials: none, and wrong ones. The password never shows.
    let run = artifact_script(&host, None, None).failure(exit::INTERNAL);
    assert_eq!(
        run.stderr.trim_end(),
        format!("list-krobs: {host} wants credentials: set KROBS_REGISTRY_USERNAME and KROBS_REGISTRY_PASSWORD"),
    );
    let run = artifact_script(&host, None, Some((USER, "not-it"))).failure(exit::INTERNAL);
    assert_eq!(
        run.stderr.trim_end(),
        format!("list-krobs: {host} refused the credentials (HTTP 401): check KROBS_REGISTRY_USERNAME / KROBS_REGISTRY_PASSWORD"),
    );

    // A tag nobody published.
    let run = artifact_script(&host, Some("git-fedcba987654"), Some((USER, PASSWORD)))
        .failure(exit::INTERNAL);
    assert_eq!(
        run.stderr.trim_end(),
        format!("list-krobs: no manifest `{host}/krobs/manifest:git-fedcba987654`: has a release been published there?"),
    );
    let run =
        artifact_script(&host, Some("../latest"), Some((USER, PASSWORD))).failure(exit::INTERNAL);
    assert!(run.stderr.contains("is neither a tag nor sha256:"), "{run}");

    // A preview manifest names no image digests: nothing to deploy.
    let preview = fixture_manifest(true);
    push_release(&registry, "krobs/manifest", &preview, &["preview"]);
    let run =
        artifact_script(&host, Some("preview"), Some((USER, PASSWORD))).failure(exit::INTERNAL);
    assert!(
        run.stderr
            .contains("a preview manifest names no image digests"),
        "{run}"
    );
    assert_eq!(run.stdout, "", "{run}");

    // An image that is not a Krobs release.
    push_release_as(
        &registry,
        "krobs/manifest",
        b"{}",
        "application/octet-stream",
        &["other"],
    );
    let run = artifact_script(&host, Some("other"), Some((USER, PASSWORD))).failure(exit::INTERNAL);
    assert!(
        run.stderr.contains("is not a Krobs manifest artifact"),
        "{run}"
    );

    // A blob whose bytes are not its digest (changed on the registry's disk) is refused.
    let hex = pushed.layer.trim_start_matches("sha256:");
    let data = registry.storage_dir().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let mut bytes = fs::read(&data).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    fs::write(&data, bytes).unwrap();
    let run = artifact_script(&host, None, Some((USER, PASSWORD))).failure(exit::INTERNAL);
    assert!(run.stderr.contains("refusing it"), "{run}");
    assert_eq!(run.stdout, "", "{run}");

    for run_text in [&run.stdout, &run.stderr] {
        assert!(!run_text.contains(PASSWORD));
        assert!(!run_text.contains(&base64_encode(format!("{USER}:{PASSWORD}").as_bytes())));
    }
}

// -------------------------------------------------------------------------------------------------
// The .harness YAML
// -------------------------------------------------------------------------------------------------

/// The artifact source of a service file: its spec.
fn source_of(service: &Value) -> &Value {
    let primary = &service["service"]["serviceDefinition"]["spec"]["artifacts"]["primary"];
    let source = &primary["sources"][0];
    assert_eq!(primary["primaryArtifactRef"], source["identifier"]);
    assert_eq!(source["type"], "CustomArtifact");
    source
}

/// Both services list with the repository's script, verbatim, and name their versions and
/// attributes after the view's keys.
#[test]
fn the_services_list_the_views_versions_and_attributes() {
    let script = fs::read_to_string(Path::new(ROOT).join(SCRIPT)).unwrap();
    assert!(
        !script.contains("<+"),
        "{SCRIPT} holds a Harness expression"
    );
    let mut release_keys = vec!["commit", "schedules"];
    let mut script_keys: Vec<&str> = VIEW_KEYS
        .iter()
        .copied()
        .filter(|k| *k != "version")
        .collect();
    for (file, array, version, attributes) in [
        (
            ".harness/service.yaml",
            "$.scripts",
            "version",
            &mut script_keys,
        ),
        (
            ".harness/schedules-service.yaml",
            "$.releases",
            "release",
            &mut release_keys,
        ),
    ] {
        let service = yaml(file);
        assert_eq!(
            service["service"]["serviceDefinition"]["type"], "Kubernetes",
            "{file}"
        );
        let source = source_of(&service);
        let spec = &source["spec"];
        assert_eq!(
            spec["version"], "<+input>",
            "{file}: the version is picked at run time"
        );
        assert_eq!(
            spec["inputs"],
            json!([{"name": "KROBS_VERSION", "type": "String", "value": "<+input>"}]),
            "{file}: the pipeline passes the version picked back to the script"
        );
        let fetch = &spec["scripts"]["fetchAllArtifacts"];
        assert_eq!(fetch["artifactsArrayPath"], array, "{file}");
        assert_eq!(fetch["versionPath"], version, "{file}");
        let mut names: Vec<&str> = fetch["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                assert_eq!(a["type"], "String", "{a}");
                assert_eq!(a["name"], a["value"], "{file}: {a}");
                a["name"].as_str().unwrap()
            })
            .collect();
        names.sort();
        attributes.sort();
        assert_eq!(&names, attributes, "{file}");
        let inline = fetch["spec"]["source"]["spec"]["script"].as_str().unwrap();
        assert!(
            inline.ends_with(&script),
            "the inline script of {file} is not {SCRIPT} verbatim: copy it again"
        );
        let settings = &inline[..inline.len() - script.len()];
        for var in [
            "KROBS_REGISTRY",
            "KROBS_REGISTRY_USERNAME",
            "KROBS_REGISTRY_PASSWORD",
        ] {
            assert!(
                script.contains(&format!("${{{var}")),
                "{SCRIPT} does not read {var}"
            );
            assert!(
                settings.contains(&format!("{var}=")),
                "{file} does not set {var}"
            );
        }
        let manifest = &service["service"]["serviceDefinition"]["spec"]["manifests"][0]["manifest"];
        assert_eq!(manifest["type"], "K8sManifest", "{file}");
        for folder in manifest["spec"]["store"]["spec"]["paths"]
            .as_array()
            .unwrap()
        {
            assert!(
                Path::new(ROOT).join(folder.as_str().unwrap()).is_dir(),
                "{file}: {folder}"
            );
        }
        for values in manifest["spec"]["valuesPaths"].as_array().unwrap() {
            assert!(
                Path::new(ROOT).join(values.as_str().unwrap()).is_file(),
                "{file}: {values}"
            );
        }
    }
}

/// The templates are what the renderer generates, and their values read only what the
/// services list or Harness knows.
#[test]
fn the_templates_are_generated_by_the_renderer_and_fed_by_known_expressions() {
    for (which, template, values) in [
        (
            "krob",
            ".harness/manifests/templates/krob.yaml",
            ".harness/manifests/values.yaml",
        ),
        (
            "schedules",
            ".harness/manifests/schedules/templates/schedules.yaml",
            ".harness/manifests/schedules/values.yaml",
        ),
    ] {
        let repo = Repo::new();
        let generated = repo
            .krobs(&["render", "--harness-template", which])
            .success()
            .stdout;
        let checked_in = fs::read_to_string(Path::new(ROOT).join(template)).unwrap();
        assert!(
            generated == checked_in,
            "{template} is not what the renderer generates: run `krobs-build render --harness-template {which} > {template}`"
        );
        // Every `$.Values.x` of the template is a key of its values file.
        let keys = yaml(values);
        for key in checked_in.split("$.Values.").skip(1).map(|rest| {
            rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap()
        }) {
            assert!(
                keys.get(key).is_some(),
                "{template} reads `{key}`, not in {values}"
            );
        }
    }
}

/// "Run a krob": the version picked (a script at a release) is given back to the artifact
/// script; the step's timeout is the Job's deadline and a margin; a Job is watched, a CronJob
/// not.
#[test]
fn the_run_pipeline_pins_the_version_picked_and_outlasts_the_job() {
    let pipeline = yaml(".harness/pipeline.yaml");
    let service = yaml(".harness/service.yaml");
    assert!(
        pipeline["pipeline"]["variables"].is_null(),
        "no free-text inputs"
    );
    let stage = &pipeline["pipeline"]["stages"][0]["stage"];
    assert_eq!(stage["type"], "Deployment");
    let spec = &stage["spec"];
    assert_eq!(
        spec["service"]["serviceRef"],
        service["service"]["identifier"]
    );
    check_pins(stage, &service);
    assert_eq!(
        spec["environment"]["environmentRef"],
        "<+input>.allowedValues(staging,production)"
    );
    let steps = spec["execution"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "one step");
    let step = &steps[0]["step"];
    assert_eq!(step["type"], "K8sApply");
    assert_eq!(step["timeout"], "<+artifact.metadata.step_timeout>");
    assert_eq!(
        step["spec"]["skipSteadyStateCheck"],
        "<+<+artifact.metadata.kind> == \"CronJob\">"
    );
    let folder = service["service"]["serviceDefinition"]["spec"]["manifests"][0]["manifest"]
        ["spec"]["store"]["spec"]["paths"][0]
        .as_str()
        .unwrap();
    for file in step["spec"]["filePaths"].as_array().unwrap() {
        let path = Path::new(ROOT).join(folder).join(file.as_str().unwrap());
        assert!(
            path.is_file(),
            "the step applies {}, which does not exist",
            path.display()
        );
    }
    let values =
        fs::read_to_string(Path::new(ROOT).join(".harness/manifests/values.yaml")).unwrap();
    assert!(
        values.contains("<+pipeline.sequenceId>"),
        "Job names are not unique per execution"
    );
}

/// The serviceInputs of a stage pick the version at run time and pass the same field, by its
/// fully qualified name, to the artifact script as KROBS_VERSION.
fn check_pins(stage: &Value, service: &Value) {
    let ours = source_of(service);
    let sources = &stage["spec"]["service"]["serviceInputs"]["serviceDefinition"]["spec"]
        ["artifacts"]["primary"]["sources"];
    let source = &sources[0];
    assert_eq!(source["identifier"], ours["identifier"]);
    assert_eq!(source["spec"]["version"], "<+input>");
    let fqn = format!(
        "<+pipeline.stages.{}.spec.service.serviceInputs.serviceDefinition.spec.artifacts.primary.sources.{}.spec.version>",
        stage["identifier"].as_str().unwrap(),
        ours["identifier"].as_str().unwrap()
    );
    assert_eq!(
        source["spec"]["inputs"],
        json!([{"name": "KROBS_VERSION", "type": "String", "value": fqn}])
    );
}

/// "Sync schedules": a release's CronJobs as a set, pruned (Harness's rolling deployment, as
/// K8sApply cannot prune), an approval before production only; the trigger runs it for
/// staging with the release CircleCI's webhook names.
#[test]
fn the_schedules_pipeline_prunes_asks_before_production_and_is_triggered_for_staging() {
    let pipeline = yaml(".harness/schedules-pipeline.yaml");
    let service = yaml(".harness/schedules-service.yaml");
    let trigger = yaml(".harness/schedules-trigger.yaml");
    let stage = &pipeline["pipeline"]["stages"][0]["stage"];
    assert_eq!(
        stage["spec"]["service"]["serviceRef"],
        service["service"]["identifier"]
    );
    check_pins(stage, &service);
    let steps = stage["spec"]["execution"]["steps"].as_array().unwrap();
    let kinds: Vec<&str> = steps
        .iter()
        .map(|s| s["step"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["HarnessApproval", "K8sRollingDeploy"]);
    let approval = &steps[0]["step"];
    assert_eq!(
        approval["when"],
        json!({"stageStatus": "Success", "condition": "<+env.identifier> == \"production\""})
    );
    assert!(approval["spec"]["approvers"]["minimumCount"].as_u64() >= Some(1));
    assert_eq!(steps[1]["step"]["spec"]["pruningEnabled"], true);
    let rollback = &stage["spec"]["execution"]["rollbackSteps"][0]["step"];
    assert_eq!(rollback["type"], "K8sRollingRollback");
    assert_eq!(
        stage["spec"]["environment"]["environmentRef"],
        "<+input>.allowedValues(staging,production)"
    );

    let t = &trigger["trigger"];
    assert_eq!(t["pipelineIdentifier"], pipeline["pipeline"]["identifier"]);
    assert_eq!(t["source"]["type"], "Webhook");
    assert_eq!(t["source"]["spec"]["type"], "Custom");
    let inputs = yaml_text(t["inputYaml"].as_str().unwrap());
    assert_eq!(
        inputs["pipeline"]["identifier"],
        pipeline["pipeline"]["identifier"]
    );
    let run = &inputs["pipeline"]["stages"][0]["stage"];
    assert_eq!(run["identifier"], stage["identifier"]);
    assert_eq!(run["spec"]["environment"]["environmentRef"], "staging");
    let source = &run["spec"]["service"]["serviceInputs"]["serviceDefinition"]["spec"]["artifacts"]
        ["primary"]["sources"][0];
    assert_eq!(source["identifier"], source_of(&service)["identifier"]);
    assert_eq!(source["spec"]["version"], "<+trigger.payload.release>");
    // What CircleCI posts names that release.
    let circleci = fs::read_to_string(Path::new(ROOT).join(".circleci/config.yml")).unwrap();
    assert!(
        circleci.contains("{release: $release, reference: $reference"),
        "{circleci}"
    );
}

/// Harness's own engine (Go text/template + Sprig, tests/gotemplate) fills the templates with
/// the values the artifact script lists for a release in a real registry, as Harness's
/// expressions would: the objects are, object for object, what `krobs-build render` prints
/// (a Job's run suffix aside), for every script of this repository and the edge cases; both
/// are valid for the oldest and the newest Kubernetes.
#[test]
fn harness_applies_what_render_prints_for_every_script_and_edge_case() {
    let this = Repo::new();
    copy_project_into(&this);
    this.commit_all("the project");
    let this_manifest = publish_fake(&this, "out/krobs-manifest.json");
    let edge = edge_repo();
    let edge_manifest = publish_fake(&edge, "out/manifest.json");
    let registry = Registry::start(&[(USER, PASSWORD)]);
    let mut harness_docs = Vec::new();
    let mut render_docs = Vec::new();
    for (repo, manifest, rel, repository) in [
        (
            &this,
            &this_manifest,
            "out/krobs-manifest.json",
            "krobs/manifest",
        ),
        (&edge, &edge_manifest, "out/manifest.json", "edge/manifest"),
    ] {
        push_release(&registry, repository, manifest, &["latest"]);
        let listed = script_command(
            &registry.addr(),
            None,
            Some((USER, PASSWORD)),
            &[("KROBS_MANIFEST_REPOSITORY", repository)],
        )
        .success();
        let view = listed.json();
        let scripts = view["scripts"].as_array().unwrap();
        assert!(scripts.len() >= 4, "{listed}");
        for script in scripts {
            let id = script["id"].as_str().unwrap();
            let values = harness_values(".harness/manifests/values.yaml", &|expr| match expr {
                "artifact.metadata.values" => script["values"].as_str().map(str::to_string),
                "infra.namespace" => Some("ops".to_string()),
                "pipeline.sequenceId" => Some("123042".to_string()),
                _ => None,
            });
            let harness = go_render(
                &Path::new(ROOT).join(".harness/manifests/templates/krob.yaml"),
                &values,
            );
            let rendered = repo
                .krobs(&["render", id, "--manifest", rel, "--namespace", "ops"])
                .success()
                .stdout;
            let mut ours = one(read_yaml_all(&harness), &harness);
            let mut theirs = read_yaml(&rendered);
            if theirs["kind"] == "Job" {
                // The run suffix: render's is random, Harness's the execution's number.
                let name = theirs["metadata"]["name"].as_str().unwrap().to_string();
                let base = &name[..name.len() - 6];
                assert_eq!(ours["metadata"]["name"], format!("{base}-23042"), "{id}");
                ours["metadata"]["name"] = json!(base);
                theirs["metadata"]["name"] = json!(base);
            }
            assert_eq!(
                ours, theirs,
                "{id}: Harness applies\n{harness}\nrender prints\n{rendered}"
            );
            harness_docs.push(harness);
            render_docs.push(rendered);
        }

        // The release's schedules, as a set.
        let release = &view["releases"][0];
        assert_eq!(release["release"], view["manifest"]);
        let values = harness_values(
            ".harness/manifests/schedules/values.yaml",
            &|expr| match expr {
                "artifact.metadata.schedules" => release["schedules"].as_str().map(str::to_string),
                "infra.namespace" => Some("ops".to_string()),
                _ => None,
            },
        );
        let harness = go_render(
            &Path::new(ROOT).join(".harness/manifests/schedules/templates/schedules.yaml"),
            &values,
        );
        let rendered = repo
            .krobs(&[
                "render",
                "--schedules",
                "--manifest",
                rel,
                "--namespace",
                "ops",
            ])
            .success()
            .stdout;
        let ours = read_yaml_all(&harness);
        assert!(!ours.is_empty(), "{harness}");
        assert_eq!(
            ours,
            read_yaml_all(&rendered),
            "Harness applies\n{harness}\nrender prints\n{rendered}"
        );
        harness_docs.push(harness);
    }
    validate_kubernetes(&harness_docs);
    validate_kubernetes(&render_docs);
}

fn one(mut docs: Vec<Value>, text: &str) -> Value {
    assert_eq!(docs.len(), 1, "{text}");
    docs.remove(0)
}

/// A version picked in Harness runs its own release: a real release published by krobs-build
/// to a real registry and listed by the artifact script, then a newer release of a changed
/// script: listed from `latest`, the version picked is gone (Harness's exact match then finds
/// nothing, rather than another image); listed with the version picked (KROBS_VERSION, as
/// the pipeline passes it), it is there with its old image.
#[test]
fn a_version_picked_runs_its_release_whatever_was_published_since() {
    let p = Pipeline::oci();
    let (user, password) = p.creds();
    let (user, password) = (user.to_string(), password.to_string());
    let creds = Some((user.as_str(), password.as_str()));
    p.krobs(&["--progress", "plain"]).success();
    let listed = artifact_script(&p.host(), None, creds).success();
    let first = listed.json();
    let picked = find(&first, "python/drain_node");
    let version = picked["version"].as_str().unwrap().to_string();
    assert_eq!(
        version,
        format!("python/drain_node@{}", first["manifest"].as_str().unwrap())
    );

    // A newer release: the python scripts changed, so python's image did.
    let script = p.repo.path("languages/python/scripts/drain_node.py");
    let mut text = fs::read_to_string(&script).unwrap();
    text.push_str("# a change published after the version was picked\n");
    fs::write(&script, text).unwrap();
    p.commit("change a python script");
    p.krobs(&["--progress", "plain"]).success();
    let latest_run = artifact_script(&p.host(), None, creds).success();
    let latest = latest_run.json();
    let newer = find(&latest, "python/drain_node");
    assert_ne!(
        newer["image"], picked["image"],
        "the newer release has a new image"
    );
    assert_ne!(latest["manifest"], first["manifest"]);
    assert!(
        latest["scripts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["version"] != version.as_str()),
        "listed from latest, the version picked must be absent"
    );

    // At execution: the version picked lists its own release.
    for pin in [
        version.clone(),
        first["manifest"].as_str().unwrap().to_string(),
    ] {
        let run = script_command(&p.host(), None, creds, &[("KROBS_VERSION", &pin)]).success();
        assert_eq!(
            run.stdout, listed.stdout,
            "KROBS_VERSION={pin} lists the first release"
        );
        let again = run.json();
        let found: Vec<&Value> = again["scripts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["version"] == version.as_str())
            .collect();
        assert_eq!(
            found.len(),
            1,
            "Harness finds the version picked by exact match"
        );
        assert_eq!(
            found[0]["image"], picked["image"],
            "and runs the image picked"
        );
        assert_eq!(found[0]["values"], picked["values"]);
    }
    // While listing (nothing picked yet) Harness passes an unresolved expression or nothing.
    for unresolved in ["", "<+pipeline.stages.run.spec.version>", "null"] {
        let run =
            script_command(&p.host(), None, creds, &[("KROBS_VERSION", unresolved)]).success();
        assert_eq!(run.stdout, latest_run.stdout);
        assert_eq!(run.stderr, "", "{run}");
    }
    // A version naming a release that is not there fails: never another release instead.
    let missing = format!("python/drain_node@sha256:{}", "0".repeat(64));
    let run = script_command(&p.host(), None, creds, &[("KROBS_VERSION", &missing)])
        .failure(exit::INTERNAL);
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "list-krobs: no release sha256:{} in {}/krobs/manifest: the version picked names a manifest that is not there",
            "0".repeat(64),
            p.host()
        )
    );
    p.assert_no_secrets();
}

fn find<'a>(view: &'a Value, id: &str) -> &'a Value {
    view["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {view}"))
}

// -------------------------------------------------------------------------------------------------
// Helpers: the script, the agreed view, a hand-made release, YAML, Go templating
// -------------------------------------------------------------------------------------------------

/// `bash .harness/scripts/list-krobs.sh` for `host`, the reference (default: none, `latest`)
/// and credentials, with a clean environment (no KROBS_* or AWS_* leaking in).
fn artifact_script(host: &str, reference: Option<&str>, creds: Option<(&str, &str)>) -> Run {
    script_command(host, reference, creds, &[])
}

fn script_command(
    host: &str,
    reference: Option<&str>,
    creds: Option<(&str, &str)>,
    extra: &[(&str, &str)],
) -> Run {
    let mut cmd = Command::new("bash");
    cmd.arg(Path::new(ROOT).join(SCRIPT));
    for (k, _) in std::env::vars() {
        if k.starts_with("KROBS_") || k.starts_with("AWS_") || k.starts_with("HARNESS_") {
            cmd.env_remove(k);
        }
    }
    if let Some((user, password)) = creds {
        cmd.env("KROBS_REGISTRY_USERNAME", user);
        cmd.env("KROBS_REGISTRY_PASSWORD", password);
    }
    let mut env = vec![("KROBS_REGISTRY", host)];
    if let Some(r) = reference {
        env.push(("KROBS_MANIFEST_REF", r));
    }
    env.extend_from_slice(extra);
    let mut run = Run::new(cmd, Path::new(ROOT), &[], &env);
    run.command = format!(
        "KROBS_REGISTRY_USERNAME/PASSWORD=<set, not shown> {}",
        run.command
    );
    run
}

/// The Harness view of a release manifest, as agreed (issues 6 and 14): compact, keys in this
/// order, every script value a string; a script's `values` (base64 of compact JSON) are its
/// Kubernetes object's, named by lint's rule. Written here from the agreement, not from either
/// tool.
fn harness_view(manifest: &Value, digest: &str) -> String {
    let s = |v: &Value| serde_json::to_string(v).unwrap();
    let text = |v: &Value| match v {
        Value::Null => "\"\"".to_string(),
        Value::String(_) => s(v),
        other => s(&Value::String(other.to_string())),
    };
    let object = |fields: &[(&str, String)]| {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    };
    let b64 = |json: String| s(&Value::String(base64_encode(json.as_bytes())));
    let monitor = text(&manifest["monitor_url"]);
    let commit = text(&manifest["commit"]);
    let values: Vec<String> = manifest["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sc| {
            let job = &sc["job"];
            let r = &job["resources"];
            let cron = job["kind"] == "CronJob";
            let id = sc["id"].as_str().unwrap();
            let or = |v: &Value, default: &str| match v {
                Value::Null => s(&Value::String(default.to_string())),
                v => text(v),
            };
            object(&[
                ("id", text(&sc["id"])),
                ("owner", text(&sc["header"]["owner"])),
                ("description", text(&sc["header"]["description"])),
                ("image", text(&sc["image"])),
                ("args", s(&sc["command"])),
                ("kind", text(&job["kind"])),
                (
                    "name",
                    s(&json!(format!("krobs-{}", id.replace(['/', '_'], "-")))),
                ),
                ("script_label", s(&json!(id.replace('/', ".")))),
                ("language_label", text(&sc["language"])),
                (
                    "schedule",
                    if cron {
                        text(&job["schedule"])
                    } else {
                        text(&Value::Null)
                    },
                ),
                (
                    "concurrency_policy",
                    if cron {
                        or(&job["concurrency_policy"], "Forbid")
                    } else {
                        text(&Value::Null)
                    },
                ),
                (
                    "active_deadline_seconds",
                    text(&job["active_deadline_seconds"]),
                ),
                ("backoff_limit", text(&job["backoff_limit"])),
                (
                    "ttl_seconds_after_finished",
                    text(&job["ttl_seconds_after_finished"]),
                ),
                ("cpu", text(&r["cpu_request"])),
                ("memory_request", text(&r["memory_request"])),
                ("memory_limit", text(&r["memory_limit"])),
                (
                    "ephemeral_storage",
                    or(&r["ephemeral_storage_request"], "1Gi"),
                ),
                ("tmp_size_limit", or(&r["tmp_size_limit"], "1Gi")),
                ("monitor_url", monitor.clone()),
                ("commit", commit.clone()),
                ("manifest", s(&json!(digest))),
            ])
        })
        .collect();
    let scripts: Vec<String> = manifest["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&values)
        .map(|(sc, values)| {
            let job = &sc["job"];
            let deadline = job["active_deadline_seconds"].as_u64().unwrap();
            let fields = [
                ("id", text(&sc["id"])),
                (
                    "version",
                    s(&json!(format!("{}@{digest}", sc["id"].as_str().unwrap()))),
                ),
                ("language", text(&sc["language"])),
                ("owner", text(&sc["header"]["owner"])),
                ("image", text(&sc["image"])),
                ("command", s(&Value::String(s(&sc["command"])))),
                ("kind", text(&job["kind"])),
                ("schedule", text(&job["schedule"])),
                ("timeout_seconds", text(&job["active_deadline_seconds"])),
                ("step_timeout", s(&json!(format!("{}s", deadline + 600)))),
                ("retries", text(&job["backoff_limit"])),
                ("cpu", text(&job["resources"]["cpu_request"])),
                ("memory", text(&job["resources"]["memory_request"])),
                ("monitor_url", monitor.clone()),
                ("values", b64(values.clone())),
            ];
            assert_eq!(fields.each_ref().map(|(k, _)| *k), VIEW_KEYS);
            object(&fields)
        })
        .collect();
    let crons: Vec<&String> = manifest["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&values)
        .filter(|(sc, _)| sc["job"]["kind"] == "CronJob")
        .map(|(_, v)| v)
        .collect();
    let schedules = format!(
        "{{\"cronjobs\":[{}]}}",
        crons
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    format!(
        "{{\"manifest\":\"{digest}\",\"commit\":{commit},\"scripts\":[{}],\"releases\":[{}]}}",
        scripts.join(","),
        object(&[
            ("release", s(&json!(digest))),
            ("commit", commit.clone()),
            ("schedules", b64(schedules)),
        ])
    )
}

/// A krobs-manifest/v1 release of two scripts: a Job and a CronJob.
fn fixture_manifest(preview: bool) -> Vec<u8> {
    let image = |lang: &str, n: char| {
        if preview {
            Value::Null
        } else {
            Value::String(format!(
                "registry.example.com/krobs/{lang}@sha256:{}",
                n.to_string().repeat(64)
            ))
        }
    };
    let manifest = serde_json::json!({
        "format": "krobs-manifest/v1",
        "preview": preview,
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "monitor_url": "http://krobs-monitor.platform.svc.cluster.local:8080",
        "languages": [],
        "scripts": [
            {
                "id": "bash/clear_read_only_blocks", "language": "bash",
                "path": "languages/bash/scripts/clear_read_only_blocks.sh",
                "image_path": "/opt/krobs/scripts/clear_read_only_blocks.sh",
                "image": image("bash", '1'), "sha256": "ab".repeat(32),
                "command": ["/opt/krobs/bin/krobs-run", "--id", "bash/clear_read_only_blocks", "--",
                            "bash", "/opt/krobs/scripts/clear_read_only_blocks.sh"],
                "header": {"owner": "search-infra \"core\" (#search-oncall)", "description": "Clears.",
                           "schedule": null, "timeout_seconds": null, "retries": null, "cpu": null, "memory": null},
                "job": {"kind": "Job", "schedule": null, "concurrency_policy": null,
                        "active_deadline_seconds": 3600, "backoff_limit": 1, "ttl_seconds_after_finished": 604800,
                        "resources": {"cpu_request": "100m", "memory_request": "256Mi", "memory_limit": "256Mi"}}
            },
            {
                "id": "python/report", "language": "python",
                "path": "languages/python/scripts/report.py",
                "image_path": "/opt/krobs/scripts/report.py",
                "image": image("python", '2'), "sha256": "cd".repeat(32),
                "command": ["/opt/krobs/bin/krobs-run", "--id", "python/report", "--",
                            "python3", "/opt/krobs/scripts/report.py"],
                "header": {"owner": "team-b", "description": "Reports.", "schedule": "0 3 * * *",
                           "timeout_seconds": 7200, "retries": 0, "cpu": "250m", "memory": "1Gi"},
                "job": {"kind": "CronJob", "schedule": "0 3 * * *", "concurrency_policy": "Forbid",
                        "active_deadline_seconds": 7200, "backoff_limit": 0, "ttl_seconds_after_finished": 604800,
                        "resources": {"cpu_request": "250m", "memory_request": "1Gi", "memory_limit": "1Gi"}}
            }
        ]
    });
    let mut bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    bytes.push(b'\n');
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

struct Pushed {
    /// The layer's digest: the manifest bytes'.
    layer: String,
    /// The OCI manifest's digest.
    oci: String,
}

/// Pushes `manifest` as the agreed artifact: OCI image manifest, artifactType and one layer
/// `application/vnd.krobs.manifest.v1+json`, the empty config; tagged with `tags`.
fn push_release(registry: &Registry, repository: &str, manifest: &[u8], tags: &[&str]) -> Pushed {
    push_release_as(registry, repository, manifest, MEDIA_TYPE, tags)
}

/// The registry's first user and password.
fn creds_of(registry: &Registry) -> (String, String) {
    registry.users()[0].clone()
}

fn push_release_as(
    registry: &Registry,
    repository: &str,
    bytes: &[u8],
    media_type: &str,
    tags: &[&str],
) -> Pushed {
    let (user, password) = creds_of(registry);
    let empty = push_blob(registry, repository, b"{}");
    let layer = push_blob(registry, repository, bytes);
    let oci = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": MEDIA_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2, "data": "e30="},
        "layers": [{"mediaType": media_type, "digest": layer, "size": bytes.len(),
                    "annotations": {"org.opencontainers.image.title": "krobs-manifest.json"}}]
    });
    let body = serde_json::to_vec(&oci).unwrap();
    for tag in tags {
        let resp = http_request(
            &registry.addr(),
            "PUT",
            &format!("/v2/{repository}/manifests/{tag}"),
            Some((&user, &password)),
            &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
            &body,
        )
        .unwrap();
        assert_eq!(resp.status, 201, "PUT manifest {tag}: {}", resp.text());
    }
    Pushed {
        layer,
        oci: sha256_of(&body),
    }
}

fn push_blob(registry: &Registry, repository: &str, bytes: &[u8]) -> String {
    let digest = sha256_of(bytes);
    let addr = registry.addr();
    let (user, password) = creds_of(registry);
    let auth = Some((user.as_str(), password.as_str()));
    let start = http_request(
        &addr,
        "POST",
        &format!("/v2/{repository}/blobs/uploads/"),
        auth,
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(start.status, 202, "start upload: {}", start.text());
    let location = start.header("Location").expect("Location").to_string();
    let path = location
        .split_once(&addr)
        .map_or(location.as_str(), |(_, p)| p);
    let sep = if path.contains('?') { '&' } else { '?' };
    let put = http_request(
        &addr,
        "PUT",
        &format!("{path}{sep}digest={digest}"),
        auth,
        &[("Content-Type", "application/octet-stream")],
        bytes,
    )
    .unwrap();
    assert_eq!(put.status, 201, "finish upload: {}", put.text());
    digest
}

/// A registry front that speaks the token flow: `401 Bearer realm=...` until a token obtained
/// from its `/token` (with the registry's basic credentials) comes back; then it forwards to the
/// registry with those credentials. On the tests' one HTTP server.
struct BearerFront {
    /// Serves until the front is dropped.
    _server: HttpServer,
    addr: String,
    tokens: Arc<AtomicUsize>,
}

impl BearerFront {
    fn start(upstream: String) -> BearerFront {
        let tokens = Arc::new(AtomicUsize::new(0));
        let issued = tokens.clone();
        let server = HttpServer::start(
            &[],
            Arc::new(move |req: Request| serve_bearer(&req, &upstream, &issued)),
        );
        let addr = server.addr();
        BearerFront {
            _server: server,
            addr,
            tokens,
        }
    }

    fn tokens_issued(&self) -> usize {
        self.tokens.load(Ordering::SeqCst)
    }
}

const TOKEN: &str = "krobs-test-token";

fn serve_bearer(req: &Request, upstream: &str, issued: &AtomicUsize) -> Reply {
    let reply = |status: u16, headers: &[(&str, &str)], body: &[u8]| Reply::Raw {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.to_vec(),
    };
    let basic = format!(
        "Basic {}",
        base64_encode(format!("{USER}:{PASSWORD}").as_bytes())
    );
    if req.path == "/token" {
        if req.authorization.as_deref() == Some(basic.as_str())
            && req
                .raw_query
                .contains("scope=repository%3Akrobs%2Fmanifest%3Apull")
        {
            issued.fetch_add(1, Ordering::SeqCst);
            let token = json!({ "token": TOKEN }).to_string();
            reply(
                200,
                &[("Content-Type", "application/json")],
                token.as_bytes(),
            )
        } else {
            reply(401, &[("Content-Type", "text/plain")], b"no")
        }
    } else if req.authorization.as_deref() == Some(format!("Bearer {TOKEN}").as_str()) {
        let accept = req.header("accept").unwrap_or("*/*");
        let Ok(resp) = http_request(
            upstream,
            "GET",
            &req.target(),
            Some((USER, PASSWORD)),
            &[("Accept", accept)],
            b"",
        ) else {
            return Reply::Close;
        };
        let content_type = resp
            .header("Content-Type")
            .unwrap_or("application/octet-stream")
            .to_string();
        reply(resp.status, &[("Content-Type", &content_type)], &resp.body)
    } else {
        let host = req.header("host").unwrap_or("127.0.0.1");
        let challenge = format!(
            "Bearer realm=\"http://{host}/token\",service=\"krobs-test\",scope=\"repository:krobs/manifest:pull\""
        );
        reply(
            401,
            &[
                ("Content-Type", "application/json"),
                ("WWW-Authenticate", &challenge),
            ],
            br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
        )
    }
}

/// How many files there are in the `scripts/` folders under `languages`.
fn walk_scripts(languages: &Path) -> usize {
    fs::read_dir(languages)
        .unwrap()
        .map(|lang| lang.unwrap().path().join("scripts"))
        .filter(|dir| dir.is_dir())
        .map(|dir| fs::read_dir(dir).unwrap().count())
        .sum()
}

/// A repository YAML file as JSON (through Python's YAML loader, installed by tests/run.sh).
fn yaml(rel: &str) -> Value {
    yaml_text(&fs::read_to_string(Path::new(ROOT).join(rel)).unwrap())
}

fn yaml_text(text: &str) -> Value {
    let mut cmd = Command::new(python3());
    cmd.args([
        "-c",
        "import json, sys\nfrom ruamel.yaml import YAML\nprint(json.dumps(YAML(typ='safe', pure=True).load(sys.stdin)))",
    ]);
    let out = run_with_stdin(&mut cmd, text);
    assert!(
        out.status.success(),
        "not YAML:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A values file as Harness resolves it: each `<+...>` expression replaced by what `resolve`
/// says (an expression it does not know fails the test).
fn harness_values(rel: &str, resolve: &dyn Fn(&str) -> Option<String>) -> String {
    let text = fs::read_to_string(Path::new(ROOT).join(rel)).unwrap();
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("<+") {
        out.push_str(&rest[..at]);
        let end = rest[at..]
            .find('>')
            .map(|e| at + e + 1)
            .expect("an unclosed <+ in a values file");
        let expr = &rest[at + 2..end - 1];
        let value = resolve(expr)
            .unwrap_or_else(|| panic!("{rel} uses <+{expr}>, unknown to this test: add it here"));
        out.push_str(&value);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}
