//! The OpenAPI 3.1 document, generated from the access table (every route)
//! and the record schemas (every field), so it cannot drift from the code.

use std::sync::OnceLock;

use axum::Json;
use axum::http::Method;
use serde_json::{Map, Value, json};

mod webhooks;

use super::access::{self, Access};
use crate::records::json_schema;
use crate::records::schema::{FieldSpec, RECORD_TYPES, RecordType};

pub async fn serve() -> Json<Value> {
    Json(document().clone())
}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

fn build() -> Value {
    let mut paths = Map::new();
    for rule in access::table() {
        let path = rule.path.replace("{*", "{");
        let operation = operation(&rule.method, &rule.path, rule.access);
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[rule.method.as_str().to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "chartwire",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Health records behind a versioned API; every change becomes an event, \
                readable through the change feed. Errors are RFC 9457 problem details.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer cwk_…`"},
                "basicAuth": {"type": "http", "scheme": "basic", "description": "Any user name, the API key as the password."},
            },
            "schemas": schemas(),
        },
    })
}

pub(super) fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

pub(super) fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

pub(super) fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": reference("ProblemDetails")}},
    })
}

pub(super) fn error_responses(statuses: &[u16]) -> Map<String, Value> {
    let mut responses = Map::new();
    for status in statuses {
        let text = match status {
            400 => "A parameter or the body is malformed.",
            401 => "No API key, or an unknown or revoked one.",
            403 => "The key's role may not call this route.",
            404 => "No such resource.",
            409 => "A conflicting change; retry.",
            410 => "The cursor is past the retention period.",
            412 => "`If-Match` names another version.",
            413 => "The body is larger than 1 MiB.",
            415 => "The body is not JSON.",
            422 => "The body breaks a rule; `errors` names the fields.",
            503 => "The database is unavailable; retry shortly.",
            _ => "Error.",
        };
        responses.insert(status.to_string(), problem(text));
    }
    responses
}

pub(super) fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

pub(super) fn path_param(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

fn if_match_param() -> Value {
    json!({"name": "If-Match", "in": "header", "required": false,
        "description": "The ETag of the version the change applies to (e.g. `\"3\"`); 412 when the record is at another.",
        "schema": {"type": "string"}})
}

fn etag_headers() -> Value {
    json!({"ETag": {"description": "The record's version, quoted.", "schema": {"type": "string"}}})
}

