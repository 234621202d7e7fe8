//! What the release manifest says about each script: owner, image and Slack channel.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

const MANIFEST_MAX: u64 = 64 << 20;

#[derive(Debug, Clone, Default)]
pub struct Script {
    pub owner: Option<String>,
    pub image: Option<String>,
    pub channel: Option<String>,
}

#[derive(Deserialize)]
struct Manifest {
    scripts: Vec<ManifestScript>,
}

#[derive(Deserialize)]
struct ManifestScript {
    id: String,
    image: Option<String>,
    header: Header,
}

#[derive(Deserialize)]
struct Header {
    owner: String,
    slack_channel: Option<String>,
}

/// Scripts by id; empty without a manifest.
#[derive(Debug, Default)]
pub struct Scripts(HashMap<String, Script>);

impl Scripts {
    pub fn load(path: &Path) -> Result<Scripts, String> {
        let shown = path.display();
        let size = std::fs::metadata(path)
            .map_err(|e| format!("cannot read the release manifest {shown}: {e}"))?
            .len();
        if size > MANIFEST_MAX {
            return Err(format!(
                "the release manifest {shown} is larger than 64 MiB"
            ));
        }
        let text = std::fs::read(path)
            .map_err(|e| format!("cannot read the release manifest {shown}: {e}"))?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| format!("{shown} is not a Krobs release manifest: {e}"))?;
        let scripts = manifest.scripts.into_iter().map(|s| {
            let script = Script {
                owner: Some(s.header.owner),
                image: s.image,
                channel: s.header.slack_channel,
            };
            (s.id, script)
        });
        Ok(Scripts(scripts.collect()))
    }

    pub fn get(&self, id: &str) -> Script {
        self.0.get(id).cloned().unwrap_or_default()
    }
}
