//! The OpenAPI description of the webhook routes and their schemas.

use axum::http::Method;
use serde_json::{Map, Value, json};

use super::{
    error_responses, json_content, limit_param, list_of, nullable, path_param, query_param,
    reference,
};

fn with_success(
    statuses: &[u16],
    code: &str,
    description: &str,
    schema: Option<Value>,
) -> Map<String, Value> {
    let mut responses = error_responses(statuses);
    let mut success = json!({"description": description});
    if let Some(schema) = schema {
        success["content"] = json_content(schema);
    }
    responses.insert(code.into(), success);
    responses
}

fn op(
    summary: &str,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Map<String, Value>,
) -> Value {
    let mut op = json!({"summary": summary, "tags": ["webhooks"], "parameters": params, "responses": responses});
    if let Some(schema) = body {
        op["requestBody"] = json!({"required": true, "content": json_content(schema)});
    }
    op
}

/// The operation for a webhook route, or `None` for other routes.
pub(super) fn operation(method: &Method, path: &str) -> Option<Value> {
    let endpoint_id = || path_param("id", json!({"type": "string"}));
    let delivery_id = || path_param("id", json!({"type": "string", "pattern": "^dlv_[0-9]+$"}));
    let cursor = || {
        query_param(
            "cursor",
            "`next_cursor` of the previous page.",
            json!({"type": "string"}),
        )
    };
    Some(match (method.as_str(), path) {
        ("GET", "/api/v1/webhooks/endpoints") => op(
            "List webhook endpoints",
            vec![limit_param(200, 50), cursor()],
            None,
            with_success(
                &[400, 401, 403, 503],
                "200",
                "Endpoints.",
                Some(reference("EndpointList")),
            ),
        ),
        ("POST", "/api/v1/webhooks/endpoints") => op(
            "Create a webhook endpoint",
            vec![],
            Some(reference("EndpointCreate")),
            with_success(
                &[400, 401, 403, 413, 415, 422, 503],
                "201",
                "Created.",
                Some(reference("Endpoint")),
            ),
        ),
        ("GET", "/api/v1/webhooks/endpoints/{id}") => op(
            "Read a webhook endpoint",
            vec![endpoint_id()],
            None,
            with_success(
                &[401, 403, 404, 503],
                "200",
                "The endpoint (header values masked).",
                Some(reference("Endpoint")),
            ),
        ),
        ("PATCH", "/api/v1/webhooks/endpoints/{id}") => op(
            "Change a webhook endpoint (JSON merge patch)",
            vec![endpoint_id()],
            Some(reference("EndpointPatch")),
            with_success(
                &[400, 401, 403, 404, 409, 413, 415, 422, 503],
                "200",
                "The changed endpoint.",
                Some(reference("Endpoint")),
            ),
        ),
        ("DELETE", "/api/v1/webhooks/endpoints/{id}") => op(
            "Delete a webhook endpoint (pending deliveries are cancelled)",
            vec![endpoint_id()],
            None,
            with_success(&[401, 403, 404, 503], "204", "Deleted.", None),
        ),
        ("POST", "/api/v1/webhooks/endpoints/{id}/test") => op(
            "Send a webhook.test event to this endpoint only",
            vec![endpoint_id()],
            None,
            with_success(
                &[401, 403, 404, 503],
                "202",
                "Queued.",
                Some(reference("TestSent")),
            ),
        ),
        ("GET", "/api/v1/webhooks/endpoints/{id}/secret") => op(
            "Reveal the endpoint's signing secret",
            vec![endpoint_id()],
            None,
            with_success(
                &[401, 403, 404, 503],
                "200",
                "The secret.",
                Some(reference("Secret")),
            ),
        ),
        ("POST", "/api/v1/webhooks/endpoints/{id}/rotate-secret") => op(
            "Issue a new signing secret (the old one keeps signing during the overlap)",
            vec![endpoint_id()],
            None,
            with_success(
                &[401, 403, 404, 409, 503],
                "200",
                "The new secret.",
                Some(reference("RotatedSecret")),
            ),
        ),
        ("GET", "/api/v1/webhooks/endpoints/{id}/deliveries") => op(
            "The endpoint's delivery log, newest first",
            vec![
                endpoint_id(),
                query_param(
                    "status",
                    "Only deliveries in this state.",
                    json!({"type": "string", "enum": ["pending", "succeeded", "failed", "cancelled"]}),
                ),
                query_param(
                    "event_type",
                    "Only deliveries of this event type.",
                    json!({"type": "string"}),
                ),
                limit_param(200, 50),
                cursor(),
            ],
            None,
            with_success(
                &[400, 401, 403, 404, 503],
                "200",
                "Deliveries.",
                Some(reference("DeliveryList")),
            ),
        ),
        ("POST", "/api/v1/webhooks/endpoints/{id}/recover") => op(
            "Re-queue failed deliveries since a time and deliver every matching event since then that has none",
            vec![endpoint_id()],
            Some(reference("RecoverRequest")),
            with_success(
                &[400, 401, 403, 404, 409, 413, 415, 422, 503],
                "200",
                "What was done.",
                Some(reference("Recovery")),
            ),
        ),
        ("GET", "/api/v1/webhooks/deliveries/{id}") => op(
            "A delivery with its attempts",
            vec![delivery_id()],
            None,
            with_success(
                &[401, 403, 404, 503],
                "200",
                "The delivery.",
                Some(reference("DeliveryDetail")),
            ),
        ),
        ("POST", "/api/v1/webhooks/deliveries/{id}/retry") => op(
            "Attempt a delivery again now",
            vec![delivery_id()],
            None,
            with_success(
                &[401, 403, 404, 409, 503],
                "202",
                "Queued.",
                Some(reference("DeliveryDetail")),
            ),
        ),
        ("GET", "/api/v1/webhooks/egress") => json!({
            "summary": "The source addresses of webhook requests", "tags": ["webhooks"],
            "responses": with_success(&[401, 403], "200", "Egress addresses.", Some(json!({"type": "object",
                "required": ["fixed", "addresses"], "properties": {
                    "fixed": {"type": "boolean"},
                    "addresses": {"type": "array", "items": {"type": "string"}},
                    "description": {"type": "string"}}}))),
        }),
        ("GET", "/api/v1/audit") => json!({
            "summary": "The audit log, newest first", "tags": ["audit"],
            "parameters": [
                limit_param(500, 100),
                cursor(),
                query_param("action", "Only entries with this action (e.g. endpoint.secret_revealed).", json!({"type": "string"})),
                query_param("since", "Only entries at or after this time.", json!({"type": "string", "format": "date-time"})),
            ],
            "responses": with_success(&[400, 401, 403, 503], "200", "Audit entries.", Some(reference("AuditList"))),
        }),
        _ => return None,
    })
}

