//! What each language ended as in a run ([`Published`], its [`Outcome`]), and the progress line
//! that says so.

use crate::progress::Progress;

/// What the pipeline learned about a language's pushed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub language: String,
    /// `sha256:...` of the image manifest in the registry.
    pub digest: String,
    /// Tags that name this content: the content tag, and the alias where it was set. They
    /// are the same on every run of the same content, so the manifest is too.
    pub tags: Vec<String>,
    /// `git-<commit>`, set in the registry on an image this run made (a reused image keeps the
    /// tag of the commit that made it); the manifest records the commit itself instead.
    pub commit_tag: Option<String>,
    pub outcome: Outcome,
    /// Wall-clock milliseconds the language took in this run (lookup to last tag).
    pub duration_ms: u64,
}

/// How a language's image came to be in the registry in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The image was there already.
    Reused,
    /// The runtime was there; Krobs put the scripts layer on it.
    ScriptsAppended { runtime: String },
    /// The Docker Engine built the runtime, then Krobs put the scripts layer on it.
    RuntimeBuilt { runtime: String },
}

impl Outcome {
    /// Whether an image was put in this run.
    pub fn made(&self) -> bool {
        !matches!(self, Outcome::Reused)
    }
}

/// Says, for each language, how it ended (its last progress line).
pub fn report_finished(published: &[Published], progress: &Progress) {
    for p in published {
        progress.finish(
            &p.language,
            &format!(
                "{} in {}",
                finished(p),
                crate::progress::seconds(p.duration_ms)
            ),
        );
    }
}

/// The last progress line of a language.
pub(super) fn finished(p: &Published) -> String {
    match &p.outcome {
        Outcome::Reused => format!("reused {} (already in the registry)", p.digest),
        Outcome::ScriptsAppended { runtime } => format!(
            "pushed {} (the scripts layer on the runtime {runtime}, no build)",
            p.digest
        ),
        Outcome::RuntimeBuilt { runtime } => format!(
            "built and pushed {} (the runtime {runtime}, then the scripts layer)",
            p.digest
        ),
    }
}
