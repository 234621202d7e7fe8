//! The names and label values of the Kubernetes objects a script becomes: `krobs-` and the
//! script id as a DNS-1123 label, cut with a hash when too long for its kind, a random suffix
//! for a Job, and label values within Kubernetes' grammar.

use crate::input::names::{self, is_dns_label, JOB_SUFFIX_LEN as SUFFIX_LEN};
use crate::plan::digest::bytes_sha256;
use crate::release::manifest::JobKind;

/// Letters of the suffix: lowercase letters and digits without vowels, so no word is spelled.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz0123456789";
/// Length of the hash that replaces the end of a name too long for its kind.
const HASH_LEN: usize = 8;

/// The longest generated base name of a kind: a Job's leaves room for `-<suffix>`.
pub fn max_base(kind: JobKind) -> usize {
    names::max_job_name(kind == JobKind::CronJob)
}

/// `krobs-` and the script id as a DNS-1123 label (`python/expunge_deletes` ->
/// `krobs-python-expunge-deletes`), at most `max` characters: a longer one keeps its start
/// and ends with a hash of the whole id, so distinct ids keep distinct names.
pub fn base_name(id: &str, max: usize) -> String {
    // What lint checked every script of a krobs manifest against; other ids (a manifest
    // written by hand or by another tool) are made valid below.
    let checked = names::job_name(id);
    if checked.len() <= max && is_dns_label(&checked) {
        return checked;
    }
    let mut name = String::from("krobs-");
    for c in id.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_end_matches('-');
    if name.len() <= max {
        return name.to_string();
    }
    let hash = &bytes_sha256(id.as_bytes())[..HASH_LEN];
    let head = name[..max - HASH_LEN - 1].trim_end_matches('-');
    format!("{head}-{hash}")
}

/// A fresh suffix of [`SUFFIX_LEN`] characters.
pub fn random_suffix() -> String {
    (0..SUFFIX_LEN)
        .map(|_| char::from(SUFFIX_ALPHABET[fastrand::usize(..SUFFIX_ALPHABET.len())]))
        .collect()
}

/// `s` as a label value: at most 63 letters, digits, `-`, `_` and `.`, starting and ending
/// with a letter or digit; `/` becomes `.` (`python/expunge_deletes` ->
/// `python.expunge_deletes`), anything else `-`. A longer one ends with a hash of `s`.
pub fn label_value(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| match c {
            '/' => '.',
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' => c,
            _ => '-',
        })
        .collect();
    let trim = |v: &str| {
        v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
            .to_string()
    };
    let value = trim(&mapped);
    if value.len() <= 63 {
        return value;
    }
    let hash = &bytes_sha256(s.as_bytes())[..HASH_LEN];
    format!("{}-{hash}", trim(&value[..63 - HASH_LEN - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_follow_the_id() {
        assert_eq!(
            base_name("python/expunge_deletes", 57),
            "krobs-python-expunge-deletes"
        );
        assert_eq!(base_name("bash/a--b__c/d", 57), "krobs-bash-a--b--c-d");
        assert_eq!(base_name("bash/a--b__c/", 57), "krobs-bash-a-b-c");
        assert_eq!(base_name("Ruby/X_", 57), "krobs-ruby-x");
    }

    #[test]
    fn long_ids_are_cut_and_end_with_a_hash() {
        let id = format!("python/{}", "very_long_name_".repeat(6));
        for max in [max_base(JobKind::Job), max_base(JobKind::CronJob)] {
            let name = base_name(&id, max);
            // Cut at `max`, less a `-` the cut would leave before the hash.
            assert!(name.len() == max || name.len() == max - 1, "{name}");
            assert!(is_dns_label(&name), "{name}");
            let hash = &bytes_sha256(id.as_bytes())[..HASH_LEN];
            assert!(name.ends_with(&format!("-{hash}")), "{name}");
            assert!(name.starts_with("krobs-python-very-long-name-"), "{name}");
        }
        // Two ids with the same long start keep distinct names.
        let other = format!("{id}x");
        assert_ne!(base_name(&id, 52), base_name(&other, 52));
        // The cut never leaves `--` before the hash.
        let dashy = format!("python/{}_{}", "a".repeat(29), "b".repeat(30));
        assert_eq!(&base_name(&dashy, 99)[42..43], "-");
        let name = base_name(&dashy, 52);
        assert!(is_dns_label(&name) && !name.contains("--"), "{name}");
        // Exactly at the limit: unchanged.
        let exact = format!("x/{}", "a".repeat(52 - "krobs-x-".len()));
        assert_eq!(base_name(&exact, 52).len(), 52);
        assert!(!base_name(&exact, 52).contains(&bytes_sha256(exact.as_bytes())[..8]));
    }

    #[test]
    fn suffixes_are_fresh_and_name_safe() {
        let a = random_suffix();
        assert_eq!(a.len(), SUFFIX_LEN);
        assert!(a.bytes().all(|b| SUFFIX_ALPHABET.contains(&b)), "{a}");
        let distinct: std::collections::BTreeSet<String> =
            (0..50).map(|_| random_suffix()).collect();
        assert!(distinct.len() > 45, "{distinct:?}");
    }

    #[test]
    fn label_values() {
        assert_eq!(
            label_value("python/expunge_deletes"),
            "python.expunge_deletes"
        );
        assert_eq!(label_value("_odd/name_"), "odd.name");
        let long = format!("python/{}", "n".repeat(80));
        let v = label_value(&long);
        assert_eq!(v.len(), 63);
        assert!(
            v.ends_with(&bytes_sha256(long.as_bytes())[..HASH_LEN]),
            "{v}"
        );
    }
}
