//! krobs-build: language folders -> input digests -> plan -> images -> release manifest.
//!
//! The stages, in order, each a folder: [`input`] reads the repository (`krobs.toml`, the
//! build contexts, the krobs' headers, git); [`plan`] discovers the languages, gives each its
//! content identity and lays out what to do; [`docker`] builds runtimes on the Docker Engine;
//! [`registry`] speaks the distribution API; [`publish`] puts the scripts layer on each runtime
//! and pushes the images; [`release`] writes the release manifest and publishes it (and pulls
//! it back); [`deploy`] renders it as Kubernetes objects and for Harness. [`lint`] checks a
//! repository before review; [`cli`] is the command line and what the user reads.

pub mod cli;
pub(crate) mod deploy;
pub(crate) mod docker;
pub(crate) mod error;
pub mod exit;
pub mod input;
pub(crate) mod lint;
pub mod plan;
pub(crate) mod progress;
pub(crate) mod publish;
pub(crate) mod registry;
pub(crate) mod release;

use std::time::Instant;

use tokio::runtime::Runtime;

use cli::options::{Options, PublishOptions, PullFormat, Schema, Task};
use cli::{report, terminal};
use deploy::{harness, render};
use docker::engine;
pub use error::Error;
use input::config::{self, Config};
use input::git::{self, Changes};
use lint::syntax;
use plan::discover;
use plan::entrypoint;
use release::manifest::{self, Manifest};

/// Runs what the command line asked for. A build that fails with `--json` still prints one
/// JSON object on stdout: the error, with its exit code.
pub fn run(opts: &Options) -> Result<(), Error> {
    let result = run_task(opts);
    if let (Err(e), true, Task::Publish(_)) = (&result, opts.json, &opts.task) {
        // stdout may be what failed; the error still goes to stderr.
        let _ = report::print(report::error_json(exit::code(e), &e.message()));
    }
    result
}

/// One task, on one async runtime.
fn run_task(opts: &Options) -> Result<(), Error> {
    let started = Instant::now();
    unused_flags(opts)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    match &opts.task {
        Task::HarnessTemplate(which) => print(&harness::template(*which)),
        Task::Schema(which) => print(match which {
            Schema::Manifest => manifest::SCHEMA,
            Schema::Report => report::SCHEMA,
            Schema::Monitor => entrypoint::EVENT_SCHEMA,
        }),
        Task::PullManifest { reference, format } => {
            let config = load_config(opts)?;
            let reference = release::Reference::parse(reference)?;
            let pulled = runtime.block_on(release::pull(&config, &reference))?;
            match format {
                PullFormat::Json => report::print_bytes(&pulled.bytes).map_err(Error::Output),
                PullFormat::Harness => print(&harness::view(&pulled.manifest, &pulled.digest)),
            }
        }
        Task::Render(args) => {
            let config = load_config(opts)?;
            print(&runtime.block_on(render::run(&config, args))?)
        }
        Task::RenderSchedules {
            manifest,
            namespace,
        } => {
            let config = load_config(opts)?;
            let schedules =
                render::run_schedules(&config, manifest.as_deref(), namespace.as_deref());
            print(&runtime.block_on(schedules)?)
        }
        Task::Lint { syntax } => lint(&runtime, opts, *syntax),
        Task::Publish(publish) => build(&runtime, opts, publish, started),
    }
}

fn print(text: &str) -> Result<(), Error> {
    report::print(text).map_err(Error::Output)
}

/// `krobs.toml`; with `lint --json`, a problem with it is also the lint's JSON.
fn load_config(opts: &Options) -> Result<Config, Error> {
    let lint_json = opts.json && matches!(opts.task, Task::Lint { .. });
    let config_path = opts
        .config
        .clone()
        .unwrap_or_else(|| config::FILE_NAME.into());
    match config::locate(opts.config.as_deref()).and_then(|p| Config::load(&p)) {
        Err(e) if lint_json => {
            let problem = match &e {
                config::ConfigError::Invalid {
                    path,
                    line,
                    message,
                    ..
                } => lint::Problem::at(path.display().to_string(), *line, message.clone()),
                other => lint::Problem::new(config_path.display().to_string(), other.to_string()),
            };
            print(&lint::problems_json(&lint::Problems(vec![problem])))?;
            Err(e.into())
        }
        result => Ok(result?),
    }
}

