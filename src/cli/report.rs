//! What the user reads: one typed [`Report`] of what a run did, rendered as text or as one JSON
//! object (`--json`, described by `schema/report-v1.schema.json`); and the lint summary.
//!
//! The report holds the run's facts (built or reused, changed files, pushed tags, registry
//! state, timings, where the manifest went); the manifest holds only the release.

use std::io::Write;

use serde::Serialize;
use serde_json::json;

use crate::input::git::Changes;
use crate::plan::discover::{Inventory, Script};
use crate::plan::{LanguagePlan, Plan, RegistryState};
use crate::progress::seconds;
use crate::publish::{Outcome, Published};
use crate::release::manifest::Written;
use crate::release::Publication;

/// The report format; the JSON Schema in `schema/report-v1.schema.json` describes it.
pub const FORMAT: &str = "krobs-report/v1";
/// The published JSON Schema of the `--json` report.
pub const SCHEMA: &str = include_str!("../../schema/report-v1.schema.json");

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// What one run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: &'static str,
    pub dry_run: bool,
    pub commit: Option<String>,
    /// `--since`, and what git could tell from it.
    pub since: Option<Since>,
    pub languages: Vec<LanguageReport>,
    pub scripts: Vec<ScriptReport>,
    /// Languages with `[languages.x] enabled = false`: linted, not built or published.
    pub disabled: Vec<String>,
    /// The manifest written to disk.
    pub manifest: ManifestReport,
    /// The manifest in the registry (in a dry run: where it would go).
    pub publication: Publication,
    pub timings_ms: Timings,
}

#[derive(Debug, Clone, Serialize)]
pub struct Since {
    pub rev: String,
    /// The merge base the changes are counted from; `null` when git could not tell.
    pub base: Option<String>,
    pub files: Option<usize>,
    pub warning: Option<String>,
}

