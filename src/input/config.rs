//! `krobs.toml` -> [`Config`]: registry, repository naming, build settings, per-language
//! overrides. Every error names the file, line and column.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::input::deploy_config::{check_cpu, check_memory, DeployConfig};
use crate::input::names;
use crate::input::repo::{Refusal, Repo, RepoError, CONFIG_LIMIT};

/// The build-time default for `[build] concurrency`.
pub const DEFAULT_CONCURRENCY: usize = 2;
/// The build-time default for `[build] platform`.
pub const DEFAULT_PLATFORM: &str = "linux/amd64";
/// Where every language's Dockerfile copies its scripts unless overridden.
pub const DEFAULT_IMAGE_SCRIPTS_DIR: &str = "/opt/krobs/scripts";
/// Where the manifest is published as an OCI artifact unless `[manifest] repository` says.
pub const DEFAULT_MANIFEST_REPOSITORY: &str = "krobs/manifest";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read `{path}`: {cause}; create it or point `--config` at one")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("no `{FILE_NAME}` in `{}` or a folder above it up to {}: run krobs-build inside a Krobs repository, create `{FILE_NAME}` at its root, or point `--config` at one", start.display(), match stop { Some(root) => format!("the git repository's root `{}`", root.display()), None => "`/` (not inside a git repository)".to_string() })]
    NotFound {
        start: PathBuf,
        stop: Option<PathBuf>,
    },
    #[error("{0}")]
    Refused(RepoError),
    #[error("`{}` is not UTF-8 text: save it as UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("`[manifest] path`: {0}")]
    Output(Box<RepoError>),
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// The configuration file's name, looked for when `--config` is not given.
pub const FILE_NAME: &str = "krobs.toml";

/// `krobs.toml` in `start` or the nearest folder above it, as git and cargo look: the search
/// stops at the git repository's root (a folder holding `.git`). Any entry of that name counts
/// (a folder or FIFO is then refused by [`Config::load`], with its path). The path is relative
/// to `start` (`../../krobs.toml`), so that messages name it as the user would.
pub fn find(start: &Path) -> Result<PathBuf, ConfigError> {
    let mut relative = PathBuf::new();
    for dir in start.ancestors() {
        if dir.join(FILE_NAME).symlink_metadata().is_ok() {
            return Ok(relative.join(FILE_NAME));
        }
        if dir.join(".git").symlink_metadata().is_ok() {
            return Err(ConfigError::NotFound {
                start: start.to_path_buf(),
                stop: Some(dir.to_path_buf()),
            });
        }
        relative.push("..");
    }
    Err(ConfigError::NotFound {
        start: start.to_path_buf(),
        stop: None,
    })
}

/// `--config` when given, else [`find`] from the working folder.
pub fn locate(given: Option<&Path>) -> Result<PathBuf, ConfigError> {
    match given {
        Some(path) => Ok(path.to_path_buf()),
        None => {
            let cwd = std::env::current_dir().map_err(|cause| ConfigError::Read {
                path: PathBuf::from("."),
                cause,
            })?;
            find(&cwd)
        }
    }
}

/// Where images are pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryConfig {
    /// AWS ECR: the host is derived from the account and region unless `host` overrides it.
    Ecr {
        account_id: String,
        region: String,
        host: Option<String>,
        /// Create a missing repository (scan on push, immutable tags) instead of failing.
        create_repositories: bool,
    },
    /// Any OCI distribution registry; credentials come from `KROBS_REGISTRY_USERNAME` /
    /// `KROBS_REGISTRY_PASSWORD` or the Docker config file.
    Oci { host: String },
}

impl RegistryConfig {
    /// The registry host images are pushed to and looked up in.
    pub fn host(&self) -> String {
        match self {
            RegistryConfig::Ecr {
                host: Some(host), ..
            }
            | RegistryConfig::Oci { host } => host.clone(),
            RegistryConfig::Ecr {
                account_id, region, ..
            } => format!("{account_id}.dkr.ecr.{region}.amazonaws.com"),
        }
    }
}

