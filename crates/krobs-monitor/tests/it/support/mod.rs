//! Real parts around the real `krobs-monitor` binary: a fake Slack Web API over HTTP, a UDP
//! socket reading DogStatsD datagrams, and the monitor process itself.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One call the fake Slack answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub auth: String,
    pub body: Value,
    /// The HTTP status it answered.
    pub status: u16,
}

/// What the fake Slack answers next, before going back to `ok`.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    RateLimited(u64),
    Error(&'static str),
}

#[derive(Default)]
struct SlackState {
    calls: Vec<Call>,
    next: VecDeque<Answer>,
    /// Answer 503 to everything while set.
    down: bool,
    ts: u64,
}

pub struct FakeSlack {
    pub url: String,
    state: Arc<Mutex<SlackState>>,
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let state = Arc::new(Mutex::new(SlackState::default()));
        let app = Router::new()
            .route("/api/{method}", post(answer))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeSlack { url, state }
    }

    pub fn then(&self, answer: Answer) {
        self.state.lock().unwrap().next.push_back(answer);
    }

    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The calls Slack accepted (HTTP 200 and ok).
    pub fn accepted(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.status == 200 && c.body["__ok"] == true)
            .collect()
    }

    /// Waits until `n` calls were accepted; returns them.
    pub async fn wait_accepted(&self, n: usize, within: Duration) -> Vec<Call> {
        let end = Instant::now() + within;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= n || Instant::now() > end {
                assert!(
                    accepted.len() >= n,
                    "Slack accepted {} calls, not {n}: {:#?}",
                    accepted.len(),
                    self.calls()
                );
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(
    State(state): State<Arc<Mutex<SlackState>>>,
    UrlPath(method): UrlPath<String>,
    headers: HeaderMap,
    Json(mut body): Json<Value>,
) -> Response {
    let mut state = state.lock().unwrap();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let forced = if state.down {
        Some(Answer::Status(503))
    } else {
        state.next.pop_front()
    };
    let (status, reply) = match forced {
        Some(Answer::Status(code)) => (
            code,
            (StatusCode::from_u16(code).unwrap(), "unavailable").into_response(),
        ),
        Some(Answer::RateLimited(secs)) => (
            429,
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                Json(json!({"ok": false, "error": "ratelimited"})),
            )
                .into_response(),
        ),
        Some(Answer::Error(code)) => (
            200,
            Json(json!({"ok": false, "error": code})).into_response(),
        ),
        None => {
            state.ts += 1;
            let ts = body
                .get("ts")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("1700000000.{:06}", state.ts));
            let channel = body["channel"].as_str().unwrap_or("").replace('#', "C-");
            body["__ok"] = true.into();
            body["__ts"] = ts.clone().into();
            (
                200,
                Json(json!({"ok": true, "channel": channel, "ts": ts})).into_response(),
            )
        }
    };
    state.calls.push(Call {
        method,
        auth,
        body,
        status,
    });
    reply
}

/// DogStatsD datagrams read from a real UDP socket.
pub struct StatsdReader {
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl StatsdReader {
    pub fn start() -> StatsdReader {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = socket.recv(&mut buf) {
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        StatsdReader { port, lines }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, prefix: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                return line;
            }
            assert!(
                Instant::now() < end,
                "no datagram {prefix}...: {:#?}",
                self.lines()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The real binary, on a free loopback port, logging to a file.
pub struct Monitor {
    pub url: String,
    pub child: Child,
    pub log: PathBuf,
}

/// An HTTP client for the tests (the crate's reqwest takes its TLS provider from the process,
/// ring, as the monitor does).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Monitor {
    pub async fn start(dir: &Path, env: &[(&str, String)]) -> Monitor {
        let port = free_port();
        let log = dir.join(format!("monitor-{port}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_krobs-monitor"));
        command
            .env_clear()
            .env("KROBS_MONITOR_LISTEN", format!("127.0.0.1:{port}"))
            .env("SLACK_BOT_TOKEN", "xoxb-test-token")
            .env("KROBS_MONITOR_SLACK_CHANNEL", "#krobs")
            .env("KROBS_MONITOR_STORE", dir.join("store.journal"))
            .env("DD_ENV", "test")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        let monitor = Monitor {
            url: format!("http://127.0.0.1:{port}"),
            child,
            log,
        };
        monitor.wait_ready().await;
        monitor
    }

    async fn wait_ready(&self) {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(r) = http().get(format!("{}/readyz", self.url)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("monitor not ready: {}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// POSTs `body`; the status and the answer's text.
    pub async fn post(&self, body: impl Into<reqwest::Body>, token: Option<&str>) -> (u16, String) {
        let mut request = http()
            .post(format!("{}/events", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await.unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    }

    pub async fn event(&self, event: &Value) {
        let (status, text) = self.post(event.to_string(), None).await;
        assert_eq!(status, 202, "{text}");
    }

    /// The value of a counter on `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = http()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .parse()
            .unwrap()
    }

    pub fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the process to exit; its status code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("krobs-monitor-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn start(krob: &str, host: &str) -> Value {
    json!({"version": 1, "event": "start", "krob": krob, "host": host,
        "time": "2026-12-03T06:00:00Z", "command": ["run"]})
}

pub fn outcome(krob: &str, host: &str, code: i64, tail: &[&str]) -> Value {
    json!({"version": 1, "event": if code == 0 { "finish" } else { "failure" }, "krob": krob,
        "host": host, "time": "2026-12-03T06:00:05Z", "exit_code": code,
        "signal": Value::Null, "duration_seconds": 5.5, "output_tail": tail})
}

pub fn message(krob: &str, host: &str, text: &str) -> Value {
    json!({"version": 1, "event": "message", "krob": krob, "host": host,
        "time": "2026-12-03T06:00:01Z", "text": text, "details": {}})
}

pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
