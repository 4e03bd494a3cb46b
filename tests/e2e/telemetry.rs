//! Traces leave the broker over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: a real
//! OTLP/gRPC receiver run by the test receives the request spans, and so does an OTLP/HTTP
//! (protobuf) one.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use alliance_e2e::{Broker, Options};
use fake_opentelemetry_collector::FakeCollectorServer;

#[tokio::test(flavor = "multi_thread")]
async fn spans_arrive_at_an_otlp_receiver() {
    let mut collector = FakeCollectorServer::start().await.unwrap();
    let mut options = Options::demo();
    options
        .env
        .push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), collector.endpoint()));
    options
        .env
        .push(("OTEL_SERVICE_NAME".into(), "alliance-e2e".into()));
    let mut broker = Broker::start(options).await;
    let client = broker.client(&broker.token("tenant-user", Some("acme")));
    assert_eq!(client.get("/v1/members").await.status, 200);
    // SIGTERM flushes the batch exporter.
    assert!(broker.terminate().success());
    let spans = collector.exported_spans(1, Duration::from_secs(20)).await;
    assert!(
        !spans.is_empty(),
        "no span arrived; log:\n{}",
        broker.log_text()
    );
    assert!(
        spans.iter().any(|s| s.name == "request"),
        "span names: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}

/// What an OTLP/HTTP receiver got: (content type, body) of each `POST /v1/traces`.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

#[tokio::test(flavor = "multi_thread")]
async fn spans_arrive_over_otlp_http_protobuf() {
    // A real HTTP receiver on a free port: the broker's exporter must reach it from the SDK's
    // own export thread (it used to panic there: no runtime on that thread).
    let received: Received = Default::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                let kind = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                sink.lock().unwrap().push((kind, body.to_vec()));
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut options = Options::demo();
    options.env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/protobuf".into()),
        ("OTEL_SERVICE_NAME".into(), "alliance-e2e-http".into()),
    ]);
    let mut broker = Broker::start(options).await;
    let client = broker.client(&broker.token("tenant-user", Some("acme")));
    assert_eq!(client.get("/v1/members").await.status, 200);
    assert!(broker.terminate().success());
    let log = broker.log_text();
    assert!(!log.contains("panicked"), "log:\n{log}");
    let posts = received.lock().unwrap().clone();
    assert!(!posts.is_empty(), "no export arrived; log:\n{log}");
    let contains = |body: &[u8], what: &str| body.windows(what.len()).any(|w| w == what.as_bytes());
    assert!(
        posts
            .iter()
            .all(|(kind, _)| kind == "application/x-protobuf"),
        "{:?}",
        posts.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    assert!(
        posts
            .iter()
            .any(|(_, body)| contains(body, "alliance-e2e-http") && contains(body, "request")),
        "no export carried the service name and a request span"
    );
}
