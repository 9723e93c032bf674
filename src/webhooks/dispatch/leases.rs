//! Who sends to which endpoint when several processes share a database.
//!
//! Every process runs a *keeper*: it renews its heartbeat, works out which
//! enabled endpoints should be its own (rendezvous hashing over the live
//! processes, so each endpoint has one preferred process and a departure
//! moves only that process's endpoints), and holds their leases in the
//! store. An endpoint is sent to only by the holder of its lease, so every
//! per-endpoint rule — one attempt at a time per delivery, per-record
//! ordering, `max_in_flight`, the rate limit — holds across processes
//! exactly as it does in one.
//!
//! A holder keeps its endpoints while it lives (no handing over of work in
//! flight). When it stops renewing — killed, or cut off from the database —
//! its leases expire after the lease time and the preferred live process
//! takes the endpoints over and loads their pending deliveries. A process
//! that cannot renew stops sending before its leases can expire.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc, watch};

use super::Command;
use crate::store::Store;

/// Settings of the keeper.
#[derive(Debug, Clone, Copy)]
pub struct LeaseSettings {
    /// How long a lease (and a heartbeat) lasts without renewal.
    pub ttl: Duration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings {
            ttl: Duration::from_secs(10),
        }
    }
}

impl LeaseSettings {
    fn renew_every(&self) -> Duration {
        (self.ttl / 4).max(Duration::from_millis(100))
    }
}

/// The process among `live` that should send to `endpoint`: the highest
/// hash of (endpoint, process).
pub fn preferred<'a>(endpoint: &str, live: &'a [String]) -> Option<&'a str> {
    live.iter()
        .max_by_key(|process| {
            let mut hash = Sha256::new();
            hash.update(endpoint.as_bytes());
            hash.update([0]);
            hash.update(process.as_bytes());
            let digest = hash.finalize();
            u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
        })
        .map(String::as_str)
}

pub(super) struct Keeper {
    pub store: Arc<dyn Store>,
    pub process: String,
    pub settings: LeaseSettings,
    pub intake: mpsc::UnboundedSender<Command>,
    pub poke: Arc<Notify>,
}

impl Keeper {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(process = %self.process, "sharing webhook dispatch with other processes");
        let mut held: HashSet<String> = HashSet::new();
        let mut valid_until = Instant::now();
        // Register first and give processes started at the same moment a
        // chance to register too, so the first split is already even.
        let _ = self.store.heartbeat(&self.process, self.settings.ttl).await;
        tokio::select! {
            _ = tokio::time::sleep(self.settings.renew_every().min(Duration::from_millis(500))) => {}
            _ = super::stopped(&mut shutdown) => return,
        }
        loop {
            let started = Instant::now();
            // A renewal that hangs (database unreachable) must not keep this
            // process sending past its leases: give it only the time left
            // before the margin, then treat it as failed.
            let margin = self.settings.renew_every();
            let budget = if held.is_empty() {
                margin
            } else {
                valid_until
                    .saturating_duration_since(started + margin)
                    .clamp(Duration::from_millis(50), margin)
            };
            let outcome = match tokio::time::timeout(budget, self.round(&held)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(crate::store::StoreError::Unavailable(
                    "renewing endpoint leases timed out".into(),
                )),
            };
            match outcome {
                Ok(now_held) => {
                    valid_until = started + self.settings.ttl;
                    let gained: Vec<String> = now_held.difference(&held).cloned().collect();
                    let lost: Vec<String> = held.difference(&now_held).cloned().collect();
                    if !lost.is_empty() {
                        let _ = self.intake.send(Command::Lost(lost));
                    }
                    if !gained.is_empty() {
                        tracing::info!(endpoints = gained.len(), "took over endpoint leases");
                        let _ = self.intake.send(Command::Acquired(gained));
                    }
                    held = now_held;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "renewing endpoint leases failed");
                    // Stop sending before the leases can expire and another
                    // process takes the endpoints over.
                    if Instant::now() + margin >= valid_until && !held.is_empty() {
                        tracing::warn!(
                            endpoints = held.len(),
                            "giving up endpoints whose leases could not be renewed"
                        );
                        let _ = self.intake.send(Command::Lost(held.drain().collect()));
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.renew_every()) => {}
                _ = self.poke.notified() => {}
                _ = super::stopped(&mut shutdown) => {
                    if let Err(err) = self.store.release_endpoints(&self.process).await {
                        tracing::warn!(error = %err, "releasing endpoint leases failed");
                    }
                    return;
                }
            }
        }
    }

    /// One renewal: heartbeat, choose, hold.
    async fn round(
        &self,
        held: &HashSet<String>,
    ) -> Result<HashSet<String>, crate::store::StoreError> {
        let ttl = self.settings.ttl;
        let mut live = self.store.heartbeat(&self.process, ttl).await?;
        if !live.contains(&self.process) {
            live.push(self.process.clone());
        }
        let enabled = self.store.enabled_endpoints().await?;
        let wanted: Vec<String> = enabled
            .into_iter()
            .filter(|id| held.contains(id) || preferred(id, &live) == Some(self.process.as_str()))
            .collect();
        let now_held = self
            .store
            .hold_endpoints(&self.process, wanted, ttl)
            .await?;
        Ok(now_held.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::preferred;

    #[test]
    fn endpoints_spread_over_processes_and_move_only_when_their_process_leaves() {
        let live: Vec<String> = (0..3).map(|i| format!("proc_{i}")).collect();
        let endpoints: Vec<String> = (0..300).map(|i| format!("ep_{i}")).collect();
        let before: Vec<&str> = endpoints
            .iter()
            .map(|e| preferred(e, &live).unwrap())
            .collect();
        for process in &live {
            let share = before.iter().filter(|p| **p == process.as_str()).count();
            assert!((60..=140).contains(&share), "{process} got {share} of 300");
        }
        let remaining = vec![live[0].clone(), live[2].clone()];
        for (endpoint, was) in endpoints.iter().zip(&before) {
            let now = preferred(endpoint, &remaining).unwrap();
            if *was != live[1].as_str() {
                assert_eq!(now, *was, "{endpoint} moved although its process stayed");
            }
        }
        assert_eq!(preferred("ep_1", &[]), None);
    }
}
