//! `krobs-build lint --syntax`: each script's language check, run inside its language's
//! runtime image (built from its Dockerfile by the Docker Engine, reused when the Engine has
//! it), in a container with no network, a non-root user, a read-only root file system and a
//! tmpfs `/tmp`, bounded in time and output. Errors come back as `path:line: message`.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use regex::Regex;

use crate::docker::build::{self, BuildRequest, DockerError};
use crate::input::config::Config;
use crate::input::problem::Problem;
use crate::plan;
use crate::plan::digest::{self, DigestError};
use crate::plan::discover::{Inventory, Language, SCRIPTS_DIR};

/// How long one script's check may run.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of a check's output is read.
pub const OUTPUT_LIMIT: usize = 64 * 1024;
/// The user the checks run as.
pub const CHECK_USER: &str = "10001:10001";
/// The most script bytes of one language sent to its check (the archive is held in memory to
/// be sent to each check's container; no script a reviewer can read comes near it).
pub const SCRIPTS_LIMIT: u64 = 16 << 20;

/// Python's check: compile in memory (no bytecode written), one `path:line: message` line.
const PYTHON_CHECK: &str = "import sys
path = sys.argv[1]
with open(path, 'rb') as f:
    source = f.read()
try:
    compile(source, path, 'exec', dont_inherit=True)
except SyntaxError as e:
    print(f'{path}:{e.lineno or 1}: {e.msg}', file=sys.stderr)
    sys.exit(1)
except ValueError as e:
    print(f'{path}:1: {e}', file=sys.stderr)
    sys.exit(1)
";

#[derive(Debug, thiserror::Error)]
pub enum SyntaxCheckError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("cannot read `{path}` to send it to the syntax check: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("`{path}` holds more than {} MiB of scripts: `lint --syntax` checks at most that much per language; remove or split what no reviewer can read", SCRIPTS_LIMIT >> 20)]
    TooLarge { path: String },
}

/// What the checks found.
#[derive(Debug, Default)]
pub struct SyntaxReport {
    /// The ids of the scripts checked.
    pub checked: Vec<String>,
    /// Syntax errors, and checks that failed without saying where.
    pub problems: Vec<Problem>,
    /// Languages not checked, and why: `<language>: syntax not checked: <why>`.
    pub notes: Vec<String>,
}

/// The check of a language: `[languages.x] syntax_check`, else the default for its name, else
/// why there is none.
pub fn check_command(config: &Config, language: &str) -> Result<Vec<String>, String> {
    if let Some(check) = config
        .languages
        .get(language)
        .and_then(|l| l.syntax_check.clone())
    {
        return Ok(check);
    }
    let words: &[&str] = match language {
        "python" => &["python3", "-c", PYTHON_CHECK, "{script}"],
        "ruby" => &["ruby", "-c", "{script}"],
        "bash" => &["bash", "-n", "{script}"],
        "sh" => &["sh", "-n", "{script}"],
        // The Scala compiler Ammonite runs on, from the shipped runtime's class path, parsing
        // the script as a script (top-level statements) and stopping after the parser.
        "scala" => &[
            "java",
            "-XX:TieredStopAtLevel=1",
            "-cp",
            "/opt/ammonite/lib/*",
            "scala.tools.nsc.Main",
            "-usejavacp",
            "-Xscript",
            "Krob",
            "-Ystop-after:parser",
            "{script}",
        ],
        _ => {
            return Err(format!(
                "no check is known for it; set `[languages.{language}] syntax_check` in krobs.toml"
            ))
        }
    };
    Ok(words.iter().map(|w| w.to_string()).collect())
}

