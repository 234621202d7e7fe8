//! What each language needs, from the registry: its content tag looked up (reuse), else its
//! runtime read (put the scripts layer on it), else a runtime build: one [`Decision`] each.
//! Also the dry run's runtime lookups and the no-op run where every image is there already.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::future::join_all;

use crate::input::config::Config;
use crate::plan::digest::Digest;
use crate::plan::{LanguagePlan, Plan, RegistryState};
use crate::registry::ecr::RepositoryInfo;
use crate::registry::{Lookup, Registry, RegistryError};

use super::published::{Outcome, Published};
use super::tags::ALIAS_TAG;

/// Looks every language's content tag up, concurrently.
pub async fn lookup_all(
    client: &impl Registry,
    config: &Config,
    plan: &mut Plan,
) -> Result<(), RegistryError> {
    let lookups = plan.languages.iter().map(|lp| {
        let repo = config.repository_for(&lp.language.name);
        let tag = lp.tag.clone();
        async move { client.lookup(&repo, &tag).await }
    });
    let results = join_all(lookups).await;
    for (lp, result) in plan.languages.iter_mut().zip(results) {
        lp.set_registry(match result? {
            Lookup::Present { digest } => RegistryState::Present { digest },
            Lookup::Missing => RegistryState::Missing,
        });
    }
    Ok(())
}

/// Every language as a no-op run records it once its tags are in place, when every image is
/// in the registry already: reused, under its content tag and the alias where the repository
/// lets tags move (no `git-<commit>`: that names the commit that made an image). `None` when
/// one is missing.
/// The caller uses it only where the release these records give is published already
/// (`release::unchanged`): then the run that published it put those very tags, and nothing is
/// asked or put again.
pub fn all_reused(
    plan: &Plan,
    repositories: &HashMap<String, RepositoryInfo>,
    duration_ms: u64,
) -> Option<Vec<Published>> {
    let published: Vec<Published> = plan
        .languages
        .iter()
        .map(|lp| {
            let RegistryState::Present { digest } = &lp.registry else {
                return None;
            };
            let name = &lp.language.name;
            let mut tags = vec![lp.tag.clone()];
            if !repositories.get(name).is_some_and(|r| r.immutable) {
                tags.push(ALIAS_TAG.to_string());
            }
            Some(Published {
                language: name.clone(),
                digest: digest.clone(),
                tags,
                commit_tag: None,
                outcome: Outcome::Reused,
                duration_ms,
            })
        })
        .collect::<Option<_>>()?;
    Some(published)
}

/// For a dry run: a language whose image is missing but whose runtime is in the registry only
/// needs its scripts layer, and its plan says so.
pub async fn lookup_runtimes(
    client: &impl Registry,
    config: &Config,
    plan: &mut Plan,
) -> Result<(), RegistryError> {
    let lookups = plan.languages.iter().map(|lp| {
        let repo = config.repository_for(&lp.language.name);
        let missing = lp.registry == RegistryState::Missing;
        async move {
            match missing {
                true => client.lookup(&repo, &lp.runtime_tag).await.map(Some),
                false => Ok(None),
            }
        }
    });
    let results = join_all(lookups).await;
    for (lp, result) in plan.languages.iter_mut().zip(results) {
        if let Some(Lookup::Present { .. }) = result? {
            lp.action = crate::plan::Action::AppendScripts;
        }
    }
    Ok(())
}

/// What a language needs, decided from the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    /// The image's content tag is in the registry.
    Reuse { digest: String },
    /// The runtime is in the registry: put the scripts layer on it.
    AppendScripts { runtime: RuntimeManifest },
    /// The runtime is missing: the Docker Engine builds it, then the scripts layer goes on.
    BuildRuntime,
}

/// Decides for one language: its content tag (looked up by [`lookup_all`]), then its runtime.
pub(super) async fn decide(
    registry: &impl Registry,
    config: &Config,
    lp: &LanguagePlan,
) -> Result<Decision, RegistryError> {
    if let RegistryState::Present { digest } = &lp.registry {
        return Ok(Decision::Reuse {
            digest: digest.clone(),
        });
    }
    let repo = config.repository_for(&lp.language.name);
    // Read at once rather than looked up: the scripts layer goes on this very manifest.
    Ok(
        match read_runtime(registry, &repo, &lp.runtime_tag).await? {
            Some(runtime) => Decision::AppendScripts { runtime },
            None => Decision::BuildRuntime,
        },
    )
}

/// A runtime's manifest (or index) as the registry serves it, and its digest: the sha256 of
/// those bytes, on which the scripts layer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RuntimeManifest {
    pub digest: String,
    /// `Content-Type`.
    pub media_type: Option<String>,
    pub body: Bytes,
}

/// Reads a runtime's manifest by tag or digest; `None` when the registry does not have it.
pub(super) async fn read_runtime(
    registry: &impl Registry,
    repo: &str,
    reference: &str,
) -> Result<Option<RuntimeManifest>, RegistryError> {
    Ok(registry
        .get_manifest(repo, reference)
        .await?
        .map(|fetched| RuntimeManifest {
            digest: Digest::of(&fetched.body).into_string(),
            media_type: fetched.media_type,
            body: fetched.body,
        }))
}
