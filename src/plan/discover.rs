//! Language folders, their build contexts, and their scripts with documentation headers.
//! Everything wrong is collected and reported at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::input::config::{Config, LanguageConfig, DEFAULT_IMAGE_SCRIPTS_DIR};
use crate::input::context::{Context, Entry, EntryKind, LEAD_PREFIX};
use crate::input::header::{self, Header};
use crate::input::names;
use crate::input::problem::{Problem, Problems};
use crate::input::repo::{self, Repo, DOCKERFILE_LIMIT, HEADER_LIMIT};
use crate::plan::digest::BuildInputs;

/// The folder under a language holding its krobs.
pub const SCRIPTS_DIR: &str = "scripts";

/// A language: one image.
#[derive(Debug, Clone)]
pub struct Language {
    pub name: String,
    /// Repository-relative folder, `/`-separated.
    pub dir: String,
    /// `[build] build_args` overlaid with the language's own.
    pub inputs: BuildInputs,
    pub image_scripts_dir: String,
    pub context: Context,
    /// What was left out without stopping the run (hidden files in `scripts/`).
    pub notes: Vec<String>,
}

/// A krob: one script of a language.
#[derive(Debug, Clone)]
pub struct Script {
    /// `<language>/<path under scripts/ without extension>`.
    pub id: String,
    pub language: String,
    /// Repository-relative path.
    pub path: String,
    /// Where the image holds it.
    pub image_path: String,
    /// Lowercase hex sha256 of its bytes.
    pub sha256: String,
    /// The container command that runs it: the language's command through `krobs-run`.
    pub command: Vec<String>,
    pub header: Header,
}

