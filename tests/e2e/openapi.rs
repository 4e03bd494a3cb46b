//! The OpenAPI document served by the compiled broker, checked by third-party tools: PyPI
//! `openapi-spec-validator` must accept it, and a client generated from it by
//! `openapi-python-client` must work against the broker (`tests/peers/openapi_client_check.py`
//! creates three instances and pages through them with the generated `list_instances`).
//! `scripts/peers install-openapi` installs both tools into `target/peers/openapi`;
//! `scripts/test` names its python in `ALLIANCE_TEST_OPENAPI_PYTHON`. Without it this test
//! fails loudly.
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use alliance_e2e::{scratch, Broker, Options};

/// What the generator may warn about: endpoints it cannot generate by design.
/// `text/csv` bodies (member statements) are outside what openapi-python-client supports.
const EXPECTED_GENERATOR_WARNINGS: &[&str] =
    &["WARNING parsing PUT /v1/members/{id}/statements/{period} within billing."];

/// The bin dir of the openapi venv, from `ALLIANCE_TEST_OPENAPI_PYTHON`.
fn openapi_venv() -> (PathBuf, PathBuf) {
    let python = std::env::var("ALLIANCE_TEST_OPENAPI_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ALLIANCE_TEST_OPENAPI_PYTHON is not set: run scripts/test, or `scripts/peers install-openapi` \
             and set it to target/peers/openapi/bin/python"
        )
    });
    let python = PathBuf::from(python);
    let bin = python.parent().unwrap().to_path_buf();
    for tool in ["openapi-spec-validator", "openapi-python-client"] {
        assert!(
            python.exists() && bin.join(tool).exists(),
            "ALLIANCE_TEST_OPENAPI_PYTHON={} but {} is missing: run scripts/peers install-openapi",
            python.display(),
            bin.join(tool).display()
        );
    }
    (python, bin)
}

/// Runs a tool of the venv with the venv first on PATH (the generator runs `ruff`).
fn run(bin: &Path, program: &Path, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(program);
    command.args(args).current_dir(dir).env("PATH", path);
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_document_validates_and_a_generated_client_works() {
    let (python, bin) = openapi_venv();
    let broker = Broker::start(Options::demo()).await;
    let work = scratch("openapi");

    // The document as served over HTTP.
    let answer = broker.anonymous().get("/openapi.json").await;
    assert_eq!(answer.status, 200);
    let document = work.join("openapi.json");
    std::fs::write(&document, &answer.bytes).unwrap();
    let document_arg = document.to_str().unwrap();

    // A validator of OpenAPI 3.1 accepts it.
    let out = run(
        &bin,
        &bin.join("openapi-spec-validator"),
        &[document_arg],
        &work,
        &[],
    );
    assert!(
        out.status.success(),
        "openapi-spec-validator rejects /openapi.json:\n{}",
        text(&out)
    );

    // A client generated from it, with no warning but the expected ones.
    let package = work.join("alliance_client");
    let out = run(
        &bin,
        &bin.join("openapi-python-client"),
        &[
            "generate",
            "--path",
            document_arg,
            "--output-path",
            package.to_str().unwrap(),
            "--meta",
            "none",
        ],
        &work,
        &[],
    );
    let generator = text(&out);
    assert!(
        out.status.success(),
        "openapi-python-client cannot generate a client:\n{generator}"
    );
    let unexpected: Vec<&str> = generator
        .lines()
        .filter(|l| l.starts_with("WARNING") || l.contains("not in PATH"))
        .filter(|l| !EXPECTED_GENERATOR_WARNINGS.iter().any(|w| l.starts_with(w)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "openapi-python-client warns about {unexpected:?}:\n{generator}"
    );
    assert!(package.join("api/instances/list_instances.py").exists());

    // The generated client against the broker: three instances, pages of two and one.
    let token = broker.token("tenant-admin", Some("acme"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/openapi_client_check.py");
    let out = run(
        &bin,
        &python,
        &[
            script.to_str().unwrap(),
            package.to_str().unwrap(),
            &broker.url,
        ],
        &work,
        &[("ALLIANCE_CLIENT_TOKEN", &token)],
    );
    assert!(
        out.status.success(),
        "the generated client failed against the broker:\n{}\nbroker log:\n{}",
        text(&out),
        broker.log_text()
    );
    eprintln!("{}", text(&out).trim());
}
