//! `alliance-load`: throughput figures for scripts/bench (not a test).
//!
//! Starts the `alliance` binary (`ALLIANCE_BIN`, a release build) with zero-delay simulated
//! members on SQLite or PostgreSQL, then measures:
//! - completed provisioning operations per second (N creates, concurrency C, until the
//!   engine reports them all succeeded);
//! - authenticated GETs per second of one resource for a fixed time (when `wrk` is not
//!   used by the calling script).
#![expect(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark driver"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alliance_e2e::{eventually, get_json, Backend, Broker, Options, DEMO_CONFIG};
use serde_json::json;

fn zero_delay_config() -> String {
    format!(
        "{}\n[operations]\nconcurrency = 256\npoll_interval_ms = 5\n",
        DEMO_CONFIG.replace("delay_ms = 300", "delay_ms = 0")
    )
}

async fn succeeded(client: &reqwest::Client, url: &str) -> u64 {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("alliance_operations_total") && l.contains("outcome=\"succeeded\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backend = match args.get(1).map(String::as_str) {
        Some("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    let operations: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(5000);
    let concurrency: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(64);
    let get_seconds: u64 = args.get(4).and_then(|n| n.parse().ok()).unwrap_or(10);

    let mut options = Options::demo_on(backend).await;
    options.config = zero_delay_config();
    options.env.push(("ALLIANCE_LOG".into(), "warn".into()));
    let broker = Broker::start(options).await;
    let token = broker.token("tenant-admin", Some("acme"));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();

    // Completed provisioning operations per second.
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url, token, next) = (
            http.clone(),
            broker.url.clone(),
            token.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= operations {
                    break;
                }
                let country = ["FR", "BE", "DE"][i % 3];
                let r = http
                    .post(format!("{url}/v1/buckets"))
                    .bearer_auth(&token)
                    .json(&json!({ "name": format!("b{i}"), "jurisdiction": country }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let accepted_in = started.elapsed();
    eventually(
        Duration::from_secs(600),
        Duration::from_millis(20),
        || async {
            if succeeded(&http, &broker.url).await >= operations as u64 {
                Ok(())
            } else {
                Err("operations did not complete".to_owned())
            }
        },
    )
    .await;
    let completed_in = started.elapsed();
    println!(
        "{:?}: {operations} operations accepted in {:.2} s ({:.0}/s), completed in {:.2} s => {:.0} completed operations/s",
        backend,
        accepted_in.as_secs_f64(),
        operations as f64 / accepted_in.as_secs_f64(),
        completed_in.as_secs_f64(),
        operations as f64 / completed_in.as_secs_f64()
    );

    // A resource to GET, and the token, for wrk.
    let list = get_json(&format!("{}/v1/buckets?limit=1", broker.url), &token).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/buckets/{id}");
    if std::env::var("ALLIANCE_BENCH_WRK").is_ok() {
        println!("WRK_TARGET {}{path}", broker.url);
        println!("WRK_TOKEN {token}");
        // Keep the broker up until the script is done with it.
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return;
    }
    let count = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(get_seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url, token, count, path) = (
            http.clone(),
            broker.url.clone(),
            token.clone(),
            count.clone(),
            path.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let r = http
                    .get(format!("{url}{path}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!("{:?}: {:.0} authenticated GETs/s (in-process client, {concurrency} connections, {get_seconds} s)", backend, count.load(Ordering::Relaxed) as f64 / get_seconds as f64);
}
