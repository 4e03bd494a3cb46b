//! Service tests: the `Router` driven in process on a fresh database, by the actors
//! `tenant_a`, `tenant_b`, `partner`, `billing` and `operator` (see `support.rs`).
//! One file per service: provisioning, SSH keys, tenancy, partners, billing, and the error
//! vocabulary.
#![expect(
    clippy::panic,
    reason = "a test fails by panicking, also in its helpers"
)]

mod billing;
mod errors;
mod partners;
mod provisioning;
mod ssh_keys;
mod support;
mod tenancy;
mod usable;
