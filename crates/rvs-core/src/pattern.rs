//! A regular expression as the configuration holds it: matched against bytes (response bodies,
//! header values may be any octets), size-limited, compared and printed by its source text so
//! configurations can be diffed and printed back. Shared by the checkers and the L7 rules.

use std::fmt;
use std::str::FromStr;

/// A regular expression matched against raw response bytes (need not be UTF-8).
#[derive(Debug, Clone)]
pub struct Pattern(regex::bytes::Regex);

/// A pattern that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regular expression /{source_text}/: {message}")]
pub struct PatternError {
    pub source_text: String,
    pub message: String,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Self, PatternError> {
        regex::bytes::RegexBuilder::new(source)
            .size_limit(1 << 20)
            .build()
            .map(Pattern)
            .map_err(|e| PatternError { source_text: source.to_owned(), message: e.to_string() })
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_match(&self, haystack: &[u8]) -> bool {
        self.0.is_match(haystack)
    }

    /// The first capture group when the pattern has one and it matched, else the whole match.
    pub fn capture<'t>(&self, text: &'t [u8]) -> Option<&'t [u8]> {
        let caps = self.0.captures(text)?;
        caps.get(1).or_else(|| caps.get(0)).map(|m| m.as_bytes())
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl FromStr for Pattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::new(s)
    }
}

/// `/source/`, as operators write it.
/// The source text, as written (messages put it between slashes).
impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_compares_and_prints() {
        let p = Pattern::new("^220 ").unwrap();
        assert!(p.is_match(b"220 mail ESMTP\r\n"));
        assert!(!p.is_match(b"554 go away\r\n"));
        assert_eq!(p, "^220 ".parse().unwrap());
        assert_eq!(p.to_string(), "^220 ");
        assert_eq!(Pattern::new(r"user=(\w+)").unwrap().capture(b"/x?user=bob&y"), Some(&b"bob"[..]));
        let e = Pattern::new("(").unwrap_err();
        assert!(e.to_string().starts_with("invalid regular expression /(/"), "{e}");
    }

    #[test]
    fn matches_non_utf8() {
        let p = Pattern::new(r"(?-u)\xff\x00ok").unwrap();
        assert!(p.is_match(b"\xff\x00ok"));
    }
}
