//! What makes OpenStack resources usable: a Nova keypair under the broker's tenant-scoped
//! name, user data, the server's security group (`groups.rs`), addresses
//! and power state read from the server, the server actions (`os-start`, `os-stop`,
//! `reboot`, `resize` then `confirmResize`), volume attachments through Nova
//! (`os-volume_attachments`), and Swift TempURLs (the key set on the container by the
//! broker, HMAC-SHA256).
//!
//! Invariant: each step reads the member's state first and does only what is missing (an
//! existing keypair, group or rule is adopted; starting an ACTIVE server, stopping a
//! SHUTOFF one or attaching an attached volume changes nothing; a resize awaiting
//! confirmation is confirmed), so a call repeated after a crash or a timeout has one effect.

use std::time::Duration;

use alliance_adapter_api::{
    AdapterError, Addresses, CallContext, ErrorKind, ErrorSource, InstanceAction, Instances,
    MemberResource, ObjectUrlRequest, Observed, PowerState, ResourceRef, ResourceSpec, Retry,
    Serves, SignedUrl, Volumes,
};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::transport::{path_segment, service_error, COMPUTE, OBJECT};
use crate::OpenStackAdapter;

/// The header holding a container's TempURL key.
const TEMP_URL_KEY: &str = "x-container-meta-temp-url-key";
/// A server's addresses and power state from its Nova document.
pub(crate) fn server_observed(v: &Value) -> Observed {
    let mut addresses = Addresses::default();
    if let Some(networks) = v.get("addresses").and_then(Value::as_object) {
        for entries in networks.values().filter_map(Value::as_array) {
            for entry in entries {
                let Some(addr) = entry.get("addr").and_then(Value::as_str) else {
                    continue;
                };
                match entry.get("OS-EXT-IPS:type").and_then(Value::as_str) {
                    Some("floating") => addresses.public.push(addr.to_owned()),
                    _ => addresses.private.push(addr.to_owned()),
                }
            }
        }
    }
    let busy = v.get("OS-EXT-STS:task_state").is_some_and(|t| !t.is_null());
    let power = match v.get("status").and_then(Value::as_str) {
        _ if busy => PowerState::Unknown,
        Some("ACTIVE") => PowerState::Running,
        Some("SHUTOFF") => PowerState::Stopped,
        _ => PowerState::Unknown,
    };
    Observed {
        addresses: Some(addresses),
        power_state: Some(power),
        ..Observed::default()
    }
}

