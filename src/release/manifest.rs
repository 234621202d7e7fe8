//! The release record Harness deploys from: for every script, the image pinned by digest and
//! how to run it. Deterministic, named by the sha256 of its content, written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::input::deploy_config::DeployConfig;
use crate::input::header::Header;
use crate::plan::digest::Digest;
use crate::plan::Plan;
use crate::publish::Published;

/// The manifest format; the JSON Schema in `schema/manifest-v1.schema.json` describes it.
pub const FORMAT: &str = "krobs-manifest/v1";
/// Deadline of a run whose header names no `timeout`.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 3600;
/// Retries of a run whose header names no `retries`.
pub const DEFAULT_RETRIES: u32 = 1;
/// The published JSON Schema of the manifest.
pub const SCHEMA: &str = include_str!("../../schema/manifest-v1.schema.json");

/// The release record. Deserializable so that `render` and `manifest pull` read what a run
/// wrote; unknown fields are refused, as the schema does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// A dry run's preview: no image digests, never to be deployed.
    pub preview: bool,
    pub commit: Option<String>,
    /// Where `krobs-run` reports (`[deploy] monitor_url`).
    pub monitor_url: Option<String>,
    pub languages: Vec<ManifestLanguage>,
    pub scripts: Vec<ManifestScript>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestLanguage {
    pub name: String,
    pub repository: String,
    /// `repository@sha256:...`; `null` in a preview.
    pub image: Option<String>,
    /// The pushed manifest digest; `null` in a preview.
    pub digest: Option<String>,
    /// The tags that name this content (the content tag, and `latest` where it may move).
    pub tags: Vec<String>,
    pub input_digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestScript {
    pub id: String,
    pub language: String,
    pub path: String,
    pub image_path: String,
    /// Same as the language's `image`.
    pub image: Option<String>,
    pub sha256: String,
    pub command: Vec<String>,
    /// The documentation header as written.
    pub header: Header,
    pub job: Job,
}

/// A Kubernetes `Job`, or a `CronJob` when the header has a schedule.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum JobKind {
    Job,
    CronJob,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Job => "Job",
            JobKind::CronJob => "CronJob",
        }
    }
}

/// How the script runs, resolved: defaults follow from krobs being idempotent but not
/// load-bearing (one run at a time, a deadline and a retry limit always), and from `[deploy]`
/// under the header's own `cpu`/`memory`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub kind: JobKind,
    pub schedule: Option<String>,
    /// `Forbid` for CronJobs; `null` for Jobs.
    pub concurrency_policy: Option<String>,
    pub active_deadline_seconds: u64,
    pub backoff_limit: u32,
    pub ttl_seconds_after_finished: u64,
    pub resources: Resources,
}

/// Requests and limits of the script's container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub cpu_request: String,
    pub memory_request: String,
    /// Equal to the request: a krob that outgrows it is killed rather than starving its node.
    pub memory_limit: String,
    /// `[deploy] ephemeral_storage`; absent from manifests written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage_request: Option<String>,
    /// `[deploy] tmp_size_limit`: the size limit of `/tmp`; absent from older manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmp_size_limit: Option<String>,
}

impl Manifest {
    /// The manifest for a plan; `published` is empty for a preview, else names every language.
    pub fn new(plan: &Plan, published: &[Published], deploy: &DeployConfig) -> Manifest {
        let preview = published.is_empty();
        let languages: Vec<ManifestLanguage> = plan
            .languages
            .iter()
            .map(|lp| {
                let p = published.iter().find(|p| p.language == lp.language.name);
                ManifestLanguage {
                    name: lp.language.name.clone(),
                    repository: lp.repository.clone(),
                    image: p.map(|p| format!("{}@{}", lp.repository, p.digest)),
                    digest: p.map(|p| p.digest.clone()),
                    tags: p.map_or_else(|| vec![lp.tag.clone()], |p| p.tags.clone()),
                    input_digest: lp.input_digest.to_string(),
                }
            })
            .collect();
        let mut scripts: Vec<ManifestScript> = plan
            .scripts
            .iter()
            .map(|s| {
                let h = &s.header;
                let image = languages
                    .iter()
                    .find(|l| l.name == s.language)
                    .and_then(|l| l.image.clone());
                let memory = h.memory.clone().unwrap_or_else(|| deploy.memory.clone());
                ManifestScript {
                    id: s.id.clone(),
                    language: s.language.clone(),
                    path: s.path.clone(),
                    image_path: s.image_path.clone(),
                    image,
                    sha256: s.sha256.clone(),
                    command: s.command.clone(),
                    header: h.clone(),
                    job: Job {
                        kind: if h.schedule.is_some() {
                            JobKind::CronJob
                        } else {
                            JobKind::Job
                        },
                        schedule: h.schedule.clone(),
                        concurrency_policy: h.schedule.as_ref().map(|_| "Forbid".to_string()),
                        active_deadline_seconds: h
                            .timeout_seconds
                            .unwrap_or(DEFAULT_TIMEOUT_SECONDS),
                        backoff_limit: h.retries.unwrap_or(DEFAULT_RETRIES),
                        ttl_seconds_after_finished: deploy.ttl_seconds_after_finished,
                        resources: Resources {
                            cpu_request: h.cpu.clone().unwrap_or_else(|| deploy.cpu.clone()),
                            memory_request: memory.clone(),
                            memory_limit: memory,
                            ephemeral_storage_request: Some(deploy.ephemeral_storage.clone()),
                            tmp_size_limit: Some(deploy.tmp_size_limit.clone()),
                        },
                    },
                }
            })
            .collect();
        scripts.sort_by(|a, b| a.id.cmp(&b.id));
        Manifest {
            format: FORMAT.to_string(),
            preview,
            commit: plan.commit.clone(),
            monitor_url: deploy.monitor_url.clone(),
            languages,
            scripts,
        }
    }

