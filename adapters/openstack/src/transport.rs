//! Talking to the catalogue services of one member: the endpoint chosen from Keystone's
//! catalogue, one authenticated call (the token renewed once on a 401), failed answers
//! classified once ([`service_error`]), and Nova and Cinder lists followed page by page
//! (what else servers and volumes share is in `kept.rs`).
//!
//! Invariant: every request to a service goes through `call`, so it carries the current
//! token and is sent again at most once, after one renewal; a member id enters a URL only
//! through [`path_segment`].

use std::sync::Arc;

use alliance_adapter_api::{
    AdapterError, CallContext, ErrorKind, ErrorSource, MemberResource, Retry,
};
use alliance_adapter_http::{bad_response, Answer, MAX_BODY};
use alliance_core::{ResourceType, TenantId};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::keystone::Session;
use crate::OpenStackAdapter;

/// Metadata key holding the broker's resource id.
pub const META_BROKER_ID: &str = "alliance_broker_id";
/// Metadata key holding the owning tenant.
pub const META_TENANT: &str = "alliance_tenant";

/// Items asked for per page of a Nova, Cinder or Swift list.
pub(crate) const PAGE_SIZE: usize = 1000;
/// Most items the adapter reads from one list (a bound on an untrusted member).
pub(crate) const MAX_LISTED: usize = 200_000;

/// Catalogue types of the compute service (Nova).
pub(crate) const COMPUTE: &[&str] = &["compute"];
/// Catalogue types of the block-storage service (Cinder v3).
pub(crate) const VOLUME: &[&str] = &["block-storage", "volumev3"];
/// Catalogue types of the object store (Swift).
pub(crate) const OBJECT: &[&str] = &["object-store"];
/// Catalogue types of the image service (Glance), for discovery.
pub(crate) const IMAGE: &[&str] = &["image"];
/// Catalogue types of the network service (Neutron), for discovery.
pub(crate) const NETWORK: &[&str] = &["network"];

/// The catalogue types of the service that keeps `service`.
pub(crate) fn service_types(service: ResourceType) -> &'static [&'static str] {
    match service {
        ResourceType::Instance => COMPUTE,
        ResourceType::Volume => VOLUME,
        ResourceType::Bucket => OBJECT,
    }
}

/// Whether a listed resource is the broker's, and `tenant`'s when one is given.
pub(crate) fn is_listed(resource: &MemberResource, tenant: Option<&TenantId>) -> bool {
    resource.broker_id.is_some() && tenant.is_none_or(|t| resource.tenant.as_ref() == Some(t))
}

/// A failed service answer, classified (the Nova, Cinder and Swift API references).
pub(crate) fn service_error(member: &str, answer: &Answer, retry: Retry) -> AdapterError {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    // Nova and Cinder wrap the fault: {"forbidden": {"message": ..}}, {"overLimit": {..}}.
    let message = body
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|f| f.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&answer.body)
                .chars()
                .take(200)
                .collect()
        });
    let quota = message.to_ascii_lowercase().contains("quota");
    let (kind, retry) = match answer.status {
        StatusCode::UNAUTHORIZED => (ErrorKind::AuthFailed, Retry::Never),
        StatusCode::FORBIDDEN if quota => (ErrorKind::OverQuota, Retry::Never),
        StatusCode::FORBIDDEN => (ErrorKind::AuthFailed, Retry::Never),
        StatusCode::NOT_FOUND => (ErrorKind::NotFound, Retry::Never),
        // Cinder's overLimit (and Nova's, before microversion 2.x rate limits left): over quota.
        StatusCode::PAYLOAD_TOO_LARGE if quota || body.get("overLimit").is_some() => {
            (ErrorKind::OverQuota, Retry::Never)
        }
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => {
            (ErrorKind::RateLimited, retry)
        }
        s if s.is_server_error() => (ErrorKind::Unavailable, retry),
        _ => (ErrorKind::Invalid, Retry::Never),
    };
    AdapterError::from_member(
        kind,
        retry,
        answer.retry_after(),
        format!("member {member} answered {}: {message}", answer.status),
    )
}

/// A create the member accepted but whose answer cannot be read: transient, so that the
/// next attempt adopts the resource by its tag or metadata instead of failing.
pub(crate) fn unreadable_create(service: &str) -> AdapterError {
    AdapterError::new(
        ErrorKind::Unavailable,
        ErrorSource::Member,
        Retry::WithIdempotencyKey,
        format!("{service} accepted a create with an answer the broker cannot read; the next attempt looks for the resource"),
    )
}

