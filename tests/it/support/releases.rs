//! Releases for the render and Harness suites: a dry run's preview turned into a published
//! manifest (well-formed fake digests), the render edge cases, the Kubernetes versions objects
//! are checked against, and Harness's own template engine (Go `text/template` + Sprig, built
//! from `tests/gotemplate` through the Go module proxy into the target folder).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{bash_script, Repo, CONFIG};

/// The Kubernetes versions every object is checked against with `kubernetes-validate --strict`:
/// the oldest Krobs supports (README, "Kubernetes"; render's `MIN_KUBERNETES`) and the newest
/// kubernetes-validate ships schemas for.
pub const KUBERNETES_VERSIONS: [&str; 2] = ["1.29.0", "1.37.0"];

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Turns the dry run's preview at `rel` into a published manifest with fake but well-formed
/// digests (per language, from `salt` and the name); returns its bytes.
pub fn publish_fake_salted(repo: &Repo, rel: &str, salt: &str) -> Vec<u8> {
    repo.krobs(&["--dry-run"]).success();
    let preview = rel.replace(".json", ".preview.json");
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(repo.path(&preview)).unwrap()).unwrap();
    assert_eq!(m["preview"], true);
    m["preview"] = json!(false);
    let mut images = std::collections::BTreeMap::new();
    for l in m["languages"].as_array_mut().unwrap() {
        let name = l["name"].as_str().unwrap().to_string();
        let digest = format!("sha256:{}", sha256_hex(format!("{salt}{name}").as_bytes()));
        let image = format!("{}@{digest}", l["repository"].as_str().unwrap());
        images.insert(name, image.clone());
        l["digest"] = json!(digest);
        l["image"] = json!(image);
    }
    for s in m["scripts"].as_array_mut().unwrap() {
        s["image"] = json!(images[s["language"].as_str().unwrap()]);
    }
    let mut bytes = serde_json::to_vec_pretty(&m).unwrap();
    bytes.push(b'\n');
    repo.write(rel, &bytes);
    bytes
}

pub fn publish_fake(repo: &Repo, rel: &str) -> Vec<u8> {
    publish_fake_salted(repo, rel, "")
}

/// The longest script names lint accepts in `bash`: `krobs-bash-` and the name fill a Job's
/// 57 characters (63 less the run suffix) and a CronJob's 52.
pub const LONG_JOB: &str = "a_long_script_name_at_the_limit_of_a_job_names";
pub const LONG_CRON: &str = "a_long_name_at_the_limit_of_a_cron_nightl";

/// A fixture with the edge cases: long ids, schedules, no retries, header resources, and
/// `[deploy]` settings (monitor, namespace, resources, TTL, /tmp and ephemeral storage).
pub fn edge_repo() -> Repo {
    let repo = Repo::fixture();
    repo.write(
        "krobs.toml",
        format!(
            "{CONFIG}\n[deploy]\nmonitor_url = \"http://krobs-monitor.platform.svc.cluster.local:8080\"\nnamespace = \"batch-jobs\"\ncpu = \"250m\"\nmemory = \"512Mi\"\nttl_seconds_after_finished = 3600\ntmp_size_limit = \"3Gi\"\nephemeral_storage = \"4Gi\"\n"
        ),
    );
    repo.write_exec(
        &format!("languages/bash/scripts/{LONG_JOB}.sh"),
        bash_script("team-a", "true"),
    );
    repo.write_exec(
        &format!("languages/bash/scripts/{LONG_CRON}.sh"),
        "#!/usr/bin/env bash\n# ---\n# owner = \"team-a\"\n# description = \"Nightly.\"\n# schedule = \"@daily\"\n# ---\ntrue\n",
    );
    repo.write_exec(
        "languages/bash/scripts/no_retries.sh",
        "#!/usr/bin/env bash\n# ---\n# owner = \"team-a\"\n# description = \"Once.\"\n# retries = 0\n# timeout = \"90s\"\n# cpu = \"1\"\n# memory = \"1Gi\"\n# ---\ntrue\n",
    );
    repo.write_exec(
        "languages/bash/scripts/every_quarter_hour.sh",
        "#!/usr/bin/env bash\n# ---\n# owner = \"team-b: \\\"quoted\\\" # not a comment 'é' \\\\ {{ .Values }}\"\n# description = \"yes\"\n# schedule = \"*/15 * * * 1-5\"\n# retries = 0\n# cpu = \"0.5\"\n# ---\ntrue\n",
    );
    repo.commit_all("edge cases");
    repo
}

/// Every document of a YAML stream as PyYAML (a YAML 1.1 reader, as kubectl's) reads it; empty
/// documents left out.
pub fn read_yaml_all(yaml: &str) -> Vec<Value> {
    super::pyyaml_documents(yaml, false)
}

/// Runs `kubernetes-validate --strict` on the documents for every version in
/// [`KUBERNETES_VERSIONS`]; panics with its output and the documents.
pub fn validate_kubernetes(docs: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let p = dir.path().join(format!("{i}.yaml"));
            std::fs::write(&p, d).unwrap();
            p.to_string_lossy().into_owned()
        })
        .collect();
    for version in KUBERNETES_VERSIONS {
        let out = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "-k", version])
            .args(&files)
            .output()
            .expect("kubernetes-validate runs (tests/run.sh installs it)");
        assert!(
            out.status.success(),
            "kubernetes-validate --strict -k {version} refused:\n{}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            docs.join("\n---\n")
        );
    }
}

/// `tests/gotemplate` built once per test process into the target folder: Harness's template
/// engine. `go build` takes the pinned modules (go.sum) from the Go module proxy, or from the
/// module cache when they are there.
pub fn go_template() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gotemplate");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gotemplate");
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("gotemplate");
        // Test processes build side by side: each into a file of its own, then renamed.
        let tmp = dir.join(format!("gotemplate.{}", std::process::id()));
        let out = Command::new("go")
            .args(["build", "-mod=readonly", "-o"])
            .arg(&tmp)
            .arg(".")
            .current_dir(&src)
            .env("CGO_ENABLED", "0")
            .output()
            .expect("`go` runs (the Go toolchain is part of the test set-up)");
        assert!(
            out.status.success(),
            "go build of tests/gotemplate failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&tmp, &bin).unwrap();
        bin
    })
}

/// Renders `template` with the values file `values` as Harness does; the output text.
pub fn go_render(template: &Path, values: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, values).unwrap();
    let out = Command::new(go_template())
        .arg("-t")
        .arg(template)
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Go template {} failed with values\n{values}\n{}",
        template.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
