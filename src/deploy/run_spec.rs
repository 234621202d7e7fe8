//! One script of a release as the flat record its Kubernetes object is built from: everything
//! `render` needs, resolved from the manifest, names and label values included. `render` builds
//! its Job or CronJob from it, and Harness receives the same record as the script's values
//! ([`crate::deploy::harness`]), so the two paths have one source.

use crate::deploy::naming::{base_name, label_value, max_base};
use crate::input::deploy_config::{DEFAULT_EPHEMERAL_STORAGE, DEFAULT_TMP_SIZE_LIMIT};
use crate::release::manifest::{JobKind, Manifest, ManifestScript};

/// What defines the object that runs one script of one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub id: String,
    pub owner: String,
    pub description: String,
    /// `repository@sha256:...`.
    pub image: String,
    /// The manifest's command, given as the container's `args`.
    pub args: Vec<String>,
    pub kind: JobKind,
    /// The base name for the kind: the CronJob's name, a Job's name before its run suffix, and
    /// the `app.kubernetes.io/name` label.
    pub name: String,
    /// `krobs.dev/script` and `krobs.dev/language`.
    pub script_label: String,
    pub language_label: String,
    /// A CronJob's schedule and concurrency policy (empty for a Job).
    pub schedule: String,
    pub concurrency_policy: String,
    pub active_deadline_seconds: i64,
    pub backoff_limit: i32,
    pub ttl_seconds_after_finished: i32,
    pub cpu: String,
    pub memory_request: String,
    pub memory_limit: String,
    pub ephemeral_storage: String,
    pub tmp_size_limit: String,
    /// `KROBS_MONITOR_URL`; `None` sets no such variable.
    pub monitor_url: Option<String>,
    /// The release's commit and the sha256 of its manifest bytes (annotations).
    pub commit: Option<String>,
    pub manifest: String,
}

impl RunSpec {
    /// The record of `script` of `manifest`, whose bytes have the digest `manifest_digest`. An
    /// image the manifest does not name is empty (render refuses such a manifest before).
    pub fn new(manifest: &Manifest, manifest_digest: &str, script: &ManifestScript) -> RunSpec {
        let job = &script.job;
        let r = &job.resources;
        RunSpec {
            id: script.id.clone(),
            owner: script.header.owner.clone(),
            description: script.header.description.clone(),
            image: script.image.clone().unwrap_or_default(),
            args: script.command.clone(),
            kind: job.kind,
            name: base_name(&script.id, max_base(job.kind)),
            script_label: label_value(&script.id),
            language_label: label_value(&script.language),
            schedule: match job.kind {
                JobKind::CronJob => job.schedule.clone().unwrap_or_default(),
                JobKind::Job => String::new(),
            },
            concurrency_policy: match job.kind {
                JobKind::CronJob => job
                    .concurrency_policy
                    .clone()
                    .unwrap_or_else(|| "Forbid".to_string()),
                JobKind::Job => String::new(),
            },
            active_deadline_seconds: i64::try_from(job.active_deadline_seconds).unwrap_or(i64::MAX),
            backoff_limit: clamp_i32(u64::from(job.backoff_limit)),
            ttl_seconds_after_finished: clamp_i32(job.ttl_seconds_after_finished),
            cpu: r.cpu_request.clone(),
            memory_request: r.memory_request.clone(),
            memory_limit: r.memory_limit.clone(),
            ephemeral_storage: r
                .ephemeral_storage_request
                .clone()
                .unwrap_or_else(|| DEFAULT_EPHEMERAL_STORAGE.to_string()),
            tmp_size_limit: r
                .tmp_size_limit
                .clone()
                .unwrap_or_else(|| DEFAULT_TMP_SIZE_LIMIT.to_string()),
            monitor_url: manifest.monitor_url.clone(),
            commit: manifest.commit.clone(),
            manifest: manifest_digest.to_string(),
        }
    }
}

fn clamp_i32(v: u64) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}
