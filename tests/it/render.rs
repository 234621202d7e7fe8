//! `krobs-build render` through the real binary: every script of this repository and the edge
//! cases give objects `kubernetes-validate --strict` accepts, read back (by PyYAML, a YAML 1.1
//! reader like kubectl's) with exactly the values the manifest and the command line gave; bad
//! input gets one line and its exit code.
//!
//! Needs `kubernetes-validate` and Python's `yaml` on PATH (tests/run.sh installs them).

use std::path::Path;

use crate::support::releases::{
    edge_repo, publish_fake, publish_fake_salted, read_yaml_all, validate_kubernetes, LONG_CRON,
    LONG_JOB,
};
use crate::support::{copy_project_into, read_yaml, Repo};
use krobs::exit;
use krobs::plan::digest::bytes_sha256;
use serde_json::{json, Value};

fn manifest(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The Job spec of a Job or a CronJob.
fn job_spec(obj: &Value) -> &Value {
    match obj["kind"].as_str().unwrap() {
        "Job" => &obj["spec"],
        "CronJob" => &obj["spec"]["jobTemplate"]["spec"],
        other => panic!("unexpected kind {other}"),
    }
}

fn container(obj: &Value) -> &Value {
    let containers = job_spec(obj)["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{obj}");
    &containers[0]
}

/// The container's environment as (name, value) pairs, in order.
fn env(obj: &Value) -> Vec<(String, String)> {
    container(obj)["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
}

/// Checks what every rendered object holds for `script` of manifest `m` (bytes `bytes`).
fn check_object(obj: &Value, script: &Value, m: &Value, bytes: &[u8], namespace: &str) {
    let id = script["id"].as_str().unwrap();
    let job = &script["job"];
    assert_eq!(obj["apiVersion"], "batch/v1");
    assert_eq!(obj["kind"], job["kind"], "{id}");
    let name = obj["metadata"]["name"].as_str().unwrap();
    assert!(is_dns_label(name), "{name}");
    assert_eq!(obj["metadata"]["namespace"], namespace);

    // The script label is the id with `.` for `/`; a longer one is cut and ends with a hash.
    let script_label = obj["metadata"]["labels"]["krobs.dev/script"]
        .as_str()
        .unwrap();
    let plain = id.replace('/', ".");
    if plain.len() <= 63 {
        assert_eq!(script_label, plain);
    } else {
        let hash = &bytes_sha256(id.as_bytes())[..8];
        let head = script_label.strip_suffix(&format!("-{hash}")).unwrap();
        assert!(
            script_label.len() <= 63 && plain.starts_with(head),
            "{script_label}"
        );
    }
    let labels = json!({
        "app.kubernetes.io/name": obj["metadata"]["labels"]["app.kubernetes.io/name"],
        "app.kubernetes.io/managed-by": "krobs",
        "krobs.dev/script": script_label,
        "krobs.dev/language": script["language"],
    });
    let mut annotations = json!({
        "krobs.dev/script-id": id,
        "krobs.dev/owner": script["header"]["owner"],
        "krobs.dev/description": script["header"]["description"],
        "krobs.dev/manifest": format!("sha256:{}", bytes_sha256(bytes)),
        "krobs.dev/image": script["image"],
    });
    if let Some(commit) = m["commit"].as_str() {
        annotations["krobs.dev/commit"] = json!(commit);
    }
    let mut metas = vec![&obj["metadata"], &job_spec(obj)["template"]["metadata"]];
    if job["kind"] == "CronJob" {
        metas.push(&obj["spec"]["jobTemplate"]["metadata"]);
    }
    for meta in metas {
        assert_eq!(meta["labels"], labels, "{id}");
        assert_eq!(meta["annotations"], annotations, "{id}");
    }
    let app = labels["app.kubernetes.io/name"].as_str().unwrap();
    assert!(is_dns_label(app) && app.starts_with("krobs-"), "{app}");

    let spec = job_spec(obj);
    assert_eq!(spec["backoffLimit"], job["backoff_limit"], "{id}");
    assert_eq!(
        spec["activeDeadlineSeconds"],
        job["active_deadline_seconds"]
    );
    assert_eq!(
        spec["ttlSecondsAfterFinished"],
        job["ttl_seconds_after_finished"]
    );
    assert_eq!(spec["podReplacementPolicy"], "Failed");
    assert_eq!(
        spec["podFailurePolicy"],
        json!({"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "krob", "operator": "In", "values": [2, 126, 127]}},
        ]})
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    let r = &job["resources"];
    let tmp = r["tmp_size_limit"].as_str().unwrap_or("1Gi");
    assert_eq!(
        pod["volumes"],
        json!([{"name": "tmp", "emptyDir": {"sizeLimit": tmp}}])
    );
    // krobs-run's grace (20 s, told by KROBS_GRACE_SECONDS), then the tail and the report.
    assert_eq!(pod["terminationGracePeriodSeconds"], 35);
    let c = container(obj);
    assert_eq!(c["name"], "krob");
    assert_eq!(c["image"], script["image"]);
    assert!(c["image"].as_str().unwrap().contains("@sha256:"), "{c}");
    assert_eq!(c["args"], script["command"]);
    assert_eq!(c["command"], Value::Null);
    assert_eq!(
        c["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}})
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "tmp", "mountPath": "/tmp"}])
    );
    let storage = r["ephemeral_storage_request"].as_str().unwrap_or("1Gi");
    assert_eq!(
        c["resources"],
        json!({
            "requests": {"cpu": r["cpu_request"], "memory": r["memory_request"], "ephemeral-storage": storage},
            "limits": {"memory": r["memory_limit"]},
        })
    );
    let env = env(obj);
    assert_eq!(env[0], ("KROBS_ID".to_string(), id.to_string()));
    assert_eq!(
        env[1],
        (
            "KROBS_IMAGE".to_string(),
            script["image"].as_str().unwrap().to_string()
        )
    );
    assert_eq!(
        env[2],
        ("KROBS_GRACE_SECONDS".to_string(), "20".to_string())
    );
    match m["monitor_url"].as_str() {
        Some(url) => assert_eq!(env[3], ("KROBS_MONITOR_URL".to_string(), url.to_string())),
        None => assert!(env.iter().all(|(k, _)| k != "KROBS_MONITOR_URL"), "{env:?}"),
    }

    if job["kind"] == "CronJob" {
        assert!(name.len() <= 52, "{name}");
        let cron = &obj["spec"];
        assert_eq!(cron["schedule"], job["schedule"]);
        assert_eq!(cron["timeZone"], "Etc/UTC");
        assert_eq!(cron["concurrencyPolicy"], "Forbid");
        assert_eq!(cron["startingDeadlineSeconds"], 300);
        assert_eq!(cron["successfulJobsHistoryLimit"], 3);
        assert_eq!(cron["failedJobsHistoryLimit"], 3);
    } else {
        assert!(name.len() <= 63, "{name}");
    }
}

