//! The real run after the plan, Skaffold-style: one typed [`Decision`](decide::Decision) per
//! language from the registry (reuse the image, put the scripts layer on a runtime that is
//! there, or have the Docker Engine build the runtime first), carried out concurrently (runtime
//! builds up to `[build] concurrency` at a time), each ending in one [`Outcome`] that the
//! manifest and the report are derived from. The registry and the Docker Engine are behind the
//! [`Registry`] and [`Engine`] traits, so that the orchestration runs on in-memory fakes in unit
//! tests.
//!
//! Here, the orchestration ([`publish`]); beside it, in the order a run takes them:
//! - `session`: opening the registry (credentials, ECR repositories);
//! - `decide`: the lookups and each language's decision;
//! - `language_run`: one language's run as named steps (the runtime build and its retry
//!   when runs sharing the engine race, the append until the runtime tag holds still);
//! - `build_cache`: the cache a runtime build starts from on a cold runner;
//! - `append` and [`image`]: the scripts layer on the runtime, and the check of the tag;
//! - `tags`: `git-<commit>` and the mutable alias;
//! - `published` and `error`: what each language ended as, or why it failed.

mod append;
mod build_cache;
mod decide;
mod error;
pub mod image;
mod language_run;
mod published;
mod session;
mod tags;

use std::collections::HashMap;

use futures_util::future::join_all;
use tokio::sync::Semaphore;

use crate::docker::engine::Engine;
use crate::input::config::Config;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::registry::ecr::RepositoryInfo;
use crate::registry::Registry;
use decide::decide;
use language_run::LanguageRun;

pub use decide::{all_reused, lookup_all, lookup_runtimes};
pub use error::PublishError;
pub use published::{report_finished, Outcome, Published};
pub use session::{dry_run_credentials, open, Session};

/// Carries out every language's decision, each as a [`LanguageRun`]; returns what every
/// language ended as.
pub async fn publish(
    config: &Config,
    plan: &Plan,
    registry: &impl Registry,
    repositories: &HashMap<String, RepositoryInfo>,
    engine: &impl Engine,
    progress: &Progress,
) -> Result<Vec<Published>, PublishError> {
    let parent = tokio::sync::OnceCell::new();
    let builds = Semaphore::new(config.build.concurrency);
    // Every decision first, so that runtime builds wait for their turn in the plan's order
    // (the semaphore is first come, first served).
    let decisions = join_all(plan.languages.iter().map(|lp| decide(registry, config, lp))).await;
    let jobs = plan.languages.iter().zip(decisions).map(|(lp, decision)| {
        let run = LanguageRun {
            config,
            plan,
            lp,
            registry,
            repositories,
            engine,
            progress,
            builds: &builds,
            parent: &parent,
            repo: config.repository_for(&lp.language.name),
        };
        run.run(decision)
    });
    let results = join_all(jobs).await;

    let published = all_or_failures(plan, results)?;
    // Every image the manifest will name has answered a HEAD with the digest it records:
    // reused ones at the lookup, made ones right after their manifest was put.
    Ok(published)
}

/// Every language's record, or the failure: the one error when one language failed, else
/// how many failed, which, and the first.
fn all_or_failures(
    plan: &Plan,
    results: Vec<Result<Published, PublishError>>,
) -> Result<Vec<Published>, PublishError> {
    let total = results.len();
    let mut published = Vec::new();
    let mut failures = Vec::new();
    for (lp, r) in plan.languages.iter().zip(results) {
        match r {
            Ok(p) => published.push(p),
            Err(e) => failures.push((lp.language.name.clone(), e)),
        }
    }
    match failures.len() {
        0 => Ok(published),
        1 => Err(failures.pop().expect("one failure").1),
        n => {
            let names = failures
                .iter()
                .map(|(l, _)| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ");
            Err(PublishError::Several {
                failed: n,
                total,
                names,
                first: Box::new(failures.remove(0).1),
            })
        }
    }
}

#[cfg(test)]
mod tests;
