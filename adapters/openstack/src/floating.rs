//! Public addresses (`public_ip`): a Neutron floating IP from the configured external
//! network (`floating_network`) on the server's port.
//!
//! A server asked for with a public address carries the metadata `alliance_public_ip`. Once
//! Nova says it is ACTIVE, the read that sees it finds its port (`ports?device_id=`) and the
//! floating IP already on that port, or creates one there; until then the server reads as
//! provisioning, so the broker's operation finishes only with the address. A crash between
//! Neutron's answer and anything after it is harmless: the next read finds the address by
//! its port. Deleting the server first deletes the floating IPs on its ports (Neutron would
//! only disassociate them, and they would keep counting against the member's quota).

use alliance_adapter_api::{
    AdapterError, CallContext, ErrorKind, ErrorSource, MemberResource, MemberResourceStatus,
    ResourceSpec, Retry,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::transport::{path_segment, NETWORK};
use crate::OpenStackAdapter;

/// The server metadata key saying the tenant asked for a public address.
pub const META_PUBLIC_IP: &str = "alliance_public_ip";

impl OpenStackAdapter {
    /// The metadata a server is created with for its public address, or why it cannot
    /// have one here (`member.unsupported`: nothing was created).
    pub(crate) fn public_ip_metadata(
        &self,
        spec: &ResourceSpec,
    ) -> Result<Option<(&'static str, &'static str)>, AdapterError> {
        if !spec.access.as_ref().is_some_and(|a| a.public_ip) {
            return Ok(None);
        }
        let why = match (
            self.config.floating_network.as_deref(),
            self.config.network.as_deref(),
        ) {
            (None, _) => "no `floating_network` is configured",
            (Some(_), Some("none")) => "its servers have no network (`network = \"none\"`)",
            (Some(_), _) => return Ok(Some((META_PUBLIC_IP, "true"))),
        };
        Err(AdapterError::new(
            ErrorKind::Invalid,
            ErrorSource::Broker,
            Retry::Never,
            format!(
                "member {} gives instances no public address: {why}",
                self.member
            ),
        ))
    }

    /// The server as read, once it has the public address it was asked with: an ACTIVE
    /// server without one gets a floating IP on its port now, and reads as provisioning
    /// while it has no port yet.
    pub(crate) async fn with_public_address(
        &self,
        ctx: &CallContext,
        doc: &Value,
        mut found: MemberResource,
    ) -> Result<MemberResource, AdapterError> {
        let Some(network) = self.config.floating_network.as_deref() else {
            return Ok(found);
        };
        let wanted = doc["metadata"][META_PUBLIC_IP] == "true";
        let has_public = found
            .observed
            .addresses
            .as_ref()
            .is_some_and(|a| !a.public.is_empty());
        if !wanted || has_public || found.status != MemberResourceStatus::Active {
            return Ok(found);
        }
        let Some(port) = self.port_of(ctx, &found.member_resource_id).await? else {
            found.status = MemberResourceStatus::Provisioning;
            return Ok(found);
        };
        let address = match self.floating_on(ctx, &port).await?.into_iter().next() {
            Some(existing) => existing["floating_ip_address"].clone(),
            None => {
                let body = json!({ "floatingip": {
                    "floating_network_id": network, "port_id": port,
                    "description": format!("alliance:{}", found.broker_id.as_deref().unwrap_or_default()) } });
                let answer = self
                    .call(
                        ctx,
                        NETWORK,
                        Method::POST,
                        "/v2.0/floatingips",
                        &[],
                        Some(&body),
                    )
                    .await?;
                // A failed POST may have created one: the next read finds it on the port.
                self.json(answer, Retry::WithIdempotencyKey).await?["floatingip"]
                    ["floating_ip_address"]
                    .clone()
            }
        };
        if let (Some(address), Some(addresses)) =
            (address.as_str(), found.observed.addresses.as_mut())
        {
            addresses.public.push(address.to_owned());
        }
        Ok(found)
    }

    /// Deletes the floating IPs on the server's port (before the server goes).
    pub(crate) async fn release_public_addresses(
        &self,
        ctx: &CallContext,
        server: &str,
    ) -> Result<(), AdapterError> {
        if self.config.floating_network.is_none() {
            return Ok(());
        }
        let Some(port) = self.port_of(ctx, server).await? else {
            return Ok(());
        };
        for floating in self.floating_on(ctx, &port).await? {
            if let Some(id) = floating["id"].as_str() {
                let path = format!("/v2.0/floatingips/{}", path_segment(id)?);
                self.remove(ctx, NETWORK, &path, &[]).await?;
            }
        }
        Ok(())
    }

    async fn port_of(
        &self,
        ctx: &CallContext,
        server: &str,
    ) -> Result<Option<String>, AdapterError> {
        let path = format!("/v2.0/ports?device_id={}", path_segment(server)?);
        let answer = self
            .call(ctx, NETWORK, Method::GET, &path, &[], None)
            .await?;
        let ports = self.json(answer, Retry::Safe).await?;
        Ok(ports["ports"][0]["id"].as_str().map(str::to_owned))
    }

    async fn floating_on(&self, ctx: &CallContext, port: &str) -> Result<Vec<Value>, AdapterError> {
        let path = format!("/v2.0/floatingips?port_id={}", path_segment(port)?);
        let answer = self
            .call(ctx, NETWORK, Method::GET, &path, &[], None)
            .await?;
        let found = self.json(answer, Retry::Safe).await?;
        Ok(found["floatingips"].as_array().cloned().unwrap_or_default())
    }
}
