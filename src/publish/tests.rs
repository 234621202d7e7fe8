//! The orchestration on in-memory fakes of the registry and the Docker Engine: what each
//! language ends as over successive runs, failures, the runtime push's retry, a tag conflict.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use serde_json::json;

use super::append::verify;
use super::image;
use super::tags::ALIAS_TAG;
use super::{lookup_all, publish, Outcome, PublishError, Published};
use crate::docker::build::DockerError;
use crate::docker::engine::{Engine, RuntimeBuild};
use crate::input::config::Config;
use crate::input::git::Changes;
use crate::plan::digest::Digest;
use crate::plan::layer::Blob;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::registry::{BlobBody, BlobPush, Credentials, Fetched, Lookup, Registry, RegistryError};

const HOST: &str = "registry.test:5000";

/// An in-memory registry: manifests by (repository, tag or digest), blobs by
/// (repository, digest), and what was sent.
#[derive(Default)]
struct FakeRegistry {
    manifests: Mutex<HashMap<(String, String), (String, Bytes)>>,
    blobs: Mutex<HashMap<(String, String), Bytes>>,
    uploads: Mutex<Vec<(String, String)>>,
    mounts: Mutex<Vec<(String, String)>>,
    manifest_puts: Mutex<Vec<(String, String)>>,
}

impl FakeRegistry {
    fn store_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: Bytes) {
        let digest = Digest::of(&bytes).into_string();
        let mut m = self.manifests.lock().unwrap();
        m.insert(
            (repo.to_string(), digest),
            (media_type.to_string(), bytes.clone()),
        );
        m.insert(
            (repo.to_string(), reference.to_string()),
            (media_type.to_string(), bytes),
        );
    }

    fn uploads(&self) -> Vec<(String, String)> {
        self.uploads.lock().unwrap().clone()
    }
}

impl Registry for FakeRegistry {
    fn host(&self) -> &str {
        HOST
    }

    fn credentials(&self) -> Option<&Credentials> {
        None
    }

    async fn lookup(&self, repository: &str, reference: &str) -> Result<Lookup, RegistryError> {
        let m = self.manifests.lock().unwrap();
        Ok(
            match m.get(&(repository.to_string(), reference.to_string())) {
                Some((_, bytes)) => Lookup::Present {
                    digest: Digest::of(bytes).into_string(),
                },
                None => Lookup::Missing,
            },
        )
    }

    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Fetched>, RegistryError> {
        let m = self.manifests.lock().unwrap();
        Ok(m.get(&(repository.to_string(), reference.to_string()))
            .map(|(mt, bytes)| Fetched {
                media_type: Some(mt.clone()),
                digest: Some(Digest::of(bytes).into_string()),
                body: bytes.clone(),
            }))
    }

    async fn get_blob(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<Bytes>, RegistryError> {
        let b = self.blobs.lock().unwrap();
        Ok(b.get(&(repository.to_string(), digest.to_string()))
            .cloned())
    }

    async fn push_blob(
        &self,
        repository: &str,
        digest: &str,
        body: BlobBody,
        mount_from: Option<&str>,
    ) -> Result<BlobPush, RegistryError> {
        let bytes = match body {
            BlobBody::Bytes(bytes) => bytes,
            BlobBody::File { file, size } => {
                let mut bytes = vec![0; size as usize];
                std::os::unix::fs::FileExt::read_exact_at(&*file, &mut bytes, 0).unwrap();
                Bytes::from(bytes)
            }
        };
        assert_eq!(Digest::of(&bytes).into_string(), digest);
        let mut b = self.blobs.lock().unwrap();
        let key = (repository.to_string(), digest.to_string());
        if b.contains_key(&key) {
            return Ok(BlobPush::Present);
        }
        let mounted =
            mount_from.is_some_and(|from| b.contains_key(&(from.to_string(), digest.to_string())));
        b.insert(key.clone(), bytes);
        if mounted {
            self.mounts.lock().unwrap().push(key);
            Ok(BlobPush::Mounted)
        } else {
            self.uploads.lock().unwrap().push(key);
            Ok(BlobPush::Uploaded)
        }
    }

    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
        digest: &str,
    ) -> Result<(), RegistryError> {
        assert_eq!(Digest::of(&bytes).into_string(), digest);
        self.manifest_puts
            .lock()
            .unwrap()
            .push((repository.to_string(), reference.to_string()));
        self.store_manifest(repository, reference, media_type, bytes);
        Ok(())
    }

    async fn put_tag(
        &self,
        repository: &str,
        digest: &str,
        tag: &str,
    ) -> Result<(), RegistryError> {
        let (mt, bytes) =
            self.manifests.lock().unwrap()[&(repository.to_string(), digest.to_string())].clone();
        self.store_manifest(repository, tag, &mt, bytes);
        Ok(())
    }
}

/// An engine that "builds" a one-layer runtime straight into the fake registry, or fails
/// for the languages named.
struct FakeEngine<'a> {
    registry: &'a FakeRegistry,
    fail: HashSet<String>,
    /// Languages whose next push fails, as a daemon pushing the same image twice at once.
    push_fails_once: Mutex<HashSet<String>>,
    builds: Mutex<Vec<(String, String, Option<String>)>>,
}

