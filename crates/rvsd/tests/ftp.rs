//! FTP through the full-NAT proxy (the `ftp` helper, IPVS's `ip_vs_ftp`): Debian's vsftpd as
//! two real servers, Python's ftplib as clients from their own loopback addresses. Passive
//! (PASV, EPSV) and active (PORT, EPRT) transfers of 1 MiB both ways are byte-exact and spread
//! over both real servers; the data connections count in the service's statistics; a data
//! listener takes only its client's connection and closes with its control connection or after
//! 30 s unused; an over-long line never hurts the director; TCP port 21 runs the helper by
//! default; IPv6 with EPSV and EPRT; with the kernel relay (sockmap) on.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use rvs_testkit::ftp::{ftp_client, ftp_file, ftp_tools, FtpMode, Vsftpd};

/// Whether the tools are there; says why the test does nothing when not.
fn tools() -> bool {
    let ok = ftp_tools();
    if !ok {
        eprintln!("not root, or vsftpd (/usr/sbin/vsftpd) or python3's ftplib missing: FTP test skipped");
    }
    ok
}

/// A range of passive ports for one vsftpd, near a free port.
fn pasv_ports() -> (u16, u16) {
    let p = free_port().clamp(1024, 65_000);
    (p, p + 20)
}

/// Two vsftpd real servers, `a` on 127.0.0.2 and `b` on 127.0.0.3 (one port).
fn two_servers() -> (Vsftpd, Vsftpd) {
    let port = free_port();
    let a = Vsftpd::start("a", SocketAddr::from(([127, 0, 0, 2], port)), pasv_ports());
    let b = Vsftpd::start("b", SocketAddr::from(([127, 0, 0, 3], port)), pasv_ports());
    (a, b)
}

fn ftp_service(vip: SocketAddr, extra: &str, servers: &[&Vsftpd]) -> String {
    let servers: Vec<(SocketAddr, &str)> = servers.iter().map(|s| (s.addr, "")).collect();
    service_toml(vip, "rr", extra, &servers)
}

/// One session from `src`: downloads `file.bin` and checks it byte for byte against the real
/// server it named; returns that name.
fn download(vip: SocketAddr, src: IpAddr, mode: FtpMode, dir: &std::path::Path, tag: &str) -> String {
    let local = dir.join(format!("down-{tag}.bin"));
    let name = ftp_client(vip, Some(src), mode, "retr", &local, "file.bin").unwrap_or_else(|e| panic!("{e}"));
    let got = std::fs::read(&local).expect("downloaded file");
    assert!(got == ftp_file(&name), "{mode:?} download of {} bytes from {name} is not byte-exact", got.len());
    name
}

/// One session from `src`: uploads 1 MiB as `incoming/<tag>.bin`; returns the real server's name.
fn upload(
    vip: SocketAddr,
    src: IpAddr,
    mode: FtpMode,
    dir: &std::path::Path,
    tag: &str,
    servers: &[&Vsftpd],
) -> String {
    let local = dir.join(format!("up-{tag}.bin"));
    let data = ftp_file(tag);
    std::fs::write(&local, &data).expect("file to upload");
    let remote = format!("incoming/{tag}.bin");
    let name = ftp_client(vip, Some(src), mode, "stor", &local, &remote).unwrap_or_else(|e| panic!("{e}"));
    let server = servers.iter().find(|s| s.name == name).expect("a known real server");
    let stored = server.uploaded(&format!("{tag}.bin")).unwrap_or_else(|| panic!("{tag}.bin not on {name}"));
    assert!(stored == data, "{mode:?} upload of {tag} to {name} is not byte-exact ({} bytes)", stored.len());
    name
}

