//! Registries: credentials (ECR or any OCI registry) and the distribution API calls the
//! pipeline needs: one manifest `HEAD` per lookup, no listing, no pull.

pub mod client;
pub mod credentials;
pub mod ecr;
pub mod retry;

pub use client::{Fetched, Lookup, RegistryClient, RegistryError};
pub use credentials::{Credentials, Secret};

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
