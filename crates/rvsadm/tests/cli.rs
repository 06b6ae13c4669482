//! rvsadm against a real rvsd: every command and option, the views, save/restore, and bad
//! input (ipvsadm's message and exit status, and nothing changed in the daemon).

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn lo(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn title() -> String {
    format!(
        "Rust Virtual Server version {VERSION} (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    )
}

fn dest_line(addr: &str, fwd: &str, weight: u32, active: u32, inactive: u32) -> String {
    format!("  -> {addr:<28} {fwd:<7} {weight:<6} {active:<10} {inactive:<10}\n")
}

/// Waits until `f` holds (the daemon's counters move asynchronously).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn service<'a>(table: &'a Value, addr: &str) -> &'a Value {
    table["services"].as_array().unwrap().iter().find(|s| s["address"] == addr).unwrap_or(&Value::Null)
}

fn server<'a>(svc: &'a Value, addr: &str) -> &'a Value {
    svc["real_servers"].as_array().unwrap().iter().find(|s| s["address"] == addr).unwrap_or(&Value::Null)
}

#[test]
fn add_edit_delete_services_and_servers() {
    let rvsd = empty();
    let (p, b1, b2) = (port(), port(), port());
    let vip = lo(p);
    let (r1, r2) = (lo(b1), lo(b2));

    run(&rvsd, &format!("-A -t {vip} -s rr")).ok();
    run(&rvsd, &format!("-a -t {vip} -r {r1} -w 2 --fullnat")).ok();
    // Long options, `=` values, the port taken from the service when none is given.
    rvsadm(&rvsd, &["--add-server", &format!("--tcp-service={vip}"), "--real-server", &r2, "--fullnat", "-x", "10"])
        .ok();
    rvsadm(
        &rvsd,
        &[
            "--edit-server",
            "-t",
            &vip,
            "-r",
            &r2,
            "--fullnat",
            "--u-threshold=10",
            "--l-threshold",
            "5",
            "--proxy-protocol",
            "v1",
        ],
    )
    .ok();
    let t = table(&rvsd);
    let s = service(&t, &vip);
    assert_eq!(s["scheduler"], "rr");
    assert_eq!(server(s, &r1)["weight"], 2);
    assert_eq!(server(s, &r1)["method"], "fullnat");
    assert_eq!(server(s, &r2)["u_threshold"], 10);
    assert_eq!(server(s, &r2)["l_threshold"], 5);
    assert_eq!(server(s, &r2)["proxy_protocol"], "v1");

    let mut rows = [(b1, dest_line(&r1, "FullNat", 2, 0, 0)), (b2, dest_line(&r2, "FullNat", 1, 0, 0))];
    rows.sort();
    let want = format!("{}TCP  {vip} rr\n{}{}", title(), rows[0].1, rows[1].1);
    assert_eq!(run(&rvsd, "-L -n").ok(), want);
    assert_eq!(run(&rvsd, "-Ln").ok(), want, "clustered short options");
    assert_eq!(run(&rvsd, "-l --numeric --sort").ok(), want);

    // -E replaces the settings: what is not given takes ipvsadm's default.
    run(&rvsd, &format!("-E -t {vip} -s wrr -p 120")).ok();
    let t = table(&rvsd);
    assert_eq!(service(&t, &vip)["scheduler"], "wrr");
    assert_eq!(service(&t, &vip)["persistent"], 120);
    run(&rvsd, &format!("-E -t {vip}")).ok();
    let t = table(&rvsd);
    assert_eq!(service(&t, &vip)["scheduler"], "wlc");
    assert_eq!(service(&t, &vip).get("persistent"), None);

    // -e too (weight 1, thresholds 0 unless given); the PROXY protocol setting is kept.
    run(&rvsd, &format!("-e -t {vip} -r {r2} -w 7 --fullnat")).ok();
    let t = table(&rvsd);
    let rs = server(service(&t, &vip), &r2);
    assert_eq!((rs["weight"].as_u64(), rs["u_threshold"].as_u64()), (Some(7), Some(0)));
    assert_eq!(rs["proxy_protocol"], "v1");

    run(&rvsd, &format!("-d -t {vip} -r {r1}")).ok();
    assert_eq!(server(service(&table(&rvsd), &vip), &r1), &Value::Null);
    run(&rvsd, &format!("-D -t {vip}")).ok();
    assert!(table(&rvsd)["services"].as_array().unwrap().is_empty());

    // -C clears everything.
    let (q1, q2) = (port(), port());
    run(&rvsd, &format!("-A -t {}", lo(q1))).ok();
    run(&rvsd, &format!("-A -t [::1]:{q2} -s sh -b sh-port")).ok();
    assert_eq!(table(&rvsd)["services"].as_array().unwrap().len(), 2);
    run(&rvsd, "-C").ok();
    assert!(table(&rvsd)["services"].as_array().unwrap().is_empty());
}

