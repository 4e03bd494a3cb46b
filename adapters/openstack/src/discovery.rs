//! Discovery for `alliance conformance`: from Keystone's catalogue and the services
//! themselves, the region, the services offered, the smallest flavour, an active image and
//! a network, and the adapters (right and wrong secret) the suite runs against.
//!
//! Invariant: discovery only reads (Keystone, flavour, image and network lists); a service
//! is checked only when the catalogue offers it, and compute only when both a flavour and
//! an image were found (or given), every other one left out with the reason.

use std::collections::{BTreeMap, BTreeSet};

use alliance_adapter_api::{AdapterError, CallContext, Retry};
use alliance_adapter_http::MemberHttp;
use alliance_core::ResourceType;
use reqwest::Method;
use serde_json::Value;

use crate::config::default_interface;
use crate::keystone::{Credentials, Keystone};
use crate::transport::{COMPUTE, IMAGE, NETWORK, OBJECT, VOLUME};
use crate::{Mapping, OpenStackAdapter, OpenStackConfig};

/// Discovery choices the caller makes itself.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The flavour id.
    pub flavour: Option<String>,
    /// The image id.
    pub image: Option<String>,
    /// The network id (`none`: servers without a network).
    pub network: Option<String>,
    /// A second flavour id, mapped as `medium`, to check a resize.
    pub resize_flavour: Option<String>,
    /// Tenant projects in this domain (`tenant_project_domain`).
    pub tenant_project_domain: Option<String>,
}

/// What `discover` found.
#[derive(Debug)]
pub struct Discovered {
    /// The adapter, mapping `small` → the flavour and `default` → the image.
    pub adapter: OpenStackAdapter,
    /// The same member with a wrong secret.
    pub bad_credentials: OpenStackAdapter,
    /// The services to check.
    pub services: BTreeSet<ResourceType>,
    /// The services left out, and why.
    pub not_offered: BTreeMap<ResourceType, String>,
    /// Keystone's URL.
    pub auth_url: String,
    /// The region used.
    pub region: String,
}

impl OpenStackAdapter {
    async fn first_id(
        &self,
        ctx: &CallContext,
        types: &[&str],
        path: &str,
        list: &str,
        pick: fn(&[Value]) -> Option<&Value>,
    ) -> Result<Option<String>, AdapterError> {
        let answer = self.call(ctx, types, Method::GET, path, &[], None).await?;
        let body = self.json(answer, Retry::Safe).await?;
        let items = body
            .get(list)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(pick(&items)
            .and_then(|v| v.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }
}

fn smallest(items: &[Value]) -> Option<&Value> {
    items.iter().min_by_key(|f| {
        (
            f.get("ram").and_then(Value::as_u64).unwrap_or(u64::MAX),
            f.get("id").and_then(Value::as_str).unwrap_or("").to_owned(),
        )
    })
}

fn first(items: &[Value]) -> Option<&Value> {
    items.first()
}

fn internal(items: &[Value]) -> Option<&Value> {
    items
        .iter()
        .find(|n| n.get("router:external").and_then(Value::as_bool) != Some(true))
}

/// Finds out, from Keystone's catalogue and the services themselves, what the conformance
/// suite needs: the region (when not given, the catalogue's first), the services offered,
/// the smallest flavour, an active image and a network.
pub async fn discover(
    auth_url: Option<&str>,
    region: Option<&str>,
    env_prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
    overrides: Overrides,
) -> Result<Discovered, String> {
    let auth_url = auth_url
        .map(str::to_owned)
        .or_else(|| env(&format!("{env_prefix}AUTH_URL")))
        .ok_or_else(|| {
            format!("no Keystone URL: pass --member-endpoint or set {env_prefix}AUTH_URL")
        })?;
    let credentials = Credentials::from_env(env_prefix, env)?;
    let http = MemberHttp::new("candidate")?;
    let keystone = Keystone::new(&auth_url, credentials.clone());
    let ctx = CallContext::new(
        None,
        "conformance-discovery",
        std::time::Duration::from_secs(30),
    );
    let session = keystone
        .session(&http, &ctx)
        .await
        .map_err(|e| format!("cannot authenticate with Keystone at {auth_url}: {e}"))?;
    let interface = env(&format!("{env_prefix}INTERFACE")).unwrap_or_else(default_interface);
    let region = match region
        .map(str::to_owned)
        .or_else(|| env(&format!("{env_prefix}REGION_NAME")))
    {
        Some(r) => r,
        None => session
            .regions(&interface)
            .into_iter()
            .next()
            .ok_or_else(|| "the catalogue offers no endpoint on the public interface".to_owned())?,
    };
    let mut config = OpenStackConfig {
        auth_url: auth_url.clone(),
        region: region.clone(),
        interface: interface.clone(),
        env_prefix: env_prefix.to_owned(),
        network: overrides.network.clone(),
        tenant_project_domain: overrides.tenant_project_domain.clone(),
        floating_network: None,
    };
    let mut services = BTreeSet::new();
    let mut not_offered = BTreeMap::new();
    let absent = |what: &str| {
        format!("the catalogue offers no {what} endpoint in region {region} ({interface})")
    };
    for (service, types, what) in [
        (ResourceType::Instance, COMPUTE, "compute"),
        (ResourceType::Volume, VOLUME, "block-storage"),
        (ResourceType::Bucket, OBJECT, "object-store"),
    ] {
        if session.endpoint(types, &region, &interface).is_some() {
            services.insert(service);
        } else {
            not_offered.insert(service, absent(what));
        }
    }
    let probe = OpenStackAdapter::new(
        "candidate",
        config.clone(),
        credentials.clone(),
        Mapping::default(),
    )?;
    let mut mapping = Mapping {
        services: services.clone(),
        ..Mapping::default()
    };
    if services.contains(&ResourceType::Instance) {
        let flavour = match overrides.flavour {
            Some(f) => Some(f),
            None => probe
                .first_id(&ctx, COMPUTE, "/flavors/detail", "flavors", smallest)
                .await
                .map_err(|e| e.to_string())?,
        };
        let image = match overrides.image {
            Some(i) => Some(i),
            None if session.endpoint(IMAGE, &region, &interface).is_some() => probe
                .first_id(
                    &ctx,
                    IMAGE,
                    "/v2/images?status=active&sort=name:asc",
                    "images",
                    first,
                )
                .await
                .map_err(|e| e.to_string())?,
            None => None,
        };
        if config.network.is_none() && session.endpoint(NETWORK, &region, &interface).is_some() {
            config.network = probe
                .first_id(&ctx, NETWORK, "/v2.0/networks", "networks", internal)
                .await
                .map_err(|e| e.to_string())?;
        }
        match (flavour, image) {
            (Some(f), Some(i)) => {
                mapping.sizes.insert("small".into(), f);
                mapping.images.insert("default".into(), i);
                if let Some(second) = &overrides.resize_flavour {
                    mapping.sizes.insert("medium".into(), second.clone());
                }
            }
            _ => {
                services.remove(&ResourceType::Instance);
                mapping.services.remove(&ResourceType::Instance);
                not_offered.insert(
                    ResourceType::Instance,
                    "no flavour or image found (pass --size and --image)".into(),
                );
            }
        }
    }
    let adapter = OpenStackAdapter::new(
        "candidate",
        config.clone(),
        credentials.clone(),
        mapping.clone(),
    )?;
    let bad_credentials = OpenStackAdapter::new(
        "candidate",
        config,
        credentials.with_wrong_secret(),
        mapping,
    )?;
    Ok(Discovered {
        adapter,
        bad_credentials,
        services,
        not_offered,
        auth_url,
        region,
    })
}
