//! The placement decision: which member cloud gets a new resource, and why.
//!
//! A pure function of (request, tenant policy, data classes, member catalogue with health):
//! every member is run through the filters of the SPEC, each filter giving a human reason
//! when it rejects; the eligible members are ranked (health, home jurisdiction, price, load)
//! and ties are broken by member id, so that the same inputs always give the same answer.
//!
//! Invariant (checked by [`Decision::check`] and property-tested): a chosen member serves
//! the requested jurisdiction, that jurisdiction is allowed for the tenant, the member holds
//! every certification the data class requires, is active and is not down.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::{Certification, DataClassName, Jurisdiction, MemberId, ResourceType, SizeName};
use crate::policy::{DataClasses, TenantPolicy};

mod rejection;

pub use rejection::Rejection;

/// The lifecycle status of a member, set by operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// Receives new placements.
    Active,
    /// Temporarily receives no new placements; existing resources stay reachable.
    Suspended,
    /// Being emptied: no new placements.
    Draining,
    /// Gone from the alliance.
    Retired,
}

impl MemberStatus {
    /// The lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Draining => "draining",
            Self::Retired => "retired",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "draining" => Some(Self::Draining),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

/// The health of a member as the broker observes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberHealth {
    /// Answering normally.
    Up,
    /// Answering, with errors or slowly.
    Degraded,
    /// Not answering; gets no placements.
    Down,
}

impl MemberHealth {
    /// The lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Degraded => "degraded",
            Self::Down => "down",
        }
    }
}

/// A member as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberCandidate {
    /// The member.
    pub id: MemberId,
    /// The jurisdictions it serves.
    pub jurisdictions: BTreeSet<Jurisdiction>,
    /// The certifications it holds.
    pub certifications: BTreeSet<Certification>,
    /// The services it offers.
    pub services: BTreeSet<ResourceType>,
    /// The sizes it maps to its own flavours; empty means "any size".
    pub sizes: BTreeSet<SizeName>,
    /// Operator-set lifecycle status.
    pub status: MemberStatus,
    /// Observed health.
    pub health: MemberHealth,
    /// Price of the requested kind of resource, in millionths of the member's currency per
    /// unit, when known; cheaper ranks higher.
    pub price_micros: Option<u64>,
    /// Live resources at the member; fewer ranks higher.
    pub load: u64,
    /// What it offers beyond create, read and delete (keys and actions on instances,
    /// attachments, object URLs).
    pub capabilities: BTreeSet<crate::Capability>,
}

/// What is being placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementRequest {
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// The requested jurisdiction; the tenant's home when absent.
    pub jurisdiction: Option<Jurisdiction>,
    /// The data class; the tenant's default when absent.
    pub data_class: Option<DataClassName>,
    /// The size, for instances.
    pub size: Option<SizeName>,
    /// A member the tenant pins the resource to.
    pub member: Option<MemberId>,
    /// What the request needs the member to offer (an instance with a key or user data
    /// needs `instance.access`, a volume created for an instance `volume.attach`).
    pub needs: BTreeSet<crate::Capability>,
}

/// Which filters a member failed, kept compact (no allocation) and rendered as
/// [`Rejection`]s on demand by [`Decision::rejections`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failed {
    flags: u16,
    /// Bit i: the data class's i-th required certification is missing.
    missing: u64,
    /// Bit i: the request's i-th needed capability is not offered.
    lacking: u8,
}

impl Failed {
    const JURISDICTION_NOT_ALLOWED: u16 = 1;
    const NOT_IN_JURISDICTION: u16 = 1 << 1;
    const SERVICE: u16 = 1 << 2;
    const SIZE: u16 = 1 << 3;
    const UNKNOWN_CLASS: u16 = 1 << 4;
    const MISSING_CERTIFICATIONS: u16 = 1 << 5;
    const OUTSIDE_EU_EEA: u16 = 1 << 6;
    const NOT_REQUESTED: u16 = 1 << 7;
    const NOT_ACTIVE: u16 = 1 << 8;
    const DOWN: u16 = 1 << 9;
    const CAPABILITIES: u16 = 1 << 10;

    fn set(&mut self, flag: u16) {
        self.flags |= flag;
    }

    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    /// Whether every filter passed.
    pub fn none(&self) -> bool {
        self.flags == 0
    }

