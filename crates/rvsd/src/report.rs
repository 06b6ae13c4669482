//! The one report of an error that ends a command: the error and its causes on one line,
//! each cause once. Many errors already put their cause's text in their own message
//! (`"binding {addr}: {source}"`) and also return it as `source()`; anyhow's `{:#}` would
//! then print the OS error twice.

/// `e` and the causes its text does not already hold, joined by `": "`.
pub fn chain(e: &anyhow::Error) -> String {
    causes(e.chain())
}

fn causes<'a>(chain: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>) -> String {
    let mut out = String::new();
    for cause in chain {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("binding {addr}: {source}")]
    struct Bind {
        addr: &'static str,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn the_os_error_is_printed_once() {
        let io = std::io::Error::from_raw_os_error(98);
        let os = io.to_string();
        let e = anyhow::Error::new(Bind { addr: "127.0.0.1:80", source: io }).context("applying the configuration");
        let text = chain(&e);
        assert_eq!(text, format!("applying the configuration: binding 127.0.0.1:80: {os}"));
        assert_eq!(text.matches(&os).count(), 1, "{text}");
    }

    #[test]
    fn causes_not_in_the_message_are_kept() {
        let e = anyhow::Error::new(std::io::Error::from_raw_os_error(13)).context("control API socket /run/x.sock");
        assert!(chain(&e).starts_with("control API socket /run/x.sock: "), "{}", chain(&e));
        assert!(chain(&e).contains("(os error 13)"));
    }
}
