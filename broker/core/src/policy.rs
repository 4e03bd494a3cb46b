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

/// Why a resource placed at `jurisdiction` is outside its tenant's policy now: the tenant
/// no longer allows the jurisdiction (when `allowed` is given), or its member (the certifications it holds and the
/// jurisdictions it serves, when it is still in the catalogue) no longer meets the
/// resource's data class (a certification lost, a class that asks for more). Empty when it
/// complies. Placement checks the same rules before a resource is placed; this finds
/// resources that facts changed under.
pub fn outside_policy_reasons(
    allowed: Option<&BTreeSet<Jurisdiction>>,
    jurisdiction: &Jurisdiction,
    class: Option<&DataClassPolicy>,
    member: Option<(&BTreeSet<Certification>, &BTreeSet<Jurisdiction>)>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if allowed.is_some_and(|allowed| !allowed.contains(jurisdiction)) {
        reasons.push(format!(
            "the tenant no longer allows jurisdiction {jurisdiction}"
        ));
    }
    if let Some((held, served)) = member {
        reasons.extend(member_shortfalls(class, held, served));
    }
    reasons
}

/// What a member holding `held` and serving `served` lacks for data `class` (`None`: a
/// class the config no longer defines); empty when it meets it.
pub fn member_shortfalls(
    class: Option<&DataClassPolicy>,
    held: &BTreeSet<Certification>,
    served: &BTreeSet<Jurisdiction>,
) -> Vec<String> {
    let Some(class) = class else {
        return vec!["its data class is no longer defined".to_owned()];
    };
    let mut reasons = Vec::new();
    let missing: Vec<&str> = class
        .missing_certifications(held)
        .map(Certification::as_str)
        .collect();
    if !missing.is_empty() {
        reasons.push(format!(
            "its member no longer holds the certifications its data class requires: {}",
            missing.join(", ")
        ));
    }
    if !class.region_allows(served) {
        reasons.push("its data class requires a member serving only the EU/EEA".to_owned());
    }
    reasons
}
