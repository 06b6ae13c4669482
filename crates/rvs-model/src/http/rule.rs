//! A rule of an L7 virtual service: a name, the conditions that must all hold, and the pool
//! that takes a matching request. Rules are tried in order; the first that matches wins.

use std::fmt;

use super::error::ConfigError;
use super::matcher::Match;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Identifies the rule in counters, the API and rvsadm (`--del-rule`).
    pub name: String,
    /// All must hold.
    pub matches: Vec<Match>,
    /// The pool a matching request goes to.
    pub pool: String,
}

impl Rule {
    pub fn new(name: impl Into<String>, matches: Vec<Match>, pool: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        check_ident(&name, "rule")?;
        if matches.is_empty() {
            return Err(ConfigError::EmptyRule(name));
        }
        let pool = pool.into();
        check_ident(&pool, "pool")?;
        Ok(Self { name, matches, pool })
    }

    /// Builds a rule from the text form of its conditions (see [`Match`]'s `FromStr`).
    pub fn parse(name: impl Into<String>, matches: &[&str], pool: impl Into<String>) -> Result<Self, ConfigError> {
        let m = matches.iter().map(|s| s.parse()).collect::<Result<Vec<Match>, _>>()?;
        Self::new(name, m, pool)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {}:", self.name)?;
        for m in &self.matches {
            write!(f, " {m}")?;
        }
        write!(f, " -> {}", self.pool)
    }
}

/// Names of rules and pools: printable, no spaces, at most 64 bytes.
pub fn check_ident(name: &str, what: &'static str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b':'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Name { name: name.to_string(), what })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_needs_conditions_and_names() {
        assert!(matches!(Rule::new("r", vec![], "p"), Err(ConfigError::EmptyRule(_))));
        assert!(Rule::parse("bad name", &["path^=/"], "p").is_err());
        let r = Rule::parse("api", &["host=*.example.com", "path^=/api/"], "api-pool").unwrap();
        assert_eq!(r.to_string(), "rule api: host=*.example.com path^=/api/ -> api-pool");
    }
}
