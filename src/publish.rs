//! The real run after the plan: registry session, one lookup per language, builds of what is
//! missing (concurrently, up to `[build] concurrency`), pushes checked by a `HEAD` that must
//! answer the pushed digest, and the extra tags.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::future::join_all;
use tokio::sync::Semaphore;

use crate::build::{self, BuildRequest, DockerError};
use crate::config::{Config, RegistryConfig};
use crate::git;
use crate::manifest::Published;
use crate::plan::{LanguagePlan, Plan, RegistryState};
use crate::progress::Progress;
use crate::registry::credentials::{self, CredentialsError};
use crate::registry::ecr::{AwsError, Ecr, RepositoryInfo};
use crate::registry::retry::RetryPolicy;
use crate::registry::{Credentials, Lookup, RegistryClient, RegistryError};

/// The mutable alias pushed where the repository allows moving tags.
pub const ALIAS_TAG: &str = "latest";

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
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
    #[error("[{language}] the pushed image `{image}` has no digest for `{repository}` in the Docker Engine")]
    NoDigest {
        language: String,
        image: String,
        repository: String,
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

/// Where a build comes from, for its labels and its cache.
#[derive(Debug, Default)]
struct Provenance {
    /// The `origin` remote, credentials stripped.
    source: Option<String>,
    /// HEAD's first parent, whose `git-` tags name the previous images.
    parent: Option<String>,
}

/// A registry ready for use: its client (with credentials) and what each repository allows.
pub struct Session {
    pub client: RegistryClient,
    pub repositories: HashMap<String, RepositoryInfo>,
    /// The manifest's repository was created by this run (ECR, mutable tags).
    pub manifest_repository_created: bool,
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
    let host = config.registry.host();
    let mut repositories = HashMap::new();
    let mut manifest_repository_created = false;
    let credentials = match &config.registry {
        RegistryConfig::Ecr {
            account_id,
            region,
            create_repositories,
            ..
        } => {
            let ecr = Ecr::connect(account_id, region).await;
            let credentials = ecr.credentials().await?;
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
            Some(credentials)
        }
        RegistryConfig::Oci { host } => credentials::for_oci(host)?,
    };
    // The lookups that follow check the credentials before anything is built.
    let client = RegistryClient::new(&host, credentials, RetryPolicy::default())?;
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
    client: &RegistryClient,
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

/// Builds and pushes what is missing; returns what every language ended as.
pub async fn publish(
    config: &Config,
    plan: &Plan,
    session: &Session,
    progress: &Progress,
) -> Result<Vec<Published>, PublishError> {
    let needs_docker = plan
        .languages
        .iter()
        .any(|lp| !matches!(lp.registry, RegistryState::Present { .. }));
    let docker = if needs_docker {
        Some(build::connect().await?)
    } else {
        None
    };
    // What only a build needs: the labels' source, and the previous commit for the cache.
    let provenance = if needs_docker {
        Provenance {
            source: git::source_url(&config.root),
            parent: plan
                .commit
                .as_ref()
                .and_then(|_| git::first_parent(&config.root)),
        }
    } else {
        Provenance::default()
    };
    let semaphore = Arc::new(Semaphore::new(config.build.concurrency));
    let jobs = plan.languages.iter().map(|lp| {
        let docker = docker.as_ref();
        let semaphore = semaphore.clone();
        let provenance = &provenance;
        async move {
            let result = match &lp.registry {
                RegistryState::Present { digest } => Ok(Published {
                    language: lp.language.name.clone(),
                    digest: digest.clone(),
                    tags: vec![lp.tag.clone()],
                    commit_tag: None,
                    built: false,
                }),
                _ => {
                    let _permit = semaphore
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    let docker = docker.expect("Docker is connected when something is built");
                    build_and_push(config, plan, lp, session, docker, provenance, progress).await
                }
            };
            let result = match result {
                Ok(mut p) => extra_tags(config, plan, lp, session, &p.digest, progress)
                    .await
                    .map(|extra| {
                        p.tags.extend(extra.alias);
                        p.commit_tag = extra.commit;
                        p
                    }),
                Err(e) => Err(e),
            };
            match &result {
                Ok(p) if p.built => {
                    progress.finish(&lp.language.name, &format!("built and pushed {}", p.digest))
                }
                Ok(p) => progress.finish(
                    &lp.language.name,
                    &format!("reused {} (already in the registry)", p.digest),
                ),
                Err(e) => {
                    // The full error, with the build's last lines, closes the run.
                    let text = e.to_string();
                    let first = text.lines().next().unwrap_or_default();
                    let first = first.trim_end_matches("; last lines:");
                    progress.finish(&lp.language.name, &format!("failed: {first}"))
                }
            }
            result
        }
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
    // reused ones at the lookup, built ones right after their push.
    Ok(published)
}

/// The content tag must name exactly `digest` in the registry.
async fn verify(
    session: &Session,
    config: &Config,
    lp: &LanguagePlan,
    digest: &str,
) -> Result<(), PublishError> {
    let repo = repository_path(config, &lp.language.name);
    match session.client.lookup(&repo, &lp.tag).await? {
        Lookup::Present { digest: found } if found == digest => Ok(()),
        Lookup::Present { digest: found } => Err(PublishError::Conflict {
            language: lp.language.name.clone(),
            image: lp.image.clone(),
            expected: digest.to_string(),
            found,
        }),
        Lookup::Missing => Err(PublishError::Conflict {
            language: lp.language.name.clone(),
            image: lp.image.clone(),
            expected: digest.to_string(),
            found: "nothing".to_string(),
        }),
    }
}

async fn build_and_push(
    config: &Config,
    plan: &Plan,
    lp: &LanguagePlan,
    session: &Session,
    docker: &bollard::Docker,
    provenance: &Provenance,
    progress: &Progress,
) -> Result<Published, PublishError> {
    let name = &lp.language.name;
    let log = |line: &str| progress.log(name, line);

    progress.stage(name, "building");
    let mut labels = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            format!("krobs-{name}"),
        ),
        (
            "dev.krobs.input-digest".to_string(),
            lp.input_digest.to_string(),
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
    if let Some(commit) = &plan.commit {
        labels.insert(
            "org.opencontainers.image.revision".to_string(),
            commit.clone(),
        );
    }
    if let Some(source) = &provenance.source {
        labels.insert(
            "org.opencontainers.image.source".to_string(),
            source.to_string(),
        );
    }
    let cache_from = cache_source(
        config,
        provenance.parent.as_deref(),
        lp,
        session,
        docker,
        progress,
    )
    .await;
    build::build(
        docker,
        BuildRequest {
            language: name,
            context: &lp.language.context,
            image: lp.image.clone(),
            build_args: lp.language.inputs.build_args.clone().into_iter().collect(),
            labels,
            platform: lp.language.inputs.platform.clone(),
            cache_from,
        },
        &log,
    )
    .await?;

    progress.stage(name, "pushing");
    let host = session.client.host().to_string();
    let creds = session.client.credentials();
    build::push(docker, name, &lp.repository, &lp.tag, creds, &host, &log).await?;
    let digest = pushed_digest(docker, name, &lp.image, &lp.repository).await?;
    verify(session, config, lp, &digest).await?;

    Ok(Published {
        language: name.clone(),
        digest,
        tags: vec![lp.tag.clone()],
        commit_tag: None,
        built: true,
    })
}

/// The extra tags a language got.
struct ExtraTags {
    /// The mutable alias, where the repository lets tags move.
    alias: Option<String>,
    /// `git-<commit>`.
    commit: Option<String>,
}

/// Adds the extra tags, registry-side: `git-<commit>` always, and the mutable alias where the
/// repository lets tags move. An immutable tag that already names other content is left as it
/// is, and said so.
async fn extra_tags(
    config: &Config,
    plan: &Plan,
    lp: &LanguagePlan,
    session: &Session,
    digest: &str,
    progress: &Progress,
) -> Result<ExtraTags, PublishError> {
    let name = &lp.language.name;
    let repo = repository_path(config, name);
    let immutable = session.repositories.get(name).is_some_and(|r| r.immutable);
    let commit_tag = plan
        .commit
        .as_ref()
        .map(|c| format!("git-{}", &c[..c.len().min(12)]));
    let alias = if immutable {
        progress.log(
            name,
            &format!("`{repo}` has immutable tags: `{ALIAS_TAG}` is not moved"),
        );
        None
    } else {
        Some(ALIAS_TAG.to_string())
    };
    let set = |tag: Option<String>| {
        let repo = &repo;
        async move {
            let Some(tag) = tag else {
                return Ok(None);
            };
            match session.client.lookup(repo, &tag).await? {
                Lookup::Present { digest: there } if there == digest => {}
                Lookup::Present { digest: there } if immutable => {
                    progress.log(
                        name,
                        &format!("immutable tag `{tag}` already names {there}: left as it is"),
                    );
                    return Ok(None);
                }
                _ => session.client.put_tag(repo, digest, &tag).await?,
            }
            Ok::<_, PublishError>(Some(tag))
        }
    };
    let (commit, alias) = futures_util::future::join(set(commit_tag), set(alias)).await;
    Ok(ExtraTags {
        alias: alias?,
        commit: commit?,
    })
}

/// The image of this language at the previous commit (`git-<parent>`), as build cache for a
/// runner that starts cold: pulled when the registry has it and the daemon does not. A cache
/// that cannot be had only costs time.
async fn cache_source(
    config: &Config,
    parent: Option<&str>,
    lp: &LanguagePlan,
    session: &Session,
    docker: &bollard::Docker,
    progress: &Progress,
) -> Vec<String> {
    let name = &lp.language.name;
    let Some(parent) = parent else {
        return Vec::new();
    };
    let tag = format!("git-{}", &parent[..parent.len().min(12)]);
    let digest = match session
        .client
        .lookup(&repository_path(config, name), &tag)
        .await
    {
        Ok(Lookup::Present { digest }) => digest,
        _ => return Vec::new(),
    };
    // By digest: extra tags are set registry-side, so the daemon knows the image, if at all,
    // by the digest it pushed or pulled it under.
    let image = format!("{}@{digest}", lp.repository);
    if build::has_image(docker, &image).await {
        return vec![image];
    }
    progress.stage(name, &format!("pulling {image} as build cache"));
    match build::pull(
        docker,
        name,
        &lp.repository,
        &digest,
        session.client.credentials(),
        session.client.host(),
    )
    .await
    {
        Ok(()) => vec![image],
        Err(e) => {
            progress.log(name, &format!("building without cache: {e}"));
            Vec::new()
        }
    }
}

/// The registry digest of a pushed image, from the daemon's repo digests (bollard's push
/// stream does not carry it).
async fn pushed_digest(
    docker: &bollard::Docker,
    language: &str,
    image: &str,
    repository: &str,
) -> Result<String, PublishError> {
    let inspect = docker
        .inspect_image(image)
        .await
        .map_err(|e| DockerError::Api {
            language: language.to_string(),
            call: "inspect_image",
            cause: e.to_string(),
        })?;
    let prefix = format!("{repository}@");
    inspect
        .repo_digests
        .unwrap_or_default()
        .iter()
        .find_map(|d| d.strip_prefix(&prefix).map(str::to_string))
        .ok_or_else(|| PublishError::NoDigest {
            language: language.to_string(),
            image: image.to_string(),
            repository: repository.to_string(),
        })
}
