//! Every krob of Python, Ruby, Bash and Scala runs in its image, against the real services of
//! `bash tests/run.sh`: a copy of this repository is published to a registry with the shipped
//! Dockerfiles built on the local Debian bases (`KROBS_TEST_BASE_PYTHON`, `_RUBY`, `_BASH`,
//! `_JRE`; only the `BASE_IMAGE` build arg set, and Scala's `MAVEN_REPOSITORY`, the loopback
//! Maven mirror of `tests/run.sh`), the image is pulled back by the digest the manifest names
//! and each krob runs as `krobs-build render` says (its args, its env, its user, its memory
//! limit, a read-only root file system with a writable `/tmp`), with `--network host` so that it reaches a fake
//! Elasticsearch and a fake monitor on 127.0.0.1.
//!
//! Each krob is checked for what it did to Elasticsearch (the exact mutating requests, in
//! order, and the cluster after them), for nothing changed under `DRY_RUN=1`, for a second run
//! that changes nothing, for its exit codes, and for a non-zero exit when Elasticsearch fails.
//! Every run goes through the entrypoint `/opt/krobs/bin/krobs-run`, which tells the monitor
//! `start`, then `finish` or `failure` with the exit code; every event the monitor got is valid
//! against `schema/monitor-event-v1.schema.json`.
//!
//! One test per language: it publishes that language once and runs its krobs in sequence (each
//! test of nextest is a process of its own, so nothing could be shared between tests anyway).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::e2e_support::{on_base, string, Pipeline};
use crate::support::fake_es::{Cluster, FakeEs, How, Index, Recorded, Shard, DAY_MS};
use crate::support::krobs_monitor::{
    Datagram, DogStatsd, FakeSlack, KrobsMonitor, CHANNEL, CHANNEL_ID,
};
use crate::support::monitor::{Event, FakeMonitor};
use crate::support::read_yaml;
use crate::support::services::{debian_base, describe};
use serde_json::{json, Value};

/// Where every image has its entrypoint.
const KROBS_RUN: &str = "/opt/krobs/bin/krobs-run";

/// The local Debian base image of `language` (`KROBS_TEST_BASE_<LANGUAGE>`, Scala's the JRE's,
/// made by `tests/run.sh`). Fails, never skips, when it is missing.
fn runtime_base(language: &str) -> String {
    let base = if language == "scala" { "jre" } else { language };
    debian_base(&format!("KROBS_TEST_BASE_{}", base.to_uppercase()))
}

/// One language's image, published and pulled back, and what its krobs run against.
struct Lab {
    p: Pipeline,
    /// The content-named manifest the publishing run wrote.
    manifest: PathBuf,
    /// `host/krobs/<language>@sha256:...`, as the manifest names it.
    image: String,
    monitor: FakeMonitor,
    /// Every event the monitor got, for one schema check at the end.
    events: RefCell<Vec<Value>>,
}

/// One run of a krob in its container.
struct KrobRun {
    id: String,
    docker: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// The Elasticsearch requests of this run.
    requests: Vec<Recorded>,
    /// The monitor events of this run (their bodies).
    events: Vec<Value>,
}

impl KrobRun {
    /// The requests that change something, as `METHOD /path?query`.
    fn mutations(&self) -> Vec<String> {
        self.requests
            .iter()
            .filter(|r| r.is_mutating())
            .map(Recorded::line)
            .collect()
    }

    fn mutating_bodies(&self) -> Vec<Value> {
        self.requests
            .iter()
            .filter(|r| r.is_mutating())
            .map(|r| r.body.clone())
            .collect()
    }

    /// Every request, as `METHOD /path?query`.
    fn lines(&self) -> Vec<String> {
        self.requests.iter().map(Recorded::line).collect()
    }

    #[track_caller]
    fn exit(&self, code: i32) -> &KrobRun {
        assert_eq!(
            self.code,
            Some(code),
            "{} exited {:?}, expected {code}\n{self}",
            self.id,
            self.code
        );
        self
    }

    #[track_caller]
    fn no_mutation(&self) -> &KrobRun {
        assert_eq!(
            self.mutations(),
            Vec::<String>::new(),
            "{} changed something\n{self}",
            self.id
        );
        self
    }

    /// The `metric` events of this run.
    fn metrics(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["event"] == "metric")
            .map(|e| &e["metric"])
            .collect()
    }
}

impl std::fmt::Display for KrobRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "command: {}", self.docker)?;
        writeln!(f, "exit:    {:?}", self.code)?;
        writeln!(f, "--- Elasticsearch requests ---")?;
        for r in &self.requests {
            writeln!(f, "{} -> {} {}", r.line(), r.status, r.body)?;
        }
        writeln!(f, "--- monitor events ---")?;
        for e in &self.events {
            writeln!(f, "{e}")?;
        }
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

impl Lab {
    /// Publishes `language` (only it) from a copy of this repository, its runtime on its Debian
    /// base, with the monitor's URL in `[deploy]`; pulls the image back by digest.
    fn publish(language: &'static str) -> Lab {
        Lab::publish_with(language, |_| {})
    }

    /// [`Lab::publish`], after `prepare` changed the copy of this repository (committed).
    fn publish_with(language: &'static str, prepare: impl FnOnce(&Pipeline)) -> Lab {
        let base = runtime_base(language);
        let monitor = FakeMonitor::start();
        let p = Pipeline::oci();
        prepare(&p);
        p.edit_config(|text| {
            let text = on_base(text, language, &base);
            format!("{text}\n[deploy]\nmonitor_url = \"{}\"\n", monitor.url())
        });
        let run = p.krobs(&["--json", "--only", language]).success();
        let report = run.json();
        let manifest = p.repo.root.join(
            report["manifest"]["content_path"]
                .as_str()
                .unwrap_or_else(|| panic!("the report names no manifest\n{run}")),
        );
        let m = p.manifest_of(&run);
        let entry = m["languages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == language)
            .unwrap_or_else(|| panic!("{language} is not in the manifest\n{m}"));
        let image = string(entry, "image");
        let digest = string(entry, "digest");
        assert_eq!(image, format!("{}/krobs/{language}@{digest}", p.host()));

        // Pull it back by digest: the local references of the run go first.
        p.forget_local_images(language);
        let (user, password) = p.creds();
        let login = p.docker.login(&p.registry.addr(), user, password);
        p.record_output("docker login", &login);
        assert!(login.status.success(), "docker login failed");
        p.docker_ok(&["pull", &image]);
        // runAsNonRoot takes the image's user, which must be numeric and not root.
        let user = p.docker_ok(&["image", "inspect", "--format", "{{.Config.User}}", &image]);
        assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "10001:10001");
        assert!(
            p.registry_requests().contains(&(
                "GET".into(),
                format!("/v2/krobs/{language}/manifests/{digest}")
            )),
            "the pull did not fetch the manifest by digest from the registry"
        );
        Lab {
            p,
            manifest,
            image,
            monitor,
            events: RefCell::new(Vec::new()),
        }
    }

    /// The pod spec `krobs-build render ID --manifest <the manifest> --env K=V...` prints.
    fn render(&self, id: &str, env: &[(&str, &str)]) -> Value {
        let manifest = self.manifest.display().to_string();
        let mut args = vec!["render", id, "--manifest", manifest.as_str()];
        let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for pair in &pairs {
            args.extend(["--env", pair.as_str()]);
        }
        let run = self.p.krobs(&args).success();
        let obj = read_yaml(&run.stdout);
        let job = match obj["kind"].as_str() {
            Some("CronJob") => &obj["spec"]["jobTemplate"]["spec"],
            Some("Job") => &obj["spec"],
            other => panic!("render printed a {other:?}\n{run}"),
        };
        job["template"]["spec"].clone()
    }