/// The languages and their scripts; with `lint --json`, the problems are also the lint's JSON.
fn discover(opts: &Options, config: &Config) -> Result<discover::Inventory, Error> {
    let lint_json = opts.json && matches!(opts.task, Task::Lint { .. });
    match discover::discover(config, &opts.only) {
        Err(e) if lint_json => {
            let problems = match &e {
                discover::DiscoverError::Problems(problems) => problems.clone(),
                other => lint::Problems(vec![lint::Problem::new(
                    config.languages_dir.clone(),
                    other.to_string(),
                )]),
            };
            print(&lint::problems_json(&problems))?;
            Err(e.into())
        }
        result => Ok(result?),
    }
}

/// `krobs-build lint`: the headers and folders, the warnings, and with `--syntax` each
/// script's syntax.
fn lint(runtime: &Runtime, opts: &Options, syntax: bool) -> Result<(), Error> {
    let config = load_config(opts)?;
    let inventory = discover(opts, &config)?;
    for warning in lint::warnings(&inventory.scripts) {
        eprintln!("warning: {}", terminal::escape(&warning));
    }
    for note in inventory.languages.iter().flat_map(|l| &l.notes) {
        eprintln!("note: {}", terminal::escape(note));
    }
    if syntax {
        return lint_syntax(runtime, &config, &inventory, opts.json);
    }
    print(&report::lint_ok(&inventory, opts.json))
}

/// The bare command: plan, then build and push the images (or look them up, for a dry run),
/// then publish and write the manifest, and report.
fn build(
    runtime: &Runtime,
    opts: &Options,
    publish: &PublishOptions,
    started: Instant,
) -> Result<(), Error> {
    let Inputs {
        config,
        inventory,
        head,
        dirty,
    } = inputs(opts, publish)?;
    // A tree that is not HEAD is no commit's release: its images get no `git-` tag either.
    let commit = head.clone().filter(|_| dirty.is_none());
    let changes = changes(&config, publish);
    let mut plan = plan::make(&config, inventory, commit, publish.since.clone(), changes)?;
    plan.require_a_language(&config, &opts.only)?;
    let mut timings = report::Timings {
        plan: millis(started),
        ..Default::default()
    };
    let partial = !opts.only.is_empty();
    let commit = plan.commit.clone();
    let scope = release::Scope {
        commit: commit.as_deref().or(head.as_deref()),
        partial,
        dirty: dirty.as_deref(),
    };
    let (published, session) = images(runtime, &config, &mut plan, publish, scope)?;
    let images_done = Instant::now();
    timings.images = millis(started) - timings.plan;
    let manifest = Manifest::new(&plan, &published, &config.deploy);
    // Every image is verified: the manifest goes to the registry, then to disk, so that a run
    // that fails leaves no manifest behind.
    let publication = match session {
        None => release::plan(&config, scope),
        // published already (nothing changed), or what its tags named when the run began
        Some((_, Ok(unchanged))) => unchanged,
        Some((session, Err(current))) => runtime.block_on(release::publish(
            &session.client,
            &config,
            &manifest.to_bytes(),
            scope,
            session.manifest_repository_created,
            current,
        ))?,
    };
    timings.publication = millis(images_done);
    // A preview is put in place once the report is out: a dry run that cannot print it
    // fails, and leaves the previous preview as it was.
    let (written, preview) = if manifest.preview {
        let preview = manifest::stage_preview(&manifest, &config.preview_path())?;
        (preview.written.clone(), Some(preview))
    } else {
        let path = config.manifest_path();
        (manifest::write(&manifest, &path, partial)?, None)
    };
    timings.total = millis(started);
    let report = report::Report::new(
        &plan,
        publish.dry_run,
        &published,
        &written,
        partial,
        publication,
        timings,
    );
    print(&if opts.json {
        report.json()
    } else {
        report.text()
    })?;
    if let Some(preview) = preview {
        preview.keep()?;
    }
    Ok(())
}

/// What a build starts from: the configuration, the repository's languages and scripts, the
/// commit at HEAD, and why the tree is not that commit (when it is not, and that is allowed).
struct Inputs {
    config: Config,
    inventory: discover::Inventory,
    head: Option<String>,
    dirty: Option<String>,
}

