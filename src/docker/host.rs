//! Reaching the Docker Engine by the Docker CLI's conventions: `DOCKER_HOST` names it (a Unix
//! socket, default `unix:///var/run/docker.sock`, or `tcp://host:port`); over TCP with
//! `DOCKER_TLS_VERIFY` set (to anything but the empty string), the connection is mutual TLS with
//! the files of `DOCKER_CERT_PATH` (default: the Docker config folder, `$DOCKER_CONFIG` or
//! `~/.docker`): `ca.pem`, the CA that signed the Engine's certificate, and `cert.pem` and
//! `key.pem`, this client's certificate and key. This is how a build points at a shared build
//! host. Failures say which file or which side of the handshake to fix, never what a key holds.

use std::error::Error as StdError;
use std::io;
use std::path::{Path, PathBuf};

use bollard::{Docker, API_DEFAULT_VERSION};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// bollard's own request timeout (seconds), the one `Docker::connect_with_defaults` sets.
const TIMEOUT_SECS: u64 = 120;
/// The Docker CLI's default address on Unix.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker Engine ({host}): {cause}; start it or set `DOCKER_HOST`")]
    Unreachable { host: String, cause: String },
    #[error(
        "the Docker Engine at {host} did not answer plain HTTP ({cause}); if it listens with TLS, \
         set `DOCKER_TLS_VERIFY=1` and `DOCKER_CERT_PATH` (a folder with ca.pem, cert.pem and key.pem)"
    )]
    PlainRefused { host: String, cause: String },
    #[error(
        "cannot use TLS with the Docker Engine at {host} (`DOCKER_TLS_VERIFY` is set): `{}` {problem}; \
         `DOCKER_CERT_PATH` (default ~/.docker) must hold ca.pem (the CA of the Engine's certificate), \
         cert.pem and key.pem (this client's certificate and its key)",
        path.display()
    )]
    CertFile {
        host: String,
        path: PathBuf,
        problem: String,
    },
    #[error("`DOCKER_HOST={host}` {problem}; {fix}")]
    Host {
        host: String,
        problem: String,
        fix: String,
    },
    #[error("TLS with the Docker Engine at {host} failed: {problem}; {fix}")]
    Tls {
        host: String,
        problem: String,
        fix: String,
    },
}

/// Where the Docker Engine is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket (or any other address bollard understands by itself).
    Local { host: String },
    /// `tcp://` (or `http://`) without TLS.
    Plain { host: String },
    /// `tcp://` with `DOCKER_TLS_VERIFY` set, or `https://`: mutual TLS with the files in `certs`.
    Tls { host: String, certs: PathBuf },
}

impl Endpoint {
    /// The endpoint the environment `var` names, as the Docker CLI reads it (an empty variable
    /// counts as unset).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Endpoint {
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        let host = set("DOCKER_HOST").unwrap_or_else(|| DEFAULT_HOST.to_string());
        let tls = host.starts_with("https://")
            || (host.starts_with("tcp://") && set("DOCKER_TLS_VERIFY").is_some());
        if tls {
            let certs = set("DOCKER_CERT_PATH")
                .map(PathBuf::from)
                .or_else(|| set("DOCKER_CONFIG").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(set("HOME").unwrap_or_default()).join(".docker"));
            Endpoint::Tls { host, certs }
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Endpoint::Plain { host }
        } else {
            Endpoint::Local { host }
        }
    }

    pub fn host(&self) -> &str {
        match self {
            Endpoint::Local { host } | Endpoint::Plain { host } | Endpoint::Tls { host, .. } => {
                host
            }
        }
    }

    /// A client for the endpoint; nothing is sent yet. For TLS, the three files are read and
    /// checked first: bollard itself would send no client certificate when `cert.pem` or
    /// `key.pem` is unusable, and the Engine's refusal would hide why.
    fn client(&self) -> Result<Docker, EngineError> {
        let host = self.host();
        let unreachable = |e: bollard::errors::Error| EngineError::Unreachable {
            host: host.to_string(),
            cause: e.to_string(),
        };
        match self {
            Endpoint::Local { host } => {
                check_local(host)?;
                Docker::connect_with_host(host).map_err(unreachable)
            }
            Endpoint::Plain { host } => {
                Docker::connect_with_http(host, TIMEOUT_SECS, API_DEFAULT_VERSION)
                    .map_err(unreachable)
            }
            Endpoint::Tls { host, certs } => {
                // One process-wide provider, the one the rest of the tree (reqwest, the AWS SDK)
                // uses.
                crate::registry::install_tls_provider();
                let files = CertFiles::in_dir(certs);
                files
                    .check()
                    .map_err(|(path, problem)| EngineError::CertFile {
                        host: host.clone(),
                        path,
                        problem,
                    })?;
                Docker::connect_with_ssl(
                    host,
                    &files.key,
                    &files.cert,
                    &files.ca,
                    TIMEOUT_SECS,
                    API_DEFAULT_VERSION,
                )
                .map_err(unreachable)
            }
        }
    }

    /// What a failed first call says about the endpoint.
    fn failure(&self, e: &(dyn StdError + 'static)) -> EngineError {
        let host = self.host().to_string();
        let cause = chain(e);
        match self {
            Endpoint::Local { .. } => EngineError::Unreachable { host, cause },
            Endpoint::Plain { .. } if !unreachable(e) => EngineError::PlainRefused { host, cause },
            Endpoint::Plain { .. } => EngineError::Unreachable { host, cause },
            Endpoint::Tls { certs, .. } => match tls_error(e) {
                Some(tls) => {
                    let (problem, fix) = explain_tls(tls, &host, certs);
                    EngineError::Tls { host, problem, fix }
                }
                None => EngineError::Unreachable { host, cause },
            },
        }
    }
}

