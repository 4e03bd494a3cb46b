//! Tenants seeded at start (`[[tenants]]`) and the default data classes.
//!
//! Owns [`TenantSeed`], the placement policy it gives, and the SPEC's four data classes
//! used when `[data_classes]` is absent.
//!
//! **Invariant:** identifiers are parsed into their types while deserialising (tenant id,
//! jurisdictions, data class name), so a seed holds only valid values; that its home is
//! allowed, its id unique and its default class defined is checked in `validate`.

use std::collections::BTreeSet;

use alliance_core::{
    Certification, DataClassName, DataClassPolicy, DataClasses, Jurisdiction, TenantId,
    TenantPolicy,
};
use serde::Deserialize;
use toml::Spanned;

/// The SPEC's four data classes, used when `[data_classes]` is absent.
pub(super) fn default_data_classes() -> DataClasses {
    let hds = Certification::parse("hds")
        .map(|c| BTreeSet::from([c]))
        .unwrap_or_default();
    let snc = Certification::parse("secnumcloud")
        .map(|c| BTreeSet::from([c]))
        .unwrap_or_default();
    [
        ("standard", DataClassPolicy::default()),
        (
            "personal",
            DataClassPolicy {
                certifications: BTreeSet::new(),
                eu_eea_only: true,
            },
        ),
        (
            "health",
            DataClassPolicy {
                certifications: hds,
                eu_eea_only: false,
            },
        ),
        (
            "public-sector",
            DataClassPolicy {
                certifications: snc,
                eu_eea_only: false,
            },
        ),
    ]
    .into_iter()
    .filter_map(|(name, policy)| DataClassName::parse(name).ok().map(|n| (n, policy)))
    .collect()
}

/// `[[tenants]]`: a tenant seeded at start when absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSeed {
    /// The tenant id.
    pub id: Spanned<TenantId>,
    /// Display name; the id when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Where requests without a jurisdiction go.
    pub home_jurisdiction: Jurisdiction,
    /// Where the tenant's data may live.
    pub allowed_jurisdictions: BTreeSet<Jurisdiction>,
    /// Data class of requests that name none.
    #[serde(default = "default_class")]
    pub default_data_class: DataClassName,
    /// What its invoices are in (ISO 4217); EUR when absent.
    #[serde(default = "alliance_core::rates::Currency::eur")]
    pub billing_currency: alliance_core::rates::Currency,
}

fn default_class() -> DataClassName {
    DataClassName::parse("standard").unwrap_or_else(|_| unreachable_class())
}

#[expect(
    clippy::panic,
    reason = "the literal `standard` is a valid data class name"
)]
fn unreachable_class() -> DataClassName {
    panic!("`standard` is a valid data class name")
}

impl TenantSeed {
    /// The tenant's placement policy.
    pub fn policy(&self) -> TenantPolicy {
        TenantPolicy {
            id: self.id.get_ref().clone(),
            home_jurisdiction: self.home_jurisdiction,
            allowed_jurisdictions: self.allowed_jurisdictions.clone(),
            default_data_class: self.default_data_class.clone(),
        }
    }
}
