//! What every HTTP adapter (federation, ec2, openstack) shares, written once.
//!
//! - One pooled [`reqwest::Client`] per member ([`MemberHttp`]): connections are kept alive
//!   and reused; every new connection and every request is counted per member
//!   (`alliance_member_connections_opened_total`, `alliance_member_http_requests_total`), so
//!   connection reuse is `1 - opened / requests`.
//! - Each request gets a timeout equal to the time left before the call's deadline and the
//!   call's W3C `traceparent`; a call whose deadline has passed is not sent.
//! - Answers are untrusted: bodies are read up to a cap, `Retry-After` is parsed
//!   defensively, and network failures are classified once (`timeout` or `unavailable`).
#![forbid(unsafe_code)]

use std::task::{Context, Poll};
use std::time::Duration;

use alliance_adapter_api::{AdapterError, CallContext, ErrorKind, ErrorSource, Retry};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;

/// Largest ordinary member answer an adapter reads (1 MiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// A member's answer, read and capped.
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, at most the cap given to [`MemberHttp::send`].
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Headers can carry tokens (Keystone's X-Subject-Token): never printed.
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// The member's `Retry-After` (delta seconds), capped at one hour.
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `Retry-After` as delta seconds (the only form members send in practice), capped at one
/// hour so that a hostile member cannot park an operation forever.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(3600)))
}

/// A network failure (connect, reset, timeout, body read), classified.
pub fn network_error(e: &reqwest::Error, retry: Retry) -> AdapterError {
    // A destination the guard refused is the broker's final decision, not a network blip.
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return AdapterError::new(
                ErrorKind::Invalid,
                ErrorSource::Broker,
                Retry::Never,
                refused.0.clone(),
            );
        }
        source = cause.source();
    }
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Unavailable
    };
    // reqwest's Display never includes credentials (no query strings are signed into URLs).
    AdapterError::new(
        kind,
        ErrorSource::Network,
        retry,
        format!("cannot reach the member: {e}"),
    )
}

/// The member answered something the adapter cannot read.
pub fn bad_response(retry: Retry, message: impl Into<String>) -> AdapterError {
    AdapterError::new(ErrorKind::BadResponse, ErrorSource::Member, retry, message)
}

/// Creates whose outcome is unknown (the call timed out or the connection failed after
/// it may have reached the member). A member can still be processing such a create; a
/// retry that searched for it too early would find nothing and create a second resource.
/// So, for `window` after an ambiguous attempt, a create that finds no earlier attempt
/// answers `unavailable` with `Retry-After` instead of creating again.
#[derive(Debug)]
pub struct AmbiguousCreates {
    window: Duration,
    pending: std::sync::Mutex<std::collections::HashMap<String, tokio::time::Instant>>,
}

impl AmbiguousCreates {
    /// A guard with the given quiet window.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            pending: std::sync::Mutex::default(),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, tokio::time::Instant>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the outcome of a create of `broker_id`: an error that leaves the outcome
    /// unknown opens the window; anything else closes it.
    pub fn record(&self, broker_id: &str, error: Option<&AdapterError>) {
        let ambiguous = error.is_some_and(|e| {
            matches!(e.kind, ErrorKind::Timeout | ErrorKind::Unavailable)
                && e.origin != ErrorSource::Broker
        });
        let mut pending = self.lock();
        if ambiguous {
            pending.insert(broker_id.to_owned(), tokio::time::Instant::now());
        } else {
            pending.remove(broker_id);
        }
        let window = self.window;
        pending.retain(|_, at| at.elapsed() < window * 2);
    }

    /// Before creating `broker_id` anew (no earlier attempt found): an error while an
    /// ambiguous attempt may still be in progress at the member; else the attempt, to be
    /// settled with its outcome. An attempt dropped unsettled (its future cancelled by a
    /// timeout around it, with the request perhaps already at the member) counts as
    /// ambiguous.
    pub fn begin<'a>(&'a self, broker_id: &str) -> Result<CreateAttempt<'a>, AdapterError> {
        self.check(broker_id)?;
        Ok(CreateAttempt {
            guard: self,
            broker_id: broker_id.to_owned(),
            settled: false,
        })
    }

    /// Before creating `broker_id` anew (no earlier attempt found): an error while an
    /// ambiguous attempt may still be in progress at the member.
    pub fn check(&self, broker_id: &str) -> Result<(), AdapterError> {
        let pending = self.lock();
        match pending.get(broker_id) {
            Some(at) if at.elapsed() < self.window => {
                let wait = self.window.saturating_sub(at.elapsed());
                Err(AdapterError::unavailable(format!(
                    "an earlier create of {broker_id} may still be in progress at the member; searching again in {}s",
                    wait.as_secs().max(1)
                ))
                .with_retry_after(wait.max(Duration::from_secs(1))))
            }
            _ => Ok(()),
        }
    }
}

