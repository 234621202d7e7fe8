//! Reading the repository, which is untrusted input: the one door to its files ([`repo`]),
//! `krobs.toml` ([`config`], [`deploy_config`]), the krobs' documentation headers ([`header`]),
//! names and cron schedules checked against the grammar of where they end up ([`names`],
//! [`cron`]), the Dockerfile's stages ([`dockerfile`]), `.dockerignore` and the build contexts
//! it shapes ([`dockerignore`], [`context`]), and what git says about the tree ([`git`]). Every
//! problem names its file and line ([`problem`]), all reported at once.

pub mod config;
pub mod context;
pub mod cron;
pub(crate) mod deploy_config;
pub(crate) mod dockerfile;
pub mod dockerignore;
pub(crate) mod git;
pub mod header;
pub mod names;
pub(crate) mod problem;
pub mod repo;
