//! A remote Docker Engine over TCP with mutual TLS, by the Docker CLI's conventions
//! (`DOCKER_HOST=tcp://...`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`), against the real services
//! of `bash tests/run.sh`.
//!
//! Each test makes its own CA, server and client certificates (rcgen), and puts a TLS endpoint
//! on a free loopback port in front of the Docker Engine's Unix socket: `socat` (OpenSSL) asks
//! every client for a certificate signed by that CA and forwards the bytes to the socket. Then the
//! real `krobs-build` builds and pushes through it, or fails with one line that says what to fix.

use std::fs;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::e2e_support::*;
use crate::support::services::{docker_host, free_port, require_services};
use krobs::exit;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A CA: its certificate (PEM) and what signs with it.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate and its key (PEM), for `names` (DNS names or IP addresses).
    fn sign(&self, cn: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// The certificates of one test, in folders laid out as `DOCKER_CERT_PATH` expects.
struct Certs {
    dir: tempfile::TempDir,
    /// The client key of `good`, to look for in everything printed.
    client_key: String,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::Builder::new()
            .prefix("krobs-docker-tls-")
            .tempdir()
            .unwrap();
        let ca = Ca::new("krobs test CA");
        let other = Ca::new("another CA");
        let (server_cert, server_key) = ca.sign(
            "krobs test engine",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) =
            ca.sign("krobs ci", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let (foreign_cert, foreign_key) =
            other.sign("stranger", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        };
        write("server/ca.pem", &ca.pem());
        write("server/cert.pem", &server_cert);
        write("server/key.pem", &server_key);
        // The right client.
        write("good/ca.pem", &ca.pem());
        write("good/cert.pem", &client_cert);
        write("good/key.pem", &client_key);
        // Only the CA: no client certificate at all.
        write("no-client/ca.pem", &ca.pem());
        // A client certificate of another CA.
        write("foreign-client/ca.pem", &ca.pem());
        write("foreign-client/cert.pem", &foreign_cert);
        write("foreign-client/key.pem", &foreign_key);
        // The right client, trusting the wrong CA for the Engine.
        write("wrong-ca/ca.pem", &other.pem());
        write("wrong-ca/cert.pem", &client_cert);
        write("wrong-ca/key.pem", &client_key);
        Certs { dir, client_key }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn folder(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }
}

/// `socat` terminating TLS (client certificates required) on 127.0.0.1 in front of the Docker
/// Engine's Unix socket. Killed, with the connections it forked, on drop.
struct TlsEngine {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl TlsEngine {
    fn start(certs: &Certs) -> TlsEngine {
        let host = docker_host().unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let socket = host.strip_prefix("unix://").unwrap_or_else(|| {
            panic!("these tests put TLS in front of a Unix socket; DOCKER_HOST is {host}")
        });
        let port = free_port();
        let log = certs.path("socat.log");
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},cafile={},verify=1",
            certs.path("server/cert.pem").display(),
            certs.path("server/key.pem").display(),
            certs.path("server/ca.pem").display(),
        );
        // socat's OpenSSL sets no session id context, so resuming a session (which rustls does
        // on the next connection) would fail with `internal_error` whenever client certificates
        // are verified. Stateful tickets, held by the forked child that issued them, are never
        // found by the next child: every connection then makes a full handshake, as the Docker
        // Engine's own TLS (Go) would let it resume.
        let openssl_conf = certs.path("openssl.cnf");
        fs::write(
            &openssl_conf,
            "openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = tls\n\
             [tls]\nOptions = -SessionTicket\n",
        )
        .unwrap();
        let mut cmd = Command::new("socat");
        cmd.args(["-d", "-d", &listen, &format!("UNIX-CONNECT:{socket}")])
            .env("OPENSSL_CONF", &openssl_conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        // Its own process group, so that drop ends the connections it forked too.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .expect("socat starts (tests/run.sh installs it)");
        let mut engine = TlsEngine { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = engine.child.try_wait().unwrap() {
                panic!("socat exited with {status}:\n{}", engine.log());
            }
            assert!(
                Instant::now() < deadline,
                "socat does not listen on {port} after 10 s:\n{}",
                engine.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        engine
    }

    fn docker_host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many connections it accepted (the readiness probe's among them).
    fn accepted(&self) -> usize {
        self.log().matches("accepting connection").count()
    }
}

impl Drop for TlsEngine {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// A pipeline, its certificates and the TLS endpoint in front of the Docker Engine; the client
/// key is one more secret of the scan.
fn setup() -> (Pipeline, Certs, TlsEngine) {
    require_services();
    let p = Pipeline::oci();
    let certs = Certs::new();
    let engine = TlsEngine::start(&certs);
    for line in certs.client_key.lines().filter(|l| !l.starts_with("-----")) {
        p.add_secret("a line of the client key", line);
    }
    (p, certs, engine)
}

/// `krobs-build ARGS` against the TLS endpoint with `DOCKER_TLS_VERIFY=verify` and the
/// certificates of `folder`.
fn krobs_tls(
    p: &Pipeline,
    engine: &TlsEngine,
    verify: &str,
    folder: &str,
    args: &[&str],
) -> crate::support::Run {
    let host = engine.docker_host();
    p.krobs_with(
        args,
        &[
            ("DOCKER_HOST", &host),
            ("DOCKER_TLS_VERIFY", verify),
            ("DOCKER_CERT_PATH", folder),
        ],
    )
}

/// A failed run: exit 4, nothing built or pushed, no manifest, no secret anywhere; its error line.
#[track_caller]
fn refused(p: &Pipeline, run: crate::support::Run) -> String {
    let run = run.failure(exit::DOCKER);
    assert!(
        !run.stderr.contains("Step ") && !run.stderr.contains("] building"),
        "nothing should have been built\n{run}"
    );
    p.assert_no_manifest(&run);
    assert_eq!(p.blob_uploads(None), 0, "{run}");
    p.assert_no_secrets();
    error_line(&run)
}

/// With the right client certificate, the build goes through the TLS endpoint and the image
/// lands in the registry at the digest the manifest names.
#[test]
fn builds_and_pushes_through_a_tls_engine_with_the_right_client_certificate() {
    let (p, certs, engine) = setup();
    let before = engine.accepted();
    let run = krobs_tls(
        &p,
        &engine,
        "1",
        &certs.folder("good"),
        &["--json", "--only", "bash"],
    )
    .success();
    assert!(
        engine.accepted() > before,
        "krobs-build never connected through the TLS endpoint\n{run}\n--- socat log\n{}",
        engine.log()
    );
    assert_eq!(language(&run.json(), "bash")["status"], "built", "{run}");
    let manifest = p.manifest_of(&run);
    let bash = language(&manifest, "bash");
    let tag = string(language(&run.json(), "bash"), "tag");
    assert_eq!(
        p.skopeo_digest(&format!("krobs/bash:{tag}")),
        string(bash, "digest")
    );
    p.record("socat log", &engine.log());
    p.assert_no_secrets();
}

/// `DOCKER_CERT_PATH` without a client certificate: the missing file is named before any
/// connection.
#[test]
fn a_missing_client_certificate_names_the_file() {
    let (p, certs, engine) = setup();
    let folder = certs.folder("no-client");
    let run = krobs_tls(&p, &engine, "1", &folder, &["--only", "bash"]);
    assert_eq!(
        refused(&p, run),
        format!(
            "error: cannot use TLS with the Docker Engine at {} (`DOCKER_TLS_VERIFY` is set): \
             `{folder}/cert.pem` does not exist; `DOCKER_CERT_PATH` (default ~/.docker) must hold \
             ca.pem (the CA of the Engine's certificate), cert.pem and key.pem (this client's \
             certificate and its key)",
            engine.docker_host()
        )
    );
}

/// A client certificate the Engine's CA did not sign: the Engine refuses it, and the error says
/// which certificate and what to do.
#[test]
fn a_client_certificate_of_another_ca_is_refused() {
    let (p, certs, engine) = setup();
    let folder = certs.folder("foreign-client");
    let run = krobs_tls(&p, &engine, "1", &folder, &["--only", "bash"]);
    // OpenSSL's answer to a certificate of a CA it does not know.
    assert_eq!(
        refused(&p, run),
        format!(
            "error: TLS with the Docker Engine at {} failed: the Engine refused the client \
             certificate `{folder}/cert.pem` (TLS alert `UnknownCA`); use a client certificate \
             (cert.pem, with its key.pem) signed by the CA the Engine trusts (its `--tlscacert`)",
            engine.docker_host()
        )
    );
}

/// A `ca.pem` that did not sign the Engine's certificate: named, with what to put there.
#[test]
fn an_engine_certificate_not_signed_by_ca_pem_is_named() {
    let (p, certs, engine) = setup();
    let folder = certs.folder("wrong-ca");
    let run = krobs_tls(&p, &engine, "1", &folder, &["--only", "bash"]);
    assert_eq!(
        refused(&p, run),
        format!(
            "error: TLS with the Docker Engine at {} failed: the Engine's certificate is not \
             signed by the CA in `{folder}/ca.pem`; put the CA that signed the Engine's \
             certificate in ca.pem",
            engine.docker_host()
        )
    );
}

/// Plain HTTP to the TLS port (`DOCKER_TLS_VERIFY` empty, which the Docker CLI reads as unset):
/// the error says to set it.
#[test]
fn plain_http_to_a_tls_engine_says_to_set_docker_tls_verify() {
    let (p, certs, engine) = setup();
    let run = krobs_tls(&p, &engine, "", &certs.folder("good"), &["--only", "bash"]);
    let error = refused(&p, run);
    let prefix = format!(
        "error: the Docker Engine at {} did not answer plain HTTP (",
        engine.docker_host()
    );
    assert!(error.starts_with(&prefix), "{error}");
    assert!(
        error.ends_with(
            "); if it listens with TLS, set `DOCKER_TLS_VERIFY=1` and `DOCKER_CERT_PATH` (a \
             folder with ca.pem, cert.pem and key.pem)"
        ),
        "{error}"
    );
}
