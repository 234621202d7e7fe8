//! `krobs-build lint --syntax` for real: each script's check runs in its language's runtime,
//! built from the shipped Dockerfile on the Debian bases of `bash tests/run.sh`, in a container
//! without network. Syntax errors come back as `path:line: message`, one line each.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use crate::support::services::{debian_base, maven_mirror, require_services};
use crate::support::{copy_project_into, problems, Repo, Run};
use krobs::exit;

/// krobs.toml for a copy of this repository: each language on its Debian base, Scala's jars
/// from the loopback Maven mirror of `tests/run.sh` (reached on the host's network while
/// building; the checks themselves have none), `extra` appended.
fn config(extra: &str) -> String {
    format!(
        r#"repository = "krobs/{{language}}"

[registry]
kind = "oci"
host = "registry.example.com:5000"

[build]
network = "host"

[languages.python]
build_args = {{ BASE_IMAGE = "{python}" }}

[languages.ruby]
build_args = {{ BASE_IMAGE = "{ruby}" }}

[languages.bash]
build_args = {{ BASE_IMAGE = "{bash}" }}

[languages.scala]
build_args = {{ BASE_IMAGE = "{jre}", MAVEN_REPOSITORY = "{mirror}" }}
{extra}"#,
        python = debian_base("KROBS_TEST_BASE_PYTHON"),
        ruby = debian_base("KROBS_TEST_BASE_RUBY"),
        bash = debian_base("KROBS_TEST_BASE_BASH"),
        jre = debian_base("KROBS_TEST_BASE_JRE"),
        mirror = maven_mirror(),
    )
}

fn project(extra: &str) -> Repo {
    require_services();
    let repo = Repo::new();
    copy_project_into(&repo);
    repo.write("krobs.toml", config(extra));
    repo
}

/// stderr without the progress lines (`[language] ...`).
fn without_progress(run: &Run) -> String {
    run.stderr
        .lines()
        .filter(|l| !l.starts_with('['))
        .collect::<Vec<_>>()
        .join("\n")
}

fn header(marker: &str) -> String {
    format!("{marker} ---\n{marker} owner = \"team-a\"\n{marker} description = \"Broken on purpose.\"\n{marker} ---\n")
}

