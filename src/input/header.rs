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

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::input::config::{line_column, one_line};
use crate::input::deploy_config::{check_cpu, check_memory};

/// Most retries a header may ask for: a krob that needs more is not idempotent enough.
pub const MAX_RETRIES: u32 = 10;
/// Longest timeout a header may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// A parsed, validated documentation header: what the plan carries and, as written, the
/// `header` of each script in the release manifest (deserialized when `render` and `manifest
/// pull` read one; unknown fields are refused, as the schema does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Where krobs-monitor posts the script's runs, over its default channel; absent from the
    /// manifest when the header names none (krobs-monitor reads it there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_channel: Option<String>,
}

/// One problem with a header, at a 1-based line of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProblem {
    pub line: usize,
    pub message: String,
}

/// The keys a header may hold, in the order problems about missing ones are listed.
const KEYS: [&str; 8] = [
    "owner",
    "description",
    "schedule",
    "timeout",
    "retries",
    "cpu",
    "memory",
    "slack_channel",
];

/// The most TOML syntax errors of one header reported.
const MAX_SYNTAX_ERRORS: usize = 20;

/// A key's value as TOML gave it, with where it stands in the TOML body.
type Fields = BTreeMap<String, Spanned<toml::Value>>;

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
                    crate::input::repo::HEADER_LIMIT / 1024
                ),
            }])
        }
        result => result,
    }
}

/// The 1-based line of the first byte that is not UTF-8, when it is in the header: from the
/// first line (an optional `#!`) to the closing fence, or to the end of `prefix` when the
/// header is not closed. The body of a script may hold any bytes; a header is text.
pub fn not_utf8_line(prefix: &[u8], comment: &str) -> Option<usize> {
    let error = std::str::from_utf8(prefix).err()?;
    // A character cut by the end of the prefix is no error of the file's.
    error.error_len()?;
    let bad = prefix[..error.valid_up_to()]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1;
    let fence = format!("{comment} ---");
    let text = String::from_utf8_lossy(prefix);
    let mut lines = text.lines().map(str::trim_end);
    let first = lines.next()?;
    let open = if first == fence {
        1
    } else if first.starts_with("#!") && lines.next() == Some(fence.as_str()) {
        2
    } else {
        return None;
    };
    let close = lines
        .position(|l| l == fence)
        .map_or(usize::MAX, |i| open + i + 1);
    (bad <= close).then_some(bad)
}

/// Parses the header at the start of `text`, with `comment` the language's line-comment
/// marker. Returns every problem found, not just the first, in line order.
pub fn parse(text: &str, comment: &str) -> Result<Header, Vec<HeaderProblem>> {
    let fence = format!("{comment} ---");
    let lines: Vec<(usize, &str)> = text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect();
    let open = open_fence(&lines, &fence)?;
    let block = body(&lines[open..], comment, &fence, lines[open - 1].0)?;
    let mut problems = Vec::new();
    let (fields, broken) = fields(&block, &mut problems);
    let header = check_fields(fields, &broken, &block, &mut problems);
    problems.sort_by_key(|p| p.line);
    match header {
        Some(h) if problems.is_empty() => Ok(h),
        _ => Err(problems),
    }
}

/// The 1-based index in `lines` of the header's opening fence: the first line, or the second
/// after a `#!` line. A fence further down is named, with what must move.
fn open_fence(lines: &[(usize, &str)], fence: &str) -> Result<usize, Vec<HeaderProblem>> {
    let problem = |line: usize, message: String| vec![HeaderProblem { line, message }];
    let shebang = lines.first().is_some_and(|(_, l)| l.starts_with("#!"));
    let expected = usize::from(shebang);
    match lines.get(expected) {
        Some((_, l)) if l.trim_end() == fence => return Ok(expected + 1),
        None => {
            return Err(problem(
                1,
                format!(
                "empty script: start it with a `{fence}` block naming `owner` and `description`"
            ),
            ))
        }
        Some(_) => {}
    }
    let first = lines[expected].0;
    if let Some((n, _)) = lines[expected..]
        .iter()
        .find(|(_, l)| l.trim_end() == fence)
    {
        let what = if lines[expected..]
            .iter()
            .take_while(|(m, _)| m < n)
            .all(|(_, l)| l.trim().is_empty())
        {
            "remove the blank line".to_string()
        } else if n - first == 1 {
            format!("move line {first} below the header's closing `{fence}`")
        } else {
            format!(
                "move lines {first}-{} below the header's closing `{fence}`",
                n - 1
            )
        };
        let place = if shebang {
            "right after the `#!` line"
        } else {
            "on the first line"
        };
        return Err(problem(
            *n,
            format!("documentation header found at line {n}, but it must start {place}: {what}"),
        ));
    }
    Err(problem(
        first,
        format!("missing documentation header: start the script with a `{fence}` block naming `owner` and `description` (after an optional `#!` line)"),
    ))
}

