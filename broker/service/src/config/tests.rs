//! Configuration: parsing, validation with keys and lines, and environment overrides.

use std::collections::BTreeMap;

use super::*;

#[test]
fn the_demo_config_is_valid() {
    let config = Config::load(None).expect("demo config");
    assert_eq!(config.members.len(), 4);
    assert_eq!(config.tenants.len(), 2);
    assert!(config.auth.dev_issuer.enabled);
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8700");
}

#[test]
fn a_misspelt_key_names_the_key_and_the_line() {
    let text = "[server]\nlisten = \"127.0.0.1:1\"\n\n[database]\nulr = \"sqlite://x.db\"\n";
    let err = Config::parse(text, "f.toml").expect_err("misspelt");
    assert_eq!(err.problems[0].key, "ulr");
    assert_eq!(err.problems[0].line, Some(5));
    let shown = err.to_string();
    assert!(
        shown.contains("f.toml") && shown.contains("line 5") && shown.contains("ulr"),
        "{shown}"
    );
}

#[test]
fn bad_values_and_cross_field_rules_are_reported_with_lines() {
    let text =
        "[[tenants]]\nid = \"t\"\nhome_jurisdiction = \"IT\"\nallowed_jurisdictions = [\"FR\"]\n";
    let err = Config::parse(text, "f.toml").expect_err("home not allowed");
    assert_eq!(err.problems[0].key, "tenants[0].home_jurisdiction");
    assert_eq!(err.problems[0].line, Some(2));

    let text =
        "[[tenants]]\nid = \"t\"\nhome_jurisdiction = \"XX\"\nallowed_jurisdictions = [\"FR\"]\n";
    let err = Config::parse(text, "f.toml").expect_err("bad code");
    assert_eq!(err.problems[0].line, Some(3));
    assert!(err.to_string().contains("ISO 3166-1"), "{err}");

    let text = "[[members]]\nid = \"m\"\nname = \"M\"\njurisdictions = [\"FR\"]\nservices = [\"instance\"]\nadapter = { kind = \"sim\", delay = 3 }\n";
    let err = Config::parse(text, "f.toml").expect_err("unknown adapter key");
    assert_eq!(err.problems[0].line, Some(6));
    assert!(err.to_string().contains("delay"), "{err}");
}

#[test]
fn issuer_algorithms_and_member_networks_are_checked() {
    let text = "[auth]\n[[auth.issuers]]\nissuer = \"https://idp\"\njwks_url = \"https://idp/jwks\"\nalgorithms = [\"HS256\"]\n[security]\nallowed_member_networks = [\"10.0.0.0/33\"]\n";
    let err = Config::parse(text, "f.toml").expect_err("bad algorithm and network");
    let shown = err.to_string();
    assert!(
        shown.contains("HS256") && shown.contains("10.0.0.0/33"),
        "{shown}"
    );
}

#[test]
fn database_passwords_never_show_in_errors() {
    assert_eq!(redact_url("mysql://u:s3cret@h/db"), "mysql://u:***@h/db");
    let mut config = Config::load(None).expect("demo");
    let env = BTreeMap::from([(
        "ALLIANCE_DATABASE_URL".to_owned(),
        "mysql://u:s3cret@h/db".to_owned(),
    )]);
    let err = config.apply_env(&env).expect_err("unsupported scheme");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[test]
fn env_overrides_apply_and_are_checked() {
    let mut config = Config::load(None).expect("demo");
    let env = BTreeMap::from([
        ("ALLIANCE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        (
            "ALLIANCE_DATABASE_URL".to_owned(),
            "postgres://u@h/db".to_owned(),
        ),
    ]);
    config.apply_env(&env).expect("overrides");
    assert_eq!(config.server.listen.port(), 0);
    assert_eq!(config.database.url, "postgres://u@h/db");
    let env = BTreeMap::from([("ALLIANCE_LISTEN".to_owned(), "nowhere".to_owned())]);
    let err = config.apply_env(&env).expect_err("bad listen");
    assert_eq!(err.problems[0].key, "ALLIANCE_LISTEN");
}
