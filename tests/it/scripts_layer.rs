//! The scripts layer, end to end against the real services of `bash tests/run.sh`: a script
//! change needs no Docker Engine and uploads a few kilobytes; a runtime change rebuilds the
//! runtime, then the layer goes on; runs at once agree; the same content gives the same image
//! from any path; the pulled image holds the scripts with their modes, readable by the
//! runtime's user, and they run.

use std::io::Write;
use std::process::Command;

use crate::support::e2e_support::*;
use crate::support::services::require_services;
use crate::support::{children_max_rss_kib, MAX_RSS_KIB};
use serde_json::Value;

/// `skopeo inspect --raw` (or `--config --raw`) of `krobs/<reference>`, as JSON.
fn raw(p: &Pipeline, reference: &str, config: bool) -> Value {
    let (user, password) = p.creds();
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "inspect",
        "--tls-verify=false",
        "--retry-times",
        "0",
        "--raw",
    ]);
    if config {
        cmd.arg("--config");
    }
    cmd.arg("--creds").arg(format!("{user}:{password}"));
    cmd.arg(format!("docker://{}/krobs/{reference}", p.registry.addr()));
    let out = cmd.output().expect("skopeo runs");
    p.record_output(&format!("skopeo inspect --raw {reference}"), &out);
    assert!(
        out.status.success(),
        "skopeo inspect --raw {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo prints JSON")
}

/// The report's entry for `language`.
fn report_of<'a>(report: &'a Value, lang: &str) -> &'a Value {
    language(report, lang)
}

/// Total bytes of the files under `languages/<lang>/scripts`.
fn scripts_bytes(p: &Pipeline, lang: &str) -> u64 {
    walk(&p.repo.path(&format!("languages/{lang}/scripts")))
}

fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                walk(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// A big script's layer streams from the files to the registry: a run that uploads a layer of
/// 192 MiB that does not compress stays under the memory bound of the huge-file cases, and
/// the image names the layer at its full size.
#[test]
fn a_big_layer_is_uploaded_streaming() {
    require_services();
    let p = Pipeline::oci();
    p.krobs(&["--only", "bash"]).success();

    let rel = "languages/bash/scripts/big.sh";
    let mut file = std::io::BufWriter::new(std::fs::File::create(p.repo.path(rel)).unwrap());
    file.write_all(
        b"#!/usr/bin/env bash\n# ---\n# owner = \"a\"\n# description = \"Big.\"\n# ---\nexit 0\n",
    )
    .unwrap();
    // Noise (xorshift), which gzip cannot shrink.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..192 {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&chunk).unwrap();
    }
    drop(file);

    // Not committed (git would store 192 MiB): published by digest only.
    let run = p
        .krobs_with(
            &["--json", "--only", "bash", "--allow-dirty"],
            &[("DOCKER_HOST", "unix:///nonexistent.sock")],
        )
        .success();
    let report = run.json();
    let bash = report_of(&report, "bash");
    assert_eq!(bash["runtime"], "reused", "{run}");
    let size = bash["scripts_layer_size"].as_u64().unwrap();
    assert!(size > 192 << 20, "the layer is {size} bytes\n{run}");
    let tag = string(bash, "tag");
    let manifest = raw(&p, &format!("bash:{tag}"), false);
    let top = manifest["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(top["digest"], bash["scripts_layer"]);
    assert_eq!(top["size"], size);
    assert!(
        children_max_rss_kib() < MAX_RSS_KIB,
        "a run peaked at {} KiB",
        children_max_rss_kib()
    );
}

/// A script change runs with `DOCKER_HOST` at a socket that does not exist: no Docker Engine,
/// no pull (only the runtime's manifest and config are read), one layer blob of about the
/// scripts' size plus a config uploaded, one manifest put under the content tag. The image is
/// the same runtime with the new layer on top.
#[test]
fn a_scripts_only_change_contacts_no_docker_engine_and_uploads_one_small_layer() {
    require_services();
    let p = Pipeline::oci();
    let first = p.krobs(&["--json", "--only", "bash"]).success().json();
    let before = p.registry_requests().len();
    let old_tag = string(report_of(&first, "bash"), "tag");

    let script = "languages/bash/scripts/retry_failed_allocations.sh";
    let mut text = std::fs::read_to_string(p.repo.path(script)).unwrap();
    text.push_str("# a comment\n");
    p.repo.write(script, text);
    p.commit("bash: a comment");

    let run = p
        .krobs_with(
            &["--json", "--only", "bash"],
            &[("DOCKER_HOST", "unix:///nonexistent.sock")],
        )
        .success();
    let report = run.json();
    let bash = report_of(&report, "bash");
    assert_eq!(bash["status"], "built", "{run}");
    assert_eq!(bash["runtime"], "reused", "{run}");
    let tag = string(bash, "tag");
    assert_ne!(tag, old_tag);
    assert!(!run.stderr.contains("Step "), "something was built\n{run}");

    let requests: Vec<(String, String)> = p.registry_requests().split_off(before);
    let uploads: Vec<&(String, String)> = requests
        .iter()
        .filter(|(m, path)| m == "POST" && path.starts_with("/v2/krobs/bash/blobs/uploads/"))
        .collect();
    // (The release manifest, an artifact of its own repository, is uploaded too.)
    assert_eq!(uploads.len(), 2, "the layer and the config: {requests:?}");
    let puts_under_tag = requests
        .iter()
        .filter(|(m, path)| m == "PUT" && path == &format!("/v2/krobs/bash/manifests/{tag}"))
        .count();
    assert_eq!(puts_under_tag, 1, "{requests:?}");

    // What was read: the runtime's manifest and its config; no layer.
    let new = raw(&p, &format!("bash:{tag}"), false);
    let old = raw(&p, &format!("bash:{old_tag}"), false);
    let old_config = raw(&p, &format!("bash:{old_tag}"), true);
    let runtime_tag = format!(
        "runtime-{}",
        &string(&old_config["config"]["Labels"], "dev.krobs.runtime-digest")["sha256:".len()..]
            [..32]
    );
    let runtime = raw(&p, &format!("bash:{runtime_tag}"), false);
    let blob_gets: Vec<&String> = requests
        .iter()
        .filter(|(m, path)| m == "GET" && path.contains("/blobs/"))
        .map(|(_, path)| path)
        .collect();
    assert_eq!(
        blob_gets,
        [&format!(
            "/v2/krobs/bash/blobs/{}",
            string(&runtime["config"], "digest")
        )],
        "only the runtime's config is read"
    );

    // The runtime's layers, then one layer of about the scripts' size.
    let runtime_layers = runtime["layers"].as_array().unwrap();
    let layers = new["layers"].as_array().unwrap();
    assert_eq!(layers.len(), runtime_layers.len() + 1, "{new}");
    assert_eq!(&layers[..runtime_layers.len()], &runtime_layers[..]);
    assert_eq!(
        &old["layers"].as_array().unwrap()[..runtime_layers.len()],
        &runtime_layers[..]
    );
    let size = layers.last().unwrap()["size"].as_u64().unwrap();
    assert!(
        size <= scripts_bytes(&p, "bash") + 2048,
        "the layer ({size} bytes) is more than the scripts"
    );
    assert_eq!(
        string(layers.last().unwrap(), "mediaType"),
        string(&runtime_layers[0], "mediaType"),
        "the layer is of the runtime's media type family"
    );
    p.assert_no_secrets();
}

/// A runtime change (a file of `lib/`) builds the runtime again, then the layer goes on: the
/// new image's scripts layer is the old one, byte for byte.
#[test]
fn a_runtime_change_rebuilds_the_runtime_then_appends_the_same_layer() {
    require_services();
    let p = Pipeline::oci();
    let first = p.krobs(&["--json", "--only", "bash"]).success().json();
    let old_tag = string(report_of(&first, "bash"), "tag");

    let lib = "languages/bash/lib/krobs_es.sh";
    let mut text = std::fs::read_to_string(p.repo.path(lib)).unwrap();
    text.push_str(&format!("# runtime change {}\n", nonce()));
    p.repo.write(lib, text);
    p.commit("bash: lib");

    let run = p.krobs(&["--json", "--only", "bash"]).success();
    assert!(run.stderr.contains("[bash] Step "), "no build\n{run}");
    assert_eq!(report_of(&run.json(), "bash")["runtime"], "built", "{run}");
    let tag = string(report_of(&run.json(), "bash"), "tag");
    assert_ne!(tag, old_tag);
    let old = raw(&p, &format!("bash:{old_tag}"), false);
    let new = raw(&p, &format!("bash:{tag}"), false);
    let last = |m: &Value| m["layers"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last(&old), last(&new), "the same scripts, the same layer");
    assert_ne!(old["config"]["digest"], new["config"]["digest"]);
    p.assert_no_secrets();
}

/// Two runs at once against one Docker Engine and one registry both succeed and name the same
/// images.
#[test]
fn two_runs_at_once_both_succeed_and_agree() {
    require_services();
    let p = Pipeline::oci();
    let a = p.spawn(&["--json", "--only", "bash,python"]);
    let b = p.spawn(&["--json", "--only", "bash,python"]);
    let a = p.wait(a).success();
    let b = p.wait(b).success();
    let (ra, rb) = (a.json(), b.json());
    for lang in ["bash", "python"] {
        let da = string(report_of(&ra, lang), "digest");
        assert_eq!(da, string(report_of(&rb, lang), "digest"), "{a}\n{b}");
        let tag = string(report_of(&ra, lang), "tag");
        assert_eq!(p.skopeo_digest(&format!("krobs/{lang}:{tag}")), da);
    }
    p.assert_no_secrets();
}

/// The same repository at another absolute path, on another registry holding the same
/// runtime (copied there byte for byte): that machine puts the same scripts layer on it and
/// gets the same image digest, without building anything.
#[test]
fn the_same_repository_from_another_path_gives_the_same_image() {
    require_services();
    let p = Pipeline::oci();
    let q = Pipeline::oci();
    assert_ne!(p.repo.root, q.repo.root);
    let rp = p.krobs(&["--json", "--only", "bash"]).success().json();
    let bp = report_of(&rp, "bash");
    let runtime_tag = string(bp, "runtime_tag");
    let (user, password) = p.creds();
    let creds = format!("{user}:{password}");
    let mut copy = Command::new("skopeo");
    copy.args([
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        &creds,
        "--dest-creds",
        &creds,
    ])
    .arg(format!(
        "docker://{}/krobs/bash:{runtime_tag}",
        p.registry.addr()
    ))
    .arg(format!(
        "docker://{}/krobs/bash:{runtime_tag}",
        q.registry.addr()
    ));
    let out = copy.output().expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let run = q.krobs(&["--json", "--only", "bash"]).success();
    assert!(
        !run.stderr.contains("Step "),
        "the runtime was built\n{run}"
    );
    let rq = run.json();
    let bq = report_of(&rq, "bash");
    assert_eq!(bq["runtime"], "reused", "{run}");
    assert_eq!(bp["input_digest"], bq["input_digest"]);
    assert_eq!(bp["runtime_digest"], bq["runtime_digest"]);
    assert_eq!(bp["scripts_layer"], bq["scripts_layer"]);
    assert_eq!(bp["digest"], bq["digest"], "{run}");
    p.assert_no_secrets();
    q.assert_no_secrets();
}

/// Pulled back by digest, the image holds every script of the manifest at its `image_path`,
/// mode 0755 where the repository's file is executable and 0644 otherwise, readable by the
/// runtime's user; a script runs as that user by its path.
#[test]
fn the_pulled_image_holds_every_script_readable_by_the_runtime_user_and_they_run() {
    require_services();
    let p = Pipeline::oci();
    p.repo.write_exec(
        "languages/bash/scripts/hello.sh",
        crate::support::bash_script("team-a", "echo \"hello from $(id -u)\""),
    );
    p.commit("bash: hello");
    p.krobs(&["--only", "bash"]).success();
    let manifest = p.manifest_of(&p.krobs(&["--json", "--only", "bash"]).success());
    let image = string(language(&manifest, "bash"), "image");
    p.forget_local_images("bash");
    let (user, password) = p.creds();
    let login = p.docker.login(&p.registry.addr(), user, password);
    p.record_output("docker login", &login);
    assert!(login.status.success(), "docker login failed");
    p.docker_ok(&["pull", &image]);
    let runtime_user = String::from_utf8(
        p.docker_ok(&["image", "inspect", "--format", "{{.Config.User}}", &image])
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    assert_eq!(runtime_user, "10001:10001");

    for s in manifest["scripts"].as_array().unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let path = string(s, "image_path");
        let local = p.repo.path(&string(s, "path"));
        let exec = std::fs::metadata(&local).unwrap().permissions().mode() & 0o111 != 0;
        let out = p.docker_ok(&[
            "run",
            "--rm",
            "--user",
            &runtime_user,
            "--entrypoint",
            "sh",
            &image,
            "-c",
            &format!("stat -c %a {path} && cat {path} > /dev/null && echo readable"),
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        let expected = if exec { "755" } else { "644" };
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [expected, "readable"],
            "{path}"
        );
        let sha = p.docker_ok(&["run", "--rm", "--entrypoint", "sha256sum", &image, &path]);
        assert!(
            String::from_utf8_lossy(&sha.stdout).starts_with(&string(s, "sha256")),
            "{path} in the image is not the manifest's script"
        );
    }
    let hello = p.docker_ok(&[
        "run",
        "--rm",
        "--user",
        &runtime_user,
        &image,
        "/opt/krobs/scripts/hello.sh",
    ]);
    assert_eq!(String::from_utf8_lossy(&hello.stdout), "hello from 10001\n");
    p.assert_no_secrets();
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Two languages with the same scripts have the same layer: the second repository gets it by
/// a cross-repository mount from the first (`POST ?mount=&from=`), not by an upload.
#[test]
fn the_same_layer_in_another_repository_is_mounted_not_uploaded() {
    require_services();
    let p = Pipeline::oci();
    copy_dir(
        &p.repo.path("languages/bash"),
        &p.repo.path("languages/bash2"),
    );
    p.commit("bash2: the same scripts as bash");
    let first = p.krobs(&["--json", "--only", "bash"]).success().json();
    let layer = string(report_of(&first, "bash"), "scripts_layer");
    let before = p.registry_requests().len();

    let run = p.krobs(&["--json", "--only", "bash,bash2"]).success();
    let report = run.json();
    assert_eq!(report_of(&report, "bash")["status"], "reused", "{run}");
    assert_eq!(report_of(&report, "bash2")["status"], "built", "{run}");
    assert_eq!(string(report_of(&report, "bash2"), "scripts_layer"), layer);
    let requests: Vec<(String, String)> = p.registry_requests().split_off(before);
    assert!(
        requests.contains(&(
            "POST".to_string(),
            format!("/v2/krobs/bash2/blobs/uploads/?mount={layer}&from=krobs/bash")
        )),
        "no mount: {requests:?}"
    );
    let layer_puts = requests
        .iter()
        .filter(|(m, path)| {
            m == "PUT"
                && path.starts_with("/v2/krobs/bash2/blobs/uploads/")
                && path.ends_with(&format!("digest={layer}"))
        })
        .count();
    assert_eq!(layer_puts, 0, "the layer was uploaded: {requests:?}");
    // The image in bash2 holds the layer all the same.
    let tag = string(report_of(&report, "bash2"), "tag");
    let m = raw(&p, &format!("bash2:{tag}"), false);
    assert_eq!(
        m["layers"].as_array().unwrap().last().unwrap()["digest"],
        layer.as_str()
    );
    p.assert_no_secrets();
}
