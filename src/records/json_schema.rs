//! JSON Schemas and examples of records, derived from the field table in
//! [`super::schema`]. The OpenAPI document and the event catalogue both
//! use them, so a record is described one way everywhere.

use serde_json::{Map, Value, json};

use super::schema::{ADDRESS_FIELDS, FieldKind, FieldSpec, RecordType};

pub fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

pub fn address_schema() -> Value {
    let properties: Map<String, Value> = ADDRESS_FIELDS
        .iter()
        .map(|f| {
            (
                (*f).to_owned(),
                nullable(json!({"type": "string", "maxLength": 200})),
            )
        })
        .collect();
    json!({"type": "object", "properties": properties, "additionalProperties": false})
}

/// The schema of one field's value (not null); `address` is what an address
/// field refers to (inline schema or `$ref`).
pub fn field_schema(spec: &FieldSpec, address: &Value) -> Value {
    match spec.kind {
        FieldKind::Text { max } => {
            json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": "\\S"})
        }
        FieldKind::Email => json!({"type": "string", "format": "email", "maxLength": 254}),
        FieldKind::Date => json!({"type": "string", "format": "date"}),
        FieldKind::Instant => json!({"type": "string", "format": "date-time"}),
        FieldKind::Integer { min, max } => {
            json!({"type": "integer", "minimum": min, "maximum": max})
        }
        FieldKind::Decimal { min, max } => {
            json!({"type": "number", "minimum": min, "maximum": max})
        }
        FieldKind::Bool => json!({"type": "boolean"}),
        FieldKind::Enum(values) => json!({"type": "string", "enum": values}),
        FieldKind::Reference(target) => {
            json!({"type": "integer", "minimum": 1, "maximum": i64::MAX,
            "description": format!("The id of a {target}.")})
        }
        FieldKind::Address => address.clone(),
    }
}

/// The record as the API returns it.
pub fn record_schema(kind: &RecordType, address: &Value) -> Value {
    let mut properties = Map::new();
    properties.insert(
        "object".into(),
        json!({"type": "string", "const": kind.name}),
    );
    properties.insert("id".into(), json!({"type": "integer", "minimum": 1}));
    properties.insert("version".into(), json!({"type": "integer", "minimum": 1}));
    for spec in kind.fields {
        properties.insert(spec.name.into(), nullable(field_schema(spec, address)));
    }
    properties.insert(
        "created_at".into(),
        json!({"type": "string", "format": "date-time"}),
    );
    properties.insert(
        "updated_at".into(),
        json!({"type": "string", "format": "date-time"}),
    );
    let required: Vec<&String> = properties.keys().collect();
    json!({"type": "object", "description": kind.description, "properties": properties, "required": required})
}

fn example_value(spec: &FieldSpec) -> Value {
    match spec.kind {
        FieldKind::Text { max } => Value::from(
            format!("Example {}", spec.name.replace('_', " "))
                .chars()
                .take(max)
                .collect::<String>(),
        ),
        FieldKind::Email => Value::from("ada.quill@clinic.example"),
        FieldKind::Date => Value::from("2026-12-01"),
        FieldKind::Instant => Value::from(if spec.name == "end_at" {
            "2026-12-01T09:30:00Z"
        } else {
            "2026-12-01T09:00:00Z"
        }),
        FieldKind::Integer { min, max } => Value::from(72.clamp(min, max)),
        FieldKind::Decimal { min, max } => json!((min + max) / 2.0),
        FieldKind::Bool => Value::from(true),
        FieldKind::Enum(values) => Value::from(values[0]),
        FieldKind::Reference(_) => Value::from(42),
        FieldKind::Address => {
            json!({"line1": "1 Main Street", "line2": null, "city": "Springfield",
            "state": "IL", "postal_code": "62701", "country": "US"})
        }
    }
}

/// An example record; `status` overrides the status field when given.
pub fn example(kind: &RecordType, status: Option<&str>) -> Value {
    let mut record = Map::new();
    record.insert("object".into(), Value::from(kind.name));
    record.insert("id".into(), Value::from(881));
    record.insert("version".into(), Value::from(3));
    for spec in kind.fields {
        let value = match (spec.name, status) {
            ("status", Some(status)) => Value::from(status),
            _ => example_value(spec),
        };
        record.insert(spec.name.into(), value);
    }
    record.insert(
        "created_at".into(),
        Value::from("2026-12-01T08:55:12.000000Z"),
    );
    record.insert(
        "updated_at".into(),
        Value::from("2026-12-03T16:07:15.123456Z"),
    );
    Value::Object(record)
}
