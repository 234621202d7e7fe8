//! krobs-build: language folders -> input digests -> plan -> images -> release manifest.
//!
//! The stages, in order: [`config`] reads `krobs.toml`; [`discover`] finds the languages, their
//! build [`context`]s and their documented scripts ([`header`]); [`digest`] gives each language
//! its content identity; [`git`] explains what changed; [`plan`] lays out what to do; and
//! [`manifest`] writes the release record.

pub mod cli;
pub mod config;
pub mod context;
pub mod digest;
pub mod discover;
pub mod dockerignore;
pub mod error;
pub mod git;
pub mod header;
pub mod lint;
pub mod manifest;
pub mod plan;
pub mod report;

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
    let config = Config::load(&cli.config)?;
    let only = discover::parse_only(&cli.only);
    let inventory = discover::discover(&config, &only)?;
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
    let plan = plan::make(&config, inventory, commit, cli.since.clone(), changes)?;
    if !cli.dry_run {
        return Err(Error::NotBuilt);
    }
    let written = manifest::write(&Manifest::new(&plan, &[]), &config.manifest_path())?;
    let text = if cli.json {
        format!("{}\n", report::plan_json(&plan, true, Some(&written)))
    } else {
        report::plan_text(&plan, true, Some(&written))
    };
    report::print(&text).map_err(Error::Output)
}
