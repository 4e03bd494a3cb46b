//! Why a member was not eligible, as values ([`Rejection`]) rendered as human sentences.

use std::fmt;

use crate::ids::{Certification, DataClassName, Jurisdiction, MemberId, ResourceType, SizeName};

use super::MemberStatus;

/// Why a member was not eligible. Rendered as a human sentence by `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The requested jurisdiction is not among the tenant's allowed ones.
    JurisdictionNotAllowed(Jurisdiction),
    /// The member does not serve the requested jurisdiction.
    NotInJurisdiction(Jurisdiction),
    /// The member does not offer the service.
    ServiceNotOffered(ResourceType),
    /// The member does not offer the size.
    SizeNotOffered(SizeName),
    /// The data class is unknown.
    UnknownDataClass(DataClassName),
    /// The member lacks certifications the data class requires.
    MissingCertifications {
        /// The data class.
        data_class: DataClassName,
        /// What it lacks.
        missing: Vec<Certification>,
    },
    /// The data class requires EU/EEA members and this one serves elsewhere too.
    OutsideEuEea(DataClassName),
    /// The tenant pinned another member.
    NotRequestedMember(MemberId),
    /// The member is not active.
    NotActive(MemberStatus),
    /// The member is down.
    Down,
    /// The member does not offer what the request needs.
    LacksCapabilities(Vec<crate::Capability>),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::JurisdictionNotAllowed(j) => {
                write!(
                    f,
                    "jurisdiction {j} is not among the tenant's allowed jurisdictions"
                )
            }
            Self::NotInJurisdiction(j) => write!(f, "does not serve jurisdiction {j}"),
            Self::ServiceNotOffered(t) => write!(f, "does not offer the {t} service"),
            Self::SizeNotOffered(s) => write!(f, "does not offer size {s}"),
            Self::UnknownDataClass(d) => write!(f, "data class {d} is not defined"),
            Self::MissingCertifications {
                data_class,
                missing,
            } => {
                let names: Vec<&str> = missing.iter().map(Certification::as_str).collect();
                write!(
                    f,
                    "lacks certification {} required by data class {data_class}",
                    names.join(", ")
                )
            }
            Self::OutsideEuEea(d) => {
                write!(
                    f,
                    "serves jurisdictions outside the EU/EEA, which data class {d} forbids"
                )
            }
            Self::NotRequestedMember(m) => write!(f, "is not the requested member {m}"),
            Self::NotActive(s) => write!(f, "is {} and takes no new placements", s.as_str()),
            Self::Down => f.write_str("is down"),
            Self::LacksCapabilities(lacking) => {
                let names: Vec<&str> = lacking.iter().map(|c| c.as_str()).collect();
                write!(f, "does not offer {}", names.join(", "))
            }
        }
    }
}
