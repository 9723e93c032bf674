//! One file per page group: sign-in, the Integrations list and endpoint
//! form, an endpoint's detail page and its actions, the event catalogue and
//! egress, API keys, the audit log.

pub mod audit;
pub mod catalogue;
pub mod endpoint;
pub mod integrations;
pub mod keys;
pub mod sign_in;
