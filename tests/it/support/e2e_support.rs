//! End-to-end fixtures: a copy of this repository wired to a real registry (and a moto ECR API),
//! the runs of `krobs-build` against it, and a record of everything they printed and wrote, so
//! that every test can end with a secret scan.
//!
//! - [`Pipeline`]: temp repository + registry (+ moto) + the environment of the runs.
//! - [`Background`]: a run started in the background (to break the registry under it).
//! - small readers of the JSON report and the manifest: [`language`], [`names`], [`error_line`].

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::services::{
    base64_encode, base_image, debian_base, describe, maven_mirror, moto_authorization_token,
    moto_registry_password, python3, run_ok, skopeo_inspect, DockerCli, Moto, Registry,
    MOTO_DEFAULT_ACCOUNT,
};
use super::{copy_project_into, krobs_command, Repo, Run};

/// The registry user of the OCI runs.
pub const USER: &str = "krobs-ci";
/// The registry password of the OCI runs: `~`, `?` and `>` break naive quoting, and five `~`
/// and five `?` in a row make sure that the standard base64 of any JSON holding it has a `+`
/// and a `/` whatever the alignment, which the daemon's URL-safe decoding of `X-Registry-Auth`
/// would silently drop (the build.rs fix).
pub const PASSWORD: &str = "s3cr~t?pa>ss~~~~~?????";
/// The languages of this repository, in the order the pipeline reports them.
pub const LANGUAGES: [&str; 4] = ["bash", "python", "ruby", "scala"];
/// The account of the moto ECR API (its default) and the region the tests use.
pub const ECR_ACCOUNT: &str = MOTO_DEFAULT_ACCOUNT;
pub const ECR_REGION: &str = "us-east-1";

/// The registry section of krobs.toml.
pub enum RegistryKind {
    Oci,
    Ecr { create_repositories: bool },
}

/// `krobs.toml` for the copy of this repository: the local base image for every language (the
/// Bash krobs' Debian base for Bash), and Scala's jars from the loopback Maven mirror of
/// `tests/run.sh`, which the build's `RUN` steps reach on the host's network, fetched with the
/// curl of the Bash base (`FETCH_IMAGE`).
pub fn config_toml(kind: &RegistryKind, host: &str) -> String {
    let registry = match kind {
        RegistryKind::Oci => format!("kind = \"oci\"\nhost = \"{host}\"\n"),
        RegistryKind::Ecr {
            create_repositories,
        } => format!(
            "kind = \"ecr\"\naccount_id = \"{ECR_ACCOUNT}\"\nregion = \"{ECR_REGION}\"\n\
             host = \"{host}\"\ncreate_repositories = {create_repositories}\n"
        ),
    };
    format!(
        r#"repository = "krobs/{{language}}"

[registry]
{registry}
[build]
concurrency = 2
build_args = {{ BASE_IMAGE = "{base}" }}
network = "host"

[manifest]
path = "out/krobs-manifest.json"

# Scala's jars are fetched in the Bash krobs' base (busybox's static wget cannot connect).
[languages.scala]
build_args = {{ MAVEN_REPOSITORY = "{mirror}", FETCH_IMAGE = "{bash_base}" }}

# The Bash krobs run in the tests: their runtime is built on a Debian base, as shipped.
[languages.bash]
build_args = {{ BASE_IMAGE = "{bash_base}" }}
"#,
        base = base_image(),
        bash_base = debian_base("KROBS_TEST_BASE_BASH"),
        mirror = maven_mirror(),
    )
}

/// `text` (a krobs.toml) with `language` built on `base`: its `build_args` get `BASE_IMAGE`, in
/// the section there is or in a new one. A language already on another base fails the test.
pub fn on_base(text: &str, language: &str, base: &str) -> String {
    let section = format!("[languages.{language}]\n");
    let arg = format!("BASE_IMAGE = \"{base}\"");
    let Some(start) = text.find(&section) else {
        return format!("{text}\n{section}build_args = {{ {arg} }}\n");
    };
    let body = start + section.len();
    let end = text[body..]
        .find("\n[")
        .map_or(text.len(), |i| body + i + 1);
    let own = &text[body..end];
    if own.contains("BASE_IMAGE") {
        assert!(
            own.contains(&arg),
            "krobs.toml builds {language} on another base:\n{text}"
        );
        return text.to_string();
    }
    let own = match own.find("build_args = { ") {
        Some(i) => format!("{}build_args = {{ {arg}, {}", &own[..i], &own[i + 15..]),
        None => format!("build_args = {{ {arg} }}\n{own}"),
    };
    format!("{}{own}{}", &text[..body], &text[end..])
}

