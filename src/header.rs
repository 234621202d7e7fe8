//! The documentation header every krob starts with: TOML inside a comment block.
//!
//! ```text
//! #!/usr/bin/env python3
//! # ---
//! # owner = "search-infra (#search-oncall)"
//! # description = "Expunges deleted documents from bloated indices."
//! # schedule = "0 3 * * *"
//! # timeout = "2h"
//! # retries = 1
//! # ---
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::{line_column, one_line};
use crate::deploy::{check_cpu, check_memory};

/// Most retries a header may ask for: a krob that needs more is not idempotent enough.
pub const MAX_RETRIES: u32 = 10;
/// Longest timeout a header may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// A parsed, validated documentation header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub owner: String,
    pub description: String,
    /// Five-field cron expression (UTC), for CronJobs.
    pub schedule: Option<String>,
    /// Deadline of one run, in seconds.
    pub timeout_seconds: Option<u64>,
    pub retries: Option<u32>,
    /// CPU request (Kubernetes quantity), over `[deploy] cpu`.
    pub cpu: Option<String>,
    /// Memory request and limit (Kubernetes quantity), over `[deploy] memory`.
    pub memory: Option<String>,
    /// Where krobs-monitor posts the script's runs, over its default channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack_channel: Option<String>,
}

/// One problem with a header, at a 1-based line of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProblem {
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    owner: Option<Spanned<String>>,
    description: Option<Spanned<String>>,
    schedule: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    retries: Option<Spanned<i64>>,
    cpu: Option<Spanned<String>>,
    memory: Option<Spanned<String>>,
    slack_channel: Option<Spanned<String>>,
}

/// Parses the header from the first bytes of a script (`truncated` when the script is longer):
/// a header that does not end within them is refused as such.
pub fn parse_prefix(
    text: &str,
    comment: &str,
    truncated: bool,
) -> Result<Header, Vec<HeaderProblem>> {
    match parse(text, comment) {
        Err(problems)
            if truncated
                && problems
                    .iter()
                    .any(|p| p.message.starts_with("documentation header is never closed")) =>
        {
            Err(vec![HeaderProblem {
                line: 1,
                message: format!(
                    "documentation header does not end within the first {} KiB of the script: keep it short and close it with a `{comment} ---` line",
                    crate::repo::HEADER_LIMIT / 1024
                ),
            }])
        }
        result => result,
    }
}

