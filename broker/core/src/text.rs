//! The one rule for text a person types (names, references, reasons): what every such field
//! must be before the broker stores it and shows it to others.
//!
//! 1 to `max` characters; no control characters (NUL, ANSI escapes, newlines); no
//! zero-width characters or bidirectional overrides (which make a shown name differ from the
//! stored one); not only white space.

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty, or only white space.
    #[error("must not be empty or only spaces")]
    Blank,
    /// Longer than allowed.
    #[error("use at most {0} characters")]
    TooLong(usize),
    /// A control, zero-width or bidirectional-override character.
    #[error("must not contain control, zero-width or bidirectional-override characters (found U+{0:04X})")]
    Hidden(u32),
}

/// Whether `c` changes how text looks without being seen itself.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' // zero-width space, joiners, LRM/RLM
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{FEFF}' // zero-width no-break space
        )
}

/// Checks a typed text against the rule.
pub fn check_text(value: &str, max: usize) -> Result<(), TextError> {
    if let Some(c) = value.chars().find(|c| is_hidden(*c)) {
        return Err(TextError::Hidden(u32::from(c)));
    }
    if value.trim().is_empty() {
        return Err(TextError::Blank);
    }
    if value.chars().count() > max {
        return Err(TextError::TooLong(max));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_text_is_visible_bounded_and_not_blank() {
        for good in ["web", "Numergy S.A.", "Santé+ Données", "東京 ウェブ"] {
            assert_eq!(check_text(good, 128), Ok(()), "{good}");
        }
        assert_eq!(check_text("", 128), Err(TextError::Blank));
        assert_eq!(check_text("   ", 128), Err(TextError::Blank));
        assert_eq!(
            check_text(&"a".repeat(129), 128),
            Err(TextError::TooLong(128))
        );
        for (bad, code) in [
            ("a\0b", 0),
            ("\u{1b}[31mred", 0x1b),
            ("two\nlines", 0x0a),
            ("pay\u{202E}lanoitan", 0x202e),
            ("ze\u{200B}ro", 0x200b),
            ("\u{FEFF}bom", 0xfeff),
            ("iso\u{2067}late", 0x2067),
        ] {
            assert_eq!(
                check_text(bad, 128),
                Err(TextError::Hidden(code)),
                "{bad:?}"
            );
        }
    }
}
