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
pub mod deploy;
pub mod docker;
pub mod error;
pub mod exit;
pub mod input;
pub mod lint;
pub mod plan;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod release;

use std::time::Instant;

use cli::options::{Options, PullFormat, Schema, Task};
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
    if let (Err(e), true, Task::Publish { .. }) = (&result, opts.json, &opts.task) {
        // stdout may be what failed; the error still goes to stderr.
        let _ = report::print(report::error_json(exit::code(e), &e.message()));
    }
    result
}

fn run_task(opts: &Options) -> Result<(), Error> {
    let started = Instant::now();
    unused_flags(opts)?;
    if let Task::HarnessTemplate(which) = &opts.task {
        return report::print(harness::template(*which)).map_err(Error::Output);
    }
    if let Task::Schema(which) = &opts.task {
        let schema = match which {
            Schema::Manifest => manifest::SCHEMA,
            Schema::Report => report::SCHEMA,
            Schema::Monitor => entrypoint::EVENT_SCHEMA,
        };
        return report::print(schema).map_err(Error::Output);
    }
    let lint_json = opts.json && matches!(opts.task, Task::Lint { .. });
    let config_path = opts
        .config
        .clone()
        .unwrap_or_else(|| config::FILE_NAME.into());
    let config = match config::locate(opts.config.as_deref()).and_then(|p| Config::load(&p)) {
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
            report::print(lint::problems_json(&lint::Problems(vec![problem])))
                .map_err(Error::Output)?;
            return Err(e.into());
        }
        result => result?,
    };
    if let Task::PullManifest { reference, format } = &opts.task {
        let pulled = release::pull(&config, &release::Reference::parse(reference)?)?;
        return match format {
            PullFormat::Json => report::print_bytes(&pulled.bytes),
            PullFormat::Harness => report::print(harness::view(&pulled.manifest, &pulled.digest)),
        }
        .map_err(Error::Output);
    }
    if let Task::Render(args) = &opts.task {
        let yaml = render::run(&config, args)?;
        return report::print(&yaml).map_err(Error::Output);
    }
    if let Task::RenderSchedules {
        manifest,
        namespace,
    } = &opts.task
    {
        let yaml = render::run_schedules(&config, manifest.as_deref(), namespace.as_deref())?;
        return report::print(&yaml).map_err(Error::Output);
    }
    let only = &opts.only;
    let inventory = match discover::discover(&config, only) {
        Err(e) if lint_json => {
            let problems = match &e {
                discover::DiscoverError::Problems(problems) => problems.clone(),
                other => lint::Problems(vec![lint::Problem::new(
                    config.languages_dir.clone(),
                    other.to_string(),
                )]),
            };
            report::print(lint::problems_json(&problems)).map_err(Error::Output)?;
            return Err(e.into());
        }
        result => result?,
    };
    let (dry_run, allow_dirty, strict, since, progress) = match &opts.task {
        Task::Publish {
            dry_run,
            allow_dirty,
            strict,
            since,
            progress,
        } => (dry_run, *allow_dirty, *strict, since, progress),
        Task::Lint { syntax } => {
            for warning in lint::warnings(&inventory.scripts) {
                eprintln!("warning: {}", terminal::escape(&warning));
            }
            if *syntax {
                return lint_syntax(&config, &inventory, opts.json);
            }
            return report::print(report::lint_ok(&inventory, opts.json)).map_err(Error::Output);
        }
        _ => unreachable!("the other tasks returned above"),
    };

    let head = git::head_commit(&config.root);
    let dirty = match &head {
        Some(c) => tree_state(&config, c, *dry_run, allow_dirty)?,
        None => None,
    };
    // A tree that is not HEAD is no commit's release: its images get no `git-` tag either.
    let commit = head.clone().filter(|_| dirty.is_none());
    let changes = match since {
        Some(rev) => git::changes_since(&config.root, rev),
        None => Changes::NotAsked,
    };
    if let Changes::Unknown { warning } = &changes {
        eprintln!("warning: {warning}");
    }
    let mut plan = plan::make(&config, inventory, commit, since.clone(), changes)?;
    let mut timings = report::Timings {
        plan: millis(started),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let partial = !only.is_empty();
    let commit = plan.commit.clone();
    let scope = release::Scope {
        commit: commit.as_deref().or(head.as_deref()),
        partial,
        dirty: dirty.as_deref(),
    };

    let (published, session) = if *dry_run {
        runtime.block_on(dry_run_lookups(&config, &mut plan));
        if strict {
            strict_check(&config, &plan)?;
        }
        (Vec::new(), None)
    } else {
        let names: Vec<String> = plan
            .languages
            .iter()
            .map(|l| l.language.name.clone())
            .collect();
        let progress = progress::Progress::new(*progress, &names);
        let (published, session) = runtime.block_on(async {
            let session = publish::open(&config, &plan, &progress).await?;
            publish::lookup_all(&session.client, &config, &mut plan).await?;
            let engine = engine::DockerEngine::default();
            let published = publish::publish(
                &config,
                &plan,
                &session.client,
                &session.repositories,
                &engine,
                &progress,
            )
            .await?;
            Ok::<_, publish::PublishError>((published, session))
        })?;
        (published, Some(session))
    };
    let images_done = Instant::now();
    timings.images = millis(started) - timings.plan;
    let manifest = Manifest::new(&plan, &published, &config.deploy);
    // Every image is verified: the manifest goes to the registry, then to disk, so that a run
    // that fails leaves no manifest behind.
    let publication = match &session {
        None => release::plan(&config, scope),
        Some(session) => runtime.block_on(release::publish(
            &session.client,
            &config,
            &manifest.to_bytes(),
            scope,
            session.manifest_repository_created,
        ))?,
    };
    timings.publication = millis(images_done);
    let path = if manifest.preview {
        config.preview_path()
    } else {
        config.manifest_path()
    };
    let written = manifest::write(&manifest, &path, partial)?;
    timings.total = millis(started);
    let report = report::Report::new(
        &plan,
        *dry_run,
        &published,
        &written,
        partial,
        publication,
        timings,
    );
    let text = if opts.json {
        report.json()
    } else {
        report.text()
    };
    report::print(&text).map_err(Error::Output)
}

/// `lint --syntax`: the headers are fine; now each script's syntax, in its runtime image.
fn lint_syntax(config: &Config, inventory: &discover::Inventory, json: bool) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
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
            report::print(lint::problems_json(&problems)).map_err(Error::Output)?;
        }
        return Err(discover::DiscoverError::Problems(problems).into());
    }
    report::print(report::lint_syntax_ok(inventory, &checked, json)).map_err(Error::Output)
}

/// Whether the working tree is `commit`: `None` when it is; else a real run refuses, unless
/// `--allow-dirty`, and the reason the manifest goes by digest only (a dry run says what a real
/// run would do).
fn tree_state(
    config: &Config,
    commit: &str,
    dry_run: bool,
    allow_dirty: bool,
) -> Result<Option<String>, Error> {
    let mut inputs = vec![config.languages_dir.clone()];
    for lang in config.languages.values() {
        inputs.extend(lang.path.iter().cloned());
        inputs.extend(lang.extra_inputs.iter().cloned());
    }
    let Err(dirty) = git::check_tree(&config.root, commit, &inputs) else {
        return Ok(None);
    };
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
        Task::Publish { .. } | Task::Lint { .. } => return Ok(()),
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