/// What the repository holds, for the selected languages.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub languages: Vec<Language>,
    pub scripts: Vec<Script>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("unknown language `{name}` in `--only`: known languages are {}", known_list(.known))]
    UnknownLanguage { name: String, known: Vec<String> },
    #[error("no language folders under `{dir}`: add `{dir}/<language>/Dockerfile`")]
    NoLanguages { dir: String },
    /// Every language the run would build is disabled: a release would list no krob, and the
    /// next schedules sync would take every CronJob of the last release off the cluster.
    #[error("every language is disabled in `{config}` ({}: `enabled = false`): a release would list no krob, and the next schedules sync would take every krob's CronJob off the cluster; enable a language to release", .disabled.join(", "))]
    AllDisabled {
        config: String,
        disabled: Vec<String>,
    },
    /// `--only` names disabled languages alone.
    #[error("`--only` selects only disabled languages ({}: `enabled = false` in `{config}`): nothing to build; enable one, or select an enabled language", .disabled.join(", "))]
    OnlyDisabled {
        config: String,
        disabled: Vec<String>,
    },
    #[error(transparent)]
    Problems(#[from] Problems),
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_string()
    } else {
        known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Finds the languages (restricted to `only` when it is not empty) and lints their scripts.
pub fn discover(config: &Config, only: &[String]) -> Result<Inventory, DiscoverError> {
    let mut problems = Vec::new();
    let repo = Repo::new(&config.root).map_err(|e| {
        Problems(vec![Problem::new(
            config.root.display().to_string(),
            e.refusal.to_string(),
        )])
    })?;
    let dirs = language_dirs(config, &repo, &mut problems);
    if dirs.is_empty() && problems.is_empty() {
        return Err(DiscoverError::NoLanguages {
            dir: config.languages_dir.clone(),
        });
    }

    // Image names (host + repository path) have a length limit.
    for name in dirs.keys() {
        let image = format!("{}/{}", config.registry.host(), config.repository_for(name));
        if image.len() > names::MAX_NAME {
            problems.push(Problem::new(
                config.path.display().to_string(),
                format!(
                    "the image name `{image}` is {} characters long, more than the {} an image reference allows: shorten `repository` or the language name",
                    image.len(),
                    names::MAX_NAME
                ),
            ));
        }
    }

    for name in only {
        if !dirs.contains_key(name) {
            return Err(DiscoverError::UnknownLanguage {
                name: name.clone(),
                known: dirs.keys().cloned().collect(),
            });
        }
    }

    let mut languages = Vec::new();
    let mut scripts = Vec::new();
    for (name, dir) in &dirs {
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        if let Some((lang, lang_scripts)) = language(config, &repo, name, dir, &mut problems) {
            languages.push(lang);
            scripts.extend(lang_scripts);
        }
    }
    unique_ids(&scripts, &mut problems);
    unique_job_names(&scripts, &mut problems);

    if problems.is_empty() {
        Ok(Inventory { languages, scripts })
    } else {
        problems.sort();
        problems.dedup();
        Err(Problems(problems).into())
    }
}

/// Each language's folder: the folders under `languages_dir`, then the configured languages
/// that live elsewhere (`path`).
fn language_dirs(
    config: &Config,
    repo: &Repo,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, String> {
    let mut dirs: BTreeMap<String, String> = BTreeMap::new();
    let languages_dir = match repo.resolve(&config.languages_dir) {
        Ok(real) => Some(real),
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            problems.push(Problem::new(
                config.languages_dir.clone(),
                format!("(`languages_dir`) {}", e.refusal),
            ));
            None
        }
    };
    if let Some(read) = languages_dir.and_then(|d| std::fs::read_dir(d).ok()) {
        for entry in read.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                problems.push(Problem::new(
                    format!("{}/{}", config.languages_dir, name.to_string_lossy()),
                    "language folder name is not valid UTF-8: rename it",
                ));
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            if let Err(m) = names::check_language(name) {
                problems.push(Problem::new(
                    format!("{}/{name}", config.languages_dir),
                    format!("{m}: rename the folder"),
                ));
                continue;
            }
            dirs.insert(name.to_string(), format!("{}/{name}", config.languages_dir));
        }
    }
    for (name, lang) in &config.languages {
        match &lang.path {
            Some(path) => {
                dirs.insert(name.clone(), path.clone());
            }
            None if !dirs.contains_key(name) => problems.push(Problem::new(
                config.path.display().to_string(),
                format!(
                    "`[languages.{name}]` has no folder `{}/{name}`: create it or set `path`",
                    config.languages_dir
                ),
            )),
            None => {}
        }
    }
    dirs
}

/// Ids must be unique: Harness names Jobs after them.
fn unique_ids(scripts: &[Script], problems: &mut Vec<Problem>) {
    let mut by_id: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in scripts {
        by_id.entry(&s.id).or_default().push(&s.path);
    }
    for (id, paths) in &by_id {
        if paths.len() > 1 {
            for p in paths {
                let others: Vec<String> = paths
                    .iter()
                    .filter(|o| *o != p)
                    .map(|o| format!("`{o}`"))
                    .collect();
                problems.push(Problem::new(
                    *p,
                    format!(
                        "duplicate script id `{id}` (also {}): rename one of them",
                        others.join(", ")
                    ),
                ));
            }
        }
    }
}

/// Harness names each Job after the script's Kubernetes name: no two may share one.
fn unique_job_names(scripts: &[Script], problems: &mut Vec<Problem>) {
    let mut by_job: BTreeMap<String, Vec<&Script>> = BTreeMap::new();
    for s in scripts {
        by_job.entry(names::job_name(&s.id)).or_default().push(s);
    }
    for (job, same) in &by_job {
        let ids: BTreeSet<&str> = same.iter().map(|s| s.id.as_str()).collect();
        if ids.len() > 1 {
            for s in same {
                let others: Vec<String> = same
                    .iter()
                    .filter(|o| o.id != s.id)
                    .map(|o| format!("`{}`", o.path))
                    .collect();
                problems.push(Problem::new(
                    s.path.clone(),
                    format!(
                        "script id `{}` maps to the Kubernetes name `{job}`, as {} does: rename one of them",
                        s.id,
                        others.join(", ")
                    ),
                ));
            }
        }
    }
}

