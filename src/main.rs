use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use krobs::discover::DiscoverError;
use krobs::{cli::Cli, Error};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KROBS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    match krobs::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Error::Discover(DiscoverError::Problems(problems)) = &err {
                for p in &problems.0 {
                    eprintln!("{p}");
                }
            }
            let mut message = format!("error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::from(err.exit_code())
        }
    }
}
