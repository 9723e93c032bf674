//! The event log's domain side: what an event is, how a record change turns
//! into events, how a stored event is shown to the outside world, and the
//! catalogue of every event type.
//!
//! Events are appended by the store in the same transaction as the change
//! that caused them; this module only builds them. It knows no HTTP.

pub mod catalogue;
pub mod schema;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::ids;
use crate::records::schema::RecordType;
use crate::store::{NewEvent, StoredEvent};

/// The payload schema version of event bodies. Fields are only ever added
/// within a version.
pub const PAYLOAD_VERSION: i64 = 1;

/// Who caused a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    /// Where the request came from (for the audit log; never in events).
    #[serde(skip)]
    pub source_ip: Option<std::net::IpAddr>,
}

impl Actor {
    pub fn api_key(id: &str) -> Actor {
        Actor {
            kind: "api_key".into(),
            id: Some(id.to_owned()),
            source_ip: None,
        }
    }

    /// The operator at the command line.
    pub fn command_line() -> Actor {
        Actor {
            kind: "command_line".into(),
            id: None,
            source_ip: None,
        }
    }

    pub fn with_ip(mut self, ip: Option<std::net::IpAddr>) -> Actor {
        self.source_ip = ip;
        self
    }
}

/// The three things that happen to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Modified,
    Deleted,
}

impl Change {
    fn verb(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Modified => "modified",
            Change::Deleted => "deleted",
        }
    }
}

/// The events for one record change: `<type>.<verb>`, then the semantic
/// event when the record has just entered a meaningful status.
///
/// `record` is the record as the API returns it (after the change; for a
/// delete, its last state). `previous_status` is `None` on create.
pub fn for_record_change(
    kind: &RecordType,
    change: Change,
    record: &Value,
    changed_fields: Option<Vec<String>>,
    previous_status: Option<&Value>,
    actor: &Actor,
    occurred_at: &str,
) -> Vec<NewEvent> {
    let mut data = match record {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    if let Some(changed) = changed_fields {
        data.insert("changed_fields".into(), json!(changed));
    }
    let data = Value::Object(data);
    let id = record.get("id").and_then(Value::as_i64);
    let event = |name: String| NewEvent {
        id: ids::sortable("evt"),
        event_type: name,
        category: catalogue::Category::Record.as_str().to_owned(),
        payload_version: PAYLOAD_VERSION,
        occurred_at: occurred_at.to_owned(),
        actor_type: actor.kind.clone(),
        actor_id: actor.id.clone(),
        record_type: Some(kind.name.to_owned()),
        record_id: id,
        data: data.clone(),
    };
    let mut events = vec![event(format!("{}.{}", kind.name, change.verb()))];
    if change != Change::Deleted {
        let status = record.get("status");
        for semantic in kind.status_events {
            let entered = status.and_then(Value::as_str) == Some(semantic.status)
                && previous_status.and_then(Value::as_str) != Some(semantic.status);
            if entered {
                events.push(event(format!("{}.{}", kind.name, semantic.event)));
            }
        }
    }
    events
}

/// The public body of a stored event, exactly as webhooks and the feed send it.
pub fn render(stored: &StoredEvent) -> Value {
    let e = &stored.event;
    json!({
        "id": e.id,
        "type": e.event_type,
        "version": e.payload_version,
        "sequence": stored.sequence,
        "occurred_at": e.occurred_at,
        "actor": {"type": e.actor_type, "id": e.actor_id},
        "data": e.data,
    })
}

/// An event that concerns no record.
fn unattached_event(
    name: &str,
    category: catalogue::Category,
    data: Value,
    actor: &Actor,
    occurred_at: &str,
) -> NewEvent {
    NewEvent {
        id: ids::sortable("evt"),
        event_type: name.to_owned(),
        category: category.as_str().to_owned(),
        payload_version: PAYLOAD_VERSION,
        occurred_at: occurred_at.to_owned(),
        actor_type: actor.kind.clone(),
        actor_id: actor.id.clone(),
        record_type: None,
        record_id: None,
        data,
    }
}

/// An operational event about an endpoint: its id and status only.
pub fn endpoint_event(
    name: &str,
    endpoint_id: &str,
    status: &str,
    enabled: bool,
    actor: &Actor,
    occurred_at: &str,
) -> NewEvent {
    let data =
        json!({"object": "endpoint", "id": endpoint_id, "status": status, "enabled": enabled});
    unattached_event(
        name,
        catalogue::Category::Operational,
        data,
        actor,
        occurred_at,
    )
}

/// The `webhook.test` event for one endpoint.
pub fn test_event(endpoint_id: &str, actor: &Actor, occurred_at: &str) -> NewEvent {
    let data = json!({"object": "webhook_test", "endpoint_id": endpoint_id,
        "message": "This is a test event sent from chartwire."});
    unattached_event(
        catalogue::TEST_EVENT,
        catalogue::Category::Test,
        data,
        actor,
        occurred_at,
    )
}

/// The body as an endpoint with `content: "ids"` receives it: `data` keeps
/// only `object`, `id` and `version`.
pub fn render_ids_only(stored: &StoredEvent) -> Value {
    let mut body = render(stored);
    if stored.event.category == catalogue::Category::Record.as_str()
        && let Some(data) = body.get_mut("data").and_then(Value::as_object_mut)
    {
        data.retain(|k, _| matches!(k.as_str(), "object" | "id" | "version"));
    }
    body
}

/// Who acted when chartwire itself changes something (auto-disable).
pub fn system_actor() -> Actor {
    Actor {
        kind: "system".into(),
        id: None,
        source_ip: None,
    }
}
