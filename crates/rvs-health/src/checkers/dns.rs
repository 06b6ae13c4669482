//! The DNS check: a query built by hand (one question, recursion desired) sent over UDP; the
//! server is up when it answers NOERROR with at least one answer record.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;

use super::{io_reason, udp_connect, Deadline, Failure, Success, Verdict};
use crate::jitter::XorShift;

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
pub(crate) fn encode_name(name: &str) -> Result<Vec<u8>, &'static str> {
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

pub(crate) fn build_query(id: u16, qname: &[u8], qtype: QType) -> Vec<u8> {
    let mut q = Vec::with_capacity(12 + qname.len() + 4);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    q.extend_from_slice(qname);
    q.extend_from_slice(&qtype.code().to_be_bytes());
    q.extend_from_slice(&[0, 1]); // IN
    q
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE {n}"),
    }
}

/// Judges a response to query `id`; `None` when it is not one (wrong id, not a response).
pub(crate) fn judge(id: u16, resp: &[u8], name: &str, qtype: QType) -> Option<Verdict> {
    if resp.len() < 12 || resp[..2] != id.to_be_bytes() || resp[2] & 0x80 == 0 {
        return None;
    }
    let rcode = resp[3] & 0x0f;
    let answers = u16::from_be_bytes([resp[6], resp[7]]);
    Some(if rcode != 0 {
        Err(Failure(format!("DNS {} for {name} {qtype}", rcode_name(rcode))))
    } else if answers == 0 {
        let truncated = if resp[2] & 0x02 != 0 { " (truncated)" } else { "" };
        Err(Failure(format!("DNS NOERROR but no answer for {name} {qtype}{truncated}")))
    } else {
        let s = if answers == 1 { "" } else { "s" };
        Ok(Success::up(format!("DNS NOERROR, {answers} answer{s} for {name} {qtype}")))
    })
}

pub(crate) async fn check(qname: &[u8], name: &str, qtype: QType, addr: SocketAddr, dl: &Deadline) -> Verdict {
    let sock = dl.io("opening a UDP socket", udp_connect(addr)).await?;
    let id = XorShift::seeded(u64::from(addr.port())).next_u64() as u16;
    let query = build_query(id, qname, qtype);
    dl.io("sending the DNS query", sock.send(&query)).await?;
    let mut buf = [0u8; 4096];
    loop {
        match dl.run("waiting for the DNS answer", sock.recv(&mut buf)).await? {
            Ok(n) => {
                if let Some(verdict) = judge(id, &buf[..n], name, qtype) {
                    return verdict;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(Failure::new("port unreachable (ICMP)"));
            }
            Err(e) => return Err(Failure(io_reason(&e))),
        }
    }
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
    fn names_and_queries() {
        assert_eq!(encode_name("www.example.com.").unwrap(), b"\x03www\x07example\x03com\x00");
        assert_eq!(encode_name(".").unwrap(), b"\x00");
        assert_eq!(encode_name("a..b"), Err("empty label"));
        assert!(encode_name(&"a".repeat(64)).is_err());
        assert!(encode_name("bad name").is_err());
        let q = build_query(0x1234, &encode_name("a.b").unwrap(), QType::A);
        assert_eq!(q, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x01b\x00\x00\x01\x00\x01");
    }

    #[test]
    fn judging() {
        let ok = b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00";
        assert!(judge(0x1234, ok, "a.b", QType::A).unwrap().is_ok());
        assert!(judge(0x9999, ok, "a.b", QType::A).is_none());
        let nx = b"\x12\x34\x81\x83\x00\x01\x00\x00\x00\x00\x00\x00";
        assert_eq!(judge(0x1234, nx, "a.b", QType::A).unwrap().unwrap_err().0, "DNS NXDOMAIN for a.b A");
        let empty = b"\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00";
        assert_eq!(
            judge(0x1234, empty, "a.b", QType::A).unwrap().unwrap_err().0,
            "DNS NOERROR but no answer for a.b A"
        );
    }
}
