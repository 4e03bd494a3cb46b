//! What instances and volumes share at EC2: the `Describe*` listings with their pages
//! followed, lookups by member id or by tag, the guarded create and the delete; each kind
//! ([`DescribedKind`]) adds only what its create is asked for, and the adapter serves both
//! through one `Serves` impl.
//!
//! Invariant: a create first searches for an earlier attempt by its `alliance:broker-id`
//! tag, terminated instances included, and reaches the member only through
//! `submit_create`; a `Describe*` listing follows at most `MAX_PAGES` pages.

use alliance_adapter_api::{
    AdapterError, CallContext, ErrorKind, ErrorSource, MemberResource, MemberResourceStatus,
    ResourceRef, ResourceSpec, Retry, Serves,
};
use alliance_adapter_http::MAX_BODY;
use alliance_core::TenantId;

use crate::transport::{TAG_BROKER_ID, TAG_TENANT};
use crate::{xml, Ec2Adapter};

/// How long a create whose outcome is unknown holds back a second one (see
/// [`AmbiguousCreates`]): longer than a member takes to make a create visible.
///
/// [`AmbiguousCreates`]: alliance_adapter_http::AmbiguousCreates
pub(crate) const AMBIGUOUS_WINDOW: std::time::Duration = std::time::Duration::from_secs(30);
/// Most pages of one `Describe*` listing the adapter follows (a bound on an untrusted member).
const MAX_PAGES: usize = 1000;

/// The parameters of an EC2 Query call.
pub(crate) type Params = Vec<(String, String)>;

/// Instances or volumes, as a type ([`alliance_adapter_api::Instances`],
/// [`alliance_adapter_api::Volumes`]): which [`Described`] kind it is, and what its create
/// is asked for besides the client token and the broker's tags.
pub(crate) trait DescribedKind: Send + Sync + 'static {
    /// The kind.
    const KIND: Described;

    /// The create's own parameters, asked for once no earlier attempt is found.
    fn create_params(adapter: &Ec2Adapter, spec: &ResourceSpec) -> Result<Params, AdapterError>;
}

/// What an EC2 `Describe*` call lists: the instances and volumes, which are created,
/// read, listed and deleted the same way (only their names and documents differ).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Described {
    /// `DescribeInstances`.
    Instances,
    /// `DescribeVolumes`.
    Volumes,
}

impl Described {
    /// Its `Describe*` action, and the parameter naming one member id in it.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Self::Instances => ("DescribeInstances", "InstanceId.1"),
            Self::Volumes => ("DescribeVolumes", "VolumeId.1"),
        }
    }

    /// Its creating action and `TagSpecification` resource type, and its deleting action
    /// with the parameter naming the member id in it.
    fn changes(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Self::Instances => (
                "RunInstances",
                "instance",
                "TerminateInstances",
                "InstanceId.1",
            ),
            Self::Volumes => ("CreateVolume", "volume", "DeleteVolume", "VolumeId"),
        }
    }

    /// The resource a create answered; a volume keeps the broker id and tenant of `spec`
    /// when the member does not echo its tags.
    fn created(self, doc: &roxmltree::Document<'_>, spec: &ResourceSpec) -> Option<MemberResource> {
        match self {
            Self::Instances => Ec2Adapter::instances(doc, true).next(),
            Self::Volumes => Ec2Adapter::volume_of(doc.root_element()).map(|mut created| {
                created
                    .broker_id
                    .get_or_insert_with(|| spec.broker_id.clone());
                created.tenant.get_or_insert_with(|| spec.tenant.clone());
                created
            }),
        }
    }

    /// Whether a resource found before its delete is still to be deleted.
    fn needs_delete(self, found: &MemberResource) -> Result<bool, AdapterError> {
        match self {
            Self::Instances => Ok(true),
            Self::Volumes => found.volume_needs_delete(),
        }
    }
}

/// A create the member accepted but whose answer cannot be read: the resource may exist,
/// so the error is transient and the next attempt adopts it by its tag.
fn unreadable_create(action: &str) -> AdapterError {
    AdapterError::new(
        ErrorKind::Unavailable,
        ErrorSource::Member,
        Retry::WithIdempotencyKey,
        format!("{action} succeeded with an answer the broker cannot read; the next attempt looks for the resource by its tag"),
    )
}

