//! From a release manifest to what runs: [`render`] prints a script's Kubernetes Job or
//! CronJob from its [`run_spec`], named by [`naming`], written as [`yaml`] that kubectl reads back exactly, and
//! [`harness`] gives Harness the same record and the templates that render it.

pub mod harness;
pub mod naming;
pub mod render;
pub mod run_spec;
pub mod yaml;
