//! Problems found while reading the repository, all reported at once as `path:line: message`.

pub mod syntax;

use std::fmt;

/// One problem with a file or folder of the repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Repository-relative, `/`-separated.
    pub path: String,
    /// 1-based line, where the problem is inside a file.
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            line: None,
            message: message.into(),
        }
    }

    pub fn at(path: impl Into<String>, line: usize, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            line: Some(line),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path, line, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Every problem found, sorted by path and line; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} problem{} in the repository: fix {} and run `krobs-build lint` again",
            if n == 1 { "" } else { "s" },
            if n == 1 { "it" } else { "them" }
        )
    }
}

impl std::error::Error for Problems {}

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