    /// The `docker run` arguments of krob `id`'s rendered Job (`env` given to render, and
    /// `ELASTICSEARCH_URL` at `es`), and the command after the entrypoint.
    fn docker_args(
        &self,
        id: &str,
        es: &FakeEs,
        env: &[(&str, &str)],
    ) -> (Vec<String>, Vec<String>) {
        let es_url = es.url();
        let mut all = vec![("ELASTICSEARCH_URL", es_url.as_str())];
        all.extend_from_slice(env);
        let pod = self.render(id, &all);
        let (args, command) = docker_run_args(&pod, &self.image);
        // The command goes through the entrypoint, which is told the krob's id.
        let through = [KROBS_RUN, "--id", id, "--"];
        assert_eq!(
            &command[..through.len().min(command.len())],
            through,
            "{pod}"
        );
        (args, command[through.len()..].to_vec())
    }

    /// `docker ARGS` for krob `id`, its requests to `es` and what it printed.
    fn docker_run(&self, id: &str, es: &FakeEs, args: &[String], events: Vec<Value>) -> KrobRun {
        let str_args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.p.docker_run(&str_args);
        KrobRun {
            id: id.to_string(),
            docker: format!("docker {}", args.join(" ")),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            requests: es.requests(),
            events,
        }
    }

    /// Runs krob `id` the way its rendered Job would, against `es`, with `env` given to render.
    fn run(&self, id: &str, es: &FakeEs, env: &[(&str, &str)]) -> KrobRun {
        let (args, command) = self.docker_args(id, es, env);
        es.clear_requests();
        self.monitor.clear();
        let mut run = self.docker_run(id, es, &args, Vec::new());
        let events = self.monitor.events();
        run.events = events.iter().map(|e| e.body.clone()).collect();
        check_events(&run, &events, &command);
        self.events.borrow_mut().extend(run.events.iter().cloned());
        run
    }

    /// [`Lab::run`] as pod `pod` (its hostname, as Kubernetes names a pod's), reporting to a
    /// running `krobs-monitor` at `monitor_url` with its bearer `token` (a Secret's, in a
    /// cluster) instead of to the recording monitor whose URL the release names.
    fn run_reporting_to(
        &self,
        monitor_url: &str,
        token: &str,
        pod: &str,
        id: &str,
        es: &FakeEs,
        env: &[(&str, &str)],
    ) -> KrobRun {
        let (mut args, _) = self.docker_args(id, es, env);
        let rendered = format!("KROBS_MONITOR_URL={}", self.monitor.url());
        let at = args.iter().position(|a| *a == rendered);
        let at = at.unwrap_or_else(|| panic!("render gave no {rendered}: {args:?}"));
        args[at] = format!("KROBS_MONITOR_URL={monitor_url}");
        let image = args.iter().position(|a| *a == self.image).unwrap();
        args.splice(
            image..image,
            ["-e".into(), format!("KROBS_MONITOR_TOKEN={token}")],
        );
        args.splice(1..1, ["--hostname".into(), pod.into()]);
        es.clear_requests();
        self.monitor.clear();
        let run = self.docker_run(id, es, &args, Vec::new());
        assert!(
            self.monitor.events().is_empty(),
            "the recording monitor heard of a run that reports elsewhere\n{run}"
        );
        run
    }

    /// Every event of every run so far is valid against the published schema (one
    /// `check-jsonschema` for all).
    fn check_events_schema(&self) {
        let events = self.events.borrow();
        assert!(!events.is_empty(), "the monitor got no event");
        let dir = tempfile::tempdir().unwrap();
        let schema =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/monitor-event-v1.schema.json");
        let mut cmd = Command::new("check-jsonschema");
        cmd.arg("--schemafile").arg(schema);
        for (i, e) in events.iter().enumerate() {
            let path = dir.path().join(format!("event-{i}.json"));
            std::fs::write(&path, serde_json::to_vec(e).unwrap()).unwrap();
            cmd.arg(path);
        }
        let out = cmd
            .output()
            .expect("check-jsonschema runs (tests/run.sh installs it)");
        assert!(
            out.status.success(),
            "{}\n{events:#?}",
            describe(&cmd, &out)
        );
    }
}

/// The monitor heard one `start` (with the command) and, last, `finish` for exit code 0 or
/// `failure` with the exit code, and otherwise only what the libraries send on purpose
/// (`message`, `metric`, which may come before `start`); every event is JSON POSTed to the URL
/// render gave, about this krob; the output tail holds lines the krob printed.
#[track_caller]
fn check_events(run: &KrobRun, events: &[Event], command: &[String]) {
    for e in events {
        assert_eq!(
            (e.method.as_str(), e.path.as_str()),
            ("POST", "/events"),
            "{run}"
        );
        assert!(
            e.content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/json")),
            "an event without Content-Type application/json: {:?}\n{run}",
            e.content_type
        );
        assert_eq!(e.body["krob"], run.id, "{run}");
        assert_eq!(e.body["version"], 1, "{run}");
    }
    let kinds: Vec<&str> = run
        .events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("?"))
        .collect();
    let end = if run.code == Some(0) {
        "finish"
    } else {
        "failure"
    };
    assert!(
        kinds.len() >= 2,
        "expected start ... {end}, got {kinds:?}\n{run}"
    );
    // krobs-run posts `start` in the background while the command starts, so a `message` or
    // `metric` of the script's own may arrive before it; the outcome always comes last.
    assert_eq!(kinds[kinds.len() - 1], end, "{kinds:?}\n{run}");
    let starts: Vec<usize> = (0..kinds.len()).filter(|&i| kinds[i] == "start").collect();
    assert_eq!(starts.len(), 1, "one `start`: {kinds:?}\n{run}");
    assert!(
        kinds[..kinds.len() - 1]
            .iter()
            .all(|k| *k == "start" || *k == "message" || *k == "metric"),
        "{kinds:?}\n{run}"
    );
    assert_eq!(run.events[starts[0]]["command"], json!(command), "{run}");
    let last = &run.events[kinds.len() - 1];
    assert_eq!(last["exit_code"], json!(run.code), "{run}");
    assert_eq!(last["signal"], Value::Null, "{run}");
    let printed: Vec<&str> = run.stdout.lines().chain(run.stderr.lines()).collect();
    let tail = last["output_tail"]
        .as_array()
        .unwrap_or_else(|| panic!("no output_tail\n{run}"));
    for line in tail {
        let line = line.as_str().unwrap();
        assert!(
            printed.contains(&line),
            "`{line}` of the output tail was never printed\n{run}"
        );
    }
    if printed.iter().any(|l| !l.starts_with("krobs-run:")) {
        assert!(
            !tail.is_empty(),
            "the krob printed lines but the output tail is empty\n{run}"
        );
    }
}