/// Parses the header at the start of `text`, with `comment` the language's line-comment
/// marker. Returns every problem found, not just the first.
pub fn parse(text: &str, comment: &str) -> Result<Header, Vec<HeaderProblem>> {
    let fence = format!("{comment} ---");
    let problem = |line: usize, message: String| vec![HeaderProblem { line, message }];
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));

    let mut first = lines.next();
    if let Some((_, l)) = first {
        if l.starts_with("#!") {
            first = lines.next();
        }
    }
    let open_line = match first {
        Some((n, l)) if l.trim_end() == fence => n,
        Some((n, _)) => {
            return Err(problem(
                n,
                format!("missing documentation header: start the script with a `{fence}` block naming `owner` and `description` (after an optional `#!` line)"),
            ))
        }
        None => {
            return Err(problem(
                1,
                format!("empty script: start it with a `{fence}` block naming `owner` and `description`"),
            ))
        }
    };

    // The TOML body, and for each of its lines the script line it came from.
    let mut body = String::new();
    let mut body_lines = Vec::new();
    let mut problems = Vec::new();
    let mut closed = false;
    for (n, l) in lines {
        let l = l.trim_end();
        if l == fence {
            closed = true;
            break;
        }
        let content = if l == comment {
            ""
        } else if let Some(rest) = l.strip_prefix(comment).and_then(|r| r.strip_prefix(' ')) {
            rest
        } else {
            problems.push(HeaderProblem {
                line: n,
                message: format!(
                    "header line does not start with `{comment} `: keep the header in one comment block closed by `{fence}`"
                ),
            });
            continue;
        };
        body.push_str(content);
        body.push('\n');
        body_lines.push(n);
    }
    if !closed {
        problems.push(HeaderProblem {
            line: open_line,
            message: format!("documentation header is never closed: end it with a `{fence}` line"),
        });
        return Err(problems);
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let line_of = |offset: usize| {
        let (l, _) = line_column(&body, offset);
        body_lines
            .get(l.saturating_sub(1))
            .copied()
            .unwrap_or(open_line)
    };
    let raw: RawHeader = match toml::from_str(&body) {
        Ok(raw) => raw,
        Err(e) => {
            let line = e.span().map_or(open_line, |s| line_of(s.start));
            let message = one_line(e.message());
            let hint = if message.starts_with("unknown field") {
                ""
            } else {
                " (the header is TOML: quote text, e.g. `owner = \"team-a\"`)"
            };
            return Err(problem(line, format!("malformed header: {message}{hint}")));
        }
    };

    let mut required = |field: Option<Spanned<String>>, name: &str, example: &str| match field {
        None => {
            problems.push(HeaderProblem {
                line: open_line,
                message: format!("header has no `{name}`: add `{name} = {example}`"),
            });
            None
        }
        Some(v) if v.get_ref().trim().is_empty() => {
            problems.push(HeaderProblem {
                line: line_of(v.span().start),
                message: format!("header `{name}` is empty: add `{name} = {example}`"),
            });
            None
        }
        Some(v) => Some(v.into_inner()),
    };
    let owner = required(raw.owner, "owner", "\"team (#channel)\"");
    let description = required(
        raw.description,
        "description",
        "\"what it does and the env it takes\"",
    );

    let schedule = raw
        .schedule
        .and_then(|s| match check_schedule(s.get_ref()) {
            Ok(()) => Some(s.into_inner()),
            Err(m) => {
                problems.push(HeaderProblem {
                    line: line_of(s.span().start),
                    message: m,
                });
                None
            }
        });
    let timeout_seconds = raw.timeout.and_then(|t| match check_timeout(t.get_ref()) {
        Ok(secs) => Some(secs),
        Err(m) => {
            problems.push(HeaderProblem {
                line: line_of(t.span().start),
                message: m,
            });
            None
        }
    });
    let retries = raw.retries.and_then(|r| match u32::try_from(*r.get_ref()) {
        Ok(n) if n <= MAX_RETRIES => Some(n),
        _ => {
            problems.push(HeaderProblem {
                line: line_of(r.span().start),
                message: format!(
                    "header `retries = {}` is out of range: use 0 to {MAX_RETRIES}",
                    r.get_ref()
                ),
            });
            None
        }
    });

    let mut quantity =
        |field: Option<Spanned<String>>, name: &str, check: fn(&str) -> Result<(), String>| {
            let v = field?;
            match check(v.get_ref()) {
                Ok(()) => Some(v.into_inner()),
                Err(m) => {
                    problems.push(HeaderProblem {
                        line: line_of(v.span().start),
                        message: format!("header `{name}`: {m}"),
                    });
                    None
                }
            }
        };
    let cpu = quantity(raw.cpu, "cpu", check_cpu);
    let memory = quantity(raw.memory, "memory", check_memory);
    let slack_channel = quantity(raw.slack_channel, "slack_channel", check_slack_channel);

    match (owner, description) {
        (Some(owner), Some(description)) if problems.is_empty() => Ok(Header {
            owner,
            description,
            schedule,
            timeout_seconds,
            retries,
            cpu,
            memory,
            slack_channel,
        }),
        _ => Err(problems),
    }
}

/// A Slack channel: `#name` as Slack allows names, or a channel id.
fn check_slack_channel(s: &str) -> Result<(), String> {
    let name = s.strip_prefix('#').filter(|n| {
        !n.is_empty()
            && n.len() <= 80
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    });
    let id = s.len() >= 9
        && s.starts_with(['C', 'G'])
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if name.is_some() || id {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a Slack channel: use `#name` (lower case letters, digits, `-`, `_`, `.`; at most 80) or a channel id such as `C0123ABCD`"
        ))
    }
}