fn operation(method: &Method, path: &str, access: Access) -> Value {
    let mut op = match (method.as_str(), path) {
        ("GET", "/healthz") => json!({"summary": "Liveness", "tags": ["operations"],
            "responses": {"200": {"description": "The process is up.", "content": json_content(json!({"type": "object"}))}}}),
        ("GET", "/readyz") => {
            json!({"summary": "Readiness: the database answers", "tags": ["operations"],
            "responses": {"200": {"description": "Ready, with the store's durability settings.", "content": json_content(json!({"type": "object"}))},
                "503": problem("The database is unavailable.")}})
        }
        ("GET", "/metrics") => json!({"summary": "Prometheus metrics", "tags": ["operations"],
            "responses": {"200": {"description": "Metrics in the text format.", "content": {"text/plain": {"schema": {"type": "string"}}}}}}),
        ("GET", "/openapi.json") => json!({"summary": "This document", "tags": ["operations"],
            "responses": {"200": {"description": "OpenAPI 3.1.", "content": json_content(json!({"type": "object"}))}}}),
        ("GET", "/docs") => {
            json!({"summary": "Interactive API documentation", "tags": ["operations"],
            "responses": {"308": {"description": "Redirect to the documentation page."}}})
        }
        ("GET", "/docs/{*file}") => {
            json!({"summary": "A file of the documentation page", "tags": ["operations"],
            "parameters": [path_param("file", json!({"type": "string"}))],
            "responses": {"200": {"description": "The file."}, "404": problem("No such file.")}})
        }
        ("GET", "/api/v1/keys") => {
            let mut responses = error_responses(&[400, 401, 403, 503]);
            responses.insert("200".into(), json!({"description": "API keys (never their secrets).", "content": json_content(reference("ApiKeyList"))}));
            json!({"summary": "List API keys", "tags": ["keys"],
                "parameters": [limit_param(200, 50), query_param("cursor", "`next_cursor` of the previous page.", json!({"type": "string"}))],
                "responses": responses})
        }
        ("POST", "/api/v1/keys") => {
            let mut responses = error_responses(&[400, 401, 403, 413, 415, 422, 503]);
            responses.insert("201".into(), json!({"description": "The key; `key` is shown this once.", "content": json_content(reference("ApiKeyCreated"))}));
            json!({"summary": "Create an API key", "tags": ["keys"],
                "requestBody": {"required": true, "content": json_content(reference("ApiKeyCreate"))},
                "responses": responses})
        }
        ("DELETE", "/api/v1/keys/{id}") => {
            let mut responses = error_responses(&[401, 403, 404, 409, 503]);
            responses.insert("204".into(), json!({"description": "Revoked."}));
            json!({"summary": "Revoke an API key", "tags": ["keys"],
                "parameters": [path_param("id", json!({"type": "string"}))], "responses": responses})
        }
        ("GET", "/api/v1/changes") => {
            let mut responses = error_responses(&[400, 401, 403, 410, 503]);
            responses.insert("200".into(), json!({"description": "Events in sequence order.", "content": json_content(reference("ChangePage"))}));
            json!({"summary": "Read the change feed", "tags": ["changes"],
                "description": "Follow `next_cursor` to see every committed event exactly once, in order. `wait` long-polls until a matching event commits.",
                "parameters": [
                    query_param("after", "A cursor from `next_cursor`; without it, from the oldest retained event.", json!({"type": "string"})),
                    limit_param(1000, 100),
                    query_param("types", "Comma-separated event names, `<record type>.*` or `*`.", json!({"type": "string"})),
                    query_param("wait", "Seconds to wait for an event when none is ready.", json!({"type": "integer", "minimum": 0, "maximum": 30})),
                ],
                "responses": responses})
        }
        ("GET", "/api/v1/webhooks/event-types") => {
            let mut responses = error_responses(&[401, 403]);
            responses.insert("200".into(), json!({"description": "Every event type.", "content": json_content(reference("EventTypeList"))}));
            json!({"summary": "The catalogue of event types", "tags": ["webhooks"], "responses": responses})
        }
        _ => match webhooks::operation(method, path) {
            Some(op) => op,
            None => record_operation(method, path),
        },
    };
    match access {
        Access::Public => op["security"] = json!([]),
        Access::Roles(roles) => {
            op["security"] = json!([{"bearerAuth": []}, {"basicAuth": []}]);
            op["responses"]["429"] =
                problem("This key's request rate limit was reached; see Retry-After.");
            op["responses"]["408"] = problem("The request took longer than the server allows.");
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            op["x-roles"] = json!(names);
        }
    }
    op
}

pub(super) fn limit_param(max: i64, default: i64) -> Value {
    query_param(
        "limit",
        "How many items per page.",
        json!({"type": "integer", "minimum": 1, "maximum": max, "default": default}),
    )
}

