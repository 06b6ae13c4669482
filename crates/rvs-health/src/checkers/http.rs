//! The HTTP(S) check (keepalived's `HTTP_GET` / `SSL_GET`): a minimal HTTP/1.1 client that sends
//! one request with `Connection: close`, then checks the status, and the body against a regex
//! and an MD5 digest when asked.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::http_response::{read_body, read_head, MAX_BODY};
use super::tls::TlsClient;
use super::{connect, excerpt, Deadline, Endpoint, Failure, Success, Verdict};
use crate::md5::md5_hex;
use crate::status::{describe, DEFAULT_STATUS};
use rvs_model::health::check::HttpCheck;

pub(crate) async fn check(spec: &HttpCheck, tls: Option<&TlsClient>, to: Endpoint, dl: &Deadline) -> Verdict {
    let addr = to.addr;
    let tcp = connect(&to, dl).await?;
    let request = request(spec, addr, tls.is_some());
    match tls {
        None => exchange(tcp, spec, &request, dl).await,
        Some(client) => {
            let stream = client.handshake(tcp, addr, spec.host.as_deref(), dl).await?;
            exchange(stream, spec, &request, dl).await
        }
    }
}

fn request(spec: &HttpCheck, addr: SocketAddr, https: bool) -> Vec<u8> {
    let default_port = if https { 443 } else { 80 };
    let host = match &spec.host {
        Some(h) => h.clone(),
        None if addr.port() == default_port => match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        },
        None => addr.to_string(),
    };
    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: rvs-health/{}\r\nAccept: */*\r\nConnection: close\r\n",
        spec.method,
        spec.path,
        env!("CARGO_PKG_VERSION")
    );
    if matches!(spec.method.as_str(), "POST" | "PUT" | "PATCH") {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    spec: &HttpCheck,
    request: &[u8],
    dl: &Deadline,
) -> Verdict {
    dl.io("sending the request", async {
        stream.write_all(request).await?;
        stream.flush().await
    })
    .await?;
    let mut reader = BufReader::new(stream);
    let head = dl.run("waiting for the response", read_head(&mut reader, spec.method == "HEAD")).await??;
    let expected = if spec.expect_status.is_empty() { vec![DEFAULT_STATUS] } else { spec.expect_status.clone() };
    if !expected.iter().any(|r| r.contains(head.status)) {
        return Err(Failure(format!("HTTP {} not in {}", head.status, describe(&expected))));
    }
    let mut reason = format!("HTTP {}", head.status);
    if spec.body_regex.is_none() && spec.body_digest.is_none() {
        return Ok(Success::up(reason));
    }
    let body = dl.run("reading the response body", read_body(&mut reader, head.framing, MAX_BODY)).await??;
    if let Some(re) = &spec.body_regex {
        if !re.is_match(&body.bytes) {
            return Err(Failure(format!("body does not match /{re}/ (got \"{}\")", excerpt(&body.bytes, 60))));
        }
        reason.push_str(&format!(", body matches /{re}/"));
    }
    if let Some(want) = &spec.body_digest {
        if body.truncated {
            return Err(Failure::new("body larger than 1 MiB: digest not checked"));
        }
        let got = md5_hex(&body.bytes);
        if !got.eq_ignore_ascii_case(want) {
            return Err(Failure(format!("body digest {got} is not {}", want.to_ascii_lowercase())));
        }
        reason.push_str(", digest matches");
    }
    Ok(Success::up(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let spec = HttpCheck { path: "/health".into(), ..HttpCheck::default() };
        let r = String::from_utf8(request(&spec, "10.0.0.1:8080".parse().unwrap(), false)).unwrap();
        assert!(r.starts_with("GET /health HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n"), "{r}");
        assert!(r.contains("\r\nConnection: close\r\n") && r.ends_with("\r\n\r\n"));
        let r = String::from_utf8(request(&spec, "[::1]:443".parse().unwrap(), true)).unwrap();
        assert!(r.contains("Host: [::1]\r\n"), "{r}");
        let spec = HttpCheck { host: Some("www.example.com".into()), method: "POST".into(), ..HttpCheck::default() };
        let r = String::from_utf8(request(&spec, "10.0.0.1:80".parse().unwrap(), false)).unwrap();
        assert!(
            r.starts_with("POST / HTTP/1.1\r\nHost: www.example.com\r\n") && r.contains("Content-Length: 0"),
            "{r}"
        );
    }
}