fn endpoint_properties(for_request: bool) -> Map<String, Value> {
    let text = |max: usize| json!({"type": "string", "maxLength": max});
    let mut p = Map::new();
    p.insert("url".into(), json!({"type": "string", "maxLength": 2048, "description": "https:// with a host name (http and IP addresses only inside --endpoint-allow networks)."}));
    p.insert(
        "events".into(),
        json!({"type": "array", "minItems": 1, "maxItems": 200, "items": {"type": "string"},
        "description": "Event names, `<record type>.*`, `endpoint.*` or `*` (record events)."}),
    );
    p.insert(
        "headers".into(),
        json!({"type": "object", "additionalProperties": nullable(text(4096)),
        "description": "Custom headers. Values are write-only: they are shown masked."}),
    );
    p.insert("description".into(), nullable(text(500)));
    p.insert("enabled".into(), json!({"type": "boolean"}));
    p.insert(
        "ordering".into(),
        json!({"type": "string", "enum": ["none", "per_record"]}),
    );
    p.insert(
        "content".into(),
        json!({"type": "string", "enum": ["record", "ids"]}),
    );
    p.insert(
        "payload_version".into(),
        json!({"type": "integer", "enum": [1]}),
    );
    p.insert(
        "rate_limit_per_second".into(),
        nullable(json!({"type": "integer", "minimum": 1, "maximum": 100000})),
    );
    p.insert(
        "max_in_flight".into(),
        json!({"type": "integer", "minimum": 1, "maximum": 1000}),
    );
    p.insert("signature".into(), json!({"type": "string", "enum": ["hmac", "ed25519"],
        "description": "How requests are signed (v1 HMAC-SHA256 or v1a Ed25519); chosen at create."}));
    p.insert("client_certificate".into(), json!({"anyOf": [
        {"type": "object", "required": ["certificate", "private_key"], "additionalProperties": false,
         "properties": {"certificate": {"type": "string", "maxLength": 65536}, "private_key": {"type": "string", "maxLength": 65536}}},
        {"type": "object", "required": ["configured"], "properties": {"configured": {"type": "boolean"}}},
        {"type": "null"}],
        "description": "mTLS: a PEM chain and key presented to the endpoint. Write-only: read back as {\"configured\": bool}."}));
    if !for_request {
        p.insert(
            "client_certificate".into(),
            json!({"type": "object", "required": ["configured"],
            "properties": {"configured": {"type": "boolean"}}}),
        );
        p.insert("id".into(), json!({"type": "string"}));
        p.insert(
            "status".into(),
            json!({"type": "string", "enum": ["enabled", "disabled", "auto_disabled"]}),
        );
        p.insert(
            "disabled_reason".into(),
            json!({"type": ["string", "null"]}),
        );
        p.insert(
            "secret_rotation_ends_at".into(),
            json!({"type": ["string", "null"]}),
        );
        p.insert("created_at".into(), json!({"type": "string"}));
        p.insert("updated_at".into(), json!({"type": "string"}));
        p.insert("description".into(), json!({"type": ["string", "null"]}));
        p.insert(
            "rate_limit_per_second".into(),
            json!({"type": ["integer", "null"]}),
        );
        p.insert(
            "headers".into(),
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
        );
    }
    p
}

