//! YAML that Kubernetes reads back exactly: block style, and every string a YAML 1.1 reader
//! (kubectl's) could take for something else (`yes`, `on`, `0755`, `1_000`, `~`, `a: b`, ...)
//! written as a JSON string, which YAML reads as the same string.
//!
//! The YAML crates for serde write YAML 1.2 and leave `yes` or `on` unquoted; kubectl then reads
//! a boolean where an environment variable's value must be a string.

use serde_json::Value;

/// The document for a JSON object (a Kubernetes object), ending with a newline.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&string(key));
        out.push(':');
        write_nested(out, value, indent);
    }
}

/// A value after `key:` or `-`: nested collections on the next lines, scalars on this one.
fn write_nested(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        // Sequences under a key start at the key's column, as kubectl writes them.
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, indent);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        match item {
            // `- first: ...` then the other keys under `first`.
            Value::Object(map) if !map.is_empty() => {
                let mut entry = String::new();
                write_map(&mut entry, map, indent + 2);
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                out.push_str(&entry[indent + 2..]);
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push_str(&" ".repeat(indent));
                out.push_str("-\n");
                write_seq(out, inner, indent + 2);
            }
            other => {
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

/// One scalar as it is written after `key:` or `- `.
pub fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

/// Plain when nothing else could be read from it: a letter or `/` first, then letters, digits
/// and `_./@-:` (not ending with `:`), and no YAML 1.1 boolean or null word; else a JSON string.
fn string(s: &str) -> String {
    let plain = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'/')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./@-:".contains(&b))
        && !s.ends_with(':')
        && !YAML_11_WORDS.iter().any(|w| w.eq_ignore_ascii_case(s));
    if plain {
        return s.to_string();
    }
    // JSON leaves these raw; YAML 1.1 does not allow them raw (DEL, C1 controls, BOM,
    // non-characters) or reads them as line breaks (NEL, U+2028, U+2029).
    let json = serde_json::to_string(s).expect("a string always serializes");
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '\u{7f}'..='\u{9f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
            | '\u{fffe}'
            | '\u{ffff}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Words a YAML 1.1 reader takes for booleans or null.
const YAML_11_WORDS: [&str; 9] = ["y", "n", "yes", "no", "true", "false", "on", "off", "null"];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_style() {
        let v = json!({
            "apiVersion": "batch/v1",
            "metadata": {"labels": {"app.kubernetes.io/name": "krobs-x"}, "annotations": {}},
            "spec": {"containers": [{"args": ["python3", "/opt/x.py"], "name": "krob"}], "n": 3, "none": [], "ok": false},
        });
        assert_eq!(
            to_string(&v),
            "apiVersion: batch/v1\n\
             metadata:\n  annotations: {}\n  labels:\n    app.kubernetes.io/name: krobs-x\n\
             spec:\n  containers:\n  - args:\n    - python3\n    - /opt/x.py\n    name: krob\n  \"n\": 3\n  none: []\n  ok: false\n"
        );
    }

    #[test]
    fn strings_another_reader_could_misread_are_quoted() {
        for s in [
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "N",
            "true",
            "null",
            "~",
            "",
            "0755",
            "1_000",
            "1:20",
            "2024-01-01",
            "1e3",
            ".inf",
            "a: b",
            "# c",
            "x #y",
            " lead",
            "trail ",
            "-",
            "- x",
            "[a]",
            "{a}",
            "*a",
            "&a",
            "!a",
            "|",
            ">",
            "'q'",
            "\"q\"",
            "a\nb",
            "100m",
            "1",
            "@x",
            "%x",
            "`x",
            "é",
            "a,b",
            "?x",
            "a:",
            "a::",
        ] {
            let out = string(s);
            assert!(out.starts_with('"'), "`{s}` written as `{out}`");
            assert!(
                out.chars()
                    .all(|c| c == ' ' || c.is_ascii_graphic() || (c > '\u{9f}' && c < '\u{2028}')),
                "{out}"
            );
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        }
        for s in [
            "krob",
            "Etc/UTC",
            "/opt/krobs/x.py",
            "batch/v1",
            "a.b-c_d@e",
            "yesterday",
            "http://monitor:8080/x",
            "r.example:5000/krobs/bash@sha256:0a",
        ] {
            assert_eq!(string(s), s);
        }
    }

    #[test]
    fn nested_sequences() {
        let v = json!({"a": [[1, 2], [{"b": "c", "d": "e"}]]});
        assert_eq!(
            to_string(&v),
            "a:\n-\n  - 1\n  - 2\n-\n  - b: c\n    d: e\n"
        );
    }
}