/// A `DOCKER_HOST` that is neither TCP nor HTTP must be a Unix socket: an address without a
/// scheme, or `ssh://` (which the Docker CLI tunnels through its own `ssh` and Krobs does not),
/// is refused with what to set instead.
fn check_local(host: &str) -> Result<(), EngineError> {
    let (problem, fix) = match host.split_once("://") {
        Some(("unix", _)) => return Ok(()),
        None if host.starts_with('/') => (
            "is a path without a scheme".to_string(),
            format!("set `DOCKER_HOST=unix://{host}`"),
        ),
        None => (
            "has no scheme".to_string(),
            format!("set `DOCKER_HOST=tcp://{host}` (with `DOCKER_TLS_VERIFY=1` for a TLS port)"),
        ),
        Some(("ssh", rest)) => (
            "is not supported: Krobs does not tunnel the Engine's API through ssh".to_string(),
            format!(
                "forward its socket (`ssh -NL /tmp/docker.sock:/var/run/docker.sock {rest}`) and set `DOCKER_HOST=unix:///tmp/docker.sock`, or use `tcp://` with `DOCKER_TLS_VERIFY=1`"
            ),
        ),
        Some((scheme, _)) => (
            format!("uses the scheme `{scheme}://`, which Krobs does not support"),
            "use `unix://`, `tcp://`, `http://` or `https://`".to_string(),
        ),
    };
    Err(EngineError::Host {
        host: host.to_string(),
        problem,
        fix,
    })
}

/// Connects to the Docker Engine the environment names and agrees on an API version.
pub async fn connect() -> Result<Docker, EngineError> {
    let endpoint = Endpoint::from_env(|name| std::env::var(name).ok());
    let docker = endpoint.client()?;
    match docker.negotiate_version().await {
        Ok(docker) => {
            tracing::debug!(host = endpoint.host(), api = %docker.client_version(), "connected to the Docker Engine");
            Ok(docker)
        }
        Err(e) => Err(endpoint.failure(&e)),
    }
}

/// The three files of a TLS connection, by the Docker CLI's names.
struct CertFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl CertFiles {
    fn in_dir(dir: &Path) -> CertFiles {
        CertFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    /// Every file there and usable; else the first file that is not, and what is wrong with it.
    /// The messages never quote a file's content (a PEM parser's error may).
    fn check(&self) -> Result<(), (PathBuf, String)> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| {
                let problem = match e.kind() {
                    io::ErrorKind::NotFound => "does not exist".to_string(),
                    _ => format!("cannot be read ({e})"),
                };
                (path.to_path_buf(), problem)
            })
        };
        for path in [&self.ca, &self.cert] {
            let bytes = read(path)?;
            let certs = CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>();
            if !matches!(certs, Ok(c) if !c.is_empty()) {
                return Err((
                    path.clone(),
                    "holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".to_string(),
                ));
            }
        }
        let bytes = read(&self.key)?;
        let no_key = || {
            (
                self.key.clone(),
                "holds no private key this client can use (PEM: PKCS#8, RSA or EC)".to_string(),
            )
        };
        let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| no_key())?;
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| std::sync::Arc::new(rustls::crypto::ring::default_provider()));
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|_| no_key())?;
        Ok(())
    }
}

