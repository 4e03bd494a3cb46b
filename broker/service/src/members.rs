//! The member registry: each member's catalogue entry, its adapter, and the routing table
//! (lifecycle status from the store, health observed by probing, load) that placement reads.
//!
//! Members come from config and from approved partner applications (kept in the store).
//! Invariant: placement only ever sees a consistent snapshot, built in one call to
//! [`MemberRegistry::candidates`]. The replica that changes a member updates its own table
//! at once; every replica re-reads statuses and application members from the store every
//! few seconds ([`MemberRegistry::refresh`]), so replicas agree without a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use alliance_adapter_api::{CallContext, MemberAdapter};
use alliance_adapter_federation::{FederationAdapter, FederationConfig};
use alliance_adapter_sim::SimAdapter;
use alliance_core::{
    Certification, ImageName, Jurisdiction, MemberCandidate, MemberHealth, MemberId, MemberStatus,
    ResourceType, SizeName,
};
use serde::{Deserialize, Serialize};

use crate::config::{AdapterConfig, MemberConfig};
use crate::partners::{AdapterDescription, Credentials};
use crate::secrets::Sealer;
use crate::store::{Store, StoreResult};
pub use alliance_adapter_http::AllowedDestinations;

/// One member: its catalogue entry and its adapter.
#[derive(Debug, Clone)]
pub struct MemberEntry {
    /// The catalogue entry.
    pub config: MemberConfig,
    /// How to reach it.
    pub adapter: Arc<dyn MemberAdapter>,
}

impl MemberEntry {
    /// Probes the member once (at most two seconds) before it takes placements, so that
    /// what it offers (a federation member's advertised capabilities) is known from its
    /// first request, not from the next health probe; the outcome is left to the probes.
    pub async fn prime(&self) {
        let _ = self.probe().await;
    }

    /// One health probe of at most two seconds (`Err` when it took longer).
    async fn probe(
        &self,
    ) -> Result<Result<(), alliance_adapter_api::AdapterError>, tokio::time::error::Elapsed> {
        let ctx = CallContext::new(None, "health", Duration::from_secs(2));
        tokio::time::timeout(Duration::from_secs(2), self.adapter.health(&ctx)).await
    }

    /// The member id.
    pub fn id(&self) -> &MemberId {
        self.config.id.get_ref()
    }

    /// Its price catalogue (validated when the member was configured or approved).
    pub fn catalogue(&self) -> alliance_core::billing::PriceCatalogue {
        alliance_core::billing::PriceCatalogue::new(&self.config.prices).unwrap_or_default()
    }
}

/// A member that joined through a partner application, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDefinition {
    /// Member id.
    pub id: MemberId,
    /// Legal name.
    pub name: String,
    /// Jurisdictions served.
    pub jurisdictions: BTreeSet<Jurisdiction>,
    /// Certifications held.
    pub certifications: BTreeSet<Certification>,
    /// Services offered.
    pub services: BTreeSet<ResourceType>,
    /// Size mapping.
    pub sizes: BTreeMap<SizeName, String>,
    /// Image mapping.
    pub images: BTreeMap<ImageName, String>,
    /// The URL the broker connects to first (federation or EC2 endpoint, Keystone URL).
    pub endpoint: String,
    /// Price catalogue.
    #[serde(default)]
    pub prices: Vec<alliance_core::billing::Price>,
    /// How to reach it; a federation member at `endpoint` when absent (members approved
    /// before other kinds could apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<AdapterDescription>,
}

impl MemberDefinition {
    /// How to reach it.
    pub fn adapter_description(&self) -> AdapterDescription {
        self.adapter
            .clone()
            .unwrap_or_else(|| AdapterDescription::federation(&self.endpoint))
    }

    /// Its size, image and service mapping, for the OpenStack and EC2 adapters.
    pub fn mapping(&self) -> alliance_adapter_api::Mapping {
        alliance_adapter_api::Mapping {
            sizes: names(&self.sizes),
            images: names(&self.images),
            services: self.services.clone(),
        }
    }

