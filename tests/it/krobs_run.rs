//! `krobs-run` (runtime/krobs-run), the entrypoint of every krob, run as the container's PID 1
//! in the Debian bases of every runtime (`tests/run.sh` makes them), as `render` runs a krob:
//! non-root, read-only root file system, a writable `/tmp`, against the recording monitor of
//! tests/it/support on 127.0.0.1 (`--network host`). Every event is checked against
//! schema/monitor-event-v1.schema.json with `check-jsonschema`.
//!
//! The language libraries' `message`/`metric` are run the same way, in their runtime's base.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::monitor::FakeMonitor;
use crate::support::services::{debian_base, debian_bases, describe, free_port, require_services};
use serde_json::{json, Value};

const ENTRYPOINT: &str = "/opt/krobs/bin/krobs-run";

fn project(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

// -------------------------------------------------------------------------------------------------
// The monitor
// -------------------------------------------------------------------------------------------------

/// The recording monitor of tests/it/support (200 to every POST), with what every event of
/// krobs-run must look like on the wire: a JSON POST to the URL's path.
struct Monitor(FakeMonitor);

impl Monitor {
    fn start() -> Monitor {
        Monitor(FakeMonitor::start())
    }

    fn url(&self) -> String {
        self.0.url()
    }

    /// Waits until `count` `start` events arrived. krobs-run posts `start` in the background
    /// and, after a signal, stops that post rather than wait for it (the shutdown budget), so
    /// a test about signals first lets the run's `start` land.
    fn wait_for_starts(&self, count: usize) {
        let end = Instant::now() + Duration::from_secs(30);
        while kinds(&self.events())
            .iter()
            .filter(|k| **k == "start")
            .count()
            < count
        {
            assert!(Instant::now() < end, "no `start` event within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn events(&self) -> Vec<Value> {
        let posted = self.0.events();
        for p in &posted {
            assert_eq!(
                (
                    p.method.as_str(),
                    p.path.as_str(),
                    p.content_type.as_deref()
                ),
                ("POST", "/events", Some("application/json")),
                "{p:?}"
            );
            assert!(
                !p.body.is_string(),
                "the monitor got a body that is not JSON: {p:?}"
            );
        }
        posted.into_iter().map(|p| p.body).collect()
    }
}

/// A monitor that accepts connections and never answers (not HTTP at all: std is enough).
struct Hanging {
    addr: String,
    accepted: Arc<AtomicUsize>,
}

impl Hanging {
    fn start() -> Hanging {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        Hanging { addr, accepted }
    }
}

// -------------------------------------------------------------------------------------------------
// Containers
// -------------------------------------------------------------------------------------------------

fn docker(args: &[&str]) -> Output {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    let out = cmd.output().expect("run docker");
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    out
}

/// A container running `krobs-run --id test/krob -- command...` as render runs a krob.
struct Krob {
    id: String,
    started: Instant,
}

struct Ended {
    code: i64,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.took, self.stdout, self.stderr
        )
    }
}

impl Krob {
    fn start(image: &str, env: &[(&str, &str)], command: &[&str]) -> Krob {
        let entrypoint = project("runtime/krobs-run");
        let lib = project("languages");
        let mount = format!("{}:{ENTRYPOINT}:ro", entrypoint.display());
        let libs = format!("{}:/opt/krobs/languages:ro", lib.display());
        let mut args = vec![
            "run",
            "-d",
            "--network",
            "host",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--user",
            "10001:10001",
            "-v",
            &mount,
            "-v",
            &libs,
        ];
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for e in &env {
            args.extend(["-e", e.as_str()]);
        }
        args.extend([image, ENTRYPOINT, "--id", "test/krob", "--"]);
        args.extend(command);
        let out = docker(&args);
        Krob {
            id: String::from_utf8(out.stdout).unwrap().trim().to_string(),
            started: Instant::now(),
        }
    }

    /// The container's log so far.
    fn logs(&self) -> (String, String) {
        let out = docker(&["logs", &self.id]);
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Waits until its stdout holds `text`.
    fn wait_for_output(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.logs().0.contains(text) {
            assert!(
                Instant::now() < deadline,
                "no `{text}` in {:?}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait(self) -> Ended {
        let out = docker(&["wait", &self.id]);
        let took = self.started.elapsed();
        let code = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let (stdout, stderr) = self.logs();
        Ended {
            code,
            stdout,
            stderr,
            took,
        }
    }
}

impl Drop for Krob {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

fn run(image: &str, env: &[(&str, &str)], command: &[&str]) -> Ended {
    Krob::start(image, env, command).wait()
}

// -------------------------------------------------------------------------------------------------
// Checks
// -------------------------------------------------------------------------------------------------

/// Every event valid against the published schema (one check-jsonschema run for all).
fn assert_schema_valid(events: &[Value]) {
    assert!(!events.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("check-jsonschema");
    cmd.arg("--schemafile")
        .arg(project("schema/monitor-event-v1.schema.json"));
    for (i, e) in events.iter().enumerate() {
        let path = dir.path().join(format!("event-{i}.json"));
        std::fs::write(&path, serde_json::to_vec(e).unwrap()).unwrap();
        cmd.arg(path);
    }
    let out = cmd.output().expect("run check-jsonschema");
    assert!(
        out.status.success(),
        "{}\n{events:#?}",
        describe(&cmd, &out)
    );
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

fn tail(event: &Value) -> Vec<&str> {
    event["output_tail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect()
}

/// The events krobs-run printed on stderr (`krobs-run: monitor: <json>`).
fn stderr_events(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("krobs-run: monitor: "))
        .map(|j| serde_json::from_str(j).unwrap_or_else(|e| panic!("{e}: {j}")))
        .collect()
}

// -------------------------------------------------------------------------------------------------
// The tests
// -------------------------------------------------------------------------------------------------

/// On every runtime: start then finish or failure, with the exit code passed through (0, 3,
/// and 137 for a command killed by SIGKILL), the signal, the duration, the tail of both
/// streams and the id the command was told.
#[test]
fn events_and_exit_codes_on_every_debian_runtime() {
    require_services();
    let mut all = Vec::new();
    for (var, image) in debian_bases() {
        let monitor = Monitor::start();
        let url = monitor.url();
        let env = [("KROBS_MONITOR_URL", url.as_str())];
        let ok = run(
            &image,
            &env,
            &[
                "bash",
                "-c",
                "echo \"id=$KROBS_ID\"; sleep 0.5; echo to-stderr >&2; sleep 1",
            ],
        );
        assert_eq!(ok.code, 0, "{var}: {ok}");
        assert!(ok.stdout.contains("id=test/krob"), "{var}: {ok}");
        assert!(ok.stderr.contains("to-stderr"), "{var}: {ok}");
        let failed = run(&image, &env, &["bash", "-c", "echo working; exit 3"]);
        assert_eq!(failed.code, 3, "{var}: {failed}");
        let killed = run(&image, &env, &["bash", "-c", "echo dying; kill -KILL $$"]);
        assert_eq!(killed.code, 137, "{var}: {killed}");

        let events = monitor.events();
        assert_eq!(
            kinds(&events),
            ["start", "finish", "start", "failure", "start", "failure"],
            "{var}: {events:#?}"
        );
        for e in &events {
            assert_eq!(e["version"], 1);
            assert_eq!(e["krob"], "test/krob", "{e}");
            assert!(e["host"].as_str().is_some_and(|h| !h.is_empty()), "{e}");
        }
        assert_eq!(
            events[0]["command"],
            json!([
                "bash",
                "-c",
                "echo \"id=$KROBS_ID\"; sleep 0.5; echo to-stderr >&2; sleep 1"
            ])
        );
        let finish = &events[1];
        assert_eq!(
            (&finish["exit_code"], &finish["signal"]),
            (&json!(0), &Value::Null)
        );
        let duration = finish["duration_seconds"].as_f64().unwrap();
        assert!((1.0..30.0).contains(&duration), "{finish}");
        assert_eq!(tail(finish), ["id=test/krob", "to-stderr"], "{var}");
        assert_eq!(
            (&events[3]["exit_code"], &events[3]["signal"]),
            (&json!(3), &Value::Null)
        );
        assert_eq!(tail(&events[3]), ["working"]);
        assert_eq!(
            (&events[5]["exit_code"], &events[5]["signal"]),
            (&json!(137), &json!("KILL"))
        );
        all.extend(events);
    }
    assert_schema_valid(&all);
}

/// SIGTERM (the Job's deadline, an eviction) reaches the command at once; one that ignores it
/// is killed after KROBS_GRACE_SECONDS; either way `failure` with signal TERM and exit 143.
#[test]
fn sigterm_is_forwarded_and_a_command_ignoring_it_is_killed_after_the_grace() {
    require_services();
    let mut all = Vec::new();
    for (var, image) in debian_bases() {
        let monitor = Monitor::start();
        let url = monitor.url();
        let env = [
            ("KROBS_MONITOR_URL", url.as_str()),
            ("KROBS_GRACE_SECONDS", "3"),
        ];
        let polite = Krob::start(
            &image,
            &env,
            &[
                "bash",
                "-c",
                "trap 'echo got TERM; exit 1' TERM; echo ready; sleep 300 & wait",
            ],
        );
        polite.wait_for_output("ready");
        monitor.wait_for_starts(1);
        docker(&["kill", "--signal", "TERM", &polite.id]);
        let polite = polite.wait();
        assert_eq!(polite.code, 143, "{var}: {polite}");
        assert!(polite.stdout.contains("got TERM"), "{var}: {polite}");
        assert!(polite.took < Duration::from_secs(60), "{var}: {polite}");

        let stubborn = Krob::start(
            &image,
            &env,
            &["bash", "-c", "trap '' TERM; echo ready; sleep 300"],
        );
        stubborn.wait_for_output("ready");
        monitor.wait_for_starts(2);
        let stopping = Instant::now();
        docker(&["stop", "--time", "60", &stubborn.id]);
        let stopped = stopping.elapsed();
        let stubborn = stubborn.wait();
        assert_eq!(stubborn.code, 143, "{var}: {stubborn}");
        assert!(
            stopped >= Duration::from_secs(3) && stopped < Duration::from_secs(30),
            "{var}: stopped in {stopped:?}, the grace is 3 s: {stubborn}"
        );
        assert!(
            stubborn
                .stderr
                .contains("krobs-run: the command did not stop within 3s of SIGTERM: killing it"),
            "{var}: {stubborn}"
        );

        let events = monitor.events();
        assert_eq!(
            kinds(&events),
            ["start", "failure", "start", "failure"],
            "{var}"
        );
        for failure in [&events[1], &events[3]] {
            assert_eq!(
                (&failure["exit_code"], &failure["signal"]),
                (&json!(143), &json!("TERM")),
                "{var}: {failure}"
            );
        }
        assert_eq!(tail(&events[1]), ["ready", "got TERM"], "{var}");
        assert_eq!(tail(&events[3]), ["ready"], "{var}");
        all.extend(events);
    }
    assert_schema_valid(&all);
}

/// A monitor that refuses connections, or accepts them and never answers, costs at most 3
/// bounded attempts per event: the job still ends, with the command's exit code.
#[test]
fn a_monitor_down_or_hanging_never_changes_the_exit_code_or_hangs_the_job() {
    require_services();
    let image = debian_base("KROBS_TEST_BASE_JRE");
    let refused = format!("http://127.0.0.1:{}/events", free_port());
    let down = run(
        &image,
        &[("KROBS_MONITOR_URL", refused.as_str())],
        &["bash", "-c", "echo done; exit 3"],
    );
    assert_eq!(down.code, 3, "{down}");
    // Two events, each 3 refused attempts 1 s then 2 s apart.
    assert!(down.took < Duration::from_secs(30), "{down}");
    assert!(
        down.stderr
            .contains("krobs-run: cannot connect to the monitor for the failure event (3 attempts); carrying on"),
        "{down}"
    );

    let hanging = Hanging::start();
    let url = format!("http://{}/events", hanging.addr);
    let slow = run(
        &image,
        &[
            ("KROBS_MONITOR_URL", url.as_str()),
            ("KROBS_MONITOR_TIMEOUT_SECONDS", "1"),
        ],
        &["bash", "-c", "echo done; exit 3"],
    );
    assert_eq!(slow.code, 3, "{slow}");
    // Two events, each 3 attempts of at most 1 s (and 1 s to kill), 1 s then 2 s apart.
    assert!(
        slow.took >= Duration::from_secs(6) && slow.took < Duration::from_secs(40),
        "{slow}"
    );
    assert_eq!(hanging.accepted.load(Ordering::SeqCst), 6, "{slow}");
    assert!(
        slow.stderr.contains(
            "krobs-run: monitor did not answer the start event within 1s (3 attempts); carrying on"
        ),
        "{slow}"
    );
}

/// Without KROBS_MONITOR_URL the events are printed on stderr, one line each, and still valid.
#[test]
fn without_a_monitor_url_the_events_go_to_stderr() {
    require_services();
    let image = debian_base("KROBS_TEST_BASE_PYTHON");
    let ended = run(
        &image,
        &[],
        &["python3", "-c", "print('hello from python')"],
    );
    assert_eq!(ended.code, 0, "{ended}");
    let events = stderr_events(&ended.stderr);
    assert_eq!(kinds(&events), ["start", "finish"], "{ended}");
    assert_eq!(tail(&events[1]), ["hello from python"]);
    assert_schema_valid(&events);
}

/// Invalid UTF-8, control characters, quotes, NUL bytes, lines of a megabyte and thousands of
/// lines: the tail holds the last 20 lines, each at most 512 bytes of valid UTF-8, and the
/// event stays valid JSON.
#[test]
fn the_output_tail_is_bounded_valid_utf8_whatever_the_output() {
    require_services();
    let image = debian_base("KROBS_TEST_BASE_BASH");
    let monitor = Monitor::start();
    let url = monitor.url();
    let script = r#"
for i in $(seq 1 5000); do echo "line $i"; done
head -c 1048576 /dev/zero | tr '\0' x; echo
printf 'bad \xff\xfe bytes, \xc3 cut, ctl \x01\x1b[31m, tab\tquote" backslash\\ nul\0end\n'
printf 'caf\xc3\xa9 \xe2\x9c\x93\n'
printf '%0511d\xc3\xa9 and more\n' 0
printf 'no newline at the end'
exit 7
"#;
    let ended = run(
        &image,
        &[("KROBS_MONITOR_URL", url.as_str())],
        &["bash", "-c", script],
    );
    assert_eq!(ended.code, 7, "{ended}");
    assert!(
        ended.stdout.contains("line 5000\n"),
        "output flows unchanged"
    );
    let events = monitor.events();
    assert_eq!(kinds(&events), ["start", "failure"]);
    let lines = tail(&events[1]);
    assert_eq!(lines.len(), 20, "{lines:?}");
    assert_eq!(
        lines[..15],
        (4986..=5000)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()[..]
    );
    assert_eq!(lines[15], "x".repeat(512));
    assert_eq!(
        lines[16],
        "bad  bytes,  cut, ctl \u{1}\u{1b}[31m, tab\tquote\" backslash\\ nulend"
    );
    assert_eq!(lines[17], "café ✓");
    assert_eq!(
        lines[18],
        "0".repeat(511),
        "a character cut at 512 bytes is dropped"
    );
    assert_eq!(lines[19], "no newline at the end");
    assert!(lines.iter().all(|l| l.len() <= 512));
    assert_schema_valid(&events);
}

/// As PID 1 it reaps the orphans the command leaves (no zombies), and a process the command
/// left running holding its output neither delays the end nor empties the tail.
#[test]
fn orphans_are_reaped_and_leftovers_do_not_hold_the_job() {
    require_services();
    let image = debian_base("KROBS_TEST_BASE_RUBY");
    let monitor = Monitor::start();
    let url = monitor.url();
    let script = "for i in 1 2 3 4 5; do (sleep 0.1 &); done; sleep 300 & sleep 1; \
                  echo zombies=$(grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l)";
    let ended = run(
        &image,
        &[("KROBS_MONITOR_URL", url.as_str())],
        &["bash", "-c", script],
    );
    assert_eq!(ended.code, 0, "{ended}");
    assert!(ended.took < Duration::from_secs(20), "{ended}");
    let events = monitor.events();
    assert_eq!(kinds(&events), ["start", "finish"]);
    assert_eq!(tail(&events[1]), ["zombies=0"], "{ended}");
}

/// Arguments it cannot use: one line saying what is wrong and how to call it, exit 2, no event.
#[test]
fn a_bad_command_line_is_one_usage_line() {
    require_services();
    let image = debian_base("KROBS_TEST_BASE_BASH");
    let entrypoint = project("runtime/krobs-run");
    let mount = format!("{}:{ENTRYPOINT}:ro", entrypoint.display());
    for (args, why) in [
        (&["python3", "x.py"][..], "expected `--id` first"),
        (
            &["--id", "Python/X", "--", "true"][..],
            "the id `Python/X` is not <language>/<name> (lowercase letters, digits, `-`, `_`)",
        ),
        (
            &["--id", "python/x", "true"][..],
            "expected `--` after the id",
        ),
        (&["--id", "python/x", "--"][..], "no command after `--`"),
    ] {
        let mut cmd = Command::new("docker");
        cmd.args([
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "10001:10001",
            "-v",
            &mount,
        ])
        .arg(&image)
        .arg(ENTRYPOINT)
        .args(args);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", describe(&cmd, &out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("krobs-run"))
            .collect();
        assert_eq!(
            ours,
            [format!(
                "krobs-run: {why}; usage: krobs-run --id <language>/<name> -- COMMAND [ARG...]"
            )],
            "{}",
            describe(&cmd, &out)
        );
    }
}

/// `message` and `metric` of the Python, Ruby and Bash libraries, run by krobs-run in their
/// runtime's base: schema-valid events under the krob's id; with the monitor down they return
/// (never raise) within bounded time.
#[test]
fn message_and_metric_from_each_language_library_are_valid_events() {
    require_services();
    let cases: [(&str, &[&str]); 3] = [
        (
            "KROBS_TEST_BASE_PYTHON",
            &[
                "python3",
                "-c",
                "import sys; sys.path.insert(0, '/opt/krobs/languages/python/lib')\n\
                 import krobs_monitor as k\n\
                 k.message('merged 2 indices \\u00e9 \"q\"', {'indices': ['a', 'b'], 'n': 2})\n\
                 k.metric('krobs.indices_merged', 2, 'count', {'cluster': 'main'})\n\
                 k.metric('krobs.ratio', 0.25)\n\
                 print('lib done')",
            ],
        ),
        (
            "KROBS_TEST_BASE_RUBY",
            &[
                "ruby",
                "-I/opt/krobs/languages/ruby/lib",
                "-rkrobs_monitor",
                "-e",
                "Krobs.message(\"merged 2 indices \\u00e9 \\\"q\\\"\", { \"indices\" => %w[a b], \"n\" => 2 })\n\
                 Krobs.metric(\"krobs.indices_merged\", 2, \"count\", { \"cluster\" => \"main\" })\n\
                 Krobs.metric(\"krobs.ratio\", 0.25)\n\
                 puts \"lib done\"",
            ],
        ),
        (
            "KROBS_TEST_BASE_BASH",
            &[
                "bash",
                "-c",
                "set -euo pipefail; . /opt/krobs/languages/bash/lib/krobs_monitor.sh\n\
                 krobs_message 'merged 2 indices é \"q\"' '{\"indices\":[\"a\",\"b\"],\"n\":2}'\n\
                 krobs_metric krobs.indices_merged 2 count '{\"cluster\":\"main\"}'\n\
                 krobs_metric krobs.ratio 0.25\n\
                 echo lib done",
            ],
        ),
    ];
    let mut all = Vec::new();
    for (var, command) in cases {
        let image = debian_base(var);
        let monitor = Monitor::start();
        let url = monitor.url();
        let ended = run(&image, &[("KROBS_MONITOR_URL", url.as_str())], command);
        assert_eq!(ended.code, 0, "{var}: {ended}");
        let mut events = monitor.events();
        // `start` is sent while the command runs, so what the script sends itself may come
        // first; the outcome always comes last, and the script's own events in their order.
        let start = kinds(&events).iter().position(|k| *k == "start");
        let start = events.remove(start.unwrap_or_else(|| panic!("{var}: no start: {ended}")));
        events.insert(0, start);
        assert_eq!(
            kinds(&events),
            ["start", "message", "metric", "metric", "finish"],
            "{var}: {ended}"
        );
        for e in &events {
            assert_eq!(e["krob"], "test/krob", "{var}: {e}");
        }
        assert_eq!(events[1]["text"], "merged 2 indices é \"q\"", "{var}");
        assert_eq!(
            events[1]["details"],
            json!({"indices": ["a", "b"], "n": 2}),
            "{var}"
        );
        assert_eq!(
            events[2]["metric"],
            json!({"name": "krobs.indices_merged", "value": 2, "type": "count", "tags": {"cluster": "main"}}),
            "{var}"
        );
        assert_eq!(
            events[3]["metric"],
            json!({"name": "krobs.ratio", "value": 0.25, "type": "gauge", "tags": {}}),
            "{var}"
        );
        all.extend(events);

        // The monitor down: the calls return, the script goes on and exits 0.
        let refused = format!("http://127.0.0.1:{}/events", free_port());
        let down = run(
            &image,
            &[
                ("KROBS_MONITOR_URL", refused.as_str()),
                ("KROBS_MONITOR_TIMEOUT_SECONDS", "1"),
            ],
            command,
        );
        assert_eq!(down.code, 0, "{var}: {down}");
        assert!(down.stdout.contains("lib done"), "{var}: {down}");
        assert!(down.took < Duration::from_secs(90), "{var}: {down}");
    }
    assert_schema_valid(&all);
}

/// The command starts at once, whatever the monitor does: against a monitor that accepts
/// connections and never answers, the command's first line comes within a second of krobs-run
/// starting (`start` is sent while the command runs), and the run still ends with the
/// command's exit code.
#[test]
fn the_command_starts_at_once_against_a_monitor_that_never_answers() {
    require_services();
    let image = debian_base("KROBS_TEST_BASE_BASH");
    let hanging = Hanging::start();
    let url = format!("http://{}/events", hanging.addr);
    let entrypoint = project("runtime/krobs-run");
    let mount = format!("{}:{ENTRYPOINT}:ro", entrypoint.display());
    let monitor = format!("KROBS_MONITOR_URL={url}");
    let out = docker(&[
        "run",
        "-d",
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--user",
        "10001:10001",
        "-v",
        &mount,
        "-e",
        &monitor,
        "-e",
        "KROBS_MONITOR_TIMEOUT_SECONDS=2",
        &image,
        "bash",
        "-c",
        &format!(
            "echo \"before $EPOCHREALTIME\"; exec {ENTRYPOINT} --id test/krob -- bash -c 'echo \"started $EPOCHREALTIME\"; exit 4'"
        ),
    ]);
    let krob = Krob {
        id: String::from_utf8(out.stdout).unwrap().trim().to_string(),
        started: Instant::now(),
    };
    let ended = krob.wait();
    assert_eq!(ended.code, 4, "{ended}");
    let at = |word: &str| -> f64 {
        ended
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{word} ")))
            .unwrap_or_else(|| panic!("no `{word}` line: {ended}"))
            .parse()
            .unwrap()
    };
    let delay = at("started") - at("before");
    assert!(
        (0.0..1.0).contains(&delay),
        "the command started {delay:.3} s after krobs-run: {ended}"
    );
    // The monitor was asked (and never answered) for both events, each attempt bounded.
    assert!(hanging.accepted.load(Ordering::SeqCst) >= 2, "{ended}");
    assert!(
        ended.stderr.contains(
            "krobs-run: monitor did not answer the start event within 2s (3 attempts); carrying on"
        ),
        "{ended}"
    );
}

/// The worst shutdown, a command that ignores SIGTERM and a monitor that never answers, ends
/// within the grace and the 15 s render adds to it for the tail and the failure report
/// (`terminationGracePeriodSeconds` = `KROBS_GRACE_SECONDS` + 15), so the kubelet never
/// kills krobs-run before it reports.
#[test]
fn the_worst_shutdown_fits_in_the_termination_grace_period() {
    require_services();
    let image = debian_base("KROBS_TEST_BASE_BASH");
    let hanging = Hanging::start();
    let url = format!("http://{}/events", hanging.addr);
    let grace = 3;
    let krob = Krob::start(
        &image,
        &[
            ("KROBS_MONITOR_URL", url.as_str()),
            ("KROBS_GRACE_SECONDS", &grace.to_string()),
        ],
        &["bash", "-c", "trap '' TERM; echo ready; sleep 300"],
    );
    krob.wait_for_output("ready");
    let stopping = Instant::now();
    docker(&["stop", "--time", "120", &krob.id]);
    let stopped = stopping.elapsed();
    let ended = krob.wait();
    assert_eq!(ended.code, 143, "{ended}");
    assert!(
        stopped >= Duration::from_secs(grace) && stopped < Duration::from_secs(grace + 15),
        "stopped in {stopped:?} with a grace of {grace} s: {ended}"
    );
    assert!(
        ended
            .stderr
            .contains("krobs-run: monitor did not answer the failure event within 2s (2 attempts); carrying on"),
        "{ended}"
    );
}
