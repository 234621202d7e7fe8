//! Docker Engine, through bollard: builds a language image from a deterministic, streamed tar
//! of exactly the files its input digest covered, tags it, and pushes it.

use std::collections::{HashMap, VecDeque};
use std::io::Write;

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptions, CreateImageOptionsBuilder, PushImageOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::docker::host::{self, EngineError};
use crate::input::context::Context;
use crate::registry::Credentials;

/// How many log lines a failed build repeats in its error.
const TAIL_LINES: usize = 8;
/// The tar chunks in flight between the tar thread and the daemon.
const TAR_CHUNKS_IN_FLIGHT: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// Reaching it: the address, TLS, the certificates.
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("build [{language}] failed at `{step}`: {message}{}", tail(.last_lines))]
    Build {
        language: String,
        step: String,
        message: String,
        last_lines: Vec<String>,
    },
    #[error("push [{language}] of `{image}` failed: {message}")]
    Push {
        language: String,
        image: String,
        message: String,
    },
    #[error("Docker Engine call `{call}` failed for [{language}]: {cause}")]
    Api {
        language: String,
        call: &'static str,
        cause: String,
    },
}

impl DockerError {
    /// A build that failed at a `FROM` because the Engine could not pull the image (absent
    /// locally, no such repository, no network) says which image and where it is set:
    /// `base` is the base image the language resolved (`BASE_IMAGE` of its build args or the
    /// Dockerfile's default).
    pub fn with_base_hint(self, base: Option<&str>) -> DockerError {
        let DockerError::Build {
            language,
            step,
            mut message,
            last_lines,
        } = self
        else {
            return self;
        };
        let from = step
            .split_once(" : ")
            .map(|(_, instruction)| instruction.trim())
            .filter(|i| i.len() > 5 && i[..5].eq_ignore_ascii_case("FROM "));
        let pull = [
            "no such host",
            "pull access denied",
            "manifest unknown",
            "not found",
            "repository does not exist",
            "unauthorized",
            "dial tcp",
        ];
        if let Some(from) = from.filter(|_| pull.iter().any(|p| message.contains(p))) {
            let hint = match base {
                Some(base) if from.contains("BASE_IMAGE") => format!(
                    "; the base image `{base}` cannot be pulled: load it into the Docker Engine, or set `[languages.{language}] build_args = {{ BASE_IMAGE = \"<image>\" }}` in krobs.toml to one it has or can pull"
                ),
                _ => format!(
                    "; the image of `{from}` cannot be pulled: load it into the Docker Engine, or change that `FROM` in languages/{language}/Dockerfile"
                ),
            };
            message.push_str(&hint);
        }
        DockerError::Build {
            language,
            step,
            message,
            last_lines,
        }
    }
}

fn tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut s = String::from("; last lines:");
    for l in lines {
        s.push_str("\n  | ");
        s.push_str(l);
    }
    s
}

/// Connects to the Docker Engine named by `DOCKER_HOST` (a Unix socket, or TCP with TLS by the
/// Docker CLI's conventions: see [`crate::docker::engine`]) and agrees on an API version. Registry
/// credentials are re-encoded the way the daemon decodes them.
pub async fn connect() -> Result<Docker, DockerError> {
    let docker = host::connect().await?;
    Ok(docker.with_request_modifier(url_safe_registry_auth))
}

/// bollard encodes `X-Registry-Auth` and `X-Registry-Config` with standard base64, but the
/// daemon decodes URL-safe base64 and silently drops what it cannot read, so credentials whose
/// encoding holds `+` or `/` (a password with `~`, `?` or `>`, say) would vanish.
fn url_safe_registry_auth(mut req: bollard::BollardRequest) -> bollard::BollardRequest {
    for name in ["x-registry-auth", "x-registry-config"] {
        let Some(value) = req.headers().get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if let Ok(raw) = STANDARD.decode(value) {
            if let Ok(v) = http::HeaderValue::from_str(&URL_SAFE.encode(raw)) {
                req.headers_mut().insert(name, v);
            }
        }
    }
    req
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    pub language: &'a str,
    pub context: &'a Context,
    /// `host/repository:tag`.
    pub image: String,
    pub build_args: HashMap<String, String>,
    pub platform: String,
    /// Images whose layers may be reused.
    pub cache_from: Vec<String>,
    /// The stage to build (`FROM ... AS <target>`); `None`: the last one.
    pub target: Option<String>,
    /// The network of the `RUN` steps (`[build] network`); `None`: the Engine's default.
    pub network: Option<String>,
}

