//! What makes EC2 and S3 resources usable: the key pair (`ImportKeyPair` under the
//! broker's tenant-scoped name), user data, a security group per instance with its ingress
//! rules, addresses and power state read from `DescribeInstances`, the actions
//! (`Start/Stop/RebootInstances`, `ModifyInstanceAttribute` for a resize, stopping first as
//! EC2 requires), `AttachVolume`/`DetachVolume`, and SigV4 presigned S3 URLs.
//!
//! Invariant: every preparation is idempotent (a key pair, group or rule that exists is
//! adopted, never duplicated), so a create retried after a crash launches one instance
//! with one group; an action repeated finds the instance already as asked.

use std::time::Duration;

use alliance_adapter_api::{
    AdapterError, Addresses, CallContext, ErrorKind, InstanceAccess, InstanceAction, Instances,
    MemberResource, ObjectUrlRequest, Observed, PowerState, Protocol, ResourceRef, ResourceSpec,
    Retry, Serves, SignedUrl, Volumes,
};
use alliance_adapter_http::MAX_BODY;

use crate::described::Params;
use crate::{xml, Ec2Adapter};

/// Whether an error is EC2 saying the thing exists already (`*.Duplicate`).
/// The name of the group made for `broker_id`'s instance.
fn group_name(broker_id: &str) -> String {
    format!("alliance-{broker_id}")
}

fn duplicate(e: &AdapterError) -> bool {
    e.message.contains(".Duplicate")
}

/// The observed state of an instance `item`: addresses and power state.
pub(crate) fn instance_observed(node: roxmltree::Node<'_, '_>) -> Observed {
    let state = xml::child_node(node, "instanceState").and_then(|s| xml::child(s, "name"));
    let private = xml::child(node, "privateIpAddress").map(str::to_owned);
    let public = xml::child(node, "ipAddress").map(str::to_owned);
    Observed {
        addresses: Some(Addresses {
            private: private.into_iter().collect(),
            public: public.into_iter().collect(),
        }),
        power_state: Some(match state {
            Some("running") => PowerState::Running,
            Some("stopped") => PowerState::Stopped,
            _ => PowerState::Unknown,
        }),
        ..Observed::default()
    }
}

/// The observed attachment of a volume `item`.
pub(crate) fn volume_observed(node: roxmltree::Node<'_, '_>) -> Observed {
    let attachment = xml::items(node, "attachmentSet").find(|a| {
        matches!(
            xml::child(*a, "status"),
            Some("attached") | Some("attaching")
        )
    });
    Observed {
        attached_to: attachment.and_then(|a| xml::child(a, "instanceId").map(str::to_owned)),
        device: attachment.and_then(|a| xml::child(a, "device").map(str::to_owned)),
        ..Observed::default()
    }
}
impl Ec2Adapter {
    /// `RunInstances` parameters for how the tenant reaches the instance: its key pair
    /// (imported once), user data, and its own security group with the ingress rules.
    pub(crate) async fn access_params(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
    ) -> Result<Params, AdapterError> {
        let Some(access) = &spec.access else {
            return Ok(Vec::new());
        };
        let mut params = Vec::new();
        if let Some(key) = &access.ssh_key {
            self.import_key(ctx, &key.member_name, &key.public_key)
                .await?;
            params.push(("KeyName".to_owned(), key.member_name.clone()));
        }
        if let Some(data) = &access.user_data {
            // The Query API takes user data base64, as the tenant sent it.
            params.push(("UserData".to_owned(), data.0.clone()));
        }
        let group = self.security_group(ctx, spec, access).await?;
        // One network interface says whether the instance gets a public address (a default
        // subnet would give one whatever was asked); the subnet and the group go on it,
        // since EC2 refuses them beside a network interface.
        params.push(("NetworkInterface.1.DeviceIndex".to_owned(), "0".to_owned()));
        params.push((
            "NetworkInterface.1.AssociatePublicIpAddress".to_owned(),
            access.public_ip.to_string(),
        ));
        params.push(("NetworkInterface.1.SecurityGroupId.1".to_owned(), group));
        Ok(params)
    }

