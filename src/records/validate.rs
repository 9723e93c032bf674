//! Validation of record bodies and JSON merge patches (RFC 7386).
//!
//! Messages describe the rule that was broken and name the field; they never
//! repeat the value that was sent (it may be patient data).

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::schema::{ADDRESS_FIELDS, Default, FieldKind, RecordType};
use crate::store::Reference;

/// Fields the server manages; clients cannot set them.
pub const READ_ONLY: &[&str] = &["object", "id", "version", "created_at", "updated_at"];

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// A valid set of field values, in schema order, with the references to check.
#[derive(Debug)]
pub struct Validated {
    pub fields: Map<String, Value>,
    pub references: Vec<Reference>,
}

/// Field names are echoed in errors; cap their length.
fn shown(name: &str) -> String {
    name.chars().take(64).collect()
}

/// Check the body of a create and fill in defaults.
pub fn for_create(kind: &RecordType, body: &Value) -> Result<Validated, Vec<FieldError>> {
    let Some(object) = body.as_object() else {
        return Err(vec![FieldError::new(
            "",
            "type",
            "the body must be a JSON object",
        )]);
    };
    let mut errors = Vec::new();
    for key in object.keys() {
        if READ_ONLY.contains(&key.as_str()) {
            errors.push(FieldError::new(
                key.as_str(),
                "read_only",
                "is set by the server",
            ));
        } else if kind.field(key).is_none() {
            errors.push(FieldError::new(
                shown(key),
                "unknown_field",
                "is not a field of this record type",
            ));
        }
    }
    let mut fields = Map::new();
    for spec in kind.fields {
        let value = match object.get(spec.name) {
            Some(value) if !value.is_null() => value.clone(),
            _ => match spec.default {
                Default::Str(s) => Value::from(s),
                Default::Bool(b) => Value::from(b),
                Default::None => Value::Null,
            },
        };
        fields.insert(spec.name.to_owned(), value);
    }
    finish(kind, fields, errors)
}

/// Apply a merge patch to the current field values and check the result.
/// `current` is the record as the API returns it.
pub fn for_patch(
    kind: &RecordType,
    current: &Value,
    patch: &Value,
) -> Result<Validated, Vec<FieldError>> {
    let Some(patch) = patch.as_object() else {
        return Err(vec![FieldError::new(
            "",
            "type",
            "a merge patch must be a JSON object",
        )]);
    };
    let mut errors = Vec::new();
    let mut fields = Map::new();
    for spec in kind.fields {
        let value = current.get(spec.name).cloned().unwrap_or(Value::Null);
        fields.insert(spec.name.to_owned(), value);
    }
    for (key, change) in patch {
        if READ_ONLY.contains(&key.as_str()) {
            if current.get(key) != Some(change) {
                errors.push(FieldError::new(
                    key.as_str(),
                    "read_only",
                    "is set by the server",
                ));
            }
            continue;
        }
        let Some(spec) = kind.field(key) else {
            errors.push(FieldError::new(
                shown(key),
                "unknown_field",
                "is not a field of this record type",
            ));
            continue;
        };
        let merged = merge(
            fields.get(spec.name).cloned().unwrap_or(Value::Null),
            change,
        );
        fields.insert(spec.name.to_owned(), merged);
    }
    finish(kind, fields, errors)
}

