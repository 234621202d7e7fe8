//! `krobs-build render`: one script of a release manifest becomes the Kubernetes Job (or
//! CronJob, when it has a schedule) that runs it, printed as YAML for `kubectl apply -f -`.
//!
//! Everything that defines the run comes from the manifest (the image pinned by digest, the
//! command, the resolved job settings); the command line only names the object, its namespace
//! and extra environment variables. The defaults follow from krobs being idempotent but never
//! load-bearing: one run at a time, a deadline and a retry limit always, disruptions not
//! counted as failures, and the restricted Pod Security profile.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use k8s_openapi::api::batch::v1::{
    CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec, PodFailurePolicy,
    PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
    PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, PodSecurityContext, PodSpec,
    PodTemplateSpec, ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::deploy::naming::random_suffix;
use crate::deploy::run_spec::RunSpec;
use crate::deploy::yaml;
use crate::input::config::Config;
use crate::input::names::{closest, is_dns_label};
use crate::plan::digest::{bytes_sha256, is_sha256_hex, Digest};
use crate::release::manifest::{self, JobKind, Manifest, ManifestScript, Unreadable, FORMAT};
use crate::release::{self, Reference, ReleaseError};

/// The container that runs the script.
pub const CONTAINER: &str = "krob";
use crate::input::names::MAX_JOB_NAME;
/// A CronJob run that could not start within this many seconds of its time is skipped
/// rather than started late: the next scheduled run does the work (krobs are idempotent).
pub const STARTING_DEADLINE_SECONDS: i64 = 300;
/// Finished Jobs a CronJob keeps, for their logs, on success and on failure.
pub const SUCCESSFUL_JOBS_HISTORY_LIMIT: i32 = 3;
pub const FAILED_JOBS_HISTORY_LIMIT: i32 = 3;
/// CronJob schedules are written in UTC (the header refuses time zones).
pub const TIME_ZONE: &str = "Etc/UTC";
/// Exit codes that no retry can turn into a success, so they fail the Job at once: 2 is the
/// krobs libraries' "bad configuration" (and a usage error for shells and Python), 126 and
/// 127 a command that cannot be run or found.
pub const FAIL_JOB_EXIT_CODES: [i32; 3] = [2, 126, 127];
/// The environment variables render sets itself; `--env` may not override them.
pub const RESERVED_ENV: [&str; 4] = [
    "KROBS_ID",
    "KROBS_IMAGE",
    "KROBS_GRACE_SECONDS",
    "KROBS_MONITOR_URL",
];
/// `KROBS_GRACE_SECONDS`: how long krobs-run gives the command after SIGTERM before killing it.
pub const GRACE_SECONDS: i64 = 20;
/// What krobs-run may take after the grace: the output tail (at most 2 s) and the `failure`
/// report (after a signal, 2 attempts of at most 2 s, killed 1 s later, 1 s apart: 7 s), with
/// room to spare.
pub const SHUTDOWN_REPORT_SECONDS: i64 = 15;
/// The pod's `terminationGracePeriodSeconds`: the kubelet's SIGKILL comes after all of it.
pub const TERMINATION_GRACE_PERIOD_SECONDS: i64 = GRACE_SECONDS + SHUTDOWN_REPORT_SECONDS;
/// A manifest larger than this is not one.
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// Label and annotation keys.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_SCRIPT: &str = "krobs.dev/script";
pub const LABEL_LANGUAGE: &str = "krobs.dev/language";
pub const ANNOTATION_SCRIPT_ID: &str = "krobs.dev/script-id";
pub const ANNOTATION_OWNER: &str = "krobs.dev/owner";
pub const ANNOTATION_DESCRIPTION: &str = "krobs.dev/description";
pub const ANNOTATION_MANIFEST: &str = "krobs.dev/manifest";
pub const ANNOTATION_COMMIT: &str = "krobs.dev/commit";
pub const ANNOTATION_IMAGE: &str = "krobs.dev/image";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read the manifest `{}`: {cause}; run `krobs-build` to write it, or pass `--manifest PATH` or a published reference such as `--manifest latest`", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("the manifest `{}` is larger than {MAX_MANIFEST_BYTES} bytes: it is not a krobs manifest", path.display())]
    TooLarge { path: PathBuf },
    #[error("the manifest `{origin}` is not a krobs manifest: {message}")]
    Invalid { origin: String, message: String },
    #[error("the manifest `{origin}` has format `{format}`, this krobs-build reads `{FORMAT}`: render it with a krobs-build of its version")]
    Format { origin: String, format: String },
    #[error("the manifest `{}` is named by sha256 `{named}` but its bytes hash to `{actual}`: it was changed after it was written; pull it again or use the file the run wrote", path.display())]
    DigestMismatch {
        path: PathBuf,
        named: String,
        actual: String,
    },
    #[error("the manifest `{origin}` is a dry-run preview with no image digests: run `krobs-build` without `--dry-run`, or render from a published manifest (`--manifest latest`)")]
    Preview { origin: String },
    #[error("script `{id}` of the manifest `{origin}` has image `{image}`, not pinned by digest (`repository@sha256:...`): render only from a manifest a real run wrote")]
    NotPinned {
        id: String,
        origin: String,
        image: String,
    },
    #[error("no script `{id}` in the manifest `{origin}`: did you mean `{closest}`?")]
    UnknownScript {
        id: String,
        origin: String,
        closest: String,
    },
    #[error("no script `{id}` in the manifest `{origin}`: it lists no scripts")]
    NoScripts { id: String, origin: String },
    #[error("`--name {name}` is not a valid {kind} name: use at most {max} lowercase letters, digits and `-`, starting with a letter and ending with a letter or digit")]
    Name {
        name: String,
        kind: &'static str,
        max: usize,
    },
    #[error("`--name {name}`: script `{id}` has a schedule, and a CronJob is named after its script (`{base}`) so that `render --schedules` reconciles it; `--name` names Jobs only")]
    CronJobName {
        name: String,
        id: String,
        base: String,
    },
    #[error("`--namespace {0}` is not a Kubernetes namespace name: use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit")]
    Namespace(String),
    #[error("`--env {arg}`: {why}")]
    Env { arg: String, why: String },
    #[error(transparent)]
    Pull(#[from] ReleaseError),
}