/// A copy of this repository, committed, wired to its own registry (and moto for ECR).
pub struct Pipeline {
    pub repo: Repo,
    pub registry: Registry,
    pub moto: Option<Moto>,
    /// The registry host in krobs.toml (the registry, or a proxy in front of it).
    host: RefCell<String>,
    /// The user and password the registry takes.
    creds: (String, String),
    /// `DOCKER_CONFIG` of the runs: an empty folder, so `~/.docker` never leaks in (and the
    /// home of the empty AWS files of an ECR pipeline).
    docker_config: tempfile::TempDir,
    /// Shown in failure output.
    env: Vec<(String, String)>,
    /// Set on the runs but not shown (the registry password).
    hidden_env: Vec<(String, String)>,
    /// What must appear nowhere.
    /// What must appear nowhere: (what it is, the secret).
    secrets: RefCell<Vec<(String, String)>>,
    /// Everything the runs and the test's own commands printed, labelled.
    transcript: RefCell<Vec<(String, String)>>,
    pub docker: DockerCli,
}

impl Pipeline {
    /// An OCI registry with user [`USER`] / [`PASSWORD`], given to the runs as
    /// `KROBS_REGISTRY_USERNAME` / `KROBS_REGISTRY_PASSWORD`.
    pub fn oci() -> Pipeline {
        let registry = Registry::start(&[(USER, PASSWORD)]);
        let mut p = Pipeline::new(registry, None, RegistryKind::Oci, (USER, PASSWORD));
        p.hidden_env = vec![
            ("KROBS_REGISTRY_USERNAME".into(), USER.into()),
            ("KROBS_REGISTRY_PASSWORD".into(), PASSWORD.into()),
        ];
        let basic = format!("{USER}:{PASSWORD}");
        let basic = base64_encode(basic.as_bytes());
        p.add_secret("`user:password` in base64", url_safe(&basic));
        p.add_secret("`user:password` in base64", basic);
        p.add_secret(
            "the registry password, percent-encoded",
            percent_encode(PASSWORD),
        );
        p
    }

