//! Load against the real `krobs-monitor` binary on loopback: events POSTed at a fixed rate
//! (open loop) by many clients, Slack (a fake Web API) answering in 50 ms, DogStatsD to a UDP
//! socket. Prints the events per second held, the answer latency (p50, p99, max), the RSS every
//! 10 s and its peak. `cargo bench -p krobs-monitor --bench load`; KROBS_BENCH_SECONDS (default
//! 60; the figure is 300) and KROBS_BENCH_RATE (events/s, default 2000).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

const CLIENTS: u64 = 64;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn fake_slack() -> String {
    let counter = Arc::new(AtomicU64::new(0));
    let app = Router::new().route(
        "/api/{method}",
        post(move |Json(body): Json<Value>| {
            let counter = counter.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let n = counter.fetch_add(1, Ordering::Relaxed);
                Json(json!({"ok": true, "channel": body["channel"], "ts": format!("1.{n}")}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The `i`-th event: runs of start, two messages, a metric and a finish.
fn event(i: u64) -> String {
    let (run, step) = (i / 5, i % 5);
    let base = json!({"version": 1, "krob": "python/bench", "host": format!("bench-{run}"),
        "time": "2026-12-03T07:00:00Z"});
    let mut e = base.as_object().unwrap().clone();
    let extra = match step {
        0 => json!({"event": "start", "command": ["python3", "bench.py"]}),
        1 | 2 => json!({"event": "message", "text": format!("step {step}"), "details": {}}),
        3 => json!({"event": "metric", "metric": {"name": "bench.items", "value": 1,
            "type": "count", "tags": {"run": run.to_string()}}}),
        _ => json!({"event": "finish", "exit_code": 0, "signal": null,
            "duration_seconds": 1.5, "output_tail": ["done"]}),
    };
    e.extend(extra.as_object().unwrap().clone());
    Value::Object(e).to_string()
}

#[tokio::main]
async fn main() {
    let seconds = env_number("KROBS_BENCH_SECONDS", 60);
    let rate = env_number("KROBS_BENCH_RATE", 2000);
    let slack = fake_slack().await;
    let statsd = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let statsd_port = statsd.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while statsd.recv(&mut buf).is_ok() {}
    });
    let dir = std::env::temp_dir().join(format!("krobs-monitor-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_krobs-monitor"))
        .env_clear()
        .env("KROBS_MONITOR_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLACK_BOT_TOKEN", "xoxb-bench")
        .env("SLACK_API_URL", &slack)
        .env("KROBS_MONITOR_SLACK_CHANNEL", "#bench")
        .env("KROBS_MONITOR_STORE", dir.join("store.journal"))
        .env("DD_DOGSTATSD_PORT", statsd_port.to_string())
        .env("KROBS_MONITOR_LOG", "error")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/events");
    // The crate's reqwest takes its TLS provider from the process (ring), as the monitor does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    while client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id();
    println!("krobs-monitor load: {rate} events/s offered by {CLIENTS} clients for {seconds} s; Slack answers in 50 ms");

    let latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url, latencies, errors, next) = (
            client.clone(),
            url.clone(),
            latencies.clone(),
            errors.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let period = Duration::from_secs_f64(CLIENTS as f64 / rate as f64);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut mine = Vec::new();
            while Instant::now() < end {
                tick.tick().await;
                let body = event(next.fetch_add(1, Ordering::Relaxed));
                let sent = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status() == 202 => mine.push(sent.elapsed().as_micros() as u32),
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    let mut peak = 0;
    while Instant::now() < end {
        tokio::time::sleep(
            Duration::from_secs(10).min(end.saturating_duration_since(Instant::now())),
        )
        .await;
        let rss = rss_kib(pid, "VmRSS:");
        peak = peak.max(rss);
        println!(
            "  t={:>4.0}s  rss={} KiB  sent={}",
            started.elapsed().as_secs_f64(),
            rss,
            next.load(Ordering::Relaxed)
        );
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed().as_secs_f64();
    let mut l = latencies.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let peak = peak.max(rss_kib(pid, "VmHWM:"));
    println!(
        "events/s held: {:.0} ({} answered 202, {} errors)\nlatency ms: p50 {:.2}  p99 {:.2}  max {:.2}\npeak RSS: {:.1} MiB",
        l.len() as f64 / took, l.len(), errors.load(Ordering::Relaxed), pct(0.50), pct(0.99),
        l.last().copied().unwrap_or(0) as f64 / 1000.0, peak as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
