//! AWS Signature Version 4 with the `aws-sigv4` crate (the signer of the AWS SDK itself),
//! applied to reqwest requests.

use std::time::SystemTime;

use alliance_adapter_api::{AdapterError, ErrorKind, ErrorSource, Retry};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

/// The access key pair (and optional session token) of one member.
pub struct Signer {
    identity: Identity,
    access_key_id: String,
    region: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret key is never printed; the key id is not a secret.
        f.debug_struct("Signer")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Which API a request is for: the service name in the credential scope, and S3's
/// signing quirks (payload hash header, no double encoding, no path normalisation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The EC2 Query API.
    Ec2,
    /// S3 REST.
    S3,
}

impl Signer {
    /// A signer for `region`.
    pub fn new(
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
        region: &str,
    ) -> Self {
        let credentials = Credentials::new(
            access_key_id.clone(),
            secret_access_key,
            session_token,
            None,
            "alliance-member-config",
        );
        Self {
            identity: credentials.into(),
            access_key_id,
            region: region.to_owned(),
        }
    }

    /// The headers to add to a request of `method` to `url` with these `headers` (which
    /// are signed too) and `body`.
    pub fn headers(
        &self,
        service: Service,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, AdapterError> {
        let mut settings = SigningSettings::default();
        if service == Service::S3 {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        let name = match service {
            Service::Ec2 => "ec2",
            Service::S3 => "s3",
        };
        #[expect(
            clippy::disallowed_methods,
            reason = "SigV4 signs with the wall clock the member checks the request against"
        )]
        let signed_at = SystemTime::now();
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(name)
            .time(signed_at)
            .settings(settings)
            .build()
            .map_err(signing_error)?
            .into();
        let request = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(signing_error)?;
        let (instructions, _signature) =
            sign(request, &params).map_err(signing_error)?.into_parts();
        Ok(instructions
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect())
    }
}

impl Signer {
    /// The query parameters that presign an S3 request of `method` to `url` for
    /// `expires_in` (SigV4 in the query string, payload unsigned, as S3 presigned URLs
    /// are), and when it expires (ms since the epoch).
    pub fn presign(
        &self,
        method: &str,
        url: &str,
        expires_in: std::time::Duration,
    ) -> Result<(Vec<(String, String)>, i64), AdapterError> {
        let mut settings = SigningSettings::default();
        settings.signature_location = aws_sigv4::http_request::SignatureLocation::QueryParams;
        settings.expires_in = Some(expires_in);
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        #[expect(
            clippy::disallowed_methods,
            reason = "a presigned URL is valid from the wall clock the member checks it against"
        )]
        let signed_at = SystemTime::now();
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(signed_at)
            .settings(settings)
            .build()
            .map_err(signing_error)?
            .into();
        let request = SignableRequest::new(
            method,
            url,
            std::iter::empty(),
            SignableBody::UnsignedPayload,
        )
        .map_err(signing_error)?;
        let (instructions, _signature) =
            sign(request, &params).map_err(signing_error)?.into_parts();
        let expires_at = (signed_at + expires_in)
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Ok((
            instructions
                .params()
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_string()))
                .collect(),
            expires_at,
        ))
    }
}

fn signing_error(e: impl std::fmt::Display) -> AdapterError {
    AdapterError::new(
        ErrorKind::Invalid,
        ErrorSource::Broker,
        Retry::Never,
        format!("cannot sign the request: {e}"),
    )
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// Signs an EC2 Query POST to a local endpoint.
    fn sign_ec2(signer: &Signer, headers: &[(&str, &str)], body: &[u8]) -> Vec<(String, String)> {
        let url = "http://127.0.0.1:5000/";
        signer
            .headers(Service::Ec2, "POST", url, headers, body)
            .unwrap()
    }

    /// The value of the signed header `name`.
    fn header<'a>(signed: &'a [(String, String)], name: &str) -> Option<&'a str> {
        signed
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn signs_with_the_credential_scope_and_never_leaks_the_secret() {
        let signer = Signer::new(
            "AKIDEXAMPLE".into(),
            "wJalrXUtnFEMI".into(),
            None,
            "eu-west-3",
        );
        let headers = sign_ec2(
            &signer,
            &[("content-type", "application/x-www-form-urlencoded")],
            b"Action=DescribeRegions&Version=2016-11-15",
        );
        let auth = header(&headers, "authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/eu-west-3/ec2/aws4_request"), "{auth}");
        assert!(auth.contains("content-type"), "{auth}");
        assert!(!format!("{signer:?}{headers:?}").contains("wJalrXUtnFEMI"));
        let s3 = signer
            .headers(Service::S3, "PUT", "http://127.0.0.1:5000/b", &[], b"")
            .unwrap();
        assert!(s3.iter().any(|(n, _)| n == "x-amz-content-sha256"));
    }

    #[test]
    fn temporary_credentials_send_their_session_token() {
        let signer = Signer::new(
            "ASIAEXAMPLE".into(),
            "secret".into(),
            Some("the-session".into()),
            "eu-west-3",
        );
        let headers = sign_ec2(&signer, &[], b"Action=DescribeRegions");
        assert_eq!(
            header(&headers, "x-amz-security-token"),
            Some("the-session")
        );
        let auth = header(&headers, "authorization").unwrap();
        assert!(
            auth.contains("x-amz-security-token"),
            "the token is signed: {auth}"
        );
    }
}