/// Per-language settings from `[languages.<name>]`; every field is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageConfig {
    /// `enabled = false`: linted, but nothing built or published, and its scripts are not in
    /// the manifest.
    pub enabled: bool,
    /// The language folder, relative to the repository root (default `languages/<name>`).
    pub path: Option<String>,
    /// Build args for this language, layered over `[build] build_args`.
    pub build_args: BTreeMap<String, String>,
    /// Repository-relative files or folders added to this language's build context (at the
    /// same relative path) and to its input digest.
    pub extra_inputs: Vec<String>,
    /// The command that runs one script; `{script}` is replaced by its path in the image.
    pub command: Option<Vec<String>>,
    /// The line-comment marker of the documentation header (default: from the extension).
    pub comment: Option<String>,
    /// Where the Dockerfile copies the scripts in the image.
    pub image_scripts_dir: Option<String>,
    /// The Dockerfile stage to build (`FROM ... AS <target>`) instead of the last one.
    pub target: Option<String>,
    /// The command `lint --syntax` runs on each script in the runtime image; `{script}` is
    /// replaced by the script's path there (default: from the language name).
    pub syntax_check: Option<Vec<String>>,
}

impl Default for LanguageConfig {
    fn default() -> Self {
        LanguageConfig {
            enabled: true,
            path: None,
            build_args: BTreeMap::new(),
            extra_inputs: Vec::new(),
            command: None,
            comment: None,
            image_scripts_dir: None,
            target: None,
            syntax_check: None,
        }
    }
}

impl Config {
    /// Whether a language is built and published (`[languages.x] enabled`, default true).
    pub fn is_enabled(&self, language: &str) -> bool {
        self.languages.get(language).is_none_or(|l| l.enabled)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildConfig {
    pub concurrency: usize,
    pub platform: String,
    pub build_args: BTreeMap<String, String>,
    /// The network of the build's `RUN` steps (`docker build --network`): `host`, `none`, or a
    /// network of the Engine; `None`: the Engine's default. Not an input of the digest: it
    /// changes where a build reaches, not what it builds.
    pub network: Option<String>,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            concurrency: DEFAULT_CONCURRENCY,
            platform: DEFAULT_PLATFORM.to_string(),
            build_args: BTreeMap::new(),
            network: None,
        }
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The repository root: the folder holding the configuration file.
    pub root: PathBuf,
    pub registry: RegistryConfig,
    /// Repository name template; `{language}` is replaced by the language name.
    pub repository: String,
    pub build: BuildConfig,
    /// Where the manifest is written, relative to `root` unless absolute.
    pub manifest_path: PathBuf,
    /// The repository (without host) the manifest is published to as an OCI artifact.
    pub manifest_repository: String,
    /// How published scripts run: `[deploy]`.
    pub deploy: DeployConfig,
    /// The folder that holds one folder per language, relative to `root`.
    pub languages_dir: String,
    pub languages: BTreeMap<String, LanguageConfig>,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let root = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let read_err = |cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        };
        let repo = Repo::new(&root).map_err(|e| match e.refusal {
            Refusal::Io(cause) => read_err(cause),
            _ => ConfigError::Refused(e),
        })?;
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let bytes = repo
            .read(&name, CONFIG_LIMIT, "krobs.toml")
            .map_err(|e| match e.refusal {
                Refusal::Io(cause) => read_err(cause),
                refusal => ConfigError::Refused(RepoError {
                    path: path.display().to_string(),
                    refusal,
                }),
            })?;
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 {
            path: path.to_path_buf(),
        })?;
        let config = Config::parse(&text, path, &root)?;
        for output in [&config.manifest_path, &preview_path(&config.manifest_path)] {
            repo.check_output(output)
                .map_err(|e| ConfigError::Output(Box::new(e)))?;
        }
        Ok(config)
    }

    /// Parses configuration text; `path` is used in messages, `root` is the repository root.
    pub fn parse(text: &str, path: &Path, root: &Path) -> Result<Config, ConfigError> {
        let invalid = |span: Option<Range<usize>>, message: String| {
            let (line, column) = line_column(text, span.map_or(0, |s| s.start));
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| invalid(e.span(), one_line(e.message())))?;

        let registry = resolve_registry(raw.registry).map_err(|(span, m)| invalid(span, m))?;
        let at = |(span, m): Refused| invalid(Some(span), m);
        let repository = resolve_repository(raw.repository).map_err(at)?;
        let build = resolve_build(raw.build).map_err(at)?;
        let (manifest_path, manifest_repository) = resolve_manifest(raw.manifest).map_err(at)?;
        let deploy = resolve_deploy(raw.deploy).map_err(at)?;
        let languages_dir = match raw.languages_dir {
            Some(d) => {
                if let Err(m) = check_relative(d.get_ref()) {
                    return Err(invalid(Some(d.span()), format!("`languages_dir`: {m}")));
                }
                // `.`: the language folders are at the root.
                Some(normal(d.get_ref()))
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| ".".to_string())
            }
            None => "languages".to_string(),
        };
        let mut languages = BTreeMap::new();
        for (name, lang) in raw.languages {
            if let Err(m) = names::check_language(name.get_ref()) {
                return Err(invalid(Some(name.span()), m));
            }
            let lang = resolve_language(name.get_ref(), lang).map_err(at)?;
            languages.insert(name.into_inner(), lang);
        }

        Ok(Config {
            path: path.to_path_buf(),
            root: root.to_path_buf(),
            registry,
            repository,
            build,
            manifest_path,
            manifest_repository,
            deploy,
            languages_dir,
            languages,
        })
    }

    /// The repository (without host) a language's image goes to.
    pub fn repository_for(&self, language: &str) -> String {
        self.repository.replace("{language}", language)
    }

    /// The manifest path, resolved against the repository root.
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join(&self.manifest_path)
    }

    /// Where a dry run writes its preview: beside the manifest, never over it.
    pub fn preview_path(&self) -> PathBuf {
        self.root.join(preview_path(&self.manifest_path))
    }
}