/// The header's TOML text with, for each of its lines, the script line it came from.
struct Block {
    toml: String,
    lines: Vec<usize>,
    open: usize,
}

impl Block {
    /// The script line of a byte offset into the TOML text.
    fn line_of(&self, offset: usize) -> usize {
        let (l, _) = line_column(&self.toml, offset);
        self.lines
            .get(l.saturating_sub(1))
            .copied()
            .unwrap_or(self.open)
    }
}

/// Collects the comment block after the opening fence at script line `open`. A header that is
/// never closed is one problem, however much script follows it.
fn body(
    rest: &[(usize, &str)],
    comment: &str,
    fence: &str,
    open: usize,
) -> Result<Block, Vec<HeaderProblem>> {
    let closed = rest.iter().any(|(_, l)| l.trim_end() == fence);
    let mut block = Block {
        toml: String::new(),
        lines: Vec::new(),
        open,
    };
    let mut problems = Vec::new();
    for &(n, l) in rest {
        let l = l.trim_end();
        if l == fence {
            break;
        }
        let content = if l == comment {
            ""
        } else if let Some(rest) = l.strip_prefix(comment).and_then(|r| r.strip_prefix(' ')) {
            rest
        } else if closed {
            problems.push(HeaderProblem {
                line: n,
                message: format!(
                    "header line does not start with `{comment} `: keep the header in one comment block closed by `{fence}`"
                ),
            });
            continue;
        } else {
            return Err(vec![unclosed(n, l, comment, fence, open)]);
        };
        block.toml.push_str(content);
        block.toml.push('\n');
        block.lines.push(n);
    }
    if !closed {
        return Err(vec![HeaderProblem {
            line: open,
            message: format!("documentation header is never closed: end it with a `{fence}` line"),
        }]);
    }
    if problems.is_empty() {
        Ok(block)
    } else {
        Err(problems)
    }
}

/// The one problem of a header whose comment block ends at line `n` without the closing fence.
fn unclosed(n: usize, line: &str, comment: &str, fence: &str, open: usize) -> HeaderProblem {
    let dashes = line
        .strip_prefix(comment)
        .is_some_and(|r| r.trim().starts_with("---"));
    if dashes {
        HeaderProblem {
            line: n,
            message: format!("header close `{line}` is not `{fence}`: write it exactly `{fence}`"),
        }
    } else {
        HeaderProblem {
            line: open,
            message: format!(
                "documentation header is never closed: end it with a `{fence}` line before line {n}"
            ),
        }
    }
}

/// Reads the TOML body as keys and values. A syntax error is reported and its line set aside,
/// and the rest read again, so that every broken line is named at once; `broken` holds the
/// keys of the lines set aside (not reported missing too).
fn fields(block: &Block, problems: &mut Vec<HeaderProblem>) -> (Fields, Vec<String>) {
    let mut text = block.toml.clone();
    let mut broken = Vec::new();
    // Each broken line costs a parse of the rest: bounded, for a header of thousands of lines.
    for _ in 0..=block.lines.len().min(MAX_SYNTAX_ERRORS) {
        let e = match toml::from_str::<Fields>(&text) {
            Ok(fields) => return (fields, broken),
            Err(e) => e,
        };
        let (line, _) = line_column(&text, e.span().map_or(0, |s| s.start));
        let start: usize = text
            .split_inclusive('\n')
            .take(line - 1)
            .map(str::len)
            .sum();
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let key = text[start..end]
            .split_once('=')
            .map(|(k, _)| k.trim().to_string());
        problems.push(HeaderProblem {
            line: block.lines.get(line - 1).copied().unwrap_or(block.open),
            message: format!(
                "malformed header: {}{}",
                one_line(e.message()),
                syntax_hint(key.as_deref())
            ),
        });
        if start == end {
            break;
        }
        broken.extend(key);
        text.replace_range(start..end, "");
    }
    (Fields::new(), broken)
}

