//! The integration suite: one binary, real servers on port 0, real databases.
//! `CHARTWIRE_TEST_BACKEND` picks the backend (sqlite by default, or postgres
//! with `CHARTWIRE_TEST_DATABASE_URL`); `scripts/test.sh` runs it on both.

mod admin_client;
mod chromium;
mod db;
mod helpers;
mod limits;
mod listener;

mod admin;
mod admin_auth;
mod admin_browser;
mod audit;
mod cluster;
mod durability;
mod events;
mod feed;
mod guard;
mod records;
mod roles;
mod tls;
mod webhooks;
