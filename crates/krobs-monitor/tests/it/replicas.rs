//! Two `krobs-monitor` replicas sharing a real `redis-server` (Debian's, which `tests/run.sh`
//! installs): a run's start and finish reaching different replicas land in one thread, and a
//! retried event reaching the other replica is still sent once.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const WITHIN: Duration = Duration::from_secs(20);

struct Redis(Child, u16);

impl Redis {
    fn start(dir: &std::path::Path) -> Redis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect(
                "redis-server (Debian's redis-server package; `bash tests/run.sh` installs it)",
            );
        let end = Instant::now() + WITHIN;
        while std::net::TcpStream::connect(localhost(port)).is_err() {
            assert!(Instant::now() < end, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis(child, port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_sharing_redis_keep_one_thread_per_run_and_send_each_event_once() {
    let dir = temp_dir("replicas");
    let redis = Redis::start(&dir);
    let (slack, statsd) = (FakeSlack::start().await, StatsdReader::start());
    let env = |journal: &str| {
        vec![
            ("SLACK_API_URL", slack.url.clone()),
            ("DD_DOGSTATSD_PORT", statsd.port.to_string()),
            (
                "KROBS_MONITOR_REDIS_URL",
                format!("redis://127.0.0.1:{}/0", redis.1),
            ),
            (
                "KROBS_MONITOR_STORE",
                dir.join(journal).display().to_string(),
            ),
        ]
    };
    let a = Monitor::start(&dir, &env("a.journal")).await;
    let b = Monitor::start(&dir, &env("b.journal")).await;

    a.event(&start("python/shared", "shared-1")).await;
    b.event(&start("python/shared", "shared-1")).await; // krobs-run's retry, balanced to B
    b.event(&message("python/shared", "shared-1", "half way"))
        .await;
    a.event(&message("python/shared", "shared-1", "half way"))
        .await; // retry, to A
    b.event(&outcome("python/shared", "shared-1", 0, &[])).await;

    let calls = slack.wait_accepted(4, WITHIN).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(slack.accepted().len(), 4, "{:#?}", slack.calls());
    let ts = calls[0].body["__ts"].as_str().unwrap();
    assert!(calls[0].body["text"].as_str().unwrap().contains("started"));
    assert_eq!(calls[1].body["thread_ts"], ts);
    assert_eq!(calls[1].body["text"], "half way");
    assert_eq!(calls[2].body["thread_ts"], ts);
    assert_eq!(
        (calls[3].method.as_str(), calls[3].body["ts"].as_str()),
        ("chat.update", Some(ts))
    );
    let duplicates = a.metric("krobs_monitor_events_duplicate_total").await
        + b.metric("krobs_monitor_events_duplicate_total").await;
    assert_eq!(duplicates, 2.0);
    assert!(
        !dir.join("a.journal").exists(),
        "the journal is not used with Redis"
    );
    // Its outcome sent, the run's thread is kept only for the dedup window (120 s by default),
    // not the week an unfinished run's is.
    let ttl = Command::new("redis-cli")
        .args([
            "-p",
            &redis.1.to_string(),
            "TTL",
            "krobs-monitor:run:python/shared@shared-1",
        ])
        .output()
        .expect("redis-cli (Debian's redis-tools, which redis-server depends on)");
    let ttl: i64 = String::from_utf8_lossy(&ttl.stdout).trim().parse().unwrap();
    assert!((1..=120).contains(&ttl), "finished run's thread TTL {ttl}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_redis_is_one_line_at_start() {
    let dir = temp_dir("noredis");
    let closed = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_krobs-monitor"))
        .env_clear()
        .env("SLACK_BOT_TOKEN", "xoxb-t")
        .env("KROBS_MONITOR_SLACK_CHANNEL", "#k")
        .env("KROBS_MONITOR_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env(
            "KROBS_MONITOR_REDIS_URL",
            format!("redis://:hunter2@127.0.0.1:{closed}/0"),
        )
        .env("KROBS_MONITOR_STORE", dir.join("j"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach Redis (KROBS_MONITOR_REDIS_URL)"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
