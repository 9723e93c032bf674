//! The endpoint form (add and edit): what it shows, and how a submitted
//! form becomes the same JSON body (create) or merge patch (edit) the API
//! takes, so the endpoint service validates both alike.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::form::Fields;
use crate::events::catalogue::{self, Category};
use crate::records::validate::FieldError;

/// One event type's checkbox.
pub struct EventOption {
    pub name: String,
    pub description: String,
    pub checked: bool,
}

/// The checkboxes of one record type (or of the operational events), with
/// the "all events of this kind" pattern.
pub struct EventGroup {
    pub label: String,
    pub pattern: String,
    pub all_checked: bool,
    pub events: Vec<EventOption>,
}

/// A custom header row. Existing values are never shown: the placeholder
/// carries their masked form, and an empty value keeps them.
pub struct HeaderRow {
    pub name: String,
    pub placeholder: String,
}

pub struct EndpointForm {
    /// `None` when adding.
    pub id: Option<String>,
    pub url: String,
    pub description: String,
    pub ordering: String,
    pub content: String,
    pub signature: String,
    pub enabled: bool,
    pub rate_limit: String,
    pub max_in_flight: String,
    /// `*`: every record event.
    pub all_records: bool,
    pub groups: Vec<EventGroup>,
    pub headers: Vec<HeaderRow>,
    /// Field (as the API names it) and message.
    pub errors: Vec<(String, String)>,
}

/// Empty rows offered for new headers.
const SPARE_HEADER_ROWS: usize = 2;