/// `docker run` arguments for the pod spec's one container: its image (which must be the
/// manifest's), args, env, user and security context; `--network host` so that it reaches the
/// fakes on 127.0.0.1. Also the container's args alone.
fn docker_run_args(pod: &Value, image: &str) -> (Vec<String>, Vec<String>) {
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{pod}");
    let c = &containers[0];
    assert_eq!(c["image"], image, "render names another image\n{pod}");
    assert!(
        c.get("command").is_none_or(Value::is_null),
        "render overrides the entrypoint\n{pod}"
    );
    let pod_sc = &pod["securityContext"];
    let sc = &c["securityContext"];
    let field = |name: &str| -> Value {
        if sc.get(name).is_some_and(|v| !v.is_null()) {
            sc[name].clone()
        } else {
            pod_sc[name].clone()
        }
    };
    let mut args: Vec<String> = ["run", "--rm", "--network", "host"]
        .map(String::from)
        .to_vec();
    assert_eq!(field("runAsNonRoot"), true, "{pod}");
    match (field("runAsUser").as_u64(), field("runAsGroup").as_u64()) {
        (Some(u), Some(g)) => args.extend(["--user".into(), format!("{u}:{g}")]),
        (Some(u), None) => args.extend(["--user".into(), u.to_string()]),
        _ => {} // the image's own user, which runAsNonRoot requires to be numeric and not 0
    }
    if sc["readOnlyRootFilesystem"] == true {
        args.push("--read-only".into());
    }
    // The memory limit, so that a krob that needs more than its header gives is killed here
    // as the kubelet would kill it (CPU is a request only: nothing to apply).
    let limit = string(&c["resources"]["limits"], "memory");
    args.extend(["--memory".into(), memory_bytes(&limit).to_string()]);
    if sc["allowPrivilegeEscalation"] == false {
        args.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    for cap in sc["capabilities"]["drop"].as_array().into_iter().flatten() {
        args.extend(["--cap-drop".into(), cap.as_str().unwrap().to_string()]);
    }
    let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
    for mount in c["volumeMounts"].as_array().into_iter().flatten() {
        let volume = volumes
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap_or_else(|| panic!("no volume for {mount}\n{pod}"));
        assert!(
            volume.get("emptyDir").is_some(),
            "only emptyDir volumes are expected: {volume}"
        );
        args.extend(["--tmpfs".into(), string(mount, "mountPath")]);
    }
    for e in c["env"].as_array().into_iter().flatten() {
        args.extend([
            "-e".into(),
            format!("{}={}", string(e, "name"), string(e, "value")),
        ]);
    }
    args.push(image.to_string());
    let command: Vec<String> = c["args"]
        .as_array()
        .expect("render gives the command as args")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    args.extend(command.iter().cloned());
    (args, command)
}

/// A Kubernetes memory quantity (`512Mi`, `1Gi`, `500M`, bytes) in bytes.
fn memory_bytes(quantity: &str) -> u64 {
    let split = quantity
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let number: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("memory `{quantity}`"));
    let unit: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        other => panic!("memory `{quantity}`: unexpected suffix `{other}`"),
    };
    number * unit
}

/// A failing Elasticsearch, answering 503 to every request or closing every connection, makes
/// the krob exit with `code` (a `failure` event, checked by every run) and change nothing.
/// (A 500 is the partial failure of expunge_deletes.)
fn fails_when_elasticsearch_fails(
    lab: &Lab,
    id: &str,
    cluster: &Cluster,
    env: &[(&str, &str)],
    code: i32,
) {
    for how in [How::Status(503), How::Close] {
        fails_when_elasticsearch_fails_with(lab, id, cluster, env, code, how);
    }
}

/// One of [`fails_when_elasticsearch_fails`]'s two ways of failing.
fn fails_when_elasticsearch_fails_with(
    lab: &Lab,
    id: &str,
    cluster: &Cluster,
    env: &[(&str, &str)],
    code: i32,
    how: How,
) {
    let es = FakeEs::start(cluster.clone());
    es.fail(None, None, how);
    let run = lab.run(id, &es, env);
    run.exit(code).no_mutation();
    assert!(
        !run.requests.is_empty(),
        "{id} did not call Elasticsearch\n{run}"
    );
}

// -------------------------------------------------------------------------------------------------
// Reporting to a running krobs-monitor
// -------------------------------------------------------------------------------------------------

/// The owner of every shipped krob, and its DogStatsD tag.
const OWNER: &str = "search-infra (#search-oncall)";
const OWNER_TAG: &str = "owner:search-infra___search-oncall_";
const MONITOR_TOKEN: &str = "krobs-monitor-test.0123456789";