fn record_operation(method: &Method, path: &str) -> Value {
    let kind = RECORD_TYPES
        .iter()
        .find(|k| {
            let collection = format!("/api/v1/{}", k.plural);
            path == collection || path == format!("{collection}/{{id}}")
        })
        .expect("every remaining route is a record route");
    let title = kind.title;
    let id = path_param("id", json!({"type": "integer", "minimum": 1}));
    let item = path.ends_with("{id}");
    match (method.as_str(), item) {
        ("GET", false) => {
            let mut params = vec![
                limit_param(200, 50),
                query_param(
                    "cursor",
                    "`next_cursor` of the previous page.",
                    json!({"type": "string"}),
                ),
            ];
            if kind.patient_scoped() {
                params.push(query_param(
                    "patient_id",
                    "Only this patient's records.",
                    json!({"type": "integer", "minimum": 1}),
                ));
            }
            let mut responses = error_responses(&[400, 401, 403, 503]);
            responses.insert("200".into(), json!({"description": "A page of records, by id.", "content": json_content(reference(&format!("{title}List")))}));
            json!({"summary": format!("List {}", kind.plural), "tags": [kind.plural], "parameters": params, "responses": responses})
        }
        ("POST", false) => {
            let mut responses = error_responses(&[400, 401, 403, 413, 415, 422, 503]);
            responses.insert(
                "201".into(),
                json!({"description": "Created.", "headers": {
                "ETag": etag_headers()["ETag"],
                "Location": {"description": "The new record's URL.", "schema": {"type": "string"}}},
                "content": json_content(reference(title))}),
            );
            json!({"summary": format!("Create a {}", kind.name), "tags": [kind.plural],
                "description": kind.description,
                "requestBody": {"required": true, "content": json_content(reference(&format!("{title}Create")))},
                "responses": responses})
        }
        ("GET", true) => {
            let mut responses = error_responses(&[401, 403, 404, 503]);
            responses.insert("200".into(), json!({"description": "The record.", "headers": etag_headers(), "content": json_content(reference(title))}));
            json!({"summary": format!("Read a {}", kind.name), "tags": [kind.plural], "parameters": [id], "responses": responses})
        }
        ("PATCH", true) => {
            let mut responses =
                error_responses(&[400, 401, 403, 404, 409, 412, 413, 415, 422, 503]);
            responses.insert("200".into(), json!({"description": "The changed record.", "headers": etag_headers(), "content": json_content(reference(title))}));
            let schema = reference(&format!("{title}Patch"));
            json!({"summary": format!("Change a {} (JSON merge patch)", kind.name), "tags": [kind.plural],
                "parameters": [id, if_match_param()],
                "requestBody": {"required": true, "content": {
                    "application/merge-patch+json": {"schema": schema},
                    "application/json": {"schema": schema}}},
                "responses": responses})
        }
        ("DELETE", true) => {
            let mut responses = error_responses(&[400, 401, 403, 404, 409, 412, 503]);
            responses.insert(
                "204".into(),
                json!({"description": "Deleted (kept as a tombstone)."}),
            );
            json!({"summary": format!("Delete a {}", kind.name), "tags": [kind.plural],
                "parameters": [id, if_match_param()], "responses": responses})
        }
        _ => unreachable!("the access table lists only these record operations"),
    }
}

fn field_schema(spec: &FieldSpec) -> Value {
    json_schema::field_schema(spec, &reference("Address"))
}

pub(super) fn nullable(schema: Value) -> Value {
    json_schema::nullable(schema)
}

fn record_schemas(kind: &RecordType, schemas: &mut Map<String, Value>) {
    let title = kind.title;
    let mut full = Map::new();
    full.insert(
        "object".into(),
        json!({"type": "string", "const": kind.name}),
    );
    full.insert("id".into(), json!({"type": "integer"}));
    full.insert("version".into(), json!({"type": "integer", "minimum": 1}));
    let mut create = Map::new();
    let mut patch = Map::new();
    let mut required = Vec::new();
    for spec in kind.fields {
        let schema = field_schema(spec);
        full.insert(spec.name.into(), nullable(schema.clone()));
        if spec.required {
            required.push(spec.name);
            create.insert(spec.name.into(), schema.clone());
            patch.insert(spec.name.into(), schema);
        } else {
            create.insert(spec.name.into(), nullable(schema.clone()));
            patch.insert(spec.name.into(), nullable(schema));
        }
    }
    full.insert(
        "created_at".into(),
        json!({"type": "string", "format": "date-time"}),
    );
    full.insert(
        "updated_at".into(),
        json!({"type": "string", "format": "date-time"}),
    );
    let all: Vec<&String> = full.keys().collect();
    schemas.insert(
        title.into(),
        json!({"type": "object", "description": kind.description, "properties": full, "required": all}),
    );
    schemas.insert(
        format!("{title}Create"),
        json!({"type": "object", "properties": create, "required": required, "additionalProperties": false}),
    );
    schemas.insert(
        format!("{title}Patch"),
        json!({"type": "object", "properties": patch, "additionalProperties": false,
            "description": "A JSON merge patch (RFC 7386): `null` removes a value."}),
    );
    schemas.insert(format!("{title}List"), list_of(reference(title)));
}