#[test]
fn every_script_of_this_repository_renders_a_valid_object() {
    let repo = Repo::new();
    copy_project_into(&repo);
    repo.commit_all("the project");
    let bytes = publish_fake(&repo, "out/krobs-manifest.json");
    let m = manifest(&bytes);
    let scripts = m["scripts"].as_array().unwrap();
    assert!(scripts.len() >= 8, "{m}");
    let mut docs = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for script in scripts {
        let id = script["id"].as_str().unwrap();
        let yaml = repo.krobs(&["render", id]).success().stdout;
        let obj = read_yaml(&yaml);
        check_object(&obj, script, &m, &bytes, "krobs");
        let name = obj["metadata"]["name"].as_str().unwrap();
        let base = format!("krobs-{}", id.replace(['/', '_'], "-"));
        if script["job"]["kind"] == "Job" {
            // A unique suffix: `<base>-xxxxx`, different on the next render.
            let suffix = name.strip_prefix(&format!("{base}-")).unwrap_or_else(|| {
                panic!("{name} is not {base}-<suffix>");
            });
            assert_eq!(suffix.len(), 5, "{name}");
            let again = read_yaml(&repo.krobs(&["render", id]).success().stdout);
            assert_ne!(again["metadata"]["name"], obj["metadata"]["name"]);
        } else {
            assert_eq!(name, base);
        }
        kinds.insert(obj["kind"].as_str().unwrap().to_string());
        docs.push(yaml);
    }
    assert_eq!(kinds.len(), 2, "both Jobs and CronJobs: {kinds:?}");
    validate_kubernetes(&docs);
}

