//! `krobs-run`, the entrypoint every image gets in its scripts layer (`runtime/krobs-run`).
//!
//! It holds the run contract once for every language: it tells the monitor `start`, then
//! `finish` or `failure` (`schema/monitor-event-v1.schema.json`), forwards SIGTERM with a grace
//! period and passes the exit code through. A script's manifest command goes through it.

/// The script's bytes, embedded so that the scripts layer (and so the image digest) covers it.
pub const BYTES: &[u8] = include_bytes!("../../runtime/krobs-run");

/// Where it is in every image.
pub const PATH: &str = "/opt/krobs/bin/krobs-run";

/// The JSON Schema of the events it and the language libraries send to the monitor.
pub const EVENT_SCHEMA: &str = include_str!("../../schema/monitor-event-v1.schema.json");

/// The container command of a script: the language's command (`{script}` already replaced)
/// run through the entrypoint under the script's id.
pub fn command(id: &str, language_command: &[String]) -> Vec<String> {
    [PATH, "--id", id, "--"]
        .into_iter()
        .map(str::to_string)
        .chain(language_command.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_runs_the_language_command_through_the_entrypoint() {
        assert_eq!(
            command(
                "python/expunge_deletes",
                &[
                    "python3".into(),
                    "/opt/krobs/scripts/expunge_deletes.py".into()
                ]
            ),
            [
                "/opt/krobs/bin/krobs-run",
                "--id",
                "python/expunge_deletes",
                "--",
                "python3",
                "/opt/krobs/scripts/expunge_deletes.py"
            ]
        );
    }

    #[test]
    fn the_entrypoint_is_a_bash_script() {
        assert!(BYTES.starts_with(b"#!/bin/bash\n"));
    }
}
