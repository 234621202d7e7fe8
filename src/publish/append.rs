//! The scripts layer put on a runtime through the registry API alone (the runtime's manifests
//! and configs read, the layer written again and streamed, the image's configs and manifests
//! put), and the check that the content tag names exactly the image put.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::input::config::Config;
use crate::plan::layer::{self, Blob, Digested};
use crate::plan::{LanguagePlan, Plan};
use crate::registry::{BlobBody, BlobPush, Lookup, Registry};

use super::decide::RuntimeManifest;
use super::error::PublishError;
use super::image::{self, Image, Runtime};

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
pub(super) async fn append_scripts(
    config: &Config,
    plan: &Plan,
    lp: &LanguagePlan,
    runtime: &RuntimeManifest,
    registry: &impl Registry,
) -> Result<Image, PublishError> {
    let name = &lp.language.name;
    let repo = config.repository_for(name);
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
        .map(|other| config.repository_for(&other.language.name))
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

fn progress_blob(language: &str, blob: &Digested, pushed: BlobPush) {
    tracing::debug!(
        language,
        digest = blob.digest,
        size = blob.size,
        ?pushed,
        "scripts layer"
    );
}

/// The content tag must name exactly `digest` in the registry.
pub(super) async fn verify(
    registry: &impl Registry,
    config: &Config,
    lp: &LanguagePlan,
    digest: &str,
) -> Result<(), PublishError> {
    let repo = config.repository_for(&lp.language.name);
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
