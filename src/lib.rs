//! chartwire: a self-hosted health-record server whose every change becomes
//! an event, committed with the change and readable through a gap-free feed.
//!
//! Data flows one way: [`api`] → domain ([`records`], [`events`], [`feed`],
//! [`auth`]) → [`store`]. See ARCHITECTURE.md for the map.

pub mod admin;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod events;
pub mod feed;
pub mod ids;
pub mod records;
pub mod secrets;
pub mod store;
pub mod tls;
pub mod webhooks;
