//! The answers the proxy gives itself instead of a real server's: why (malformed, too large,
//! no pool, real server failed or slow, ...), the status code, and the canned response bytes.
//! Every such answer closes the client connection.

/// Why the proxy answers a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    #[error("request head too large")]
    HeadTooLarge,
    /// The request line alone is longer than the head may be (RFC 9112 section 3).
    #[error("request line too long")]
    UriTooLong,
    #[error("request body too large")]
    BodyTooLarge,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    #[error("HTTP version not supported")]
    Version,
    #[error("expectation not supported")]
    Expectation,
    #[error("request head not received in time")]
    Timeout,
    #[error("no pool for this request")]
    NoRoute,
    #[error("no real server available")]
    NoServer,
    #[error("real server failed: {0}")]
    BadGateway(&'static str),
    #[error("real server did not answer in time")]
    GatewayTimeout,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::MethodNotAllowed => 405,
            Refusal::Timeout => 408,
            Refusal::BodyTooLarge => 413,
            Refusal::UriTooLong => 414,
            Refusal::Expectation => 417,
            Refusal::HeadTooLarge => 431,
            Refusal::NotImplemented(_) => 501,
            Refusal::BadGateway(_) => 502,
            Refusal::NoRoute | Refusal::NoServer => 503,
            Refusal::GatewayTimeout => 504,
            Refusal::Version => 505,
        }
    }

    pub fn reason(self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            413 => "Content Too Large",
            414 => "URI Too Long",
            417 => "Expectation Failed",
            431 => "Request Header Fields Too Large",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "HTTP Version Not Supported",
        }
    }

    /// The whole response: status line, a few fields, a one-line body; `Connection: close`.
    pub fn response(self) -> Vec<u8> {
        let body = format!("{} {}\n", self.status(), self.reason());
        let mut r = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status(),
            self.reason()
        );
        if self.status() == 405 {
            r.push_str("Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n");
        }
        r.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        r.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_response_is_well_formed() {
        let r = Refusal::HeadTooLarge.response();
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
