//! Why publishing a language failed: the one error type of the publish stage.

use crate::docker::build::DockerError;
use crate::plan::digest::DigestError;
use crate::registry::credentials::CredentialsError;
use crate::registry::ecr::AwsError;
use crate::registry::{OpenError, RegistryError};

use super::image::ComposeError;

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
    // The cause is said here, before what to do: not a `source` too, or the one-line message
    // (`Error::message`, which adds every source) would say it twice.
    #[error("cannot write the scripts layer to a temporary file: {0}; set `TMPDIR` to a writable folder with room for it")]
    TempFile(std::io::Error),
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

impl From<OpenError> for PublishError {
    fn from(e: OpenError) -> PublishError {
        match e {
            OpenError::Aws(e) => PublishError::Aws(e),
            OpenError::Credentials(e) => PublishError::Credentials(e),
            OpenError::Registry(e) => PublishError::Registry(e),
        }
    }
}
