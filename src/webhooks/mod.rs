//! Webhooks: endpoints, signing, and the delivery engine.

pub mod signing;
