//! Talking to the member: one signed EC2 Query call and one signed S3 REST call over the
//! member's pooled client, failed answers mapped to the broker's errors once (`xml.rs`),
//! creates held back while an earlier attempt's outcome is unknown, the broker's tags, and
//! the `Describe*` listings that instances and volumes share ([`Described`]: pages followed,
//! lookups by member id or by tag).
//!
//! Invariant: every request is signed with SigV4 (`sign.rs`) and sent through
//! `MemberHttp` with the call's deadline; a create reaches the member only through
//! `submit_create`; a `Describe*` listing follows at most `MAX_PAGES` pages.

use alliance_adapter_api::{
    AdapterError, CallContext, ErrorKind, ErrorSource, MemberResource, MemberResourceStatus,
    ResourceRef, ResourceSpec, Retry,
};
use alliance_adapter_http::{Answer, MAX_BODY};
use alliance_core::TenantId;
use reqwest::Method;

use crate::{xml, Ec2Adapter, Service};

/// The EC2 API version the adapter speaks.
const EC2_VERSION: &str = "2016-11-15";
/// Tag holding the broker's resource id.
pub const TAG_BROKER_ID: &str = "alliance:broker-id";
/// Tag holding the owning tenant.
pub const TAG_TENANT: &str = "alliance:tenant";
/// How long a create whose outcome is unknown holds back a second one (see
/// [`AmbiguousCreates`]): longer than a member takes to make a create visible.
///
/// [`AmbiguousCreates`]: alliance_adapter_http::AmbiguousCreates
pub(crate) const AMBIGUOUS_WINDOW: std::time::Duration = std::time::Duration::from_secs(30);
/// Most pages of one `Describe*` listing the adapter follows (a bound on an untrusted member).
const MAX_PAGES: usize = 1000;

/// What an EC2 `Describe*` call lists.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Described {
    /// `DescribeInstances`.
    Instances,
    /// `DescribeVolumes`.
    Volumes,
}

impl Described {
    fn action(self) -> &'static str {
        match self {
            Self::Instances => "DescribeInstances",
            Self::Volumes => "DescribeVolumes",
        }
    }

    fn id_param(self) -> &'static str {
        match self {
            Self::Instances => "InstanceId.1",
            Self::Volumes => "VolumeId.1",
        }
    }
}

/// A create the member accepted but whose answer cannot be read: the resource may exist,
/// so the error is transient and the next attempt adopts it by its tag.
pub(crate) fn unreadable_create(action: &str) -> AdapterError {
    AdapterError::new(
        ErrorKind::Unavailable,
        ErrorSource::Member,
        Retry::WithIdempotencyKey,
        format!("{action} succeeded with an answer the broker cannot read; the next attempt looks for the resource by its tag"),
    )
}

