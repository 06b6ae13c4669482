//! DNS check specs: the query type (`A`, `AAAA`, `MX`, `TYPE65`, ...) and the query name in
//! wire format, whose encoding is also the check that a configured name is a DNS name.

use std::fmt;
use std::str::FromStr;

/// A DNS query type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QType {
    A,
    Ns,
    Cname,
    Soa,
    Ptr,
    Mx,
    Txt,
    Aaaa,
    Srv,
    Any,
    /// Any other type by number (`TYPE65`, `65`).
    Other(u16),
}

const NAMED: [(QType, &str, u16); 10] = [
    (QType::A, "A", 1),
    (QType::Ns, "NS", 2),
    (QType::Cname, "CNAME", 5),
    (QType::Soa, "SOA", 6),
    (QType::Ptr, "PTR", 12),
    (QType::Mx, "MX", 15),
    (QType::Txt, "TXT", 16),
    (QType::Aaaa, "AAAA", 28),
    (QType::Srv, "SRV", 33),
    (QType::Any, "ANY", 255),
];

impl QType {
    pub fn code(self) -> u16 {
        match self {
            QType::Other(n) => n,
            named => NAMED.iter().find(|(q, _, _)| *q == named).map_or(0, |(_, _, n)| *n),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a DNS query type (A, AAAA, NS, CNAME, SOA, PTR, MX, TXT, SRV, ANY or TYPEnn)")]
pub struct QTypeError(pub String);

impl FromStr for QType {
    type Err = QTypeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up = s.trim().to_ascii_uppercase();
        if let Some((q, _, _)) = NAMED.iter().find(|(_, name, _)| *name == up) {
            return Ok(*q);
        }
        let digits = up.strip_prefix("TYPE").unwrap_or(&up);
        match digits.parse::<u16>() {
            Ok(n) if n > 0 => Ok(NAMED.iter().find(|(_, _, c)| *c == n).map_or(QType::Other(n), |(q, _, _)| *q)),
            _ => Err(QTypeError(s.to_owned())),
        }
    }
}

impl fmt::Display for QType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QType::Other(n) => write!(f, "TYPE{n}"),
            named => f.write_str(NAMED.iter().find(|(q, _, _)| q == named).map_or("?", |(_, name, _)| name)),
        }
    }
}

/// `name` in DNS wire format (length-prefixed labels, then 0); `.` or empty is the root.
pub fn encode_name(name: &str) -> Result<Vec<u8>, &'static str> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let mut out = Vec::with_capacity(trimmed.len() + 2);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err("empty label");
            }
            if label.len() > 63 {
                return Err("label longer than 63 bytes");
            }
            if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*') {
                return Err("only letters, digits, '-', '_' and '*' are allowed");
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() > 255 {
        return Err("longer than 255 bytes");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qtypes() {
        assert_eq!("aaaa".parse::<QType>().unwrap(), QType::Aaaa);
        assert_eq!("TYPE28".parse::<QType>().unwrap(), QType::Aaaa);
        assert_eq!("65".parse::<QType>().unwrap(), QType::Other(65));
        assert_eq!(QType::Other(65).to_string(), "TYPE65");
        assert_eq!(QType::Mx.code(), 15);
        assert!("BOGUS".parse::<QType>().is_err());
    }

    #[test]
    fn names() {
        assert_eq!(encode_name("www.example.com.").unwrap(), b"\x03www\x07example\x03com\x00");
        assert_eq!(encode_name(".").unwrap(), b"\x00");
        assert_eq!(encode_name("a..b"), Err("empty label"));
        assert!(encode_name(&"a".repeat(64)).is_err());
        assert!(encode_name("bad name").is_err());
    }
}