    /// The catalogue entry (the credentials go to the adapter directly, not by variable).
    pub fn to_config(&self) -> MemberConfig {
        let description = self.adapter_description();
        let adapter = match description.kind.as_str() {
            "openstack" => AdapterConfig::Openstack(description.openstack_config()),
            "ec2" => AdapterConfig::Ec2(description.ec2_config()),
            _ => AdapterConfig::Federation(FederationConfig {
                endpoint: self.endpoint.clone(),
                token_env: None,
            }),
        };
        MemberConfig {
            id: toml::Spanned::new(0..0, self.id.clone()),
            name: self.name.clone(),
            jurisdictions: self.jurisdictions.clone(),
            certifications: self.certifications.clone(),
            services: self.services.clone(),
            sizes: self.sizes.clone(),
            images: self.images.clone(),
            prices: self.prices.clone(),
            adapter,
            clock_skew_seconds: alliance_core::reconcile::DEFAULT_CLOCK_SKEW_SECONDS,
        }
    }

    /// The entry with its (resilient) adapter, holding the member's credentials.
    pub fn to_entry(
        &self,
        credentials: Option<&Credentials>,
        call_timeout: Duration,
        allowed: &AllowedDestinations,
    ) -> Result<MemberEntry, String> {
        // Its URLs came from outside the config: every connection stays in the allowed
        // member networks, whatever its host names resolve to later.
        let adapter = self
            .adapter_description()
            .build(
                self.id.as_str(),
                credentials,
                self.mapping(),
                allowed,
                false,
            )?
            .into_dyn();
        Ok(MemberEntry {
            config: self.to_config(),
            adapter: resilient(adapter, self.id.as_str(), call_timeout),
        })
    }
}

#[derive(Debug, Default)]
struct Routing {
    entries: BTreeMap<MemberId, Arc<MemberEntry>>,
    status: BTreeMap<MemberId, MemberStatus>,
    health: BTreeMap<MemberId, MemberHealth>,
    load: BTreeMap<MemberId, u64>,
}

/// All members.
#[derive(Debug)]
pub struct MemberRegistry {
    routing: RwLock<Routing>,
    sealer: Option<Arc<Sealer>>,
    call_timeout: Duration,
    allowed: AllowedDestinations,
}

/// Wraps an adapter in the shared resilience layer (timeouts, retries with a budget, a
/// circuit breaker, observed health).
pub fn resilient(
    inner: Arc<dyn MemberAdapter>,
    member: &str,
    call_timeout: Duration,
) -> Arc<dyn MemberAdapter> {
    let policy = alliance_resilience::Policy {
        call_timeout,
        ..alliance_resilience::Policy::default()
    };
    Arc::new(alliance_resilience::Resilient::new(inner, member, policy))
}

/// Builds the adapter a member's config names, wrapped in the resilience layer;
/// `data_dir` holds simulated members' journals; `env` provides the secrets that the
/// config names by variable.
pub fn build_adapter(
    config: &MemberConfig,
    data_dir: &Path,
    env: &BTreeMap<String, String>,
    call_timeout: Duration,
) -> Result<Arc<dyn MemberAdapter>, String> {
    let id = config.id.get_ref().as_str();
    raw_adapter(config, data_dir, env).map(|inner| resilient(inner, id, call_timeout))
}

