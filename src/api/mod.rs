//! The HTTP API: routes, authentication and authorization, request parsing,
//! problem+json errors, the OpenAPI document and operational endpoints.
//!
//! Handlers translate HTTP into calls on the domain services (records, feed,
//! auth) and their results back into HTTP. No SQL and no business rules here.

pub mod access;
mod audit;
mod docs;
mod feed;
pub mod input;
mod keys;
pub mod limits;
mod metrics;
pub mod openapi;
mod ops;
pub mod problem;
mod records;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, MatchedPath, Path, RawQuery, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::audit::Auditor;
use crate::auth::sessions::SessionService;
use crate::auth::{KeyService, Principal};
use crate::events::Actor;
use crate::feed::FeedService;
use crate::records::RecordService;
use crate::records::schema::RECORD_TYPES;
use crate::store::Store;
use crate::webhooks::deliveries::DeliveryService;
use crate::webhooks::dispatch::DeliveryMetrics;
use crate::webhooks::endpoint::EndpointService;
pub use metrics::Metrics;
use problem::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub records: RecordService,
    pub feed: FeedService,
    pub keys: KeyService,
    /// Sessions of the admin pages.
    pub sessions: SessionService,
    /// Whether this server is reached over TLS (admin cookies are then `Secure`).
    pub secure_cookies: bool,
    pub endpoints: EndpointService,
    pub deliveries: DeliveryService,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub delivery_metrics: Arc<DeliveryMetrics>,
    pub audit: Auditor,
    /// The fixed source address of webhook connections, if configured.
    pub egress: Option<std::net::IpAddr>,
    pub rate_limiter: Arc<limits::RateLimiter>,
}

/// Routes as they are registered, remembered so tests can check every one
/// against the access table and the OpenAPI document.
pub struct Routes {
    router: Router<AppState>,
    registered: Vec<(Method, String)>,
}

impl Routes {
    fn add<H, T>(mut self, method: Method, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        self.router = self.router.route(path, on(filter, handler));
        self.registered.push((method, path.to_owned()));
        self
    }
}

/// Every route of the API, without state or middleware.
pub fn routes() -> Routes {
    let mut r = Routes {
        router: Router::new(),
        registered: Vec::new(),
    };
    r = r
        .add(Method::GET, "/healthz", ops::healthz)
        .add(Method::GET, "/readyz", ops::readyz)
        .add(Method::GET, "/metrics", ops::metrics)
        .add(Method::GET, "/openapi.json", openapi::serve)
        .add(Method::GET, "/docs", docs::index)
        .add(Method::GET, "/docs/{*file}", docs::file)
        .add(Method::GET, "/api/v1/keys", keys::list)
        .add(Method::POST, "/api/v1/keys", keys::create)
        .add(Method::DELETE, "/api/v1/keys/{id}", keys::revoke)
        .add(Method::GET, "/api/v1/changes", feed::changes)
        .add(Method::GET, "/api/v1/audit", audit::list)
        .add(
            Method::GET,
            "/api/v1/webhooks/event-types",
            feed::event_types,
        )
        .add(Method::GET, "/api/v1/webhooks/egress", webhooks::egress)
        .add(
            Method::GET,
            "/api/v1/webhooks/endpoints",
            webhooks::list_endpoints,
        )
        .add(
            Method::POST,
            "/api/v1/webhooks/endpoints",
            webhooks::create_endpoint,
        )
        .add(
            Method::GET,
            "/api/v1/webhooks/endpoints/{id}",
            webhooks::get_endpoint,
        )
        .add(
            Method::PATCH,
            "/api/v1/webhooks/endpoints/{id}",
            webhooks::patch_endpoint,
        )
        .add(
            Method::DELETE,
            "/api/v1/webhooks/endpoints/{id}",
            webhooks::delete_endpoint,
        )
        .add(
            Method::POST,
            "/api/v1/webhooks/endpoints/{id}/test",
            webhooks::send_test,
        )
        .add(
            Method::GET,
            "/api/v1/webhooks/endpoints/{id}/secret",
            webhooks::reveal_secret,
        )
        .add(
            Method::POST,
            "/api/v1/webhooks/endpoints/{id}/rotate-secret",
            webhooks::rotate_secret,
        )
        .add(
            Method::GET,
            "/api/v1/webhooks/endpoints/{id}/deliveries",
            webhooks::list_deliveries,
        )
        .add(
            Method::POST,
            "/api/v1/webhooks/endpoints/{id}/recover",
            webhooks::recover,
        )
        .add(
            Method::GET,
            "/api/v1/webhooks/deliveries/{id}",
            webhooks::get_delivery,
        )
        .add(
            Method::POST,
            "/api/v1/webhooks/deliveries/{id}/retry",
            webhooks::retry_delivery,
        );
    for kind in RECORD_TYPES {
        let collection = format!("/api/v1/{}", kind.plural);
        let item = format!("{collection}/{{id}}");
        r = r
            .add(
                Method::GET,
                &collection,
                move |s: State<AppState>, q: RawQuery| records::list(kind, s, q),
            )
            .add(
                Method::POST,
                &collection,
                move |s: State<AppState>, p: Extension<Actor>, h: HeaderMap, b: Body| {
                    records::create(kind, s, p, h, b)
                },
            )
            .add(
                Method::GET,
                &item,
                move |s: State<AppState>, id: Path<String>| records::get(kind, s, id),
            )
            .add(
                Method::PATCH,
                &item,
                move |s: State<AppState>,
                      p: Extension<Actor>,
                      id: Path<String>,
                      h: HeaderMap,
                      b: Body| { records::patch(kind, s, p, id, h, b) },
            )
            .add(
                Method::DELETE,
                &item,
                move |s: State<AppState>, p: Extension<Actor>, id: Path<String>, h: HeaderMap| {
                    records::delete(kind, s, p, id, h)
                },
            );
    }
    r
}