#[test]
fn passive_and_active_transfers_are_byte_exact_over_both_real_servers() {
    if !tools() {
        return;
    }
    let (a, b) = two_servers();
    let vip = vip();
    let rvsd = Rvsd::start(&ftp_service(vip, "helper = \"ftp\"", &[&a, &b]));
    assert_eq!(service_view(&rvsd, vip)["helper"], "ftp");
    let dir = tempfile::tempdir().unwrap();
    let mut sessions = 0u64;
    for (m, mode) in [FtpMode::Pasv, FtpMode::Epsv, FtpMode::Port, FtpMode::Eprt].into_iter().enumerate() {
        // Four clients at once, each from its own address (the real servers refuse data
        // connections from another address than the control connection's, and PORT naming
        // another: only the director's rewriting makes these work).
        let threads: Vec<_> = (0..4u8)
            .map(|i| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 10 + 10 * m as u8 + i));
                    download(vip, src, mode, &dir, &format!("{m}-{i}"))
                })
            })
            .collect();
        let names: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        sessions += 4;
        assert!(
            names.iter().any(|n| n == "a") && names.iter().any(|n| n == "b"),
            "{mode:?} downloads spread: {names:?}"
        );
        let mut up = Vec::new();
        for i in 0..2u8 {
            let src = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 10 + 10 * m as u8 + i));
            up.push(upload(vip, src, mode, dir.path(), &format!("u{m}-{i}"), &[&a, &b]));
            sessions += 1;
        }
        assert!(up.contains(&"a".to_string()) && up.contains(&"b".to_string()), "{mode:?} uploads spread: {up:?}");
    }
    // No client reached a real server itself: every command came from the director.
    for s in [&a, &b] {
        let log = s.log();
        assert!(log.contains("OK DOWNLOAD") && log.contains("OK UPLOAD"), "{} transferred: {log}", s.name);
        assert!(
            !log.contains("Client \"127.0.1.") && !log.contains("Client \"127.0.2."),
            "{} saw a client itself",
            s.name
        );
    }
    wait_no_connections(&rvsd);
    // Each session: its control connection and two data connections (name.txt, the file).
    let v = service_view(&rvsd, vip);
    assert_eq!(v["stats"]["conns"], 3 * sessions, "control and data connections counted: {v}");
    assert!(v["stats"]["outbytes"].as_u64().unwrap() >= 16 << 20, "downloads counted: {v}");
    assert!(v["stats"]["inbytes"].as_u64().unwrap() >= 8 << 20, "uploads counted: {v}");
}

/// Reads one FTP reply (its last line, for a multi-line one) from a raw control connection.
fn reply(s: &mut TcpStream) -> String {
    let mut line = read_line(s).expect("a reply");
    while line.len() > 3 && line.as_bytes()[3] == b'-' {
        line = read_line(s).expect("the rest of a multi-line reply");
    }
    line
}

fn send(s: &mut TcpStream, line: &str) {
    s.write_all(format!("{line}\r\n").as_bytes()).expect("send a command");
}

fn raw_login(vip: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(vip).expect("connect to the VIP");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(reply(&mut s).starts_with("220"), "banner");
    send(&mut s, "USER anonymous");
    let mut r = reply(&mut s);
    if r.starts_with("331") {
        send(&mut s, "PASS x@");
        r = reply(&mut s);
    }
    assert!(r.starts_with("230"), "logged in: {r}");
    s
}

#[test]
fn a_data_listener_closes_with_its_control_connection() {
    if !tools() {
        return;
    }
    let (a, b) = two_servers();
    let vip = vip();
    let rvsd = Rvsd::start(&ftp_service(vip, "helper = \"ftp\"", &[&a, &b]));
    let mut s = raw_login(vip);
    send(&mut s, "PASV");
    let r = reply(&mut s);
    // The VIP and a port of the director's, not the real server's.
    assert!(r.contains("(127,0,0,1,"), "the VIP's address announced: {r}");
    let data = SocketAddr::new(vip.ip(), pasv_port(&r));
    send(&mut s, "QUIT");
    assert!(reply(&mut s).starts_with("221"));
    drop(s);
    wait_no_connections(&rvsd);
    wait_until(Duration::from_secs(5), "the data listener to close", || TcpStream::connect(data).is_err());
}