/// `out/krobs-manifest.json` -> `out/krobs-manifest.preview.json`: a dry run's preview has a
/// path of its own, so the release record is never a preview, even after a failed real run.
pub fn preview_path(manifest: &Path) -> PathBuf {
    let stem = manifest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match manifest.extension() {
        Some(ext) => format!("{stem}.preview.{}", ext.to_string_lossy()),
        None => format!("{stem}.preview"),
    };
    manifest.with_file_name(name)
}

/// A refused value of `krobs.toml`: where it is, and why.
type Refused = (Range<usize>, String);

/// `repository`: a repository path with `{language}` in it.
fn resolve_repository(raw: Option<Spanned<String>>) -> Result<String, Refused> {
    let Some(r) = raw else {
        return Ok("krobs/{language}".to_string());
    };
    if !r.get_ref().contains("{language}") {
        return Err((
            r.span(),
            format!(
                "`repository = \"{}\"` must contain `{{language}}` so each language gets its own repository",
                r.get_ref()
            ),
        ));
    }
    if let Err(m) = names::check_repository(&r.get_ref().replace("{language}", "x")) {
        return Err((
            r.span(),
            format!(
                "`repository = \"{}\"` {m} (e.g. `krobs/{{language}}`)",
                r.get_ref()
            ),
        ));
    }
    Ok(r.into_inner())
}

/// `[build]`: concurrency, platform, build args and network.
fn resolve_build(raw: Option<RawBuild>) -> Result<BuildConfig, Refused> {
    let mut build = BuildConfig::default();
    let Some(b) = raw else {
        return Ok(build);
    };
    if let Some(c) = b.concurrency {
        if *c.get_ref() == 0 || *c.get_ref() > 64 {
            return Err((
                c.span(),
                format!(
                    "`concurrency = {}` is out of range: use 1 to 64",
                    c.get_ref()
                ),
            ));
        }
        build.concurrency = c.into_inner();
    }
    if let Some(p) = b.platform {
        let v = p.get_ref();
        if v.split('/').count() < 2 || v.split('/').any(str::is_empty) {
            return Err((
                p.span(),
                format!("`platform = \"{v}\"` is not `os/arch`: use e.g. `linux/amd64`"),
            ));
        }
        build.platform = p.into_inner();
    }
    build.build_args = b.build_args;
    if let Some(n) = b.network {
        if !names::is_docker_network(n.get_ref()) {
            return Err((
                n.span(),
                format!(
                    "`network = \"{}\"` is not a Docker network name: use `host`, `none` or the name of a network of the Engine",
                    n.get_ref()
                ),
            ));
        }
        build.network = Some(n.into_inner());
    }
    Ok(build)
}