/// The `(method, path)` of every registered route.
pub fn registered_routes() -> Vec<(Method, String)> {
    routes().registered
}

/// The complete application: the API, with `pages` (the admin pages, which
/// authenticate by session rather than by key) beside it under the same
/// request log, metrics and time limit.
pub fn router(state: AppState, pages: Router<AppState>) -> Router {
    routes()
        .router
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .merge(pages)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(time_limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// No request may take longer than this (long-polls wait at most 30 s);
/// a client that trickles its body in is cut off.
const REQUEST_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

async fn time_limit(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIME_LIMIT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "Request timeout",
            "the request took longer than the server allows",
        )
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        "this resource does not support that method",
    )
}

/// Log and count every request: method, route template, status, latency.
/// Never the path's values, the query, headers or bodies.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let key_id = response
        .extensions()
        .get::<Principal>()
        .map(|p| p.key_id.as_str())
        .unwrap_or("-");
    tracing::info!(
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        key_id = %key_id,
        "request"
    );
    state
        .metrics
        .observe_request(&method, &route, status, elapsed);
    response
}

/// Authenticate the key and check the route's entry in the access table.
async fn authorize(
    State(state): State<AppState>,
    matched: MatchedPath,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(rule) = access::lookup(request.method(), matched.as_str()) else {
        tracing::error!(
            route = matched.as_str(),
            "route missing from the access table"
        );
        return ApiError::forbidden("this route is not open to any role").into_response();
    };
    if rule == access::Access::Public {
        return next.run(request).await;
    }
    let source_ip = source_ip(&request);
    let principal = match authenticate(&state, request.headers()).await {
        Ok(principal) => principal,
        Err(err) => {
            if err.status == StatusCode::UNAUTHORIZED {
                state.audit.failed_authentication(source_ip).await;
            }
            return err.into_response();
        }
    };
    if !rule.allows(principal.role) {
        return ApiError::forbidden(format!(
            "a {} key may not call this route",
            principal.role.as_str()
        ))
        .into_response();
    }
    if let Err(wait) = state.rate_limiter.take(&principal.key_id) {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests",
            "this key's request rate limit was reached; retry after the time in Retry-After",
        )
        .into_response();
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let actor = Actor::api_key(&principal.key_id).with_ip(source_ip);
    request.extensions_mut().insert(principal.clone());
    request.extensions_mut().insert(actor);
    let mut response = next.run(request).await;
    // For the request log, which sits outside this layer.
    response.extensions_mut().insert(principal);
    response
}

/// The address a request came from (for the audit log).
pub fn source_ip(request: &Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// `Authorization: Bearer <key>`, or Basic with the key as the password.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "send an API key: Authorization: Bearer <key>",
        ));
    };
    let text = value.to_str().unwrap_or("");
    let (scheme, credentials) = text.split_once(' ').unwrap_or((text, ""));
    let secret = if scheme.eq_ignore_ascii_case("bearer") {
        credentials.trim().to_owned()
    } else if scheme.eq_ignore_ascii_case("basic") {
        STANDARD
            .decode(credentials.trim())
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|pair| {
                pair.split_once(':')
                    .map(|(_, password)| password.to_owned())
            })
            .unwrap_or_default()
    } else {
        String::new()
    };
    match state.keys.authenticate(&secret).await? {
        Some(principal) => Ok(principal),
        None => Err(ApiError::unauthorized("the API key is unknown or revoked")),
    }
}
