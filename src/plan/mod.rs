//! What to do for each language and why: its input digest and tag, the image it would have,
//! what git says changed, and the action.

pub mod digest;
pub mod discover;
pub(crate) mod entrypoint;
pub(crate) mod layer;

use std::fmt;

use crate::input::config::Config;
use crate::input::context::Context;
use crate::input::git::Changes;
use crate::plan::digest::{DigestError, InputDigest};
use crate::plan::discover::{DiscoverError, Inventory, Language, Script, SCRIPTS_DIR};
use layer::ScriptsLayer;

/// What the run does with a language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The registry was not consulted: build and push if the tag is missing, else reuse.
    BuildIfMissing,
    /// The tag is missing from the registry.
    Build,
    /// The tag is missing but the runtime is there: only the scripts layer goes on it.
    AppendScripts,
    /// The tag is in the registry: nothing to build or push.
    Reuse,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::BuildIfMissing => "build-if-missing",
            Action::Build => "build",
            Action::AppendScripts => "append-scripts",
            Action::Reuse => "reuse",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the registry said about a language's content tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryState {
    /// Not asked (or it could not be asked); the reason says why.
    Unknown(String),
    Missing,
    Present {
        digest: String,
    },
}

impl RegistryState {
    pub fn as_str(&self) -> &'static str {
        match self {
            RegistryState::Unknown(_) => "unknown",
            RegistryState::Missing => "missing",
            RegistryState::Present { .. } => "present",
        }
    }
}

/// The plan for one language.
#[derive(Debug, Clone)]
pub struct LanguagePlan {
    pub language: Language,
    /// The image's identity: the runtime's input digest and the scripts layer's digest.
    pub input_digest: InputDigest,
    /// Content tag of the image, derived from the input digest.
    pub tag: String,
    /// The runtime's build context: the language's minus `scripts/`.
    pub runtime_context: Context,
    /// The runtime's input digest (its context, build args, base image, platform).
    pub runtime_digest: InputDigest,
    /// `runtime-<digest>`.
    pub runtime_tag: String,
    /// The scripts layer, written at plan time: it is small and decides the image's tag.
    pub layer: ScriptsLayer,
    /// `host/repository`.
    pub repository: String,
    /// `host/repository:tag`.
    pub image: String,
    /// Files changed since `--since`, when git could tell.
    pub changed_files: Option<Vec<String>>,
    pub action: Action,
    pub registry: RegistryState,
    /// Things worth knowing that do not stop the run.
    pub notes: Vec<String>,
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub commit: Option<String>,
    pub since: Option<String>,
    pub changes: Changes,
    pub languages: Vec<LanguagePlan>,
    pub scripts: Vec<Script>,
    /// Languages with `enabled = false`: linted, not built or published, not in the manifest.
    pub disabled: Vec<String>,
}

/// Digests every language of the inventory and lays out the plan.
pub fn make(
    config: &Config,
    inventory: Inventory,
    commit: Option<String>,
    since: Option<String>,
    changes: Changes,
) -> Result<Plan, DigestError> {
    let host = config.registry.host();
    let mut languages = Vec::with_capacity(inventory.languages.len());
    let mut disabled = Vec::new();
    for language in inventory.languages {
        if !config.is_enabled(&language.name) {
            disabled.push(language.name);
            continue;
        }
        let runtime_context = runtime_context(&language.context);
        let runtime_digest = digest::compute(&runtime_context, &language.inputs)?;
        let layer = layer::scripts_layer(&language.context, &language.image_scripts_dir)?;
        let input_digest = digest::image(&runtime_digest, &layer.blob.digest);
        let tag = input_digest.tag();
        let repository = format!("{host}/{}", config.repository_for(&language.name));
        let mut prefixes: Vec<&str> = vec![language.dir.as_str()];
        let extra = config
            .languages
            .get(&language.name)
            .map(|l| l.extra_inputs.as_slice())
            .unwrap_or(&[]);
        prefixes.extend(extra.iter().map(String::as_str));
        let changed_files = changes.under(&prefixes);
        let mut notes = language.notes.clone();
        if let Some(base) = &language.inputs.base_image {
            if !base.contains("@sha256:") {
                notes.push(format!(
                    "base image `{base}` is not pinned by digest: if its tag moves, the input digest does not see it; pin it (`{base}@sha256:...`), or for an image only in the local Engine give it a new tag whenever its content changes"
                ));
            }
        }
        languages.push(LanguagePlan {
            image: format!("{repository}:{tag}"),
            input_digest,
            tag,
            runtime_tag: runtime_digest.runtime_tag(),
            runtime_digest,
            runtime_context,
            layer,
            repository,
            changed_files,
            action: Action::BuildIfMissing,
            registry: RegistryState::Unknown("the registry was not asked".to_string()),
            notes,
            language,
        });
    }
    Ok(Plan {
        commit,
        since,
        changes,
        languages,
        scripts: inventory
            .scripts
            .into_iter()
            .filter(|s| !disabled.contains(&s.language))
            .collect(),
        disabled,
    })
}

impl Plan {
    /// Refuses a plan with no language to build, before Docker or the registry is touched: a
    /// release of it would list no krob (lint still checks disabled languages).
    pub fn require_a_language(
        &self,
        config: &Config,
        only: &[String],
    ) -> Result<(), DiscoverError> {
        if !self.languages.is_empty() {
            return Ok(());
        }
        let (config, disabled) = (config.path.display().to_string(), self.disabled.clone());
        Err(if only.is_empty() {
            DiscoverError::AllDisabled { config, disabled }
        } else {
            DiscoverError::OnlyDisabled { config, disabled }
        })
    }
}

/// A language's context without its scripts: what the Docker Engine builds the runtime from.
pub fn runtime_context(context: &Context) -> Context {
    let prefix = format!("{SCRIPTS_DIR}/");
    Context {
        entries: context
            .entries
            .iter()
            .filter(|e| e.rel != SCRIPTS_DIR && !e.rel.starts_with(&prefix))
            .cloned()
            .collect(),
        ignored: context.ignored.clone(),
        ignore: context.ignore.clone(),
    }
}

impl LanguagePlan {
    /// Records what the registry said, and the action that follows from it.
    pub fn set_registry(&mut self, state: RegistryState) {
        self.action = match state {
            RegistryState::Present { .. } => Action::Reuse,
            RegistryState::Missing => Action::Build,
            RegistryState::Unknown(_) => Action::BuildIfMissing,
        };
        self.registry = state;
    }
}
