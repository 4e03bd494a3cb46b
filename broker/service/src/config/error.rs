//! Error reporting: every problem with its key and, when known, its line.
//!
//! Owns [`ConfigProblem`] and [`ConfigError`] (and how it is shown), finding the key and
//! the line a TOML error is about, and [`redact_url`].
//!
//! **Invariant:** a problem names a dotted key path (or `<file>`), and the database URL,
//! which may carry a password, reaches a message only through [`redact_url`].

use std::fmt;

/// One configuration problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key, as a dotted path (`members[1].jurisdictions`).
    pub key: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in a config, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file, or `<bundled demo config>`.
    pub origin: String,
    /// The problems, in file order.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration in {}:", self.origin)?;
        for p in &self.problems {
            match p.line {
                Some(line) => write!(f, "\n  line {line}: `{}`: {}", p.key, p.message)?,
                None => write!(f, "\n  `{}`: {}", p.key, p.message)?,
            }
        }
        Ok(())
    }
}

/// A URL with its password replaced, safe to show.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |t| t.bytes().filter(|&b| b == b'\n').count())
        + 1
}

/// The key a toml error is about: the word in backticks after "unknown field", else the
/// line's own key.
pub(super) fn key_of_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            return rest[..end].to_owned();
        }
    }
    if let Some(span) = err.span() {
        let start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let line = &text[start..];
        let line = line.split('\n').next().unwrap_or("");
        if let Some((key, _)) = line.split_once('=') {
            return key.trim().to_owned();
        }
        return line
            .trim()
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
    }
    "<file>".to_owned()
}
