//! The test services themselves (tests/it/support/services.rs), against the real parts: the
//! reference registry with htpasswd auth, the Docker Engine and CLI, skopeo, moto's ECR API and
//! the flaky proxy. Run with `bash tests/run.sh` (these tests fail, never skip, without it).

use crate::support::services::*;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

const USER: &str = "krobs";
const PASSWORD: &str = "s3cret-pass";
/// Characters that break naive quoting, URL-encoding and shell use.
const ODD_USER: &str = "odd";
const ODD_PASSWORD: &str = "tr1cky~pass?word>x";

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn require_services_names_what_is_missing_and_points_at_run_sh() {
    let none = services_problem(|_| None).expect("nothing set must be a problem");
    assert!(none.contains("`bash tests/run.sh`"), "{none}");
    for name in REQUIRED_ENV {
        assert!(none.contains(name), "{name} not named in: {none}");
    }
    let only_flag =
        services_problem(|name| (name == "KROBS_TEST_SERVICES").then(|| "1".to_string()))
            .expect("a missing base image must be a problem");
    assert!(!only_flag.contains("KROBS_TEST_SERVICES"), "{only_flag}");
    assert!(only_flag.contains("KROBS_TEST_BASE_IMAGE"), "{only_flag}");
    assert_eq!(services_problem(|_| Some("x".to_string())), None);
    // and in this run everything is there
    require_services();
}

#[test]
fn registry_requires_the_right_basic_credentials() {
    let registry = Registry::start(&[(USER, PASSWORD), (ODD_USER, ODD_PASSWORD)]);
    let addr = registry.addr();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let anonymous = http_get(&addr, "/v2/", None).unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    assert_eq!(
        anonymous.header("Www-Authenticate"),
        Some(format!("Basic realm=\"{REGISTRY_REALM}\"").as_str())
    );
    assert!(
        anonymous.text().contains("UNAUTHORIZED"),
        "{}",
        anonymous.text()
    );

    for (user, password) in [(USER, PASSWORD), (ODD_USER, ODD_PASSWORD)] {
        let ok = http_get(&addr, "/v2/", Some((user, password))).unwrap();
        assert_eq!(ok.status, 200, "{user}: {}", ok.text());
        assert_eq!(
            ok.header("Docker-Distribution-Api-Version"),
            Some("registry/2.0")
        );
    }

    for (user, password) in [
        (USER, "wrong"),
        (USER, ODD_PASSWORD), // another user's password
        (ODD_USER, "tr1cky"), // a prefix of the right one
        (ODD_USER, "tr1cky~pass?word>"),
        ("nobody", PASSWORD),
    ] {
        let refused = http_get(&addr, "/v2/", Some((user, password))).unwrap();
        assert_eq!(refused.status, 401, "{user}:{password} was accepted");
    }
}

#[test]
fn registry_stops_and_restarts_on_the_same_port_with_the_same_users() {
    let mut registry = Registry::start(&[(ODD_USER, ODD_PASSWORD)]);
    let addr = registry.addr();
    registry.stop();
    assert!(
        TcpStream::connect(&addr).is_err(),
        "{addr} still accepts connections after stop"
    );
    registry.restart();
    assert_eq!(registry.addr(), addr);
    assert_eq!(http_get(&addr, "/v2/", None).unwrap().status, 401);
    assert_eq!(
        http_get(&addr, "/v2/", Some((ODD_USER, ODD_PASSWORD)))
            .unwrap()
            .status,
        200
    );
    registry.restart(); // while running, too
    assert_eq!(
        http_get(&addr, "/v2/", Some((ODD_USER, ODD_PASSWORD)))
            .unwrap()
            .status,
        200
    );
}

