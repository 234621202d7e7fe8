//! What the user reads: the plan as text or as one JSON object.

use std::io::Write;

use serde_json::{json, Value};

use crate::discover::{Inventory, Script};
use crate::git::Changes;
use crate::manifest::{Published, Written};
use crate::plan::{Plan, RegistryState};

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

fn script_json(s: &Script) -> Value {
    json!({
        "id": s.id,
        "language": s.language,
        "path": s.path,
        "image_path": s.image_path,
        "sha256": s.sha256,
        "command": s.command,
        "owner": s.header.owner,
        "description": s.header.description,
        "schedule": s.header.schedule,
        "timeout_seconds": s.header.timeout_seconds,
        "retries": s.header.retries,
    })
}

fn published_of<'a>(published: &'a [Published], language: &str) -> Option<&'a Published> {
    published.iter().find(|p| p.language == language)
}

/// The plan (and, after a real run, what was published) as one JSON object.
pub fn plan_json(
    plan: &Plan,
    dry_run: bool,
    published: &[Published],
    manifest: Option<&Written>,
) -> Value {
    let since = plan.since.as_ref().map(|rev| match &plan.changes {
        Changes::Files { base, files } => {
            json!({"rev": rev, "base": base, "files": files.len(), "warning": null})
        }
        Changes::Unknown { warning } => {
            json!({"rev": rev, "base": null, "files": null, "warning": warning})
        }
        Changes::NotAsked => json!({"rev": rev}),
    });
    json!({
        "dry_run": dry_run,
        "commit": plan.commit,
        "since": since,
        "languages": plan.languages.iter().map(|lp| {
            let p = published_of(published, &lp.language.name);
            json!({
            "name": lp.language.name,
            "input_digest": lp.input_digest.as_str(),
            "tag": lp.tag,
            "image": lp.image,
            "repository": lp.repository,
            "base_image": lp.language.inputs.base_image,
            "context_files": lp.language.context.file_count(),
            "changed_files": lp.changed_files.clone().unwrap_or_default(),
            "action": lp.action.as_str(),
            "registry": lp.registry.as_str(),
            "registry_digest": match &lp.registry { RegistryState::Present { digest } => Some(digest.as_str()), _ => None },
            "registry_note": match &lp.registry { RegistryState::Unknown(why) => Some(why.as_str()), _ => None },
            "notes": lp.notes,
            "status": match p { Some(p) if p.built => "built", Some(_) => "reused", None => "planned" },
            "digest": p.map(|p| p.digest.as_str()),
            "pinned": p.map(|p| format!("{}@{}", lp.repository, p.digest)),
            "tags": p.map(|p| p.tags.iter().chain(&p.commit_tag).collect::<Vec<_>>()),
        })}).collect::<Vec<_>>(),
        "scripts": plan.scripts.iter().map(script_json).collect::<Vec<_>>(),
        "manifest": manifest.map(|w| json!({
            "path": w.path.as_ref().map(|p| p.display().to_string()),
            "content_path": w.content_path.as_ref().map(|p| p.display().to_string()),
            "sha256": w.sha256,
        })),
    })
}

/// The plan (and, after a real run, what was published) as text for a person.
pub fn plan_text(
    plan: &Plan,
    dry_run: bool,
    published: &[Published],
    manifest: Option<&Written>,
) -> String {
    let mut out = String::new();
    let at = plan
        .commit
        .as_deref()
        .map(|c| format!(" at {}", short(c)))
        .unwrap_or_default();
    if dry_run {
        out.push_str(&format!(
            "krobs-build dry run{at}: {} languages, {} scripts (Docker and AWS not touched)\n",
            plan.languages.len(),
            plan.scripts.len()
        ));
    } else {
        out.push_str(&format!(
            "krobs-build{at}: {} languages, {} scripts\n",
            plan.languages.len(),
            plan.scripts.len()
        ));
    }
    if let (Some(rev), Changes::Files { base, files }) = (&plan.since, &plan.changes) {
        out.push_str(&format!(
            "changes since `{rev}` (merge base {}): {} files\n",
            short(base),
            files.len()
        ));
    }
    for lp in &plan.languages {
        let p = published_of(published, &lp.language.name);
        let status = match p {
            Some(p) if p.built => "built",
            Some(_) => "reused",
            None => lp.action.as_str(),
        };
        out.push_str(&format!("\n{}  {status}\n", lp.language.name));
        out.push_str(&format!("  input    {}\n", lp.input_digest));
        match p {
            Some(p) => {
                out.push_str(&format!("  image    {}@{}\n", lp.repository, p.digest));
                let tags: Vec<&str> = p
                    .tags
                    .iter()
                    .chain(&p.commit_tag)
                    .map(String::as_str)
                    .collect();
                out.push_str(&format!("  tags     {}\n", tags.join(", ")));
            }
            None => {
                out.push_str(&format!("  image    {}\n", lp.image));
                match &lp.registry {
                    RegistryState::Present { digest } => {
                        out.push_str(&format!("  registry present {digest}\n"))
                    }
                    RegistryState::Missing => out.push_str("  registry missing\n"),
                    RegistryState::Unknown(why) => {
                        out.push_str(&format!("  registry unknown: {why}\n"))
                    }
                }
            }
        }
        if let Some(base) = &lp.language.inputs.base_image {
            out.push_str(&format!("  base     {base}\n"));
        }
        out.push_str(&format!(
            "  context  {} files\n",
            lp.language.context.file_count()
        ));
        match &lp.changed_files {
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
        for s in plan
            .scripts
            .iter()
            .filter(|s| s.language == lp.language.name)
        {
            let schedule = s
                .header
                .schedule
                .as_deref()
                .map(|c| format!("  cron \"{c}\""))
                .unwrap_or_default();
            out.push_str(&format!(
                "  script   {}  owner {}{schedule}\n",
                s.id, s.header.owner
            ));
        }
        for note in &lp.notes {
            out.push_str(&format!("  note     {note}\n"));
        }
    }
    if let Some(w) = manifest {
        out.push('\n');
        match (&w.path, &w.content_path) {
            (Some(path), _) if dry_run => out.push_str(&format!(
                "manifest preview written to {} (no image digests; never deploy it)\n",
                path.display()
            )),
            (Some(path), Some(content)) => out.push_str(&format!(
                "manifest {} written to {} and {}\n",
                w.sha256,
                path.display(),
                content.display()
            )),
            (None, Some(content)) => out.push_str(&format!(
                "manifest {} of the languages in `--only` written to {} only; the release record is unchanged\n",
                w.sha256,
                content.display()
            )),
            (Some(path), None) => out.push_str(&format!("manifest {} written to {}\n", w.sha256, path.display())),
            (None, None) => {}
        }
    }
    out
}

/// `krobs-build lint` when everything is documented.
pub fn lint_ok(inventory: &Inventory, json: bool) -> String {
    if json {
        let v = json!({
            "problems": [],
            "languages": inventory.languages.iter().map(|l| &l.name).collect::<Vec<_>>(),
            "scripts": inventory.scripts.iter().map(script_json).collect::<Vec<_>>(),
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

/// Writes to stdout, failing cleanly on a closed pipe.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(crate::terminal::escape(text).as_bytes())?;
    out.flush()
}
