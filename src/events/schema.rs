//! A JSON Schema and an example body for every event type of the
//! catalogue, derived from the record field table (so they follow the code).
//! Schemas leave `additionalProperties` open: within a payload version,
//! fields are only ever added.

use serde_json::{Value, json};

use super::PAYLOAD_VERSION;
use super::catalogue::{Category, EventType};
use crate::records::json_schema::{address_schema, example, record_schema};
use crate::records::schema::{self, RecordType};

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

fn envelope(name: &str, data: Value) -> Value {
    json!({
        "$schema": DRAFT,
        "title": name,
        "type": "object",
        "required": ["id", "type", "version", "sequence", "occurred_at", "actor", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^evt_[0-9A-HJKMNP-TV-Z]{26}$"},
            "type": {"const": name},
            "version": {"const": PAYLOAD_VERSION},
            "sequence": {"type": "integer", "minimum": 1},
            "occurred_at": {"type": "string", "format": "date-time"},
            "actor": {"type": "object", "required": ["type", "id"], "properties": {
                "type": {"type": "string", "enum": ["api_key", "system"]},
                "id": {"type": ["string", "null"]}}},
            "data": data,
        },
    })
}

fn record_data(kind: &RecordType, modified: bool) -> Value {
    let mut data = record_schema(kind, &address_schema());
    if modified {
        let names: Vec<&str> = kind.fields.iter().map(|f| f.name).collect();
        data["properties"]["changed_fields"] =
            json!({"type": "array", "minItems": 1, "items": {"type": "string", "enum": names}});
        data["required"]
            .as_array_mut()
            .expect("required is a list")
            .push(json!("changed_fields"));
    }
    data
}

/// The schema of `event`'s body.
pub fn schema_of(event: &EventType) -> Value {
    let data = match (event.category, event.record_type.and_then(schema::by_name)) {
        (Category::Record, Some(kind)) => record_data(kind, event.name.ends_with(".modified")),
        (Category::Operational, _) => {
            json!({"type": "object", "required": ["object", "id", "status", "enabled"],
            "properties": {
                "object": {"const": "endpoint"},
                "id": {"type": "string", "pattern": "^ep_"},
                "status": {"type": "string", "enum": ["enabled", "disabled", "auto_disabled", "deleted"]},
                "enabled": {"type": "boolean"}}})
        }
        _ => {
            json!({"type": "object", "required": ["object", "endpoint_id", "message"], "properties": {
            "object": {"const": "webhook_test"},
            "endpoint_id": {"type": "string"},
            "message": {"type": "string"}}})
        }
    };
    envelope(&event.name, data)
}

/// An example body of `event`.
pub fn example_of(event: &EventType) -> Value {
    let data = match (event.category, event.record_type.and_then(schema::by_name)) {
        (Category::Record, Some(kind)) => {
            let verb = event.name.split_once('.').map(|(_, v)| v).unwrap_or("");
            let semantic = kind.status_events.iter().find(|s| s.event == verb);
            let mut data = example(kind, semantic.map(|s| s.status));
            match verb {
                "created" => data["version"] = json!(1),
                "modified" => data["changed_fields"] = json!([kind.fields[0].name]),
                // A semantic event carries what its `.modified` companion carries.
                _ if semantic.is_some() => data["changed_fields"] = json!(["status"]),
                _ => {}
            }
            data
        }
        (Category::Operational, _) => {
            let (status, enabled) = match event.name.as_str() {
                "endpoint.disabled" => ("disabled", false),
                "endpoint.auto_disabled" => ("auto_disabled", true),
                "endpoint.deleted" => ("deleted", false),
                _ => ("enabled", true),
            };
            json!({"object": "endpoint", "id": "ep_01JDXK3V7Q6M2N8R4T5W9YB0CE", "status": status, "enabled": enabled})
        }
        _ => json!({"object": "webhook_test", "endpoint_id": "ep_01JDXK3V7Q6M2N8R4T5W9YB0CE",
            "message": "This is a test event sent from chartwire."}),
    };
    let actor = if event.name == "endpoint.auto_disabled" {
        json!({"type": "system", "id": null})
    } else {
        json!({"type": "api_key", "id": "key_01JDXK1Z8C4B6N0M2Q7R9T3V5W"})
    };
    json!({
        "id": "evt_01JDXK3V7Q6M2N8R4T5W9YB0CE",
        "type": event.name,
        "version": PAYLOAD_VERSION,
        "sequence": 1042,
        "occurred_at": "2026-12-03T16:07:15.123456Z",
        "actor": actor,
        "data": data,
    })
}
