//! Swift containers: the broker's buckets, named after the broker id (`alliance-<id>`) and
//! carrying the broker id and tenant as container metadata.
//!
//! Invariant: the container name is the idempotency key (a repeated PUT of the same
//! container is harmless), and the broker never empties a container: deleting one that
//! still holds the tenant's objects fails with the member's own error.

use alliance_adapter_api::{
    AdapterError, Buckets, CallContext, ErrorKind, ErrorSource, MemberResource, ResourceRef,
    ResourceSpec, Retry, Serves,
};
use alliance_adapter_http::Answer;
use alliance_core::TenantId;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::transport::{is_listed, path_segment, service_error, MAX_LISTED, OBJECT};
use crate::OpenStackAdapter;

impl OpenStackAdapter {
    fn container_name(broker_id: &str) -> Result<String, AdapterError> {
        let name = format!("alliance-{broker_id}");
        if name.len() > 256 || broker_id.is_empty() || broker_id.contains('/') {
            return Err(AdapterError::new(
                ErrorKind::Invalid,
                ErrorSource::Broker,
                Retry::Never,
                format!("`{broker_id}` cannot name a Swift container"),
            ));
        }
        Ok(name)
    }

    /// The container a reference names: its member id when known, else the broker id's.
    fn container_for(r: &ResourceRef) -> Result<String, AdapterError> {
        match &r.member_resource_id {
            Some(n) => Ok(n.clone()),
            None => Self::container_name(&r.broker_id),
        }
    }

    fn container_of(name: &str, answer: &Answer) -> MemberResource {
        MemberResource::bucket(
            name.to_owned(),
            answer
                .header("x-container-meta-alliance-broker-id")
                .map(str::to_owned),
            answer
                .header("x-container-meta-alliance-tenant")
                .and_then(|t| TenantId::parse(t).ok()),
        )
    }

    async fn head_container(
        &self,
        ctx: &CallContext,
        name: &str,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let answer = self
            .call(
                ctx,
                OBJECT,
                Method::HEAD,
                &format!("/{}", path_segment(name)?),
                &[],
                None,
            )
            .await?;
        match answer.status {
            s if s.is_success() => Ok(Some(Self::container_of(name, &answer))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(service_error(&self.member, &answer, Retry::Safe)),
        }
    }
}

#[async_trait::async_trait]
impl Serves<Buckets> for OpenStackAdapter {
    /// A container by its member name when known, else by the broker id's name.
    async fn get_one(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let name = Self::container_for(r)?;
        self.head_container(ctx, &name).await
    }

    /// Creates (PUTs) the broker id's container with the broker id and tenant as metadata.
    async fn create_one(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        let name = Self::container_name(&spec.broker_id)?;
        let headers = [
            (
                "x-container-meta-alliance-broker-id",
                spec.broker_id.as_str(),
            ),
            ("x-container-meta-alliance-tenant", spec.tenant.as_str()),
        ];
        let answer = self
            .call(
                ctx,
                OBJECT,
                Method::PUT,
                &format!("/{}", path_segment(&name)?),
                &headers,
                None,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(service_error(
                &self.member,
                &answer,
                Retry::WithIdempotencyKey,
            ));
        }
        Ok(MemberResource::bucket(
            name,
            Some(spec.broker_id.clone()),
            Some(spec.tenant.clone()),
        ))
    }

    /// Deletes a container (one already gone is deleted; a non-empty one is refused).
    async fn delete_one(&self, ctx: &CallContext, r: &ResourceRef) -> Result<(), AdapterError> {
        let name = Self::container_for(r)?;
        // A container still holding the tenant's objects is refused (409): the broker never
        // empties a bucket.
        self.remove(ctx, OBJECT, &format!("/{}", path_segment(&name)?), &[])
            .await
    }

    /// The broker's containers (`tenant`'s when given): the `alliance-` ones whose metadata
    /// names a broker id.
    async fn list_all(
        &self,
        ctx: &CallContext,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let mut out = Vec::new();
        for each in self.listing_contexts(ctx, tenant).await? {
            out.extend(self.containers(&each, tenant).await?);
        }
        Ok(out)
    }
}

impl OpenStackAdapter {
    /// The broker's containers in the project of `ctx`, `tenant`'s when given.
    async fn containers(
        &self,
        ctx: &CallContext,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        // Swift pages its listings (`limit`, `marker` = the last name).
        let mut names: Vec<String> = Vec::new();
        loop {
            let query = {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                q.append_pair("format", "json");
                q.append_pair("prefix", "alliance-");
                q.append_pair("limit", &self.page_size.to_string());
                if let Some(last) = names.last() {
                    q.append_pair("marker", last);
                }
                q.finish()
            };
            let answer = self
                .call(ctx, OBJECT, Method::GET, &format!("?{query}"), &[], None)
                .await?;
            let body = if answer.status == StatusCode::NO_CONTENT {
                json!([])
            } else {
                self.json(answer, Retry::Safe).await?
            };
            let page: Vec<String> = body
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            // Until an empty page: a proxy may cap listings below the limit asked for.
            let full = !page.is_empty();
            let progressed = page.last() > names.last();
            names.extend(page);
            if !full || !progressed || names.len() >= MAX_LISTED {
                break;
            }
        }
        let mut out = Vec::new();
        for name in names {
            if let Some(c) = self.head_container(ctx, &name).await? {
                if is_listed(&c, tenant) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }
}