/// Builds the image; every log line goes to `log`. Returns the image id.
pub async fn build(
    docker: &Docker,
    req: BuildRequest<'_>,
    log: &(dyn Fn(&str) + Sync),
) -> Result<String, DockerError> {
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".to_string(),
        t: Some(req.image.clone()),
        buildargs: Some(req.build_args.clone()),
        platform: req.platform.clone(),
        cachefrom: (!req.cache_from.is_empty()).then(|| req.cache_from.clone()),
        target: req.target.clone().unwrap_or_default(),
        networkmode: req.network.clone(),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let body = bollard::body_try_stream(tar_stream(req.context.clone()));
    let mut stream = docker.build_image(options, None, Some(body));

    let mut step = "the start".to_string();
    let mut last: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut partial = String::new();
    let fail = |step: &str, message: String, last: &VecDeque<String>| DockerError::Build {
        language: req.language.to_string(),
        step: step.to_string(),
        message,
        last_lines: last.iter().cloned().collect(),
    };
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(fail(&step, error.trim().to_string(), &last))
            }
            Err(e) => return Err(fail(&step, host::chain(&e), &last)),
        };
        if let Some(detail) = info.error_detail {
            let message = detail
                .message
                .unwrap_or_else(|| "the daemon reported an error".into());
            return Err(fail(&step, message.trim().to_string(), &last));
        }
        if let Some(text) = info.stream {
            partial.push_str(&text);
            while let Some(pos) = partial.find('\n') {
                let line: String = partial.drain(..=pos).collect();
                let line = line.trim_end().to_string();
                if line.is_empty() {
                    continue;
                }
                if line.starts_with("Step ") {
                    step = line.clone();
                }
                log(&line);
                if last.len() == TAIL_LINES {
                    last.pop_front();
                }
                last.push_back(line);
            }
        }
    }
    let inspect = docker
        .inspect_image(&req.image)
        .await
        .map_err(|e| DockerError::Api {
            language: req.language.to_string(),
            call: "inspect_image",
            cause: e.to_string(),
        })?;
    inspect.id.ok_or_else(|| DockerError::Api {
        language: req.language.to_string(),
        call: "inspect_image",
        cause: "no image id".to_string(),
    })
}

/// Whether the daemon has `image` already.
pub async fn has_image(docker: &Docker, image: &str) -> bool {
    docker.inspect_image(image).await.is_ok()
}

/// Pulls `repository:tag`, where `tag` may be a digest (to use its layers as build cache).
pub async fn pull(
    docker: &Docker,
    language: &str,
    repository: &str,
    tag: &str,
    credentials: Option<&Credentials>,
    host: &str,
) -> Result<(), DockerError> {
    let options = CreateImageOptionsBuilder::new()
        .from_image(repository)
        .tag(tag)
        .build();
    let mut stream =
        docker.create_image(Some(options), None, docker_credentials(credentials, host));
    while let Some(item) = stream.next().await {
        let message = match item {
            Ok(info) => match info.error_detail {
                Some(detail) => detail.message.unwrap_or_default(),
                None => continue,
            },
            Err(e) => e.to_string(),
        };
        return Err(DockerError::Api {
            language: language.to_string(),
            call: "create_image (pull)",
            cause: message.trim().to_string(),
        });
    }
    Ok(())
}

fn docker_credentials(credentials: Option<&Credentials>, host: &str) -> Option<DockerCredentials> {
    credentials.map(|c| DockerCredentials {
        username: Some(c.username.clone()),
        password: Some(c.password.expose().to_string()),
        serveraddress: Some(host.to_string()),
        ..Default::default()
    })
}

