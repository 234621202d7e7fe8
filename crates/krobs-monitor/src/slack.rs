//! The Slack Web API: `chat.postMessage` and `chat.update` with the bot token. 429 waits for
//! `Retry-After`, 5xx and network errors retry with backoff until Slack answers; an `ok: false`
//! answer is logged with Slack's error code and not retried.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::metrics::Metrics;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const RETRY_AFTER_MAX: u64 = 300;
const ANSWER_MAX: usize = 1 << 20;

/// Slack said no: its error code (or the HTTP status).
#[derive(Debug, thiserror::Error)]
#[error("Slack refused {method}: {code}")]
pub struct Refused {
    pub method: &'static str,
    pub code: String,
}

pub struct Slack {
    http: reqwest::Client,
    base: String,
    token: String,
    metrics: Arc<Metrics>,
}

/// A message Slack accepted.
pub struct Posted {
    pub channel: String,
    pub ts: String,
}

impl Slack {
    pub fn new(base: &str, token: &str, metrics: Arc<Metrics>) -> Slack {
        // reqwest's TLS runs on ring; an error only means the process has a provider already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .expect("an HTTP client with default settings builds");
        Slack {
            http,
            base: base.to_owned(),
            token: token.to_owned(),
            metrics,
        }
    }

    /// Posts `text` in `channel`, in the thread `thread_ts` when given.
    pub async fn post(
        &self,
        channel: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> Result<Posted, Refused> {
        let mut body = json!({"channel": channel, "text": text, "unfurl_links": false});
        if let Some(ts) = thread_ts {
            body["thread_ts"] = ts.into();
        }
        let answer = self.call("chat.postMessage", &body).await?;
        let field = |name: &str| answer[name].as_str().unwrap_or_default().to_owned();
        Ok(Posted {
            channel: field("channel"),
            ts: field("ts"),
        })
    }

    pub async fn update(&self, channel: &str, ts: &str, text: &str) -> Result<(), Refused> {
        let body = json!({"channel": channel, "ts": ts, "text": text});
        self.call("chat.update", &body).await.map(|_| ())
    }

    async fn call(&self, method: &'static str, body: &Value) -> Result<Value, Refused> {
        let url = format!("{}/{method}", self.base);
        let mut backoff = BACKOFF_FIRST;
        loop {
            let started = Instant::now();
            let sent = self
                .http
                .post(&url)
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await;
            let wait = match sent {
                Err(e) => {
                    tracing::warn!(method, error = %e, "slack: no answer; retrying");
                    next(&mut backoff)
                }
                Ok(answer) => {
                    self.metrics.slack_latency(started.elapsed());
                    match self.answer(method, answer).await {
                        Ok(value) => return value,
                        Err(wait) => wait.unwrap_or_else(|| next(&mut backoff)),
                    }
                }
            };
            Metrics::inc(&self.metrics.slack_retried);
            tokio::time::sleep(wait).await;
        }
    }

    /// The outcome of one answer, or Err(how long to wait: Retry-After, else backoff).
    async fn answer(
        &self,
        method: &'static str,
        answer: reqwest::Response,
    ) -> Result<Result<Value, Refused>, Option<Duration>> {
        let status = answer.status();
        if status.as_u16() == 429 {
            let after = answer
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok());
            let secs = after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            tracing::warn!(method, retry_after = secs, "slack: rate limited");
            return Err(Some(Duration::from_secs(secs.min(RETRY_AFTER_MAX))));
        }
        if status.is_server_error() {
            tracing::warn!(
                method,
                status = status.as_u16(),
                "slack: server error; retrying"
            );
            return Err(None);
        }
        let text = match read_bounded(answer).await {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(method, error = %e, "slack: answer cut short; retrying");
                return Err(None);
            }
        };
        let value: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        if status.is_success() && value["ok"] == Value::Bool(true) {
            Metrics::inc(&self.metrics.slack_sent);
            return Ok(Ok(value));
        }
        let code = value["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {status}"));
        Metrics::inc(&self.metrics.slack_failed);
        tracing::error!(method, error = %code, "slack: refused; not retried");
        Ok(Err(Refused { method, code }))
    }
}

async fn read_bounded(mut answer: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() > ANSWER_MAX {
            break;
        }
    }
    Ok(body)
}

fn next(backoff: &mut Duration) -> Duration {
    let wait = backoff.mul_f64(0.8 + fastrand::f64() * 0.4);
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    wait
}