/// A `ClientToken` (at most 64 ASCII characters) from the broker id.
fn client_token(broker_id: &str) -> String {
    if broker_id.len() <= 64 && broker_id.is_ascii() {
        broker_id.to_owned()
    } else {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(broker_id.as_bytes()))
    }
}

fn tag_filter(key: &str, value: &str) -> Vec<(String, String)> {
    vec![
        ("Filter.1.Name".to_owned(), format!("tag:{key}")),
        ("Filter.1.Value.1".to_owned(), value.to_owned()),
    ]
}

impl Ec2Adapter {
    /// The `TagSpecification` parameters of a create: the broker id, the tenant and the name.
    fn tag_params(spec: &ResourceSpec, resource_type: &str) -> Vec<(String, String)> {
        let tags = [
            (TAG_BROKER_ID, spec.broker_id.as_str()),
            (TAG_TENANT, spec.tenant.as_str()),
            ("Name", spec.name.as_str()),
        ];
        let mut out = vec![(
            "TagSpecification.1.ResourceType".to_owned(),
            resource_type.to_owned(),
        )];
        for (i, (k, v)) in tags.iter().enumerate() {
            out.push((
                format!("TagSpecification.1.Tag.{}.Key", i + 1),
                (*k).to_owned(),
            ));
            out.push((
                format!("TagSpecification.1.Tag.{}.Value", i + 1),
                (*v).to_owned(),
            ));
        }
        out
    }

    /// `DescribeInstances` or `DescribeVolumes` with `params`, following `nextToken` pages.
    async fn describe(
        &self,
        ctx: &CallContext,
        kind: Described,
        params: &[(String, String)],
        keep_terminated: bool,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let (action, _) = kind.describe();
        for _ in 0..MAX_PAGES {
            let mut paged = params.to_vec();
            if let Some(t) = &token {
                paged.push(("NextToken".to_owned(), t.clone()));
            }
            let body = self.ec2(ctx, action, &paged, Retry::Safe, MAX_BODY).await?;
            let doc = xml::parse(&body)?;
            match kind {
                Described::Instances => out.extend(Self::instances(&doc, keep_terminated)),
                Described::Volumes => out.extend(
                    xml::items(doc.root_element(), "volumeSet").filter_map(Self::volume_of),
                ),
            }
            let next = xml::child(doc.root_element(), "nextToken")
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if next.is_none() || next == token {
                return Ok(out);
            }
            token = next;
        }
        Ok(out)
    }

    /// An earlier attempt at creating `broker_id`, found by its tag, live ones first; with
    /// `keep_terminated` (before a create), an instance that died at launch is found too,
    /// as an error, so that it is not launched again and again.
    async fn find(
        &self,
        ctx: &CallContext,
        kind: Described,
        broker_id: &str,
        keep_terminated: bool,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let mut found: Vec<MemberResource> = self
            .describe(
                ctx,
                kind,
                &tag_filter(TAG_BROKER_ID, broker_id),
                keep_terminated,
            )
            .await?
            .into_iter()
            .filter(|r| r.broker_id.as_deref() == Some(broker_id))
            .collect();
        found.sort_by_key(|r| r.status == MemberResourceStatus::Error);
        Ok(found.into_iter().next())
    }

    /// Calls a creating action, unless an earlier attempt with an unknown outcome may still
    /// be in progress at the member (see [`AmbiguousCreates`]).
    ///
    /// [`AmbiguousCreates`]: alliance_adapter_http::AmbiguousCreates
    async fn submit_create(
        &self,
        ctx: &CallContext,
        action: &str,
        params: &[(String, String)],
        broker_id: &str,
    ) -> Result<Vec<u8>, AdapterError> {
        let attempt = self.ambiguous.begin(broker_id)?;
        let answer = self
            .ec2(ctx, action, params, Retry::WithIdempotencyKey, MAX_BODY)
            .await;
        attempt.settle(answer.as_ref().err());
        answer
    }
}

