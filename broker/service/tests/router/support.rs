//! The middle test ring: the broker's `Router` driven in process (no socket) on a fresh
//! SQLite database, by named actors holding development tokens.
//!
//! `TestApp::start` builds the same state `alliance serve` builds (demo federation, with
//! the simulated members' delay cut to 20 ms) and runs the operations engine, so that an
//! accepted creation really finishes. Each test gets its own data dir.

#![allow(dead_code, reason = "each test file uses a part of the harness")]

use std::sync::Arc;
use std::time::Duration;

use alliance_service::auth::DevIssuer;
use alliance_service::config::{Config, DEMO_CONFIG};
use alliance_service::provisioning::engine::Engine;
use alliance_service::startup::{build_state, Settings};
use alliance_service::state::AppState;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use tower::ServiceExt;

/// Who calls: the five actors of the house style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// `tenant-admin` of `acme`.
    TenantA,
    /// `tenant-user` of `acme`.
    UserA,
    /// `tenant-admin` of `santeplus`.
    TenantB,
    /// `partner` for member `numergy-fr`.
    Partner,
    /// `billing`.
    Billing,
    /// `operator`.
    Operator,
    /// No token at all.
    Anonymous,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: axum::http::HeaderMap,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts a problem+json answer with this status and code; returns the problem.
    pub fn problem(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        let problem = self.json();
        assert_eq!(problem["code"], code, "{}", self.text);
        assert_eq!(problem["status"], status);
        problem
    }

    /// Asserts the status; returns the JSON body.
    pub fn ok(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        self.json()
    }
}

/// The broker in process.
pub struct TestApp {
    /// The router under test.
    pub router: Router,
    /// Its state (store, members, clock).
    pub state: AppState,
    issuer: DevIssuer,
    stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// A fresh broker on the demo federation with a fast simulated provisioning delay.
    pub async fn start() -> Self {
        Self::with_config(&DEMO_CONFIG.replace("delay_ms = 300", "delay_ms = 20")).await
    }

    /// A fresh broker on this config text.
    pub async fn with_config(text: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config::parse(text, "test").expect("config");
        let state = build_state(Settings::new(config, dir.path().to_path_buf()))
            .await
            .expect("state");
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let engine = Engine::for_state(&state);
        tokio::spawn(engine.run(stop_rx));
        let issuer = DevIssuer::load_or_create(dir.path()).expect("dev issuer");
        Self {
            router: alliance_service::api::router(state.clone()),
            state,
            issuer,
            stop,
            _dir: dir,
        }
    }

    /// A token for an actor.
    pub fn token(&self, actor: Actor) -> Option<String> {
        let (subject, role, tenant, member) = match actor {
            Actor::TenantA => ("alice@acme", "tenant-admin", Some("acme"), None),
            Actor::UserA => ("carol@acme", "tenant-user", Some("acme"), None),
            Actor::TenantB => ("bob@santeplus", "tenant-admin", Some("santeplus"), None),
            Actor::Partner => ("ops@numergy", "partner", None, Some("numergy-fr")),
            Actor::Billing => ("finance", "billing", None, None),
            Actor::Operator => ("root", "operator", None, None),
            Actor::Anonymous => return None,
        };
        Some(
            self.issuer
                .mint(
                    "alliance",
                    subject,
                    &[role.to_owned()],
                    tenant,
                    member,
                    Duration::from_secs(600),
                )
                .expect("mint"),
        )
    }

    /// Sends a request; `body` is JSON when given.
    pub async fn call(
        &self,
        actor: Actor,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Reply {
        self.send(actor, method, path, body, &[]).await
    }

    /// Sends a request with extra headers.
    pub async fn send(
        &self,
        actor: Actor,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        headers: &[(&str, &[u8])],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = self.token(actor) {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(json) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(json.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("request");
        self.raw(request).await
    }

    /// A request builder for `actor` (its bearer token set), to send with `raw`.
    pub fn request(
        &self,
        actor: Actor,
        method: Method,
        path: &str,
    ) -> axum::http::request::Builder {
        let builder = Request::builder().method(method).uri(path);
        match self.token(actor) {
            Some(token) => builder.header(header::AUTHORIZATION, format!("Bearer {token}")),
            None => builder,
        }
    }

    /// Sends a built request.
    pub async fn raw(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .expect("body");
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Polls an operation until it is no longer pending or running.
    pub async fn settle(&self, actor: Actor, operation: &str) -> serde_json::Value {
        for _ in 0..400 {
            let op = self
                .call(
                    actor,
                    Method::GET,
                    &format!("/v1/operations/{operation}"),
                    None,
                )
                .await
                .ok(200);
            if op["status"] == "succeeded" || op["status"] == "failed" {
                return op;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("operation {operation} did not finish in 10 s");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Shared handle, for tests that spawn.
pub type Shared = Arc<TestApp>;