    /// ECR through a moto server: the API (`AWS_ENDPOINT_URL`) is moto, the pushes go to a local
    /// registry that takes exactly what moto's `GetAuthorizationToken` hands out (user `AWS`).
    pub fn ecr(create_repositories: bool) -> Pipeline {
        let moto = Moto::start();
        let aws_env = moto.aws_env();
        let password = moto_registry_password(ECR_ACCOUNT);
        let registry = Registry::start(&[("AWS", &password)]);
        let mut p = Pipeline::new(
            registry,
            Some(moto),
            RegistryKind::Ecr {
                create_repositories,
            },
            ("AWS", &password),
        );
        for (k, v) in aws_env {
            p.env.push((k.to_string(), v));
        }
        // Empty AWS files: the machine's own profile never leaks in.
        for (var, file) in [
            ("AWS_CONFIG_FILE", "aws-config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "aws-credentials"),
        ] {
            let path = p.docker_config.path().join(file);
            fs::write(&path, "").unwrap();
            p.env.push((var.into(), path.display().to_string()));
        }
        let token = moto_authorization_token(ECR_ACCOUNT);
        p.add_secret("the ECR authorization token", url_safe(&token));
        p.add_secret("the ECR authorization token", token);
        p
    }

    fn new(
        registry: Registry,
        moto: Option<Moto>,
        kind: RegistryKind,
        creds: (&str, &str),
    ) -> Pipeline {
        let repo = Repo::new();
        copy_project_into(&repo);
        let host = registry.addr();
        repo.write("krobs.toml", config_toml(&kind, &host));
        repo.commit_all("the project");
        let docker_config = tempfile::Builder::new()
            .prefix("krobs-e2e-docker-config-")
            .tempdir()
            .unwrap();
        let env = vec![(
            "DOCKER_CONFIG".to_string(),
            docker_config.path().display().to_string(),
        )];
        Pipeline {
            repo,
            registry,
            moto,
            host: RefCell::new(host),
            creds: (creds.0.to_string(), creds.1.to_string()),
            docker_config,
            env,
            hidden_env: Vec::new(),
            secrets: RefCell::new(vec![(
                "the registry password".to_string(),
                creds.1.to_string(),
            )]),
            transcript: RefCell::new(Vec::new()),
            docker: DockerCli::new(),
        }
    }

    /// The registry host the runs use (`127.0.0.1:PORT`).
    pub fn host(&self) -> String {
        self.host.borrow().clone()
    }

    /// The user and password the registry takes.
    pub fn creds(&self) -> (&str, &str) {
        (&self.creds.0, &self.creds.1)
    }

    /// The `DOCKER_CONFIG` folder of the runs (empty until a test writes its `config.json`).
    pub fn docker_config_dir(&self) -> &Path {
        self.docker_config.path()
    }

    /// Runs without `KROBS_REGISTRY_USERNAME` / `KROBS_REGISTRY_PASSWORD`: the credentials must
    /// then come from the Docker config.
    pub fn without_env_credentials(&mut self) {
        self.hidden_env
            .retain(|(k, _)| k != "KROBS_REGISTRY_USERNAME" && k != "KROBS_REGISTRY_PASSWORD");
    }

    /// One more string that must appear nowhere.
    pub fn add_secret(&self, what: &str, secret: impl Into<String>) {
        let secret = secret.into();
        let mut secrets = self.secrets.borrow_mut();
        if !secrets.iter().any(|(_, s)| *s == secret) {
            secrets.push((what.to_string(), secret));
        }
    }

    // ---------------------------------------------------------------------------------------
    // The repository
    // ---------------------------------------------------------------------------------------

    pub fn head(&self) -> String {
        self.repo.git(&["rev-parse", "HEAD"])
    }

    pub fn commit(&self, message: &str) -> String {
        self.repo.commit_all(message)
    }

    /// Rewrites krobs.toml with `edit` and commits it.
    pub fn edit_config(&self, edit: impl FnOnce(&str) -> String) -> String {
        let text = fs::read_to_string(self.repo.path("krobs.toml")).unwrap();
        let edited = edit(&text);
        assert_ne!(text, edited, "the edit changed nothing in krobs.toml");
        self.repo.write("krobs.toml", edited);
        self.commit("configure")
    }

    /// Points krobs.toml at another registry host (a proxy in front of the registry).
    pub fn use_host(&self, host: &str) -> String {
        let old = self.host();
        let commit = self.edit_config(|t| {
            t.replace(&format!("host = \"{old}\""), &format!("host = \"{host}\""))
        });
        *self.host.borrow_mut() = host.to_string();
        commit
    }

    /// Appends `line` to a language's Dockerfile (not committed).
    pub fn append_to_dockerfile(&self, language: &str, line: &str) {
        let rel = format!("languages/{language}/Dockerfile");
        let mut text = fs::read_to_string(self.repo.path(&rel)).unwrap();
        text.push_str(line);
        text.push('\n');
        self.repo.write(&rel, text);
    }

    // ---------------------------------------------------------------------------------------
    // Runs
    // ---------------------------------------------------------------------------------------

    /// `krobs-build ARGS` in the repository, with the pipeline's environment.
    pub fn krobs(&self, args: &[&str]) -> Run {
        self.krobs_with(args, &[])
    }

    /// `krobs-build ARGS` with extra (shown) environment variables, which win.
    pub fn krobs_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = krobs_command();
        for (k, v) in &self.hidden_env {
            cmd.env(k, v);
        }
        let mut shown: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        shown.extend_from_slice(env);
        let mut run = Run::new(cmd, &self.repo.root, args, &shown);
        self.note_hidden_env(&mut run.command);
        self.record_run(&run);
        run
    }

