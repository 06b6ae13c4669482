//! The sip persistence engine with real SIP peers: Debian's SIPp (`sip-tester`) as the client
//! and as two real servers behind a UDP service of the proxy engine. All of the client's calls
//! come from one source port, so only the Call-ID can spread them; every message of a call must
//! reach the real server that took its INVITE (a BYE elsewhere would be answered 481, failing
//! the call). The packet engine's test is in packet_engine.rs.

mod common;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use common::*;
use rvs_testkit::sipp::{calls_received, sipp_calls, sipp_installed, SippServer};

/// A free UDP port on `ip`.
fn udp_port(ip: &str) -> u16 {
    UdpSocket::bind(format!("{ip}:0")).unwrap().local_addr().unwrap().port()
}

#[test]
fn sipp_calls_each_stay_on_one_real_server_and_spread_over_both() {
    if !sipp_installed() {
        eprintln!("note: sipp is not installed (Debian's sip-tester; .ci/run installs it): skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (p2, p3) = (udp_port("127.0.0.2"), udp_port("127.0.0.3"));
    let logs = [dir.path().join("uas2.log"), dir.path().join("uas3.log")];
    let _uas = [
        SippServer::start(Command::new("sipp"), "127.0.0.2", p2, &logs[0]),
        SippServer::start(Command::new("sipp"), "127.0.0.3", p3, &logs[1]),
    ];
    let vip_port = udp_port("127.0.0.1");
    let config = format!(
        "[[service]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:{vip_port}\"\nscheduler = \"rr\"\npersistent = 60\n\
         persistence_engine = \"sip\"\n  [[service.real_server]]\n  address = \"127.0.0.2:{p2}\"\n\
         [[service.real_server]]\n  address = \"127.0.0.3:{p3}\"\n"
    );
    let rvsd = Rvsd::start(&config);
    std::thread::sleep(Duration::from_millis(300)); // the real servers bind
    let target = format!("127.0.0.1:{vip_port}").parse().unwrap();
    let out = sipp_calls(Command::new("sipp"), target, "127.0.0.1", udp_port("127.0.0.1"), 200, dir.path());
    let (_, svc) = rvsd.api("GET", &format!("/v1/services/udp/127.0.0.1:{vip_port}"), None);
    assert!(
        out.status.success(),
        "sipp's 200 calls did not all succeed ({}):\n{}\n{svc}",
        out.status,
        String::from_utf8_lossy(&out.stdout).lines().rev().take(40).collect::<Vec<_>>().join("\n")
    );
    let (a, b) = (calls_received(&logs[0]), calls_received(&logs[1]));
    assert_eq!(a.len() + b.len(), 200, "every call reached a real server");
    assert!(a.is_disjoint(&b), "a call's messages on both real servers: {:?}", a.intersection(&b).collect::<Vec<_>>());
    assert_eq!((a.len(), b.len()), (100, 100), "rr over the calls (one client port for all)");
    // The templates carry the Call-IDs.
    let (_, t) = rvsd.api("GET", "/v1/templates", None);
    let by_call: HashMap<String, String> = t["templates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| Some((t["pe_data"].as_str()?.to_string(), t["real_server"].as_str()?.to_string())))
        .collect();
    assert_eq!(by_call.len(), 200, "{t}");
    for id in &a {
        assert_eq!(by_call.get(id).map(String::as_str), Some(format!("127.0.0.2:{p2}").as_str()), "{id}");
    }
}
