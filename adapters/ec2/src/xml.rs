//! Reading EC2 and S3 XML answers (untrusted: parsed with roxmltree, never trusted to have
//! a field) and mapping their error codes to the broker's kinds, once.

use std::collections::BTreeMap;
use std::time::Duration;

use alliance_adapter_api::{AdapterError, ErrorKind, Retry};
use reqwest::StatusCode;

/// A parsed answer.
pub fn parse(body: &[u8]) -> Result<roxmltree::Document<'_>, AdapterError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| alliance_adapter_http::bad_response(Retry::Safe, "the answer is not UTF-8"))?;
    roxmltree::Document::parse(text).map_err(|e| {
        alliance_adapter_http::bad_response(Retry::Safe, format!("the answer is not XML: {e}"))
    })
}

/// The text of the direct child `name` of `node`.
pub fn child<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.tag_name().name() == name)
        .and_then(|c| c.text())
}

/// The direct child element `name` of `node`.
pub fn child_node<'a>(
    node: roxmltree::Node<'a, 'a>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'a>> {
    node.children().find(|c| c.tag_name().name() == name)
}

/// The `item`s of the direct child list `set` (EC2's `instancesSet`, `volumeSet`, ...).
pub fn items<'a>(
    node: roxmltree::Node<'a, 'a>,
    set: &str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'a>> {
    child_node(node, set)
        .into_iter()
        .flat_map(|s| s.children().filter(|c| c.tag_name().name() == "item"))
}

/// Every element called `name`, anywhere.
pub fn all<'a>(
    doc: &'a roxmltree::Document<'a>,
    name: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(move |n| n.tag_name().name() == name)
}

