//! The pure core of the alliance broker.
//!
//! Everything here is a function from values to values: no I/O, no clock, no async runtime.
//! The identifiers are parsed once at the edge (`parse`/`TryFrom`) so that inner code only
//! ever sees valid values, and the placement decision lives here so that it can be tested
//! exhaustively and property-tested without a database or a network.
//!
//! Invariant: this crate depends on nothing that performs I/O (see `tests/tidy.rs`).
#![forbid(unsafe_code)]

pub mod billing;
pub mod focus;
pub mod ids;
pub mod invoice;
pub mod lifecycle;
pub mod placement;
pub mod policy;
pub mod rates;
pub mod reconcile;
pub mod text;

pub use ids::{
    Certification, DataClassName, IdError, ImageName, Jurisdiction, MemberId, ResourceType,
    SizeName, TenantId,
};
pub use lifecycle::{
    sku_of, ApplicationStatus, Capability, OperationKind, OperationStatus, ResourceShape,
    ResourceStatus, StateError,
};
pub use placement::{
    decide, Candidate, Decision, Failed, MemberCandidate, MemberHealth, MemberStatus,
    PlacementOutcome, PlacementRequest, Rejection,
};
pub use policy::{DataClassPolicy, DataClasses, TenantPolicy};
pub use text::{check_text, TextError};