/// Where the manifest comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestSource {
    File(PathBuf),
    /// A published manifest (see [`Reference::parse`]).
    Reference(Reference),
}

impl ManifestSource {
    /// `--manifest`: what looks like a path (a `/`, a leading `.`, a `.json` end) is a file;
    /// else a release reference wins, even over a file of that name in the working folder (so
    /// that a stray file named `latest` never stands in for the release; write `./latest`);
    /// else an existing file; else a broken reference (`git-0123abc`) is refused with the
    /// grammar; else a file, reported missing. Without it, the configured manifest path.
    pub fn from_arg(arg: Option<&str>, config: &Config) -> Result<ManifestSource, ReleaseError> {
        let Some(a) = arg else {
            return Ok(ManifestSource::File(config.manifest_path()));
        };
        if looks_like_path(a) {
            return Ok(ManifestSource::File(PathBuf::from(a)));
        }
        match Reference::parse(a) {
            Ok(reference) => Ok(ManifestSource::Reference(reference)),
            Err(e) if !Path::new(a).exists() && Reference::is_attempt(a) => Err(e),
            Err(_) => Ok(ManifestSource::File(PathBuf::from(a))),
        }
    }
}

/// A `/`, a leading `.` or a `.json` end: a file path, never a release reference.
fn looks_like_path(s: &str) -> bool {
    s.contains('/')
        || s.starts_with('.')
        || s.len() > 5 && s[s.len() - 5..].eq_ignore_ascii_case(".json")
}

/// A manifest read and checked, with the digest of its bytes.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub manifest: Manifest,
    /// `sha256:` of the bytes.
    pub digest: String,
    /// Where it came from, for messages.
    pub origin: String,
}

