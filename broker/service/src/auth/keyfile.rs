//! Secrets kept in files outside the database (mode 0600), created on first use: P-256
//! signing keys as PKCS#8 PEM (the development issuer's, the audit checkpoints'), and raw
//! secrets (the console's session key).

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The key file cannot be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file does not hold a P-256 PKCS#8 key.
    #[error("key file {path} is not a P-256 PKCS#8 PEM key: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Loads the P-256 key at `path`, creating it (0600) first when absent. Safe against two
/// processes creating it at once: the file is linked into place only if absent. Returns the
/// PKCS#8 DER and the key pair.
pub fn load_or_create_p256(path: &Path) -> Result<(Vec<u8>, EcdsaKeyPair), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |reason: String| KeyFileError::BadKey {
        path: path.to_path_buf(),
        reason,
    };
    if !path.exists() {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| bad("key generation failed".into()))?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
        create_secret_file(path, pem.as_bytes()).map_err(io)?;
    }
    load_p256(path)
}

/// Writes `secret` to a new file at `path` (mode 0600), unless one is there already: the
/// file is written aside and linked into place only if absent, so two processes creating
/// it at once agree on one (the loser's is dropped).
pub fn create_secret_file(path: &Path, secret: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(secret)?;
        file.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    std::fs::remove_file(&tmp).ok();
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Loads the P-256 key at `path`, which must exist.
pub fn load_p256(path: &Path) -> Result<(Vec<u8>, EcdsaKeyPair), KeyFileError> {
    let text = std::fs::read(path).map_err(|source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| KeyFileError::BadKey {
        path: path.to_path_buf(),
        reason,
    };
    let parsed = pem::parse(&text).map_err(|e| bad(e.to_string()))?;
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        parsed.contents(),
        &SystemRandom::new(),
    )
    .map_err(|e| bad(e.to_string()))?;
    Ok((parsed.contents().to_vec(), pair))
}
