//! Registry credentials, kept in a type that never prints its secret, and found where
//! `docker login` users keep them: the Docker config's credential helpers (`credHelpers`,
//! `credsStore`) and `auths`.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// A secret string: `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A user name and password for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
    /// Where they came from, for messages (`KROBS_REGISTRY_USERNAME`, `ECR`, a file).
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("`KROBS_REGISTRY_USERNAME` is set but `KROBS_REGISTRY_PASSWORD` is not: set both or neither")]
    HalfSet,
    #[error("cannot read the Docker config `{}`: {cause}; fix it or set `KROBS_REGISTRY_USERNAME` and `KROBS_REGISTRY_PASSWORD`", path.display())]
    DockerConfig { path: PathBuf, cause: String },
    #[error("the credential helper `docker-credential-{helper}` (`{setting}` in `{}`) failed for registry `{host}`: {problem}; fix the helper or the Docker config, or set `KROBS_REGISTRY_USERNAME` and `KROBS_REGISTRY_PASSWORD`", path.display())]
    Helper {
        helper: String,
        /// `credHelpers` or `credsStore`.
        setting: &'static str,
        path: PathBuf,
        host: String,
        problem: String,
    },
}

/// How long a credential helper may take (it may call a cloud API or unlock a keychain).
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most a credential helper may print on stdout or stderr.
const HELPER_OUTPUT_LIMIT: usize = 64 * 1024;
/// What a helper of the Docker credential-helper protocol prints when it has nothing stored.
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

/// Credentials for an OCI registry, looked up as the Docker CLI does: `KROBS_REGISTRY_USERNAME`
/// / `KROBS_REGISTRY_PASSWORD`; else, in the Docker config (`$DOCKER_CONFIG/config.json` or
/// `~/.docker/config.json`), the helper `credHelpers` names for the host, else the
/// `credsStore` helper; a helper that has nothing for the host (or neither) leaves it to the
/// `auths` entry; else none (anonymous).
pub fn for_oci(host: &str) -> Result<Option<Credentials>, CredentialsError> {
    let user = std::env::var("KROBS_REGISTRY_USERNAME")
        .ok()
        .filter(|u| !u.is_empty());
    let pass = std::env::var("KROBS_REGISTRY_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    match (user, pass) {
        (Some(username), Some(password)) => {
            return Ok(Some(Credentials {
                username,
                password: Secret::new(password),
                source: "KROBS_REGISTRY_USERNAME/KROBS_REGISTRY_PASSWORD".to_string(),
            }))
        }
        (Some(_), None) => return Err(CredentialsError::HalfSet),
        _ => {}
    }
    let path = docker_config_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CredentialsError::DockerConfig {
                path,
                cause: e.to_string(),
            })
        }
    };
    from_docker_config_file(&text, host, &path, run_helper)
}

/// The credentials the Docker config `text` (read from `path`) gives `host`, asking helpers
/// through `helper(name, host)`.
fn from_docker_config_file(
    text: &str,
    host: &str,
    path: &Path,
    helper: impl Fn(&str, &str) -> Result<HelperAnswer, String>,
) -> Result<Option<Credentials>, CredentialsError> {
    let config_error = |cause: String| CredentialsError::DockerConfig {
        path: path.to_path_buf(),
        cause,
    };
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| config_error(format!("not JSON ({e})")))?;
    let name = |setting: &str, value: Option<&serde_json::Value>| match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(config_error(format!("`{setting}` is not a string"))),
    };
    // As the Docker CLI: the host's own helper first, then the store, then the file.
    let chosen = match name(
        "credHelpers",
        v.get("credHelpers").and_then(|h| h.get(host)),
    )? {
        Some(h) => Some((h, "credHelpers")),
        None => name("credsStore", v.get("credsStore"))?.map(|h| (h, "credsStore")),
    };
    if let Some((helper_name, setting)) = chosen {
        let failed = |problem: String| CredentialsError::Helper {
            helper: helper_name.clone(),
            setting,
            path: path.to_path_buf(),
            host: host.to_string(),
            problem,
        };
        match helper(&helper_name, host).map_err(failed)? {
            HelperAnswer::Found { username, .. } if username == "<token>" => {
                return Err(failed(
                    "it answered an identity token, which krobs cannot use; store a user name \
                     and password for this registry"
                        .to_string(),
                ));
            }
            HelperAnswer::Found { username, secret } => {
                return Ok(Some(Credentials {
                    username,
                    password: secret,
                    source: format!(
                        "docker-credential-{helper_name}, `{setting}` in {}",
                        path.display()
                    ),
                }))
            }
            HelperAnswer::NotFound => {}
        }
    }
    from_docker_config(text, host)
        .map_err(config_error)
        .map(|c| {
            c.map(|mut c| {
                c.source = path.display().to_string();
                c
            })
        })
}