/// A create in flight (see [`AmbiguousCreates::begin`]).
#[derive(Debug)]
pub struct CreateAttempt<'a> {
    guard: &'a AmbiguousCreates,
    broker_id: String,
    settled: bool,
}

impl CreateAttempt<'_> {
    /// Records the attempt's outcome (see [`AmbiguousCreates::record`]).
    pub fn settle(mut self, error: Option<&AdapterError>) {
        self.settled = true;
        self.guard.record(&self.broker_id, error);
    }
}

impl Drop for CreateAttempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let cancelled = AdapterError::new(
                ErrorKind::Timeout,
                ErrorSource::Network,
                Retry::WithIdempotencyKey,
                "the create was cancelled before its answer",
            );
            self.guard.record(&self.broker_id, Some(&cancelled));
        }
    }
}

/// One member's HTTP client: pooled, counted, deadline-bound.
#[derive(Debug, Clone)]
pub struct MemberHttp {
    member: String,
    client: reqwest::Client,
}

/// Where the connections of a member that joined by application may go: its host when the
/// operator listed the name, else only addresses inside the allowed networks. Checked at
/// every connection, so a host name that later resolves elsewhere (DNS rebinding) cannot
/// reach the operator's network.
#[derive(Debug, Clone, Default)]
pub struct AllowedDestinations {
    /// Host names allowed whatever they resolve to.
    pub hosts: Vec<String>,
    /// Networks every resolved address must fall in.
    pub networks: Vec<ipnet::IpNet>,
}

impl AllowedDestinations {
    /// From `[security] allowed_member_networks` entries (CIDRs, addresses or host names).
    pub fn from_entries(entries: &[String]) -> Self {
        let mut allowed = Self::default();
        for entry in entries {
            if let Ok(net) = entry.parse::<ipnet::IpNet>() {
                allowed.networks.push(net);
            } else if let Ok(ip) = entry.parse::<std::net::IpAddr>() {
                allowed.networks.push(ip.into());
            } else {
                allowed.hosts.push(entry.to_ascii_lowercase());
            }
        }
        allowed
    }
}

impl AllowedDestinations {
    /// Checks `url` without resolving it: an http(s) URL without credentials whose host, when
    /// an address, lies in an allowed network. Host names pass here (the resolver guards
    /// them at every connection); literal addresses never reach the resolver, so this is
    /// their only check.
    pub fn check_literal(&self, url: &str) -> Result<(), String> {
        let (host, ip) = Self::host_of(url)?;
        match ip {
            Some(ip) if !self.allows(&host, ip) => Err(format!(
                "`{url}` points at {ip}, outside [security] allowed_member_networks"
            )),
            _ => Ok(()),
        }
    }

    /// Checks `url` fully: [`Self::check_literal`], and every address a host name resolves
    /// to must lie in an allowed network (unless the name itself is listed). The reason
    /// names the URL when refused.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        self.check_literal(url)?;
        let (host, ip) = Self::host_of(url)?;
        if ip.is_some() || self.hosts.contains(&host) {
            return Ok(());
        }
        let addresses: Vec<std::net::IpAddr> = tokio::net::lookup_host((host.as_str(), 0))
            .await
            .map_err(|e| format!("`{url}`: cannot resolve `{host}`: {e}"))?
            .map(|a| a.ip())
            .collect();
        if addresses.is_empty() {
            return Err(format!("`{url}`: `{host}` resolves to no address"));
        }
        match addresses.into_iter().find(|ip| !self.allows(&host, *ip)) {
            Some(ip) => Err(format!(
                "`{url}`: `{host}` resolves to {ip}, outside [security] allowed_member_networks"
            )),
            None => Ok(()),
        }
    }

    fn allows(&self, host: &str, ip: std::net::IpAddr) -> bool {
        self.hosts.iter().any(|h| h == host) || self.networks.iter().any(|n| n.contains(&ip))
    }

    /// The lower-cased host of an http(s) URL without credentials, and its address when
    /// it is one.
    fn host_of(url: &str) -> Result<(String, Option<std::net::IpAddr>), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "`{url}`: only http and https endpoints are allowed"
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(format!(
                "`{url}`: an endpoint must not carry credentials; send them in `credentials`"
            ));
        }
        let host = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => return Ok((ip.to_string(), Some(ip.into()))),
            Some(url::Host::Ipv6(ip)) => return Ok((ip.to_string(), Some(ip.into()))),
            Some(url::Host::Domain(name)) => name.to_ascii_lowercase(),
            None => return Err(format!("`{url}` has no host")),
        };
        Ok((host, None))
    }
}

