//! The real `krobs-monitor` binary over real HTTP and UDP: a fake Slack Web API answering as
//! Slack does, and a UDP socket reading its DogStatsD datagrams.

use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::json;

const WITHIN: Duration = Duration::from_secs(20);

fn env(slack: &FakeSlack, statsd: &StatsdReader) -> Vec<(&'static str, String)> {
    vec![
        ("SLACK_API_URL", slack.url.clone()),
        ("DD_AGENT_HOST", "127.0.0.1".into()),
        ("DD_DOGSTATSD_PORT", statsd.port.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_becomes_one_thread_and_its_metrics() {
    let dir = temp_dir("thread");
    let (slack, statsd) = (FakeSlack::start().await, StatsdReader::start());
    let monitor = Monitor::start(&dir, &env(&slack, &statsd)).await;
    monitor
        .event(&start("python/es-drain", "drain-abc12"))
        .await;
    monitor
        .event(&message(
            "python/es-drain",
            "drain-abc12",
            "moved <3> shards & done",
        ))
        .await;
    let metric = json!({"version": 1, "event": "metric", "krob": "python/es-drain",
        "host": "drain-abc12", "time": "2026-12-03T06:00:02Z",
        "metric": {"name": "es.shards.moved", "value": 3, "type": "count",
                   "tags": {"Cluster Name": "prod,eu|1"}}});
    monitor.event(&metric).await;
    monitor
        .event(&outcome(
            "python/es-drain",
            "drain-abc12",
            3,
            &["step 1", "boom <err>"],
        ))
        .await;

    let calls = slack.wait_accepted(4, WITHIN).await;
    assert!(calls.iter().all(|c| c.auth == "Bearer xoxb-test-token"));
    let parent = &calls[0];
    assert_eq!(parent.method, "chat.postMessage");
    assert_eq!(parent.body["channel"], "#krobs");
    assert!(parent.body.get("thread_ts").is_none());
    let text = parent.body["text"].as_str().unwrap();
    assert!(
        text.contains("python/es-drain") && text.contains("drain-abc12"),
        "{text}"
    );
    let ts = parent.body["__ts"].as_str().unwrap();
    assert_eq!(calls[1].body["thread_ts"], ts);
    assert_eq!(calls[1].body["text"], "moved &lt;3&gt; shards &amp; done");
    assert_eq!(calls[2].method, "chat.postMessage");
    assert_eq!(calls[2].body["thread_ts"], ts);
    let reply = calls[2].body["text"].as_str().unwrap();
    assert!(
        reply.contains("exit code 3") && reply.contains("5.5s"),
        "{reply}"
    );
    assert!(
        reply.contains("```\nstep 1\nboom &lt;err&gt;\n```"),
        "{reply}"
    );
    assert_eq!(calls[3].method, "chat.update");
    assert_eq!(calls[3].body["ts"], ts);
    assert_eq!(calls[3].body["channel"], "C-krobs");
    assert!(calls[3].body["text"].as_str().unwrap().contains("failed"));

    let tags = "script:python/es-drain,language:python,owner:unknown,env:test";
    assert_eq!(
        statsd.wait_for("krobs.run.started", WITHIN).await,
        format!("krobs.run.started:1|c|#{tags}")
    );
    assert_eq!(
        statsd.wait_for("krobs.run.failed", WITHIN).await,
        format!("krobs.run.failed:1|c|#{tags},exit_code:3")
    );
    assert_eq!(
        statsd.wait_for("krobs.run.duration", WITHIN).await,
        format!("krobs.run.duration:5.5|d|#{tags},exit_code:3")
    );
    assert_eq!(
        statsd.wait_for("es.shards.moved", WITHIN).await,
        format!("es.shards.moved:3|c|#{tags},cluster_name:prod_eu_1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_and_wrong_tokens_are_refused_with_one_line_and_retries_deduplicated() {
    let dir = temp_dir("refuse");
    let (slack, statsd) = (FakeSlack::start().await, StatsdReader::start());
    let mut env = env(&slack, &statsd);
    env.push(("KROBS_MONITOR_TOKEN", "s3cret-token".into()));
    let monitor = Monitor::start(&dir, &env).await;
    let good = start("bash/x", "x-1").to_string();

    let (status, text) = monitor.post("{not json", Some("s3cret-token")).await;
    assert_eq!((status, text.lines().count()), (400, 1), "{text}");
    assert!(text.starts_with("not JSON"), "{text}");
    let mut bad = start("bash/x", "x-1");
    bad["krob"] = "Bad Id".into();
    let (status, text) = monitor.post(bad.to_string(), Some("s3cret-token")).await;
    assert_eq!((status, text.lines().count()), (400, 1), "{text}");
    assert!(text.contains("/krob"), "{text}");
    let big = format!("{{\"pad\":\"{}\"}}", "a".repeat(70 * 1024));
    assert_eq!(monitor.post(big, Some("s3cret-token")).await.0, 413);
    assert_eq!(monitor.post(good.clone(), None).await.0, 401);
    let (status, text) = monitor.post(good.clone(), Some("wrong-token!")).await;
    assert_eq!(status, 401);
    assert!(!text.contains("s3cret"));

    assert_eq!(
        monitor.post(good.clone(), Some("s3cret-token")).await.0,
        202
    );
    assert_eq!(
        monitor.post(good.clone(), Some("s3cret-token")).await.0,
        202
    );
    slack.wait_accepted(1, WITHIN).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        slack.calls().len(),
        1,
        "a retried event went to Slack twice"
    );
    assert_eq!(
        monitor.metric("krobs_monitor_events_duplicate_total").await,
        1.0
    );
    assert_eq!(
        monitor.metric("krobs_monitor_events_rejected_total").await,
        3.0
    );
    assert_eq!(
        monitor.metric("krobs_monitor_unauthorized_total").await,
        2.0
    );
    assert!(
        !monitor.log_text().contains("s3cret"),
        "the token reached the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_rate_limits_and_outages_delay_events_but_deliver_them_in_order() {
    let dir = temp_dir("outage");
    let (slack, statsd) = (FakeSlack::start().await, StatsdReader::start());
    let monitor = Monitor::start(&dir, &env(&slack, &statsd)).await;
    slack.then(Answer::RateLimited(1));
    for _ in 0..3 {
        slack.then(Answer::Status(503));
    }
    let started = Instant::now();
    monitor.event(&start("ruby/report", "r-1")).await;
    for i in 0..3 {
        monitor
            .event(&message("ruby/report", "r-1", &format!("line {i}")))
            .await;
    }
    monitor.event(&outcome("ruby/report", "r-1", 0, &[])).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answers waited on Slack"
    );
    let calls = slack.wait_accepted(6, WITHIN).await;
    let texts: Vec<&str> = calls
        .iter()
        .map(|c| c.body["text"].as_str().unwrap())
        .collect();
    assert!(texts[0].contains("started"));
    assert_eq!(&texts[1..4], ["line 0", "line 1", "line 2"]);
    assert!(texts[4].starts_with("Finished"));
    assert!(texts[5].contains("finished"));
    let rate_limited = slack.calls().iter().position(|c| c.status == 429).unwrap();
    assert_eq!(rate_limited, 0);
    assert!(monitor.metric("krobs_monitor_slack_retried_total").await >= 4.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn ok_false_is_logged_with_its_code_and_not_retried() {
    let dir = temp_dir("okfalse");
    let (slack, statsd) = (FakeSlack::start().await, StatsdReader::start());
    let monitor = Monitor::start(&dir, &env(&slack, &statsd)).await;
    slack.then(Answer::Error("channel_not_found"));
    monitor.event(&start("bash/a", "a-1")).await;
    monitor.event(&start("bash/b", "b-1")).await;
    slack.wait_accepted(1, WITHIN).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = slack.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0].body["error"], serde_json::Value::Null);
    assert!(monitor.log_text().contains("channel_not_found"));
    assert_eq!(
        monitor.metric("krobs_monitor_slack_failed_total").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_monitor_killed_between_start_and_finish_replies_in_the_same_thread() {
    let dir = temp_dir("restart");
    let (slack, statsd) = (FakeSlack::start().await, StatsdReader::start());
    let mut first = Monitor::start(&dir, &env(&slack, &statsd)).await;
    first.event(&start("python/long", "long-1")).await;
    let parent = slack.wait_accepted(1, WITHIN).await[0].body["__ts"]
        .as_str()
        .unwrap()
        .to_owned();
    // Slack answered; the kill comes once the monitor has written down the run's thread (a kill
    // between Slack's answer and that write is the one window no store closes).
    let journal = dir.join("store.journal");
    let end = Instant::now() + WITHIN;
    while !std::fs::read_to_string(&journal)
        .unwrap_or_default()
        .contains("python/long@long-1")
    {
        assert!(Instant::now() < end, "the thread was never written down");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.signal(libc::SIGKILL);
    first.wait_exit(WITHIN).unwrap();

    let second = Monitor::start(&dir, &env(&slack, &statsd)).await;
    // krobs-run's retry of the start, after the restart, is still a duplicate.
    second.event(&start("python/long", "long-1")).await;
    second
        .event(&outcome("python/long", "long-1", 0, &[]))
        .await;
    let calls = slack.wait_accepted(3, WITHIN).await;
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_eq!(calls[1].body["thread_ts"], parent.as_str());
    assert_eq!(
        (calls[2].method.as_str(), calls[2].body["ts"].as_str()),
        ("chat.update", Some(parent.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_drops_messages_first_and_counts_every_drop() {
    let dir = temp_dir("full");
    let (slack, statsd) = (FakeSlack::start().await, StatsdReader::start());
    let mut env = env(&slack, &statsd);
    env.push(("KROBS_MONITOR_QUEUE_SIZE", "4".into()));
    slack.set_down(true);
    let monitor = Monitor::start(&dir, &env).await;
    // The first start is taken by the sender and waits on Slack; four more fill the queue.
    monitor.event(&start("bash/q", "q-0")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    monitor.event(&start("bash/q", "q-1")).await;
    for i in 0..5 {
        monitor
            .event(&message("bash/q", "q-1", &format!("m{i}")))
            .await;
    }
    monitor.event(&outcome("bash/q", "q-1", 0, &[])).await;
    assert_eq!(monitor.metric("krobs_monitor_queue_depth").await, 4.0);
    assert_eq!(
        monitor.metric("krobs_monitor_events_dropped_total").await,
        3.0
    );
    assert!(
        monitor
            .log_text()
            .matches("queue full: event dropped")
            .count()
            == 3
    );
    statsd
        .wait_for(
            "krobs.monitor.dropped:1|c|#event:message,script:bash/q",
            WITHIN,
        )
        .await;

    slack.set_down(false);
    let calls = slack.wait_accepted(6, WITHIN).await;
    let texts: Vec<&str> = calls
        .iter()
        .map(|c| c.body["text"].as_str().unwrap())
        .collect();
    assert!(
        texts[0].contains("q-0") && texts[1].contains("q-1"),
        "{texts:#?}"
    );
    assert_eq!(&texts[2..4], ["m3", "m4"]);
    assert!(texts[4].starts_with("Finished"));
    assert_eq!(calls[5].method, "chat.update");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slack.accepted().len(), 6, "a dropped message reached Slack");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_a_full_queue_and_slack_unreachable_stops_within_the_bound() {
    let dir = temp_dir("sigterm");
    let statsd = StatsdReader::start();
    let closed = free_port();
    let env = vec![
        ("SLACK_API_URL", format!("http://127.0.0.1:{closed}/api")),
        ("DD_DOGSTATSD_PORT", statsd.port.to_string()),
        ("KROBS_MONITOR_QUEUE_SIZE", "5".into()),
        ("KROBS_MONITOR_DRAIN_SECONDS", "2".into()),
    ];
    let mut monitor = Monitor::start(&dir, &env).await;
    for i in 0..8 {
        monitor.event(&start("bash/t", &format!("t-{i}"))).await;
    }
    // Slack refusing connections changes nothing for the krobs: every event was taken.
    assert_eq!(
        monitor.metric("krobs_monitor_events_received_total").await,
        8.0
    );
    let stopping = Instant::now();
    monitor.signal(libc::SIGTERM);
    let code = monitor.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", monitor.log_text());
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "took {:?}",
        stopping.elapsed()
    );
    let log = monitor.log_text();
    assert!(log.contains("queue not drained within the bound"), "{log}");
    assert!(log.contains("\"left\":5"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_release_gives_each_script_its_owner_image_and_channel() {
    let dir = temp_dir("release");
    let (slack, statsd) = (FakeSlack::start().await, StatsdReader::start());
    let release = dir.join("release.json");
    let script = |id: &str, channel: Option<&str>| {
        let mut header = json!({"owner": "Search Infra (#search-oncall)", "description": "d",
            "schedule": null, "timeout_seconds": null, "retries": null, "cpu": null, "memory": null});
        if let Some(c) = channel {
            header["slack_channel"] = c.into();
        }
        json!({"id": id, "language": "python", "path": "p", "image_path": "i",
            "image": "registry.example/krobs/python@sha256:abc", "sha256": "0", "command": ["x"],
            "header": header, "job": {}})
    };
    let manifest = json!({"format": "krobs/v1", "preview": false, "commit": null,
        "monitor_url": null, "languages": [],
        "scripts": [script("python/own", Some("#search-oncall")), script("python/other", None)]});
    std::fs::write(&release, manifest.to_string()).unwrap();
    let mut env = env(&slack, &statsd);
    env.push(("KROBS_MONITOR_RELEASE", release.display().to_string()));
    let monitor = Monitor::start(&dir, &env).await;
    monitor.event(&start("python/own", "own-1")).await;
    monitor.event(&start("python/other", "other-1")).await;
    let calls = slack.wait_accepted(2, WITHIN).await;
    assert_eq!(calls[0].body["channel"], "#search-oncall");
    assert_eq!(calls[1].body["channel"], "#krobs");
    let text = calls[0].body["text"].as_str().unwrap();
    assert!(
        text.contains("owner: Search Infra (#search-oncall)"),
        "{text}"
    );
    assert!(
        text.contains("image: `registry.example/krobs/python@sha256:abc`"),
        "{text}"
    );
    let line = statsd
        .wait_for("krobs.run.started:1|c|#script:python/own", WITHIN)
        .await;
    assert!(
        line.contains(",owner:search_infra___search-oncall_,"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dogstatsd_over_a_unix_socket() {
    let dir = temp_dir("unix");
    let slack = FakeSlack::start().await;
    let path = dir.join("dsd.socket");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(WITHIN)).unwrap();
    let env = vec![
        ("SLACK_API_URL", slack.url.clone()),
        ("DD_DOGSTATSD_URL", format!("unix://{}", path.display())),
    ];
    let monitor = Monitor::start(&dir, &env).await;
    monitor.event(&start("bash/u", "u-1")).await;
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        "krobs.run.started:1|c|#script:bash/u,language:bash,owner:unknown,env:test"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_before_its_start_waits_for_the_thread_without_holding_other_runs() {
    let dir = temp_dir("early");
    let (slack, statsd) = (FakeSlack::start().await, StatsdReader::start());
    let monitor = Monitor::start(&dir, &env(&slack, &statsd)).await;
    // krobs-run's `start` is still on its way while the script reports.
    monitor
        .event(&message("bash/early", "e-1", "before start"))
        .await;
    let metric = json!({"version": 1, "event": "metric", "krob": "bash/early", "host": "e-1",
        "time": "2026-12-03T06:00:02Z",
        "metric": {"name": "early.items", "value": 1, "type": "gauge", "tags": {}}});
    monitor.event(&metric).await;
    statsd.wait_for("early.items:1|g", WITHIN).await;
    // Another run's events go out meanwhile.
    monitor.event(&start("bash/other", "o-1")).await;
    monitor.event(&message("bash/other", "o-1", "other")).await;
    let calls = slack.wait_accepted(2, WITHIN).await;
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert!(calls[0].body["text"]
        .as_str()
        .unwrap()
        .contains("bash/other"));
    assert_eq!(calls[1].body["text"], "other");
    monitor
        .event(&message("bash/early", "e-1", "also before"))
        .await;
    monitor.event(&start("bash/early", "e-1")).await;
    monitor
        .event(&message("bash/early", "e-1", "after start"))
        .await;
    let calls = slack.wait_accepted(6, WITHIN).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = &calls[2..];
    assert_eq!(slack.accepted().len(), 6, "{:#?}", slack.accepted());
    assert!(calls[0].body["text"]
        .as_str()
        .unwrap()
        .contains("bash/early"));
    assert!(calls[0].body.get("thread_ts").is_none());
    let ts = calls[0].body["__ts"].as_str().unwrap();
    let texts: Vec<_> = calls[1..].iter().map(|c| c.body["text"].clone()).collect();
    assert_eq!(texts, ["before start", "also before", "after start"]);
    assert!(calls[1..].iter().all(|c| c.body["thread_ts"] == ts));
    assert_eq!(monitor.metric("krobs_monitor_queue_depth").await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_whose_start_never_comes_goes_to_the_channel_after_the_wait() {
    let dir = temp_dir("nostart");
    let (slack, statsd) = (FakeSlack::start().await, StatsdReader::start());
    let mut env = env(&slack, &statsd);
    env.push(("KROBS_MONITOR_START_WAIT_SECONDS", "1".into()));
    let monitor = Monitor::start(&dir, &env).await;
    let posted = Instant::now();
    monitor
        .event(&message("bash/lost", "l-1", "nobody started me"))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(slack.calls().is_empty(), "sent before the wait was over");
    assert_eq!(monitor.metric("krobs_monitor_queue_depth").await, 1.0);
    let calls = slack.wait_accepted(1, WITHIN).await;
    assert!(posted.elapsed() >= Duration::from_secs(1));
    assert_eq!(calls[0].body["text"], "nobody started me");
    assert_eq!(calls[0].body["channel"], "#krobs");
    assert!(calls[0].body.get("thread_ts").is_none());
    let log = monitor.log_text();
    assert!(
        log.contains("no start for the run within the wait") && log.contains("bash/lost@l-1"),
        "{log}"
    );
}