fn language(
    config: &Config,
    repo: &Repo,
    name: &str,
    dir: &str,
    problems: &mut Vec<Problem>,
) -> Option<(Language, Vec<Script>)> {
    let settings = config.languages.get(name).cloned().unwrap_or_default();
    let (abs, dockerfile_text) = language_folder(repo, name, dir, problems)?;
    if let Some(problem) = no_runtime(dir, &dockerfile_text) {
        problems.push(problem);
        return None;
    }
    let before = problems.len();
    extra_inputs_outside_scripts(name, dir, &settings.extra_inputs, problems);
    if problems.len() > before {
        return None;
    }
    let mut context = match Context::collect(repo, dir, &settings.extra_inputs) {
        Ok(context) => context,
        Err(p) => {
            problems.extend(p);
            return None;
        }
    };
    let stable = [
        no_git_in_context(name, dir, &settings.extra_inputs, &context),
        no_output_in_context(config, name, dir, &settings.extra_inputs, &context),
    ];
    if stable.iter().any(Option::is_some) {
        problems.extend(stable.into_iter().flatten());
        return None;
    }
    let notes = leave_out_hidden_scripts(dir, &mut context);

    let inputs = build_inputs(config, &settings, name, dir, &dockerfile_text, problems);
    let image_scripts_dir = image_scripts_dir(&settings, name, dir, problems)?;
    let scripts = scripts(
        name,
        dir,
        &abs,
        &context,
        &settings,
        &image_scripts_dir,
        problems,
    );
    Some((
        Language {
            name: name.to_string(),
            dir: dir.to_string(),
            inputs,
            image_scripts_dir,
            context,
            notes,
        },
        scripts,
    ))
}

/// The language's folder inside the repository, and its Dockerfile's text.
fn language_folder(
    repo: &Repo,
    name: &str,
    dir: &str,
    problems: &mut Vec<Problem>,
) -> Option<(PathBuf, String)> {
    let abs = match repo.resolve(dir) {
        Ok(abs) => abs,
        Err(e) if e.is_not_found() => {
            problems.push(Problem::new(
                dir,
                format!("the folder of language `{name}` does not exist: create it or fix `[languages.{name}] path` in krobs.toml"),
            ));
            return None;
        }
        Err(e) => {
            problems.push(Problem::new(dir, e.refusal.to_string()));
            return None;
        }
    };
    let dockerfile_text = match repo.read(
        &format!("{dir}/Dockerfile"),
        DOCKERFILE_LIMIT,
        "a Dockerfile",
    ) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.is_not_found() => {
            let empty = std::fs::read_dir(&abs).map_or(true, |mut d| d.next().is_none());
            problems.push(Problem::new(
                dir,
                if empty {
                    format!("empty language folder: add a `Dockerfile` and `{SCRIPTS_DIR}/`, or remove the folder")
                } else {
                    format!("missing Dockerfile for language `{name}`: add `{dir}/Dockerfile`")
                },
            ));
            return None;
        }
        Err(e) => {
            problems.push(Problem::new(
                format!("{dir}/Dockerfile"),
                e.refusal.to_string(),
            ));
            return None;
        }
    };
    Some((abs, dockerfile_text))
}

