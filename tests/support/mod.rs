//! End-to-end test support: start the compiled `alliance` binary on a free port with its
//! own data dir (and, when asked, its own PostgreSQL database), mint tokens with it, talk
//! to it over real HTTP, and kill it (SIGTERM or SIGKILL).
//!
//! The binary is `ALLIANCE_BIN` (set by `scripts/test`) or `target/debug/alliance` next to
//! the test executable; a missing binary or a missing PostgreSQL fails the test loudly.
#![forbid(unsafe_code)]
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support: failing loudly is the point"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The bundled demo federation.
pub const DEMO_CONFIG: &str = include_str!("../../config/alliance.toml");
/// The demo's reference rates, which the demo config names beside itself.
pub const REFERENCE_RATES: &str = include_str!("../../config/reference-rates.csv");

/// Operation settings that make tests fast and crash recovery quick.
pub const FAST_OPERATIONS: &str =
    "\n[operations]\nlease_ms = 3000\ncall_timeout_ms = 1000\npoll_interval_ms = 20\n";

/// The `alliance` binary.
pub fn bin() -> PathBuf {
    if let Ok(path) = std::env::var("ALLIANCE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let candidate = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("alliance"))
        .unwrap();
    assert!(
        candidate.exists(),
        "the alliance binary is not built at {}: run scripts/test (or cargo build -p alliance)",
        candidate.display()
    );
    candidate
}

/// Runs the real `curl` (as a tenant would) with `args`; returns the HTTP status and the
/// body. Fails loudly when curl is missing.
pub fn curl(args: &[&str]) -> (u16, Vec<u8>) {
    let out = std::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--output",
            "-",
            "--write-out",
            "\n%{http_code}",
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("curl is needed by this test and cannot run: {e}"));
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut body = out.stdout;
    let split = body.iter().rposition(|b| *b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&body[split + 1..])
        .trim()
        .parse()
        .unwrap();
    body.truncate(split);
    (status, body)
}

