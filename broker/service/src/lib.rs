//! The alliance broker as a library: `main` only wires.
//!
//! Start at [`startup::Application`]; the request path is [`api`] → [`auth`] →
//! [`provisioning`] → [`store`], and the [`provisioning::engine`] drives member clouds
//! through the adapters registered in [`members`]. docs/ARCHITECTURE.md has the map.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod billing;
pub mod config;
pub mod drift;
pub mod endpoints;
pub mod error;
pub mod members;
pub mod partners;
pub mod provisioning;
pub mod ratelimit;
pub mod secrets;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod time;
