//! Validation of endpoint bodies (create and merge-patch). Errors name the
//! field and the rule; they never repeat a URL, header value or secret.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::events::catalogue::{self, TEST_EVENT};
use crate::records::validate::FieldError;

pub const DEFAULT_MAX_IN_FLIGHT: i64 = 32;
pub const LATEST_PAYLOAD_VERSION: i64 = 1;
const FIELDS: &[&str] = &[
    "url",
    "events",
    "headers",
    "description",
    "enabled",
    "ordering",
    "content",
    "payload_version",
    "rate_limit_per_second",
    "max_in_flight",
    "signature",
    "client_certificate",
];
const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "disabled_reason",
    "created_at",
    "updated_at",
    "secret_rotation_ends_at",
];
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "user-agent",
];

/// The settings of an endpoint as the admin wants them (secrets aside).
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSettings {
    pub url: String,
    pub events: Vec<String>,
    pub subscriptions: Vec<String>,
    pub headers: BTreeMap<String, String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub ordering: String,
    pub content: String,
    pub payload_version: i64,
    pub rate_limit_per_second: Option<i64>,
    pub max_in_flight: i64,
    /// `hmac` or `ed25519`; chosen at create.
    pub signature: String,
    /// The client certificate chain and key presented to the endpoint (mTLS).
    pub client_identity: Option<ClientIdentity>,
}

/// A PEM certificate chain and its private key.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClientIdentity {
    pub certificate: String,
    pub private_key: String,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity(…)")
    }
}

impl ClientIdentity {
    /// The parsed chain and key, or why they are unusable.
    #[allow(clippy::type_complexity)]
    pub fn parse(
        &self,
    ) -> Result<
        (
            Vec<rustls_pki_types::CertificateDer<'static>>,
            rustls_pki_types::PrivateKeyDer<'static>,
        ),
        crate::tls::TlsError,
    > {
        let chain = crate::tls::certificates(
            self.certificate.as_bytes(),
            "client_certificate.certificate",
        )?;
        let key = crate::tls::private_key(
            self.private_key.as_bytes(),
            "client_certificate.private_key",
        )?;
        Ok((chain, key))
    }
}

/// Shown instead of a header value: a hint for long values, nothing for short ones.
pub fn mask(value: &str) -> String {
    if value.chars().count() >= 8 {
        format!("{}…", value.chars().take(3).collect::<String>())
    } else {
        "…".to_owned()
    }
}

/// Check a create body; defaults fill what is missing.
pub fn for_create(body: &Value) -> Result<EndpointSettings, Vec<FieldError>> {
    let empty = EndpointSettings {
        url: String::new(),
        events: Vec::new(),
        subscriptions: Vec::new(),
        headers: BTreeMap::new(),
        description: None,
        enabled: true,
        ordering: "none".into(),
        content: "record".into(),
        payload_version: LATEST_PAYLOAD_VERSION,
        rate_limit_per_second: None,
        max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        signature: "hmac".into(),
        client_identity: None,
    };
    let mut errors = Vec::new();
    let Some(object) = body.as_object() else {
        return Err(vec![FieldError::new(
            "",
            "type",
            "the body must be a JSON object",
        )]);
    };
    for required in ["url", "events"] {
        if object.get(required).is_none_or(Value::is_null) {
            errors.push(FieldError::new(required, "required", "is required"));
        }
    }
    let settings = apply(empty, object, None, &mut errors);
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors)
    }
}

/// Apply a merge patch to the current settings. `current_view` is the
/// endpoint as the API shows it (for read-only fields sent back unchanged).
pub fn for_patch(
    current: &EndpointSettings,
    current_view: &Value,
    patch: &Value,
) -> Result<EndpointSettings, Vec<FieldError>> {
    let Some(object) = patch.as_object() else {
        return Err(vec![FieldError::new(
            "",
            "type",
            "a merge patch must be a JSON object",
        )]);
    };
    let mut errors = Vec::new();
    for required in ["url", "events"] {
        if object.get(required).is_some_and(Value::is_null) {
            errors.push(FieldError::new(required, "required", "cannot be removed"));
        }
    }
    let settings = apply(current.clone(), object, Some(current_view), &mut errors);
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors)
    }
}

