//! The real services the integration tests run against, started by the tests themselves.
//!
//! `bash tests/run.sh` makes the machine ready (packages, a Docker Engine, the base image) and
//! exports what this module reads:
//!
//! | variable                  | what                                                          |
//! |---------------------------|---------------------------------------------------------------|
//! | `KROBS_TEST_SERVICES`     | `1`: the set-up ran; without it every test here fails         |
//! | `DOCKER_HOST`             | the Docker Engine to use (`unix:///run/krobs-test/docker.sock` when run.sh started it) |
//! | `KROBS_TEST_BASE_IMAGE`   | `krobs-test/base:1`: busybox-static + bash-static, made locally, nothing pulled |
//! | `KROBS_TEST_REGISTRY_BIN` | the reference distribution registry (`/usr/bin/docker-registry`) |
//! | `KROBS_TEST_MOTO_BIN`     | `moto_server` (PyPI `moto[server]`)                           |
//!
//! Each test starts its own [`Registry`] (htpasswd auth, own storage, own port) and, when it needs
//! the ECR API, its own [`Moto`]; both are killed when dropped. [`FlakyProxy`] puts failures
//! (503, 429) in front of a registry. [`DockerCli`] runs the `docker` CLI with its own config
//! directory, so logins never touch `~/.docker`.
//!
//! Everything listens on 127.0.0.1 only. The Docker Engine treats 127.0.0.0/8 as an insecure
//! (plain HTTP) registry by default, so `docker push 127.0.0.1:PORT/...` works without set-up.
//!
//! HTTP through reqwest, base64 and JSON through the crates Krobs uses; bcrypt hashes come from
//! `htpasswd -B`.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::http_server::{HttpServer, Reply, Request};

// -------------------------------------------------------------------------------------------------
// Environment
// -------------------------------------------------------------------------------------------------

/// The variables `tests/run.sh` exports and these tests need.
pub const REQUIRED_ENV: [&str; 4] = [
    "KROBS_TEST_SERVICES",
    "KROBS_TEST_BASE_IMAGE",
    "KROBS_TEST_REGISTRY_BIN",
    "KROBS_TEST_MOTO_BIN",
];

/// Fails the test (never skips it) when the services of `bash tests/run.sh` are not there.
pub fn require_services() {
    if let Some(problem) = services_problem(|name| std::env::var(name).ok()) {
        panic!("{problem}");
    }
}

/// What `require_services` complains about, for the environment `env` gives; `None` when set.
pub fn services_problem(env: impl Fn(&str) -> Option<String>) -> Option<String> {
    let missing: Vec<&str> = REQUIRED_ENV
        .iter()
        .copied()
        .filter(|name| env(name).is_none_or(|v| v.trim().is_empty()))
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "these tests need the services started by `bash tests/run.sh`: {} not set \
         (run the tests with `bash tests/run.sh`, which installs and starts what is missing \
         and exports these variables)",
        missing.join(", ")
    ))
}

