//! Telemetry: `tracing` with an env filter (`ALLIANCE_LOG`, else `RUST_LOG`, else `info`),
//! OpenTelemetry trace export over OTLP when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set (gRPC by default, `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf` for HTTP), and the
//! Prometheus recorder behind `/metrics`. Metric names are listed in docs/telemetry.md.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The OTLP/HTTP exporter's client: the broker's own reqwest, with each export run on the
/// broker's runtime. The SDK's batch processor exports from a thread of its own, where
/// neither reqwest nor hyper can run (`there is no reactor running`); so the request is
/// spawned onto the runtime captured at start and its result awaited from that thread.
#[derive(Debug)]
struct OtlpHttp {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl OtlpHttp {
    fn on_this_runtime() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("telemetry must start inside the runtime"))?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Self { client, runtime })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttp {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let (parts, body) = request.into_parts();
        let mut outgoing = self.client.request(parts.method, parts.uri.to_string());
        for (name, value) in &parts.headers {
            outgoing = outgoing.header(name, value);
        }
        let outgoing = outgoing.body(body);
        let answer = self
            .runtime
            .spawn(async move {
                let answer = outgoing.send().await?;
                let status = answer.status();
                let headers = answer.headers().clone();
                let body = answer.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            })
            .await??;
        let (status, headers, body) = answer;
        let mut response = opentelemetry_http::Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// Keeps the exporter alive; flushes spans when dropped.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("alliance: cannot flush traces: {e}");
            }
        }
    }
}

/// A log writer that keeps each event on one line: a control character inside an event
/// (a newline in an error a member sent, say) is written escaped, so no input can forge a
/// log line of its own. The formatter hands over each event whole, ending in its newline.
struct OneLine<W>(W);

impl<W: std::io::Write> std::io::Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        // Tabs, and the formatter's own colour codes (it escapes ESC inside values), pass.
        let kept = |b: u8| !b.is_ascii_control() || b == b'\t' || b == 0x1b;
        if body.iter().all(|b| kept(*b)) {
            return self.0.write_all(buf);
        }
        let mut line = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                b if kept(b) => line.push(b),
                b => line.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            }
        }
        line.extend_from_slice(end);
        self.0.write_all(&line)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Installs the global subscriber. `env` is the process environment (passed in for tests).
pub fn init(env: &std::collections::BTreeMap<String, String>) -> anyhow::Result<TelemetryGuard> {
    let filter = env
        .get("ALLIANCE_LOG")
        .or_else(|| env.get("RUST_LOG"))
        .cloned()
        .unwrap_or_else(|| "info,sqlx=warn,tower_http=warn".to_owned());
    let filter = EnvFilter::try_new(&filter)
        .map_err(|e| anyhow::anyhow!("invalid log filter `{filter}`: {e}"))?;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(|| OneLine(std::io::stderr()))
        // Colour codes for a terminal only: not in a file or a journal (and not paid for
        // on every request span when nobody reads them).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let mut guard = TelemetryGuard::default();
    let otel = match env
        .get("OTEL_EXPORTER_OTLP_ENDPOINT")
        .filter(|e| !e.is_empty())
    {
        None => None,
        Some(endpoint) => {
            let protocol = env
                .get("OTEL_EXPORTER_OTLP_PROTOCOL")
                .map(String::as_str)
                .unwrap_or("grpc");
            let exporter = match protocol {
                "grpc" => opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint.clone()).build()?,
                "http/protobuf" => opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(OtlpHttp::on_this_runtime()?)
                    .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                    .build()?,
                other => anyhow::bail!("OTEL_EXPORTER_OTLP_PROTOCOL `{other}` is not supported (grpc or http/protobuf)"),
            };
            let service = env
                .get("OTEL_SERVICE_NAME")
                .cloned()
                .unwrap_or_else(|| "alliance".to_owned());
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(service)
                        .build(),
                )
                .build();
            let tracer = provider.tracer("alliance");
            guard.provider = Some(provider);
            Some(tracing_opentelemetry::layer().with_tracer(tracer))
        }
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(guard)
}

/// The process-wide Prometheus recorder (installed once).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then /metrics shows ours, empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Makes `span` a child of the W3C `traceparent` stored with an operation (the client's
/// request), so that the trace continues across the queue when OpenTelemetry is on.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    use opentelemetry::propagation::TextMapPropagator as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let Some(tp) = traceparent else { return };
    let carrier = std::collections::HashMap::from([("traceparent".to_owned(), tp.to_owned())]);
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(parent);
}

/// The `traceparent` the broker sends with a call to a member made in the current span: the
/// current OpenTelemetry span when one is recorded; otherwise a new span id under the
/// operation's stored trace (the client's), or a new trace. Every outgoing call carries one.
pub fn outgoing_traceparent(stored: Option<&str>) -> String {
    use opentelemetry::trace::TraceContextExt as _;
    use rand::Rng as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    let span = context.span();
    let current = span.span_context();
    if current.is_valid() {
        return format!(
            "00-{}-{}-{:02x}",
            current.trace_id(),
            current.span_id(),
            current.trace_flags().to_u8()
        );
    }
    let mut rng = rand::rng();
    let trace_id = stored
        .and_then(|tp| {
            let mut parts = tp.split('-');
            let (_, id) = (parts.next()?, parts.next()?);
            (id.len() == 32
                && id.bytes().all(|b| b.is_ascii_hexdigit())
                && id.bytes().any(|b| b != b'0'))
            .then(|| id.to_ascii_lowercase())
        })
        .unwrap_or_else(|| format!("{:032x}", rng.random_range(1..=u128::MAX)));
    format!("00-{trace_id}-{:016x}-01", rng.random_range(1..=u64::MAX))
}

#[cfg(test)]
mod traceparent_tests {
    use super::*;

    #[test]
    fn outgoing_calls_continue_the_stored_trace_with_a_new_span() {
        let stored = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let out = outgoing_traceparent(Some(stored));
        assert!(
            out.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
            "{out}"
        );
        assert_ne!(out, stored, "a new span id for the broker's own call");
        assert_eq!(out.len(), 55);
        let fresh = outgoing_traceparent(Some("garbage"));
        assert_eq!(fresh.len(), 55);
        assert!(!fresh.contains("garbage"));
        assert_ne!(outgoing_traceparent(None), outgoing_traceparent(None));
    }
}

#[cfg(test)]
mod one_line_tests {
    use std::io::Write;

    use super::OneLine;

    #[test]
    fn an_event_stays_one_line_whatever_its_values_hold() {
        let mut out = OneLine(Vec::new());
        out.write_all(
            b"INFO request failed error=member said \"x\"\nINFO forged tenant.id=acme\r\0\n",
        )
        .unwrap_or_default();
        out.write_all(b"INFO plain\tline \x1b[2mdim\x1b[0m\n")
            .unwrap_or_default();
        let text = String::from_utf8(out.0).unwrap_or_default();
        assert_eq!(
            text,
            "INFO request failed error=member said \"x\"\\nINFO forged tenant.id=acme\\r\\x00\nINFO plain\tline \x1b[2mdim\x1b[0m\n"
        );
        assert_eq!(text.lines().count(), 2);
    }
}
