//! Command-line arguments, each also read from a `KROBS_*` environment variable.

use std::path::PathBuf;

use clap::builder::FalseyValueParser;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "krobs-build",
    version,
    about = "Builds one image per language of a Krobs repository, pushes it, and writes the release manifest",
    after_help = "Exit codes: 0 ok, 1 internal error, 2 usage, 3 configuration or lint, 4 Docker, 5 registry, 6 AWS."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The configuration file; the repository root is its folder (default: `krobs.toml` in
    /// the working folder or the nearest folder above it, up to the git repository's root).
    #[arg(long, global = true, env = "KROBS_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Restrict the run to these languages.
    #[arg(
        long,
        global = true,
        env = "KROBS_ONLY",
        value_delimiter = ',',
        value_name = "LANG[,LANG]"
    )]
    pub only: Vec<String>,

    /// Show what would happen and write a manifest preview; touches neither Docker nor AWS.
    #[arg(long, env = "KROBS_DRY_RUN", value_parser = FalseyValueParser::new())]
    pub dry_run: bool,

    /// With `--dry-run`: fail (exit 5) when the registry cannot be read, instead of planning
    /// with its state unknown.
    #[arg(long, env = "KROBS_STRICT", value_parser = FalseyValueParser::new(), requires = "dry_run")]
    pub strict: bool,

    /// Publish a working tree that differs from HEAD, by digest only: no `git-<commit>` or
    /// `latest` tag moves, on the images or the manifest.
    #[arg(long, env = "KROBS_ALLOW_DIRTY", value_parser = FalseyValueParser::new())]
    pub allow_dirty: bool,

    /// List the files each language changed since this revision (the PR's base).
    #[arg(long, env = "KROBS_SINCE", value_name = "REV")]
    pub since: Option<String>,

    /// Print one JSON object on stdout instead of the human report.
    #[arg(long, global = true, env = "KROBS_JSON", value_parser = FalseyValueParser::new())]
    pub json: bool,

    /// How to show progress.
    #[arg(long, env = "KROBS_PROGRESS", value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
}

impl Cli {
    /// The command line, or exit 2 with clap's message; `krobs-build build` (or `publish`)
    /// also hears that the bare command is the one that builds.
    pub fn parse_or_exit() -> Cli {
        use clap::error::{ContextKind, ContextValue, ErrorKind};
        let e = match Cli::command().try_get_matches() {
            Ok(matches) => {
                let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
                cli.drop_environment_flags_that_do_not_apply(&matches);
                cli.refuse_an_empty_only(&matches);
                return cli;
            }
            Err(e) => e,
        };
        let builds = e.kind() == ErrorKind::InvalidSubcommand
            && matches!(
                e.get(ContextKind::InvalidSubcommand),
                Some(ContextValue::String(s)) if ["build", "publish", "push", "run"].contains(&s.as_str())
            );
        if !builds {
            e.exit();
        }
        eprint!("{}", e.render());
        eprintln!("\nthe bare command builds, pushes and publishes: run `krobs-build` (`krobs-build --dry-run` to see the plan first)");
        std::process::exit(crate::exit::USAGE.into());
    }

    /// An empty name typed in `--only` (`--only ""`, `--only python,`) names no language, and
    /// would otherwise read as no restriction at all: exit 2. An empty `KROBS_ONLY` is unset,
    /// as an empty environment variable usually is.
    fn refuse_an_empty_only(&self, matches: &ArgMatches) {
        let typed = matches.value_source("only") == Some(ValueSource::CommandLine);
        if typed && self.only.iter().any(|name| name.trim().is_empty()) {
            eprintln!("error: `--only` got an empty language name: name the languages, e.g. `--only python,ruby`, or leave `--only` out to run every language");
            std::process::exit(2);
        }
    }

    /// `--json` and `--only` mean something only to building and lint; elsewhere the command
    /// refuses them when typed. A `KROBS_JSON` or `KROBS_ONLY` exported for a whole CI job is
    /// no mistake of this command's, so a value that came from the environment is dropped here.
    fn drop_environment_flags_that_do_not_apply(&mut self, matches: &ArgMatches) {
        if matches!(self.command, None | Some(Command::Lint { .. })) {
            return;
        }
        let from_environment = |id| matches.value_source(id) == Some(ValueSource::EnvVariable);
        if from_environment("json") {
            self.json = false;
        }
        if from_environment("only") {
            self.only.clear();
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Check every script's documentation header and the language folders; report every problem.
    Lint {
        /// Also check each script's syntax with its language's check, run in its runtime image
        /// (built by the Docker Engine) with no network.
        #[arg(long)]
        syntax: bool,
    },
    /// Print a JSON Schema: the manifest's (default) or the `--json` run report's.
    Schema {
        #[arg(value_enum, default_value_t = SchemaKind::Manifest)]
        which: SchemaKind,
    },
    /// Read the manifest a real run published to the registry.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Print the Kubernetes Job, or CronJob for a scheduled script, that runs one script of a
    /// release manifest, as YAML for `kubectl apply -f -`.
    Render(RenderArgs),
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RenderArgs {
    /// The script's id, e.g. `python/expunge_deletes`.
    #[arg(required_unless_present_any = ["schedules", "harness_template"])]
    pub script_id: Option<String>,
    /// Print every CronJob of the release instead, as one YAML stream for `kubectl apply
    /// --prune -l app.kubernetes.io/managed-by=krobs`.
    #[arg(long, conflicts_with_all = ["script_id", "name", "env", "harness_template"])]
    pub schedules: bool,
    /// Print the Go template Harness renders for a script (`krob`) or a release's schedules
    /// (`schedules`): what `.harness/manifests` holds, generated from this renderer.
    #[arg(long, value_enum, value_name = "WHICH", conflicts_with_all = ["script_id", "name", "env", "namespace", "manifest"])]
    pub harness_template: Option<HarnessTemplate>,
    /// The manifest: a file (default: `[manifest] path` of krobs.toml) or a published one
    /// (`latest`, a 40-hex commit, `git-<12 hex>`, `sha256:<digest>`; `./NAME` for a file
    /// named like one).
    #[arg(long, value_name = "PATH|REF")]
    pub manifest: Option<String>,
    /// The object's name (default: from the script id; a Job's gets a unique suffix).
    #[arg(long)]
    pub name: Option<String>,
    /// The namespace (default: `[deploy] namespace` of krobs.toml).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// An extra environment variable of the script's container; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
}

/// The Go templates of `.harness/manifests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HarnessTemplate {
    /// One script's Job or CronJob (`.harness/manifests/templates/krob.yaml`).
    Krob,
    /// Every CronJob of a release (`.harness/manifests/schedules/templates/schedules.yaml`).
    Schedules,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// `schema/manifest-v1.schema.json`.
    Manifest,
    /// `schema/report-v1.schema.json`.
    Report,
    /// `schema/monitor-event-v1.schema.json`: what krobs-run and the language libraries send
    /// to the monitor.
    Monitor,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ManifestCommand {
    /// Print a published manifest after checking its digests.
    Pull {
        /// `latest`, a 40-hex commit, `git-<12 hex>` (its tag) or the artifact's
        /// `sha256:<digest>`.
        #[arg(default_value = "latest", value_name = "REF")]
        reference: String,
        /// `json`: the manifest bytes as published; `harness`: the one-line view Harness reads.
        #[arg(long, value_enum, default_value_t = PullFormat::Json)]
        format: PullFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PullFormat {
    Json,
    Harness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// A live display on a terminal, plain lines otherwise.
    Auto,
    /// Plain log lines.
    Plain,
}