fn required_env(name: &str) -> String {
    require_services();
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// The locally made base image (`KROBS_TEST_BASE_IMAGE`, `krobs-test/base:1`): `/bin/busybox`
/// with its applet links (`sh`, `grep`, `wget`, `env`, ...), `/bin/bash` (bash-static), `/tmp`
/// (1777), root and user `krobs` (uid/gid 10001, home `/home/krobs`).
pub fn base_image() -> String {
    required_env("KROBS_TEST_BASE_IMAGE")
}

/// A Debian runtime base made by `tests/run.sh` (mmdebstrap, `docker import`), named by its
/// variable: `KROBS_TEST_BASE_PYTHON` (python3), `KROBS_TEST_BASE_RUBY` (ruby),
/// `KROBS_TEST_BASE_BASH` (bash, curl, jq), `KROBS_TEST_BASE_JRE` (a headless JRE 17).
/// Fails the test when it is not set.
pub fn debian_base(var: &str) -> String {
    required_env(var)
}

/// The loopback Maven mirror of `tests/run.sh` (`KROBS_TEST_MAVEN_MIRROR`, `http://127.0.0.1:N`):
/// a plain file server over `KROBS_TEST_MAVEN_REPO`, a Maven repository folder holding every
/// file `languages/scala/ammonite.lock` pins, which Maven fetched from Maven Central. The Scala
/// runtime is built with it as `MAVEN_REPOSITORY` (the "company mirror" of the Dockerfile).
pub fn maven_mirror() -> String {
    required_env("KROBS_TEST_MAVEN_MIRROR")
}

/// The folder `maven_mirror()` serves (`KROBS_TEST_MAVEN_REPO`).
pub fn maven_repo() -> PathBuf {
    PathBuf::from(required_env("KROBS_TEST_MAVEN_REPO"))
}

/// The Debian bases of every runtime, as (variable, image).
pub fn debian_bases() -> Vec<(&'static str, String)> {
    [
        "KROBS_TEST_BASE_PYTHON",
        "KROBS_TEST_BASE_RUBY",
        "KROBS_TEST_BASE_BASH",
        "KROBS_TEST_BASE_JRE",
    ]
    .into_iter()
    .map(|var| (var, debian_base(var)))
    .collect()
}

/// `DOCKER_HOST`, when set (run.sh always sets it); `None` means the client default.
pub fn docker_host() -> Option<String> {
    std::env::var("DOCKER_HOST").ok().filter(|v| !v.is_empty())
}

pub fn registry_bin() -> PathBuf {
    PathBuf::from(required_env("KROBS_TEST_REGISTRY_BIN"))
}

pub fn moto_bin() -> PathBuf {
    PathBuf::from(required_env("KROBS_TEST_MOTO_BIN"))
}

/// The Python that has moto and boto3: the one beside `moto_server`, else `python3`.
pub fn python3() -> PathBuf {
    let beside = moto_bin().with_file_name("python3");
    if beside.is_file() {
        beside
    } else {
        PathBuf::from("python3")
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it).
/// Waits until the server just spawned in `child` answers `GET path` on `addr` with `status`.
/// Fails (and kills it) when it exits, when something else answers, or after `timeout`.
fn wait_until_ready(
    child: &mut Option<Child>,
    name: &str,
    addr: &str,
    path: &str,
    status: u16,
    timeout: Duration,
    log_path: &Path,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(exit) = child.as_mut().unwrap().try_wait().unwrap() {
            *child = None;
            return Err(format!(
                "{name} exited with {exit}; its log:\n{}",
                tail(log_path, 30)
            ));
        }
        if let Ok(resp) = http_request(addr, "GET", path, None, &[], b"") {
            if resp.status == status {
                return Ok(());
            }
            kill_child(child);
            return Err(format!(
                "{addr} answered {} to GET {path}, not {status}: another server has the port?",
                resp.status
            ));
        }
        if Instant::now() > deadline {
            kill_child(child);
            return Err(format!(
                "no answer on {addr} in {} s; its log:\n{}",
                timeout.as_secs(),
                tail(log_path, 30)
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

// -------------------------------------------------------------------------------------------------
// Processes
// -------------------------------------------------------------------------------------------------

/// Runs `cmd`, panicking with the command line, exit status, stdout and stderr unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    if !out.status.success() {
        panic!("command failed:\n{}", describe(cmd, &out));
    }
    out
}

/// Runs `cmd` (stdin closed) and returns what it did, panicking only if it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", command_line(cmd)))
}

/// Runs `cmd` with `input` on stdin.
pub fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", command_line(cmd)));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn command_line(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Command line, status, stdout and stderr, for failure messages.
pub fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "command: {}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}",
        command_line(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// -------------------------------------------------------------------------------------------------
// Registry
// -------------------------------------------------------------------------------------------------

/// The reference distribution registry (`docker-registry serve`, 2.8) on `127.0.0.1:PORT`, with
/// htpasswd (bcrypt) basic auth for the given users, realm `krobs-test`, filesystem storage in
/// its own temporary directory and deletes enabled. Plain HTTP. It has no immutable-tags mode
/// (ECR's tag immutability cannot be reproduced with it). Killed on drop.
pub struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    users: Vec<(String, String)>,
    child: Option<Child>,
}

pub const REGISTRY_REALM: &str = "krobs-test";

impl Registry {
    pub fn start(users: &[(&str, &str)]) -> Registry {
        require_services();
        let dir = tempfile::Builder::new()
            .prefix("krobs-registry-")
            .tempdir()
            .expect("temp dir for the registry");
        let mut htpasswd = String::new();
        for (user, password) in users {
            let mut cmd = Command::new("htpasswd");
            cmd.args(["-B", "-b", "-n", user, password]);
            let out = run_ok(&mut cmd);
            htpasswd.push_str(String::from_utf8(out.stdout).unwrap().trim());
            htpasswd.push('\n');
        }
        fs::write(dir.path().join("htpasswd"), htpasswd).unwrap();
        fs::create_dir_all(dir.path().join("storage")).unwrap();
        let mut registry = Registry {
            dir,
            port: 0,
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            child: None,
        };
        // A free port can be taken between the check and the bind: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            registry.port = free_port();
            match registry.spawn() {
                Ok(()) => return registry,
                Err(e) => last = e,
            }
        }
        panic!("the registry did not start: {last}");
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The registry's own log so far (access log included).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where the registry keeps its blobs and manifests.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    pub fn users(&self) -> &[(String, String)] {
        &self.users
    }

    fn spawn(&mut self) -> Result<(), String> {
        let d = self.dir.path().display();
        let config = format!(
            r#"version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: "{d}/storage"
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: krobs-test-http-secret
auth:
  htpasswd:
    realm: {REGISTRY_REALM}
    path: "{d}/htpasswd"
"#,
            port = self.port
        );
        fs::write(self.config_path(), config).unwrap();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(registry_bin())
            .arg("serve")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", registry_bin().display()))?;
        self.child = Some(child);
        let (addr, log_path) = (self.addr(), self.log_path());
        wait_until_ready(
            &mut self.child,
            "`docker-registry serve`",
            &addr,
            "/v2/",
            401,
            Duration::from_secs(30),
            &log_path,
        )
    }

    /// `127.0.0.1:PORT`, the registry host as `docker push` and skopeo want it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the registry and waits for it; connections to its port are refused afterwards.
    pub fn stop(&mut self) {
        kill_child(&mut self.child);
    }

    /// Stops it if running, then starts it again on the same port with the same storage and
    /// users (what was pushed is still there).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                // the old socket may linger for a moment
                Err(e) if Instant::now() < deadline && e.contains("address already in use") => {
                    thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!("the registry did not restart on {}: {e}", self.addr()),
            }
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

// -------------------------------------------------------------------------------------------------
// moto (the ECR API)
// -------------------------------------------------------------------------------------------------

/// moto's default AWS account id.
pub const MOTO_DEFAULT_ACCOUNT: &str = "123456789012";

/// A `moto_server` (moto 5.x, PyPI `moto[server]`) on `http://127.0.0.1:PORT`, all AWS
/// services on one endpoint; point `AWS_ENDPOINT_URL` at [`Moto::endpoint`], with any access
/// key (e.g. `AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing`) and any region.
/// Signatures are not checked. Killed on drop.
///
/// What ECR `GetAuthorizationToken` returns (checked with moto 5.2.1 through boto3 and the aws
/// CLI; see `moto/ecr/responses.py`), one `authorizationData` entry per registry id:
///
/// - registry id: the `registryIds` asked for; none asked: the request's account, which is
///   `MOTO_ACCOUNT_ID` from the *server's* environment if set ([`Moto::start_with_account`]),
///   else the `x-moto-account-id` request header if sent, else the account of the access key
///   (an unknown key such as `testing`: `123456789012`).
/// - `authorizationToken`: base64 of `AWS:<registry id>-auth-token`; for the default account
///   `QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu` = `AWS:123456789012-auth-token`; for 111122223333
///   `QVdTOjExMTEyMjIyMzMzMy1hdXRoLXRva2Vu` = `AWS:111122223333-auth-token`. User `AWS`,
///   password `<account>-auth-token` ([`moto_registry_password`]); fixed, not random.
/// - `proxyEndpoint`: `https://<registry id>.dkr.ecr.<region>.amazonaws.com` (e.g.
///   `https://123456789012.dkr.ecr.us-east-1.amazonaws.com`): a name that does not resolve
///   here, so tests must send the pushes to a local [`Registry`] instead (started with user
///   `AWS` and that password) rather than to the proxy endpoint.
/// - `expiresAt`: always 2015-01-01T00:00:00 in the server's local time zone (1420070400 with
///   TZ=UTC): already expired. Code that refuses or refreshes expired tokens will loop or fail
///   against moto unless expiry is only advisory.
///
/// `CreateRepository` answers `repositoryUri` `<account>.dkr.ecr.<region>.amazonaws.com/<name>`.
pub struct Moto {
    dir: tempfile::TempDir,
    port: u16,
    account: String,
    child: Option<Child>,
}

impl Moto {
    /// A moto server for the default account (123456789012).
    pub fn start() -> Moto {
        Self::start_inner(None)
    }

    /// A moto server whose requests all belong to `account` (`MOTO_ACCOUNT_ID` in its
    /// environment).
    pub fn start_with_account(account: &str) -> Moto {
        Self::start_inner(Some(account))
    }

    fn start_inner(account: Option<&str>) -> Moto {
        require_services();
        let mut moto = Moto {
            dir: tempfile::Builder::new()
                .prefix("krobs-moto-")
                .tempdir()
                .unwrap(),
            port: 0,
            account: account.unwrap_or(MOTO_DEFAULT_ACCOUNT).to_string(),
            child: None,
        };
        let mut last = String::new();
        for _ in 0..5 {
            moto.port = free_port();
            match moto.spawn(account) {
                Ok(()) => return moto,
                Err(e) => last = e,
            }
        }
        panic!("moto_server did not start: {last}");
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("moto.log")
    }

    /// moto's log so far (one line per request).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self, account: Option<&str>) -> Result<(), String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new(moto_bin());
        cmd.args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .env_remove("MOTO_ACCOUNT_ID")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(account) = account {
            cmd.env("MOTO_ACCOUNT_ID", account);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", moto_bin().display()))?;
        self.child = Some(child);
        let (addr, log_path) = (self.addr(), self.log_path());
        wait_until_ready(
            &mut self.child,
            "moto_server",
            &addr,
            "/moto-api/",
            200,
            Duration::from_secs(60),
            &log_path,
        )
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The account requests are answered for (123456789012 unless started with another).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Environment for an AWS SDK client of this server: endpoint, dummy keys, region.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
    }

    pub fn stop(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The password moto's ECR `GetAuthorizationToken` hands out for `account`, with user `AWS`:
/// start the [`Registry`] standing in for that account's ECR with `("AWS", &this)`.
pub fn moto_registry_password(account: &str) -> String {
    format!("{account}-auth-token")
}

/// The `authorizationToken` moto's ECR `GetAuthorizationToken` returns for `account`:
/// base64 of `AWS:<account>-auth-token`.
pub fn moto_authorization_token(account: &str) -> String {
    base64_encode(format!("AWS:{}", moto_registry_password(account)).as_bytes())
}

/// The `proxyEndpoint` moto returns for `account` in `region`.
pub fn moto_proxy_endpoint(account: &str, region: &str) -> String {
    format!("https://{account}.dkr.ecr.{region}.amazonaws.com")
}

// -------------------------------------------------------------------------------------------------
// HTTP client: reqwest, the crate Krobs itself uses
// -------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The tests' HTTP/1.1 client: no redirects followed, no proxy from the environment. reqwest
/// takes its TLS crypto provider from the process (as Krobs installs it), even for plain HTTP.
fn http_client() -> reqwest::blocking::ClientBuilder {
    // An error only means that one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
}

/// A client whose requests share one kept-alive HTTP/1.1 connection while it is sent one
/// request at a time; plain HTTP only, no redirects followed, no proxy from the environment.
pub struct HttpConnection {
    addr: String,
    client: reqwest::blocking::Client,
}

impl HttpConnection {
    pub fn open(addr: &str) -> io::Result<HttpConnection> {
        let client = http_client()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(io::Error::other)?;
        Ok(HttpConnection {
            addr: addr.to_string(),
            client,
        })
    }

    /// Sends one request and reads its whole response.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        basic_auth: Option<(&str, &str)>,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<HttpResponse> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(io::Error::other)?;
        let mut request = self
            .client
            .request(method, format!("http://{}{path}", self.addr))
            .body(body.to_vec());
        if let Some((user, password)) = basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request.send().map_err(io::Error::other)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().map_err(io::Error::other)?.to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// One request on a connection of its own.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    basic_auth: Option<(&str, &str)>,
    extra: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    HttpConnection::open(addr)?.send(method, path, basic_auth, extra, body)
}

/// `GET path` on a connection of its own.
pub fn http_get(
    addr: &str,
    path: &str,
    basic_auth: Option<(&str, &str)>,
) -> io::Result<HttpResponse> {
    http_request(addr, "GET", path, basic_auth, &[], b"")
}

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The string value of `key` in a JSON object (skopeo's, boto3's output).
pub fn json_str(json: &str, key: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value.get(key)?.as_str().map(str::to_string)
}

// -------------------------------------------------------------------------------------------------
// FlakyProxy
// -------------------------------------------------------------------------------------------------

/// An HTTP proxy on `127.0.0.1:PORT` in front of `upstream`, on the tests' one HTTP server: it
/// answers the first `failures` requests itself with `status` (429 comes with `Retry-After:
/// 1`), an empty body and `Connection: close`, then forwards every later request to `upstream`
/// (method, target, headers, body, the `Host` the client sent, so that the registry's
/// `Location`s name the proxy) and gives back the answer as it came (status, headers, body).
/// Anything but HTTP (such as the TLS handshake Docker tries first on an insecure registry) is
/// refused at once by the server and uses up no failure. Stopped on drop.
///
/// Note how the Docker Engine takes a failure on its `/v2/` ping: it does not retry, it just
/// finds no auth challenge, sends the next request without credentials and reports the
/// registry's 401 (`login attempt to http://.../v2/ failed with status: 401 Unauthorized`).
pub struct FlakyProxy {
    server: HttpServer,
    failed: Arc<AtomicUsize>,
}

/// Headers that belong to one connection, not to the request or answer relayed over it.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-connection",
];

impl FlakyProxy {
    pub fn start(upstream: &str, failures: usize, status: u16) -> FlakyProxy {
        let left = AtomicUsize::new(failures);
        let failed = Arc::new(AtomicUsize::new(0));
        let sent = failed.clone();
        let upstream = upstream.to_string();
        let client = http_client()
            .timeout(Duration::from_secs(300))
            .build()
            .expect("an HTTP client");
        let handler = move |req: Request| {
            if left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                sent.fetch_add(1, Ordering::SeqCst);
                let mut headers = vec![("Connection".to_string(), "close".to_string())];
                if status == 429 {
                    headers.push(("Retry-After".to_string(), "1".to_string()));
                }
                return Reply::Raw {
                    status,
                    headers,
                    body: Vec::new(),
                };
            }
            forward(&client, &upstream, req)
        };
        FlakyProxy {
            server: HttpServer::start(&[], Arc::new(handler)),
            failed,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.server.addr()
    }

    /// HTTP requests received so far: those answered with the failure plus those relayed.
    pub fn requests_seen(&self) -> usize {
        self.server.requests().len()
    }

    /// Requests answered with the failure status so far.
    pub fn failures_sent(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }
}

/// `req` sent on to `upstream`, and its answer as it came; a connection the upstream drops is
/// dropped here too.
fn forward(client: &reqwest::blocking::Client, upstream: &str, req: Request) -> Reply {
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).expect("an HTTP method");
    let mut relayed = client
        .request(method, format!("http://{upstream}{}", req.target()))
        .body(req.bytes.to_vec());
    for (name, value) in &req.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != "content-length" {
            relayed = relayed.header(name, value);
        }
    }
    let Ok(answer) = relayed.send() else {
        return Reply::Close;
    };
    let status = answer.status().as_u16();
    let headers = answer
        .headers()
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value)
        })
        .collect();
    match answer.bytes() {
        Ok(body) => Reply::Raw {
            status,
            headers,
            body: body.to_vec(),
        },
        Err(_) => Reply::Close,
    }
}

