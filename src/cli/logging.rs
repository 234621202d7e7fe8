//! Internal logs on stderr, chosen with `KROBS_LOG` (e.g. `debug`, `krobs=trace`).

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// Installs the subscriber: `KROBS_LOG` (default `warn`), no colour off a terminal or under
/// `NO_COLOR`, and never a level that prints secrets.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KROBS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
                )
                .with_filter(filter)
                .with_filter(secret_safe_levels()),
        )
        .init();
}

/// Below `debug`, the HTTP and SDK layers log request and response bodies and headers: the
/// ECR token and registry credentials among them. Those targets never log below `debug`,
/// whatever `KROBS_LOG` asks.
fn secret_safe_levels() -> Targets {
    [
        "aws_smithy_runtime",
        "aws_smithy_runtime_api",
        "aws_smithy_http_client",
        "aws_config",
        "aws_sdk_ecr",
        "bollard",
        "reqwest",
        "hyper",
        "hyper_util",
        "h2",
        "rustls",
    ]
    .into_iter()
    .fold(Targets::new().with_default(Level::TRACE), |t, target| {
        t.with_target(target, Level::DEBUG)
    })
}
