//! Request paths as the API routes them: the segments between `/`, each with its `%XX`
//! escapes decoded (`/v1/services/tcp/10.0.0.1%3A80` names the service `10.0.0.1:80`); bytes
//! that do not decode to UTF-8 become U+FFFD.

/// The decoded segments of `path`, its leading and trailing `/` left out.
pub fn segments(path: &str) -> Vec<String> {
    path.trim_matches('/').split('/').map(percent_decode).collect()
}

/// `%XX` escapes in a path segment; a `%` not followed by two hex digits stays as it is.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |at: usize| b.get(at).and_then(|c| char::from(*c).to_digit(16));
        if b[i] == b'%' {
            // Two hex digits: `u8::from_str_radix` alone would also take `+A`.
            if let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) {
                out.push((high << 4 | low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_segments() {
        assert_eq!(segments("/v1/services/tcp/10.0.0.1%3A80/"), ["v1", "services", "tcp", "10.0.0.1:80"]);
        assert_eq!(segments("/"), [""]);
        assert_eq!(percent_decode("%5B%3a%3A1%5d:80"), "[::1]:80");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        // Found by the api_path fuzz target: a sign is no hex digit.
        assert_eq!(percent_decode("1%5D%+A53"), "1]%+A53");
        assert_eq!(percent_decode("%+1%-1"), "%+1%-1");
    }
}