/// `[manifest]`: where the manifest is written, and the repository it is published to.
fn resolve_manifest(raw: Option<RawManifest>) -> Result<(PathBuf, String), Refused> {
    let (manifest_path, manifest_repository) = match raw {
        Some(m) => (m.path, m.repository),
        None => (None, None),
    };
    let manifest_path = match manifest_path {
        Some(p) => match inside_path(p.get_ref()) {
            Ok(normal) => PathBuf::from(normal),
            Err(m) => return Err((p.span(), format!("`manifest.path`: {m}"))),
        },
        None => PathBuf::from("out/krobs-manifest.json"),
    };
    let manifest_repository = match manifest_repository {
        Some(r) => {
            let v = r.get_ref();
            if v.len() > names::MAX_NAME || names::check_repository(v).is_err() {
                return Err((
                    r.span(),
                    format!("`manifest.repository = \"{v}\"` is not a repository path: use lowercase path components such as `krobs/manifest`"),
                ));
            }
            r.into_inner()
        }
        None => DEFAULT_MANIFEST_REPOSITORY.to_string(),
    };
    Ok((manifest_path, manifest_repository))
}

/// `[languages.<name>]`, each field checked.
fn resolve_language(name: &str, lang: RawLanguage) -> Result<LanguageConfig, Refused> {
    if let Some(cmd) = &lang.command {
        check_command(name, "command", cmd.get_ref(), r#"["python3", "{script}"]"#)
            .map_err(|m| (cmd.span(), m))?;
    }
    if let Some(c) = &lang.comment {
        if c.get_ref().trim().is_empty() || c.get_ref().contains(char::is_whitespace) {
            return Err((
                c.span(),
                format!("`languages.{name}.comment` must be a comment marker such as `#` or `//`"),
            ));
        }
    }
    if let Some(t) = &lang.target {
        if let Err(m) = check_stage_name(t.get_ref()) {
            return Err((
                t.span(),
                format!("`languages.{name}.target = \"{}\"` {m}", t.get_ref()),
            ));
        }
    }
    if let Some(check) = &lang.syntax_check {
        check_command(
            name,
            "syntax_check",
            check.get_ref(),
            r#"["bash", "-n", "{script}"]"#,
        )
        .map_err(|m| (check.span(), m))?;
    }
    for input in &lang.extra_inputs {
        if let Err(m) = inside_path(input.get_ref()) {
            return Err((
                input.span(),
                format!("`languages.{name}.extra_inputs`: {m}"),
            ));
        }
    }
    if let Some(p) = &lang.path {
        if let Err(m) = inside_path(p.get_ref()) {
            return Err((p.span(), format!("`languages.{name}.path`: {m}")));
        }
    }
    Ok(LanguageConfig {
        enabled: lang.enabled.unwrap_or(true),
        path: lang.path.map(|p| normal(p.get_ref())),
        build_args: lang.build_args,
        extra_inputs: lang
            .extra_inputs
            .into_iter()
            .map(|s| normal(s.get_ref()))
            .collect(),
        command: lang.command.map(Spanned::into_inner),
        comment: lang.comment.map(Spanned::into_inner),
        image_scripts_dir: lang.image_scripts_dir,
        target: lang.target.map(Spanned::into_inner),
        syntax_check: lang.syntax_check.map(Spanned::into_inner),
    })
}

/// A command given as a list (`command`, `syntax_check`): a program first, and `{script}`
/// where the script's path goes. `example` is shown when it is empty.
fn check_command(name: &str, field: &str, command: &[String], example: &str) -> Result<(), String> {
    if command
        .first()
        .is_none_or(|program| program.trim().is_empty())
    {
        return Err(format!(
            "`languages.{name}.{field}` is empty: give the program and `{{script}}`, e.g. `{example}`"
        ));
    }
    if !command.iter().any(|a| a.contains("{script}")) {
        return Err(format!(
            "`languages.{name}.{field}` never mentions `{{script}}`: add it where the script path goes"
        ));
    }
    Ok(())
}

fn resolve_registry(raw: RawRegistry) -> Result<RegistryConfig, (Option<Range<usize>>, String)> {
    let kind_span = raw.kind.span();
    match raw.kind.get_ref().as_str() {
        "ecr" => resolve_ecr(raw, kind_span),
        "oci" => resolve_oci(raw, kind_span),
        other => Err((
            Some(kind_span),
            format!("unknown registry kind `{other}`: use `ecr` or `oci`"),
        )),
    }
}

/// `kind = "ecr"`: a 12-digit account and a region are required, `host` optional.
fn resolve_ecr(
    raw: RawRegistry,
    kind_span: Range<usize>,
) -> Result<RegistryConfig, (Option<Range<usize>>, String)> {
    let account_id = raw.account_id.ok_or_else(|| {
        (
            Some(kind_span.clone()),
            "`kind = \"ecr\"` needs `account_id` (the 12-digit AWS account)".to_string(),
        )
    })?;
    let a = account_id.get_ref();
    if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
        return Err((
            Some(account_id.span()),
            format!("`registry.account_id = \"{a}\"` is not a 12-digit AWS account id"),
        ));
    }
    let region = raw.region.ok_or_else(|| {
        (
            Some(kind_span.clone()),
            "`kind = \"ecr\"` needs `region` (e.g. `eu-west-1`)".to_string(),
        )
    })?;
    let r = region.get_ref();
    if r.is_empty()
        || !r
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err((
            Some(region.span()),
            format!("`registry.region = \"{r}\"` is not an AWS region such as `eu-west-1`"),
        ));
    }
    if let Some(h) = &raw.host {
        if let Err(m) = names::check_host(h.get_ref()) {
            return Err((Some(h.span()), format!("`registry.host` {m}")));
        }
    }
    Ok(RegistryConfig::Ecr {
        account_id: account_id.into_inner(),
        region: region.into_inner(),
        host: raw.host.map(Spanned::into_inner),
        create_repositories: raw.create_repositories.unwrap_or(false),
    })
}

