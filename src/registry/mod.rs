//! Registries: credentials (ECR or any OCI registry) and the distribution API calls the
//! pipeline needs: one manifest `HEAD` per lookup, no listing, no pull.

pub mod client;
pub mod credentials;
pub mod ecr;
pub mod retry;

pub use client::{BlobBody, BlobPush, Fetched, Lookup, RegistryClient, RegistryError};
pub use credentials::{Credentials, Secret};

use bytes::Bytes;

use crate::input::config::RegistryConfig;
use retry::RetryPolicy;

/// Why the configured registry could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Aws(#[from] ecr::AwsError),
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The configured registry, opened the same way for the images and the release: an ECR token
/// (one per run), or the OCI credentials at hand. The ECR client is returned so that the
/// images' repositories can be checked through it.
pub async fn connect(
    registry: &RegistryConfig,
) -> Result<(RegistryClient, Option<ecr::Ecr>), OpenError> {
    let (credentials, ecr) = match registry {
        RegistryConfig::Ecr {
            account_id, region, ..
        } => {
            let ecr = ecr::Ecr::connect(account_id, region).await;
            (Some(ecr.credentials().await?), Some(ecr))
        }
        RegistryConfig::Oci { host } => (credentials::for_oci(host)?, None),
    };
    let client = RegistryClient::new(&registry.host(), credentials, RetryPolicy::default())?;
    Ok((client, ecr))
}

/// The distribution API calls the orchestration makes, so that it can run on an in-memory
/// registry in unit tests; [`RegistryClient`] is the real one.
#[allow(async_fn_in_trait)]
pub trait Registry {
    fn host(&self) -> &str;
    fn credentials(&self) -> Option<&Credentials>;
    /// One manifest `HEAD`.
    async fn lookup(&self, repository: &str, reference: &str) -> Result<Lookup, RegistryError>;
    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Fetched>, RegistryError>;
    async fn get_blob(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<Bytes>, RegistryError>;
    async fn push_blob(
        &self,
        repository: &str,
        digest: &str,
        body: BlobBody,
        mount_from: Option<&str>,
    ) -> Result<BlobPush, RegistryError>;
    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
        digest: &str,
    ) -> Result<(), RegistryError>;
    async fn put_tag(&self, repository: &str, digest: &str, tag: &str)
        -> Result<(), RegistryError>;
}

impl Registry for RegistryClient {
    fn host(&self) -> &str {
        RegistryClient::host(self)
    }

    fn credentials(&self) -> Option<&Credentials> {
        RegistryClient::credentials(self)
    }

    async fn lookup(&self, repository: &str, reference: &str) -> Result<Lookup, RegistryError> {
        RegistryClient::lookup(self, repository, reference).await
    }

    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Fetched>, RegistryError> {
        RegistryClient::get_manifest(self, repository, reference).await
    }

    async fn get_blob(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<Bytes>, RegistryError> {
        RegistryClient::get_blob(self, repository, digest).await
    }

    async fn push_blob(
        &self,
        repository: &str,
        digest: &str,
        body: BlobBody,
        mount_from: Option<&str>,
    ) -> Result<BlobPush, RegistryError> {
        RegistryClient::push_blob(self, repository, digest, body, mount_from).await
    }

    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
        digest: &str,
    ) -> Result<(), RegistryError> {
        RegistryClient::put_manifest(self, repository, reference, media_type, bytes, digest).await
    }

    async fn put_tag(
        &self,
        repository: &str,
        digest: &str,
        tag: &str,
    ) -> Result<(), RegistryError> {
        RegistryClient::put_tag(self, repository, digest, tag).await
    }
}

/// Installs the process-wide TLS crypto provider (ring) unless one is: reqwest and the Docker
/// Engine's TLS client take theirs from there.
pub fn install_tls_provider() {
    // An error only means that one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The manifest media types a lookup accepts. Without them the reference registry converts to
/// schema 1 and answers a different digest.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json";

/// Whether a host is a loopback address, reached over plain HTTP as the Docker daemon does.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost" || name.starts_with("127.") || name == "::1"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("123456789012.dkr.ecr.eu-west-1.amazonaws.com"));
        assert!(!is_loopback("registry.example.com:5000"));
    }
}
