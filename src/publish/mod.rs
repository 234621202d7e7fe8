//! The real run after the plan, Skaffold-style: one typed [`Decision`] per language from the
//! registry (reuse the image, put the scripts layer on a runtime that is there, or have the
//! Docker Engine build the runtime first), carried out concurrently (runtime builds up to
//! `[build] concurrency` at a time), each ending in one [`Outcome`] that the manifest and the
//! report are derived from. The registry and the Docker Engine are behind the [`Registry`]
//! and [`Engine`] traits, so that the orchestration runs on in-memory fakes in unit tests.

pub mod image;
mod language_run;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use tokio::sync::Semaphore;

use crate::docker::build::DockerError;
use crate::docker::engine::Engine;
use crate::input::config::{Config, RegistryConfig};
use crate::input::git::commit_tag;
use crate::plan::digest::{Digest, DigestError};
use crate::plan::layer::{self, Blob, Digested};
use crate::plan::{LanguagePlan, Plan, RegistryState};
use crate::progress::Progress;
use crate::registry::credentials::{self, CredentialsError};
use crate::registry::ecr::{AwsError, RepositoryInfo};
use crate::registry::{BlobBody, Credentials, Lookup, Registry, RegistryClient, RegistryError};
use image::{ComposeError, Runtime};
use language_run::LanguageRun;

/// What the pipeline learned about a language's pushed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub language: String,
    /// `sha256:...` of the image manifest in the registry.
    pub digest: String,
    /// Tags that name this content: the content tag, and the alias where it was set. They
    /// are the same on every run of the same content, so the manifest is too.
    pub tags: Vec<String>,
    /// `git-<commit>`, set in the registry on an image this run made (a reused image keeps the
    /// tag of the commit that made it); the manifest records the commit itself instead.
    pub commit_tag: Option<String>,
    pub outcome: Outcome,
    /// Wall-clock milliseconds the language took in this run (lookup to last tag).
    pub duration_ms: u64,
}

/// How a language's image came to be in the registry in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The image was there already.
    Reused,
    /// The runtime was there; Krobs put the scripts layer on it.
    ScriptsAppended { runtime: String },
    /// The Docker Engine built the runtime, then Krobs put the scripts layer on it.
    RuntimeBuilt { runtime: String },
}

impl Outcome {
    /// Whether an image was put in this run.
    pub fn made(&self) -> bool {
        !matches!(self, Outcome::Reused)
    }
}

/// The mutable alias pushed where the repository allows moving tags.
pub const ALIAS_TAG: &str = "latest";

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "`--strict` dry run: the registry `{registry}` could not be read for [{language}]: {why}"
    )]
    Unreadable {
        registry: String,
        language: String,
        why: String,
    },
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("[{language}] `{image}` is in the registry as `{found}` but the pushed image is `{expected}`: another run pushed different content under the same tag; rerun once it has finished")]
    Conflict {
        language: String,
        image: String,
        expected: String,
        found: String,
    },
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("cannot write the scripts layer to a temporary file: {0}; set `TMPDIR` to a writable folder with room for it")]
    TempFile(#[source] std::io::Error),
    #[error("[{language}] the scripts changed during the run: the plan named the scripts layer {planned}, the upload would be {now}; rerun once nothing writes to `{dir}`")]
    ScriptsChanged {
        language: String,
        dir: String,
        planned: String,
        now: String,
    },
    #[error("[{language}] the runtime `{image}` was pushed but the registry does not have it{}: rerun once the registry is healthy", .what.as_deref().map(|w| format!(" ({w})")).unwrap_or_default())]
    RuntimeMissing {
        language: String,
        image: String,
        what: Option<String>,
    },
    #[error("{failed} of {total} languages failed ({names}); first: {first}")]
    Several {
        failed: usize,
        total: usize,
        names: String,
        first: Box<PublishError>,
    },
}

impl PublishError {
    /// The error that decides the exit code.
    pub fn root(&self) -> &PublishError {
        match self {
            PublishError::Several { first, .. } => first.root(),
            other => other,
        }
    }
}

/// A registry ready for use: its client (with credentials) and what each repository allows.
pub struct Session {
    pub client: RegistryClient,
    pub repositories: HashMap<String, RepositoryInfo>,
    /// The manifest's repository was created by this run (ECR, mutable tags).
    pub manifest_repository_created: bool,
}

impl From<crate::registry::OpenError> for PublishError {
    fn from(e: crate::registry::OpenError) -> PublishError {
        use crate::registry::OpenError;
        match e {
            OpenError::Aws(e) => PublishError::Aws(e),
            OpenError::Credentials(e) => PublishError::Credentials(e),
            OpenError::Registry(e) => PublishError::Registry(e),
        }
    }
}