/// ipvsadm's defaults: no method flag is -g (Route), `-p` alone is 360 s; every method lists
/// with its word and saves with its flag.
#[test]
fn ipvsadm_defaults_and_every_method() {
    let rvsd = empty();
    let [p1, p2, b1] = [(); 3].map(|_| port());
    let (vip, fvip) = (lo(p1), lo(p2));
    run(&rvsd, &format!("-A -t {vip} -s rr -p")).ok();
    run(&rvsd, &format!("-a -t {vip} -r 127.0.0.2:8080")).ok();
    run(&rvsd, &format!("-a -t {vip} -r 127.0.0.3:{p1} -m -w 2")).ok();
    run(&rvsd, &format!("-a -t {vip} -r 127.0.0.4 -i -w 3")).ok();
    run(&rvsd, &format!("-A -t {fvip}")).ok();
    run(&rvsd, &format!("-a -t {fvip} -r {} --fullnat", lo(b1))).ok();
    let t = table(&rvsd);
    let s = service(&t, &vip);
    assert_eq!(s["persistent"], 360, "ipvsadm's -p without a value");
    let rs = server(s, &format!("127.0.0.2:{p1}"));
    assert_eq!(rs["method"], "gate", "-g is the default, and keeps the service's port");
    assert_eq!(server(s, &format!("127.0.0.3:{p1}"))["method"], "masq");
    assert_eq!(server(s, &format!("127.0.0.4:{p1}"))["method"], "tunnel");
    assert_eq!(server(service(&t, &fvip), &lo(b1))["method"], "fullnat");
    let want = format!(
        "{}TCP  {vip} rr persistent 360\n{}{}{}TCP  {fvip} wlc\n{}",
        title(),
        dest_line(&format!("127.0.0.2:{p1}"), "Route", 1, 0, 0),
        dest_line(&format!("127.0.0.3:{p1}"), "Masq", 2, 0, 0),
        dest_line(&format!("127.0.0.4:{p1}"), "Tunnel", 3, 0, 0),
        dest_line(&lo(b1), "FullNat", 1, 0, 0),
    );
    // Compared line by line: the order of the two services depends on their ports.
    let listed = run(&rvsd, "-L -n").ok();
    let mut l: Vec<&str> = listed.lines().collect();
    let mut w: Vec<&str> = want.lines().collect();
    l.sort();
    w.sort();
    assert_eq!(l, w, "{listed}");
    let saved = run(&rvsd, "-S -n").ok();
    for line in [
        format!("-A -t {vip} -s rr -p 360\n"),
        format!("-a -t {vip} -r 127.0.0.2:{p1} -g -w 1\n"),
        format!("-a -t {vip} -r 127.0.0.3:{p1} -m -w 2\n"),
        format!("-a -t {vip} -r 127.0.0.4:{p1} -i -w 3 --tun-type ipip\n"),
        format!("-a -t {fvip} -r {} --fullnat -w 1\n", lo(b1)),
    ] {
        assert!(saved.contains(&line), "{line:?} not in:\n{saved}");
    }
    // -R of -S brings back the same table.
    let before = table(&rvsd);
    run(&rvsd, "-C").ok();
    rvsadm_stdin(&rvsd, &["-R"], &saved).ok();
    assert_eq!(table(&rvsd), before);
    assert_eq!(run(&rvsd, "-S -n").ok(), saved);
}

#[test]
fn listing_views() {
    let a = Backend::start("a");
    let (p1, p2) = (port(), port());
    let (vip, pvip) = (lo(p1), lo(p2));
    let rvsd = start(&format!(
        r#"
[[service]]
address = "{vip}"
scheduler = "rr"
  [[service.real_server]]
  address = "{a}"
  u_threshold = 100
  l_threshold = 10
[[service]]
address = "{pvip}"
scheduler = "wlc"
persistent = 300
netmask = "255.255.255.0"
  [[service.real_server]]
  address = "{a}"
  weight = 3
"#,
        a = a.addr
    ));
    // One connection held open through each service.
    let hold = |addr: &str| {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        assert_eq!(line, "a\n");
        s
    };
    let _c1 = hold(&vip);
    let _c2 = hold(&pvip);
    eventually("both connections established", || {
        rvsd.api("GET", "/v1/connections", None).1["connections"]
            .as_array()
            .is_some_and(|c| c.len() == 2 && c.iter().all(|c| c["state"] == "ESTABLISHED"))
    });
    let ra = a.addr.to_string();

    // The default view, sorted by port.
    let mut svcs = [
        (p1, format!("TCP  {vip} rr\n{}", dest_line(&ra, "FullNat", 1, 1, 0))),
        (p2, format!("TCP  {pvip} wlc persistent 300 mask 255.255.255.0\n{}", dest_line(&ra, "FullNat", 3, 1, 0))),
    ];
    svcs.sort();
    assert_eq!(run(&rvsd, "-L -n").ok(), format!("{}{}{}", title(), svcs[0].1, svcs[1].1));

    // One service: no version line.
    let one = run(&rvsd, &format!("-L -n -t {vip}")).ok();
    assert_eq!(
        one,
        format!("{}TCP  {vip} rr\n{}", &title()[title().find('\n').unwrap() + 1..], dest_line(&ra, "FullNat", 1, 1, 0))
    );

    let stats = run(&rvsd, &format!("-L -n --stats -t {vip}")).ok();
    assert_eq!(
        stats.lines().take(2).collect::<Vec<_>>(),
        ["Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes", "  -> RemoteAddress:Port"]
    );
    assert!(stats.lines().nth(2).unwrap().starts_with(&format!("{:<33}        1", format!("TCP  {vip}"))), "{stats}");
    assert!(stats.lines().nth(3).unwrap().starts_with(&format!("  -> {ra:<28}        1")), "{stats}");
    let exact = run(&rvsd, &format!("-L -n --stats --exact -t {vip}")).ok();
    assert_eq!(exact.lines().count(), 4);

    let rate = run(&rvsd, "-L -n --rate").ok();
    assert_eq!(
        rate.lines().nth(1).unwrap(),
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS"
    );

    let thr = run(&rvsd, &format!("-L -n --thresholds -t {vip}")).ok();
    assert_eq!(
        thr,
        format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\nTCP  {vip} rr\n  -> {ra:<28} {:<10} {:<10} {:<10} {:<10}\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn", 100, 10, 1, 0
        )
    );

    let pc = run(&rvsd, &format!("-L -n --persistent-conn -t {pvip}")).ok();
    assert_eq!(
        pc,
        format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\nTCP  {pvip} wlc persistent 300 mask 255.255.255.0\n  -> {ra:<28} {:<9} {:<11} {:<10} {:<10}\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn", 3, 1, 1, 0
        )
    );

    let tun = run(&rvsd, &format!("-L -n --tun-info -t {vip}")).ok();
    assert!(tun.contains(&format!("  -> {ra:<28} FullNat n/a           1      1          0         \n")), "{tun}");

    // -c: both connections, and the persistence template (state NONE, client port 0).
    let conns = run(&rvsd, "-L -n -c").ok();
    let lines: Vec<&str> = conns.lines().collect();
    assert_eq!(lines[0], "IPVS connection entries");
    assert_eq!(lines[1], "pro expire state       source             virtual            destination");
    assert_eq!(lines.len(), 5, "{conns}");
    for vaddr in [&vip, &pvip] {
        let l = lines.iter().find(|l| l.contains("ESTABLISHED") && l.contains(vaddr.as_str())).expect(&conns);
        assert!(l.starts_with("TCP 1") || l.starts_with("TCP 0"), "{l}");
        assert!(l.ends_with(&ra), "{l}");
    }
    let tpl = lines.iter().find(|l| l.contains(" NONE ")).expect(&conns);
    assert!(tpl.contains(&format!("{:<18} {pvip:<18} {ra}", "127.0.0.0:0")), "{tpl}");
    let pconns = run(&rvsd, "-L -n -c --persistent-conn").ok();
    assert!(pconns.lines().nth(1).unwrap().ends_with("pe name          pe_data"));

    assert_eq!(run(&rvsd, "-L --timeout").ok(), "Timeout (tcp tcpfin udp): 900 120 300\n");
    assert_eq!(run(&rvsd, "-L --daemon").ok(), "");

    // Without -n the names come from /etc/hosts and /etc/services; the layout is the same.
    let named = run(&rvsd, "-L").ok();
    assert_eq!(named.lines().count(), 7, "{named}");
    // No arguments at all: the table, as ipvsadm.
    assert_eq!(rvsadm(&rvsd, &[]).ok(), named);
}

