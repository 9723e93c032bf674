//! Webhook endpoints: create, read, change, delete, their signing secrets,
//! test events and status changes (admin switch, 410 Gone, auto-disable).
//!
//! Every change is saved with its operational event in one transaction and
//! announced to the dispatcher. Secrets and custom header values are sealed
//! under the master key before they reach the store and are never returned
//! in full (a signing secret only through its reveal route).

pub mod input;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use thiserror::Error;

use super::address::{AddressError, AddressPolicy, Target};
use super::dispatch::DispatcherHandle;
use super::signing;
use crate::audit::Auditor;
use crate::events::{self, Actor};
use crate::ids;
use crate::records::validate::FieldError;
use crate::secrets::{MasterKey, SecretsError};
use crate::store::webhooks::{EndpointSave, StoredEndpoint};
use crate::store::{Store, StoreError};
use input::{ClientIdentity, EndpointSettings, mask};

#[derive(Debug, Error)]
pub enum EndpointError {
    #[error("the endpoint is invalid")]
    Invalid(Vec<FieldError>),
    #[error("no such endpoint")]
    NotFound,
    #[error("the endpoint changed meanwhile; retry")]
    Conflict,
    #[error("the deployment already has its maximum number of endpoints")]
    TooMany,
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EndpointError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => EndpointError::NotFound,
            StoreError::VersionConflict { .. } => EndpointError::Conflict,
            other => EndpointError::Store(other),
        }
    }
}

/// Why an endpoint stopped receiving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The admin switched it off.
    Admin,
    /// It answered 410 Gone.
    Gone,
    /// All its deliveries failed for too long.
    Automatic,
}

#[derive(Clone)]
pub struct EndpointService {
    store: Arc<dyn Store>,
    audit: Auditor,
    key: MasterKey,
    policy: AddressPolicy,
    rotation_overlap: Duration,
    dispatcher: DispatcherHandle,
    max_endpoints: usize,
}

/// An endpoint with its secrets opened, for the dispatcher.
#[derive(Debug, Clone)]
pub struct OpenedEndpoint {
    pub stored: StoredEndpoint,
    pub headers: BTreeMap<String, String>,
    /// Signing keys: the current secret, then the previous one during a rotation.
    pub signing_keys: Vec<signing::Signer>,
    /// When the previous key stops signing (Unix ms).
    pub previous_key_until: Option<i64>,
    /// The client certificate presented to the endpoint (mTLS).
    pub client_identity: Option<ClientIdentity>,
    /// The URL after the shape rules, parsed once; `None` when it no
    /// longer passes them (every attempt then fails as `address_not_allowed`).
    pub target: Option<Target>,
}

/// A new secret for the scheme: `whsec_…` (hmac) or `whsk_…` (ed25519).
fn new_secret_for(scheme: &str) -> String {
    if scheme == "ed25519" {
        signing::new_signing_key()
    } else {
        signing::new_secret()
    }
}

