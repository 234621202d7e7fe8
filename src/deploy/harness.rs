//! What Harness reads: the view of a release its Custom Artifact sources list (`manifest pull
//! --format harness`, and `.harness/scripts/list-krobs.sh` prints the same bytes), and the Go
//! templates of `.harness/manifests`, generated from the renderer itself.
//!
//! One truth: each script of the view carries its [`RunSpec`] as `values` (base64 of a JSON
//! object of strings), and the template is what [`render::object`] builds from a spec whose
//! every field is a placeholder, each placeholder replaced by the Go template action that reads
//! that field. Harness fills the template with the values of the version picked; `render`
//! builds the object from the same spec; the objects are the same but for a Job's run suffix.
//!
//! A version names the script and the release: `<id>@sha256:<manifest digest>`. Harness finds
//! the version picked by exact match in what the artifact script lists at execution, and the
//! script lists that release (by digest) when told the version, so a version resolves to its
//! own release or to nothing, never to a newer one.

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use crate::deploy::render;
use crate::deploy::run_spec::RunSpec;
use crate::deploy::yaml;
use crate::release::manifest::{JobKind, Manifest};

/// What the apply step's timeout adds to the Job's deadline: the step's clock starts before the
/// Job exists (fetching, rendering, the dry run, the apply, scheduling and pulling) and runs
/// until the Job is seen ending. Harness asks for at least 10 minutes.
pub const STEP_MARGIN_SECONDS: u64 = 600;

/// The version Harness shows and pins: `<id>@<manifest digest>`.
pub fn version(id: &str, manifest_digest: &str) -> String {
    format!("{id}@{manifest_digest}")
}

/// The values of one script's template: its [`RunSpec`], every field a string (the args a list
/// of strings), `""` for none. Field names are the template's `$k.<name>`.
#[derive(Debug, Serialize)]
struct Values<'a> {
    id: &'a str,
    owner: &'a str,
    description: &'a str,
    image: &'a str,
    args: &'a [String],
    kind: &'static str,
    name: &'a str,
    script_label: &'a str,
    language_label: &'a str,
    schedule: &'a str,
    concurrency_policy: &'a str,
    active_deadline_seconds: String,
    backoff_limit: String,
    ttl_seconds_after_finished: String,
    cpu: &'a str,
    memory_request: &'a str,
    memory_limit: &'a str,
    ephemeral_storage: &'a str,
    tmp_size_limit: &'a str,
    monitor_url: &'a str,
    commit: &'a str,
    manifest: &'a str,
}

impl<'a> Values<'a> {
    fn of(spec: &'a RunSpec) -> Values<'a> {
        Values {
            id: &spec.id,
            owner: &spec.owner,
            description: &spec.description,
            image: &spec.image,
            args: &spec.args,
            kind: spec.kind.as_str(),
            name: &spec.name,
            script_label: &spec.script_label,
            language_label: &spec.language_label,
            schedule: &spec.schedule,
            concurrency_policy: &spec.concurrency_policy,
            active_deadline_seconds: spec.active_deadline_seconds.to_string(),
            backoff_limit: spec.backoff_limit.to_string(),
            ttl_seconds_after_finished: spec.ttl_seconds_after_finished.to_string(),
            cpu: &spec.cpu,
            memory_request: &spec.memory_request,
            memory_limit: &spec.memory_limit,
            ephemeral_storage: &spec.ephemeral_storage,
            tmp_size_limit: &spec.tmp_size_limit,
            monitor_url: spec.monitor_url.as_deref().unwrap_or(""),
            commit: spec.commit.as_deref().unwrap_or(""),
            manifest: &spec.manifest,
        }
    }
}

/// Compact JSON as `jq -c` writes it (`jq` escapes DEL, serde_json does not; elsewhere they
/// agree), so that the artifact script's bytes are these.
fn jq_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .expect("the view serializes")
        .replace('\u{7f}', "\\u007f")
}

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// One script of the view: flat, every value a string (Harness artifact attributes).
#[derive(Debug, Serialize)]
struct ViewScript<'a> {
    id: &'a str,
    version: String,
    language: &'a str,
    owner: &'a str,
    image: &'a str,
    command: String,
    kind: &'static str,
    schedule: &'a str,
    timeout_seconds: String,
    step_timeout: String,
    retries: String,
    cpu: &'a str,
    memory: &'a str,
    monitor_url: &'a str,
    values: String,
}

