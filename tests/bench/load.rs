//! `alliance-load`: throughput figures for scripts/bench (not a test).
//!
//! Starts the `alliance` binary (`ALLIANCE_BIN`, a release build) with zero-delay simulated
//! members on SQLite or PostgreSQL, then measures:
//! - completed provisioning operations per second (N creates, concurrency C, until the
//!   engine reports them all succeeded);
//! - authenticated GETs per second of one resource for a fixed time (when `wrk` is not
//!   used by the calling script).
//!
//! `alliance-load replicas N C`: two `alliance serve` replicas on one PostgreSQL
//! (`ALLIANCE_TEST_POSTGRES_URL`) with three zero-delay `alliance member-sim` members; N
//! creations from C clients, alternating between the replicas, timed until both replicas
//! report them all succeeded; then each member's journal is read, and every accepted
//! resource must have been created exactly once there, and nothing else.
#![expect(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark driver"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alliance_e2e::{
    assert_created_once, demo_federation, eventually, get_json, member_creations, Backend, Broker,
    Options, DEMO_CONFIG, FAST_OPERATIONS,
};
use serde_json::json;

fn zero_delay_config() -> String {
    format!(
        "{}{BENCH_OPERATIONS}",
        DEMO_CONFIG.replace("delay_ms = 300", "delay_ms = 0")
    )
}

/// The engine settings of every run: many operations in flight, a short poll.
const BENCH_OPERATIONS: &str = "\n[operations]\nconcurrency = 256\npoll_interval_ms = 5\n";

/// Sends `operations` bucket creations from `concurrency` clients, request `i` to
/// `targets[i % len]` (url, token); returns the time it took and the accepted resource ids.
async fn create_buckets(
    http: &reqwest::Client,
    targets: &[(String, String)],
    operations: usize,
    concurrency: usize,
) -> (Duration, Vec<String>) {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(std::sync::Mutex::new(Vec::with_capacity(operations)));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, targets, next, accepted) = (
            http.clone(),
            targets.to_vec(),
            next.clone(),
            accepted.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= operations {
                    break;
                }
                let (url, token) = &targets[i % targets.len()];
                let country = ["FR", "BE", "DE"][i % 3];
                let r = http
                    .post(format!("{url}/v1/buckets"))
                    .bearer_auth(token)
                    .json(&json!({ "name": format!("b{i}"), "jurisdiction": country }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                let op: serde_json::Value = r.json().await.unwrap();
                let resource = op["resource_id"].as_str().unwrap().to_owned();
                accepted.lock().unwrap().push(resource);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let accepted = std::mem::take(&mut *accepted.lock().unwrap());
    (started.elapsed(), accepted)
}

/// Waits until the replicas at `urls` together report `operations` succeeded.
async fn wait_succeeded(http: &reqwest::Client, urls: &[String], operations: usize) {
    eventually(
        Duration::from_secs(600),
        Duration::from_millis(20),
        || async {
            let mut done = 0;
            for url in urls {
                done += succeeded(http, url).await;
            }
            if done >= operations as u64 {
                Ok(())
            } else {
                Err(format!("{done} of {operations} operations completed"))
            }
        },
    )
    .await;
}

async fn replicas(operations: usize, concurrency: usize) {
    let (members, mut options) = demo_federation(Backend::Postgres, 0, "bench-token").await;
    options.config = options.config.replace(FAST_OPERATIONS, BENCH_OPERATIONS);
    options.env.push(("ALLIANCE_LOG".into(), "warn".into()));
    let a = Broker::start(options.clone()).await;
    let b = Broker::start(options).await;
    let targets = [
        (a.url.clone(), a.token("tenant-admin", Some("acme"))),
        (b.url.clone(), b.token("tenant-admin", Some("acme"))),
    ];
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let started = Instant::now();
    let (accepted_in, accepted) = create_buckets(&http, &targets, operations, concurrency).await;
    let urls = [a.url.clone(), b.url.clone()];
    wait_succeeded(&http, &urls, operations).await;
    let completed_in = started.elapsed();
    let by_replica = [
        succeeded(&http, &a.url).await,
        succeeded(&http, &b.url).await,
    ];
    let creations = member_creations(&members);
    let at_members: usize = creations.values().sum();
    assert_created_once(&creations, accepted.iter().map(String::as_str));
    println!(
        "2 replicas: {operations} operations accepted in {:.2} s ({:.0}/s), completed in {:.2} s => {:.0} completed operations/s; run by replica: {} + {}; created at the members: {at_members} (accepted: {}, each exactly once)",
        accepted_in.as_secs_f64(),
        operations as f64 / accepted_in.as_secs_f64(),
        completed_in.as_secs_f64(),
        operations as f64 / completed_in.as_secs_f64(),
        by_replica[0],
        by_replica[1],
        accepted.len(),
    );
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
    if args.get(1).map(String::as_str) == Some("replicas") {
        let operations = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(20_000);
        let concurrency = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(128);
        replicas(operations, concurrency).await;
        return;
    }
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
    let targets = [(broker.url.clone(), token.clone())];
    let (accepted_in, _) = create_buckets(&http, &targets, operations, concurrency).await;
    wait_succeeded(&http, std::slice::from_ref(&broker.url), operations).await;
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
