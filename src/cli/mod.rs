//! The command line and what the user sees: the clap arguments, the resolved [`options`], the
//! run [`report`], live [`progress`], text made safe for a [`terminal`], and internal logging.

pub mod args;
pub mod logging;
pub mod options;
pub mod progress;
pub mod report;
pub mod terminal;