    /// `krobs-build ARGS` on a pseudo-terminal (`script`), as a person at a terminal runs it:
    /// stdout and stderr arrive together, as the terminal shows them.
    pub fn krobs_on_terminal(&self, args: &[&str]) -> Run {
        let line = std::iter::once(env!("CARGO_BIN_EXE_krobs-build").to_string())
            .chain(args.iter().map(|a| format!("'{a}'")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new("script");
        cmd.args(["--quiet", "--return", "--command", &line, "/dev/null"]);
        for (k, _) in std::env::vars() {
            if k.starts_with("KROBS_") || k == "NO_COLOR" {
                cmd.env_remove(k);
            }
        }
        cmd.env("TERM", "xterm");
        for (k, v) in &self.hidden_env {
            cmd.env(k, v);
        }
        let shown: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut run = Run::new(cmd, &self.repo.root, &[], &shown);
        self.note_hidden_env(&mut run.command);
        self.record_run(&run);
        run
    }

    fn note_hidden_env(&self, command: &mut String) {
        let hidden: Vec<String> = self
            .hidden_env
            .iter()
            .map(|(k, _)| format!("{k}=<set, not shown> "))
            .collect();
        *command = format!("{}{command}", hidden.concat());
    }

    /// `krobs-build ARGS` started in the background, its output going to files.
    pub fn spawn(&self, args: &[&str]) -> Background {
        let dir = tempfile::Builder::new()
            .prefix("krobs-e2e-run-")
            .tempdir()
            .unwrap();
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        let mut cmd = krobs_command();
        cmd.current_dir(&self.repo.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap());
        for (k, v) in self.hidden_env.iter().chain(&self.env) {
            cmd.env(k, v);
        }
        let shown: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        let mut command = format!(
            "{}{} {}",
            shown.concat(),
            cmd.get_program().to_string_lossy(),
            args.join(" ")
        );
        self.note_hidden_env(&mut command);
        let child = cmd.spawn().expect("krobs-build starts");
        Background {
            _dir: dir,
            child: Some(child),
            stdout,
            stderr,
            command,
            cwd: self.repo.root.clone(),
        }
    }

    /// Waits for a background run and records it.
    pub fn wait(&self, mut bg: Background) -> Run {
        let status = bg
            .child
            .take()
            .unwrap()
            .wait()
            .expect("wait for krobs-build");
        let run = Run {
            command: bg.command.clone(),
            cwd: bg.cwd.clone(),
            code: status.code(),
            stdout: fs::read_to_string(&bg.stdout).unwrap_or_default(),
            stderr: fs::read_to_string(&bg.stderr).unwrap_or_default(),
        };
        self.record_run(&run);
        run
    }

    fn record_run(&self, run: &Run) {
        self.record(&format!("stdout of `{}`", run.command), &run.stdout);
        self.record(&format!("stderr of `{}`", run.command), &run.stderr);
    }

    /// Keeps `text` for the secret scan.
    pub fn record(&self, what: &str, text: &str) {
        self.transcript
            .borrow_mut()
            .push((what.to_string(), text.to_string()));
    }

    /// Keeps a command's output for the secret scan.
    pub fn record_output(&self, what: &str, out: &Output) {
        self.record(
            &format!("stdout of {what}"),
            &String::from_utf8_lossy(&out.stdout),
        );
        self.record(
            &format!("stderr of {what}"),
            &String::from_utf8_lossy(&out.stderr),
        );
    }

    /// `docker ARGS` through the test's own Docker CLI, recorded; panics unless it succeeds.
    pub fn docker_ok(&self, args: &[&str]) -> Output {
        let out = self.docker.ok(args);
        self.record_output(&format!("docker {}", args.join(" ")), &out);
        out
    }

    /// `docker ARGS`, recorded, whatever its outcome.
    pub fn docker_run(&self, args: &[&str]) -> Output {
        let out = self.docker.run(args);
        self.record_output(&format!("docker {}", args.join(" ")), &out);
        out
    }

    // ---------------------------------------------------------------------------------------
    // What was written
    // ---------------------------------------------------------------------------------------

    pub fn manifest_path(&self) -> PathBuf {
        self.repo.path("out/krobs-manifest.json")
    }

    pub fn manifest_bytes(&self) -> Vec<u8> {
        fs::read(self.manifest_path())
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.manifest_path().display()))
    }

    /// The manifest at the configured path, parsed.
    pub fn manifest(&self) -> Value {
        serde_json::from_slice(&self.manifest_bytes()).unwrap_or_else(|e| {
            panic!(
                "{} is not JSON ({e}):\n{}",
                self.manifest_path().display(),
                String::from_utf8_lossy(&self.manifest_bytes())
            )
        })
    }