/// Reads a manifest file: bounded, a regular file, and when named `<sha256>.json` its bytes
/// must hash to that name.
pub fn load_file(path: &Path) -> Result<Loaded, RenderError> {
    let read_err = |cause| RenderError::Read {
        path: path.to_path_buf(),
        cause,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    if !file.metadata().map_err(read_err)?.is_file() {
        return Err(read_err(std::io::Error::other("not a regular file")));
    }
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(RenderError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let actual = bytes_sha256(&bytes);
    if let Some(named) = content_name(path) {
        if named != actual {
            return Err(RenderError::DigestMismatch {
                path: path.to_path_buf(),
                named: named.to_string(),
                actual,
            });
        }
    }
    parse(&bytes, path.display().to_string())
}

/// The hex digest a file is named by, when its name is `<64 hex>.json`.
fn content_name(path: &Path) -> Option<&str> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".json")?;
    is_sha256_hex(stem).then_some(stem)
}

/// Parses manifest bytes (from a file or the registry) and checks the format.
pub fn parse(bytes: &[u8], origin: String) -> Result<Loaded, RenderError> {
    let manifest = match manifest::parse(bytes) {
        Ok(manifest) => manifest,
        Err(Unreadable::Invalid(e)) => {
            return Err(RenderError::Invalid {
                origin,
                message: e.to_string(),
            })
        }
        Err(Unreadable::Format(format)) => return Err(RenderError::Format { origin, format }),
    };
    Ok(Loaded {
        manifest,
        digest: Digest::of(bytes).into_string(),
        origin,
    })
}

/// What the command line adds to the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--name`: the object's exact name.
    pub name: Option<String>,
    pub namespace: String,
    /// `--env` pairs, in order, checked.
    pub env: Vec<(String, String)>,
    /// Appended to a generated Job name to make it unique.
    pub suffix: String,
}

/// `krobs-build render`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    pub script_id: String,
    /// A manifest file, or a published reference; `None`: the configured manifest path.
    pub manifest: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// `KEY=VALUE` pairs, checked by `render`.
    pub env: Vec<String>,
}

/// `krobs-build render`: the YAML of the object that runs `args.script_id`.
pub async fn run(config: &Config, args: &RenderOptions) -> Result<String, RenderError> {
    let env = parse_env(&args.env)?;
    let namespace = namespace(config, args.namespace.as_deref())?;
    let loaded = load(config, args.manifest.as_deref()).await?;
    let options = Options {
        name: args.name.clone(),
        namespace,
        env,
        suffix: random_suffix(),
    };
    render(&loaded, &args.script_id, &options)
}

/// `krobs-build render --schedules`: every CronJob of the release.
pub async fn run_schedules(
    config: &Config,
    manifest: Option<&str>,
    namespace_arg: Option<&str>,
) -> Result<String, RenderError> {
    let namespace = namespace(config, namespace_arg)?;
    schedules(&load(config, manifest).await?, &namespace)
}

/// `--namespace`, checked, else `[deploy] namespace`.
fn namespace(config: &Config, arg: Option<&str>) -> Result<String, RenderError> {
    match arg {
        Some(ns) if !is_dns_label(ns) => Err(RenderError::Namespace(ns.to_string())),
        Some(ns) => Ok(ns.to_string()),
        None => Ok(config.deploy.namespace.clone()),
    }
}

/// The manifest `--manifest` names: a file, or a published one pulled from the registry.
async fn load(config: &Config, manifest: Option<&str>) -> Result<Loaded, RenderError> {
    match ManifestSource::from_arg(manifest, config)? {
        ManifestSource::File(path) => load_file(&path),
        ManifestSource::Reference(reference) => {
            let pulled = release::pull(config, &reference).await?;
            parse(&pulled.bytes, pulled.reference)
        }
    }
}

/// The YAML of the Job or CronJob for one script of a loaded manifest.
pub fn render(loaded: &Loaded, script_id: &str, options: &Options) -> Result<String, RenderError> {
    let m = &loaded.manifest;
    if m.preview {
        return Err(RenderError::Preview {
            origin: loaded.origin.clone(),
        });
    }
    let script = find_script(m, script_id, &loaded.origin)?;
    let image = match &script.image {
        Some(image) if is_pinned(image) => image.clone(),
        Some(image) => {
            return Err(RenderError::NotPinned {
                id: script.id.clone(),
                origin: loaded.origin.clone(),
                image: image.clone(),
            })
        }
        None => {
            return Err(RenderError::Preview {
                origin: loaded.origin.clone(),
            })
        }
    };
    let spec = RunSpec::new(m, &loaded.digest, script);
    debug_assert_eq!(spec.image, image);
    let name = object_name(&spec, options.name.as_deref(), &options.suffix)?;
    let value = object(&spec, &name, &options.namespace, &options.env);
    Ok(yaml::to_string(&value))
}