fn raw_adapter(
    config: &MemberConfig,
    data_dir: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Arc<dyn MemberAdapter>, String> {
    let id = config.id.get_ref().as_str();
    match &config.adapter {
        AdapterConfig::Sim(sim) => {
            let journal = data_dir.join("sim").join(format!("{id}.jsonl"));
            // The simulated member rates its own statement with the member's prices.
            let sim = alliance_adapter_sim::SimConfig {
                prices: config.prices.clone(),
                ..sim.clone()
            };
            SimAdapter::with_journal(id, sim, journal)
                .map(|a| Arc::new(a) as Arc<dyn MemberAdapter>)
                .map_err(|e| e.to_string())
        }
        AdapterConfig::Federation(federation) => {
            FederationAdapter::from_config(id, federation, &|name| env.get(name).cloned())
                .map(|a| Arc::new(a) as Arc<dyn MemberAdapter>)
        }
        AdapterConfig::Ec2(ec2) => {
            let mapping = alliance_adapter_ec2::Mapping {
                sizes: names(&config.sizes),
                images: names(&config.images),
                services: config.services.clone(),
            };
            alliance_adapter_ec2::Ec2Adapter::from_config(id, ec2, mapping, &|name| {
                env.get(name).cloned()
            })
            .map(|a| Arc::new(a) as Arc<dyn MemberAdapter>)
        }
        AdapterConfig::Openstack(openstack) => {
            let mapping = alliance_adapter_openstack::Mapping {
                sizes: names(&config.sizes),
                images: names(&config.images),
                services: config.services.clone(),
            };
            alliance_adapter_openstack::OpenStackAdapter::from_config(
                id,
                openstack,
                mapping,
                &|name| env.get(name).cloned(),
            )
            .map(|a| Arc::new(a) as Arc<dyn MemberAdapter>)
        }
    }
}

/// Broker name → member name, as plain strings for the adapters.
fn names<K: std::fmt::Display>(map: &BTreeMap<K, String>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

impl MemberRegistry {
    /// A registry over `entries`, every member active and up until the first refresh;
    /// `sealer` opens the credentials of members that joined by application.
    pub fn new(
        entries: Vec<MemberEntry>,
        sealer: Option<Arc<Sealer>>,
        call_timeout: Duration,
        allowed: AllowedDestinations,
    ) -> Self {
        let registry = Self {
            routing: RwLock::new(Routing::default()),
            sealer,
            call_timeout,
            allowed,
        };
        for entry in entries {
            registry.insert(entry, MemberStatus::Active);
        }
        registry
    }

    /// Where connections to members that joined by application may go.
    pub fn allowed_destinations(&self) -> &AllowedDestinations {
        &self.allowed
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Routing> {
        self.routing
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Routing> {
        self.routing
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds (or replaces) a member.
    pub fn insert(&self, entry: MemberEntry, status: MemberStatus) {
        let id = entry.id().clone();
        let mut routing = self.write();
        routing.status.insert(id.clone(), status);
        routing.health.entry(id.clone()).or_insert(MemberHealth::Up);
        routing.entries.insert(id, Arc::new(entry));
    }

    /// Sets a member's lifecycle status in this replica's table.
    pub fn set_status(&self, id: &MemberId, status: MemberStatus) {
        self.write().status.insert(id.clone(), status);
    }

    /// A member by id.
    pub fn get(&self, id: &str) -> Option<Arc<MemberEntry>> {
        self.entry(&MemberId::parse(id).ok()?)
    }

    /// A member by its parsed id.
    pub fn entry(&self, id: &MemberId) -> Option<Arc<MemberEntry>> {
        self.read().entries.get(id).cloned()
    }

    /// Every member, by id.
    pub fn all(&self) -> Vec<Arc<MemberEntry>> {
        self.read().entries.values().cloned().collect()
    }

    /// A member's status and health.
    pub fn state_of(&self, id: &MemberId) -> (MemberStatus, MemberHealth) {
        let routing = self.read();
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
        self.read()
            .entries
            .values()
            .flat_map(|e| e.config.sizes.keys().cloned())
            .collect()
    }

    /// The broker-wide images any member maps.
    pub fn known_images(&self) -> BTreeSet<ImageName> {
        self.read()
            .entries
            .values()
            .flat_map(|e| e.config.images.keys().cloned())
            .collect()
    }

    /// A consistent snapshot of every member for placement.
    pub fn candidates(
        &self,
        resource_type: ResourceType,
        size: Option<&SizeName>,
    ) -> Vec<MemberCandidate> {
        // Placement ranks by the price of what is asked for, from each member's catalogue.
        let shape = alliance_core::ResourceShape {
            size: size.cloned(),
            image: None,
            size_gb: Some(1),
        };
        let (sku, _) = alliance_core::sku_of(resource_type, &shape);
        let routing = self.read();
        routing
            .entries
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
                price_micros: entry.catalogue().get(&sku).and_then(|p| {
                    rust_decimal::prelude::ToPrimitive::to_u64(
                        &(p.price * rust_decimal::Decimal::from(1_000_000)).trunc(),
                    )
                }),
                load: routing.load.get(id).copied().unwrap_or(0),
                capabilities: entry.adapter.capabilities(),
            })
            .collect()
    }

    /// Reloads members that joined by application, statuses and loads from the store, and
    /// (when `probe` is set) probes every member's health.
    pub async fn refresh(&self, store: &Store, probe: bool) -> StoreResult<()> {
        for (definition, sealed) in store.application_members().await? {
            if self.read().entries.contains_key(&definition.id) {
                continue;
            }
            let credentials = match (&self.sealer, sealed) {
                (Some(sealer), Some(sealed)) => {
                    match sealer.open_credentials(&sealed, definition.id.as_str()) {
                        Ok(credentials) => Some(credentials),
                        Err(e) => {
                            tracing::error!(member.id = %definition.id, error = %e, "cannot open the member's credentials");
                            continue;
                        }
                    }
                }
                _ => None,
            };
            match definition.to_entry(credentials.as_ref(), self.call_timeout, &self.allowed) {
                Ok(entry) => {
                    entry.prime().await;
                    self.insert(entry, MemberStatus::Active);
                }
                Err(e) => {
                    tracing::error!(member.id = %definition.id, error = %e, "cannot build the member's adapter")
                }
            }
        }
        let statuses = store.member_statuses().await?;
        let loads = store.member_loads().await?;
        let mut health = BTreeMap::new();
        for entry in self.all().into_iter().filter(|_| probe) {
            let probe = entry.probe().await;
            // The breaker's view wins when it says down; otherwise the probe decides.
            let breaker = entry.adapter.observed_health();
            let observed = match (probe, breaker) {
                (_, Some(MemberHealth::Down)) => MemberHealth::Down,
                (Ok(Ok(())), breaker) => breaker.unwrap_or(MemberHealth::Up),
                // The member answered, but with an error: degraded. Unreachable: down.
                (Ok(Err(e)), _)
                    if e.is_transient()
                        && e.origin == alliance_adapter_api::ErrorSource::Member =>
                {
                    MemberHealth::Degraded
                }
                _ => MemberHealth::Down,
            };
            health.insert(entry.id().clone(), observed);
        }
        let mut routing = self.write();
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
        if probe {
            routing.health = health;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_carry_the_price_of_what_is_asked() {
        let config = crate::config::Config::load(None).expect("demo");
        let entries = config
            .members
            .iter()
            .map(|m| MemberEntry {
                config: m.clone(),
                adapter: Arc::new(SimAdapter::new(m.id.get_ref().as_str(), Default::default())),
            })
            .collect();
        let registry = MemberRegistry::new(
            entries,
            None,
            Duration::from_secs(1),
            AllowedDestinations::default(),
        );
        let small = SizeName::parse("small").expect("size");
        let candidates = registry.candidates(ResourceType::Instance, Some(&small));
        let numergy = candidates
            .iter()
            .find(|c| c.id.as_str() == "numergy-fr")
            .expect("numergy");
        assert_eq!(numergy.price_micros, Some(15_000), "0.0150 EUR per hour");
        let buckets = registry.candidates(ResourceType::Bucket, None);
        assert_eq!(
            buckets
                .iter()
                .find(|c| c.id.as_str() == "belgacom-be")
                .and_then(|c| c.price_micros),
            Some(1_800)
        );
    }
}