/// Krob `id` run twice from its image, reporting through krobs-run and its library to the real
/// `krobs-monitor` (given the release manifest; Slack the fake Web API, Datadog a UDP socket):
/// once against `cluster` with `env`, finishing with its own message `said`, once with the bad
/// configuration `bad` (exit 2). Each run gets one thread: the parent (script, pod, owner,
/// image), the krob's message, the outcome (for the failure its exit code and output tail),
/// and the parent updated with the outcome. `krobs.run.started`, `finished`/`failed` and
/// `duration` carry the script, language, owner, env and exit code. Returns every datagram.
fn check_reports_to_krobs_monitor(
    lab: &Lab,
    id: &str,
    (cluster, env, said): (Cluster, &[(&str, &str)], &str),
    bad: &[(&str, &str)],
) -> Vec<Datagram> {
    let started = std::time::Instant::now();
    let (slack, statsd) = (FakeSlack::start(), DogStatsd::start());
    let dir = tempfile::tempdir().unwrap();
    let monitor = KrobsMonitor::start(
        dir.path(),
        &[
            ("SLACK_API_URL", slack.url()),
            ("DD_AGENT_HOST", "127.0.0.1".into()),
            ("DD_DOGSTATSD_PORT", statsd.port().to_string()),
            ("KROBS_MONITOR_TOKEN", MONITOR_TOKEN.into()),
            ("KROBS_MONITOR_RELEASE", lab.manifest.display().to_string()),
        ],
    );
    let pods = [
        format!("{}-ok", id.replace(['/', '_'], "-")),
        format!("{}-bad", id.replace(['/', '_'], "-")),
    ];
    let report = |pod: &str, es: &FakeEs, env: &[(&str, &str)]| {
        lab.run_reporting_to(&monitor.url(), MONITOR_TOKEN, pod, id, es, env)
    };
    let ok = report(&pods[0], &FakeEs::start(cluster), env);
    ok.exit(0);
    let bad = report(&pods[1], &FakeEs::start(Cluster::with_nodes(1)), bad);
    bad.exit(2);

    let calls = slack.wait_for(8, Duration::from_secs(30));
    let log = monitor.log_text();
    assert_eq!(calls.len(), 8, "{calls:#?}\n{log}");
    assert!(slack.refused().is_empty(), "{:?}\n{log}", slack.refused());
    for (run, (pod, thread)) in [&ok, &bad]
        .into_iter()
        .zip(pods.iter().zip(calls.chunks(4)))
    {
        let parent = |state: &str| {
            format!(
                "{state}: *{id}* on `{pod}`\nowner: {OWNER}\nimage: `{}`",
                lab.image
            )
        };
        let context = format!("{thread:#?}\n{run}\n{log}");
        let [start, message, outcome, update] = thread else {
            unreachable!()
        };
        assert_eq!(
            (
                start.method.as_str(),
                start.channel.as_str(),
                start.thread_ts.as_deref()
            ),
            ("chat.postMessage", CHANNEL, None),
            "{context}"
        );
        assert_eq!(start.text, parent(":arrow_forward: started"), "{context}");
        for reply in [message, outcome] {
            assert_eq!(
                (reply.method.as_str(), reply.channel.as_str()),
                ("chat.postMessage", CHANNEL_ID),
                "{context}"
            );
            assert_eq!(
                reply.thread_ts.as_deref(),
                Some(start.ts.as_str()),
                "{context}"
            );
        }
        assert_eq!(
            (
                update.method.as_str(),
                update.channel.as_str(),
                update.ts.as_str()
            ),
            ("chat.update", CHANNEL_ID, start.ts.as_str()),
            "{context}"
        );
        let (code, state, said) = match run.code {
            Some(0) => (0, ":white_check_mark: finished", said.to_string()),
            _ => (2, ":x: failed", message.text.clone()),
        };
        assert_eq!(update.text, parent(state), "{context}");
        // The krob's own message, as it logged it.
        assert_eq!(message.text, said, "{context}");
        assert!(
            run.stderr
                .lines()
                .any(|l| l.ends_with(&format!("[{id}] {said}"))
                    || l.ends_with(&format!("[{id}] finished: {said}"))),
            "the krob never logged `{said}`\n{context}"
        );
        let (head, tail) = outcome.text.split_once('\n').unwrap_or((&outcome.text, ""));
        let word = if code == 0 { "Finished" } else { "Failed" };
        assert!(
            head.starts_with(&format!("{word} after "))
                && head.ends_with(&format!("s: exit code {code}")),
            "{context}"
        );
        if code == 0 {
            assert_eq!(tail, "", "{context}");
            continue;
        }
        // The output tail, in a code block: the krob's last lines, its failure among them.
        assert!(said.starts_with("FAILED: "), "{context}");
        let block = tail
            .strip_prefix("```\n")
            .and_then(|t| t.strip_suffix("\n```"))
            .unwrap_or_else(|| panic!("no output tail in a code block\n{context}"));
        let printed: Vec<&str> = run.stdout.lines().chain(run.stderr.lines()).collect();
        for line in block.lines() {
            let line = line
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            assert!(
                printed.contains(&line.as_str()),
                "`{line}` was never printed\n{context}"
            );
        }
        assert!(block.contains(&format!("[{id}] FAILED: ")), "{context}");
    }
    assert_eq!(
        monitor.metric("krobs_monitor_unauthorized_total"),
        0.0,
        "{log}"
    );

    let datagrams: Vec<Datagram> = statsd
        .lines()
        .iter()
        .filter_map(|l| Datagram::parse(l))
        .collect();
    let language = id.split('/').next().unwrap();
    let tags = [
        format!("script:{id}"),
        format!("language:{language}"),
        OWNER_TAG.into(),
        "env:test".into(),
    ];
    let count = |name: &str, kind: &str, exit: Option<i32>| {
        let mut want: Vec<String> = tags.to_vec();
        want.extend(exit.map(|c| format!("exit_code:{c}")));
        datagrams
            .iter()
            .filter(|d| d.name == name && d.kind == kind && d.tags.len() == want.len())
            .filter(|d| want.iter().all(|t| d.has_tag(t)))
            .count()
    };
    let expected = [
        ("krobs.run.started", "c", None, 2),
        ("krobs.run.finished", "c", Some(0), 1),
        ("krobs.run.failed", "c", Some(2), 1),
        ("krobs.run.duration", "d", Some(0), 1),
        ("krobs.run.duration", "d", Some(2), 1),
    ];
    for (name, kind, exit, n) in expected {
        assert_eq!(
            count(name, kind, exit),
            n,
            "{name} {exit:?}: {datagrams:#?}"
        );
    }
    assert!(
        datagrams
            .iter()
            .filter(|d| d.name == "krobs.run.duration")
            .all(|d| d
                .value
                .parse::<f64>()
                .is_ok_and(|v| (0.0..60.0).contains(&v))),
        "{datagrams:#?}"
    );
    eprintln!(
        "{id}: two runs reported to krobs-monitor, checked in {:.1?}",
        started.elapsed()
    );
    datagrams
}

// -------------------------------------------------------------------------------------------------
// Python
// -------------------------------------------------------------------------------------------------

fn expunge_cluster() -> Cluster {
    let mut c = Cluster::with_nodes(3);
    c.add_index(Index::new("logs-a").counts(1000, 900)); // ratio 0.47
    c.add_index(Index::new("logs-b").counts(1000, 300)); // 0.23
    c.add_index(Index::new("logs-c").counts(1000, 500)); // 0.33
    c.add_index(Index::new("logs-d").counts(1000, 100)); // 0.09: under the ratio
    c.add_index(Index::new("logs-e").counts(100, 90)); // 0.47 but 90 < MIN_DELETED_DOCS
    c.add_index(Index::new("logs-closed").counts(1000, 900).closed());
    c.add_index(Index::new("logs-red").counts(1000, 900).health("red"));
    c.add_index(Index::new("metrics-a").counts(1000, 900)); // not in INDEX_PATTERN
    c
}

fn forcemerge(index: &str) -> String {
    format!("POST /{index}/_forcemerge?only_expunge_deletes=true")
}

/// The metric expunge_deletes sends after its merges.
fn merged_metric(n: u64) -> Value {
    json!({"name": "krobs.expunge_deletes.merged_indices", "value": n, "type": "count", "tags": {"pattern": "logs-*"}})
}

fn check_expunge_deletes(lab: &Lab) {
    let id = "python/expunge_deletes";
    let env = [
        ("INDEX_PATTERN", "logs-*"),
        ("MIN_DELETED_DOCS", "100"),
        ("MAX_INDICES_PER_RUN", "2"),
    ];
    let es = FakeEs::start(expunge_cluster());

    // A dry run reads the indices once and changes nothing.
    let dry = lab.run(id, &es, &[env.as_slice(), &[("DRY_RUN", "1")]].concat());
    dry.exit(0).no_mutation();
    assert!(dry.metrics().is_empty(), "{dry}");
    assert_eq!(
        dry.lines(),
        ["GET /_cat/indices/logs-*?expand_wildcards=open&format=json&h=index,status,health,docs.count,docs.deleted"],
        "{dry}"
    );

    // The worst two of the three over the threshold (by deleted documents), worst first; the
    // closed, red, small, under-ratio and other-pattern indices are left alone.
    let first = lab.run(id, &es, &env);
    first.exit(0);
    assert_eq!(
        first.mutations(),
        [forcemerge("logs-a"), forcemerge("logs-c")],
        "{first}"
    );
    assert_eq!(first.metrics(), [&merged_metric(2)], "{first}");
    let c = es.cluster();
    let deleted = |name: &str| c.indices[name].deleted;
    assert_eq!(
        [
            "logs-a",
            "logs-b",
            "logs-c",
            "logs-d",
            "logs-e",
            "logs-closed",
            "logs-red",
            "metrics-a"
        ]
        .map(deleted),
        [0, 300, 0, 100, 90, 900, 900, 900]
    );

    // The next run takes the one left; then there is nothing to do.
    let second = lab.run(id, &es, &env);
    second.exit(0);
    assert_eq!(second.mutations(), [forcemerge("logs-b")], "{second}");
    assert_eq!(second.metrics(), [&merged_metric(1)], "{second}");
    let third = lab.run(id, &es, &env);
    third.exit(0).no_mutation();

    // A merge refused on one index: the others are merged, the run fails.
    let es = FakeEs::start(expunge_cluster());
    es.fail(Some("POST"), Some("/logs-a/_forcemerge"), How::Status(500));
    let partial = lab.run(id, &es, &env);
    partial.exit(1);
    assert_eq!(
        partial.mutations(),
        [forcemerge("logs-a"), forcemerge("logs-c")],
        "{partial}"
    );
    assert_eq!(partial.metrics(), [&merged_metric(1)], "{partial}");
    assert_eq!(es.cluster().indices["logs-c"].deleted, 0);
    assert_eq!(es.cluster().indices["logs-a"].deleted, 900);

    // Bad configuration: exit 2 before any request.
    let es = FakeEs::start(expunge_cluster());
    let bad = lab.run(id, &es, &[("MIN_DELETED_RATIO", "2")]);
    bad.exit(2);
    assert!(bad.requests.is_empty(), "{bad}");

    fails_when_elasticsearch_fails(lab, id, &expunge_cluster(), &env, 1);
}

