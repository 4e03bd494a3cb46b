//! A server's own Neutron security group (`alliance-<broker id>`) with the tenant's
//! ingress rules: made once before the server (an existing group or rule is adopted), and
//! deleted once the server is gone.
//!
//! Invariant: a group is removed only after Nova no longer has its server; one Neutron
//! still holds (its port is being deleted: 409) is a transient error, so the delete's wait
//! tries again rather than leaving it behind.

use alliance_adapter_api::{
    AdapterError, CallContext, InstanceAccess, Protocol, ResourceSpec, Retry,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::transport::{path_segment, service_error, NETWORK};
use crate::OpenStackAdapter;

/// The name of the group made for `broker_id`'s server.
fn group_name(broker_id: &str) -> String {
    format!("alliance-{broker_id}")
}

impl OpenStackAdapter {
    /// The ids of the groups named `name` in the scope of `ctx`.
    async fn groups_named(
        &self,
        ctx: &CallContext,
        name: &str,
    ) -> Result<Vec<String>, AdapterError> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("name", name)
            .finish();
        let found = self
            .call(
                ctx,
                NETWORK,
                Method::GET,
                &format!("/v2.0/security-groups?{query}"),
                &[],
                None,
            )
            .await?;
        let found = self.json(found, Retry::Safe).await?;
        Ok(found
            .get("security_groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|g| g.get("name").and_then(Value::as_str) == Some(name))
            .filter_map(|g| g.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// Deletes the group made for `broker_id`'s server, which is gone.
    pub(crate) async fn remove_security_group(
        &self,
        ctx: &CallContext,
        broker_id: &str,
    ) -> Result<(), AdapterError> {
        for id in self.groups_named(ctx, &group_name(broker_id)).await? {
            let path = format!("/v2.0/security-groups/{}", path_segment(&id)?);
            let answer = self
                .call(ctx, NETWORK, Method::DELETE, &path, &[], None)
                .await?;
            match answer.status {
                s if s.is_success() || s == StatusCode::NOT_FOUND => {}
                StatusCode::CONFLICT => {
                    return Err(AdapterError::unavailable(format!(
                        "member {}: the group of {broker_id} is still in use",
                        self.member
                    )))
                }
                _ => return Err(service_error(&self.member, &answer, Retry::Safe)),
            }
        }
        Ok(())
    }

    /// The server's own Neutron group (`alliance-<broker id>`), made once, with its rules.
    pub(crate) async fn security_group(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
        access: &InstanceAccess,
    ) -> Result<String, AdapterError> {
        let name = group_name(&spec.broker_id);
        let existing = self.groups_named(ctx, &name).await?.into_iter().next();
        let id = match existing {
            Some(id) => id,
            None => {
                let created = self
                    .call(
                        ctx,
                        NETWORK,
                        Method::POST,
                        "/v2.0/security-groups",
                        &[],
                        Some(&json!({"security_group": {"name": name, "description": format!("alliance: ingress of {}", spec.broker_id)}})),
                    )
                    .await?;
                let created = self.json(created, Retry::WithIdempotencyKey).await?;
                created
                    .pointer("/security_group/id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| AdapterError::unavailable("Neutron answered no group id"))?
            }
        };
        for rule in &access.ingress {
            let mut body = json!({
                "security_group_id": id,
                "direction": "ingress",
                "ethertype": if rule.cidr.contains(':') { "IPv6" } else { "IPv4" },
                "protocol": rule.protocol.as_str(),
                "remote_ip_prefix": rule.cidr,
            });
            if let (Protocol::Tcp | Protocol::Udp, Some(port)) = (rule.protocol, rule.port) {
                body["port_range_min"] = json!(port);
                body["port_range_max"] = json!(port);
            }
            let answer = self
                .call(
                    ctx,
                    NETWORK,
                    Method::POST,
                    "/v2.0/security-group-rules",
                    &[],
                    Some(&json!({ "security_group_rule": body })),
                )
                .await?;
            if !answer.status.is_success() && answer.status != StatusCode::CONFLICT {
                return Err(service_error(&self.member, &answer, Retry::Safe));
            }
        }
        Ok(name)
    }
}
