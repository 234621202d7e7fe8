//! Progress on stderr: a live line per language on a terminal, plain `[language] ...` log lines
//! otherwise (CI logs, pipes, `--progress plain`). No colours are used, so `NO_COLOR` holds.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress may be a live display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A live display on a terminal, plain lines otherwise.
    Auto,
    /// Plain log lines.
    Plain,
}

pub struct Progress {
    live: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    width: usize,
}

impl Progress {
    pub fn new(mode: Mode, languages: &[String]) -> Progress {
        let width = languages.iter().map(String::len).max().unwrap_or(0);
        let live = mode == Mode::Auto
            && std::io::stderr().is_terminal()
            && std::env::var_os("TERM").is_some_and(|t| t != "dumb");
        if !live {
            return Progress { live: None, width };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {prefix} {elapsed:>4} {wide_msg}")
            .expect("a valid template")
            .tick_chars("|/-\\ ");
        let bars = languages
            .iter()
            .map(|l| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(format!("{l:width$}"));
                bar.enable_steady_tick(Duration::from_millis(120));
                (l.clone(), bar)
            })
            .collect();
        Progress {
            live: Some((multi, bars)),
            width,
        }
    }

    /// A new stage of a language: `lookup`, `build`, `push`, `done ...`.
    pub fn stage(&self, language: &str, message: &str) {
        match &self.live {
            Some((_, bars)) => {
                if let Some(bar) = bars.get(language) {
                    bar.set_message(message.to_string());
                }
            }
            None => eprintln!("[{language:w$}] {message}", w = self.width),
        }
    }

    /// A log line of a language (build output, push status).
    pub fn log(&self, language: &str, line: &str) {
        match &self.live {
            Some((multi, bars)) => {
                let _ = multi.println(format!("[{language:w$}] {line}", w = self.width));
                if let Some(bar) = bars.get(language) {
                    bar.set_message(line.to_string());
                }
            }
            None => eprintln!("[{language:w$}] {line}", w = self.width),
        }
    }

    /// A language is finished, well or not.
    pub fn finish(&self, language: &str, message: &str) {
        match &self.live {
            Some((_, bars)) => {
                if let Some(bar) = bars.get(language) {
                    bar.finish_with_message(message.to_string());
                }
            }
            None => eprintln!("[{language:w$}] {message}", w = self.width),
        }
    }

    /// A run-level note.
    pub fn note(&self, message: &str) {
        match &self.live {
            Some((multi, _)) => {
                let _ = multi.println(message);
            }
            None => eprintln!("{message}"),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some((_, bars)) = &self.live {
            for bar in bars.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}

/// Milliseconds for a person: `0.4s`, `12.3s`, `2m05s`.
pub fn seconds(ms: u64) -> String {
    let tenths = ms.div_ceil(100);
    if tenths < 600 {
        format!("{}.{}s", tenths / 10, tenths % 10)
    } else {
        let secs = ms.div_ceil(1000);
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn durations_read_as_seconds_then_minutes() {
        assert_eq!(seconds(0), "0.0s");
        assert_eq!(seconds(1), "0.1s");
        assert_eq!(seconds(12_340), "12.4s");
        assert_eq!(seconds(59_900), "59.9s");
        assert_eq!(seconds(59_901), "1m00s");
        assert_eq!(seconds(125_000), "2m05s");
    }
}