fn drain_cluster() -> Cluster {
    let mut c = Cluster::with_nodes(3);
    c.add_index(Index::new("idx-a").counts(10, 0));
    c.add_index(Index::new("idx-b").counts(10, 0));
    c.shards = vec![
        Shard::started("idx-a", 0, true, "es-1"),
        Shard::started("idx-a", 0, false, "es-2"),
        Shard::started("idx-a", 1, true, "es-2"),
        Shard::started("idx-a", 1, false, "es-3"),
        Shard::started("idx-b", 0, true, "es-3"),
        Shard::started("idx-b", 0, false, "es-1"),
    ];
    // A node excluded earlier, and gone since: kept in the list.
    c.persistent.insert(
        "cluster.routing.allocation.exclude._name".into(),
        json!("es-old"),
    );
    c
}

fn check_drain_node(lab: &Lab) {
    let id = "python/drain_node";
    let env = [
        ("NODE_NAME", "es-2"),
        ("POLL_INTERVAL_SECONDS", "1"),
        ("DRAIN_TIMEOUT_SECONDS", "60"),
    ];
    let es = FakeEs::start(drain_cluster());

    let dry = lab.run(id, &es, &[env.as_slice(), &[("DRY_RUN", "1")]].concat());
    dry.exit(0).no_mutation();
    assert_eq!(es.cluster().shards_on("es-2").len(), 2);

    // The node joins the persistent exclusion list (the earlier one kept), and the krob waits
    // until its shards have moved.
    let first = lab.run(id, &es, &env);
    first.exit(0);
    assert_eq!(first.mutations(), ["PUT /_cluster/settings"], "{first}");
    assert_eq!(
        first.mutating_bodies(),
        [json!({"persistent": {"cluster.routing.allocation.exclude._name": "es-old,es-2"}})],
        "{first}"
    );
    let looks = first
        .requests
        .iter()
        .filter(|r| r.path == "/_cat/shards")
        .count();
    assert!(
        looks >= 2,
        "the krob did not wait for the relocations\n{first}"
    );
    let c = es.cluster();
    assert!(c.shards_on("es-2").is_empty(), "{:?}", c.shards);
    assert!(
        c.shards.iter().all(|s| s.state == "STARTED"),
        "{:?}",
        c.shards
    );

    // Again: already excluded and drained, nothing to change.
    let second = lab.run(id, &es, &env);
    second.exit(0).no_mutation();

    // An exclusion set in transient settings is extended there, not shadowed.
    let es = FakeEs::start(drain_cluster());
    es.edit(|c| {
        c.transient.insert(
            "cluster.routing.allocation.exclude._name".into(),
            json!("es-old"),
        );
    });
    let transient = lab.run(id, &es, &env);
    transient.exit(0);
    assert_eq!(
        transient.mutating_bodies(),
        [json!({"transient": {"cluster.routing.allocation.exclude._name": "es-old,es-2"}})],
        "{transient}"
    );

    // A node that is not in the cluster is a failure; one with a wildcard a bad configuration.
    let es = FakeEs::start(drain_cluster());
    lab.run(id, &es, &[("NODE_NAME", "es-9")])
        .exit(1)
        .no_mutation();
    let bad = lab.run(id, &es, &[("NODE_NAME", "es-*")]);
    bad.exit(2);
    assert!(bad.requests.is_empty(), "{bad}");

    // A shard with nowhere to go (the other node holds its primary): the exclusion is written,
    // the drain times out and fails; the next run does not write it again and fails the same.
    let mut stuck = Cluster::with_nodes(2);
    stuck.add_index(Index::new("idx-a"));
    stuck.shards = vec![
        Shard::started("idx-a", 0, true, "es-1"),
        Shard::started("idx-a", 0, false, "es-2"),
    ];
    let es = FakeEs::start(stuck);
    let short = [
        ("NODE_NAME", "es-2"),
        ("POLL_INTERVAL_SECONDS", "1"),
        ("DRAIN_TIMEOUT_SECONDS", "2"),
    ];
    let timed_out = lab.run(id, &es, &short);
    timed_out.exit(1);
    assert_eq!(
        timed_out.mutations(),
        ["PUT /_cluster/settings"],
        "{timed_out}"
    );
    assert_eq!(es.cluster().excluded(), ["es-2"]);
    assert_eq!(es.cluster().shards_on("es-2").len(), 1);
    lab.run(id, &es, &short).exit(1).no_mutation();

    fails_when_elasticsearch_fails(lab, id, &drain_cluster(), &env, 1);
}

#[test]
fn python_krobs_run_in_their_image() {
    let lab = Lab::publish("python");
    check_expunge_deletes(&lab);
    check_drain_node(&lab);
    let env = [
        ("INDEX_PATTERN", "logs-*"),
        ("MIN_DELETED_DOCS", "100"),
        ("MAX_INDICES_PER_RUN", "2"),
    ];
    let ok = (
        expunge_cluster(),
        env.as_slice(),
        "expunged deletes on 2 indices",
    );
    let id = "python/expunge_deletes";
    let datagrams = check_reports_to_krobs_monitor(&lab, id, ok, &[("MIN_DELETED_RATIO", "2")]);
    // The krob's own metric, forwarded with its tags (sanitised).
    let merged = datagrams
        .iter()
        .filter(|d| {
            d.name == "krobs.expunge_deletes.merged_indices" && d.value == "2" && d.kind == "c"
        })
        .filter(|d| d.has_tag("pattern:logs-_") && d.has_tag(&format!("script:{id}")))
        .count();
    assert_eq!(merged, 1, "{datagrams:#?}");
    lab.check_events_schema();
    lab.p.assert_no_secrets();
}

// -------------------------------------------------------------------------------------------------
// Ruby
// -------------------------------------------------------------------------------------------------

fn retention_cluster() -> Cluster {
    let mut c = Cluster::with_nodes(2);
    c.add_index(
        Index::new("logs-1")
            .docs_aged("@timestamp", 40 * DAY_MS, 5)
            .docs_aged("@timestamp", 31 * DAY_MS, 3)
            .docs_aged("@timestamp", 2 * DAY_MS, 4),
    );
    c.add_index(
        Index::new("logs-2")
            .docs_aged("@timestamp", 100 * DAY_MS, 2)
            .docs_aged("@timestamp", DAY_MS, 6),
    );
    c.add_index(Index::new("other-1").docs_aged("@timestamp", 100 * DAY_MS, 7));
    c
}

const DELETE_BY_QUERY: &str = "POST /logs-*/_delete_by_query?allow_no_indices=true&conflicts=proceed&ignore_unavailable=true&slices=auto&wait_for_completion=false";

