//! The SMTP check (keepalived's `SMTP_CHECK`): read the 220 banner, send `HELO name` and expect
//! 250, then say `QUIT`.

use tokio::io::{AsyncBufRead, AsyncWriteExt, BufReader};

use super::{
    connect, excerpt, io_reason, read_line, trim_eol, Deadline, Endpoint, Failure, LineError, Success, Verdict,
};

const MAX_LINE: usize = 4096;
const MAX_LINES: usize = 100;

pub(crate) async fn check(helo: &str, to: Endpoint, dl: &Deadline) -> Verdict {
    let stream = connect(&to, dl).await?;
    let mut stream = BufReader::new(stream);
    let (code, text) = dl.run("waiting for the SMTP banner", reply(&mut stream)).await??;
    if code != 220 {
        return Err(Failure(format!("SMTP banner {code} {text} (expected 220)")));
    }
    dl.io("sending HELO", stream.get_mut().write_all(format!("HELO {helo}\r\n").as_bytes())).await?;
    let (code, text) = dl.run("waiting for the HELO reply", reply(&mut stream)).await??;
    if code != 250 {
        return Err(Failure(format!("HELO answered {code} {text} (expected 250)")));
    }
    // Polite goodbye; the check has passed whatever happens now.
    let _ = tokio::time::timeout_at(dl.at, stream.get_mut().write_all(b"QUIT\r\n")).await;
    Ok(Success::up("SMTP banner 220, HELO 250"))
}

/// Reads one SMTP reply, multi-line (`250-...` lines then `250 ...`) or not; returns its code
/// and the text of its last line.
async fn reply<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<(u16, String), Failure> {
    let mut line = Vec::new();
    for _ in 0..MAX_LINES {
        read_line(r, &mut line, MAX_LINE).await.map_err(|e| match e {
            LineError::Io(e) => Failure(io_reason(&e)),
            LineError::Eof => Failure::new("connection closed before an SMTP reply"),
            LineError::TooLong => Failure::new("SMTP reply line too long"),
        })?;
        let l = trim_eol(&line);
        let malformed = || Failure(format!("malformed SMTP reply \"{}\"", excerpt(l, 60)));
        if l.len() < 3 || !l[..3].iter().all(u8::is_ascii_digit) {
            return Err(malformed());
        }
        let code = l[..3].iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        match l.get(3) {
            Some(b'-') => continue,
            None | Some(b' ') => {
                let text = String::from_utf8_lossy(l.get(4..).unwrap_or(&[])).trim().to_owned();
                return Ok((code, excerpt(text.as_bytes(), 80)));
            }
            Some(_) => return Err(malformed()),
        }
    }
    Err(Failure::new("SMTP reply longer than 100 lines"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies() {
        let mut r = BufReader::new(&b"250-mail.example.com\r\n250-PIPELINING\r\n250 HELP\r\n220 next\r\n"[..]);
        assert_eq!(reply(&mut r).await.unwrap(), (250, "HELP".to_owned()));
        assert_eq!(reply(&mut r).await.unwrap(), (220, "next".to_owned()));
        assert_eq!(reply(&mut r).await.unwrap_err().0, "connection closed before an SMTP reply");
        let mut r = BufReader::new(&b"hello\r\n"[..]);
        assert_eq!(reply(&mut r).await.unwrap_err().0, "malformed SMTP reply \"hello\"");
    }
}