/// `kind = "oci"`: only `host`, required; the ECR fields are refused.
fn resolve_oci(
    raw: RawRegistry,
    kind_span: Range<usize>,
) -> Result<RegistryConfig, (Option<Range<usize>>, String)> {
    let bad_for = |field: &str, span: Range<usize>| {
        Err((
            Some(span),
            format!("`registry.{field}` does not apply to `kind = \"oci\"`: remove it"),
        ))
    };
    if let Some(a) = raw.account_id {
        return bad_for("account_id", a.span());
    }
    if let Some(r) = raw.region {
        return bad_for("region", r.span());
    }
    if raw.create_repositories.is_some() {
        return Err((
            Some(kind_span),
            "`registry.create_repositories` only applies to `kind = \"ecr\"`: OCI registries create repositories on push".to_string(),
        ));
    }
    let host = raw.host.ok_or_else(|| {
        (
            Some(kind_span.clone()),
            "`kind = \"oci\"` needs `host` (e.g. `registry.example.com:5000`)".to_string(),
        )
    })?;
    if let Err(m) = names::check_host(host.get_ref()) {
        return Err((Some(host.span()), format!("`registry.host` {m}")));
    }
    Ok(RegistryConfig::Oci {
        host: host.into_inner(),
    })
}

/// `deploy.monitor_url`: plain `http://<host>[:<port>][/<path>]`, with no credentials in it
/// (every Job would print them).
fn check_monitor_url(v: &str) -> Result<(), String> {
    if v.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    {
        return Err(format!("`deploy.monitor_url = \"{v}\"` must be `http://`: krobs-run speaks plain HTTP to the monitor inside the cluster; put TLS in the mesh or a sidecar"));
    }
    let rest = v.strip_prefix("http://");
    if !rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace)) {
        return Err(format!("`deploy.monitor_url = \"{v}\"` is not an http:// URL: use e.g. `http://krobs-monitor.platform:8080`"));
    }
    if rest.is_some_and(|r| r.split('/').next().is_some_and(|h| h.contains('@'))) {
        return Err("`deploy.monitor_url` carries credentials (`user:password@`): they would be printed in every Job; give the monitor a token through a Secret instead".to_string());
    }
    let authority = rest.and_then(|r| r.split(['/', '?']).next()).unwrap_or("");
    let host_port = regex::Regex::new(r"^([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$")
        .expect("a valid pattern");
    if !host_port.is_match(authority) || v.contains('#') {
        return Err(format!("`deploy.monitor_url = \"{v}\"` is not a URL krobs-run can post to: give `http://<host>[:<port>][/<path>]`, e.g. `http://krobs-monitor.platform:8080/events`"));
    }
    Ok(())
}