impl<'a> FakeEngine<'a> {
    fn new(registry: &'a FakeRegistry, fail: &[&str]) -> FakeEngine<'a> {
        FakeEngine {
            registry,
            fail: fail.iter().map(|s| s.to_string()).collect(),
            push_fails_once: Mutex::default(),
            builds: Mutex::new(Vec::new()),
        }
    }

    fn built(&self) -> Vec<String> {
        let mut b: Vec<String> = self
            .builds
            .lock()
            .unwrap()
            .iter()
            .map(|(l, _, _)| l.clone())
            .collect();
        b.sort();
        b
    }
}

impl Engine for FakeEngine<'_> {
    async fn build_and_push(
        &self,
        req: RuntimeBuild<'_>,
        _progress: &Progress,
    ) -> Result<(), DockerError> {
        self.builds.lock().unwrap().push((
            req.language.to_string(),
            req.tag.to_string(),
            req.cache.clone(),
        ));
        assert!(
            req.context
                .entries
                .iter()
                .all(|e| !e.rel.starts_with("scripts")),
            "the runtime's context holds no scripts"
        );
        tokio::task::yield_now().await;
        if self.fail.contains(req.language) {
            return Err(DockerError::Build {
                language: req.language.to_string(),
                step: "Step 2/3 : RUN false".to_string(),
                message: "exit 1".to_string(),
                last_lines: Vec::new(),
            });
        }
        if self.push_fails_once.lock().unwrap().remove(req.language) {
            return Err(DockerError::Push {
                language: req.language.to_string(),
                image: format!("{}:{}", req.repository, req.tag),
                message: "manifest blob unknown: blob unknown to registry".to_string(),
            });
        }
        let repo = req
            .repository
            .strip_prefix(&format!("{HOST}/"))
            .unwrap()
            .to_string();
        let config = Blob::new(
            serde_json::to_vec(&json!({
                "architecture": "amd64", "os": "linux",
                "config": {"User": "10001:10001"},
                "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", req.language)]},
                "history": [{"created_by": "RUN build"}],
            }))
            .unwrap(),
        );
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": image::DOCKER_MANIFEST,
            "config": {"mediaType": image::DOCKER_CONFIG, "size": config.size(), "digest": config.digest},
            "layers": [{"mediaType": image::DOCKER_LAYER, "size": 1, "digest": "sha256:base"}],
        }))
        .unwrap();
        self.registry
            .blobs
            .lock()
            .unwrap()
            .insert((repo.clone(), config.digest.clone()), config.bytes);
        self.registry
            .store_manifest(&repo, req.tag, image::DOCKER_MANIFEST, manifest.into());
        Ok(())
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A repository with three languages; `b` and `c` have the same scripts.
fn repo() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        "krobs.toml",
        &format!("repository = \"krobs/{{language}}\"\n[registry]\nkind = \"oci\"\nhost = \"{HOST}\"\n[build]\nconcurrency = 1\n"),
    );
    for l in ["a", "b", "c"] {
        write(
            t.path(),
            &format!("languages/{l}/Dockerfile"),
            &format!("FROM {l}\n"),
        );
        let body = if l == "a" { "echo a" } else { "echo same" };
        write(
            t.path(),
            &format!("languages/{l}/scripts/run.sh"),
            &format!("# ---\n# owner = \"t\"\n# description = \"d\"\n# ---\n{body}\n"),
        );
    }
    t
}

fn plan_of(root: &Path) -> (Config, Plan) {
    let config = Config::load(&root.join("krobs.toml")).unwrap();
    let inventory = crate::plan::discover::discover(&config, &[]).unwrap();
    let plan = crate::plan::make(&config, inventory, None, None, Changes::NotAsked).unwrap();
    (config, plan)
}

async fn run(
    root: &Path,
    registry: &FakeRegistry,
    engine: &FakeEngine<'_>,
) -> Result<Vec<Published>, PublishError> {
    let (config, mut plan) = plan_of(root);
    lookup_all(registry, &config, &mut plan).await.unwrap();
    let progress = Progress::new(crate::progress::Mode::Plain, &[]);
    publish(&config, &plan, registry, &HashMap::new(), engine, &progress).await
}

fn outcomes(published: &[Published]) -> Vec<(&str, &'static str)> {
    published
        .iter()
        .map(|p| {
            (
                p.language.as_str(),
                match p.outcome {
                    Outcome::Reused => "reused",
                    Outcome::ScriptsAppended { .. } => "appended",
                    Outcome::RuntimeBuilt { .. } => "built",
                },
            )
        })
        .collect()
}