#[test]
fn an_over_long_line_passes_through_and_the_director_stays_up() {
    if !tools() {
        return;
    }
    let (a, b) = two_servers();
    let vip = vip();
    let rvsd = Rvsd::start(&ftp_service(vip, "helper = \"ftp\"", &[&a, &b]));
    let mut s = raw_login(vip);
    // Longer than the 4096 bytes parsed, and shaped like a PORT command past the limit.
    let long = format!("NOOP {}PORT 127,0,0,1,4,1", "x".repeat(5000));
    send(&mut s, &long);
    // vsftpd answers or hangs up as it does with any over-long line: either way the bytes
    // reached it unchanged and the director goes on.
    let mut buf = [0u8; 512];
    let _ = s.read(&mut buf);
    drop(s);
    let dir = tempfile::tempdir().unwrap();
    download(vip, IpAddr::V4(Ipv4Addr::new(127, 0, 3, 1)), FtpMode::Pasv, dir.path(), "after");
    assert!(rvsd.api("GET", "/v1/info", None).0 == 200);
    wait_no_connections(&rvsd);
}

#[test]
fn tcp_port_21_runs_the_ftp_helper_by_default() {
    if !tools() {
        return;
    }
    let (a, b) = two_servers();
    let vip21 = SocketAddr::from(([127, 0, 0, 21], 21));
    let other = vip();
    let config = format!("{}\n{}", ftp_service(vip21, "", &[&a, &b]), ftp_service(other, "", &[&a, &b]));
    let rvsd = Rvsd::start(&config);
    assert_eq!(service_view(&rvsd, vip21)["helper"], "ftp");
    assert_eq!(service_view(&rvsd, other)["helper"], "none");
    let dir = tempfile::tempdir().unwrap();
    for (i, mode) in [FtpMode::Pasv, FtpMode::Port].into_iter().enumerate() {
        download(vip21, IpAddr::V4(Ipv4Addr::new(127, 0, 4, 1 + i as u8)), mode, dir.path(), &format!("21-{i}"));
    }
    // Without the helper the 227 names the real server, which refuses the client's data
    // connection from another address than the director's.
    let err = ftp_client(
        other,
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 4, 9))),
        FtpMode::Pasv,
        "retr",
        &dir.path().join("x"),
        "file.bin",
    );
    assert!(err.is_err(), "passive FTP without the helper should fail: {err:?}");
}

#[test]
fn ipv6_epsv_and_eprt() {
    if !tools() {
        return;
    }
    let ip6: IpAddr = "::1".parse().unwrap();
    let a = Vsftpd::start("a", SocketAddr::new(ip6, free_port()), pasv_ports());
    let b = Vsftpd::start("b", SocketAddr::new(ip6, free_port()), pasv_ports());
    let vip = SocketAddr::new(ip6, free_port());
    let rvsd = Rvsd::start(&ftp_service(vip, "helper = \"ftp\"", &[&a, &b]));
    let dir = tempfile::tempdir().unwrap();
    for mode in [FtpMode::Epsv, FtpMode::Eprt] {
        let names: Vec<String> =
            (0..2).map(|i| download(vip, ip6, mode, dir.path(), &format!("6{mode:?}{i}"))).collect();
        assert!(names.contains(&"a".to_string()) && names.contains(&"b".to_string()), "{mode:?}: {names:?}");
        let names: Vec<String> =
            (0..2).map(|i| upload(vip, ip6, mode, dir.path(), &format!("u6{mode:?}{i}"), &[&a, &b])).collect();
        assert!(names.contains(&"a".to_string()) && names.contains(&"b".to_string()), "{mode:?}: {names:?}");
    }
    wait_no_connections(&rvsd);
}

/// The director's port in a `227` reply.
fn pasv_port(r: &str) -> u16 {
    assert!(r.starts_with("227"), "{r}");
    let nums: Vec<u16> =
        r[r.find('(').unwrap() + 1..r.find(')').unwrap()].split(',').map(|n| n.parse().unwrap()).collect();
    nums[4] << 8 | nums[5]
}