fn repository_path(config: &Config, language: &str) -> String {
    config.repository_for(language)
}

/// Opens the registry for a real run: ECR token (once) and repositories, or OCI credentials.
pub async fn open(
    config: &Config,
    plan: &Plan,
    progress: &Progress,
) -> Result<Session, PublishError> {
    let mut repositories = HashMap::new();
    let mut manifest_repository_created = false;
    // The lookups that follow the opening check the credentials before anything is built.
    let (client, ecr) = crate::registry::connect(&config.registry).await?;
    if let (
        Some(ecr),
        RegistryConfig::Ecr {
            create_repositories,
            ..
        },
    ) = (&ecr, &config.registry)
    {
        for lp in &plan.languages {
            let repo = repository_path(config, &lp.language.name);
            let info = ecr.ensure_repository(&repo, *create_repositories).await?;
            if info.created {
                progress.note(&format!(
                    "created ECR repository `{repo}` (immutable tags, scan on push)"
                ));
            }
            repositories.insert(lp.language.name.clone(), info);
        }
        // Checked before anything is built: a repository whose `latest` cannot move is
        // refused now, not after the images are pushed.
        let repo = &config.manifest_repository;
        let info = ecr
            .ensure_manifest_repository(repo, *create_repositories)
            .await?;
        if info.created {
            progress.note(&format!(
                "created ECR repository `{repo}` for the manifest (mutable tags: `latest` moves)"
            ));
        }
        manifest_repository_created = info.created;
    }
    Ok(Session {
        client,
        repositories,
        manifest_repository_created,
    })
}

/// Credentials a dry run can use without calling AWS: the `KROBS_REGISTRY_*` variables or the
/// Docker config file (where `docker login` put them).
pub fn dry_run_credentials(config: &Config) -> Result<Option<Credentials>, CredentialsError> {
    credentials::for_oci(&config.registry.host())
}

