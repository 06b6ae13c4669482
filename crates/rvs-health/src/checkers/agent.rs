//! The agent check (HAProxy's `agent-check`): connect to the agent port, send `agent-send` if
//! set, read one line and apply it: `up`, `down`/`fail`/`stopped`, `ready`/`drain`/`maint`, a
//! weight as `75%`, `maxconn:N` (ignored), a reason after `#`. rvs also takes `weight:N`.
//!
//! Words are separated by spaces, tabs or commas and compared without case, as HAProxy does.
//! Each reply is taken whole (no admin state is remembered between replies): `maint`, `down`,
//! `fail` and `stopped` are down; `drain` (or `0%`) is drain; otherwise up, with the weight.
//! A reply with no word rvs knows is a failed check.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{connect, excerpt, io_reason, Deadline, Endpoint, Failure, Success, Verdict};
use crate::health::{Health, WeightHint};

/// Most bytes of an agent reply read.
const MAX_REPLY: usize = 1024;

pub(crate) async fn check(send: Option<&[u8]>, to: Endpoint, dl: &Deadline) -> Verdict {
    let mut stream = connect(&to, dl).await?;
    if let Some(data) = send {
        dl.io("sending to the agent", stream.write_all(data)).await?;
    }
    let mut reply = Vec::new();
    let mut chunk = [0u8; 512];
    while !reply.contains(&b'\n') && reply.len() < MAX_REPLY {
        match dl.run("waiting for the agent", stream.read(&mut chunk)).await? {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            // A reply followed by a reset is still a reply.
            Err(_) if !reply.is_empty() => break,
            Err(e) => return Err(Failure(io_reason(&e))),
        }
    }
    let line = reply.split(|&b| b == b'\n').next().unwrap_or(&[]);
    parse(line)
}

/// Judges one agent reply line.
pub(crate) fn parse(line: &[u8]) -> Verdict {
    let line = line.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    let (words, description) = match text.split_once('#') {
        Some((w, d)) => (w, Some(d.trim())),
        None => (text, None),
    };
    let shown = excerpt(text.trim().as_bytes(), 80);
    if words.trim().is_empty() && description.is_none() {
        return Err(Failure::new("empty agent reply"));
    }
    let mut operational: Option<Health> = None;
    let mut admin: Option<&'static str> = None;
    let mut weight: Option<WeightHint> = None;
    let mut known = false;
    for word in words.split([' ', '\t', ',']).filter(|w| !w.is_empty()) {
        let lower = word.to_ascii_lowercase();
        known = true;
        match lower.as_str() {
            "up" => operational = Some(Health::Up),
            "down" | "fail" | "stopped" => operational = Some(Health::Down),
            "ready" => admin = Some("ready"),
            "drain" => admin = Some("drain"),
            "maint" => admin = Some("maint"),
            w if w.ends_with('%') => match w[..w.len() - 1].parse::<u32>() {
                Ok(p) => weight = Some(WeightHint::Percent(p)),
                Err(_) => known = false,
            },
            w if w.starts_with("weight:") => match w["weight:".len()..].parse::<u32>() {
                Ok(n) => weight = Some(WeightHint::Absolute(n)),
                Err(_) => known = false,
            },
            w if w.starts_with("maxconn:") => {}
            _ => known = false,
        }
        if !known {
            return Err(Failure(format!(
                "unrecognised agent reply \"{shown}\" (at \"{}\")",
                excerpt(word.as_bytes(), 20)
            )));
        }
    }
    if !known {
        return Err(Failure(format!("unrecognised agent reply \"{shown}\"")));
    }
    let reason = format!("agent: {shown}");
    if admin == Some("maint") || operational == Some(Health::Down) {
        return Err(Failure(reason));
    }
    let outcome =
        if admin == Some("drain") || weight == Some(WeightHint::Percent(0)) { Health::Drain } else { Health::Up };
    Ok(Success { outcome, weight, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> (Health, Option<WeightHint>) {
        let s = parse(line.as_bytes()).unwrap();
        (s.outcome, s.weight)
    }

    #[test]
    fn haproxy_grammar() {
        assert_eq!(ok("up 75%\n"), (Health::Up, Some(WeightHint::Percent(75))));
        assert_eq!(ok("50%"), (Health::Up, Some(WeightHint::Percent(50))));
        assert_eq!(ok("UP"), (Health::Up, None));
        assert_eq!(ok("ready,100%\r"), (Health::Up, Some(WeightHint::Percent(100))));
        assert_eq!(ok("drain"), (Health::Drain, None));
        assert_eq!(ok("0%"), (Health::Drain, Some(WeightHint::Percent(0))));
        assert_eq!(ok("up maxconn:30 weight:10"), (Health::Up, Some(WeightHint::Absolute(10))));
        assert_eq!(ok("ready\tup # back from maintenance"), (Health::Up, None));
        assert_eq!(parse(b"down#disk full").unwrap_err().0, "agent: down#disk full");
        assert_eq!(parse(b"stopped").unwrap_err().0, "agent: stopped");
        assert_eq!(parse(b"fail").unwrap_err().0, "agent: fail");
        assert_eq!(parse(b"maint").unwrap_err().0, "agent: maint");
        assert_eq!(parse(b"drain down").unwrap_err().0, "agent: drain down");
    }

    #[test]
    fn junk() {
        assert_eq!(parse(b"").unwrap_err().0, "empty agent reply");
        assert_eq!(parse(b"  \r").unwrap_err().0, "empty agent reply");
        assert_eq!(parse(b"hello").unwrap_err().0, "unrecognised agent reply \"hello\" (at \"hello\")");
        assert!(parse(b"up x%").is_err());
        assert!(parse(b"# only a comment").is_err());
    }
}
