//! Names checked against the grammar of the place they end up: the OCI distribution
//! reference grammar for registry hosts and repository paths, Kubernetes object names for the
//! Jobs and CronJobs named after scripts. Each check says which rule failed; `suggest` offers a
//! valid spelling.

/// Longest image name (host + `/` + repository path) the reference grammar allows.
pub const MAX_NAME: usize = 255;
/// Longest CronJob name (Kubernetes appends 11 characters to name its Jobs).
pub const MAX_CRONJOB_NAME: usize = 52;
/// Longest Job name (it becomes a label value).
pub const MAX_JOB_NAME: usize = 63;
/// Length of the random suffix `render` gives every Job name (`-` and 5 characters), so that
/// each run is a new Job.
pub const JOB_SUFFIX_LEN: usize = 5;

/// A registry host: `domain[:port]` per the OCI reference grammar; no scheme, no path, no
/// `user:password@`. The message never repeats the host (it may hold a password).
pub fn check_host(host: &str) -> Result<(), String> {
    if host.contains("://") {
        return Err("must not have a scheme (`https://`): give the host alone, e.g. `registry.example.com:5000`".into());
    }
    if host.contains('@') {
        return Err("must not hold credentials (`user:password@`): give the host alone and pass credentials through `KROBS_REGISTRY_USERNAME`/`KROBS_REGISTRY_PASSWORD` or `docker login`".into());
    }
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        // [IPv6]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return Err(bad_host());
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(bad_host());
        }
        match after {
            "" => (None, None),
            p => match p.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err(bad_host()),
            },
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(name) = name {
        if name.is_empty() || !name.split('.').all(is_domain_component) {
            return Err(bad_host());
        }
    }
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_host());
        }
    }
    Ok(())
}

fn bad_host() -> String {
    "is not a registry host: use letters, digits, `-` and `.`, an optional `:port`, and no path (e.g. `registry.example.com:5000`)".into()
}

fn is_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
}

/// One path component of an OCI repository name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A repository path (without host, tag or digest) per the OCI reference grammar.
pub fn check_repository(path: &str) -> Result<(), String> {
    if path.contains('@') {
        return Err("must not name a digest (`@sha256:...`): Krobs tags the images itself".into());
    }
    if path.contains(':') {
        return Err("must not name a tag (`:tag`): Krobs tags the images itself".into());
    }
    if !path.split('/').all(is_path_component) {
        return Err("is not an image repository path: use `/`-separated parts of lowercase letters and digits, joined by `.`, `_`, `__` or `-`".into());
    }
    Ok(())
}

/// A language name: it is a repository path part and starts every Job name, so lowercase
/// letters and digits joined by `-` or `_`.
pub fn check_language(name: &str) -> Result<(), String> {
    if is_path_component(name) && !name.contains('.') {
        Ok(())
    } else {
        Err(format!(
            "language name `{name}` is not valid: it names an image repository and Kubernetes Jobs, so use lowercase letters and digits joined by `-` or `_`{}",
            suggestion(name)
        ))
    }
}

/// The Kubernetes name of a script's Job or CronJob: `krobs-` and its id with `/` and `_`
/// made `-` (`python/expunge_deletes` -> `krobs-python-expunge-deletes`). A Job's gets a
/// run suffix when it is rendered.
pub fn job_name(id: &str) -> String {
    format!("krobs-{}", id.replace(['/', '_'], "-"))
}

/// The longest [`job_name`] of a script: 52 for a CronJob (the controller appends 11
/// characters to name its Jobs), 63 for a Job less its run suffix.
pub fn max_job_name(cron: bool) -> usize {
    if cron {
        MAX_CRONJOB_NAME
    } else {
        MAX_JOB_NAME - 1 - JOB_SUFFIX_LEN
    }
}

/// The characters of an RFC 1123 label: lowercase letters, digits and `-`, starting and
/// ending with a letter or digit (its length is the caller's rule).
fn has_label_shape(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && is_alnum(b[0])
        && is_alnum(b[b.len() - 1])
        && b.iter().all(|x| is_alnum(*x) || *x == b'-')
}

/// A DNS-1123 label of at most 63 characters, as Kubernetes names namespaces.
pub fn is_dns_label(name: &str) -> bool {
    name.len() <= MAX_JOB_NAME && has_label_shape(name)
}

/// A name the Docker Engine takes for a network (`host`, `none`, `my-net`): what the Engine's
/// own check allows, `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128 characters.
pub fn is_docker_network(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// A Job or CronJob name: an RFC 1123 label of at most `max` characters.
pub fn check_job_name(name: &str, max: usize) -> Result<(), String> {
    let b = name.as_bytes();
    if !has_label_shape(name) {
        return Err(format!(
            "its Kubernetes name `{name}` is not an RFC 1123 label: use lowercase letters, digits and `-`, starting and ending with a letter or digit"
        ));
    }
    if b.len() > max {
        return Err(format!(
            "its Kubernetes name `{name}` is {} characters long, more than the {max} it may have (Kubernetes allows 52 for a CronJob, 63 for a Job less its run suffix): shorten the file name",
            b.len()
        ));
    }
    Ok(())
}

/// `" (e.g. `x`)"` with a valid spelling of `name`, or nothing when none can be made.
pub fn suggestion(name: &str) -> String {
    let s = suggest(name);
    if s.is_empty() || s == name {
        String::new()
    } else {
        format!(" (e.g. `{s}`)")
    }
}

/// A valid name close to `name`: lowercase, other characters made `-`, runs collapsed, ends
/// trimmed.
pub fn suggest(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end_matches('-').to_string()
}

/// The candidate nearest to `id` by edit distance (ties: the first in order).
pub fn closest<'a>(id: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates.min_by_key(|c| strsim::damerau_levenshtein(id, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "registry.example.com",
            "registry.example.com:5000",
            "127.0.0.1:5000",
            "localhost",
            "[::1]:5000",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        ] {
            check_host(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "https://r.example.com",
            "u:p@r.example.com",
            "r.example.com/x",
            "-r.example.com",
            "r..example.com",
            "r example.com",
            "r.example.com:",
            "r.example.com:50a",
            "",
        ] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
        assert!(!check_host("u:hunter2@r").unwrap_err().contains("hunter2"));
    }

    #[test]
    fn repositories_and_languages() {
        for ok in ["krobs/python", "a.b/c__d/e---f", "x"] {
            check_repository(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "Krobs/x",
            "a//b",
            "a/",
            "/a",
            "a/.b",
            "a/b:tag",
            "a@sha256:00",
            "a_-b",
            "a___b",
            "..",
            "a b",
        ] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
        assert!(check_language("node-js").is_ok());
        assert_eq!(
            check_language("My Lang").unwrap_err(),
            "language name `My Lang` is not valid: it names an image repository and Kubernetes Jobs, so use lowercase letters and digits joined by `-` or `_` (e.g. `my-lang`)"
        );
    }

    #[test]
    fn job_names() {
        assert_eq!(
            job_name("python/ops/drain_node"),
            "krobs-python-ops-drain-node"
        );
        assert_eq!(max_job_name(true), 52);
        assert_eq!(max_job_name(false), 57);
        assert!(check_job_name("python-a", MAX_JOB_NAME).is_ok());
        assert!(check_job_name("python-a-", MAX_JOB_NAME).is_err());
        assert!(check_job_name(&"a".repeat(53), MAX_CRONJOB_NAME).is_err());
        assert!(check_job_name(&"a".repeat(53), MAX_JOB_NAME).is_ok());
    }
}
