//! The catalogue of event types: every name chartwire can emit, with a
//! description and the record type it concerns. Filters, documentation and
//! (later) JSON Schemas are all derived from this one list.

use std::sync::OnceLock;

use serde::Serialize;

use crate::records::schema::RECORD_TYPES;

/// The kind of an event, which decides who may see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A change to a record: matched by `*` and `<type>.*`.
    Record,
    /// A change to chartwire's own configuration (endpoints): ids and status
    /// only; in the feed for Superadmins; matched only when named.
    Operational,
    /// `webhook.test`: sent to one endpoint on request, never in the feed.
    Test,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Record => "record",
            Category::Operational => "operational",
            Category::Test => "test",
        }
    }
}

/// Operational events about endpoints.
pub const ENDPOINT_EVENTS: &[(&str, &str)] = &[
    ("endpoint.created", "A webhook endpoint was created."),
    (
        "endpoint.modified",
        "A webhook endpoint's configuration changed.",
    ),
    (
        "endpoint.disabled",
        "A webhook endpoint was disabled (by an admin, or because it answered 410 Gone).",
    ),
    (
        "endpoint.auto_disabled",
        "A webhook endpoint was disabled because all its deliveries failed for too long.",
    ),
    ("endpoint.deleted", "A webhook endpoint was deleted."),
];

pub const TEST_EVENT: &str = "webhook.test";

#[derive(Debug, Clone, Serialize)]
pub struct EventType {
    pub name: String,
    pub description: String,
    pub record_type: Option<&'static str>,
    pub category: Category,
}

/// Every event type, record types in documentation order.
pub fn all() -> &'static [EventType] {
    static CATALOGUE: OnceLock<Vec<EventType>> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let mut types = Vec::new();
        for kind in RECORD_TYPES {
            let noun = kind.name.replace('_', " ");
            for (verb, text) in [
                ("created", format!("A {noun} was created.")),
                (
                    "modified",
                    format!("A {noun} was changed; `changed_fields` lists what changed."),
                ),
                (
                    "deleted",
                    format!("A {noun} was deleted; `data` holds its last state."),
                ),
            ] {
                types.push(EventType {
                    name: format!("{}.{verb}", kind.name),
                    description: text,
                    record_type: Some(kind.name),
                    category: Category::Record,
                });
            }
            for semantic in kind.status_events {
                types.push(EventType {
                    name: format!("{}.{}", kind.name, semantic.event),
                    description: format!(
                        "{} Sent in addition to `{}.created` or `{}.modified`.",
                        semantic.description, kind.name, kind.name
                    ),
                    record_type: Some(kind.name),
                    category: Category::Record,
                });
            }
        }
        for (name, description) in ENDPOINT_EVENTS {
            types.push(EventType {
                name: (*name).to_owned(),
                description: (*description).to_owned(),
                record_type: None,
                category: Category::Operational,
            });
        }
        types.push(EventType {
            name: TEST_EVENT.to_owned(),
            description: "A test event, sent to one endpoint when an admin asks for it.".to_owned(),
            record_type: None,
            category: Category::Test,
        });
        types
    })
}

pub fn find(name: &str) -> Option<&'static EventType> {
    all().iter().find(|t| t.name == name)
}

/// Expand patterns (`patient.created`, `patient.*`, `endpoint.*`, `*`) into
/// exact event names of the catalogue, in catalogue order without repeats.
/// `*` matches record events only; other categories must be named.
/// Fails with the first pattern that matches nothing.
pub fn expand(patterns: &[String]) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for pattern in patterns {
        let matched: Vec<&str> = if pattern == "*" {
            all()
                .iter()
                .filter(|t| t.category == Category::Record)
                .map(|t| t.name.as_str())
                .collect()
        } else if let Some(prefix) = pattern.strip_suffix(".*") {
            all()
                .iter()
                .filter(|t| t.category != Category::Test)
                .filter(|t| t.name.split_once('.').map(|(p, _)| p) == Some(prefix))
                .map(|t| t.name.as_str())
                .collect()
        } else {
            find(pattern)
                .map(|t| vec![t.name.as_str()])
                .unwrap_or_default()
        };
        if matched.is_empty() {
            return Err(pattern.chars().take(100).collect());
        }
        for name in matched {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    Ok(names)
}
