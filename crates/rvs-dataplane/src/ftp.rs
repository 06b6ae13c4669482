//! The FTP control stream as IPVS's `ip_vs_ftp` helper reads it: pure parsing and rewriting,
//! no I/O. [`Lines`] cuts a byte stream into lines (a line past [`MAX_LINE`] is passed through
//! unparsed, as IPVS passes what it does not recognise); [`parse_command`] finds the client's
//! `PORT` and `EPRT` (active mode), [`parse_reply`] the server's `227` and `229` answers
//! (passive mode); [`active_target`] and [`passive_target`] say where the director connects the
//! data connection they announce; [`rewrite_command`] and [`rewrite_reply`] put the director's
//! own address in their place. Anything else, or anything malformed, is `None`: the line is
//! relayed unchanged.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::ops::Range;

/// The longest control line parsed, terminator included. vsftpd's own limit on a command line
/// is 4096 bytes; a longer line is relayed as it comes, unparsed (IPVS only inspects what fits
/// in one segment and passes the rest on unchanged).
pub const MAX_LINE: usize = 4096;

/// A piece of the control stream, in order: what [`Lines`] hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A whole line, its terminator (`\n`, usually `\r\n`) included: to be parsed.
    Line(Vec<u8>),
    /// Bytes relayed unparsed: part of a line past [`MAX_LINE`], or an unfinished line at the
    /// end of the stream.
    Raw(Vec<u8>),
}

/// Cuts one direction of the control stream into [`Piece`]s. Lossless: the pieces joined are
/// the bytes pushed, in order.
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
    /// Inside a line past the limit: what comes up to its `\n` is passed through.
    passing: bool,
}

impl Lines {
    /// Takes more bytes of the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next piece, or `None` until more bytes come (call it until `None`).
    pub fn next_piece(&mut self) -> Option<Piece> {
        if self.buf.is_empty() {
            return None;
        }
        let lf = self.buf.iter().position(|&b| b == b'\n');
        if self.passing {
            let end = lf.map_or(self.buf.len(), |i| i + 1);
            self.passing = lf.is_none();
            return Some(Piece::Raw(self.buf.drain(..end).collect()));
        }
        match lf {
            Some(i) if i < MAX_LINE => Some(Piece::Line(self.buf.drain(..=i).collect())),
            _ if self.buf.len() >= MAX_LINE => {
                // Too long to parse: this much goes on now, the rest of the line as it comes.
                let raw: Vec<u8> = self.buf.drain(..MAX_LINE).collect();
                self.passing = true;
                Some(Piece::Raw(raw))
            }
            _ => None,
        }
    }

    /// The end of the stream: what is left of an unfinished line, unparsed.
    pub fn finish(&mut self) -> Option<Piece> {
        self.passing = false;
        (!self.buf.is_empty()).then(|| Piece::Raw(std::mem::take(&mut self.buf)))
    }
}

/// A data address the client announces (active mode): the real server is to connect there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `PORT h1,h2,h3,h4,p1,p2` (IPv4).
    Port { addr: SocketAddrV4, span: Range<usize> },
    /// `EPRT <d><1|2><d><addr><d><port><d>` (RFC 2428), `delim` its delimiter.
    Eprt { addr: SocketAddr, delim: u8, span: Range<usize> },
}

/// A data address the server announces (passive mode): the client is to connect there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` (IPv4); `span` covers the six numbers.
    Pasv { addr: SocketAddrV4, span: Range<usize> },
    /// `229 Entering Extended Passive Mode (|||port|)`: the port on the control connection's
    /// address; `span` covers `|||port|`.
    Epsv { port: u16, delim: u8, span: Range<usize> },
}

impl Command {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Command::Port { addr, .. } => SocketAddr::V4(*addr),
            Command::Eprt { addr, .. } => *addr,
        }
    }
}

