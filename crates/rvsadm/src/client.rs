//! A small blocking HTTP/1.1 client for rvsd's control API: a unix socket (the default) or
//! a loopback TCP address with a bearer token. One request per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use rvs_api::{ApiError, ErrorBody};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The default API socket.
pub const DEFAULT_SOCKET: &str = "/run/rvsd.sock";
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where rvsd's API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port` and the bearer token.
    Tcp {
        addr: String,
        token: Option<String>,
    },
}

impl Endpoint {
    /// From `--api`, else `$RVSADM_API`, else the default socket. `http://HOST:PORT` is the
    /// TCP API, with the token from `$RVSADM_TOKEN`.
    pub fn resolve(api: Option<&str>) -> Endpoint {
        let text = api.map(str::to_string).or_else(|| std::env::var("RVSADM_API").ok().filter(|s| !s.is_empty()));
        let text = text.unwrap_or_else(|| DEFAULT_SOCKET.to_string());
        match text.strip_prefix("http://") {
            Some(rest) => Endpoint::Tcp {
                addr: rest.trim_end_matches('/').to_string(),
                token: std::env::var("RVSADM_TOKEN").ok().filter(|s| !s.is_empty()),
            },
            None => Endpoint::Unix(PathBuf::from(text.strip_prefix("unix:").unwrap_or(&text))),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Endpoint::Unix(p) => p.display().to_string(),
            Endpoint::Tcp { addr, .. } => format!("http://{addr}"),
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum ClientError {
    /// rvsd could not be reached.
    Connect(String),
    /// The exchange broke off or was not HTTP/JSON.
    Protocol(String),
    /// rvsd answered with an error status.
    Api { status: u16, error: ApiError },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(m) | ClientError::Protocol(m) => f.write_str(m),
            ClientError::Api { error, .. } => f.write_str(&error.message),
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

pub struct Client {
    pub endpoint: Endpoint,
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// `/v1/...` path segment for an address: `[` and `]` percent-encoded.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | ':' | '-' | '_' | '~' => out.push(c),
            other => {
                let mut buf = [0u8; 4];
                for b in other.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

impl Client {
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint }
    }

    fn connect(&self) -> Result<Box<dyn Stream>> {
        let connect_err = |e: std::io::Error| {
            ClientError::Connect(format!("Can't connect to rvsd at {}: {e}", self.endpoint.describe()))
        };
        Ok(match &self.endpoint {
            Endpoint::Unix(path) => {
                let s = UnixStream::connect(path).map_err(connect_err)?;
                s.set_read_timeout(Some(TIMEOUT)).map_err(connect_err)?;
                s.set_write_timeout(Some(TIMEOUT)).map_err(connect_err)?;
                Box::new(s)
            }
            Endpoint::Tcp { addr, .. } => {
                let s = TcpStream::connect(addr.as_str()).map_err(connect_err)?;
                s.set_read_timeout(Some(TIMEOUT)).map_err(connect_err)?;
                s.set_write_timeout(Some(TIMEOUT)).map_err(connect_err)?;
                Box::new(s)
            }
        })
    }

    /// One request; the status and the body text.
    pub fn raw(&self, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
        let mut s = self.connect()?;
        let body = body.unwrap_or("");
        let auth = match &self.endpoint {
            Endpoint::Tcp { token: Some(t), .. } => format!("Authorization: Bearer {t}\r\n"),
            _ => String::new(),
        };
        let host = match &self.endpoint {
            Endpoint::Tcp { addr, .. } => addr.clone(),
            Endpoint::Unix(_) => "rvsd".to_string(),
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n{auth}\r\n{body}",
            body.len()
        );
        let proto = |e: std::io::Error| ClientError::Protocol(format!("{method} {path}: {e}"));
        s.write_all(req.as_bytes()).map_err(proto)?;
        s.flush().map_err(proto)?;
        read_response(&mut BufReader::new(s)).map_err(proto)
    }

    /// A request whose answer is JSON of type `T`; error statuses become [`ClientError::Api`].
    pub fn call<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<&str>) -> Result<T> {
        let (status, text) = self.raw(method, path, body)?;
        if !(200..300).contains(&status) {
            let error = serde_json::from_str::<ErrorBody>(&text)
                .map(|b| b.error)
                .unwrap_or_else(|_| ApiError::message(format!("HTTP {status}: {}", text.trim())));
            return Err(ClientError::Api { status, error });
        }
        serde_json::from_str(&text)
            .map_err(|e| ClientError::Protocol(format!("{method} {path}: unexpected answer ({e}): {}", text.trim())))
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call("GET", path, None)
    }

    pub fn send<B: Serialize, T: DeserializeOwned>(&self, method: &str, path: &str, body: &B) -> Result<T> {
        let text = serde_json::to_string(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.call(method, path, Some(&text))
    }
}

fn read_response(r: &mut impl BufRead) -> std::io::Result<(u16, String)> {
    let mut status_line = String::new();
    r.read_line(&mut status_line)?;
    let status = status_line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not an HTTP answer: {status_line:?}"))
    })?;
    let mut len = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                len = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            if n == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + n, 0);
            r.read_exact(&mut body[start..])?;
            let mut crlf = String::new();
            r.read_line(&mut crlf)?;
        }
    } else if let Some(n) = len {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        assert_eq!(encode_segment("[::1]:80"), "%5B::1%5D:80");
        assert_eq!(encode_segment("10.0.0.1:80"), "10.0.0.1:80");
    }

    #[test]
    fn responses() {
        let text = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(read_response(&mut text.as_bytes()).unwrap(), (200, "{}".to_string()));
        let text = "HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(read_response(&mut text.as_bytes()).unwrap(), (404, "abcde".to_string()));
    }

    #[test]
    fn endpoints() {
        assert_eq!(Endpoint::resolve(Some("/tmp/a.sock")), Endpoint::Unix("/tmp/a.sock".into()));
        assert!(
            matches!(Endpoint::resolve(Some("http://127.0.0.1:9180")), Endpoint::Tcp { addr, .. } if addr == "127.0.0.1:9180")
        );
    }
}