#[test]
fn nosort_keeps_the_daemons_order() {
    let rvsd = empty();
    let mut ports = [port(), port(), port()];
    ports.sort();
    let vip = lo(port());
    run(&rvsd, &format!("-A -t {vip}")).ok();
    for p in ports.iter().rev() {
        run(&rvsd, &format!("-a -t {vip} -r {} --fullnat", lo(*p))).ok();
    }
    let order = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("  -> 127"))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
            .collect()
    };
    let sorted: Vec<String> = ports.iter().map(|p| lo(*p)).collect();
    let reversed: Vec<String> = sorted.iter().rev().cloned().collect();
    assert_eq!(order(&run(&rvsd, "-L -n").ok()), sorted);
    assert_eq!(order(&run(&rvsd, "-L -n --nosort").ok()), reversed);
}

#[test]
fn zero_and_set() {
    let a = Backend::start("a");
    let p = port();
    let vip = lo(p);
    let rvsd =
        start(&format!("[[service]]\naddress = \"{vip}\"\n  [[service.real_server]]\n  address = \"{}\"\n", a.addr));
    let conns = |rvsd: &Rvsd| rvsd.services()["services"][0]["stats"]["conns"].as_u64().unwrap();
    let idle = |rvsd: &Rvsd| {
        eventually("connections closed", || {
            rvsd.api("GET", "/v1/connections", None).1["connections"].as_array().is_some_and(|c| c.is_empty())
        })
    };
    rvs_testkit::connect_name(vip.parse().unwrap()).unwrap();
    idle(&rvsd);
    assert_eq!(conns(&rvsd), 1);
    run(&rvsd, &format!("-Z -t {vip}")).ok();
    assert_eq!(conns(&rvsd), 0);
    rvs_testkit::connect_name(vip.parse().unwrap()).unwrap();
    idle(&rvsd);
    assert_eq!(conns(&rvsd), 1);
    run(&rvsd, "--zero").ok();
    assert_eq!(conns(&rvsd), 0);

    run(&rvsd, "--set 100 0 50").ok();
    assert_eq!(timeouts(&rvsd), serde_json::json!({"tcp": 100, "tcpfin": 120, "udp": 50}));
    assert_eq!(run(&rvsd, "-L --timeout").ok(), "Timeout (tcp tcpfin udp): 100 120 50\n");
}

/// A table with every setting rvsadm can save: restore, save, restore again, same table.
#[test]
fn sctp_services_are_listed_saved_and_restored_as_ipvsadm_does() {
    let rvsd = empty();
    let vip = "198.18.1.10:80";
    run(&rvsd, &format!("-A --sctp-service {vip} -s rr")).ok();
    run(&rvsd, &format!("-a --sctp-service {vip} -r 198.18.0.11 -g")).ok();
    run(&rvsd, &format!("-a --sctp-service {vip} -r 198.18.0.12:8080 -m -w 2")).ok();
    run(&rvsd, &format!("-a --sctp-service {vip} -r 198.18.0.13 -i -w 3")).ok();
    // The proxy engines have no SCTP: a fullnat real server is refused, and nothing changes.
    let before = table(&rvsd);
    let r = run(&rvsd, &format!("-a --sctp-service {vip} -r 198.18.0.14 --fullnat"));
    assert_eq!(r.code, 255, "{}", r.stderr);
    assert!(r.stderr.contains("SCTP services need the packet engine"), "{}", r.stderr);
    assert_eq!(table(&rvsd), before);
    let s = service(&before, vip);
    assert_eq!(s["protocol"], "sctp");
    // ipvsadm's "%-4s %s": SCTP fills the protocol column, one space before the address.
    let want = format!(
        "{}SCTP {vip} rr\n{}{}{}",
        title(),
        dest_line("198.18.0.11:80", "Route", 1, 0, 0),
        dest_line("198.18.0.12:8080", "Masq", 2, 0, 0),
        dest_line("198.18.0.13:80", "Tunnel", 3, 0, 0),
    );
    assert_eq!(run(&rvsd, "-L -n").ok(), want);
    // One service: without the version line, as ipvsadm.
    let one = want.split_once('\n').unwrap().1;
    assert_eq!(run(&rvsd, &format!("-L -n --sctp-service {vip}")).ok(), one);
    let saved = run(&rvsd, "-S -n").ok();
    assert_eq!(
        saved,
        format!(
            "-A --sctp-service {vip} -s rr\n\
             -a --sctp-service {vip} -r 198.18.0.11:80 -g -w 1\n\
             -a --sctp-service {vip} -r 198.18.0.12:8080 -m -w 2\n\
             -a --sctp-service {vip} -r 198.18.0.13:80 -i -w 3 --tun-type ipip\n"
        )
    );
    run(&rvsd, "-C").ok();
    rvsadm_stdin(&rvsd, &["-R"], &saved).ok();
    assert_eq!(table(&rvsd), before, "-R of -S brings it back");
    run(&rvsd, &format!("-d --sctp-service {vip} -r 198.18.0.13")).ok();
    run(&rvsd, &format!("-D --sctp-service {vip}")).ok();
    assert!(table(&rvsd)["services"].as_array().unwrap().is_empty());
}