/// What besides its files goes into the runtime's digest: build args, base image, platform,
/// target stage (which the Dockerfile must have). A Dockerfile that copies `scripts/` is a
/// problem: the scripts go on as a layer of their own.
fn build_inputs(
    config: &Config,
    settings: &LanguageConfig,
    name: &str,
    dir: &str,
    dockerfile_text: &str,
    problems: &mut Vec<Problem>,
) -> BuildInputs {
    let mut build_args = config.build.build_args.clone();
    build_args.extend(settings.build_args.clone());
    for line in scripts_copies(dockerfile_text) {
        problems.push(Problem::at(
            format!("{dir}/Dockerfile"),
            line,
            format!("copies `{SCRIPTS_DIR}/`: the Dockerfile builds the runtime only, and Krobs lays `{SCRIPTS_DIR}/` on top of it as a layer of its own (at `image_scripts_dir`); remove the line"),
        ));
    }
    let base_image = build_args
        .get("BASE_IMAGE")
        .cloned()
        .or_else(|| base_image_of(dockerfile_text));
    if let Some(target) = &settings.target {
        let stages = crate::input::dockerfile::stages(dockerfile_text);
        if !stages.iter().any(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(target))
        }) {
            let named: Vec<String> = stages
                .iter()
                .filter_map(|s| s.name.as_ref().map(|n| format!("`{n}`")))
                .collect();
            problems.push(Problem::new(
                format!("{dir}/Dockerfile"),
                format!(
                    "has no stage `{target}` (`[languages.{name}] target` in krobs.toml): name one with `FROM ... AS {target}`{}",
                    if named.is_empty() {
                        String::new()
                    } else {
                        format!(", or use one of {}", named.join(", "))
                    }
                ),
            ));
        }
    }
    BuildInputs {
        build_args,
        base_image,
        platform: config.build.platform.clone(),
        target: settings.target.clone(),
    }
}

/// Where the scripts go in the image: never where Krobs puts its entrypoint.
fn image_scripts_dir(
    settings: &LanguageConfig,
    name: &str,
    dir: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let image_scripts_dir = settings
        .image_scripts_dir
        .clone()
        .unwrap_or_else(|| DEFAULT_IMAGE_SCRIPTS_DIR.to_string());
    let bin = crate::plan::entrypoint::PATH
        .rsplit_once('/')
        .map_or("", |(bin, _)| bin);
    let under_bin = format!("/{}/", image_scripts_dir.trim_matches('/'));
    if under_bin.starts_with(&format!("{bin}/")) {
        problems.push(Problem::new(
            dir,
            format!("`languages.{name}.image_scripts_dir = \"{image_scripts_dir}\"` is inside `{bin}`, where Krobs puts its entrypoint `krobs-run`: choose another folder, e.g. `/opt/krobs/scripts`"),
        ));
        return None;
    }
    Some(image_scripts_dir)
}

/// The krobs under `scripts/`, each with its header; a documented file elsewhere in the
/// context, or one `.dockerignore` leaves out, is a problem.
fn scripts(
    name: &str,
    dir: &str,
    abs: &Path,
    context: &Context,
    settings: &LanguageConfig,
    image_scripts_dir: &str,
    problems: &mut Vec<Problem>,
) -> Vec<Script> {
    let command = settings
        .command
        .clone()
        .unwrap_or_else(|| default_command(name));
    let mut scripts = Vec::new();
    let prefix = format!("{SCRIPTS_DIR}/");
    let marker_for = |file: &str| {
        settings
            .comment
            .clone()
            .unwrap_or_else(|| comment_for(file).to_string())
    };
    excluded_krobs(dir, context, &marker_for, problems);
    // The runtime's files, read once here for the check below and kept for the input digest.
    context.read_files(|e| !e.rel.starts_with(&prefix));
    for entry in &context.entries {
        let Some(sub) = entry.rel.strip_prefix(&prefix) else {
            if documented_outside(entry, abs, &marker_for) {
                problems.push(not_a_krob(dir, &entry.rel));
            }
            continue;
        };
        let path = format!("{dir}/{}", entry.rel);
        match entry.kind {
            EntryKind::Dir => continue,
            EntryKind::Symlink { .. } => {
                problems.push(Problem::new(
                    path,
                    "scripts must be regular files, not symlinks: copy the file in",
                ));
                continue;
            }
            EntryKind::File { .. } => {}
        }
        // Markdown beside the scripts (a README) documents them: it ships in the scripts
        // layer but is no krob.
        if sub.to_ascii_lowercase().ends_with(".md") {
            continue;
        }
        if let Some(s) = script(
            name,
            &path,
            sub,
            &entry.source,
            &settings.comment,
            &command,
            image_scripts_dir,
            problems,
        ) {
            scripts.push(s);
        }
    }
    if scripts.is_empty()
        && !problems
            .iter()
            .any(|p| p.path.starts_with(&format!("{dir}/")))
    {
        problems.push(Problem::new(
            dir,
            format!("language `{name}` has no scripts: add one under `{dir}/{SCRIPTS_DIR}/` or remove the folder"),
        ));
    }
    scripts
}

