//! The change feed: cursors, type filters and long-polling over the event log.
//!
//! A cursor names the last sequence a reader has considered. Reads come from
//! the store in one snapshot that reports how far it scanned, so a reader that
//! follows `next_cursor` sees every committed event once and in order (the
//! store guarantees that sequences become visible in order). A long-poll waits
//! on the store's head signal, which the commit path raises: no sleep loop.
//! This module knows no HTTP.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use thiserror::Error;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::auth::Role;
use crate::events::{self, catalogue};
use crate::store::{EventQuery, Store, StoreError};

pub const MAX_LIMIT: usize = 1000;
pub const MAX_WAIT: Duration = Duration::from_secs(30);
const CURSOR_TAG: &str = "feed1:";

#[derive(Debug, Error)]
pub enum FeedError {
    #[error("the cursor is not one this server issued")]
    InvalidCursor,
    #[error("unknown event type or pattern")]
    InvalidTypes(String),
    #[error("the events after this cursor have expired; resynchronise from the records API")]
    CursorExpired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a reader asks for.
#[derive(Debug, Clone)]
pub struct FeedRequest {
    pub after: Option<String>,
    pub limit: usize,
    pub types: Option<Vec<String>>,
    pub wait: Duration,
}

pub struct FeedPage {
    pub events: Vec<Value>,
    pub next_cursor: String,
    pub has_more: bool,
}

pub fn encode_cursor(sequence: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_TAG}{sequence}"))
}

pub fn decode_cursor(cursor: &str) -> Result<i64, FeedError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| FeedError::InvalidCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| FeedError::InvalidCursor)?;
    text.strip_prefix(CURSOR_TAG)
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or(FeedError::InvalidCursor)
}

/// Expand type patterns into exact names (see [`catalogue::expand`]).
pub fn expand_patterns(patterns: &[String]) -> Result<Vec<String>, FeedError> {
    catalogue::expand(patterns).map_err(FeedError::InvalidTypes)
}

#[derive(Clone)]
pub struct FeedService {
    store: Arc<dyn Store>,
    shutdown: watch::Receiver<bool>,
}

impl FeedService {
    pub fn new(store: Arc<dyn Store>, shutdown: watch::Receiver<bool>) -> Self {
        FeedService { store, shutdown }
    }

    pub async fn read(&self, role: Role, request: FeedRequest) -> Result<FeedPage, FeedError> {
        let types = match &request.types {
            Some(patterns) => Some(expand_patterns(patterns)?),
            None => None,
        };
        // Without a cursor, read from the oldest event still kept; with one,
        // events after it must not have been pruned (checked in the same
        // snapshot as each read).
        let mut positioned = request.after.is_some();
        let mut after = match &request.after {
            Some(cursor) => decode_cursor(cursor)?,
            None => 0,
        };
        let categories = visible_categories(role);
        let deadline = Instant::now() + request.wait.min(MAX_WAIT);
        // Subscribe before the first read so that a commit between the read
        // and the wait still wakes us.
        let mut head = self.store.head();
        let mut shutdown = self.shutdown.clone();
        loop {
            head.borrow_and_update();
            let page = self
                .store
                .read_events(EventQuery {
                    after,
                    limit: request.limit,
                    types: types.clone(),
                    categories: categories.clone(),
                })
                .await?;
            if positioned && after < page.pruned_through {
                return Err(FeedError::CursorExpired);
            }
            positioned = true;
            after = page.scanned_through;
            if !page.events.is_empty() || Instant::now() >= deadline || *shutdown.borrow() {
                return Ok(FeedPage {
                    events: page.events.iter().map(events::render).collect(),
                    next_cursor: encode_cursor(page.scanned_through),
                    has_more: page.has_more,
                });
            }
            tokio::select! {
                changed = head.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(deadline).await;
                    }
                }
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// Record events for everyone; operational events for Superadmins only;
/// test events never (they exist for one endpoint's delivery).
fn visible_categories(role: Role) -> Vec<String> {
    let mut categories = vec![catalogue::Category::Record.as_str().to_owned()];
    if role == Role::Superadmin {
        categories.push(catalogue::Category::Operational.as_str().to_owned());
    }
    categories
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        assert_eq!(decode_cursor(&encode_cursor(42)).unwrap(), 42);
        assert!(decode_cursor("42").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("feed1:-3")).is_err());
    }

    #[test]
    fn patterns_expand_against_the_catalogue() {
        let names = expand_patterns(&["appointment.*".into()]).unwrap();
        assert!(names.contains(&"appointment.checked_in".to_string()));
        assert!(!names.iter().any(|n| n.starts_with("patient.")));
        assert!(expand_patterns(&["patient.exploded".into()]).is_err());
        assert!(expand_patterns(&["lab_result.*".into()]).unwrap().len() == 4);
    }
}
