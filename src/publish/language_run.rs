//! One language's run after the plan, as named steps: take the [`Decision`], have the runtime
//! built when it is missing ([`LanguageRun::build_runtime`]), put the scripts layer on it until
//! the runtime tag holds still ([`LanguageRun::append_until_stable`]), then the extra tags; the
//! progress line closes it either way.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{OnceCell, Semaphore};

use super::append::{append_scripts, verify};
use super::build_cache::cache_source;
use super::decide::{read_runtime, Decision, RuntimeManifest};
use super::error::PublishError;
use super::image::Image;
use super::published::{finished, Outcome, Published};
use super::tags::extra_tags;
use crate::docker::build::DockerError;
use crate::docker::engine::{Engine, RuntimeBuild};
use crate::input::config::Config;
use crate::input::git;
use crate::plan::{LanguagePlan, Plan};
use crate::progress::{seconds, Progress};
use crate::registry::ecr::RepositoryInfo;
use crate::registry::{Lookup, Registry, RegistryError};

/// How many times the scripts layer is put on a runtime: another run sharing the Docker
/// Engine may push its own build of the runtime meanwhile, and the layer then goes on that
/// one. After the last attempt the image made stands (or its error is the language's).
const APPEND_ATTEMPTS: u32 = 3;

/// The image a language ends with: its digest, how it came to be, and for an image made in
/// this run its media type and bytes (the extra tags are put from them).
type Made = (String, Outcome, Option<(String, Bytes)>);

/// One language's run, with what it shares with the others.
pub(super) struct LanguageRun<'a, R, E> {
    pub config: &'a Config,
    pub plan: &'a Plan,
    pub lp: &'a LanguagePlan,
    pub registry: &'a R,
    pub repositories: &'a HashMap<String, RepositoryInfo>,
    pub engine: &'a E,
    pub progress: &'a Progress,
    /// Runtime builds, `[build] concurrency` at a time, in the plan's order.
    pub builds: &'a Semaphore,
    /// HEAD's first parent, whose `git-` tag names the previous image: build cache for a
    /// runtime, asked only when a runtime is built.
    pub parent: &'a OnceCell<Option<String>>,
    /// The language's repository path in the registry.
    pub repo: String,
}

