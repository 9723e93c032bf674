//! Webhooks: endpoints (configuration, secrets, subscriptions), where they
//! may point ([`address`]), how requests are signed ([`signing`]), the retry
//! schedule, the dispatcher that sends deliveries, and the delivery log.
//!
//! The domain side knows no HTTP server types and reaches the database only
//! through the store traits; the outbound HTTP client lives here because
//! sending webhooks is this part's job.

pub mod address;
pub mod deliveries;
pub mod dispatch;
pub mod endpoint;
pub mod schedule;
pub mod signing;
