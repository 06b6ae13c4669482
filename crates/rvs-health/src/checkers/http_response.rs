//! Reading an HTTP/1.x response as a health check needs it: the status line, the headers that
//! frame the body (Content-Length, chunked, or to end of stream), and the body up to a cap.

use std::io;

use tokio::io::{AsyncBufRead, AsyncReadExt};

use super::{excerpt, io_reason, read_line, trim_eol, Failure, LineError};

/// Most bytes of status line and headers read.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Most body bytes read; past it the body is truncated.
pub(crate) const MAX_BODY: usize = 1 << 20;
const MAX_LINE: usize = 8 * 1024;

/// How the body of a response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    ToEof,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub status: u16,
    pub framing: Framing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Body {
    pub bytes: Vec<u8>,
    /// More than [`MAX_BODY`] (or the given cap) was sent; `bytes` holds the start.
    pub truncated: bool,
}

fn line_failure(e: LineError, eof: &str, too_long: &str) -> Failure {
    match e {
        LineError::Io(e) => Failure(io_reason(&e)),
        LineError::Eof => Failure::new(eof),
        LineError::TooLong => Failure::new(too_long),
    }
}

/// Reads the status line and headers of the final response (interim 1xx responses are
/// skipped). `head_request`: the request was HEAD, so no body follows.
pub(crate) async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R, head_request: bool) -> Result<Head, Failure> {
    let mut line = Vec::new();
    let mut total = 0usize;
    loop {
        // Status line, skipping stray empty lines before it.
        loop {
            read_line(r, &mut line, MAX_LINE)
                .await
                .map_err(|e| line_failure(e, "connection closed before a response", "status line too long"))?;
            total += line.len();
            if total > MAX_HEAD {
                return Err(Failure::new("response headers exceed 64 KiB"));
            }
            if !trim_eol(&line).is_empty() {
                break;
            }
        }
        let status = parse_status_line(trim_eol(&line))?;
        let mut content_length: Option<u64> = None;
        let mut transfer_encoding: Option<String> = None;
        loop {
            read_line(r, &mut line, MAX_LINE)
                .await
                .map_err(|e| line_failure(e, "connection closed in response headers", "response header too long"))?;
            total += line.len();
            if total > MAX_HEAD {
                return Err(Failure::new("response headers exceed 64 KiB"));
            }
            let header = trim_eol(&line);
            if header.is_empty() {
                break;
            }
            let Some(colon) = header.iter().position(|&b| b == b':') else {
                return Err(Failure(format!("malformed response header \"{}\"", excerpt(header, 60))));
            };
            let name = String::from_utf8_lossy(&header[..colon]).trim().to_ascii_lowercase();
            let value = String::from_utf8_lossy(&header[colon + 1..]).trim().to_owned();
            match name.as_str() {
                "content-length" => {
                    let n: u64 = value.parse().map_err(|_| Failure(format!("malformed Content-Length \"{value}\"")))?;
                    if content_length.is_some_and(|c| c != n) {
                        return Err(Failure::new("conflicting Content-Length headers"));
                    }
                    content_length = Some(n);
                }
                "transfer-encoding" => {
                    let all = match transfer_encoding.take() {
                        Some(before) => format!("{before}, {value}"),
                        None => value,
                    };
                    transfer_encoding = Some(all);
                }
                _ => {}
            }
        }
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let framing = if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
            Framing::Empty
        } else if let Some(te) = transfer_encoding {
            let last = te.rsplit(',').next().unwrap_or("").trim().to_ascii_lowercase();
            if last == "chunked" {
                Framing::Chunked
            } else {
                Framing::ToEof
            }
        } else if let Some(n) = content_length {
            Framing::Length(n)
        } else {
            Framing::ToEof
        };
        return Ok(Head { status, framing });
    }
}

fn parse_status_line(line: &[u8]) -> Result<u16, Failure> {
    let malformed = || Failure(format!("malformed status line \"{}\"", excerpt(line, 60)));
    let rest = line.strip_prefix(b"HTTP/1.").ok_or_else(malformed)?;
    // "1 200 OK" / "0 404"
    if rest.len() < 5 || !rest[0].is_ascii_digit() || rest[1] != b' ' {
        return Err(malformed());
    }
    let code = &rest[2..5];
    if !code.iter().all(u8::is_ascii_digit) || rest.get(5).is_some_and(|&b| b != b' ') {
        return Err(malformed());
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) {
        return Err(malformed());
    }
    Ok(status)
}

/// Reads the body as `framing` says, keeping at most `cap` bytes.
pub(crate) async fn read_body<R: AsyncBufRead + Unpin>(
    r: &mut R,
    framing: Framing,
    cap: usize,
) -> Result<Body, Failure> {
    let mut bytes = Vec::new();
    match framing {
        Framing::Empty => Ok(Body { bytes, truncated: false }),
        Framing::Length(n) => {
            let want = n.min(cap as u64);
            let got = read_up_to(r, &mut bytes, want).await?;
            if got < want {
                return Err(Failure(format!("connection closed after {got} of {n} body bytes")));
            }
            Ok(Body { bytes, truncated: n > cap as u64 })
        }
        Framing::ToEof => {
            read_up_to(r, &mut bytes, cap as u64 + 1).await?;
            let truncated = bytes.len() > cap;
            bytes.truncate(cap);
            Ok(Body { bytes, truncated })
        }
        Framing::Chunked => read_chunked(r, bytes, cap).await,
    }
}

