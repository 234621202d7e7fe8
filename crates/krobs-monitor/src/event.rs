//! Monitor events: validated against `schema/monitor-event-v1.schema.json`, then typed.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

const SCHEMA: &str = include_str!("../../../schema/monitor-event-v1.schema.json");
/// The schema's branches (`oneOf`) in order, by the `event` values each takes.
const BRANCHES: [&[&str]; 4] = [
    &["start"],
    &["finish", "failure"],
    &["message"],
    &["metric"],
];
const REASON_MAX: usize = 300;

/// One event, valid under the schema.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub event: Kind,
    pub krob: String,
    pub host: String,
    pub exit_code: Option<i64>,
    pub signal: Option<String>,
    pub duration_seconds: Option<f64>,
    #[serde(default)]
    pub output_tail: Vec<String>,
    pub text: Option<String>,
    pub metric: Option<Metric>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Start,
    Finish,
    Failure,
    Message,
    Metric,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Finish => "finish",
            Kind::Failure => "failure",
            Kind::Message => "message",
            Kind::Metric => "metric",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    #[serde(rename = "type")]
    pub kind: String,
    pub tags: std::collections::BTreeMap<String, String>,
}

impl Event {
    /// The run the event belongs to: the script and its pod.
    pub fn run(&self) -> String {
        format!("{}@{}", self.krob, self.host)
    }

    /// The script's language: the id's first segment.
    pub fn language(&self) -> &str {
        self.krob.split('/').next().unwrap_or("")
    }
}

/// Checks bodies against the schema, one compiled validator per branch so that a refusal
/// names the field at fault rather than "not valid under any of the given schemas".
pub struct Validator {
    branches: Vec<jsonschema::Validator>,
}

impl Validator {
    pub fn new() -> Validator {
        let root: Value = serde_json::from_str(SCHEMA).expect("the embedded schema is JSON");
        let branches = root["oneOf"]
            .as_array()
            .expect("the schema has oneOf")
            .iter()
            .map(|branch| {
                let mut schema = branch.clone();
                schema["$schema"] = root["$schema"].clone();
                schema["$defs"] = root["$defs"].clone();
                jsonschema::validator_for(&schema).expect("the embedded schema compiles")
            })
            .collect();
        Validator { branches }
    }

    /// The event in `body` and its deduplication key, or a one-line reason.
    pub fn parse(&self, body: &[u8]) -> Result<(Event, [u8; 16]), String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| one_line(&format!("not JSON: {e}")))?;
        let kind = value.get("event").and_then(Value::as_str).unwrap_or("");
        let Some(branch) = BRANCHES.iter().position(|kinds| kinds.contains(&kind)) else {
            return Err(
                "`event` must be one of start, finish, failure, message, metric".to_owned(),
            );
        };
        if let Some(error) = self.branches[branch].iter_errors(&value).next() {
            let at = error.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            return Err(one_line(&format!("{kind} event, at {at}: {error}")));
        }
        let key = dedup_key(&value);
        let event = serde_json::from_value(value).map_err(|e| one_line(&e.to_string()))?;
        Ok((event, key))
    }
}

/// The same event sent twice (a retried POST) gives the same key: the hash of its JSON with
/// keys in order.
fn dedup_key(value: &Value) -> [u8; 16] {
    let canonical = serde_json::to_vec(value).expect("a Value serializes");
    let digest = Sha256::digest(&canonical);
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

fn one_line(text: &str) -> String {
    let mut line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > REASON_MAX {
        let mut cut = REASON_MAX;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> Value {
        serde_json::json!({"version": 1, "event": "start", "krob": "python/hello",
            "host": "pod-1", "time": "2026-01-01T00:00:00Z", "command": ["python3", "x"]})
    }

    #[test]
    fn accepts_a_start_and_refuses_a_bad_krob_with_the_field() {
        let v = Validator::new();
        let (event, _) = v.parse(start().to_string().as_bytes()).unwrap();
        assert_eq!(event.event, Kind::Start);
        assert_eq!(event.run(), "python/hello@pod-1");
        let mut bad = start();
        bad["krob"] = "Not A Krob".into();
        let reason = v.parse(bad.to_string().as_bytes()).unwrap_err();
        assert!(reason.contains("/krob"), "{reason}");
        assert!(!reason.contains('\n'));
    }

    #[test]
    fn same_event_same_key_whatever_the_key_order() {
        let v = Validator::new();
        let a = v.parse(start().to_string().as_bytes()).unwrap().1;
        let reordered = r#"{"command":["python3","x"],"time":"2026-01-01T00:00:00Z","host":"pod-1","krob":"python/hello","event":"start","version":1}"#;
        assert_eq!(a, v.parse(reordered.as_bytes()).unwrap().1);
    }

    #[test]
    fn refuses_unknown_events_and_non_json() {
        let v = Validator::new();
        assert!(v
            .parse(b"{\"event\":\"boom\"}")
            .unwrap_err()
            .contains("must be one of"));
        assert!(v.parse(b"nope").unwrap_err().starts_with("not JSON"));
    }
}
