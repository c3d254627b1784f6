//! Herald: Jira integration health checks and a durable outgoing mail queue.

pub mod alerts;
pub mod app;
#[cfg(test)]
mod architecture_tests;
pub mod auth;
pub mod client_addr;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod console;
pub mod http;
pub mod identity;
pub mod integrations;
pub mod jira;
pub mod links;
pub mod loops;
pub mod mail;
pub mod metrics;
pub mod secret;
pub mod secrets;
pub mod state;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod timefmt;
