//! What a run is asked to do, resolved from the command line: the library's input. The clap
//! struct stays in [`crate::cli::args`]; `Options::from(cli)` turns it into ready values, so that the
//! library never reads raw arguments.

use std::path::PathBuf;

use crate::cli::args::{self, Cli, Command, ManifestCommand};
use crate::deploy::harness;
pub use crate::deploy::render::RenderOptions;
use crate::plan::discover;
use crate::progress;

/// The resolved command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--config`; `None`: found upward from the working folder ([`crate::input::config::find`]).
    pub config: Option<PathBuf>,
    /// One JSON object on stdout instead of text.
    pub json: bool,
    /// The languages the run is restricted to (empty: all).
    pub only: Vec<String>,
    pub task: Task,
}

/// The one thing a run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Build, push and publish (or, with `dry_run`, show what that would do).
    Publish(PublishOptions),
    /// Check the headers and folders; with `syntax`, also each script's syntax.
    Lint {
        syntax: bool,
    },
    Schema(Schema),
    PullManifest {
        reference: String,
        format: PullFormat,
    },
    Render(RenderOptions),
    /// `render --schedules`: every CronJob of a release.
    RenderSchedules {
        manifest: Option<String>,
        namespace: Option<String>,
    },
    /// `render --harness-template`: the Go template Harness renders.
    HarnessTemplate(harness::Template),
}

/// The bare command's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOptions {
    /// Show what a real run would do, touching no Docker Engine, AWS or registry write.
    pub dry_run: bool,
    /// `--allow-dirty`: a tree that is not HEAD publishes by digest only.
    pub allow_dirty: bool,
    /// A dry run that cannot read the registry fails.
    pub strict: bool,
    /// `--since REV`: what git says changed, for the log and the report.
    pub since: Option<String>,
    pub progress: progress::Mode,
}

/// The JSON Schemas `krobs-build schema` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    Manifest,
    Report,
    Monitor,
}

/// How `manifest pull` prints a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFormat {
    /// The manifest's bytes, as published.
    Json,
    /// The one-line view Harness's Custom Artifact source reads.
    Harness,
}

impl From<Cli> for Options {
    fn from(cli: Cli) -> Options {
        let task = match cli.command {
            None => Task::Publish(PublishOptions {
                dry_run: cli.dry_run,
                allow_dirty: cli.allow_dirty,
                strict: cli.strict,
                since: cli.since,
                progress: match cli.progress {
                    args::Progress::Auto => progress::Mode::Auto,
                    args::Progress::Plain => progress::Mode::Plain,
                },
            }),
            Some(Command::Lint { syntax }) => Task::Lint { syntax },
            Some(Command::Schema { which }) => Task::Schema(match which {
                args::SchemaKind::Manifest => Schema::Manifest,
                args::SchemaKind::Report => Schema::Report,
                args::SchemaKind::Monitor => Schema::Monitor,
            }),
            Some(Command::Manifest(ManifestCommand::Pull { reference, format })) => {
                Task::PullManifest {
                    reference,
                    format: match format {
                        args::PullFormat::Json => PullFormat::Json,
                        args::PullFormat::Harness => PullFormat::Harness,
                    },
                }
            }
            Some(Command::Render(args)) if args.schedules => Task::RenderSchedules {
                manifest: args.manifest,
                namespace: args.namespace,
            },
            Some(Command::Render(args)) if args.harness_template.is_some() => {
                Task::HarnessTemplate(match args.harness_template.expect("checked") {
                    args::HarnessTemplate::Krob => harness::Template::Krob,
                    args::HarnessTemplate::Schedules => harness::Template::Schedules,
                })
            }
            Some(Command::Render(args)) => Task::Render(RenderOptions {
                script_id: args.script_id.unwrap_or_default(),
                manifest: args.manifest,
                name: args.name,
                namespace: args.namespace,
                env: args.env,
            }),
        };
        Options {
            config: cli.config,
            json: cli.json,
            only: discover::parse_only(&cli.only),
            task,
        }
    }
}
