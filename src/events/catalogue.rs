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
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Record => "record",
        }
    }
}

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
        types
    })
}

pub fn find(name: &str) -> Option<&'static EventType> {
    all().iter().find(|t| t.name == name)
}
