//! What Nova servers and Cinder volumes share ([`Kept`]): listing the broker's by a filter
//! page by page, finding an earlier attempt by its broker id, reading by member id (else by
//! broker id), the guarded create and the delete; each kind ([`KeptKind`]) adds only the
//! body of its create, and the adapter serves both through one `Serves` impl.
//!
//! Invariant: a create reaches the member only through `submit_create`, after a search for
//! an earlier attempt found none, and is held back while an earlier attempt's outcome is
//! unknown; a member id enters a URL only through `path_segment`.

use alliance_adapter_api::{
    AdapterError, CallContext, MemberResource, ResourceRef, ResourceSpec, Retry, Serves,
};
use alliance_core::TenantId;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::transport::{
    is_listed, path_segment, service_error, unreadable_create, COMPUTE, META_BROKER_ID,
    META_TENANT, VOLUME,
};
use crate::{OpenStackAdapter, TAG_MARKER};

/// Servers or volumes, as a type ([`alliance_adapter_api::Instances`],
/// [`alliance_adapter_api::Volumes`]): which [`Kept`] kind it is, and the body of its
/// create.
pub(crate) trait KeptKind: Send + Sync + 'static {
    /// The kind.
    const KIND: Kept;

    /// The create's body, asked for once no earlier attempt is found.
    fn create_body(adapter: &OpenStackAdapter, spec: &ResourceSpec) -> Result<Value, AdapterError>;
}

/// What Nova and Cinder keep for the broker, and how their documents read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kept {
    /// A Nova server.
    Server,
    /// A Cinder volume.
    Volume,
}

impl Kept {
    /// The catalogue types of its service, and the service's name in messages.
    fn service(self) -> (&'static [&'static str], &'static str) {
        match self {
            Self::Server => (COMPUTE, "Nova"),
            Self::Volume => (VOLUME, "Cinder"),
        }
    }

    /// Its collection (in paths and list answers), and the key of one item in an answer.
    fn collection(self) -> (&'static str, &'static str) {
        match self {
            Self::Server => ("servers", "server"),
            Self::Volume => ("volumes", "volume"),
        }
    }

    fn headers(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Self::Server => OpenStackAdapter::compute_headers().to_vec(),
            Self::Volume => OpenStackAdapter::volume_headers().to_vec(),
        }
    }

    fn read(self, v: &Value) -> Option<MemberResource> {
        match self {
            Self::Server => OpenStackAdapter::server_of(v),
            Self::Volume => OpenStackAdapter::volume_of(v),
        }
    }

    /// The list filter of an earlier attempt at `broker_id`: Nova's `tags`, Cinder's
    /// `metadata`.
    fn by_broker_id(self, broker_id: &str) -> Result<(&'static str, String), AdapterError> {
        Ok(match self {
            Self::Server => ("tags", OpenStackAdapter::broker_tag(broker_id)?),
            Self::Volume => ("metadata", json!({ META_BROKER_ID: broker_id }).to_string()),
        })
    }

    /// The list filter of the broker's resources, `tenant`'s when given (for Nova, the
    /// marker tag: the tenant is then checked in each server's metadata).
    fn listed(self, tenant: Option<&TenantId>) -> (&'static str, String) {
        match (self, tenant) {
            (Self::Server, _) => ("tags", TAG_MARKER.to_owned()),
            (Self::Volume, Some(t)) => ("metadata", json!({ META_TENANT: t.as_str() }).to_string()),
            (Self::Volume, None) => ("metadata", json!({}).to_string()),
        }
    }

    /// The path of one of its items by member id, refused when the id could escape its
    /// segment.
    fn path(self, id: &str) -> Result<String, AdapterError> {
        let (collection, _) = self.collection();
        Ok(format!("/{collection}/{}", path_segment(id)?))
    }

    /// The resource a create answered (Nova answers only the server's id).
    fn created(self, answer: &Value, spec: &ResourceSpec) -> Option<MemberResource> {
        let (_, item) = self.collection();
        let item = answer.get(item)?;
        match self {
            Self::Server => OpenStackAdapter::created_server(item, spec),
            Self::Volume => OpenStackAdapter::volume_of(item),
        }
    }

    /// Whether a resource found before its delete is still to be deleted.
    fn needs_delete(self, found: &MemberResource) -> Result<bool, AdapterError> {
        match self {
            Self::Server => Ok(true),
            // Cinder refuses to delete a volume that is still being created (400).
            Self::Volume => found.volume_needs_delete(),
        }
    }
}

impl OpenStackAdapter {
    /// Every server or volume of the detail list matching `filter`.
    async fn kept(
        &self,
        ctx: &CallContext,
        kind: Kept,
        filter: (&str, String),
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let ((types, _), (collection, _)) = (kind.service(), kind.collection());
        let items = self
            .paged(
                ctx,
                types,
                &format!("/{collection}/detail"),
                (filter.0, &filter.1),
                &kind.headers(),
                collection,
            )
            .await?;
        Ok(items.iter().filter_map(|v| kind.read(v)).collect())
    }