/// What a credential helper said.
#[derive(Debug)]
enum HelperAnswer {
    Found { username: String, secret: Secret },
    NotFound,
}

/// `docker-credential-NAME get` with `host` on stdin, by the Docker credential-helper protocol:
/// `{"Username": ..., "Secret": ...}` on stdout, or a failure that says it has nothing stored.
/// Bounded in time and output; the error never quotes stdout (it may hold the secret).
fn run_helper(name: &str, host: &str) -> Result<HelperAnswer, String> {
    ask_helper(
        Path::new(&format!("docker-credential-{name}")),
        host,
        HELPER_TIMEOUT,
    )
}

/// [`run_helper`] for a program (a name looked up on `PATH`, or a path) and a time limit.
fn ask_helper(program: &Path, host: &str, timeout: Duration) -> Result<HelperAnswer, String> {
    let (mut child, output) = start_helper(program, host)?;
    let deadline = Instant::now() + timeout;
    let status = wait_for_helper(&mut child, deadline, timeout)?;
    // Its output, unless something it started holds the pipes open past the deadline.
    let (mut stdout, mut stderr) = (None, None);
    while stdout.is_none() || stderr.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match output.recv_timeout(left.max(Duration::from_millis(100))) {
            Ok((true, r)) => stdout = Some(r),
            Ok((false, r)) => stderr = Some(r),
            Err(_) => break,
        }
    }
    let (Some(stdout), stderr) = (stdout, stderr) else {
        return Err("its output did not end (something it started keeps it open)".to_string());
    };
    let stdout =
        stdout.ok_or_else(|| format!("it printed more than {} KiB", HELPER_OUTPUT_LIMIT / 1024))?;
    helper_answer(status, &stdout, stderr.flatten())
}

/// What a helper's stream said: `true` for stdout; `None` past [`HELPER_OUTPUT_LIMIT`].
type HelperOutput = mpsc::Receiver<(bool, Option<Vec<u8>>)>;

/// Starts `program get` with the host on its stdin, its stdout and stderr read on threads of
/// their own.
fn start_helper(program: &Path, host: &str) -> Result<(Child, HelperOutput), String> {
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "it is not on `PATH`".to_string(),
            _ => format!("it cannot be started ({e})"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        // A helper that exits without reading is judged by its answer.
        let _ = stdin.write_all(host.as_bytes());
    }
    let (tx, rx) = mpsc::channel();
    for (stream, out) in [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            true,
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            false,
        ),
    ] {
        let Some(stream) = stream else { continue };
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send((out, read_bounded(stream)));
        });
    }
    Ok((child, rx))
}

/// The helper's exit status; killed at the deadline.
fn wait_for_helper(
    child: &mut Child,
    deadline: Instant,
    timeout: Duration,
) -> Result<ExitStatus, String> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "it did not answer in {}",
                    humantime::format_duration(timeout)
                ));
            }
            Err(e) => return Err(format!("cannot wait for it ({e})")),
        }
    }
}

/// A finished helper's answer, by the protocol: `Username` and `Secret` as JSON; a failure
/// that prints the "not found" message is no credentials, any other says its last line.
fn helper_answer(
    status: ExitStatus,
    stdout: &[u8],
    stderr: Option<Vec<u8>>,
) -> Result<HelperAnswer, String> {
    if !status.success() {
        if String::from_utf8_lossy(stdout).trim() == HELPER_NOT_FOUND {
            return Ok(HelperAnswer::NotFound);
        }
        let said = stderr
            .map(|e| last_line(&String::from_utf8_lossy(&e)))
            .filter(|l| !l.is_empty())
            .map(|l| format!(": {l}"))
            .unwrap_or_default();
        return Err(format!("it exited with {status}{said}"));
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        username: String,
        secret: String,
    }
    let answer: Answer = serde_json::from_slice(stdout).map_err(|_| {
        "its answer is not the JSON of `Username` and `Secret` the protocol defines".to_string()
    })?;
    Ok(HelperAnswer::Found {
        username: answer.username,
        secret: Secret::new(answer.secret),
    })
}