#[test]
fn edge_cases_render_valid_objects() {
    let repo = edge_repo();
    let bytes = publish_fake(&repo, "out/manifest.json");
    let m = manifest(&bytes);
    let script = |id: &str| {
        m["scripts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {m}"))
            .clone()
    };
    let mut docs = Vec::new();
    let mut render = |id: &str, extra: &[&str], namespace: &str| {
        let mut args = vec!["render", id];
        args.extend_from_slice(extra);
        let yaml = repo.krobs(&args).success().stdout;
        let obj = read_yaml(&yaml);
        check_object(&obj, &script(id), &m, &bytes, namespace);
        docs.push(yaml);
        obj
    };

    // The longest ids lint lets through: the name is the whole id, at the kind's limit (a
    // Job's then gets its 5-character run suffix). Longer ones are refused by lint.
    let long = format!("bash/{LONG_JOB}");
    let job = render(&long, &[], "batch-jobs");
    let name = job["metadata"]["name"].as_str().unwrap();
    let (base, suffix) = name.rsplit_once('-').unwrap();
    assert_eq!(suffix.len(), 5, "{name}");
    assert_eq!(base, format!("krobs-bash-{}", LONG_JOB.replace('_', "-")));
    assert_eq!(name.len(), 63, "{name}");
    let nightly = format!("bash/{LONG_CRON}");
    let cron = render(&nightly, &[], "batch-jobs");
    let name = cron["metadata"]["name"].as_str().unwrap();
    assert_eq!(name, format!("krobs-bash-{}", LONG_CRON.replace('_', "-")));
    assert_eq!(name.len(), 52, "{name}");
    assert_eq!(cron["spec"]["schedule"], "@daily");
    let label = cron["metadata"]["labels"]["krobs.dev/script"]
        .as_str()
        .unwrap();
    assert!(label.len() <= 63, "{label}");

    // No retries, header resources and timeout; [deploy] gives the rest.
    let once = render("bash/no_retries", &[], "batch-jobs");
    assert_eq!(job_spec(&once)["backoffLimit"], 0);
    assert_eq!(job_spec(&once)["activeDeadlineSeconds"], 90);
    assert_eq!(job_spec(&once)["ttlSecondsAfterFinished"], 3600);
    assert_eq!(
        container(&once)["resources"],
        json!({"requests": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "4Gi"}, "limits": {"memory": "1Gi"}})
    );
    let hello = render("bash/hello", &[], "batch-jobs");
    assert_eq!(
        container(&hello)["resources"],
        json!({"requests": {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "4Gi"}, "limits": {"memory": "512Mi"}})
    );

    // A schedule with ranges and steps, no retries, an owner and description YAML could misread.
    let quarter = render("bash/every_quarter_hour", &[], "batch-jobs");
    assert_eq!(quarter["spec"]["schedule"], "*/15 * * * 1-5");
    assert_eq!(job_spec(&quarter)["backoffLimit"], 0);
    assert_eq!(
        quarter["metadata"]["annotations"]["krobs.dev/owner"],
        "team-b: \"quoted\" # not a comment 'é' \\ {{ .Values }}"
    );
    assert_eq!(
        quarter["metadata"]["annotations"]["krobs.dev/description"],
        "yes"
    );

    // --name, --namespace and --env: values a YAML 1.1 reader could misread come back as given.
    let values = [
        ("FLAG", "yes"),
        ("SWITCH", "on"),
        ("MODE", "0755"),
        ("COUNT", "1_000"),
        ("TIME", "1:20"),
        ("NOTHING", "~"),
        ("EMPTY", ""),
        ("LINES", "a\nb: c\n# d"),
        ("URL", "http://es:9200/?q=a b"),
        ("ODD", "tab\there del\u{7f} nel\u{85} ls\u{2028} é ü 漢"),
        ("KROBS_MONITOR_TIMEOUT_SECONDS", "2"),
    ];
    let env_args: Vec<String> = values
        .iter()
        .flat_map(|(k, v)| ["--env".to_string(), format!("{k}={v}")])
        .collect();
    let mut args = vec!["--name", "drain-es-7", "--namespace", "ops"];
    args.extend(env_args.iter().map(String::as_str));
    let named = render("bash/hello", &args, "ops");
    assert_eq!(named["metadata"]["name"], "drain-es-7");
    let env = env(&named);
    assert_eq!(env.len(), 4 + values.len(), "{env:?}");
    for ((k, v), (name, value)) in values.iter().zip(&env[4..]) {
        assert_eq!((name.as_str(), value.as_str()), (*k, *v));
    }
    // [deploy] /tmp and ephemeral storage.
    assert_eq!(
        job_spec(&hello)["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"],
        "3Gi"
    );
    assert_eq!(
        container(&hello)["resources"]["requests"]["ephemeral-storage"],
        "4Gi"
    );

    validate_kubernetes(&docs);
}