fn apply(
    mut s: EndpointSettings,
    object: &Map<String, Value>,
    current_view: Option<&Value>,
    errors: &mut Vec<FieldError>,
) -> EndpointSettings {
    for (key, value) in object {
        if key == "health" && current_view.is_some() {
            // Shown on reads, computed from the delivery log; ignored when sent back.
            continue;
        }
        if READ_ONLY.contains(&key.as_str()) {
            if current_view.and_then(|v| v.get(key)) != Some(value) {
                errors.push(FieldError::new(
                    key.as_str(),
                    "read_only",
                    "is set by the server",
                ));
            }
            continue;
        }
        if !FIELDS.contains(&key.as_str()) {
            let shown: String = key.chars().take(64).collect();
            errors.push(FieldError::new(
                shown,
                "unknown_field",
                "is not a field of an endpoint",
            ));
            continue;
        }
        if value.is_null() && (key == "url" || key == "events") {
            continue;
        }
        match key.as_str() {
            "url" => match value.as_str() {
                Some(url) if url.len() <= 2048 => s.url = url.trim().to_owned(),
                _ => errors.push(FieldError::new(
                    "url",
                    "type",
                    "must be a URL of at most 2048 characters",
                )),
            },
            "events" => match events(value) {
                Ok((patterns, subscriptions)) => {
                    s.events = patterns;
                    s.subscriptions = subscriptions;
                }
                Err(err) => errors.push(err),
            },
            "headers" => headers(&mut s.headers, value, current_view.is_some(), errors),
            "description" => match value {
                Value::Null => s.description = None,
                Value::String(text) if text.chars().count() <= 500 => {
                    s.description = Some(text.clone())
                }
                _ => errors.push(FieldError::new(
                    "description",
                    "type",
                    "must be a string of at most 500 characters",
                )),
            },
            "enabled" => match value.as_bool() {
                Some(on) => s.enabled = on,
                None => errors.push(FieldError::new("enabled", "type", "must be true or false")),
            },
            "ordering" => match value.as_str() {
                Some(v @ ("none" | "per_record")) => s.ordering = v.to_owned(),
                _ => errors.push(FieldError::new(
                    "ordering",
                    "enum",
                    "must be one of: none, per_record",
                )),
            },
            "content" => match value.as_str() {
                Some(v @ ("record" | "ids")) => s.content = v.to_owned(),
                _ => errors.push(FieldError::new(
                    "content",
                    "enum",
                    "must be one of: record, ids",
                )),
            },
            "payload_version" => match value.as_i64() {
                Some(LATEST_PAYLOAD_VERSION) => s.payload_version = LATEST_PAYLOAD_VERSION,
                _ => errors.push(FieldError::new(
                    "payload_version",
                    "enum",
                    "must be 1 (the only payload version)",
                )),
            },
            "rate_limit_per_second" => match value {
                Value::Null => s.rate_limit_per_second = None,
                _ => match value.as_i64() {
                    Some(n) if (1..=100_000).contains(&n) => s.rate_limit_per_second = Some(n),
                    _ => errors.push(FieldError::new(
                        "rate_limit_per_second",
                        "range",
                        "must be an integer from 1 to 100000, or null",
                    )),
                },
            },
            "max_in_flight" => match value {
                Value::Null => s.max_in_flight = DEFAULT_MAX_IN_FLIGHT,
                _ => match value.as_i64() {
                    Some(n) if (1..=1000).contains(&n) => s.max_in_flight = n,
                    _ => errors.push(FieldError::new(
                        "max_in_flight",
                        "range",
                        "must be an integer from 1 to 1000",
                    )),
                },
            },
            "client_certificate" => {
                client_certificate(&mut s.client_identity, value, current_view, errors)
            }
            "signature" => match value.as_str() {
                Some(v @ ("hmac" | "ed25519")) if current_view.is_none() => {
                    s.signature = v.to_owned()
                }
                Some(v) if current_view.is_some() && v == s.signature => {}
                Some("hmac" | "ed25519") => errors.push(FieldError::new(
                    "signature",
                    "immutable",
                    "the signature scheme is chosen when the endpoint is created",
                )),
                _ => errors.push(FieldError::new(
                    "signature",
                    "enum",
                    "must be one of: hmac, ed25519",
                )),
            },
            _ => unreachable!("every field is handled above"),
        }
    }
    s
}

fn client_certificate(
    current: &mut Option<ClientIdentity>,
    value: &Value,
    current_view: Option<&Value>,
    errors: &mut Vec<FieldError>,
) {
    if value.is_null() {
        *current = None;
        return;
    }
    // The shown form sent back unchanged keeps what is stored.
    if current_view.and_then(|v| v.get("client_certificate")) == Some(value) {
        return;
    }
    let invalid = |errors: &mut Vec<FieldError>| {
        errors.push(FieldError::new(
            "client_certificate",
            "invalid",
            "must be {\"certificate\": PEM chain, \"private_key\": PEM key} that rustls accepts, or null",
        ))
    };
    let identity = value.as_object().and_then(|o| {
        let certificate = o.get("certificate")?.as_str()?.to_owned();
        let private_key = o.get("private_key")?.as_str()?.to_owned();
        (o.len() == 2 && certificate.len() <= 65_536 && private_key.len() <= 65_536).then_some(
            ClientIdentity {
                certificate,
                private_key,
            },
        )
    });
    let Some(identity) = identity else {
        return invalid(errors);
    };
    let usable = identity.parse().ok().is_some_and(|(chain, key)| {
        let roots = std::sync::Arc::new(rustls::RootCertStore::empty());
        crate::tls::client_config(roots, Some((chain, key))).is_ok()
    });
    if usable {
        *current = Some(identity);
    } else {
        invalid(errors);
    }
}