#[test]
fn docker_login_and_push_then_skopeo_sees_the_image_also_after_a_restart() {
    let mut registry = Registry::start(&[(ODD_USER, ODD_PASSWORD)]);
    let docker = DockerCli::new();
    let addr = registry.addr();

    let refused = docker.login(&addr, ODD_USER, "wrong");
    assert!(
        !refused.status.success(),
        "login with a wrong password succeeded"
    );
    assert!(
        stderr(&refused).to_lowercase().contains("unauthorized"),
        "{}",
        stderr(&refused)
    );
    let login = docker.login(&addr, ODD_USER, ODD_PASSWORD);
    assert!(
        login.status.success(),
        "docker login failed: {}",
        stderr(&login)
    );
    assert!(
        stdout(&login).contains("Login Succeeded"),
        "{}",
        stdout(&login)
    );
    // the credentials went to this test's own config, not ~/.docker
    let config = std::fs::read_to_string(docker.config_dir().join("config.json")).unwrap();
    assert!(config.contains(&addr), "{config}");

    let tag = unique("push");
    let reference = format!("{addr}/krobs-test/base:{tag}");
    docker.ok(&["tag", &base_image(), &reference]);
    let _guard = ImageGuard(reference.clone());
    let digest = docker.push(&reference);
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );

    let inspected = skopeo_inspect(&reference, Some((ODD_USER, ODD_PASSWORD)));
    assert!(
        inspected.status.success(),
        "skopeo inspect failed: {}",
        stderr(&inspected)
    );
    let json = stdout(&inspected);
    assert_eq!(
        json_str(&json, "Digest").as_deref(),
        Some(digest.as_str()),
        "{json}"
    );
    assert_eq!(
        json_str(&json, "Architecture").as_deref(),
        Some("amd64"),
        "{json}"
    );

    let anonymous = skopeo_inspect(&reference, None);
    assert!(
        !anonymous.status.success(),
        "anonymous skopeo inspect succeeded"
    );
    let wrong = skopeo_inspect(&reference, Some((ODD_USER, "tr1cky~pass?word")));
    assert!(
        !wrong.status.success(),
        "skopeo inspect with a wrong password succeeded"
    );

    // the manifest is in the registry's storage and is still served after a restart
    registry.restart();
    let again = skopeo_inspect(&reference, Some((ODD_USER, ODD_PASSWORD)));
    assert!(again.status.success(), "after restart: {}", stderr(&again));
    assert_eq!(
        json_str(&stdout(&again), "Digest").as_deref(),
        Some(digest.as_str())
    );
    let head = http_request(
        &addr,
        "HEAD",
        &format!("/v2/krobs-test/base/manifests/{tag}"),
        Some((ODD_USER, ODD_PASSWORD)),
        &[(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )],
        b"",
    )
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Docker-Content-Digest"), Some(digest.as_str()));
}

#[test]
fn the_base_image_runs_build_steps_with_busybox_bash_and_user_10001() {
    let docker = DockerCli::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "ARG BASE_IMAGE\n\
         FROM ${BASE_IMAGE}\n\
         RUN bash -c 'echo \"bash ${BASH_VERSINFO[0]}\"' > /built-by \
             && test \"$(stat -c %a /tmp)\" = 1777 \
             && test \"$(stat -c %a /)\" = 755 \
             && grep -q '^krobs:x:10001:10001:' /etc/passwd\n\
         COPY hello.sh /usr/local/bin/hello\n\
         USER 10001\n\
         RUN touch /tmp/written-by-10001 && test \"$(id -un)\" = krobs\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hello.sh"),
        "#!/usr/bin/env bash\nset -euo pipefail\necho \"hello from $(id -un) $(cat /built-by)\"\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(dir.path().join("hello.sh"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(dir.path().join("hello.sh"), perms).unwrap();

    let image = format!("krobs-test/services-build:{}", unique("b"));
    let _guard = ImageGuard(image.clone());
    let base = format!("BASE_IMAGE={}", base_image());
    let path = dir.path().to_str().unwrap();
    docker.ok(&["build", "--quiet", "--build-arg", &base, "-t", &image, path]);
    let out = docker.ok(&["run", "--rm", "--network", "none", &image, "hello"]);
    assert_eq!(stdout(&out).trim(), "hello from krobs bash 5");
}

