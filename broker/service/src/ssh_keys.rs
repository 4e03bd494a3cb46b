//! SSH public keys, per tenant: the keys a tenant's instances can be reached with.
//!
//! A key is an OpenSSH public key line (`ssh-ed25519 AAAA… comment`), checked once here:
//! Ed25519, ECDSA on NIST P-256, P-384 or P-521, or RSA of at least 2048 bits; nothing else
//! (DSA, short RSA, certificates, private keys, garbage) is accepted. Its fingerprint is the
//! SHA-256 one `ssh-keygen -l` prints. The broker holds only public keys: installing one at
//! a member happens when an instance there first uses it.

use ssh_key::{HashAlg, PublicKey};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::store::SshKeyRow;

/// The shortest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// The longest public key line accepted (an RSA-16384 key is about 2.8 KB).
const MAX_LINE: usize = 8192;

/// A validated public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidKey {
    /// e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The OpenSSH line, re-encoded (the key and its comment, nothing else).
    pub public_key: String,
    /// `SHA256:…`.
    pub fingerprint: String,
}

fn refused(rule: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_field(format!("`public_key`: {rule}"))
}

/// Checks an OpenSSH public key line.
pub fn parse_public_key(line: &str) -> ApiResult<ValidKey> {
    let line = line.trim();
    if line.len() > MAX_LINE {
        return Err(refused(format!("longer than {MAX_LINE} bytes")));
    }
    if line.contains("PRIVATE KEY") {
        return Err(refused(
            "this is a private key: send the public one (the .pub file)",
        ));
    }
    let key = PublicKey::from_openssh(line).map_err(|_| {
        refused("not an OpenSSH public key (`ssh-ed25519 AAAA… comment`, as in a .pub file)")
    })?;
    match key.key_data() {
        ssh_key::public::KeyData::Ed25519(_) | ssh_key::public::KeyData::Ecdsa(_) => {}
        ssh_key::public::KeyData::Rsa(rsa) => {
            let bits = bit_length(rsa.n.as_positive_bytes().unwrap_or_default());
            if bits < MIN_RSA_BITS {
                return Err(refused(format!(
                    "an RSA key of {bits} bits; use at least {MIN_RSA_BITS} bits, or Ed25519"
                )));
            }
        }
        _ => {
            return Err(refused(format!(
            "`{}` keys are not accepted; use Ed25519, ECDSA or RSA of at least {MIN_RSA_BITS} bits",
            key.algorithm().as_str()
        )))
        }
    }
    let public_key = key
        .to_openssh()
        .map_err(|_| refused("cannot be re-encoded"))?;
    Ok(ValidKey {
        algorithm: key.algorithm().as_str().to_owned(),
        public_key,
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
    })
}

/// Bits of a big-endian unsigned integer without leading zero bytes.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.iter().position(|b| *b != 0) {
        None => 0,
        Some(first) => (bytes.len() - first - 1) * 8 + (8 - bytes[first].leading_zeros() as usize),
    }
}

/// A key name: 1 to 64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit (it is a
/// path segment and, scoped, a name at the member).
pub fn parse_name(name: &str) -> ApiResult<String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(name.to_owned())
    } else {
        Err(ApiError::invalid_field(
            "`name`: use 1 to 64 of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

/// The name a member knows a tenant's key by: scoped to the tenant, so that two tenants'
/// keys of one name never meet at a member (`alliance-<tenant>-<name>`; tenant ids and key
/// names are both of `A-Z a-z 0-9 . _ -`).
pub fn member_key_name(tenant: &alliance_core::TenantId, name: &str) -> String {
    format!("alliance-{tenant}-{name}")
}

/// Stores a key for the principal's tenant; 409 when the name is taken.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    name: &str,
    public_key: &str,
) -> ApiResult<SshKeyRow> {
    let scope = principal.tenant_scope()?;
    let name = parse_name(name)?;
    let key = parse_public_key(public_key)?;
    let row = SshKeyRow {
        name: name.clone(),
        algorithm: key.algorithm,
        public_key: key.public_key,
        fingerprint: key.fingerprint,
        created_at: state.clock.now_ms(),
    };
    let entry = principal.audit(
        "ssh_key.create",
        Some(scope.tenant().to_string()),
        Some(name.clone()),
        "succeeded",
        serde_json::json!({ "fingerprint": row.fingerprint, "algorithm": row.algorithm }),
    );
    if !state.store.insert_ssh_key(&scope, &row, &entry).await? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("an SSH key named `{name}` exists; delete it first or choose another name"),
        ));
    }
    Ok(row)
}

/// One of the principal's tenant's keys; 404 when unknown.
pub async fn get(state: &AppState, principal: &Principal, name: &str) -> ApiResult<SshKeyRow> {
    let scope = principal.tenant_scope()?;
    state
        .store
        .ssh_key(&scope, name)
        .await?
        .ok_or_else(|| ApiError::not_found("SSH key", name))
}

