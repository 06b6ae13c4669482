//! The DNS check: a query built by hand (one question, recursion desired) sent over UDP; the
//! server is up when it answers NOERROR with at least one answer record.

use std::io;

use super::{io_reason, udp_connect, Deadline, Endpoint, Failure, Success, Verdict};
use crate::jitter::XorShift;
use rvs_model::health::dns::QType;

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

pub(crate) async fn check(qname: &[u8], name: &str, qtype: QType, to: Endpoint, dl: &Deadline) -> Verdict {
    let addr = to.addr;
    let sock = dl.io("opening a UDP socket", udp_connect(&to)).await?;
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
    use rvs_model::health::dns::encode_name;

    use super::*;

    #[test]
    fn queries() {
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