fn check_delete_old_documents(lab: &Lab) {
    let id = "ruby/delete_old_documents";
    let env = [
        ("INDEX_PATTERN", "logs-*"),
        ("RETENTION_DAYS", "30"),
        ("POLL_INTERVAL_SECONDS", "1"),
    ];
    let query = json!({"query": {"range": {"@timestamp": {"lt": "now-30d/d"}}}});
    let es = FakeEs::start(retention_cluster());

    let dry = lab.run(id, &es, &[env.as_slice(), &[("DRY_RUN", "1")]].concat());
    dry.exit(0).no_mutation();
    assert_eq!(
        dry.lines(),
        ["POST /logs-*/_count?allow_no_indices=true&ignore_unavailable=true"],
        "{dry}"
    );

    // One delete by query on the pattern, as a task the krob waits for.
    let first = lab.run(id, &es, &env);
    first.exit(0);
    assert_eq!(first.mutations(), [DELETE_BY_QUERY], "{first}");
    assert_eq!(first.mutating_bodies(), [query], "{first}");
    let polls = first
        .requests
        .iter()
        .filter(|r| r.path.starts_with("/_tasks/"))
        .count();
    assert_eq!(
        polls, 2,
        "the task runs for one look, then is done\n{first}"
    );
    let c = es.cluster();
    let counts = |name: &str| (c.indices[name].docs_count(), c.indices[name].deleted);
    assert_eq!(
        ["logs-1", "logs-2", "other-1"].map(counts),
        [(4, 8), (6, 2), (7, 0)],
        "only the documents before the cutoff, only in the pattern"
    );

    let second = lab.run(id, &es, &env);
    second.exit(0).no_mutation();

    // REQUESTS_PER_SECOND throttles the task.
    let es = FakeEs::start(retention_cluster());
    let throttled = lab.run(
        id,
        &es,
        &[env.as_slice(), &[("REQUESTS_PER_SECOND", "50")]].concat(),
    );
    throttled.exit(0);
    assert_eq!(
        throttled.mutations(),
        [DELETE_BY_QUERY.replace("&slices=auto", "&requests_per_second=50&slices=auto")],
        "{throttled}"
    );

    // A task that outlives TASK_TIMEOUT_SECONDS is cancelled, and the run fails.
    let es = FakeEs::start(retention_cluster());
    es.edit(|c| c.task_polls = 1000);
    let slow = lab.run(
        id,
        &es,
        &[env.as_slice(), &[("TASK_TIMEOUT_SECONDS", "1")]].concat(),
    );
    slow.exit(1);
    let task = es.cluster().nodes[0].id.clone() + ":1001";
    assert_eq!(
        slow.mutations(),
        [
            DELETE_BY_QUERY.to_string(),
            format!("POST /_tasks/{task}/_cancel")
        ],
        "{slow}"
    );
    assert!(es.cluster().tasks.is_empty(), "the task was not cancelled");

    // `*` would match every index: refused before any request.
    let bad = lab.run(id, &es, &[("INDEX_PATTERN", "*"), ("RETENTION_DAYS", "30")]);
    bad.exit(2);
    assert!(bad.requests.is_empty(), "{bad}");

    fails_when_elasticsearch_fails(lab, id, &retention_cluster(), &env, 1);
}

fn check_watch_cluster_settings(lab: &Lab) {
    let id = "ruby/watch_cluster_settings";
    let read = "GET /_cluster/settings?flat_settings=true&include_defaults=true";

    // Elasticsearch's defaults are what the built-in baseline expects.
    let es = FakeEs::start(Cluster::with_nodes(3));
    let ok = lab.run(id, &es, &[]);
    ok.exit(0).no_mutation();
    assert_eq!(ok.lines(), [read], "{ok}");

    // Allocation left at primaries and a node left excluded: drift, exit 3, read-only.
    let mut drifted = Cluster::with_nodes(3);
    drifted.persistent.insert(
        "cluster.routing.allocation.enable".into(),
        json!("primaries"),
    );
    drifted.transient.insert(
        "cluster.routing.allocation.exclude._name".into(),
        json!("es-2"),
    );
    let es = FakeEs::start(drifted.clone());
    let drift = lab.run(id, &es, &[]);
    drift.exit(3).no_mutation();
    assert_eq!(drift.lines(), [read], "{drift}");
    for setting in [
        "cluster.routing.allocation.enable",
        "cluster.routing.allocation.exclude._name",
    ] {
        assert!(
            drift.stderr.contains(setting),
            "the drift of {setting} is not named\n{drift}"
        );
    }
    // Read-only, so again the same.
    lab.run(id, &es, &[]).exit(3).no_mutation();

    // An expected set of its own.
    let expected = r#"{"cluster.routing.allocation.enable": "primaries", "cluster.routing.allocation.disk.watermark.high": "90%"}"#;
    lab.run(id, &es, &[("EXPECTED_SETTINGS", expected)])
        .exit(0)
        .no_mutation();
    let bad = lab.run(id, &es, &[("EXPECTED_SETTINGS", "[1]")]);
    bad.exit(2);
    assert!(bad.requests.is_empty(), "{bad}");

    fails_when_elasticsearch_fails(lab, id, &drifted, &[], 1);
}

/// What watch_cluster_settings says when the cluster has Elasticsearch's defaults.
const RUBY_SAID: &str = "5 cluster settings match the expected values";

#[test]
fn ruby_krobs_run_in_their_image() {
    let lab = Lab::publish("ruby");
    check_delete_old_documents(&lab);
    check_watch_cluster_settings(&lab);
    let ok = (Cluster::with_nodes(3), [].as_slice(), RUBY_SAID);
    let bad = [("EXPECTED_SETTINGS", "[1]")];
    check_reports_to_krobs_monitor(&lab, "ruby/watch_cluster_settings", ok, &bad);
    lab.check_events_schema();
    lab.p.assert_no_secrets();
}

// -------------------------------------------------------------------------------------------------
// Bash
// -------------------------------------------------------------------------------------------------

const BLOCK: &str = "index.blocks.read_only_allow_delete";

fn blocked_cluster() -> Cluster {
    let mut c = Cluster::with_nodes(3);
    c.add_index(Index::new("logs-a").setting(BLOCK, "true"));
    c.add_index(
        Index::new("logs-b")
            .setting(BLOCK, "true")
            .setting("index.number_of_replicas", "1"),
    );
    c.add_index(Index::new("logs-c").setting("index.number_of_replicas", "1"));
    c.add_index(Index::new("logs-closed").setting(BLOCK, "true").closed());
    c.shards = vec![
        Shard::started("logs-a", 0, true, "es-1"),
        Shard::unassigned("logs-a", 0, false, "NODE_LEFT"),
    ];
    c
}

fn clear_block(index: &str) -> String {
    format!("PUT /{index}/_settings")
}

fn blocked(c: &Cluster) -> Vec<String> {
    c.indices
        .values()
        .filter(|i| i.settings.get(BLOCK).is_some_and(|v| v == "true"))
        .map(|i| i.name.clone())
        .collect()
}

