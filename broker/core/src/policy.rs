//! Tenant policies and data classes: what a placement must respect.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{Certification, DataClassName, Jurisdiction, TenantId};

/// What a tenant allows: its home jurisdiction, the jurisdictions its data may live in, and
/// the data class used when a request names none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPolicy {
    /// The tenant.
    pub id: TenantId,
    /// Where a request without a jurisdiction is placed.
    pub home_jurisdiction: Jurisdiction,
    /// The only jurisdictions the tenant's resources may ever live in.
    pub allowed_jurisdictions: BTreeSet<Jurisdiction>,
    /// The data class used when a request names none.
    pub default_data_class: DataClassName,
}

/// What a data class requires of the member that holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataClassPolicy {
    /// Certifications the member must hold, all of them.
    #[serde(default)]
    pub certifications: BTreeSet<Certification>,
    /// When true, every jurisdiction the member serves must be in the EU/EEA.
    #[serde(default)]
    pub eu_eea_only: bool,
}

/// The data classes known to the broker, by name.
pub type DataClasses = BTreeMap<DataClassName, DataClassPolicy>;

impl DataClassPolicy {
    /// The certifications of this policy that `held` lacks, in a stable order.
    pub fn missing_certifications<'a>(
        &'a self,
        held: &'a BTreeSet<Certification>,
    ) -> impl Iterator<Item = &'a Certification> + 'a {
        self.certifications.difference(held)
    }

    /// Whether a member serving `jurisdictions` satisfies the region rule.
    pub fn region_allows(&self, jurisdictions: &BTreeSet<Jurisdiction>) -> bool {
        !self.eu_eea_only || jurisdictions.iter().all(Jurisdiction::is_eu_eea)
    }
}
