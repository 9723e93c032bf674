//! Request counters in the Prometheus text format. Labels are the method,
//! the route template and the status: never values from a request.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::Method;

use crate::store::Diagnostics;

/// `(method, route template, status)`.
type RequestLabels = (String, String, u16);
/// `(count, total seconds)`.
type RequestTotals = (u64, f64);

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestLabels, RequestTotals>>,
}

impl Metrics {
    pub fn observe_request(&self, method: &Method, route: &str, status: u16, elapsed: Duration) {
        let mut requests = self.requests.lock().expect("metrics lock");
        let entry = requests
            .entry((method.as_str().to_owned(), route.to_owned(), status))
            .or_insert((0, 0.0));
        entry.0 += 1;
        entry.1 += elapsed.as_secs_f64();
    }

    pub fn render(&self, store: Option<&Diagnostics>) -> String {
        let mut out = String::new();
        out.push_str("# HELP chartwire_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE chartwire_http_requests_total counter\n");
        let requests = self.requests.lock().expect("metrics lock").clone();
        for ((method, route, status), (count, _)) in &requests {
            let _ = writeln!(
                out,
                "chartwire_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP chartwire_http_request_seconds_sum Time spent answering requests.\n");
        out.push_str("# TYPE chartwire_http_request_seconds_sum counter\n");
        for ((method, route, status), (_, seconds)) in &requests {
            let _ = writeln!(
                out,
                "chartwire_http_request_seconds_sum{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {seconds}"
            );
        }
        if let Some(store) = store {
            out.push_str(
                "# HELP chartwire_store_commits_total Transactions committed by the writer.\n",
            );
            out.push_str("# TYPE chartwire_store_commits_total counter\n");
            let _ = writeln!(out, "chartwire_store_commits_total {}", store.commits);
            out.push_str(
                "# HELP chartwire_store_writes_total Writes committed (several share a commit).\n",
            );
            out.push_str("# TYPE chartwire_store_writes_total counter\n");
            let _ = writeln!(out, "chartwire_store_writes_total {}", store.writes);
            out.push_str(
                "# HELP chartwire_events_head_sequence Highest committed event sequence.\n",
            );
            out.push_str("# TYPE chartwire_events_head_sequence gauge\n");
            let _ = writeln!(
                out,
                "chartwire_events_head_sequence {}",
                store.head_sequence
            );
        }
        out
    }
}
