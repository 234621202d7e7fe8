//! The top-level error: one variant per pipeline phase, each with its exit code.

use crate::deploy::render::RenderError;
use crate::docker::build::DockerError;
use crate::input::config::ConfigError;
use crate::lint::syntax::SyntaxCheckError;
use crate::plan::digest::DigestError;
use crate::plan::discover::DiscoverError;
use crate::publish::PublishError;
use crate::release::manifest::ManifestError;
use crate::release::ReleaseError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Syntax(#[from] SyntaxCheckError),
    #[error(transparent)]
    Dirty(#[from] crate::input::git::DirtyTree),
    /// A flag the command does not use.
    #[error("{0}")]
    Usage(String),
    #[error("cannot write to stdout: {0}")]
    Output(#[source] std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Documented exit codes (README, `--help`).
pub mod exit {
    pub const INTERNAL: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const INPUT: u8 = 3;
    pub const DOCKER: u8 = 4;
    pub const REGISTRY: u8 = 5;
    pub const AWS: u8 = 6;
}

impl Error {
    /// The error and every cause, on one line.
    pub fn message(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        message
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Discover(_) | Error::Digest(_) | Error::Dirty(_) => {
                exit::INPUT
            }
            Error::Publish(e) => match e.root() {
                PublishError::Aws(_) => exit::AWS,
                // A push that fails is the registry failing, seen through the daemon.
                PublishError::Docker(DockerError::Push { .. }) => exit::REGISTRY,
                PublishError::Docker(_) => exit::DOCKER,
                PublishError::Digest(_) | PublishError::ScriptsChanged { .. } => exit::INPUT,
                PublishError::TempFile(_) => exit::INTERNAL,
                _ => exit::REGISTRY,
            },
            Error::Release(e) => e.exit_code(),
            Error::Syntax(
                SyntaxCheckError::Digest(_)
                | SyntaxCheckError::Read { .. }
                | SyntaxCheckError::TooLarge { .. },
            ) => exit::INPUT,
            Error::Syntax(SyntaxCheckError::Docker(_)) => exit::DOCKER,
            Error::Render(e) => e.exit_code(),
            Error::Usage(_) => exit::USAGE,
            Error::Manifest(_) | Error::Output(_) | Error::Runtime(_) => exit::INTERNAL,
        }
    }
}