fn groups_for(patterns: &[String]) -> Vec<EventGroup> {
    let star = patterns.iter().any(|p| p == "*");
    let mut groups: Vec<EventGroup> = Vec::new();
    for event in catalogue::all() {
        let (key, label) = match (event.category, event.record_type) {
            (Category::Record, Some(kind)) => (kind.to_owned(), kind.replace('_', " ")),
            (Category::Operational, _) => ("endpoint".to_owned(), "endpoint (operational)".into()),
            _ => continue,
        };
        let pattern = format!("{key}.*");
        let covered = patterns.contains(&pattern) || (star && event.category == Category::Record);
        if groups.last().is_none_or(|g| g.pattern != pattern) {
            groups.push(EventGroup {
                label: capitalise(&label),
                all_checked: covered,
                pattern: pattern.clone(),
                events: Vec::new(),
            });
        }
        let group = groups.last_mut().expect("just pushed");
        group.events.push(EventOption {
            checked: covered || patterns.contains(&event.name),
            name: event.name.clone(),
            description: event.description.clone(),
        });
    }
    groups
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Drop the names a ticked pattern already covers: `*` covers every record
/// event, `patient.*` every patient event.
pub fn normalise_events(ticked: &[&str]) -> Vec<String> {
    let star = ticked.contains(&"*");
    let mut kept = Vec::new();
    for name in ticked.iter().map(|n| n.trim()) {
        let record_pattern = name.ends_with(".*") && name != "endpoint.*";
        let event = catalogue::find(name);
        let is_record = record_pattern || event.is_some_and(|e| e.category == Category::Record);
        if star && is_record {
            continue;
        }
        let group = event.and_then(|e| match e.category {
            Category::Record => e.record_type.map(|t| format!("{t}.*")),
            Category::Operational => Some("endpoint.*".to_owned()),
            Category::Test => None,
        });
        if group.is_some_and(|g| ticked.contains(&g.as_str())) {
            continue;
        }
        if !name.is_empty() && !kept.iter().any(|k| k == name) {
            kept.push(name.to_owned());
        }
    }
    kept
}

impl EndpointForm {
    pub fn blank() -> EndpointForm {
        EndpointForm {
            id: None,
            url: String::new(),
            description: String::new(),
            ordering: "none".into(),
            content: "record".into(),
            signature: "hmac".into(),
            enabled: true,
            rate_limit: String::new(),
            max_in_flight: String::new(),
            all_records: false,
            groups: groups_for(&[]),
            headers: header_rows(None),
            errors: Vec::new(),
        }
    }

    /// The form for an existing endpoint, as the API shows it.
    pub fn from_view(view: &Value) -> EndpointForm {
        let patterns = super::views::strings(&view["events"]);
        EndpointForm {
            id: view["id"].as_str().map(str::to_owned),
            url: super::views::text(view, "url"),
            description: super::views::text(view, "description"),
            ordering: super::views::text(view, "ordering"),
            content: super::views::text(view, "content"),
            signature: super::views::text(view, "signature"),
            enabled: view["status"] == "enabled",
            rate_limit: view["rate_limit_per_second"]
                .as_i64()
                .map(|n| n.to_string())
                .unwrap_or_default(),
            max_in_flight: view["max_in_flight"]
                .as_i64()
                .map(|n| n.to_string())
                .unwrap_or_default(),
            all_records: patterns.iter().any(|p| p == "*"),
            groups: groups_for(&patterns),
            headers: header_rows(Some(view)),
            errors: Vec::new(),
        }
    }

    /// The submitted form, to show again (header values are never shown
    /// again), and the body or patch it asks for. `current` is the
    /// endpoint being edited, as the API shows it.
    pub fn submitted(
        fields: &Fields,
        current: Option<&Value>,
    ) -> (EndpointForm, Result<Value, Vec<FieldError>>) {
        let mut errors = Vec::new();
        let events = normalise_events(&fields.all("events"));
        let mut body = Map::new();
        body.insert("url".into(), json!(fields.get("url")));
        if events.is_empty() {
            errors.push(FieldError::new(
                "events",
                "required",
                "tick at least one event",
            ));
        }
        body.insert("events".into(), json!(events));
        let description = fields.get("description");
        body.insert(
            "description".into(),
            if description.is_empty() {
                Value::Null
            } else {
                json!(description)
            },
        );
        // A choice left unmade keeps the default (or, on edit, what is set).
        for choice in ["ordering", "content"] {
            if !fields.get(choice).is_empty() {
                body.insert(choice.into(), json!(fields.get(choice)));
            }
        }
        for (field, name) in [
            ("rate_limit", "rate_limit_per_second"),
            ("max_in_flight", "max_in_flight"),
        ] {
            let text = fields.get(field);
            let value = if text.is_empty() {
                Value::Null
            } else if let Ok(n) = text.parse::<i64>() {
                json!(n)
            } else {
                errors.push(FieldError::new(name, "type", "must be a whole number"));
                Value::Null
            };
            body.insert(name.into(), value);
        }
        let enabled = fields.has("enabled");
        match current {
            None => {
                body.insert("enabled".into(), json!(enabled));
                if !fields.get("signature").is_empty() {
                    body.insert("signature".into(), json!(fields.get("signature")));
                }
            }
            Some(_) => {
                let was = fields.get("enabled_was") == "on";
                if enabled != was {
                    body.insert("enabled".into(), json!(enabled));
                }
            }
        }
        let current_headers = current.and_then(|c| c["headers"].as_object());
        let headers = submitted_headers(fields, current_headers, &mut errors);
        body.insert("headers".into(), Value::Object(headers));
        let form = EndpointForm {
            id: current.and_then(|c| c["id"].as_str().map(str::to_owned)),
            url: fields.get("url").to_owned(),
            description: description.to_owned(),
            ordering: fields.get("ordering").to_owned(),
            content: fields.get("content").to_owned(),
            signature: match current {
                Some(c) => super::views::text(c, "signature"),
                None => fields.get("signature").to_owned(),
            },
            enabled,
            rate_limit: fields.get("rate_limit").to_owned(),
            max_in_flight: fields.get("max_in_flight").to_owned(),
            all_records: events.iter().any(|p| p == "*"),
            groups: groups_for(&events),
            headers: header_rows(current),
            errors: Vec::new(),
        };
        if errors.is_empty() {
            (form, Ok(Value::Object(body)))
        } else {
            (form, Err(errors))
        }
    }

    pub fn with_errors(mut self, errors: &[FieldError]) -> EndpointForm {
        self.errors = errors
            .iter()
            .map(|e| (e.field.clone(), e.message.clone()))
            .collect();
        self
    }

    /// The messages about a field (and its parts, e.g. `headers.X`).
    pub fn error(&self, field: &str) -> Option<String> {
        let messages: Vec<String> = self
            .errors
            .iter()
            .filter(|(f, _)| f == field || f.starts_with(&format!("{field}.")))
            .map(|(f, m)| match f.strip_prefix(&format!("{field}.")) {
                Some(part) => format!("{part}: {m}"),
                None => m.clone(),
            })
            .collect();
        (!messages.is_empty()).then(|| messages.join("; "))
    }

    pub fn is_new(&self) -> bool {
        self.id.is_none()
    }

    pub fn action(&self) -> String {
        match &self.id {
            Some(id) => format!("/admin/integrations/{id}/edit"),
            None => "/admin/integrations".to_owned(),
        }
    }
}

/// A row per existing header of `current` (the endpoint as the API shows
/// it), then empty rows for new ones.
fn header_rows(current: Option<&Value>) -> Vec<HeaderRow> {
    let existing = current.and_then(|c| c["headers"].as_object());
    existing
        .into_iter()
        .flatten()
        .map(|(name, masked)| HeaderRow {
            name: name.clone(),
            placeholder: format!("unchanged ({})", masked.as_str().unwrap_or("…")),
        })
        .chain((0..SPARE_HEADER_ROWS).map(|_| HeaderRow {
            name: String::new(),
            placeholder: String::new(),
        }))
        .collect()
}

/// The `headers` object of the body: on edit a merge, where a kept name
/// with an empty value sends back the masked form (keeping the stored
/// value) and a name no longer listed is removed.
fn submitted_headers(
    fields: &Fields,
    current: Option<&Map<String, Value>>,
    errors: &mut Vec<FieldError>,
) -> Map<String, Value> {
    let names = fields.all("header_name");
    let values = fields.all("header_value");
    let mut wanted: BTreeMap<String, Value> = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let name = name.trim();
        let value = values.get(i).copied().unwrap_or("");
        if name.is_empty() {
            if !value.is_empty() {
                errors.push(FieldError::new(
                    "headers",
                    "header_name",
                    "a header value needs a name",
                ));
            }
            continue;
        }
        let existing = current.and_then(|c| {
            c.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, masked)| masked.clone())
        });
        match (value.is_empty(), existing) {
            (false, _) => {
                wanted.insert(name.to_owned(), json!(value));
            }
            (true, Some(masked)) => {
                wanted.insert(name.to_owned(), masked);
            }
            (true, None) => errors.push(FieldError::new(
                format!("headers.{}", name.chars().take(64).collect::<String>()),
                "required",
                "needs a value",
            )),
        }
    }
    let mut object: Map<String, Value> = wanted.into_iter().collect();
    if let Some(current) = current {
        for name in current.keys() {
            if !object.keys().any(|k| k.eq_ignore_ascii_case(name)) {
                object.insert(name.clone(), Value::Null);
            }
        }
    }
    object
}

#[cfg(test)]
mod tests {
    use super::normalise_events;

    #[test]
    fn ticked_patterns_cover_their_events() {
        assert_eq!(
            normalise_events(&["patient.created", "patient.*", "appointment.created"]),
            vec!["patient.*", "appointment.created"]
        );
        assert_eq!(
            normalise_events(&["*", "patient.*", "lab_result.modified", "endpoint.created"]),
            vec!["*", "endpoint.created"]
        );
        assert_eq!(
            normalise_events(&["endpoint.*", "endpoint.created"]),
            vec!["endpoint.*"]
        );
    }
}
