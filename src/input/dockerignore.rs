//! `.dockerignore`, read and applied exactly as the Docker Engine's client does (moby's
//! `ignorefile.ReadAll` and `patternmatcher`):
//!
//! - reading: lines split on `\n` (a trailing `\r` dropped), a UTF-8 BOM dropped from the first
//!   line, lines starting with `#` skipped before trimming, then trimmed; `!` marks an
//!   exception; each pattern is cleaned like Go's `filepath.Clean` and a leading `/` dropped;
//! - patterns: syntax checked like Go's `filepath.Match`, then matched as moby does: `*` and `?`
//!   never cross `/`, `**` crosses any number of folders, `[...]` classes and `\` escapes follow
//!   Go's regular expressions, every other character (braces included) is literal; a
//!   pattern starting with `**` (and nothing else special) matches as a plain suffix and one
//!   ending in `**` as a plain prefix, as moby's shortcuts do;
//! - matching: the last pattern that matches a path or one of its parent folders decides,
//!   reusing the parent folder's results as moby does while walking; an excluded folder is
//!   still walked only when an exception's text starts with that folder.

use regex::Regex;

/// Longest line the Docker client reads (Go's `bufio.Scanner` token limit).
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone)]
enum Matcher {
    Exact,
    Prefix(String),
    Suffix(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
struct Pattern {
    cleaned: String,
    exclusion: bool,
    matcher: Matcher,
}

/// The parsed patterns of one `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// Which patterns matched a folder, reused for what is inside it (moby's `MatchInfo`).
#[derive(Debug, Clone, Default)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// A line Docker would also refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub line: usize,
    pub message: String,
}

impl DockerIgnore {
    pub fn parse(text: &str) -> Result<DockerIgnore, PatternError> {
        let mut patterns = Vec::new();
        let mut rest = text;
        let mut line = 0;
        while !rest.is_empty() {
            let (raw, after) = match rest.find('\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, ""),
            };
            rest = after;
            line += 1;
            let err = |message: String| PatternError { line, message };
            if raw.len() > MAX_LINE {
                return Err(err(format!(
                    "line is longer than {} KiB, which Docker refuses: shorten it",
                    MAX_LINE / 1024
                )));
            }
            let mut raw = raw.strip_suffix('\r').unwrap_or(raw);
            if line == 1 {
                raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
            }
            if raw.starts_with('#') {
                continue;
            }
            let mut pattern = raw.trim();
            if pattern.is_empty() {
                continue;
            }
            let invert = pattern.starts_with('!');
            if invert {
                pattern = pattern[1..].trim();
            }
            let mut p = String::new();
            if !pattern.is_empty() {
                p = go_clean(pattern);
                if p.len() > 1 && p.starts_with('/') {
                    p.remove(0);
                }
            }
            if invert {
                p.insert(0, '!');
            }
            // What patternmatcher.New does with each line.
            let p = go_clean(p.trim());
            let (exclusion, p) = match p.strip_prefix('!') {
                Some("") => {
                    return Err(err(
                        "a lone `!` excludes nothing: remove the line or add a pattern".to_string(),
                    ))
                }
                Some(rest) => (true, rest.to_string()),
                None => (false, p),
            };
            check_syntax(&p).map_err(|why| {
                err(format!(
                    "bad pattern `{p}`: {why} (Docker refuses it): fix the pattern"
                ))
            })?;
            let matcher = compile(&p).map_err(|why| {
                err(format!(
                    "bad pattern `{p}`: {why} (Docker refuses it): fix the pattern"
                ))
            })?;
            patterns.push(Pattern {
                cleaned: p,
                exclusion,
                matcher,
            });
        }
        Ok(DockerIgnore { patterns })
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left out, checking its
    /// parent folders from scratch.
    pub fn excludes(&self, path: &str) -> bool {
        self.matches(path, None).0
    }

    /// Whether `path` is left out, given the results of its parent folder (`None` for a path
    /// whose parents were not walked); also returns the results for what is inside `path`.
    pub fn matches(&self, path: &str, parent: Option<&MatchInfo>) -> (bool, MatchInfo) {
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent.is_some_and(|p| p.parent_matched.get(i) == Some(&true));
            if !hit {
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(path);
                if !hit && parent.is_none() {
                    hit = path
                        .match_indices('/')
                        .any(|(end, _)| pattern.matches(&path[..end]));
                }
            }
            info.parent_matched[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        (matched, info)
    }

    /// Whether an excluded folder must still be walked: an exception's text starts with it.
    pub fn walk_excluded_dir(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .any(|p| p.exclusion && format!("{}/", p.cleaned).starts_with(&dir_slash))
    }

    /// Whether any rule re-includes something.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact => path == self.cleaned,
            Matcher::Prefix(p) => path.starts_with(p.as_str()),
            Matcher::Suffix(s) => {
                path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|s| path == s)
            }
            Matcher::Regex(r) => r.is_match(path),
        }
    }
}