/// Pushes `repository:tag`. bollard's push stream carries no digest: the caller reads it
/// from the registry.
pub async fn push(
    docker: &Docker,
    language: &str,
    repository: &str,
    tag: &str,
    credentials: Option<&Credentials>,
    host: &str,
    log: &(dyn Fn(&str) + Sync),
) -> Result<(), DockerError> {
    let creds = docker_credentials(credentials, host);
    let image = format!("{repository}:{tag}");
    let mut stream = docker.push_image(
        repository,
        Some(PushImageOptionsBuilder::new().tag(tag).build()),
        creds,
    );
    let mut last_status = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    return Err(DockerError::Push {
                        language: language.to_string(),
                        image,
                        message: detail.message.unwrap_or_default().trim().to_string(),
                    });
                }
                // Per-layer progress is noise; say each distinct state once.
                if let Some(status) = info.status.filter(|s| s != "Pushing") {
                    if status != last_status {
                        log(&status);
                        last_status = status;
                    }
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(DockerError::Push {
                    language: language.to_string(),
                    image,
                    message: error.trim().to_string(),
                })
            }
            Err(e) => {
                return Err(DockerError::Push {
                    language: language.to_string(),
                    image,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// The context as a tar stream: sorted, fixed mtime, owner and group 0, modes normalized to
/// 0644 / 0755 (executable bit kept), the Dockerfile as it is. Written by a blocking thread
/// in chunks, never whole.
pub fn tar_stream(
    context: Context,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(TAR_CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = write_tar(&context, writer) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

const CHUNK: usize = 256 * 1024;

struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the Docker Engine stopped reading the context",
            )
        })
    }
}

/// Writes the deterministic tar of a context.
pub fn write_tar(context: &Context, out: impl Write) -> std::io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    for entry in &context.entries {
        entry.append_to(&mut tar, &entry.rel, u64::MAX)?;
    }
    let mut out = tar.into_inner()?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn tar_of(root: &std::path::Path) -> Vec<u8> {
        let ctx =
            Context::collect(&crate::input::repo::Repo::new(root).unwrap(), "l", &[]).unwrap();
        let mut out = Vec::new();
        write_tar(&ctx, &mut out).unwrap();
        out
    }

    #[test]
    fn tar_is_deterministic_and_keeps_exec_bits() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for (i, t) in [&a, &b].into_iter().enumerate() {
            let d = t.path().join("l/scripts");
            fs::create_dir_all(&d).unwrap();
            fs::write(t.path().join("l/Dockerfile"), "FROM scratch\n").unwrap();
            fs::write(d.join("run.sh"), "echo\n").unwrap();
            fs::set_permissions(
                d.join("run.sh"),
                fs::Permissions::from_mode(if i == 0 { 0o755 } else { 0o700 }),
            )
            .unwrap();
            fs::write(d.join("data.txt"), "x".repeat(300)).unwrap();
        }
        let ta = tar_of(a.path());
        assert_eq!(ta, tar_of(b.path()), "same inputs, same bytes");

        let mut archive = tar::Archive::new(ta.as_slice());
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("Dockerfile".to_string(), 0o644, 0),
                ("scripts/".to_string(), 0o755, 0),
                ("scripts/data.txt".to_string(), 0o644, 0),
                ("scripts/run.sh".to_string(), 0o755, 0),
            ]
        );
    }

    #[test]
    fn registry_auth_header_becomes_url_safe() {
        // `{"password":"~?>"}`-like payloads encode to `+` and `/` in standard base64.
        let payload = r#"{"username":"u","password":"p~a?s>s~~??>>"}"#;
        let standard = STANDARD.encode(payload);
        assert!(
            standard.contains('+') || standard.contains('/'),
            "{standard}"
        );
        let req = http::Request::builder()
            .header("X-Registry-Auth", &standard)
            .body(bollard::body_full(Bytes::new()))
            .unwrap();
        let req = url_safe_registry_auth(req);
        let sent = req.headers()["x-registry-auth"].to_str().unwrap();
        assert_eq!(URL_SAFE.decode(sent).unwrap(), payload.as_bytes());
        assert!(!sent.contains('+') && !sent.contains('/'));
    }
}
