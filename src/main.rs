use std::process::ExitCode;

use krobs::discover::DiscoverError;
use krobs::options::Options;
use krobs::{cli::Cli, Error};

fn main() -> ExitCode {
    let options = Options::from(Cli::parse_or_exit());
    krobs::logging::init();
    match krobs::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Error::Discover(DiscoverError::Problems(problems)) = &err {
                for p in &problems.0 {
                    eprintln!("{}", krobs::terminal::escape(&p.to_string()));
                }
            }
            let message = format!("error: {}", err.message());
            eprintln!("{}", krobs::terminal::escape(&message));
            ExitCode::from(err.exit_code())
        }
    }
}
