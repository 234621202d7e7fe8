//! The shipped runtimes, built as they are on the Debian bases of `bash tests/run.sh` (only
//! `BASE_IMAGE` changed; Scala's `jre` stage, since the Ammonite download needs the internet),
//! published by the real binary, pulled back by the digest the manifest names, and run as
//! `render` runs them: a non-root user, a read-only root file system, a tmpfs `/tmp`.

mod support;

use serde_json::Value;
use support::e2e_support::*;
use support::services::{debian_base, require_services};

/// A command and the start of what it prints.
type Check = (&'static [&'static str], &'static str);

/// Each language, the variable naming its Debian base, and the commands its interpreter must
/// answer.
const RUNTIMES: [(&str, &str, &[Check]); 4] = [
    (
        "bash",
        "KROBS_TEST_BASE_BASH",
        &[
            (&["bash", "--version"], "GNU bash, version 5."),
            (&["curl", "--version"], "curl 7."),
        ],
    ),
    (
        "python",
        "KROBS_TEST_BASE_PYTHON",
        &[(&["python3", "--version"], "Python 3.")],
    ),
    (
        "ruby",
        "KROBS_TEST_BASE_RUBY",
        &[(&["ruby", "--version"], "ruby 3.")],
    ),
    (
        "scala",
        "KROBS_TEST_BASE_JRE",
        &[(&["java", "-version"], "openjdk version \"17.")],
    ),
];

/// krobs.toml with each language on its Debian base (Scala keeps its `jre` target).
fn on_debian_bases(text: &str) -> String {
    let mut sections = String::new();
    for (lang, var, _) in RUNTIMES {
        let base = debian_base(var);
        if lang == "scala" {
            continue;
        }
        if text.contains(&format!("[languages.{lang}]")) {
            // the e2e config already builds this runtime on its Debian base
            assert!(
                text.contains(&format!("BASE_IMAGE = \"{base}\"")),
                "the e2e config's [languages.{lang}] builds on {base}"
            );
            continue;
        }
        sections.push_str(&format!(
            "\n[languages.{lang}]\nbuild_args = {{ BASE_IMAGE = \"{base}\" }}\n"
        ));
    }
    let scala = "[languages.scala]\ntarget = \"jre\"\n";
    assert!(
        text.contains(scala),
        "the e2e config builds Scala's jre stage"
    );
    text.replace(
        scala,
        &format!(
            "{scala}build_args = {{ BASE_IMAGE = \"{}\" }}\n{sections}",
            debian_base("KROBS_TEST_BASE_JRE")
        ),
    )
}

/// `docker run` of `image` the way `render`'s pod runs it.
fn run_confined(p: &Pipeline, image: &str, command: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "--rm",
        "--user",
        "10001:10001",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--network",
        "none",
        "--entrypoint",
        command[0],
        image,
    ];
    args.extend_from_slice(&command[1..]);
    p.docker_run(&args)
}

