//! What Krobs reads in a Dockerfile itself: its stages (`FROM` lines), so that a language's
//! `target` can be checked before any build. The build is the Docker Engine's.

/// One `FROM` line of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 0-based line index of the `FROM` instruction.
    pub line: usize,
    /// Its `AS <name>`, if any.
    pub name: Option<String>,
}

/// The stages of a Dockerfile: its `FROM` instructions (not counting words of a continued
/// line), in order.
pub fn stages(dockerfile: &str) -> Vec<Stage> {
    let mut stages = Vec::new();
    let mut continued = false;
    for (i, line) in dockerfile.lines().enumerate() {
        let trimmed = line.trim();
        let was_continued = continued;
        // A comment line inside a continued instruction does not end it.
        if !(was_continued && trimmed.starts_with('#')) {
            continued = trimmed.ends_with('\\');
        }
        if was_continued || trimmed.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        if words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
        {
            let name = match words.as_slice() {
                [.., as_, name] if as_.eq_ignore_ascii_case("AS") => Some((*name).to_string()),
                _ => None,
            };
            stages.push(Stage { line: i, name });
        }
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_the_from_lines_with_their_names() {
        let text =
            "ARG B=x\nFROM ${B} AS jre\nRUN a \\\n  from x \\\n# c\n  b\nFROM jre as full\nRUN c\n";
        assert_eq!(
            stages(text),
            [
                Stage {
                    line: 1,
                    name: Some("jre".into())
                },
                Stage {
                    line: 6,
                    name: Some("full".into())
                },
            ]
        );
    }
}