/// moby's pattern compilation: which shortcut applies, else its regular expression (in Go's
/// syntax, translated for the `regex` crate).
fn compile(pattern: &str) -> Result<Matcher, String> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut re = String::from("^");
    let mut kind = Kind::Exact;
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let first = i == 0;
        let ch = chars[i];
        i += 1;
        if ch == '*' {
            if chars.get(i) == Some(&'*') {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if first {
                    kind = Kind::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                kind = Kind::Regex;
            }
        } else if ch == '?' {
            re.push_str("[^/]");
            kind = Kind::Regex;
        } else if ".+()|{}$".contains(ch) {
            re.push('\\');
            re.push(ch);
        } else if ch == '\\' {
            match chars.get(i) {
                Some(&next) => {
                    i += 1;
                    re.push('\\');
                    re.push(next);
                    kind = Kind::Regex;
                }
                None => re.push('\\'),
            }
        } else if ch == '[' || ch == ']' {
            re.push(ch);
            kind = Kind::Regex;
        } else {
            re.push(ch);
        }
    }
    Ok(match kind {
        Kind::Exact => Matcher::Exact,
        Kind::Prefix => Matcher::Prefix(pattern[..pattern.len() - 2].to_string()),
        Kind::Suffix => Matcher::Suffix(pattern[2..].to_string()),
        Kind::Regex => {
            re.push('$');
            Matcher::Regex(Regex::new(&go_regex_to_rust(&re)).map_err(|e| regex_error(&e))?)
        }
    })
}

/// The last line of the `regex` crate's error, the one that says what is wrong.
fn regex_error(e: &regex::Error) -> String {
    e.to_string()
        .lines()
        .last()
        .unwrap_or("invalid")
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

/// Go's regular expression syntax as the `regex` crate reads it: Go's classes do not nest and
/// know no set operations, so `[` (unless it opens `[:name:]`), `&` and `~` inside a class are
/// escaped; an escaped ASCII punctuation character is written as the crate wants it.
fn go_regex_to_rust(go: &str) -> String {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c == '\\' {
            match chars.get(i) {
                Some(&n) if n.is_ascii() && !n.is_ascii_alphanumeric() => {
                    out.push_str(&regex::escape(&n.to_string()));
                    i += 1;
                }
                Some(&n) => {
                    out.push('\\');
                    out.push(n);
                    i += 1;
                }
                None => out.push('\\'),
            }
            continue;
        }
        if !in_class {
            out.push(c);
            if c == '[' {
                in_class = true;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            continue;
        }
        match c {
            ']' => {
                in_class = false;
                out.push(']');
            }
            '[' if chars.get(i) == Some(&':') => {
                let rest: String = chars[i - 1..].iter().collect();
                match rest.find(":]") {
                    Some(end) => {
                        out.push_str(&rest[..end + 2]);
                        i += rest[..end + 2].chars().count() - 1;
                    }
                    None => out.push_str("\\["),
                }
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '-' if chars.get(i) == Some(&'-') => out.push_str("\\-"),
            _ => out.push(c),
        }
    }
    out
}

/// The syntax errors Go's `filepath.Match` reports: an unclosed or empty `[...]`, a range
/// bound that is `-` or `]`, a trailing `\`.
fn check_syntax(pattern: &str) -> Result<(), &'static str> {
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.next().is_none() => return Err("it ends with `\\`"),
            '[' => {
                if chars.peek() == Some(&'^') {
                    chars.next();
                }
                let mut ranges = 0;
                loop {
                    if chars.peek() == Some(&']') && ranges > 0 {
                        chars.next();
                        break;
                    }
                    class_char(&mut chars)?;
                    if chars.peek() == Some(&'-') {
                        chars.next();
                        class_char(&mut chars)?;
                    }
                    ranges += 1;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn class_char(chars: &mut std::iter::Peekable<std::str::Chars>) -> Result<(), &'static str> {
    const UNCLOSED: &str = "a `[` class is not closed or is empty";
    match chars.next() {
        None | Some('-') | Some(']') => Err(UNCLOSED),
        Some('\\') => match chars.next() {
            None => Err(UNCLOSED),
            Some(_) => chars.peek().map(|_| ()).ok_or(UNCLOSED),
        },
        Some(_) => chars.peek().map(|_| ()).ok_or(UNCLOSED),
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
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
        assert!(!d.excludes("scripts/tmp"));
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
        assert!(d.walk_excluded_dir("docs"));
        let d = ignore("!a.txt\n*.txt\n");
        assert!(d.excludes("a.txt"));
    }

    #[test]
    fn moby_reading_quirks() {
        let d = ignore("\u{feff}a\r\n/build/\n./out//x\nfoo/../bar\n{b,c}\n");
        assert!(d.excludes("a"));
        assert!(d.excludes("build/a"));
        assert!(d.excludes("out/x"));
        assert!(d.excludes("bar"));
        assert!(!d.excludes("foo"));
        assert!(d.excludes("{b,c}"), "braces are literal");
        assert!(!d.excludes("b"));
        // A leading `**` is a plain suffix match in moby.
        assert!(ignore("**foo\n").excludes("xfoo"));
        assert!(!ignore("**/foo\n").excludes("xfoo"));
        assert!(ignore("**/foo\n").excludes("foo"));
        assert!(ignore("**/foo\n").excludes("a/foo"));
    }

    #[test]
    fn refuses_what_docker_refuses() {
        assert_eq!(DockerIgnore::parse("a\n!\n").unwrap_err().line, 2);
        assert!(DockerIgnore::parse("[a-\n").is_err());
        assert!(DockerIgnore::parse("[]\n").is_err());
        assert!(DockerIgnore::parse("a\\\n").is_err());
        assert!(DockerIgnore::parse("[z-a]\n").is_err());
    }
}
