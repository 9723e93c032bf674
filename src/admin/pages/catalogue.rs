//! The event catalogue (every type with its description, JSON Schema and
//! example body) and the egress addresses.

use askama::Template;
use axum::extract::{Extension, State};
use axum::response::Response;

use crate::admin::page::{Frame, render};
use crate::admin::session::CurrentAdmin;
use crate::api::AppState;
use crate::events::{catalogue, schema};

pub struct EventDoc {
    pub name: String,
    pub description: String,
    pub category: &'static str,
    pub schema: String,
    pub example: String,
}

#[derive(Template)]
#[template(path = "event_types.html")]
struct EventTypesPage {
    frame: Frame,
    events: Vec<EventDoc>,
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

pub async fn event_types(Extension(admin): Extension<CurrentAdmin>) -> Response {
    let events = catalogue::all()
        .iter()
        .map(|event| EventDoc {
            name: event.name.clone(),
            description: event.description.clone(),
            category: event.category.as_str(),
            schema: pretty(&schema::schema_of(event)),
            example: pretty(&schema::example_of(event)),
        })
        .collect();
    render(&EventTypesPage {
        frame: Frame::new(&admin, "event-types", "Event catalogue"),
        events,
    })
}

#[derive(Template)]
#[template(path = "egress.html")]
struct EgressPage {
    frame: Frame,
    addresses: Vec<String>,
}

pub async fn egress(
    State(state): State<AppState>,
    Extension(admin): Extension<CurrentAdmin>,
) -> Response {
    render(&EgressPage {
        frame: Frame::new(&admin, "egress", "Egress addresses"),
        addresses: state.egress.iter().map(|ip| ip.to_string()).collect(),
    })
}
