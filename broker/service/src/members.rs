//! The member registry: each member's catalogue entry, its adapter, and the routing table
//! (lifecycle status from the store, health observed by probing, load) that placement reads.
//!
//! Invariant: placement only ever sees a consistent snapshot, built in one call to
//! [`MemberRegistry::candidates`]; the refresh task updates status, health and load every
//! few seconds, so every replica converges on the store's statuses without a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use alliance_adapter_api::{CallContext, MemberAdapter};
use alliance_adapter_federation::FederationAdapter;
use alliance_adapter_sim::SimAdapter;
use alliance_core::{
    ImageName, MemberCandidate, MemberHealth, MemberId, MemberStatus, ResourceType, SizeName,
};

use crate::config::{AdapterConfig, MemberConfig};
use crate::store::{Store, StoreResult};

/// One member: its catalogue entry and its adapter.
#[derive(Debug, Clone)]
pub struct MemberEntry {
    /// From config.
    pub config: MemberConfig,
    /// How to reach it.
    pub adapter: Arc<dyn MemberAdapter>,
}

#[derive(Debug, Default)]
struct Routing {
    status: BTreeMap<MemberId, MemberStatus>,
    health: BTreeMap<MemberId, MemberHealth>,
    load: BTreeMap<MemberId, u64>,
}

/// All members.
#[derive(Debug)]
pub struct MemberRegistry {
    entries: BTreeMap<MemberId, MemberEntry>,
    routing: RwLock<Routing>,
}

/// Builds the adapter a member's config names; `data_dir` holds simulated members'
/// journals; `env` provides the secrets that the config names by variable.
pub fn build_adapter(
    config: &MemberConfig,
    data_dir: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Arc<dyn MemberAdapter>, String> {
    let id = config.id.get_ref().as_str();
    match &config.adapter {
        AdapterConfig::Sim(sim) => {
            let journal = data_dir.join("sim").join(format!("{id}.jsonl"));
            SimAdapter::with_journal(id, sim.clone(), journal)
                .map(|a| Arc::new(a) as Arc<dyn MemberAdapter>)
                .map_err(|e| e.to_string())
        }
        AdapterConfig::Federation(federation) => {
            FederationAdapter::from_config(id, federation, &|name| env.get(name).cloned())
                .map(|a| Arc::new(a) as Arc<dyn MemberAdapter>)
        }
    }
}

impl MemberRegistry {
    /// A registry over `entries`, every member active and up until the first refresh.
    pub fn new(entries: Vec<MemberEntry>) -> Self {
        let mut routing = Routing::default();
        let entries: BTreeMap<MemberId, MemberEntry> = entries
            .into_iter()
            .map(|e| {
                let id = e.config.id.get_ref().clone();
                routing.status.insert(id.clone(), MemberStatus::Active);
                routing.health.insert(id.clone(), MemberHealth::Up);
                (id, e)
            })
            .collect();
        Self {
            entries,
            routing: RwLock::new(routing),
        }
    }

    fn routing(&self) -> std::sync::RwLockReadGuard<'_, Routing> {
        self.routing
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A member by id.
    pub fn get(&self, id: &str) -> Option<&MemberEntry> {
        MemberId::parse(id)
            .ok()
            .and_then(|id| self.entries.get(&id))
    }

    /// Every member, by id.
    pub fn all(&self) -> impl Iterator<Item = &MemberEntry> {
        self.entries.values()
    }

    /// A member's status and health.
    pub fn state_of(&self, id: &MemberId) -> (MemberStatus, MemberHealth) {
        let routing = self.routing();
        (
            routing
                .status
                .get(id)
                .copied()
                .unwrap_or(MemberStatus::Active),
            routing.health.get(id).copied().unwrap_or(MemberHealth::Up),
        )
    }

    /// The broker-wide sizes any member maps.
    pub fn known_sizes(&self) -> BTreeSet<SizeName> {
        self.entries
            .values()
            .flat_map(|e| e.config.sizes.keys().cloned())
            .collect()
    }

    /// The broker-wide images any member maps.
    pub fn known_images(&self) -> BTreeSet<ImageName> {
        self.entries
            .values()
            .flat_map(|e| e.config.images.keys().cloned())
            .collect()
    }

    /// A consistent snapshot of every member for placement.
    pub fn candidates(&self, resource_type: ResourceType) -> Vec<MemberCandidate> {
        let routing = self.routing();
        self.entries
            .iter()
            .map(|(id, entry)| MemberCandidate {
                id: id.clone(),
                jurisdictions: entry.config.jurisdictions.clone(),
                certifications: entry.config.certifications.clone(),
                services: entry.config.services.clone(),
                sizes: if resource_type == ResourceType::Instance {
                    entry.config.sizes.keys().cloned().collect()
                } else {
                    BTreeSet::new()
                },
                status: routing
                    .status
                    .get(id)
                    .copied()
                    .unwrap_or(MemberStatus::Active),
                health: routing.health.get(id).copied().unwrap_or(MemberHealth::Up),
                price_micros: None,
                load: routing.load.get(id).copied().unwrap_or(0),
            })
            .collect()
    }

    /// Reloads statuses and loads from the store and probes every member's health.
    pub async fn refresh(&self, store: &Store) -> StoreResult<()> {
        let statuses = store.member_statuses().await?;
        let loads = store.member_loads().await?;
        let mut health = BTreeMap::new();
        for (id, entry) in &self.entries {
            let ctx = CallContext::new(None, "health", Duration::from_secs(2));
            let probe =
                tokio::time::timeout(Duration::from_secs(2), entry.adapter.health(&ctx)).await;
            let observed = match probe {
                Ok(Ok(())) => MemberHealth::Up,
                Ok(Err(e)) if e.is_transient() => MemberHealth::Degraded,
                _ => MemberHealth::Down,
            };
            health.insert(id.clone(), observed);
        }
        let mut routing = self
            .routing
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (id, status) in statuses {
            routing.status.insert(id, status);
        }
        routing.load = loads
            .into_iter()
            .filter_map(|(id, n)| {
                MemberId::parse(&id)
                    .ok()
                    .map(|id| (id, u64::try_from(n).unwrap_or(0)))
            })
            .collect();
        routing.health = health;
        Ok(())
    }
}