// -------------------------------------------------------------------------------------------------
// docker and skopeo CLIs
// -------------------------------------------------------------------------------------------------

/// The `docker` CLI against the test Docker Engine, with its own config directory (logins are
/// stored there, not in `~/.docker`) and the classic builder (`DOCKER_BUILDKIT=0`: the CLI's
/// BuildKit path needs the buildx plugin, which is not installed).
pub struct DockerCli {
    config: tempfile::TempDir,
}

impl DockerCli {
    pub fn new() -> DockerCli {
        require_services();
        DockerCli {
            config: tempfile::Builder::new()
                .prefix("krobs-docker-config-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn config_dir(&self) -> &Path {
        self.config.path()
    }

    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("docker");
        cmd.args(args)
            .env("DOCKER_CONFIG", self.config.path())
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CLI_HINTS", "false");
        if let Some(host) = docker_host() {
            cmd.env("DOCKER_HOST", host);
        }
        cmd
    }

    /// Runs `docker ARGS`, panicking with its output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> Output {
        run_ok(&mut self.command(args))
    }

    /// Runs `docker ARGS` and returns what happened.
    pub fn run(&self, args: &[&str]) -> Output {
        run(&mut self.command(args))
    }

    /// `docker login ADDR -u USER --password-stdin`.
    pub fn login(&self, registry: &str, user: &str, password: &str) -> Output {
        run_with_stdin(
            &mut self.command(["login", registry, "-u", user, "--password-stdin"]),
            password,
        )
    }