/// A file named by its sha256 renders when its bytes match, and is refused when they do not.
#[test]
fn manifest_named_by_its_digest() {
    let repo = Repo::fixture();
    let bytes = publish_fake(&repo, "out/manifest.json");
    let hex = bytes_sha256(&bytes);
    let named = format!("out/{hex}.json");
    repo.write(&named, &bytes);
    let yaml = repo
        .krobs(&["render", "bash/hello", "--manifest", &named])
        .success()
        .stdout;
    let obj = read_yaml(&yaml);
    assert_eq!(
        obj["metadata"]["annotations"]["krobs.dev/manifest"],
        format!("sha256:{hex}")
    );

    let tampered = String::from_utf8(bytes)
        .unwrap()
        .replace("\"backoff_limit\": 1", "\"backoff_limit\": 9");
    repo.write(&named, &tampered);
    let actual = bytes_sha256(tampered.as_bytes());
    repo.krobs(&["render", "bash/hello", "--manifest", &named])
        .failure(exit::INPUT)
        .stderr_is(&format!(
            "error: the manifest `{named}` is named by sha256 `{hex}` but its bytes hash to `{actual}`: it was changed after it was written; pull it again or use the file the run wrote"
        ));
}

#[test]
fn unknown_script_suggests_the_closest() {
    let repo = Repo::new();
    copy_project_into(&repo);
    repo.commit_all("the project");
    publish_fake(&repo, "out/krobs-manifest.json");
    repo.krobs(&["render", "pyhton/expunge_delete"])
        .failure(exit::USAGE)
        .stderr_is("error: no script `pyhton/expunge_delete` in the manifest `./out/krobs-manifest.json`: did you mean `python/expunge_deletes`?");
    repo.krobs(&["render", "drain_node"])
        .failure(exit::USAGE)
        .stderr_is("error: no script `drain_node` in the manifest `./out/krobs-manifest.json`: did you mean `python/drain_node`?");
}

#[test]
fn preview_is_refused() {
    let repo = Repo::fixture();
    repo.krobs(&["--dry-run"]).success();
    repo.krobs(&["render", "bash/hello", "--manifest", "out/manifest.preview.json"])
        .failure(exit::INPUT)
        .stderr_is("error: the manifest `out/manifest.preview.json` is a dry-run preview with no image digests: run `krobs-build` without `--dry-run`, or render from a published manifest (`--manifest latest`)");
}