/// `render --schedules`: every CronJob of a loaded manifest, in the manifest's order (by id),
/// as one YAML stream; each named after its script and labelled as Krobs's, so that `kubectl
/// apply --prune -l app.kubernetes.io/managed-by=krobs` removes the ones a release no longer has.
pub fn schedules(loaded: &Loaded, namespace: &str) -> Result<String, RenderError> {
    let m = &loaded.manifest;
    if m.preview {
        return Err(RenderError::Preview {
            origin: loaded.origin.clone(),
        });
    }
    let mut docs = Vec::new();
    for script in m.scripts.iter().filter(|s| s.job.kind == JobKind::CronJob) {
        match &script.image {
            Some(image) if is_pinned(image) => {}
            Some(image) => {
                return Err(RenderError::NotPinned {
                    id: script.id.clone(),
                    origin: loaded.origin.clone(),
                    image: image.clone(),
                })
            }
            None => {
                return Err(RenderError::Preview {
                    origin: loaded.origin.clone(),
                })
            }
        }
        let spec = RunSpec::new(m, &loaded.digest, script);
        docs.push(yaml::to_string(&object(&spec, &spec.name, namespace, &[])));
    }
    Ok(docs.iter().map(|d| format!("---\n{d}")).collect::<String>())
}

/// The Job or CronJob of `spec`, named `name` in `namespace`, with the extra environment
/// variables `env`, as the JSON Kubernetes reads.
pub fn object(spec: &RunSpec, name: &str, namespace: &str, env: &[(String, String)]) -> Value {
    let labels = BTreeMap::from([
        (LABEL_NAME.to_string(), spec.name.clone()),
        (LABEL_MANAGED_BY.to_string(), "krobs".to_string()),
        (LABEL_SCRIPT.to_string(), spec.script_label.clone()),
        (LABEL_LANGUAGE.to_string(), spec.language_label.clone()),
    ]);
    let mut annotations = BTreeMap::from([
        (ANNOTATION_SCRIPT_ID.to_string(), spec.id.clone()),
        (ANNOTATION_OWNER.to_string(), spec.owner.clone()),
        (ANNOTATION_DESCRIPTION.to_string(), spec.description.clone()),
        (ANNOTATION_MANIFEST.to_string(), spec.manifest.clone()),
        (ANNOTATION_IMAGE.to_string(), spec.image.clone()),
    ]);
    if let Some(commit) = &spec.commit {
        annotations.insert(ANNOTATION_COMMIT.to_string(), commit.clone());
    }
    let meta = |name: Option<String>, namespace: Option<String>| ObjectMeta {
        name,
        namespace,
        labels: Some(labels.clone()),
        annotations: Some(annotations.clone()),
        ..ObjectMeta::default()
    };

    let mut vars = vec![
        env_var("KROBS_ID", &spec.id),
        env_var("KROBS_IMAGE", &spec.image),
        env_var("KROBS_GRACE_SECONDS", &GRACE_SECONDS.to_string()),
    ];
    if let Some(url) = &spec.monitor_url {
        vars.push(env_var("KROBS_MONITOR_URL", url));
    }
    vars.extend(env.iter().map(|(k, v)| env_var(k, v)));

    let job_spec = JobSpec {
        backoff_limit: Some(spec.backoff_limit),
        active_deadline_seconds: Some(spec.active_deadline_seconds),
        ttl_seconds_after_finished: Some(spec.ttl_seconds_after_finished),
        pod_failure_policy: Some(pod_failure_policy()),
        // A replacement pod starts only once the failed one is gone: never two runs at once.
        pod_replacement_policy: Some("Failed".to_string()),
        template: PodTemplateSpec {
            metadata: Some(meta(None, None)),
            spec: Some(pod_spec(spec, vars)),
        },
        ..JobSpec::default()
    };

    let namespace = Some(namespace.to_string());
    let name = Some(name.to_string());
    let value = match spec.kind {
        JobKind::Job => serde_json::to_value(Job {
            metadata: meta(name, namespace),
            spec: Some(job_spec),
            ..Job::default()
        }),
        JobKind::CronJob => serde_json::to_value(CronJob {
            metadata: meta(name, namespace),
            spec: Some(CronJobSpec {
                schedule: spec.schedule.clone(),
                time_zone: Some(TIME_ZONE.to_string()),
                concurrency_policy: Some(spec.concurrency_policy.clone()),
                starting_deadline_seconds: Some(STARTING_DEADLINE_SECONDS),
                successful_jobs_history_limit: Some(SUCCESSFUL_JOBS_HISTORY_LIMIT),
                failed_jobs_history_limit: Some(FAILED_JOBS_HISTORY_LIMIT),
                job_template: JobTemplateSpec {
                    metadata: Some(meta(None, None)),
                    spec: Some(job_spec),
                },
                ..CronJobSpec::default()
            }),
            ..CronJob::default()
        }),
    };
    value.expect("Kubernetes objects serialize")
}

