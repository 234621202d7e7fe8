//! The Docker Engine: reaching it ([`host`], with TLS), the one call the orchestration makes
//! ([`engine`]: build a runtime and push it), and the build itself through bollard ([`build`]).

pub mod build;
pub mod engine;
pub mod host;