#[test]
fn save_restore_round_trip() {
    let rvsd = empty();
    let [p1, p2, p3, p4, b1, b2, b3, b4, b5] = [(); 9].map(|_| port());
    let [u1, u2, b6] = [(); 3].map(|_| port());
    let rules = format!(
        "# rules
-A -u 127.0.0.1:{u1} -s rr -o
-a -u 127.0.0.1:{u1} -r 127.0.0.1:{b6} --fullnat -w 1
-A -u 127.0.0.1:{u2} -s rr -p 60 --pe sip
-A -t 127.0.0.1:{p1} -s wlc --max-connections 1000
-a -t 127.0.0.1:{p1} -r 127.0.0.1:{b1} --fullnat -w 1
-a -t 127.0.0.1:{p1} -r 127.0.0.1:{b2} --fullnat -w 3 -x 100 -y 50 --proxy-protocol v2
-A -t 127.0.0.1:{p2} -s sh -p 300 -M 255.255.255.0 -b sh-fallback,sh-port
-a -t 127.0.0.1:{p2} -r 127.0.0.1:{b3} --fullnat -w 0
-A -t 127.0.0.1:{p3} -s mh --mh-table-size 251 --sorry-server 127.0.0.1:{b4}
-A -t [::1]:{p4} -s wrr -p 60 -M 64
-a -t [::1]:{p4} -r [::1]:{b5} --fullnat -w 2
"
    );
    rvsadm_stdin(&rvsd, &["-R"], &rules).ok();
    let table1 = table(&rvsd);
    let saved = run(&rvsd, "-S -n").ok();
    let mut want: Vec<&str> = rules.lines().skip(1).collect();
    let mut got: Vec<&str> = saved.lines().collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "-S -n prints the rules that made the table:\n{saved}");
    // Sorted as ipvsadm sorts: IPv4 before IPv6, each service followed by its servers.
    assert!(saved.lines().last().unwrap().starts_with("-a -t [::1]"), "{saved}");

    run(&rvsd, "-C").ok();
    rvsadm_stdin(&rvsd, &["--restore"], &saved).ok();
    assert_eq!(table(&rvsd), table1);
    assert_eq!(run(&rvsd, "--save --numeric").ok(), saved);
    // -S --json is the API's own save.
    let batch: rvs_api::CommandBatch = serde_json::from_str(&run(&rvsd, "-S --json").ok()).unwrap();
    assert!(batch.commands.len() >= 11);
    // The listing, as ipvsadm 1.31 shows them.
    let list = run(&rvsd, "-L -n").ok();
    assert!(list.contains(&format!("UDP  127.0.0.1:{u1} rr ops\n")), "{list}");
    assert!(list.contains(&format!("UDP  127.0.0.1:{u2} rr persistent 60 pe sip\n")), "{list}");
}

#[test]
fn restore_is_all_or_nothing() {
    let (p, b) = (port(), port());
    let vip = lo(p);
    let rvsd =
        start(&format!("[[service]]\naddress = \"{vip}\"\n  [[service.real_server]]\n  address = \"{}\"\n", lo(b)));
    let before = table(&rvsd);
    let (q, c) = (port(), port());
    let good = format!("-A -t {0}\n-a -t {0} -r {1} --fullnat\n", lo(q), lo(c));

    // Refused by rvsadm: the line number and ipvsadm's message, exit 2.
    let r = rvsadm_stdin(&rvsd, &["-R"], &format!("{good}\n-a -t {vip} -r 127.0.0.1:9 -w 70000\n"));
    assert_eq!((r.code, r.stderr.as_str()), (2, "line 4: illegal weight specified\n"));
    assert_eq!(table(&rvsd), before);

    // Refused by rvsd: the line number, exit 255.
    let r = rvsadm_stdin(&rvsd, &["-R"], &format!("{good}-A -t {vip}\n"));
    assert_eq!((r.code, r.stderr.as_str()), (255, "line 3: Service already exists\n"));
    assert_eq!(table(&rvsd), before);
    let r = rvsadm_stdin(&rvsd, &["-R"], &format!("{good}-a -t {0} -r {1} -m\n", lo(q), lo(port())));
    assert_eq!(r.code, 255);
    assert!(r.stderr.starts_with(&format!("line 3: virtual service tcp {}: real server", lo(q))), "{}", r.stderr);
    assert!(r.stderr.contains("(masq) cannot join") && r.stderr.contains("all fullnat"), "{}", r.stderr);
    assert_eq!(table(&rvsd), before);
    let r = rvsadm_stdin(
        &rvsd,
        &["-R"],
        &format!("{good}-A -t 127.0.0.1:0 -p\n-a -t 127.0.0.1:0 -r 127.0.0.2:80 --fullnat\n"),
    );
    assert_eq!(r.code, 255);
    assert!(
        r.stderr.starts_with("line 4: ")
            && r.stderr.contains("an all-port service (port 0) is served by the packet engine only"),
        "{}",
        r.stderr
    );
    assert_eq!(table(&rvsd), before);
    let r = rvsadm_stdin(&rvsd, &["-R"], &format!("{good}-L -n\n"));
    assert_eq!((r.code, r.stderr.as_str()), (2, "line 3: the 'list' command cannot be used in restore input\n"));
    assert_eq!(table(&rvsd), before);

    // A good input changes it.
    rvsadm_stdin(&rvsd, &["-R"], &good).ok();
    assert_eq!(table(&rvsd)["services"].as_array().unwrap().len(), 2);
}