    /// The manifest a `--json` run says it wrote, by its content-named path (a run restricted
    /// with `--only` writes only that one), checked against the sha256 the report gives.
    #[track_caller]
    pub fn manifest_of(&self, run: &Run) -> Value {
        let report = run.json();
        let written = &report["manifest"];
        let rel = written["content_path"]
            .as_str()
            .unwrap_or_else(|| panic!("the report names no content-named manifest\n{run}"));
        let path = self.repo.root.join(rel);
        let hex = sha256sum(&path);
        assert_eq!(written["sha256"], format!("sha256:{hex}"), "{run}");
        assert!(path.ends_with(format!("{hex}.json")), "{run}");
        serde_json::from_slice(&fs::read(&path).unwrap()).expect("the manifest is JSON")
    }

    /// The file names in `out/`, sorted (empty when there is no `out/`).
    pub fn out_files(&self) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(self.repo.path("out")) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Asserts that the run left no manifest (nor anything else) in `out/`.
    #[track_caller]
    pub fn assert_no_manifest(&self, run: &Run) {
        assert_eq!(
            self.out_files(),
            Vec::<String>::new(),
            "a failed run must write no manifest\n{run}"
        );
    }

    /// `check-jsonschema --schemafile schema/manifest-v1.schema.json out/krobs-manifest.json`.
    pub fn check_manifest_schema(&self) {
        let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/manifest-v1.schema.json");
        let mut cmd = Command::new("check-jsonschema");
        cmd.arg("--schemafile")
            .arg(&schema)
            .arg(self.manifest_path());
        let out = run_ok(&mut cmd);
        self.record_output("check-jsonschema", &out);
    }

    /// `check-jsonschema --schemafile schema/report-v1.schema.json` on a `--json` run's stdout.
    pub fn check_report_schema(&self, run: &Run) {
        let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/report-v1.schema.json");
        let file = self.docker_config.path().join("report.json");
        fs::write(&file, &run.stdout).unwrap();
        let mut cmd = Command::new("check-jsonschema");
        cmd.arg("--schemafile").arg(&schema).arg(&file);
        let out = run_ok(&mut cmd);
        self.record_output("check-jsonschema (report)", &out);
    }

    // ---------------------------------------------------------------------------------------
    // The registry
    // ---------------------------------------------------------------------------------------

    /// The registry's access log so far: `(method, path)` per request.
    pub fn registry_requests(&self) -> Vec<(String, String)> {
        access_log_requests(&self.registry.log())
    }

    /// How many manifests were PUT so far (pushes and registry-side tags).
    pub fn manifest_puts(&self) -> usize {
        self.registry_requests()
            .iter()
            .filter(|(m, p)| m == "PUT" && p.contains("/manifests/"))
            .count()
    }

    /// How many blob uploads were started so far in `krobs/<language>` (any language: `None`).
    pub fn blob_uploads(&self, language: Option<&str>) -> usize {
        let prefix = match language {
            Some(l) => format!("/v2/krobs/{l}/blobs/uploads/"),
            None => "/v2/".to_string(),
        };
        self.registry_requests()
            .iter()
            .filter(|(m, p)| m == "POST" && p.starts_with(&prefix) && p.contains("/blobs/uploads/"))
            .count()
    }