fn find_script<'a>(
    m: &'a Manifest,
    id: &str,
    origin: &str,
) -> Result<&'a ManifestScript, RenderError> {
    if let Some(s) = m.scripts.iter().find(|s| s.id == id) {
        return Ok(s);
    }
    match closest(id, m.scripts.iter().map(|s| s.id.as_str())) {
        Some(closest) => Err(RenderError::UnknownScript {
            id: id.to_string(),
            origin: origin.to_string(),
            closest: closest.to_string(),
        }),
        None => Err(RenderError::NoScripts {
            id: id.to_string(),
            origin: origin.to_string(),
        }),
    }
}

/// The pod: the restricted Pod Security profile (non-root, no privilege escalation, no
/// capabilities, the runtime's seccomp profile), a read-only root file system with a
/// writable `/tmp`, no service account token (krobs do not call the Kubernetes API).
///
/// No `runAsUser`: every language image names its unprivileged user by number (`USER
/// 10001:10001`), which the kubelet checks against `runAsNonRoot`; pinning a uid here would
/// override what each image chose.
fn pod_spec(spec: &RunSpec, env: Vec<EnvVar>) -> PodSpec {
    let quantity = |q: &str| Quantity(q.to_string());
    PodSpec {
        restart_policy: Some("Never".to_string()),
        automount_service_account_token: Some(false),
        // krobs-run's shutdown after SIGTERM: the command's grace, then the output tail and the
        // failure report, all before the kubelet's SIGKILL.
        termination_grace_period_seconds: Some(TERMINATION_GRACE_PERIOD_SECONDS),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![Container {
            name: CONTAINER.to_string(),
            image: Some(spec.image.clone()),
            // `args`, not `command`: the image's entrypoint, if any, stays in charge.
            args: Some(spec.args.clone()),
            env: Some(env),
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".to_string(), quantity(&spec.cpu)),
                    (
                        "ephemeral-storage".to_string(),
                        quantity(&spec.ephemeral_storage),
                    ),
                    ("memory".to_string(), quantity(&spec.memory_request)),
                ])),
                limits: Some(BTreeMap::from([(
                    "memory".to_string(),
                    quantity(&spec.memory_limit),
                )])),
                ..ResourceRequirements::default()
            }),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".to_string()]),
                    ..Capabilities::default()
                }),
                ..SecurityContext::default()
            }),
            // The end of the log is the failure's reason in `kubectl describe`.
            termination_message_policy: Some("FallbackToLogsOnError".to_string()),
            volume_mounts: Some(vec![VolumeMount {
                name: "tmp".to_string(),
                mount_path: "/tmp".to_string(),
                ..VolumeMount::default()
            }]),
            ..Container::default()
        }],
        volumes: Some(vec![Volume {
            name: "tmp".to_string(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(quantity(&spec.tmp_size_limit)),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        }]),
        ..PodSpec::default()
    }
}

/// Disruptions (eviction, preemption, a drained node) are retried without counting against
/// `backoffLimit`; exit codes no retry can fix fail the Job at once.
fn pod_failure_policy() -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "Ignore".to_string(),
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".to_string(),
                    status: "True".to_string(),
                }]),
                ..PodFailurePolicyRule::default()
            },
            PodFailurePolicyRule {
                action: "FailJob".to_string(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some(CONTAINER.to_string()),
                    operator: "In".to_string(),
                    values: FAIL_JOB_EXIT_CODES.to_vec(),
                }),
                ..PodFailurePolicyRule::default()
            },
        ],
    }
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    }
}