/// A fresh scratch directory.
pub fn scratch(name: &str) -> PathBuf {
    let base = std::env::var("ALLIANCE_TEST_WORK")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = base.join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `attempt` every `every` until it returns `Ok`, and returns that value; once
/// `timeout` has passed, fails with the last `Err` (what was seen instead).
pub async fn eventually<T, F, Fut>(timeout: Duration, every: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(seen) => assert!(Instant::now() < deadline, "{seen}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits (from synchronous code) for `child` to exit; fails with `stuck()` after `timeout`.
fn wait_child(child: &mut Child, timeout: Duration, stuck: impl Fn() -> String) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{}", stuck());
        #[expect(
            clippy::disallowed_methods,
            reason = "waits on a child process from synchronous test code"
        )]
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `request` and returns the JSON body.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// GETs `url` with a bearer `token` and returns the JSON body.
pub async fn get_json(url: &str, token: &str) -> Value {
    json_of(reqwest::Client::new().get(url).bearer_auth(token)).await
}

/// A fresh PostgreSQL database on the cluster of `ALLIANCE_TEST_POSTGRES_URL`.
pub async fn postgres_database() -> String {
    let admin = std::env::var("ALLIANCE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| panic!("ALLIANCE_TEST_POSTGRES_URL is not set: run scripts/test, which starts a PostgreSQL cluster"));
    let name = format!("e2e_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let base = admin.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in the data dir.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// How to start a broker.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config text.
    pub config: String,
    /// Reuse this data dir (for restarts); fresh otherwise.
    pub data_dir: Option<PathBuf>,
    /// `ALLIANCE_DATABASE_URL`.
    pub database_url: Option<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

impl Options {
    /// The demo federation with fast operation settings.
    pub fn demo() -> Self {
        Self {
            config: format!("{DEMO_CONFIG}{FAST_OPERATIONS}"),
            data_dir: None,
            database_url: None,
            env: Vec::new(),
        }
    }

    /// The demo on `backend`.
    pub async fn demo_on(backend: Backend) -> Self {
        let mut options = Self::demo();
        if backend == Backend::Postgres {
            options.database_url = Some(postgres_database().await);
        }
        options
    }
}

/// A running broker process.
pub struct Broker {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// Its config file.
    pub config_path: PathBuf,
    /// What it was started with.
    pub options: Options,
    log: PathBuf,
}

impl Broker {
    /// Starts a broker and waits until `/readyz` answers 200.
    pub async fn start(options: Options) -> Broker {
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| scratch("broker"));
        std::fs::create_dir_all(&data_dir).unwrap();
        let config_path = data_dir.join("alliance.toml");
        std::fs::write(&config_path, &options.config).unwrap();
        // The demo config names its reference rates relative to itself.
        std::fs::write(data_dir.join("reference-rates.csv"), REFERENCE_RATES).unwrap();
        let port = free_port();
        let log = data_dir.join(format!("broker-{port}.log"));
        let mut command = Command::new(bin());
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env_remove("ALLIANCE_DATABASE_URL")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("ALLIANCE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(data_dir.join(format!("stdout-{port}.log"))).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(url) = &options.database_url {
            command.env("ALLIANCE_DATABASE_URL", url);
        }
        for (k, v) in &options.env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        let broker = Broker {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            data_dir,
            config_path,
            options,
            log,
        };
        broker.wait_ready().await;
        broker
    }

    /// Starts another broker on the same data dir and database (a restart, or with a
    /// different data dir, a replica).
    pub async fn restart(&self) -> Broker {
        let mut options = self.options.clone();
        options.data_dir = Some(self.data_dir.clone());
        Broker::start(options).await
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let ready = format!("{}/readyz", self.url);
        eventually(
            Duration::from_secs(60),
            Duration::from_millis(25),
            || async {
                match client
                    .get(&ready)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => Ok(()),
                    _ => Err(format!(
                        "broker at {} not ready after 60 s; log:\n{}",
                        self.url,
                        self.log_text()
                    )),
                }
            },
        )
        .await;
    }

    /// Waits for the process to exit on its own (e.g. at a failpoint).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let log = &self.log;
        let status = wait_child(self.child.as_mut().unwrap(), timeout, || {
            format!(
                "the broker did not exit; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        });
        self.child = None;
        status
    }

    /// Its stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Mints a development token.
    pub fn token(&self, role: &str, tenant: Option<&str>) -> String {
        let mut command = Command::new(bin());
        command
            .arg("token")
            .arg("--role")
            .arg(role)
            .arg("--config")
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(&self.data_dir);
        if let Some(t) = tenant {
            command.arg("--tenant").arg(t);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "alliance token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Mints a development token with any `alliance token` arguments.
    pub fn token_with(&self, args: &[&str]) -> String {
        let out = Command::new(bin())
            .arg("token")
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "alliance token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// A client acting with `token`.
    pub fn client(&self, token: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: self.url.clone(),
            token: Some(token.to_owned()),
        }
    }

    /// A client without a token.
    pub fn anonymous(&self) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: self.url.clone(),
            token: None,
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        wait_child(&mut child, Duration::from_secs(30), || {
            "broker did not stop within 30 s of SIGTERM".to_owned()
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An answer: status, headers, body bytes.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Raw body.
    pub bytes: Vec<u8>,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }

    /// The body as text (lossily), for failure messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Asserts the status (showing the body when it differs); returns the answer.
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{}", self.text());
        self
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Asserts a problem+json answer with `status` and `code`.
    pub fn assert_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.bytes)
        );
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(body["code"], code, "body: {body}");
        assert_eq!(body["status"], status);
        body
    }
}

/// An HTTP client bound to one broker and token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// Sends a request.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap().to_vec();
        Answer {
            status,
            headers,
            bytes,
        }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None, &[]).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.post_with(path, body, &[]).await
    }

    /// POST with a JSON body and extra headers (e.g. `idempotency-key`).
    pub async fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body), headers)
            .await
    }

    /// PATCH with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        self.send(reqwest::Method::PATCH, path, Some(body), &[])
            .await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Answer {
        self.send(reqwest::Method::DELETE, path, None, &[]).await
    }

    /// GET, asserting a problem+json answer with `status` and `code`; returns the problem.
    pub async fn get_problem(&self, path: &str, status: u16, code: &str) -> Value {
        self.get(path).await.assert_problem(status, code)
    }

    /// POST, asserting a problem+json answer with `status` and `code`; returns the problem.
    pub async fn post_problem(&self, path: &str, body: &Value, status: u16, code: &str) -> Value {
        self.post(path, body).await.assert_problem(status, code)
    }

    /// DELETE, asserting a problem+json answer with `status` and `code`; returns the problem.
    pub async fn delete_problem(&self, path: &str, status: u16, code: &str) -> Value {
        self.delete(path).await.assert_problem(status, code)
    }

    /// POSTs `body` (with `headers`) and asserts 202 Accepted; returns the answer, whose
    /// body is the operation.
    pub async fn post_accepted(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Answer {
        let answer = self.post_with(path, body, headers).await;
        answer.assert_status(202);
        answer
    }

    /// Polls an operation until it ends; returns it.
    pub async fn wait_operation(&self, id: &str) -> Value {
        let path = format!("/v1/operations/{id}");
        eventually(
            Duration::from_secs(60),
            Duration::from_millis(50),
            || async {
                let answer = self.get(&path).await;
                assert_eq!(answer.status, 200, "operation {id}: {}", answer.text());
                let op = answer.json();
                if op["status"] == "succeeded" || op["status"] == "failed" {
                    Ok(op)
                } else {
                    Err(format!("operation {id} did not finish: {op}"))
                }
            },
        )
        .await
    }

    /// Polls an operation until it ends and asserts that it succeeded; returns it.
    pub async fn wait_succeeded(&self, id: &str) -> Value {
        let done = self.wait_operation(id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        done
    }

    /// Waits until the create operation `op` (as accepted) succeeded; returns its resource,
    /// read from `collection`.
    pub async fn created(&self, collection: &str, op: &Value) -> Value {
        self.wait_succeeded(op["id"].as_str().unwrap()).await;
        self.get(&format!(
            "{collection}/{}",
            op["resource_id"].as_str().unwrap()
        ))
        .await
        .json()
    }

    /// Creates and waits; returns the resource.
    pub async fn create_and_wait(&self, collection: &str, body: &Value) -> Value {
        let op = self.post_accepted(collection, body, &[]).await.json();
        self.created(collection, &op).await
    }

    /// Posts a change (an action, an attachment) and waits until its operation succeeded;
    /// returns the finished operation.
    pub async fn change_and_wait(&self, path: &str, body: &Value) -> Value {
        let op = self.post_accepted(path, body, &[]).await.json();
        self.wait_succeeded(op["id"].as_str().unwrap()).await
    }

    /// Creates the bucket `name` in `jurisdiction` and waits; returns it.
    pub async fn create_bucket(&self, name: &str, jurisdiction: &str) -> Value {
        self.create_and_wait(
            "/v1/buckets",
            &serde_json::json!({ "name": name, "jurisdiction": jurisdiction }),
        )
        .await
    }

    /// Submits a create and waits for its operation to end, however it ends; returns the
    /// finished operation and the resource id.
    pub async fn submit_and_wait(&self, collection: &str, body: &Value) -> (Value, String) {
        let op = self.post_accepted(collection, body, &[]).await.json();
        (
            self.wait_operation(op["id"].as_str().unwrap()).await,
            op["resource_id"].as_str().unwrap().to_owned(),
        )
    }

    /// Deletes `collection/id`, asserting 202 Accepted, and waits until the operation
    /// succeeded; returns it.
    pub async fn delete_and_wait(&self, collection: &str, id: &str) -> Value {
        let answer = self.delete(&format!("{collection}/{id}")).await;
        answer.assert_status(202);
        self.wait_succeeded(answer.json()["id"].as_str().unwrap())
            .await
    }

    /// The dry run of placing a bucket in `jurisdiction` (`/v1/placement/evaluate`).
    pub async fn evaluate_bucket(&self, jurisdiction: &str) -> Value {
        self.post(
            "/v1/placement/evaluate",
            &serde_json::json!({ "resource_type": "bucket", "jurisdiction": jurisdiction }),
        )
        .await
        .json()
    }
}

/// Runs `alliance` with arguments; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Counts, in simulated members' journals under `data_dir`, how often each broker
/// resource id was really created at a member.
pub fn sim_creations(data_dirs: &[&Path]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for dir in data_dirs {
        let Ok(entries) = std::fs::read_dir(dir.join("sim")) else {
            continue;
        };
        for entry in entries {
            count_creations(&entry.unwrap().path(), &mut counts);
        }
    }
    counts
}

/// Adds the real creations recorded in one sim journal to `counts`.
fn count_creations(journal: &Path, counts: &mut std::collections::BTreeMap<String, usize>) {
    let text = std::fs::read_to_string(journal).unwrap_or_default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["event"] == "created" {
            *counts
                .entry(v["resource"]["broker_id"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
    }
}

/// The current UTC month, `YYYY-MM`.
#[expect(
    clippy::disallowed_methods,
    reason = "the month the broker under test is in: the machine's wall clock"
)]
pub fn this_month() -> String {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    alliance_core::billing::iso(now)[..7].to_owned()
}

/// Runs `alliance ARGS --config … --data-dir …` against a broker's config, data dir and
/// database; returns the output.
pub fn cli_for(broker: &Broker, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(bin());
    command
        .args(args)
        .arg("--config")
        .arg(&broker.config_path)
        .arg("--data-dir")
        .arg(&broker.data_dir);
    command.env_remove("ALLIANCE_DATABASE_URL");
    if let Some(url) = &broker.options.database_url {
        command.env("ALLIANCE_DATABASE_URL", url);
    }
    command.output().unwrap()
}

/// A reference member (`alliance member-sim`) in its own process.
pub struct MemberSim {
    child: Option<Child>,
    /// Its member id.
    pub id: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its journal (state) file.
    pub state_file: PathBuf,
    args: Vec<String>,
}

impl MemberSim {
    /// Starts `alliance member-sim` and waits until it answers.
    pub async fn start(
        id: &str,
        jurisdiction: &str,
        delay_ms: u64,
        token: Option<&str>,
    ) -> MemberSim {
        let dir = scratch(&format!("member-{id}"));
        let state_file = dir.join("state.jsonl");
        let mut args = vec![
            "member-sim".to_owned(),
            "--member-id".to_owned(),
            id.to_owned(),
            "--jurisdiction".to_owned(),
            jurisdiction.to_owned(),
            "--delay-ms".to_owned(),
            delay_ms.to_string(),
            "--state-file".to_owned(),
            state_file.display().to_string(),
        ];
        if let Some(token) = token {
            args.push("--token".to_owned());
            args.push(token.to_owned());
        }
        let mut sim = MemberSim {
            child: None,
            id: id.to_owned(),
            url: String::new(),
            state_file,
            args,
        };
        sim.spawn().await;
        sim
    }

    async fn spawn(&mut self) {
        let port = if self.url.is_empty() {
            free_port()
        } else {
            self.url.rsplit(':').next().unwrap().parse().unwrap()
        };
        let child = Command::new(bin())
            .args(&self.args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env_remove("ALLIANCE_MEMBER_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let capabilities = format!("{}/federation/v1/capabilities", self.url);
        let id = &self.id;
        eventually(
            Duration::from_secs(30),
            Duration::from_millis(20),
            || async {
                match client
                    .get(&capabilities)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                {
                    Ok(r) if r.status().as_u16() == 200 || r.status().as_u16() == 401 => Ok(()),
                    _ => Err(format!("member-sim {id} did not start")),
                }
            },
        )
        .await;
    }

    /// How often each broker resource id was really created at this member.
    pub fn creations(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        count_creations(&self.state_file, &mut counts);
        counts
    }
}

/// How often each broker resource id was really created, summed over `members`.
pub fn member_creations(members: &[MemberSim]) -> std::collections::BTreeMap<String, usize> {
    let mut all = std::collections::BTreeMap::new();
    for m in members {
        for (id, n) in m.creations() {
            *all.entry(id).or_insert(0) += n;
        }
    }
    all
}

/// Asserts that each of `resources` was created exactly once at its member and that
/// nothing else was created (`creations` as from [`sim_creations`] or [`member_creations`]).
pub fn assert_created_once<'a>(
    creations: &std::collections::BTreeMap<String, usize>,
    resources: impl ExactSizeIterator<Item = &'a str>,
) {
    let expected = resources.len();
    for resource in resources {
        assert_eq!(
            creations.get(resource),
            Some(&1),
            "resource {resource} was created {:?} times at its member",
            creations.get(resource)
        );
    }
    assert_eq!(
        creations.len(),
        expected,
        "no other resource was created at any member"
    );
}

impl Drop for MemberSim {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The demo federation with its three members replaced by member-sims (in demo order:
/// numergy-fr, belgacom-be, telekom-de), plus fast operation settings.
pub fn federation_config(members: &[&MemberSim], token_env: Option<&str>) -> String {
    let mut config = DEMO_CONFIG.to_owned();
    for member in members {
        let token = token_env
            .map(|t| format!(", token_env = \"{t}\""))
            .unwrap_or_default();
        let line = format!(
            "adapter = {{ kind = \"federation\", endpoint = \"{}\"{token} }}",
            member.url
        );
        config = config.replacen("adapter = { kind = \"sim\", delay_ms = 300 }", &line, 1);
    }
    format!("{config}{FAST_OPERATIONS}")
}

impl MemberSim {
    /// Kills the member (SIGKILL): it stops answering; its state file stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same state.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

/// The demo federation on `backend` with its three members as member-sims (demo order),
/// each requiring `token`, which the broker reads from `MEMBER_TOKEN`.
pub async fn demo_federation(
    backend: Backend,
    delay_ms: u64,
    token: &str,
) -> (Vec<MemberSim>, Options) {
    let members = vec![
        MemberSim::start("numergy-fr", "FR", delay_ms, Some(token)).await,
        MemberSim::start("belgacom-be", "BE", delay_ms, Some(token)).await,
        MemberSim::start("telekom-de", "DE", delay_ms, Some(token)).await,
    ];
    let mut options = Options::demo_on(backend).await;
    options.config = federation_config(&members.iter().collect::<Vec<_>>(), Some("MEMBER_TOKEN"));
    options.env.push(("MEMBER_TOKEN".into(), token.into()));
    (members, options)
}

/// A moto server (EC2 + S3, SigV4 checked) of one test, and its boto3 oracle
/// (tests/peers/moto-peer.py, run by the moto virtualenv's python that `scripts/test`
/// installs and names in `ALLIANCE_TEST_MOTO_PYTHON`).
pub struct Moto {
    child: Child,
    answers: std::io::BufReader<std::process::ChildStdout>,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The IAM access key id the server checks signatures against.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
}

impl Moto {
    /// Starts moto on a free port with an IAM user whose key every request must be
    /// signed with.
    pub fn start() -> Moto {
        use std::io::BufRead as _;
        let python = std::env::var("ALLIANCE_TEST_MOTO_PYTHON").unwrap_or_else(|_| {
            panic!("ALLIANCE_TEST_MOTO_PYTHON is not set: run scripts/test, which installs moto (scripts/peers install)")
        });
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/moto-peer.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto with {python}: {e}"));
        let mut answers = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        answers.read_line(&mut line).unwrap();
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("moto did not start ({e}): {line:?}"));
        Moto {
            child,
            answers,
            endpoint: ready["endpoint"].as_str().unwrap().to_owned(),
            access_key_id: ready["access_key_id"].as_str().unwrap().to_owned(),
            secret_access_key: ready["secret_access_key"].as_str().unwrap().to_owned(),
        }
    }

    /// Asks the boto3 oracle: `instances ID`, `volumes ID` or `bucket NAME`.
    pub fn ask(&mut self, question: &str) -> Value {
        use std::io::{BufRead as _, Write as _};
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{question}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.answers.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("moto oracle: {e}: {line:?}"))
    }

    /// The environment a broker needs to sign for this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                self.secret_access_key.clone(),
            ),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A variable set by `scripts/peers start-openstack` (through `scripts/test`).
pub fn openstack_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test, which starts Keystone, Swift and the Nova/Cinder fake (scripts/peers start-openstack)")
    })
}

