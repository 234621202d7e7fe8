//! Registry credentials, kept in a type that never prints its secret.

use std::fmt;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// A secret string: `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A user name and password for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
    /// Where they came from, for messages (`KROBS_REGISTRY_USERNAME`, `ECR`, a file).
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("`KROBS_REGISTRY_USERNAME` is set but `KROBS_REGISTRY_PASSWORD` is not: set both or neither")]
    HalfSet,
    #[error("cannot read the Docker config `{}`: {cause}; fix it or set `KROBS_REGISTRY_USERNAME` and `KROBS_REGISTRY_PASSWORD`", path.display())]
    DockerConfig { path: PathBuf, cause: String },
}

/// Credentials for an OCI registry: `KROBS_REGISTRY_USERNAME` / `KROBS_REGISTRY_PASSWORD`,
/// else the Docker config file's `auths` entry for the host, else none (anonymous).
pub fn for_oci(host: &str) -> Result<Option<Credentials>, CredentialsError> {
    let user = std::env::var("KROBS_REGISTRY_USERNAME")
        .ok()
        .filter(|u| !u.is_empty());
    let pass = std::env::var("KROBS_REGISTRY_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    match (user, pass) {
        (Some(username), Some(password)) => {
            return Ok(Some(Credentials {
                username,
                password: Secret::new(password),
                source: "KROBS_REGISTRY_USERNAME/KROBS_REGISTRY_PASSWORD".to_string(),
            }))
        }
        (Some(_), None) => return Err(CredentialsError::HalfSet),
        _ => {}
    }
    let path = docker_config_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CredentialsError::DockerConfig {
                path,
                cause: e.to_string(),
            })
        }
    };
    from_docker_config(&text, host)
        .map_err(|cause| CredentialsError::DockerConfig {
            path: path.clone(),
            cause,
        })
        .map(|c| {
            c.map(|mut c| {
                c.source = path.display().to_string();
                c
            })
        })
}

fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".docker/config.json"),
    }
}

/// The `auths` entry for `host` in a Docker config file, by `auth` (base64 `user:password`)
/// or by `username` and `password`.
fn from_docker_config(text: &str, host: &str) -> Result<Option<Credentials>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let entry = auths.iter().find(|(k, _)| {
        let k = k
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        k == host || k.split('/').next() == Some(host)
    });
    let Some((_, entry)) = entry else {
        return Ok(None);
    };
    if let Some(auth) = entry
        .get("auth")
        .and_then(|a| a.as_str())
        .filter(|a| !a.is_empty())
    {
        let decoded = STANDARD
            .decode(auth)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| format!("the `auth` of `{host}` is not base64 of `user:password`"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| format!("the `auth` of `{host}` is not base64 of `user:password`"))?;
        return Ok(Some(Credentials {
            username: username.to_string(),
            password: Secret::new(password),
            source: String::new(),
        }));
    }
    match (
        entry.get("username").and_then(|u| u.as_str()),
        entry.get("password").and_then(|p| p.as_str()),
    ) {
        (Some(u), Some(p)) => Ok(Some(Credentials {
            username: u.to_string(),
            password: Secret::new(p),
            source: String::new(),
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = Credentials {
            username: "u".into(),
            password: Secret::new("hunter2"),
            source: "test".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(format!("{}", c.password), "<redacted>");
        assert_eq!(c.password.expose(), "hunter2");
    }

    #[test]
    fn docker_config_auths() {
        let auth = STANDARD.encode("bob:p~a?s>s");
        let text = format!(r#"{{"auths": {{"https://reg.example:5000": {{"auth": "{auth}"}}}}}}"#);
        let c = from_docker_config(&text, "reg.example:5000")
            .unwrap()
            .unwrap();
        assert_eq!(c.username, "bob");
        assert_eq!(c.password.expose(), "p~a?s>s");
        assert!(from_docker_config(&text, "other:5000").unwrap().is_none());
        assert!(from_docker_config("{}", "x").unwrap().is_none());
        assert!(from_docker_config("nope", "x").is_err());
    }
}
