//! The extra tags of a language's image, registry-side: `git-<commit>` on an image the run
//! made, and the mutable alias ([`ALIAS_TAG`]) where the repository lets tags move.

use std::collections::HashMap;

use bytes::Bytes;

use crate::input::config::Config;
use crate::input::git::commit_tag;
use crate::plan::{LanguagePlan, Plan};
use crate::progress::Progress;
use crate::registry::ecr::RepositoryInfo;
use crate::registry::{Lookup, Registry};

use super::error::PublishError;

/// The mutable alias pushed where the repository allows moving tags.
pub const ALIAS_TAG: &str = "latest";

/// The extra tags a language got.
pub(super) struct ExtraTags {
    /// The mutable alias, where the repository lets tags move.
    pub alias: Option<String>,
    /// `git-<commit>`, on an image this run made.
    pub commit: Option<String>,
}

/// Adds the extra tags, registry-side. `git-<commit>` goes only on an image this run made, so
/// it names the commit that produced the image: a reused image keeps the tag of the commit that
/// made it. Tagging it again at every commit would pile one tag per commit onto an image that
/// may stay unchanged for years, and ECR refuses a 1,001st tag on one image (a quota that cannot
/// be raised); which image a commit ran is in that commit's release manifest. The mutable alias
/// goes on every image where the repository lets tags move. An immutable tag that already names
/// other content is left as it is, and said so. An image made just now is put under its tags
/// from the bytes at hand; a reused one is looked up first and tagged registry-side only where
/// the alias names something else.
#[allow(clippy::too_many_arguments)]
pub(super) async fn extra_tags(
    config: &Config,
    plan: &Plan,
    lp: &LanguagePlan,
    registry: &impl Registry,
    repositories: &HashMap<String, RepositoryInfo>,
    digest: &str,
    made: Option<(&str, &Bytes)>,
    progress: &Progress,
) -> Result<ExtraTags, PublishError> {
    let name = &lp.language.name;
    let repo = config.repository_for(name);
    let immutable = repositories.get(name).is_some_and(|r| r.immutable);
    let commit_tag = (plan.commit.as_ref())
        .filter(|_| made.is_some())
        .map(|c| commit_tag(c));
    let alias = alias_tag(name, &repo, immutable, progress);
    // Where tags may move, an image made just now is put under them without asking.
    let there = |tag: &Option<String>| {
        let (repo, tag) = (&repo, tag.clone());
        async move {
            match (tag, made, immutable) {
                (None, _, _) => Ok(None),
                (Some(_), Some(_), false) => Ok(Some(Lookup::Missing)),
                (Some(tag), _, _) => registry.lookup(repo, &tag).await.map(Some),
            }
        }
    };
    let (commit_there, alias_there) =
        futures_util::future::try_join(there(&commit_tag), there(&alias)).await?;
    let set = |tag: Option<String>, there: Option<Lookup>| {
        let repo = &repo;
        async move {
            let (Some(tag), Some(there)) = (tag, there) else {
                return Ok(None);
            };
            match there {
                Lookup::Present { digest: there } if there == digest => {}
                Lookup::Present { digest: there } if immutable => {
                    progress.log(
                        name,
                        &format!("immutable tag `{tag}` already names {there}: left as it is"),
                    );
                    return Ok(None);
                }
                _ => match made {
                    Some((media_type, bytes)) => {
                        registry
                            .put_manifest(repo, &tag, media_type, bytes.clone(), digest)
                            .await?
                    }
                    None => registry.put_tag(repo, digest, &tag).await?,
                },
            }
            Ok::<_, PublishError>(Some(tag))
        }
    };
    let (commit, alias) =
        futures_util::future::join(set(commit_tag, commit_there), set(alias, alias_there)).await;
    Ok(ExtraTags {
        alias: alias?,
        commit: commit?,
    })
}

/// The mutable alias to put, unless the repository's tags are immutable (then said so).
fn alias_tag(name: &str, repo: &str, immutable: bool, progress: &Progress) -> Option<String> {
    if immutable {
        progress.log(
            name,
            &format!("`{repo}` has immutable tags: `{ALIAS_TAG}` is not moved"),
        );
        None
    } else {
        Some(ALIAS_TAG.to_string())
    }
}
