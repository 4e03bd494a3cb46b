//! The broker's adapter for EC2- and S3-compatible member clouds.
//!
//! Instances and volumes go through the EC2 Query API (`RunInstances`, `DescribeInstances`,
//! `TerminateInstances`, `CreateVolume`, `DescribeVolumes`, `DeleteVolume`), buckets through
//! S3 REST (`CreateBucket` with the location constraint, `HeadBucket`, `DeleteBucket`), every
//! request signed with SigV4 by `aws-sigv4` over the member's pooled reqwest client (see
//! docs/adapters.md for why not the AWS SDK crates).
//!
//! Idempotency. `RunInstances` and `CreateVolume` carry `ClientToken` = the broker resource
//! id, but a member may not honour it (moto does not), so every create first searches for an
//! earlier attempt by its `alliance:broker-id` tag and returns it when found: a create
//! repeated after a crash, a timeout or a retry never makes a second resource. Buckets are
//! named after the broker id (`alliance-<id>`), so the name is the idempotency key; the
//! bucket also holds a marker object whose metadata carries the broker id and tenant (S3
//! implementations without bucket tagging, such as Swift's s3api, keep it too), and is
//! tagged where the member supports tagging.
#![forbid(unsafe_code)]

mod sign;
mod xml;

use std::collections::BTreeSet;

use alliance_adapter_api::{
    AdapterError, CallContext, ErrorKind, ErrorSource, MemberAdapter, MemberResource,
    MemberResourceStatus, ResourceRef, ResourceSpec, Retry,
};
use alliance_adapter_http::{AmbiguousCreates, Answer, MemberHttp, MAX_BODY};
use alliance_core::{ResourceType, TenantId};
use base64::Engine as _;
use md5::Digest as _;
use reqwest::{Method, StatusCode};
use serde::Deserialize;

pub use sign::{Service, Signer};

/// The EC2 API version the adapter speaks.
const EC2_VERSION: &str = "2016-11-15";
/// Tag holding the broker's resource id.
pub const TAG_BROKER_ID: &str = "alliance:broker-id";
/// Tag holding the owning tenant.
pub const TAG_TENANT: &str = "alliance:tenant";
/// The marker object inside every broker bucket.
pub const BUCKET_MARKER: &str = ".alliance-broker";
/// How long a create whose outcome is unknown holds back a second one (see
/// [`AmbiguousCreates`]): longer than a member takes to make a create visible.
const AMBIGUOUS_WINDOW: std::time::Duration = std::time::Duration::from_secs(30);
/// Most pages of one `Describe*` listing the adapter follows (a bound on an untrusted member).
const MAX_PAGES: usize = 1000;
/// Largest image list read during discovery.
const MAX_DISCOVERY_BODY: usize = 32 * 1024 * 1024;

/// `adapter = { kind = "ec2", endpoint = "...", region = "...", ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Config {
    /// The EC2 endpoint, e.g. `https://ec2.eu-west-3.amazonaws.com`.
    pub endpoint: String,
    /// The S3 endpoint (path-style requests); the EC2 endpoint when absent.
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    /// The region in the SigV4 credential scope, and the buckets' location constraint.
    pub region: String,
    /// Availability zone for volumes (and instances); `<region>a` when absent.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Subnet for instances, when the member needs one.
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// Volume type for `CreateVolume`.
    #[serde(default = "default_volume_type")]
    pub volume_type: String,
    /// Prefix of bucket names (bucket names are global at some members).
    #[serde(default = "default_bucket_prefix")]
    pub bucket_prefix: String,
    /// Environment variable holding the access key id.
    #[serde(default = "default_access_key_env")]
    pub access_key_env: String,
    /// Environment variable holding the secret access key.
    #[serde(default = "default_secret_key_env")]
    pub secret_key_env: String,
    /// Environment variable holding a session token, when the credentials are temporary.
    #[serde(default)]
    pub session_token_env: Option<String>,
}

