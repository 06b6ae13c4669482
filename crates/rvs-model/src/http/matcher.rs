//! The conditions a rule can test: host (exact or `*.` wildcard), path (prefix, exact, regex),
//! method, header field, query parameter and cookie (present, exact or regex). Each is
//! validated when built; a text form (`path^=/api/`, `header:X-Env=prod`, ...) is parsed and
//! printed for the config file, the API and rvsadm.

use std::fmt;
use std::str::FromStr;

use rvs_core::pattern::Pattern;

use super::error::ConfigError;

/// A host condition. Hosts compare case-insensitively and without the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `www.example.com`
    Exact(String),
    /// `*.example.com`: any host ending in `.example.com` (not `example.com` itself). Holds the
    /// suffix with its leading dot.
    Suffix(String),
}

/// A path condition, on the path of the request target (before `?`), as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    Prefix(String),
    Exact(String),
    Regex(Pattern),
}

/// A condition on a named value (header field, query parameter, cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValuePattern {
    Present,
    Exact(String),
    Regex(Pattern),
}

impl ValuePattern {
    pub fn exact(value: &str) -> Result<Self, ConfigError> {
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(ConfigError::Value(value.to_string()));
        }
        Ok(ValuePattern::Exact(value.to_string()))
    }

    pub fn regex(source: &str) -> Result<Self, ConfigError> {
        Ok(ValuePattern::Regex(Pattern::new(source)?))
    }

    /// Whether a value (of a header field, query parameter or cookie) meets the condition.
    pub fn test(&self, value: &[u8]) -> bool {
        match self {
            ValuePattern::Present => true,
            ValuePattern::Exact(v) => value == v.as_bytes(),
            ValuePattern::Regex(p) => p.is_match(value),
        }
    }
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Host(HostPattern),
    Path(PathPattern),
    /// The method, case-sensitive as HTTP methods are.
    Method(String),
    /// A header field; the name is kept lowercase. With several fields of that name, any may match.
    Header {
        name: String,
        value: ValuePattern,
    },
    Query {
        name: String,
        value: ValuePattern,
    },
    Cookie {
        name: String,
        value: ValuePattern,
    },
}

impl Match {
    /// `www.example.com` or `*.example.com`.
    pub fn host(pattern: &str) -> Result<Self, ConfigError> {
        let bad = |reason| ConfigError::Host { pattern: pattern.to_string(), reason };
        let lower = pattern.to_ascii_lowercase();
        let (suffix, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        if name.is_empty() {
            return Err(bad("empty host"));
        }
        if name.contains('*') {
            return Err(bad("`*` is only allowed as a whole leading label (`*.example.com`)"));
        }
        let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':');
        if !name.bytes().all(ok) {
            return Err(bad("a host holds letters, digits, `-`, `.`, `_` (or an IPv6 literal in brackets)"));
        }
        Ok(Match::Host(if suffix { HostPattern::Suffix(format!(".{name}")) } else { HostPattern::Exact(name.into()) }))
    }

    pub fn path_prefix(prefix: &str) -> Result<Self, ConfigError> {
        check_path(prefix).map(|p| Match::Path(PathPattern::Prefix(p)))
    }

    pub fn path_exact(path: &str) -> Result<Self, ConfigError> {
        check_path(path).map(|p| Match::Path(PathPattern::Exact(p)))
    }

    pub fn path_regex(source: &str) -> Result<Self, ConfigError> {
        Ok(Match::Path(PathPattern::Regex(Pattern::new(source)?)))
    }

    pub fn method(method: &str) -> Result<Self, ConfigError> {
        if method.is_empty() || !method.bytes().all(is_tchar) {
            return Err(ConfigError::Method(method.to_string()));
        }
        Ok(Match::Method(method.to_string()))
    }

    pub fn header(name: &str, value: ValuePattern) -> Result<Self, ConfigError> {
        Ok(Match::Header { name: check_name(name, "header field")?.to_ascii_lowercase(), value })
    }

    pub fn query(name: &str, value: ValuePattern) -> Result<Self, ConfigError> {
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_control() || matches!(b, b' ' | b'&' | b'=' | b'#')) {
            return Err(ConfigError::Name { name: name.to_string(), what: "query parameter" });
        }
        Ok(Match::Query { name: name.to_string(), value })
    }

    pub fn cookie(name: &str, value: ValuePattern) -> Result<Self, ConfigError> {
        Ok(Match::Cookie { name: check_name(name, "cookie")?.to_string(), value })
    }
}