    /// The exact bytes written: pretty JSON with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        bytes.push(b'\n');
        bytes
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write the manifest `{}`: {cause}; check that its folder is writable", path.display())]
pub struct ManifestError {
    pub path: PathBuf,
    pub cause: std::io::Error,
}

/// Why bytes are not a manifest this krobs-build reads.
#[derive(Debug)]
pub enum Unreadable {
    /// Not a manifest's JSON.
    Invalid(serde_json::Error),
    /// A manifest of another format (its `format`).
    Format(String),
}

/// Reads manifest bytes, from a file or a pulled release: the one place the format is checked.
pub fn parse(bytes: &[u8]) -> Result<Manifest, Unreadable> {
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(Unreadable::Invalid)?;
    if manifest.format != FORMAT {
        return Err(Unreadable::Format(manifest.format));
    }
    Ok(manifest)
}

/// Where a manifest was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The configured path, unless the run covered only some languages.
    pub path: Option<PathBuf>,
    /// `<dir>/<sha256>.json`, for a real manifest.
    pub content_path: Option<PathBuf>,
    /// `sha256:` of the bytes.
    pub sha256: String,
}

/// Writes the manifest to `path` (and, unless it is a preview, a copy named by its sha256
/// beside it), each through a temporary file renamed into place. A `partial` real manifest
/// (a run restricted with `--only`) is written only under its sha256 name, so the release
/// record at `path` never loses the languages the run left out.
pub fn write(manifest: &Manifest, path: &Path, partial: bool) -> Result<Written, ManifestError> {
    let bytes = manifest.to_bytes();
    let digest = Digest::of(&bytes);
    let hex = digest.hex();
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |cause| ManifestError { path: p, cause }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    refuse_non_file(path).map_err(err(path))?;
    let content_path = if manifest.preview {
        None
    } else {
        let p = dir.join(format!("{hex}.json"));
        write_atomic(&p, &bytes).map_err(err(&p))?;
        Some(p)
    };
    let path = if partial && !manifest.preview {
        None
    } else {
        write_atomic(path, &bytes).map_err(err(path))?;
        Some(path.to_path_buf())
    };
    Ok(Written {
        path,
        content_path,
        sha256: digest.to_string(),
    })
}

/// Replace only a regular file: never follow a symlink or clobber a FIFO, device or folder.
fn refuse_non_file(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => Err(std::io::Error::other(format!(
            "it is a {}, not a regular file",
            crate::input::repo::kind_of(&meta)
        ))),
        _ => Ok(()),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    Staged::new(path, bytes)?.rename()
}

/// A preview written in full beside its path, put in place only by [`Preview::keep`]: a dry
/// run whose report cannot be printed (stdout closed or full) leaves the previous preview as
/// it was. Dropped, it removes its temporary file.
#[derive(Debug)]
pub struct Preview {
    staged: Staged,
    pub written: Written,
}

/// Writes a dry run's preview (see [`Preview`]); `manifest.preview` must be set.
pub fn stage_preview(manifest: &Manifest, path: &Path) -> Result<Preview, ManifestError> {
    debug_assert!(manifest.preview);
    let bytes = manifest.to_bytes();
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |cause| ManifestError { path: p, cause }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    refuse_non_file(path).map_err(err(path))?;
    let staged = Staged::new(path, &bytes).map_err(err(path))?;
    Ok(Preview {
        staged,
        written: Written {
            path: Some(path.to_path_buf()),
            content_path: None,
            sha256: Digest::of(&bytes).to_string(),
        },
    })
}

impl Preview {
    /// Puts the preview in place.
    pub fn keep(self) -> Result<Written, ManifestError> {
        let path = self.staged.path.clone();
        self.staged
            .rename()
            .map_err(|cause| ManifestError { path, cause })?;
        Ok(self.written)
    }
}

/// Bytes written and synced to a temporary file beside `path`, not yet renamed over it.
#[derive(Debug)]
struct Staged {
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl Staged {
    fn new(path: &Path, bytes: &[u8]) -> std::io::Result<Staged> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let staged = Staged {
            tmp: dir.join(format!(".{name}.{}.tmp", std::process::id())),
            path: path.to_path_buf(),
        };
        let mut f = std::fs::File::create(&staged.tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(staged)
    }

    fn rename(self) -> std::io::Result<()> {
        std::fs::rename(&self.tmp, &self.path)?;
        // Make the rename itself durable.
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Gone once renamed; else nothing of it may stay behind.
        let _ = std::fs::remove_file(&self.tmp);
    }
}
