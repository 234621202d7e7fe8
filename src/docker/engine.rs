//! The Docker Engine as the orchestration sees it: one call that builds a runtime and pushes
//! it. The real engine connects on first use only, so a run that builds no runtime never
//! contacts a Docker Engine.

use std::collections::HashMap;

use bollard::Docker;
use tokio::sync::OnceCell;

use crate::docker::build::{self, BuildRequest, DockerError};
use crate::input::context::Context;
use crate::progress::Progress;
use crate::registry::Credentials;

/// A runtime to build and push as `repository:tag`.
#[derive(Debug, Clone)]
pub struct RuntimeBuild<'a> {
    pub language: &'a str,
    /// The language's context without `scripts/`.
    pub context: &'a Context,
    /// `host/repository`.
    pub repository: &'a str,
    /// `runtime-<digest>`.
    pub tag: &'a str,
    pub build_args: HashMap<String, String>,
    pub platform: String,
    /// The Dockerfile stage to build; `None`: the last.
    pub target: Option<String>,
    /// `[build] network`.
    pub network: Option<String>,
    /// The digest of a previous image of this language in `repository`, whose layers may
    /// serve as build cache.
    pub cache: Option<String>,
    pub credentials: Option<&'a Credentials>,
    pub host: &'a str,
}

/// What builds runtimes.
#[allow(async_fn_in_trait)]
pub trait Engine {
    /// Builds the runtime and pushes it. The registry, not the engine, says its digest.
    async fn build_and_push(
        &self,
        req: RuntimeBuild<'_>,
        progress: &Progress,
    ) -> Result<(), DockerError>;
}

/// The Docker Engine named by `DOCKER_HOST`, connected on first use.
#[derive(Default)]
pub struct DockerEngine {
    docker: OnceCell<Docker>,
}

impl DockerEngine {
    async fn docker(&self) -> Result<&Docker, DockerError> {
        self.docker.get_or_try_init(build::connect).await
    }

    /// The previous image as cache: used when the daemon has it, pulled when it does not.
    /// A cache that cannot be had only costs time.
    async fn cache(
        &self,
        docker: &Docker,
        req: &RuntimeBuild<'_>,
        progress: &Progress,
    ) -> Vec<String> {
        let Some(digest) = &req.cache else {
            return Vec::new();
        };
        // By digest: extra tags are set registry-side, so the daemon knows the image, if at
        // all, by the digest it pushed or pulled it under.
        let image = format!("{}@{digest}", req.repository);
        if build::has_image(docker, &image).await {
            return vec![image];
        }
        progress.stage(req.language, &format!("pulling {image} as build cache"));
        match build::pull(
            docker,
            req.language,
            req.repository,
            digest,
            req.credentials,
            req.host,
        )
        .await
        {
            Ok(()) => vec![image],
            Err(e) => {
                progress.log(req.language, &format!("building without cache: {e}"));
                Vec::new()
            }
        }
    }
}

impl Engine for DockerEngine {
    async fn build_and_push(
        &self,
        req: RuntimeBuild<'_>,
        progress: &Progress,
    ) -> Result<(), DockerError> {
        let docker = self.docker().await?;
        let name = req.language;
        let log = |line: &str| progress.log(name, line);
        let cache_from = self.cache(docker, &req, progress).await;
        progress.stage(name, "building the runtime");
        build::build(
            docker,
            BuildRequest {
                language: name,
                context: req.context,
                image: format!("{}:{}", req.repository, req.tag),
                build_args: req.build_args.clone(),
                platform: req.platform.clone(),
                cache_from,
                target: req.target.clone(),
                network: req.network.clone(),
            },
            &log,
        )
        .await?;
        progress.stage(name, "pushing the runtime");
        build::push(
            docker,
            name,
            req.repository,
            req.tag,
            req.credentials,
            req.host,
            &log,
        )
        .await
    }
}
