//! The notification listener: one connection per process that `LISTEN`s on
//! the chartwire channel. Commits in any process announce the new head of
//! the event log (`h:<sequence>`), endpoint changes (`e:<id>`) and
//! re-queued deliveries (`q:<ids>`); the listener publishes them on the
//! head watch and the signal broadcast, which wake long-polls and the
//! dispatcher without any polling interval.
//!
//! When the connection drops (database restart) it reconnects with
//! backoff, re-reads the head, and sends `Resync`, because notifications
//! sent meanwhile are lost.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use super::writer::CHANNEL;
use crate::store::Signal;

pub fn spawn(
    config: tokio_postgres::Config,
    head: watch::Sender<i64>,
    signals: broadcast::Sender<Signal>,
    mut alive: watch::Receiver<()>,
) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                outcome = listen_once(&config, &head, &signals) => match outcome {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(err) => tracing::warn!(error = %err, "the notification listener lost its connection"),
                },
                // The store was dropped: stop listening.
                _ = alive.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = alive.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
}

async fn listen_once(
    config: &tokio_postgres::Config,
    head: &watch::Sender<i64>,
    signals: &broadcast::Sender<Signal>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    let current: i64 = client
        .query_one(
            "SELECT value FROM store_meta WHERE name = 'events_head'",
            &[],
        )
        .await?
        .get(0);
    advance(head, current);
    let _ = signals.send(Signal::Resync);
    while let Some(payload) = rx.recv().await {
        match parse(&payload) {
            Some(Parsed::Head(sequence)) => advance(head, sequence),
            Some(Parsed::Signal(signal)) => {
                let _ = signals.send(signal);
            }
            None => tracing::debug!("ignored an unknown notification"),
        }
    }
    driver.abort();
    Ok(())
}

fn advance(head: &watch::Sender<i64>, sequence: i64) {
    head.send_if_modified(|current| {
        let moved = sequence > *current;
        if moved {
            *current = sequence;
        }
        moved
    });
}

#[derive(Debug, PartialEq)]
enum Parsed {
    Head(i64),
    Signal(Signal),
}

fn parse(payload: &str) -> Option<Parsed> {
    let (kind, rest) = payload.split_once(':')?;
    match kind {
        "h" => rest.parse().ok().map(Parsed::Head),
        "e" => Some(Parsed::Signal(Signal::EndpointChanged(rest.to_owned()))),
        "q" => {
            let ids: Result<Vec<i64>, _> = rest.split(',').map(str::parse).collect();
            ids.ok().map(|ids| Parsed::Signal(Signal::Requeued(ids)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse() {
        assert_eq!(parse("h:42"), Some(Parsed::Head(42)));
        assert_eq!(
            parse("e:ep_1"),
            Some(Parsed::Signal(Signal::EndpointChanged("ep_1".into())))
        );
        assert_eq!(
            parse("q:1,2,3"),
            Some(Parsed::Signal(Signal::Requeued(vec![1, 2, 3])))
        );
        assert_eq!(parse("q:1,x"), None);
        assert_eq!(parse("nonsense"), None);
    }
}