pub(super) fn schemas(schemas: &mut Map<String, Value>) {
    let mut full = endpoint_properties(false);
    let required: Vec<String> = full.keys().cloned().collect();
    full.insert("health".into(), json!({"type": "object",
        "description": "On reads: the outcome of the latest attempt (why deliveries fail, if they do).",
        "properties": {"last_attempt_at": {"type": ["string", "null"]}, "last_http_status": {"type": ["integer", "null"]},
            "last_error": {"type": ["string", "null"]}, "failing_since": {"type": ["string", "null"]}}}));
    schemas.insert(
        "Endpoint".into(),
        json!({"type": "object", "properties": full, "required": required}),
    );
    schemas.insert(
        "EndpointCreate".into(),
        json!({"type": "object", "properties": endpoint_properties(true),
        "required": ["url", "events"], "additionalProperties": false}),
    );
    schemas.insert("EndpointPatch".into(), json!({"type": "object", "properties": endpoint_properties(true),
        "additionalProperties": false, "description": "A JSON merge patch; `headers` merge name by name (`null` removes one)."}));
    schemas.insert("EndpointList".into(), list_of(reference("Endpoint")));
    schemas.insert("Secret".into(), json!({"type": "object", "required": ["signature"],
        "description": "HMAC endpoints: the `whsec_` secret. Ed25519 endpoints: the `whpk_` public key (the signing key stays in chartwire).",
        "properties": {"signature": {"type": "string", "enum": ["hmac", "ed25519"]},
            "secret": {"type": "string", "pattern": "^whsec_"},
            "public_key": {"type": "string", "pattern": "^whpk_"}}}));
    schemas.insert(
        "RotatedSecret".into(),
        json!({"type": "object", "required": ["signature", "previous_secret_expires_at"],
        "properties": {"signature": {"type": "string", "enum": ["hmac", "ed25519"]},
            "secret": {"type": "string"}, "public_key": {"type": "string"},
            "previous_secret_expires_at": {"type": "string"}}}),
    );
    schemas.insert("TestSent".into(), json!({"type": "object", "required": ["event_id", "sequence", "endpoint_id"],
        "properties": {"event_id": {"type": "string"}, "sequence": {"type": "integer"}, "endpoint_id": {"type": "string"}}}));
    let delivery = json!({
        "id": {"type": "string"}, "endpoint_id": {"type": "string"}, "event_id": {"type": "string"},
        "event_type": {"type": "string"}, "sequence": {"type": "integer"},
        "status": {"type": "string", "enum": ["pending", "succeeded", "failed", "cancelled"]},
        "attempts": {"type": "integer"},
        "next_attempt_at": {"type": ["string", "null"]}, "last_attempt_at": {"type": ["string", "null"]},
        "last_http_status": {"type": ["integer", "null"]}, "last_error": {"type": ["string", "null"]},
        "failure_reason": {"type": ["string", "null"]}, "created_at": {"type": "string"},
        "completed_at": {"type": ["string", "null"]},
    });
    schemas.insert(
        "Delivery".into(),
        json!({"type": "object", "properties": delivery.clone(),
        "required": ["id", "endpoint_id", "event_id", "event_type", "status", "attempts"]}),
    );
    let mut detail = delivery;
    detail["attempts_log"] = json!({"type": "array", "items": {"type": "object", "properties": {
        "attempted_at": {"type": "string"}, "duration_ms": {"type": "number"},
        "http_status": {"type": ["integer", "null"]}, "error_kind": {"type": ["string", "null"]},
        "response_snippet": {"type": ["string", "null"]}}}});
    schemas.insert(
        "DeliveryDetail".into(),
        json!({"type": "object", "properties": detail,
        "required": ["id", "endpoint_id", "event_id", "status", "attempts", "attempts_log"]}),
    );
    schemas.insert("DeliveryList".into(), list_of(reference("Delivery")));
    schemas.insert("AuditEntry".into(), json!({"type": "object", "required": ["id", "at", "actor", "action"],
        "description": "Who did what to which object, when and from where. Never PHI or secrets.",
        "properties": {
            "id": {"type": "string"}, "at": {"type": "string"},
            "actor": {"type": "object", "properties": {"type": {"type": "string"}, "id": {"type": ["string", "null"]}}},
            "action": {"type": "string"},
            "target": {"type": ["object", "null"]},
            "source_ip": {"type": ["string", "null"]},
            "detail": {"type": ["object", "null"]}}}));
    schemas.insert("AuditList".into(), list_of(reference("AuditEntry")));
    schemas.insert(
        "RecoverRequest".into(),
        json!({"type": "object", "required": ["since"], "additionalProperties": false,
        "properties": {"since": {"type": "string", "format": "date-time"}}}),
    );
    schemas.insert(
        "Recovery".into(),
        json!({"type": "object", "required": ["requeued", "created"],
        "properties": {"requeued": {"type": "integer"}, "created": {"type": "integer"}}}),
    );
}