/// A volume's attachment from its Cinder document.
pub(crate) fn volume_observed(v: &Value) -> Observed {
    let attachment = v
        .get("attachments")
        .and_then(Value::as_array)
        .and_then(|a| a.first());
    let text = |k: &str| {
        attachment
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Observed {
        attached_to: text("server_id"),
        device: text("device"),
        ..Observed::default()
    }
}

/// Whether an answer says the thing exists already (Nova's and Neutron's 409).
fn conflict(answer: &alliance_adapter_http::Answer) -> bool {
    answer.status == StatusCode::CONFLICT
}

fn missing(what: &str, id: &str) -> AdapterError {
    AdapterError::new(
        ErrorKind::NotFound,
        ErrorSource::Member,
        Retry::Never,
        format!("the member has no {what} {id}"),
    )
}

impl OpenStackAdapter {
    /// What a server is created with for the tenant to reach it: its keypair (imported
    /// once), user data and its own security group.
    pub(crate) async fn access_body(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<Map<String, Value>, AdapterError> {
        let mut body = Map::new();
        let Some(access) = &spec.access else {
            return Ok(body);
        };
        if let Some(key) = &access.ssh_key {
            let answer = self
                .call(
                    ctx,
                    COMPUTE,
                    Method::POST,
                    "/os-keypairs",
                    &Self::compute_headers(),
                    Some(&json!({"keypair": {"name": key.member_name, "public_key": key.public_key}})),
                )
                .await?;
            if !answer.status.is_success() && !conflict(&answer) {
                return Err(service_error(&self.member, &answer, Retry::Safe));
            }
            body.insert("key_name".into(), json!(key.member_name));
        }
        if let Some(data) = &access.user_data {
            body.insert("user_data".into(), json!(data.0));
        }
        // A group applies to ports: a server without a network (`network = "none"`) has
        // none to protect, so none is made for it.
        if !access.ingress.is_empty() && self.config.network.as_deref() != Some("none") {
            let group = self.security_group(ctx, spec, access).await?;
            body.insert("security_groups".into(), json!([{ "name": group }]));
        }
        Ok(body)
    }

    /// The server's Nova document now.
    async fn server_document(
        &self,
        ctx: &CallContext,
        instance: &ResourceRef,
    ) -> Result<(String, Value), AdapterError> {
        let found = Serves::<Instances>::get_one(self, ctx, instance)
            .await?
            .ok_or_else(|| missing("server", &instance.broker_id))?;
        let path = format!("/servers/{}", path_segment(&found.member_resource_id)?);
        let answer = self
            .call(
                ctx,
                COMPUTE,
                Method::GET,
                &path,
                &Self::compute_headers(),
                None,
            )
            .await?;
        let doc = self.json(answer, Retry::Safe).await?;
        Ok((
            found.member_resource_id,
            doc.get("server").cloned().unwrap_or(Value::Null),
        ))
    }

    async fn server_action(
        &self,
        ctx: &CallContext,
        id: &str,
        body: Value,
    ) -> Result<(), AdapterError> {
        let answer = self
            .call(
                ctx,
                COMPUTE,
                Method::POST,
                &format!("/servers/{}/action", path_segment(id)?),
                &Self::compute_headers(),
                Some(&body),
            )
            .await?;
        // 409: the server is already in the asked state (or busy: read again next time).
        if answer.status.is_success() || answer.status == StatusCode::CONFLICT {
            Ok(())
        } else {
            Err(service_error(&self.member, &answer, Retry::Safe))
        }
    }

    /// An action on a server; see the module's invariant.
    pub(crate) async fn act(
        &self,
        ctx: &CallContext,
        instance: &ResourceRef,
        action: &InstanceAction,
    ) -> Result<MemberResource, AdapterError> {
        let (id, doc) = self.server_document(ctx, instance).await?;
        let status = doc.get("status").and_then(Value::as_str).unwrap_or("");
        match action {
            InstanceAction::Start if status == "SHUTOFF" => {
                self.server_action(ctx, &id, json!({"os-start": null}))
                    .await?;
            }
            InstanceAction::Stop if status == "ACTIVE" => {
                self.server_action(ctx, &id, json!({"os-stop": null}))
                    .await?;
            }
            InstanceAction::Reboot if status == "ACTIVE" => {
                self.server_action(ctx, &id, json!({"reboot": {"type": "SOFT"}}))
                    .await?;
            }
            InstanceAction::Reboot if status == "SHUTOFF" => {
                return Err(AdapterError::invalid("a stopped server cannot reboot"));
            }
            InstanceAction::Resize { size } => {
                return self.resize(ctx, instance, &id, status, size).await
            }
            _ => {}
        }
        self.server_now(ctx, instance).await
    }

    async fn server_now(
        &self,
        ctx: &CallContext,
        instance: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        Serves::<Instances>::get_one(self, ctx, instance)
            .await?
            .ok_or_else(|| missing("server", &instance.broker_id))
    }

    /// Resizes, waits for `VERIFY_RESIZE` within the call's deadline, confirms. A call cut
    /// short by its deadline is transient, and the next one goes on from the server's state.
    async fn resize(
        &self,
        ctx: &CallContext,
        instance: &ResourceRef,
        id: &str,
        status: &str,
        size: &alliance_core::SizeName,
    ) -> Result<MemberResource, AdapterError> {
        let flavour = self
            .mapping
            .sizes
            .get(size.as_str())
            .cloned()
            .ok_or_else(|| AdapterError::invalid(format!("the member maps no size `{size}`")))?;
        if status != "VERIFY_RESIZE" {
            if self.flavour_of(ctx, id).await? == Some(flavour.clone()) {
                let mut now = self.server_now(ctx, instance).await?;
                now.observed.size = Some(size.clone());
                return Ok(now);
            }
            if status == "RESIZE" {
                return Err(AdapterError::unavailable("the server is resizing")
                    .with_retry_after(Duration::from_secs(1)));
            }
            self.server_action(ctx, id, json!({"resize": {"flavorRef": flavour}}))
                .await?;
            let mut wait = Duration::from_millis(200);
            loop {
                let (_, doc) = self.server_document(ctx, instance).await?;
                match doc.get("status").and_then(Value::as_str) {
                    Some("VERIFY_RESIZE") => break,
                    Some("ERROR") => {
                        return Err(AdapterError::invalid("the member failed the resize"))
                    }
                    _ => {}
                }
                if ctx.remaining() <= wait + Duration::from_millis(500) {
                    return Err(AdapterError::unavailable(
                        "the resize is under way; it is confirmed on the next attempt",
                    )
                    .with_retry_after(Duration::from_secs(1)));
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
        self.server_action(ctx, id, json!({"confirmResize": null}))
            .await?;
        let mut now = self.server_now(ctx, instance).await?;
        now.observed.size = Some(size.clone());
        Ok(now)
    }

    /// The id of the server's flavour, when Nova says (`flavor.id` before 2.47; after, the
    /// flavour is matched by its name).
    async fn flavour_of(
        &self,
        ctx: &CallContext,
        id: &str,
    ) -> Result<Option<String>, AdapterError> {
        let answer = self
            .call(
                ctx,
                COMPUTE,
                Method::GET,
                &format!("/servers/{}", path_segment(id)?),
                &Self::compute_headers(),
                None,
            )
            .await?;
        let doc = self.json(answer, Retry::Safe).await?;
        let flavor = doc
            .pointer("/server/flavor")
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(id) = flavor.get("id").and_then(Value::as_str) {
            return Ok(Some(id.to_owned()));
        }
        let Some(name) = flavor.get("original_name").and_then(Value::as_str) else {
            return Ok(None);
        };
        let answer = self
            .call(
                ctx,
                COMPUTE,
                Method::GET,
                "/flavors",
                &Self::compute_headers(),
                None,
            )
            .await?;
        let list = self.json(answer, Retry::Safe).await?;
        Ok(list
            .get("flavors")
            .and_then(Value::as_array)
            .and_then(|f| {
                f.iter()
                    .find(|f| f.get("name").and_then(Value::as_str) == Some(name))
            })
            .and_then(|f| f.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    async fn volume_now(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        Serves::<Volumes>::get_one(self, ctx, volume)
            .await?
            .ok_or_else(|| missing("volume", &volume.broker_id))
    }

    /// Attaches a volume to a server through Nova, or detaches it.
    pub(crate) async fn attachment(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
        instance: Option<&ResourceRef>,
    ) -> Result<MemberResource, AdapterError> {
        let found = self.volume_now(ctx, volume).await?;
        let current = found.observed.attached_to.clone();
        let vol = found.member_resource_id.clone();
        let (method, server, body) = match (instance, &current) {
            (None, None) => return Ok(found),
            (None, Some(server)) => (Method::DELETE, server.clone(), None),
            (Some(instance), _) => {
                let server = self.server_now(ctx, instance).await?.member_resource_id;
                match &current {
                    Some(now) if now == &server => return Ok(found),
                    Some(other) => {
                        return Err(AdapterError::invalid(format!(
                            "the volume is attached to {other}; detach it first"
                        )))
                    }
                    None => {}
                }
                // Nova records an attachment at once, Cinder only once it is done: an
                // attachment under way is not asked for twice.
                let listed = self
                    .call(
                        ctx,
                        COMPUTE,
                        Method::GET,
                        &format!("/servers/{}/os-volume_attachments", path_segment(&server)?),
                        &Self::compute_headers(),
                        None,
                    )
                    .await?;
                let listed = self.json(listed, Retry::Safe).await?;
                let under_way = listed
                    .get("volumeAttachments")
                    .and_then(Value::as_array)
                    .is_some_and(|a| {
                        a.iter().any(|x| {
                            x.get("volumeId").and_then(Value::as_str) == Some(vol.as_str())
                        })
                    });
                if under_way {
                    return Ok(found);
                }
                (
                    Method::POST,
                    server,
                    Some(json!({"volumeAttachment": {"volumeId": vol}})),
                )
            }
        };
        let path = match method {
            Method::DELETE => format!(
                "/servers/{}/os-volume_attachments/{}",
                path_segment(&server)?,
                path_segment(&vol)?
            ),
            _ => format!("/servers/{}/os-volume_attachments", path_segment(&server)?),
        };
        let answer = self
            .call(
                ctx,
                COMPUTE,
                method,
                &path,
                &Self::compute_headers(),
                body.as_ref(),
            )
            .await?;
        if !answer.status.is_success() && answer.status != StatusCode::NOT_FOUND {
            return Err(service_error(&self.member, &answer, Retry::Safe));
        }
        self.volume_now(ctx, volume).await
    }

    /// A Swift TempURL (HMAC-SHA256) for one object of a container; the container's key is
    /// set by the broker the first time.
    pub(crate) async fn temp_url(
        &self,
        ctx: &CallContext,
        bucket: &ResourceRef,
        request: &ObjectUrlRequest,
    ) -> Result<SignedUrl, AdapterError> {
        let container = match &bucket.member_resource_id {
            Some(name) => name.clone(),
            None => format!("alliance-{}", bucket.broker_id),
        };
        let container_path = format!("/{}", path_segment(&container)?);
        let mut key = self.temp_url_key(ctx, &container_path).await?;
        if key.is_none() {
            let fresh = hex::encode(rand::random::<[u8; 32]>());
            let answer = self
                .call(
                    ctx,
                    OBJECT,
                    Method::POST,
                    &container_path,
                    &[(TEMP_URL_KEY, fresh.as_str())],
                    None,
                )
                .await?;
            if !answer.status.is_success() {
                return Err(service_error(&self.member, &answer, Retry::Safe));
            }
            // Read back what is stored: a concurrent first signing may have set its own.
            key = self.temp_url_key(ctx, &container_path).await?;
        }
        let key =
            key.ok_or_else(|| AdapterError::unavailable("the container keeps no TempURL key"))?;
        let (_, base) = self.endpoint(ctx, OBJECT).await?;
        let object = alliance_adapter_api::encode_object_key(&request.object);
        let url = format!("{base}{container_path}/{object}");
        let path = url::Url::parse(&url)
            .map_err(|e| {
                AdapterError::invalid(format!("the object-store endpoint is not a URL: {e}"))
            })?
            .path()
            .to_owned();
        #[expect(
            clippy::disallowed_methods,
            reason = "a TempURL expires by the wall clock Swift checks it against"
        )]
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let expires = now + request.expires_in.as_secs();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(format!("{}\n{expires}\n{path}", request.method.as_str()).as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        Ok(SignedUrl {
            url: format!("{url}?temp_url_sig={signature}&temp_url_expires={expires}"),
            expires_at_ms: i64::try_from(expires.saturating_mul(1000)).unwrap_or(i64::MAX),
        })
    }

    async fn temp_url_key(
        &self,
        ctx: &CallContext,
        container_path: &str,
    ) -> Result<Option<String>, AdapterError> {
        let answer = self
            .call(ctx, OBJECT, Method::HEAD, container_path, &[], None)
            .await?;
        if !answer.status.is_success() {
            return Err(service_error(&self.member, &answer, Retry::Safe));
        }
        Ok(answer
            .header(TEMP_URL_KEY)
            .filter(|k| !k.is_empty())
            .map(str::to_owned))
    }
}