fn boto3_get_authorization_token(moto: &Moto, registry_ids: &[&str]) -> String {
    let script = r#"
import base64, json, sys, boto3
ecr = boto3.client("ecr", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
kwargs = {"registryIds": sys.argv[2:]} if sys.argv[2:] else {}
for d in ecr.get_authorization_token(**kwargs)["authorizationData"]:
    print(json.dumps({"token": d["authorizationToken"],
                      "decoded": base64.b64decode(d["authorizationToken"]).decode(),
                      "proxyEndpoint": d["proxyEndpoint"],
                      "expiresAt": int(d["expiresAt"].timestamp())}))
"#;
    let mut cmd = Command::new(python3());
    cmd.arg("-c")
        .arg(script)
        .arg(moto.endpoint())
        .args(registry_ids);
    stdout(&run_ok(&mut cmd))
}

#[test]
fn moto_get_authorization_token_gives_the_documented_credentials_and_the_registry_takes_them() {
    let moto = Moto::start();
    assert_eq!(moto.account(), MOTO_DEFAULT_ACCOUNT);
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));

    let line = boto3_get_authorization_token(&moto, &[]);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert_eq!(
        json_str(&line, "token").unwrap(),
        "QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu"
    );
    assert_eq!(
        json_str(&line, "token").unwrap(),
        moto_authorization_token(MOTO_DEFAULT_ACCOUNT)
    );
    let decoded = json_str(&line, "decoded").unwrap();
    assert_eq!(decoded, "AWS:123456789012-auth-token");
    assert_eq!(
        json_str(&line, "proxyEndpoint").unwrap(),
        moto_proxy_endpoint(MOTO_DEFAULT_ACCOUNT, "us-east-1")
    );
    assert!(
        line.contains("\"expiresAt\": 1420070400"),
        "not 2015-01-01 (UTC): {line}"
    );

    let (user, password) = decoded.split_once(':').unwrap();
    assert_eq!(
        (user, password),
        ("AWS", moto_registry_password(MOTO_DEFAULT_ACCOUNT).as_str())
    );
    let registry = Registry::start(&[("AWS", &moto_registry_password(MOTO_DEFAULT_ACCOUNT))]);
    assert_eq!(
        http_get(&registry.addr(), "/v2/", Some((user, password)))
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        http_get(&registry.addr(), "/v2/", Some(("AWS", "x")))
            .unwrap()
            .status,
        401
    );

    // other registry ids asked for explicitly
    let other = boto3_get_authorization_token(&moto, &["210987654321"]);
    assert_eq!(
        json_str(&other, "decoded").unwrap(),
        "AWS:210987654321-auth-token"
    );
    assert_eq!(
        json_str(&other, "proxyEndpoint").unwrap(),
        "https://210987654321.dkr.ecr.us-east-1.amazonaws.com"
    );
    assert!(
        moto.log().contains("POST / HTTP/1.1\" 200"),
        "{}",
        moto.log()
    );
}

#[test]
fn moto_account_id_comes_from_moto_account_id() {
    let moto = Moto::start_with_account("111122223333");
    let line = boto3_get_authorization_token(&moto, &[]);
    assert_eq!(
        json_str(&line, "token").unwrap(),
        moto_authorization_token("111122223333")
    );
    assert_eq!(
        json_str(&line, "decoded").unwrap(),
        "AWS:111122223333-auth-token"
    );
    assert_eq!(
        json_str(&line, "proxyEndpoint").unwrap(),
        "https://111122223333.dkr.ecr.us-east-1.amazonaws.com"
    );
}