#[test]
fn a_data_listener_takes_only_its_client_and_closes_when_unused() {
    if !tools() {
        return;
    }
    let (a, b) = two_servers();
    let vip = vip();
    let rvsd = Rvsd::start(&ftp_service(vip, "helper = \"ftp\"", &[&a, &b]));
    let mut s = raw_login(vip);
    send(&mut s, "PASV");
    let data = SocketAddr::new(vip.ip(), pasv_port(&reply(&mut s)));
    // From another address than the control connection's: closed at once.
    let stranger = {
        use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
        let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        bind(&fd, &SocketAddr::from(([127, 0, 5, 5], 0))).unwrap();
        connect(&fd, &data).unwrap();
        TcpStream::from(fd)
    };
    stranger.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!((&stranger).read(&mut [0u8; 16]).unwrap_or(0), 0, "a stranger's data connection is closed");
    // The client's own still gets the transfer.
    let mut d = TcpStream::connect(data).expect("the data listener is still open");
    // Listed as a connection of the service (ipvsadm -L -c), to the control connection's
    // real server.
    wait_until(Duration::from_secs(5), "the data connection listed beside its control connection", || {
        let list = rvsd.api("GET", "/v1/connections", None).1;
        let conns = list["connections"].as_array().cloned().unwrap_or_default();
        let control = conns.iter().find(|c| c["virtual_address"] == vip.to_string());
        let dc = conns.iter().find(|c| c["virtual_address"] == data.to_string());
        matches!((control, dc), (Some(c), Some(d)) if c["real_server"] == d["real_server"] && d["state"] == "ESTABLISHED")
    });
    send(&mut s, "RETR name.txt");
    assert!(reply(&mut s).starts_with("150"));
    let mut name = String::new();
    d.read_to_string(&mut name).unwrap();
    assert!(name == "a\n" || name == "b\n", "{name:?}");
    assert!(reply(&mut s).starts_with("226"));
    // A listener nobody connects to closes after 30 s; the control connection goes on.
    send(&mut s, "PASV");
    let unused = SocketAddr::new(vip.ip(), pasv_port(&reply(&mut s)));
    std::thread::sleep(Duration::from_secs(32));
    assert!(TcpStream::connect(unused).is_err(), "an unused data listener closes after 30 s");
    send(&mut s, "NOOP");
    assert!(reply(&mut s).starts_with("200"));
}

#[test]
fn transfers_are_byte_exact_with_the_kernel_relay_on() {
    if !tools() {
        return;
    }
    let (a, b) = two_servers();
    let vip = vip();
    let config = format!("[director]\nrelay = \"sockmap\"\n\n{}", ftp_service(vip, "helper = \"ftp\"", &[&a, &b]));
    let rvsd = Rvsd::start(&config);
    let info = rvsd.api("GET", "/v1/info", None).1;
    assert_eq!(info["relay"], "sockmap", "the kernel relay did not load: {info}\n{}", rvsd.log());
    let dir = tempfile::tempdir().unwrap();
    for (i, mode) in [FtpMode::Pasv, FtpMode::Port].into_iter().enumerate() {
        let src = IpAddr::V4(Ipv4Addr::new(127, 0, 6, 1 + i as u8));
        download(vip, src, mode, dir.path(), &format!("k{i}"));
        upload(vip, src, mode, dir.path(), &format!("uk{i}"), &[&a, &b]);
    }
    // Whether a data connection gets linked depends on timing (a drained moment before its
    // end): what must hold is that every byte arrives and is counted either way.
    wait_no_connections(&rvsd);
    let v = service_view(&rvsd, vip);
    assert!(
        v["stats"]["outbytes"].as_u64().unwrap() >= 2 << 20 && v["stats"]["inbytes"].as_u64().unwrap() >= 2 << 20,
        "{v}"
    );
}