/// Whether `entry`, outside `scripts/`, reads as a krob: a regular, not hidden file of the
/// language's own folder (`abs`), other than the Dockerfile, that opens with the header fence.
fn documented_outside(entry: &Entry, abs: &Path, marker_for: &dyn Fn(&str) -> String) -> bool {
    matches!(entry.kind, EntryKind::File { .. })
        && entry.rel != "Dockerfile"
        && entry.rel.starts_with(|c: char| c != '.')
        && entry.source.starts_with(abs)
        && entry
            .read()
            .is_ok_and(|r| r.lead.as_deref() == Some(fence(&marker_for(&entry.rel)).as_str()))
}

/// A documented script `.dockerignore` leaves out of the context is in no image.
fn excluded_krobs(
    dir: &str,
    context: &Context,
    marker_for: &dyn Fn(&str) -> String,
    problems: &mut Vec<Problem>,
) {
    let prefix = format!("{SCRIPTS_DIR}/");
    for entry in &context.ignored {
        if entry.rel.starts_with(&prefix) && has_header(&entry.source, &marker_for(&entry.rel)) {
            problems.push(Problem::new(
                format!("{dir}/{}", entry.rel),
                "documented script is excluded by `.dockerignore`, so no image holds it: remove the pattern that excludes it, or the script",
            ));
        }
    }
}

/// A file with a documentation header outside `scripts/` is no krob.
fn not_a_krob(dir: &str, rel: &str) -> Problem {
    Problem::new(
        format!("{dir}/{rel}"),
        format!("has a documentation header but is not under `{SCRIPTS_DIR}/`, so it is not a krob: move it to `{dir}/{SCRIPTS_DIR}/` or remove the header"),
    )
}

/// A Dockerfile without a `FROM` (empty, or only comments) builds no runtime: the Engine
/// would refuse it only after the plan was made and the registry asked.
fn no_runtime(dir: &str, dockerfile: &str) -> Option<Problem> {
    let text = dockerfile.trim_start_matches('\u{feff}');
    if !crate::input::dockerfile::stages(text).is_empty() {
        return None;
    }
    let what = if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        "is empty"
    } else {
        "has no `FROM` line"
    };
    Some(Problem::new(
        format!("{dir}/Dockerfile"),
        format!("{what}: it builds the language's runtime, so start it with `FROM <base image>` (e.g. `ARG BASE_IMAGE=debian:bookworm-slim`, then `FROM ${{BASE_IMAGE}}`)"),
    ))
}

/// An extra input joins the build context at its repository path: one in a top-level
/// `scripts/` would land among the language's scripts (and be taken for krobs of this
/// language, at paths that do not exist).
fn extra_inputs_outside_scripts(
    name: &str,
    dir: &str,
    extra_inputs: &[String],
    problems: &mut Vec<Problem>,
) {
    for extra in extra_inputs {
        if extra == SCRIPTS_DIR || extra.starts_with(&format!("{SCRIPTS_DIR}/")) {
            problems.push(Problem::new(
                extra.clone(),
                format!("extra input of `{dir}` would join its build context at `{extra}`, inside the language's `{SCRIPTS_DIR}/`, and be taken for its scripts: move it out of the top-level `{SCRIPTS_DIR}/` folder and fix `[languages.{name}] extra_inputs` in krobs.toml"),
            ));
        }
    }
}