fn default_volume_type() -> String {
    "gp3".into()
}
fn default_bucket_prefix() -> String {
    "alliance-".into()
}
fn default_access_key_env() -> String {
    "AWS_ACCESS_KEY_ID".into()
}
fn default_secret_key_env() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}

impl Ec2Config {
    /// A config with defaults for everything but the endpoint and region.
    pub fn new(endpoint: &str, region: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            s3_endpoint: None,
            region: region.to_owned(),
            availability_zone: None,
            subnet_id: None,
            volume_type: default_volume_type(),
            bucket_prefix: default_bucket_prefix(),
            access_key_env: default_access_key_env(),
            secret_key_env: default_secret_key_env(),
            session_token_env: None,
        }
    }

    /// Problems with the config, as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, url) in [
            ("endpoint", Some(&self.endpoint)),
            ("s3_endpoint", self.s3_endpoint.as_ref()),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    out.push((key, format!("`{url}` is not an http(s) URL")));
                }
            }
        }
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            out.push(("region", format!("`{}` is not a region name", self.region)));
        }
        let prefix_ok = self.bucket_prefix.len() <= 20
            && self
                .bucket_prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !prefix_ok {
            out.push((
                "bucket_prefix",
                "up to 20 characters of a-z, 0-9 and -".into(),
            ));
        }
        out
    }
}

/// How broker names map to the member's, and what it offers (shared by the adapters).
pub use alliance_adapter_api::Mapping;

/// A member reached over the EC2 and S3 APIs.
pub struct Ec2Adapter {
    member: String,
    config: Ec2Config,
    ec2_url: String,
    s3_url: String,
    signer: Signer,
    mapping: Mapping,
    http: MemberHttp,
    ambiguous: AmbiguousCreates,
}

impl std::fmt::Debug for Ec2Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Adapter")
            .field("member", &self.member)
            .field("endpoint", &self.ec2_url)
            .field("region", &self.config.region)
            .finish_non_exhaustive()
    }
}