    /// Moves an instance-level `SubnetId` onto the network interface when there is one.
    pub(crate) fn subnet_on_interface(params: &mut Params) {
        if params
            .iter()
            .any(|(k, _)| k.starts_with("NetworkInterface.1."))
        {
            for (key, _) in params.iter_mut() {
                if key == "SubnetId" {
                    *key = "NetworkInterface.1.SubnetId".to_owned();
                }
            }
        }
    }

    async fn import_key(
        &self,
        ctx: &CallContext,
        name: &str,
        public_key: &str,
    ) -> Result<(), AdapterError> {
        use base64::Engine as _;
        let params = vec![
            ("KeyName".to_owned(), name.to_owned()),
            (
                "PublicKeyMaterial".to_owned(),
                base64::engine::general_purpose::STANDARD.encode(public_key),
            ),
        ];
        match self
            .ec2(ctx, "ImportKeyPair", &params, Retry::Safe, MAX_BODY)
            .await
        {
            Err(e) if !duplicate(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// The ids of the security groups named `name`.
    async fn groups_named(
        &self,
        ctx: &CallContext,
        name: &str,
    ) -> Result<Vec<String>, AdapterError> {
        let found = self
            .ec2(
                ctx,
                "DescribeSecurityGroups",
                &[
                    ("Filter.1.Name".to_owned(), "group-name".to_owned()),
                    ("Filter.1.Value.1".to_owned(), name.to_owned()),
                ],
                Retry::Safe,
                MAX_BODY,
            )
            .await?;
        let doc = xml::parse(&found)?;
        Ok(xml::items(doc.root_element(), "securityGroupInfo")
            .filter_map(|g| xml::child(g, "groupId").map(str::to_owned))
            .collect())
    }

    /// The instance's own group (`alliance-<broker id>`), created once, with its rules.
    async fn security_group(
        &self,
        ctx: &CallContext,
        spec: &ResourceSpec,
        access: &InstanceAccess,
    ) -> Result<String, AdapterError> {
        let name = group_name(&spec.broker_id);
        let existing = self.groups_named(ctx, &name).await?.into_iter().next();
        let id = match existing {
            Some(id) => id,
            None => {
                let created = self
                    .ec2(
                        ctx,
                        "CreateSecurityGroup",
                        &[
                            ("GroupName".to_owned(), name.clone()),
                            (
                                "GroupDescription".to_owned(),
                                format!("alliance: ingress of {}", spec.broker_id),
                            ),
                        ],
                        Retry::WithIdempotencyKey,
                        MAX_BODY,
                    )
                    .await?;
                let doc = xml::parse(&created)?;
                xml::child(doc.root_element(), "groupId")
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        AdapterError::unavailable("CreateSecurityGroup answered no group id")
                    })?
            }
        };
        for rule in &access.ingress {
            let (from, to) = match (rule.protocol, rule.port) {
                (Protocol::Icmp, _) | (_, None) => ("-1".to_owned(), "-1".to_owned()),
                (_, Some(p)) => (p.to_string(), p.to_string()),
            };
            let range = if rule.cidr.contains(':') {
                ("IpPermissions.1.Ipv6Ranges.1.CidrIpv6", rule.cidr.clone())
            } else {
                ("IpPermissions.1.IpRanges.1.CidrIp", rule.cidr.clone())
            };
            let params = vec![
                ("GroupId".to_owned(), id.clone()),
                (
                    "IpPermissions.1.IpProtocol".to_owned(),
                    rule.protocol.as_str().to_owned(),
                ),
                ("IpPermissions.1.FromPort".to_owned(), from),
                ("IpPermissions.1.ToPort".to_owned(), to),
                (range.0.to_owned(), range.1),
            ];
            match self
                .ec2(
                    ctx,
                    "AuthorizeSecurityGroupIngress",
                    &params,
                    Retry::Safe,
                    MAX_BODY,
                )
                .await
            {
                Err(e) if !duplicate(&e) => return Err(e),
                _ => {}
            }
        }
        Ok(id)
    }

    /// Deletes the group made for `broker_id`'s instance, once the instance is gone
    /// (a group still in use by an instance shutting down is a transient error).
    pub(crate) async fn remove_security_group(
        &self,
        ctx: &CallContext,
        broker_id: &str,
    ) -> Result<(), AdapterError> {
        for id in self.groups_named(ctx, &group_name(broker_id)).await? {
            let params = [("GroupId".to_owned(), id)];
            match self
                .ec2(ctx, "DeleteSecurityGroup", &params, Retry::Safe, MAX_BODY)
                .await
            {
                Err(e) if e.kind != ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    async fn instance_now(
        &self,
        ctx: &CallContext,
        instance: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        Serves::<Instances>::get_one(self, ctx, instance)
            .await?
            .ok_or_else(|| {
                AdapterError::new(
                    ErrorKind::NotFound,
                    alliance_adapter_api::ErrorSource::Member,
                    Retry::Never,
                    format!(
                        "member {} has no instance {}",
                        self.member, instance.broker_id
                    ),
                )
            })
    }

    /// The member's instance type now, from `DescribeInstances`.
    async fn instance_type(&self, ctx: &CallContext, id: &str) -> Result<String, AdapterError> {
        let body = self
            .ec2(
                ctx,
                "DescribeInstances",
                &[("InstanceId.1".to_owned(), id.to_owned())],
                Retry::Safe,
                MAX_BODY,
            )
            .await?;
        let doc = xml::parse(&body)?;
        let found = xml::all(&doc, "instanceType")
            .next()
            .and_then(|n| n.text())
            .map(str::to_owned);
        found
            .ok_or_else(|| AdapterError::unavailable("DescribeInstances answered no instance type"))
    }

    async fn wait_power(
        &self,
        ctx: &CallContext,
        instance: &ResourceRef,
        want: PowerState,
    ) -> Result<(), AdapterError> {
        let mut wait = Duration::from_millis(100);
        loop {
            let now = self.instance_now(ctx, instance).await?;
            if now.observed.power_state == Some(want) {
                return Ok(());
            }
            if ctx.remaining() <= wait {
                return Err(AdapterError::unavailable(
                    "the instance did not stop in time for its resize; it is tried again",
                ));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }

    /// An action on an instance; starting a running one, stopping a stopped one or
    /// resizing to its type changes nothing.
    pub(crate) async fn act(
        &self,
        ctx: &CallContext,
        instance: &ResourceRef,
        action: &InstanceAction,
    ) -> Result<MemberResource, AdapterError> {
        let found = self.instance_now(ctx, instance).await?;
        let id = found.member_resource_id.clone();
        let power = found.observed.power_state;
        let one = |name: &str| (name.to_owned(), id.clone());
        match action {
            InstanceAction::Start if power != Some(PowerState::Running) => {
                self.ec2(
                    ctx,
                    "StartInstances",
                    &[one("InstanceId.1")],
                    Retry::Safe,
                    MAX_BODY,
                )
                .await?;
            }
            InstanceAction::Stop if power != Some(PowerState::Stopped) => {
                self.ec2(
                    ctx,
                    "StopInstances",
                    &[one("InstanceId.1")],
                    Retry::Safe,
                    MAX_BODY,
                )
                .await?;
            }
            InstanceAction::Reboot => {
                self.ec2(
                    ctx,
                    "RebootInstances",
                    &[one("InstanceId.1")],
                    Retry::Safe,
                    MAX_BODY,
                )
                .await?;
            }
            InstanceAction::Resize { size } => {
                let target = self
                    .mapping
                    .sizes
                    .get(size.as_str())
                    .cloned()
                    .ok_or_else(|| {
                        AdapterError::invalid(format!("the member maps no size `{size}`"))
                    })?;
                if self.instance_type(ctx, &id).await? != target {
                    // EC2 changes the type of a stopped instance only.
                    let was_running = power != Some(PowerState::Stopped);
                    if was_running {
                        self.ec2(
                            ctx,
                            "StopInstances",
                            &[one("InstanceId.1")],
                            Retry::Safe,
                            MAX_BODY,
                        )
                        .await?;
                        self.wait_power(ctx, instance, PowerState::Stopped).await?;
                    }
                    self.ec2(
                        ctx,
                        "ModifyInstanceAttribute",
                        &[
                            one("InstanceId"),
                            ("InstanceType.Value".to_owned(), target.clone()),
                        ],
                        Retry::Safe,
                        MAX_BODY,
                    )
                    .await?;
                    if was_running {
                        self.ec2(
                            ctx,
                            "StartInstances",
                            &[one("InstanceId.1")],
                            Retry::Safe,
                            MAX_BODY,
                        )
                        .await?;
                    }
                }
                let mut now = self.instance_now(ctx, instance).await?;
                if self.instance_type(ctx, &id).await? == target {
                    now.observed.size = Some(size.clone());
                }
                return Ok(now);
            }
            _ => {}
        }
        self.instance_now(ctx, instance).await
    }

    async fn volume_now(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
    ) -> Result<MemberResource, AdapterError> {
        Serves::<Volumes>::get_one(self, ctx, volume)
            .await?
            .ok_or_else(|| {
                AdapterError::new(
                    ErrorKind::NotFound,
                    alliance_adapter_api::ErrorSource::Member,
                    Retry::Never,
                    format!("member {} has no volume {}", self.member, volume.broker_id),
                )
            })
    }

    /// Attaches a volume (`AttachVolume` at the next free `/dev/sd[f-p]`), or detaches it.
    pub(crate) async fn attachment(
        &self,
        ctx: &CallContext,
        volume: &ResourceRef,
        instance: Option<&ResourceRef>,
    ) -> Result<MemberResource, AdapterError> {
        let found = self.volume_now(ctx, volume).await?;
        let current = found.observed.attached_to.clone();
        let vol = found.member_resource_id.clone();
        match instance {
            None if current.is_none() => return Ok(found),
            None => {
                // InstanceId and Device are optional at AWS; naming them is exact, and
                // some implementations (moto) need them.
                let mut params = vec![("VolumeId".to_owned(), vol)];
                params.extend(current.map(|i| ("InstanceId".to_owned(), i)));
                params.extend(
                    found
                        .observed
                        .device
                        .clone()
                        .map(|d| ("Device".to_owned(), d)),
                );
                self.ec2(ctx, "DetachVolume", &params, Retry::Safe, MAX_BODY)
                    .await?;
            }
            Some(instance) => {
                let target = self.instance_now(ctx, instance).await?.member_resource_id;
                match &current {
                    Some(now) if now == &target => return Ok(found),
                    Some(other) => {
                        return Err(AdapterError::invalid(format!(
                            "the volume is attached to {other}; detach it first"
                        )))
                    }
                    None => {}
                }
                let used = self
                    .ec2(
                        ctx,
                        "DescribeVolumes",
                        &[
                            (
                                "Filter.1.Name".to_owned(),
                                "attachment.instance-id".to_owned(),
                            ),
                            ("Filter.1.Value.1".to_owned(), target.clone()),
                        ],
                        Retry::Safe,
                        MAX_BODY,
                    )
                    .await?;
                let doc = xml::parse(&used)?;
                let taken: Vec<String> = xml::items(doc.root_element(), "volumeSet")
                    .filter_map(|v| volume_observed(v).device)
                    .collect();
                let device = ('f'..='p')
                    .map(|c| format!("/dev/sd{c}"))
                    .find(|d| !taken.contains(d))
                    .ok_or_else(|| AdapterError::invalid("the instance has no free device"))?;
                self.ec2(
                    ctx,
                    "AttachVolume",
                    &[
                        ("VolumeId".to_owned(), vol),
                        ("InstanceId".to_owned(), target),
                        ("Device".to_owned(), device),
                    ],
                    Retry::Safe,
                    MAX_BODY,
                )
                .await?;
            }
        }
        self.volume_now(ctx, volume).await
    }

    /// A SigV4 presigned URL (query-string signature) for one object of a bucket.
    pub(crate) fn presign(
        &self,
        bucket: &str,
        request: &ObjectUrlRequest,
    ) -> Result<SignedUrl, AdapterError> {
        let path = format!(
            "/{bucket}/{}",
            alliance_adapter_api::encode_object_key(&request.object)
        );
        let url = format!("{}{path}", self.s3_url);
        let (params, expires_at_ms) =
            self.signer
                .presign(request.method.as_str(), &url, request.expires_in)?;
        let mut signed = url::Url::parse(&url)
            .map_err(|e| AdapterError::invalid(format!("the S3 endpoint is not a URL: {e}")))?;
        {
            let mut query = signed.query_pairs_mut();
            for (k, v) in &params {
                query.append_pair(k, v);
            }
        }
        Ok(SignedUrl {
            url: signed.into(),
            expires_at_ms,
        })
    }
}
