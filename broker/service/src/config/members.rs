//! Member clouds: `[[members]]` and how the broker talks to each (`adapter`).
//!
//! Owns [`MemberConfig`] (jurisdictions, certifications, services, size and image maps, the
//! price catalogue) and [`AdapterConfig`], tagged by `kind`.
//!
//! **Invariant:** identifiers and adapter settings are parsed strictly into their types;
//! the member's own rules (unique id, at least one jurisdiction, a valid price catalogue,
//! adapter-specific problems) are checked in `validate`.

use std::collections::{BTreeMap, BTreeSet};

use alliance_adapter_sim::SimConfig;
use alliance_core::{Certification, ImageName, Jurisdiction, MemberId, ResourceType, SizeName};
use serde::Deserialize;
use toml::Spanned;

/// `[[members]]`: a member cloud.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// The member id.
    pub id: Spanned<MemberId>,
    /// Legal or display name.
    pub name: String,
    /// Jurisdictions it serves.
    pub jurisdictions: BTreeSet<Jurisdiction>,
    /// Certifications it holds.
    #[serde(default)]
    pub certifications: BTreeSet<Certification>,
    /// Services it offers.
    pub services: BTreeSet<ResourceType>,
    /// Broker size → member flavour.
    #[serde(default)]
    pub sizes: BTreeMap<SizeName, String>,
    /// Broker image → member image id.
    #[serde(default)]
    pub images: BTreeMap<ImageName, String>,
    /// How the broker talks to it.
    pub adapter: AdapterConfig,
    /// Its price catalogue (exact decimals as strings, one currency).
    #[serde(default)]
    pub prices: Vec<alliance_core::billing::Price>,
    /// How far its clock and the broker's may be apart at each end of a span, in seconds,
    /// for its reconciliations (5 by default; see `docs/federation-protocol.md`).
    #[serde(default = "default_clock_skew")]
    pub clock_skew_seconds: u32,
}

fn default_clock_skew() -> u32 {
    alliance_core::reconcile::DEFAULT_CLOCK_SKEW_SECONDS
}

/// How the broker talks to a member.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum AdapterConfig {
    /// The in-process simulated member.
    Sim(SimConfig),
    /// A member speaking the federation protocol over HTTP.
    Federation(alliance_adapter_federation::FederationConfig),
    /// An EC2- and S3-compatible cloud.
    Ec2(alliance_adapter_ec2::Ec2Config),
    /// An OpenStack cloud (Keystone v3, Nova, Cinder, Swift).
    Openstack(alliance_adapter_openstack::OpenStackConfig),
}

impl AdapterConfig {
    /// The adapter kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sim(_) => "sim",
            Self::Federation(_) => "federation",
            Self::Ec2(_) => "ec2",
            Self::Openstack(_) => "openstack",
        }
    }
}
