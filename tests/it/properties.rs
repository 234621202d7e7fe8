//! Property tests of the parsers that read repository text (documentation headers, krobs.toml,
//! `.dockerignore`, cron schedules, names): arbitrary input never panics, escaped text holds no
//! escape sequence, and parsing time grows linearly with the input.

use std::path::Path;
use std::time::{Duration, Instant};

use krobs::cli::terminal;
use krobs::input::config::Config;
use krobs::input::dockerignore::DockerIgnore;
use krobs::input::{cron, header, names};
use proptest::collection::vec;
use proptest::prelude::*;

/// Pieces that reach deep into the parsers (fences, keys, quotes, globs, escapes) more often
/// than random bytes do.
const FRAGMENTS: &[&str] = &[
    "# ---\n",
    "// ---\n",
    "# ",
    "owner = \"a\"\n",
    "description = \"b\"\n",
    "schedule = \"",
    "* * * * *",
    "@every 5m",
    "\"\n",
    "timeout = \"1h\"\n",
    "retries = 3\n",
    "[registry]\n",
    "kind = \"oci\"\n",
    "host = \"r:5000\"\n",
    "[languages.x]\n",
    "extra_inputs = [\"a\"]\n",
    "*",
    "**/",
    "!",
    "\\",
    "[",
    "]",
    "[^a-z]",
    "{",
    "}",
    ".",
    "..",
    "/",
    "=",
    "\"",
    " ",
    "\t",
    "\r\n",
    "\n",
    "a",
    "\u{feff}",
    "\u{1b}",
    "é",
    "#",
    "-",
    "0-59/5",
    ",",
    "?",
];

fn structured() -> impl Strategy<Value = String> {
    vec(0..FRAGMENTS.len(), 0..200).prop_map(|ix| ix.into_iter().map(|i| FRAGMENTS[i]).collect())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        vec(any::<u8>(), 0..2048).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        structured(),
    ]
}

fn parse_all(text: &str) {
    let _ = header::parse_prefix(text, "#", false);
    let _ = header::parse_prefix(text, "//", true);
    let _ = Config::parse(text, Path::new("krobs.toml"), Path::new("."));
    if let Ok(ignore) = DockerIgnore::parse(text) {
        for path in ["a", "a/b", "docs/keep.md", "x/y/z.txt", "{b,c}"] {
            let _ = ignore.excludes(path);
        }
    }
    let _ = cron::check(text);
    let _ = names::check_host(text);
    let _ = names::check_repository(text);
    let _ = names::check_language(text);
    let _ = names::check_job_name(&names::job_name(text), names::MAX_JOB_NAME);
    let escaped = terminal::escape(text);
    assert!(!escaped.contains('\u{1b}') && !escaped.contains('\r'));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_never_panics(t in text()) {
        parse_all(&t);
    }

    /// Any bytes: a line that is not UTF-8 is named only inside a header that opens the file,
    /// and it is a line the bytes have.
    #[test]
    fn bytes_that_are_not_utf8_are_found_without_panic(
        head in vec(any::<u8>(), 0..64),
        body in structured(),
        tail in vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = head.clone();
        bytes.extend_from_slice(body.as_bytes());
        bytes.extend_from_slice(&tail);
        for prefix in [&bytes[..], &[b"# ---\n".as_slice(), &bytes].concat()] {
            if let Some(line) = header::not_utf8_line(prefix, "#") {
                prop_assert!(std::str::from_utf8(prefix).is_err());
                prop_assert!(line >= 1 && line <= prefix.split(|&b| b == b'\n').count());
            }
        }
    }

    #[test]
    fn header_shaped_input_never_panics(body in structured(), marker in prop_oneof![Just("#"), Just("//"), Just("--")]) {
        let t = format!("#!/bin/sh\n{marker} ---\n{body}\n{marker} ---\n");
        let _ = header::parse_prefix(&t, marker, false);
    }
}

type Parser = Box<dyn Fn(&str)>;

/// The fastest of three runs of `f`.
fn time(f: impl Fn()) -> Duration {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap()
}

/// `seed` repeated to about `len` bytes.
fn grow(seed: &str, len: usize) -> String {
    let seed = if seed.is_empty() { "a" } else { seed };
    seed.repeat(len / seed.len() + 1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Eight times the input takes at most about eight times as long: a quadratic parser
    /// would take 64 times as long. The bound (24x plus 30 ms) leaves room for noise.
    #[test]
    fn parsing_time_is_linear(seed in structured()) {
        let small = grow(&seed, 8 * 1024);
        let big = grow(&seed, 64 * 1024);
        let header_small = format!("# ---\n{small}");
        let header_big = format!("# ---\n{big}");
        let cases: [(&str, Parser); 4] = [
            ("header", Box::new(|t: &str| { let _ = header::parse_prefix(t, "#", true); })),
            ("config", Box::new(|t: &str| { let _ = Config::parse(t, Path::new("krobs.toml"), Path::new(".")); })),
            ("dockerignore", Box::new(|t: &str| { let _ = DockerIgnore::parse(t); })),
            ("cron", Box::new(|t: &str| { let _ = cron::check(t); })),
        ];
        for (name, parse) in &cases {
            let (s, b) = if *name == "header" { (&header_small, &header_big) } else { (&small, &big) };
            let t_small = time(|| parse(s));
            let t_big = time(|| parse(b));
            prop_assert!(
                t_big <= t_small * 24 + Duration::from_millis(30),
                "{name}: {} bytes took {t_small:?}, {} bytes took {t_big:?}",
                s.len(),
                b.len()
            );
        }
    }
}
