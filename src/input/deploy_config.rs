//! How a published script runs: the `[deploy]` defaults of `krobs.toml` and the Kubernetes
//! resource quantities a header may override them with.

/// CPU request of a krob whose header names no `cpu`.
pub const DEFAULT_CPU: &str = "100m";
/// Memory request and limit of a krob whose header names no `memory`.
pub const DEFAULT_MEMORY: &str = "256Mi";
/// How long a finished Job stays for its logs to be read: a week.
pub const DEFAULT_TTL_SECONDS: u64 = 7 * 24 * 3600;
/// The namespace `render` puts objects in unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "krobs";
/// The size limit of the `/tmp` emptyDir, the only writable place of a krob's file system.
pub const DEFAULT_TMP_SIZE_LIMIT: &str = "1Gi";
/// The ephemeral-storage request of a run: `/tmp` and the container's logs live there.
pub const DEFAULT_EPHEMERAL_STORAGE: &str = "1Gi";

/// `[deploy]` of `krobs.toml`: what every krob gets unless its header says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// Where `krobs-run` reports `start`/`finish`/`failure` (`KROBS_MONITOR_URL`).
    pub monitor_url: Option<String>,
    pub namespace: String,
    pub cpu: String,
    pub memory: String,
    pub ttl_seconds_after_finished: u64,
    /// `sizeLimit` of the `/tmp` emptyDir.
    pub tmp_size_limit: String,
    /// The pod's ephemeral-storage request.
    pub ephemeral_storage: String,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            monitor_url: None,
            namespace: DEFAULT_NAMESPACE.to_string(),
            cpu: DEFAULT_CPU.to_string(),
            memory: DEFAULT_MEMORY.to_string(),
            ttl_seconds_after_finished: DEFAULT_TTL_SECONDS,
            tmp_size_limit: DEFAULT_TMP_SIZE_LIMIT.to_string(),
            ephemeral_storage: DEFAULT_EPHEMERAL_STORAGE.to_string(),
        }
    }
}

/// Checks a CPU quantity as Kubernetes writes it: cores (`1`, `0.5`) or millicores (`250m`).
pub fn check_cpu(value: &str) -> Result<(), String> {
    let number = value.strip_suffix('m').unwrap_or(value);
    if is_decimal(number) && number.bytes().any(|b| b != b'0' && b != b'.') {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a CPU quantity: use cores or millicores, e.g. `250m` or `1`"
        ))
    }
}

/// Checks a memory quantity as Kubernetes writes it: bytes with an optional binary or decimal
/// suffix (`512Mi`, `1Gi`, `500M`).
pub fn check_memory(value: &str) -> Result<(), String> {
    const SUFFIXES: [&str; 10] = ["Ki", "Mi", "Gi", "Ti", "Pi", "k", "M", "G", "T", "P"];
    let number = SUFFIXES
        .iter()
        .find_map(|s| value.strip_suffix(s))
        .unwrap_or(value);
    if is_decimal(number) && number.bytes().any(|b| b != b'0' && b != b'.') {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a memory quantity: use bytes with a suffix, e.g. `512Mi` or `1Gi`"
        ))
    }
}

/// Digits with at most one decimal point inside: `1`, `0.5`; not `.5`, `1.`, `-1` or `1e3`.
fn is_decimal(s: &str) -> bool {
    let mut parts = s.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && parts.next().is_none_or(digits) && s.len() <= 20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        for ok in ["100m", "1", "0.5", "2", "1500m"] {
            assert!(check_cpu(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "m", "0", "0m", "-1", "1.", ".5", "1e3", "1 m", "1Gi", "one",
        ] {
            assert!(check_cpu(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_quantities() {
        for ok in ["256Mi", "1Gi", "500M", "1048576", "1.5Gi", "64Ki"] {
            assert!(check_memory(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Mi", "0Mi", "-1Gi", "1 Gi", "1gb", "1m", "1.Gi", "lots"] {
            assert!(check_memory(bad).is_err(), "{bad}");
        }
    }
}
