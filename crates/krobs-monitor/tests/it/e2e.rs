//! End to end: a python, a ruby and a bash krob, each in its real Debian runtime base (the
//! images `tests/run.sh` makes), run as `render` runs a krob (krobs-run as PID 1, non-root,
//! read-only root) and reporting through krobs-run and its language's library to the real
//! `krobs-monitor`, which holds a bearer token; Slack is the fake Web API, Datadog a UDP socket.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::*;

const WITHIN: Duration = Duration::from_secs(30);
const TOKEN: &str = "e2e-token.0123456789";

fn project(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn base(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("`{var}` is not set: run the tests with `bash tests/run.sh`, which makes the Debian bases")
    })
}

/// Runs `command` in `image` as krob `id`; its exit code and stderr.
fn run_krob(image: &str, id: &str, monitor_url: &str, command: &[&str]) -> (i32, String) {
    let entrypoint = format!(
        "{}:/opt/krobs/bin/krobs-run:ro",
        project("runtime/krobs-run").display()
    );
    let libs = format!("{}:/opt/krobs/languages:ro", project("languages").display());
    let url = format!("KROBS_MONITOR_URL={monitor_url}/events");
    let token = format!("KROBS_MONITOR_TOKEN={TOKEN}");
    let mut args = vec![
        "run",
        "--rm",
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--user",
        "10001:10001",
        "-v",
        &entrypoint,
        "-v",
        &libs,
        "-e",
        &url,
        "-e",
        &token,
        image,
        "/opt/krobs/bin/krobs-run",
        "--id",
        id,
        "--",
    ];
    args.extend(command);
    let out = Command::new("docker")
        .args(&args)
        .output()
        .expect("docker runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("refused"),
        "{id}: the monitor refused an event: {stderr}"
    );
    (out.status.code().unwrap_or(-1), stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn python_ruby_and_bash_krobs_each_get_a_slack_thread_and_their_metrics() {
    let dir = temp_dir("e2e");
    let (slack, statsd) = (FakeSlack::start().await, StatsdReader::start());
    let env = vec![
        ("SLACK_API_URL", slack.url.clone()),
        ("DD_DOGSTATSD_PORT", statsd.port.to_string()),
        ("KROBS_MONITOR_TOKEN", TOKEN.to_owned()),
    ];
    let monitor = Monitor::start(&dir, &env).await;
    // No script waits for krobs-run's `start` (sent in the background): its own `message` may
    // reach the monitor first, which holds it for the run's thread.
    let python = "import sys; sys.path.insert(0, '/opt/krobs/languages/python/lib')\n\
        import krobs_monitor as k\nk.message('hello from python', {})\n\
        k.metric('krobs.e2e.items', 2, 'count', {'Stage': 'Load 1'})\nprint('python done')";
    let ruby = "Krobs.message('hello from ruby', {})\n\
        Krobs.metric('krobs.e2e.items', 2, 'count', { 'Stage' => 'Load 1' })\nputs 'ruby done'";
    let bash = "set -u; . /opt/krobs/languages/bash/lib/krobs_monitor.sh\n\
        krobs_message 'hello from bash' '{}'\n\
        krobs_metric krobs.e2e.items 2 count '{\"Stage\":\"Load 1\"}'\n\
        echo 'bash failed <here>' >&2; exit 3";
    let cases: [(&str, &str, Vec<&str>, i32); 3] = [
        (
            "KROBS_TEST_BASE_PYTHON",
            "python/e2e",
            vec!["python3", "-c", python],
            0,
        ),
        (
            "KROBS_TEST_BASE_RUBY",
            "ruby/e2e",
            vec![
                "ruby",
                "-I/opt/krobs/languages/ruby/lib",
                "-rkrobs_monitor",
                "-e",
                ruby,
            ],
            0,
        ),
        (
            "KROBS_TEST_BASE_BASH",
            "bash/e2e",
            vec!["bash", "-c", bash],
            3,
        ),
    ];
    for (var, id, command, code) in &cases {
        let (exit, stderr) = run_krob(&base(var), id, &monitor.url, command);
        assert_eq!(exit, *code, "{id}: {stderr}");
    }
    slack.wait_accepted(12, WITHIN).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = slack.accepted();
    assert_eq!(calls.len(), 12, "{calls:#?}");
    for (_, id, _, code) in &cases {
        let language = id.split('/').next().unwrap();
        let mine: Vec<_> = calls
            .iter()
            .filter(|c| {
                c.body["text"].as_str().unwrap().contains(id)
                    || c.body["text"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("from {language}"))
                    || c.body.get("thread_ts").is_some_and(|t| {
                        calls.iter().any(|p| {
                            p.body["__ts"] == *t && p.body["text"].as_str().unwrap().contains(id)
                        })
                    })
            })
            .collect();
        assert_eq!(mine.len(), 4, "{id}: {mine:#?}");
        let ts = mine[0].body["__ts"].as_str().unwrap();
        assert!(
            mine[0].body.get("thread_ts").is_none(),
            "{id}: the first is the parent"
        );
        assert_eq!(mine[1].body["thread_ts"], ts, "{id}");
        assert_eq!(mine[1].body["text"], format!("hello from {language}"));
        assert_eq!(mine[2].body["thread_ts"], ts, "{id}");
        let reply = mine[2].body["text"].as_str().unwrap();
        assert!(
            reply.contains(&format!("exit code {code}")),
            "{id}: {reply}"
        );
        assert_eq!(
            (mine[3].method.as_str(), mine[3].body["ts"].as_str()),
            ("chat.update", Some(ts))
        );
        let tags = format!("script:{id},language:{language},owner:unknown,env:test");
        statsd
            .wait_for(&format!("krobs.run.started:1|c|#{tags}"), WITHIN)
            .await;
        let outcome = if *code == 0 { "finished" } else { "failed" };
        statsd
            .wait_for(
                &format!("krobs.run.{outcome}:1|c|#{tags},exit_code:{code}"),
                WITHIN,
            )
            .await;
        statsd
            .wait_for(&format!("krobs.e2e.items:2|c|#{tags},stage:load_1"), WITHIN)
            .await;
    }
    let bash_reply = calls
        .iter()
        .find(|c| c.body["text"].as_str().unwrap().starts_with("Failed"))
        .unwrap();
    assert!(
        bash_reply.body["text"]
            .as_str()
            .unwrap()
            .contains("```\nbash failed &lt;here&gt;\n```"),
        "{bash_reply:#?}"
    );
    assert_eq!(
        monitor.metric("krobs_monitor_unauthorized_total").await,
        0.0
    );
    assert_eq!(
        monitor.metric("krobs_monitor_events_received_total").await,
        12.0
    );
}