/// `[deploy]`, checked against what Kubernetes accepts.
fn resolve_deploy(raw: Option<RawDeploy>) -> Result<DeployConfig, Refused> {
    let mut deploy = DeployConfig::default();
    let Some(raw) = raw else {
        return Ok(deploy);
    };
    if let Some(url) = raw.monitor_url {
        check_monitor_url(url.get_ref()).map_err(|m| (url.span(), m))?;
        deploy.monitor_url = Some(url.into_inner());
    }
    if let Some(ns) = raw.namespace {
        let v = ns.get_ref();
        if !names::is_dns_label(v) {
            return Err((
                ns.span(),
                format!("`deploy.namespace = \"{v}\"` is not a Kubernetes namespace name: use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"),
            ));
        }
        deploy.namespace = ns.into_inner();
    }
    if let Some(cpu) = raw.cpu {
        check_cpu(cpu.get_ref()).map_err(|m| (cpu.span(), format!("`deploy.cpu`: {m}")))?;
        deploy.cpu = cpu.into_inner();
    }
    if let Some(memory) = raw.memory {
        check_memory(memory.get_ref())
            .map_err(|m| (memory.span(), format!("`deploy.memory`: {m}")))?;
        deploy.memory = memory.into_inner();
    }
    if let Some(ttl) = raw.ttl_seconds_after_finished {
        if *ttl.get_ref() > 365 * 24 * 3600 {
            return Err((
                ttl.span(),
                format!(
                    "`deploy.ttl_seconds_after_finished = {}` is over a year: use at most 31536000",
                    ttl.get_ref()
                ),
            ));
        }
        deploy.ttl_seconds_after_finished = ttl.into_inner();
    }
    if let Some(size) = raw.tmp_size_limit {
        check_memory(size.get_ref())
            .map_err(|m| (size.span(), format!("`deploy.tmp_size_limit`: {m}")))?;
        deploy.tmp_size_limit = size.into_inner();
    }
    if let Some(storage) = raw.ephemeral_storage {
        check_memory(storage.get_ref())
            .map_err(|m| (storage.span(), format!("`deploy.ephemeral_storage`: {m}")))?;
        deploy.ephemeral_storage = storage.into_inner();
    }
    Ok(deploy)
}

/// A Dockerfile stage name as `FROM ... AS <name>` takes it.
fn check_stage_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err("is not a Dockerfile stage name: use the name of a `FROM ... AS <name>` line (a letter, then letters, digits, `_`, `-`, `.`)".to_string())
    }
}

fn check_relative(p: &str) -> Result<(), String> {
    let path = Path::new(p);
    if p.is_empty() || path.is_absolute() {
        return Err(format!(
            "`{p}` must be a path relative to the repository root"
        ));
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("`{p}` must stay inside the repository (no `..`)"));
    }
    Ok(())
}

/// A path [`check_relative`] accepts that names something inside the repository, not its
/// root; as [`normal`] writes it.
fn inside_path(p: &str) -> Result<String, String> {
    check_relative(p)?;
    let normal = normal(p);
    if normal.is_empty() {
        return Err(format!(
            "`{p}` is the repository root: name a file or folder inside it"
        ));
    }
    Ok(normal)
}