fn events(value: &Value) -> Result<(Vec<String>, Vec<String>), FieldError> {
    let invalid = || {
        FieldError::new(
            "events",
            "type",
            "must be a non-empty array of event names or patterns",
        )
    };
    let items = value
        .as_array()
        .filter(|a| !a.is_empty() && a.len() <= 200)
        .ok_or_else(invalid)?;
    let mut patterns = Vec::new();
    for item in items {
        let pattern = item.as_str().ok_or_else(invalid)?.trim().to_owned();
        if pattern == TEST_EVENT {
            return Err(FieldError::new(
                "events",
                "test_event",
                "webhook.test is sent only by the test route",
            ));
        }
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
    let subscriptions = catalogue::expand(&patterns).map_err(|_| {
        FieldError::new(
            "events",
            "unknown_event",
            "each entry must be an event name of the catalogue, `<record type>.*`, `endpoint.*` or `*`",
        )
    })?;
    Ok((patterns, subscriptions))
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn headers(
    current: &mut BTreeMap<String, String>,
    value: &Value,
    merging: bool,
    errors: &mut Vec<FieldError>,
) {
    let Some(object) = value.as_object() else {
        if value.is_null() {
            current.clear();
        } else {
            errors.push(FieldError::new(
                "headers",
                "type",
                "must be an object of header names to values",
            ));
        }
        return;
    };
    if !merging {
        current.clear();
    }
    for (name, value) in object {
        let lower = name.to_ascii_lowercase();
        let field = format!("headers.{}", name.chars().take(64).collect::<String>());
        if !valid_header_name(name) {
            errors.push(FieldError::new(
                field,
                "header_name",
                "is not a valid header name",
            ));
            continue;
        }
        if FORBIDDEN_HEADERS.contains(&lower.as_str()) || lower.starts_with("webhook-") {
            errors.push(FieldError::new(
                field,
                "forbidden_header",
                "is set by chartwire and cannot be configured",
            ));
            continue;
        }
        let existing = current
            .keys()
            .find(|k| k.eq_ignore_ascii_case(name))
            .cloned();
        match value {
            Value::Null => {
                if let Some(key) = existing {
                    current.remove(&key);
                }
            }
            Value::String(text) => {
                // The masked form sent back unchanged keeps the stored value.
                let unchanged = existing
                    .as_ref()
                    .and_then(|k| current.get(k))
                    .is_some_and(|stored| mask(stored) == *text);
                if unchanged {
                    continue;
                }
                if text.len() > 4096 || http::HeaderValue::from_str(text).is_err() {
                    errors.push(FieldError::new(
                        field,
                        "header_value",
                        "must be visible ASCII text of at most 4096 bytes",
                    ));
                    continue;
                }
                if let Some(key) = existing {
                    current.remove(&key);
                }
                current.insert(name.clone(), text.clone());
            }
            _ => errors.push(FieldError::new(
                field,
                "type",
                "must be a string, or null to remove it",
            )),
        }
    }
    if current.len() > 20 {
        errors.push(FieldError::new(
            "headers",
            "too_many",
            "at most 20 custom headers",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_defaults_and_rules() {
        let ok = for_create(
            &json!({"url": "https://h.example/x", "events": ["patient.*", "encounter.signed"]}),
        )
        .unwrap();
        assert_eq!(ok.max_in_flight, 32);
        assert!(ok.subscriptions.contains(&"patient.deleted".to_string()));
        assert!(!ok.subscriptions.contains(&"endpoint.created".to_string()));
        let star = for_create(&json!({"url": "https://h.example/x", "events": ["*"]})).unwrap();
        assert!(
            !star
                .subscriptions
                .iter()
                .any(|s| s.starts_with("endpoint."))
        );
        let bad = for_create(&json!({"url": "https://h.example", "events": ["patient.exploded"],
            "headers": {"Host": "x", "Webhook-Id": "y", "X-Ok": "fine\r\nInjected: 1"}, "ordering": "random"})).unwrap_err();
        let fields: Vec<&str> = bad.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "events",
                "headers.Host",
                "headers.Webhook-Id",
                "headers.X-Ok",
                "ordering"
            ]
        );
        assert!(!format!("{bad:?}").contains("fine"));
    }

    #[test]
    fn patching_headers_keeps_masked_values_and_removes_with_null() {
        let current = for_create(&json!({"url": "https://h.example", "events": ["*"],
            "headers": {"Authorization": "Bearer secret-token", "X-Tenant": "t1"}}))
        .unwrap();
        let view = json!({});
        let patched = for_patch(
            &current,
            &view,
            &json!({"headers": {"Authorization": "Bea…", "X-Tenant": null, "X-New": "v"}}),
        )
        .unwrap();
        assert_eq!(
            patched.headers.get("Authorization").unwrap(),
            "Bearer secret-token"
        );
        assert!(!patched.headers.contains_key("X-Tenant"));
        assert_eq!(patched.headers.get("X-New").unwrap(), "v");
        assert_eq!(mask("short"), "…");
    }
}