/// What the secret route shows: the HMAC secret, or only the public key of
/// an Ed25519 signing key (the signing key never leaves chartwire).
fn shown_secret(scheme: &str, secret: &str) -> Value {
    match signing::Signer::from_secret(secret).and_then(|s| s.public_key()) {
        Some(public_key) if scheme == "ed25519" => {
            json!({"signature": "ed25519", "public_key": public_key})
        }
        _ => json!({"signature": "hmac", "secret": secret}),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis_of(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl EndpointService {
    pub fn new(
        store: Arc<dyn Store>,
        key: MasterKey,
        policy: AddressPolicy,
        rotation_overlap: Duration,
        dispatcher: DispatcherHandle,
    ) -> Self {
        EndpointService {
            audit: Auditor::new(store.clone()),
            store,
            key,
            policy,
            rotation_overlap,
            dispatcher,
            max_endpoints: 1000,
        }
    }

    pub fn with_max_endpoints(mut self, max: usize) -> Self {
        self.max_endpoints = max;
        self
    }

    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// Check a URL against the address rules; returns the URL to store
    /// (normalised, fragment removed).
    async fn check_url(&self, url: &str) -> Result<String, EndpointError> {
        self.policy
            .check(url)
            .await
            .map(|url| url.to_string())
            .map_err(|err| {
                let code = match err {
                    AddressError::Malformed => "format",
                    AddressError::Scheme => "scheme",
                    AddressError::IpLiteral => "ip_literal",
                    AddressError::UserInfo => "userinfo",
                    AddressError::SingleLabel => "host_name",
                    AddressError::Unresolvable => "unresolvable",
                };
                EndpointError::Invalid(vec![FieldError::new("url", code, err.to_string())])
            })
    }

    fn headers_of(
        &self,
        stored: &StoredEndpoint,
    ) -> Result<BTreeMap<String, String>, EndpointError> {
        match &stored.headers_sealed {
            None => Ok(BTreeMap::new()),
            Some(sealed) => {
                let text = self.key.open_text(sealed)?;
                serde_json::from_str(&text)
                    .map_err(|_| EndpointError::Secrets(SecretsError::Unseal))
            }
        }
    }

    fn seal_headers(&self, headers: &BTreeMap<String, String>) -> Option<Vec<u8>> {
        (!headers.is_empty()).then(|| {
            self.key.seal(
                serde_json::to_string(headers)
                    .unwrap_or_default()
                    .as_bytes(),
            )
        })
    }

    fn seal_identity(&self, identity: Option<&ClientIdentity>) -> Option<Vec<u8>> {
        identity.map(|identity| {
            self.key.seal(
                serde_json::to_string(identity)
                    .unwrap_or_default()
                    .as_bytes(),
            )
        })
    }

    fn identity_of(
        &self,
        stored: &StoredEndpoint,
    ) -> Result<Option<ClientIdentity>, EndpointError> {
        match &stored.client_identity_sealed {
            None => Ok(None),
            Some(sealed) => serde_json::from_str(&self.key.open_text(sealed)?)
                .map(Some)
                .map_err(|_| EndpointError::Secrets(SecretsError::Unseal)),
        }
    }

    fn settings_of(&self, stored: &StoredEndpoint) -> Result<EndpointSettings, EndpointError> {
        Ok(EndpointSettings {
            url: stored.url.clone(),
            events: stored.events.clone(),
            subscriptions: crate::events::catalogue::expand(&stored.events).unwrap_or_default(),
            headers: self.headers_of(stored)?,
            description: stored.description.clone(),
            enabled: stored.enabled,
            ordering: stored.ordering.clone(),
            content: stored.content.clone(),
            payload_version: stored.payload_version,
            rate_limit_per_second: stored.rate_limit_per_second,
            max_in_flight: stored.max_in_flight,
            signature: stored.signature.clone(),
            client_identity: self.identity_of(stored)?,
        })
    }

    /// The endpoint as the API shows it: header values masked, no secrets.
    pub fn view(&self, stored: &StoredEndpoint) -> Result<Value, EndpointError> {
        let headers: serde_json::Map<String, Value> = self
            .headers_of(stored)?
            .iter()
            .map(|(name, value)| (name.clone(), Value::from(mask(value))))
            .collect();
        let rotation_ends = stored
            .previous_secret_expires_at
            .as_ref()
            .filter(|until| millis_of(until).is_some_and(|ms| ms > now_ms()));
        Ok(json!({
            "id": stored.id,
            "url": stored.url,
            "events": stored.events,
            "headers": headers,
            "description": stored.description,
            "enabled": stored.enabled,
            "status": stored.status,
            "disabled_reason": stored.disabled_reason,
            "ordering": stored.ordering,
            "content": stored.content,
            "payload_version": stored.payload_version,
            "rate_limit_per_second": stored.rate_limit_per_second,
            "max_in_flight": stored.max_in_flight,
            "signature": stored.signature,
            "client_certificate": {"configured": stored.client_identity_sealed.is_some()},
            "secret_rotation_ends_at": rotation_ends,
            "created_at": stored.created_at,
            "updated_at": stored.updated_at,
        }))
    }

    /// The outcome of the endpoint's latest attempt (why it fails, if it does).
    async fn health(&self, stored: &StoredEndpoint) -> Result<Value, EndpointError> {
        Ok(match self.store.last_attempted(&stored.id).await? {
            Some(row) => json!({
                "last_attempt_at": row.last_attempt_at,
                "last_http_status": row.last_http_status,
                "last_error": row.last_error,
                "failing_since": stored.failing_since,
            }),
            None => {
                json!({"last_attempt_at": null, "last_http_status": null, "last_error": null, "failing_since": null})
            }
        })
    }

    pub async fn load(&self, id: &str) -> Result<StoredEndpoint, EndpointError> {
        self.store
            .get_endpoint(id)
            .await?
            .ok_or(EndpointError::NotFound)
    }

    /// The endpoint with its secrets opened (for sending).
    pub async fn open(&self, id: &str) -> Result<Option<OpenedEndpoint>, EndpointError> {
        let Some(stored) = self.store.get_endpoint(id).await? else {
            return Ok(None);
        };
        let headers = self.headers_of(&stored)?;
        let mut signing_keys = Vec::new();
        let current = self.key.open_text(&stored.secret_sealed)?;
        signing_keys.extend(signing::Signer::from_secret(&current));
        let previous_key_until = stored
            .previous_secret_expires_at
            .as_deref()
            .and_then(millis_of)
            .filter(|until| *until > now_ms());
        if let (Some(sealed), Some(_)) = (&stored.previous_secret_sealed, previous_key_until) {
            signing_keys.extend(signing::Signer::from_secret(&self.key.open_text(sealed)?));
        }
        let client_identity = self.identity_of(&stored)?;
        let target = self.policy.shape(&stored.url).ok();
        Ok(Some(OpenedEndpoint {
            client_identity,
            target,
            stored,
            headers,
            signing_keys,
            previous_key_until,
        }))
    }

    pub async fn create(&self, body: &Value, actor: &Actor) -> Result<Value, EndpointError> {
        let mut settings = input::for_create(body).map_err(EndpointError::Invalid)?;
        if self.store.count_endpoints().await? >= self.max_endpoints {
            return Err(EndpointError::TooMany);
        }
        settings.url = self.check_url(&settings.url).await?;
        let now = ids::now_text();
        let (status, reason) = if settings.enabled {
            ("enabled", None)
        } else {
            ("disabled", Some("disabled_by_admin".to_owned()))
        };
        let stored = StoredEndpoint {
            id: ids::sortable("ep"),
            url: settings.url.clone(),
            events: settings.events.clone(),
            headers_sealed: self.seal_headers(&settings.headers),
            description: settings.description.clone(),
            enabled: settings.enabled,
            status: status.to_owned(),
            disabled_reason: reason,
            ordering: settings.ordering.clone(),
            content: settings.content.clone(),
            payload_version: settings.payload_version,
            rate_limit_per_second: settings.rate_limit_per_second,
            max_in_flight: settings.max_in_flight,
            secret_sealed: self
                .key
                .seal(new_secret_for(&settings.signature).as_bytes()),
            signature: settings.signature.clone(),
            client_identity_sealed: self.seal_identity(settings.client_identity.as_ref()),
            previous_secret_sealed: None,
            previous_secret_expires_at: None,
            failing_since: None,
            created_at: now.clone(),
            updated_at: now.clone(),
        };
        let event = events::endpoint_event(
            "endpoint.created",
            &stored.id,
            status,
            settings.enabled,
            actor,
            &now,
        );
        self.store
            .save_endpoint(EndpointSave {
                endpoint: stored.clone(),
                subscriptions: settings.subscriptions,
                events: vec![event],
                fail_pending: None,
                expected_updated_at: None,
            })
            .await?;
        self.dispatcher.endpoint_changed(&stored.id);
        self.audit
            .record(
                actor,
                "endpoint.created",
                Some(("endpoint", &stored.id)),
                None,
            )
            .await;
        self.view(&stored)
    }

    pub async fn get(&self, id: &str) -> Result<Value, EndpointError> {
        let stored = self.load(id).await?;
        let mut shown = self.view(&stored)?;
        shown["health"] = self.health(&stored).await?;
        Ok(shown)
    }

    pub async fn list(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<Value>, EndpointError> {
        let rows = self.store.list_endpoints(after, limit).await?;
        let mut shown = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut view = self.view(row)?;
            view["health"] = self.health(row).await?;
            shown.push(view);
        }
        Ok(shown)
    }

    pub async fn patch(
        &self,
        id: &str,
        patch: &Value,
        actor: &Actor,
    ) -> Result<Value, EndpointError> {
        let current = self.load(id).await?;
        let before = self.settings_of(&current)?;
        let view = self.view(&current)?;
        let mut after = input::for_patch(&before, &view, patch).map_err(EndpointError::Invalid)?;
        if after.url != before.url {
            after.url = self.check_url(&after.url).await?;
        }
        let now = ids::now_text();
        let mut next = current.clone();
        next.url = after.url.clone();
        next.events = after.events.clone();
        next.headers_sealed = if after.headers == before.headers {
            current.headers_sealed.clone()
        } else {
            self.seal_headers(&after.headers)
        };
        next.description = after.description.clone();
        next.enabled = after.enabled;
        next.ordering = after.ordering.clone();
        next.content = after.content.clone();
        next.payload_version = after.payload_version;
        next.rate_limit_per_second = after.rate_limit_per_second;
        next.max_in_flight = after.max_in_flight;
        if after.client_identity != before.client_identity {
            next.client_identity_sealed = self.seal_identity(after.client_identity.as_ref());
        }
        next.updated_at = now.clone();
        let switched_on =
            patch.get("enabled") == Some(&Value::Bool(true)) && current.status != "enabled";
        let switched_off = !after.enabled && current.status == "enabled";
        let mut events = Vec::new();
        let mut fail_pending = None;
        if switched_off {
            next.status = "disabled".into();
            next.disabled_reason = Some("disabled_by_admin".into());
            fail_pending = Some("endpoint_disabled".to_owned());
        } else if switched_on {
            next.enabled = true;
            next.status = "enabled".into();
            next.disabled_reason = None;
            next.failing_since = None;
        }
        if after == before && !switched_on {
            return Ok(view);
        }
        let mut others = after.clone();
        others.enabled = before.enabled;
        if !switched_off || others != before {
            events.push(events::endpoint_event(
                "endpoint.modified",
                id,
                &next.status,
                next.enabled,
                actor,
                &now,
            ));
        }
        if switched_off {
            events.push(events::endpoint_event(
                "endpoint.disabled",
                id,
                &next.status,
                next.enabled,
                actor,
                &now,
            ));
        }
        self.store
            .save_endpoint(EndpointSave {
                endpoint: next.clone(),
                subscriptions: after.subscriptions,
                events,
                fail_pending,
                expected_updated_at: Some(current.updated_at.clone()),
            })
            .await?;
        self.dispatcher.endpoint_changed(id);
        let action = if switched_off {
            "endpoint.disabled"
        } else if switched_on {
            "endpoint.enabled"
        } else {
            "endpoint.modified"
        };
        self.audit
            .record(actor, action, Some(("endpoint", id)), None)
            .await;
        self.view(&next)
    }

    /// Stop sending to an endpoint: pending deliveries end as `failed`.
    pub async fn stop(&self, id: &str, why: Stop, actor: &Actor) -> Result<(), EndpointError> {
        let current = self.load(id).await?;
        if current.status != "enabled" {
            return Ok(());
        }
        let now = ids::now_text();
        let mut next = current.clone();
        let (status, reason, event) = match why {
            Stop::Admin => ("disabled", "disabled_by_admin", "endpoint.disabled"),
            Stop::Gone => ("disabled", "gone", "endpoint.disabled"),
            Stop::Automatic => ("auto_disabled", "failing", "endpoint.auto_disabled"),
        };
        if why != Stop::Automatic {
            next.enabled = false;
        }
        next.status = status.into();
        next.disabled_reason = Some(reason.into());
        next.updated_at = now.clone();
        let subscriptions = crate::events::catalogue::expand(&current.events).unwrap_or_default();
        self.store
            .save_endpoint(EndpointSave {
                endpoint: next.clone(),
                subscriptions,
                events: vec![events::endpoint_event(
                    event,
                    id,
                    status,
                    next.enabled,
                    actor,
                    &now,
                )],
                fail_pending: Some("endpoint_disabled".into()),
                expected_updated_at: Some(current.updated_at),
            })
            .await?;
        tracing::warn!(endpoint_id = id, reason, "endpoint stopped");
        let detail = serde_json::json!({"reason": reason});
        self.audit
            .record(actor, event, Some(("endpoint", id)), Some(detail))
            .await;
        self.dispatcher.endpoint_changed(id);
        Ok(())
    }

    pub async fn delete(&self, id: &str, actor: &Actor) -> Result<(), EndpointError> {
        let current = self.load(id).await?;
        let now = ids::now_text();
        let event = events::endpoint_event("endpoint.deleted", id, "deleted", false, actor, &now);
        self.store
            .delete_endpoint(&current.id, &now, vec![event])
            .await?;
        self.dispatcher.endpoint_changed(id);
        self.audit
            .record(actor, "endpoint.deleted", Some(("endpoint", id)), None)
            .await;
        Ok(())
    }

    pub async fn reveal_secret(&self, id: &str, actor: &Actor) -> Result<Value, EndpointError> {
        let current = self.load(id).await?;
        let secret = self.key.open_text(&current.secret_sealed)?;
        self.audit
            .record(
                actor,
                "endpoint.secret_revealed",
                Some(("endpoint", id)),
                None,
            )
            .await;
        Ok(shown_secret(&current.signature, &secret))
    }

    /// A new secret; the old one keeps signing (alongside) for the overlap.
    pub async fn rotate_secret(&self, id: &str, actor: &Actor) -> Result<Value, EndpointError> {
        let current = self.load(id).await?;
        let now = chrono::Utc::now();
        let overlap = chrono::Duration::from_std(self.rotation_overlap).unwrap_or_default();
        let until = (now + overlap).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let secret = new_secret_for(&current.signature);
        let mut next = current.clone();
        next.previous_secret_sealed = Some(current.secret_sealed.clone());
        next.previous_secret_expires_at = Some(until.clone());
        next.secret_sealed = self.key.seal(secret.as_bytes());
        next.updated_at = ids::now_text();
        let subscriptions = crate::events::catalogue::expand(&current.events).unwrap_or_default();
        let event = events::endpoint_event(
            "endpoint.modified",
            id,
            &next.status,
            next.enabled,
            actor,
            &next.updated_at,
        );
        self.store
            .save_endpoint(EndpointSave {
                endpoint: next,
                subscriptions,
                events: vec![event],
                fail_pending: None,
                expected_updated_at: Some(current.updated_at),
            })
            .await?;
        self.dispatcher.endpoint_changed(id);
        self.audit
            .record(
                actor,
                "endpoint.secret_rotated",
                Some(("endpoint", id)),
                None,
            )
            .await;
        let mut shown = shown_secret(&current.signature, &secret);
        shown["previous_secret_expires_at"] = json!(until);
        Ok(shown)
    }

    /// Send a `webhook.test` event to this endpoint only.
    pub async fn send_test(&self, id: &str, actor: &Actor) -> Result<Value, EndpointError> {
        let current = self.load(id).await?;
        let event = events::test_event(&current.id, actor, &ids::now_text());
        let event_id = event.id.clone();
        let sequence = self
            .store
            .append_endpoint_event(&current.id, event, now_ms())
            .await?;
        self.dispatcher.wake();
        self.audit
            .record(
                actor,
                "endpoint.test_sent",
                Some(("endpoint", &current.id)),
                None,
            )
            .await;
        Ok(json!({"event_id": event_id, "sequence": sequence, "endpoint_id": current.id}))
    }
}