/// Where the director connects a data connection a client's command announced, or `None` when
/// the command is not to be acted on (IPVS's `ip_vs_ftp_in`: `PORT` on IPv4 control connections
/// only, `EPRT` of the control connection's family only). The port is the one the client named,
/// the address always the client's on the control connection (`client`): a client cannot make
/// the director connect to another host (no FTP bounce).
pub fn active_target(cmd: &Command, client: SocketAddr) -> Option<SocketAddr> {
    let same_family = match cmd {
        Command::Port { .. } => client.is_ipv4(),
        Command::Eprt { addr, .. } => addr.is_ipv4() == client.is_ipv4(),
    };
    same_family.then(|| SocketAddr::new(client.ip(), cmd.addr().port()))
}

/// Where the director connects a data connection a real server's reply announced, or `None`
/// when the reply is not to be acted on (IPVS's `ip_vs_ftp_out`: a `227` only where both the
/// client's side, `vip`, and the real server's, `server`, are IPv4, since no IPv6 address fits
/// it). A `227` names the address (0.0.0.0 means the real server's control address); a `229`
/// only the port, on the real server's control address.
pub fn passive_target(reply: &Reply, vip: SocketAddr, server: SocketAddr) -> Option<SocketAddr> {
    match reply {
        Reply::Pasv { .. } if !(vip.is_ipv4() && server.is_ipv4()) => None,
        Reply::Pasv { addr, .. } if addr.ip().is_unspecified() => Some(SocketAddr::new(server.ip(), addr.port())),
        Reply::Pasv { addr, .. } => Some(SocketAddr::V4(*addr)),
        Reply::Epsv { port, .. } => Some(SocketAddr::new(server.ip(), *port)),
    }
}

/// The line without its `\r\n` or `\n`.
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The client's `PORT` or `EPRT` in one control line (terminator optional), if it is one
/// and well formed.
pub fn parse_command(line: &[u8]) -> Option<Command> {
    let line = trim_eol(line);
    if line.len() < 5 || line[4] != b' ' {
        return None;
    }
    let verb = &line[..4];
    let start = 5 + line[5..].iter().take_while(|&&b| b == b' ').count();
    let args = &line[start..];
    let end = start + args.len() - args.iter().rev().take_while(|&&b| b == b' ').count();
    let args = &line[start..end];
    if verb.eq_ignore_ascii_case(b"PORT") {
        let addr = six_numbers(args)?;
        Some(Command::Port { addr, span: start..end })
    } else if verb.eq_ignore_ascii_case(b"EPRT") {
        let (addr, delim) = extended(args)?;
        Some(Command::Eprt { addr, delim, span: start..end })
    } else {
        None
    }
}

/// The server's `227` or `229` answer in one reply line (terminator optional), if it is one
/// and well formed. Multi-line replies (`227-`) are not passive-mode answers.
pub fn parse_reply(line: &[u8]) -> Option<Reply> {
    let line = trim_eol(line);
    if line.len() < 4 || line[3] != b' ' {
        return None;
    }
    match &line[..3] {
        b"227" => {
            // RFC 1123 4.1.2.6: the parentheses are optional; the address starts at the first
            // digit after the code.
            let from = 4 + line[4..].iter().position(u8::is_ascii_digit)?;
            let len = line[from..].iter().take_while(|&&b| b.is_ascii_digit() || b == b',').count();
            let addr = six_numbers(&line[from..from + len])?;
            Some(Reply::Pasv { addr, span: from..from + len })
        }
        b"229" => {
            let open = 4 + line[4..].iter().position(|&b| b == b'(')?;
            let rest = &line[open + 1..];
            let close = rest.iter().position(|&b| b == b')')?;
            let inner = &rest[..close];
            let &[d, d2, d3, ref digits @ .., d4] = inner else { return None };
            if !is_delim(d) || d2 != d || d3 != d || d4 != d {
                return None;
            }
            let port = port_number(digits)?;
            Some(Reply::Epsv { port, delim: d, span: open + 1..open + 1 + close })
        }
        _ => None,
    }
}

