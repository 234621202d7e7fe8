//! The command line and what the user reads: the clap arguments, the resolved [`options`]
//! (the library's input), the run [`report`], text made safe for a [`terminal`], and internal
//! logging.

pub mod args;
pub mod logging;
pub mod options;
pub(crate) mod report;
pub mod terminal;