impl<R: Registry, E: Engine> LanguageRun<'_, R, E> {
    /// Carries out the decision; the language's progress line says how it ended.
    pub async fn run(
        self,
        decision: Result<Decision, RegistryError>,
    ) -> Result<Published, PublishError> {
        let began = Instant::now();
        let result = self.steps(decision, began).await;
        let name = &self.lp.language.name;
        match &result {
            Ok(p) => self.progress.finish(
                name,
                &format!("{} in {}", finished(p), seconds(p.duration_ms)),
            ),
            Err(e) => {
                // The full error, with the build's last lines, closes the run.
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                let first = first.trim_end_matches("; last lines:");
                let took = seconds(millis(began));
                self.progress
                    .finish(name, &format!("failed after {took}: {first}"))
            }
        }
        result
    }

    async fn steps(
        &self,
        decision: Result<Decision, RegistryError>,
        began: Instant,
    ) -> Result<Published, PublishError> {
        let (digest, outcome, made) = self.image(decision?).await?;
        let made = made.as_ref().map(|(mt, bytes)| (mt.as_str(), bytes));
        let extra = extra_tags(
            self.config,
            self.plan,
            self.lp,
            self.registry,
            self.repositories,
            &digest,
            made,
            self.progress,
        )
        .await?;
        let mut tags = vec![self.lp.tag.clone()];
        tags.extend(extra.alias);
        Ok(Published {
            language: self.lp.language.name.clone(),
            digest,
            tags,
            commit_tag: extra.commit,
            outcome,
            duration_ms: millis(began),
        })
    }

    /// The image under the content tag: reused, or the scripts layer on the runtime (built
    /// first when the registry does not have it).
    async fn image(&self, decision: Decision) -> Result<Made, PublishError> {
        let name = &self.lp.language.name;
        let (runtime, built) = match decision {
            Decision::Reuse { digest } => return Ok((digest, Outcome::Reused, None)),
            Decision::AppendScripts { runtime } => {
                self.progress.log(
                    name,
                    &format!(
                        "runtime `{}` is there ({})",
                        self.lp.runtime_tag, runtime.digest
                    ),
                );
                (runtime, false)
            }
            Decision::BuildRuntime => (self.build_runtime().await?, true),
        };
        self.progress
            .stage(name, "putting the scripts layer on the runtime");
        let (image, runtime) = self.append_until_stable(runtime).await?;
        let runtime = runtime.digest;
        let outcome = if built {
            Outcome::RuntimeBuilt { runtime }
        } else {
            Outcome::ScriptsAppended { runtime }
        };
        Ok((
            image.digest().to_string(),
            outcome,
            Some((image.media_type, image.top.bytes)),
        ))
    }

    /// Has the Docker Engine build and push the runtime, in its turn, and reads back what the
    /// registry holds: the registry says the runtime's digest, not the daemon.
    async fn build_runtime(&self) -> Result<RuntimeManifest, PublishError> {
        let (name, lp) = (&self.lp.language.name, self.lp);
        let _permit = self
            .builds
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let parent = self
            .parent
            .get_or_init(|| async {
                (self.plan.commit.as_ref()).and_then(|_| git::first_parent(&self.config.root))
            })
            .await;
        let cache = cache_source(self.registry, &self.repo, parent.as_deref()).await;
        let request = || RuntimeBuild {
            language: name,
            context: &lp.runtime_context,
            repository: &lp.repository,
            tag: &lp.runtime_tag,
            build_args: lp.language.inputs.build_args.clone().into_iter().collect(),
            platform: lp.language.inputs.platform.clone(),
            target: lp.language.inputs.target.clone(),
            network: self.config.build.network.clone(),
            cache: cache.clone(),
            credentials: self.registry.credentials(),
            host: self.registry.host(),
        };
        if let Err(e) = self.engine.build_and_push(request(), self.progress).await {
            // Runs sharing a Docker Engine may push the same runtime at once, and the daemon's
            // concurrent pushes of one image can fail each other. The registry decides: a
            // runtime it now holds is used, a push that failed otherwise is tried once more.
            if !matches!(e, DockerError::Push { .. }) {
                let base = lp.language.inputs.base_image.as_deref();
                return Err(e.with_base_hint(base).into());
            }
            match self.registry.lookup(&self.repo, &lp.runtime_tag).await {
                Ok(Lookup::Present { .. }) => {}
                Ok(Lookup::Missing) => {
                    self.progress.log(name, &format!("{e}; pushing once more"));
                    self.engine.build_and_push(request(), self.progress).await?;
                }
                // The registry is gone: the push's error says which language.
                Err(_) => return Err(e.into()),
            }
        }
        self.read_runtime(&lp.runtime_tag, None).await
    }

    /// Puts the scripts layer on `runtime` until the runtime tag still names the runtime it
    /// went on. Another run sharing the engine may have pushed its own build of the same
    /// runtime meanwhile (the classic builder is not reproducible): the tag names the last
    /// push, and every run ends on that one, so that they agree. A conflict on the content tag
    /// from such a run is settled the same way.
    async fn append_until_stable(
        &self,
        mut runtime: RuntimeManifest,
    ) -> Result<(Image, RuntimeManifest), PublishError> {
        let mut attempt = 1;
        loop {
            let (made, now) = self.append_once(&runtime).await?;
            if now == runtime.digest || attempt == APPEND_ATTEMPTS {
                return made.map(|image| (image, runtime));
            }
            self.progress.log(
                &self.lp.language.name,
                &format!(
                    "`{}` moved to {now}: the scripts layer goes on it",
                    self.lp.runtime_tag
                ),
            );
            runtime = self
                .read_runtime(&now, Some(format!("its manifest {now}")))
                .await?;
            attempt += 1;
        }
    }

    /// Puts the scripts layer on `runtime` and checks that the content tag names the image
    /// put, while asking what the runtime tag names now: both at once.
    async fn append_once(
        &self,
        runtime: &RuntimeManifest,
    ) -> Result<(Result<Image, PublishError>, String), PublishError> {
        let made = append_scripts(self.config, self.plan, self.lp, runtime, self.registry).await;
        let verified = async {
            match &made {
                Ok(image) => verify(self.registry, self.config, self.lp, image.digest()).await,
                Err(_) => Ok(()),
            }
        };
        let (verified, now) = futures_util::future::join(
            verified,
            self.registry.lookup(&self.repo, &self.lp.runtime_tag),
        )
        .await;
        let made = made.and_then(|image| verified.map(|()| image));
        let now = match now? {
            Lookup::Present { digest } => digest,
            Lookup::Missing => runtime.digest.clone(),
        };
        Ok((made, now))
    }

    /// The runtime `reference` names in the registry; missing is an error (`what` says what
    /// was asked for, when it is not the runtime tag).
    async fn read_runtime(
        &self,
        reference: &str,
        what: Option<String>,
    ) -> Result<RuntimeManifest, PublishError> {
        read_runtime(self.registry, &self.repo, reference)
            .await?
            .ok_or_else(|| PublishError::RuntimeMissing {
                language: self.lp.language.name.clone(),
                image: format!("{}:{}", self.lp.repository, self.lp.runtime_tag),
                what,
            })
    }
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