/// Hidden files and folders in `scripts/` (a `.gitkeep`, an editor's swap file) are no krobs
/// and have no business in the image: they are left out of the context, so of the scripts
/// layer and its digest, each with a note.
fn leave_out_hidden_scripts(dir: &str, context: &mut Context) -> Vec<String> {
    let prefix = format!("{SCRIPTS_DIR}/");
    let mut notes = Vec::new();
    context.entries.retain(|e| {
        let Some(sub) = e.rel.strip_prefix(&prefix) else {
            return true;
        };
        let parts: Vec<&str> = sub.split('/').collect();
        let Some(hidden) = parts.iter().position(|p| p.starts_with('.')) else {
            return true;
        };
        if hidden + 1 == parts.len() {
            let what = if e.kind == EntryKind::Dir { "folder" } else { "file" };
            notes.push(format!(
                "`{dir}/{}` is a hidden {what}: not a krob, and left out of the scripts layer; rename it without the leading `.` to ship it",
                e.rel
            ));
        }
        false
    });
    notes
}

/// Where a context path comes from: an extra input (joined at its own repository path), else
/// the language folder. Returns its repository path and the extra input, if any.
fn source_of<'a>(dir: &str, extra_inputs: &'a [String], rel: &str) -> (String, Option<&'a str>) {
    match extra_inputs
        .iter()
        .find(|e| rel == e.as_str() || rel.starts_with(&format!("{e}/")))
    {
        Some(extra) => (rel.to_string(), Some(extra.as_str())),
        None => (format!("{dir}/{rel}"), None),
    }
}

/// git's own files change with every git command: in a build context, they would change the
/// input digest from one identical run to the next. Refused (not left out behind the
/// user's back): the context is what `.dockerignore` says, as the Docker Engine sees it.
fn no_git_in_context(
    name: &str,
    dir: &str,
    extra_inputs: &[String],
    context: &Context,
) -> Option<Problem> {
    let rel = context.entries.iter().find_map(|e| {
        let at = e.rel.split('/').position(|c| c == ".git")?;
        Some(e.rel.split('/').take(at + 1).collect::<Vec<_>>().join("/"))
    })?;
    let (path, extra) = source_of(dir, extra_inputs, &rel);
    let or_extra = extra.map_or(String::new(), |e| {
        format!(", or remove `{e}` from `[languages.{name}] extra_inputs` in krobs.toml")
    });
    Some(Problem::new(
        path,
        format!("git's own files are in the build context of `{name}`, and they change with every git command (so would its input digest): add `**/.git` to `{dir}/.dockerignore`{or_extra}"),
    ))
}