// One story over four runs against the same registry (build, reuse, append, rebuild): each
// step's expectations depend on the state the previous ones left.
#[tokio::test]
async fn runtimes_are_built_once_then_scripts_changes_only_append_a_layer() {
    let t = repo();
    let registry = FakeRegistry::default();

    let engine = FakeEngine::new(&registry, &[]);
    let first = run(t.path(), &registry, &engine).await.unwrap();
    assert_eq!(
        outcomes(&first),
        [("a", "built"), ("b", "built"), ("c", "built")]
    );
    assert_eq!(engine.built(), ["a", "b", "c"]);
    // Each image is the runtime plus one layer, under its content tag, digest checked.
    let (_, plan) = plan_of(t.path());
    for (p, lp) in first.iter().zip(&plan.languages) {
        let repo = format!("krobs/{}", p.language);
        let fetched = registry
            .get_manifest(&repo, &lp.tag)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(Digest::of(&fetched.body).into_string(), p.digest);
        let m: serde_json::Value = serde_json::from_slice(&fetched.body).unwrap();
        assert_eq!(m["layers"][1]["digest"], lp.layer.blob.digest);
        assert_eq!(p.tags, [lp.tag.clone(), ALIAS_TAG.to_string()]);
    }
    // `b` and `c` have the same scripts layer: one of them uploads it, the other mounts
    // it (concurrency 1 builds them in turn) or finds it.
    let layer_uploads = |l: &str| {
        registry
            .uploads()
            .iter()
            .filter(|(r, d)| {
                r == &format!("krobs/{l}") && d == &plan.languages[1].layer.blob.digest
            })
            .count()
    };
    assert_eq!(layer_uploads("b") + layer_uploads("c"), 1);
    assert_eq!(registry.mounts.lock().unwrap().len(), 1);

    // Nothing changed: nothing built or put.
    let puts = registry.manifest_puts.lock().unwrap().len();
    let engine = FakeEngine::new(&registry, &[]);
    let second = run(t.path(), &registry, &engine).await.unwrap();
    assert_eq!(
        outcomes(&second),
        [("a", "reused"), ("b", "reused"), ("c", "reused")]
    );
    assert!(engine.built().is_empty());
    assert_eq!(registry.manifest_puts.lock().unwrap().len(), puts);
    assert_eq!(
        first.iter().map(|p| &p.digest).collect::<Vec<_>>(),
        second.iter().map(|p| &p.digest).collect::<Vec<_>>()
    );

    // One script changes: its language gets a new layer on the same runtime, no build.
    write(
        t.path(),
        "languages/a/scripts/run.sh",
        "# ---\n# owner = \"t\"\n# description = \"d\"\n# ---\necho A\n",
    );
    let uploads = registry.uploads().len();
    let engine = FakeEngine::new(&registry, &[]);
    let third = run(t.path(), &registry, &engine).await.unwrap();
    assert_eq!(
        outcomes(&third),
        [("a", "appended"), ("b", "reused"), ("c", "reused")]
    );
    assert!(engine.built().is_empty());
    // The layer and the config: two blobs.
    assert_eq!(registry.uploads().len(), uploads + 2);
    assert_ne!(third[0].digest, first[0].digest);

    // The runtime changes: it is built again, then the layer goes on.
    write(t.path(), "languages/a/Dockerfile", "FROM a2\n");
    let engine = FakeEngine::new(&registry, &[]);
    let fourth = run(t.path(), &registry, &engine).await.unwrap();
    assert_eq!(
        outcomes(&fourth),
        [("a", "built"), ("b", "reused"), ("c", "reused")]
    );
    assert_eq!(engine.built(), ["a"]);
}

#[tokio::test]
async fn failures_are_all_named_and_the_others_still_finish() {
    let t = repo();
    let registry = FakeRegistry::default();
    let engine = FakeEngine::new(&registry, &["a", "c"]);
    let e = run(t.path(), &registry, &engine).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "2 of 3 languages failed (`a`, `c`); first: build [a] failed at `Step 2/3 : RUN false`: exit 1"
    );
    assert!(matches!(
        e.root(),
        PublishError::Docker(DockerError::Build { .. })
    ));
    // `b` was published all the same: a rerun reuses it.
    let engine = FakeEngine::new(&registry, &["a"]);
    let e = run(t.path(), &registry, &engine).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "build [a] failed at `Step 2/3 : RUN false`: exit 1"
    );
    assert_eq!(engine.built(), ["a", "c"]);
}

#[tokio::test]
async fn a_runtime_push_that_fails_is_tried_once_more_and_a_build_that_fails_is_not() {
    let t = repo();
    let registry = FakeRegistry::default();
    let engine = FakeEngine::new(&registry, &[]);
    engine
        .push_fails_once
        .lock()
        .unwrap()
        .insert("b".to_string());
    let published = run(t.path(), &registry, &engine).await.unwrap();
    assert_eq!(
        outcomes(&published),
        [("a", "built"), ("b", "built"), ("c", "built")]
    );
    assert_eq!(engine.built(), ["a", "b", "b", "c"]);
}

#[tokio::test]
async fn a_tag_that_answers_other_content_is_a_conflict() {
    let t = repo();
    let registry = FakeRegistry::default();
    let engine = FakeEngine::new(&registry, &[]);
    run(t.path(), &registry, &engine).await.unwrap();
    let (config, plan) = plan_of(t.path());
    let lp = &plan.languages[0];
    let e = verify(&registry, &config, lp, "sha256:other")
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "[a] `{}` is in the registry as `sha256:",
            lp.image
        )),
        "{e}"
    );
}