#[test]
fn the_repository_passes_and_every_script_is_checked() {
    let repo = project("");
    let run = repo.krobs(&["lint", "--syntax", "--json"]).success();
    let v = run.json();
    assert_eq!(v["problems"], serde_json::json!([]), "{run}");
    let mut expected: Vec<String> = v["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    let mut checked: Vec<String> = v["syntax"]["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    checked.sort();
    assert!(expected.len() >= 8, "{run}");
    assert!(
        expected
            .iter()
            .filter(|id| id.starts_with("scala/"))
            .count()
            >= 2,
        "{run}"
    );
    assert_eq!(checked, expected, "{run}");
    assert_eq!(v["syntax"]["notes"], serde_json::json!([]), "{run}");
    assert_eq!(without_progress(&run), "", "{run}");

    let text = repo.krobs(&["lint", "--syntax"]).success();
    assert_eq!(
        text.stdout,
        format!(
            "lint: {} scripts in 4 languages are documented\nlint: the syntax of {} scripts is fine\n",
            expected.len(),
            checked.len(),
        ),
        "{text}"
    );
}

#[test]
fn a_syntax_error_in_each_language_is_one_path_line_message_line() {
    let repo = project("");
    repo.write(
        "languages/python/scripts/broken.py",
        format!("{}x = 1\ndef broken(:\n    pass\n", header("#")),
    );
    repo.write(
        "languages/ruby/scripts/broken.rb",
        format!(
            "{}puts \"ok\"\nif true\n  puts \"never closed\"\n",
            header("#")
        ),
    );
    repo.write(
        "languages/scala/scripts/broken.sc",
        format!(
            "{}import $file.^.lib.monitor, monitor._\nrun {{\n  val pair = (1, 2\n  (\"done\", ujson.Obj())\n}}\n",
            header("//")
        ),
    );
    repo.write_exec(
        "languages/bash/scripts/broken.sh",
        format!(
            "#!/usr/bin/env bash\n{}if true; then\n  echo x\nfi\n)\n",
            header("#")
        ),
    );
    let expected = [
        "languages/bash/scripts/broken.sh:9: syntax error near unexpected token `)'",
        "languages/python/scripts/broken.py:6: invalid syntax",
        "languages/ruby/scripts/broken.rb:7: syntax error, unexpected end-of-input, expecting `end'",
        "languages/scala/scripts/broken.sc:9: ')' expected but '}' found.",
    ];
    let run = repo.krobs(&["lint", "--syntax"]).failure(exit::INPUT);
    assert_eq!(without_progress(&run), problems(&expected), "{run}");
    assert_eq!(run.stdout, "", "{run}");

    let run = repo
        .krobs(&["lint", "--syntax", "--json"])
        .failure(exit::INPUT);
    let found: Vec<String> = run.json()["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}:{}: {}",
                p["path"].as_str().unwrap(),
                p["line"],
                p["message"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(found, expected, "{run}");
}

/// The check runs with the network disabled: a check that connects to a server listening on
/// the host's loopback is refused, and the server never sees it.
#[test]
fn the_check_cannot_reach_a_loopback_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The server answers on the host: a connection from here arrives.
    drop(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    listener
        .accept()
        .expect("the server takes a connection from the host");
    listener.set_nonblocking(true).unwrap();

    // Python's check is to run the script, and the script tries the server.
    let repo = project("");
    let text = std::fs::read_to_string(repo.path("krobs.toml")).unwrap();
    repo.write(
        "krobs.toml",
        text.replace(
            "[languages.python]\n",
            "[languages.python]\nsyntax_check = [\"python3\", \"{script}\"]\n",
        ),
    );
    for entry in std::fs::read_dir(repo.path("languages/python/scripts")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    repo.write(
        "languages/python/scripts/phone_home.py",
        format!(
            "{}import socket, sys\ntry:\n    socket.create_connection((\"127.0.0.1\", {port}), timeout=5).close()\nexcept OSError as e:\n    print(f\"no network: {{e.__class__.__name__}}\", file=sys.stderr)\n    sys.exit(3)\nprint(\"reached the server\")\n",
            header("#")
        ),
    );
    let run = repo
        .krobs(&["lint", "--syntax", "--only", "python"])
        .failure(exit::INPUT);
    assert_eq!(
        without_progress(&run),
        problems(&["languages/python/scripts/phone_home.py: the syntax check (`python3`) failed with exit code 3: no network: ConnectionRefusedError"]),
        "{run}"
    );
    std::thread::sleep(Duration::from_millis(200));
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the check reached the server: {other:?}\n{run}"),
    }
}

/// A language whose scripts exceed what the check sends (a 1 GiB sparse script) is one line
/// naming its scripts folder, exit 3, before any runtime is built; nothing is read whole.
#[test]
fn scripts_too_large_to_check_are_one_line_and_nothing_is_built() {
    let repo = project("");
    let rel = "languages/bash/scripts/huge.sh";
    repo.write(rel, format!("#!/bin/bash\n{}echo hi\n", header("#")));
    std::fs::OpenOptions::new()
        .write(true)
        .open(repo.path(rel))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let run = repo.krobs(&["lint", "--syntax"]).failure(exit::INPUT);
    assert_eq!(
        without_progress(&run),
        "error: `languages/bash/scripts` holds more than 16 MiB of scripts: `lint --syntax` checks at most that much per language; remove or split what no reviewer can read",
        "{run}"
    );
    assert!(!run.stderr.contains("[bash] building"), "{run}");
    assert!(
        crate::support::children_max_rss_kib() < crate::support::MAX_RSS_KIB,
        "lint --syntax peaked at {} KiB",
        crate::support::children_max_rss_kib()
    );
}