fn check_clear_read_only_blocks(lab: &Lab) {
    let id = "bash/clear_read_only_blocks";
    let es = FakeEs::start(blocked_cluster());

    let dry = lab.run(id, &es, &[("DRY_RUN", "1")]);
    dry.exit(0).no_mutation();

    // Every open index that carries the block, one by one; the closed one is not touched.
    let first = lab.run(id, &es, &[]);
    first.exit(0);
    assert_eq!(
        first.mutations(),
        [clear_block("logs-a"), clear_block("logs-b")],
        "{first}"
    );
    assert_eq!(
        first.mutating_bodies(),
        [json!({BLOCK: null}), json!({BLOCK: null})]
    );
    assert_eq!(blocked(&es.cluster()), ["logs-closed"]);

    let second = lab.run(id, &es, &[]);
    second.exit(0).no_mutation();

    // A node still nearly full: nothing is cleared unless FORCE=1.
    let es = FakeEs::start(blocked_cluster());
    es.edit(|c| c.nodes[2].disk_percent = Some(93));
    lab.run(id, &es, &[]).exit(1).no_mutation();
    assert_eq!(blocked(&es.cluster()), ["logs-a", "logs-b", "logs-closed"]);
    let forced = lab.run(id, &es, &[("FORCE", "1")]);
    forced.exit(0);
    assert_eq!(
        forced.mutations(),
        [clear_block("logs-a"), clear_block("logs-b")],
        "{forced}"
    );

    // A pattern: only what it names.
    let es = FakeEs::start(blocked_cluster());
    let one = lab.run(id, &es, &[("INDEX_PATTERN", "logs-b")]);
    one.exit(0);
    assert_eq!(one.mutations(), [clear_block("logs-b")], "{one}");

    let bad = lab.run(id, &es, &[("MAX_DISK_PERCENT", "x")]);
    bad.exit(2);
    assert!(bad.requests.is_empty(), "{bad}");

    fails_when_elasticsearch_fails(lab, id, &blocked_cluster(), &[], 1);
}

fn failed_allocations_cluster() -> Cluster {
    let mut c = Cluster::with_nodes(3);
    c.add_index(Index::new("logs"));
    c.add_index(Index::new("other"));
    c.shards = vec![
        Shard::started("logs", 0, true, "es-1"),
        Shard::unassigned("logs", 0, false, "ALLOCATION_FAILED"),
        Shard::unassigned("logs", 1, true, "ALLOCATION_FAILED"),
        Shard::started("other", 0, true, "es-2"),
        Shard::unassigned("other", 0, false, "NODE_LEFT"),
    ];
    c
}

const REROUTE: &str = "POST /_cluster/reroute?metric=none&retry_failed=true";

fn check_retry_failed_allocations(lab: &Lab) {
    let id = "bash/retry_failed_allocations";
    let env = [
        ("POLL_INTERVAL_SECONDS", "1"),
        ("WAIT_TIMEOUT_SECONDS", "60"),
    ];
    let es = FakeEs::start(failed_allocations_cluster());

    let dry = lab.run(id, &es, &[env.as_slice(), &[("DRY_RUN", "1")]].concat());
    dry.exit(0).no_mutation();
    assert_eq!(
        dry.lines(),
        ["GET /_cat/shards?h=index,shard,prirep,state,unassigned.reason"],
        "{dry}"
    );

    // One reroute, then the krob waits until the retried shards are started.
    let first = lab.run(id, &es, &env);
    first.exit(0);
    assert_eq!(first.mutations(), [REROUTE], "{first}");
    let c = es.cluster();
    let states: Vec<(String, String)> = c
        .shards
        .iter()
        .map(|s| (s.key(), s.state.clone()))
        .collect();
    assert_eq!(
        states,
        [
            ("logs[0]p", "STARTED"),
            ("logs[0]r", "STARTED"),
            ("logs[1]p", "STARTED"),
            ("other[0]p", "STARTED"),
            ("other[0]r", "UNASSIGNED"),
        ]
        .map(|(k, s)| (k.to_string(), s.to_string())),
    );
    assert!(
        first
            .requests
            .iter()
            .filter(|r| r.path == "/_cat/shards")
            .count()
            >= 3,
        "the krob did not wait for the initializing shards\n{first}"
    );

    let second = lab.run(id, &es, &env);
    second.exit(0).no_mutation();

    // A shard whose allocation fails again: the run times out and fails; the next one asks
    // again (a reroute is harmless) and fails the same.
    let es = FakeEs::start(failed_allocations_cluster());
    es.edit(|c| c.allocation_fails.push("logs[1]p".into()));
    let short = [
        ("POLL_INTERVAL_SECONDS", "1"),
        ("WAIT_TIMEOUT_SECONDS", "2"),
    ];
    for _ in 0..2 {
        let again = lab.run(id, &es, &short);
        again.exit(1);
        assert_eq!(again.mutations(), [REROUTE], "{again}");
        assert!(
            again.stderr.contains("_cluster/allocation/explain"),
            "{again}"
        );
    }
    let c = es.cluster();
    let unassigned: Vec<String> = c
        .shards
        .iter()
        .filter(|s| s.state == "UNASSIGNED")
        .map(Shard::key)
        .collect();
    assert_eq!(unassigned, ["logs[1]p", "other[0]r"]);

    let bad = lab.run(id, &es, &[("POLL_INTERVAL_SECONDS", "0")]);
    bad.exit(2);
    assert!(bad.requests.is_empty(), "{bad}");

    fails_when_elasticsearch_fails(lab, id, &failed_allocations_cluster(), &env, 1);
}

#[test]
fn bash_krobs_run_in_their_image() {
    let lab = Lab::publish("bash");
    check_clear_read_only_blocks(&lab);
    check_retry_failed_allocations(&lab);
    let ok = (
        blocked_cluster(),
        [].as_slice(),
        "cleared index.blocks.read_only_allow_delete on 2 indices",
    );
    let bad = [("MAX_DISK_PERCENT", "x")];
    check_reports_to_krobs_monitor(&lab, "bash/clear_read_only_blocks", ok, &bad);
    lab.check_events_schema();
    lab.p.assert_no_secrets();
}

// -------------------------------------------------------------------------------------------------
// Scala
// -------------------------------------------------------------------------------------------------
// The runtime is the shipped Dockerfile whole on the Debian JRE base: Ammonite's jars fetched
// from the loopback Maven mirror of `tests/run.sh` and checked against `ammonite.lock`. Every
// run of a Scala krob is a JVM that compiles its script and lib/ (about 12 s of CPU), so each
// krob is run for what the others are run for, once each: Elasticsearch failing is a 503 for
// one krob and a closed connection for the other. The image is built with the libraries of
// tests/scala-library/dependencies.sc (its lock, fetched from the same mirror), and two test
// krobs of that folder: one on a declared library, one importing a library declared nowhere.

const EXCLUDE: &str = "cluster.routing.allocation.exclude._name";

fn undrain_cluster() -> Cluster {
    let mut c = Cluster::with_nodes(3);
    c.add_index(Index::new("idx-a").counts(10, 0));
    c.shards = vec![
        Shard::started("idx-a", 0, true, "es-1"),
        Shard::started("idx-a", 0, false, "es-3"),
    ];
    // Drained at both levels, beside a node excluded earlier and gone since.
    c.persistent.insert(EXCLUDE.into(), json!("es-old,es-2"));
    c.transient.insert(EXCLUDE.into(), json!("es-2"));
    c
}

