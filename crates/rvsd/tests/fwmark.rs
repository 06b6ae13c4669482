//! Firewall-mark services through the proxy engine (full NAT): one service on every address
//! and port of its mark's matches, persistence across them, real servers without a port
//! keeping the connection's; the mark in the file, the API and rvsadm (-L, -S, -R) as
//! ipvsadm prints it; bad marks refused with the field named.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::*;
use rvs_testkit::free_port;

fn src(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, i)
}

fn rvsadm(rvsd: &Rvsd, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    // The rvsadm binary beside rvsd (cargo build -p rvsadm).
    let mut cmd = std::process::Command::new(std::path::Path::new(env!("CARGO_BIN_EXE_rvsd")).with_file_name("rvsadm"));
    cmd.arg("--api").arg(&rvsd.socket).args(args);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("rvsadm (cargo build -p rvsadm)");
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_mark_groups_two_ports_one_client_stays_on_one_real_server_and_rvsadm_shows_it_as_ipvsadm() {
    let (p1, p2) = (free_port(), free_port());
    // Each real server answers on both ports of its own address (port-less: the client's port).
    let _a = [
        Backend::start_on("a", SocketAddr::new(src(5).into(), p1)),
        Backend::start_on("a", SocketAddr::new(src(5).into(), p2)),
    ];
    let _b = [
        Backend::start_on("b", SocketAddr::new(src(6).into(), p1)),
        Backend::start_on("b", SocketAddr::new(src(6).into(), p2)),
    ];
    let body = format!(
        "[[firewall_mark]]\nmark = 1\n  [[firewall_mark.match]]\n  address = \"127.0.0.1\"\n  ports = {p1}\n  \
         [[firewall_mark.match]]\n  address = \"127.0.0.1\"\n  ports = \"{p2}\"\n\n\
         [[service]]\nfirewall_mark = 1\nscheduler = \"rr\"\npersistent = 60\n  [[service.real_server]]\n  \
         address = \"127.0.0.5\"\n  [[service.real_server]]\n  address = \"127.0.0.6\"\n"
    );
    let rvsd = Rvsd::start(&body);
    let v1 = SocketAddr::new(src(1).into(), p1);
    let v2 = SocketAddr::new(src(1).into(), p2);
    let first = name_from(src(2), v1);
    for vip in [v2, v1, v2] {
        assert_eq!(name_from(src(2), vip), first, "one client, one real server across the mark's ports");
    }
    let other = name_from(src(3), v2);
    assert_ne!(other, first, "rr: the next client the other real server");
    assert_eq!(name_from(src(3), v1), other);

    // The API names it fwmark/1; its template is IPVS's: protocol IP on 0.0.0.1:0.
    let (st, v) = rvsd.api("GET", "/v1/services/fwmark/1", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["stats"]["conns"], 6, "{v}");
    let (_, t) = rvsd.api("GET", "/v1/templates", None);
    let ts = t["templates"].as_array().unwrap();
    assert_eq!(ts.len(), 2, "{t}");
    assert!(ts.iter().all(|t| t["protocol"] == "ip" && t["virtual_address"] == "0.0.0.1:0"), "{t}");
    let (_, m) = rvsd.api("GET", "/v1/marks", None);
    assert_eq!(m["marks"][0]["matches"].as_array().map(Vec::len), Some(2), "{m}");

    // rvsadm: listed, saved and restored as ipvsadm 1.31.
    let (code, list, err) = rvsadm(&rvsd, &["-L", "-n"], None);
    assert_eq!(code, 0, "{err}");
    assert!(list.contains("\nFWM  1 rr persistent 60\n"), "{list}");
    assert!(list.contains("  -> 127.0.0.5:0                  FullNat 1      "), "{list}");
    let (_, saved, _) = rvsadm(&rvsd, &["-S", "-n"], None);
    assert_eq!(
        saved,
        "-A -f 1 -s rr -p 60\n-a -f 1 -r 127.0.0.5:0 --fullnat -w 1\n-a -f 1 -r 127.0.0.6:0 --fullnat -w 1\n"
    );
    let (_, conns, _) = rvsadm(&rvsd, &["-L", "-n", "-c"], None);
    assert!(conns.contains("IP  00:5") && conns.contains("0.0.0.1:0"), "{conns}");
    assert_eq!(rvsadm(&rvsd, &["-C"], None).0, 0);
    wait_no_connections(&rvsd);
    let (code, _, err) = rvsadm(&rvsd, &["-R"], Some(&saved));
    assert_eq!(code, 0, "-R: {err}");
    assert_eq!(rvsadm(&rvsd, &["-S", "-n"], None).1, saved, "restored as saved (-C keeps the marks)");
    assert!(["a", "b"].contains(&name_from(src(4), v2).as_str()), "served again after -R");

    // A mark in use cannot go; one overlapping another is refused, naming both.
    let (st, v) = rvsd.api("DELETE", "/v1/marks/1", None);
    assert!((400..500).contains(&st) && v.to_string().contains("used by virtual service fwmark 1"), "{st} {v}");
    let overlap = format!(r#"{{"mark": 2, "matches": [{{"address": "127.0.0.0/8", "ports": "{p1}"}}]}}"#);
    let (st, v) = rvsd.api("PUT", "/v1/marks/2", Some(&overlap));
    assert!((400..500).contains(&st) && v.to_string().contains("overlaps firewall mark 1"), "{st} {v}");
    // A network is the packet engine's: the proxy engine refuses it for full NAT, naming it.
    let net = r#"{"mark": 3, "matches": [{"address": "127.9.0.0/16", "ports": "80-81"}]}"#;
    assert_eq!(rvsd.api("PUT", "/v1/marks/3", Some(net)).0, 200);
    assert_eq!(rvsd.api("POST", "/v1/services", Some(r#"{"protocol": "fwmark", "address": "3"}"#)).0, 201);
    let (st, v) =
        rvsd.api("POST", "/v1/services/fwmark/3/servers", Some(r#"{"address": "127.0.0.5", "method": "fullnat"}"#));
    assert!((400..500).contains(&st) && v.to_string().contains("packet engine"), "{st} {v}");
    // The refusals left the running service as it was: still one client, one real server.
    let again = name_from(src(2), v1);
    assert_eq!(name_from(src(2), v2), again);
}

#[test]
fn bad_marks_in_the_file_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let check = |body: &str| -> String {
        let path = dir.path().join("rvsd.toml");
        std::fs::write(&path, body).unwrap();
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_rvsd")).arg("--check-config").arg(&path).output().unwrap();
        assert!(!out.status.success(), "{body}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let mark = |m: u32, matches: &str| format!("[[firewall_mark]]\nmark = {m}\n{matches}\n");
    let one = "  [[firewall_mark.match]]\n  address = \"198.18.0.10\"\n  ports = 80\n";
    let svc = |m: u32| format!("[[service]]\nfirewall_mark = {m}\n");
    let e = check(&format!(
        "{}{}{}",
        mark(1, one),
        mark(2, "  [[firewall_mark.match]]\n  address = \"198.18.0.0/24\"\n  ports = \"1-1024\"\n"),
        svc(1)
    ));
    assert!(e.contains("firewall_mark[1].match[0]") && e.contains("overlaps firewall mark 1"), "{e}");
    let unused = mark(2, "  [[firewall_mark.match]]\n  address = \"198.18.0.11\"\n  ports = 80\n");
    let e = check(&format!("{}{unused}{}", mark(1, one), svc(1)));
    assert!(e.contains("firewall_mark[1].mark") && e.contains("used by no service"), "{e}");
    let e = check(&svc(7));
    assert!(e.contains("service[0]") && e.contains("firewall mark 7 is not defined"), "{e}");
    let e = check(&(mark(1, "  [[firewall_mark.match]]\n  address = \"198.18.0.1/24\"\n  ports = 80\n") + &svc(1)));
    assert!(e.contains("firewall_mark[0].match[0].address") && e.contains("host bits"), "{e}");
    let e = check(&(mark(1, "  [[firewall_mark.match]]\n  address = \"198.18.0.1\"\n  ports = \"90-80\"\n") + &svc(1)));
    assert!(e.contains("firewall_mark[0].match[0].ports"), "{e}");
    let e = check(&(mark(1, one) + svc(1).as_str() + "address = \"198.18.0.1:80\"\n"));
    assert!(e.contains("service[0].address") && e.contains("not both"), "{e}");
    let e = check(&(mark(1, one) + svc(1).as_str() + "family = \"ipv6\"\n"));
    assert!(e.contains("no IPv6 match"), "{e}");
    let e = check(&(mark(1, one) + svc(1).as_str() + "one_packet = true\n"));
    assert!(e.contains("service[0].one_packet"), "{e}");
}
