//! The shipped runtimes, built as they are on the Debian bases of `bash tests/run.sh` (only
//! `BASE_IMAGE` changed, and Scala's `MAVEN_REPOSITORY`: the loopback Maven mirror of
//! `tests/run.sh`), published by the real binary, pulled back by the digest the manifest names,
//! and run as `render` runs them: a non-root user, a read-only root file system, a tmpfs `/tmp`,
//! no network. And Scala's fetch stage refusing a jar that is not the one its lock pins, and
//! a `dependencies.sc` that imports other libraries than its lock was made for.

use crate::support::e2e_support::*;
use crate::support::services::{
    debian_base, maven_mirror, maven_repo, require_services, MavenMirror,
};
use krobs::exit;
use serde_json::Value;

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
        &[
            (&["java", "-version"], "openjdk version \"17."),
            (
                &["amm", "--version"],
                "Ammonite REPL & Script-Runner, 3.0.3",
            ),
        ],
    ),
];

/// krobs.toml with each language on its Debian base.
fn on_debian_bases(text: &str) -> String {
    RUNTIMES
        .iter()
        .fold(text.to_string(), |text, (lang, var, _)| {
            on_base(&text, lang, &debian_base(var))
        })
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

/// Scala's fetch stage takes from the Maven repository exactly the jars `ammonite.lock` names,
/// and nothing else than their pinned bytes: a mirror serving another jar under a locked path
/// fails the build with a line naming the jar, both sha256 and the lock; a mirror missing one
/// fails it too. The mirror's credentials (a URL with `user:password@`) are never printed.
#[test]
fn scalas_fetch_stage_refuses_a_jar_the_lock_does_not_pin() {
    require_services();
    let lock = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("languages/scala/ammonite.lock"),
    )
    .unwrap();
    let entries: Vec<(&str, &str)> = lock
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace();
            (words.next().unwrap(), words.next().unwrap())
        })
        .collect();
    assert!(entries.len() > 50, "{lock}");
    // the first jar fetched, then the second
    let (pinned, tampered) = entries[0];
    let (_, missing) = entries[1];

    let mirror = MavenMirror::of_lock(&lock);
    let jar = mirror.path(tampered);
    let mut bytes = std::fs::read(&jar).unwrap();
    bytes.extend_from_slice(b"appended by the mirror");
    std::fs::remove_file(&jar).unwrap();
    std::fs::write(&jar, &bytes).unwrap();
    let actual = sha256_hex(&bytes);

    let p = Pipeline::oci();
    let password = "mirror-s3cret~pass";
    p.add_secret("the Maven mirror's password", password);
    let url = mirror
        .url()
        .replace("http://", &format!("http://krobs:{password}@"));
    p.edit_config(|text| {
        let text = text.replace(&maven_mirror(), &url);
        on_base(&text, "scala", &debian_base("KROBS_TEST_BASE_JRE"))
    });
    let run = p.krobs(&["--only", "scala"]).failure(exit::DOCKER);
    assert!(
        run.stderr.contains(&format!(
            "{}/{tampered} has sha256 {actual}, not {pinned} as ammonite.lock pins: refusing it",
            mirror.url()
        )),
        "{run}"
    );
    p.assert_no_manifest(&run);

    std::fs::remove_file(&jar).unwrap();
    std::os::unix::fs::symlink(maven_repo().join(tampered), &jar).unwrap();
    std::fs::remove_file(mirror.path(missing)).unwrap();
    let run = p.krobs(&["--only", "scala"]).failure(exit::DOCKER);
    assert!(
        run.stderr.contains(&format!(
            "cannot fetch {}/{missing} (3 tries): check MAVEN_REPOSITORY and the network of the build",
            mirror.url()
        )),
        "{run}"
    );
    // The mirror saw the password (curl's basic auth), the output never did.
    assert!(
        mirror.log().contains(&format!("GET /{tampered}")),
        "{}",
        mirror.log()
    );
    p.assert_no_secrets();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The libraries of `dependencies.sc` are exactly those its lock was made for: a
/// `dependencies.sc` importing a library `dependencies.lock` does not pin, or a lock made for a
/// library `dependencies.sc` no longer imports, fails the build with one line naming the library
/// and saying to re-lock, before anything is fetched.
#[test]
fn scalas_build_refuses_libraries_its_lock_was_not_made_for() {
    require_services();
    let p = Pipeline::oci();
    p.edit_config(|text| on_base(text, "scala", &debian_base("KROBS_TEST_BASE_JRE")));
    let deps = "languages/scala/dependencies.sc";
    let shipped = std::fs::read_to_string(p.repo.path(deps)).unwrap();
    p.repo.write(
        deps,
        format!("{shipped}import $ivy.`com.github.scopt::scopt:4.1.0`\n"),
    );
    p.commit("declare a library without re-locking");
    let run = p.krobs(&["--only", "scala"]).failure(exit::DOCKER);
    assert!(
        run.stderr.contains(
            "languages/scala/dependencies.sc imports `com.github.scopt:scopt_2.13:4.1.0`, which \
             dependencies.lock was not made for: re-lock with lock.sc (README, \"Scala\")"
        ),
        "{run}"
    );
    p.assert_no_manifest(&run);

    // The lock made for that library (tests/scala-library), beside the shipped dependencies.sc.
    let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scala-library/dependencies.lock");
    p.repo.write(deps, shipped);
    p.repo.write(
        "languages/scala/dependencies.lock",
        std::fs::read(lock).unwrap(),
    );
    p.commit("a lock made for another dependencies.sc");
    let run = p.krobs(&["--only", "scala"]).failure(exit::DOCKER);
    assert!(
        run.stderr.contains(
            "languages/scala/dependencies.lock was made for `com.github.scopt:scopt_2.13:4.1.0`, \
             which dependencies.sc does not import: re-lock with lock.sc (README, \"Scala\")"
        ),
        "{run}"
    );
    p.assert_no_manifest(&run);
}