    /// `docker push REF`, returning the manifest digest it reports (`sha256:...`).
    pub fn push(&self, reference: &str) -> String {
        let mut cmd = self.command(["push", reference]);
        let out = run_ok(&mut cmd);
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .split_whitespace()
            .skip_while(|w| *w != "digest:")
            .nth(1)
            .unwrap_or_else(|| panic!("no digest in the push output:\n{}", describe(&cmd, &out)))
            .to_string()
    }
}

impl Default for DockerCli {
    fn default() -> Self {
        DockerCli::new()
    }
}

/// Removes an image reference from the test Docker Engine when dropped.
pub struct ImageGuard(pub String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let mut cmd = Command::new("docker");
        cmd.args(["image", "rm", "--force", &self.0]);
        if let Some(host) = docker_host() {
            cmd.env("DOCKER_HOST", host);
        }
        let _ = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `skopeo inspect --tls-verify=false [--creds USER:PASSWORD] docker://REF` (REF like
/// `127.0.0.1:PORT/name:tag`), returning what skopeo did.
pub fn skopeo_inspect(reference: &str, creds: Option<(&str, &str)>) -> Output {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false", "--retry-times", "0"]);
    match creds {
        Some((user, password)) => cmd.arg("--creds").arg(format!("{user}:{password}")),
        None => cmd.arg("--no-creds"),
    };
    cmd.arg(format!("docker://{reference}"));
    run(&mut cmd)
}

// -------------------------------------------------------------------------------------------------
// A Maven mirror of one's own
// -------------------------------------------------------------------------------------------------

/// A Maven repository on a loopback port: Python's `http.server` over a folder of its own
/// (in the layout of a Maven repository), for a test that serves other bytes than the mirror of
/// `tests/run.sh` does. Killed on drop.
pub struct MavenMirror {
    /// `repo/` (what is served) and `mirror.log`.
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl MavenMirror {
    /// Serves the files `lock` (`sha256  path` lines) names, linked from [`maven_repo`]; the
    /// test changes them through [`MavenMirror::path`].
    pub fn of_lock(lock: &str) -> MavenMirror {
        let dir = tempfile::Builder::new()
            .prefix("krobs-maven-mirror-")
            .tempdir()
            .unwrap();
        let from = maven_repo();
        for line in lock
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let path = line.split_whitespace().nth(1).expect("`sha256  path`");
            let to = dir.path().join("repo").join(path);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(from.join(path), &to).unwrap();
        }
        let mut mirror = MavenMirror {
            dir,
            port: 0,
            child: None,
        };
        let mut last = String::new();
        for _ in 0..5 {
            mirror.port = free_port();
            let log = mirror.dir.path().join("mirror.log");
            let child = Command::new(python3())
                .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
                .arg(mirror.dir.path().join("repo"))
                .arg(mirror.port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).unwrap())
                .spawn()
                .expect("python3 -m http.server starts");
            mirror.child = Some(child);
            let addr = mirror.addr();
            match wait_until_ready(
                &mut mirror.child,
                "the Maven mirror",
                &addr,
                "/",
                200,
                Duration::from_secs(10),
                &log,
            ) {
                Ok(()) => return mirror,
                Err(e) => last = e,
            }
        }
        panic!("the Maven mirror did not start: {last}");
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Where the mirror serves `path` from.
    pub fn path(&self, path: &str) -> PathBuf {
        self.dir.path().join("repo").join(path)
    }

    /// Its access log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("mirror.log")).unwrap_or_default()
    }
}

impl Drop for MavenMirror {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}