fn check_path(p: &str) -> Result<String, ConfigError> {
    if !p.starts_with('/') || p.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'#') {
        return Err(ConfigError::Path(p.to_string()));
    }
    Ok(p.to_string())
}

fn check_name<'n>(name: &'n str, what: &'static str) -> Result<&'n str, ConfigError> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(ConfigError::Name { name: name.to_string(), what });
    }
    Ok(name)
}

/// RFC 9110 `tchar`: the characters of a token (methods, field names, cookie names).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn named(f: &mut fmt::Formatter<'_>, kind: &str, name: &str, v: &ValuePattern) -> fmt::Result {
            match v {
                ValuePattern::Present => write!(f, "{kind}:{name}"),
                ValuePattern::Exact(x) => write!(f, "{kind}:{name}={x}"),
                ValuePattern::Regex(p) => write!(f, "{kind}:{name}~={p}"),
            }
        }
        match self {
            Match::Host(HostPattern::Exact(h)) => write!(f, "host={h}"),
            Match::Host(HostPattern::Suffix(s)) => write!(f, "host=*{s}"),
            Match::Path(PathPattern::Prefix(p)) => write!(f, "path^={p}"),
            Match::Path(PathPattern::Exact(p)) => write!(f, "path={p}"),
            Match::Path(PathPattern::Regex(p)) => write!(f, "path~={p}"),
            Match::Method(m) => write!(f, "method={m}"),
            Match::Header { name, value } => named(f, "header", name, value),
            Match::Query { name, value } => named(f, "query", name, value),
            Match::Cookie { name, value } => named(f, "cookie", name, value),
        }
    }
}

/// The text form:
///
/// ```text
/// host=www.example.com     host=*.example.com
/// path=/exact              path^=/prefix/           path~=^/v[0-9]+/
/// method=GET
/// header:NAME              header:NAME=VALUE        header:NAME~=REGEX
/// query:NAME               query:NAME=VALUE         query:NAME~=REGEX
/// cookie:NAME              cookie:NAME=VALUE        cookie:NAME~=REGEX
/// ```
///
/// In the named forms the first `~=` or `=` ends the name.
impl FromStr for Match {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = |reason: &str| ConfigError::Syntax { text: s.to_string(), reason: reason.to_string() };
        if let Some(v) = s.strip_prefix("host=") {
            return Match::host(v);
        }
        if let Some(v) = s.strip_prefix("path^=") {
            return Match::path_prefix(v);
        }
        if let Some(v) = s.strip_prefix("path~=") {
            return Match::path_regex(v);
        }
        if let Some(v) = s.strip_prefix("path=") {
            return Match::path_exact(v);
        }
        if let Some(v) = s.strip_prefix("method=") {
            return Match::method(v);
        }
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| syntax("expected host=, path=, path^=, path~=, method=, header:, query: or cookie:"))?;
        let (name, value) = split_named(rest)?;
        match kind {
            "header" => Match::header(name, value),
            "query" => Match::query(name, value),
            "cookie" => Match::cookie(name, value),
            _ => Err(syntax("unknown condition kind (expected header, query or cookie)")),
        }
    }
}

fn split_named(rest: &str) -> Result<(&str, ValuePattern), ConfigError> {
    let re = rest.find("~=");
    let eq = rest.find('=');
    match (re, eq) {
        (Some(r), Some(e)) if r < e => Ok((&rest[..r], ValuePattern::regex(&rest[r + 2..])?)),
        (_, Some(e)) => Ok((&rest[..e], ValuePattern::exact(&rest[e + 1..])?)),
        (_, None) => Ok((rest, ValuePattern::Present)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_conditions_are_refused() {
        assert!(Match::host("a.*.com").is_err());
        assert!(Match::host("*").is_err());
        assert!(Match::host("a b").is_err());
        assert!(Match::path_prefix("api").is_err());
        assert!(Match::header("bad name", ValuePattern::Present).is_err());
    }

    #[test]
    fn text_form_round_trips() {
        for text in [
            "host=www.example.com",
            "host=*.example.com",
            "path=/exact",
            "path^=/api/",
            "path~=^/v[0-9]+/",
            "method=POST",
            "header:x-env",
            "header:x-env=prod",
            "header:user-agent~=curl/.*",
            "query:debug",
            "query:id=42",
            "cookie:session~=^[a-f0-9]+$",
        ] {
            let m: Match = text.parse().unwrap();
            assert_eq!(m.to_string(), text);
        }
        assert!("nonsense".parse::<Match>().is_err());
        assert!("other:x".parse::<Match>().is_err());
    }
}
