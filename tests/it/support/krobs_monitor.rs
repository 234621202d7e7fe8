//! The real `krobs-monitor` binary (built by the workspace, beside this test's binary) and what
//! it talks to: a fake Slack Web API over real HTTP that answers `chat.postMessage` and
//! `chat.update` as Slack does (`ok`, `channel`, `ts`; `not_authed`/`invalid_auth` without the
//! bot token), and a real UDP socket that reads the DogStatsD datagrams it sends.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http_server::{HttpServer, Reply, Request};

/// The bot token the monitor is given and the fake Slack expects.
pub const BOT_TOKEN: &str = "xoxb-krobs-test-0123456789";
/// The channel the monitor posts to (its default), and the id Slack answers for it.
pub const CHANNEL: &str = "#krobs";
pub const CHANNEL_ID: &str = "C0KROBS001";

/// One call Slack accepted.
#[derive(Debug, Clone)]
pub struct SlackCall {
    /// `chat.postMessage` or `chat.update`.
    pub method: String,
    /// The channel the call named.
    pub channel: String,
    pub text: String,
    /// The parent of a reply (`chat.postMessage` in a thread).
    pub thread_ts: Option<String>,
    /// The message's `ts`: the one Slack gave a new message, the one `chat.update` named.
    pub ts: String,
}

#[derive(Default)]
struct SlackState {
    accepted: Vec<SlackCall>,
    /// Calls refused, as `method: error`.
    refused: Vec<String>,
    messages: u64,
}

pub struct FakeSlack {
    state: Arc<Mutex<SlackState>>,
    server: HttpServer,
}

impl FakeSlack {
    pub fn start() -> FakeSlack {
        let state = Arc::new(Mutex::new(SlackState::default()));
        let seen = state.clone();
        let server = HttpServer::start(
            &[],
            Arc::new(move |req: Request| answer(&mut seen.lock().unwrap(), req)),
        );
        FakeSlack { state, server }
    }

    /// The Web API base, `http://127.0.0.1:PORT/api` (`SLACK_API_URL`).
    pub fn url(&self) -> String {
        format!("{}/api", self.server.url())
    }

    pub fn accepted(&self) -> Vec<SlackCall> {
        self.state.lock().unwrap().accepted.clone()
    }

    pub fn refused(&self) -> Vec<String> {
        self.state.lock().unwrap().refused.clone()
    }

    /// The accepted calls once there are `n` of them (a few more may come: looked at again
    /// after a pause); panics after `within`.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<SlackCall> {
        let end = Instant::now() + within;
        while self.accepted().len() < n {
            assert!(
                Instant::now() < end,
                "Slack accepted {} calls in {within:?}, not {n}: {:#?}\nrefused: {:?}",
                self.accepted().len(),
                self.accepted(),
                self.refused()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        self.accepted()
    }
}

/// Slack's answer: HTTP 200 and a JSON object whose `ok` says whether the call was done.
fn answer(state: &mut SlackState, req: Request) -> Reply {
    let refuse = |state: &mut SlackState, method: &str, error: &str| {
        state.refused.push(format!("{method}: {error}"));
        Reply::json(200, &json!({"ok": false, "error": error}))
    };
    let method = req
        .path
        .strip_prefix("/api/")
        .unwrap_or(&req.path)
        .to_owned();
    if req.method != "POST" {
        return refuse(state, &method, "invalid_request");
    }
    match req.authorization.as_deref() {
        None => return refuse(state, &method, "not_authed"),
        Some(a) if a != format!("Bearer {BOT_TOKEN}") => {
            return refuse(state, &method, "invalid_auth")
        }
        Some(_) => {}
    }
    let Ok(body) = serde_json::from_str::<Value>(&req.body) else {
        return refuse(state, &method, "invalid_json");
    };
    let field = |name: &str| body[name].as_str().map(str::to_owned);
    let (Some(channel), Some(text)) = (field("channel"), field("text")) else {
        return refuse(state, &method, "invalid_arguments");
    };
    let id = if channel == CHANNEL || channel == CHANNEL_ID {
        CHANNEL_ID
    } else {
        return refuse(state, &method, "channel_not_found");
    };
    let ts = match method.as_str() {
        "chat.postMessage" => {
            state.messages += 1;
            format!("1764748800.{:06}", state.messages)
        }
        "chat.update" => match field("ts") {
            Some(ts) if state.accepted.iter().any(|c| c.ts == ts) => ts,
            _ => return refuse(state, &method, "message_not_found"),
        },
        _ => return refuse(state, &method, "unknown_method"),
    };
    state.accepted.push(SlackCall {
        method,
        channel,
        text: text.clone(),
        thread_ts: field("thread_ts"),
        ts: ts.clone(),
    });
    Reply::json(
        200,
        &json!({"ok": true, "channel": id, "ts": ts, "message": {"text": text, "ts": ts}}),
    )
}

/// DogStatsD datagrams, read from a real UDP socket on 127.0.0.1.
pub struct DogStatsd {
    socket: UdpSocket,
    lines: Mutex<Vec<String>>,
}

impl DogStatsd {
    pub fn start() -> DogStatsd {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket on 127.0.0.1");
        socket.set_nonblocking(true).unwrap();
        DogStatsd {
            socket,
            lines: Mutex::new(Vec::new()),
        }
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    /// Every line received so far (a datagram may hold several).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = self.lines.lock().unwrap();
        let mut buf = [0u8; 65536];
        while let Ok(n) = self.socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            lines.extend(text.lines().map(str::to_owned));
        }
        lines.clone()
    }
}

