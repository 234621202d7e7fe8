//! The distribution API calls the pipeline makes: manifest `HEAD`s to look tags up (which also
//! checks the credentials before any build) and verify pushes, and a manifest `GET` + `PUT` to
//! add a tag. Basic auth is sent up front; a `Bearer` challenge is answered through its token
//! realm.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};

use super::retry::{parse_retry_after, retry, RetryPolicy, Transient};
use super::{is_loopback, Credentials, MANIFEST_ACCEPT};

/// What the registry holds under a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Present { digest: String },
    Missing,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry `{registry}` refused {who}: {hint}")]
    Unauthorized {
        registry: String,
        who: String,
        hint: String,
    },
    #[error("registry `{registry}` is unreachable after {attempts} attempt{}: {cause}", plural(*attempts))]
    Unreachable {
        registry: String,
        attempts: usize,
        cause: String,
    },
    #[error("registry `{registry}` answered {status} to `{method} {path}` after {attempts} attempt{}", plural(*attempts))]
    Status {
        registry: String,
        method: String,
        path: String,
        status: StatusCode,
        attempts: usize,
    },
    #[error(
        "registry `{registry}` answered `{method} {path}` without a `Docker-Content-Digest` header"
    )]
    NoDigest {
        registry: String,
        method: String,
        path: String,
    },
    #[error("registry `{registry}` answered `{method} {path}` without a `{header}` header")]
    NoHeader {
        registry: String,
        method: String,
        path: String,
        header: &'static str,
    },
    #[error("cannot set up an HTTP client: {0}")]
    Client(String),
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// One failed attempt, before the retry decision.
#[derive(Debug)]
enum Attempt {
    Http(reqwest::Error),
    Status(StatusCode, Option<Duration>),
    Unauthorized(Option<String>),
}

impl Transient for Attempt {
    fn is_transient(&self) -> bool {
        match self {
            Attempt::Http(e) => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
            Attempt::Status(s, _) => *s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error(),
            Attempt::Unauthorized(_) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Attempt::Status(_, after) => *after,
            _ => None,
        }
    }
}

/// What an upload sends: bytes at hand, or a file read anew, a chunk at a time, by each
/// attempt (so that a big layer is never held in memory).
#[derive(Debug, Clone)]
pub enum BlobBody {
    Bytes(Bytes),
    File { file: Arc<File>, size: u64 },
}

impl From<Bytes> for BlobBody {
    fn from(bytes: Bytes) -> BlobBody {
        BlobBody::Bytes(bytes)
    }
}

/// How much of a file one read sends.
const FILE_CHUNK: u64 = 1 << 20;

impl BlobBody {
    /// A fresh request body: a file is read from its start, off the async threads.
    fn request_body(&self) -> reqwest::Body {
        match self {
            BlobBody::Bytes(bytes) => bytes.clone().into(),
            BlobBody::File { file, size } => {
                let (file, size) = (file.clone(), *size);
                let chunks = futures_util::stream::try_unfold(0u64, move |offset| {
                    let file = file.clone();
                    async move {
                        if offset >= size {
                            return Ok(None);
                        }
                        let len = FILE_CHUNK.min(size - offset);
                        let chunk = tokio::task::spawn_blocking(move || {
                            let mut buf = vec![0; len as usize];
                            file.read_exact_at(&mut buf, offset).map(|()| buf)
                        })
                        .await
                        .map_err(std::io::Error::other)??;
                        let frame = http_body::Frame::data(Bytes::from(chunk));
                        Ok::<_, std::io::Error>(Some((frame, offset + len)))
                    }
                });
                reqwest::Body::wrap(http_body_util::StreamBody::new(chunks))
            }
        }
    }
}

/// How long an upload of a file may take: the client's minute, and a second more per MiB (an
/// upload at 1 MiB/s or faster is not cut short).
fn upload_timeout(size: u64) -> Duration {
    REQUEST_TIMEOUT + Duration::from_secs(size >> 20)
}

/// The time limit of one request with a body at hand.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One API call, replayable across retries.
struct Call {
    method: Method,
    path: String,
    repository: Option<String>,
    /// Needs push rights (for a bearer token's scope).
    push: bool,
    body: Option<(String, BlobBody)>,
}

impl Call {
    fn new(method: Method, path: String, repository: Option<&str>) -> Call {
        Call {
            method,
            path,
            repository: repository.map(str::to_string),
            push: false,
            body: None,
        }
    }
}

/// A manifest as the registry serves it.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// `Content-Type`.
    pub media_type: Option<String>,
    /// `Docker-Content-Digest`, when the registry sends it.
    pub digest: Option<String>,
    pub body: Bytes,
}

/// A successful answer.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// How a blob came to be in a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    /// It was there already (`HEAD`).
    Present,
    /// Mounted from another repository of the registry, without sending the bytes.
    Mounted,
    Uploaded,
}

