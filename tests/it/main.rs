//! The integration suite: one binary, real servers on port 0, real databases.
//! `CHARTWIRE_TEST_BACKEND` picks the backend (sqlite by default).

mod helpers;
mod limits;
mod listener;

mod audit;
mod durability;
mod events;
mod feed;
mod guard;
mod records;
mod roles;
mod tls;
mod webhooks;