#[test]
fn every_runtime_builds_on_its_debian_base_and_runs_as_10001_on_a_read_only_root() {
    require_services();
    let p = Pipeline::oci();
    p.edit_config(on_debian_bases);
    let run = p.krobs(&["--json"]).success();
    let manifest: Value = p.manifest_of(&run);

    let (user, password) = p.creds();
    let login = p.docker.login(&p.registry.addr(), user, password);
    p.record_output("docker login", &login);
    assert!(login.status.success(), "docker login failed");

    for (lang, var, checks) in RUNTIMES {
        let image = string(language(&manifest, lang), "image");
        assert!(image.contains("@sha256:"), "{lang}: {image}");
        // What runs is what the registry holds under the manifest's digest.
        p.forget_local_images(lang);
        p.docker_ok(&["pull", &image]);
        let inspect = |format: &str| {
            String::from_utf8(
                p.docker_ok(&["image", "inspect", "--format", format, &image])
                    .stdout,
            )
            .unwrap()
            .trim()
            .to_string()
        };
        assert_eq!(inspect("{{.Config.User}}"), "10001:10001", "{lang}");
        // Built on the Debian base: its layers are the image's first ones.
        let base_layers = String::from_utf8(
            p.docker_ok(&[
                "image",
                "inspect",
                "--format",
                "{{json .RootFS.Layers}}",
                &debian_base(var),
            ])
            .stdout,
        )
        .unwrap();
        let base_layers: Vec<String> = serde_json::from_str(base_layers.trim()).unwrap();
        let layers: Vec<String> =
            serde_json::from_str(&inspect("{{json .RootFS.Layers}}")).unwrap();
        assert_eq!(layers[..base_layers.len()], base_layers[..], "{lang}");

        for (command, expected) in checks {
            let out = run_confined(&p, &image, command);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && text.contains(expected),
                "{lang}: `{}` as 10001 on a read-only root: {:?}\n{text}",
                command.join(" "),
                out.status
            );
        }
        // The user, a writable /tmp, and a root file system nobody writes to.
        let out = run_confined(
            &p,
            &image,
            &[
                "sh",
                "-c",
                "id -u; touch /tmp/ok && echo tmp writable; touch /opt/krobs/x 2>/dev/null || echo root read-only",
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "10001\ntmp writable\nroot read-only\n",
            "{lang}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    p.assert_no_secrets();
}

/// The shipped Scala Dockerfile, whole (Ammonite stage included), with the launcher served
/// from a loopback server instead of GitHub: a download whose sha256 is not `AMMONITE_SHA256`
/// fails the build with a message saying so, an empty `AMMONITE_SHA256` fails it too, and the
/// right one gives a runtime whose `amm` runs as 10001 on a read-only root.
#[test]
fn scalas_ammonite_download_is_refused_unless_it_hashes_to_the_pinned_sha256() {
    require_services();
    // A stand-in launcher: what the Dockerfile does with it is what it does with Ammonite's.
    let launcher = "exec java -version \"$@\"\n";
    let served = launcher.to_string();
    let server = FakeHttp::start(move |_| (200, served.clone()));
    let url = format!(
        "{}/Ammonite/releases/download/3.0.2/2.13-3.0.2",
        server.url()
    );
    let right = sha256_hex(launcher.as_bytes());
    let wrong = sha256_hex(b"something else");

    let p = Pipeline::oci();
    let jre = debian_base("KROBS_TEST_BASE_JRE");
    let mut current = "[languages.scala]\ntarget = \"jre\"\n".to_string();
    let mut configure = |sha: &str| {
        let next = format!(
            "[languages.scala]\nbuild_args = {{ BASE_IMAGE = \"{jre}\", AMMONITE_URL = \"{url}\", AMMONITE_SHA256 = \"{sha}\" }}\n"
        );
        p.edit_config(|t| t.replace(&current, &next));
        current = next;
    };

    configure(&wrong);
    let run = p.krobs(&["--only", "scala"]).failure(4);
    assert!(
        run.stderr.contains(&format!(
            "the Ammonite download {url} has sha256 {right}, not AMMONITE_SHA256={wrong}: refusing it"
        )),
        "{run}"
    );
    p.assert_no_manifest(&run);

    configure("");
    let run = p.krobs(&["--only", "scala"]).failure(4);
    assert!(
        run.stderr.contains(&format!(
            "AMMONITE_SHA256 is empty: set it to the sha256 of {url}"
        )),
        "{run}"
    );

    configure(&right);
    let run = p.krobs(&["--json", "--only", "scala"]).success();
    let image = string(language(&p.manifest_of(&run), "scala"), "image");
    let (user, password) = p.creds();
    assert!(p
        .docker
        .login(&p.registry.addr(), user, password)
        .status
        .success());
    p.forget_local_images("scala");
    p.docker_ok(&["pull", &image]);
    let out = run_confined(&p, &image, &["amm"]);
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("openjdk version \"17."),
        "amm as 10001 on a read-only root: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    p.assert_no_secrets();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
