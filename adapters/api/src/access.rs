//! What makes a resource usable once placed: how a tenant reaches an instance (key, user
//! data, ingress, public address), what the member reports back (addresses, power state,
//! attachment, endpoint), the actions on instances, and time-limited object URLs.
//!
//! The broker is the control plane, never the data path: these types carry what a member
//! needs to let the tenant in, and what the tenant needs to get there, never the tenant's
//! bytes. User data and signed URLs are secrets to logs: their `Debug` shows no value.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use alliance_core::SizeName;
use serde::{Deserialize, Serialize};

/// An OpenSSH public key as a member imports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKey {
    /// The broker-chosen name at the member, scoped to the tenant
    /// (`alliance-<tenant>-<name>`), so that two tenants' keys never collide.
    pub member_name: String,
    /// The OpenSSH line, as the broker validated it.
    pub public_key: String,
}

/// Cloud-init user data, base64 as the tenant sent it (decoded at most 16 KiB).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserData(pub String);

impl fmt::Debug for UserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserData(<{} base64 characters>)", self.0.len())
    }
}

/// The protocol of an ingress rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (no port).
    Icmp,
}

impl Protocol {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
        }
    }
}

/// One allowed inbound flow; everything else is closed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IngressRule {
    /// The protocol.
    pub protocol: Protocol,
    /// The port (TCP and UDP; absent for ICMP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The source network, in canonical CIDR form.
    pub cidr: String,
}

/// How a tenant reaches an instance, as it is created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceAccess {
    /// The key installed for the default user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<SshKey>,
    /// Cloud-init user data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<UserData>,
    /// The inbound rules (closed when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IngressRule>,
    /// Whether the instance gets a public address.
    #[serde(default)]
    pub public_ip: bool,
}

/// An instance's power state, as its member reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    /// Running.
    Running,
    /// Stopped (shut off).
    Stopped,
    /// Anything else (starting, stopping, rebooting, resizing, unknown).
    Unknown,
}

impl PowerState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Unknown => "unknown",
        }
    }
}

/// An instance's addresses, as its member reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    /// Addresses inside the member's network.
    #[serde(default)]
    pub private: Vec<String>,
    /// Addresses reachable from the internet.
    #[serde(default)]
    pub public: Vec<String>,
}

/// What a member reports about a resource besides its state: empty where it does not
/// apply or the member does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Instances: addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Addresses>,
    /// Instances: power state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<PowerState>,
    /// Instances: the broker size the member runs it at, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<SizeName>,
    /// Volumes: the member's id of the instance it is attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_to: Option<String>,
    /// Volumes: the device it is attached as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Buckets: where its objects are served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// When the member made the resource active, by its own clock, in whole seconds since
    /// the epoch: the broker meters usage from it (the shared metering rule of
    /// `docs/federation-protocol.md`), within the operation's own lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_since: Option<i64>,
}

impl Observed {
    /// Whether the member says nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// An action on an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum InstanceAction {
    /// Power on.
    Start,
    /// Power off.
    Stop,
    /// Restart.
    Reboot,
    /// Change the size (the member's flavour or instance type for it).
    Resize {
        /// The new broker size.
        size: SizeName,
    },
}

impl InstanceAction {
    /// The action's name, which is also its operation's kind.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Reboot => "reboot",
            Self::Resize { .. } => "resize",
        }
    }
}

/// The HTTP method an object URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ObjectMethod {
    /// Download.
    Get,
    /// Upload.
    Put,
    /// Delete.
    Delete,
}

impl ObjectMethod {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
}

/// A request for a time-limited URL to one object of a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrlRequest {
    /// The object's key (validated: no `..` segment, no control character).
    pub object: String,
    /// What the URL allows.
    pub method: ObjectMethod,
    /// How long it is valid (at most 12 h).
    pub expires_in: Duration,
}

/// A signed, time-limited URL at the member. A bearer secret: its `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedUrl {
    /// The URL.
    pub url: String,
    /// When it stops working, milliseconds since the epoch.
    pub expires_at_ms: i64,
}

impl fmt::Debug for SignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignedUrl(<hidden>, expires {})", self.expires_at_ms)
    }
}

/// The longest validity of an object URL.
pub const MAX_URL_VALIDITY: Duration = Duration::from_secs(12 * 3600);

pub use alliance_core::Capability;

/// A set of capabilities.
pub type Capabilities = BTreeSet<Capability>;

/// What a member with an API per resource type offers for the `services` it serves:
/// instance access and actions with instances, attachments with instances and volumes,
/// object URLs with buckets (ec2, openstack). No services said means every one.
pub fn offered_for(services: &BTreeSet<alliance_core::ResourceType>) -> Capabilities {
    use alliance_core::ResourceType;
    let has = |t| services.is_empty() || services.contains(&t);
    let mut offered = Capabilities::new();
    if has(ResourceType::Instance) {
        offered.extend([Capability::InstanceAccess, Capability::InstanceActions]);
        if has(ResourceType::Volume) {
            offered.insert(Capability::VolumeAttach);
        }
    }
    if has(ResourceType::Bucket) {
        offered.insert(Capability::ObjectUrls);
    }
    offered
}

/// Characters an object key keeps as they are in a URL path (RFC 3986 unreserved, and `/`).
const OBJECT_KEY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// An object key as it goes into a URL path: percent-encoded once, `/` kept.
pub fn encode_object_key(key: &str) -> String {
    percent_encoding::utf8_percent_encode(key, OBJECT_KEY).to_string()
}

/// The member does not offer what was asked (a capability it lacks).
pub fn unsupported(what: &str) -> crate::AdapterError {
    crate::AdapterError::new(
        crate::ErrorKind::Invalid,
        crate::ErrorSource::Broker,
        crate::Retry::Never,
        format!("this member does not offer {what}"),
    )
}