/// Up to [`HELPER_OUTPUT_LIMIT`] bytes of `stream` (`None` past that), draining the rest so
/// that the writer is never blocked.
fn read_bounded(stream: impl Read) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut stream = stream;
    let _ = (&mut stream)
        .take(HELPER_OUTPUT_LIMIT as u64 + 1)
        .read_to_end(&mut buf);
    let _ = std::io::copy(&mut stream, &mut std::io::sink());
    (buf.len() <= HELPER_OUTPUT_LIMIT).then_some(buf)
}

/// The last non-empty line of a helper's stderr, printable characters only, at most 200.
fn last_line(text: &str) -> String {
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    line.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".docker/config.json"),
    }
}

/// The `auths` entry for `host` in a Docker config file, by `auth` (base64 `user:password`)
/// or by `username` and `password`.
fn from_docker_config(text: &str, host: &str) -> Result<Option<Credentials>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let entry = auths.iter().find(|(k, _)| {
        let k = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        k == host || k.split('/').next() == Some(host)
    });
    let Some((_, entry)) = entry else {
        return Ok(None);
    };
    if let Some(auth) = entry
        .get("auth")
        .and_then(|a| a.as_str())
        .filter(|a| !a.is_empty())
    {
        let decoded = STANDARD
            .decode(auth)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| format!("the `auth` of `{host}` is not base64 of `user:password`"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| format!("the `auth` of `{host}` is not base64 of `user:password`"))?;
        return Ok(Some(Credentials {
            username: username.to_string(),
            password: Secret::new(password),
            source: String::new(),
        }));
    }
    match (
        entry.get("username").and_then(|u| u.as_str()),
        entry.get("password").and_then(|p| p.as_str()),
    ) {
        (Some(u), Some(p)) => Ok(Some(Credentials {
            username: u.to_string(),
            password: Secret::new(p),
            source: String::new(),
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = Credentials {
            username: "u".into(),
            password: Secret::new("hunter2"),
            source: "test".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(format!("{}", c.password), "<redacted>");
        assert_eq!(c.password.expose(), "hunter2");
    }

    #[test]
    fn docker_config_auths() {
        let auth = STANDARD.encode("bob:p~a?s>s");
        let text = format!(r#"{{"auths": {{"https://reg.example:5000": {{"auth": "{auth}"}}}}}}"#);
        let c = from_docker_config(&text, "reg.example:5000")
            .unwrap()
            .unwrap();
        assert_eq!(c.username, "bob");
        assert_eq!(c.password.expose(), "p~a?s>s");
        assert!(from_docker_config(&text, "other:5000").unwrap().is_none());
        assert!(from_docker_config("{}", "x").unwrap().is_none());
        assert!(from_docker_config("nope", "x").is_err());
    }

    /// A fake helper: what each helper name answers for `reg:5000`.
    fn fake(name: &str, host: &str) -> Result<HelperAnswer, String> {
        assert_eq!(host, "reg:5000");
        match name {
            "own" => Ok(HelperAnswer::Found {
                username: "from-own".into(),
                secret: Secret::new("s1"),
            }),
            "store" => Ok(HelperAnswer::Found {
                username: "from-store".into(),
                secret: Secret::new("s2"),
            }),
            "token" => Ok(HelperAnswer::Found {
                username: "<token>".into(),
                secret: Secret::new("refresh"),
            }),
            "empty" => Ok(HelperAnswer::NotFound),
            _ => Err("it exited with exit status: 1: locked".into()),
        }
    }

    fn user_from(config: &str) -> Result<Option<String>, String> {
        from_docker_config_file(config, "reg:5000", Path::new("/c/config.json"), fake)
            .map(|c| c.map(|c| format!("{} ({})", c.username, c.source)))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn docker_config_precedence_is_the_docker_clis() {
        let auths = format!(
            r#""auths": {{"reg:5000": {{"auth": "{}"}}}}"#,
            STANDARD.encode("from-auths:pw")
        );
        let own = r#""credHelpers": {"reg:5000": "own", "other:1": "broken"}"#;
        let store = r#""credsStore": "store""#;
        let cfg = |parts: &[&str]| format!("{{{}}}", parts.join(","));
        assert_eq!(
            user_from(&cfg(&[&auths, own, store])).unwrap().unwrap(),
            "from-own (docker-credential-own, `credHelpers` in /c/config.json)"
        );
        assert_eq!(
            user_from(&cfg(&[&auths, store])).unwrap().unwrap(),
            "from-store (docker-credential-store, `credsStore` in /c/config.json)"
        );
        assert_eq!(
            user_from(&cfg(&[&auths])).unwrap().unwrap(),
            "from-auths (/c/config.json)"
        );
        // A helper with nothing stored for the host leaves it to `auths`, then to nobody.
        let empty = r#""credsStore": "empty""#;
        assert_eq!(
            user_from(&cfg(&[&auths, empty])).unwrap().unwrap(),
            "from-auths (/c/config.json)"
        );
        assert_eq!(user_from(&cfg(&[empty])).unwrap(), None);
        assert_eq!(user_from(&cfg(&[r#""credsStore": """#])).unwrap(), None);
        // Another host's helper is not asked.
        assert_eq!(
            user_from(&cfg(&[r#""credHelpers": {"other:1": "broken"}"#])).unwrap(),
            None
        );

        let broken = user_from(&cfg(&[&auths, r#""credsStore": "broken""#])).unwrap_err();
        assert_eq!(
            broken,
            "the credential helper `docker-credential-broken` (`credsStore` in `/c/config.json`) \
             failed for registry `reg:5000`: it exited with exit status: 1: locked; fix the \
             helper or the Docker config, or set `KROBS_REGISTRY_USERNAME` and \
             `KROBS_REGISTRY_PASSWORD`"
        );
        let token = user_from(&cfg(&[r#""credHelpers": {"reg:5000": "token"}"#])).unwrap_err();
        assert!(token.contains("identity token"), "{token}");
        assert!(!token.contains("refresh"), "{token}");
        let bad = user_from(r#"{"credsStore": 3}"#).unwrap_err();
        assert!(bad.contains("`credsStore` is not a string"), "{bad}");
    }

    /// Writes an executable script into `dir`.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn helpers_speak_the_protocol_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ask = |p: &Path| ask_helper(p, "reg:5000", Duration::from_secs(5));

        let ok = script(
            d,
            "ok",
            r#"read -r host; [ "$1" = get ] && [ "$host" = reg:5000 ] || exit 9
printf '{"ServerURL":"%s","Username":"bob","Secret":"hunter2"}' "$host""#,
        );
        match ask(&ok).unwrap() {
            HelperAnswer::Found { username, secret } => {
                assert_eq!((username.as_str(), secret.expose()), ("bob", "hunter2"))
            }
            other => panic!("{other:?}"),
        }
        let none = script(
            d,
            "none",
            "echo 'credentials not found in native keychain'; exit 1",
        );
        assert!(matches!(ask(&none).unwrap(), HelperAnswer::NotFound));
        // stdout may hold the secret: never quoted; stderr's last line is.
        let fails = script(
            d,
            "fails",
            "echo 'hunter2'; echo 'first' >&2; printf 'gpg: \\033[1mlocked\\n\\n' >&2; exit 3",
        );
        let e = ask(&fails).unwrap_err();
        assert_eq!(e, "it exited with exit status: 3: gpg: [1mlocked");
        let garbage = script(d, "garbage", "echo 'Username: bob, Secret: hunter2'");
        let e = ask(&garbage).unwrap_err();
        assert!(e.starts_with("its answer is not the JSON"), "{e}");
        assert!(!e.contains("hunter2"));
        let chatty = script(d, "chatty", "yes hunter2 | head -c 200000");
        assert_eq!(ask(&chatty).unwrap_err(), "it printed more than 64 KiB");
        let slow = script(d, "slow", "exec sleep 30");
        let started = Instant::now();
        let e = ask_helper(&slow, "reg:5000", Duration::from_millis(300)).unwrap_err();
        assert_eq!(e, "it did not answer in 300ms");
        assert!(started.elapsed() < Duration::from_secs(5));
        let e = ask(&d.join("docker-credential-missing")).unwrap_err();
        assert_eq!(e, "it is not on `PATH`");
    }
}
