//! Who may call what: one table with an entry for every route of the router.
//!
//! The authorization middleware looks each request's route up here; a route
//! without an entry is refused (403), and a test checks that every route the
//! router registers has an entry, so new routes cannot slip in unguarded.

use std::sync::OnceLock;

use axum::http::Method;

use crate::auth::Role;
use crate::records::schema::RECORD_TYPES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key needed (health, metrics, the API description).
    Public,
    /// A key with one of these roles.
    Roles(&'static [Role]),
}

impl Access {
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Method,
    pub path: String,
    pub access: Access,
}

pub const EVERYONE: &[Role] = &[Role::Superadmin, Role::Staff, Role::Integration];
pub const WRITERS: &[Role] = &[Role::Superadmin, Role::Staff];
pub const SUPERADMIN: &[Role] = &[Role::Superadmin];

/// Webhook administration: Superadmin only.
const WEBHOOK_ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/api/v1/webhooks/endpoints"),
    (Method::POST, "/api/v1/webhooks/endpoints"),
    (Method::GET, "/api/v1/webhooks/endpoints/{id}"),
    (Method::PATCH, "/api/v1/webhooks/endpoints/{id}"),
    (Method::DELETE, "/api/v1/webhooks/endpoints/{id}"),
    (Method::POST, "/api/v1/webhooks/endpoints/{id}/test"),
    (Method::GET, "/api/v1/webhooks/endpoints/{id}/secret"),
    (
        Method::POST,
        "/api/v1/webhooks/endpoints/{id}/rotate-secret",
    ),
    (Method::GET, "/api/v1/webhooks/endpoints/{id}/deliveries"),
    (Method::POST, "/api/v1/webhooks/endpoints/{id}/recover"),
    (Method::GET, "/api/v1/webhooks/deliveries/{id}"),
    (Method::POST, "/api/v1/webhooks/deliveries/{id}/retry"),
];

/// The whole table.
pub fn table() -> &'static [Rule] {
    static TABLE: OnceLock<Vec<Rule>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut rules = Vec::new();
        let mut add = |method: Method, path: &str, access: Access| {
            rules.push(Rule {
                method,
                path: path.to_owned(),
                access,
            });
        };
        for path in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/docs",
            "/docs/{*file}",
        ] {
            add(Method::GET, path, Access::Public);
        }
        add(Method::GET, "/api/v1/keys", Access::Roles(SUPERADMIN));
        add(Method::POST, "/api/v1/keys", Access::Roles(SUPERADMIN));
        add(
            Method::DELETE,
            "/api/v1/keys/{id}",
            Access::Roles(SUPERADMIN),
        );
        add(Method::GET, "/api/v1/changes", Access::Roles(EVERYONE));
        add(Method::GET, "/api/v1/audit", Access::Roles(SUPERADMIN));
        add(
            Method::GET,
            "/api/v1/webhooks/egress",
            Access::Roles(EVERYONE),
        );
        add(
            Method::GET,
            "/api/v1/webhooks/event-types",
            Access::Roles(EVERYONE),
        );
        for (method, path) in WEBHOOK_ROUTES {
            add(method.clone(), path, Access::Roles(SUPERADMIN));
        }
        for kind in RECORD_TYPES {
            let collection = format!("/api/v1/{}", kind.plural);
            let item = format!("{collection}/{{id}}");
            add(Method::GET, &collection, Access::Roles(EVERYONE));
            add(Method::POST, &collection, Access::Roles(WRITERS));
            add(Method::GET, &item, Access::Roles(EVERYONE));
            add(Method::PATCH, &item, Access::Roles(WRITERS));
            add(Method::DELETE, &item, Access::Roles(WRITERS));
        }
        rules
    })
}

/// The rule for a request; `HEAD` is treated as `GET`.
pub fn lookup(method: &Method, path: &str) -> Option<Access> {
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    table()
        .iter()
        .find(|rule| rule.method == method && rule.path == path)
        .map(|rule| rule.access)
}