/// The manifest, its preview and its copies named by sha256 are written by Krobs after the
/// digests: in a build context, the next identical run would get another input digest.
/// Refused unless `.dockerignore` leaves them out.
fn no_output_in_context(
    config: &Config,
    name: &str,
    dir: &str,
    extra_inputs: &[String],
    context: &Context,
) -> Option<Problem> {
    let manifest = crate::input::config::normal(&config.manifest_path.to_string_lossy());
    let preview = crate::input::config::normal(
        &crate::input::config::preview_path(&config.manifest_path).to_string_lossy(),
    );
    let copy = match manifest.rsplit_once('/') {
        Some((folder, _)) => format!("{folder}/<sha256>.json"),
        None => "<sha256>.json".to_string(),
    };
    let roots =
        std::iter::once((dir, None)).chain(extra_inputs.iter().map(|e| (e.as_str(), Some(e))));
    for (root, extra) in roots {
        for written in [&manifest, &preview, &copy] {
            let Some(inside) = written
                .strip_prefix(&format!("{root}/"))
                .or((written == root).then_some(""))
            else {
                continue;
            };
            // The context path: under the language folder, its path there; an extra input's
            // is its repository path.
            let rel = match extra {
                None => inside.to_string(),
                Some(_) => written.clone(),
            };
            let probe = rel.replace("<sha256>", &"0".repeat(64));
            if context.leaves_out(&probe) {
                continue;
            }
            let leave = rel
                .rsplit_once('/')
                .map_or(rel.as_str(), |(folder, _)| folder);
            let fix = match extra {
                None => format!("set `[manifest] path` outside `{dir}`"),
                Some(e) => format!("remove `{e}` from `[languages.{name}] extra_inputs`, or set `[manifest] path` outside it"),
            };
            return Some(Problem::new(
                config.path.display().to_string(),
                format!("krobs-build writes `{written}` inside the build context of `{name}` (at `{rel}`), so its input digest would change from one run to the next: {fix}, or leave `{leave}` out in `{dir}/.dockerignore`"),
            ));
        }
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn script(
    language: &str,
    path: &str,
    sub: &str,
    source: &Path,
    comment: &Option<String>,
    command: &[String],
    image_scripts_dir: &str,
    problems: &mut Vec<Problem>,
) -> Option<Script> {
    let stem = match sub.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !stem.ends_with('/') && !ext.contains('/') => stem,
        _ => sub,
    };
    if !stem.split('/').all(is_id_part) {
        problems.push(Problem::new(
            path,
            format!(
                "script name makes a bad id: use lowercase letters, digits, `-` and `_` (the id names Kubernetes Jobs){}",
                names::suggestion(stem)
            ),
        ));
        return None;
    }
    let read = match repo::read_script(source, HEADER_LIMIT) {
        Ok(r) => r,
        Err(e) => {
            problems.push(Problem::new(path, e.to_string()));
            return None;
        }
    };
    let marker = comment
        .clone()
        .unwrap_or_else(|| comment_for(sub).to_string());
    if let Some(line) = header::not_utf8_line(&read.prefix, &marker) {
        problems.push(Problem::at(
            path,
            line,
            "the documentation header is not UTF-8 text: save the script as UTF-8",
        ));
        return None;
    }
    let text = String::from_utf8_lossy(&read.prefix);
    let header = match header::parse_prefix(&text, &marker, read.truncated) {
        Ok(h) => h,
        Err(ps) => {
            problems.extend(ps.into_iter().map(|p| Problem::at(path, p.line, p.message)));
            return None;
        }
    };
    let id = format!("{language}/{stem}");
    let max = names::max_job_name(header.schedule.is_some());
    if let Err(m) = names::check_job_name(&names::job_name(&id), max) {
        problems.push(Problem::new(path, format!("script id `{id}`: {m}")));
        return None;
    }
    let image_path = format!("{}/{sub}", image_scripts_dir.trim_end_matches('/'));
    let language_command: Vec<String> = command
        .iter()
        .map(|a| a.replace("{script}", &image_path))
        .collect();
    let command = crate::plan::entrypoint::command(&id, &language_command);
    Some(Script {
        id,
        language: language.to_string(),
        path: path.to_string(),
        command,
        image_path,
        sha256: read.sha256,
        header,
    })
}

/// Whether a file starts with a documentation header (after an optional `#!` line).
fn has_header(source: &Path, marker: &str) -> bool {
    let Ok(prefix) = repo::read_prefix(source, LEAD_PREFIX as u64) else {
        return false;
    };
    let text = String::from_utf8_lossy(&prefix);
    let fence = fence(marker);
    text.lines()
        .find(|l| !l.starts_with("#!"))
        .is_some_and(|l| l.trim_end() == fence)
}

/// The line that opens a documentation header.
fn fence(marker: &str) -> String {
    format!("{marker} ---")
}

fn is_id_part(part: &str) -> bool {
    let mut bytes = part.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The command that runs a script of a well-known language.
pub fn default_command(language: &str) -> Vec<String> {
    let program = match language {
        "python" => Some("python3"),
        "ruby" => Some("ruby"),
        "scala" => Some("amm"),
        "bash" => Some("bash"),
        "sh" => Some("sh"),
        "node" | "javascript" => Some("node"),
        _ => None,
    };
    match program {
        Some(p) => vec![p.to_string(), "{script}".to_string()],
        None => vec!["{script}".to_string()],
    }
}

/// The line-comment marker for a script, from its extension.
pub fn comment_for(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("sc" | "scala" | "java" | "kt" | "kts" | "js" | "ts" | "groovy" | "go" | "rs") => "//",
        Some("sql" | "lua") => "--",
        _ => "#",
    }
}

/// The base image a Dockerfile uses by default: `ARG BASE_IMAGE=...`, else the first literal `FROM`.
pub fn base_image_of(dockerfile: &str) -> Option<String> {
    let mut from = None;
    for line in dockerfile.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        let instruction = words.next().unwrap_or("").to_ascii_uppercase();
        if instruction == "ARG" {
            if let Some(default) = words.next().and_then(|w| w.strip_prefix("BASE_IMAGE=")) {
                return Some(default.trim_matches('"').to_string());
            }
        } else if instruction == "FROM" && from.is_none() {
            from = words
                .find(|w| !w.starts_with("--"))
                .filter(|w| !w.contains('$'))
                .map(str::to_string);
        }
    }
    from
}

