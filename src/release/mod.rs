//! The manifest as a release in the registry: published as an OCI artifact next to the images
//! (tagged `git-<commit>` and `latest`, which never moves backwards), and pulled back by tag,
//! commit or digest for `manifest pull`, `render` and Harness.
//!
//! The artifact is an OCI image manifest with `artifactType`
//! `application/vnd.krobs.manifest.v1+json`, the empty config descriptor and one layer holding
//! the manifest bytes. Built from the same bytes it is the same artifact, so a rerun finds it
//! and moves nothing.

pub mod manifest;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use bytes::Bytes;
use oci_spec::image::{
    Descriptor, Digest, ImageManifest, ImageManifestBuilder, MediaType, SCHEMA_VERSION,
};
use serde::Serialize;

use crate::input::config::Config;
use crate::input::git::{self, commit_tag};
use crate::plan::digest::Digest as ContentDigest;
use crate::publish::image::OCI_MANIFEST;
use crate::registry::credentials::CredentialsError;
use crate::registry::ecr::AwsError;
use crate::registry::{self, Lookup, OpenError, RegistryClient, RegistryError};
use manifest::{Manifest, Unreadable, FORMAT};

/// The `artifactType` of the published manifest, and the media type of its one layer.
pub const ARTIFACT_TYPE: &str = "application/vnd.krobs.manifest.v1+json";
/// The layer's `org.opencontainers.image.title`.
pub const LAYER_TITLE: &str = "krobs-manifest.json";
/// The tag that names the newest release.
pub const LATEST: &str = "latest";
/// The content of the empty config descriptor.
const EMPTY_CONFIG: &[u8] = b"{}";

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("`{reference}` is not a manifest reference: give `latest`, a commit (40 hex, or the tag `git-<first 12 hex>`), or the artifact's digest `sha256:<64 hex>`")]
    BadReference { reference: String },
    #[error("`{reference}` has {digits} hex digits: release tags use the first 12 of the commit (`git rev-parse --short=12 <commit>`), or give the full 40-hex commit")]
    ShortCommitTag { reference: String, digits: usize },
    #[error("no manifest `{reference}` in `{repository}`: pull `latest` or the `git-<commit>` of a commit a real run published")]
    Missing {
        repository: String,
        reference: String,
    },
    #[error("`{reference}` is not a krobs manifest artifact: {why}")]
    NotKrobs { reference: String, why: String },
    #[error("`{reference}`: the registry served {what} whose sha256 is `{found}`, not `{expected}`; do not deploy it, publish the release again")]
    DigestMismatch {
        reference: String,
        what: &'static str,
        expected: String,
        found: String,
    },
}

impl From<OpenError> for ReleaseError {
    fn from(e: OpenError) -> ReleaseError {
        match e {
            OpenError::Aws(e) => ReleaseError::Aws(e),
            OpenError::Credentials(e) => ReleaseError::Credentials(e),
            OpenError::Registry(e) => ReleaseError::Registry(e),
        }
    }
}

/// The OCI artifact of a manifest: its image manifest and the blobs it names.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The OCI image manifest, as put.
    pub manifest: Bytes,
    /// `sha256:` of [`Artifact::manifest`]: the artifact's name in the registry.
    pub digest: String,
    /// The krobs manifest bytes (the layer).
    pub layer: Bytes,
    /// `sha256:` of the layer: the manifest's own digest (as in `out/<sha256>.json`).
    pub layer_digest: String,
}

fn descriptor(media_type: MediaType, bytes: &[u8]) -> Descriptor {
    let digest =
        Digest::from_str(ContentDigest::of(bytes).as_str()).expect("a sha256 digest is valid");
    Descriptor::new(media_type, bytes.len() as u64, digest)
}

