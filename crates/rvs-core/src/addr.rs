//! Address text as users write it: `10.0.0.1:80`, `[2001:db8::1]:80`, or an address alone
//! that takes a default port (a real server inherits its virtual service's port).

use std::net::{IpAddr, SocketAddr};

/// Parses `text` as `ip:port` or `[ipv6]:port`, or a bare address with `default_port`.
pub fn parse_endpoint(text: &str, default_port: Option<u16>) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(sa) = t.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let bare = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(t);
    match (bare.parse::<IpAddr>(), default_port) {
        (Ok(ip), Some(port)) => Ok(SocketAddr::new(ip, port)),
        (Ok(_), None) => Err(format!("`{text}` needs a port (address:port, or [ipv6]:port)")),
        (Err(_), _) => Err(format!("`{text}` is not an address:port (e.g. 10.0.0.1:80 or [2001:db8::1]:80)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse_endpoint("10.0.0.1:80", None).unwrap(), "10.0.0.1:80".parse().unwrap());
        assert_eq!(parse_endpoint("[::1]:80", None).unwrap(), "[::1]:80".parse().unwrap());
        assert_eq!(parse_endpoint("::1", Some(8)).unwrap(), "[::1]:8".parse().unwrap());
        assert_eq!(parse_endpoint("[::1]", Some(8)).unwrap(), "[::1]:8".parse().unwrap());
        assert!(parse_endpoint("10.0.0.1", None).is_err());
        assert!(parse_endpoint("host:80", None).is_err());
    }
}