#[test]
fn flaky_proxy_answers_503s_then_relays_the_registry_with_keep_alive() {
    let registry = Registry::start(&[(ODD_USER, ODD_PASSWORD)]);
    let proxy = FlakyProxy::start(&registry.addr(), 2, 503);
    assert_ne!(proxy.addr(), registry.addr());
    let creds = Some((ODD_USER, ODD_PASSWORD));

    for i in 1..=2 {
        let failed = http_get(&proxy.addr(), "/v2/", creds).unwrap();
        assert_eq!(failed.status, 503, "request {i}");
        assert_eq!(failed.header("Connection"), Some("close"));
        assert_eq!(failed.header("Content-Length"), Some("0"));
        assert_eq!(failed.header("Retry-After"), None);
        assert!(failed.body.is_empty());
    }
    assert_eq!(proxy.failures_sent(), 2);

    // now the registry's own answers, headers and all
    let anonymous = http_get(&proxy.addr(), "/v2/", None).unwrap();
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("Www-Authenticate"),
        Some(format!("Basic realm=\"{REGISTRY_REALM}\"").as_str())
    );
    assert_eq!(http_get(&proxy.addr(), "/v2/", creds).unwrap().status, 200);

    // several requests, one with a body, on one kept-alive connection
    let mut conn = HttpConnection::open(&proxy.addr()).unwrap();
    assert_eq!(
        conn.send("GET", "/v2/", None, &[], b"").unwrap().status,
        401
    );
    let ok = conn.send("GET", "/v2/", creds, &[], b"").unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("Docker-Distribution-Api-Version"),
        Some("registry/2.0")
    );
    let upload = conn
        .send(
            "POST",
            "/v2/krobs-test/flaky/blobs/uploads/",
            creds,
            &[],
            b"",
        )
        .unwrap();
    assert_eq!(upload.status, 202, "{}", upload.text());
    assert!(upload.header("Location").is_some());
    assert_eq!(
        conn.send("GET", "/v2/_catalog", creds, &[], b"")
            .unwrap()
            .status,
        200
    );

    assert_eq!(proxy.requests_seen(), 2 + 2 + 4);
    assert_eq!(proxy.failures_sent(), 2);
}

#[test]
fn flaky_proxy_answers_429_with_retry_after() {
    let registry = Registry::start(&[(USER, PASSWORD)]);
    let proxy = FlakyProxy::start(&registry.addr(), 1, 429);
    let throttled = http_get(&proxy.addr(), "/v2/", Some((USER, PASSWORD))).unwrap();
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.header("Retry-After"), Some("1"));
    assert_eq!(throttled.header("Connection"), Some("close"));
    assert!(throttled.body.is_empty());
    assert_eq!(
        http_get(&proxy.addr(), "/v2/", Some((USER, PASSWORD)))
            .unwrap()
            .status,
        200
    );
    assert_eq!(proxy.requests_seen(), 2);
}

#[test]
fn flaky_proxy_relays_a_docker_push_and_its_failures_reach_docker() {
    let registry = Registry::start(&[(ODD_USER, ODD_PASSWORD)]);
    let proxy = FlakyProxy::start(&registry.addr(), 1, 503);
    let docker = DockerCli::new();

    // The first HTTP request (docker login's ping) gets the 503. The daemon does not retry:
    // with no auth challenge it sends no credentials and reports the registry's 401.
    let started = Instant::now();
    let failed = docker.login(&proxy.addr(), ODD_USER, ODD_PASSWORD);
    assert!(!failed.status.success(), "login through a 503 succeeded");
    assert_eq!(proxy.failures_sent(), 1);
    // its TLS attempt was relayed and refused at once, not left to time out
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "login took {:?}",
        started.elapsed()
    );

    let login = docker.login(&proxy.addr(), ODD_USER, ODD_PASSWORD);
    assert!(login.status.success(), "{}", stderr(&login));
    let reference = format!("{}/krobs-test/relayed:{}", proxy.addr(), unique("p"));
    docker.ok(&["tag", &base_image(), &reference]);
    let _guard = ImageGuard(reference.clone());
    let started = Instant::now();
    let digest = docker.push(&reference);
    assert!(started.elapsed() < Duration::from_secs(120));

    // what went through the relay is what the registry stored
    let direct = reference.replacen(&proxy.addr(), &registry.addr(), 1);
    let inspected = skopeo_inspect(&direct, Some((ODD_USER, ODD_PASSWORD)));
    assert!(inspected.status.success(), "{}", stderr(&inspected));
    assert_eq!(
        json_str(&stdout(&inspected), "Digest").as_deref(),
        Some(digest.as_str())
    );
    // login pings, blob checks, the layer upload (about 4 MB) and the manifest PUT
    assert!(
        proxy.requests_seen() >= 6,
        "only {} requests seen",
        proxy.requests_seen()
    );
}