/// Reads until `want` bytes or end of stream; returns how many were read. A TLS peer that
/// closes without close_notify counts as end of stream.
async fn read_up_to<R: AsyncBufRead + Unpin>(r: &mut R, out: &mut Vec<u8>, want: u64) -> Result<u64, Failure> {
    let mut got = 0u64;
    let mut chunk = [0u8; 16 * 1024];
    while got < want {
        let max = (want - got).min(chunk.len() as u64) as usize;
        match r.read(&mut chunk[..max]).await {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                got += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(Failure(io_reason(&e))),
        }
    }
    Ok(got)
}

async fn read_chunked<R: AsyncBufRead + Unpin>(r: &mut R, mut bytes: Vec<u8>, cap: usize) -> Result<Body, Failure> {
    let mut line = Vec::new();
    loop {
        read_line(r, &mut line, 1024)
            .await
            .map_err(|e| line_failure(e, "connection closed in chunked body", "chunk size line too long"))?;
        let size_field = trim_eol(&line);
        let size_field = size_field.split(|&b| b == b';').next().unwrap_or(b"");
        let size_text = String::from_utf8_lossy(size_field);
        let size = u64::from_str_radix(size_text.trim(), 16)
            .map_err(|_| Failure(format!("malformed chunk size \"{}\"", excerpt(trim_eol(&line), 40))))?;
        if size == 0 {
            // Trailers up to the empty line; a server that closes here instead is forgiven.
            loop {
                match read_line(r, &mut line, MAX_LINE).await {
                    Ok(()) if !trim_eol(&line).is_empty() => continue,
                    _ => return Ok(Body { bytes, truncated: false }),
                }
            }
        }
        let room = (cap - bytes.len()) as u64;
        let want = size.min(room);
        let got = read_up_to(r, &mut bytes, want).await?;
        if got < want {
            return Err(Failure::new("connection closed in chunked body"));
        }
        if size > room {
            return Ok(Body { bytes, truncated: true });
        }
        read_line(r, &mut line, 16)
            .await
            .map_err(|e| line_failure(e, "connection closed in chunked body", "malformed chunk end"))?;
        if !trim_eol(&line).is_empty() {
            return Err(Failure::new("malformed chunk end"));
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::BufReader;

    use super::*;

    async fn parse(raw: &[u8], head_request: bool, cap: usize) -> Result<(u16, Body), Failure> {
        let mut r = BufReader::new(raw);
        let head = read_head(&mut r, head_request).await?;
        let body = read_body(&mut r, head.framing, cap).await?;
        Ok((head.status, body))
    }

    #[tokio::test]
    async fn content_length() {
        let (s, b) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello world", false, 100).await.unwrap();
        assert_eq!((s, b.bytes.as_slice(), b.truncated), (200, &b"hello"[..], false));
        let e = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhello", false, 100).await.unwrap_err();
        assert_eq!(e.0, "connection closed after 5 of 50 body bytes");
    }

    #[tokio::test]
    async fn chunked_and_interim() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let (s, b) = parse(raw, false, 100).await.unwrap();
        assert_eq!((s, b.bytes.as_slice()), (200, &b"hello world"[..]));
        let (_, b) = parse(raw, false, 7).await.unwrap();
        assert_eq!((b.bytes.as_slice(), b.truncated), (&b"hello w"[..], true));
        let e = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, 100).await.unwrap_err();
        assert!(e.0.starts_with("malformed chunk size"), "{e:?}");
    }

    #[tokio::test]
    async fn to_eof_head_and_no_body() {
        let (s, b) = parse(b"HTTP/1.0 500 Oops\nServer: x\n\nbroken", false, 100).await.unwrap();
        assert_eq!((s, b.bytes.as_slice()), (500, &b"broken"[..]));
        let (_, b) = parse(b"HTTP/1.0 200 OK\r\n\r\n0123456789", false, 4).await.unwrap();
        assert_eq!((b.bytes.as_slice(), b.truncated), (&b"0123"[..], true));
        let (_, b) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, 100).await.unwrap();
        assert!(b.bytes.is_empty());
        let (s, b) = parse(b"HTTP/1.1 204 No Content\r\n\r\n", false, 100).await.unwrap();
        assert_eq!((s, b.bytes.len()), (204, 0));
    }

    #[tokio::test]
    async fn malformed() {
        let e = parse(b"SSH-2.0-OpenSSH\r\n", false, 100).await.unwrap_err();
        assert_eq!(e.0, "malformed status line \"SSH-2.0-OpenSSH\"");
        let e = parse(b"", false, 100).await.unwrap_err();
        assert_eq!(e.0, "connection closed before a response");
        let e =
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", false, 100).await.unwrap_err();
        assert_eq!(e.0, "conflicting Content-Length headers");
        let e = parse(b"HTTP/1.1 200 OK\r\nServer: x\r\n", false, 100).await.unwrap_err();
        assert_eq!(e.0, "connection closed in response headers");
        assert!(parse(b"HTTP/1.1 2000 OK\r\n\r\n", false, 100).await.is_err());
    }
}
