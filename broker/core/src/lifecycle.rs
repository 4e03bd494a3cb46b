//! The states of what the broker keeps: resources, operations and partner applications,
//! and the shape of a resource (what a tenant chose besides its name and place).
//!
//! Each state is a closed enum stored and sent as its lowercase name; rows hold the enum,
//! so no module compares or parses back strings another one wrote. A stored value that is
//! none of the names is a corrupt row, refused where it is read.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{ImageName, ResourceType, SizeName};

/// A stored state name that is not one of the enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not {what} (one of: {allowed})")]
pub struct StateError {
    /// What kind of state.
    pub what: &'static str,
    /// The refused value.
    pub value: String,
    /// The names that are.
    pub allowed: String,
}

macro_rules! state_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The lowercase name stored and sent.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// Parses the stored name.
            pub fn parse(value: &str) -> Result<Self, StateError> {
                match value {
                    $($text => Ok($name::$variant),)*
                    other => Err(StateError {
                        what: $what,
                        value: other.chars().take(40).collect(),
                        allowed: [$($text),*].join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

state_enum!(
    /// Where a resource is in its life.
    ResourceStatus, "a resource status", {
        /// Accepted; the member is creating it.
        Provisioning = "provisioning",
        /// Created at the member.
        Active = "active",
        /// Active, with an action or an attachment running (no other change meanwhile).
        Updating = "updating",
        /// Being deleted at the member.
        Deleting = "deleting",
        /// Gone at the member (kept in the books).
        Deleted = "deleted",
        /// The member could not create it.
        Failed = "failed",
    }
);

impl OperationKind {
    /// Whether it changes a live resource (an action or an attachment) rather than
    /// creating or deleting it: its failure leaves the resource as it was.
    pub fn is_change(self) -> bool {
        !matches!(self, Self::Create | Self::Delete)
    }
}

impl ResourceStatus {
    /// Whether the resource still exists (or may) at its member.
    pub fn is_live(self) -> bool {
        !matches!(self, Self::Deleted)
    }
}

state_enum!(
    /// What an operation does.
    OperationKind, "an operation kind", {
        /// Create the resource at its member.
        Create = "create",
        /// Delete it there.
        Delete = "delete",
        /// Power an instance on.
        Start = "start",
        /// Power an instance off.
        Stop = "stop",
        /// Restart an instance.
        Reboot = "reboot",
        /// Change an instance's size.
        Resize = "resize",
        /// Attach a volume to an instance.
        Attach = "attach",
        /// Detach a volume.
        Detach = "detach",
    }
);

state_enum!(
    /// Where an operation is.
    OperationStatus, "an operation status", {
        /// Journaled, not yet picked up.
        Pending = "pending",
        /// A worker holds it.
        Running = "running",
        /// Done.
        Succeeded = "succeeded",
        /// Ended with a problem.
        Failed = "failed",
    }
);

state_enum!(
    /// Where a partner's application is.
    ApplicationStatus, "an application status", {
        /// The conformance suite runs against the endpoint.
        ConformanceRunning = "conformance_running",
        /// The suite failed.
        ConformanceFailed = "conformance_failed",
        /// The suite passed; an operator decides.
        AwaitingApproval = "awaiting_approval",
        /// The member joined.
        Approved = "approved",
        /// An operator refused it.
        Rejected = "rejected",
    }
);

/// A capability beyond create, read and delete that a member may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Capability {
    /// Instances with an SSH key, user data, ingress rules and a public address.
    #[serde(rename = "instance.access")]
    InstanceAccess,
    /// Start, stop, reboot and resize.
    #[serde(rename = "instance.actions")]
    InstanceActions,
    /// Volumes attached to and detached from instances.
    #[serde(rename = "volume.attach")]
    VolumeAttach,
    /// Time-limited object URLs.
    #[serde(rename = "bucket.urls")]
    ObjectUrls,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 4] = [
        Self::InstanceAccess,
        Self::InstanceActions,
        Self::VolumeAttach,
        Self::ObjectUrls,
    ];

    /// The dotted name used on the wire and in reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InstanceAccess => "instance.access",
            Self::InstanceActions => "instance.actions",
            Self::VolumeAttach => "volume.attach",
            Self::ObjectUrls => "bucket.urls",
        }
    }
}

/// What a tenant chose for a resource besides its name and place: an instance's size and
/// image, a volume's size. Validated once at the edge; stored as a JSON object with only
/// the fields that apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceShape {
    /// Instance size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<SizeName>,
    /// Instance image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageName>,
    /// Volume size in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u32>,
}

/// The SKU a resource is metered under and its units per hour: `instance.<size>` (1 per
/// hour), `volume.gb` (its GB per hour), `bucket` (1 per hour).
pub fn sku_of(
    resource_type: ResourceType,
    shape: &ResourceShape,
) -> (String, rust_decimal::Decimal) {
    use rust_decimal::Decimal;
    match resource_type {
        ResourceType::Instance => (
            format!(
                "instance.{}",
                shape.size.as_ref().map_or("unknown", |s| s.as_str())
            ),
            Decimal::ONE,
        ),
        ResourceType::Volume => (
            "volume.gb".to_owned(),
            Decimal::from(shape.size_gb.unwrap_or(0)),
        ),
        ResourceType::Bucket => ("bucket".to_owned(), Decimal::ONE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names_and_refuse_others() {
        for s in ResourceStatus::ALL {
            assert_eq!(ResourceStatus::parse(s.as_str()), Ok(*s));
            assert_eq!(
                serde_json::to_string(s).expect("json"),
                format!("\"{}\"", s.as_str())
            );
        }
        for s in ApplicationStatus::ALL {
            assert_eq!(ApplicationStatus::parse(s.as_str()), Ok(*s));
        }
        for s in OperationStatus::ALL {
            assert_eq!(OperationStatus::parse(s.as_str()), Ok(*s));
        }
        let err = OperationKind::parse("explode").expect_err("refused");
        assert_eq!(
            err.to_string(),
            "`explode` is not an operation kind (one of: create, delete, start, stop, reboot, resize, attach, detach)"
        );
    }

    #[test]
    fn shapes_store_only_their_fields_and_meter_by_type() {
        let small = ResourceShape {
            size: Some(SizeName::parse("small").expect("size")),
            image: Some(ImageName::parse("debian-12").expect("image")),
            size_gb: None,
        };
        let json = serde_json::to_string(&small).expect("json");
        assert_eq!(json, r#"{"size":"small","image":"debian-12"}"#);
        assert_eq!(
            serde_json::from_str::<ResourceShape>(&json).expect("back"),
            small
        );
        assert_eq!(
            sku_of(ResourceType::Instance, &small),
            ("instance.small".into(), rust_decimal::Decimal::ONE)
        );
        let volume = ResourceShape {
            size_gb: Some(20),
            ..ResourceShape::default()
        };
        assert_eq!(
            sku_of(ResourceType::Volume, &volume).1,
            rust_decimal::Decimal::from(20)
        );
        assert!(serde_json::from_str::<ResourceShape>(r#"{"size":"Not A Size"}"#).is_err());
    }
}
