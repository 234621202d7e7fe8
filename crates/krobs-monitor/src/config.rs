//! The monitor's configuration, from the environment (documented in the README).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A setting that cannot be used: names the variable and says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// Where DogStatsD datagrams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsdTarget {
    /// `host:port` over UDP.
    Udp(String),
    /// A Unix datagram socket.
    Unix(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The bearer token clients must present, when set.
    pub token: Option<String>,
    pub slack_token: String,
    /// The Slack Web API base, without a trailing slash.
    pub slack_api_url: String,
    pub default_channel: String,
    /// The release manifest, read for each script's owner, image and channel.
    pub release: Option<PathBuf>,
    pub queue_size: usize,
    /// The journal file of the embedded store.
    pub store_path: PathBuf,
    /// Redis, shared by replicas, instead of the journal.
    pub redis_url: Option<String>,
    pub dedup_window: Duration,
    pub drain: Duration,
    /// How long a run's events wait for its `start` before going out without its thread.
    pub start_wait: Duration,
    pub statsd: StatsdTarget,
    /// The `env` tag of every metric (`DD_ENV`).
    pub env_tag: String,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_map(&std::env::vars().collect())
    }

    pub fn from_map(env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let required = |name: &str, what: &str| {
            get(name)
                .map(str::to_owned)
                .ok_or_else(|| ConfigError(format!("`{name}` is not set: give {what}")))
        };
        let listen = get("KROBS_MONITOR_LISTEN").unwrap_or("0.0.0.0:8080");
        let listen = listen.parse().map_err(|_| {
            ConfigError(format!(
                "`KROBS_MONITOR_LISTEN={listen}` is not an address: give IP:PORT, e.g. 0.0.0.0:8080"
            ))
        })?;
        Ok(Config {
            listen,
            token: get("KROBS_MONITOR_TOKEN").map(str::to_owned),
            slack_token: required("SLACK_BOT_TOKEN", "the Slack bot token (xoxb-...)")?,
            slack_api_url: get("SLACK_API_URL")
                .unwrap_or("https://slack.com/api")
                .trim_end_matches('/')
                .to_owned(),
            default_channel: required(
                "KROBS_MONITOR_SLACK_CHANNEL",
                "the default Slack channel (an id such as C0123 or a name such as #krobs)",
            )?,
            release: get("KROBS_MONITOR_RELEASE").map(PathBuf::from),
            queue_size: number(get, "KROBS_MONITOR_QUEUE_SIZE", 10_000)? as usize,
            store_path: PathBuf::from(
                get("KROBS_MONITOR_STORE").unwrap_or("/var/lib/krobs-monitor/store.journal"),
            ),
            redis_url: get("KROBS_MONITOR_REDIS_URL").map(str::to_owned),
            dedup_window: Duration::from_secs(number(get, "KROBS_MONITOR_DEDUP_SECONDS", 120)?),
            drain: Duration::from_secs(number(get, "KROBS_MONITOR_DRAIN_SECONDS", 20)?),
            start_wait: Duration::from_secs(number(get, "KROBS_MONITOR_START_WAIT_SECONDS", 5)?),
            statsd: statsd_target(get)?,
            env_tag: get("DD_ENV").unwrap_or("none").to_owned(),
        })
    }
}

fn number<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    name: &str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError(format!("`{name}={v}` is not a positive whole number"))),
    }
}

fn statsd_target<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<StatsdTarget, ConfigError> {
    if let Some(url) = get("DD_DOGSTATSD_URL") {
        if let Some(path) = url.strip_prefix("unix://") {
            return Ok(StatsdTarget::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = url.strip_prefix("udp://") {
            return Ok(StatsdTarget::Udp(addr.to_owned()));
        }
        return Err(ConfigError(format!(
            "`DD_DOGSTATSD_URL={url}` must start with unix:// or udp://"
        )));
    }
    let host = get("DD_AGENT_HOST").unwrap_or("127.0.0.1");
    let port = get("DD_DOGSTATSD_PORT").unwrap_or("8125");
    if port.parse::<u16>().is_err() {
        return Err(ConfigError(format!(
            "`DD_DOGSTATSD_PORT={port}` is not a port number"
        )));
    }
    Ok(StatsdTarget::Udp(format!("{host}:{port}")))
}
