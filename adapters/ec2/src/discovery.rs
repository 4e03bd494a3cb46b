//! Probes for `alliance conformance` and for health: whether the EC2 and S3 APIs answer
//! with these credentials, an available machine image and a small instance type.
//!
//! Invariant: every probe only reads (`Describe*`, `ListBuckets`), and the image list, the
//! one large answer, is read up to `MAX_DISCOVERY_BODY` only.

use std::collections::BTreeSet;

use alliance_adapter_api::{AdapterError, CallContext, Retry};
use alliance_adapter_http::MAX_BODY;
use reqwest::Method;

use crate::{xml, Ec2Adapter};

/// Largest image list read during discovery.
const MAX_DISCOVERY_BODY: usize = 32 * 1024 * 1024;

impl Ec2Adapter {
    /// Whether the EC2 API answers with these credentials.
    pub async fn ec2_health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        self.ec2(ctx, "DescribeAvailabilityZones", &[], Retry::Safe, MAX_BODY)
            .await
            .map(|_| ())
    }

    /// Whether the S3 API answers with these credentials.
    pub async fn s3_health(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        let answer = self.s3_safe(ctx, Method::GET, "/").await?;
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