/// RFC 2428: a printable ASCII character (33 to 126, as IPVS takes), `|` recommended; rvs
/// refuses those that can be part of an address or a port (letters, digits, `.` and `:`), so
/// that a rewritten line always reads back as written.
fn is_delim(b: u8) -> bool {
    (33..=126).contains(&b) && !b.is_ascii_alphanumeric() && b != b'.' && b != b':'
}

/// A port number: 1 to 5 digits, 1 to 65535.
fn port_number(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    u16::try_from(n).ok().filter(|&p| p != 0)
}

/// `h1,h2,h3,h4,p1,p2`: each 0 to 255, one to three digits; the port not 0.
fn six_numbers(s: &[u8]) -> Option<SocketAddrV4> {
    let mut n = [0u8; 6];
    let mut parts = s.split(|&b| b == b',');
    for slot in &mut n {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        *slot = std::str::from_utf8(p).ok()?.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    let port = u16::from_be_bytes([n[4], n[5]]);
    (port != 0).then(|| SocketAddrV4::new(Ipv4Addr::new(n[0], n[1], n[2], n[3]), port))
}

/// `<d><af><d><addr><d><port><d>` with af 1 (IPv4) or 2 (IPv6).
fn extended(s: &[u8]) -> Option<(SocketAddr, u8)> {
    let &d = s.first()?;
    if !is_delim(d) || s.len() < 2 || s[s.len() - 1] != d {
        return None;
    }
    let fields: Vec<&[u8]> = s[1..s.len() - 1].split(|&b| b == d).collect();
    let [af, addr, port] = fields[..] else { return None };
    let addr = std::str::from_utf8(addr).ok()?;
    let ip: IpAddr = match af {
        b"1" => IpAddr::V4(addr.parse::<Ipv4Addr>().ok()?),
        b"2" => IpAddr::V6(addr.parse::<Ipv6Addr>().ok()?),
        _ => return None,
    };
    Some((SocketAddr::new(ip, port_number(port)?), d))
}

/// The command line with `new` in place of the address it announced: `PORT` keeps its form
/// when `new` is IPv4 (else it becomes `EPRT`, the only way to name an IPv6 address), `EPRT`
/// keeps its delimiter. The line's terminator is kept.
pub fn rewrite_command(line: &[u8], cmd: &Command, new: SocketAddr) -> Vec<u8> {
    match (cmd, new) {
        (Command::Port { span, .. }, SocketAddr::V4(v4)) => splice(line, span, six(v4).as_bytes()),
        (Command::Port { .. }, SocketAddr::V6(_)) => {
            let eol = &line[trim_eol(line).len()..];
            let mut out = format!("EPRT {}", eprt_args(b'|', new)).into_bytes();
            out.extend_from_slice(if eol.is_empty() { b"\r\n" } else { eol });
            out
        }
        (Command::Eprt { span, delim, .. }, _) => splice(line, span, eprt_args(*delim, new).as_bytes()),
    }
}

/// The reply line with `new` in place of the address it announced (`229` names only the
/// port: the client connects to the address it reached the director on).
pub fn rewrite_reply(line: &[u8], reply: &Reply, new: SocketAddr) -> Vec<u8> {
    match reply {
        Reply::Pasv { span, .. } => {
            let v4 = match new {
                SocketAddr::V4(v4) => v4,
                // No IPv6 address fits a 227: the answer stays as it was (IPVS does the same).
                SocketAddr::V6(_) => return line.to_vec(),
            };
            splice(line, span, six(v4).as_bytes())
        }
        Reply::Epsv { span, delim, .. } => {
            let d = char::from(*delim);
            splice(line, span, format!("{d}{d}{d}{}{d}", new.port()).as_bytes())
        }
    }
}

fn six(a: SocketAddrV4) -> String {
    let [h1, h2, h3, h4] = a.ip().octets();
    let [p1, p2] = a.port().to_be_bytes();
    format!("{h1},{h2},{h3},{h4},{p1},{p2}")
}

fn eprt_args(delim: u8, a: SocketAddr) -> String {
    let d = char::from(delim);
    let af = if a.is_ipv4() { 1 } else { 2 };
    format!("{d}{af}{d}{}{d}{}{d}", a.ip(), a.port())
}

fn splice(line: &[u8], span: &Range<usize>, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + with.len());
    out.extend_from_slice(&line[..span.start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&line[span.end..]);
    out
}

/// The fuzz target's entry point: bytes as one direction of a control stream, cut into pieces
/// at `split` as two reads; every line parsed both as a command and as a reply, and rewritten
/// when it parses. Checks what must always hold (the pieces are the input; a rewritten line
/// parses back to the new address) and panics when it does not.
pub fn fuzz_control_stream(data: &[u8], split: usize) {
    let split = split.min(data.len());
    let mut lines = Lines::default();
    let mut out = Vec::new();
    let mut pieces = Vec::new();
    for part in [&data[..split], &data[split..]] {
        lines.push(part);
        while let Some(p) = lines.next_piece() {
            pieces.push(p);
        }
    }
    pieces.extend(lines.finish());
    let new4 = SocketAddr::from(([192, 0, 2, 1], 40_000));
    let new6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 40_001));
    for p in pieces {
        match p {
            Piece::Raw(b) => out.extend_from_slice(&b),
            Piece::Line(l) => {
                assert!(l.len() <= MAX_LINE && l.ends_with(b"\n"));
                if let Some(c) = parse_command(&l) {
                    for client in [new4, new6] {
                        if let Some(t) = active_target(&c, client) {
                            assert_eq!((t.ip(), t.port()), (client.ip(), c.addr().port()), "only the client's address");
                        }
                    }
                    for new in [new4, new6] {
                        let again = parse_command(&rewrite_command(&l, &c, new));
                        assert_eq!(again.map(|c| c.addr()), Some(new), "rewritten command parses back");
                    }
                }
                if let Some(r) = parse_reply(&l) {
                    for (vip, server) in [(new4, new4), (new6, new6), (new4, new6)] {
                        if let Some(t) = passive_target(&r, vip, server) {
                            assert_ne!(t.port(), 0);
                        }
                    }
                    let again = parse_reply(&rewrite_reply(&l, &r, new4));
                    match (again, &r) {
                        (Some(Reply::Pasv { addr, .. }), Reply::Pasv { .. }) => assert_eq!(SocketAddr::V4(addr), new4),
                        (Some(Reply::Epsv { port, .. }), Reply::Epsv { .. }) => assert_eq!(port, new4.port()),
                        other => panic!("rewritten reply parses as {other:?}"),
                    }
                }
                out.extend_from_slice(&l);
            }
        }
    }
    assert_eq!(out, data, "the pieces are the stream");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn port_commands() {
        let c = parse_command(b"PORT 127,0,0,1,4,1\r\n").unwrap();
        assert_eq!(c, Command::Port { addr: v4("127.0.0.1:1025"), span: 5..18 });
        assert_eq!(parse_command(b"port   10,1,2,3,255,255  \r\n").unwrap().addr(), "10.1.2.3:65535".parse().unwrap());
        for bad in [
            &b"PORT 127,0,0,1,4\r\n"[..],
            b"PORT 127,0,0,1,4,1,2\r\n",
            b"PORT 256,0,0,1,4,1\r\n",
            b"PORT 1,0,0,1,0,0\r\n",
            b"PORT 1,0,0,1,0001,1\r\n",
            b"PORT 1,,0,1,4,1\r\n",
            b"PORTS 1,2,3,4,5,6\r\n",
            b"PORT\r\n",
            b"PASV\r\n",
            b"PORT 1,2,3,4,5,6x\r\n",
            b"RETR PORT 1,2,3,4,5,6\r\n",
        ] {
            assert_eq!(parse_command(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn eprt_commands() {
        let c = parse_command(b"EPRT |1|132.235.1.2|6275|\r\n").unwrap();
        assert_eq!(c.addr(), "132.235.1.2:6275".parse().unwrap());
        let c = parse_command(b"eprt !2!::1!5282!\r\n").unwrap();
        assert_eq!(c, Command::Eprt { addr: "[::1]:5282".parse().unwrap(), delim: b'!', span: 5..17 });
        for bad in [
            &b"EPRT |3|1.2.3.4|5|\r\n"[..],
            b"EPRT |1|::1|5|\r\n",
            b"EPRT |2|1.2.3.4|5|\r\n",
            b"EPRT |1|1.2.3.4|0|\r\n",
            b"EPRT |1|1.2.3.4|65536|\r\n",
            b"EPRT |1|1.2.3.4|5\r\n",
            b"EPRT |1|1.2.3.4|5|6|\r\n",
            b"EPRT  \r\n",
            b"EPRT \x01 1\x011.2.3.4\x015\x01\r\n",
        ] {
            assert_eq!(parse_command(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn passive_replies() {
        let line = b"227 Entering Passive Mode (127,0,0,2,156,64).\r\n";
        let r = parse_reply(line).unwrap();
        assert_eq!(r, Reply::Pasv { addr: v4("127.0.0.2:40000"), span: 27..43 });
        assert_eq!(
            rewrite_reply(line, &r, "10.0.0.1:1025".parse().unwrap()),
            b"227 Entering Passive Mode (10,0,0,1,4,1).\r\n"
        );
        // Without parentheses (RFC 1123).
        assert_eq!(
            parse_reply(b"227 =1,2,3,4,0,21\r\n").map(|r| match r {
                Reply::Pasv { addr, .. } => addr,
                _ => unreachable!(),
            }),
            Some(v4("1.2.3.4:21"))
        );
        let line = b"229 Entering Extended Passive Mode (|||6446|)\r\n";
        let r = parse_reply(line).unwrap();
        assert_eq!(r, Reply::Epsv { port: 6446, delim: b'|', span: 36..44 });
        assert_eq!(
            rewrite_reply(line, &r, "[::1]:50000".parse().unwrap()),
            b"229 Entering Extended Passive Mode (|||50000|)\r\n"
        );
        for bad in [
            &b"227-Entering Passive Mode (1,2,3,4,5,6)\r\n"[..],
            b"227 Entering Passive Mode\r\n",
            b"227 Entering Passive Mode (1,2,3,4,5)\r\n",
            b"229 Entering Extended Passive Mode (||6446|)\r\n",
            b"229 Entering Extended Passive Mode (|1|1.2.3.4|6446|)\r\n",
            b"229 Entering Extended Passive Mode (|||0|)\r\n",
            b"229 Entering Extended Passive Mode |||6446|\r\n",
            b"200 PORT command successful (1,2,3,4,5,6)\r\n",
            b"22",
        ] {
            assert_eq!(parse_reply(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn commands_are_rewritten_in_place() {
        let line = b"PORT 127,0,0,1,4,1\r\n";
        let c = parse_command(line).unwrap();
        assert_eq!(rewrite_command(line, &c, "10.0.0.9:40001".parse().unwrap()), b"PORT 10,0,0,9,156,65\r\n");
        assert_eq!(rewrite_command(line, &c, "[::1]:7".parse().unwrap()), b"EPRT |2|::1|7|\r\n");
        let line = b"EPRT !1!1.2.3.4!5!\r\n";
        let c = parse_command(line).unwrap();
        assert_eq!(rewrite_command(line, &c, "[fe80::1]:99".parse().unwrap()), b"EPRT !2!fe80::1!99!\r\n");
    }

    #[test]
    fn data_targets_follow_ip_vs_ftp() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let (c4, c6) = (sa("198.51.100.7:40000"), sa("[2001:db8::7]:40000"));
        let cmd = |l: &[u8]| parse_command(l).unwrap();
        // The client's control address, whatever PORT names.
        assert_eq!(active_target(&cmd(b"PORT 10,9,9,9,4,1\r\n"), c4), Some(sa("198.51.100.7:1025")));
        assert_eq!(active_target(&cmd(b"PORT 10,9,9,9,4,1\r\n"), c6), None);
        assert_eq!(active_target(&cmd(b"EPRT |2|2001:db8::99|5|\r\n"), c6), Some(sa("[2001:db8::7]:5")));
        assert_eq!(active_target(&cmd(b"EPRT |1|10.0.0.1|5|\r\n"), c6), None);
        assert_eq!(active_target(&cmd(b"EPRT |1|10.0.0.1|5|\r\n"), c4), Some(sa("198.51.100.7:5")));
        let (vip4, vip6) = (sa("192.0.2.1:21"), sa("[2001:db8::1]:21"));
        let (rs4, rs6) = (sa("10.0.0.2:21"), sa("[fd00::2]:21"));
        let reply = |l: &[u8]| parse_reply(l).unwrap();
        let pasv = reply(b"227 Entering Passive Mode (10,0,0,3,4,1)\r\n");
        assert_eq!(passive_target(&pasv, vip4, rs4), Some(sa("10.0.0.3:1025")), "the announced address");
        assert_eq!(passive_target(&pasv, vip6, rs6), None);
        let any = reply(b"227 Entering Passive Mode (0,0,0,0,4,1)\r\n");
        assert_eq!(passive_target(&any, vip4, rs4), Some(sa("10.0.0.2:1025")), "0.0.0.0: the real server's");
        let epsv = reply(b"229 Entering Extended Passive Mode (|||6446|)\r\n");
        assert_eq!(passive_target(&epsv, vip6, rs6), Some(sa("[fd00::2]:6446")));
        assert_eq!(passive_target(&epsv, vip4, rs4), Some(sa("10.0.0.2:6446")));
    }

    #[test]
    fn lines_are_cut_and_long_lines_pass_through() {
        let mut l = Lines::default();
        l.push(b"USER anon\r\nPA");
        assert_eq!(l.next_piece(), Some(Piece::Line(b"USER anon\r\n".to_vec())));
        assert_eq!(l.next_piece(), None);
        l.push(b"SS x\r\n");
        assert_eq!(l.next_piece(), Some(Piece::Line(b"PASS x\r\n".to_vec())));
        let long = vec![b'a'; MAX_LINE + 10];
        l.push(&long);
        assert_eq!(l.next_piece(), Some(Piece::Raw(long[..MAX_LINE].to_vec())));
        assert_eq!(l.next_piece(), Some(Piece::Raw(long[MAX_LINE..].to_vec())));
        l.push(b"PORT 1,2,3,4,5,6\r\nNOOP\r\n");
        // The rest of the long line, though it looks like a command, is not parsed.
        assert_eq!(l.next_piece(), Some(Piece::Raw(b"PORT 1,2,3,4,5,6\r\n".to_vec())));
        assert_eq!(l.next_piece(), Some(Piece::Line(b"NOOP\r\n".to_vec())));
        l.push(b"QUI");
        assert_eq!(l.next_piece(), None);
        assert_eq!(l.finish(), Some(Piece::Raw(b"QUI".to_vec())));
        assert_eq!(l.finish(), None);
        // A line of exactly the limit, its LF last, is still a line.
        let mut exact = vec![b'x'; MAX_LINE - 1];
        exact.push(b'\n');
        l.push(&exact);
        assert_eq!(l.next_piece(), Some(Piece::Line(exact)));
    }

    #[test]
    fn fuzz_entry_holds_on_samples() {
        let stream = b"220 hi\r\nPORT 127,0,0,1,4,1\r\n227 Entering Passive Mode (1,2,3,4,5,6)\r\n\
            229 Entering Extended Passive Mode (|||6446|)\r\nEPRT |2|::1|5|\r\nport 1,2,3,4,5,6 \n";
        for split in 0..stream.len() {
            fuzz_control_stream(stream, split);
        }
        fuzz_control_stream(&[b'P'; MAX_LINE * 2 + 3], MAX_LINE + 1);
    }
}
