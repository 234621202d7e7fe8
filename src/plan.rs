//! What to do for each language and why: its input digest and tag, the image it would have,
//! what git says changed, and the action.

use std::fmt;

use crate::config::Config;
use crate::digest::{self, DigestError, InputDigest};
use crate::discover::{Inventory, Language, Script};
use crate::git::Changes;

/// What the run does with a language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The registry was not consulted: build and push if the tag is missing, else reuse.
    BuildIfMissing,
    /// The tag is missing from the registry.
    Build,
    /// The tag is in the registry: nothing to build or push.
    Reuse,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::BuildIfMissing => "build-if-missing",
            Action::Build => "build",
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
    pub input_digest: InputDigest,
    /// Content tag, derived from the input digest.
    pub tag: String,
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
    for language in inventory.languages {
        let input_digest = digest::compute(&language.context, &language.inputs)?;
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
        let mut notes = Vec::new();
        if let Some(base) = &language.inputs.base_image {
            if !base.contains("@sha256:") {
                notes.push(format!(
                    "base image `{base}` is not pinned by digest: if its tag moves, the input digest does not see it"
                ));
            }
        }
        languages.push(LanguagePlan {
            image: format!("{repository}:{tag}"),
            input_digest,
            tag,
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
        scripts: inventory.scripts,
    })
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
