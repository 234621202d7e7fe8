use std::process::ExitCode;

use krobs::cli::options::Options;
use krobs::plan::discover::DiscoverError;
use krobs::{cli::args::Cli, Error};

fn main() -> ExitCode {
    let options = Options::from(Cli::parse_or_exit());
    krobs::cli::logging::init();
    match krobs::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Error::Discover(DiscoverError::Problems(problems)) = &err {
                for p in &problems.0 {
                    eprintln!("{}", krobs::cli::terminal::escape(&p.to_string()));
                }
            }
            let message = format!("error: {}", err.message());
            eprintln!("{}", krobs::cli::terminal::escape(&message));
            ExitCode::from(krobs::exit::code(&err))
        }
    }
}
