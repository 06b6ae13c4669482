//! What routing sees of one request: method, host (without port), path, query and the header
//! fields, borrowed from the parsed head. Query parameters and cookies are looked up raw, as
//! received (no percent-decoding), so the real server sees exactly what was matched.

use httparse::Header;

#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestView<'a> {
    pub method: &'a str,
    /// The request target as received.
    pub target: &'a str,
    /// The host the request names (absolute-form authority, else the Host field), port removed.
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a [Header<'a>],
}

impl<'a> RequestView<'a> {
    /// Every value of the header field `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }

    /// The first value of `name` in the query string; a parameter without `=` has an empty value.
    pub fn query_param(&self, name: &str) -> Option<&'a [u8]> {
        let q = self.query?;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v.as_bytes())
        })
    }

    /// The first value of cookie `name` across the Cookie fields.
    pub fn cookie(&self, name: &str) -> Option<&'a [u8]> {
        self.header_values("cookie").find_map(|v| cookie_in(v, name.as_bytes()))
    }
}

/// The value of cookie `name` in one Cookie field value (`a=1; b=2`).
pub(crate) fn cookie_in<'v>(value: &'v [u8], name: &[u8]) -> Option<&'v [u8]> {
    value.split(|b| *b == b';').find_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|b| *b == b'=')?;
        let (k, v) = (trim(&pair[..eq]), trim(&pair[eq + 1..]));
        let v = v.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(v);
        (k == name).then_some(v)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(headers: &'a [Header<'a>], query: Option<&'a str>) -> RequestView<'a> {
        RequestView { method: "GET", target: "/", host: None, path: "/", query, headers }
    }

    #[test]
    fn cookies_across_fields() {
        let h = [Header { name: "Cookie", value: b"a=1; b=\"two\"" }, Header { name: "cookie", value: b"c=3;d" }];
        let v = view(&h, None);
        assert_eq!(v.cookie("a"), Some(&b"1"[..]));
        assert_eq!(v.cookie("b"), Some(&b"two"[..]));
        assert_eq!(v.cookie("c"), Some(&b"3"[..]));
        assert_eq!(v.cookie("d"), None);
        assert_eq!(v.cookie("x"), None);
    }

    #[test]
    fn query_params_raw() {
        let v = view(&[], Some("a=1&flag&b=x%20y"));
        assert_eq!(v.query_param("a"), Some(&b"1"[..]));
        assert_eq!(v.query_param("flag"), Some(&b""[..]));
        assert_eq!(v.query_param("b"), Some(&b"x%20y"[..]));
        assert_eq!(v.query_param("c"), None);
    }
}