fn trim(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

impl Ec2Adapter {
    /// An adapter with explicit credentials.
    pub fn new(
        member: &str,
        config: Ec2Config,
        signer: Signer,
        mapping: Mapping,
    ) -> Result<Self, String> {
        if let Some((key, problem)) = config.problems().into_iter().next() {
            return Err(format!("member {member}: adapter.{key}: {problem}"));
        }
        Ok(Self {
            member: member.to_owned(),
            ec2_url: trim(&config.endpoint),
            s3_url: trim(config.s3_endpoint.as_deref().unwrap_or(&config.endpoint)),
            signer,
            mapping,
            http: MemberHttp::new(member)?,
            ambiguous: AmbiguousCreates::new(AMBIGUOUS_WINDOW),
            config,
        })
    }

    /// An adapter from config, reading the credentials from the environment variables it
    /// names.
    pub fn from_config(
        member: &str,
        config: &Ec2Config,
        mapping: Mapping,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let var = |name: &str, key: &str| {
            env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!("member {member}: environment variable {name} ({key}) is not set")
            })
        };
        let access = var(&config.access_key_env, "access_key_env")?;
        let secret = var(&config.secret_key_env, "secret_key_env")?;
        let token = match &config.session_token_env {
            Some(name) => Some(var(name, "session_token_env")?),
            None => None,
        };
        let signer = Signer::new(access, secret, token, &config.region);
        Self::new(member, config.clone(), signer, mapping)
    }

    fn zone(&self) -> String {
        self.config
            .availability_zone
            .clone()
            .unwrap_or_else(|| format!("{}a", self.config.region))
    }

    /// One EC2 Query API call; the answer's body on success.
    async fn ec2(
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
    async fn s3(
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

    fn bucket_name(&self, broker_id: &str) -> Result<String, AdapterError> {
        let id: String = broker_id
            .chars()
            .map(|c| match c {
                'a'..='z' | '0'..='9' | '-' => c,
                'A'..='Z' => c.to_ascii_lowercase(),
                _ => '-',
            })
            .collect();
        let name = format!("{}{id}", self.config.bucket_prefix);
        if name.len() > 63 || id.is_empty() || name.ends_with('-') {
            return Err(AdapterError::new(
                ErrorKind::Invalid,
                ErrorSource::Broker,
                Retry::Never,
                format!("`{broker_id}` cannot name an S3 bucket"),
            ));
        }
        Ok(name)
    }

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

    // ---- instances ----

    /// An instance; a terminated one is gone (`None`) unless `keep_terminated`, when it is
    /// an `error` carrying its state reason (an instance that died at launch).
    fn instance_of(node: roxmltree::Node<'_, '_>, keep_terminated: bool) -> Option<MemberResource> {
        let id = xml::child(node, "instanceId")?;
        let state = xml::child_node(node, "instanceState").and_then(|s| xml::child(s, "name"))?;
        let status = match state {
            "pending" => MemberResourceStatus::Provisioning,
            "running" | "stopping" | "stopped" => MemberResourceStatus::Active,
            "shutting-down" => MemberResourceStatus::Deleting,
            "terminated" if keep_terminated => MemberResourceStatus::Error,
            _ => return None,
        };
        let tags = xml::tags(node);
        Some(MemberResource {
            resource_type: ResourceType::Instance,
            member_resource_id: id.to_owned(),
            broker_id: tags.get(TAG_BROKER_ID).cloned(),
            tenant: tags.get(TAG_TENANT).and_then(|t| TenantId::parse(t).ok()),
            status,
            detail: xml::child_node(node, "stateReason")
                .and_then(|r| xml::child(r, "message"))
                .map(str::to_owned),
        })
    }

    /// The instances of a `RunInstances` or `DescribeInstances` answer.
    fn instances<'a>(
        doc: &'a roxmltree::Document<'a>,
        keep_terminated: bool,
    ) -> impl Iterator<Item = MemberResource> + 'a {
        xml::all(doc, "instancesSet")
            .flat_map(|set| set.children().filter(|c| c.tag_name().name() == "item"))
            .filter_map(move |node| Self::instance_of(node, keep_terminated))
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

    /// An earlier attempt at creating `broker_id`, found by its tag.
    /// An earlier attempt, live ones first; with `keep_terminated` (before a create), an
    /// instance that died at launch is found too, as an error, so that it is not launched
    /// again and again.
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

    /// A resource by its member id when known, else by its tag.
    async fn get_described(
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

    /// Calls a creating action, unless an earlier attempt with an unknown outcome may still
    /// be in progress at the member (see [`AmbiguousCreates`]).
    async fn submit_create(
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

    async fn create_instance(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        if let Some(earlier) = self
            .find(ctx, Described::Instances, &spec.broker_id, true)
            .await?
        {
            return Ok(earlier);
        }
        let instance_type = alliance_adapter_api::member_name(
            &self.mapping.sizes,
            spec.size.as_ref().map(|s| s.as_str()),
            "size",
        )?;
        let image = alliance_adapter_api::member_name(
            &self.mapping.images,
            spec.image.as_ref().map(|i| i.as_str()),
            "image",
        )?;
        let mut params = vec![
            ("ImageId".to_owned(), image),
            ("InstanceType".to_owned(), instance_type),
            ("MinCount".to_owned(), "1".to_owned()),
            ("MaxCount".to_owned(), "1".to_owned()),
            ("ClientToken".to_owned(), client_token(&spec.broker_id)),
        ];
        if let Some(zone) = &self.config.availability_zone {
            params.push(("Placement.AvailabilityZone".to_owned(), zone.clone()));
        }
        if let Some(subnet) = &self.config.subnet_id {
            params.push(("SubnetId".to_owned(), subnet.clone()));
        }
        params.extend(Self::tag_params(spec, "instance"));
        let body = self
            .submit_create(ctx, "RunInstances", &params, &spec.broker_id)
            .await?;
        let created = xml::parse(&body)
            .ok()
            .and_then(|doc| Self::instances(&doc, true).next());
        created.ok_or_else(|| unreadable_create("RunInstances"))
    }

    async fn delete_instance(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<(), AdapterError> {
        let Some(found) = self.get_described(ctx, Described::Instances, r).await? else {
            return Ok(());
        };
        let params = [("InstanceId.1".to_owned(), found.member_resource_id)];
        match self
            .ec2(ctx, "TerminateInstances", &params, Retry::Safe, MAX_BODY)
            .await
        {
            Err(e) if e.kind != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    // ---- volumes ----

    fn volume_of(node: roxmltree::Node<'_, '_>) -> Option<MemberResource> {
        let id = xml::child(node, "volumeId")?;
        let status = match xml::child(node, "status")? {
            "creating" => MemberResourceStatus::Provisioning,
            "available" | "in-use" => MemberResourceStatus::Active,
            "deleting" => MemberResourceStatus::Deleting,
            "error" => MemberResourceStatus::Error,
            _ => return None,
        };
        let tags = xml::tags(node);
        Some(MemberResource {
            resource_type: ResourceType::Volume,
            member_resource_id: id.to_owned(),
            broker_id: tags.get(TAG_BROKER_ID).cloned(),
            tenant: tags.get(TAG_TENANT).and_then(|t| TenantId::parse(t).ok()),
            status,
            detail: None,
        })
    }

    async fn create_volume(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        if let Some(earlier) = self
            .find(ctx, Described::Volumes, &spec.broker_id, false)
            .await?
        {
            return Ok(earlier);
        }
        let size = spec.size_gb.ok_or_else(|| {
            AdapterError::new(
                ErrorKind::Invalid,
                ErrorSource::Broker,
                Retry::Never,
                "a volume needs size_gb",
            )
        })?;
        let mut params = vec![
            ("AvailabilityZone".to_owned(), self.zone()),
            ("Size".to_owned(), size.to_string()),
            ("VolumeType".to_owned(), self.config.volume_type.clone()),
            ("ClientToken".to_owned(), client_token(&spec.broker_id)),
        ];
        params.extend(Self::tag_params(spec, "volume"));
        let body = self
            .submit_create(ctx, "CreateVolume", &params, &spec.broker_id)
            .await?;
        let mut created = xml::parse(&body)
            .ok()
            .and_then(|doc| Self::volume_of(doc.root_element()))
            .ok_or_else(|| unreadable_create("CreateVolume"))?;
        // Some members do not echo the tags in the CreateVolume answer.
        created
            .broker_id
            .get_or_insert_with(|| spec.broker_id.clone());
        created.tenant.get_or_insert_with(|| spec.tenant.clone());
        Ok(created)
    }

    async fn delete_volume(&self, ctx: &CallContext, r: &ResourceRef) -> Result<(), AdapterError> {
        let Some(found) = self.get_described(ctx, Described::Volumes, r).await? else {
            return Ok(());
        };
        match found.status {
            MemberResourceStatus::Deleting => return Ok(()),
            MemberResourceStatus::Provisioning => {
                return Err(AdapterError::unavailable(
                    "the volume is still being created; it is deleted once it is available",
                )
                .with_retry_after(std::time::Duration::from_secs(2)))
            }
            _ => {}
        }
        let params = [("VolumeId".to_owned(), found.member_resource_id)];
        match self
            .ec2(ctx, "DeleteVolume", &params, Retry::Safe, MAX_BODY)
            .await
        {
            Err(e) if e.kind != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    // ---- buckets ----

    fn s3_error(&self, answer: &Answer, retry: Retry) -> AdapterError {
        self.answer_error(answer, retry)
    }

    async fn bucket_owner(
        &self,
        ctx: &CallContext,
        bucket: &str,
    ) -> Result<Option<(Option<String>, Option<TenantId>)>, AdapterError> {
        let answer = self
            .s3(
                ctx,
                Method::HEAD,
                &format!("/{bucket}/{BUCKET_MARKER}"),
                &[],
                Vec::new(),
                Retry::Safe,
            )
            .await?;
        match answer.status {
            s if s.is_success() => Ok(Some((
                answer
                    .header("x-amz-meta-alliance-broker-id")
                    .map(str::to_owned),
                answer
                    .header("x-amz-meta-alliance-tenant")
                    .and_then(|t| TenantId::parse(t).ok()),
            ))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.s3_error(&answer, Retry::Safe)),
        }
    }

    async fn get_bucket(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let bucket = match &r.member_resource_id {
            Some(name) => name.clone(),
            None => self.bucket_name(&r.broker_id)?,
        };
        let answer = self
            .s3(
                ctx,
                Method::HEAD,
                &format!("/{bucket}"),
                &[],
                Vec::new(),
                Retry::Safe,
            )
            .await?;
        match answer.status {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.s3_error(&answer, Retry::Safe)),
        }
        let owner = self.bucket_owner(ctx, &bucket).await?;
        Ok(Some(MemberResource {
            resource_type: ResourceType::Bucket,
            member_resource_id: bucket,
            broker_id: owner
                .as_ref()
                .and_then(|(b, _)| b.clone())
                .or_else(|| Some(r.broker_id.clone())),
            tenant: owner.and_then(|(_, t)| t),
            status: MemberResourceStatus::Active,
            detail: None,
        }))
    }

    async fn create_bucket(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        let bucket = self.bucket_name(&spec.broker_id)?;
        let retry = Retry::WithIdempotencyKey;
        // us-east-1 takes no location constraint (and refuses an explicit one).
        let body = if self.config.region == "us-east-1" {
            Vec::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.config.region
            )
            .into_bytes()
        };
        let answer = self
            .s3(ctx, Method::PUT, &format!("/{bucket}"), &[], body, retry)
            .await?;
        if !answer.status.is_success() {
            let e = self.s3_error(&answer, retry);
            // A repeated create of our own bucket is not an error.
            if !e.message.contains("BucketAlreadyOwnedByYou") {
                return Err(e);
            }
        }
        // The marker: who the bucket is for, on every S3 implementation.
        let marker_headers = [
            ("x-amz-meta-alliance-broker-id", spec.broker_id.as_str()),
            ("x-amz-meta-alliance-tenant", spec.tenant.as_str()),
        ];
        let answer = self
            .s3(
                ctx,
                Method::PUT,
                &format!("/{bucket}/{BUCKET_MARKER}"),
                &marker_headers,
                Vec::new(),
                retry,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(self.s3_error(&answer, retry));
        }
        // Tags, where the member supports them (Swift's s3api answers NotImplemented).
        let tagging = format!(
            "<Tagging xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><TagSet><Tag><Key>{TAG_BROKER_ID}</Key><Value>{}</Value></Tag><Tag><Key>{TAG_TENANT}</Key><Value>{}</Value></Tag></TagSet></Tagging>",
            spec.broker_id, spec.tenant
        )
        .into_bytes();
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&tagging));
        let answer = self
            .s3(
                ctx,
                Method::PUT,
                &format!("/{bucket}?tagging"),
                &[("content-md5", md5.as_str())],
                tagging,
                retry,
            )
            .await?;
        if !answer.status.is_success() && answer.status != StatusCode::NOT_IMPLEMENTED {
            return Err(self.s3_error(&answer, retry));
        }
        Ok(MemberResource {
            resource_type: ResourceType::Bucket,
            member_resource_id: bucket,
            broker_id: Some(spec.broker_id.clone()),
            tenant: Some(spec.tenant.clone()),
            status: MemberResourceStatus::Active,
            detail: None,
        })
    }

    async fn delete_bucket(&self, ctx: &CallContext, r: &ResourceRef) -> Result<(), AdapterError> {
        let bucket = match &r.member_resource_id {
            Some(name) => name.clone(),
            None => self.bucket_name(&r.broker_id)?,
        };
        // A bucket still holding the tenant's objects is refused, never emptied here, and
        // keeps its marker (so that it stays listed as the tenant's).
        let listing = self
            .s3(
                ctx,
                Method::GET,
                &format!("/{bucket}?list-type=2&max-keys=2"),
                &[],
                Vec::new(),
                Retry::Safe,
            )
            .await?;
        if listing.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        if !listing.status.is_success() {
            return Err(self.s3_error(&listing, Retry::Safe));
        }
        let holds_objects = {
            let doc = xml::parse(&listing.body)?;
            let found = xml::all(&doc, "Key").any(|k| k.text() != Some(BUCKET_MARKER));
            found
        };
        if holds_objects {
            return Err(AdapterError::invalid(format!(
                "bucket {bucket} still holds the tenant's objects; empty it first"
            )));
        }
        // Then the marker, then the bucket.
        let answer = self
            .s3(
                ctx,
                Method::DELETE,
                &format!("/{bucket}/{BUCKET_MARKER}"),
                &[],
                Vec::new(),
                Retry::Safe,
            )
            .await?;
        if !answer.status.is_success() && answer.status != StatusCode::NOT_FOUND {
            return Err(self.s3_error(&answer, Retry::Safe));
        }
        let answer = self
            .s3(
                ctx,
                Method::DELETE,
                &format!("/{bucket}"),
                &[],
                Vec::new(),
                Retry::Safe,
            )
            .await?;
        match answer.status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.s3_error(&answer, Retry::Safe)),
        }
    }

    async fn list_buckets(
        &self,
        ctx: &CallContext,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let answer = self
            .s3(ctx, Method::GET, "/", &[], Vec::new(), Retry::Safe)
            .await?;
        if !answer.status.is_success() {
            return Err(self.s3_error(&answer, Retry::Safe));
        }
        let names: Vec<String> = {
            let doc = xml::parse(&answer.body)?;
            xml::all(&doc, "Bucket")
                .filter_map(|b| xml::child(b, "Name"))
                .filter(|n| n.starts_with(&self.config.bucket_prefix))
                .map(str::to_owned)
                .collect()
        };
        let mut out = Vec::new();
        for name in names {
            let Some((broker_id, owner)) = self.bucket_owner(ctx, &name).await? else {
                continue;
            };
            if tenant.is_some_and(|t| owner.as_ref() != Some(t)) {
                continue;
            }
            out.push(MemberResource {
                resource_type: ResourceType::Bucket,
                member_resource_id: name,
                broker_id,
                tenant: owner,
                status: MemberResourceStatus::Active,
                detail: None,
            });
        }
        Ok(out)
    }

    // ---- discovery (for `alliance conformance`) ----

    /// Whether the EC2 API answers with these credentials.
    pub async fn ec2_health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        self.ec2(ctx, "DescribeAvailabilityZones", &[], Retry::Safe, MAX_BODY)
            .await
            .map(|_| ())
    }

    /// Whether the S3 API answers with these credentials.
    pub async fn s3_health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        let answer = self
            .s3(ctx, Method::GET, "/", &[], Vec::new(), Retry::Safe)
            .await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(self.s3_error(&answer, Retry::Safe))
        }
    }

    /// An available machine image (the first by id, for repeatable runs).
    pub async fn discover_image(&self, ctx: &CallContext) -> Result<Option<String>, AdapterError> {
        let params = [
            ("Filter.1.Name".to_owned(), "state".to_owned()),
            ("Filter.1.Value.1".to_owned(), "available".to_owned()),
        ];
        let body = self
            .ec2(
                ctx,
                "DescribeImages",
                &params,
                Retry::Safe,
                MAX_DISCOVERY_BODY,
            )
            .await?;
        let doc = xml::parse(&body)?;
        Ok(xml::all(&doc, "imageId")
            .filter_map(|n| n.text())
            .min()
            .map(str::to_owned))
    }

    /// A small instance type the member offers, from a list of common ones.
    pub async fn discover_size(&self, ctx: &CallContext) -> Result<Option<String>, AdapterError> {
        let wanted = ["t3.micro", "t2.micro", "t3.small", "m5.large"];
        let params: Vec<(String, String)> = wanted
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("InstanceType.{}", i + 1), (*t).to_owned()))
            .collect();
        let body = self
            .ec2(ctx, "DescribeInstanceTypes", &params, Retry::Safe, MAX_BODY)
            .await?;
        let doc = xml::parse(&body)?;
        let offered: BTreeSet<&str> = xml::all(&doc, "instanceType")
            .filter_map(|n| n.text())
            .collect();
        Ok(wanted
            .iter()
            .find(|t| offered.contains(*t))
            .map(|t| (*t).to_owned()))
    }
}

