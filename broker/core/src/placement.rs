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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{Certification, DataClassName, Jurisdiction, MemberId, ResourceType, SizeName};
use crate::policy::{DataClasses, TenantPolicy};

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
}

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
        }
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
    /// Why it was rejected (empty when eligible).
    pub rejections: Vec<Rejection>,
}

impl Candidate {
    /// Human reasons: the rejections, or why it is eligible.
    pub fn reasons(&self) -> Vec<String> {
        if self.eligible {
            vec!["passes every filter".to_owned()]
        } else {
            self.rejections.iter().map(ToString::to_string).collect()
        }
    }
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
                format!("{}: {}", candidate.member, candidate.reasons().join("; "))
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

    // Filter: each member collects every reason it fails, so that the answer explains all.
    let mut candidates: Vec<Candidate> = members
        .iter()
        .map(|member| {
            let mut rejections = Vec::new();
            if !jurisdiction_allowed {
                rejections.push(Rejection::JurisdictionNotAllowed(jurisdiction));
            }
            if let Some(pinned) = &request.member {
                if pinned != &member.id {
                    rejections.push(Rejection::NotRequestedMember(pinned.clone()));
                }
            }
            if !member.jurisdictions.contains(&jurisdiction) {
                rejections.push(Rejection::NotInJurisdiction(jurisdiction));
            }
            if !member.services.contains(&request.resource_type) {
                rejections.push(Rejection::ServiceNotOffered(request.resource_type));
            }
            if let Some(size) = &request.size {
                if !member.sizes.is_empty() && !member.sizes.contains(size) {
                    rejections.push(Rejection::SizeNotOffered(size.clone()));
                }
            }
            match policy {
                None => rejections.push(Rejection::UnknownDataClass(data_class.clone())),
                Some(policy) => {
                    let missing: Vec<Certification> = policy
                        .missing_certifications(&member.certifications)
                        .cloned()
                        .collect();
                    if !missing.is_empty() {
                        rejections.push(Rejection::MissingCertifications {
                            data_class: data_class.clone(),
                            missing,
                        });
                    }
                    if !policy.region_allows(&member.jurisdictions) {
                        rejections.push(Rejection::OutsideEuEea(data_class.clone()));
                    }
                }
            }
            if member.status != MemberStatus::Active {
                rejections.push(Rejection::NotActive(member.status));
            }
            if member.health == MemberHealth::Down {
                rejections.push(Rejection::Down);
            }
            Candidate {
                member: member.id.clone(),
                eligible: rejections.is_empty(),
                score: 0,
                rejections,
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
    } else if candidates
        .iter()
        .any(|c| c.rejections.iter().all(|r| *r == Rejection::Down))
    {
        PlacementOutcome::MembersUnavailable
    } else {
        PlacementOutcome::NoEligibleMember
    };

    let decision = Decision {
        resource_type: request.resource_type,
        jurisdiction,
        data_class,
        outcome,
        candidates,
    };
    debug_assert_eq!(decision.check(tenant, classes, members), Ok(()));
    decision
}

/// Scores the eligible candidates and sorts: eligible best-first, then the rest by id.
fn rank(candidates: &mut [Candidate], tenant: &TenantPolicy, members: &[MemberCandidate]) {
    let by_id: BTreeMap<&MemberId, &MemberCandidate> = members.iter().map(|m| (&m.id, m)).collect();
    // Price rank among eligible members: the cheapest known price ranks first, unknown last.
    let mut prices: Vec<u64> = candidates
        .iter()
        .filter(|c| c.eligible)
        .filter_map(|c| by_id.get(&c.member).and_then(|m| m.price_micros))
        .collect();
    prices.sort_unstable();
    prices.dedup();
    for candidate in candidates.iter_mut().filter(|c| c.eligible) {
        let Some(member) = by_id.get(&candidate.member) else {
            continue;
        };
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
            .and_then(|p| prices.iter().position(|&q| q == p))
            .unwrap_or(prices.len());
        let price = 40 - 10 * i64::try_from(price_rank.min(4)).unwrap_or(4);
        let load = i64::try_from(member.load.min(100)).unwrap_or(100);
        candidate.score = health + home + price - load;
    }
    candidates.sort_by(|a, b| {
        b.eligible
            .cmp(&a.eligible)
            .then(b.score.cmp(&a.score))
            .then(a.member.cmp(&b.member))
    });
}

#[cfg(test)]
mod tests;
