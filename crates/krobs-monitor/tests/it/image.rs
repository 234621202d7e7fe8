//! The monitor's image, built from `crates/krobs-monitor/Dockerfile` by the real Docker Engine
//! on the Debian base tests/run.sh makes (`KROBS_TEST_BASE_BASH`; production uses
//! debian:bookworm-slim), run as deploy/krobs-monitor.yaml runs it (non-root, read-only root,
//! the store on a writable mount) and taking an event through to Slack.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_runs_the_monitor_non_root_on_a_read_only_root() {
    let base = std::env::var("KROBS_TEST_BASE_BASH")
        .expect("`KROBS_TEST_BASE_BASH` is not set: run the tests with `bash tests/run.sh`");
    let dir = temp_dir("image");
    let context = dir.join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_krobs-monitor"),
        context.join("krobs-monitor"),
    )
    .unwrap();
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile");
    let tag = format!("krobs-test/monitor-image:{}", std::process::id());
    docker(&[
        "build",
        "-q",
        "-f",
        &dockerfile.display().to_string(),
        "--build-arg",
        &format!("BASE_IMAGE={base}"),
        "-t",
        &tag,
        &context.display().to_string(),
    ]);
    let slack = FakeSlack::start().await;
    let port = free_port();
    let id = docker(&[
        "run",
        "-d",
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/var/lib/krobs-monitor:uid=10001,gid=10001",
        "-e",
        &format!("KROBS_MONITOR_LISTEN=127.0.0.1:{port}"),
        "-e",
        "SLACK_BOT_TOKEN=xoxb-image",
        "-e",
        "KROBS_MONITOR_SLACK_CHANNEL=#krobs",
        "-e",
        &format!("SLACK_API_URL={}", slack.url),
        &tag,
    ]);
    let user = docker(&["inspect", "-f", "{{.Config.User}}", &tag]);
    let url = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if http()
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = docker(&["logs", &id]);
    let answer = http()
        .post(format!("{url}/events"))
        .body(start("bash/image", "image-1").to_string())
        .send()
        .await;
    let calls = if ready {
        slack.wait_accepted(1, Duration::from_secs(20)).await
    } else {
        vec![]
    };
    let _ = Command::new("docker").args(["rm", "-f", &id]).output();
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    assert!(ready, "the monitor in its image never got ready: {logs}");
    assert_eq!(answer.unwrap().status(), 202);
    assert_eq!(user, "10001:10001");
    assert!(calls[0].body["text"]
        .as_str()
        .unwrap()
        .contains("bash/image"));
}
