//! `deploy/krobs-monitor.yaml`, the monitor's Kubernetes objects: valid under
//! `kubernetes-validate --strict` (tests/run.sh installs it), restricted Pod Security, probes on
//! the binary's routes, and every variable it sets documented in the README.

use std::path::{Path, PathBuf};
use std::process::Command;

fn project(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[test]
fn the_deployment_objects_are_strictly_valid_and_documented() {
    let text = std::fs::read_to_string(project("deploy/krobs-monitor.yaml")).unwrap();
    let dir = std::env::temp_dir().join(format!("krobs-monitor-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for (i, doc) in text.split("\n---\n").enumerate() {
        let path = dir.join(format!("{i}.yaml"));
        std::fs::write(&path, doc).unwrap();
        files.push(path);
    }
    for version in ["1.29.0", "1.37.0"] {
        let out = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "-k", version])
            .args(&files)
            .output()
            .expect("kubernetes-validate runs (tests/run.sh installs it)");
        assert!(
            out.status.success(),
            "kubernetes-validate --strict -k {version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy"
        ]
    );
    for needed in [
        "runAsNonRoot: true",
        "allowPrivilegeEscalation: false",
        "drop: [\"ALL\"]",
        "type: RuntimeDefault",
        "path: /readyz",
        "path: /healthz",
    ] {
        assert!(text.contains(needed), "no `{needed}`");
    }
    let readme = std::fs::read_to_string(project("README.md")).unwrap();
    for line in text.lines() {
        if let Some(name) = line
            .trim()
            .strip_prefix("- name: ")
            .filter(|n| n.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        {
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} is not in the README"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