/// How a language ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Built,
    Reused,
    /// A dry run.
    Planned,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Built => "built",
            Status::Reused => "reused",
            Status::Planned => "planned",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LanguageReport {
    pub name: String,
    pub input_digest: String,
    pub tag: String,
    /// `host/repository:tag`.
    pub image: String,
    pub repository: String,
    pub base_image: Option<String>,
    pub context_files: usize,
    /// Files changed since `--since`; `null` without `--since` or when git could not tell.
    pub changed_files: Option<Vec<String>>,
    pub action: &'static str,
    pub registry: &'static str,
    pub registry_digest: Option<String>,
    pub registry_note: Option<String>,
    pub notes: Vec<String>,
    pub status: Status,
    /// The pushed image's digest; `null` in a dry run.
    pub digest: Option<String>,
    /// `host/repository@sha256:...`; `null` in a dry run.
    pub pinned: Option<String>,
    /// Every tag that names the image after the run, `git-<commit>` included; `null` in a dry
    /// run.
    pub tags: Option<Vec<String>>,
    /// `runtime-<digest>`: the runtime the Docker Engine builds.
    pub runtime_tag: String,
    /// What the run did with the runtime: `built`, `reused` (it was in the registry), or
    /// `null` (the image itself was reused, or a dry run).
    pub runtime: Option<&'static str>,
    /// The runtime's manifest digest in the registry, when the run used it.
    pub runtime_digest: Option<String>,
    /// The scripts layer Krobs writes: its digest and size in bytes.
    pub scripts_layer: String,
    pub scripts_layer_size: u64,
    /// Wall-clock milliseconds the language took; `null` in a dry run.
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScriptReport {
    pub id: String,
    pub language: String,
    pub path: String,
    pub image_path: String,
    pub sha256: String,
    pub command: Vec<String>,
    pub owner: String,
    pub description: String,
    pub schedule: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub retries: Option<u32>,
}

impl ScriptReport {
    fn new(s: &Script) -> ScriptReport {
        ScriptReport {
            id: s.id.clone(),
            language: s.language.clone(),
            path: s.path.clone(),
            image_path: s.image_path.clone(),
            sha256: s.sha256.clone(),
            command: s.command.clone(),
            owner: s.header.owner.clone(),
            description: s.header.description.clone(),
            schedule: s.header.schedule.clone(),
            timeout_seconds: s.header.timeout_seconds,
            retries: s.header.retries,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestReport {
    /// The configured path; `null` for a run restricted with `--only`.
    pub path: Option<String>,
    /// `<dir>/<sha256>.json`; `null` for a preview.
    pub content_path: Option<String>,
    /// `sha256:` of the bytes.
    pub sha256: String,
    /// A dry run's preview, never to be deployed.
    pub preview: bool,
    /// Covers only the languages in `--only`.
    pub partial: bool,
}

/// Wall-clock milliseconds of the run's phases.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    /// Discovery, input digests and the plan.
    pub plan: u64,
    /// Registry lookups, builds, pushes and tags.
    pub images: u64,
    /// Publishing the manifest.
    pub publication: u64,
    pub total: u64,
}

impl LanguageReport {
    /// A language's plan, and what it ended as when it was published (`p`).
    fn new(lp: &LanguagePlan, p: Option<&Published>) -> LanguageReport {
        LanguageReport {
            name: lp.language.name.clone(),
            input_digest: lp.input_digest.to_string(),
            tag: lp.tag.clone(),
            image: lp.image.clone(),
            repository: lp.repository.clone(),
            base_image: lp.language.inputs.base_image.clone(),
            context_files: lp.language.context.file_count(),
            changed_files: lp.changed_files.clone(),
            action: lp.action.as_str(),
            registry: lp.registry.as_str(),
            registry_digest: match &lp.registry {
                RegistryState::Present { digest } => Some(digest.clone()),
                _ => None,
            },
            registry_note: match &lp.registry {
                RegistryState::Unknown(why) => Some(why.clone()),
                _ => None,
            },
            notes: lp.notes.clone(),
            status: match p {
                Some(p) if p.outcome.made() => Status::Built,
                Some(_) => Status::Reused,
                None => Status::Planned,
            },
            digest: p.map(|p| p.digest.clone()),
            pinned: p.map(|p| format!("{}@{}", lp.repository, p.digest)),
            tags: p.map(|p| p.tags.iter().chain(&p.commit_tag).cloned().collect()),
            runtime_tag: lp.runtime_tag.clone(),
            runtime: p.and_then(|p| match &p.outcome {
                Outcome::Reused => None,
                Outcome::ScriptsAppended { .. } => Some("reused"),
                Outcome::RuntimeBuilt { .. } => Some("built"),
            }),
            runtime_digest: p.and_then(|p| match &p.outcome {
                Outcome::Reused => None,
                Outcome::ScriptsAppended { runtime } | Outcome::RuntimeBuilt { runtime } => {
                    Some(runtime.clone())
                }
            }),
            scripts_layer: lp.layer.blob.digest.clone(),
            scripts_layer_size: lp.layer.blob.size,
            duration_ms: p.map(|p| p.duration_ms),
        }
    }
}

impl Report {
    /// The report of a run: the plan, what every language ended as (`published` is empty in a
    /// dry run), the manifest written and where it was published.
    pub fn new(
        plan: &Plan,
        dry_run: bool,
        published: &[Published],
        written: &Written,
        partial: bool,
        publication: Publication,
        timings_ms: Timings,
    ) -> Report {
        let since = plan.since.as_ref().map(|rev| {
            let (base, files, warning) = match &plan.changes {
                Changes::Files { base, files } => (Some(base.clone()), Some(files.len()), None),
                Changes::Unknown { warning } => (None, None, Some(warning.clone())),
                Changes::NotAsked => (None, None, None),
            };
            Since {
                rev: rev.clone(),
                base,
                files,
                warning,
            }
        });
        let languages = plan
            .languages
            .iter()
            .map(|lp| {
                let p = published.iter().find(|p| p.language == lp.language.name);
                LanguageReport::new(lp, p)
            })
            .collect();
        let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
        Report {
            format: FORMAT,
            dry_run,
            commit: plan.commit.clone(),
            since,
            languages,
            scripts: plan.scripts.iter().map(ScriptReport::new).collect(),
            disabled: plan.disabled.clone(),
            manifest: ManifestReport {
                path: path(&written.path),
                content_path: path(&written.content_path),
                sha256: written.sha256.clone(),
                preview: dry_run,
                partial,
            },
            publication,
            timings_ms,
        }
    }

    /// One JSON object on one line, with a final newline.
    pub fn json(&self) -> String {
        let mut text = serde_json::to_string(self).expect("a report always serializes");
        text.push('\n');
        text
    }

    /// The report for a person: the run, each language, then the manifest and its release.
    pub fn text(&self) -> String {
        let mut out = self.headline();
        for name in &self.disabled {
            out.push_str(&format!(
                "\n{name}  disabled (`[languages.{name}] enabled = false`): linted, not built or published, no scripts in the manifest\n"
            ));
        }
        for l in &self.languages {
            out.push_str(&self.language_text(l));
        }
        out.push('\n');
        out.push_str(&self.manifest_text());
        out.push_str(&self.publication_text());
        let t = &self.timings_ms;
        out.push_str(&format!(
            "took {}: plan {}, images {}, manifest {}\n",
            seconds(t.total),
            seconds(t.plan),
            seconds(t.images),
            seconds(t.publication)
        ));
        out
    }

    /// What ran, at which commit, with what git says changed.
    fn headline(&self) -> String {
        let mut out = String::new();
        let at = self
            .commit
            .as_deref()
            .map(|c| format!(" at {}", short(c)))
            .unwrap_or_default();
        if self.dry_run {
            let read = self.languages.iter().any(|l| l.registry_note.is_none());
            let touched = if read {
                "the registry read, nothing written; Docker and AWS not touched"
            } else {
                "Docker, AWS and the registry not touched"
            };
            out.push_str(&format!(
                "krobs-build dry run{at}: {}, {} ({touched})\n",
                count(self.languages.len(), "language"),
                count(self.scripts.len(), "script")
            ));
        } else {
            out.push_str(&format!(
                "krobs-build{at}: {}, {}\n",
                count(self.languages.len(), "language"),
                count(self.scripts.len(), "script")
            ));
        }
        if let Some(Since {
            rev,
            base: Some(base),
            files: Some(files),
            ..
        }) = &self.since
        {
            out.push_str(&format!(
                "changes since `{rev}` (merge base {}): {}\n",
                short(base),
                count(*files, "file"),
            ));
        }
        out
    }

    /// One language: what happened to it, its image, what went in, its scripts.
    fn language_text(&self, l: &LanguageReport) -> String {
        let mut out = String::new();
        let status = match (l.status, l.action) {
            (Status::Planned, "append-scripts") => "scripts layer only, runtime present (no build)",
            (Status::Planned, "build") if l.registry_note.is_none() => {
                "build (runtime missing), then the scripts layer"
            }
            (Status::Planned, action) => action,
            (s, _) => s.as_str(),
        };
        let took = l
            .duration_ms
            .map(|ms| format!(" in {}", seconds(ms)))
            .unwrap_or_default();
        out.push_str(&format!("\n{}  {status}{took}\n", l.name));
        out.push_str(&format!("  input    {}\n", l.input_digest));
        if let (Some(what), Some(digest)) = (l.runtime, &l.runtime_digest) {
            out.push_str(&format!("  runtime  {} {what} ({digest})\n", l.runtime_tag));
        }
        if l.status != Status::Reused {
            out.push_str(&format!(
                "  scripts  layer {} ({} bytes)\n",
                l.scripts_layer, l.scripts_layer_size
            ));
        }
        out.push_str(&image_text(l));
        if let Some(base) = &l.base_image {
            out.push_str(&format!("  base     {base}\n"));
        }
        out.push_str(&format!("  context  {}\n", count(l.context_files, "file")));
        match &l.changed_files {
            Some(files) if files.is_empty() => {
                out.push_str("  changed  nothing since the base revision\n")
            }
            Some(files) => {
                for f in files {
                    out.push_str(&format!("  changed  {f}\n"));
                }
            }
            None => {}
        }
        for s in self.scripts.iter().filter(|s| s.language == l.name) {
            let schedule = s
                .schedule
                .as_deref()
                .map(|c| format!("  cron \"{c}\""))
                .unwrap_or_default();
            out.push_str(&format!(
                "  script   {}  owner {}{schedule}\n",
                s.id, s.owner
            ));
        }
        for note in &l.notes {
            out.push_str(&format!("  note     {note}\n"));
        }
        out
    }

    /// Where the manifest was written.
    fn manifest_text(&self) -> String {
        let w = &self.manifest;
        match (&w.path, &w.content_path) {
            (Some(path), _) if self.dry_run => format!(
                "manifest preview written to {path} (no image digests; never deploy it)\n"
            ),
            (Some(path), Some(content)) => format!(
                "manifest {} written to {path} and {content}\n",
                w.sha256
            ),
            (None, Some(content)) => format!(
                "manifest {} of the languages in `--only` written to {content} only; the release record is unchanged\n",
                w.sha256
            ),
            (Some(path), None) => format!("manifest {} written to {path}\n", w.sha256),
            (None, None) => String::new(),
        }
    }

    /// Where the manifest was published, and each of its tags.
    fn publication_text(&self) -> String {
        let mut out = String::new();
        let p = &self.publication;
        match &p.reference {
            None => out.push_str(&format!(
                "the manifest would be published to {} (a real run publishes it)\n",
                p.repository
            )),
            Some(reference) => {
                if p.repository_created {
                    out.push_str(&format!(
                        "created the manifest repository {} (mutable tags: `latest` moves)\n",
                        p.repository
                    ));
                }
                let how = if p.uploaded {
                    "uploaded"
                } else {
                    "already in the registry"
                };
                out.push_str(&format!("published {reference} ({how})\n"));
            }
        }
        let width = p.tags.iter().map(|t| t.tag.len()).max().unwrap_or(0);
        for t in &p.tags {
            out.push_str(&format!(
                "  {:width$}  {}: {}\n",
                t.tag,
                t.action.as_str(),
                t.reason
            ));
        }
        out
    }
}

/// A language's image: pinned with its tags once published, else what the registry says.
fn image_text(l: &LanguageReport) -> String {
    match (&l.pinned, &l.tags) {
        (Some(pinned), Some(tags)) => {
            format!("  image    {pinned}\n  tags     {}\n", tags.join(", "))
        }
        _ => {
            let registry = match (l.registry, &l.registry_digest, &l.registry_note) {
                (_, Some(digest), _) => format!("  registry present {digest}\n"),
                (_, _, Some(why)) => format!("  registry unknown: {why}\n"),
                (state, _, _) => format!("  registry {state}\n"),
            };
            format!("  image    {}\n{registry}", l.image)
        }
    }
}

/// `1 file`, `2 files`.
fn count(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// A run that failed, with `--json`: one JSON object on one line, the report's `format` with
/// the exit code and the message printed on stderr.
pub fn error_json(exit_code: u8, message: &str) -> String {
    let mut text = serde_json::to_string(&serde_json::json!({
        "format": FORMAT,
        "error": { "exit_code": exit_code, "message": message },
    }))
    .expect("an error always serializes");
    text.push('\n');
    text
}

/// `krobs-build lint` when everything is documented.
pub fn lint_ok(inventory: &Inventory, json: bool) -> String {
    if json {
        let v = json!({
            "problems": [],
            "languages": inventory.languages.iter().map(|l| &l.name).collect::<Vec<_>>(),
            "scripts": inventory.scripts.iter().map(ScriptReport::new).collect::<Vec<_>>(),
        });
        format!("{v}\n")
    } else {
        format!(
            "lint: {} scripts in {} languages are documented\n",
            inventory.scripts.len(),
            inventory.languages.len()
        )
    }
}

/// `lint --syntax` without problems: `lint`'s report, with what the syntax checks covered
/// (`"syntax": {"checked": [script ids], "notes": [...]}` in JSON).
pub fn lint_syntax_ok(
    inventory: &Inventory,
    checked: &crate::lint::syntax::SyntaxReport,
    json: bool,
) -> String {
    if json {
        let v = json!({
            "problems": [],
            "languages": inventory.languages.iter().map(|l| &l.name).collect::<Vec<_>>(),
            "scripts": inventory.scripts.iter().map(ScriptReport::new).collect::<Vec<_>>(),
            "syntax": {
                "checked": checked.checked,
                "notes": checked.notes,
            },
        });
        format!("{v}\n")
    } else {
        format!(
            "{}lint: the syntax of {} scripts is fine{}\n",
            lint_ok(inventory, false),
            checked.checked.len(),
            if checked.notes.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} not checked: see the notes)",
                    inventory.scripts.len() - checked.checked.len()
                )
            }
        )
    }
}

/// Writes text to stdout, with what could rewrite a terminal escaped, failing cleanly on a
/// closed pipe.
pub fn print(text: impl AsRef<str>) -> std::io::Result<()> {
    print_bytes(crate::cli::terminal::escape(text.as_ref()).as_bytes())
}

/// Writes bytes to stdout exactly as given: for verified content whose bytes are its identity
/// (a pulled manifest is JSON, whose own escaping keeps control characters out).
pub fn print_bytes(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}