/// `repository@sha256:<64 hex>`.
pub fn is_pinned(image: &str) -> bool {
    image
        .rsplit_once('@')
        .is_some_and(|(repo, digest)| !repo.is_empty() && Digest::parse(digest).is_some())
}

/// The object's name: a CronJob's is its script's base name (no `--name`: `render --schedules`
/// reconciles CronJobs by name); a Job's is `--name` as given (checked), else the base name and
/// `-<suffix>`.
pub fn object_name(
    spec: &RunSpec,
    name: Option<&str>,
    suffix: &str,
) -> Result<String, RenderError> {
    match (name, spec.kind) {
        (Some(n), JobKind::CronJob) => Err(RenderError::CronJobName {
            name: n.to_string(),
            id: spec.id.clone(),
            base: spec.name.clone(),
        }),
        (Some(n), JobKind::Job) => {
            let starts_with_letter = n.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
            if is_dns_label(n) && starts_with_letter && n.len() <= MAX_JOB_NAME {
                Ok(n.to_string())
            } else {
                Err(RenderError::Name {
                    name: n.to_string(),
                    kind: JobKind::Job.as_str(),
                    max: MAX_JOB_NAME,
                })
            }
        }
        (None, JobKind::Job) => Ok(format!("{}-{suffix}", spec.name)),
        (None, JobKind::CronJob) => Ok(spec.name.clone()),
    }
}

