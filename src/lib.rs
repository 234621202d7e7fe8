//! krobs-build: language folders -> input digests -> plan -> images -> release manifest.
//!
//! The stages, in order: [`config`] reads `krobs.toml`; [`discover`] finds the languages, their
//! build [`context`]s and their documented scripts ([`header`]); [`digest`] gives each language
//! its content identity; [`git`] explains what changed; [`plan`] lays out what to do; and
//! [`manifest`] writes the release record.

pub mod build;
pub mod cli;
pub mod config;
pub mod context;
pub mod cron;
pub mod digest;
pub mod discover;
pub mod dockerignore;
pub mod error;
pub mod git;
pub mod header;
pub mod lint;
pub mod logging;
pub mod manifest;
pub mod names;
pub mod plan;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod repo;
pub mod report;
pub mod terminal;

use cli::{Cli, Command};
use config::Config;
pub use error::Error;
use git::Changes;
use manifest::Manifest;

/// Runs the command line.
pub fn run(cli: &Cli) -> Result<(), Error> {
    if cli.command == Some(Command::Schema) {
        return report::print(manifest::SCHEMA).map_err(Error::Output);
    }
    let lint_json = cli.json && cli.command == Some(Command::Lint);
    let config = match Config::load(&cli.config) {
        Err(e) if lint_json => {
            let problem = match &e {
                config::ConfigError::Invalid {
                    path,
                    line,
                    message,
                    ..
                } => lint::Problem::at(path.display().to_string(), *line, message.clone()),
                other => lint::Problem::new(cli.config.display().to_string(), other.to_string()),
            };
            report::print(&lint::problems_json(&lint::Problems(vec![problem])))
                .map_err(Error::Output)?;
            return Err(e.into());
        }
        result => result?,
    };
    let only = discover::parse_only(&cli.only);
    let inventory = match discover::discover(&config, &only) {
        Err(e) if lint_json => {
            let problems = match &e {
                discover::DiscoverError::Problems(problems) => problems.clone(),
                other => lint::Problems(vec![lint::Problem::new(
                    config.languages_dir.clone(),
                    other.to_string(),
                )]),
            };
            report::print(&lint::problems_json(&problems)).map_err(Error::Output)?;
            return Err(e.into());
        }
        result => result?,
    };
    if cli.command == Some(Command::Lint) {
        return report::print(&report::lint_ok(&inventory, cli.json)).map_err(Error::Output);
    }

    let commit = git::head_commit(&config.root);
    let changes = match &cli.since {
        Some(rev) => git::changes_since(&config.root, rev),
        None => Changes::NotAsked,
    };
    if let Changes::Unknown { warning } = &changes {
        eprintln!("warning: {warning}");
    }
    let mut plan = plan::make(&config, inventory, commit, cli.since.clone(), changes)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;

    let (published, dry_run) = if cli.dry_run {
        runtime.block_on(dry_run_lookups(&config, &mut plan));
        (Vec::new(), true)
    } else {
        let names: Vec<String> = plan
            .languages
            .iter()
            .map(|l| l.language.name.clone())
            .collect();
        let progress = progress::Progress::new(cli.progress, &names);
        let published = runtime.block_on(async {
            let session = publish::open(&config, &plan, &progress).await?;
            publish::lookup_all(&session.client, &config, &mut plan).await?;
            publish::publish(&config, &plan, &session, &progress).await
        })?;
        (published, false)
    };
    let written = manifest::write(
        &Manifest::new(&plan, &published),
        &config.manifest_path(),
        !only.is_empty(),
    )?;
    let text = if cli.json {
        format!(
            "{}\n",
            report::plan_json(&plan, dry_run, &published, Some(&written))
        )
    } else {
        report::plan_text(&plan, dry_run, &published, Some(&written))
    };
    report::print(&text).map_err(Error::Output)
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
        unknown(plan, e.to_string());
    }
}
