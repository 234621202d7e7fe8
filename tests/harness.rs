//! What Harness runs: the Custom Artifact script `.harness/scripts/list-krobs.sh` against real
//! registries, held byte for byte against `krobs-build manifest pull --format harness`, and
//! the `.harness/` YAML held together: the artifact attributes are the Harness view's keys, the
//! values fill every placeholder of the Kubernetes template, and the rendered Job and CronJob
//! pass `kubernetes-validate --strict`. Run with `bash tests/run.sh -E 'binary(harness)'`.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use serde_json::Value;
use sha2::{Digest, Sha256};

use support::e2e_support::{Pipeline, USER};
use support::services::{
    base64_encode, http_request, moto_registry_password, python3, run_with_stdin, Moto, Registry,
};
use support::Run;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SCRIPT: &str = ".harness/scripts/list-krobs.sh";
const MEDIA_TYPE: &str = "application/vnd.krobs.manifest.v1+json";
/// The keys of each script in the Harness view, in their agreed order.
const VIEW_KEYS: [&str; 12] = [
    "id",
    "language",
    "owner",
    "image",
    "command",
    "kind",
    "schedule",
    "timeout_seconds",
    "retries",
    "cpu",
    "memory",
    "monitor_url",
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
    assert!(expected.contains(r#""schedule":"","timeout_seconds":"3600","retries":"1""#));

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

    let run = artifact_script(&front.addr, None, Some((USER, "wrong"))).failure(1);
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
    let run = script_command(&registry.addr(), None, None, &no_keys).failure(1);
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
    let run = artifact_script(&host, None, None).failure(1);
    assert_eq!(
        run.stderr.trim_end(),
        format!("list-krobs: {host} wants credentials: set KROBS_REGISTRY_USERNAME and KROBS_REGISTRY_PASSWORD"),
    );
    let run = artifact_script(&host, None, Some((USER, "not-it"))).failure(1);
    assert_eq!(
        run.stderr.trim_end(),
        format!("list-krobs: {host} refused the credentials (HTTP 401): check KROBS_REGISTRY_USERNAME / KROBS_REGISTRY_PASSWORD"),
    );

    // A tag nobody published.
    let run = artifact_script(&host, Some("git-fedcba987654"), Some((USER, PASSWORD))).failure(1);
    assert_eq!(
        run.stderr.trim_end(),
        format!("list-krobs: no manifest `{host}/krobs/manifest:git-fedcba987654`: has a release been published there?"),
    );
    let run = artifact_script(&host, Some("../latest"), Some((USER, PASSWORD))).failure(1);
    assert!(run.stderr.contains("is neither a tag nor sha256:"), "{run}");

    // A preview manifest names no image digests: nothing to deploy.
    let preview = fixture_manifest(true);
    push_release(&registry, "krobs/manifest", &preview, &["preview"]);
    let run = artifact_script(&host, Some("preview"), Some((USER, PASSWORD))).failure(1);
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
    let run = artifact_script(&host, Some("other"), Some((USER, PASSWORD))).failure(1);
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
    let run = artifact_script(&host, None, Some((USER, PASSWORD))).failure(1);
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

#[test]
fn the_service_lists_the_scripts_with_the_views_keys() {
    let service = yaml(".harness/service.yaml");
    let spec = &service["service"]["serviceDefinition"]["spec"];
    assert_eq!(
        service["service"]["serviceDefinition"]["type"],
        "Kubernetes"
    );
    let primary = &spec["artifacts"]["primary"];
    let source = &primary["sources"][0];
    assert_eq!(primary["primaryArtifactRef"], source["identifier"]);
    assert_eq!(source["type"], "CustomArtifact");
    let fetch = &source["spec"]["scripts"]["fetchAllArtifacts"];
    assert_eq!(fetch["artifactsArrayPath"], "$.scripts");
    assert_eq!(fetch["versionPath"], "id");
    let attributes: Vec<(String, String)> = fetch["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|a| {
            assert_eq!(a["type"], "String", "{a}");
            (
                a["name"].as_str().unwrap().into(),
                a["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut names: Vec<&str> = attributes.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    let mut expected: Vec<&str> = VIEW_KEYS[1..].to_vec();
    expected.sort();
    assert_eq!(
        names, expected,
        "the attributes are the view's keys but `id` (the version)"
    );
    for (name, value) in &attributes {
        assert_eq!(name, value, "attribute `{name}` reads `{value}`");
    }

    // The inline script is the repository's script, verbatim, after the settings.
    let inline = fetch["spec"]["source"]["spec"]["script"].as_str().unwrap();
    let script = fs::read_to_string(Path::new(ROOT).join(SCRIPT)).unwrap();
    assert!(
        inline.ends_with(&script),
        "the inline script of .harness/service.yaml is not {SCRIPT} verbatim: copy it again"
    );
    assert!(
        !script.contains("<+"),
        "{SCRIPT} holds a Harness expression"
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
            "the service does not set {var}"
        );
    }
    assert_eq!(spec["manifests"][0]["manifest"]["type"], "K8sManifest");
}

#[test]
fn the_values_fill_every_placeholder_and_read_only_known_attributes() {
    let service = yaml(".harness/service.yaml");
    let fetch = &service["service"]["serviceDefinition"]["spec"]["artifacts"]["primary"]["sources"]
        [0]["spec"]["scripts"]["fetchAllArtifacts"];
    let attributes: Vec<&str> = fetch["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    let values_text =
        fs::read_to_string(Path::new(ROOT).join(".harness/manifests/values.yaml")).unwrap();
    let read: Vec<&str> = values_text
        .split("<+artifact.metadata.")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap()
        })
        .collect();
    assert!(
        read.len() >= 10,
        "values.yaml reads few attributes: {read:?}"
    );
    for key in &read {
        assert!(
            attributes.contains(key),
            "values.yaml reads `{key}`, which the service does not list"
        );
    }
    for key in &attributes {
        assert!(
            read.contains(key),
            "the service lists `{key}`, which values.yaml never reads"
        );
    }

    let values = yaml(".harness/manifests/values.yaml");
    let template =
        fs::read_to_string(Path::new(ROOT).join(".harness/manifests/templates/krob.yaml")).unwrap();
    let used: Vec<&str> = template
        .split(".Values.")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap()
        })
        .collect();
    assert!(used.len() > 20, "{used:?}");
    for key in used {
        assert!(
            values.get(key).is_some(),
            "templates/krob.yaml uses `.Values.{key}`, not in values.yaml"
        );
    }
}

#[test]
fn the_pipeline_applies_the_services_template() {
    let pipeline = yaml(".harness/pipeline.yaml");
    let service = yaml(".harness/service.yaml");
    let stage = &pipeline["pipeline"]["stages"][0]["stage"];
    assert_eq!(stage["type"], "Deployment");
    let spec = &stage["spec"];
    assert_eq!(
        spec["service"]["serviceRef"],
        service["service"]["identifier"]
    );
    let source =
        &spec["service"]["serviceInputs"]["serviceDefinition"]["spec"]["artifacts"]["primary"];
    let service_source = &service["service"]["serviceDefinition"]["spec"]["artifacts"]["primary"];
    assert_eq!(
        source["primaryArtifactRef"],
        service_source["primaryArtifactRef"]
    );
    assert_eq!(
        source["sources"][0]["identifier"],
        service_source["sources"][0]["identifier"]
    );
    assert_eq!(
        source["sources"][0]["spec"]["version"], "<+input>",
        "the script is a runtime input"
    );
    assert_eq!(
        spec["environment"]["environmentRef"],
        "<+input>.allowedValues(staging,production)"
    );
    let job_name = &pipeline["pipeline"]["variables"][0];
    assert_eq!(job_name["name"], "job_name");
    assert!(job_name["value"]
        .as_str()
        .unwrap()
        .starts_with("<+input>.regex("));

    let steps = spec["execution"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "one step");
    let step = &steps[0]["step"];
    assert_eq!(step["type"], "K8sApply");
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
    let values = service["service"]["serviceDefinition"]["spec"]["manifests"][0]["manifest"]
        ["spec"]["valuesPaths"][0]
        .as_str()
        .unwrap();
    assert!(Path::new(ROOT).join(values).is_file());

    // The job name input fits a CronJob (52) and, with a run number, a Job (63).
    let regex = job_name["value"].as_str().unwrap();
    assert!(regex.contains("{0,50}"), "{regex}");
    let values_text = fs::read_to_string(Path::new(ROOT).join(values)).unwrap();
    assert!(
        values_text.contains("<+pipeline.sequenceId>"),
        "Job names are not unique per execution"
    );
}

#[test]
fn the_template_renders_a_valid_job_and_cronjob() {
    let manifest: Value = serde_json::from_slice(&fixture_manifest(false)).unwrap();
    let view: Value = serde_json::from_str(&harness_view(&manifest, "sha256:00")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for script in view["scripts"].as_array().unwrap() {
        let kind = script["kind"].as_str().unwrap();
        let values = harness_values(script, "nightly-report", "42", "krobs");
        let template =
            fs::read_to_string(Path::new(ROOT).join(".harness/manifests/templates/krob.yaml"))
                .unwrap();
        let rendered = render(&template, &values);
        let file = dir.path().join(format!("{kind}.yaml"));
        fs::write(&file, &rendered).unwrap();

        let mut cmd = Command::new("kubernetes-validate");
        cmd.args(["--strict", "--no-warn"]).arg(&file);
        let run = Run::new(cmd, dir.path(), &[], &[]);
        assert_eq!(run.code, Some(0), "{rendered}\n{run}");

        let object = yaml_text(&rendered);
        assert_eq!(object["kind"], kind, "{rendered}");
        let job = if kind == "CronJob" {
            assert_eq!(object["metadata"]["name"], "nightly-report");
            assert_eq!(object["spec"]["schedule"], "0 3 * * *");
            assert_eq!(object["spec"]["concurrencyPolicy"], "Forbid");
            assert_eq!(object["spec"]["timeZone"], "Etc/UTC");
            assert!(object["spec"]["startingDeadlineSeconds"].is_u64());
            assert!(object["spec"]["successfulJobsHistoryLimit"].is_u64());
            assert!(object["spec"]["failedJobsHistoryLimit"].is_u64());
            &object["spec"]["jobTemplate"]["spec"]
        } else {
            assert_eq!(object["metadata"]["name"], "nightly-report-42");
            &object["spec"]
        };
        assert_eq!(object["metadata"]["namespace"], "krobs");
        assert_eq!(
            object["metadata"]["annotations"]["krobs.io/owner"],
            script["owner"]
        );
        assert_eq!(
            job["backoffLimit"].to_string(),
            script["retries"].as_str().unwrap()
        );
        assert_eq!(
            job["activeDeadlineSeconds"].to_string(),
            script["timeout_seconds"].as_str().unwrap()
        );
        assert!(job["ttlSecondsAfterFinished"].is_u64());
        assert_eq!(
            job["podFailurePolicy"]["rules"][0],
            serde_json::json!({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]})
        );
        let pod = &job["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let container = &pod["containers"][0];
        assert_eq!(container["image"], script["image"]);
        assert_eq!(
            container["command"].to_string(),
            script["command"].as_str().unwrap()
        );
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        assert_eq!(
            container["securityContext"]["capabilities"]["drop"],
            serde_json::json!(["ALL"])
        );
        assert_eq!(container["resources"]["requests"]["cpu"], script["cpu"]);
        assert_eq!(
            container["resources"]["requests"]["memory"],
            script["memory"]
        );
        assert_eq!(container["resources"]["limits"]["memory"], script["memory"]);
        let env: BTreeMap<String, String> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().into(),
                    e["value"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(env["KROBS_ID"], script["id"].as_str().unwrap());
        assert_eq!(env["KROBS_IMAGE"], script["image"].as_str().unwrap());
        assert_eq!(
            env["KROBS_MONITOR_URL"],
            script["monitor_url"].as_str().unwrap()
        );
    }
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

/// The Harness view of a release manifest, as agreed (issue 6): compact, keys in this order,
/// every script value a string. Written here from the agreement, not from either tool.
fn harness_view(manifest: &Value, digest: &str) -> String {
    let s = |v: &Value| serde_json::to_string(v).unwrap();
    let text = |v: &Value| match v {
        Value::Null => "\"\"".to_string(),
        Value::String(_) => s(v),
        other => s(&Value::String(other.to_string())),
    };
    let monitor = text(&manifest["monitor_url"]);
    let scripts: Vec<String> = manifest["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sc| {
            let job = &sc["job"];
            let fields = [
                ("id", text(&sc["id"])),
                ("language", text(&sc["language"])),
                ("owner", text(&sc["header"]["owner"])),
                ("image", text(&sc["image"])),
                ("command", s(&Value::String(s(&sc["command"])))),
                ("kind", text(&job["kind"])),
                ("schedule", text(&job["schedule"])),
                ("timeout_seconds", text(&job["active_deadline_seconds"])),
                ("retries", text(&job["backoff_limit"])),
                ("cpu", text(&job["resources"]["cpu_request"])),
                ("memory", text(&job["resources"]["memory_request"])),
                ("monitor_url", monitor.clone()),
            ];
            assert_eq!(fields.each_ref().map(|(k, _)| *k), VIEW_KEYS);
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        })
        .collect();
    format!(
        "{{\"manifest\":\"{digest}\",\"commit\":{},\"scripts\":[{}]}}",
        text(&manifest["commit"]),
        scripts.join(",")
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
/// registry with those credentials.
struct BearerFront {
    addr: String,
    tokens: Arc<AtomicUsize>,
}

impl BearerFront {
    fn start(upstream: String) -> BearerFront {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let tokens = Arc::new(AtomicUsize::new(0));
        let (me, issued) = (addr.clone(), tokens.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve_bearer(stream, &me, &upstream, &issued);
            }
        });
        BearerFront { addr, tokens }
    }

    fn tokens_issued(&self) -> usize {
        self.tokens.load(Ordering::SeqCst)
    }
}

const TOKEN: &str = "krobs-test-token";

fn serve_bearer(
    stream: TcpStream,
    me: &str,
    upstream: &str,
    issued: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let basic = format!(
        "Basic {}",
        base64_encode(format!("{USER}:{PASSWORD}").as_bytes())
    );
    let (status, content_type, body, extra) = if path.starts_with("/token?") {
        if header("authorization").as_deref() == Some(basic.as_str())
            && path.contains("scope=repository%3Akrobs%2Fmanifest%3Apull")
        {
            issued.fetch_add(1, Ordering::SeqCst);
            (
                200,
                "application/json".to_string(),
                format!("{{\"token\":\"{TOKEN}\"}}").into_bytes(),
                String::new(),
            )
        } else {
            (401, "text/plain".into(), b"no".to_vec(), String::new())
        }
    } else if header("authorization").as_deref() == Some(format!("Bearer {TOKEN}").as_str()) {
        let accept = header("accept").unwrap_or_else(|| "*/*".into());
        let resp = http_request(
            upstream,
            "GET",
            &path,
            Some((USER, PASSWORD)),
            &[("Accept", &accept)],
            b"",
        )?;
        let ct = resp
            .header("Content-Type")
            .unwrap_or("application/octet-stream")
            .to_string();
        (resp.status, ct, resp.body, String::new())
    } else {
        (
            401,
            "application/json".into(),
            b"{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}".to_vec(),
            format!(
                "WWW-Authenticate: Bearer realm=\"http://{me}/token\",service=\"krobs-test\",scope=\"repository:krobs/manifest:pull\"\r\n"
            ),
        )
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(&body)?;
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    Ok(())
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

/// values.yaml as Harness resolves it for one script of the view: its <+...> expressions
/// replaced (an expression this test does not know fails it), then read as YAML.
fn harness_values(
    script: &Value,
    job_name: &str,
    sequence: &str,
    namespace: &str,
) -> BTreeMap<String, String> {
    let text = fs::read_to_string(Path::new(ROOT).join(".harness/manifests/values.yaml")).unwrap();
    let id = script["id"].as_str().unwrap();
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("<+") {
        out.push_str(&rest[..at]);
        let end = rest[at..]
            .find('>')
            .map(|e| at + e + 1)
            .expect("an unclosed <+ in values.yaml");
        let expr = &rest[at + 2..end - 1];
        let value = match expr {
            "pipeline.variables.job_name" => job_name.to_string(),
            "pipeline.sequenceId" => sequence.to_string(),
            "infra.namespace" => namespace.to_string(),
            "artifact.version" => id.to_string(),
            r#"artifact.version.replace("/", ".")"# => id.replace('/', "."),
            other => match other.strip_prefix("artifact.metadata.") {
                Some(key) => script[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("the view has no `{key}`"))
                    .to_string(),
                None => panic!("values.yaml uses <+{other}>, unknown to this test: add it here"),
            },
        };
        out.push_str(&value);
        rest = &rest[end..];
    }
    out.push_str(rest);
    let values = yaml_text(&out);
    values
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// Go's text/template, for the subset the template promises to use: `{{ .Values.k }}`,
/// `{{ printf "%q" .Values.k }}`, `{{ if eq .Values.k "v" }}`/`else`/`end`, comments and the
/// `{{-`/`-}}` trim markers. Anything else fails the test.
fn render(template: &str, values: &BTreeMap<String, String>) -> String {
    let value = |key: &str| -> &str {
        let key = key
            .strip_prefix(".Values.")
            .unwrap_or_else(|| panic!("unsupported operand `{key}`"));
        values
            .get(key)
            .unwrap_or_else(|| panic!("no value `{key}`"))
    };
    let mut out = String::new();
    let mut emit: Vec<bool> = Vec::new(); // one entry per open `if`: is this branch taken?
    let mut taken: Vec<bool> = Vec::new();
    let mut rest = template;
    let on = |emit: &Vec<bool>| emit.iter().all(|b| *b);
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        let after = &rest[open + 2..];
        let close = after.find("}}").expect("an unclosed {{");
        let mut action = &after[..close];
        if let Some(a) = action.strip_prefix('-') {
            text = text.trim_end();
            action = a;
        }
        let mut next = &after[close + 2..];
        if let Some(a) = action.strip_suffix('-') {
            next = next.trim_start();
            action = a;
        }
        if on(&emit) {
            out.push_str(text);
        }
        let action = action.trim();
        let words: Vec<&str> = action.split_whitespace().collect();
        match words.as_slice() {
            _ if action.starts_with("/*") && action.ends_with("*/") => {}
            ["if", "eq", key, literal] => {
                let literal = literal
                    .strip_prefix('"')
                    .and_then(|l| l.strip_suffix('"'))
                    .expect("a quoted literal");
                let yes = value(key) == literal;
                emit.push(yes);
                taken.push(yes);
            }
            ["else"] => {
                let last = emit.last_mut().expect("else without if");
                *last = !*taken.last().unwrap();
            }
            ["end"] => {
                emit.pop().expect("end without if");
                taken.pop();
            }
            [key] if on(&emit) => out.push_str(value(key)),
            ["printf", "\"%q\"", key] if on(&emit) => out.push_str(&go_quote(value(key))),
            [_] | ["printf", "\"%q\"", _] => {}
            other => panic!(
                "the template uses `{{{{ {} }}}}`, outside the subset this test renders",
                other.join(" ")
            ),
        }
        rest = next;
    }
    assert!(emit.is_empty(), "an if without end");
    out.push_str(rest);
    out
}

/// Go's `%q` for printable ASCII (what the test values hold).
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            other => panic!("go_quote: {other:?} is outside printable ASCII"),
        }
    }
    out.push('"');
    out
}