#[async_trait::async_trait]
impl<K: DescribedKind> Serves<K> for Ec2Adapter {
    /// Creates an instance or volume, or returns what an earlier attempt created, found by
    /// its tag (an instance that died at launch included).
    async fn create_one(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        if let Some(earlier) = self.find(ctx, K::KIND, &spec.broker_id, true).await? {
            return Ok(earlier);
        }
        let (action, tag_type, ..) = K::KIND.changes();
        let mut params = K::create_params(self, spec)?;
        if matches!(K::KIND, Described::Instances) {
            params.extend(self.access_params(ctx, spec).await?);
            Self::subnet_on_interface(&mut params);
        }
        params.push(("ClientToken".to_owned(), client_token(&spec.broker_id)));
        params.extend(Self::tag_params(spec, tag_type));
        let body = self
            .submit_create(ctx, action, &params, &spec.broker_id)
            .await?;
        let created = xml::parse(&body)
            .ok()
            .and_then(|doc| K::KIND.created(&doc, spec));
        created.ok_or_else(|| unreadable_create(action))
    }

    /// A resource by its member id when known, else by its tag.
    async fn get_one(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let Some(id) = &r.member_resource_id else {
            return self.find(ctx, K::KIND, &r.broker_id, false).await;
        };
        let (_, id_param) = K::KIND.describe();
        let params = [(id_param.to_owned(), id.clone())];
        let found = match self.describe(ctx, K::KIND, &params, false).await {
            Ok(found) => found.into_iter().find(|f| &f.member_resource_id == id),
            Err(e) if e.kind == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if found.is_none() && matches!(K::KIND, Described::Instances) {
            // The instance is gone: its own group goes with it (an error leaves the
            // instance reported as still there, so the delete's wait tries again).
            self.remove_security_group(ctx, &r.broker_id).await?;
        }
        Ok(found)
    }

    /// Deletes an instance or volume (one already gone, or a volume being deleted, is
    /// deleted).
    async fn delete_one(&self, ctx: &CallContext, r: &ResourceRef) -> Result<(), AdapterError> {
        let Some(found) = Serves::<K>::get_one(self, ctx, r).await? else {
            return Ok(());
        };
        if !K::KIND.needs_delete(&found)? {
            return Ok(());
        }
        let (.., action, id_param) = K::KIND.changes();
        let params = [(id_param.to_owned(), found.member_resource_id)];
        match self.ec2(ctx, action, &params, Retry::Safe, MAX_BODY).await {
            Err(e) if e.kind != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The broker's instances or volumes: `tenant`'s by their tenant tag when given, else
    /// every one carrying a broker id tag.
    async fn list_all(
        &self,
        ctx: &CallContext,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let filter = match tenant {
            Some(t) => tag_filter(TAG_TENANT, t.as_str()),
            None => vec![
                ("Filter.1.Name".to_owned(), "tag-key".to_owned()),
                ("Filter.1.Value.1".to_owned(), TAG_BROKER_ID.to_owned()),
            ],
        };
        self.describe(ctx, K::KIND, &filter, false).await
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use alliance_adapter_api::MemberAdapter;
    use alliance_core::ResourceType;

    #[test]
    fn client_tokens_fit_ec2s_limit() {
        assert_eq!(client_token("ins-1"), "ins-1");
        assert_eq!(client_token(&"y".repeat(80)).len(), 64);
    }

    #[tokio::test]
    async fn describe_follows_next_tokens() {
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(|body: String| async move {
                let (volume, next) = if body.contains("NextToken=page-2") {
                    ("vol-2", "")
                } else {
                    ("vol-1", "<nextToken>page-2</nextToken>")
                };
                format!("<DescribeVolumesResponse><volumeSet><item><volumeId>{volume}</volumeId><status>available</status><tagSet><item><key>alliance:broker-id</key><value>{volume}</value></item></tagSet></item></volumeSet>{next}</DescribeVolumesResponse>")
            }),
        );
        let a = Ec2Adapter::against(app).await;
        let ctx = CallContext::new(None, "k", std::time::Duration::from_secs(5));
        let listed = a.list(&ctx, ResourceType::Volume, None).await.unwrap();
        let ids: Vec<&str> = listed
            .iter()
            .map(|r| r.member_resource_id.as_str())
            .collect();
        assert_eq!(ids, ["vol-1", "vol-2"]);
    }
}
