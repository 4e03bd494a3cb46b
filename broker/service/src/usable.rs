//! The rules for what makes a resource usable, checked once at the edge: user data,
//! ingress rules, object keys and URL validity. Each refusal names its field.

use std::time::Duration;

use alliance_adapter_api::{IngressRule, ObjectMethod, ObjectUrlRequest, Protocol, UserData};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};

/// The largest user data, decoded.
pub const MAX_USER_DATA_BYTES: usize = 16 * 1024;
/// The most ingress rules on one instance.
pub const MAX_INGRESS_RULES: usize = 50;
/// The longest object key, in bytes (S3's limit).
pub const MAX_OBJECT_KEY_BYTES: usize = 1024;

/// User data as sent (base64 of at most 16 KiB) and the hex SHA-256 of the decoded bytes.
pub fn user_data(raw: &str) -> ApiResult<(UserData, String)> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw.as_bytes())
        .map_err(|_| {
            ApiError::invalid_field("`user_data`: must be base64 (RFC 4648, with padding)")
        })?;
    if decoded.len() > MAX_USER_DATA_BYTES {
        return Err(ApiError::invalid_field(format!(
            "`user_data`: {} bytes decoded; at most {MAX_USER_DATA_BYTES}",
            decoded.len()
        )));
    }
    Ok((
        UserData(raw.to_owned()),
        hex::encode(Sha256::digest(&decoded)),
    ))
}

/// One ingress rule as a tenant writes it.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngressInput {
    /// `tcp`, `udp` or `icmp`.
    #[schema(value_type = String, example = "tcp")]
    pub protocol: Protocol,
    /// 1 to 65535 for TCP and UDP; absent for ICMP.
    pub port: Option<i64>,
    /// The source network, e.g. `203.0.113.0/24` (IPv4 or IPv6, no host bits set).
    pub cidr: String,
}

/// Ingress rules checked: ports in range (none for ICMP), networks in canonical CIDR
/// form, at most [`MAX_INGRESS_RULES`], duplicates dropped.
pub fn ingress(rules: &[IngressInput]) -> ApiResult<Vec<IngressRule>> {
    if rules.len() > MAX_INGRESS_RULES {
        return Err(ApiError::invalid_field(format!(
            "`ingress`: at most {MAX_INGRESS_RULES} rules"
        )));
    }
    let mut out = std::collections::BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let port = match (rule.protocol, rule.port) {
            (Protocol::Icmp, None) => None,
            (Protocol::Icmp, Some(_)) => {
                return Err(ApiError::invalid_field(format!(
                    "`ingress[{i}].port`: ICMP has no port"
                )))
            }
            (_, None) => {
                return Err(ApiError::invalid_field(format!(
                    "`ingress[{i}].port`: TCP and UDP rules need a port"
                )))
            }
            (_, Some(p)) => Some(u16::try_from(p).ok().filter(|p| *p >= 1).ok_or_else(|| {
                ApiError::invalid_field(format!(
                    "`ingress[{i}].port`: {p} is not a port (1 to 65535)"
                ))
            })?),
        };
        let net: ipnet::IpNet = rule.cidr.parse().map_err(|_| {
            ApiError::invalid_field(format!(
                "`ingress[{i}].cidr`: not a network in CIDR form (e.g. 203.0.113.0/24)"
            ))
        })?;
        if net.trunc() != net {
            return Err(ApiError::invalid_field(format!(
                "`ingress[{i}].cidr`: host bits are set; did you mean {}?",
                net.trunc()
            )));
        }
        out.insert(IngressRule {
            protocol: rule.protocol,
            port,
            cidr: net.to_string(),
        });
    }
    Ok(out.into_iter().collect())
}