    /// The digest skopeo reads for `krobs/<language>:<tag>` (or `@<digest>`), asking the
    /// registry itself (not a proxy in front of it).
    #[track_caller]
    pub fn skopeo_digest(&self, repository_and_reference: &str) -> String {
        let reference = format!("{}/{repository_and_reference}", self.registry.addr());
        let out = skopeo_inspect(&reference, Some(self.creds()));
        self.record_output(&format!("skopeo inspect {reference}"), &out);
        assert!(
            out.status.success(),
            "skopeo inspect {reference} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("skopeo prints JSON");
        v["Digest"]
            .as_str()
            .expect("skopeo names a Digest")
            .to_string()
    }

    /// Whether skopeo finds `krobs/<language>:<tag>` in the registry.
    pub fn skopeo_finds(&self, repository_and_reference: &str) -> bool {
        let reference = format!("{}/{repository_and_reference}", self.registry.addr());
        let out = skopeo_inspect(&reference, Some(self.creds()));
        self.record_output(&format!("skopeo inspect {reference}"), &out);
        out.status.success()
    }

    /// The repositories moto's ECR API knows, as boto3 describes them.
    pub fn ecr_repositories(&self) -> Vec<Value> {
        let moto = self.moto.as_ref().expect("an ECR pipeline");
        let script = r#"
import json, sys, boto3
ecr = boto3.client("ecr", endpoint_url=sys.argv[1], region_name=sys.argv[2],
                   aws_access_key_id="testing", aws_secret_access_key="testing")
print(json.dumps(ecr.describe_repositories()["repositories"], default=str))
"#;
        let mut cmd = Command::new(python3());
        cmd.arg("-c")
            .arg(script)
            .arg(moto.endpoint())
            .arg(ECR_REGION);
        let out = run_ok(&mut cmd);
        self.record_output("boto3 describe_repositories", &out);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", describe(&cmd, &out)));
        v.as_array().unwrap().clone()
    }

    // ---------------------------------------------------------------------------------------
    // Local images
    // ---------------------------------------------------------------------------------------

    /// References (`repo:tag`, `repo@digest`) of the local images in this pipeline's registry.
    pub fn local_images(&self) -> Vec<String> {
        local_image_refs(&[self.host(), self.registry.addr()])
    }

    /// Removes every local reference to `krobs/<language>`, tags and digests alike, keeping the
    /// untagged parent layers (the build cache the other tests are using).
    pub fn forget_local_images(&self, language: &str) {
        self.remove_local_images(language, &["--no-prune"]);
    }

    /// Makes this machine a cold runner for `language`: its local images go, and with them every
    /// untagged parent layer. Only for a language whose build chain is this test's own (a nonce
    /// step right after `FROM`): the shared build cache of the other tests must stay.
    pub fn make_cold(&self, language: &str) {
        self.remove_local_images(language, &[]);
    }

    fn remove_local_images(&self, language: &str, options: &[&str]) {
        let prefixes: Vec<String> = [self.host(), self.registry.addr()]
            .iter()
            .map(|host| format!("{host}/krobs/{language}"))
            .collect();
        for r in self.local_images() {
            if prefixes
                .iter()
                .any(|p| r.starts_with(&format!("{p}:")) || r.starts_with(&format!("{p}@")))
            {
                let mut args = vec!["image", "rm"];
                args.extend_from_slice(options);
                args.push(&r);
                // Removing the last tag may take the digest reference with it: no `ok` here.
                self.docker_run(&args);
            }
        }
    }

    /// The ids of the local images (intermediate ones included) whose config mentions `text`.
    pub fn local_images_mentioning(&self, text: &str) -> Vec<String> {
        let ids = self
            .docker
            .ok(&["image", "ls", "--all", "--quiet", "--no-trunc"]);
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let mut args = vec!["image", "inspect"];
        args.extend(ids.iter().map(String::as_str));
        // Images may go between the listing and the inspection (other tests clean up).
        let out = self.docker.run(&args);
        let inspected: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        inspected
            .iter()
            .filter(|i| i.to_string().contains(text))
            .map(|i| i["Id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    // ---------------------------------------------------------------------------------------
    // The secret scan
    // ---------------------------------------------------------------------------------------

    /// Asserts that no secret appears in anything the runs and the test printed, in any file the
    /// runs wrote (`out/`), or in the labels, environment and history of the images they built.
    #[track_caller]
    pub fn assert_no_secrets(&self) {
        let mut corpus: Vec<(String, String)> = self.transcript.borrow().clone();
        for name in self.out_files() {
            let path = self.repo.path(&format!("out/{name}"));
            corpus.push((
                path.display().to_string(),
                String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned(),
            ));
        }
        for image in self.local_images() {
            for args in [
                vec!["image", "inspect", image.as_str()],
                vec!["history", "--no-trunc", image.as_str()],
            ] {
                let out = self.docker.run(&args);
                corpus.push((
                    format!("docker {}", args.join(" ")),
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ),
                ));
            }
        }
        let secrets = self.secrets.borrow();
        let mut found = Vec::new();
        for (what, text) in &corpus {
            for (name, secret) in secrets.iter() {
                if let Some(at) = text.find(secret.as_str()) {
                    let start = floor_char_boundary(text, at.saturating_sub(80));
                    let end = floor_char_boundary(text, (at + secret.len() + 80).min(text.len()));
                    let context = text[start..end].replace(secret.as_str(), "<SECRET>");
                    found.push(format!("{name} in {what}:\n    ...{context}..."));
                }
            }
        }
        assert!(
            found.is_empty(),
            "secrets leaked in {} place(s) (the secret itself is shown as <SECRET>):\n{}",
            found.len(),
            found.join("\n")
        );
        assert!(
            corpus.iter().any(|(_, t)| !t.is_empty()),
            "the secret scan had nothing to scan"
        );
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Untag what this pipeline built, by reference (an image id may be shared with another
        // test whose commit happens to be identical), and without pruning the untagged parents:
        // they are the build cache other tests are building from at this very moment (removing
        // them fails those builds with `failed to get digest ...: no such file or directory`).
        for r in self.local_images() {
            let _ = self.docker.run(&["image", "rm", "--no-prune", &r]);
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `repo:tag` and `repo@digest` of the local images whose repository is under one of `hosts`.
pub fn local_image_refs(hosts: &[String]) -> Vec<String> {
    let docker = DockerCli::new();
    let out = docker.ok(&[
        "image",
        "ls",
        "--digests",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}}",
    ]);
    let mut refs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut parts = line.split_whitespace();
        let (Some(repo), Some(tag), Some(digest)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !hosts.iter().any(|h| repo.starts_with(&format!("{h}/"))) {
            continue;
        }
        if tag != "<none>" {
            refs.push(format!("{repo}:{tag}"));
        }
        if digest != "<none>" {
            refs.push(format!("{repo}@{digest}"));
        }
    }
    refs.sort();
    refs.dedup();
    refs
}

/// `(method, path)` of each request in a distribution registry's access log (the Apache-style
/// lines, not the structured ones).
pub fn access_log_requests(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter(|l| !l.starts_with("time="))
        .filter_map(|l| {
            let (_, rest) = l.split_once("] \"")?;
            let mut words = rest.split(' ');
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

/// Standard base64 turned URL-safe.
pub fn url_safe(b64: &str) -> String {
    b64.replace('+', "-").replace('/', "_")
}

/// Percent-encoding of everything but letters, digits, `-`, `.` and `_`.
pub fn percent_encode(s: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_');
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

/// A nonce for things that must not hit the Docker build cache of an earlier test run.
pub fn nonce() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// `sha256sum FILE`, the hex digest (an outside tool, not the code under test).
pub fn sha256sum(path: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

// -------------------------------------------------------------------------------------------------
// Background runs
// -------------------------------------------------------------------------------------------------

/// A `krobs-build` running in the background; [`Pipeline::wait`] ends it. Killed if dropped.
pub struct Background {
    _dir: tempfile::TempDir,
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
    command: String,
    cwd: PathBuf,
}

impl Background {
    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Polls until `ready` holds for its stderr; panics (showing it) after `timeout` or when the
    /// run ends first.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, ready: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let stderr = self.stderr();
            if ready(&stderr) {
                return;
            }
            if self.exited() || Instant::now() > deadline {
                panic!(
                    "waited for {what}, but the run {}\ncommand: {}\n--- stderr so far ---\n{stderr}",
                    if self.exited() { "ended first" } else { "did not get there in time" },
                    self.command
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Readers
// -------------------------------------------------------------------------------------------------

/// The entry of `name` in the `languages` array of a report or manifest.
#[track_caller]
pub fn language<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["languages"]
        .as_array()
        .unwrap_or_else(|| panic!("no `languages` array in {v}"))
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no language {name} in {v}"))
}

/// The names in the `languages` array.
pub fn names(v: &Value) -> Vec<String> {
    v["languages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect()
}

/// A string field, or a panic that shows the value.
#[track_caller]
pub fn string(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{key}` in {v}"))
        .to_string()
}

/// The `error: ...` line of a failed run (there must be exactly one).
#[track_caller]
pub fn error_line(run: &Run) -> String {
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(lines.len(), 1, "expected one `error: ` line\n{run}");
    lines[0].to_string()
}

/// The lines of stderr after the `error: ` line (a build error's last log lines).
pub fn lines_after_error(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .skip_while(|l| !l.starts_with("error: "))
        .skip(1)
        .map(str::to_string)
        .collect()
}
