//! The development token issuer: an ES256 key kept as PKCS#8 PEM at
//! `<data-dir>/dev-issuer-key.pem` (mode 0600), created on first use, used by
//! `alliance token` to mint and by `serve` to verify. Only when the config enables it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
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
    /// The key file cannot be read or written.
    #[error("development issuer key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file does not hold a P-256 PKCS#8 key.
    #[error("development issuer key {path} is not a P-256 PKCS#8 PEM key: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Signing failed.
    #[error("cannot sign a development token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

impl DevIssuer {
    /// Loads the key from the data dir, creating it (0600) on first use. Safe against two
    /// processes creating it at once: the file is linked into place only if absent.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, DevIssuerError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| DevIssuerError::Io {
            path: path.clone(),
            source,
        };
        if !path.exists() {
            std::fs::create_dir_all(data_dir).map_err(io)?;
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| DevIssuerError::BadKey {
                    path: path.clone(),
                    reason: "key generation failed".into(),
                })?;
            let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
            let tmp = data_dir.join(format!(".{KEY_FILE}.{}", std::process::id()));
            {
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&tmp).map_err(io)?;
                file.write_all(pem.as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
            }
            // hard_link fails if another process won the race; theirs is then the key.
            let linked = std::fs::hard_link(&tmp, &path);
            std::fs::remove_file(&tmp).ok();
            if let Err(e) = linked {
                if e.kind() != std::io::ErrorKind::AlreadyExists {
                    return Err(io(e));
                }
            }
        }
        let pem_text = std::fs::read(&path).map_err(io)?;
        let parsed = pem::parse(&pem_text).map_err(|e| DevIssuerError::BadKey {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, parsed.contents())
            .map_err(|e| DevIssuerError::BadKey {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let encoding = EncodingKey::from_ec_der(parsed.contents());
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