/// What a real `ipvsadm -S -n` writes (-m, -g, and -i with `--tun-type ipip`): `-R` takes it
/// as it is and `-S -n` writes it back line for line; `-R --fullnat` takes it in as full NAT.
#[test]
fn restore_reads_real_ipvsadm_rules() {
    let rvsd = empty();
    let [p1, p2, p3, b1, b2] = [(); 5].map(|_| port());
    let dump = format!(
        "-A -t 127.0.0.1:{p1} -s wlc
-a -t 127.0.0.1:{p1} -r 127.0.0.1:{b1} -m -w 1
-a -t 127.0.0.1:{p1} -r 127.0.0.1:{b2} -m -w 2
-A -t 127.0.0.1:{p2} -s rr -p 300
-a -t 127.0.0.1:{p2} -r 127.0.0.2:{p2} -g -w 1
-A -u 127.0.0.1:{p3} -s rr
-a -u 127.0.0.1:{p3} -r 127.0.0.3:{p3} -i -w 1 --tun-type ipip
-a -u 127.0.0.1:{p3} -r 127.0.0.4:{p3} -g -w 2
"
    );
    rvsadm_stdin(&rvsd, &["-R"], &dump).ok();
    let t = table(&rvsd);
    let methods = |svc: &str| -> Vec<String> {
        service(&t, svc)["real_servers"].as_array().unwrap().iter().map(|r| r["method"].to_string()).collect()
    };
    assert_eq!(methods(&lo(p1)), ["\"masq\"", "\"masq\""]);
    assert_eq!(methods(&lo(p2)), ["\"gate\""]);
    assert_eq!(methods(&lo(p3)), ["\"tunnel\"", "\"gate\""], "packet methods mix, as in IPVS");
    let saved = run(&rvsd, "-S -n").ok();
    let (mut want, mut got): (Vec<&str>, Vec<&str>) = (dump.lines().collect(), saved.lines().collect());
    want.sort();
    got.sort();
    assert_eq!(got, want, "-S -n writes ipvsadm's rules back:\n{saved}");
    let listed = run(&rvsd, "-L -n").ok();
    for (rs, fwd) in [(lo(b1), "Masq"), (format!("127.0.0.2:{p2}"), "Route"), (format!("127.0.0.3:{p3}"), "Tunnel")] {
        assert!(listed.contains(&dest_line(&rs, fwd, 1, 0, 0)), "{rs} {fwd}:\n{listed}");
    }
    run(&rvsd, "-C").ok();

    rvsadm_stdin(&rvsd, &["-R", "--fullnat"], &dump).ok();
    let saved = run(&rvsd, "-S -n").ok();
    assert_eq!(saved.matches("--fullnat").count(), 5, "{saved}");
    assert!(!saved.contains("--tun-type"), "{saved}");
    assert!(saved.contains(&format!("-A -t 127.0.0.1:{p2} -s rr -p 300\n")), "{saved}");
}

