//! The SIP persistence engine's key (IPVS's `ip_vs_pe_sip`, `ipvsadm --pe sip`): the Call-ID of
//! a SIP message carried in one UDP datagram, so that every message of one call reaches the same
//! real server whatever the client's source port. Pure parsing, no state.

/// The longest Call-ID kept (IPVS's `IP_VS_PEDATA_MAXLEN`); a longer one is refused.
pub const MAX_CALL_ID: usize = 255;

/// Why a datagram gives no Call-ID. IPVS drops such a datagram (its `fill_param` fails and the
/// packet is not scheduled); rvs does the same and counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallIdError {
    #[error("no Call-ID header in the message head")]
    Missing,
    #[error("the Call-ID is empty")]
    Empty,
    #[error("the Call-ID is {0} bytes, longer than {MAX_CALL_ID}")]
    TooLong(usize),
    #[error("the Call-ID header is not ended by a line terminator")]
    Unterminated,
}

/// The Call-ID of the SIP message in `datagram`: the value of its first `Call-ID` header (or
/// its compact form `i`), names matched case-insensitively, surrounding white space left out.
/// Only the message head is searched (up to the first empty line); lines may end in CRLF, LF
/// or CR, as RFC 2543 allows and IPVS accepts.
pub fn call_id(datagram: &[u8]) -> Result<&[u8], CallIdError> {
    let mut lines = Lines { rest: datagram };
    // The first line is the request or status line, never a header.
    lines.next();
    while let Some((line, terminated)) = lines.next() {
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = trim(&line[..colon]);
        if !(name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i")) {
            continue;
        }
        if !terminated {
            return Err(CallIdError::Unterminated);
        }
        let value = trim(&line[colon + 1..]);
        return match value.len() {
            0 => Err(CallIdError::Empty),
            n if n > MAX_CALL_ID => Err(CallIdError::TooLong(n)),
            _ => Ok(value),
        };
    }
    Err(CallIdError::Missing)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Lines ended by CRLF, LF or CR; each with whether a terminator ended it.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Option<(&'a [u8], bool)> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = self.rest;
        match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            None => {
                self.rest = &[];
                Some((rest, false))
            }
            Some(i) => {
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                self.rest = &rest[i + skip..];
                Some((&rest[..i], true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:service@198.18.1.10:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 198.18.0.2:5061;branch=z9hG4bK-1\r\n\
        From: sipp <sip:sipp@198.18.0.2:5061>;tag=1\r\n\
        To: <sip:service@198.18.1.10:5060>\r\n\
        Call-ID: 1-4242@198.18.0.2\r\n\
        CSeq: 1 INVITE\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn finds_the_call_id_of_a_request() {
        assert_eq!(call_id(INVITE), Ok(&b"1-4242@198.18.0.2"[..]));
    }

    #[test]
    fn compact_form_any_case_and_white_space() {
        let m = b"SIP/2.0 200 OK\nVia: x\ni:\t abc@host \ncseq: 1 INVITE\n\n";
        assert_eq!(call_id(m), Ok(&b"abc@host"[..]));
        let m = b"BYE sip:a SIP/2.0\rCALL-ID: X\r\r";
        assert_eq!(call_id(m), Ok(&b"X"[..]));
    }

    #[test]
    fn the_body_and_the_first_line_are_not_searched() {
        assert_eq!(call_id(b"Call-ID: first-line\r\nVia: x\r\n\r\n"), Err(CallIdError::Missing));
        assert_eq!(call_id(b"INVITE sip:a SIP/2.0\r\nVia: x\r\n\r\nCall-ID: in-body\r\n"), Err(CallIdError::Missing));
    }

    #[test]
    fn broken_call_ids_are_refused() {
        assert_eq!(call_id(b"INVITE sip:a SIP/2.0\r\nCall-ID:   \r\n\r\n"), Err(CallIdError::Empty));
        assert_eq!(call_id(b"INVITE sip:a SIP/2.0\r\nCall-ID: cut-here"), Err(CallIdError::Unterminated));
        let long = format!("INVITE sip:a SIP/2.0\r\nCall-ID: {}\r\n\r\n", "x".repeat(256));
        assert_eq!(call_id(long.as_bytes()), Err(CallIdError::TooLong(256)));
        let max = format!("INVITE sip:a SIP/2.0\r\nCall-ID: {}\r\n\r\n", "x".repeat(255));
        assert_eq!(call_id(max.as_bytes()).map(<[u8]>::len), Ok(255));
        assert_eq!(call_id(b""), Err(CallIdError::Missing));
        assert_eq!(call_id(&[0xff; 64]), Err(CallIdError::Missing));
    }
}
