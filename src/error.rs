//! The top-level error: one variant per pipeline phase; [`crate::exit`] gives each its exit code.

use crate::deploy::render::RenderError;
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
    // The cause is in the chain `message` prints: not repeated here.
    #[error("cannot write to stdout")]
    Output(#[source] std::io::Error),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_line_message_says_each_cause_once() {
        let cause = || std::io::Error::other("No space left on device");
        let temp = Error::Publish(PublishError::TempFile(cause()));
        assert_eq!(
            temp.message(),
            "cannot write the scripts layer to a temporary file: No space left on device; set `TMPDIR` to a writable folder with room for it"
        );
        assert_eq!(
            Error::Output(cause()).message(),
            "cannot write to stdout: No space left on device"
        );
    }
}