/// Reads the configuration, then the languages while git reads the working tree (a stat of
/// every tracked file) beside them; a discovery error comes first, then git's verdict.
fn inputs(opts: &Options, publish: &PublishOptions) -> Result<Inputs, Error> {
    let config = load_config(opts)?;
    let (inventory, (head, tree)) = std::thread::scope(|s| {
        let git = s.spawn(|| git_state(&config));
        let inventory = discover(opts, &config);
        let git = git
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (inventory, git)
    });
    let inventory = inventory?;
    let dirty = match tree {
        Some(Err(dirty)) => tree_state(dirty, publish.dry_run, publish.allow_dirty)?,
        _ => None,
    };
    Ok(Inputs {
        config,
        inventory,
        head,
        dirty,
    })
}

/// What changed since `--since` (not asked without it); a history Krobs cannot read is a
/// warning, and digests alone decide.
fn changes(config: &Config, publish: &PublishOptions) -> Changes {
    let changes = match &publish.since {
        Some(rev) => git::changes_since(&config.root, rev),
        None => Changes::NotAsked,
    };
    if let Changes::Unknown { warning } = &changes {
        eprintln!("warning: {warning}");
    }
    changes
}

/// How the release stands once the images are there: published already (a rerun that
/// changed nothing), or what its tags named when the run began.
type Release = Result<release::Publication, Option<release::Current>>;

/// What the images step leaves: every language's image, and for a real run the registry
/// session and how the release stands.
type Images = (Vec<publish::Published>, Option<(publish::Session, Release)>);

/// The images: for a dry run, what the registry says (nothing published, no session); else
/// built, pushed and verified, with the registry session the manifest is published through.
fn images(
    runtime: &Runtime,
    config: &Config,
    plan: &mut plan::Plan,
    publish: &PublishOptions,
    scope: release::Scope<'_>,
) -> Result<Images, Error> {
    if publish.dry_run {
        runtime.block_on(dry_run_lookups(config, plan));
        if publish.strict {
            strict_check(config, plan)?;
        }
        return Ok((Vec::new(), None));
    }
    let names: Vec<String> = plan
        .languages
        .iter()
        .map(|l| l.language.name.clone())
        .collect();
    let progress = progress::Progress::new(publish.progress, &names);
    let (published, session, release) =
        runtime.block_on(publish_images(config, plan, scope, &progress))?;
    Ok((published, Some((session, release))))
}

/// Opens the registry and looks every content tag up with the release's tags, at once; a
/// rerun of a published release stops there. Else makes what is missing while the release
/// `latest` names is read.
async fn publish_images(
    config: &Config,
    plan: &mut plan::Plan,
    scope: release::Scope<'_>,
    progress: &progress::Progress,
) -> Result<(Vec<publish::Published>, publish::Session, Release), publish::PublishError> {
    let session = publish::open(config, plan, progress).await?;
    let looked_up = Instant::now();
    let (found, mut current) = tokio::join!(
        publish::lookup_all(&session.client, config, plan),
        release::current(&session.client, config, scope)
    );
    found?;
    // A rerun of a published release (nothing changed): the release's tags name the very
    // manifest this run would write, so the run that published it put every tag the manifest
    // records, and there is nothing to ask or put.
    let took = millis(looked_up);
    if let Some(published) = publish::all_reused(plan, &session.repositories, took) {
        let bytes = Manifest::new(plan, &published, &config.deploy).to_bytes();
        if let Some(p) = release::unchanged(config, &bytes, scope, current.as_ref()) {
            publish::report_finished(&published, progress);
            return Ok((published, session, Ok(p)));
        }
    }
    let engine = engine::DockerEngine::default();
    let (published, ()) = tokio::join!(
        publish::publish(
            config,
            plan,
            &session.client,
            &session.repositories,
            &engine,
            progress,
        ),
        release::read_latest(&session.client, config, &mut current)
    );
    Ok((published?, session, Err(current)))
}

/// `lint --syntax`: the headers are fine; now each script's syntax, in its runtime image.
fn lint_syntax(
    runtime: &Runtime,
    config: &Config,
    inventory: &discover::Inventory,
    json: bool,
) -> Result<(), Error> {
    let log = |line: &str| eprintln!("{}", terminal::escape(line));
    let checked = runtime.block_on(syntax::check(config, inventory, &log))?;
    for note in &checked.notes {
        eprintln!("note: {}", terminal::escape(note));
    }
    if !checked.problems.is_empty() {
        let mut problems = checked.problems;
        problems.sort();
        let problems = lint::Problems(problems);
        if json {
            print(&lint::problems_json(&problems))?;
        }
        return Err(discover::DiscoverError::Problems(problems).into());
    }
    print(&report::lint_syntax_ok(inventory, &checked, json))
}

