//! Opening the registry for a run: the client with its credentials, and on ECR every
//! repository checked (or created) before anything is built; a dry run's credentials.

use std::collections::HashMap;

use crate::input::config::{Config, RegistryConfig};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::registry::credentials::{self, CredentialsError};
use crate::registry::ecr::RepositoryInfo;
use crate::registry::{Credentials, RegistryClient};

use super::error::PublishError;

/// A registry ready for use: its client (with credentials) and what each repository allows.
pub struct Session {
    pub client: RegistryClient,
    pub repositories: HashMap<String, RepositoryInfo>,
    /// The manifest's repository was created by this run (ECR, mutable tags).
    pub manifest_repository_created: bool,
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
            let repo = config.repository_for(&lp.language.name);
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
