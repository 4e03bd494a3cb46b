//! Partner credentials at rest: sealed with AES-256-GCM (ring), a random 96-bit nonce
//! per value, the owning member id as associated data (a sealed value moved to another
//! member does not open). The key is 32 bytes, base64, from the environment variable or
//! file named in `[security]`, or from `<data-dir>/credentials.key` (created 0600 on first
//! use) when neither is named. Opened values are never logged or returned by the API.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// Seals and opens credentials.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer over a 32-byte key.
    pub fn new(key: &[u8]) -> Result<Self, String> {
        let unbound = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| "the credentials key must be 32 bytes".to_owned())?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Loads the key: `env_var` (base64) or `file` (base64), else `<data-dir>/credentials.key`,
    /// created on first use.
    pub fn load(
        env_value: Option<&str>,
        file: Option<&Path>,
        data_dir: &Path,
    ) -> Result<Self, String> {
        let encoded = match (env_value, file) {
            (Some(value), _) => value.trim().to_owned(),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map_err(|e| format!("credentials key file {}: {e}", file.display()))?
                .trim()
                .to_owned(),
            (None, None) => {
                let path = data_dir.join("credentials.key");
                if !path.exists() {
                    let mut key = [0u8; 32];
                    SystemRandom::new()
                        .fill(&mut key)
                        .map_err(|_| "cannot generate a credentials key".to_owned())?;
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    match options.open(&path) {
                        Ok(mut f) => f
                            .write_all(STANDARD.encode(key).as_bytes())
                            .map_err(|e| e.to_string())?,
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(format!("credentials key {}: {e}", path.display())),
                    }
                }
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("credentials key {}: {e}", path.display()))?
                    .trim()
                    .to_owned()
            }
        };
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| "the credentials key is not base64".to_owned())?;
        Self::new(&key)
    }

    /// Seals `plaintext` for `owner`.
    pub fn seal(&self, plaintext: &[u8], owner: &str) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| "no randomness".to_owned())?;
        let mut buffer = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| "cannot seal".to_owned())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        Ok(STANDARD.encode(out))
    }

    /// Opens a value sealed for `owner`.
    pub fn open(&self, sealed: &str, owner: &str) -> Result<Vec<u8>, String> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| "sealed value is not base64".to_owned())?;
        if bytes.len() < NONCE_LEN {
            return Err("sealed value too short".into());
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce".to_owned())?;
        let mut buffer = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(owner.as_bytes()), &mut buffer)
            .map_err(|_| "cannot open: wrong key, wrong owner or tampered value".to_owned())?;
        Ok(plain.to_vec())
    }

    /// Opens sealed partner credentials (the JSON of what the application gave).
    pub fn open_credentials(
        &self,
        sealed: &str,
        owner: &str,
    ) -> Result<crate::partners::Credentials, String> {
        let plain = self.open(sealed, owner)?;
        serde_json::from_slice(&plain).map_err(|_| "sealed credentials are not JSON".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_bound_to_the_owner() {
        let sealer = Sealer::new(&[7u8; 32]).expect("key");
        let sealed = sealer
            .seal(br#"{"token":"s3cret"}"#, "lux-lu")
            .expect("seal");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(
            sealer
                .open_credentials(&sealed, "lux-lu")
                .expect("open")
                .token,
            Some("s3cret".into())
        );
        assert!(
            sealer.open(&sealed, "other-member").is_err(),
            "bound to its owner"
        );
        let other = Sealer::new(&[8u8; 32]).expect("key");
        assert!(
            other.open(&sealed, "lux-lu").is_err(),
            "another key cannot open it"
        );
        assert_ne!(
            sealer.seal(b"x", "a").expect("seal"),
            sealer.seal(b"x", "a").expect("seal"),
            "fresh nonce each time"
        );
    }
}