impl Artifact {
    /// The artifact holding `manifest_bytes`.
    pub fn new(manifest_bytes: &[u8]) -> Artifact {
        let mut layer = descriptor(MediaType::Other(ARTIFACT_TYPE.to_string()), manifest_bytes);
        layer.set_annotations(Some(HashMap::from([(
            "org.opencontainers.image.title".to_string(),
            LAYER_TITLE.to_string(),
        )])));
        let image: ImageManifest = ImageManifestBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .artifact_type(MediaType::Other(ARTIFACT_TYPE.to_string()))
            .config(descriptor(MediaType::EmptyJSON, EMPTY_CONFIG))
            .layers(vec![layer])
            .build()
            .expect("every required field is set");
        // One annotation per map: the bytes are the same on every run.
        let manifest = serde_json::to_vec(&image).expect("an image manifest serializes");
        Artifact {
            digest: ContentDigest::of(&manifest).into_string(),
            manifest: Bytes::from(manifest),
            layer_digest: ContentDigest::of(manifest_bytes).into_string(),
            layer: Bytes::copy_from_slice(manifest_bytes),
        }
    }
}

/// A reference to a published manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(String),
}

impl Reference {
    /// The one grammar of a release reference (`manifest pull`, `render --manifest`), hex in
    /// either case: `latest`; a commit, 40 hex, as its tag `git-<first 12>`; `git-<12 to 40
    /// hex>`, cut to 12; `sha256:<64 hex>`, the artifact's digest. Krobs publishes no other
    /// tag, so nothing else is a reference (render reads it as a file path).
    pub fn parse(text: &str) -> Result<Reference, ReleaseError> {
        let is_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
        if text == LATEST {
            return Ok(Reference::Tag(LATEST.to_string()));
        }
        if text.len() == 40 && is_hex(text) {
            return Ok(Reference::Tag(commit_tag(&text.to_ascii_lowercase())));
        }
        if let Some(hex) = text.strip_prefix("git-").filter(|h| is_hex(h)) {
            return match hex.len() {
                12..=40 => Ok(Reference::Tag(commit_tag(&hex.to_ascii_lowercase()))),
                digits @ 1..=11 => Err(ReleaseError::ShortCommitTag {
                    reference: text.to_string(),
                    digits,
                }),
                _ => Err(ReleaseError::BadReference {
                    reference: text.to_string(),
                }),
            };
        }
        // `sha256:` as written, the hex in either case.
        match text
            .strip_prefix("sha256:")
            .and_then(|_| ContentDigest::parse(&text.to_ascii_lowercase()))
        {
            Some(digest) => Ok(Reference::Digest(digest.into_string())),
            None => Err(ReleaseError::BadReference {
                reference: text.to_string(),
            }),
        }
    }

    /// Whether `text` was meant as a reference even if it is not a valid one: it starts like
    /// one (`git-`, `sha256:`) or is 7 or more hex digits, a commit cut short.
    pub fn is_attempt(text: &str) -> bool {
        text.starts_with("git-")
            || text.starts_with("sha256:")
            || (text.len() >= 7 && text.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Reference::Tag(s) | Reference::Digest(s) => s,
        }
    }
}

/// What happened to one tag of the manifest artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TagAction {
    /// Put by this run.
    Moved,
    /// Already named this artifact.
    Unchanged,
    /// Left on another release (`latest` on a newer commit).
    Kept,
    /// Not set by this kind of run (`--only`, no commit).
    Skipped,
    /// A dry run: what a real run would do.
    Planned,
}

impl TagAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TagAction::Moved => "moved",
            TagAction::Unchanged => "unchanged",
            TagAction::Kept => "kept",
            TagAction::Skipped => "skipped",
            TagAction::Planned => "planned",
        }
    }
}

/// One tag and what happened to it, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagOutcome {
    pub tag: String,
    pub action: TagAction,
    pub reason: String,
}

/// Where the manifest went (or, in a dry run, would go).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Publication {
    /// `host/repository` of the artifact.
    pub repository: String,
    /// `host/repository@sha256:...`; `null` in a dry run.
    pub reference: Option<String>,
    /// The artifact's digest; `null` in a dry run.
    pub digest: Option<String>,
    /// The artifact was put by this run (`false`: it was there already, or a dry run).
    pub uploaded: bool,
    /// The repository was created by this run (ECR).
    pub repository_created: bool,
    /// `git-<commit>`, then `latest`.
    pub tags: Vec<TagOutcome>,
}

/// How a run publishes: restricted with `--only` (a partial manifest), at which commit.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub commit: Option<&'a str>,
    pub partial: bool,
    /// Why the working tree is not the commit (`--allow-dirty`, or a dry run of a dirty
    /// tree): the manifest goes by digest only.
    pub dirty: Option<&'a str>,
}

