//! The console's session: a cookie that holds who signed in (subject, roles, tenant), its
//! expiry and its CSRF token, signed with HMAC-SHA-256 by a key kept in a file outside the
//! database. It holds no bearer token: nothing a script could read and replay at the API,
//! and the cookie itself is `HttpOnly; SameSite=Strict`.

use std::path::Path;

use base64::Engine;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::auth::{Principal, Role};

/// The cookie's name.
pub const COOKIE: &str = "alliance_session";
/// The key file inside the data dir.
pub const KEY_FILE: &str = "console-session.key";
/// How long a session lasts.
pub const LIFETIME_SECS: i64 = 8 * 3600;

/// The issuer recorded for principals of the development sign-in.
pub const DEV_CONSOLE_ISSUER: &str = "urn:alliance:console-dev";

/// Signs and checks session cookies.
pub struct SessionKey(hmac::Key);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// Loads the key from the data dir, creating it (32 random bytes, 0600) on first use.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            let mut secret = [0u8; 32];
            SystemRandom::new()
                .fill(&mut secret)
                .map_err(|_| std::io::Error::other("no randomness"))?;
            crate::auth::keyfile::create_secret_file(&path, &secret)?;
        }
        let secret = std::fs::read(&path)?;
        if secret.len() != 32 {
            return Err(std::io::Error::other(format!(
                "{} must hold 32 bytes",
                path.display()
            )));
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &secret)))
    }

    /// The cookie value of `session`.
    pub fn seal(&self, session: &Session) -> String {
        self.seal_value(session)
    }

    /// The session a cookie value holds, when its signature holds and it has not expired.
    pub fn open(&self, value: &str, now_secs: i64) -> Option<Session> {
        self.open_value::<Session>(value)
            .filter(|session| session.exp > now_secs)
    }

    /// Any value as a signed cookie value (`base64url(json).base64url(hmac)`).
    pub fn seal_value<T: Serialize>(&self, value: &T) -> String {
        let body = serde_json::to_vec(value).unwrap_or_default();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = b64.encode(body);
        let tag = hmac::sign(&self.0, payload.as_bytes());
        format!("{payload}.{}", b64.encode(tag.as_ref()))
    }

    /// The value a signed cookie value holds, when its signature holds.
    pub fn open_value<T: serde::de::DeserializeOwned>(&self, value: &str) -> Option<T> {
        let (payload, tag) = value.split_once('.')?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let tag = b64.decode(tag).ok()?;
        hmac::verify(&self.0, payload.as_bytes(), &tag).ok()?;
        serde_json::from_slice(&b64.decode(payload).ok()?).ok()
    }
}

/// A random token, base64url.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let _ = SystemRandom::new().fill(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The issuer that vouched for the subject.
    pub iss: String,
    /// The subject.
    pub sub: String,
    /// Role names.
    pub roles: Vec<String>,
    /// The tenant, for tenant roles.
    pub tenant: Option<String>,
    /// The member, for the partner role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// The CSRF token every state-changing form must carry.
    pub csrf: String,
}

impl Session {
    /// A new session for `sub` with `roles` (and `tenant`), from now.
    pub fn new(
        iss: &str,
        sub: String,
        roles: Vec<String>,
        tenant: Option<String>,
        now_secs: i64,
    ) -> Self {
        Self {
            iss: iss.to_owned(),
            sub,
            roles,
            tenant,
            member: None,
            exp: now_secs + LIFETIME_SECS,
            csrf: random_token(24),
        }
    }

    /// The principal this session acts as: the same kind the API's tokens give, so the
    /// console goes through the same permission table and the same services.
    pub fn principal(&self) -> Option<Principal> {
        let tenant = self
            .tenant
            .as_deref()
            .map(alliance_core::TenantId::parse)
            .transpose()
            .ok()?;
        Some(Principal {
            issuer: self.iss.clone(),
            subject: self.sub.clone(),
            roles: self.roles.iter().filter_map(|r| Role::parse(r)).collect(),
            tenant,
            member: self
                .member
                .as_deref()
                .map(alliance_core::MemberId::parse)
                .transpose()
                .ok()?,
            request_id: None,
        })
    }

    /// Whether `token` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            self.csrf.as_bytes(),
            token.as_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_only_with_its_signature_and_before_it_expires() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let key = SessionKey::load_or_create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let session = Session::new(
            DEV_CONSOLE_ISSUER,
            "dev:console:tenant-admin@acme".into(),
            vec!["tenant-admin".into()],
            Some("acme".into()),
            1_000,
        );
        let sealed = key.seal(&session);
        assert_eq!(key.open(&sealed, 1_001), Some(session.clone()));
        assert_eq!(key.open(&sealed, 1_000 + LIFETIME_SECS), None);
        // A role pasted in is refused: the signature no longer holds.
        let (payload, tag) = sealed.split_once('.').unwrap_or_default();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut forged: Session = serde_json::from_slice(&b64.decode(payload).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        forged.roles = vec!["operator".into()];
        let forged = format!(
            "{}.{tag}",
            b64.encode(serde_json::to_vec(&forged).unwrap_or_default())
        );
        assert_eq!(key.open(&forged, 1_001), None);
        assert!(session.csrf_matches(&session.csrf));
        assert!(!session.csrf_matches("nope"));
        // The same key after a restart.
        let again = SessionKey::load_or_create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(again.open(&sealed, 1_001).is_some());
    }
}
