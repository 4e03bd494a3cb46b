//! Partner clouds: the reference member passes the conformance suite through the CLI; an
//! unreachable or misbehaving endpoint does not.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::process::Command;

use alliance_e2e::{bin, free_port, MemberSim};

fn conformance(endpoint: &str, extra: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(bin());
    command
        .args([
            "conformance",
            "--member-endpoint",
            endpoint,
            "--adapter",
            "federation",
        ])
        .args(extra);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn member_sim_passes_conformance() {
    let member = MemberSim::start("luxcloud-lu", "LU", 100, Some("lux-token")).await;
    let (code, out, err) = conformance(
        &member.url,
        &["--token-env", "LUX_TOKEN"],
        &[("LUX_TOKEN", "lux-token")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("27 passed, 0 failed, 0 skipped"), "{out}");
    assert!(
        out.contains("PASS  wrong credentials are refused as auth_failed"),
        "{out}"
    );
    let (code, out, _) = conformance(
        &member.url,
        &["--token-env", "LUX_TOKEN", "--format", "json"],
        &[("LUX_TOKEN", "lux-token")],
    );
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["failed"], 0);
    assert_eq!(report["checks"].as_array().unwrap().len(), 27);
    // Conformance cleaned up after itself.
    assert!(member.creations().len() >= 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_and_unauthorised_members_fail() {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = conformance(&nowhere, &[], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot read the member's capabilities"),
        "{err}"
    );
    let member = MemberSim::start("locked-lu", "LU", 0, Some("right")).await;
    let (code, _, err) = conformance(&member.url, &["--token-env", "T"], &[("T", "wrong")]);
    assert_ne!(code, 0);
    assert!(err.contains("401"), "{err}");
}
