//! HTTP status expectations: single codes and ranges (`200`, `200-299`, `2xx`), as keepalived's
//! `status_code` takes them, and how a list of them reads in a reason.

use std::fmt;
use std::str::FromStr;

/// The range an HTTP check accepts when none is configured.
pub const DEFAULT_STATUS: StatusRange = StatusRange { lo: 200, hi: 299 };

/// An inclusive range of HTTP status codes, within 100..=599.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusRange {
    lo: u16,
    hi: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("`{0}` is not an HTTP status code, a range like 200-299, or a class like 2xx")]
    Syntax(String),
    #[error("HTTP status {0} is outside 100-599")]
    OutOfRange(u16),
    #[error("HTTP status range {lo}-{hi} is empty (start is above end)")]
    Reversed { lo: u16, hi: u16 },
}

impl StatusRange {
    pub fn new(lo: u16, hi: u16) -> Result<Self, StatusError> {
        for code in [lo, hi] {
            if !(100..=599).contains(&code) {
                return Err(StatusError::OutOfRange(code));
            }
        }
        if lo > hi {
            return Err(StatusError::Reversed { lo, hi });
        }
        Ok(Self { lo, hi })
    }

    pub fn single(code: u16) -> Result<Self, StatusError> {
        Self::new(code, code)
    }

    pub fn lo(&self) -> u16 {
        self.lo
    }

    pub fn hi(&self) -> u16 {
        self.hi
    }

    pub fn contains(&self, code: u16) -> bool {
        (self.lo..=self.hi).contains(&code)
    }

    /// A comma-separated list: `200-299, 302`.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, StatusError> {
        s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::parse).collect()
    }
}

impl FromStr for StatusRange {
    type Err = StatusError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let syntax = || StatusError::Syntax(s.to_owned());
        let code = |t: &str| t.trim().parse::<u16>().map_err(|_| syntax());
        if let Some(class) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
            let c = code(class)?;
            if class.len() != 1 {
                return Err(syntax());
            }
            return Self::new(c * 100, c * 100 + 99);
        }
        match s.split_once('-') {
            Some((lo, hi)) => Self::new(code(lo)?, code(hi)?),
            None => Self::single(code(s)?),
        }
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// `200-299` or `200, 302-304`, for reasons.
pub fn describe(ranges: &[StatusRange]) -> String {
    ranges.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!("200".parse::<StatusRange>().unwrap(), StatusRange::single(200).unwrap());
        assert_eq!("200-299".parse::<StatusRange>().unwrap(), DEFAULT_STATUS);
        assert_eq!("2xx".parse::<StatusRange>().unwrap(), DEFAULT_STATUS);
        assert_eq!(StatusRange::parse_list("200-299, 302").unwrap().len(), 2);
        assert_eq!(describe(&StatusRange::parse_list("200-299,302").unwrap()), "200-299, 302");
    }

    #[test]
    fn rejects() {
        assert_eq!("abc".parse::<StatusRange>(), Err(StatusError::Syntax("abc".into())));
        assert_eq!("700".parse::<StatusRange>(), Err(StatusError::OutOfRange(700)));
        assert_eq!("299-200".parse::<StatusRange>(), Err(StatusError::Reversed { lo: 299, hi: 200 }));
        assert!("20xx".parse::<StatusRange>().is_err());
        assert!("6xx".parse::<StatusRange>().is_err());
    }

    #[test]
    fn contains() {
        assert!(DEFAULT_STATUS.contains(204));
        assert!(!DEFAULT_STATUS.contains(500));
    }
}