/// Checks every script of the inventory.
pub async fn check(
    config: &Config,
    inventory: &Inventory,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<SyntaxReport, SyntaxCheckError> {
    let mut report = SyntaxReport::default();
    let mut docker: Option<Docker> = None;
    for language in &inventory.languages {
        let scripts: Vec<_> = inventory
            .scripts
            .iter()
            .filter(|s| s.language == language.name)
            .collect();
        if scripts.is_empty() {
            continue;
        }
        let command = match check_command(config, &language.name) {
            Ok(c) => c,
            Err(why) => {
                report
                    .notes
                    .push(format!("{}: syntax not checked: {why}", language.name));
                continue;
            }
        };
        let tar = scripts_tar(language)?;
        let docker = match &docker {
            Some(d) => d,
            None => docker.insert(build::connect().await?),
        };
        let image =
            runtime_image(docker, language, config.build.network.as_deref(), progress).await?;
        for script in scripts {
            progress(&format!("[{}] checking {}", language.name, script.path));
            let cmd: Vec<String> = command
                .iter()
                .map(|w| w.replace("{script}", &script.image_path))
                .collect();
            let outcome = run_check(docker, &language.name, &image, language, &cmd, &tar).await?;
            report.problems.extend(problems_of(
                &outcome,
                &script.path,
                &script.image_path,
                &cmd[0],
            ));
            report.checked.push(script.id.clone());
        }
    }
    Ok(report)
}

/// The language's runtime, built from its Dockerfile (the Engine's cache makes a rebuild
/// cheap; an image already tagged with the runtime's digest is used as it is).
async fn runtime_image(
    docker: &Docker,
    language: &Language,
    network: Option<&str>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<String, SyntaxCheckError> {
    let context = plan::runtime_context(&language.context);
    let runtime = digest::compute(&context, &language.inputs)?;
    let image = format!("krobs-syntax/{}:{}", language.name, runtime.runtime_tag());
    if build::has_image(docker, &image).await {
        return Ok(image);
    }
    progress(&format!("[{}] building the runtime {image}", language.name));
    build::build(
        docker,
        BuildRequest {
            language: &language.name,
            context: &context,
            image: image.clone(),
            build_args: language.inputs.build_args.clone().into_iter().collect(),
            platform: language.inputs.platform.clone(),
            cache_from: Vec::new(),
            target: language.inputs.target.clone(),
            network: network.map(str::to_string),
        },
        &|_| {},
    )
    .await?;
    Ok(image)
}

/// The language's `scripts/` as a tar of paths relative to it: sorted, mtime 0, owner 0,
/// modes 0755/0644.
fn scripts_tar(language: &Language) -> Result<Vec<u8>, SyntaxCheckError> {
    let prefix = format!("{SCRIPTS_DIR}/");
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    let read_err = |rel: &str, cause| SyntaxCheckError::Read {
        path: format!("{}/{rel}", language.dir),
        cause,
    };
    let too_large = || SyntaxCheckError::TooLarge {
        path: format!("{}/{SCRIPTS_DIR}", language.dir),
    };
    let mut left = SCRIPTS_LIMIT;
    for entry in &language.context.entries {
        let Some(rel) = entry.rel.strip_prefix(&prefix) else {
            continue;
        };
        // counted at the size each file has when opened: what is sent is what is counted
        match entry.append_to(&mut tar, rel, left) {
            Ok(size) => left -= size,
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => return Err(too_large()),
            Err(e) => return Err(read_err(&entry.rel, e)),
        }
    }
    tar.into_inner().map_err(|e| read_err("", e))
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `None` when it was stopped for running too long.
    pub exit_code: Option<i64>,
    /// stdout and stderr, interleaved, at most [`OUTPUT_LIMIT`] bytes.
    pub output: String,
}

async fn run_check(
    docker: &Docker,
    name: &str,
    image: &str,
    language: &Language,
    cmd: &[String],
    tar: &[u8],
) -> Result<Outcome, SyntaxCheckError> {
    let api = |call: &'static str| {
        move |e: bollard::errors::Error| DockerError::Api {
            language: name.to_string(),
            call,
            cause: crate::docker::host::chain(&e),
        }
    };
    let body = check_container(name, image, language, cmd);
    let created = docker
        .create_container(Some(CreateContainerOptionsBuilder::new().build()), body)
        .await
        .map_err(api("create_container"))?;
    let id = created.id;
    let result = async {
        docker
            .upload_to_container(
                &id,
                Some(
                    UploadToContainerOptionsBuilder::new()
                        .path(&language.image_scripts_dir)
                        .build(),
                ),
                bollard::body_full(tar.to_vec().into()),
            )
            .await
            .map_err(api("upload_to_container"))?;
        docker
            .start_container(&id, None)
            .await
            .map_err(api("start_container"))?;
        let mut wait = docker.wait_container(&id, None);
        let exit_code = match tokio::time::timeout(CHECK_TIMEOUT, wait.next()).await {
            Err(_) => None,
            Ok(Some(Ok(r))) => Some(r.status_code),
            // A non-zero exit comes back as an error carrying the code.
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => {
                Some(code)
            }
            Ok(Some(Err(e))) => return Err(api("wait_container")(e)),
            Ok(None) => None,
        };
        drop(wait);
        let output = read_logs(docker, &id).await.map_err(api("logs"))?;
        Ok(Outcome { exit_code, output })
    }
    .await;
    // Removed (and its volume with it) whatever happened, killed first if still running.
    let _ = docker
        .remove_container(
            &id,
            Some(
                RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build(),
            ),
        )
        .await;
    result.map_err(SyntaxCheckError::from)
}

/// The container a check runs in: the check's command as its entrypoint, no network, the
/// check user, a read-only root with a small `/tmp`, no capabilities, bounded memory, processes
/// and logs.
fn check_container(
    name: &str,
    image: &str,
    language: &Language,
    cmd: &[String],
) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(vec![cmd[0].clone()]),
        cmd: Some(cmd[1..].to_vec()),
        user: Some(CHECK_USER.to_string()),
        env: Some(vec![
            "HOME=/tmp".to_string(),
            "PYTHONDONTWRITEBYTECODE=1".to_string(),
        ]),
        working_dir: Some("/tmp".to_string()),
        network_disabled: Some(true),
        // Where the scripts go: an anonymous volume, the one place of a read-only container
        // the Engine extracts an archive into.
        volumes: Some(vec![language.image_scripts_dir.clone()]),
        labels: Some(HashMap::from([(
            "dev.krobs.syntax-check".to_string(),
            name.to_string(),
        )])),
        host_config: Some(HostConfig {
            network_mode: Some("none".to_string()),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_string(),
                "rw,nosuid,nodev,size=64m".to_string(),
            )])),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            memory: Some(512 * 1024 * 1024),
            pids_limit: Some(256),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_string()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), "1m".to_string()),
                    ("max-file".to_string(), "1".to_string()),
                ])),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn read_logs(docker: &Docker, id: &str) -> Result<String, bollard::errors::Error> {
    let mut logs = docker.logs(
        id,
        Some(
            LogsOptionsBuilder::new()
                .stdout(true)
                .stderr(true)
                .follow(false)
                .build(),
        ),
    );
    let mut out: Vec<u8> = Vec::new();
    while let Some(item) = logs.next().await {
        let bytes = item?.into_bytes();
        let room = OUTPUT_LIMIT.saturating_sub(out.len());
        out.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if out.len() >= OUTPUT_LIMIT {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

static LINE_COLON: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^:(\d+):\s*(.*)$").expect("valid regex"));
static LINE_WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^: line (\d+): (.*)$").expect("valid regex"));

/// The problems a check's outcome tells of: one per line the check names (`<image path>:N:
/// message`, or bash's `<image path>: line N: message`), first message of each line; a
/// failure that names no line is one problem for the file.
pub fn problems_of(outcome: &Outcome, path: &str, image_path: &str, program: &str) -> Vec<Problem> {
    let code = match outcome.exit_code {
        Some(0) => return Vec::new(),
        None => {
            return vec![Problem::new(
                path,
                format!(
                    "the syntax check (`{program}`) did not finish in {} s",
                    CHECK_TIMEOUT.as_secs()
                ),
            )]
        }
        Some(code) => code,
    };
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for line in outcome.output.lines() {
        let Some(rest) = line.trim_end().strip_prefix(image_path) else {
            continue;
        };
        let Some(caps) = LINE_COLON
            .captures(rest)
            .or_else(|| LINE_WORD.captures(rest))
        else {
            continue;
        };
        let Ok(n) = caps[1].parse::<usize>() else {
            continue;
        };
        if seen.insert(n) {
            // compilers (scalac) put the severity first: `path:N: error: message`
            let message = caps[2].trim();
            let message = message.strip_prefix("error: ").unwrap_or(message);
            problems.push(Problem::at(path, n.max(1), message.to_string()));
        }
    }
    if problems.is_empty() {
        let last = outcome
            .output
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("no output");
        let last: String = last.chars().take(300).collect();
        problems.push(Problem::new(
            path,
            format!("the syntax check (`{program}`) failed with exit code {code}: {last}"),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(code: i64, output: &str) -> Outcome {
        Outcome {
            exit_code: Some(code),
            output: output.to_string(),
        }
    }

    const P: &str = "languages/bash/scripts/x.sh";
    const I: &str = "/opt/krobs/scripts/x.sh";

    #[test]
    fn errors_become_path_line_message_once_per_line() {
        let bash = "/opt/krobs/scripts/x.sh: line 4: syntax error near unexpected token `fi'\n/opt/krobs/scripts/x.sh: line 4: `fi'\n";
        assert_eq!(
            problems_of(&outcome(2, bash), P, I, "bash")
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["languages/bash/scripts/x.sh:4: syntax error near unexpected token `fi'"]
        );
        let ruby = "/opt/krobs/scripts/x.sh:7: syntax error, unexpected end-of-input\n";
        assert_eq!(
            problems_of(&outcome(1, ruby), P, I, "ruby")[0].to_string(),
            "languages/bash/scripts/x.sh:7: syntax error, unexpected end-of-input"
        );
        assert!(problems_of(&outcome(0, ruby), P, I, "ruby").is_empty());
        let scalac = "/opt/krobs/scripts/x.sh:8: error: '}' expected but eof found.\n  run {\n      ^\n1 error\n";
        assert_eq!(
            problems_of(&outcome(1, scalac), P, I, "java")[0].to_string(),
            "languages/bash/scripts/x.sh:8: '}' expected but eof found."
        );
    }

    #[test]
    fn a_failure_without_a_line_or_in_time_is_one_problem() {
        assert_eq!(
            problems_of(&outcome(127, "exec: \"nope\": not found\n\n"), P, I, "nope")[0]
                .to_string(),
            "languages/bash/scripts/x.sh: the syntax check (`nope`) failed with exit code 127: exec: \"nope\": not found"
        );
        let slow = Outcome {
            exit_code: None,
            output: String::new(),
        };
        assert_eq!(
            problems_of(&slow, P, I, "bash")[0].to_string(),
            "languages/bash/scripts/x.sh: the syntax check (`bash`) did not finish in 60 s"
        );
    }
}
