//! The monitor's own counters, served on `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const LATENCY_BUCKETS: [f64; 8] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
pub struct Metrics {
    pub received: AtomicU64,
    pub rejected: AtomicU64,
    pub unauthorized: AtomicU64,
    pub duplicates: AtomicU64,
    pub dropped: AtomicU64,
    pub slack_sent: AtomicU64,
    pub slack_retried: AtomicU64,
    pub slack_failed: AtomicU64,
    pub statsd_errors: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// One Slack API answer, after `took`.
    pub fn slack_latency(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
    }

    pub fn render(&self, queue_depth: usize) -> String {
        let mut out = String::new();
        let counters = [
            (
                "krobs_monitor_events_received_total",
                "Events accepted (202).",
                &self.received,
            ),
            (
                "krobs_monitor_events_rejected_total",
                "Events refused as invalid (400/413).",
                &self.rejected,
            ),
            (
                "krobs_monitor_unauthorized_total",
                "Requests without the right token (401).",
                &self.unauthorized,
            ),
            (
                "krobs_monitor_events_duplicate_total",
                "Retried events already seen.",
                &self.duplicates,
            ),
            (
                "krobs_monitor_events_dropped_total",
                "Events dropped from a full queue.",
                &self.dropped,
            ),
            (
                "krobs_monitor_slack_sent_total",
                "Slack API calls answered ok.",
                &self.slack_sent,
            ),
            (
                "krobs_monitor_slack_retried_total",
                "Slack API calls retried (429, 5xx, network).",
                &self.slack_retried,
            ),
            (
                "krobs_monitor_slack_failed_total",
                "Slack API calls refused (ok: false, 4xx).",
                &self.slack_failed,
            ),
            (
                "krobs_monitor_statsd_errors_total",
                "DogStatsD datagrams that could not be sent.",
                &self.statsd_errors,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Relaxed)
            );
        }
        let name = "krobs_monitor_queue_depth";
        let _ = writeln!(
            out,
            "# HELP {name} Events waiting for Slack.\n# TYPE {name} gauge\n{name} {queue_depth}"
        );
        let name = "krobs_monitor_slack_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Slack API answer time.\n# TYPE {name} histogram"
        );
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let sum = self.latency_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
        );
        out
    }
}
