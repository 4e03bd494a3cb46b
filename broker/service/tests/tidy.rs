//! The shape of the service, checked: services speak the domain, not HTTP, and no source
//! file grows past what a reader holds in mind.
//!
//! Only `api/` (the router, handlers, views and the problem renderer), the `Authorized`
//! extractor in `auth/mod.rs`, `startup.rs` (which serves the router) and the console's
//! pages may name the HTTP framework. Provisioning, partners, billing, tenancy,
//! reconciliation, the store and the rest return domain values and `ApiError`, and `api/`
//! turns them into responses.

use std::path::{Path, PathBuf};

/// Where HTTP may be spoken, relative to `src/`.
const HTTP_ALLOWED: &[&str] = &["api/", "auth/mod.rs", "startup.rs", "console/"];

/// What speaking HTTP looks like in Rust source.
const HTTP_MARKERS: &[&str] = &[
    "axum::",
    "use axum",
    "tower_http::",
    "StatusCode",
    "HeaderMap",
    "IntoResponse",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn service_sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(&src)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).expect("read source");
            (relative, text)
        })
        .collect()
}

/// The code of a file without its comments and its `#[cfg(test)]` module (tests may build
/// requests).
fn code_of(text: &str) -> String {
    let body = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    body.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn only_the_api_speaks_http() {
    let mut offenders = Vec::new();
    for (path, text) in service_sources() {
        if HTTP_ALLOWED.iter().any(|allowed| path.starts_with(allowed)) {
            continue;
        }
        let code = code_of(&text);
        for marker in HTTP_MARKERS {
            if code.contains(marker) {
                offenders.push(format!("src/{path} uses `{marker}`"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "services return domain values; only api/ (and the auth extractor, startup) speak HTTP:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_tidy_check_sees_http_where_it_is() {
    // The check above would be vacuous if it could not see the router.
    let sources = service_sources();
    let router = sources
        .iter()
        .find(|(path, _)| path == "api/mod.rs")
        .expect("api/mod.rs");
    assert!(code_of(&router.1).contains("use axum"));
    assert!(!code_of("// axum:: in a comment\nfn f() {}").contains("axum::"));
}

#[test]
fn no_source_file_is_over_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["broker", "adapters"] {
        sources(&root.join(dir), &mut files);
    }
    let mut long = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read source");
        let name = path.to_string_lossy().replace('\\', "/");
        let test_only = name.contains("/tests/")
            || name.ends_with("/tests.rs")
            || name.ends_with("_tests.rs")
            || name.contains("/benches/");
        // A file's own `#[cfg(test)]` module at its end does not count either.
        let lines = code_of_lines(&text);
        if !test_only && lines > 600 {
            long.push(format!("{name}: {lines} lines"));
        }
    }
    assert!(
        long.is_empty(),
        "split these by concept:\n{}",
        long.join("\n")
    );
}

fn code_of_lines(text: &str) -> usize {
    match text.find("\n#[cfg(test)]\nmod tests") {
        Some(at) => text[..at].lines().count(),
        None => text.lines().count(),
    }
}
