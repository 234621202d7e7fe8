//! `krobs-build lint`: the problems found while reading the repository ([`Problem`]), as JSON
//! for `--json`, the warnings that do not stop a run, and each script's [`syntax`] check.

pub mod syntax;

pub use crate::input::problem::{Problem, Problems};

/// `lint --json` when there are problems: the same object as a clean lint, with every problem.
pub fn problems_json(problems: &Problems) -> String {
    let v = serde_json::json!({
        "problems": problems.0.iter().map(|p| serde_json::json!({
            "path": p.path,
            "line": p.line,
            "message": p.message,
        })).collect::<Vec<_>>(),
        "languages": [],
        "scripts": [],
    });
    format!("{v}\n")
}

/// Warnings that do not stop a run: a scheduled script whose timeout is longer than the
/// shortest time between its runs, so that (CronJobs forbid concurrent runs) a slow run makes
/// the next ones be skipped.
pub fn warnings(scripts: &[crate::plan::discover::Script]) -> Vec<String> {
    let human = |secs: u64| humantime::format_duration(std::time::Duration::from_secs(secs));
    scripts
        .iter()
        .filter_map(|s| {
            let schedule = s.header.schedule.as_deref()?;
            let interval = crate::input::cron::shortest_interval(schedule)?;
            let timeout = s
                .header
                .timeout_seconds
                .unwrap_or(crate::release::manifest::DEFAULT_TIMEOUT_SECONDS);
            (timeout > interval).then(|| {
                format!(
                    "{}: `schedule = \"{schedule}\"` starts a run every {} but `timeout` allows {}: a run still going when the next is due makes Kubernetes skip that one (`concurrencyPolicy: Forbid`); set `timeout` to at most {}",
                    s.path,
                    human(interval),
                    human(timeout),
                    human(interval)
                )
            })
        })
        .collect()
}