/// The messages of an error and its sources, each once, joined by `: `.
pub fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for err in sources(e) {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// The errors of an error's chain, itself first, with what each I/O error wraps: an
/// `io::Error`'s `source` skips the error it carries, and the TLS connector wraps twice.
fn sources<'a>(e: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut all = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        all.push(err);
        let mut inner = err.downcast_ref::<io::Error>().and_then(|io| io.get_ref());
        while let Some(i) = inner {
            let i: &(dyn StdError + 'static) = i;
            all.push(i);
            inner = i.downcast_ref::<io::Error>().and_then(|io| io.get_ref());
        }
        next = err.source();
    }
    all
}

/// Whether nothing listens there at all (refused, no route, timed out), as opposed to a
/// listener that would not speak plain HTTP.
fn unreachable(e: &(dyn StdError + 'static)) -> bool {
    sources(e).into_iter().any(|err| {
        err.downcast_ref::<io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable
                    | io::ErrorKind::AddrNotAvailable
            )
        })
    })
}

/// The TLS error in an error's chain: rustls's own, or one an I/O error carries.
fn tls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    sources(e)
        .into_iter()
        .find_map(|err| err.downcast_ref::<rustls::Error>())
}

/// What went wrong in the handshake, and what to fix.
fn explain_tls(e: &rustls::Error, host: &str, certs: &Path) -> (String, String) {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let ca = certs.join("ca.pem");
    let cert = certs.join("cert.pem");
    match e {
        E::AlertReceived(
            alert @ (A::CertificateRequired
            | A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::AccessDenied
            | A::DecryptError),
        ) => (
            format!(
                "the Engine refused the client certificate `{}` (TLS alert `{alert:?}`)",
                cert.display()
            ),
            "use a client certificate (cert.pem, with its key.pem) signed by the CA the Engine \
             trusts (its `--tlscacert`)"
                .to_string(),
        ),
        E::InvalidCertificate(
            C::UnknownIssuer | C::BadSignature,
        ) => (
            format!(
                "the Engine's certificate is not signed by the CA in `{}`",
                ca.display()
            ),
            "put the CA that signed the Engine's certificate in ca.pem".to_string(),
        ),
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => (
            format!("the Engine's certificate does not name the host of `{host}`"),
            "connect by a name or address its certificate lists, or have it reissued for this one"
                .to_string(),
        ),
        E::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => (
            "the Engine's certificate is expired or not yet valid".to_string(),
            "renew the Engine's certificate (or check this machine's clock)".to_string(),
        ),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => (
            format!("the Engine does not speak TLS there ({e})"),
            "unset `DOCKER_TLS_VERIFY` if it listens without TLS, or check the port in `DOCKER_HOST`"
                .to_string(),
        ),
        other => (
            other.to_string(),
            format!("check the certificates in `{}`", certs.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn endpoint(vars: &[(&str, &str)]) -> Endpoint {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Endpoint::from_env(|name| vars.get(name).cloned())
    }

    #[test]
    fn endpoint_follows_the_docker_cli() {
        assert_eq!(
            endpoint(&[("HOME", "/h")]),
            Endpoint::Local {
                host: DEFAULT_HOST.into()
            }
        );
        assert_eq!(
            endpoint(&[("DOCKER_HOST", ""), ("DOCKER_TLS_VERIFY", "1")]),
            Endpoint::Local {
                host: DEFAULT_HOST.into()
            }
        );
        assert_eq!(
            endpoint(&[("DOCKER_HOST", "tcp://h:2376"), ("DOCKER_TLS_VERIFY", "")]),
            Endpoint::Plain {
                host: "tcp://h:2376".into()
            }
        );
        let tls = |certs: &str| Endpoint::Tls {
            host: "tcp://h:2376".into(),
            certs: certs.into(),
        };
        let base = [("DOCKER_HOST", "tcp://h:2376"), ("DOCKER_TLS_VERIFY", "1")];
        assert_eq!(
            endpoint(&[base[0], base[1], ("HOME", "/h")]),
            tls("/h/.docker")
        );
        assert_eq!(
            endpoint(&[base[0], base[1], ("HOME", "/h"), ("DOCKER_CONFIG", "/cfg")]),
            tls("/cfg")
        );
        assert_eq!(
            endpoint(&[
                base[0],
                base[1],
                ("DOCKER_CONFIG", "/cfg"),
                ("DOCKER_CERT_PATH", "/certs")
            ]),
            tls("/certs")
        );
        // The Docker CLI counts any non-empty value, `0` too.
        assert_eq!(
            endpoint(&[
                base[0],
                ("DOCKER_TLS_VERIFY", "0"),
                ("DOCKER_CERT_PATH", "/c")
            ]),
            tls("/c")
        );
    }

    #[test]
    fn hosts_krobs_cannot_use_say_what_to_set() {
        let msg = |host: &str| check_local(host).unwrap_err().to_string();
        assert!(check_local("unix:///var/run/docker.sock").is_ok());
        assert_eq!(
            msg("localhost:2375"),
            "`DOCKER_HOST=localhost:2375` has no scheme; set `DOCKER_HOST=tcp://localhost:2375` (with `DOCKER_TLS_VERIFY=1` for a TLS port)"
        );
        assert_eq!(
            msg("/run/docker.sock"),
            "`DOCKER_HOST=/run/docker.sock` is a path without a scheme; set `DOCKER_HOST=unix:///run/docker.sock`"
        );
        assert!(
            msg("ssh://me@build").starts_with(
                "`DOCKER_HOST=ssh://me@build` is not supported: Krobs does not tunnel the Engine's API through ssh; forward its socket (`ssh -NL /tmp/docker.sock:/var/run/docker.sock me@build`)"
            ),
            "{}",
            msg("ssh://me@build")
        );
        assert!(msg("npipe:////./pipe/docker").contains("the scheme `npipe://`"));
    }

    /// A key pair and a self-signed certificate, PEM.
    fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn cert_files_are_checked_without_quoting_them() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles::in_dir(dir.path());
        let (cert, key) = self_signed();
        let problem = |files: &CertFiles| files.check().unwrap_err();

        assert_eq!(problem(&files), (files.ca.clone(), "does not exist".into()));
        std::fs::write(&files.ca, &key).unwrap();
        let (path, text) = problem(&files);
        assert_eq!(path, files.ca);
        assert!(text.starts_with("holds no PEM certificate"), "{text}");
        std::fs::write(&files.ca, &cert).unwrap();
        std::fs::write(&files.cert, &cert).unwrap();
        assert_eq!(
            problem(&files),
            (files.key.clone(), "does not exist".into())
        );
        // A key file holding a certificate only: named, and its content appears nowhere.
        std::fs::write(&files.key, &cert).unwrap();
        let (path, text) = problem(&files);
        assert_eq!(path, files.key);
        assert!(text.starts_with("holds no private key"), "{text}");
        let garbled = key.replace("PRIVATE KEY-----\n", "PRIVATE KEY-----\n!!");
        std::fs::write(&files.key, &garbled).unwrap();
        let (_, text) = problem(&files);
        assert!(text.starts_with("holds no private key"), "{text}");
        let body: String = key.lines().nth(1).unwrap().to_string();
        assert!(!text.contains(&body));
        std::fs::write(&files.key, &key).unwrap();
        assert_eq!(files.check(), Ok(()));
    }

    #[test]
    fn tls_failures_say_which_side_to_fix() {
        let certs = Path::new("/certs");
        let ep = Endpoint::Tls {
            host: "tcp://h:2376".into(),
            certs: certs.into(),
        };
        // As the TLS connector hands them over: an I/O error around an I/O error around it.
        let wrapped =
            |e: rustls::Error| io::Error::other(io::Error::new(io::ErrorKind::InvalidData, e));
        let msg = |e: io::Error| ep.failure(&e).to_string();

        let refused = msg(wrapped(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired,
        )));
        assert_eq!(
            refused,
            "TLS with the Docker Engine at tcp://h:2376 failed: the Engine refused the client \
             certificate `/certs/cert.pem` (TLS alert `CertificateRequired`); use a client \
             certificate (cert.pem, with its key.pem) signed by the CA the Engine trusts (its \
             `--tlscacert`)"
        );
        let wrong_ca = msg(wrapped(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        )));
        assert!(
            wrong_ca.contains("not signed by the CA in `/certs/ca.pem`"),
            "{wrong_ca}"
        );
        let not_tls = msg(wrapped(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        )));
        assert!(not_tls.contains("unset `DOCKER_TLS_VERIFY`"), "{not_tls}");
        // Nothing listening: not a TLS problem.
        let refused = msg(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(refused.starts_with("cannot reach the Docker Engine (tcp://h:2376): "));

        let plain = Endpoint::Plain {
            host: "tcp://h:2376".into(),
        };
        let closed = io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed");
        assert!(plain
            .failure(&closed)
            .to_string()
            .contains("if it listens with TLS, set `DOCKER_TLS_VERIFY=1`"));
        let nobody = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            plain.failure(&nobody),
            EngineError::Unreachable { .. }
        ));
    }
}
