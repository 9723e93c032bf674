//! One HTTP attempt: the request chartwire sends and how its answer is read.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};

use super::worker::Job;
use super::{DispatchConfig, Shared};
use crate::webhooks::address::{AddressRefused, GuardedResolver};
use crate::webhooks::endpoint::OpenedEndpoint;
use crate::webhooks::endpoint::input::ClientIdentity;
use crate::webhooks::signing;

/// The most of a response body kept in the delivery log.
const SNIPPET_BYTES: usize = 4096;

/// The outbound clients: no redirects, no proxy from the environment,
/// keep-alive pools per host, HTTP/2 where the listener offers it, and names
/// resolved once through the address guard (the connection goes to the
/// checked addresses). One client for https URLs (public addresses or
/// allowed networks), one for plain http (allowed networks only).
pub(crate) struct Clients {
    public: reqwest::Client,
    inside: reqwest::Client,
}

pub(super) fn clients(
    config: &DispatchConfig,
    identity: Option<&ClientIdentity>,
) -> anyhow::Result<Clients> {
    let parsed = identity.map(ClientIdentity::parse).transpose()?;
    let build = |inside_only: bool| -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(GuardedResolver {
                policy: config.policy.clone(),
                inside_only,
            }))
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10).min(config.timeout))
            .local_address(config.egress_bind)
            .use_preconfigured_tls(crate::tls::client_config(
                config.roots.clone(),
                parsed
                    .as_ref()
                    .map(|(chain, key)| (chain.clone(), key.clone_key())),
            )?)
            .build()?)
    };
    Ok(Clients {
        public: build(false)?,
        inside: build(true)?,
    })
}

/// What one attempt found.
#[derive(Debug, Default)]
pub(super) struct Sent {
    pub http_status: Option<u16>,
    pub error_kind: Option<&'static str>,
    pub snippet: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Sent {
    pub fn succeeded(&self) -> bool {
        self.http_status.is_some_and(|s| (200..300).contains(&s))
    }

    fn error(kind: &'static str) -> Sent {
        Sent {
            error_kind: Some(kind),
            ..Sent::default()
        }
    }
}

pub(super) async fn send(shared: &Shared, endpoint: &OpenedEndpoint, job: &Job) -> Sent {
    // The shape rules were applied when the endpoint was loaded (an IP
    // literal passes them only inside an allowed network); every resolved
    // address is checked by the clients' resolver.
    let Some(target) = &endpoint.target else {
        return Sent::error("address_not_allowed");
    };
    // An endpoint with a client certificate has clients of its own.
    let own = match &endpoint.client_identity {
        Some(identity) => match shared.identity_clients(
            &endpoint.stored.id,
            &endpoint.stored.updated_at,
            identity,
        ) {
            Ok(clients) => Some(clients),
            Err(_) => return Sent::error("tls"),
        },
        None => None,
    };
    let clients = own.as_deref().unwrap_or(&shared.clients);
    let client = if target.inside_only {
        &clients.inside
    } else {
        &clients.public
    };
    let url = target.url.clone();
    let timestamp = chrono::Utc::now().timestamp();
    let now_ms = chrono::Utc::now().timestamp_millis();
    // The current key always signs; the previous one until its overlap ends.
    let keys = endpoint
        .signing_keys
        .iter()
        .enumerate()
        .filter_map(|(i, key)| {
            let signs = i == 0
                || endpoint
                    .previous_key_until
                    .is_some_and(|until| until > now_ms);
            signs.then_some(key)
        });
    let signature = signing::signature_header(keys, &job.event_id, timestamp, &job.body);
    let mut request = client
        .post(url)
        .timeout(shared.config.timeout)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, concat!("chartwire/", env!("CARGO_PKG_VERSION")));
    for (name, value) in &endpoint.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            request = request.header(name, value);
        }
    }
    let request = request
        .header("webhook-id", &job.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(job.body.clone());
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(err) => return Sent::error(classify(&err)),
    };
    let status = response.status().as_u16();
    let retry_after = if status == 429 || status == 503 {
        response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    } else {
        None
    };
    let mut snippet = Vec::new();
    let mut read_error = None;
    while snippet.len() < SNIPPET_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => snippet.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) => {
                read_error = Some(classify(&err));
                break;
            }
        }
    }
    snippet.truncate(SNIPPET_BYTES);
    Sent {
        http_status: Some(status),
        error_kind: read_error.or(((200..300).contains(&status))
            .then_some(())
            .map_or(Some("http_status"), |_| None)),
        snippet: (!snippet.is_empty()).then(|| String::from_utf8_lossy(&snippet).into_owned()),
        retry_after,
    }
}

/// Whether `err` or anything it wraps is of type `T` (looking inside
/// `io::Error`s too, whose `source()` skips the error they wrap).
fn wraps<T: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    if err.downcast_ref::<T>().is_some() {
        return true;
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>()
        && let Some(inner) = io.get_ref()
        && wraps::<T>(inner)
    {
        return true;
    }
    err.source().is_some_and(wraps::<T>)
}

/// An error kind for the delivery log; never the error's text, which may
/// carry the URL.
fn classify(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        return "timeout";
    }
    if wraps::<AddressRefused>(err) {
        return "address_not_allowed";
    }
    if wraps::<rustls::Error>(err) {
        return "tls";
    }
    if err.is_connect() {
        "connect"
    } else if err.is_body() || err.is_decode() {
        "response"
    } else {
        "network"
    }
}