fn check_undrain_node(lab: &Lab) {
    let id = "scala/undrain_node";
    let env = [("NODE_NAME", "es-2")];
    let es = FakeEs::start(undrain_cluster());

    let dry = lab.run(id, &es, &[env.as_slice(), &[("DRY_RUN", "1")]].concat());
    dry.exit(0).no_mutation();
    assert_eq!(
        dry.lines(),
        ["GET /_cluster/settings?flat_settings=true"],
        "{dry}"
    );
    assert_eq!(es.cluster().excluded(), ["es-2"]);

    // One update: the node leaves both lists, the other node stays, the emptied transient
    // setting is removed (null); then the krob reads the settings back.
    let first = lab.run(id, &es, &env);
    first.exit(0);
    assert_eq!(first.mutations(), ["PUT /_cluster/settings"], "{first}");
    assert_eq!(
        first.mutating_bodies(),
        [json!({"persistent": {EXCLUDE: "es-old"}, "transient": {EXCLUDE: null}})],
        "{first}"
    );
    assert_eq!(
        first.lines(),
        [
            "GET /_cluster/settings?flat_settings=true",
            "PUT /_cluster/settings",
            "GET /_cluster/settings?flat_settings=true"
        ],
        "{first}"
    );
    let c = es.cluster();
    assert_eq!(c.persistent.get(EXCLUDE), Some(&json!("es-old")));
    assert_eq!(c.transient.get(EXCLUDE), None);

    // Again: not excluded any more, nothing to write.
    let second = lab.run(id, &es, &env);
    second.exit(0).no_mutation();

    // A wildcard is not one node: refused before any request.
    let bad = lab.run(id, &es, &[("NODE_NAME", "es-*")]);
    bad.exit(2);
    assert!(bad.requests.is_empty(), "{bad}");

    // Elasticsearch answering 503 (a closed connection is delete_old_indices's).
    fails_when_elasticsearch_fails_with(lab, id, &undrain_cluster(), &env, 1, How::Status(503));
}

/// The UTC date `days` days before now, as `yyyy.MM.dd` (the krob's default DATE_FORMAT).
fn days_ago(days: u64) -> String {
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86_400);
    humantime::format_rfc3339_seconds(then).to_string()[..10].replace('-', ".")
}

fn dated_cluster() -> Cluster {
    let mut c = Cluster::with_nodes(2);
    for days in [100, 60, 5] {
        c.add_index(Index::new(&format!("logs-app-{}", days_ago(days))));
    }
    c.add_index(Index::new(&format!("logs-app-{}", days_ago(40))).closed());
    // Not INDEX_PREFIX + a date: left alone, however old.
    c.add_index(Index::new("logs-app-notadate"));
    c.add_index(Index::new("logs-app-2024.02.30"));
    c.add_index(Index::new(&format!("logs-application-{}", days_ago(100))));
    c
}

fn check_delete_old_indices(lab: &Lab) {
    let id = "scala/delete_old_indices";
    let env = [
        ("INDEX_PREFIX", "logs-app-"),
        ("RETENTION_DAYS", "30"),
        ("MAX_DELETES_PER_RUN", "2"),
    ];
    let delete = |days: u64| format!("DELETE /logs-app-{}", days_ago(days));
    let es = FakeEs::start(dated_cluster());
    let before: Vec<String> = es.cluster().indices.keys().cloned().collect();

    let dry = lab.run(id, &es, &[env.as_slice(), &[("DRY_RUN", "1")]].concat());
    dry.exit(0).no_mutation();
    assert_eq!(
        dry.lines(),
        ["GET /_cat/indices/logs-app-*?expand_wildcards=open,closed&format=json&h=index"],
        "{dry}"
    );

    // The two oldest of the three expired indices (the closed one too), oldest first, one by
    // one by exact name; the newest, the undated and the other prefix's are kept.
    let first = lab.run(id, &es, &env);
    first.exit(0);
    assert_eq!(first.mutations(), [delete(100), delete(60)], "{first}");
    // The last expired one on the next run; then nothing is left to delete.
    let second = lab.run(id, &es, &env);
    second.exit(0);
    assert_eq!(second.mutations(), [delete(40)], "{second}");
    let third = lab.run(id, &es, &env);
    third.exit(0).no_mutation();
    let gone: Vec<String> = [100, 60, 40]
        .map(|d| format!("logs-app-{}", days_ago(d)))
        .to_vec();
    let left: Vec<String> = es.cluster().indices.keys().cloned().collect();
    let expected: Vec<String> = before.into_iter().filter(|n| !gone.contains(n)).collect();
    assert_eq!(left, expected);

    let bad = lab.run(
        id,
        &es,
        &[("INDEX_PREFIX", "logs-*"), ("RETENTION_DAYS", "30")],
    );
    bad.exit(2);
    assert!(bad.requests.is_empty(), "{bad}");

    // Elasticsearch closing every connection (a 503 is undrain_node's).
    fails_when_elasticsearch_fails_with(lab, id, &dated_cluster(), &env, 1, How::Close);
}

/// The copy of this repository gets tests/scala-library: its dependencies.sc and lock (scopt,
/// which Ammonite does not bundle) and its two krobs.
fn with_scala_library(p: &Pipeline) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scala-library");
    for (from, to) in [
        ("dependencies.sc", "languages/scala/dependencies.sc"),
        ("dependencies.lock", "languages/scala/dependencies.lock"),
        ("uses_library.sc", "languages/scala/scripts/uses_library.sc"),
        (
            "undeclared_library.sc",
            "languages/scala/scripts/undeclared_library.sc",
        ),
    ] {
        p.repo.write(to, std::fs::read(fixture.join(from)).unwrap());
    }
    p.commit("a library in dependencies.sc, and krobs on it");
}

/// A krob on a library of dependencies.sc runs with no network but the fakes' (coursier offline
/// on the image's cache); a krob importing a library declared nowhere fails at once, naming it
/// and saying what to do, before any request.
fn check_libraries(lab: &Lab) {
    let mut cluster = Cluster::with_nodes(1);
    cluster.add_index(Index::new("idx-a").docs_aged("@timestamp", DAY_MS, 3));
    let es = FakeEs::start(cluster);

    let id = "scala/uses_library";
    let ok = lab.run(id, &es, &[("OPTIONS", "--index idx-a")]);
    ok.exit(0).no_mutation();
    assert_eq!(ok.lines(), ["GET /idx-a/_count"], "{ok}");
    assert!(
        ok.stderr.contains("finished: idx-a holds 3 documents"),
        "{ok}"
    );
    // scopt's own parse error: bad configuration, before any request.
    let bad = lab.run(id, &es, &[("OPTIONS", "--index")]);
    bad.exit(2);
    assert!(bad.requests.is_empty(), "{bad}");

    let id = "scala/undeclared_library";
    let undeclared = lab.run(id, &es, &[]);
    undeclared.exit(1);
    assert!(undeclared.requests.is_empty(), "{undeclared}");
    assert!(
        undeclared.stderr.contains(
            "/opt/krobs/scripts/undeclared_library.sc imports `com.typesafe:config:1.4.3` \
             (`import $ivy`), which the image does not hold: a krob never downloads at run time; \
             add it to languages/scala/dependencies.sc and re-lock with lock.sc (README, \"Scala\")"
        ),
        "{undeclared}"
    );
}

#[test]
fn scala_krobs_run_in_their_image() {
    let lab = Lab::publish_with("scala", with_scala_library);
    check_libraries(&lab);
    check_undrain_node(&lab);
    check_delete_old_indices(&lab);
    lab.check_events_schema();
    lab.p.assert_no_secrets();
}
