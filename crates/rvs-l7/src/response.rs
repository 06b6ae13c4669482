//! Response heads from real servers, checked as strictly as requests (a real server that
//! answers ambiguously gets 502, not a pass): CRLF only, one framing, and the message-length
//! rules of RFC 9112 6.3 (HEAD, 1xx, 204 and 304 carry no body; otherwise chunked, a length,
//! or the body runs until the real server closes).

use std::mem::MaybeUninit;

use httparse::{Header, ParserConfig, Status};

use crate::head::{self, eq_lower, Coding};

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseBody {
    None,
    Length(u64),
    Chunked,
    /// Until the real server closes: the client connection closes after it.
    UntilClose,
}

#[derive(Debug)]
pub(crate) struct ParsedResponse<'a> {
    pub code: u16,
    pub reason: &'a str,
    pub headers: &'a [Header<'a>],
    /// The head as received, blank line included; the fields borrow from it.
    pub raw: &'a [u8],
    pub head_len: usize,
    pub body: ResponseBody,
    /// The real server keeps the connection open after this response.
    pub reusable: bool,
    /// A 101 switching to the Upgrade protocol.
    pub upgrade: Option<&'a [u8]>,
    /// A Connection field names a field other than the hop-by-hop ones: that field is
    /// hop-by-hop for this response too.
    pub connection_names: bool,
}

impl ParsedResponse<'_> {
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.code) && self.code != 101
    }
}

/// Parses the head at the start of `buf`; `Ok(None)`: incomplete. `max` bounds the head.
/// `headers` is scratch space for the fields; it needs no initialising.
pub(crate) fn parse<'a>(
    buf: &'a [u8],
    headers: &'a mut [MaybeUninit<Header<'a>>],
    request_is_head: bool,
    max: usize,
) -> Result<Option<ParsedResponse<'a>>, &'static str> {
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, headers) {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) if buf.len() >= max => return Err("response head too large"),
        Ok(Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed response head"),
    };
    let (Some(minor), Some(code)) = (resp.version, resp.code) else { return Err("incomplete status line") };
    // httparse takes any three digits; a status code is 100 to 999 (RFC 9110 15).
    if code < 100 {
        return Err("invalid status code");
    }
    let reason = resp.reason.unwrap_or("");
    let headers: &'a [Header<'a>] = resp.headers;
    head::check_line_ends(&buf[..head_len], headers)?;

    let (mut te, mut tes, mut cl, mut cls) = (None, 0, None, 0);
    let (mut close, mut keep, mut connection_names) = (false, false, false);
    let mut upgrade = None;
    for h in headers {
        let n = h.name;
        if head::is_disguised_critical(n) {
            return Err("field name disguising a framing field");
        }
        match n.len() {
            17 if eq_lower(n.as_bytes(), b"transfer-encoding") => {
                tes += 1;
                te = Some(h.value);
            }
            14 if eq_lower(n.as_bytes(), b"content-length") => {
                cls += 1;
                cl = Some(h.value);
            }
            10 if eq_lower(n.as_bytes(), b"connection") => {
                for t in head::list(h.value) {
                    close |= eq_lower(t, b"close");
                    keep |= eq_lower(t, b"keep-alive");
                    connection_names |= !head::is_hop_by_hop_bytes(t);
                }
            }
            7 if eq_lower(n.as_bytes(), b"upgrade") => upgrade = Some(h.value),
            _ => {}
        }
    }
    if te.is_some() && cls > 0 {
        return Err("both Content-Length and Transfer-Encoding");
    }
    if tes > 1 {
        return Err("more than one Transfer-Encoding field");
    }
    if te.is_some() && minor == 0 {
        return Err("Transfer-Encoding in an HTTP/1.0 response");
    }
    let length = match (cls, cl) {
        (0, _) => None,
        (1, Some(v)) => head::content_length(std::iter::once(v))?,
        _ => head::content_length(
            headers.iter().filter(|h| eq_lower(h.name.as_bytes(), b"content-length")).map(|h| h.value),
        )?,
    };
    let coding = te.map(head::transfer_coding);
    if coding == Some(Coding::Invalid) {
        return Err("invalid Transfer-Encoding");
    }
    let bodyless = request_is_head || (100..200).contains(&code) || code == 204 || code == 304;
    let body = if bodyless {
        ResponseBody::None
    } else {
        match (coding, length) {
            (Some(Coding::Chunked | Coding::ChunkedAfterOthers), _) => ResponseBody::Chunked,
            (Some(_), _) => ResponseBody::UntilClose,
            (None, Some(n)) => ResponseBody::Length(n),
            (None, None) => ResponseBody::UntilClose,
        }
    };
    let reusable = body != ResponseBody::UntilClose && !close && (minor == 1 || keep) && code != 101;
    Ok(Some(ParsedResponse {
        code,
        reason,
        headers,
        raw: &buf[..head_len],
        head_len,
        body,
        reusable,
        upgrade: if code == 101 { upgrade } else { None },
        connection_names,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(raw: &[u8], head: bool) -> Result<(ResponseBody, bool), &'static str> {
        let mut h = [MaybeUninit::uninit(); 32];
        parse(raw, &mut h, head, 65536).map(|r| {
            let r = r.unwrap();
            (r.body, r.reusable)
        })
    }

    #[test]
    fn message_lengths() {
        assert_eq!(body(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false), Ok((ResponseBody::Length(3), true)));
        assert_eq!(body(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true), Ok((ResponseBody::None, true)));
        assert_eq!(body(b"HTTP/1.1 204 No\r\n\r\n", false), Ok((ResponseBody::None, true)));
        assert_eq!(body(b"HTTP/1.1 304 NM\r\nContent-Length: 9\r\n\r\n", false), Ok((ResponseBody::None, true)));
        assert_eq!(
            body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false),
            Ok((ResponseBody::Chunked, true))
        );
        assert_eq!(body(b"HTTP/1.1 200 OK\r\n\r\n", false), Ok((ResponseBody::UntilClose, false)));
        assert_eq!(body(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false), Ok((ResponseBody::Length(1), false)));
        assert_eq!(
            body(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", false),
            Ok((ResponseBody::Length(1), true))
        );
        assert_eq!(
            body(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false),
            Ok((ResponseBody::Length(1), false))
        );
    }

    #[test]
    fn ambiguous_responses_are_refused() {
        assert!(body(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false).is_err());
        assert!(body(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", false).is_err());
        assert!(body(b"HTTP/1.1 200 OK\nContent-Length: 3\n\n", false).is_err());
        assert!(body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", false).is_err());
        assert!(body(b"HTTX/1.1 200 OK\r\n\r\n", false).is_err());
        // Found by the http_response fuzz target: httparse takes `054`.
        assert_eq!(body(b"HTTP/1.1 054 OK\r\nContent-Length: 3\r\n\r\n", false), Err("invalid status code"));
        assert_eq!(body(b"HTTP/1.1 000 OK\r\n\r\n", false), Err("invalid status code"));
    }
}