/// The release as one version (the schedules' artifact): its CronJobs' values.
#[derive(Debug, Serialize)]
struct ViewRelease<'a> {
    release: &'a str,
    commit: &'a str,
    schedules: String,
}

#[derive(Debug, Serialize)]
struct View<'a> {
    manifest: &'a str,
    commit: &'a str,
    scripts: Vec<ViewScript<'a>>,
    releases: Vec<ViewRelease<'a>>,
}

/// The view Harness's Custom Artifact sources read (`manifest pull --format harness`): compact
/// JSON on one line with a final newline, keys in a fixed order, every value a string (`""`
/// for none). `scripts` are the versions of a script (`version`), `releases` the one version of
/// the release's schedules (`release`). `manifest_digest` is the `sha256:` of the manifest
/// bytes. The `.harness/` artifact script prints the same bytes with `jq -c`.
pub fn view(manifest: &Manifest, manifest_digest: &str) -> String {
    let specs: Vec<RunSpec> = manifest
        .scripts
        .iter()
        .map(|s| RunSpec::new(manifest, manifest_digest, s))
        .collect();
    let monitor_url = manifest.monitor_url.as_deref().unwrap_or("");
    let scripts = manifest
        .scripts
        .iter()
        .zip(&specs)
        .map(|(s, spec)| ViewScript {
            id: &s.id,
            version: version(&s.id, manifest_digest),
            language: &s.language,
            owner: &s.header.owner,
            image: s.image.as_deref().unwrap_or(""),
            command: serde_json::to_string(&s.command).expect("strings serialize"),
            kind: s.job.kind.as_str(),
            schedule: s.job.schedule.as_deref().unwrap_or(""),
            timeout_seconds: s.job.active_deadline_seconds.to_string(),
            step_timeout: format!(
                "{}s",
                s.job
                    .active_deadline_seconds
                    .saturating_add(STEP_MARGIN_SECONDS)
            ),
            retries: s.job.backoff_limit.to_string(),
            cpu: &s.job.resources.cpu_request,
            memory: &s.job.resources.memory_request,
            monitor_url,
            values: base64(&jq_json(&Values::of(spec))),
        })
        .collect();
    #[derive(Serialize)]
    struct Schedules<'a> {
        cronjobs: Vec<Values<'a>>,
    }
    let schedules = Schedules {
        cronjobs: specs
            .iter()
            .filter(|s| s.kind == JobKind::CronJob)
            .map(Values::of)
            .collect(),
    };
    let commit = manifest.commit.as_deref().unwrap_or("");
    let view = View {
        manifest: manifest_digest,
        commit,
        scripts,
        releases: vec![ViewRelease {
            release: manifest_digest,
            commit,
            schedules: base64(&jq_json(&schedules)),
        }],
    };
    let mut line = jq_json(&view);
    line.push('\n');
    line
}

// -------------------------------------------------------------------------------------------------
// The Go templates
// -------------------------------------------------------------------------------------------------

/// Placeholders of the template's spec, and the values they read.
const PLACEHOLDER: &str = "krobs-template-";
const ARGS: &str = "krobs-template-args";
const JOB_NAME: &str = "krobs-template-job-name";
const NAMESPACE: &str = "krobs-template-namespace";
/// Numbers no real spec has, one per numeric field.
const NUMBERS: [(i64, &str); 3] = [
    (1_900_000_001, "active_deadline_seconds"),
    (1_900_000_002, "backoff_limit"),
    (1_900_000_003, "ttl_seconds_after_finished"),
];
/// Fields an object has only when they are set: the entry or list item holding one is kept only
/// when its value is not empty.
const OPTIONAL: [&str; 2] = ["monitor_url", "commit"];