/// One DogStatsD line, `name:value|type|#tag,tag`.
#[derive(Debug, Clone, PartialEq)]
pub struct Datagram {
    pub name: String,
    pub value: String,
    pub kind: String,
    pub tags: Vec<String>,
}

impl Datagram {
    pub fn parse(line: &str) -> Option<Datagram> {
        let mut parts = line.split('|');
        let (name, value) = parts.next()?.split_once(':')?;
        let kind = parts.next()?.to_owned();
        let tags = parts
            .find_map(|p| p.strip_prefix('#'))
            .map(|t| t.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        Some(Datagram {
            name: name.to_owned(),
            value: value.to_owned(),
            kind,
            tags,
        })
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// The real `krobs-monitor`, on a free loopback port, logging to a file; killed on drop.
pub struct KrobsMonitor {
    addr: String,
    child: Child,
    log: PathBuf,
}

impl KrobsMonitor {
    /// The binary the workspace builds beside this test's: `target/<profile>/krobs-monitor`.
    pub fn binary() -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/<test binary>
        let profile = exe.parent().and_then(Path::parent).unwrap();
        let bin = profile.join("krobs-monitor");
        assert!(
            bin.is_file(),
            "{} is missing: build it with `cargo build -p krobs-monitor` (`bash tests/run.sh` \
             runs `cargo nextest run --workspace`, which builds it)",
            bin.display()
        );
        bin
    }

    /// Starts it with `env` besides its bot token, default channel, journal (in `dir`) and
    /// `DD_ENV=test`; waits until `/readyz` answers 200.
    pub fn start(dir: &Path, env: &[(&str, String)]) -> KrobsMonitor {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.join("krobs-monitor.log");
        let mut command = Command::new(Self::binary());
        command
            .env_clear()
            .env("KROBS_MONITOR_LISTEN", &addr)
            .env("SLACK_BOT_TOKEN", BOT_TOKEN)
            .env("KROBS_MONITOR_SLACK_CHANNEL", CHANNEL)
            .env("KROBS_MONITOR_STORE", dir.join("store.journal"))
            .env("DD_ENV", "test")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = command.spawn().expect("krobs-monitor starts");
        let mut monitor = KrobsMonitor { addr, child, log };
        let end = Instant::now() + Duration::from_secs(20);
        while get(&monitor.addr, "/readyz").map(|(s, _)| s) != Some(200) {
            if let Some(status) = monitor.child.try_wait().unwrap() {
                panic!("krobs-monitor exited {status}\n{}", monitor.log_text());
            }
            assert!(
                Instant::now() < end,
                "krobs-monitor not ready in 20 s\n{}",
                monitor.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        monitor
    }

    /// Where krobs-run and the libraries POST: `http://127.0.0.1:PORT/events`.
    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of `name` on its Prometheus `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let (status, text) = get(&self.addr, "/metrics").expect("GET /metrics");
        assert_eq!(status, 200, "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} on /metrics:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for KrobsMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on `addr`: status and body.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let response = super::services::http_get(addr, path, None).ok()?;
    Some((response.status, response.text()))
}
