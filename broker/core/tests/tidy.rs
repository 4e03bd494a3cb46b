//! The core stays pure: no crate that performs I/O may appear among its dependencies.

#[test]
fn core_depends_on_no_io_crate() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("read Cargo.toml");
    let parsed: toml::Table = manifest.parse().expect("parse Cargo.toml");
    let deps = parsed
        .get("dependencies")
        .and_then(|d| d.as_table())
        .expect("[dependencies]");
    let forbidden = [
        "tokio",
        "sqlx",
        "reqwest",
        "axum",
        "hyper",
        "tower",
        "async-std",
        "mio",
    ];
    for name in deps.keys() {
        assert!(
            !forbidden.contains(&name.as_str()),
            "the pure core must not depend on the I/O crate `{name}`"
        );
    }
}