/// Bad input: ipvsadm's kind of message and exit status, and the daemon unchanged.
#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let (p, b) = (port(), port());
    let (vip, rs) = (lo(p), lo(b));
    let rvsd = start(&format!("[[service]]\naddress = \"{vip}\"\n  [[service.real_server]]\n  address = \"{rs}\"\n"));
    let vip2 = lo(port());
    let before = table(&rvsd);
    let t_before = timeouts(&rvsd);
    // Direct routing and tunnels keep the service's port, as in ipvsadm.
    let gate_refused =
        format!("virtual service tcp {vip}: real server 127.0.0.2:{p} (gate) cannot join real server {rs}");
    let tunnel_refused = format!("real server 127.0.0.2:{p} (tunnel) cannot join real server {rs} (fullnat)");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held_addr = held.local_addr().unwrap().to_string();
    let held_refused = format!("cannot listen on tcp {held_addr}: Address already in use");
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (vec!["--bogus".into()], 255, "Try `rvsadm -h' or 'rvsadm --help' for more information."),
        (vec!["-A".into(), "-t".into(), vip2.clone(), "--bogus".into()], 255, "--bogus: unknown option"),
        (vec!["-A".into(), "-t".into()], 255, "-t: missing argument"),
        (vec!["-A".into()], 2, "You need to supply the 'service-address' option for the 'add-service' command"),
        (
            vec!["-a".into(), "-t".into(), vip.clone()],
            2,
            "You need to supply the 'real-server' option for the 'add-server' command",
        ),
        (
            vec!["-a".into(), "-t".into(), vip.clone(), "-r".into(), "127.0.0.1:9".into(), "-w".into(), "70000".into()],
            2,
            "illegal weight specified",
        ),
        (vec!["-A".into(), "-t".into(), "127.0.0.1".into()], 2, "Zero port specified for non-persistent service"),
        (
            vec!["-A".into(), "-t".into(), "127.0.0.1:0".into(), "-s".into(), "rr".into()],
            2,
            "Zero port specified for non-persistent service",
        ),
        (
            vec!["-a".into(), "-t".into(), vip.clone(), "-r".into(), "[::1]:80".into()],
            2,
            "Different address family is allowed only for tunneling servers",
        ),
        (
            vec!["-A".into(), "-t".into(), vip2.clone(), "-s".into(), "rr".into(), "-b".into(), "sh-port".into()],
            2,
            "incompatible scheduler flag `sh-port'",
        ),
        (
            vec!["-A".into(), "-t".into(), vip2.clone(), "-s".into(), "mh".into(), "-b".into(), "sh-fallback".into()],
            2,
            "incompatible scheduler flag `sh-fallback'",
        ),
        (
            vec!["-A".into(), "-t".into(), vip2.clone(), "-p".into(), "0".into()],
            2,
            "invalid timeout value `0' specified",
        ),
        (
            vec!["-A".into(), "-t".into(), "127.0.0.1:no-such-service".into()],
            2,
            "illegal virtual server address[:port] specified",
        ),
        (
            vec!["-A".into(), "-t".into(), vip2.clone(), "-r".into(), rs.clone()],
            2,
            "Illegal 'real-server' option with the 'add-service' command",
        ),
        (vec!["-L".into(), "-c".into(), "--stats".into()], 2, "options conflicts in the list command"),
        (
            vec!["-L".into(), "-c".into(), "-t".into(), vip.clone()],
            2,
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
        ),
        (vec!["--set".into(), "1".into(), "2".into()], 2, "--set option requires 3 timeout values"),
        (
            vec!["--set".into(), "1".into(), "2".into(), "2678401".into()],
            2,
            "invalid timeout value `2678401' specified",
        ),
        (vec!["-A".into(), "-D".into()], 2, "multiple commands specified"),
        (
            vec!["-A".into(), "-t".into(), vip2.clone(), "-s".into(), "rr".into(), "-s".into(), "wrr".into()],
            2,
            "multiple 'scheduler' options specified",
        ),
        // A firewall mark the director has no matches for.
        (vec!["-A".into(), "-f".into(), "1".into()], 255, "firewall mark 1 is not defined"),
        (
            vec!["-A".into(), "-t".into(), vip2.clone(), "-p".into(), "--pe".into(), "sip".into()],
            255,
            "the sip persistence engine (--pe sip) is for UDP services only",
        ),
        (
            vec!["-A".into(), "-u".into(), vip2.clone(), "--pe".into(), "sip".into()],
            255,
            "a persistence engine needs persistence",
        ),
        (vec!["--stop-daemon".into(), "backup".into()], 255, "no backup sync daemon is running"),
        // Refused by rvsd: its message (ipvsadm's words where it has some), exit 255.
        // The service's real server is fullnat (the file's default): a packet method cannot
        // join it, whether given or ipvsadm's default (-g).
        (
            vec!["-a".into(), "-t".into(), vip.clone(), "-r".into(), "127.0.0.2:9".into(), "-g".into()],
            255,
            &gate_refused,
        ),
        (
            vec!["-a".into(), "-t".into(), vip.clone(), "-r".into(), "127.0.0.2:9".into(), "-i".into()],
            255,
            &tunnel_refused,
        ),
        (vec!["-a".into(), "-t".into(), vip.clone(), "-r".into(), "127.0.0.2:9".into()], 255, &gate_refused),
        (vec!["-A".into(), "-t".into(), vip.clone()], 255, "Service already exists"),
        // Direct routing keeps the service's port: on the service's own address, the service.
        (
            vec!["-a".into(), "-t".into(), vip.clone(), "-r".into(), "127.0.0.1:9".into(), "-g".into()],
            255,
            "would loop",
        ),
        // An address that cannot be bound is not a service that exists: rvsd's own words.
        (vec!["-A".into(), "-t".into(), held_addr.clone()], 255, &held_refused),
        (vec!["-E".into(), "-t".into(), vip2.clone()], 255, "No such service"),
        (vec!["-D".into(), "-t".into(), vip2.clone()], 255, "No such service"),
        (vec!["-Z".into(), "-t".into(), vip2.clone()], 255, "No such service"),
        (vec!["-a".into(), "-t".into(), vip2.clone(), "-r".into(), rs.clone()], 255, "Service not defined"),
        (
            vec!["-a".into(), "-t".into(), vip.clone(), "-r".into(), rs.clone(), "--fullnat".into()],
            255,
            "Destination already exists",
        ),
        (vec!["-d".into(), "-t".into(), vip.clone(), "-r".into(), "127.0.0.1:9".into()], 255, "No such destination"),
        (vec!["-e".into(), "-t".into(), vip.clone(), "-r".into(), "127.0.0.1:9".into()], 255, "No such destination"),
        (vec!["-A".into(), "-t".into(), vip2.clone(), "-s".into(), "nosuch".into()], 255, "unknown scheduler `nosuch`"),
        (
            vec!["-A".into(), "-t".into(), vip2.clone(), "-p".into(), "60".into(), "-M".into(), "255.0.255.0".into()],
            255,
            "netmask 255.0.255.0 is not contiguous",
        ),
        (
            vec![
                "-e".into(),
                "-t".into(),
                vip.clone(),
                "-r".into(),
                rs.clone(),
                "-x".into(),
                "5".into(),
                "-y".into(),
                "10".into(),
            ],
            255,
            "lower threshold 10 is above the upper threshold 5",
        ),
        (vec!["-L".into(), "-n".into(), "-t".into(), vip2.clone()], 1, "No such service"),
    ];
    for (args, code, msg) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = rvsadm(&rvsd, &args);
        assert_eq!(r.code, *code, "rvsadm {args:?}: {r:?}");
        assert!(r.stderr.contains(msg), "rvsadm {args:?}: stderr {:?} lacks {msg:?}", r.stderr);
        assert_eq!(r.stdout, "", "rvsadm {args:?}");
        assert_eq!(table(&rvsd), before, "rvsadm {args:?} changed the table");
        assert_eq!(timeouts(&rvsd), t_before, "rvsadm {args:?} changed the timeouts");
    }
}