/// Deletes one of the principal's tenant's keys; 404 when unknown.
pub async fn delete(state: &AppState, principal: &Principal, name: &str) -> ApiResult<()> {
    let scope = principal.tenant_scope()?;
    let entry = principal.audit(
        "ssh_key.delete",
        Some(scope.tenant().to_string()),
        Some(name.to_owned()),
        "succeeded",
        serde_json::json!({}),
    );
    if !state
        .store
        .delete_ssh_key(&scope, name, &entry, state.clock.now_ms())
        .await?
    {
        return Err(ApiError::not_found("SSH key", name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with `ssh-keygen -t ed25519 -C alice@ed25519`; the fingerprint is what
    /// `ssh-keygen -l` printed for it.
    const ED25519: (&str, &str) = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB516YI+BKb317xss/i9r/eox0zr1mkpnYJlPu7lkQmV alice@ed25519",
        "SHA256:3CC1+AlNyoyebwSd2YPq8QEwSPWA20l5znP8umpOHyg",
    );
    const ECDSA384: (&str, &str) = (
        "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBKIAr9dYlDDVTYRlD19t71jk+SxwmdZoBc/1Ux+6IcbPAXxymCHRrV5rcABzpuDn3LKK2Sljr/b9LhgAgo8zYB1RYgJysq4P0dPAQ7BQOfTD5AcIcYPjuB7wUzoW6bMJ3Q== alice@ecdsa384",
        "SHA256:GB2KAj9gf2e0PP+4+3utskSQwskJ360ECAF9nZWJjmQ",
    );
    const RSA2048: (&str, &str) = (
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC0vgBNOhj/RahpSHPohhUu3M+wKIzMihSPB/t1zuYmvTEQsHCkMAkGfdAPGe5jsCSX0npWZJeJMZeuNaNn1xYKGvymEpITzMceot/HSBLNQyjvaCrgeoTB8vouu+Fn4Bpj2ziFiStE9orA0z96C4A1oKgQERcXkoFkwJ3PqVyjPTev3cBSUm90hjLRT3Eze3xd7+Jvc5+hvSatw2wT8fLi7t/sgE+Rk3WtlsmZOZZoJJWIsbS6O0bhu6dAE39wDEDtWuu/Qy3hzL6Eoca2fmiw5s6xZw48ihSUgo500Ntqz26c7KG5tJwiS9JD7CEF1q/Nzn1Nmmoz+dxfGiowT27z alice@rsa2048",
        "SHA256:v1rKQBi+zMDgCdn+O9VmAFr+iW5gd2Tpms7Q371W+Fw",
    );
    const RSA1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDB4M9bLeirKq0mfvAyRknSvAreDsNIBYvp2iZEUNSsK7OqQBd9yyuXA2jipFHfHsezWIvfpe9+FtAP3TFVMT+ITvhr9QboUr1UTu9cFnuhslEjDss8nJTwLBnnsAHhdieHFxKZKW1pcDIeFZAoZ0uhZ26+CV2qGZfym39YC5i2ZQ== alice@rsa1024";

    #[test]
    fn accepted_keys_have_the_fingerprint_ssh_keygen_prints() {
        for (line, fingerprint) in [ED25519, ECDSA384, RSA2048] {
            let key = parse_public_key(&format!("  {line}\n")).expect(line);
            assert_eq!(key.fingerprint, fingerprint);
            assert_eq!(key.public_key, line);
        }
        assert_eq!(
            parse_public_key(ED25519.0).expect("ed25519").algorithm,
            "ssh-ed25519"
        );
    }

    #[test]
    fn weak_foreign_and_malformed_keys_are_refused() {
        let truncated = &ED25519.0[..40];
        let cases = [
            RSA1024,
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NWPq/xfW6MPbLm1Vs14E7gB00b/JmYLdrmVClpJ+f6AR7ECLCT7up1/63xhv4O1fnxqimFQ8E+4P208UewwI1VBNaFpEy9nXzrith1yrv8iIDGZ3RSAHHAAAAFQCXYFCPFSMLzLKSuYKi64QL8Fgc9QAAAIEA9+GghdabPd7LvKtcNrhXuXmUr7v6OuqC+VdMCz0HgmdRWVeOutRZT+ZxBxCBgLRJFnEj6EwoFhO3zwkyjMim4TwWeotUfI0o4KOuHiuzpnWRbqN/C/ohNWLx+2J6ASQ7zKTxvqhRkImog9/hWuWfBpKLZl6Ae1UlZAFMO/7PSSo= x",
            truncated,
            "ssh-ed25519",
            "",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "ssh-ed25519 not-base64 x",
        ];
        for line in cases {
            let error = parse_public_key(line).expect_err(line);
            assert_eq!(error.code, ErrorCode::InvalidField, "{line}");
            assert!(
                error.detail.starts_with("`public_key`:"),
                "{}",
                error.detail
            );
        }
        assert!(parse_public_key(RSA1024)
            .expect_err("short")
            .detail
            .contains("1024 bits"));
        assert!(parse_public_key(&"a".repeat(9000)).is_err());
    }

    #[test]
    fn names_are_path_safe() {
        for good in ["laptop", "ci.deploy-2026", "A_1"] {
            assert!(parse_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "a b", "a/b", "é", &"a".repeat(65)] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
        assert_eq!(bit_length(&[0, 0, 0b0000_0101, 0]), 11);
        assert_eq!(bit_length(&[]), 0);
    }
}