    /// Whether being down is the only reason.
    pub fn only_down(&self) -> bool {
        self.flags == Self::DOWN
    }
}

/// One member's result in a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The member.
    pub member: MemberId,
    /// Whether it passed every filter.
    pub eligible: bool,
    /// Its rank score; higher is better; 0 when not eligible.
    pub score: i64,
    /// The filters it failed.
    pub failed: Failed,
    /// Its lifecycle status (for the reason when not active).
    pub status: MemberStatus,
}

/// The overall result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementOutcome {
    /// A member was chosen.
    Placed(MemberId),
    /// The requested jurisdiction is not allowed for the tenant.
    JurisdictionNotAllowed,
    /// The data class is unknown.
    UnknownDataClass,
    /// No member passes the filters, even ignoring health.
    NoEligibleMember,
    /// Some member would be eligible but every such member is down.
    MembersUnavailable,
}

/// A placement decision with every candidate's reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// The effective jurisdiction (requested, or the tenant's home).
    pub jurisdiction: Jurisdiction,
    /// The effective data class (requested, or the tenant's default).
    pub data_class: DataClassName,
    /// The requested size, if any.
    pub size: Option<SizeName>,
    /// The pinned member, if any.
    pub pinned: Option<MemberId>,
    /// The certifications the data class requires, in order (bit i of `Failed::missing`).
    pub required: Vec<Certification>,
    /// The capabilities the request needs, in order (bit i of `Failed::lacking`).
    pub needs: Vec<crate::Capability>,
    /// What came of it.
    pub outcome: PlacementOutcome,
    /// Every member considered, best first among the eligible, then by id.
    pub candidates: Vec<Candidate>,
}

impl Decision {
    /// The chosen member, if any.
    pub fn chosen(&self) -> Option<&MemberId> {
        match &self.outcome {
            PlacementOutcome::Placed(member) => Some(member),
            _ => None,
        }
    }

    /// Why `candidate` was rejected, as values.
    pub fn rejections(&self, candidate: &Candidate) -> Vec<Rejection> {
        let f = candidate.failed;
        let mut out = Vec::new();
        if f.has(Failed::JURISDICTION_NOT_ALLOWED) {
            out.push(Rejection::JurisdictionNotAllowed(self.jurisdiction));
        }
        if f.has(Failed::NOT_REQUESTED) {
            if let Some(pinned) = &self.pinned {
                out.push(Rejection::NotRequestedMember(pinned.clone()));
            }
        }
        if f.has(Failed::NOT_IN_JURISDICTION) {
            out.push(Rejection::NotInJurisdiction(self.jurisdiction));
        }
        if f.has(Failed::SERVICE) {
            out.push(Rejection::ServiceNotOffered(self.resource_type));
        }
        if f.has(Failed::SIZE) {
            if let Some(size) = &self.size {
                out.push(Rejection::SizeNotOffered(size.clone()));
            }
        }
        if f.has(Failed::UNKNOWN_CLASS) {
            out.push(Rejection::UnknownDataClass(self.data_class.clone()));
        }
        if f.has(Failed::MISSING_CERTIFICATIONS) {
            let missing = self
                .required
                .iter()
                .enumerate()
                .filter(|(i, _)| f.missing & (1u64 << i) != 0)
                .map(|(_, c)| c.clone())
                .collect();
            out.push(Rejection::MissingCertifications {
                data_class: self.data_class.clone(),
                missing,
            });
        }
        if f.has(Failed::OUTSIDE_EU_EEA) {
            out.push(Rejection::OutsideEuEea(self.data_class.clone()));
        }
        if f.has(Failed::NOT_ACTIVE) {
            out.push(Rejection::NotActive(candidate.status));
        }
        if f.has(Failed::CAPABILITIES) {
            let lacking = self
                .needs
                .iter()
                .enumerate()
                .filter(|(i, _)| f.lacking & (1u8 << i) != 0)
                .map(|(_, c)| *c)
                .collect();
            out.push(Rejection::LacksCapabilities(lacking));
        }
        if f.has(Failed::DOWN) {
            out.push(Rejection::Down);
        }
        out
    }