pub(super) fn list_of(item: Value) -> Value {
    json!({"type": "object", "required": ["data", "next_cursor", "has_more"], "properties": {
        "data": {"type": "array", "items": item},
        "next_cursor": {"type": ["string", "null"]},
        "has_more": {"type": "boolean"},
    }})
}

fn schemas() -> Map<String, Value> {
    let mut schemas = Map::new();
    let field_error = json!({"type": "object", "required": ["field", "code", "message"], "properties": {
        "field": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}}});
    schemas.insert(
        "ProblemDetails".into(),
        json!({"type": "object", "required": ["type", "title", "status"],
        "description": "RFC 9457 problem details. Never contains a value that was sent.",
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"}, "field": {"type": "string"},
            "errors": {"type": "array", "items": field_error}}}),
    );
    schemas.insert("Address".into(), json_schema::address_schema());
    for kind in RECORD_TYPES {
        record_schemas(kind, &mut schemas);
    }
    let event = json!({"type": "object", "required": ["id", "type", "version", "sequence", "occurred_at", "actor", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^evt_[0-9A-Z]{26}$"},
        "type": {"type": "string"},
        "version": {"type": "integer"},
        "sequence": {"type": "integer"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "actor": {"type": "object", "required": ["type"], "properties": {
            "type": {"type": "string"}, "id": {"type": ["string", "null"]}}},
        "data": {"type": "object", "description": "The record as the API returns it; `changed_fields` on `.modified`."},
    }});
    schemas.insert("Event".into(), event);
    schemas.insert(
        "ChangePage".into(),
        json!({"type": "object", "required": ["data", "next_cursor", "has_more"], "properties": {
        "data": {"type": "array", "items": reference("Event")},
        "next_cursor": {"type": "string"},
        "has_more": {"type": "boolean"}}}),
    );
    schemas.insert(
        "EventType".into(),
        json!({"type": "object", "required": ["name", "description", "category", "schema", "example"], "properties": {
        "name": {"type": "string"}, "description": {"type": "string"},
        "record_type": {"type": ["string", "null"]}, "category": {"type": "string"},
        "schema": {"type": "object", "description": "JSON Schema (2020-12) of the event body."},
        "example": {"type": "object", "description": "An example body."}}}));
    schemas.insert("EventTypeList".into(), list_of(reference("EventType")));
    let role = json!({"type": "string", "enum": ["superadmin", "staff", "integration"]});
    let key_properties = json!({
        "id": {"type": "string"}, "name": {"type": "string"}, "role": role,
        "created_at": {"type": "string", "format": "date-time"},
        "last_used_at": {"type": ["string", "null"], "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"}});
    schemas.insert("ApiKey".into(), json!({"type": "object", "required": ["id", "name", "role", "created_at"], "properties": key_properties}));
    schemas.insert("ApiKeyList".into(), list_of(reference("ApiKey")));
    webhooks::schemas(&mut schemas);
    let mut created = key_properties.clone();
    created["key"] =
        json!({"type": "string", "description": "The secret; shown only in this answer."});
    schemas.insert("ApiKeyCreated".into(), json!({"type": "object", "required": ["id", "name", "role", "created_at", "key"], "properties": created}));
    schemas.insert("ApiKeyCreate".into(), json!({"type": "object", "required": ["name", "role"], "additionalProperties": false,
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S"}, "role": role}}));
    schemas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target.clone());
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut found = Vec::new();
        refs(doc, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let name = target.trim_start_matches("#/components/schemas/");
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{target} does not resolve"
            );
        }
    }
}