    /// An earlier attempt at creating `broker_id`, found by its tag or metadata.
    async fn find_kept(
        &self,
        ctx: &CallContext,
        kind: Kept,
        broker_id: &str,
    ) -> Result<Option<MemberResource>, AdapterError> {
        Ok(self
            .kept(ctx, kind, kind.by_broker_id(broker_id)?)
            .await?
            .into_iter()
            .find(|s| s.broker_id.as_deref() == Some(broker_id)))
    }

    /// A server or volume by its member id; `None` when the member does not know it.
    async fn fetch(
        &self,
        ctx: &CallContext,
        kind: Kept,
        id: &str,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let ((types, _), (_, item)) = (kind.service(), kind.collection());
        let answer = self
            .call(
                ctx,
                types,
                Method::GET,
                &kind.path(id)?,
                &kind.headers(),
                None,
            )
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = self.json(answer, Retry::Safe).await?;
        let Some((doc, found)) = body.get(item).and_then(|v| Some((v, kind.read(v)?))) else {
            return Ok(None);
        };
        match kind {
            Kept::Server => self.with_public_address(ctx, doc, found).await.map(Some),
            Kept::Volume => Ok(Some(found)),
        }
    }

    /// POSTs a create, unless an earlier attempt with an unknown outcome may still be in
    /// progress at the member (see [`AmbiguousCreates`]); the answer's JSON (`null` when
    /// unreadable: the caller then reports a transient error and the next attempt adopts
    /// the resource by its tag or metadata).
    ///
    /// [`AmbiguousCreates`]: alliance_adapter_http::AmbiguousCreates
    async fn submit_create(
        &self,
        ctx: &CallContext,
        types: &[&str],
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
        broker_id: &str,
    ) -> Result<Value, AdapterError> {
        let attempt = self.ambiguous.begin(broker_id)?;
        let result = match self
            .call(ctx, types, Method::POST, path, headers, Some(body))
            .await
        {
            Ok(answer) if answer.status.is_success() => {
                Ok(serde_json::from_slice::<Value>(&answer.body).unwrap_or(Value::Null))
            }
            Ok(answer) => Err(service_error(
                &self.member,
                &answer,
                Retry::WithIdempotencyKey,
            )),
            Err(e) => Err(e),
        };
        attempt.settle(result.as_ref().err());
        result
    }
}

#[async_trait::async_trait]
impl<K: KeptKind> Serves<K> for OpenStackAdapter {
    /// Creates a server or volume, or returns what an earlier attempt created.
    async fn create_one(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        if let Some(earlier) = self.find_kept(ctx, K::KIND, &spec.broker_id).await? {
            return Ok(earlier);
        }
        let ((types, service), (collection, _)) = (K::KIND.service(), K::KIND.collection());
        let mut body = K::create_body(self, spec)?;
        if matches!(K::KIND, Kept::Server) {
            let access = self.access_body(ctx, spec).await?;
            if let Some(server) = body.get_mut("server").and_then(Value::as_object_mut) {
                server.extend(access);
            }
        }
        let created = self
            .submit_create(
                ctx,
                types,
                &format!("/{collection}"),
                &K::KIND.headers(),
                &body,
                &spec.broker_id,
            )
            .await?;
        K::KIND
            .created(&created, spec)
            .ok_or_else(|| unreadable_create(service))
    }

    /// A server or volume by its member id when known, else by its tag or metadata.
    async fn get_one(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let Some(id) = &r.member_resource_id else {
            return self.find_kept(ctx, K::KIND, &r.broker_id).await;
        };
        let found = self.fetch(ctx, K::KIND, id).await?;
        if found.is_none() && matches!(K::KIND, Kept::Server) {
            // The server is gone: its own group goes with it (an error leaves the server
            // reported as still there, so the delete's wait tries again).
            self.remove_security_group(ctx, &r.broker_id).await?;
        }
        Ok(found)
    }

    /// Deletes a server or volume (one already gone, or a volume being deleted, is
    /// deleted).
    async fn delete_one(&self, ctx: &CallContext, r: &ResourceRef) -> Result<(), AdapterError> {
        let Some(found) = Serves::<K>::get_one(self, ctx, r).await? else {
            return Ok(());
        };
        if !K::KIND.needs_delete(&found)? {
            return Ok(());
        }
        if matches!(K::KIND, Kept::Server) {
            self.release_public_addresses(ctx, &found.member_resource_id)
                .await?;
        }
        let (types, _) = K::KIND.service();
        let path = K::KIND.path(&found.member_resource_id)?;
        self.remove(ctx, types, &path, &K::KIND.headers()).await
    }

    /// The broker's servers (by the `alliance` tag) or volumes (by their metadata),
    /// `tenant`'s when given.
    async fn list_all(
        &self,
        ctx: &CallContext,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let mut out = Vec::new();
        for ctx in self.listing_contexts(ctx, tenant).await? {
            out.extend(
                self.kept(&ctx, K::KIND, K::KIND.listed(tenant))
                    .await?
                    .into_iter()
                    .filter(|s| is_listed(s, tenant)),
            );
        }
        Ok(out)
    }
}
