//! Records attempt outcomes in batches: while one batch is being written,
//! the next accumulates, so thousands of deliveries a second cost a handful
//! of writes. An outcome lost in a crash only causes a duplicate send
//! (at-least-once); a delivery is never recorded as succeeded before its
//! 2xx arrived.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::Store;
use crate::store::webhooks::AttemptRecord;

const MAX_BATCH: usize = 2000;

type Entry = (AttemptRecord, oneshot::Sender<Option<String>>);

#[derive(Clone)]
pub(crate) struct Recorder {
    tx: mpsc::UnboundedSender<Entry>,
}

impl Recorder {
    pub fn start(store: Arc<dyn Store>) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx));
        Recorder { tx }
    }

    /// Record one attempt; returns the endpoint's `failing_since` afterwards
    /// (`None` also when recording failed: the delivery stays pending in the
    /// database and is sent again after a restart).
    pub async fn record(&self, record: AttemptRecord) -> Option<String> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((record, reply)).ok()?;
        answer.await.ok().flatten()
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Entry>) {
    let mut batch: Vec<Entry> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(entry) => batch.push(entry),
                Err(_) => break,
            }
        }
        let (records, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        match store.record_attempts(records).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "recording attempt outcomes failed");
                for reply in replies {
                    let _ = reply.send(None);
                }
            }
        }
    }
}
