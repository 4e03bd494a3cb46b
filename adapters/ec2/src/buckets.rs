//! Buckets through S3 REST (path-style): the name from the broker id, `CreateBucket` with
//! the location constraint, the marker object that says whose a bucket is, tags where the
//! member supports them, `HeadBucket`, `DeleteBucket` and the listing of the broker's
//! buckets.
//!
//! Invariant: the bucket name (`<bucket_prefix><broker id>`, lowercased) is the
//! idempotency key; every broker bucket holds the marker object [`BUCKET_MARKER`] whose
//! metadata carries the broker id and tenant (on every S3 implementation, tagging or not);
//! the broker never empties a bucket: one still holding the tenant's objects is refused.

use alliance_adapter_api::{
    AdapterError, Buckets, CallContext, ErrorKind, ErrorSource, MemberResource, ResourceRef,
    ResourceSpec, Retry, Serves,
};
use alliance_core::TenantId;
use base64::Engine as _;
use md5::Digest as _;
use reqwest::{Method, StatusCode};

use crate::transport::{TAG_BROKER_ID, TAG_TENANT};
use crate::{xml, Ec2Adapter};

/// The marker object inside every broker bucket.
pub const BUCKET_MARKER: &str = ".alliance-broker";

impl Ec2Adapter {
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

    /// The bucket name for a broker id.
    pub(crate) fn bucket_name_of(&self, broker_id: &str) -> Result<String, AdapterError> {
        self.bucket_name(broker_id)
    }

    /// The bucket a reference names: its member name when known, else the broker id's.
    fn bucket_for(&self, r: &ResourceRef) -> Result<String, AdapterError> {
        match &r.member_resource_id {
            Some(name) => Ok(name.clone()),
            None => self.bucket_name(&r.broker_id),
        }
    }

    async fn bucket_owner(
        &self,
        ctx: &CallContext,
        bucket: &str,
    ) -> Result<Option<(Option<String>, Option<TenantId>)>, AdapterError> {
        let answer = self
            .s3_safe(ctx, Method::HEAD, &format!("/{bucket}/{BUCKET_MARKER}"))
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
}

#[async_trait::async_trait]
impl Serves<Buckets> for Ec2Adapter {
    /// A bucket by its member name when known, else by the broker id's name.
    async fn get_one(
        &self,
        ctx: &CallContext,
        r: &ResourceRef,
    ) -> Result<Option<MemberResource>, AdapterError> {
        let bucket = self.bucket_for(r)?;
        let answer = self
            .s3_safe(ctx, Method::HEAD, &format!("/{bucket}"))
            .await?;
        match answer.status {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.s3_error(&answer, Retry::Safe)),
        }
        let owner = self.bucket_owner(ctx, &bucket).await?;
        let broker_id = owner.as_ref().and_then(|(b, _)| b.clone());
        Ok(Some(MemberResource::bucket(
            bucket,
            broker_id.or_else(|| Some(r.broker_id.clone())),
            owner.and_then(|(_, t)| t),
        )))
    }

    /// Creates the broker id's bucket, its marker object and, where supported, its tags.
    async fn create_one(
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
        Ok(MemberResource::bucket(
            bucket,
            Some(spec.broker_id.clone()),
            Some(spec.tenant.clone()),
        ))
    }

    /// Deletes an empty bucket and its marker (one already gone is deleted).
    async fn delete_one(&self, ctx: &CallContext, r: &ResourceRef) -> Result<(), AdapterError> {
        let bucket = self.bucket_for(r)?;
        // A bucket still holding the tenant's objects is refused, never emptied here, and
        // keeps its marker (so that it stays listed as the tenant's).
        let listing = self
            .s3_safe(
                ctx,
                Method::GET,
                &format!("/{bucket}?list-type=2&max-keys=2"),
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
            .s3_safe(ctx, Method::DELETE, &format!("/{bucket}/{BUCKET_MARKER}"))
            .await?;
        if !answer.status.is_success() && answer.status != StatusCode::NOT_FOUND {
            return Err(self.s3_error(&answer, Retry::Safe));
        }
        let answer = self
            .s3_safe(ctx, Method::DELETE, &format!("/{bucket}"))
            .await?;
        match answer.status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.s3_error(&answer, Retry::Safe)),
        }
    }

    /// The broker's buckets (`tenant`'s when given): those with the prefix and a marker.
    async fn list_all(
        &self,
        ctx: &CallContext,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<MemberResource>, AdapterError> {
        let answer = self.s3_safe(ctx, Method::GET, "/").await?;
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
            out.push(MemberResource::bucket(name, broker_id, owner));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    use crate::Ec2Config;

    fn adapter(prefix: &str) -> Ec2Adapter {
        let mut config = Ec2Config::new("http://127.0.0.1:9", "eu-west-3");
        config.bucket_prefix = prefix.into();
        Ec2Adapter::for_test(config)
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
}
