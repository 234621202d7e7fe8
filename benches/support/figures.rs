//! How the benchmarks read their settings and print their figures: medians with min and max,
//! the verdict against a target, the machine they ran on. No services needed, so the digest
//! bench includes it too (with `#[path]`, as the others do).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A number from the environment (`KROBS_BENCH_RUNS`, ...), or `default` when unset or not one.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The number of CPUs this process may use (0 when unknown).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// The 1-minute load average, from `/proc/loadavg`.
pub fn load_average() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
}

/// The middle value of some counts (the upper one of an even number; 0 for none).
pub fn median_u64(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Median, min and max of some durations, in milliseconds.
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(samples: &[Duration]) -> Stats {
        Stats::of_ms(samples.iter().map(|d| ms(*d)).collect())
    }

    fn of_ms(mut v: Vec<f64>) -> Stats {
        assert!(!v.is_empty(), "no samples");
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stats {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "median {:.1} ms (min {:.1}, max {:.1})",
            self.median, self.min, self.max
        )
    }
}

/// Whether cargo only asks for the list of benchmarks (`cargo test --benches` passes
/// `--list`): there is nothing to list. Anything else cargo passes (`--bench`) is ignored.
pub fn cargo_lists() -> bool {
    std::env::args().skip(1).any(|a| a == "--list")
}