/// RFC 7386: objects merge member by member, `null` removes, anything else replaces.
fn merge(target: Value, patch: &Value) -> Value {
    match patch {
        Value::Object(members) => {
            let mut base = match target {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            for (key, value) in members {
                if value.is_null() {
                    base.remove(key);
                } else {
                    let inner = base.remove(key).unwrap_or(Value::Null);
                    base.insert(key.clone(), merge(inner, value));
                }
            }
            Value::Object(base)
        }
        other => other.clone(),
    }
}

fn finish(
    kind: &RecordType,
    mut fields: Map<String, Value>,
    mut errors: Vec<FieldError>,
) -> Result<Validated, Vec<FieldError>> {
    let mut references = Vec::new();
    for spec in kind.fields {
        let value = fields.get(spec.name).cloned().unwrap_or(Value::Null);
        if value.is_null() {
            if spec.required {
                errors.push(FieldError::new(spec.name, "required", "is required"));
            }
            continue;
        }
        match check_value(spec.name, spec.kind, &value) {
            Ok(normalized) => {
                if let FieldKind::Reference(target) = spec.kind {
                    references.push(Reference {
                        field: spec.name.to_owned(),
                        record_type: target.to_owned(),
                        id: normalized.as_i64().unwrap_or_default(),
                    });
                }
                fields.insert(spec.name.to_owned(), normalized);
            }
            Err(err) => errors.push(err),
        }
    }
    if errors.is_empty() {
        check_order(&fields, "start_at", "end_at", &mut errors);
        check_order(&fields, "start_date", "end_date", &mut errors);
    }
    if errors.is_empty() {
        Ok(Validated { fields, references })
    } else {
        Err(errors)
    }
}

/// `later` must come after `earlier` when both are set (instants strictly,
/// dates on or after).
fn check_order(
    fields: &Map<String, Value>,
    earlier: &str,
    later: &str,
    errors: &mut Vec<FieldError>,
) {
    let (Some(Value::String(a)), Some(Value::String(b))) = (fields.get(earlier), fields.get(later))
    else {
        return;
    };
    let ordered = match (
        DateTime::parse_from_rfc3339(a),
        DateTime::parse_from_rfc3339(b),
    ) {
        (Ok(a), Ok(b)) => b > a,
        _ => b >= a,
    };
    if !ordered {
        errors.push(FieldError::new(
            later,
            "order",
            format!("must be after {earlier}"),
        ));
    }
}

fn check_value(name: &str, kind: FieldKind, value: &Value) -> Result<Value, FieldError> {
    let wrong = |code: &'static str, message: String| Err(FieldError::new(name, code, message));
    match kind {
        FieldKind::Text { max } => match value.as_str() {
            Some(s) if s.trim().is_empty() => wrong("blank", "must not be blank".into()),
            Some(s) if s.chars().count() > max => {
                wrong("too_long", format!("must be at most {max} characters"))
            }
            Some(_) => Ok(value.clone()),
            None => wrong("type", "must be a string".into()),
        },
        FieldKind::Email => match value.as_str() {
            Some(s) if is_email(s) => Ok(value.clone()),
            _ => wrong("format", "must be an email address".into()),
        },
        FieldKind::Date => match value.as_str() {
            Some(s) if s.len() == 10 && NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => {
                Ok(value.clone())
            }
            _ => wrong("format", "must be a date in the form YYYY-MM-DD".into()),
        },
        FieldKind::Instant => match value.as_str().map(DateTime::parse_from_rfc3339) {
            Some(Ok(instant)) => Ok(Value::from(
                instant
                    .with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            )),
            _ => wrong(
                "format",
                "must be an RFC 3339 date-time with an offset".into(),
            ),
        },
        FieldKind::Integer { min, max } => match value.as_i64() {
            Some(n) if n < min || n > max => {
                wrong("range", format!("must be between {min} and {max}"))
            }
            Some(_) => Ok(value.clone()),
            None => wrong("type", "must be an integer".into()),
        },
        FieldKind::Decimal { min, max } => match value.as_f64() {
            Some(n) if !(min..=max).contains(&n) => {
                wrong("range", format!("must be between {min} and {max}"))
            }
            Some(_) => Ok(value.clone()),
            None => wrong("type", "must be a number".into()),
        },
        FieldKind::Bool => match value {
            Value::Bool(_) => Ok(value.clone()),
            _ => wrong("type", "must be true or false".into()),
        },
        FieldKind::Enum(allowed) => match value.as_str() {
            Some(s) if allowed.contains(&s) => Ok(value.clone()),
            _ => wrong("enum", format!("must be one of: {}", allowed.join(", "))),
        },
        FieldKind::Reference(target) => match value.as_i64() {
            Some(id) if id > 0 => Ok(value.clone()),
            _ => wrong("type", format!("must be the integer id of a {target}")),
        },
        FieldKind::Address => check_address(name, value),
    }
}

fn check_address(name: &str, value: &Value) -> Result<Value, FieldError> {
    let Some(object) = value.as_object() else {
        return Err(FieldError::new(name, "type", "must be an object"));
    };
    let mut address = Map::new();
    for key in object.keys() {
        if !ADDRESS_FIELDS.contains(&key.as_str()) {
            return Err(FieldError::new(
                format!("{name}.{}", shown(key)),
                "unknown_field",
                "is not a field of an address",
            ));
        }
    }
    for field in ADDRESS_FIELDS {
        match object.get(*field) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.chars().count() <= 200 => {
                address.insert((*field).to_owned(), Value::from(s.as_str()));
            }
            Some(Value::String(_)) => {
                return Err(FieldError::new(
                    format!("{name}.{field}"),
                    "too_long",
                    "must be at most 200 characters",
                ));
            }
            Some(_) => {
                return Err(FieldError::new(
                    format!("{name}.{field}"),
                    "type",
                    "must be a string",
                ));
            }
        }
    }
    Ok(Value::Object(address))
}

fn is_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::schema::{APPOINTMENT_TYPE, PATIENT_TYPE};
    use serde_json::json;

    #[test]
    fn create_fills_defaults_and_rejects_unknown_fields() {
        let ok = for_create(
            &PATIENT_TYPE,
            &json!({"first_name": "A", "last_name": "B", "date_of_birth": "1990-02-28"}),
        )
        .expect("valid");
        assert_eq!(ok.fields["sex"], Value::Null);
        let errors = for_create(&PATIENT_TYPE, &json!({"first_name": "A", "shoe": 1})).unwrap_err();
        let codes: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert!(codes.contains(&("shoe", "unknown_field")));
        assert!(codes.contains(&("last_name", "required")));
        assert!(codes.contains(&("date_of_birth", "required")));
    }

    #[test]
    fn formats_are_strict() {
        for bad in [
            "1990-2-28",
            "1990-02-30",
            "28/02/1990",
            "1990-02-28T00:00:00Z",
        ] {
            let errors = for_create(
                &PATIENT_TYPE,
                &json!({"first_name": "A", "last_name": "B", "date_of_birth": bad}),
            )
            .unwrap_err();
            assert_eq!(errors[0].field, "date_of_birth", "{bad}");
            assert!(!errors[0].message.contains(bad));
        }
    }

    #[test]
    fn end_must_follow_start_and_merge_patch_removes_with_null() {
        let body = json!({"patient_id": 1, "provider_id": 2,
            "start_at": "2026-01-01T10:00:00+01:00", "end_at": "2026-01-01T09:00:00Z"});
        let errors = for_create(&APPOINTMENT_TYPE, &body).unwrap_err();
        assert_eq!(errors[0].field, "end_at");
        let current = json!({"first_name": "A", "last_name": "B", "date_of_birth": "1990-01-01",
            "address": {"city": "X", "line1": "Y"}});
        let patched =
            for_patch(&PATIENT_TYPE, &current, &json!({"address": {"city": null}})).unwrap();
        assert_eq!(patched.fields["address"], json!({"line1": "Y"}));
        let errors = for_patch(&PATIENT_TYPE, &current, &json!({"last_name": null})).unwrap_err();
        assert_eq!(errors[0].code, "required");
    }
}
