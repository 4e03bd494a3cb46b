//! The federation protocol, `/federation/v1`: what a partner cloud implements to join the
//! alliance (specified in docs/federation-protocol.md).
//!
//! This crate holds the protocol's wire types ([`protocol`]), the broker's adapter that
//! speaks it ([`FederationAdapter`]), and the reference implementation of a member
//! ([`server`], run by `alliance member-sim`), which keeps its state in the same journaled
//! table as the in-process `sim` member.
#![forbid(unsafe_code)]

pub mod client;
pub mod protocol;
pub mod server;
mod server_usable;

pub use client::{FederationAdapter, FederationConfig};