/// What an EC2 `Describe*` call lists.
#[derive(Debug, Clone, Copy)]
enum Described {
    Instances,
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

#[async_trait::async_trait]
impl MemberAdapter for Ec2Adapter {
    fn kind(&self) -> &'static str {
        "ec2"
    }

    async fn create(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<MemberResource, AdapterError> {
        ctx.check_deadline()?;
        match spec.resource_type {
            ResourceType::Instance => self.create_instance(ctx, spec).await,
            ResourceType::Volume => self.create_volume(ctx, spec).await,
            ResourceType::Bucket => self.create_bucket(ctx, spec).await,
        }
    }

    async fn get(
        &self,
        ctx: &CallContext,
        resource: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        ctx.check_deadline()?;
        match resource.resource_type {
            ResourceType::Instance => {
                self.get_described(ctx, Described::Instances, resource)
                    .await
            }
            ResourceType::Volume => self.get_described(ctx, Described::Volumes, resource).await,
            ResourceType::Bucket => self.get_bucket(ctx, resource).await,
        }
    }

    async fn delete(&self, ctx: &CallContext, resource: &ResourceRef) -> Result<(), AdapterError> {
        ctx.check_deadline()?;
        match resource.resource_type {
            ResourceType::Instance => self.delete_instance(ctx, resource).await,
            ResourceType::Volume => self.delete_volume(ctx, resource).await,
            ResourceType::Bucket => self.delete_bucket(ctx, resource).await,
        }
    }

    async fn list(
        &self,
        ctx: &CallContext,
        resource_type: ResourceType,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        ctx.check_deadline()?;
        let filter = match tenant {
            Some(t) => tag_filter(TAG_TENANT, t.as_str()),
            None => vec![
                ("Filter.1.Name".to_owned(), "tag-key".to_owned()),
                ("Filter.1.Value.1".to_owned(), TAG_BROKER_ID.to_owned()),
            ],
        };
        match resource_type {
            ResourceType::Instance => {
                self.describe(ctx, Described::Instances, &filter, false)
                    .await
            }
            ResourceType::Volume => self.describe(ctx, Described::Volumes, &filter, false).await,
            ResourceType::Bucket => self.list_buckets(ctx, tenant).await,
        }
    }

    async fn health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        ctx.check_deadline()?;
        let services = &self.mapping.services;
        if services.is_empty()
            || services.contains(&ResourceType::Instance)
            || services.contains(&ResourceType::Volume)
        {
            self.ec2_health(ctx).await?;
        }
        if services.contains(&ResourceType::Bucket) {
            self.s3_health(ctx).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn adapter(prefix: &str) -> Ec2Adapter {
        let mut config = Ec2Config::new("http://127.0.0.1:9", "eu-west-3");
        config.bucket_prefix = prefix.into();
        Ec2Adapter::new(
            "m",
            config,
            Signer::new("a".into(), "s".into(), None, "eu-west-3"),
            Mapping::default(),
        )
        .unwrap()
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        let a = adapter("alliance-");
        assert_eq!(
            a.bucket_name("bkt-0193ABCD").unwrap(),
            "alliance-bkt-0193abcd"
        );
        assert_eq!(
            a.bucket_name("conf_bucket.x").unwrap(),
            "alliance-conf-bucket-x"
        );
        assert!(a.bucket_name(&"x".repeat(60)).is_err());
        assert!(a.bucket_name("").is_err());
    }

    #[test]
    fn config_problems_name_the_key() {
        let mut c = Ec2Config::new("ftp://x", "eu west");
        c.bucket_prefix = "UPPER".into();
        let keys: Vec<_> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["endpoint", "region", "bucket_prefix"]);
        let missing = Ec2Adapter::from_config(
            "m",
            &Ec2Config::new("http://x", "r"),
            Mapping::default(),
            &|_| None,
        )
        .unwrap_err();
        assert!(missing.contains("AWS_ACCESS_KEY_ID"), "{missing}");
    }

    #[test]
    fn client_tokens_fit_ec2s_limit() {
        assert_eq!(client_token("ins-1"), "ins-1");
        assert_eq!(client_token(&"y".repeat(80)).len(), 64);
    }

    #[test]
    fn instances_and_volumes_are_read_from_describe_answers() {
        let doc = roxmltree::Document::parse(r#"<item><instanceId>i-1</instanceId><instanceState><code>16</code><name>running</name></instanceState><tagSet><item><key>alliance:broker-id</key><value>ins-1</value></item><item><key>alliance:tenant</key><value>acme</value></item></tagSet></item>"#).unwrap();
        let r = Ec2Adapter::instance_of(doc.root_element(), false).unwrap();
        assert_eq!(r.status, MemberResourceStatus::Active);
        assert_eq!(r.broker_id.as_deref(), Some("ins-1"));
        assert_eq!(r.tenant.as_ref().map(TenantId::as_str), Some("acme"));
        let gone = roxmltree::Document::parse("<item><instanceId>i-2</instanceId><instanceState><name>terminated</name></instanceState></item>").unwrap();
        assert!(Ec2Adapter::instance_of(gone.root_element(), false).is_none());
        let vol = roxmltree::Document::parse("<CreateVolumeResponse><volumeId>vol-1</volumeId><status>creating</status></CreateVolumeResponse>").unwrap();
        assert_eq!(
            Ec2Adapter::volume_of(vol.root_element()).unwrap().status,
            MemberResourceStatus::Provisioning
        );
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

    #[tokio::test]
    async fn an_instance_that_died_at_launch_is_reported_not_launched_again() {
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = runs.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |body: String| {
                if body.contains("Action=RunInstances") {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                async move {
                    "<DescribeInstancesResponse><reservationSet><item><instancesSet><item><instanceId>i-dead</instanceId><instanceState><name>terminated</name></instanceState><stateReason><message>Server.InsufficientInstanceCapacity</message></stateReason><tagSet><item><key>alliance:broker-id</key><value>ins-1</value></item></tagSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>"
                }
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
        let spec = ResourceSpec {
            broker_id: "ins-1".into(),
            resource_type: ResourceType::Instance,
            name: "web".into(),
            tenant: TenantId::parse("acme").unwrap(),
            jurisdiction: alliance_core::Jurisdiction::parse("FR").unwrap(),
            data_class: alliance_core::DataClassName::parse("standard").unwrap(),
            size: None,
            image: None,
            size_gb: None,
        };
        let found = a.create(&ctx, &spec).await.unwrap();
        assert_eq!(found.status, MemberResourceStatus::Error);
        assert_eq!(
            found.detail.as_deref(),
            Some("Server.InsufficientInstanceCapacity")
        );
        assert_eq!(
            runs.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "not launched again"
        );
        // Read by its id, the terminated instance is gone (a delete can finish).
        let reference = ResourceRef {
            resource_type: ResourceType::Instance,
            broker_id: "ins-1".into(),
            member_resource_id: Some("i-dead".into()),
        };
        assert!(a.get(&ctx, &reference).await.unwrap().is_none());
    }
}