fn skipped_tags(scope: Scope<'_>, action_when_allowed: TagAction) -> Vec<TagOutcome> {
    let mut tags = Vec::new();
    let why = if let Some(dirty) = scope.dirty {
        Some(dirty)
    } else if scope.partial {
        Some("a run restricted with `--only` publishes its partial manifest by digest only")
    } else if scope.commit.is_none() {
        Some("the run has no git commit: the manifest is published by digest only")
    } else {
        None
    };
    match (why, scope.commit) {
        (Some(why), commit) => {
            if let Some(c) = commit {
                tags.push(TagOutcome {
                    tag: commit_tag(c),
                    action: TagAction::Skipped,
                    reason: why.to_string(),
                });
            }
            tags.push(TagOutcome {
                tag: LATEST.to_string(),
                action: TagAction::Skipped,
                reason: why.to_string(),
            });
        }
        (None, Some(c)) if action_when_allowed == TagAction::Planned => {
            tags.push(TagOutcome {
                tag: commit_tag(c),
                action: TagAction::Planned,
                reason: "names this commit's release".to_string(),
            });
            tags.push(TagOutcome {
                tag: LATEST.to_string(),
                action: TagAction::Planned,
                reason: "moves unless it names a release of a newer commit".to_string(),
            });
        }
        _ => {}
    }
    tags
}

/// What a dry run would publish, and where.
pub fn plan(config: &Config, scope: Scope<'_>) -> Publication {
    Publication {
        repository: format!("{}/{}", config.registry.host(), config.manifest_repository),
        reference: None,
        digest: None,
        uploaded: false,
        repository_created: false,
        tags: skipped_tags(scope, TagAction::Planned),
    }
}

/// What the release's `git-<commit>` and `latest` named when the run began.
pub struct Current {
    commit: Lookup,
    latest: Lookup,
    /// The release `latest` named, read while the images are made ([`read_latest`]).
    latest_release: Option<Result<Pulled, ReleaseError>>,
}

/// What the release's `git-<commit>` and `latest` name now, both asked at once; `None` where
/// this run puts no commit tag (`--only`, a dirty tree, no commit) or the registry did not
/// answer (the publication that follows then asks again and reports it).
pub async fn current(
    client: &RegistryClient,
    config: &Config,
    scope: Scope<'_>,
) -> Option<Current> {
    let commit = scope
        .commit
        .filter(|_| !scope.partial && scope.dirty.is_none())?;
    let repo = &config.manifest_repository;
    let (commit, latest) = futures_util::future::try_join(
        client.lookup(repo, &commit_tag(commit)),
        client.lookup(repo, LATEST),
    )
    .await
    .ok()?;
    Some(Current {
        commit,
        latest,
        latest_release: None,
    })
}

/// Reads the release `latest` names (whether `latest` may move onto this run's depends on its
/// commit), meanwhile the images are made, rather than after them.
pub async fn read_latest(client: &RegistryClient, config: &Config, current: &mut Option<Current>) {
    let Some(current) = current else { return };
    if let Lookup::Present { digest } = &current.latest {
        let reference = Reference::Digest(digest.clone());
        current.latest_release = Some(fetch(client, &config.manifest_repository, &reference).await);
    }
}

/// The publication of a release that is already published: `git-<commit>` and `latest` (as
/// [`current`] found them) both name the artifact of `manifest_bytes`. Then nothing is put,
/// and the run that published it put every image tag this manifest records.
pub fn unchanged(
    config: &Config,
    manifest_bytes: &[u8],
    scope: Scope<'_>,
    current: Option<&Current>,
) -> Option<Publication> {
    let artifact = Artifact::new(manifest_bytes);
    let names = |l: &Lookup| matches!(l, Lookup::Present { digest } if *digest == artifact.digest);
    let current = current?;
    if !names(&current.commit) || !names(&current.latest) {
        return None;
    }
    let mut tags = skipped_tags(scope, TagAction::Moved);
    for tag in [commit_tag(scope.commit?), LATEST.to_string()] {
        tags.push(TagOutcome {
            tag,
            action: TagAction::Unchanged,
            reason: "already names this manifest".to_string(),
        });
    }
    let repository = format!("{}/{}", config.registry.host(), config.manifest_repository);
    Some(Publication {
        reference: Some(format!("{repository}@{}", artifact.digest)),
        repository,
        digest: Some(artifact.digest),
        uploaded: false,
        repository_created: false,
        tags,
    })
}