/// A `ClientToken` (at most 64 ASCII characters) from the broker id.
pub(crate) fn client_token(broker_id: &str) -> String {
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
    /// One EC2 Query API call; the answer's body on success.
    pub(crate) async fn ec2(
        &self,
        ctx: &CallContext,
        action: &str,
        params: &[(String, String)],
        retry: Retry,
        max_body: usize,
    ) -> Result<Vec<u8>, AdapterError> {
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action);
            form.append_pair("Version", EC2_VERSION);
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish().into_bytes()
        };
        let url = format!("{}/", self.ec2_url);
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let signed = self.signer.headers(
            Service::Ec2,
            "POST",
            &url,
            &[("content-type", content_type)],
            &body,
        )?;
        let mut request = self
            .http
            .request(Method::POST, &url)
            .header("content-type", content_type);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let answer = self
            .http
            .send(ctx, request.body(body), retry, max_body)
            .await?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(self.answer_error(&answer, retry))
        }
    }

    fn answer_error(&self, answer: &Answer, retry: Retry) -> AdapterError {
        xml::error(
            &self.member,
            answer.status,
            &answer.body,
            answer.retry_after(),
            retry,
        )
    }

    /// One S3 REST call (path-style); the whole answer, whatever its status.
    pub(crate) async fn s3(
        &self,
        ctx: &CallContext,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        retry: Retry,
    ) -> Result<Answer, AdapterError> {
        let url = format!("{}{path}", self.s3_url);
        let signed = self
            .signer
            .headers(Service::S3, method.as_str(), &url, headers, &body)?;
        let mut request = self.http.request(method.clone(), &url);
        if method == Method::PUT || method == Method::POST {
            // Swift's s3api refuses a PUT without Content-Length (411), even an empty one.
            request = request.header(reqwest::header::CONTENT_LENGTH, body.len());
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        for (name, value) in signed {
            request = request.header(name, value);
        }
        self.http
            .send(ctx, request.body(body), retry, MAX_BODY)
            .await
    }

    /// A failed S3 answer as the broker's error.
    pub(crate) fn s3_error(&self, answer: &Answer, retry: Retry) -> AdapterError {
        self.answer_error(answer, retry)
    }

    /// The `TagSpecification` parameters of a create: the broker id, the tenant and the name.
    pub(crate) fn tag_params(spec: &ResourceSpec, resource_type: &str) -> Vec<(String, String)> {
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
        for _ in 0..MAX_PAGES {
            let mut paged = params.to_vec();
            if let Some(t) = &token {
                paged.push(("NextToken".to_owned(), t.clone()));
            }
            let body = self
                .ec2(ctx, kind.action(), &paged, Retry::Safe, MAX_BODY)
                .await?;
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
    pub(crate) async fn find(
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

    /// A resource by its member id when known, else by its tag.
    pub(crate) async fn get_described(
        &self,
        ctx: &CallContext,
        kind: Described,
        r: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        match &r.member_resource_id {
            Some(id) => {
                let params = [(kind.id_param().to_owned(), id.clone())];
                match self.describe(ctx, kind, &params, false).await {
                    Ok(found) => Ok(found.into_iter().find(|f| &f.member_resource_id == id)),
                    Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                }
            }
            None => self.find(ctx, kind, &r.broker_id, false).await,
        }
    }

    /// The broker's instances or volumes: `tenant`'s by their tenant tag when given, else
    /// every one carrying a broker id tag.
    pub(crate) async fn list_described(
        &self,
        ctx: &CallContext,
        kind: Described,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let filter = match tenant {
            Some(t) => tag_filter(TAG_TENANT, t.as_str()),
            None => vec![
                ("Filter.1.Name".to_owned(), "tag-key".to_owned()),
                ("Filter.1.Value.1".to_owned(), TAG_BROKER_ID.to_owned()),
            ],
        };
        self.describe(ctx, kind, &filter, false).await
    }

    /// Calls a creating action, unless an earlier attempt with an unknown outcome may still
    /// be in progress at the member (see [`AmbiguousCreates`]).
    ///
    /// [`AmbiguousCreates`]: alliance_adapter_http::AmbiguousCreates
    pub(crate) async fn submit_create(
        &self,
        ctx: &CallContext,
        action: &str,
        params: &[(String, String)],
        broker_id: &str,
    ) -> Result<Vec<u8>, AdapterError> {
        self.ambiguous.check(broker_id)?;
        let answer = self
            .ec2(ctx, action, params, Retry::WithIdempotencyKey, MAX_BODY)
            .await;
        self.ambiguous.record(broker_id, answer.as_ref().err());
        answer
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use alliance_adapter_api::MemberAdapter;
    use alliance_core::ResourceType;

    use crate::{Ec2Config, Mapping, Signer};

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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let a = Ec2Adapter::new(
            "m",
            Ec2Config::new(&url, "eu-west-3"),
            Signer::new("a".into(), "s".into(), None, "eu-west-3"),
            Mapping::default(),
        )
        .unwrap();
        let ctx = CallContext::new(None, "k", std::time::Duration::from_secs(5));
        let listed = a.list(&ctx, ResourceType::Volume, None).await.unwrap();
        let ids: Vec<&str> = listed
            .iter()
            .map(|r| r.member_resource_id.as_str())
            .collect();
        assert_eq!(ids, ["vol-1", "vol-2"]);
    }
}
