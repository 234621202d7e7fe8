//! Registry credentials from Docker credential helpers, as `docker login` users keep them:
//! `credHelpers` (per registry host) and `credsStore` in `$DOCKER_CONFIG/config.json`, against
//! the real services of `bash tests/run.sh`.
//!
//! Each test writes a helper `docker-credential-krobstest` (a shell script speaking the
//! credential-helper protocol) into a folder it puts first on `PATH`, with no
//! `KROBS_REGISTRY_*` variables set: the real `krobs-build` then logs in to the htpasswd
//! registry with what the helper hands out, for the lookups, the push and the published
//! manifest alike.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::support::e2e_support::*;
use crate::support::services::{base64_encode, require_services};
use krobs::exit;

/// A folder with `docker-credential-krobstest` in it, and the log of its calls.
struct Helper {
    dir: tempfile::TempDir,
}

impl Helper {
    /// A helper that hands out `user` / `password` for `host` and has nothing for any other.
    fn answering(host: &str, user: &str, password: &str) -> Helper {
        Helper::with_body(&format!(
            "if [ \"$1\" = get ] && [ \"$host\" = '{host}' ]; then\n\
             \x20 printf '{{\"ServerURL\":\"%s\",\"Username\":\"%s\",\"Secret\":\"%s\"}}\\n' \"$host\" '{user}' '{password}'\n\
             else\n\
             \x20 echo 'credentials not found in native keychain'\n\
             \x20 exit 1\n\
             fi"
        ))
    }

    /// A helper that fails as a locked store does.
    fn failing() -> Helper {
        Helper::with_body("echo 'krobstest: the vault is sealed' >&2\nexit 1")
    }

    fn with_body(body: &str) -> Helper {
        let dir = tempfile::Builder::new()
            .prefix("krobs-credential-helper-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("calls.log");
        let script = format!(
            "#!/bin/sh\n# A Docker credential helper for the tests.\nread -r host\n\
             printf '%s %s\\n' \"$1\" \"$host\" >> '{}'\n{body}\n",
            log.display()
        );
        let path = dir.path().join("docker-credential-krobstest");
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        Helper { dir }
    }

    /// `PATH` with the helper's folder first.
    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// Each call: `<verb> <server address>`.
    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// An OCI pipeline whose runs get no `KROBS_REGISTRY_*` variables, with `config` as the Docker
/// config of its runs.
fn pipeline_with_docker_config(config: impl FnOnce(&str) -> String) -> (Pipeline, PathBuf) {
    require_services();
    let mut p = Pipeline::oci();
    p.without_env_credentials();
    let path = p.docker_config_dir().join("config.json");
    fs::write(&path, config(&p.host())).unwrap();
    (p, path)
}

/// A real run with the helper's folder on `PATH`.
fn krobs_with_helper(p: &Pipeline, helper: &Helper, args: &[&str]) -> crate::support::Run {
    p.krobs_with(args, &[("PATH", &helper.path_env())])
}

/// What a successful run must show: bash built and pushed at the digest its manifest names, the
/// helper asked for this registry only, nothing secret printed.
#[track_caller]
fn assert_published_through(p: &Pipeline, helper: &Helper, run: &crate::support::Run) {
    assert_eq!(language(&run.json(), "bash")["status"], "built", "{run}");
    let manifest = p.manifest_of(run);
    let tag = string(language(&run.json(), "bash"), "tag");
    assert_eq!(
        p.skopeo_digest(&format!("krobs/bash:{tag}")),
        string(language(&manifest, "bash"), "digest")
    );
    let calls = helper.calls();
    assert!(!calls.is_empty(), "the helper was never asked\n{run}");
    for call in &calls {
        assert_eq!(call, &format!("get {}", p.host()), "{run}");
    }
    p.assert_no_secrets();
}

/// `credHelpers` names the helper for the registry host: it wins over an `auths` entry with a
/// wrong password, and the whole run (lookups, push, published manifest) logs in with it.
#[test]
fn the_credential_helper_named_for_the_registry_host_logs_the_run_in() {
    let wrong_auth = base64_encode(format!("{USER}:not-the-password").as_bytes());
    let (p, _) = pipeline_with_docker_config(|host| {
        format!(
            r#"{{"auths": {{"{host}": {{"auth": "{wrong_auth}"}}}},
                 "credHelpers": {{"{host}": "krobstest", "other.example:5000": "krobs-no-such-helper"}}}}"#
        )
    });
    let (user, password) = p.creds();
    let helper = Helper::answering(&p.host(), user, password);
    let run = krobs_with_helper(&p, &helper, &["--json", "--only", "bash"]).success();
    assert_published_through(&p, &helper, &run);
}

/// `credsStore` (what `docker login` writes with a store: an empty `auths` entry and the
/// store's name) logs the run in when no `credHelpers` entry names the host.
#[test]
fn the_credentials_store_logs_the_run_in() {
    let (p, _) = pipeline_with_docker_config(|host| {
        format!(
            r#"{{"auths": {{"{host}": {{}}}}, "credsStore": "krobstest",
                 "credHelpers": {{"other.example:5000": "krobs-no-such-helper"}}}}"#
        )
    });
    let (user, password) = p.creds();
    let helper = Helper::answering(&p.host(), user, password);
    let run = krobs_with_helper(&p, &helper, &["--json", "--only", "bash"]).success();
    assert_published_through(&p, &helper, &run);
}

/// A helper that fails stops the run before anything is built: one line naming the helper,
/// where it is configured, the registry and what it said; exit 5, no manifest.
#[test]
fn a_failing_credential_helper_is_named_with_the_registry() {
    let (p, config) = pipeline_with_docker_config(|host| {
        format!(r#"{{"credHelpers": {{"{host}": "krobstest"}}}}"#)
    });
    let helper = Helper::failing();
    let run = krobs_with_helper(&p, &helper, &["--only", "bash"]).failure(exit::REGISTRY);
    assert_eq!(
        error_line(&run),
        format!(
            "error: the credential helper `docker-credential-krobstest` (`credHelpers` in `{}`) \
             failed for registry `{}`: it exited with exit status: 1: krobstest: the vault is \
             sealed; fix the helper or the Docker config, or set `KROBS_REGISTRY_USERNAME` and \
             `KROBS_REGISTRY_PASSWORD`",
            config.display(),
            p.host()
        ),
        "{run}"
    );
    assert_eq!(helper.calls(), vec![format!("get {}", p.host())], "{run}");
    assert!(!run.stderr.contains("] building"), "{run}");
    p.assert_no_manifest(&run);
    assert_eq!(p.blob_uploads(None), 0, "{run}");
    p.assert_no_secrets();
}

/// A `credsStore` whose helper is not installed: named, with where it is configured.
#[test]
fn a_credentials_store_that_is_not_installed_is_named() {
    let (p, config) =
        pipeline_with_docker_config(|_| r#"{"credsStore": "krobs-no-such-helper"}"#.to_string());
    let run = p.krobs(&["--only", "bash"]).failure(exit::REGISTRY);
    assert_eq!(
        error_line(&run),
        format!(
            "error: the credential helper `docker-credential-krobs-no-such-helper` (`credsStore` \
             in `{}`) failed for registry `{}`: it is not on `PATH`; fix the helper or the \
             Docker config, or set `KROBS_REGISTRY_USERNAME` and `KROBS_REGISTRY_PASSWORD`",
            config.display(),
            p.host()
        ),
        "{run}"
    );
    p.assert_no_manifest(&run);
    p.assert_no_secrets();
}