#[test]
fn bad_manifests_are_refused() {
    let repo = Repo::fixture();
    repo.krobs(&["render", "bash/hello"])
        .failure(exit::INPUT)
        .stderr_is("error: cannot read the manifest `./out/manifest.json`: No such file or directory (os error 2); run `krobs-build` to write it, or pass `--manifest PATH` or a published reference such as `--manifest latest`");

    let bytes = publish_fake(&repo, "out/manifest.json");
    let text = String::from_utf8(bytes).unwrap();
    let image = manifest(text.as_bytes())["scripts"][0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    let tag = "registry.example.com:5000/krobs/bash:latest";
    repo.write("unpinned.json", text.replace(&image, tag));
    repo.krobs(&["render", "bash/hello", "--manifest", "unpinned.json"])
        .failure(exit::INPUT)
        .stderr_is(&format!("error: script `bash/hello` of the manifest `unpinned.json` has image `{tag}`, not pinned by digest (`repository@sha256:...`): render only from a manifest a real run wrote"));

    repo.write(
        "v2.json",
        text.replace("krobs-manifest/v1", "krobs-manifest/v2"),
    );
    repo.krobs(&["render", "bash/hello", "--manifest", "v2.json"])
        .failure(exit::INPUT)
        .stderr_is("error: the manifest `v2.json` has format `krobs-manifest/v2`, this krobs-build reads `krobs-manifest/v1`: render it with a krobs-build of its version");

    let mut empty = manifest(text.as_bytes());
    empty["scripts"] = json!([]);
    repo.write("empty.json", serde_json::to_vec_pretty(&empty).unwrap());
    repo.krobs(&["render", "bash/hello", "--manifest", "empty.json"])
        .failure(exit::USAGE)
        .stderr_is(
            "error: no script `bash/hello` in the manifest `empty.json`: it lists no scripts",
        );

    repo.write("junk.json", "not json\n");
    repo.krobs(&["render", "bash/hello", "--manifest", "junk.json"])
        .failure(exit::INPUT)
        .stderr_is("error: the manifest `junk.json` is not a krobs manifest: expected ident at line 1 column 2");

    let dir = Path::new("out");
    repo.krobs(&["render", "bash/hello", "--manifest", dir.to_str().unwrap()])
        .failure(exit::INPUT)
        .stderr_is("error: cannot read the manifest `out`: not a regular file; run `krobs-build` to write it, or pass `--manifest PATH` or a published reference such as `--manifest latest`");
}

/// One reference grammar for `render --manifest` and `manifest pull`: a short `git-` tag gets
/// the 12-digit hint from both, before any registry is asked; a path-looking argument or an
/// existing file that is no reference is read as a file.
#[test]
fn release_references_share_one_grammar() {
    let repo = Repo::fixture();
    let short = "error: `git-0123abcd` has 8 hex digits: release tags use the first 12 of the commit (`git rev-parse --short=12 <commit>`), or give the full 40-hex commit";
    repo.krobs(&["render", "bash/hello", "--manifest", "git-0123abcd"])
        .failure(exit::USAGE)
        .stderr_is(short);
    repo.krobs(&["manifest", "pull", "git-0123abcd"])
        .failure(exit::USAGE)
        .stderr_is(short);
    let bad = "error: `sha256:abc` is not a manifest reference: give `latest`, a commit (40 hex, or the tag `git-<first 12 hex>`), or the artifact's digest `sha256:<64 hex>`";
    repo.krobs(&["render", "bash/hello", "--manifest", "sha256:abc"])
        .failure(exit::USAGE)
        .stderr_is(bad);
    repo.krobs(&["manifest", "pull", "sha256:abc"])
        .failure(exit::USAGE)
        .stderr_is(bad);
    repo.krobs(&["manifest", "pull", "v1"])
        .failure(exit::USAGE)
        .stderr_is("error: `v1` is not a manifest reference: give `latest`, a commit (40 hex, or the tag `git-<first 12 hex>`), or the artifact's digest `sha256:<64 hex>`");

    let bytes = publish_fake(&repo, "out/manifest.json");
    repo.write("v1", &bytes);
    repo.write("latest", &bytes);
    for file in ["v1", "./latest", "out/manifest.json"] {
        let yaml = repo
            .krobs(&["render", "bash/hello", "--manifest", file])
            .success()
            .stdout;
        assert_eq!(read_yaml(&yaml)["kind"], "Job", "{file}");
    }
    repo.krobs(&["render", "bash/hello", "--manifest", "v2"])
        .failure(exit::INPUT)
        .stderr_is("error: cannot read the manifest `v2`: No such file or directory (os error 2); run `krobs-build` to write it, or pass `--manifest PATH` or a published reference such as `--manifest latest`");
}

#[test]
fn bad_arguments_are_refused() {
    let repo = Repo::fixture();
    publish_fake(&repo, "out/manifest.json");
    let cases: [(&[&str], &str); 9] = [
        (&["--env", "NOEQUALS"], "error: `--env NOEQUALS`: expected `KEY=VALUE`"),
        (&["--env", "1BAD=x"], "error: `--env 1BAD=x`: `1BAD` is not an environment variable name: use letters, digits and `_`, not starting with a digit"),
        (&["--env", "A-B=x"], "error: `--env A-B=x`: `A-B` is not an environment variable name: use letters, digits and `_`, not starting with a digit"),
        (&["--env", "KROBS_ID=x"], "error: `--env KROBS_ID=x`: `KROBS_ID` is set by render from the manifest and cannot be overridden"),
        (&["--env", "KROBS_MONITOR_URL=http://x"], "error: `--env KROBS_MONITOR_URL=http://x`: `KROBS_MONITOR_URL` is set by render from the manifest and cannot be overridden"),
        (&["--env", "A=1", "--env", "A=2"], "error: `--env A=2`: `A` is given more than once"),
        (&["--name", "Hello_World"], "error: `--name Hello_World` is not a valid Job name: use at most 63 lowercase letters, digits and `-`, starting with a letter and ending with a letter or digit"),
        (&["--namespace=-ops"], "error: `--namespace -ops` is not a Kubernetes namespace name: use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"),
        (&["--namespace", "Ops"], "error: `--namespace Ops` is not a Kubernetes namespace name: use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["render", "bash/hello"];
        args.extend_from_slice(extra);
        repo.krobs(&args).failure(exit::USAGE).stderr_is(expected);
    }
    // A CronJob is named after its script, never by `--name`: `render --schedules` finds it so.
    repo.krobs(&["render", "python/report", "--name", "nightly"])
        .failure(exit::USAGE)
        .stderr_is("error: `--name nightly`: script `python/report` has a schedule, and a CronJob is named after its script (`krobs-python-report`) so that `render --schedules` reconciles it; `--name` names Jobs only");
}

/// `render --schedules` of two releases, the second without one scheduled script and with
/// another renamed: every CronJob of a release and nothing else, named after its script,
/// labelled as Krobs's and annotated with its release's digest; and what `kubectl apply
/// --prune -l app.kubernetes.io/managed-by=krobs --prune-allowlist=batch/v1/CronJob` would
/// delete when the second is applied after the first: the removed and the renamed one.
#[test]
fn schedules_of_two_releases_and_what_the_prune_deletes() {
    let repo = Repo::new();
    copy_project_into(&repo);
    repo.commit_all("the project");
    let schedules = |repo: &Repo| {
        repo.krobs(&["render", "--schedules", "--namespace", "ops"])
            .success()
            .stdout
    };
    let first = publish_fake(&repo, "out/krobs-manifest.json");
    let m1 = manifest(&first);
    let stream1 = schedules(&repo);
    let docs1 = read_yaml_all(&stream1);
    let crons = |m: &Value| -> Vec<Value> {
        m["scripts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["job"]["kind"] == "CronJob")
            .cloned()
            .collect()
    };
    assert!(crons(&m1).len() >= 3, "{m1}");
    assert_eq!(docs1.len(), crons(&m1).len(), "{stream1}");
    for (doc, script) in docs1.iter().zip(crons(&m1)) {
        check_object(doc, &script, &m1, &first, "ops");
        let id = script["id"].as_str().unwrap();
        assert_eq!(
            doc["metadata"]["name"],
            format!("krobs-{}", id.replace(['/', '_'], "-"))
        );
    }
    validate_kubernetes(std::slice::from_ref(&stream1));

    // The second release: one schedule removed, one renamed.
    repo.remove("languages/ruby/scripts/watch_cluster_settings.rb");
    repo.git(&[
        "mv",
        "languages/python/scripts/expunge_deletes.py",
        "languages/python/scripts/expunge_deleted_documents.py",
    ]);
    repo.commit_all("a schedule removed, one renamed");
    let second = publish_fake_salted(&repo, "out/krobs-manifest.json", "2");
    let m2 = manifest(&second);
    let stream2 = schedules(&repo);
    let docs2 = read_yaml_all(&stream2);
    assert_eq!(docs2.len(), crons(&m2).len(), "{stream2}");
    for (doc, script) in docs2.iter().zip(crons(&m2)) {
        check_object(doc, &script, &m2, &second, "ops");
    }
    assert_ne!(bytes_sha256(&first), bytes_sha256(&second));

    // kubectl's prune: the objects of the allowed kinds that the selector matches in the
    // namespace, less those the applied set names.
    let selected = |docs: &[Value]| -> std::collections::BTreeSet<String> {
        docs.iter()
            .filter(|d| {
                d["kind"] == "CronJob"
                    && d["metadata"]["namespace"] == "ops"
                    && d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "krobs"
            })
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (live, applied) = (selected(&docs1), selected(&docs2));
    assert_eq!(live.len(), docs1.len(), "every CronJob is selected");
    let pruned: Vec<&String> = live.difference(&applied).collect();
    assert_eq!(
        pruned,
        [
            "krobs-python-expunge-deletes",
            "krobs-ruby-watch-cluster-settings"
        ],
        "{stream2}"
    );
    assert!(applied.contains("krobs-python-expunge-deleted-documents"));

    // `--schedules` takes no script id.
    repo.krobs(&["render", "--schedules", "python/drain_node"])
        .failure(exit::USAGE);
}