/// The commit HEAD points at, and (when there is one) whether the folders the build reads are
/// that commit.
fn git_state(config: &Config) -> (Option<String>, Option<Result<(), git::DirtyTree>>) {
    let head = git::head_commit(&config.root);
    let tree = head.as_deref().map(|commit| {
        let mut inputs = vec![config.languages_dir.clone()];
        for lang in config.languages.values() {
            inputs.extend(lang.path.iter().cloned());
            inputs.extend(lang.extra_inputs.iter().cloned());
        }
        git::check_tree(&config.root, commit, &inputs)
    });
    (head, tree)
}

/// What a working tree that is not its commit means: a real run refuses, unless
/// `--allow-dirty`; else the reason the manifest goes by digest only (a dry run says what a
/// real run would do).
fn tree_state(
    dirty: git::DirtyTree,
    dry_run: bool,
    allow_dirty: bool,
) -> Result<Option<String>, Error> {
    let (warning, reason) = match (allow_dirty, dry_run) {
        (true, _) => {
            let reason = format!(
                "{}: `--allow-dirty` publishes the manifest by digest only",
                dirty.what
            );
            (reason.clone(), reason)
        }
        (false, true) => (
            format!("a real run refuses: {dirty}"),
            format!(
                "a real run refuses: {}; commit it, or pass `--allow-dirty`",
                dirty.what
            ),
        ),
        (false, false) => return Err(dirty.into()),
    };
    eprintln!("warning: {}", terminal::escape(&warning));
    Ok(Some(reason))
}

/// `--json` and `--only` are global flags, but only building and lint use them: elsewhere
/// they would be silently ignored, so they are refused.
fn unused_flags(opts: &Options) -> Result<(), Error> {
    let command = match &opts.task {
        Task::Publish(_) | Task::Lint { .. } => return Ok(()),
        Task::Schema(_) => "schema",
        Task::PullManifest { .. } => "manifest pull",
        Task::Render(_) | Task::RenderSchedules { .. } | Task::HarnessTemplate(_) => "render",
    };
    let fix = match command {
        "manifest pull" => "; it prints JSON by default (`--format json`)",
        "render" => "; it prints YAML for `kubectl apply -f -`",
        _ => "",
    };
    if opts.json {
        return Err(Error::Usage(format!(
            "`--json` does not apply to `krobs-build {command}`: drop it{fix}"
        )));
    }
    if !opts.only.is_empty() {
        return Err(Error::Usage(format!(
            "`--only` does not apply to `krobs-build {command}`: drop it"
        )));
    }
    Ok(())
}

/// `--dry-run --strict`: a registry state left unknown fails the run.
fn strict_check(config: &Config, plan: &plan::Plan) -> Result<(), publish::PublishError> {
    for lp in &plan.languages {
        if let plan::RegistryState::Unknown(why) = &lp.registry {
            return Err(publish::PublishError::Unreadable {
                registry: config.registry.host(),
                language: lp.language.name.clone(),
                why: why.clone(),
            });
        }
    }
    Ok(())
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A dry run looks tags up when registry credentials are at hand without calling AWS or
/// Docker; otherwise, or when the registry cannot answer, it says why the state is unknown.
async fn dry_run_lookups(config: &Config, plan: &mut plan::Plan) {
    let unknown = |plan: &mut plan::Plan, why: String| {
        for lp in &mut plan.languages {
            lp.set_registry(plan::RegistryState::Unknown(why.clone()));
        }
    };
    let credentials = match publish::dry_run_credentials(config) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return unknown(
                plan,
                "no registry credentials at hand (`KROBS_REGISTRY_USERNAME`/`KROBS_REGISTRY_PASSWORD` or `docker login`); a dry run does not call AWS".to_string(),
            )
        }
        Err(e) => return unknown(plan, e.to_string()),
    };
    let client = match registry::RegistryClient::new(
        &config.registry.host(),
        Some(credentials),
        registry::retry::RetryPolicy::quick(),
    ) {
        Ok(c) => c,
        Err(e) => return unknown(plan, e.to_string()),
    };
    if let Err(e) = publish::lookup_all(&client, config, plan).await {
        return unknown(plan, e.to_string());
    }
    if let Err(e) = publish::lookup_runtimes(&client, config, plan).await {
        unknown(plan, e.to_string());
    }
}
