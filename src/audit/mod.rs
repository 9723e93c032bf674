//! The audit log: who did what to which object, when and from where.
//!
//! Append-only (nothing in chartwire updates or deletes an entry; entries
//! older than the retention period, six years by default, are pruned).
//! Entries carry ids, action names and small counts — never PHI, never a
//! secret or a header value. Failed authentications are summarised: the
//! first failure from an address in a minute is written at once, the rest
//! of that minute as one entry with a count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::events::Actor;
use crate::ids;
use crate::store::{AuditEntry, AuditQuery, Store, StoreError};

/// How long failed authentications from one address are summarised together.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

struct Window {
    started: Instant,
    /// Failures after the first, not yet written.
    more: u64,
}

#[derive(Clone)]
pub struct Auditor {
    store: Arc<dyn Store>,
    failures: Arc<Mutex<HashMap<Option<IpAddr>, Window>>>,
}

impl Auditor {
    pub fn new(store: Arc<dyn Store>) -> Auditor {
        Auditor {
            store,
            failures: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn entry(
        actor: &Actor,
        action: &str,
        target: Option<(&str, &str)>,
        detail: Option<Value>,
    ) -> AuditEntry {
        AuditEntry {
            id: 0,
            at: ids::now_text(),
            actor_type: actor.kind.clone(),
            actor_id: actor.id.clone(),
            action: action.to_owned(),
            target_type: target.map(|(kind, _)| kind.to_owned()),
            target_id: target.map(|(_, id)| id.to_owned()),
            source_ip: actor.source_ip.map(|ip| ip.to_string()),
            detail,
        }
    }

    /// Append one entry. A failure to write is logged, not returned: the
    /// action it records has already happened.
    pub async fn record(
        &self,
        actor: &Actor,
        action: &str,
        target: Option<(&str, &str)>,
        detail: Option<Value>,
    ) {
        let entry = Auditor::entry(actor, action, target, detail);
        if let Err(err) = self.store.append_audit(vec![entry]).await {
            tracing::error!(action, error = %err, "could not write an audit entry");
        }
    }

    /// Note a failed authentication from `ip`.
    pub async fn failed_authentication(&self, ip: Option<IpAddr>) {
        let first = {
            let mut failures = self.failures.lock().expect("audit lock");
            match failures.get_mut(&ip) {
                Some(window) if window.started.elapsed() < FAILURE_WINDOW => {
                    window.more += 1;
                    false
                }
                _ => {
                    failures.insert(
                        ip,
                        Window {
                            started: Instant::now(),
                            more: 0,
                        },
                    );
                    true
                }
            }
        };
        if first {
            let actor = Actor {
                kind: "anonymous".into(),
                id: None,
                source_ip: ip,
            };
            self.record(&actor, "auth.failed", None, Some(json!({"count": 1})))
                .await;
        }
    }

    /// Write the summaries of finished windows (called periodically).
    pub async fn flush_failures(&self) {
        let finished: Vec<(Option<IpAddr>, u64)> = {
            let mut failures = self.failures.lock().expect("audit lock");
            let done: Vec<Option<IpAddr>> = failures
                .iter()
                .filter(|(_, w)| w.started.elapsed() >= FAILURE_WINDOW)
                .map(|(ip, _)| *ip)
                .collect();
            done.into_iter()
                .filter_map(|ip| failures.remove(&ip).map(|w| (ip, w.more)))
                .filter(|(_, more)| *more > 0)
                .collect()
        };
        let entries: Vec<AuditEntry> = finished
            .into_iter()
            .map(|(ip, more)| {
                let actor = Actor {
                    kind: "anonymous".into(),
                    id: None,
                    source_ip: ip,
                };
                Auditor::entry(
                    &actor,
                    "auth.failed",
                    None,
                    Some(json!({"count": more, "window_seconds": FAILURE_WINDOW.as_secs()})),
                )
            })
            .collect();
        if !entries.is_empty()
            && let Err(err) = self.store.append_audit(entries).await
        {
            tracing::error!(error = %err, "could not write failed-authentication summaries");
        }
    }

    /// Newest first.
    pub async fn list(&self, query: AuditQuery) -> Result<Vec<Value>, StoreError> {
        let entries = self.store.list_audit(query).await?;
        Ok(entries.iter().map(view).collect())
    }
}

pub fn view(e: &AuditEntry) -> Value {
    json!({
        "id": format!("aud_{}", e.id),
        "at": e.at,
        "actor": {"type": e.actor_type, "id": e.actor_id},
        "action": e.action,
        "target": e.target_type.as_ref().map(|kind| json!({"type": kind, "id": e.target_id})),
        "source_ip": e.source_ip,
        "detail": e.detail,
    })
}