/// What to write instead, for a line TOML cannot read.
fn syntax_hint(key: Option<&str>) -> String {
    match key {
        Some("retries") => " (the header is TOML: write a whole number, e.g. `retries = 2`)".into(),
        Some(k) if KEYS.contains(&k) => {
            format!(
                " (the header is TOML: quote text, e.g. `{k} = {}`)",
                example(k)
            )
        }
        _ => " (the header is TOML: `key = \"text\"` lines)".into(),
    }
}

/// An example value of a key, as TOML.
fn example(key: &str) -> &'static str {
    match key {
        "owner" => "\"team (#channel)\"",
        "description" => "\"what it does and the env it takes\"",
        "schedule" => "\"*/15 * * * *\"",
        "timeout" => "\"2h\"",
        "retries" => "2",
        "cpu" => "\"500m\"",
        "memory" => "\"256Mi\"",
        "slack_channel" => "\"#team-alerts\"",
        _ => "\"...\"",
    }
}

/// The TOML type of a value, in a user's words.
fn kind(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "text",
        toml::Value::Integer(_) => "a number",
        toml::Value::Float(_) => "a decimal number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// Checks every key and value, pushing each problem; the header when owner and description
/// are there.
fn check_fields(
    mut fields: Fields,
    broken: &[String],
    block: &Block,
    problems: &mut Vec<HeaderProblem>,
) -> Option<Header> {
    for (key, value) in &fields {
        if !KEYS.contains(&key.as_str()) {
            let hint = match crate::input::names::closest(key, KEYS.into_iter()) {
                Some(c) if strsim::damerau_levenshtein(key, c) <= 2 => {
                    format!("did you mean `{c}`?")
                }
                _ => format!("the keys are `{}`", KEYS.join("`, `")),
            };
            problems.push(HeaderProblem {
                line: block.line_of(value.span().start),
                message: format!("header has unknown key `{key}`: {hint}"),
            });
        }
    }
    let mut bad: Vec<String> = broken.to_vec();
    let mut take = |name: &str| -> Option<Spanned<toml::Value>> {
        let v = fields.remove(name)?;
        let wants_number = name == "retries";
        match v.get_ref() {
            toml::Value::Integer(_) if wants_number => return Some(v),
            toml::Value::String(_) if !wants_number => return Some(v),
            _ => {}
        }
        let want = if wants_number {
            "a whole number"
        } else {
            "quoted text"
        };
        problems.push(HeaderProblem {
            line: block.line_of(v.span().start),
            message: format!(
                "header `{name}` must be {want}, like `{name} = {}`, not {}",
                example(name),
                kind(v.get_ref())
            ),
        });
        bad.push(name.to_string());
        None
    };
    let text = |v: Option<Spanned<toml::Value>>| {
        v.map(|v| {
            let span = v.span();
            let s = v.into_inner().as_str().unwrap_or_default().to_string();
            Spanned::new(span, s)
        })
    };
    let raw = RawHeader {
        owner: text(take("owner")),
        description: text(take("description")),
        schedule: text(take("schedule")),
        timeout: text(take("timeout")),
        retries: take("retries").map(|v| {
            let span = v.span();
            Spanned::new(span, v.into_inner().as_integer().unwrap_or_default())
        }),
        cpu: text(take("cpu")),
        memory: text(take("memory")),
        slack_channel: text(take("slack_channel")),
    };
    check_values(raw, &bad, block, problems)
}

/// The header's values, each of the right TOML type.
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

/// Checks the values of a header whose types are right; `bad` names the keys already
/// reported (not reported missing too).
fn check_values(
    raw: RawHeader,
    bad: &[String],
    block: &Block,
    problems: &mut Vec<HeaderProblem>,
) -> Option<Header> {
    let mut required = |field: Option<Spanned<String>>, name: &str| match field {
        None if bad.iter().any(|b| b == name) => None,
        None => {
            problems.push(HeaderProblem {
                line: block.open,
                message: format!("header has no `{name}`: add `{name} = {}`", example(name)),
            });
            None
        }
        Some(v) if v.get_ref().trim().is_empty() => {
            problems.push(HeaderProblem {
                line: block.line_of(v.span().start),
                message: format!("header `{name}` is empty: add `{name} = {}`", example(name)),
            });
            None
        }
        Some(v) => Some(v.into_inner()),
    };
    let owner = required(raw.owner, "owner");
    let description = required(raw.description, "description");
    let mut check = |field: Option<Spanned<String>>, check: &dyn Fn(&str) -> Result<(), String>| {
        let v = field?;
        match check(v.get_ref()) {
            Ok(()) => Some(v.into_inner()),
            Err(message) => {
                problems.push(HeaderProblem {
                    line: block.line_of(v.span().start),
                    message,
                });
                None
            }
        }
    };
    let schedule = check(raw.schedule, &check_schedule);
    let timeout = check(raw.timeout, &|t| check_timeout(t).map(|_| ()));
    let cpu = check(raw.cpu, &|v| {
        check_cpu(v).map_err(|m| format!("header `cpu`: {m}"))
    });
    let memory = check(raw.memory, &|v| {
        check_memory(v).map_err(|m| format!("header `memory`: {m}"))
    });
    let slack_channel = check(raw.slack_channel, &|v| {
        check_slack_channel(v).map_err(|m| format!("header `slack_channel`: {m}"))
    });
    let retries = raw.retries.and_then(|r| match u32::try_from(*r.get_ref()) {
        Ok(n) if n <= MAX_RETRIES => Some(n),
        _ => {
            problems.push(HeaderProblem {
                line: block.line_of(r.span().start),
                message: format!(
                    "header `retries = {}` is out of range: use 0 to {MAX_RETRIES}",
                    r.get_ref()
                ),
            });
            None
        }
    });
    Some(Header {
        owner: owner?,
        description: description?,
        schedule,
        timeout_seconds: timeout.and_then(|t| check_timeout(&t).ok()),
        retries,
        cpu,
        memory,
        slack_channel,
    })
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

/// A schedule must be what the Kubernetes CronJob controller accepts (see [`crate::input::cron`]).
/// Words like `every 5 minutes` are pointed at `@every 5m`.
fn check_schedule(s: &str) -> Result<(), String> {
    crate::input::cron::check(s).map_err(|why| {
        let example = every(s).map_or_else(
            || "e.g. \"*/15 * * * *\"".to_string(),
            |d| format!("or for a fixed interval `schedule = \"@every {d}\"`"),
        );
        format!(
            "header `schedule = \"{s}\"` is not a valid cron expression: {why}; use five fields `minute hour day-of-month month day-of-week`, {example}"
        )
    })
}

/// `every 5 minutes` (or `5m`, `every hour`) as a Go duration for `@every`, e.g. `5m`.
fn every(s: &str) -> Option<String> {
    let words = s.trim().trim_start_matches('@').to_ascii_lowercase();
    let rest = words.strip_prefix("every")?.trim();
    let rest = if rest.starts_with(|c: char| c.is_ascii_digit()) {
        rest.to_string()
    } else {
        format!("1 {rest}")
    };
    let secs = humantime::parse_duration(&rest).ok()?.as_secs();
    match secs {
        0 => None,
        s if s % 3600 == 0 => Some(format!("{}h", s / 3600)),
        s if s % 60 == 0 => Some(format!("{}m", s / 60)),
        s => Some(format!("{s}s")),
    }
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

    #[test]
    fn bytes_that_are_not_utf8_count_only_in_the_header() {
        let header = "#!/bin/sh\n# ---\n# owner = \"café\"\n# ---\necho\n";
        let mut bytes = header.as_bytes().to_vec();
        assert_eq!(not_utf8_line(&bytes, "#"), None);
        let at = bytes.iter().position(|&b| b == b'\xc3').unwrap();
        bytes.splice(at..at + 2, [0xe9]);
        assert_eq!(not_utf8_line(&bytes, "#"), Some(3));
        assert_eq!(not_utf8_line(b"# ---\n# ---\necho \xff\n", "#"), None);
        assert_eq!(not_utf8_line(b"\xff\xfe binary", "#"), None);
        assert_eq!(not_utf8_line(b"# ---\n# owner = \"\xff", "#"), Some(2));
        // Cut in the middle of a character by the prefix's end: not the file's fault.
        assert_eq!(
            not_utf8_line("# ---\n# é".as_bytes().split_last().unwrap().1, "#"),
            None
        );
    }

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
        let p =
            problems("# ---\n# owner = \"a\"\n# description = \"b\"\n# scedule = \"c\"\n# ---\n");
        assert_eq!(
            p,
            [(
                4,
                "header has unknown key `scedule`: did you mean `schedule`?".to_string()
            )]
        );
        let p = problems("# ---\n# owner = \"a\"\n# description = \"b\"\n# zzzzzz = 1\n# ---\n");
        assert!(p[0].1.ends_with("the keys are `owner`, `description`, `schedule`, `timeout`, `retries`, `cpu`, `memory`, `slack_channel`"), "{p:?}");
    }

    #[test]
    fn header_after_other_lines_is_found() {
        let p = problems("#!/bin/bash\n\n# ---\n# owner = \"a\"\n# description = \"b\"\n# ---\n");
        assert_eq!(p, [(3, "documentation header found at line 3, but it must start right after the `#!` line: remove the blank line".to_string())]);
        let p =
            problems("#!/bin/bash\nset -e\n# ---\n# owner = \"a\"\n# description = \"b\"\n# ---\n");
        assert_eq!(p, [(3, "documentation header found at line 3, but it must start right after the `#!` line: move line 2 below the header's closing `# ---`".to_string())]);
        let p = problems("set -e\nset -u\n# ---\n# ---\n");
        assert!(
            p[0].1.ends_with(
                "must start on the first line: move lines 1-2 below the header's closing `# ---`"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn types_are_named_in_toml_terms_and_all_reported() {
        let p = problems(
            "# ---\n# owner = 1\n# description = \"b\"\n# retries = \"2\"\n# timeout = 30\n# ---\n",
        );
        assert_eq!(
            p,
            [
                (2, "header `owner` must be quoted text, like `owner = \"team (#channel)\"`, not a number".to_string()),
                (4, "header `retries` must be a whole number, like `retries = 2`, not text".to_string()),
                (5, "header `timeout` must be quoted text, like `timeout = \"2h\"`, not a number".to_string()),
            ]
        );
    }

    #[test]
    fn every_syntax_error_is_reported() {
        let p = problems("# ---\n# owner = team-a\n# description = \"b\"\n# retries = 2x\n# ---\n");
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].0, 2);
        assert!(
            p[0].1
                .ends_with("(the header is TOML: quote text, e.g. `owner = \"team (#channel)\"`)"),
            "{p:?}"
        );
        assert_eq!(p[1].0, 4);
        assert!(
            p[1].1
                .ends_with("(the header is TOML: write a whole number, e.g. `retries = 2`)"),
            "{p:?}"
        );
    }

    #[test]
    fn malformed_close_is_one_problem() {
        let p = problems("# ---\n# owner = \"a\"\n# description = \"b\"\n#---\necho\nexit 0\n");
        assert_eq!(
            p,
            [(
                4,
                "header close `#---` is not `# ---`: write it exactly `# ---`".to_string()
            )]
        );
        let p = problems("# ---\n# owner = \"a\"\necho\nexit 0\n");
        assert_eq!(
            p,
            [(
                1,
                "documentation header is never closed: end it with a `# ---` line before line 3"
                    .to_string()
            )]
        );
    }

    #[test]
    fn every_words_point_at_at_every() {
        assert_eq!(every("every 5 minutes").as_deref(), Some("5m"));
        assert_eq!(every("every hour").as_deref(), Some("1h"));
        assert_eq!(every("every 90s").as_deref(), Some("90s"));
        assert_eq!(every("0 3 * * *"), None);
        let m = check_schedule("every 5 minutes").unwrap_err();
        assert!(
            m.ends_with("or for a fixed interval `schedule = \"@every 5m\"`"),
            "{m}"
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
