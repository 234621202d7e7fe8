//! The documented exit codes (README, "Exit codes") and the one place that decides which error
//! gets which. The phases' errors know nothing of them; the tests import them from here.

use crate::deploy::render::RenderError;
use crate::docker::build::DockerError;
use crate::error::Error;
use crate::lint::syntax::SyntaxCheckError;
use crate::publish::PublishError;
use crate::release::ReleaseError;

/// Writing the manifest or the output failed, or the async runtime did not start.
pub const INTERNAL: u8 = 1;
/// A bad command line: unknown flag or script id, a malformed release reference.
pub const USAGE: u8 = 2;
/// Bad input: `krobs.toml`, headers, language folders, a manifest `render` cannot use, a
/// working tree that is not HEAD.
pub const INPUT: u8 = 3;
/// The Docker Engine: unreachable, TLS refused, or a build step failed.
pub const DOCKER: u8 = 4;
/// The registry: unreachable, credentials refused, push failed, digest conflict.
pub const REGISTRY: u8 = 5;
/// AWS: credentials, `GetAuthorizationToken`, ECR repositories.
pub const AWS: u8 = 6;

/// The exit code of a failed run.
pub fn code(error: &Error) -> u8 {
    match error {
        Error::Config(_) | Error::Discover(_) | Error::Digest(_) | Error::Dirty(_) => INPUT,
        Error::Publish(e) => publish(e),
        Error::Release(e) => release(e),
        Error::Syntax(
            SyntaxCheckError::Digest(_)
            | SyntaxCheckError::Read { .. }
            | SyntaxCheckError::TooLarge { .. },
        ) => INPUT,
        Error::Syntax(SyntaxCheckError::Docker(_)) => DOCKER,
        Error::Render(e) => render(e),
        Error::Usage(_) => USAGE,
        Error::Manifest(_) | Error::Output(_) | Error::Runtime(_) => INTERNAL,
    }
}

fn publish(e: &PublishError) -> u8 {
    match e.root() {
        PublishError::Aws(_) => AWS,
        // A push that fails is the registry failing, seen through the daemon.
        PublishError::Docker(DockerError::Push { .. }) => REGISTRY,
        PublishError::Docker(_) => DOCKER,
        PublishError::Digest(_) | PublishError::ScriptsChanged { .. } => INPUT,
        PublishError::TempFile(_) => INTERNAL,
        _ => REGISTRY,
    }
}

fn release(e: &ReleaseError) -> u8 {
    match e {
        ReleaseError::Aws(_) => AWS,
        ReleaseError::BadReference { .. } | ReleaseError::ShortCommitTag { .. } => USAGE,
        _ => REGISTRY,
    }
}

/// Bad arguments are usage errors; a manifest that cannot be rendered is bad input.
fn render(e: &RenderError) -> u8 {
    match e {
        RenderError::UnknownScript { .. }
        | RenderError::NoScripts { .. }
        | RenderError::Name { .. }
        | RenderError::CronJobName { .. }
        | RenderError::Namespace(_)
        | RenderError::Env { .. } => USAGE,
        RenderError::Pull(e) => release(e),
        RenderError::Read { .. }
        | RenderError::TooLarge { .. }
        | RenderError::Invalid { .. }
        | RenderError::Format { .. }
        | RenderError::DigestMismatch { .. }
        | RenderError::Preview { .. }
        | RenderError::NotPinned { .. } => INPUT,
    }
}
