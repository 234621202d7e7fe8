//! The build cache of a runtime build on a runner that starts cold: the runtime of the
//! language's previous image, found in the registry.

use crate::input::git::commit_tag;
use crate::plan::digest::Digest;
use crate::registry::{Lookup, Registry};

use super::image;
use super::tags::ALIAS_TAG;

/// The runtime of this language's previous image, as build cache for a runner that starts
/// cold: the image the previous commit made (`git-<parent>`), else the newest one (`latest`:
/// the previous commit reused an older image, which carries no `git-<parent>`). The runtime that
/// image names in its `dev.krobs.runtime-digest` label (which a warm runner has built itself),
/// else that image itself (its layers begin with the runtime's). A cache that cannot be had
/// only costs time.
pub(super) async fn cache_source(
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
