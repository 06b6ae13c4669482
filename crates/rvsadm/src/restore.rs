//! `-R`: rules from stdin (what `-S` prints, and what a real `ipvsadm -S` writes), read as
//! ipvsadm reads them — one command per line, words split on blanks, `#` to the end of a
//! line ignored, the word `ipvsadm` ignored — and parsed with the same grammar as the command
//! line. Unlike ipvsadm, the whole input is one batch: a bad line changes nothing, and the
//! error names its line.

use rvs_api::ApiCommand;

use crate::addr::Lookup;
use crate::parse;
use crate::request;

/// A refused input: the line at fault (1-based), the message and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreError {
    pub line: usize,
    pub message: String,
    pub code: i32,
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The words of one input line, as ipvsadm's `config_stream_read` splits them.
pub fn words(line: &str) -> Vec<String> {
    let line = line.split('#').next().unwrap_or("");
    line.split_whitespace().filter(|w| *w != "ipvsadm" && *w != "rvsadm").map(str::to_string).collect()
}

/// `words` without the tunnel options (`--tun-type ipip`, which ipvsadm 1.31's `-S` writes
/// after every `-i`): with `-R --fullnat` there is no tunnel for them to set.
fn without_tunnel_options(words: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len());
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "--tun-type" | "--tun-port" => {
                it.next();
            }
            "--tun-nocsum" | "--tun-csum" | "--tun-remcsum" => {}
            _ if w.starts_with("--tun-type=") || w.starts_with("--tun-port=") => {}
            _ => out.push(w),
        }
    }
    out
}

/// The commands of `text`, each with its line number. `fullnat` makes every real server
/// full NAT (`-R --fullnat`, to take in a real ipvsadm's rules; their tunnel options go too).
/// Host names are looked up, as ipvsadm's `-R` does.
pub fn parse_rules(text: &str, fullnat: bool) -> Result<Vec<(usize, ApiCommand)>, RestoreError> {
    parse_rules_with(text, fullnat, Lookup::Names)
}

/// [`parse_rules`], with host names looked up as `lookup` says ([`Lookup::Numeric`]: numeric
/// addresses only, the resolver never asked).
pub fn parse_rules_with(text: &str, fullnat: bool, lookup: Lookup) -> Result<Vec<(usize, ApiCommand)>, RestoreError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let mut words = words(line);
        if fullnat {
            words = without_tunnel_options(words);
        }
        if words.is_empty() {
            continue;
        }
        let argv: Vec<String> = std::iter::once("rvsadm".to_string()).chain(words).collect();
        let inv = parse::parse_with(&argv, lookup).map_err(|e| RestoreError {
            line: line_no,
            message: e.message,
            code: e.code,
        })?;
        if inv.api.is_some() {
            return Err(RestoreError {
                line: line_no,
                message: "--api cannot be used in restore input".into(),
                code: 2,
            });
        }
        let cmd = &inv.command;
        let pooled = match cmd {
            parse::Command::AddServer(a) | parse::Command::EditServer(a) => a.pool.is_some(),
            parse::Command::DeleteServer { pool, .. } => pool.is_some(),
            _ => false,
        };
        if pooled {
            // http pools change through their own calls, not the all-or-nothing batch.
            return Err(RestoreError {
                line: line_no,
                message: "--pool cannot be used in restore input".into(),
                code: 2,
            });
        }
        match request::to_api(cmd, fullnat) {
            Some(c) => out.push((line_no, c)),
            None => {
                return Err(RestoreError {
                    line: line_no,
                    message: format!("the '{}' command cannot be used in restore input", cmd.name()),
                    code: 2,
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ipvsadm_rules() {
        let text = "# saved\n-A -t 10.0.0.1:80 -s wlc -p 300 -M 255.255.255.0\n\nipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1 # web\n";
        let cmds = parse_rules(text, false).unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0].0, 2);
        assert_eq!(cmds[1].0, 4);
        let ApiCommand::AddServer { server, .. } = &cmds[1].1 else { panic!() };
        assert_eq!(server.method.as_deref(), Some("masq"));
        let cmds = parse_rules(text, true).unwrap();
        let ApiCommand::AddServer { server, .. } = &cmds[1].1 else { panic!() };
        assert_eq!(server.method.as_deref(), Some("fullnat"));
    }

    #[test]
    fn fullnat_takes_in_tunnels() {
        let text = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i -w 1 --tun-type ipip\n";
        let cmds = parse_rules(text, false).unwrap();
        let ApiCommand::AddServer { server, .. } = &cmds[1].1 else { panic!() };
        assert_eq!(server.method.as_deref(), Some("tunnel"));
        let cmds = parse_rules(text, true).unwrap();
        let ApiCommand::AddServer { server, .. } = &cmds[1].1 else { panic!() };
        assert_eq!(server.method.as_deref(), Some("fullnat"));
        // A GUE tunnel is refused, but taken in as full NAT.
        let gue = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i -w 1 --tun-type gue --tun-port 6080\n";
        let e = parse_rules(gue, false).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("not supported by rvs yet"), "{}", e.message);
        let cmds = parse_rules(gue, true).unwrap();
        let ApiCommand::AddServer { server, .. } = &cmds[1].1 else { panic!() };
        assert_eq!(server.method.as_deref(), Some("fullnat"));
    }

    #[test]
    fn names_the_bad_line() {
        let e = parse_rules("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.0.2 -w 70000\n", false).unwrap_err();
        assert_eq!((e.line, e.message.as_str(), e.code), (2, "illegal weight specified", 2));
        let e = parse_rules("-L -n\n", false).unwrap_err();
        assert_eq!(e.message, "the 'list' command cannot be used in restore input");
        // The Layer-7 rules are not in the batch: refused by name.
        let e = parse_rules("--add-rule -t 10.0.0.1:80 --rule a --match path=/ --pool p\n", false).unwrap_err();
        assert_eq!((e.message.as_str(), e.code), ("the 'add-rule' command cannot be used in restore input", 2));
        let e = parse_rules("--list-rules\n", false).unwrap_err();
        assert_eq!(e.message, "the 'list-rules' command cannot be used in restore input");
    }
}