/// Looks every language's content tag up, concurrently.
pub async fn lookup_all(
    client: &impl Registry,
    config: &Config,
    plan: &mut Plan,
) -> Result<(), RegistryError> {
    let lookups = plan.languages.iter().map(|lp| {
        let repo = repository_path(config, &lp.language.name);
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

/// Says, for each language, how it ended (its last progress line).
pub fn report_finished(published: &[Published], progress: &Progress) {
    for p in published {
        progress.finish(
            &p.language,
            &format!(
                "{} in {}",
                finished(p),
                crate::progress::seconds(p.duration_ms)
            ),
        );
    }
}

/// For a dry run: a language whose image is missing but whose runtime is in the registry only
/// needs its scripts layer, and its plan says so.
pub async fn lookup_runtimes(
    client: &impl Registry,
    config: &Config,
    plan: &mut Plan,
) -> Result<(), RegistryError> {
    let lookups = plan.languages.iter().map(|lp| {
        let repo = repository_path(config, &lp.language.name);
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
pub enum Decision {
    /// The image's content tag is in the registry.
    Reuse { digest: String },
    /// The runtime is in the registry: put the scripts layer on it.
    AppendScripts { runtime: RuntimeManifest },
    /// The runtime is missing: the Docker Engine builds it, then the scripts layer goes on.
    BuildRuntime,
}

/// Decides for one language: its content tag (looked up by [`lookup_all`]), then its runtime.
pub async fn decide(
    registry: &impl Registry,
    config: &Config,
    lp: &LanguagePlan,
) -> Result<Decision, RegistryError> {
    if let RegistryState::Present { digest } = &lp.registry {
        return Ok(Decision::Reuse {
            digest: digest.clone(),
        });
    }
    let repo = repository_path(config, &lp.language.name);
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
pub struct RuntimeManifest {
    pub digest: String,
    /// `Content-Type`.
    pub media_type: Option<String>,
    pub body: Bytes,
}

/// Reads a runtime's manifest by tag or digest; `None` when the registry does not have it.
async fn read_runtime(
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

/// The labels Krobs adds to the image: content only (no commit, no source URL), so that the
/// same inputs give the same image wherever they are made. They go in the image's config,
/// which Krobs writes; the runtime gets none, since a `LABEL` costs the classic builder a step
/// (a container) on every runtime build.
fn image_labels(plan: &Plan, lp: &LanguagePlan) -> BTreeMap<String, String> {
    let name = &lp.language.name;
    let mut labels = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            format!("krobs-{}", lp.language.name),
        ),
        (
            "dev.krobs.runtime-digest".to_string(),
            lp.runtime_digest.to_string(),
        ),
    ]);
    labels.extend([
        (
            "dev.krobs.input-digest".to_string(),
            lp.input_digest.to_string(),
        ),
        (
            "dev.krobs.scripts-layer".to_string(),
            lp.layer.blob.digest.clone(),
        ),
        (
            "dev.krobs.scripts".to_string(),
            plan.scripts
                .iter()
                .filter(|s| &s.language == name)
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
    ]);
    labels
}

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
            repo: repository_path(config, &lp.language.name),
        };
        run.run(decision)
    });
    let results = join_all(jobs).await;

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
        0 => {}
        1 => return Err(failures.pop().expect("one failure").1),
        n => {
            let names = failures
                .iter()
                .map(|(l, _)| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(PublishError::Several {
                failed: n,
                total,
                names,
                first: Box::new(failures.remove(0).1),
            });
        }
    }

    // Every image the manifest will name has answered a HEAD with the digest it records:
    // reused ones at the lookup, made ones right after their manifest was put.
    Ok(published)
}

/// The last progress line of a language.
fn finished(p: &Published) -> String {
    match &p.outcome {
        Outcome::Reused => format!("reused {} (already in the registry)", p.digest),
        Outcome::ScriptsAppended { runtime } => format!(
            "pushed {} (the scripts layer on the runtime {runtime}, no build)",
            p.digest
        ),
        Outcome::RuntimeBuilt { runtime } => format!(
            "built and pushed {} (the runtime {runtime}, then the scripts layer)",
            p.digest
        ),
    }
}

/// Reads the runtime from the registry: its manifest (or index, and every platform's
/// manifest) and configs. Layers are never read.
async fn fetch_runtime(
    registry: &impl Registry,
    lp: &LanguagePlan,
    repo: &str,
    fetched: &RuntimeManifest,
) -> Result<Runtime, PublishError> {
    let image = format!("{}:{}", lp.repository, lp.runtime_tag);
    let missing = |what: String| PublishError::RuntimeMissing {
        language: lp.language.name.clone(),
        image: image.clone(),
        what: Some(what),
    };
    // The manifest the decision read, so the image is made of exactly that runtime.
    let media_type = image::media_type_of(&fetched.body, fetched.media_type.as_deref());
    let config_of = |manifest: Bytes| {
        let image = &image;
        let missing = &missing;
        async move {
            let manifest = Blob::new(manifest);
            let digest = image::config_digest(image, &manifest.bytes)?;
            let config = registry
                .get_blob(repo, &digest)
                .await?
                .ok_or_else(|| missing(format!("its config {digest}")))?;
            Ok::<_, PublishError>((manifest, Blob::new(config)))
        }
    };
    if media_type.as_deref().is_some_and(image::is_index) {
        let mut images = Vec::new();
        for digest in image::index_images(&image, &fetched.body)? {
            let child = registry
                .get_manifest(repo, &digest)
                .await?
                .ok_or_else(|| missing(format!("its manifest {digest}")))?;
            images.push(config_of(child.body).await?);
        }
        Ok(Runtime::Index {
            index: Blob::new(fetched.body.clone()),
            images,
        })
    } else {
        let (manifest, config) = config_of(fetched.body.clone()).await?;
        Ok(Runtime::Image { manifest, config })
    }
}

/// Puts the scripts layer on the runtime, through the registry API only: the layer blob
/// (mounted from another language's repository when it holds the same layer), the configs,
/// the manifests. The caller then checks that the content tag answers the digest of the bytes
/// put.
async fn append_scripts(
    config: &Config,
    plan: &Plan,
    lp: &LanguagePlan,
    runtime: &RuntimeManifest,
    registry: &impl Registry,
) -> Result<image::Image, PublishError> {
    let name = &lp.language.name;
    let repo = repository_path(config, name);
    // The layer's bytes are written again only now, while the runtime is read.
    let (runtime, layer_body) =
        futures_util::future::try_join(fetch_runtime(registry, lp, &repo, runtime), async {
            layer_file(lp).await
        })
        .await?;
    let image = image::compose(
        &format!("{}:{}", lp.repository, lp.runtime_tag),
        &runtime,
        &lp.layer,
        &image_labels(plan, lp),
    )?;
    let mount_from = plan
        .languages
        .iter()
        .filter(|other| other.layer.blob.digest == lp.layer.blob.digest)
        .map(|other| repository_path(config, &other.language.name))
        .find(|other| *other != repo);
    // The layer and the configs at once: each is a `HEAD`, then maybe a `POST` and a `PUT`.
    let layer_push = registry.push_blob(
        &repo,
        &lp.layer.blob.digest,
        layer_body,
        mount_from.as_deref(),
    );
    let config_pushes = futures_util::future::try_join_all(
        image
            .configs
            .iter()
            .map(|c| registry.push_blob(&repo, &c.digest, c.bytes.clone().into(), None)),
    );
    let (pushed, _) = futures_util::future::try_join(layer_push, config_pushes).await?;
    progress_blob(name, &lp.layer.blob, pushed);
    for (media_type, child) in &image.children {
        registry
            .put_manifest(
                &repo,
                &child.digest,
                media_type,
                child.bytes.clone(),
                &child.digest,
            )
            .await?;
    }
    registry
        .put_manifest(
            &repo,
            &lp.tag,
            &image.media_type,
            image.top.bytes.clone(),
            image.digest(),
        )
        .await?;
    Ok(image)
}

/// The scripts layer, written again for the upload into an unnamed temporary file (off the
/// async threads), which the upload streams: a big layer is never held in memory. Its bytes
/// must be the ones the plan described, whose digest names the image.
async fn layer_file(lp: &LanguagePlan) -> Result<BlobBody, PublishError> {
    let context = lp.language.context.clone();
    let dir = lp.language.image_scripts_dir.clone();
    let (written, file) = tokio::task::spawn_blocking(move || {
        let file = tempfile::tempfile().map_err(PublishError::TempFile)?;
        let (written, out) = layer::write_layer(&context, &dir, std::io::BufWriter::new(file))?;
        let file = out
            .into_inner()
            .map_err(|e| PublishError::TempFile(e.into_error()))?;
        Ok::<_, PublishError>((written, file))
    })
    .await
    .expect("writing the scripts layer does not panic")?;
    if written.blob != lp.layer.blob {
        return Err(PublishError::ScriptsChanged {
            language: lp.language.name.clone(),
            dir: lp.language.dir.clone(),
            planned: lp.layer.blob.digest.clone(),
            now: written.blob.digest,
        });
    }
    Ok(BlobBody::File {
        file: Arc::new(file),
        size: written.blob.size,
    })
}

fn progress_blob(language: &str, blob: &Digested, pushed: crate::registry::BlobPush) {
    tracing::debug!(
        language,
        digest = blob.digest,
        size = blob.size,
        ?pushed,
        "scripts layer"
    );
}

/// The content tag must name exactly `digest` in the registry.
async fn verify(
    registry: &impl Registry,
    config: &Config,
    lp: &LanguagePlan,
    digest: &str,
) -> Result<(), PublishError> {
    let repo = repository_path(config, &lp.language.name);
    let found = match registry.lookup(&repo, &lp.tag).await? {
        Lookup::Present { digest: found } if found == digest => return Ok(()),
        Lookup::Present { digest: found } => found,
        Lookup::Missing => "nothing".to_string(),
    };
    Err(PublishError::Conflict {
        language: lp.language.name.clone(),
        image: lp.image.clone(),
        expected: digest.to_string(),
        found,
    })
}

/// The extra tags a language got.
struct ExtraTags {
    /// The mutable alias, where the repository lets tags move.
    alias: Option<String>,
    /// `git-<commit>`, on an image this run made.
    commit: Option<String>,
}

/// Adds the extra tags, registry-side. `git-<commit>` goes only on an image this run made, so
/// it names the commit that produced the image: a reused image keeps the tag of the commit that
/// made it. Tagging it again at every commit would pile one tag per commit onto an image that
/// may stay unchanged for years, and ECR refuses a 1,001st tag on one image (a quota that cannot
/// be raised); which image a commit ran is in that commit's release manifest. The mutable alias
/// goes on every image where the repository lets tags move. An immutable tag that already names
/// other content is left as it is, and said so. An image made just now is put under its tags
/// from the bytes at hand; a reused one is looked up first and tagged registry-side only where
/// the alias names something else.
#[allow(clippy::too_many_arguments)]
async fn extra_tags(
    config: &Config,
    plan: &Plan,
    lp: &LanguagePlan,
    registry: &impl Registry,
    repositories: &HashMap<String, RepositoryInfo>,
    digest: &str,
    made: Option<(&str, &Bytes)>,
    progress: &Progress,
) -> Result<ExtraTags, PublishError> {
    let name = &lp.language.name;
    let repo = repository_path(config, name);
    let immutable = repositories.get(name).is_some_and(|r| r.immutable);
    let commit_tag = (plan.commit.as_ref())
        .filter(|_| made.is_some())
        .map(|c| commit_tag(c));
    let alias = alias_tag(name, &repo, immutable, progress);
    // Where tags may move, an image made just now is put under them without asking.
    let there = |tag: &Option<String>| {
        let (repo, tag) = (&repo, tag.clone());
        async move {
            match (tag, made, immutable) {
                (None, _, _) => Ok(None),
                (Some(_), Some(_), false) => Ok(Some(Lookup::Missing)),
                (Some(tag), _, _) => registry.lookup(repo, &tag).await.map(Some),
            }
        }
    };
    let (commit_there, alias_there) =
        futures_util::future::try_join(there(&commit_tag), there(&alias)).await?;
    let set = |tag: Option<String>, there: Option<Lookup>| {
        let repo = &repo;
        async move {
            let (Some(tag), Some(there)) = (tag, there) else {
                return Ok(None);
            };
            match there {
                Lookup::Present { digest: there } if there == digest => {}
                Lookup::Present { digest: there } if immutable => {
                    progress.log(
                        name,
                        &format!("immutable tag `{tag}` already names {there}: left as it is"),
                    );
                    return Ok(None);
                }
                _ => match made {
                    Some((media_type, bytes)) => {
                        registry
                            .put_manifest(repo, &tag, media_type, bytes.clone(), digest)
                            .await?
                    }
                    None => registry.put_tag(repo, digest, &tag).await?,
                },
            }
            Ok::<_, PublishError>(Some(tag))
        }
    };
    let (commit, alias) =
        futures_util::future::join(set(commit_tag, commit_there), set(alias, alias_there)).await;
    Ok(ExtraTags {
        alias: alias?,
        commit: commit?,
    })
}

/// The mutable alias to put, unless the repository's tags are immutable (then said so).
fn alias_tag(name: &str, repo: &str, immutable: bool, progress: &Progress) -> Option<String> {
    if immutable {
        progress.log(
            name,
            &format!("`{repo}` has immutable tags: `{ALIAS_TAG}` is not moved"),
        );
        None
    } else {
        Some(ALIAS_TAG.to_string())
    }
}

/// The runtime of this language's previous image, as build cache for a runner that starts
/// cold: the image the previous commit made (`git-<parent>`), else the newest one (`latest`:
/// the previous commit reused an older image, which carries no `git-<parent>`). The runtime that
/// image names in its `dev.krobs.runtime-digest` label (which a warm runner has built itself),
/// else that image itself (its layers begin with the runtime's). A cache that cannot be had
/// only costs time.
async fn cache_source(
    registry: &impl Registry,
    repo: &str,
    parent: Option<&str>,
) -> Option<String> {
    let parent = commit_tag(parent?);
    let mut manifest = None;
    // Read rather than looked up: its config names the runtime.
    for tag in [parent.as_str(), ALIAS_TAG] {
        if let Ok(Some(found)) = registry.get_manifest(repo, tag).await {
            manifest = Some(found);
            break;
        }
    }
    let manifest = manifest?;
    Some(
        previous_runtime(registry, repo, &manifest.body)
            .await
            .unwrap_or_else(|| Digest::of(&manifest.body).into_string()),
    )
}

/// The digest of the runtime an image of this repository (its manifest) was made on.
async fn previous_runtime(registry: &impl Registry, repo: &str, manifest: &[u8]) -> Option<String> {
    let config_digest = image::config_digest(repo, manifest).ok()?;
    let config = registry.get_blob(repo, &config_digest).await.ok()??;
    let config: serde_json::Value = serde_json::from_slice(&config).ok()?;
    let runtime = config
        .pointer("/config/Labels/dev.krobs.runtime-digest")?
        .as_str()?;
    let tag = format!("runtime-{}", &Digest::parse(runtime)?.hex()[..32]);
    match registry.lookup(repo, &tag).await {
        Ok(Lookup::Present { digest }) => Some(digest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::engine::RuntimeBuild;
    use crate::input::git::Changes;
    use crate::registry::BlobPush;
    use crate::registry::Fetched;
    use serde_json::json;
    use std::collections::HashSet;
    use std::path::Path;
    use std::sync::Mutex;

    const HOST: &str = "registry.test:5000";

    /// An in-memory registry: manifests by (repository, tag or digest), blobs by
    /// (repository, digest), and what was sent.
    #[derive(Default)]
    struct FakeRegistry {
        manifests: Mutex<HashMap<(String, String), (String, Bytes)>>,
        blobs: Mutex<HashMap<(String, String), Bytes>>,
        uploads: Mutex<Vec<(String, String)>>,
        mounts: Mutex<Vec<(String, String)>>,
        manifest_puts: Mutex<Vec<(String, String)>>,
    }

    impl FakeRegistry {
        fn store_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: Bytes) {
            let digest = Digest::of(&bytes).into_string();
            let mut m = self.manifests.lock().unwrap();
            m.insert(
                (repo.to_string(), digest),
                (media_type.to_string(), bytes.clone()),
            );
            m.insert(
                (repo.to_string(), reference.to_string()),
                (media_type.to_string(), bytes),
            );
        }

        fn uploads(&self) -> Vec<(String, String)> {
            self.uploads.lock().unwrap().clone()
        }
    }

    impl Registry for FakeRegistry {
        fn host(&self) -> &str {
            HOST
        }

        fn credentials(&self) -> Option<&Credentials> {
            None
        }

        async fn lookup(&self, repository: &str, reference: &str) -> Result<Lookup, RegistryError> {
            let m = self.manifests.lock().unwrap();
            Ok(
                match m.get(&(repository.to_string(), reference.to_string())) {
                    Some((_, bytes)) => Lookup::Present {
                        digest: Digest::of(bytes).into_string(),
                    },
                    None => Lookup::Missing,
                },
            )
        }

        async fn get_manifest(
            &self,
            repository: &str,
            reference: &str,
        ) -> Result<Option<Fetched>, RegistryError> {
            let m = self.manifests.lock().unwrap();
            Ok(m.get(&(repository.to_string(), reference.to_string()))
                .map(|(mt, bytes)| Fetched {
                    media_type: Some(mt.clone()),
                    digest: Some(Digest::of(bytes).into_string()),
                    body: bytes.clone(),
                }))
        }

        async fn get_blob(
            &self,
            repository: &str,
            digest: &str,
        ) -> Result<Option<Bytes>, RegistryError> {
            let b = self.blobs.lock().unwrap();
            Ok(b.get(&(repository.to_string(), digest.to_string()))
                .cloned())
        }

        async fn push_blob(
            &self,
            repository: &str,
            digest: &str,
            body: BlobBody,
            mount_from: Option<&str>,
        ) -> Result<BlobPush, RegistryError> {
            let bytes = match body {
                BlobBody::Bytes(bytes) => bytes,
                BlobBody::File { file, size } => {
                    let mut bytes = vec![0; size as usize];
                    std::os::unix::fs::FileExt::read_exact_at(&*file, &mut bytes, 0).unwrap();
                    Bytes::from(bytes)
                }
            };
            assert_eq!(Digest::of(&bytes).into_string(), digest);
            let mut b = self.blobs.lock().unwrap();
            let key = (repository.to_string(), digest.to_string());
            if b.contains_key(&key) {
                return Ok(BlobPush::Present);
            }
            let mounted = mount_from
                .is_some_and(|from| b.contains_key(&(from.to_string(), digest.to_string())));
            b.insert(key.clone(), bytes);
            if mounted {
                self.mounts.lock().unwrap().push(key);
                Ok(BlobPush::Mounted)
            } else {
                self.uploads.lock().unwrap().push(key);
                Ok(BlobPush::Uploaded)
            }
        }

        async fn put_manifest(
            &self,
            repository: &str,
            reference: &str,
            media_type: &str,
            bytes: Bytes,
            digest: &str,
        ) -> Result<(), RegistryError> {
            assert_eq!(Digest::of(&bytes).into_string(), digest);
            self.manifest_puts
                .lock()
                .unwrap()
                .push((repository.to_string(), reference.to_string()));
            self.store_manifest(repository, reference, media_type, bytes);
            Ok(())
        }

        async fn put_tag(
            &self,
            repository: &str,
            digest: &str,
            tag: &str,
        ) -> Result<(), RegistryError> {
            let (mt, bytes) = self.manifests.lock().unwrap()
                [&(repository.to_string(), digest.to_string())]
                .clone();
            self.store_manifest(repository, tag, &mt, bytes);
            Ok(())
        }
    }

    /// An engine that "builds" a one-layer runtime straight into the fake registry, or fails
    /// for the languages named.
    struct FakeEngine<'a> {
        registry: &'a FakeRegistry,
        fail: HashSet<String>,
        /// Languages whose next push fails, as a daemon pushing the same image twice at once.
        push_fails_once: Mutex<HashSet<String>>,
        builds: Mutex<Vec<(String, String, Option<String>)>>,
    }

    impl<'a> FakeEngine<'a> {
        fn new(registry: &'a FakeRegistry, fail: &[&str]) -> FakeEngine<'a> {
            FakeEngine {
                registry,
                fail: fail.iter().map(|s| s.to_string()).collect(),
                push_fails_once: Mutex::default(),
                builds: Mutex::new(Vec::new()),
            }
        }

        fn built(&self) -> Vec<String> {
            let mut b: Vec<String> = self
                .builds
                .lock()
                .unwrap()
                .iter()
                .map(|(l, _, _)| l.clone())
                .collect();
            b.sort();
            b
        }
    }

    impl Engine for FakeEngine<'_> {
        async fn build_and_push(
            &self,
            req: RuntimeBuild<'_>,
            _progress: &Progress,
        ) -> Result<(), DockerError> {
            self.builds.lock().unwrap().push((
                req.language.to_string(),
                req.tag.to_string(),
                req.cache.clone(),
            ));
            assert!(
                req.context
                    .entries
                    .iter()
                    .all(|e| !e.rel.starts_with("scripts")),
                "the runtime's context holds no scripts"
            );
            tokio::task::yield_now().await;
            if self.fail.contains(req.language) {
                return Err(DockerError::Build {
                    language: req.language.to_string(),
                    step: "Step 2/3 : RUN false".to_string(),
                    message: "exit 1".to_string(),
                    last_lines: Vec::new(),
                });
            }
            if self.push_fails_once.lock().unwrap().remove(req.language) {
                return Err(DockerError::Push {
                    language: req.language.to_string(),
                    image: format!("{}:{}", req.repository, req.tag),
                    message: "manifest blob unknown: blob unknown to registry".to_string(),
                });
            }
            let repo = req
                .repository
                .strip_prefix(&format!("{HOST}/"))
                .unwrap()
                .to_string();
            let config = Blob::new(
                serde_json::to_vec(&json!({
                    "architecture": "amd64", "os": "linux",
                    "config": {"User": "10001:10001"},
                    "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", req.language)]},
                    "history": [{"created_by": "RUN build"}],
                }))
                .unwrap(),
            );
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": image::DOCKER_MANIFEST,
                "config": {"mediaType": image::DOCKER_CONFIG, "size": config.size(), "digest": config.digest},
                "layers": [{"mediaType": image::DOCKER_LAYER, "size": 1, "digest": "sha256:base"}],
            }))
            .unwrap();
            self.registry
                .blobs
                .lock()
                .unwrap()
                .insert((repo.clone(), config.digest.clone()), config.bytes);
            self.registry
                .store_manifest(&repo, req.tag, image::DOCKER_MANIFEST, manifest.into());
            Ok(())
        }
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A repository with three languages; `b` and `c` have the same scripts.
    fn repo() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "krobs.toml",
            &format!("repository = \"krobs/{{language}}\"\n[registry]\nkind = \"oci\"\nhost = \"{HOST}\"\n[build]\nconcurrency = 1\n"),
        );
        for l in ["a", "b", "c"] {
            write(
                t.path(),
                &format!("languages/{l}/Dockerfile"),
                &format!("FROM {l}\n"),
            );
            let body = if l == "a" { "echo a" } else { "echo same" };
            write(
                t.path(),
                &format!("languages/{l}/scripts/run.sh"),
                &format!("# ---\n# owner = \"t\"\n# description = \"d\"\n# ---\n{body}\n"),
            );
        }
        t
    }

    fn plan_of(root: &Path) -> (Config, Plan) {
        let config = Config::load(&root.join("krobs.toml")).unwrap();
        let inventory = crate::plan::discover::discover(&config, &[]).unwrap();
        let plan = crate::plan::make(&config, inventory, None, None, Changes::NotAsked).unwrap();
        (config, plan)
    }

    async fn run(
        root: &Path,
        registry: &FakeRegistry,
        engine: &FakeEngine<'_>,
    ) -> Result<Vec<Published>, PublishError> {
        let (config, mut plan) = plan_of(root);
        lookup_all(registry, &config, &mut plan).await.unwrap();
        let progress = Progress::new(crate::progress::Mode::Plain, &[]);
        publish(&config, &plan, registry, &HashMap::new(), engine, &progress).await
    }

    fn outcomes(published: &[Published]) -> Vec<(&str, &'static str)> {
        published
            .iter()
            .map(|p| {
                (
                    p.language.as_str(),
                    match p.outcome {
                        Outcome::Reused => "reused",
                        Outcome::ScriptsAppended { .. } => "appended",
                        Outcome::RuntimeBuilt { .. } => "built",
                    },
                )
            })
            .collect()
    }

    // One story over four runs against the same registry (build, reuse, append, rebuild): each
    // step's expectations depend on the state the previous ones left.
    #[tokio::test]
    async fn runtimes_are_built_once_then_scripts_changes_only_append_a_layer() {
        let t = repo();
        let registry = FakeRegistry::default();

        let engine = FakeEngine::new(&registry, &[]);
        let first = run(t.path(), &registry, &engine).await.unwrap();
        assert_eq!(
            outcomes(&first),
            [("a", "built"), ("b", "built"), ("c", "built")]
        );
        assert_eq!(engine.built(), ["a", "b", "c"]);
        // Each image is the runtime plus one layer, under its content tag, digest checked.
        let (_, plan) = plan_of(t.path());
        for (p, lp) in first.iter().zip(&plan.languages) {
            let repo = format!("krobs/{}", p.language);
            let fetched = registry
                .get_manifest(&repo, &lp.tag)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(Digest::of(&fetched.body).into_string(), p.digest);
            let m: serde_json::Value = serde_json::from_slice(&fetched.body).unwrap();
            assert_eq!(m["layers"][1]["digest"], lp.layer.blob.digest);
            assert_eq!(p.tags, [lp.tag.clone(), ALIAS_TAG.to_string()]);
        }
        // `b` and `c` have the same scripts layer: one of them uploads it, the other mounts
        // it (concurrency 1 builds them in turn) or finds it.
        let layer_uploads = |l: &str| {
            registry
                .uploads()
                .iter()
                .filter(|(r, d)| {
                    r == &format!("krobs/{l}") && d == &plan.languages[1].layer.blob.digest
                })
                .count()
        };
        assert_eq!(layer_uploads("b") + layer_uploads("c"), 1);
        assert_eq!(registry.mounts.lock().unwrap().len(), 1);

        // Nothing changed: nothing built or put.
        let puts = registry.manifest_puts.lock().unwrap().len();
        let engine = FakeEngine::new(&registry, &[]);
        let second = run(t.path(), &registry, &engine).await.unwrap();
        assert_eq!(
            outcomes(&second),
            [("a", "reused"), ("b", "reused"), ("c", "reused")]
        );
        assert!(engine.built().is_empty());
        assert_eq!(registry.manifest_puts.lock().unwrap().len(), puts);
        assert_eq!(
            first.iter().map(|p| &p.digest).collect::<Vec<_>>(),
            second.iter().map(|p| &p.digest).collect::<Vec<_>>()
        );

        // One script changes: its language gets a new layer on the same runtime, no build.
        write(
            t.path(),
            "languages/a/scripts/run.sh",
            "# ---\n# owner = \"t\"\n# description = \"d\"\n# ---\necho A\n",
        );
        let uploads = registry.uploads().len();
        let engine = FakeEngine::new(&registry, &[]);
        let third = run(t.path(), &registry, &engine).await.unwrap();
        assert_eq!(
            outcomes(&third),
            [("a", "appended"), ("b", "reused"), ("c", "reused")]
        );
        assert!(engine.built().is_empty());
        // The layer and the config: two blobs.
        assert_eq!(registry.uploads().len(), uploads + 2);
        assert_ne!(third[0].digest, first[0].digest);

        // The runtime changes: it is built again, then the layer goes on.
        write(t.path(), "languages/a/Dockerfile", "FROM a2\n");
        let engine = FakeEngine::new(&registry, &[]);
        let fourth = run(t.path(), &registry, &engine).await.unwrap();
        assert_eq!(
            outcomes(&fourth),
            [("a", "built"), ("b", "reused"), ("c", "reused")]
        );
        assert_eq!(engine.built(), ["a"]);
    }

    #[tokio::test]
    async fn failures_are_all_named_and_the_others_still_finish() {
        let t = repo();
        let registry = FakeRegistry::default();
        let engine = FakeEngine::new(&registry, &["a", "c"]);
        let e = run(t.path(), &registry, &engine).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 of 3 languages failed (`a`, `c`); first: build [a] failed at `Step 2/3 : RUN false`: exit 1"
        );
        assert!(matches!(
            e.root(),
            PublishError::Docker(DockerError::Build { .. })
        ));
        // `b` was published all the same: a rerun reuses it.
        let engine = FakeEngine::new(&registry, &["a"]);
        let e = run(t.path(), &registry, &engine).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "build [a] failed at `Step 2/3 : RUN false`: exit 1"
        );
        assert_eq!(engine.built(), ["a", "c"]);
    }

    #[tokio::test]
    async fn a_runtime_push_that_fails_is_tried_once_more_and_a_build_that_fails_is_not() {
        let t = repo();
        let registry = FakeRegistry::default();
        let engine = FakeEngine::new(&registry, &[]);
        engine
            .push_fails_once
            .lock()
            .unwrap()
            .insert("b".to_string());
        let published = run(t.path(), &registry, &engine).await.unwrap();
        assert_eq!(
            outcomes(&published),
            [("a", "built"), ("b", "built"), ("c", "built")]
        );
        assert_eq!(engine.built(), ["a", "b", "b", "c"]);
    }

    #[tokio::test]
    async fn a_tag_that_answers_other_content_is_a_conflict() {
        let t = repo();
        let registry = FakeRegistry::default();
        let engine = FakeEngine::new(&registry, &[]);
        run(t.path(), &registry, &engine).await.unwrap();
        let (config, plan) = plan_of(t.path());
        let lp = &plan.languages[0];
        let e = verify(&registry, &config, lp, "sha256:other")
            .await
            .unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "[a] `{}` is in the registry as `sha256:",
                lp.image
            )),
            "{e}"
        );
    }
}