/// An EC2 resource's `tagSet` as a map.
pub fn tags(node: roxmltree::Node<'_, '_>) -> BTreeMap<String, String> {
    items(node, "tagSet")
        .filter_map(|t| {
            Some((
                child(t, "key")?.to_owned(),
                child(t, "value").unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

/// The error of a failed EC2 or S3 answer, classified.
pub fn error(
    member: &str,
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
    retry: Retry,
) -> AdapterError {
    let (code, message) = match parse(body) {
        Ok(doc) => (
            all(&doc, "Code")
                .next()
                .and_then(|n| n.text())
                .unwrap_or("")
                .to_owned(),
            all(&doc, "Message")
                .next()
                .and_then(|n| n.text())
                .unwrap_or("")
                .to_owned(),
        ),
        Err(_) => (String::new(), String::new()),
    };
    let (kind, retry) = classify(status, &code, retry);
    AdapterError::from_member(
        kind,
        retry,
        retry_after,
        format!("member {member} answered {status} {code}: {message}"),
    )
}

/// The broker's kind for an EC2/S3 error code (the AWS error references), falling back
/// on the HTTP status.
pub fn classify(status: StatusCode, code: &str, retry: Retry) -> (ErrorKind, Retry) {
    match code {
        "AuthFailure"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "InvalidAccessKeyId"
        | "AccessDenied"
        | "MissingAuthenticationToken"
        | "ExpiredToken"
        | "OptInRequired" => (ErrorKind::AuthFailed, Retry::Never),
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "SlowDown" => {
            (ErrorKind::RateLimited, retry)
        }
        "BandwidthLimitExceeded" | "RequestThrottled" => (ErrorKind::RateLimited, retry),
        // S3: an earlier request on the same bucket has not finished (a retry while the
        // first CreateBucket still runs); trying again later is right.
        // A group still used by an instance that is shutting down, and the like.
        "OperationAborted"
        | "RequestTimeout"
        | "PriorRequestNotComplete"
        | "DependencyViolation" => (ErrorKind::Unavailable, retry),
        "InsufficientInstanceCapacity"
        | "InsufficientVolumeCapacity"
        | "InternalError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "Unavailable" => (ErrorKind::Unavailable, retry),
        "TooManyBuckets"
        | "InstanceLimitExceeded"
        | "VolumeLimitExceeded"
        | "MaxIOPSLimitExceeded"
        | "VcpuLimitExceeded" => (ErrorKind::OverQuota, Retry::Never),
        c if c.ends_with("LimitExceeded") => (ErrorKind::OverQuota, Retry::Never),
        c if c.ends_with(".NotFound") || c == "NoSuchBucket" || c == "NoSuchKey" => {
            (ErrorKind::NotFound, Retry::Never)
        }
        _ if status.is_server_error() => (ErrorKind::Unavailable, retry),
        _ if status == StatusCode::TOO_MANY_REQUESTS => (ErrorKind::RateLimited, retry),
        _ if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN => {
            (ErrorKind::AuthFailed, Retry::Never)
        }
        _ if status == StatusCode::NOT_FOUND => (ErrorKind::NotFound, Retry::Never),
        _ => (ErrorKind::Invalid, Retry::Never),
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn ec2_and_s3_errors_map_to_the_brokers_kinds() {
        let ec2 = br#"<?xml version="1.0"?><Response><Errors><Error><Code>InstanceLimitExceeded</Code><Message>too many</Message></Error></Errors><RequestID>r</RequestID></Response>"#;
        let e = error(
            "m",
            StatusCode::BAD_REQUEST,
            ec2,
            None,
            Retry::WithIdempotencyKey,
        );
        assert_eq!((e.kind, e.retry), (ErrorKind::OverQuota, Retry::Never));
        assert!(e.message.contains("too many"));
        let s3 = br#"<Error><Code>SlowDown</Code><Message>slow</Message></Error>"#;
        let e = error(
            "m",
            StatusCode::SERVICE_UNAVAILABLE,
            s3,
            Some(Duration::from_secs(2)),
            Retry::Safe,
        );
        assert_eq!(
            (e.kind, e.retry, e.retry_after),
            (
                ErrorKind::RateLimited,
                Retry::Safe,
                Some(Duration::from_secs(2))
            )
        );
        let e = error(
            "m",
            StatusCode::UNAUTHORIZED,
            b"<Response><Errors><Error><Code>AuthFailure</Code></Error></Errors></Response>",
            None,
            Retry::Safe,
        );
        assert_eq!(e.kind, ErrorKind::AuthFailed);
        let e = error("m", StatusCode::BAD_REQUEST, b"<Response><Errors><Error><Code>InvalidVolume.NotFound</Code></Error></Errors></Response>", None, Retry::Safe);
        assert_eq!(e.kind, ErrorKind::NotFound);
        let e = error(
            "m",
            StatusCode::CONFLICT,
            b"<Error><Code>OperationAborted</Code></Error>",
            None,
            Retry::WithIdempotencyKey,
        );
        assert_eq!(
            (e.kind, e.retry),
            (ErrorKind::Unavailable, Retry::WithIdempotencyKey)
        );
        let e = error(
            "m",
            StatusCode::BAD_REQUEST,
            b"<Error><Code>BandwidthLimitExceeded</Code></Error>",
            None,
            Retry::Safe,
        );
        assert_eq!(e.kind, ErrorKind::RateLimited);
        let e = error("m", StatusCode::BAD_GATEWAY, b"not xml", None, Retry::Safe);
        assert_eq!((e.kind, e.retry), (ErrorKind::Unavailable, Retry::Safe));
        let e = error(
            "m",
            StatusCode::BAD_REQUEST,
            b"<Error><Code>InvalidAMIID.Malformed</Code></Error>",
            None,
            Retry::Safe,
        );
        assert_eq!((e.kind, e.retry), (ErrorKind::Invalid, Retry::Never));
    }

    #[test]
    fn tags_are_read_from_a_tag_set() {
        let doc = roxmltree::Document::parse("<item><instanceId>i-1</instanceId><tagSet><item><key>a</key><value>1</value></item><item><key>b</key></item></tagSet></item>").unwrap();
        let t = tags(doc.root_element());
        assert_eq!(t.get("a").map(String::as_str), Some("1"));
        assert_eq!(t.get("b").map(String::as_str), Some(""));
        assert_eq!(child(doc.root_element(), "instanceId"), Some("i-1"));
    }
}