/// A relative path as Krobs writes it in paths and messages: `/`-separated, without `.`,
/// empty or trailing parts (`tools/sh/`, `./tools//sh` -> `tools/sh`), so that no `//` reaches
/// the manifest.
pub fn normal(p: &str) -> String {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(part) => Some(part.to_string_lossy()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// toml's messages can span lines; errors here are one line.
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    registry: RawRegistry,
    repository: Option<Spanned<String>>,
    languages_dir: Option<Spanned<String>>,
    build: Option<RawBuild>,
    manifest: Option<RawManifest>,
    deploy: Option<RawDeploy>,
    #[serde(default)]
    languages: BTreeMap<Spanned<String>, RawLanguage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    kind: Spanned<String>,
    account_id: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    create_repositories: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    concurrency: Option<Spanned<usize>>,
    platform: Option<Spanned<String>>,
    #[serde(default)]
    build_args: BTreeMap<String, String>,
    network: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    path: Option<Spanned<String>>,
    repository: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeploy {
    monitor_url: Option<Spanned<String>>,
    namespace: Option<Spanned<String>>,
    cpu: Option<Spanned<String>>,
    memory: Option<Spanned<String>>,
    ttl_seconds_after_finished: Option<Spanned<u64>>,
    tmp_size_limit: Option<Spanned<String>>,
    ephemeral_storage: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLanguage {
    enabled: Option<bool>,
    path: Option<Spanned<String>>,
    #[serde(default)]
    build_args: BTreeMap<String, String>,
    #[serde(default)]
    extra_inputs: Vec<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    comment: Option<Spanned<String>>,
    image_scripts_dir: Option<String>,
    target: Option<Spanned<String>>,
    syntax_check: Option<Spanned<Vec<String>>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("krobs.toml"), Path::new("/repo")).map_err(|e| e.to_string())
    }

    const ECR: &str =
        "[registry]\nkind = \"ecr\"\naccount_id = \"123456789012\"\nregion = \"eu-west-1\"\n";

    #[test]
    fn ecr_host_is_derived_unless_overridden() {
        let c = parse(ECR).unwrap();
        assert_eq!(
            c.registry.host(),
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
        );
        assert_eq!(c.repository_for("python"), "krobs/python");
        assert_eq!(c.build, BuildConfig::default());
        let c = parse(&format!("{ECR}host = \"127.0.0.1:5000\"\n")).unwrap();
        assert_eq!(c.registry.host(), "127.0.0.1:5000");
    }

    #[test]
    fn language_overrides_are_read() {
        let c = parse(&format!(
            "{ECR}[languages.python]\ncommand = [\"python3\", \"-u\", \"{{script}}\"]\nbuild_args = {{ BASE_IMAGE = \"x\" }}\nextra_inputs = [\"shared/\"]\n"
        ))
        .unwrap();
        let py = &c.languages["python"];
        assert_eq!(
            py.command.as_deref().unwrap(),
            ["python3", "-u", "{script}"]
        );
        assert_eq!(py.build_args["BASE_IMAGE"], "x");
        assert_eq!(py.extra_inputs, ["shared"]);
    }

    #[test]
    fn a_language_can_be_disabled() {
        let c = parse(&format!("{ECR}[languages.ruby]\nenabled = false\n")).unwrap();
        assert!(!c.is_enabled("ruby"));
        assert!(c.is_enabled("python"));
        assert!(parse(ECR).unwrap().is_enabled("ruby"));
        assert_eq!(
            parse(&format!("{ECR}[languages.ruby]\nenabled = \"no\"\n")).unwrap_err(),
            "krobs.toml:6:11: invalid type: string \"no\", expected a boolean"
        );
    }

    #[test]
    fn the_build_network_is_read_and_checked() {
        assert_eq!(parse(ECR).unwrap().build.network, None);
        let c = parse(&format!("{ECR}[build]\nnetwork = \"host\"\n")).unwrap();
        assert_eq!(c.build.network.as_deref(), Some("host"));
        assert_eq!(
            parse(&format!("{ECR}[build]\nnetwork = \"container:x\"\n")).unwrap_err(),
            "krobs.toml:6:11: `network = \"container:x\"` is not a Docker network name: use `host`, `none` or the name of a network of the Engine"
        );
    }

    #[test]
    fn target_and_syntax_check_are_read_and_checked() {
        let c = parse(&format!(
            "{ECR}[languages.scala]\ntarget = \"jre\"\nsyntax_check = [\"scalac\", \"{{script}}\"]\n"
        ))
        .unwrap();
        assert_eq!(c.languages["scala"].target.as_deref(), Some("jre"));
        assert_eq!(
            c.languages["scala"].syntax_check.as_deref().unwrap(),
            ["scalac", "{script}"]
        );
        assert_eq!(
            parse(&format!("{ECR}[languages.scala]\ntarget = \"1 jre\"\n")).unwrap_err(),
            "krobs.toml:6:10: `languages.scala.target = \"1 jre\"` is not a Dockerfile stage name: use the name of a `FROM ... AS <name>` line (a letter, then letters, digits, `_`, `-`, `.`)"
        );
        assert_eq!(
            parse(&format!("{ECR}[languages.x]\nsyntax_check = [\"sh\", \"-n\"]\n")).unwrap_err(),
            "krobs.toml:6:16: `languages.x.syntax_check` never mentions `{script}`: add it where the script path goes"
        );
        assert_eq!(
            parse(&format!("{ECR}[languages.x]\nsyntax_check = []\n")).unwrap_err(),
            "krobs.toml:6:16: `languages.x.syntax_check` is empty: give the program and `{script}`, e.g. `[\"bash\", \"-n\", \"{script}\"]`"
        );
    }

    #[test]
    fn tmp_and_ephemeral_storage_are_quantities_with_defaults() {
        let config = parse(ECR).unwrap();
        assert_eq!(config.deploy.tmp_size_limit, "1Gi");
        assert_eq!(config.deploy.ephemeral_storage, "1Gi");
        let config = parse(&format!(
            "{ECR}[deploy]\ntmp_size_limit = \"512Mi\"\nephemeral_storage = \"2Gi\"\n"
        ))
        .unwrap();
        assert_eq!(config.deploy.tmp_size_limit, "512Mi");
        assert_eq!(config.deploy.ephemeral_storage, "2Gi");
        assert_eq!(
            parse(&format!("{ECR}[deploy]\ntmp_size_limit = \"lots\"\n")).unwrap_err(),
            "krobs.toml:6:18: `deploy.tmp_size_limit`: `lots` is not a memory quantity: use bytes with a suffix, e.g. `512Mi` or `1Gi`"
        );
        assert_eq!(
            parse(&format!("{ECR}[deploy]\nephemeral_storage = \"1gb\"\n")).unwrap_err(),
            "krobs.toml:6:21: `deploy.ephemeral_storage`: `1gb` is not a memory quantity: use bytes with a suffix, e.g. `512Mi` or `1Gi`"
        );
    }

    #[test]
    fn the_monitor_url_is_plain_http_that_krobs_run_can_post_to() {
        let deploy = |url: &str| parse(&format!("{ECR}[deploy]\nmonitor_url = \"{url}\"\n"));
        for good in [
            "http://krobs-monitor.platform.svc.cluster.local:8080",
            "http://10.0.0.1/events?source=krobs",
            "http://[::1]:9000/",
        ] {
            assert_eq!(
                deploy(good).unwrap().deploy.monitor_url.as_deref(),
                Some(good)
            );
        }
        assert_eq!(
            deploy("https://monitor:8443").unwrap_err(),
            "krobs.toml:6:15: `deploy.monitor_url = \"https://monitor:8443\"` must be `http://`: krobs-run speaks plain HTTP to the monitor inside the cluster; put TLS in the mesh or a sidecar"
        );
        assert_eq!(
            deploy("http://mon itor").unwrap_err(),
            "krobs.toml:6:15: `deploy.monitor_url = \"http://mon itor\"` is not an http:// URL: use e.g. `http://krobs-monitor.platform:8080`"
        );
        for bad in [
            "http://monitor:port",
            "http://monitor:8080#frag",
            "http://mon%69tor",
        ] {
            assert!(
                deploy(bad)
                    .unwrap_err()
                    .contains("is not a URL krobs-run can post to"),
                "{bad}"
            );
        }
    }

    #[test]
    fn errors_have_line_and_column() {
        assert_eq!(
            parse(&format!("{ECR}[build]\nconcurency = 2\n")).unwrap_err(),
            "krobs.toml:6:1: unknown field `concurency`, expected one of `concurrency`, `platform`, `build_args`, `network`"
        );
        assert_eq!(
            parse(&format!("{ECR}[build]\nconcurrency = \"two\"\n")).unwrap_err(),
            "krobs.toml:6:15: invalid type: string \"two\", expected usize"
        );
        assert_eq!(
            parse("[registry]\nkind = \"gcr\"\n").unwrap_err(),
            "krobs.toml:2:8: unknown registry kind `gcr`: use `ecr` or `oci`"
        );
    }
}
