//! The alliance broker as a library: `main` only wires.
//!
//! Start at [`startup::Application`]; the request path is [`api`] → [`auth`] →
//! [`tenancy`] → [`provisioning`] (placement, then the journal) → [`store`], and the
//! [`provisioning::engine`] drives member clouds through the adapters registered in
//! [`members`]; the books go [`billing`] (ledger → rating) → [`reconciliation`].
//! Only [`api`] (and the extractor in [`auth`], and [`startup`], which serves) speak HTTP:
//! every other module returns domain values and [`error::ApiError`].
//! docs/ARCHITECTURE.md has the map.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod billing;
pub mod checkpoints;
pub mod compliance;
pub mod config;
pub mod console;
pub mod drift;
pub mod error;
pub mod idempotency;
pub mod invoicing;
pub mod members;
pub mod partners;
pub mod provisioning;
pub mod ratelimit;
pub mod reconciliation;
pub mod secrets;
pub mod ssh_keys;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tenancy;
pub mod time;
pub mod usable;
