//! The simulated member's object store: bytes kept under its data directory and served
//! over HTTP to whoever holds a URL the member signed, the way S3 presigned URLs and Swift
//! TempURLs work. The broker only signs (through the adapter); the bytes go from the
//! tenant's client to this listener and back, never through the broker's API.
//!
//! A URL is `<base>/objects/<member>/<bucket>/<object>?method=&expires=&signature=`, the
//! signature an HMAC-SHA256 over the method, the path and the expiry with the member's own
//! key (kept in `<root>/.url-key`). An object's file is named by the SHA-256 of its key, so
//! no key can name a path outside the bucket's directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alliance_adapter_api::{AdapterError, ObjectUrlRequest, SignedUrl};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The largest object the simulated member stores.
pub const MAX_OBJECT_BYTES: usize = 64 * 1024 * 1024;

/// A member's objects and the key it signs their URLs with.
#[derive(Debug)]
pub struct ObjectStore {
    root: PathBuf,
    key: Vec<u8>,
}

impl ObjectStore {
    /// The store under `root`, with its signing key (created on first use).
    pub fn open(root: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&root)?;
        let key_file = root.join(".url-key");
        let key = match std::fs::read(&key_file) {
            Ok(key) if key.len() == 32 => key,
            _ => {
                let key: [u8; 32] = rand::random();
                let tmp = root.join(format!(".url-key.{}", std::process::id()));
                std::fs::write(&tmp, key)?;
                std::fs::rename(&tmp, &key_file)?;
                key.to_vec()
            }
        };
        Ok(Self { root, key })
    }

    fn signature(&self, method: &str, path: &str, expires: i64) -> String {
        // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(format!("{method}\n{path}\n{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The URL path of an object (percent-encoded).
    fn path(member: &str, bucket: &str, object: &str) -> String {
        format!(
            "/objects/{member}/{bucket}/{}",
            alliance_adapter_api::encode_object_key(object)
        )
    }

    /// A URL at `base` for one object, valid until `now_ms + request.expires_in`.
    pub fn sign(
        &self,
        base: &str,
        member: &str,
        bucket: &str,
        request: &ObjectUrlRequest,
        now_ms: i64,
    ) -> SignedUrl {
        let expires_ms =
            now_ms + i64::try_from(request.expires_in.as_millis()).unwrap_or(i64::MAX / 2);
        let expires = expires_ms / 1000;
        let path = Self::path(member, bucket, &request.object);
        let method = request.method.as_str();
        let signature = self.signature(method, &path, expires);
        SignedUrl {
            url: format!("{base}{path}?method={method}&expires={expires}&signature={signature}"),
            expires_at_ms: expires * 1000,
        }
    }

    fn file(&self, member: &str, bucket: &str, object: &str) -> PathBuf {
        self.bucket_dir(member, bucket)
            .join(hex::encode(Sha256::digest(object.as_bytes())))
    }

    fn bucket_dir(&self, member: &str, bucket: &str) -> PathBuf {
        self.root.join(safe(member)).join(safe(bucket))
    }

    /// Removes a bucket's objects (the bucket was deleted).
    pub fn remove_bucket(&self, member: &str, bucket: &str) -> Result<(), AdapterError> {
        match std::fs::remove_dir_all(self.bucket_dir(member, bucket)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(AdapterError::unavailable(format!(
                "cannot remove the bucket's objects: {e}"
            ))),
        }
    }

    /// The HTTP routes that serve signed URLs (`/objects/...`).
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/objects/{member}/{bucket}/{*object}", any(serve))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_OBJECT_BYTES))
            .with_state(self)
    }
}

/// A path component as the store names its directories: ids the member chose, never `..`.
fn safe(component: &str) -> String {
    component
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct Signed {
    method: String,
    expires: i64,
    signature: String,
}

fn refuse(status: StatusCode, why: &'static str) -> Response {
    (status, why).into_response()
}

#[expect(
    clippy::disallowed_methods,
    reason = "the simulated member checks expiry by its own wall clock, as a real one does"
)]
fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn serve(
    State(store): State<Arc<ObjectStore>>,
    UrlPath((member, bucket, object)): UrlPath<(String, String, String)>,
    method: Method,
    query: Result<Query<Signed>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Response {
    let Ok(Query(signed)) = query else {
        return refuse(StatusCode::FORBIDDEN, "a signed URL is required\n");
    };
    let allowed = match signed.method.as_str() {
        "GET" => method == Method::GET || method == Method::HEAD,
        "PUT" => method == Method::PUT,
        "DELETE" => method == Method::DELETE,
        _ => false,
    };
    let path = ObjectStore::path(&member, &bucket, &object);
    let expected = store.signature(&signed.method, &path, signed.expires);
    if !constant_time_eq(expected.as_bytes(), signed.signature.as_bytes()) {
        return refuse(StatusCode::FORBIDDEN, "the signature does not match\n");
    }
    if !allowed {
        return refuse(
            StatusCode::FORBIDDEN,
            "the URL was signed for another method\n",
        );
    }
    if signed.expires < now_s() {
        return refuse(StatusCode::FORBIDDEN, "the URL has expired\n");
    }
    let file = store.file(&member, &bucket, &object);
    match method {
        Method::PUT => put(&file, &body).await,
        Method::DELETE => match tokio::fs::remove_file(&file).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                StatusCode::NO_CONTENT.into_response()
            }
            Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "cannot delete\n"),
        },
        _ => match tokio::fs::read(&file).await {
            Ok(bytes) if method == Method::HEAD => {
                ([("content-length", bytes.len().to_string())]).into_response()
            }
            Ok(bytes) => bytes.into_response(),
            Err(_) => refuse(StatusCode::NOT_FOUND, "no such object\n"),
        },
    }
}

/// Writes an object whole or not at all (a temporary file renamed into place).
async fn put(file: &Path, body: &[u8]) -> Response {
    let Some(dir) = file.parent() else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "cannot store\n");
    };
    let tmp = dir.join(format!(".put-{}", uuid::Uuid::new_v4().simple()));
    let written = async {
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::write(&tmp, body).await?;
        tokio::fs::rename(&tmp, file).await
    }
    .await;
    match written {
        Ok(()) => StatusCode::OK.into_response(),
        Err(_) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "cannot store\n")
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
