//! `.dockerignore` rules, applied the way the Docker CLI applies them when it sends a build
//! context: each line is trimmed, `#` starts a comment, `!` makes an exception, patterns are
//! cleaned (`./a/`, `/a` and `a` are the same) and anchored at the context root, a pattern
//! excludes a path when it matches the path or any of its parent folders, and the last
//! matching line decides. Globs follow Go's `filepath.Match` plus `**` (matched by `globset`
//! with `*` and `?` not crossing `/`).

use globset::{GlobBuilder, GlobMatcher};

#[derive(Debug)]
struct Rule {
    matcher: GlobMatcher,
    exception: bool,
}

/// The parsed rules of one `.dockerignore` file.
#[derive(Debug, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

/// A line Docker would also refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub line: usize,
    pub message: String,
}

impl DockerIgnore {
    pub fn parse(text: &str) -> Result<DockerIgnore, PatternError> {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            let mut pattern = raw.trim();
            if pattern.is_empty() {
                continue;
            }
            let exception = pattern.starts_with('!');
            if exception {
                pattern = pattern[1..].trim();
                if pattern.is_empty() {
                    return Err(PatternError {
                        line: i + 1,
                        message: "a lone `!` excludes nothing: remove the line or add a pattern"
                            .to_string(),
                    });
                }
            }
            let cleaned = clean(pattern);
            let matcher = GlobBuilder::new(&cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| PatternError {
                    line: i + 1,
                    message: format!("bad pattern `{pattern}`: {}", e.kind()),
                })?
                .compile_matcher();
            rules.push(Rule { matcher, exception });
        }
        Ok(DockerIgnore { rules })
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            if rule.exception != excluded {
                // This rule cannot change the outcome.
                continue;
            }
            let hit = rule.matcher.is_match(path)
                || path
                    .match_indices('/')
                    .any(|(i, _)| rule.matcher.is_match(&path[..i]));
            if hit {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    /// Whether any rule re-includes something; an excluded folder must then still be walked.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }
}

/// Go's `filepath.Clean` on a `/`-separated pattern, with the leading `/` dropped as Docker does.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !pattern.starts_with('/') {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap()
    }

    #[test]
    fn anchored_at_root_and_parents_match() {
        let d = ignore("tmp\n");
        assert!(d.excludes("tmp"));
        assert!(d.excludes("tmp/a/b.txt"));
        assert!(
            !d.excludes("scripts/tmp"),
            "patterns are anchored at the root"
        );
    }

    #[test]
    fn star_does_not_cross_folders_but_double_star_does() {
        let d = ignore("*.pyc\n**/__pycache__\n");
        assert!(d.excludes("a.pyc"));
        assert!(!d.excludes("lib/a.pyc"));
        assert!(d.excludes("__pycache__/x"));
        assert!(d.excludes("lib/deep/__pycache__/x.pyc"));
    }

    #[test]
    fn last_matching_line_decides_and_exceptions_reinclude() {
        let d = ignore("# comment\n  docs/  \n!docs/keep.md\n");
        assert!(d.excludes("docs/a.md"));
        assert!(!d.excludes("docs/keep.md"));
        assert!(d.has_exceptions());
        let d = ignore("!a.txt\n*.txt\n");
        assert!(
            d.excludes("a.txt"),
            "a later exclusion wins over an earlier exception"
        );
    }

    #[test]
    fn patterns_are_cleaned() {
        let d = ignore("/build/\n./out//x\nfoo/../bar\n");
        assert!(d.excludes("build/a"));
        assert!(d.excludes("out/x"));
        assert!(d.excludes("bar"));
        assert!(!d.excludes("foo"));
    }

    #[test]
    fn refuses_what_docker_refuses() {
        assert_eq!(DockerIgnore::parse("a\n!\n").unwrap_err().line, 2);
        assert!(DockerIgnore::parse("[a-\n").is_err());
    }
}