/// Publishes the manifest bytes: the artifact (blobs first, each `HEAD`ed before any upload),
/// then `git-<commit>` and `latest` as [`Scope`] allows. Nothing is put that is already there.
pub async fn publish(
    client: &RegistryClient,
    config: &Config,
    manifest_bytes: &[u8],
    scope: Scope<'_>,
    repository_created: bool,
    current: Option<Current>,
) -> Result<Publication, ReleaseError> {
    let repo = &config.manifest_repository;
    let artifact = Artifact::new(manifest_bytes);
    // What `git-<commit>` and `latest` named when the run began ([`current`]), not asked
    // again: runs that publish are serial (CI's serial group), so nothing moved them since.
    let (commit_known, latest_known) = match current {
        Some(c) => (Some(c.commit), Some((c.latest, c.latest_release))),
        None => (None, None),
    };
    let commit = scope
        .commit
        .filter(|_| !scope.partial && scope.dirty.is_none());
    // Everything that reads or uploads at once: the artifact looked up, its two blobs (each
    // `HEAD`ed before any upload), what `git-<commit>` and `latest` name now. Then the puts.
    let lookup = async {
        Ok::<_, ReleaseError>(matches!(
            client.lookup(repo, &artifact.digest).await?,
            Lookup::Present { .. }
        ))
    };
    let blobs = put_blobs(client, repo, &artifact);
    let commit_there = async {
        match commit {
            Some(commit) => Ok(Some(match commit_known {
                Some(there) => there,
                None => client.lookup(repo, &commit_tag(commit)).await?,
            })),
            None => Ok::<_, ReleaseError>(None),
        }
    };
    let latest_action = async {
        match commit {
            Some(commit) => latest(client, config, commit, &artifact, latest_known)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let (present, (), commit_there, latest_action) =
        tokio::try_join!(lookup, blobs, commit_there, latest_action)?;

    let (tags, puts) = tag_plan(
        scope,
        &artifact,
        present,
        commit.zip(commit_there),
        latest_action,
    );
    // The blobs are in: the manifest goes under its tags at once (or its digest alone).
    futures_util::future::try_join_all(
        puts.iter()
            .map(|reference| put(client, repo, reference, &artifact)),
    )
    .await?;
    let host = client.host();
    Ok(Publication {
        repository: format!("{host}/{repo}"),
        reference: Some(format!("{host}/{repo}@{}", artifact.digest)),
        digest: Some(artifact.digest),
        uploaded: !present,
        repository_created,
        tags,
    })
}

/// The artifact's two blobs, its empty config and its one layer, each `HEAD`ed before any upload.
async fn put_blobs(
    client: &RegistryClient,
    repo: &str,
    artifact: &Artifact,
) -> Result<(), ReleaseError> {
    futures_util::future::try_join(
        client.put_blob(
            repo,
            &ContentDigest::of(EMPTY_CONFIG).into_string(),
            Bytes::from_static(EMPTY_CONFIG),
        ),
        client.put_blob(repo, &artifact.layer_digest, artifact.layer.clone()),
    )
    .await?;
    Ok(())
}

/// What each of the release's tags gets, and the references to put: every tag that moves, or
/// the artifact's digest when none does and the registry does not have it yet.
fn tag_plan(
    scope: Scope<'_>,
    artifact: &Artifact,
    present: bool,
    commit_there: Option<(&str, Lookup)>,
    latest_action: Option<(TagAction, String)>,
) -> (Vec<TagOutcome>, Vec<String>) {
    let mut tags = skipped_tags(scope, TagAction::Moved);
    let mut puts = Vec::new();
    if let Some((commit, there)) = commit_there {
        let tag = commit_tag(commit);
        let action = match there {
            Lookup::Present { digest } if digest == artifact.digest => TagAction::Unchanged,
            _ => {
                puts.push(tag.clone());
                TagAction::Moved
            }
        };
        tags.push(TagOutcome {
            reason: match action {
                TagAction::Unchanged => "already names this manifest".to_string(),
                _ => "names this commit's release".to_string(),
            },
            tag,
            action,
        });
    }
    if let Some((action, reason)) = latest_action {
        if action == TagAction::Moved {
            puts.push(LATEST.to_string());
        }
        tags.push(TagOutcome {
            tag: LATEST.to_string(),
            action,
            reason,
        });
    }
    // A manifest put under a tag is there by its digest too: by digest alone only when no tag
    // moves (a partial or dirty run, a release whose tags stay).
    if !present && puts.is_empty() {
        puts.push(artifact.digest.clone());
    }
    (tags, puts)
}

async fn put(
    client: &RegistryClient,
    repo: &str,
    reference: &str,
    artifact: &Artifact,
) -> Result<(), RegistryError> {
    client
        .put_manifest(
            repo,
            reference,
            OCI_MANIFEST,
            artifact.manifest.clone(),
            &artifact.digest,
        )
        .await
}

/// Whether `latest` moves to this run's artifact: never backwards, onto an older commit.
async fn latest(
    client: &RegistryClient,
    config: &Config,
    commit: &str,
    artifact: &Artifact,
    known: Option<(Lookup, Option<Result<Pulled, ReleaseError>>)>,
) -> Result<(TagAction, String), ReleaseError> {
    let repo = &config.manifest_repository;
    let (known, read) = match known {
        Some(known) => known,
        None => (client.lookup(repo, LATEST).await?, None),
    };
    let there = match known {
        Lookup::Missing => return Ok((TagAction::Moved, "was not set".to_string())),
        Lookup::Present { digest } if digest == artifact.digest => {
            return Ok((
                TagAction::Unchanged,
                "already names this manifest".to_string(),
            ))
        }
        Lookup::Present { digest } => digest,
    };
    let read = match read {
        Some(read) => read,
        None => fetch(client, repo, &Reference::Digest(there.clone())).await,
    };
    let other = match read {
        Ok(pulled) => pulled,
        Err(e @ (ReleaseError::NotKrobs { .. } | ReleaseError::DigestMismatch { .. })) => {
            return Ok((
                TagAction::Moved,
                format!("named `{there}`, which is not a usable krobs manifest ({e})"),
            ))
        }
        Err(e) => return Err(e),
    };
    let short = |c: &str| c[..c.len().min(12)].to_string();
    let Some(theirs) = other.manifest.commit.as_deref() else {
        return Ok((
            TagAction::Moved,
            "named a manifest without a commit".to_string(),
        ));
    };
    if theirs == commit {
        return Ok((
            TagAction::Moved,
            format!(
                "named another manifest of this same commit `{}`",
                short(commit)
            ),
        ));
    }
    let root: &Path = &config.root;
    Ok(match git::is_ancestor(root, commit, theirs) {
        Some(true) => (
            TagAction::Kept,
            format!(
                "names `{}`, a newer commit than `{}` (it descends from it): `latest` never moves backwards",
                short(theirs),
                short(commit)
            ),
        ),
        Some(false) if git::is_ancestor(root, theirs, commit) == Some(true) => (
            TagAction::Moved,
            format!("named `{}`, an older commit", short(theirs)),
        ),
        Some(false) => (
            TagAction::Moved,
            format!(
                "named `{}`, a commit unrelated to this one (neither descends from the other)",
                short(theirs)
            ),
        ),
        None => (
            TagAction::Moved,
            format!("named `{}`, a commit this clone does not have", short(theirs)),
        ),
    })
}

/// A manifest pulled from the registry, every digest checked.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub manifest: Manifest,
    /// The manifest bytes, exactly as published (and as written to `out/`).
    pub bytes: Vec<u8>,
    /// `sha256:` of [`Pulled::bytes`]: the manifest's own digest.
    pub digest: String,
    /// `host/repository@sha256:...` of the artifact.
    pub reference: String,
}

/// A registry client for the configured registry, with the same credentials as the images:
/// an ECR token, or the OCI credentials at hand.
pub async fn client(config: &Config) -> Result<RegistryClient, ReleaseError> {
    let (client, _) = registry::connect(&config.registry).await?;
    Ok(client)
}

/// Pulls the manifest `reference` (see [`Reference::parse`]) from the configured manifest
/// repository (for `manifest pull` and `render --manifest REF`).
pub async fn pull(config: &Config, reference: &Reference) -> Result<Pulled, ReleaseError> {
    let client = client(config).await?;
    fetch(&client, &config.manifest_repository, reference).await
}

/// Reads a published manifest: the artifact, its krobs layer, each checked against its digest,
/// the layer parsed as a `krobs-manifest/v1`.
pub async fn fetch(
    client: &RegistryClient,
    repo: &str,
    reference: &Reference,
) -> Result<Pulled, ReleaseError> {
    let host = client.host();
    let named = format!(
        "{host}/{repo}{}{}",
        if matches!(reference, Reference::Digest(_)) {
            "@"
        } else {
            ":"
        },
        reference.as_str()
    );
    let fetched = client
        .get_manifest(repo, reference.as_str())
        .await?
        .ok_or_else(|| ReleaseError::Missing {
            repository: format!("{host}/{repo}"),
            reference: reference.as_str().to_string(),
        })?;
    let digest = ContentDigest::of(&fetched.body).into_string();
    let expected = match reference {
        Reference::Digest(d) => Some(d.clone()),
        Reference::Tag(_) => fetched.digest.clone(),
    };
    if let Some(expected) = expected.filter(|e| *e != digest) {
        return Err(ReleaseError::DigestMismatch {
            reference: named,
            what: "an artifact",
            expected,
            found: digest,
        });
    }
    let not_krobs = |why: String| ReleaseError::NotKrobs {
        reference: named.clone(),
        why,
    };
    let layer_digest = manifest_layer(&fetched.body, not_krobs)?;
    let bytes = client
        .get_blob(repo, &layer_digest)
        .await?
        .ok_or_else(|| not_krobs(format!("its layer `{layer_digest}` is not in the registry")))?;
    let found = ContentDigest::of(&bytes).into_string();
    if found != layer_digest {
        return Err(ReleaseError::DigestMismatch {
            reference: named,
            what: "a manifest layer",
            expected: layer_digest,
            found,
        });
    }
    let manifest = manifest::parse(&bytes).map_err(|e| {
        not_krobs(match e {
            Unreadable::Invalid(e) => format!("its layer is not a `{FORMAT}` manifest ({e})"),
            Unreadable::Format(format) => {
                format!("its layer is a `{format}` manifest; this krobs-build reads `{FORMAT}`")
            }
        })
    })?;
    Ok(Pulled {
        manifest,
        bytes: bytes.to_vec(),
        digest: found,
        reference: format!("{host}/{repo}@{digest}"),
    })
}

/// The digest of the layer that holds the release manifest, from an artifact's image manifest
/// that must be a Krobs release (its `artifactType`).
fn manifest_layer(
    body: &[u8],
    not_krobs: impl Fn(String) -> ReleaseError,
) -> Result<String, ReleaseError> {
    let image: ImageManifest = serde_json::from_slice(body)
        .map_err(|e| not_krobs(format!("not an OCI image manifest ({e})")))?;
    let artifact_type = image.artifact_type().as_ref().map(|m| m.to_string());
    if artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        return Err(not_krobs(format!(
            "its artifactType is {}, not `{ARTIFACT_TYPE}`",
            artifact_type.map_or("missing".to_string(), |t| format!("`{t}`"))
        )));
    }
    let layer = image
        .layers()
        .iter()
        .find(|l| l.media_type().to_string() == ARTIFACT_TYPE)
        .ok_or_else(|| not_krobs(format!("it has no `{ARTIFACT_TYPE}` layer")))?;
    Ok(layer.digest().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_is_unchanged_only_when_both_its_tags_name_this_manifest() {
        let config = Config::parse(
            "repository = \"krobs/{language}\"\n[registry]\nkind = \"oci\"\nhost = \"r.example\"\n",
            Path::new("krobs.toml"),
            Path::new("/repo"),
        )
        .unwrap();
        let bytes = b"{\"format\":\"test\"}";
        let ours = Lookup::Present {
            digest: Artifact::new(bytes).digest,
        };
        let other = Lookup::Present {
            digest: format!("sha256:{}", "0".repeat(64)),
        };
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let scope = Scope {
            commit: Some(commit),
            partial: false,
            dirty: None,
        };
        let current = |commit: &Lookup, latest: &Lookup| Current {
            commit: commit.clone(),
            latest: latest.clone(),
            latest_release: None,
        };
        let p = unchanged(&config, bytes, scope, Some(&current(&ours, &ours))).unwrap();
        assert!(!p.uploaded);
        assert_eq!(
            p.digest.as_deref(),
            Some(Artifact::new(bytes).digest.as_str())
        );
        let tags: Vec<(&str, TagAction)> =
            p.tags.iter().map(|t| (t.tag.as_str(), t.action)).collect();
        assert_eq!(
            tags,
            [
                ("git-0123456789ab", TagAction::Unchanged),
                ("latest", TagAction::Unchanged)
            ]
        );
        for (commit, latest) in [
            (&ours, &other),
            (&other, &ours),
            (&Lookup::Missing, &ours),
            (&ours, &Lookup::Missing),
        ] {
            let current = current(commit, latest);
            assert_eq!(unchanged(&config, bytes, scope, Some(&current)), None);
        }
        assert_eq!(unchanged(&config, bytes, scope, None), None);
    }

    #[test]
    fn references() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            Reference::parse("latest").unwrap(),
            Reference::Tag("latest".into())
        );
        assert_eq!(
            Reference::parse(commit).unwrap(),
            Reference::Tag("git-0123456789ab".into())
        );
        assert_eq!(
            Reference::parse(&format!("git-{commit}")).unwrap(),
            Reference::Tag("git-0123456789ab".into())
        );
        assert_eq!(
            Reference::parse("git-0123456789ab").unwrap(),
            Reference::Tag("git-0123456789ab".into())
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            Reference::parse(&digest).unwrap(),
            Reference::Digest(digest.clone())
        );
        assert_eq!(
            Reference::parse("GIT-0123456789AB").unwrap_err().to_string(),
            "`GIT-0123456789AB` is not a manifest reference: give `latest`, a commit (40 hex, or the tag `git-<first 12 hex>`), or the artifact's digest `sha256:<64 hex>`"
        );
        assert_eq!(
            Reference::parse(&commit.to_uppercase()).unwrap(),
            Reference::Tag("git-0123456789ab".into())
        );
        for bad in [
            "",
            "sha256:abc",
            "-x",
            "a/b",
            "latest:x",
            "v1",
            "git-",
            "git-xyz",
            &"a".repeat(41),
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("`{bad}` is not a manifest reference: give `latest`, a commit (40 hex, or the tag `git-<first 12 hex>`), or the artifact's digest `sha256:<64 hex>`")
            );
        }
        assert_eq!(
            Reference::parse("git-0123abcd").unwrap_err().to_string(),
            "`git-0123abcd` has 8 hex digits: release tags use the first 12 of the commit (`git rev-parse --short=12 <commit>`), or give the full 40-hex commit"
        );
    }

    #[test]
    fn the_artifact_is_the_agreed_oci_manifest_and_the_same_for_the_same_bytes() {
        let bytes = b"{\"format\":\"krobs-manifest/v1\"}\n";
        let a = Artifact::new(bytes);
        let v: serde_json::Value = serde_json::from_slice(&a.manifest).unwrap();
        let layer_digest = ContentDigest::of(bytes).into_string();
        assert_eq!(
            v,
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": "application/vnd.krobs.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                    "size": 2
                },
                "layers": [{
                    "mediaType": "application/vnd.krobs.manifest.v1+json",
                    "digest": layer_digest,
                    "size": bytes.len(),
                    "annotations": {"org.opencontainers.image.title": "krobs-manifest.json"}
                }]
            })
        );
        assert_eq!(a.digest, ContentDigest::of(&a.manifest).into_string());
        assert_eq!(a.layer_digest, layer_digest);
        assert_eq!(Artifact::new(bytes).manifest, a.manifest);
    }
}