fn digest_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A client for one registry host.
pub struct RegistryClient {
    host: String,
    base: String,
    credentials: Option<Credentials>,
    http: reqwest::Client,
    policy: RetryPolicy,
    /// Bearer tokens by scope, when the registry asks for them.
    tokens: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl RegistryClient {
    pub fn new(
        host: &str,
        credentials: Option<Credentials>,
        policy: RetryPolicy,
    ) -> Result<RegistryClient, RegistryError> {
        let scheme = if is_loopback(host) { "http" } else { "https" };
        super::install_tls_provider();
        let mut builder = reqwest::Client::builder();
        if scheme == "http" {
            // No TLS here: spare loading the system's certificate store.
            builder = builder.tls_certs_only([]);
        }
        let http = builder
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("krobs-build/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RegistryError::Client(e.to_string()))?;
        Ok(RegistryClient {
            host: host.to_string(),
            base: format!("{scheme}://{host}"),
            credentials,
            http,
            policy,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// Looks a tag (or digest) up with one manifest `HEAD`.
    pub async fn lookup(&self, repository: &str, reference: &str) -> Result<Lookup, RegistryError> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let call = Call::new(Method::HEAD, path.clone(), Some(repository));
        match self.request(&call).await? {
            None => Ok(Lookup::Missing),
            Some(reply) => digest_of(&reply.headers)
                .map(|digest| Lookup::Present { digest })
                .ok_or_else(|| RegistryError::NoDigest {
                    registry: self.host.clone(),
                    method: "HEAD".into(),
                    path,
                }),
        }
    }

    /// Gives the manifest `digest` one more tag, registry-side: the manifest is read and put
    /// back under `tag`, byte for byte, so nothing is pulled or pushed again.
    pub async fn put_tag(
        &self,
        repository: &str,
        digest: &str,
        tag: &str,
    ) -> Result<(), RegistryError> {
        let get = Call::new(
            Method::GET,
            format!("/v2/{repository}/manifests/{digest}"),
            Some(repository),
        );
        let reply = self
            .request(&get)
            .await?
            .ok_or_else(|| self.status_error(&get, StatusCode::NOT_FOUND))?;
        let content_type = reply
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/vnd.docker.distribution.manifest.v2+json")
            .to_string();
        let mut put = Call::new(
            Method::PUT,
            format!("/v2/{repository}/manifests/{tag}"),
            Some(repository),
        );
        put.push = true;
        put.body = Some((content_type, reply.body.into()));
        let reply = self
            .request(&put)
            .await?
            .ok_or_else(|| self.status_error(&put, StatusCode::NOT_FOUND))?;
        match digest_of(&reply.headers) {
            Some(d) if d != digest => Err(self.status_error(&put, StatusCode::CONFLICT)),
            _ => Ok(()),
        }
    }

    /// Reads a manifest: its media type, bytes and the digest the registry names it by (the
    /// sha256 of the bytes when the registry does not say); `None` when the reference is unknown.
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Fetched>, RegistryError> {
        let call = Call::new(
            Method::GET,
            format!("/v2/{repository}/manifests/{reference}"),
            Some(repository),
        );
        Ok(self.request(&call).await?.map(|reply| Fetched {
            media_type: header(&reply.headers, CONTENT_TYPE.as_str()),
            digest: digest_of(&reply.headers),
            body: reply.body,
        }))
    }

    /// Reads a blob; `None` when the registry does not have it.
    pub async fn get_blob(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<Bytes>, RegistryError> {
        let call = Call::new(
            Method::GET,
            format!("/v2/{repository}/blobs/{digest}"),
            Some(repository),
        );
        Ok(self.request(&call).await?.map(|reply| reply.body))
    }

    /// Whether the repository holds the blob (`HEAD`), so that it need not be uploaded again.
    pub async fn has_blob(&self, repository: &str, digest: &str) -> Result<bool, RegistryError> {
        let mut call = Call::new(
            Method::HEAD,
            format!("/v2/{repository}/blobs/{digest}"),
            Some(repository),
        );
        // The push scope, which the upload that may follow needs anyway.
        call.push = true;
        Ok(self.request(&call).await?.is_some())
    }

    /// Uploads a small blob in one piece (`POST` for an upload location, then one `PUT` with
    /// the bytes and their digest), unless the repository already has it.
    pub async fn put_blob(
        &self,
        repository: &str,
        digest: &str,
        bytes: Bytes,
    ) -> Result<(), RegistryError> {
        self.push_blob(repository, digest, bytes.into(), None)
            .await?;
        Ok(())
    }

    /// Puts a blob into `repository`: nothing when a `HEAD` finds it; else a
    /// cross-repository mount from `mount_from` when given (`POST ?mount=&from=`), which a
    /// registry that cannot mount answers with an upload location; else one upload (a
    /// monolithic `PUT`, whose body a file streams).
    pub async fn push_blob(
        &self,
        repository: &str,
        digest: &str,
        body: BlobBody,
        mount_from: Option<&str>,
    ) -> Result<BlobPush, RegistryError> {
        if self.has_blob(repository, digest).await? {
            return Ok(BlobPush::Present);
        }
        let path = match mount_from {
            Some(from) => format!("/v2/{repository}/blobs/uploads/?mount={digest}&from={from}"),
            None => format!("/v2/{repository}/blobs/uploads/"),
        };
        let mut start = Call::new(Method::POST, path, Some(repository));
        start.push = true;
        let reply = self
            .request(&start)
            .await?
            .ok_or_else(|| self.status_error(&start, StatusCode::NOT_FOUND))?;
        if reply.status == StatusCode::CREATED {
            return Ok(BlobPush::Mounted);
        }
        let location =
            header(&reply.headers, "location").ok_or_else(|| RegistryError::NoHeader {
                registry: self.host.clone(),
                method: "POST".into(),
                path: start.path.clone(),
                header: "Location",
            })?;
        // A relative location is on this host; an absolute one is used as it is.
        let separator = if location.contains('?') { '&' } else { '?' };
        let mut put = Call::new(
            Method::PUT,
            format!("{location}{separator}digest={digest}"),
            Some(repository),
        );
        put.push = true;
        put.body = Some(("application/octet-stream".to_string(), body));
        self.request(&put)
            .await?
            .ok_or_else(|| self.status_error(&put, StatusCode::NOT_FOUND))?;
        Ok(BlobPush::Uploaded)
    }

    /// Puts a manifest under `reference` (a tag, or its own digest); returns the digest the
    /// registry names it by, which must be `digest`.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
        digest: &str,
    ) -> Result<(), RegistryError> {
        let mut put = Call::new(
            Method::PUT,
            format!("/v2/{repository}/manifests/{reference}"),
            Some(repository),
        );
        put.push = true;
        put.body = Some((media_type.to_string(), bytes.into()));
        let reply = match self.request(&put).await {
            // Runs uploading the same blob at once: the reference registry can refuse a
            // manifest naming it (400, blob unknown) until the other upload has settled.
            Err(RegistryError::Status {
                status: StatusCode::BAD_REQUEST,
                ..
            }) => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                self.request(&put).await
            }
            other => other,
        }?
        .ok_or_else(|| self.status_error(&put, StatusCode::NOT_FOUND))?;
        match digest_of(&reply.headers) {
            Some(d) if d != digest => Err(self.status_error(&put, StatusCode::CONFLICT)),
            _ => Ok(()),
        }
    }

    /// An answer that is not the one expected (after a first attempt, unless told).
    fn status_error(&self, call: &Call, status: StatusCode) -> RegistryError {
        self.status_error_after(call, status, 1)
    }

    fn status_error_after(
        &self,
        call: &Call,
        status: StatusCode,
        attempts: usize,
    ) -> RegistryError {
        RegistryError::Status {
            registry: self.host.clone(),
            method: call.method.to_string(),
            path: call.path.clone(),
            status,
            attempts,
        }
    }

    /// Sends one call with retries; `Ok(None)` is a 404.
    async fn request(&self, call: &Call) -> Result<Option<Reply>, RegistryError> {
        let url = if call.path.starts_with("http://") || call.path.starts_with("https://") {
            call.path.clone()
        } else {
            format!("{}{}", self.base, call.path)
        };
        let (result, attempts) = retry(self.policy, || self.attempt(call, &url)).await;
        match result {
            Ok(r) => Ok(r),
            Err(Attempt::Unauthorized(challenge)) => Err(self.unauthorized(challenge)),
            Err(Attempt::Http(e)) => Err(RegistryError::Unreachable {
                registry: self.host.clone(),
                attempts,
                cause: error_chain(&e),
            }),
            Err(Attempt::Status(status, _)) => Err(self.status_error_after(call, status, attempts)),
        }
    }

    async fn attempt(&self, call: &Call, url: &str) -> Result<Option<Reply>, Attempt> {
        let scope = call.repository.as_ref().map(|r| {
            format!(
                "repository:{r}:{}",
                if call.push { "pull,push" } else { "pull" }
            )
        });
        let bearer = scope
            .as_ref()
            .and_then(|s| self.tokens.lock().unwrap().get(s).cloned());
        let response = self.send(call, url, bearer.as_deref()).await?;
        tracing::debug!(method = %call.method, url, status = %response.status(), "registry");
        if response.status() == StatusCode::UNAUTHORIZED {
            let challenge = header(response.headers(), WWW_AUTHENTICATE.as_str());
            if let Some(c) = challenge.as_deref().filter(|c| c.starts_with("Bearer ")) {
                if bearer.is_none() {
                    let token = self.token(c, scope.as_deref()).await?;
                    if let Some(s) = &scope {
                        self.tokens.lock().unwrap().insert(s.clone(), token.clone());
                    }
                    let retried = self.send(call, url, Some(&token)).await?;
                    return Self::outcome(retried).await;
                }
            }
            return Err(Attempt::Unauthorized(challenge));
        }
        Self::outcome(response).await
    }

    async fn outcome(response: reqwest::Response) -> Result<Option<Reply>, Attempt> {
        match response.status() {
            s if s.is_success() => {
                let headers = response.headers().clone();
                let body = response.bytes().await.map_err(Attempt::Http)?;
                Ok(Some(Reply {
                    status: s,
                    headers,
                    body,
                }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Attempt::Unauthorized(header(
                response.headers(),
                WWW_AUTHENTICATE.as_str(),
            ))),
            s => Err(Attempt::Status(
                s,
                header(response.headers(), RETRY_AFTER.as_str())
                    .and_then(|v| parse_retry_after(&v)),
            )),
        }
    }

    async fn send(
        &self,
        call: &Call,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<reqwest::Response, Attempt> {
        let mut req = self
            .http
            .request(call.method.clone(), url)
            .header(ACCEPT, MANIFEST_ACCEPT);
        if let Some((content_type, body)) = &call.body {
            req = req
                .header(CONTENT_TYPE, content_type)
                .body(body.request_body());
            if let BlobBody::File { size, .. } = body {
                // A stream has no length of its own: said up front, it goes as one piece
                // rather than chunked, which not every registry takes.
                req = req
                    .header(CONTENT_LENGTH, *size)
                    .timeout(upload_timeout(*size));
            }
        }
        req = match (bearer, &self.credentials) {
            (Some(token), _) => req.header(AUTHORIZATION, format!("Bearer {token}")),
            (None, Some(c)) => req.basic_auth(&c.username, Some(c.password.expose())),
            (None, None) => req,
        };
        req.send().await.map_err(Attempt::Http)
    }

    /// Answers a `Bearer realm=...,service=...` challenge with a token from its realm.
    async fn token(&self, challenge: &str, scope: Option<&str>) -> Result<String, Attempt> {
        let params = challenge_params(challenge);
        let Some(realm) = params.get("realm") else {
            return Err(Attempt::Unauthorized(Some(challenge.to_string())));
        };
        let Ok(mut url) = reqwest::Url::parse(realm) else {
            return Err(Attempt::Unauthorized(Some(challenge.to_string())));
        };
        if let Some(service) = params.get("service") {
            url.query_pairs_mut().append_pair("service", service);
        }
        if let Some(scope) = scope.or(params.get("scope").map(String::as_str)) {
            url.query_pairs_mut().append_pair("scope", scope);
        }
        let mut req = self.http.get(url);
        if let Some(c) = &self.credentials {
            req = req.basic_auth(&c.username, Some(c.password.expose()));
        }
        let response = req.send().await.map_err(Attempt::Http)?;
        if !response.status().is_success() {
            return match Self::outcome(response).await {
                Err(e) => Err(e),
                Ok(_) => Err(Attempt::Unauthorized(None)),
            };
        }
        let bytes = response.bytes().await.map_err(Attempt::Http)?;
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| Attempt::Unauthorized(None))?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or(Attempt::Unauthorized(None))
    }

    fn unauthorized(&self, _challenge: Option<String>) -> RegistryError {
        match &self.credentials {
            Some(c) => RegistryError::Unauthorized {
                registry: self.host.clone(),
                who: format!("the credentials of user `{}` (from {})", c.username, c.source),
                hint: if c.source.starts_with("ECR") {
                    "check the AWS identity's ECR permissions".to_string()
                } else {
                    "check the user name and password".to_string()
                },
            },
            None => RegistryError::Unauthorized {
                registry: self.host.clone(),
                who: "anonymous access".to_string(),
                hint: "set `KROBS_REGISTRY_USERNAME` and `KROBS_REGISTRY_PASSWORD`, or `docker login` to it".to_string(),
            },
        }
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `Bearer realm="https://auth",service="reg",scope="x"` -> its parameters.
fn challenge_params(challenge: &str) -> HashMap<String, String> {
    let rest = challenge.split_once(' ').map_or("", |(_, r)| r);
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_string();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                value.push(c);
            }
            // Skip to the comma.
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    chars.next();
                    break;
                }
                chars.next();
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.insert(key.to_ascii_lowercase(), value.trim().to_string());
    }
    params
}

/// An error and its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let p = challenge_params(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let p = challenge_params("Basic realm=Registry");
        assert_eq!(p["realm"], "Registry");
    }
}
