//! The integration tests: one test binary (`it`), one module per area, as ripgrep and cargo do.
//!
//! One binary links the crate once where a binary per file linked it once each (19 times,
//! about 250 MB each in a debug build). nextest still runs every test in a process of its own,
//! so a test's environment, globals and working directory never leak into another.
//!
//! Run one area by its module path, e.g.
//! `bash tests/run.sh -E 'binary_id(krobs::it) & test(/^e2e::/)'`, or tests by part of their
//! name: `bash tests/run.sh -E 'binary_id(krobs::it)' e2e::end_to_end`. `support` holds what
//! every area shares (the real binary in temporary repositories, the services, the fakes).

mod support;

mod credential_helpers;
mod docker_tls;
mod dockerignore_oracle;
mod dry_run;
mod e2e;
mod errors;
mod harness;
mod hostile;
mod krobs;
mod krobs_run;
mod lint_syntax;
mod properties;
mod publish_manifest;
mod render;
mod runtimes;
mod scripts_layer;
mod services;
mod toolchain;
mod validators;