fn placeholder(field: &str) -> String {
    format!("{PLACEHOLDER}{}", field.replace('_', "-"))
}

/// A spec whose every field is a placeholder.
fn placeholder_spec(kind: JobKind) -> RunSpec {
    let p = placeholder;
    let number = |field: &str| {
        NUMBERS
            .iter()
            .find(|(_, f)| *f == field)
            .map(|(n, _)| *n)
            .expect("a numeric field")
    };
    RunSpec {
        id: p("id"),
        owner: p("owner"),
        description: p("description"),
        image: p("image"),
        args: vec![ARGS.to_string()],
        kind,
        name: p("name"),
        script_label: p("script_label"),
        language_label: p("language_label"),
        schedule: p("schedule"),
        concurrency_policy: p("concurrency_policy"),
        active_deadline_seconds: number("active_deadline_seconds"),
        backoff_limit: i32::try_from(number("backoff_limit")).expect("fits"),
        ttl_seconds_after_finished: i32::try_from(number("ttl_seconds_after_finished"))
            .expect("fits"),
        cpu: p("cpu"),
        memory_request: p("memory_request"),
        memory_limit: p("memory_limit"),
        ephemeral_storage: p("ephemeral_storage"),
        tmp_size_limit: p("tmp_size_limit"),
        monitor_url: Some(p("monitor_url")),
        commit: Some(p("commit")),
        manifest: p("manifest"),
    }
}

/// The field a placeholder string stands for.
fn field_of(s: &str) -> Option<String> {
    s.strip_prefix(PLACEHOLDER).map(|f| f.replace('-', "_"))
}

/// The Go template action that writes a scalar of the placeholder object.
fn action(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s == JOB_NAME => {
            Some("{{ $k.name }}-{{ printf \"%05d\" (mod (atoi $.Values.run) 100000) }}".to_string())
        }
        Value::String(s) if s == NAMESPACE => Some("{{ printf \"%q\" $.Values.namespace }}".into()),
        Value::String(s) => field_of(s).map(|f| format!("{{{{ printf \"%q\" $k.{f} }}}}")),
        Value::Number(n) => n
            .as_i64()
            .and_then(|n| NUMBERS.iter().find(|(v, _)| *v == n))
            .map(|(_, f)| format!("{{{{ $k.{f} }}}}")),
        _ => None,
    }
}

/// The optional field a value is the placeholder of.
fn optional(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => field_of(s).filter(|f| OPTIONAL.contains(&f.as_str())),
        _ => None,
    }
}

/// The YAML of a placeholder object as a Go template: the layout of [`yaml::to_string`], each
/// placeholder an action, the optional entries and list items inside `if`, the args a `range`.
fn template_yaml(value: &Value) -> String {
    let mut out = String::new();
    if let Value::Object(map) = value {
        write_map(&mut out, map, 0, false);
    }
    out
}

fn scalar(value: &Value) -> String {
    action(value).unwrap_or_else(|| yaml::scalar(value))
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize, item: bool) {
    for (key, value) in map {
        // In a list item, the whole item is kept or dropped (by `write_seq`).
        let cond = if item { None } else { optional(value) };
        if let Some(field) = &cond {
            out.push_str(&format!("{{{{- if $k.{field} }}}}\n"));
        }
        out.push_str(&" ".repeat(indent));
        out.push_str(&yaml::scalar(&Value::String(key.clone())));
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                write_map(out, inner, indent + 2, false);
            }
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
        if cond.is_some() {
            out.push_str("{{- end }}\n");
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Value::String(s) if s == ARGS => {
                out.push_str("{{- range $k.args }}\n");
                out.push_str(&format!("{pad}- {{{{ printf \"%q\" . }}}}\n"));
                out.push_str("{{- end }}\n");
            }
            Value::Object(map) if !map.is_empty() => {
                let cond = map.values().find_map(optional);
                if let Some(field) = &cond {
                    out.push_str(&format!("{{{{- if $k.{field} }}}}\n"));
                }
                let mut entry = String::new();
                write_map(&mut entry, map, indent + 2, true);
                // `- first: ...`, the other keys under `first`; an `if` line stays whole.
                let first = entry
                    .find(|c: char| c != ' ')
                    .expect("a map entry has text");
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&entry[first..]);
                if cond.is_some() {
                    out.push_str("{{- end }}\n");
                }
            }
            other => {
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

/// The object of a placeholder spec of `kind`, as a template.
fn object_template(kind: JobKind) -> String {
    let spec = placeholder_spec(kind);
    let name = match kind {
        JobKind::Job => JOB_NAME.to_string(),
        JobKind::CronJob => spec.name.clone(),
    };
    template_yaml(&render::object(&spec, &name, NAMESPACE, &[]))
}

const GENERATED: &str =
    "{{- /* Generated by `krobs-build render --harness-template WHICH` from the renderer of
  `krobs-build render`: Harness applies what render prints. Do not edit: change the renderer and
  regenerate this file (tests/it/harness.rs checks that it is current). */ -}}\n";

