//! The development token issuer: an ES256 key kept as PKCS#8 PEM at
//! `<data-dir>/dev-issuer-key.pem` (mode 0600), created on first use, used by
//! `alliance token` to mint and by `serve` to verify. Only when the config enables it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use ring::signature::KeyPair;
use serde::Serialize;

/// The `iss` of development tokens.
pub const DEV_ISSUER: &str = "urn:alliance:dev-issuer";
/// The `kid` of the development key.
pub const DEV_KID: &str = "dev-1";
/// The key file name inside the data dir.
pub const KEY_FILE: &str = "dev-issuer-key.pem";

/// Claims of a development token.
#[derive(Debug, Clone, Serialize)]
pub struct DevClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Issued at.
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Expiry.
    pub exp: u64,
    /// Roles.
    pub roles: Vec<String>,
    /// Tenant, for tenant roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Member, for partners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

/// The development issuer's key.
pub struct DevIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    path: PathBuf,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Dev issuer failures.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    /// The key file cannot be read, written or parsed.
    #[error(transparent)]
    Key(#[from] crate::auth::keyfile::KeyFileError),
    /// Signing failed.
    #[error("cannot sign a development token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

impl DevIssuer {
    /// Loads the key from the data dir, creating it (0600) on first use. Safe against two
    /// processes creating it at once: the file is linked into place only if absent.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, DevIssuerError> {
        let path = data_dir.join(KEY_FILE);
        let (pkcs8, pair) = crate::auth::keyfile::load_or_create_p256(&path)?;
        let encoding = EncodingKey::from_ec_der(&pkcs8);
        let decoding = DecodingKey::from_ec_der(pair.public_key().as_ref());
        Ok(Self {
            encoding,
            decoding,
            path,
        })
    }

    /// The verification key.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Signs a token for `roles` valid for `ttl`.
    pub fn mint(
        &self,
        audience: &str,
        subject: &str,
        roles: &[String],
        tenant: Option<&str>,
        member: Option<&str>,
        ttl: Duration,
    ) -> Result<String, DevIssuerError> {
        let now = u64::try_from(crate::time::now_ms() / 1000).unwrap_or(0);
        let claims = DevClaims {
            iss: DEV_ISSUER.to_owned(),
            sub: subject.to_owned(),
            aud: audience.to_owned(),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs(),
            roles: roles.to_vec(),
            tenant: tenant.map(str::to_owned),
            member: member.map(str::to_owned),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(DEV_KID.to_owned());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }
}