/// A member id used in a URL path: refused when it could escape its segment.
pub(crate) fn path_segment(id: &str) -> Result<&str, AdapterError> {
    if id.is_empty()
        || id.contains('/')
        || id.contains('?')
        || id.contains('#')
        || id == "."
        || id == ".."
    {
        return Err(bad_response(
            Retry::Never,
            format!("`{id}` is not a resource id"),
        ));
    }
    Ok(id)
}

impl OpenStackAdapter {
    /// The session and the URL of the first of `types` in the catalogue, for the configured
    /// region and interface.
    pub(crate) async fn endpoint(
        &self,
        ctx: &CallContext,
        types: &[&str],
    ) -> Result<(Arc<Session>, String), AdapterError> {
        let scope = self.scope(ctx).await?;
        let session = self.keystone.session_in(&self.http, ctx, &scope).await?;
        if let Some(allowed) = &self.allowed {
            // Literal addresses never reach the connection guard's resolver: judge them here.
            for (service, url) in session.endpoints_in(&self.config.region, &self.config.interface)
            {
                allowed
                    .check_literal(url)
                    .map_err(|why| self.catalogue_refused(service, &why))?;
            }
        }
        let url = session
            .endpoint(types, &self.config.region, &self.config.interface)
            .ok_or_else(|| {
                AdapterError::new(
                    ErrorKind::Invalid,
                    ErrorSource::Member,
                    Retry::Never,
                    format!(
                        "the catalogue of member {} offers no {} endpoint in region {} ({})",
                        self.member, types[0], self.config.region, self.config.interface
                    ),
                )
            })?;
        Ok((session, url))
    }

    /// Checks every endpoint that Keystone's catalogue names for the configured region and
    /// interface against the adapter's restriction, resolving host names (what a partner's
    /// conformance run does first); the reason names the service and its endpoint.
    pub async fn check_catalogue(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        let session = self.keystone.session(&self.http, ctx).await?;
        for (service, url) in session.endpoints_in(&self.config.region, &self.config.interface) {
            allowed
                .check_url(url)
                .await
                .map_err(|why| self.catalogue_refused(service, &why))?;
        }
        Ok(())
    }

    fn catalogue_refused(&self, service: &str, why: &str) -> AdapterError {
        AdapterError::new(
            ErrorKind::Invalid,
            ErrorSource::Member,
            Retry::Never,
            format!(
                "the Keystone catalogue of member {} points its {service} service outside the allowed member networks: {why}",
                self.member
            ),
        )
    }

