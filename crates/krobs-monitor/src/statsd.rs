//! DogStatsD datagrams to the Datadog agent, over UDP or a Unix socket. Sending never blocks:
//! a datagram that cannot go is counted and forgotten.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use crate::config::StatsdTarget;
use crate::event::{Event, Kind};

const TAG_MAX: usize = 200;

enum Socket {
    Udp(UdpSocket, String, Option<SocketAddr>),
    Unix(UnixDatagram, PathBuf),
}

pub struct Statsd {
    socket: Socket,
    env: String,
}

impl Statsd {
    pub fn new(target: &StatsdTarget, env: &str) -> std::io::Result<Statsd> {
        let socket = match target {
            StatsdTarget::Udp(addr) => {
                let socket = UdpSocket::bind(("0.0.0.0", 0))?;
                socket.set_nonblocking(true)?;
                Socket::Udp(socket, addr.clone(), addr.parse().ok())
            }
            StatsdTarget::Unix(path) => {
                let socket = UnixDatagram::unbound()?;
                socket.set_nonblocking(true)?;
                Socket::Unix(socket, path.clone())
            }
        };
        Ok(Statsd {
            socket,
            env: sanitize(env),
        })
    }

    /// The datagrams an event gives (none for `message`).
    pub fn lines(&self, event: &Event, owner: &str) -> Vec<String> {
        let mut tags = vec![
            format!("script:{}", sanitize(&event.krob)),
            format!("language:{}", sanitize(event.language())),
            format!("owner:{}", sanitize(owner)),
            format!("env:{}", self.env),
        ];
        let count = |name: &str, tags: &[String]| format!("{name}:1|c|#{}", tags.join(","));
        match event.event {
            Kind::Start => vec![count("krobs.run.started", &tags)],
            Kind::Finish | Kind::Failure => {
                tags.push(format!("exit_code:{}", event.exit_code.unwrap_or(0)));
                let name = if event.event == Kind::Finish {
                    "krobs.run.finished"
                } else {
                    "krobs.run.failed"
                };
                let duration = event.duration_seconds.unwrap_or(0.0);
                vec![
                    count(name, &tags),
                    format!("krobs.run.duration:{duration}|d|#{}", tags.join(",")),
                ]
            }
            Kind::Message => Vec::new(),
            Kind::Metric => event
                .metric
                .iter()
                .map(|m| {
                    for (k, v) in &m.tags {
                        tags.push(format!("{}:{}", sanitize(k), sanitize(v)));
                    }
                    let kind = if m.kind == "count" { "c" } else { "g" };
                    format!("{}:{}|{kind}|#{}", m.name, m.value, tags.join(","))
                })
                .collect(),
        }
    }

    /// A count of events dropped from the queue.
    pub fn dropped(&self, event: &Event) -> String {
        format!(
            "krobs.monitor.dropped:1|c|#event:{},script:{},env:{}",
            event.event.as_str(),
            sanitize(&event.krob),
            self.env
        )
    }

    /// Sends one datagram; false when it could not go.
    pub fn send(&self, line: &str) -> bool {
        let sent = match &self.socket {
            Socket::Udp(socket, _, Some(addr)) => socket.send_to(line.as_bytes(), addr),
            Socket::Udp(socket, host, None) => socket.send_to(line.as_bytes(), host.as_str()),
            Socket::Unix(socket, path) => socket.send_to(line.as_bytes(), path),
        };
        if let Err(e) = &sent {
            tracing::debug!(error = %e, "dogstatsd: datagram not sent");
        }
        sent.is_ok()
    }
}

/// A tag value as DogStatsD takes it: lower case, letters, digits and `_-:./` only (anything
/// else, notably `,|#` and spaces, becomes `_`), at most 200 characters.
pub fn sanitize(value: &str) -> String {
    value
        .chars()
        .take(TAG_MAX)
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '-' | ':' | '.' | '/' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_the_protocol_safe() {
        assert_eq!(
            sanitize("Search Infra, #oncall|x"),
            "search_infra___oncall_x"
        );
        assert_eq!(sanitize(&"a".repeat(300)).len(), 200);
    }
}