/// The 1-based lines of `COPY`/`ADD` instructions whose sources are in `scripts/` of the
/// build context (not `--from` another stage).
pub fn scripts_copies(dockerfile: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    for (i, line) in dockerfile.lines().enumerate() {
        let mut words = line.split_whitespace();
        let instruction = words.next().unwrap_or("").to_ascii_uppercase();
        if instruction != "COPY" && instruction != "ADD" {
            continue;
        }
        let args: Vec<&str> = words.collect();
        if args.iter().any(|w| w.starts_with("--from")) {
            continue;
        }
        let options = args.iter().take_while(|w| w.starts_with("--")).count();
        let sources = &args[options..args.len().saturating_sub(1).max(options)];
        let in_scripts = |w: &&str| {
            let w = w.trim_matches(|c| c == '"' || c == '[' || c == ']' || c == ',');
            let w = w.trim_start_matches("./");
            w == SCRIPTS_DIR || w.starts_with(&format!("{SCRIPTS_DIR}/"))
        };
        if sources.iter().any(in_scripts) {
            lines.push(i + 1);
        }
    }
    lines
}

/// Names that appear in more than one set; used for `--only` parsing.
pub fn parse_only(values: &[String]) -> Vec<String> {
    let set: BTreeSet<String> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_image_from_arg_default_or_from() {
        assert_eq!(
            base_image_of("ARG BASE_IMAGE=python:3.12-slim\nFROM ${BASE_IMAGE}\n").as_deref(),
            Some("python:3.12-slim")
        );
        assert_eq!(
            base_image_of("FROM --platform=linux/amd64 debian:12 AS b\n").as_deref(),
            Some("debian:12")
        );
        assert_eq!(base_image_of("FROM ${X}\n"), None);
    }

    #[test]
    fn dockerfiles_copying_scripts_are_found() {
        let text = "FROM x\nCOPY lib/ /opt/krobs/lib/\nCOPY scripts/ /opt/krobs/scripts/\n\
                    add --chown=1:1 ./scripts/a.sh /a\nCOPY --from=b /scripts/ /s/\n\
                    COPY [\"scripts\", \"/s\"]\nCOPY lib/scripts.txt /scripts/\n";
        assert_eq!(scripts_copies(text), [3, 4, 6]);
    }

    #[test]
    fn ids_and_comment_markers() {
        assert!(is_id_part("drain-node_2"));
        assert!(!is_id_part("Drain"));
        assert!(!is_id_part("-x"));
        assert_eq!(comment_for("a.sc"), "//");
        assert_eq!(comment_for("a.py"), "#");
        assert_eq!(comment_for("noext"), "#");
        assert_eq!(default_command("python"), ["python3", "{script}"]);
        assert_eq!(
            parse_only(&["ruby, python".into(), "ruby".into()]),
            ["python", "ruby"]
        );
    }
}
