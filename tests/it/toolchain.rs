//! The toolchain pin cannot drift from what the lockfile needs: `rust-toolchain.toml` (what
//! rustup, on CI too, installs) must be at or above every locked package's `rust-version`, and
//! `rust-version` in Cargo.toml must say the same version; the CircleCI image must be at least
//! as new, so that its rustup has nothing older to fall back on.

use std::cmp::Ordering;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A Rust version `1.94` or `1.94.1` as (major, minor, patch).
fn version(text: &str) -> (u64, u64, u64) {
    let parts: Vec<u64> = text
        .split('.')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("`{text}` is not a Rust version"))
        })
        .collect();
    match parts[..] {
        [major, minor] => (major, minor, 0),
        [major, minor, patch] => (major, minor, patch),
        _ => panic!("`{text}` is not a Rust version (major.minor[.patch])"),
    }
}

fn read_toml(rel: &str) -> toml::Table {
    let text = std::fs::read_to_string(Path::new(ROOT).join(rel))
        .unwrap_or_else(|e| panic!("cannot read {rel}: {e}"));
    text.parse()
        .unwrap_or_else(|e| panic!("{rel} is not TOML: {e}"))
}

/// `channel` of rust-toolchain.toml: a version number, never `stable` (which moves).
fn pinned() -> String {
    let table = read_toml("rust-toolchain.toml");
    table["toolchain"]["channel"]
        .as_str()
        .expect("rust-toolchain.toml: `toolchain.channel` is a string")
        .to_string()
}

/// Every package of the locked resolve with the `rust-version` it declares.
///
/// Not `--offline`: cargo metadata reads the manifest of every locked package, also those only
/// other platforms build (the Windows crates), which a machine that has only built for Linux has
/// never downloaded. Cargo fetches what its cache lacks (from crates.io, or the mirror its
/// config names), so the check holds on a fresh machine and still covers every package.
fn locked_rust_versions() -> Vec<(String, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(ROOT)
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata --locked failed (is Cargo.lock up to date, and crates.io or its mirror reachable?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        // Packages from a registry or git; this crate's own rust-version is checked apart.
        .filter(|p| p["source"].is_string())
        .filter_map(|p| {
            let rv = p["rust_version"].as_str()?;
            Some((
                format!("{} {}", p["name"].as_str()?, p["version"].as_str()?),
                rv.to_string(),
            ))
        })
        .collect()
}

#[test]
fn the_pin_satisfies_every_locked_package() {
    let pin = pinned();
    let pin_v = version(&pin);
    let packages = locked_rust_versions();
    // The AWS SDK crates declare one; an empty list would make this test pass by accident.
    assert!(
        packages
            .iter()
            .any(|(name, _)| name.starts_with("aws-sdk-ecr ")),
        "cargo metadata lists no rust-version for aws-sdk-ecr: {packages:?}"
    );
    let too_new: Vec<String> = packages
        .iter()
        .filter(|(_, rv)| version(rv).cmp(&pin_v) == Ordering::Greater)
        .map(|(name, rv)| format!("{name} needs {rv}"))
        .collect();
    assert!(
        too_new.is_empty(),
        "rust-toolchain.toml pins {pin}, below what Cargo.lock needs: {} \
         (raise `channel` there and `rust-version` in Cargo.toml)",
        too_new.join(", ")
    );
}

#[test]
fn cargo_toml_rust_version_is_the_pin() {
    let pin = pinned();
    let manifest = read_toml("Cargo.toml");
    let declared = manifest["package"]["rust-version"]
        .as_str()
        .expect("Cargo.toml: `package.rust-version` is a string");
    assert_eq!(
        version(declared),
        version(&pin),
        "Cargo.toml says rust-version = {declared:?}, rust-toolchain.toml pins {pin:?}: \
         make them the same version"
    );
}

#[test]
fn the_circleci_image_is_at_least_the_pin() {
    let pin = version(&pinned());
    let config = std::fs::read_to_string(Path::new(ROOT).join(".circleci/config.yml")).unwrap();
    let tags: Vec<&str> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- image: cimg/rust:"))
        .collect();
    assert!(
        !tags.is_empty(),
        ".circleci/config.yml names no cimg/rust image"
    );
    for tag in tags {
        assert!(
            version(tag.trim()) >= pin,
            ".circleci/config.yml uses cimg/rust:{tag}, older than the pinned toolchain {pin:?}"
        );
    }
}

#[test]
fn versions_compare_as_numbers() {
    assert!(version("1.100") > version("1.94.1"));
    assert!(version("1.94.1") > version("1.94"));
    assert_eq!(version("1.95"), version("1.95.0"));
}