    /// One call to a catalogue service; renews the token once on a 401.
    pub(crate) async fn call(
        &self,
        ctx: &CallContext,
        types: &[&str],
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, AdapterError> {
        // Reads and deletes may be repeated; creates are made safe by the search first.
        let retry = if method == Method::POST || method == Method::PUT {
            Retry::WithIdempotencyKey
        } else {
            Retry::Safe
        };
        for attempt in 0..2 {
            let (session, base) = self.endpoint(ctx, types).await?;
            let mut request = self
                .http
                .request(method.clone(), &format!("{base}{path}"))
                .header("x-auth-token", &session.token)
                .header("accept", "application/json");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let answer = self.http.send(ctx, request, retry, MAX_BODY).await?;
            if answer.status == StatusCode::UNAUTHORIZED && attempt == 0 {
                // The token was revoked or expired early: authenticate again, once.
                self.keystone.forget(&self.scope(ctx).await?).await;
                continue;
            }
            return Ok(answer);
        }
        Err(AdapterError::new(
            ErrorKind::AuthFailed,
            ErrorSource::Member,
            Retry::Never,
            format!("member {} refuses a fresh token", self.member),
        ))
    }

    /// DELETEs `path` at a catalogue service; one the member no longer has is deleted, a
    /// refusal is the member's own error (Swift's 409 for a container holding objects).
    pub(crate) async fn remove(
        &self,
        ctx: &CallContext,
        types: &[&str],
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(), AdapterError> {
        let answer = self
            .call(ctx, types, Method::DELETE, path, headers, None)
            .await?;
        match answer.status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(service_error(&self.member, &answer, Retry::Safe)),
        }
    }

    /// The JSON body of a successful answer; a failed one as its classified error.
    pub(crate) async fn json(&self, answer: Answer, retry: Retry) -> Result<Value, AdapterError> {
        if !answer.status.is_success() {
            return Err(service_error(&self.member, &answer, retry));
        }
        serde_json::from_slice(&answer.body).map_err(|e| {
            bad_response(
                retry,
                format!("member {} answered no JSON: {e}", self.member),
            )
        })
    }

    /// Every item of a Nova or Cinder list, page by page (`limit`, and `marker` = the last
    /// id of the previous page), up to `MAX_LISTED` items. A marker deleted meanwhile
    /// (Nova answers 400 "marker not found" for it, Cinder 404) is dropped and the listing goes on from the item
    /// before it, or from the start, each item kept once.
    pub(crate) async fn paged(
        &self,
        ctx: &CallContext,
        types: &[&str],
        path: &str,
        filter: (&str, &str),
        headers: &[(&str, &str)],
        key: &str,
    ) -> Result<Vec<Value>, AdapterError> {
        let mut out: Vec<Value> = Vec::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut marker: Option<String> = None;
        let id_of = |v: &Value| v.get("id").and_then(Value::as_str).map(str::to_owned);
        loop {
            let query = {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                q.append_pair(filter.0, filter.1);
                q.append_pair("limit", &self.page_size.to_string());
                if let Some(m) = &marker {
                    q.append_pair("marker", m);
                }
                q.finish()
            };
            let answer = self
                .call(
                    ctx,
                    types,
                    Method::GET,
                    &format!("{path}?{query}"),
                    headers,
                    None,
                )
                .await?;
            // Nova answers a marker it no longer has with 400 "marker ... not found", Cinder
            // with 404 (or 400 as well): either way the listing goes on without it.
            let marker_gone = answer.status == StatusCode::NOT_FOUND
                || (answer.status == StatusCode::BAD_REQUEST
                    && String::from_utf8_lossy(&answer.body)
                        .to_ascii_lowercase()
                        .contains("marker"));
            if marker_gone {
                if let Some(gone) = marker.take() {
                    out.retain(|v| id_of(v).as_deref() != Some(gone.as_str()));
                    marker = out.last().and_then(id_of);
                    continue;
                }
            }
            let body = self.json(answer, Retry::Safe).await?;
            let page = match body.get(key) {
                Some(Value::Array(items)) => items.clone(),
                _ => {
                    return Err(bad_response(
                        Retry::Safe,
                        format!("the member's {key} list is not a list"),
                    ))
                }
            };
            // Until an empty page: a member may cap pages below the limit asked for.
            let full = !page.is_empty();
            let next = page.last().and_then(id_of);
            out.extend(
                page.into_iter()
                    .filter(|v| id_of(v).is_none_or(|id| seen.insert(id))),
            );
            if !full || next.is_none() || next == marker || out.len() >= MAX_LISTED {
                return Ok(out);
            }
            marker = next;
        }
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn answer(status: u16, body: &str, retry_after: Option<&str>) -> Answer {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(r) = retry_after {
            headers.insert(reqwest::header::RETRY_AFTER, r.parse().unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn nova_and_cinder_faults_map_to_the_brokers_kinds() {
        let e = service_error(
            "m",
            &answer(
                403,
                r#"{"forbidden": {"code": 403, "message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"}}"#,
                None,
            ),
            Retry::WithIdempotencyKey,
        );
        assert_eq!((e.kind, e.retry), (ErrorKind::OverQuota, Retry::Never));
        let e = service_error(
            "m",
            &answer(
                403,
                r#"{"forbidden": {"code": 403, "message": "Policy doesn't allow os_compute_api:servers:create"}}"#,
                None,
            ),
            Retry::Safe,
        );
        assert_eq!(e.kind, ErrorKind::AuthFailed);
        let e = service_error(
            "m",
            &answer(
                413,
                r#"{"overLimit": {"code": 413, "message": "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota.", "retryAfter": "30"}}"#,
                Some("30"),
            ),
            Retry::WithIdempotencyKey,
        );
        assert_eq!(
            (e.kind, e.retry_after),
            (
                ErrorKind::OverQuota,
                Some(std::time::Duration::from_secs(30))
            )
        );
        let e = service_error("m", &answer(429, "", Some("5")), Retry::Safe);
        assert_eq!((e.kind, e.retry), (ErrorKind::RateLimited, Retry::Safe));
        let e = service_error("m", &answer(503, "<html>", None), Retry::Safe);
        assert_eq!(e.kind, ErrorKind::Unavailable);
        let e = service_error(
            "m",
            &answer(
                400,
                r#"{"badRequest": {"message": "Invalid flavorRef"}}"#,
                None,
            ),
            Retry::Safe,
        );
        assert_eq!(
            (e.kind, e.message.contains("Invalid flavorRef")),
            (ErrorKind::Invalid, true)
        );
    }

    #[test]
    fn member_ids_that_could_escape_their_segment_are_refused() {
        assert!(path_segment("../x").is_err());
    }
}
