//! Delivery counters for `/metrics`. The only label is the endpoint id.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the attempt latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0,
];

#[derive(Default)]
pub struct DeliveryMetrics {
    succeeded: AtomicU64,
    failed: AtomicU64,
    attempts_ok: AtomicU64,
    attempts_failed: AtomicU64,
    latency: Mutex<([u64; BUCKETS.len()], u64, f64)>,
    in_flight: Mutex<BTreeMap<String, i64>>,
}

impl DeliveryMetrics {
    pub(super) fn attempt(&self, elapsed: Duration, succeeded: bool) {
        let counter = if succeeded {
            &self.attempts_ok
        } else {
            &self.attempts_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let mut latency = self.latency.lock().expect("metrics lock");
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                latency.0[i] += 1;
            }
        }
        latency.1 += 1;
        latency.2 += seconds;
    }

    pub(super) fn finished(&self, succeeded: bool) {
        let counter = if succeeded {
            &self.succeeded
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn in_flight(&self, endpoint_id: &str, change: i64) {
        let mut map = self.in_flight.lock().expect("metrics lock");
        *map.entry(endpoint_id.to_owned()).or_default() += change;
    }

    /// Render, with the pending queue's depth and age from the store.
    pub fn render(&self, pending: i64, oldest_pending_seconds: f64) -> String {
        let mut out = String::new();
        out.push_str("# HELP chartwire_deliveries_total Deliveries that ended, by outcome.\n");
        out.push_str("# TYPE chartwire_deliveries_total counter\n");
        let _ = writeln!(
            out,
            "chartwire_deliveries_total{{outcome=\"succeeded\"}} {}",
            self.succeeded.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "chartwire_deliveries_total{{outcome=\"failed\"}} {}",
            self.failed.load(Ordering::Relaxed)
        );
        out.push_str("# HELP chartwire_delivery_attempts_total Attempts, by result.\n");
        out.push_str("# TYPE chartwire_delivery_attempts_total counter\n");
        let _ = writeln!(
            out,
            "chartwire_delivery_attempts_total{{result=\"success\"}} {}",
            self.attempts_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "chartwire_delivery_attempts_total{{result=\"failure\"}} {}",
            self.attempts_failed.load(Ordering::Relaxed)
        );
        out.push_str("# HELP chartwire_delivery_attempt_seconds How long attempts took.\n");
        out.push_str("# TYPE chartwire_delivery_attempt_seconds histogram\n");
        let (buckets, count, sum) = *self.latency.lock().expect("metrics lock");
        for (bound, n) in BUCKETS.iter().zip(buckets) {
            let _ = writeln!(
                out,
                "chartwire_delivery_attempt_seconds_bucket{{le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "chartwire_delivery_attempt_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "chartwire_delivery_attempt_seconds_sum {sum}");
        let _ = writeln!(out, "chartwire_delivery_attempt_seconds_count {count}");
        out.push_str(
            "# HELP chartwire_deliveries_pending Deliveries waiting to be sent or retried.\n",
        );
        out.push_str("# TYPE chartwire_deliveries_pending gauge\n");
        let _ = writeln!(out, "chartwire_deliveries_pending {pending}");
        out.push_str("# HELP chartwire_deliveries_oldest_pending_seconds Age of the oldest pending delivery.\n");
        out.push_str("# TYPE chartwire_deliveries_oldest_pending_seconds gauge\n");
        let _ = writeln!(
            out,
            "chartwire_deliveries_oldest_pending_seconds {oldest_pending_seconds}"
        );
        out.push_str("# HELP chartwire_deliveries_in_flight Attempts in flight, by endpoint.\n");
        out.push_str("# TYPE chartwire_deliveries_in_flight gauge\n");
        for (endpoint, n) in self.in_flight.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "chartwire_deliveries_in_flight{{endpoint=\"{endpoint}\"}} {n}"
            );
        }
        out
    }
}
