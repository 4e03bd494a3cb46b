//! Talking to the member: one signed EC2 Query call and one signed S3 REST call over the
//! member's pooled client, failed answers mapped to the broker's errors once (`xml.rs`),
//! and the tags that mark the broker's resources.
//!
//! Invariant: every request is signed with SigV4 (`sign.rs`) and sent through
//! `MemberHttp` with the call's deadline.

use alliance_adapter_api::{AdapterError, CallContext, Retry};
use alliance_adapter_http::{Answer, MAX_BODY};
use reqwest::Method;

use crate::{xml, Ec2Adapter, Service};

/// The EC2 API version the adapter speaks.
const EC2_VERSION: &str = "2016-11-15";
/// Tag holding the broker's resource id.
pub const TAG_BROKER_ID: &str = "alliance:broker-id";
/// Tag holding the owning tenant.
pub const TAG_TENANT: &str = "alliance:tenant";

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

    /// An S3 REST call without headers or body that is safe to repeat (reads, deletes).
    pub(crate) async fn s3_safe(
        &self,
        ctx: &CallContext,
        method: Method,
        path: &str,
    ) -> Result<Answer, AdapterError> {
        self.s3(ctx, method, path, &[], Vec::new(), Retry::Safe)
            .await
    }

    /// A failed S3 answer as the broker's error.
    pub(crate) fn s3_error(&self, answer: &Answer, retry: Retry) -> AdapterError {
        self.answer_error(answer, retry)
    }
}