#[test]
fn json_watch_help_version_completions() {
    let vip = lo(port());
    let rvsd =
        start(&format!("[[service]]\naddress = \"{vip}\"\n  [[service.real_server]]\n  address = \"127.0.0.1:9\"\n"));
    let json: rvs_api::ServiceList = serde_json::from_str(&run(&rvsd, "-L --json").ok()).unwrap();
    assert_eq!(json.services.len(), 1);
    assert_eq!(json.services[0].address, vip);
    let one: rvs_api::ServiceView = serde_json::from_str(&run(&rvsd, &format!("-L --json -t {vip}")).ok()).unwrap();
    assert_eq!(one.real_servers[0].address, "127.0.0.1:9");
    let t: Value = serde_json::from_str(&run(&rvsd, "-L --timeout --json").ok()).unwrap();
    assert_eq!(t["tcp"], 900);
    let c: Value = serde_json::from_str(&run(&rvsd, "-L -c --json").ok()).unwrap();
    assert!(c["connections"].is_array() && c["templates"].is_array());

    // Watch, bounded by a count; not a terminal, so frames are separated by a blank line.
    let frames = run(&rvsd, "-L -n -w 0.1 --count 2").ok();
    assert_eq!(frames.matches("Rust Virtual Server version").count(), 2, "{frames}");
    let frames = run(&rvsd, "--watch 0.1 --count 3 -n --rate").ok();
    assert_eq!(frames.matches("InBPS").count(), 3, "{frames}");
    // The README's order, and others: --watch before or after -L.
    for line in [
        "--watch 0.1 -L -n --rate --count 2",
        "-L --watch 0.1 -n --rate --count 2",
        "--watch 0.1 --rate -n -L --count 2",
    ] {
        let frames = run(&rvsd, line).ok();
        assert_eq!(frames.matches("InBPS").count(), 2, "{line}: {frames}");
    }
    assert!(run(&rvsd, "--watch 0.1 -L -L").stderr.contains("multiple commands specified"));
    // On a terminal (script(1) gives it one) each frame redraws the screen as watch(1) does:
    // home and clear, a header line naming the interval and the command.
    let line = format!("RVSADM_API={} {} --watch 0.1 -L -n --count 2", rvsd.socket.display(), bin().display());
    let tty = std::process::Command::new("script").args(["-qec", &line, "/dev/null"]).output().unwrap();
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{tty:?}");
    assert_eq!(screen.matches("\x1b[H\x1b[2J").count(), 2, "{screen:?}");
    assert_eq!(screen.matches("Every 0.1s: rvsadm --watch 0.1 -L -n --count 2").count(), 2, "{screen:?}");
    assert!(screen.find("Every").unwrap() < screen.find("Rust Virtual Server version").unwrap(), "{screen:?}");

    let help = run(&rvsd, "-h").ok();
    assert!(help.starts_with("rvsadm v") && help.contains("Usage:") && help.contains("--fullnat"), "{help}");
    for d in rvsadm::options::OPTIONS {
        assert!(help.contains(&format!("--{}", d.long)), "--help lacks --{}", d.long);
    }
    assert_eq!(run(&rvsd, "--help").ok(), help);
    assert!(run(&rvsd, "-v").ok().starts_with(&format!("rvsadm v{VERSION} ")));

    let bash = run(&rvsd, "--completions bash").ok();
    assert!(bash.contains("complete -F _rvsadm rvsadm"));
    for d in rvsadm::options::OPTIONS {
        assert!(bash.contains(&format!("--{}", d.long)), "bash completion lacks --{}", d.long);
    }
    assert!(bash.contains("rr wrr lc wlc"), "scheduler names complete");
    if let Ok(out) = std::process::Command::new("bash").arg("-n").stdin(std::process::Stdio::piped()).spawn() {
        use std::io::Write;
        let mut child = out;
        child.stdin.take().unwrap().write_all(bash.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "bash -n rejects the completion script");
    }
    assert!(run(&rvsd, "--completions zsh").ok().starts_with("#compdef rvsadm"));
    assert!(run(&rvsd, "--completions fish").ok().contains("complete -c rvsadm -l add-service -s A"));
    let r = run(&rvsd, "--completions tcsh");
    assert_eq!(r.code, 2);
}

#[test]
fn tcp_api_with_bearer_token() {
    let api_port = port();
    let token = "rvsadm-test-token-0123456789";
    ensure_rvsd();
    let rvsd = Rvsd::builder("").api(&format!("listen = \"127.0.0.1:{api_port}\"\ntoken = \"{token}\"")).start();
    let url = format!("http://127.0.0.1:{api_port}");
    // rvsd answers on its unix socket a moment before it listens on TCP.
    eventually("the TCP API", || TcpStream::connect(("127.0.0.1", api_port)).is_ok());
    let vip = lo(port());
    rvsadm_bare(&["--api", &url, "-A", "-t", &vip], &[("RVSADM_TOKEN", token)]).ok();
    let list = rvsadm_bare(&["-L", "-n"], &[("RVSADM_API", &url), ("RVSADM_TOKEN", token)]).ok();
    assert!(list.contains(&format!("TCP  {vip} wlc\n")), "{list}");
    assert_eq!(table(&rvsd)["services"][0]["address"], vip);

    let r = rvsadm_bare(&["--api", &url, "-L", "-n"], &[("RVSADM_TOKEN", "wrong-token-0123456789")]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("bearer token"), "{r:?}");
    let r = rvsadm_bare(&["--api", &url, "-C"], &[]);
    assert_eq!(r.code, 2);
    assert_eq!(table(&rvsd)["services"].as_array().unwrap().len(), 1, "a refused token changes nothing");
}

#[test]
fn no_daemon() {
    let r = rvsadm_bare(&["--api", "/nonexistent/rvsd.sock", "-L", "-n"], &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.starts_with("Can't connect to rvsd at /nonexistent/rvsd.sock:"), "{r:?}");
    let r = rvsadm_bare(&["-C"], &[("RVSADM_API", "/nonexistent/other.sock")]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("/nonexistent/other.sock"), "{r:?}");
    // Help and version need no daemon.
    assert!(rvsadm_bare(&["-h"], &[("RVSADM_API", "/nonexistent/x.sock")]).ok().contains("Usage:"));
}