/// An object key: 1 to 1024 bytes of UTF-8, no control character, no empty, `.` or `..`
/// segment, no leading `/`.
pub fn object_key(key: &str) -> ApiResult<String> {
    let bad = |why: &str| ApiError::invalid_field(format!("`object`: {why}"));
    if key.is_empty() || key.len() > MAX_OBJECT_KEY_BYTES {
        return Err(bad("use 1 to 1024 bytes"));
    }
    if key.chars().any(char::is_control) {
        return Err(bad("control characters are not allowed"));
    }
    if key
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(bad(
            "no empty, `.` or `..` path segment (and no leading or trailing `/`)",
        ));
    }
    Ok(key.to_owned())
}

/// A URL request checked: the object key, the method, a validity of 1 s to 12 h.
pub fn url_request(
    method: ObjectMethod,
    object: &str,
    expires_in: Option<i64>,
) -> ApiResult<ObjectUrlRequest> {
    let max = alliance_adapter_api::MAX_URL_VALIDITY.as_secs();
    let seconds = expires_in.unwrap_or(900);
    let seconds = u64::try_from(seconds)
        .ok()
        .filter(|s| (1..=max).contains(s))
        .ok_or_else(|| {
            ApiError::invalid_field(format!("`expires_in`: from 1 to {max} seconds (12 h)"))
        })?;
    Ok(ObjectUrlRequest {
        object: object_key(object)?,
        method,
        expires_in: Duration::from_secs(seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_is_base64_of_at_most_16_kib() {
        let ok = base64::engine::general_purpose::STANDARD.encode(b"#cloud-config\n");
        let (data, sha) = user_data(&ok).expect("valid");
        assert_eq!(data.0, ok);
        assert_eq!(sha, hex::encode(Sha256::digest(b"#cloud-config\n")));
        assert!(user_data("not base64!").is_err());
        let big = base64::engine::general_purpose::STANDARD.encode(vec![b'a'; 16 * 1024 + 1]);
        assert!(user_data(&big).is_err());
        // The value never shows in Debug.
        assert!(!format!("{data:?}").contains(&ok));
    }

    #[test]
    fn ingress_rules_are_checked_and_canonical() {
        let rule = |protocol, port, cidr: &str| IngressInput {
            protocol,
            port,
            cidr: cidr.to_owned(),
        };
        let rules = ingress(&[
            rule(Protocol::Tcp, Some(22), "203.0.113.0/24"),
            rule(Protocol::Tcp, Some(22), "203.0.113.0/24"),
            rule(Protocol::Icmp, None, "2001:db8::/32"),
        ])
        .expect("valid");
        assert_eq!(rules.len(), 2);
        for bad in [
            rule(Protocol::Tcp, Some(0), "0.0.0.0/0"),
            rule(Protocol::Tcp, Some(65_536), "0.0.0.0/0"),
            rule(Protocol::Udp, None, "0.0.0.0/0"),
            rule(Protocol::Icmp, Some(8), "0.0.0.0/0"),
            rule(Protocol::Tcp, Some(22), "203.0.113.5/24"),
            rule(Protocol::Tcp, Some(22), "300.0.0.0/8"),
            rule(Protocol::Tcp, Some(22), "example.com"),
        ] {
            let err = ingress(&[bad]).expect_err("refused");
            assert!(err.problem().detail.contains("ingress[0]"), "{err:?}");
        }
    }

    #[test]
    fn object_keys_stay_inside_their_bucket() {
        assert!(object_key("reports/2026/q4.csv").is_ok());
        for bad in [
            "",
            "../etc/passwd",
            "a/../b",
            "/abs",
            "a//b",
            "a\u{7}b",
            "a\nb",
            "./x",
        ] {
            assert!(object_key(bad).is_err(), "{bad:?}");
        }
        assert!(url_request(ObjectMethod::Get, "a", Some(0)).is_err());
        assert!(url_request(ObjectMethod::Get, "a", Some(43_201)).is_err());
        assert_eq!(
            url_request(ObjectMethod::Put, "a", None)
                .expect("default")
                .expires_in,
            Duration::from_secs(900)
        );
    }
}
