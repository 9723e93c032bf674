//! What pages show, taken from the domain's views (the same JSON the API
//! returns) and put into plain strings for the templates. Wording for
//! statuses, reasons and error kinds lives here.

use serde_json::Value;

use super::page::when;

pub fn text(value: &Value, key: &str) -> String {
    match &value[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The strings of a JSON array (nothing for anything else).
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn time(value: &Value, key: &str) -> String {
    value[key].as_str().map(when).unwrap_or_default()
}

pub fn status_label(status: &str) -> &'static str {
    match status {
        "enabled" => "Enabled",
        "disabled" => "Disabled",
        "auto_disabled" => "Auto-disabled",
        "pending" => "Pending",
        "succeeded" => "Succeeded",
        "failed" => "Failed",
        "cancelled" => "Cancelled",
        _ => "Unknown",
    }
}

/// Why an endpoint receives nothing, or why a delivery ended as failed.
pub fn reason_text(reason: &str) -> &'static str {
    match reason {
        "disabled_by_admin" => "switched off by an admin",
        "gone" => "the receiver answered 410 Gone",
        "failing" => "every delivery failed for too long",
        "endpoint_disabled" => "the endpoint was disabled",
        "retries_exhausted" => "every retry of the schedule failed",
        "event_expired" => "the event was pruned before it could be delivered",
        "" => "",
        _ => "other reason",
    }
}

pub fn error_kind_text(kind: &str) -> &'static str {
    match kind {
        "timeout" => "timed out",
        "address_not_allowed" => "address not allowed (the URL resolves to a refused network)",
        "tls" => "TLS handshake or certificate failed",
        "connect" => "could not connect",
        "response" => "the response could not be read",
        "network" => "network error",
        "http_status" => "non-2xx answer",
        _ => "error",
    }
}

/// An attempt's outcome in words, and whether it succeeded.
pub fn outcome(http_status: Option<i64>, error_kind: Option<&str>) -> (String, bool) {
    match (http_status, error_kind) {
        (Some(code), _) if (200..300).contains(&code) => (format!("HTTP {code}"), true),
        (Some(code), _) => (format!("HTTP {code}"), false),
        (None, Some(kind)) => (error_kind_text(kind).to_owned(), false),
        (None, None) => (String::new(), false),
    }
}

/// An endpoint's latest attempt, from the `health` of its view.
pub struct LastAttempt {
    /// Empty when it was never attempted.
    pub at: String,
    pub outcome: String,
    pub ok: bool,
}

impl LastAttempt {
    pub fn of(endpoint: &Value) -> LastAttempt {
        let health = &endpoint["health"];
        let (outcome, ok) = outcome(
            health["last_http_status"].as_i64(),
            health["last_error"].as_str(),
        );
        LastAttempt {
            at: time(health, "last_attempt_at"),
            outcome,
            ok,
        }
    }
}

/// What every view of an endpoint starts with: which it is, whether it is
/// sent to (and why not), and how its latest attempt went.
pub struct EndpointHead {
    pub id: String,
    pub url: String,
    pub description: String,
    pub status: String,
    pub status_label: &'static str,
    /// Why it is not sent to; empty when enabled.
    pub reason: &'static str,
    pub last: LastAttempt,
}

impl EndpointHead {
    pub fn of(view: &Value) -> EndpointHead {
        let status = text(view, "status");
        EndpointHead {
            id: text(view, "id"),
            url: text(view, "url"),
            description: text(view, "description"),
            status_label: status_label(&status),
            reason: reason_text(view["disabled_reason"].as_str().unwrap_or("")),
            status,
            last: LastAttempt::of(view),
        }
    }
}

/// One row of the Integrations table.
pub struct EndpointRow {
    pub head: EndpointHead,
    /// Successful attempts out of all in the last 24 hours, as a percentage.
    pub success_rate: String,
    pub attempts_24h: i64,
}

impl EndpointRow {
    pub fn new(view: &Value, attempts: i64, succeeded: i64) -> EndpointRow {
        EndpointRow {
            head: EndpointHead::of(view),
            success_rate: percent(succeeded, attempts),
            attempts_24h: attempts,
        }
    }
}

pub fn percent(part: i64, whole: i64) -> String {
    if whole == 0 {
        return "—".to_owned();
    }
    let share = part as f64 * 100.0 / whole as f64;
    if share == 100.0 || share == 0.0 {
        format!("{share:.0} %")
    } else {
        format!("{share:.1} %")
    }
}

/// One attempt of a delivery.
pub struct AttemptView {
    pub at: String,
    pub outcome: String,
    pub ok: bool,
    pub duration: String,
    pub error_kind: String,
    pub snippet: String,
}

/// A delivery in the log, with its attempts.
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub sequence: i64,
    pub status: String,
    pub status_label: &'static str,
    pub attempts: i64,
    pub last_outcome: String,
    pub last_ok: bool,
    pub created: String,
    pub next_attempt: String,
    pub reason: &'static str,
    pub can_retry: bool,
    pub log: Vec<AttemptView>,
}

impl DeliveryView {
    /// From a delivery as `DeliveryService::get` shows it.
    pub fn new(view: &Value) -> DeliveryView {
        let status = text(view, "status");
        let (last_outcome, last_ok) = outcome(
            view["last_http_status"].as_i64(),
            view["last_error"].as_str(),
        );
        let log = view["attempts_log"]
            .as_array()
            .map(|attempts| {
                attempts
                    .iter()
                    .map(|a| {
                        let (outcome, ok) =
                            outcome(a["http_status"].as_i64(), a["error_kind"].as_str());
                        AttemptView {
                            at: time(a, "attempted_at"),
                            outcome,
                            ok,
                            duration: format!("{:.0} ms", a["duration_ms"].as_f64().unwrap_or(0.0)),
                            error_kind: text(a, "error_kind"),
                            snippet: text(a, "response_snippet"),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        DeliveryView {
            id: text(view, "id"),
            event_id: text(view, "event_id"),
            event_type: text(view, "event_type"),
            sequence: view["sequence"].as_i64().unwrap_or(0),
            status_label: status_label(&status),
            can_retry: status != "cancelled",
            status,
            attempts: view["attempts"].as_i64().unwrap_or(0),
            last_outcome,
            last_ok,
            created: time(view, "created_at"),
            next_attempt: time(view, "next_attempt_at"),
            reason: reason_text(view["failure_reason"].as_str().unwrap_or("")),
            log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{outcome, percent};

    #[test]
    fn rates_and_outcomes_read_well() {
        assert_eq!(percent(0, 0), "—");
        assert_eq!(percent(3, 4), "75.0 %");
        assert_eq!(percent(4, 4), "100 %");
        assert_eq!(percent(0, 7), "0 %");
        assert_eq!(outcome(Some(204), None), ("HTTP 204".to_owned(), true));
        assert_eq!(
            outcome(Some(500), Some("http_status")),
            ("HTTP 500".to_owned(), false)
        );
        assert_eq!(
            outcome(None, Some("timeout")),
            ("timed out".to_owned(), false)
        );
    }
}
