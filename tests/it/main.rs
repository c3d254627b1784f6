//! Herald's black-box tests, linked into one binary: a test binary links all of Herald and its
//! dependencies, so one per topic made linking dominate an incremental test build. Each topic is a
//! module here; `support` (spawn_app, both databases, the Jira simulator, smtp-sink, a private
//! PostgreSQL, a browser) is shared by all of them, and `support/process.rs` also by the benchmarks.
//!
//! A test's name is its module path, e.g. `auth::sqlite::…` or `console_browser::screenshots`, so
//! `scripts/test.sh auth` still selects a topic. cargo-nextest runs every test in a process of its
//! own, so a test may still install process-wide state (a tracing subscriber, environment variables).

#[macro_use]
mod support;

mod alerts;
mod architecture;
mod auth;
mod cli;
mod cluster;
mod console;
mod console_browser;
mod console_ticket_list;
mod console_tickets;
mod database_outage;
mod error_kinds;
mod http_basics;
mod integrations_api;
mod integrations_cli;
mod integrations_faults;
mod integrations_logs;
mod integrations_status;
mod integrations_tickets;
mod jira_tickets;
mod mail;
mod mail_crash;
mod mail_http;
mod mail_raw;
mod mail_relays;
mod schema;
mod smtp_crash;
mod smtp_submission;
mod store;
mod tickets_alertmanager;
mod tickets_api;
mod tickets_check;
mod tickets_crash;
mod tickets_delivery;
mod tickets_exactly_once;
mod tickets_intake;
mod tickets_store;
mod users_tokens;
