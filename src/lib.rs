//! Herald: Jira integration health checks and a durable outgoing mail queue.
//!
//! # A map of the crate
//!
//! Requests and commands flow one way, from the faces through the services to the store and the
//! outbound clients:
//!
//! ```text
//!  faces     http/ (the JSON API, the Xray and mail-queue seeds)   console/ (admin pages)   cli/
//!            submission/ (the SMTP submission server)
//!              |                                                       |                      |
//!  services  auth/ (users, tokens, sessions, throttling)   integrations/ (model, checks, sweep)
//!            mail/ (queue, retries, delivery)   cluster/ (nodes, heartbeats, drain)   alerts/
//!            tickets/ (events → Jira issues: intake, settings, templates, rendering)
//!            ticket_delivery/ (the worker applying events to Jira, exactly once per problem)
//!              |                                                       |
//!  below     store/ (SQL for SQLite and PostgreSQL)    outbound: jira/ (REST client), mail/smtp.rs
//!
//!  leaves    clock, timefmt, identity (Role, Username, IntegrationName), links (console paths), loops, secret/,
//!            client_addr, error_kind: used anywhere, import nothing of the above
//! ```
//!
//! - [`services`] opens the services of one installation (data dir, database, secrets key, node
//!   id) with the same start-up checks for `serve` and every command.
//! - [`app`] wires it together: opens the services, builds the router (the API and the
//!   console), starts the background loops under the [`supervisor`], and shuts down. `main`
//!   only parses the command line, starts logging ([`telemetry`]) and runs a [`cli`] command; only
//!   `main` and [`cli`] import [`app`].
//! - [`state`] holds `AppState`: the services behind one `Arc`, which is all a handler may reach.
//! - [`config`] reads the settings (defaults, `herald.toml`, `HERALD_*`, flags) into sections, each
//!   key declared once; a service's section type lives in the service, which takes it whole.
//!   [`metrics`] is the registry every layer records into and `/metrics` renders.
//! - The faces translate: they parse input, call a service and render its answer. The services
//!   hold the rules; only [`store`] writes SQL. Each domain error says what kind it is
//!   ([`error_kind`]); each face turns kinds into its answers in one place.
//! - The top-level modules form no import cycle and no service imports a face: a unit test
//!   (`tests/it/architecture.rs`) reads `src/` and fails when either rule is broken.

pub mod alerts;
pub mod app;
pub mod auth;
pub mod cli;
pub mod client_addr;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod console;
pub mod error_kind;
pub mod http;
pub mod identity;
pub mod integrations;
pub mod jira;
pub mod links;
pub mod loops;
pub mod mail;
pub mod metrics;
pub mod secret;
pub mod services;
pub mod state;
pub mod store;
pub mod submission;
pub mod supervisor;
pub mod telemetry;
pub mod ticket_delivery;
pub mod tickets;
pub mod timefmt;