    /// Human reasons for one candidate: its rejections, or why it is eligible.
    pub fn reasons_of(&self, candidate: &Candidate) -> Vec<String> {
        if candidate.eligible {
            vec!["passes every filter".to_owned()]
        } else {
            self.rejections(candidate)
                .iter()
                .map(ToString::to_string)
                .collect()
        }
    }

    /// A short human account, stored on the resource as `placement.reasons`.
    pub fn reasons(&self, tenant: &TenantPolicy, classes: &DataClasses) -> Vec<String> {
        let mut out = Vec::with_capacity(self.candidates.len() + 2);
        let origin = if self.jurisdiction == tenant.home_jurisdiction {
            " (the tenant's home)"
        } else {
            ""
        };
        out.push(format!("jurisdiction {}{origin}", self.jurisdiction));
        if let Some(policy) = classes.get(&self.data_class) {
            let certs: Vec<&str> = policy.certifications.iter().map(|c| c.as_str()).collect();
            let mut rule = format!("data class {}", self.data_class);
            if !certs.is_empty() {
                rule.push_str(&format!(" requires {}", certs.join(", ")));
            }
            if policy.eu_eea_only {
                rule.push_str(" and an EU/EEA member");
            }
            out.push(rule);
        }
        for candidate in &self.candidates {
            let line = if self.chosen() == Some(&candidate.member) {
                format!("{}: chosen (score {})", candidate.member, candidate.score)
            } else if candidate.eligible {
                format!(
                    "{}: eligible, ranked lower (score {})",
                    candidate.member, candidate.score
                )
            } else {
                format!(
                    "{}: {}",
                    candidate.member,
                    self.reasons_of(candidate).join("; ")
                )
            };
            out.push(line);
        }
        out
    }

    /// Checks the decision's contract; used by debug builds and tests.
    pub fn check(
        &self,
        tenant: &TenantPolicy,
        classes: &DataClasses,
        members: &[MemberCandidate],
    ) -> Result<(), String> {
        let Some(chosen) = self.chosen() else {
            return Ok(());
        };
        if !tenant.allowed_jurisdictions.contains(&self.jurisdiction) {
            return Err(format!(
                "placed outside the allowed jurisdictions: {}",
                self.jurisdiction
            ));
        }
        let member = members
            .iter()
            .find(|m| &m.id == chosen)
            .ok_or_else(|| format!("chose unknown member {chosen}"))?;
        if !member.jurisdictions.contains(&self.jurisdiction) {
            return Err(format!("{chosen} does not serve {}", self.jurisdiction));
        }
        let policy = classes
            .get(&self.data_class)
            .ok_or_else(|| format!("placed with unknown data class {}", self.data_class))?;
        if policy
            .missing_certifications(&member.certifications)
            .next()
            .is_some()
        {
            return Err(format!(
                "{chosen} lacks certifications of {}",
                self.data_class
            ));
        }
        if !policy.region_allows(&member.jurisdictions) {
            return Err(format!("{chosen} is outside the EU/EEA"));
        }
        if member.status != MemberStatus::Active || member.health == MemberHealth::Down {
            return Err(format!("{chosen} is not active and up"));
        }
        Ok(())
    }
}

