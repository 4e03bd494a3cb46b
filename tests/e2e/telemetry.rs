//! Traces leave the broker over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: a real
//! OTLP/gRPC receiver run by the test receives the request spans.
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
