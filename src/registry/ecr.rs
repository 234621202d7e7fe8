//! AWS ECR: one authorization token per run, and repositories checked (or created) before
//! anything is pushed. Credentials come from the default chain (environment, profile, SSO,
//! web identity for CircleCI OIDC); endpoint overrides from the standard `AWS_ENDPOINT_URL`
//! variables.

use aws_config::BehaviorVersion;
use aws_sdk_ecr::error::DisplayErrorContext;
use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
use aws_smithy_http_client::tls;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::{Credentials, Secret};

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("ECR `GetAuthorizationToken` failed in `{region}`: {cause}; check the AWS credentials (environment, profile, SSO or web identity)")]
    Token { region: String, cause: String },
    #[error("ECR `GetAuthorizationToken` returned no usable token: {0}")]
    BadToken(&'static str),
    #[error("ECR repository `{repository}` does not exist in account `{account}`: create it or set `registry.create_repositories = true` in krobs.toml")]
    MissingRepository { repository: String, account: String },
    #[error("ECR repository `{repository}` for the manifest does not exist in account `{account}`: create it with mutable tags (`aws ecr create-repository --repository-name {repository} --image-tag-mutability MUTABLE`) or set `registry.create_repositories = true` in krobs.toml")]
    MissingManifestRepository { repository: String, account: String },
    #[error("ECR repository `{repository}` has immutable tags, but the manifest's `latest` tag must move: run `aws ecr put-image-tag-mutability --repository-name {repository} --image-tag-mutability MUTABLE`, or set `[manifest] repository` in krobs.toml to a repository with mutable tags")]
    ImmutableManifestRepository { repository: String },
    #[error("ECR `{operation}` failed for repository `{repository}`: {cause}")]
    Repository {
        operation: &'static str,
        repository: String,
        cause: String,
    },
}

/// What a repository allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepositoryInfo {
    /// Tags cannot be moved: mutable aliases such as `latest` are skipped.
    pub immutable: bool,
    /// The repository was created by this run.
    pub created: bool,
}

/// An ECR API client for one account and region.
#[derive(Debug, Clone)]
pub struct Ecr {
    client: aws_sdk_ecr::Client,
    account_id: String,
    region: String,
}

impl Ecr {
    /// Loads the default AWS configuration for `region`.
    pub async fn connect(account_id: &str, region: &str) -> Ecr {
        // The SDK's HTTPS client on ring, the TLS provider of the rest of Krobs; the credential
        // providers (STS, SSO) use it too.
        let https = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .http_client(https)
            .load()
            .await;
        Ecr {
            client: aws_sdk_ecr::Client::new(&config),
            account_id: account_id.to_string(),
            region: region.to_string(),
        }
    }

    /// `GetAuthorizationToken`, decoded to the registry user (`AWS`) and password.
    pub async fn credentials(&self) -> Result<Credentials, AwsError> {
        let out = self
            .client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| AwsError::Token {
                region: self.region.clone(),
                cause: DisplayErrorContext(e).to_string(),
            })?;
        let token = out
            .authorization_data()
            .first()
            .and_then(|d| d.authorization_token())
            .ok_or(AwsError::BadToken("no authorization data"))?;
        decode_token(token)
    }

    /// Makes sure the image repository `repository` exists; creates it (immutable tags, scan on
    /// push) if allowed.
    pub async fn ensure_repository(
        &self,
        repository: &str,
        create: bool,
    ) -> Result<RepositoryInfo, AwsError> {
        self.ensure(repository, create, ImageTagMutability::Immutable)
            .await
    }

    /// Makes sure the manifest repository exists with mutable tags (its `latest` moves);
    /// creates it so if allowed, and refuses one with immutable tags.
    pub async fn ensure_manifest_repository(
        &self,
        repository: &str,
        create: bool,
    ) -> Result<RepositoryInfo, AwsError> {
        let info = self
            .ensure(repository, create, ImageTagMutability::Mutable)
            .await
            .map_err(|e| match e {
                AwsError::MissingRepository {
                    repository,
                    account,
                } => AwsError::MissingManifestRepository {
                    repository,
                    account,
                },
                e => e,
            })?;
        if info.immutable {
            return Err(AwsError::ImmutableManifestRepository {
                repository: repository.to_string(),
            });
        }
        Ok(info)
    }

    async fn ensure(
        &self,
        repository: &str,
        create: bool,
        mutability: ImageTagMutability,
    ) -> Result<RepositoryInfo, AwsError> {
        let immutable = mutability != ImageTagMutability::Mutable;
        let described = self
            .client
            .describe_repositories()
            .registry_id(&self.account_id)
            .repository_names(repository)
            .send()
            .await;
        match described {
            Ok(out) => {
                let immutable = out.repositories().first().is_some_and(|r| {
                    matches!(
                        r.image_tag_mutability(),
                        Some(
                            ImageTagMutability::Immutable
                                | ImageTagMutability::ImmutableWithExclusion
                        )
                    )
                });
                Ok(RepositoryInfo {
                    immutable,
                    created: false,
                })
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_not_found_exception()) =>
            {
                if !create {
                    return Err(AwsError::MissingRepository {
                        repository: repository.to_string(),
                        account: self.account_id.clone(),
                    });
                }
                self.client
                    .create_repository()
                    .registry_id(&self.account_id)
                    .repository_name(repository)
                    .image_tag_mutability(mutability)
                    // Images are scanned; the manifest artifact has nothing to scan.
                    .image_scanning_configuration(
                        ImageScanningConfiguration::builder()
                            .scan_on_push(immutable)
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| AwsError::Repository {
                        operation: "CreateRepository",
                        repository: repository.to_string(),
                        cause: DisplayErrorContext(e).to_string(),
                    })?;
                Ok(RepositoryInfo {
                    immutable,
                    created: true,
                })
            }
            Err(e) => Err(AwsError::Repository {
                operation: "DescribeRepositories",
                repository: repository.to_string(),
                cause: DisplayErrorContext(e).to_string(),
            }),
        }
    }
}

/// An ECR token is base64 of `AWS:<password>`.
pub fn decode_token(token: &str) -> Result<Credentials, AwsError> {
    let bytes = STANDARD
        .decode(token.trim())
        .map_err(|_| AwsError::BadToken("the token is not base64"))?;
    let text =
        String::from_utf8(bytes).map_err(|_| AwsError::BadToken("the token is not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or(AwsError::BadToken("the token is not `user:password`"))?;
    Ok(Credentials {
        username: user.to_string(),
        password: Secret::new(password),
        source: "ECR GetAuthorizationToken".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_tokens_without_showing_them() {
        let c = decode_token(&STANDARD.encode("AWS:123456789012-auth-token")).unwrap();
        assert_eq!(c.username, "AWS");
        assert_eq!(c.password.expose(), "123456789012-auth-token");
        assert!(!format!("{c:?}").contains("auth-token"));
        assert!(decode_token("!!!").is_err());
        assert!(decode_token(&STANDARD.encode("nocolon")).is_err());
    }
}