/// The guard refused every address of a host.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// A resolver that keeps only the allowed addresses.
struct Guard(std::sync::Arc<AllowedDestinations>);

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.0.clone();
        let host = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            let resolved: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let named = allowed.hosts.contains(&host);
            let kept: Vec<std::net::SocketAddr> = resolved
                .into_iter()
                .filter(|a| named || allowed.networks.iter().any(|n| n.contains(&a.ip())))
                .collect();
            if kept.is_empty() {
                return Err(Box::new(Refused(format!(
                    "`{host}` resolves to no address inside [security] allowed_member_networks"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl MemberHttp {
    /// A client for `member`: 5 s connect timeout, idle connections kept 60 s, redirects
    /// never followed (a member cannot send the broker's credentials elsewhere).
    pub fn new(member: &str) -> Result<Self, String> {
        Self::build(member, None)
    }

    /// A client whose connections may only reach `allowed` (members that joined by
    /// application; literal IP endpoints were checked when the application was submitted).
    pub fn restricted(member: &str, allowed: AllowedDestinations) -> Result<Self, String> {
        Self::build(member, Some(allowed))
    }

    fn build(member: &str, allowed: Option<AllowedDestinations>) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_keepalive(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .connector_layer(CountConnections {
                member: member.to_owned(),
            });
        if let Some(allowed) = allowed {
            // No proxy either: a proxy would resolve the name itself, past the guard.
            builder = builder
                .no_proxy()
                .dns_resolver(std::sync::Arc::new(Guard(std::sync::Arc::new(allowed))));
        }
        let client = builder
            .build()
            .map_err(|e| format!("member {member}: cannot build an HTTP client: {e}"))?;
        Ok(Self {
            member: member.to_owned(),
            client,
        })
    }

    /// The member this client talks to.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// A request builder on the shared pool.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends `request` within the call's deadline with its `traceparent`, and reads at most
    /// `max_body` bytes of the answer. `retry` says whether the call may be repeated.
    pub async fn send(
        &self,
        ctx: &CallContext,
        request: reqwest::RequestBuilder,
        retry: Retry,
        max_body: usize,
    ) -> Result<Answer, AdapterError> {
        let remaining = ctx.remaining();
        if remaining.is_zero() {
            return Err(AdapterError::new(
                ErrorKind::Timeout,
                ErrorSource::Broker,
                retry,
                "the call's deadline passed before it was sent",
            ));
        }
        let mut request = request.timeout(remaining);
        if let Some(tp) = &ctx.traceparent {
            request = request.header("traceparent", tp);
        }
        metrics::counter!("alliance_member_http_requests_total", "member" => self.member.clone())
            .increment(1);
        let mut response = request.send().await.map_err(|e| network_error(&e, retry))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| network_error(&e, retry))?
        {
            if body.len() + chunk.len() > max_body {
                return Err(bad_response(
                    retry,
                    format!("member {} answered more than {max_body} bytes", self.member),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

/// A connector layer counting the connections a member's pool opens.
#[derive(Debug, Clone)]
struct CountConnections {
    member: String,
}

impl<S> tower::Layer<S> for CountConnections {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Counted {
            inner,
            member: self.member.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Counted<S> {
    inner: S,
    member: String,
}

impl<S, R> tower::Service<R> for Counted<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        metrics::counter!("alliance_member_connections_opened_total", "member" => self.member.clone())
            .increment(1);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// A GET of `url`, its answer read up to `max_body` bytes.
    async fn get(
        http: &MemberHttp,
        ctx: &CallContext,
        url: &str,
        max_body: usize,
    ) -> Result<Answer, AdapterError> {
        let request = http.request(reqwest::Method::GET, url);
        http.send(ctx, request, Retry::Safe, max_body).await
    }

    #[tokio::test]
    async fn only_allowed_networks_pass() {
        let allowed = AllowedDestinations::from_entries(&[
            "127.0.0.0/8".to_owned(),
            "::1/128".to_owned(),
            "partner.example".to_owned(),
        ]);
        for passed in [
            "http://127.0.0.1:8710",
            "http://[::1]:8710",
            "https://partner.example/x",
            "https://PARTNER.example/x",
            "http://localhost:5000/v3",
        ] {
            assert!(allowed.check_url(passed).await.is_ok(), "{passed}");
        }
        for refused in [
            "http://10.0.0.5:80",
            "http://169.254.169.254/latest",
            "http://[fd00::1]:80",
            "ftp://127.0.0.1",
            "http://user:pw@127.0.0.1",
            "not a url",
            "http://192.168.1.1",
            "http://0x0a000001/",
        ] {
            let why = allowed.check_url(refused).await.unwrap_err();
            assert!(why.contains(refused), "the reason names `{refused}`: {why}");
        }
        // Without resolving: literal addresses are judged, names left to the resolver.
        assert!(allowed.check_literal("http://10.1.2.3:8774/v2.1").is_err());
        assert!(allowed
            .check_literal("http://compute.elsewhere:8774")
            .is_ok());
    }

    #[tokio::test]
    async fn an_expired_deadline_is_not_sent() {
        let http = MemberHttp::new("m").unwrap();
        let mut ctx = CallContext::new(None, "k", Duration::from_secs(1));
        ctx.deadline = tokio::time::Instant::now();
        let err = get(&http, &ctx, "http://127.0.0.1:9/", 10)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout);
        assert_eq!(err.origin, ErrorSource::Broker);
    }

    #[tokio::test]
    async fn answers_are_capped_and_traceparent_is_sent() {
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|headers: axum::http::HeaderMap| async move {
                let tp = headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                (
                    [(reqwest::header::RETRY_AFTER, "999999")],
                    format!("{tp}{}", "x".repeat(100)),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = MemberHttp::new("m").unwrap();
        let mut ctx = CallContext::new(None, "k", Duration::from_secs(5));
        ctx.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        let answer = get(&http, &ctx, &url, 4096).await.unwrap();
        assert!(answer
            .body
            .starts_with(b"00-0af7651916cd43dd8448eb211c80319c"));
        assert_eq!(answer.retry_after(), Some(Duration::from_secs(3600)));
        let err = get(&http, &ctx, &url, 64).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadResponse);
    }

    #[tokio::test]
    async fn restricted_clients_reach_only_allowed_addresses_whatever_the_name() {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        // `localhost` resolves to loopback: outside 10.0.0.0/8, so refused at connect time.
        let url = format!("http://localhost:{port}/");
        let ctx = CallContext::new(None, "k", Duration::from_secs(5));
        let fenced = MemberHttp::restricted(
            "m",
            AllowedDestinations::from_entries(&["10.0.0.0/8".into()]),
        )
        .unwrap();
        let err = get(&fenced, &ctx, &url, 64).await.unwrap_err();
        assert_eq!(
            (err.kind, err.retry),
            (ErrorKind::Invalid, Retry::Never),
            "{err}"
        );
        assert!(err.message.contains("allowed_member_networks"), "{err}");
        for allowed in ["127.0.0.0/8", "::1/128, 127.0.0.1", "localhost"] {
            let entries: Vec<String> = allowed.split(", ").map(str::to_owned).collect();
            let http =
                MemberHttp::restricted("m", AllowedDestinations::from_entries(&entries)).unwrap();
            let answer = get(&http, &ctx, &url, 64)
                .await
                .unwrap_or_else(|e| panic!("{allowed}: {e}"));
            assert_eq!(answer.body, b"ok");
        }
    }

    #[tokio::test]
    async fn an_ambiguous_create_holds_back_a_second_one_for_its_window() {
        let guard = AmbiguousCreates::new(Duration::from_secs(30));
        assert!(guard.check("ins-1").is_ok());
        let timeout = AdapterError::new(
            ErrorKind::Timeout,
            ErrorSource::Network,
            Retry::WithIdempotencyKey,
            "t",
        );
        guard.record("ins-1", Some(&timeout));
        let held = guard.check("ins-1").unwrap_err();
        assert!(held.is_transient() && held.retry_after.is_some(), "{held}");
        assert!(guard.check("ins-2").is_ok());
        // A refusal is not ambiguous; a success closes the window.
        guard.record("ins-2", Some(&AdapterError::invalid("no")));
        assert!(guard.check("ins-2").is_ok());
        guard.record("ins-1", None);
        assert!(guard.check("ins-1").is_ok());
    }

    #[tokio::test]
    async fn a_create_cancelled_in_flight_holds_back_a_second_one() {
        let guard = AmbiguousCreates::new(Duration::from_secs(30));
        // A timeout around the call drops the create's future while the request may
        // already be at the member: nothing settles the attempt.
        let slow = async {
            let _attempt = guard.begin("ins-1").unwrap();
            std::future::pending::<()>().await;
        };
        assert!(tokio::time::timeout(Duration::from_millis(10), slow)
            .await
            .is_err());
        let held = guard.begin("ins-1").unwrap_err();
        assert!(held.is_transient() && held.retry_after.is_some(), "{held}");
        // One that settles with an answer leaves nothing behind.
        guard.begin("ins-2").unwrap().settle(None);
        guard.begin("ins-2").unwrap().settle(None);
    }
}