/// The OpenStack peers' variables (every `ALLIANCE_TEST_OS*` one), for a child process.
pub fn openstack_vars() -> Vec<(String, String)> {
    openstack_env("ALLIANCE_TEST_OS_AUTH_URL");
    std::env::vars()
        .filter(|(k, _)| k.starts_with("ALLIANCE_TEST_OS"))
        .collect()
}

/// A Keystone token of the broker's user on its project, for checking the member
/// independently of the adapter.
pub async fn openstack_token() -> String {
    let body = serde_json::json!({ "auth": {
        "identity": { "methods": ["password"], "password": { "user": {
            "name": openstack_env("ALLIANCE_TEST_OS_USERNAME"), "domain": { "name": "Default" },
            "password": openstack_env("ALLIANCE_TEST_OS_PASSWORD") } } },
        "scope": { "project": { "name": openstack_env("ALLIANCE_TEST_OS_PROJECT_NAME"), "domain": { "name": "Default" } } } } });
    // Keystone on SQLite answers 500 now and then while the whole suite loads it ("database
    // is locked"): a 5xx is retried, anything else fails the test.
    let client = reqwest::Client::new();
    let url = format!("{}/auth/tokens", openstack_env("ALLIANCE_TEST_OS_AUTH_URL"));
    let mut attempt = 0;
    let answer = loop {
        let answer = client.post(&url).json(&body).send().await.unwrap();
        attempt += 1;
        if !answer.status().is_server_error() || attempt == 5 {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
    };
    assert_eq!(
        answer.status(),
        201,
        "Keystone refused the test's token request"
    );
    answer.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Operations for real services: calls of up to 20 s, leases longer than a call.
pub const REAL_OPERATIONS: &str =
    "\n[operations]\nlease_ms = 60000\ncall_timeout_ms = 20000\npoll_interval_ms = 20\n";

/// A variable set by `scripts/peers start-openstack` for the real OpenStack services
/// (`ALLIANCE_TEST_OSREAL_<name>`).
pub fn osreal(name: &str) -> String {
    let var = format!("ALLIANCE_TEST_OSREAL_{name}");
    std::env::var(&var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/test, which starts real Nova, Cinder, Glance and Neutron (scripts/peers start-openstack)")
    })
}

/// Every `ALLIANCE_TEST_OSREAL_*` variable, for a child process.
pub fn osreal_vars() -> Vec<(String, String)> {
    osreal("AUTH_URL");
    std::env::vars()
        .filter(|(k, _)| k.starts_with("ALLIANCE_TEST_OSREAL_"))
        .collect()
}

/// Creates an instance in `country` on a broker armed to abort between the member's
/// answer and its commit; restarts it unarmed; returns the restarted broker and the
/// finished resource's id.
pub async fn crash_after_member_answer(mut options: Options, country: &str) -> (Broker, String) {
    options
        .env
        .push(("ALLIANCE_FAILPOINT".into(), "after-member-create".into()));
    let mut armed = Broker::start(options.clone()).await;
    let acme = armed.client(&armed.token("tenant-admin", Some("acme")));
    let accepted = acme
        .post_accepted(
            "/v1/instances",
            &serde_json::json!({ "name": "survivor", "jurisdiction": country, "size": "small", "image": "debian-12" }),
            &[("idempotency-key", "crash-once")],
        )
        .await
        .json();
    // The member answers, then the broker dies before committing.
    let status = armed.wait_exit(Duration::from_secs(60));
    assert!(
        !status.success(),
        "the broker should have been killed at the failpoint"
    );
    assert!(
        armed
            .log_text()
            .contains("failpoint after-member-create reached"),
        "{}",
        armed.log_text()
    );
    let mut unarmed = armed.options.clone();
    unarmed.env.retain(|(k, _)| k != "ALLIANCE_FAILPOINT");
    unarmed.data_dir = Some(armed.data_dir.clone());
    let restarted = Broker::start(unarmed).await;
    let acme = restarted.client(&restarted.token("tenant-admin", Some("acme")));
    acme.wait_succeeded(accepted["id"].as_str().unwrap()).await;
    (
        restarted,
        accepted["resource_id"].as_str().unwrap().to_owned(),
    )
}

/// A partner application once its conformance run has ended (within `timeout`).
pub async fn application_settled(client: &Client, id: &str, timeout: Duration) -> Value {
    let path = format!("/v1/partner-applications/{id}");
    eventually(timeout, Duration::from_millis(100), || async {
        let app = client.get(&path).await.json();
        if app["status"] != "conformance_running" {
            Ok(app)
        } else {
            Err(format!("conformance did not finish: {app}"))
        }
    })
    .await
}

/// The OIDC issuer peer (npm `oauth2-mock-server` through `tests/peers/oidc-issuer.mjs`,
/// named by `ALLIANCE_TEST_OIDC_ISSUER`), on a free port; stopped when dropped.
pub struct OidcPeer {
    /// Its issuer URL.
    pub issuer: String,
    /// Its port.
    pub port: u16,
    child: Child,
}

impl OidcPeer {
    /// Starts it; fails loudly when `scripts/test` did not install it.
    pub fn start() -> OidcPeer {
        use std::io::BufRead;
        let script = std::env::var("ALLIANCE_TEST_OIDC_ISSUER").unwrap_or_else(|_| {
            panic!("ALLIANCE_TEST_OIDC_ISSUER is not set: run scripts/test, which installs the OIDC peer")
        });
        let port = free_port();
        let mut child = Command::new("node")
            .arg(&script)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut issuer = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut issuer)
            .unwrap();
        let issuer = issuer.trim().to_owned();
        assert!(
            issuer.starts_with("http://"),
            "the OIDC peer printed `{issuer}`"
        );
        OidcPeer {
            issuer,
            port,
            child,
        }
    }

    /// The demo config trusting this issuer through discovery, with `extra` keys in its
    /// `[[auth.issuers]]` entry.
    pub fn demo_config(&self, extra: &str) -> String {
        format!(
            "{}{FAST_OPERATIONS}",
            DEMO_CONFIG.replacen(
                "[security]",
                &format!(
                    "[[auth.issuers]]\nissuer = \"{}\"\ndiscovery = true\nalgorithms = [\"RS256\"]\n{extra}\n[security]",
                    self.issuer
                ),
                1
            )
        )
    }
}

impl Drop for OidcPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