/// Checks `--env KEY=VALUE` pairs: a portable variable name, not one render sets, given once.
pub fn parse_env(args: &[String]) -> Result<Vec<(String, String)>, RenderError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for arg in args {
        let bad = |why: String| RenderError::Env {
            arg: arg.clone(),
            why,
        };
        let Some((key, value)) = arg.split_once('=') else {
            return Err(bad("expected `KEY=VALUE`".to_string()));
        };
        if !is_env_name(key) {
            return Err(bad(format!(
                "`{key}` is not an environment variable name: use letters, digits and `_`, not starting with a digit"
            )));
        }
        if RESERVED_ENV.contains(&key) {
            return Err(bad(format!(
                "`{key}` is set by render from the manifest and cannot be overridden"
            )));
        }
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(bad(format!("`{key}` is given more than once")));
        }
        pairs.push((key.to_string(), value.to_string()));
    }
    Ok(pairs)
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what every shell and runtime reads.
pub fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::naming::{base_name, label_value, max_base};
    use crate::input::names::MAX_CRONJOB_NAME;

    /// A spec of `kind` for `id`, as `RunSpec::new` names it.
    fn spec(id: &str, kind: JobKind) -> RunSpec {
        RunSpec {
            id: id.to_string(),
            owner: String::new(),
            description: String::new(),
            image: String::new(),
            args: Vec::new(),
            kind,
            name: base_name(id, max_base(kind)),
            script_label: label_value(id),
            language_label: "bash".to_string(),
            schedule: String::new(),
            concurrency_policy: String::new(),
            active_deadline_seconds: 1,
            backoff_limit: 0,
            ttl_seconds_after_finished: 0,
            cpu: String::new(),
            memory_request: String::new(),
            memory_limit: String::new(),
            ephemeral_storage: String::new(),
            tmp_size_limit: String::new(),
            monitor_url: None,
            commit: None,
            manifest: String::new(),
        }
    }

    #[test]
    fn job_names_get_a_suffix_cronjob_names_do_not() {
        let job = object_name(&spec("bash/hello", JobKind::Job), None, "x7k2q").unwrap();
        assert_eq!(job, "krobs-bash-hello-x7k2q");
        let cron = object_name(&spec("bash/hello", JobKind::CronJob), None, "x7k2q").unwrap();
        assert_eq!(cron, "krobs-bash-hello");
        let long = format!("bash/{}", "z".repeat(100));
        assert_eq!(
            object_name(&spec(&long, JobKind::Job), None, "abcde")
                .unwrap()
                .len(),
            MAX_JOB_NAME
        );
        assert_eq!(
            object_name(&spec(&long, JobKind::CronJob), None, "abcde")
                .unwrap()
                .len(),
            MAX_CRONJOB_NAME
        );
    }

    #[test]
    fn given_names_are_checked_and_never_name_a_cronjob() {
        let job = spec("a/b", JobKind::Job);
        let ok = |n: &str| object_name(&job, Some(n), "s").unwrap();
        assert_eq!(ok("nightly-run"), "nightly-run");
        assert_eq!(ok(&"a".repeat(63)).len(), 63);
        for bad in [
            "",
            "Upper",
            "has_underscore",
            "-lead",
            "trail-",
            "1starts-with-digit",
            "dot.ted",
            &"a".repeat(64),
        ] {
            assert!(object_name(&job, Some(bad), "s").is_err(), "{bad}");
        }
        let cron = spec("a/b", JobKind::CronJob);
        assert_eq!(
            object_name(&cron, Some("nightly"), "s")
                .unwrap_err()
                .to_string(),
            "`--name nightly`: script `a/b` has a schedule, and a CronJob is named after its script (`krobs-a-b`) so that `render --schedules` reconciles it; `--name` names Jobs only"
        );
    }

    #[test]
    fn references_and_pinned_images() {
        let config = Config::parse(
            "[registry]\nkind = \"oci\"\nhost = \"r.example\"\n",
            Path::new("krobs.toml"),
            Path::new("/repo"),
        )
        .unwrap();
        let source = |a: &str| ManifestSource::from_arg(Some(a), &config);
        let commit = "0123456789abcdef0123456789abcdef01234567";
        for (arg, reference) in [
            ("latest", "latest"),
            (commit, "git-0123456789ab"),
            ("git-0123456789ab", "git-0123456789ab"),
        ] {
            assert_eq!(
                source(arg).unwrap(),
                ManifestSource::Reference(Reference::Tag(reference.to_string())),
                "{arg}"
            );
        }
        for path in ["out/m.json", "m.json", "./latest", "v1", "latest.JSON"] {
            assert_eq!(
                source(path).unwrap(),
                ManifestSource::File(PathBuf::from(path)),
                "{path}"
            );
        }
        for broken in ["git-012", "git-xyz", "sha256:abc", "0123abc"] {
            assert!(source(broken).is_err(), "{broken}");
        }
        assert_eq!(
            ManifestSource::from_arg(None, &config).unwrap(),
            ManifestSource::File(PathBuf::from("/repo/out/krobs-manifest.json"))
        );
        assert!(is_pinned(&format!(
            "r.example/krobs/bash@sha256:{}",
            "0".repeat(64)
        )));
        assert!(!is_pinned("r.example/krobs/bash:latest"));
        assert!(!is_pinned(&format!("@sha256:{}", "0".repeat(64))));
        assert!(!is_pinned(&format!("r/b@sha256:{}", "G".repeat(64))));
    }

    #[test]
    fn env_pairs() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_env(&args(&["A=1", "_B=x=y", "C="])).unwrap(),
            [
                ("A".to_string(), "1".to_string()),
                ("_B".to_string(), "x=y".to_string()),
                ("C".to_string(), String::new())
            ]
        );
        for bad in ["NOEQUALS", "=v", "1A=v", "A-B=v", "KROBS_ID=x", "A B=v"] {
            assert!(parse_env(&args(&[bad])).is_err(), "{bad}");
        }
        assert!(parse_env(&args(&["A=1", "A=2"])).is_err());
        // Other KROBS_ variables are the libraries' settings, for the caller to set.
        assert!(parse_env(&args(&["KROBS_MONITOR_TIMEOUT_SECONDS=2"])).is_ok());
    }

    #[test]
    fn closest_id() {
        let ids = ["python/expunge_deletes", "python/drain_node", "bash/hello"];
        assert_eq!(
            closest("pyhton/expunge_deletes", ids.into_iter()),
            Some("python/expunge_deletes")
        );
        assert_eq!(
            closest("expunge_deletes", ids.into_iter()),
            Some("python/expunge_deletes")
        );
        assert_eq!(closest("x", std::iter::empty()), None);
    }
}