/// A schedule must be what the Kubernetes CronJob controller accepts (see [`crate::cron`]).
fn check_schedule(s: &str) -> Result<(), String> {
    crate::cron::check(s).map_err(|why| {
        format!(
            "header `schedule = \"{s}\"` is not a valid cron expression: {why}; use five fields `minute hour day-of-month month day-of-week`, e.g. \"*/15 * * * *\""
        )
    })
}

fn check_timeout(s: &str) -> Result<u64, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.as_secs() >= 1 && d <= MAX_TIMEOUT => Ok(d.as_secs()),
        Ok(_) => Err(format!(
            "header `timeout = \"{s}\"` is out of range: use 1s to 7d"
        )),
        Err(e) => Err(format!(
            "header `timeout = \"{s}\"` is not a duration ({e}): use e.g. \"30m\" or \"2h\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<(usize, String)> {
        parse(text, "#")
            .unwrap_err()
            .into_iter()
            .map(|p| (p.line, p.message))
            .collect()
    }

    #[test]
    fn full_header_after_shebang() {
        let h = parse(
            "#!/bin/bash\n# ---\n# owner = \"a\"\n# description = \"b\"\n#\n# schedule = \"*/5 * * * *\"\n# timeout = \"90m\"\n# retries = 3\n# ---\necho\n",
            "#",
        )
        .unwrap();
        assert_eq!(h.owner, "a");
        assert_eq!(h.schedule.as_deref(), Some("*/5 * * * *"));
        assert_eq!(h.timeout_seconds, Some(5400));
        assert_eq!(h.retries, Some(3));
    }

    #[test]
    fn scala_comment_marker() {
        let h = parse(
            "// ---\n// owner = \"a\"\n// description = \"b\"\n// ---\n",
            "//",
        )
        .unwrap();
        assert_eq!(h.description, "b");
        assert_eq!(h.schedule, None);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let p = problems(
            "# ---\n# description = \"\"\n# schedule = \"* * *\"\n# timeout = \"soon\"\n# retries = 11\n# ---\n",
        );
        let lines: Vec<usize> = p.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5], "{p:?}");
        assert!(p[0].1.contains("no `owner`"));
        assert!(p[2].1.contains("expected exactly 5 fields, found 3"));
    }

    #[test]
    fn schedules_kubernetes_accepts() {
        for ok in [
            "*/15 * * * *",
            "0 3 * * 1-5",
            "@hourly",
            "@daily",
            "0 0 1 JAN *",
        ] {
            check_schedule(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "* * * * * *",
            "61 * * * *",
            "0 0 L * *",
            "@every 5",
            "CRON_TZ=UTC 0 0 * * *",
            "",
        ] {
            assert!(check_schedule(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn unknown_key_points_at_its_line() {
        let p = problems("# ---\n# owner = \"a\"\n# description = \"b\"\n# ownr = \"c\"\n# ---\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, 4);
        assert!(
            p[0].1.starts_with("malformed header: unknown field `ownr`"),
            "{p:?}"
        );
    }

    #[test]
    fn slack_channel_is_a_channel_name_or_id() {
        let ok = |c: &str| {
            format!(
                "# ---\n# owner = \"a\"\n# description = \"b\"\n# slack_channel = \"{c}\"\n# ---\n"
            )
        };
        assert_eq!(
            parse(&ok("#search-oncall"), "#")
                .unwrap()
                .slack_channel
                .as_deref(),
            Some("#search-oncall")
        );
        assert!(parse(&ok("C0123ABCD"), "#").is_ok());
        let p = problems(&ok("Search Oncall"));
        assert_eq!(p[0].0, 4, "{p:?}");
        assert!(p[0].1.contains("is not a Slack channel"), "{p:?}");
    }
}