/// The Go templates of `.harness/manifests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// One script's Job or CronJob (`.harness/manifests/templates/krob.yaml`).
    Krob,
    /// Every CronJob of a release (`.harness/manifests/schedules/templates/schedules.yaml`).
    Schedules,
}

/// The Go template of `.harness/manifests` that Harness fills with a version's values.
pub fn template(which: Template) -> String {
    let (name, body) = match which {
        Template::Krob => (
            "krob",
            format!(
                "{{{{- $k := $.Values.krob | b64dec | fromJson }}}}\n\
                 {{{{- if eq $k.kind \"CronJob\" }}}}\n{}{{{{- else }}}}\n{}{{{{- end }}}}\n",
                object_template(JobKind::CronJob),
                object_template(JobKind::Job)
            ),
        ),
        Template::Schedules => (
            "schedules",
            format!(
                "{{{{- $s := $.Values.schedules | b64dec | fromJson }}}}\n\
                 {{{{- range $k := $s.cronjobs }}}}\n---\n{}{{{{- end }}}}\n",
                object_template(JobKind::CronJob)
            ),
        ),
    };
    format!("{}{body}", GENERATED.replace("WHICH", name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field of the values is read by the template, and the template reads no other.
    #[test]
    fn the_template_reads_every_value_and_only_those() {
        let spec = placeholder_spec(JobKind::CronJob);
        let values = serde_json::to_value(Values::of(&spec)).unwrap();
        let fields: Vec<&String> = values.as_object().unwrap().keys().collect();
        let krob = template(Template::Krob);
        let read: std::collections::BTreeSet<String> = krob
            .split("$k.")
            .skip(1)
            .map(|rest| {
                rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        for f in &fields {
            assert!(read.contains(f.as_str()), "the template never reads `{f}`");
        }
        for r in &read {
            assert!(
                fields.iter().any(|f| f == &r),
                "the template reads `{r}`, not a value"
            );
        }
        assert!(!krob.contains(PLACEHOLDER), "{krob}");
        assert!(!template(Template::Schedules).contains(PLACEHOLDER));
        for (n, _) in NUMBERS {
            assert!(!krob.contains(&n.to_string()), "{krob}");
        }
    }

    #[test]
    fn optional_values_and_args_are_conditional_and_ranged() {
        let krob = template(Template::Krob);
        assert!(krob.contains(
            "{{- if $k.commit }}\n    krobs.dev/commit: {{ printf \"%q\" $k.commit }}\n{{- end }}\n"
        ));
        assert!(krob.contains("{{- if $k.monitor_url }}\n"));
        assert!(krob.contains("{{- range $k.args }}\n"));
    }

    // Longer than a screen on purpose: the manifest it builds field by field is the fixture,
    // and the view's order is asserted against it in one reading.
    #[test]
    fn the_view_is_one_line_of_strings_in_the_agreed_order_escaped_as_jq_does() {
        use crate::input::header::Header;
        use crate::release::manifest::{Job, ManifestScript, Resources, FORMAT};
        let script = |id: &str, schedule: Option<&str>, owner: &str| ManifestScript {
            id: id.to_string(),
            language: "python".to_string(),
            path: format!("languages/{id}.py"),
            image_path: format!("/opt/krobs/scripts/{id}.py"),
            image: Some("r.example/krobs/python@sha256:ab".to_string()),
            sha256: "00".repeat(32),
            command: vec!["python3".to_string(), format!("/opt/krobs/scripts/{id}.py")],
            header: Header {
                owner: owner.to_string(),
                description: "d".to_string(),
                schedule: schedule.map(str::to_string),
                timeout_seconds: None,
                retries: Some(0),
                cpu: None,
                memory: None,
                slack_channel: None,
            },
            job: Job {
                kind: if schedule.is_some() {
                    JobKind::CronJob
                } else {
                    JobKind::Job
                },
                schedule: schedule.map(str::to_string),
                concurrency_policy: schedule.map(|_| "Forbid".to_string()),
                active_deadline_seconds: 3600,
                backoff_limit: 0,
                ttl_seconds_after_finished: 604800,
                resources: Resources {
                    cpu_request: "250m".to_string(),
                    memory_request: "1Gi".to_string(),
                    memory_limit: "1Gi".to_string(),
                    ephemeral_storage_request: None,
                    tmp_size_limit: Some("2Gi".to_string()),
                },
            },
        };
        let manifest = Manifest {
            format: FORMAT.to_string(),
            preview: false,
            commit: Some("c".repeat(40)),
            monitor_url: Some("http://m:8080".to_string()),
            languages: Vec::new(),
            scripts: vec![
                script("python/a", Some("0 3 * * *"), "team \"é\" \u{1f}\u{7f}/"),
                script("python/b", None, "t"),
            ],
        };
        let line = view(&manifest, "sha256:11");
        assert!(line.ends_with("}\n") && line.lines().count() == 1, "{line}");
        assert!(
            line.contains(r#""owner":"team \"é\" \u001f\u007f/""#),
            "{line}"
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        let keys = |o: &Value| o.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&v), ["commit", "manifest", "releases", "scripts"]);
        assert!(
            line.starts_with(r#"{"manifest":"sha256:11","commit":"ccc"#),
            "{line}"
        );
        let a = &v["scripts"][0];
        for (k, expected) in [
            ("version", "python/a@sha256:11"),
            ("kind", "CronJob"),
            ("schedule", "0 3 * * *"),
            ("timeout_seconds", "3600"),
            ("step_timeout", "4200s"),
            ("retries", "0"),
        ] {
            assert_eq!(a[k], expected, "{k}");
        }
        assert!(a.as_object().unwrap().values().all(Value::is_string), "{a}");
        let decode = |b64: &Value| -> Value {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.as_str().unwrap())
                .unwrap();
            let text = String::from_utf8(bytes).unwrap();
            assert!(!text.contains('\u{7f}'), "jq escapes DEL: {text}");
            serde_json::from_str(&text).unwrap()
        };
        let values = decode(&a["values"]);
        assert_eq!(values["name"], "krobs-python-a");
        assert_eq!(
            values["args"],
            serde_json::json!(["python3", "/opt/krobs/scripts/python/a.py"])
        );
        assert_eq!(
            values["ephemeral_storage"],
            crate::input::deploy_config::DEFAULT_EPHEMERAL_STORAGE
        );
        assert_eq!(values["tmp_size_limit"], "2Gi");
        assert_eq!(values["manifest"], "sha256:11");
        let job_values = decode(&v["scripts"][1]["values"]);
        assert_eq!(
            (&job_values["kind"], &job_values["schedule"]),
            (&serde_json::json!("Job"), &serde_json::json!(""))
        );
        let release = &v["releases"][0];
        assert_eq!(release["release"], "sha256:11");
        let schedules = decode(&release["schedules"]);
        assert_eq!(schedules["cronjobs"].as_array().unwrap().len(), 1);
        assert_eq!(schedules["cronjobs"][0], values);
    }

    #[test]
    fn versions_name_the_script_and_the_release() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            version("python/drain_node", &digest),
            format!("python/drain_node@{digest}")
        );
    }
}