#[test]
fn health_view_shows_each_real_servers_check() {
    let up = rvs_testkit::Backend::start("up");
    let dead = rvs_testkit::closed_port();
    let vip = lo(port());
    let rvsd = start(&format!(
        r#"[[service]]
address = "{vip}"
scheduler = "rr"
check = {{ type = "tcp", interval = 0.2, timeout = 0.2, fall = 1, rise = 1, warmup = 0.05 }}
  [[service.real_server]]
  address = "{}"
  weight = 2
  [[service.real_server]]
  address = "{dead}"
"#,
        up.addr
    ));
    eventually("both checked", || {
        let out = run(&rvsd, "-L -n --health").ok();
        out.contains("up     2      TCP") && out.contains("down   0      TCP")
    });
    let out = run(&rvsd, "-L -n --health").ok();
    assert!(out.contains("Health Weight Check: last result (reason)"), "{out}");
    let dead_line = out.lines().find(|l| l.contains(&dead.to_string())).unwrap();
    assert!(dead_line.contains("down (") && dead_line.contains("refused"), "{dead_line}");
    // --health is a listing format: it does not combine with -c, like the others.
    let r = run(&rvsd, "-L -c --health");
    assert_ne!(r.code, 0);
}

#[test]
fn sync_daemons_are_started_listed_and_stopped_as_ipvsadm_does() {
    let rvsd = start("");
    let p = port().to_string();
    assert_eq!(rvsadm(&rvsd, &["-L", "--daemon"]).ok(), "", "none running");
    rvsadm(&rvsd, &["--start-daemon", "backup", "--syncid", "5", "--mcast-port", &p]).ok();
    rvsadm(&rvsd, &["--start-daemon", "master", "--syncid", "5", "--sync-peer", "127.0.0.1", "--mcast-port", &p]).ok();
    assert_eq!(
        rvsadm(&rvsd, &["-L", "--daemon"]).ok(),
        "master sync daemon (peer=127.0.0.1, syncid=5)\nbackup sync daemon (syncid=5)\n"
    );
    let again = rvsadm(&rvsd, &["--start-daemon", "backup", "--mcast-port", &p]);
    assert_eq!(again.code, 255);
    assert!(again.stderr.contains("already running"), "{again:?}");
    let no_target = rvsadm(&rvsd, &["--stop-daemon", "master"]);
    assert_eq!(no_target.code, 0, "{no_target:?}");
    let r = rvsadm(&rvsd, &["--start-daemon", "master"]);
    assert!(r.code == 255 && r.stderr.contains("--mcast-interface or --sync-peer"), "{r:?}");
    rvsadm(&rvsd, &["--stop-daemon", "backup"]).ok();
    assert_eq!(rvsadm(&rvsd, &["-L", "--daemon"]).ok(), "");
}

#[test]
fn vrrp_view_lists_each_instance_with_its_state() {
    // A director alone in its namespace on one veth: no other router, so it becomes master.
    let ns = rvs_testkit::netns::Netns::new("vrrp");
    let peer = rvs_testkit::netns::Netns::new("peer");
    ns.veth("eth0", &peer, "eth0", &["198.18.0.1/24"]);
    let config = "[[vrrp]]\nname = \"vi1\"\ninterface = \"eth0\"\nvrid = 51\npriority = 150\n\
                  advert_interval_ms = 100\nvirtual_addresses = [\"198.18.0.100\"]\n";
    let rvsd = Rvsd::builder(config).netns(ns.name()).start();
    eventually("master", || run(&rvsd, "-L --vrrp").ok().contains(": MASTER priority 150/150 master 198.18.0.1"));
    let text = run(&rvsd, "-L --vrrp").ok();
    assert!(text.starts_with("VRRP instance vi1 (interface=eth0, vrid=51): MASTER"), "{text}");
    assert!(text.contains("\n  -> 198.18.0.100\n"), "{text}");
    let json: Value = serde_json::from_str(&run(&rvsd, "-L --vrrp --json").ok()).unwrap();
    assert_eq!(json["instances"][0]["state"], "master", "{json}");
    let conflict = run(&rvsd, "-L --vrrp --stats");
    assert!(conflict.code != 0 && conflict.stderr.contains("options conflicts"), "{conflict:?}");
}

#[test]
fn the_ftp_helper_follows_port_21_and_survives_an_edit() {
    if !rvs_testkit::is_root() {
        eprintln!("not root: a service on port 21 cannot be bound; test skipped");
        return;
    }
    let rvsd = empty();
    let ftp = "127.0.0.22:21".to_string();
    let other = lo(port());
    run(&rvsd, &format!("-A -t {ftp} -s rr")).ok();
    run(&rvsd, &format!("-A -t {other} -s rr")).ok();
    let t = rvsd.services();
    assert_eq!(service(&t, &ftp)["helper"], "ftp", "IPVS's ip_vs_ftp ports=21: {t}");
    assert_eq!(service(&t, &other)["helper"], "none", "{t}");
    // Set through the API, kept by rvsadm -E (ipvsadm has no flag for it).
    let body = format!(
        r#"{{"commands":[{{"op":"edit-service","service":{{"protocol":"tcp","address":"{other}","scheduler":"rr","helper":"ftp"}}}}]}}"#
    );
    let (st, v) = rvsd.api("POST", "/v1/commands", Some(&body));
    assert_eq!(st, 200, "{v}");
    run(&rvsd, &format!("-E -t {other} -s wlc")).ok();
    let t = rvsd.services();
    assert_eq!(
        (service(&t, &other)["helper"].as_str(), service(&t, &other)["scheduler"].as_str()),
        (Some("ftp"), Some("wlc")),
        "{t}"
    );
}
