//! A compiled regular expression as the configuration holds it: byte-oriented (header values
//! may carry obs-text), size-limited, and compared by its source text so configs can be diffed.

use std::fmt;

use regex::bytes::{Regex, RegexBuilder};

use crate::error::ConfigError;

/// Compiled program size limit: rules are checked per request, a runaway pattern is refused.
const SIZE_LIMIT: usize = 1 << 20;

#[derive(Clone)]
pub struct Pattern(Regex);

impl Pattern {
    pub fn new(source: &str) -> Result<Self, ConfigError> {
        RegexBuilder::new(source)
            .size_limit(SIZE_LIMIT)
            .build()
            .map(Pattern)
            .map_err(|e| ConfigError::Regex { pattern: source.to_string(), message: e.to_string() })
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_match(&self, text: &[u8]) -> bool {
        self.0.is_match(text)
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

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.as_str())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_prefers_group_one() {
        let p = Pattern::new(r"user=(\w+)").unwrap();
        assert_eq!(p.capture(b"/x?user=bob&y"), Some(&b"bob"[..]));
        let p = Pattern::new(r"\d+").unwrap();
        assert_eq!(p.capture(b"abc123def"), Some(&b"123"[..]));
        assert_eq!(p.capture(b"abc"), None);
    }

    #[test]
    fn bad_pattern_is_refused() {
        assert!(matches!(Pattern::new("a(b"), Err(ConfigError::Regex { .. })));
    }
}