/// Decides where a resource goes. Pure and deterministic.
pub fn decide(
    request: &PlacementRequest,
    tenant: &TenantPolicy,
    classes: &DataClasses,
    members: &[MemberCandidate],
) -> Decision {
    let jurisdiction = request.jurisdiction.unwrap_or(tenant.home_jurisdiction);
    let data_class = request
        .data_class
        .clone()
        .unwrap_or_else(|| tenant.default_data_class.clone());
    let jurisdiction_allowed = tenant.allowed_jurisdictions.contains(&jurisdiction);
    let policy = classes.get(&data_class);

    let required: Vec<Certification> = policy
        .map(|p| p.certifications.iter().cloned().collect())
        .unwrap_or_default();
    // Filter: each member records every filter it fails, so that the answer explains all.
    let mut candidates: Vec<Candidate> = members
        .iter()
        .map(|member| {
            let mut failed = Failed::default();
            if !jurisdiction_allowed {
                failed.set(Failed::JURISDICTION_NOT_ALLOWED);
            }
            if request
                .member
                .as_ref()
                .is_some_and(|pinned| pinned != &member.id)
            {
                failed.set(Failed::NOT_REQUESTED);
            }
            if !member.jurisdictions.contains(&jurisdiction) {
                failed.set(Failed::NOT_IN_JURISDICTION);
            }
            if !member.services.contains(&request.resource_type) {
                failed.set(Failed::SERVICE);
            }
            if let Some(size) = &request.size {
                if !member.sizes.is_empty() && !member.sizes.contains(size) {
                    failed.set(Failed::SIZE);
                }
            }
            match policy {
                None => failed.set(Failed::UNKNOWN_CLASS),
                Some(policy) => {
                    for (i, cert) in required.iter().enumerate().take(64) {
                        if !member.certifications.contains(cert) {
                            failed.missing |= 1u64 << i;
                        }
                    }
                    if failed.missing != 0 {
                        failed.set(Failed::MISSING_CERTIFICATIONS);
                    }
                    if !policy.region_allows(&member.jurisdictions) {
                        failed.set(Failed::OUTSIDE_EU_EEA);
                    }
                }
            }
            if member.status != MemberStatus::Active {
                failed.set(Failed::NOT_ACTIVE);
            }
            if member.health == MemberHealth::Down {
                failed.set(Failed::DOWN);
            }
            for (i, need) in request.needs.iter().enumerate().take(8) {
                if !member.capabilities.contains(need) {
                    failed.lacking |= 1u8 << i;
                }
            }
            if failed.lacking != 0 {
                failed.set(Failed::CAPABILITIES);
            }
            Candidate {
                member: member.id.clone(),
                eligible: failed.none(),
                score: 0,
                failed,
                status: member.status,
            }
        })
        .collect();

    rank(&mut candidates, tenant, members);

    let outcome = if !jurisdiction_allowed {
        PlacementOutcome::JurisdictionNotAllowed
    } else if policy.is_none() {
        PlacementOutcome::UnknownDataClass
    } else if let Some(best) = candidates.first().filter(|c| c.eligible) {
        PlacementOutcome::Placed(best.member.clone())
    } else if candidates.iter().any(|c| c.failed.only_down()) {
        PlacementOutcome::MembersUnavailable
    } else {
        PlacementOutcome::NoEligibleMember
    };

    let decision = Decision {
        resource_type: request.resource_type,
        jurisdiction,
        data_class,
        size: request.size.clone(),
        pinned: request.member.clone(),
        required,
        needs: request.needs.iter().copied().collect(),
        outcome,
        candidates,
    };
    debug_assert_eq!(decision.check(tenant, classes, members), Ok(()));
    decision
}

/// Scores the eligible candidates and sorts: eligible best-first, then the rest by id.
/// `candidates[i]` is `members[i]` until the sort.
fn rank(candidates: &mut [Candidate], tenant: &TenantPolicy, members: &[MemberCandidate]) {
    debug_assert_eq!(candidates.len(), members.len());
    // Price rank among eligible members: the cheapest known price ranks first, unknown last.
    let mut prices: Vec<u64> = candidates
        .iter()
        .zip(members)
        .filter(|(c, _)| c.eligible)
        .filter_map(|(_, m)| m.price_micros)
        .collect();
    prices.sort_unstable();
    prices.dedup();
    for (candidate, member) in candidates.iter_mut().zip(members) {
        if !candidate.eligible {
            continue;
        }
        let health = match member.health {
            MemberHealth::Up => 300,
            MemberHealth::Degraded => 100,
            MemberHealth::Down => 0,
        };
        let home = if member.jurisdictions.contains(&tenant.home_jurisdiction) {
            50
        } else {
            0
        };
        let price_rank = member
            .price_micros
            .and_then(|p| prices.binary_search(&p).ok())
            .unwrap_or(prices.len());
        let price = 40 - 10 * i64::try_from(price_rank.min(4)).unwrap_or(4);
        let load = i64::try_from(member.load.min(100)).unwrap_or(100);
        candidate.score = health + home + price - load;
    }
    candidates.sort_unstable_by(|a, b| {
        b.eligible
            .cmp(&a.eligible)
            .then(b.score.cmp(&a.score))
            .then_with(|| a.member.cmp(&b.member))
    });
}

#[cfg(test)]
mod tests;
