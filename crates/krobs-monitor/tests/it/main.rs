//! The integration tests of `krobs-monitor`: one test binary (`it`), one module per area, as
//! the krobs crate's own (tests/it). nextest runs every test in a process of its own. Run one
//! area with e.g. `bash tests/run.sh -E 'binary_id(krobs-monitor::it) & test(/^replicas::/)'`.

mod support;

mod deploy;
mod e2e;
mod image;
mod monitor;
mod replicas;
