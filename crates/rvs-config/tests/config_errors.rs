//! The configuration file: what it accepts, and errors that name file, line, column and field.

use std::path::Path;

use proptest::prelude::*;
use rvs_config::Config;
use rvs_core::{ForwardingMethod, ProxyProtocol, SchedulerKind};

fn parse(text: &str) -> Result<Config, rvs_config::ConfigError> {
    Config::parse(text, Path::new("rvsd.toml"))
}

fn err(text: &str) -> String {
    parse(text).expect_err("must be refused").to_string()
}

#[test]
fn the_example_file_is_valid() {
    let c = Config::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/rvsd.example.toml"))).unwrap();
    let (key, svc) = c.table.services.iter().next().unwrap();
    assert_eq!(key.to_string(), "tcp 127.0.0.1:8080");
    assert_eq!(svc.settings.scheduler, SchedulerKind::Wlc);
    assert_eq!(svc.servers.len(), 2);
    assert_eq!(svc.servers[1].weight, 2);
    assert_eq!(c.table.timeouts.tcpfin_secs, 120);
}

#[test]
fn full_service_is_read() {
    let c = parse(
        r#"
[timeouts]
tcp = 60
[[service]]
address = "[2001:db8::1]:443"
scheduler = "mh"
sched_flags = ["mh-port", "mh-fallback"]
mh_table_size = 251
persistent = 600
netmask = "64"
  [[service.real_server]]
  address = "2001:db8::10"
  weight = 0
  proxy_protocol = "v2"
  u_threshold = 10
  l_threshold = 5
"#,
    )
    .unwrap();
    let (key, svc) = c.table.services.iter().next().unwrap();
    assert_eq!(key.port(), 443);
    let p = svc.settings.persistence.unwrap();
    assert_eq!((p.timeout_secs, p.netmask.to_string()), (600, "64".to_string()));
    assert!(svc.settings.flags.mh_port && svc.settings.flags.mh_fallback);
    let rs = svc.servers[0];
    assert_eq!(rs.addr.to_string(), "[2001:db8::10]:443", "a real server without a port takes the service's");
    assert_eq!((rs.weight, rs.proxy_protocol, rs.method), (0, ProxyProtocol::V2, ForwardingMethod::FullNat));
    assert_eq!(c.table.timeouts.tcp_secs, 60);
    assert_eq!(c.table.timeouts.udp_secs, 300);
}

#[test]
fn errors_name_line_and_field() {
    let e = err("[[service]]\naddress = \"127.0.0.1:80\"\n[[service.real_server]]\naddress = \"127.0.0.1:81\"\nweight = 70000\n");
    assert!(e.starts_with("rvsd.toml:5:10: service[0].real_server[0].weight:"), "{e}");
    assert!(e.contains("70000 is out of range"), "{e}");

    let e = err("[[service]]\naddress = \"127.0.0.1:80\"\nschedular = \"rr\"\n");
    assert!(e.starts_with("rvsd.toml:3:1:"), "{e}");
    assert!(e.contains("unknown field `schedular`"), "{e}");

    let e = err("[[service]]\naddress = \"127.0.0.1:80\"\nscheduler = \"fastest\"\n");
    assert!(e.contains("service[0].scheduler: unknown scheduler `fastest`"), "{e}");

    let e = err("[[service]]\naddress = \"127.0.0.1:80\"\nscheduler = \"rr\"\nsched_flags = [\"sh-port\"]\n");
    assert!(e.contains("service[0].sched_flags") && e.contains("needs the sh scheduler"), "{e}");

    // Every method is accepted; a service's real servers are all fullnat or all packet methods.
    let two = |m0: &str, m1: &str| {
        format!("[[service]]\naddress = \"127.0.0.1:80\"\n[[service.real_server]]\naddress = \"127.0.0.1:81\"\nmethod = \"{m0}\"\n[[service.real_server]]\naddress = \"127.0.0.1:82\"\nmethod = \"{m1}\"\n")
    };
    let c = parse(&two("gate", "tunnel")).unwrap();
    assert_eq!(c.table.services.values().next().unwrap().engine(), rvs_core::Engine::Packet);
    // Persistence without a timeout is IPVS's 360 s.
    let c = parse("[[service]]\naddress = \"127.0.0.1:80\"\nnetmask = \"255.255.255.0\"\n").unwrap();
    let p = c.table.services.values().next().unwrap().settings.persistence.unwrap();
    assert_eq!(p.timeout_secs, 360);
    let e = err(&two("masq", "fullnat"));
    assert!(e.contains("rvsd.toml:8:10: service[0].real_server[1].method") && e.contains("all fullnat"), "{e}");

    let e = err("[[service]]\naddress = \"127.0.0.1:80\"\n[[service.real_server]]\naddress = \"[::1]:81\"\n");
    assert!(e.contains("different address families"), "{e}");

    // A real server written without a port takes the service's: on the service's own address
    // that is the service itself.
    let e = err("[[service]]\naddress = \"127.0.0.1:80\"\n[[service.real_server]]\naddress = \"127.0.0.1\"\n");
    assert!(e.contains("rvsd.toml:4:11: service[0].real_server[0].address") && e.contains("would loop"), "{e}");

    let e = err("[[service]]\naddress = \"127.0.0.1:80\"\n[[service]]\naddress = \"127.0.0.1:80\"\n");
    assert!(e.contains("rvsd.toml:4:11: service[1].address") && e.contains("already exists"), "{e}");

    let e = err("[[service]]\naddress = \"127.0.0.1:80\"\npersistent = 300\nnetmask = \"64\"\n");
    assert!(e.contains("service[0].netmask") && e.contains("address family"), "{e}");

    let e = err("[[service]]\naddress = \"127.0.0.1\"\n");
    assert!(e.contains("needs a port"), "{e}");

    let c = parse("[[service]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:53\"\n").unwrap();
    assert_eq!(
        c.table.services.keys().next().unwrap().protocol(),
        Some(rvs_core::Protocol::Udp),
        "UDP services are accepted"
    );
    // SCTP: the packet engine's (gate, masq, tunnel); a fullnat real server (the file's
    // default method) is refused at its method, or at the real server when none is written.
    let c = parse(
        "[[service]]\nprotocol = \"sctp\"\naddress = \"198.18.1.10:80\"\n\
         [[service.real_server]]\naddress = \"198.18.0.11\"\nmethod = \"gate\"\n\
         [[service.real_server]]\naddress = \"198.18.0.12:8080\"\nmethod = \"masq\"\n",
    )
    .unwrap();
    let (key, m) = c.table.services.iter().next().unwrap();
    assert_eq!(key.protocol(), Some(rvs_core::Protocol::Sctp), "SCTP services are accepted");
    assert_eq!(m.servers.len(), 2);
    let e = err("[[service]]\nprotocol = \"sctp\"\naddress = \"198.18.1.10:80\"\n\
                 [[service.real_server]]\naddress = \"198.18.0.11\"\nmethod = \"fullnat\"\n");
    assert!(
        e.contains("service[0].real_server[0].method") && e.contains("SCTP services need the packet engine"),
        "{e}"
    );
    let e = err("[[service]]\nprotocol = \"sctp\"\naddress = \"198.18.1.10:80\"\n\
                 [[service.real_server]]\naddress = \"198.18.0.11\"\n");
    assert!(e.contains("service[0].real_server[0].method") && e.contains("packet engine"), "{e}");
    let e = err("[[service]]\nkind = \"http\"\nprotocol = \"sctp\"\naddress = \"198.18.1.10:80\"\n");
    assert!(e.contains("service[0].protocol") && e.contains("packet engine"), "{e}");
    let e = err("[[service]]\nprotocol = \"dccp\"\naddress = \"127.0.0.1:53\"\n");
    assert!(e.contains("service[0].protocol") && e.contains("tcp, udp or sctp"), "{e}");

    let e = err("[api]\nlisten = \"127.0.0.1:9000\"\n");
    assert!(e.contains("api.listen") && e.contains("token"), "{e}");

    let e = err("[api]\nlisten = \"198.18.0.1:9000\"\ntoken = \"0123456789abcdef\"\n");
    assert!(e.contains("not a loopback"), "{e}");

    let e = err("[timeouts]\ntcp = 0\n");
    assert!(e.contains("timeouts.tcp"), "{e}");
}

#[test]
fn a_missing_file_is_named() {
    let e = Config::load(Path::new("/nonexistent/rvsd.toml")).unwrap_err().to_string();
    assert!(e.starts_with("/nonexistent/rvsd.toml: cannot read"), "{e}");
}

proptest! {
    /// Whatever the bytes, parsing returns a config or an error; it never panics.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = parse(&text);
    }

    /// Near-valid files with one value mangled never panic either.
    #[test]
    fn mangled_values_never_panic(field in "(address|weight|scheduler|netmask|persistent|u_threshold|method)", value in "\\PC{0,20}") {
        let text = format!("[[service]]\naddress = \"127.0.0.1:80\"\n[[service.real_server]]\n{field} = \"{value}\"\n");
        let _ = parse(&text);
    }
}

#[test]
fn the_relay_is_splice_unless_sockmap_is_asked_for() {
    use rvs_config::Relay;
    assert_eq!(parse("").unwrap().director.relay, Relay::Splice);
    assert_eq!(parse("[director]\nrelay = \"splice\"\n").unwrap().director.relay, Relay::Splice);
    assert_eq!(
        parse("[director]\nrelay = \"sockmap\"\n").unwrap().director.relay,
        Relay::Sockmap { connections: 32_768 }
    );
    assert_eq!(
        parse("[director]\nrelay = \"sockmap\"\nsockmap_connections = 100\n").unwrap().director.relay,
        Relay::Sockmap { connections: 100 }
    );
    for (text, want) in [
        (
            "[director]\nrelay = \"xdp\"\n",
            "rvsd.toml:2:9: director.relay: unknown relay \"xdp\": use \"splice\" or \"sockmap\"",
        ),
        (
            "[director]\nsockmap_connections = 10\n",
            "rvsd.toml:2:23: director.sockmap_connections: only applies with relay = \"sockmap\"",
        ),
        (
            "[director]\nrelay = \"sockmap\"\nsockmap_connections = 0\n",
            "rvsd.toml:3:23: director.sockmap_connections: must be between 1 and 1048576",
        ),
        (
            "[director]\nrelay = \"sockmap\"\nsockmap_connections = 2000000\n",
            "rvsd.toml:3:23: director.sockmap_connections: must be between 1 and 1048576",
        ),
    ] {
        let e = err(text);
        assert!(e.starts_with(want), "{text:?}: {e}");
    }
}

#[test]
fn the_packet_engines_pin_path_is_absolute_or_the_default() {
    let c = parse("[packet_engine]\ninterfaces = [\"eth0\"]\n").unwrap();
    assert_eq!(c.packet_engine.unwrap().pin_path, None, "the namespace's default directory");
    let c = parse("[packet_engine]\ninterfaces = [\"eth0\"]\npin_path = \"/sys/fs/bpf/rvs/lb1\"\n").unwrap();
    assert_eq!(c.packet_engine.unwrap().pin_path, Some("/sys/fs/bpf/rvs/lb1".into()));
    let e = err("[packet_engine]\ninterfaces = [\"eth0\"]\npin_path = \"rvs\"\n");
    assert!(e.contains("packet_engine.pin_path") && e.contains("absolute"), "{e}");
}

#[test]
fn packet_engine_settings_are_checked_where_they_stand() {
    let c = parse("[packet_engine]\ninterfaces = [\"eth0\", \"eth1\"]\nxdp_mode = \"generic\"\nconnections = 4096\n")
        .unwrap()
        .packet_engine
        .unwrap();
    assert_eq!((c.interfaces.len(), c.xdp_mode, c.connections), (2, rvs_config::XdpMode::Generic, 4096));
    for (text, want) in [
        ("[packet_engine]\n", "packet_engine.interfaces: name at least one interface"),
        (
            "[packet_engine]\ninterfaces = [\"eth0/1\"]\n",
            "rvsd.toml:2:15: packet_engine.interfaces: \"eth0/1\" is not an interface name",
        ),
        ("[packet_engine]\ninterfaces = [\"eth0\", \"eth0\"]\n", "packet_engine.interfaces: eth0 is named twice"),
        (
            "[packet_engine]\ninterfaces = [\"eth0\"]\nxdp_mode = \"fast\"\n",
            "rvsd.toml:3:12: packet_engine.xdp_mode: unknown XDP mode \"fast\"",
        ),
        (
            "[packet_engine]\ninterfaces = [\"eth0\"]\nconnections = 0\n",
            "rvsd.toml:3:15: packet_engine.connections: must be between 1 and",
        ),
        ("[packet_engine]\ninterfaces = [\"eth0\"]\nqueues = 4\n", "unknown field `queues`"),
    ] {
        let e = err(text);
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn checks_go_through_the_vip_unless_through_vip_is_false() {
    let c = parse(
        r#"
[[service]]
address = "198.18.1.10:80"
check = { type = "tcp" }
  [[service.real_server]]
  address = "198.18.0.11:80"
  method = "gate"
  [[service.real_server]]
  address = "198.18.0.12:80"
  method = "gate"
  check = { type = "tcp", through_vip = false }
"#,
    )
    .unwrap();
    let h = c.health.values().next().unwrap();
    let to = |rs: &str| h.check_for(rs.parse().unwrap()).unwrap().check.connect_to();
    assert!(to("198.18.0.11:80").through_vip, "the default");
    assert!(!to("198.18.0.12:80").through_vip);
    let e = err("[[service]]\naddress = \"198.18.1.10:80\"\ncheck = { type = \"tcp\", through_vip = \"no\" }\n");
    assert!(e.contains("through_vip"), "{e}");
}

#[test]
fn the_sync_table_starts_a_daemon_and_names_what_is_wrong() {
    let c = parse("[sync]\nstate = \"master\"\nsyncid = 7\nmcast_interface = \"eth0\"\n").unwrap();
    assert_eq!(
        c.sync,
        Some(rvs_config::SyncConfig {
            state: rvs_config::SyncState::Master,
            syncid: 7,
            mcast_interface: Some("eth0".into()),
            peer: None,
            port: None,
        })
    );
    let c = parse("[sync]\nstate = \"backup\"\nport = 9000\n").unwrap();
    assert_eq!(c.sync.unwrap().port, Some(9000));
    assert!(parse("").unwrap().sync.is_none());
    assert!(err("[sync]\nstate = \"primary\"\n").contains("sync.state"));
    assert!(err("[sync]\nstate = \"backup\"\nsyncid = 256\n").contains("sync.syncid"));
    assert!(err("[sync]\nstate = \"master\"\npeer = \"nowhere\"\n").contains("sync.peer"));
    assert!(err("[sync]\nstate = \"master\"\n").contains("mcast_interface or peer"));
    assert!(err("[sync]\nstate = \"backup\"\nport = 0\n").contains("sync.port"));
}

/// Every error names the full path of its field, however deep: values of the wrong type,
/// unknown and missing fields (found by TOML deserialization), and values refused by
/// validation, in inline tables, arrays of tables and arrays.
#[test]
fn errors_name_the_full_path_of_nested_fields() {
    let svc = "[[service]]\naddress = \"127.0.0.1:80\"\n";
    let cases: &[(String, &str)] = &[
        // Refused by TOML deserialization: the path comes from the place in the file.
        (format!("{svc}check = {{ type = \"tcp\", interval = \"2s\" }}\n"), "service[0].check.interval: "),
        (format!("{svc}check = {{ type = \"tcp\", intervall = 2 }}\n"), "service[0].check.intervall: "),
        (
            format!("{svc}[[service.real_server]]\naddress = \"127.0.0.1:81\"\n[[service.real_server]]\naddress = \"127.0.0.1:82\"\nweight = \"heavy\"\n"),
            "service[0].real_server[1].weight: ",
        ),
        (format!("[timeouts]\ntcp = \"long\"\n{svc}"), "timeouts.tcp: "),
        (format!("{svc}{svc}sched_flags = [\"sh-port\", 7]\n"), "service[1].sched_flags[1]: "),
        // Refused by validation.
        (format!("{svc}check = {{ type = \"tcp\", interval = -1 }}\n"), "service[0].check.interval: "),
        (format!("{svc}check = {{ type = \"tcp\", fall = 0 }}\n"), "service[0].check.fall: "),
        (format!("{svc}check = {{ type = \"dns\" }}\n"), "service[0].check.query_name: "),
        (format!("{svc}check = {{ type = \"http\", path = \"no-slash\" }}\n"), "service[0].check.path: "),
        (format!("{svc}check = {{ type = \"tcp\", connect_port = 0 }}\n"), "service[0].check.connect_port: "),
        (
            format!("{svc}[[service.real_server]]\naddress = \"127.0.0.1:81\"\ncheck = {{ type = \"exec\" }}\n"),
            "service[0].real_server[0].check.command: ",
        ),
    ];
    for (text, field) in cases {
        let e = err(text);
        assert!(e.contains(field), "expected {field:?} in:\n{e}\nfor:\n{text}");
    }
}

#[test]
fn the_ftp_helper_is_on_for_tcp_port_21_and_settable() {
    use rvs_core::Helper;
    let c = parse(
        r#"
[[service]]
address = "127.0.0.1:21"
[[service]]
address = "127.0.0.1:2121"
helper = "ftp"
[[service]]
address = "127.0.0.2:21"
helper = "none"
[[service]]
address = "127.0.0.1:8080"
"#,
    )
    .unwrap();
    let helpers: Vec<(u16, Option<Helper>, Helper)> =
        c.table.services.iter().map(|(k, s)| (k.port(), s.settings.helper, s.settings.helper_for(k))).collect();
    assert!(helpers.contains(&(21, None, Helper::Ftp)), "{helpers:?}");
    assert!(helpers.contains(&(2121, Some(Helper::Ftp), Helper::Ftp)), "{helpers:?}");
    assert!(helpers.contains(&(21, Some(Helper::None), Helper::None)), "{helpers:?}");
    assert!(helpers.contains(&(8080, None, Helper::None)), "{helpers:?}");
    let e = err("[[service]]\naddress = \"127.0.0.1:21\"\nhelper = \"sip\"\n");
    assert!(e.contains("rvsd.toml:3:10: service[0].helper: unknown helper `sip`"), "{e}");
    let e = err("[[service]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:21\"\nhelper = \"ftp\"\n");
    assert!(e.contains("service[0].helper") && e.contains("TCP"), "{e}");
    let e = err("[[service]]\nkind = \"http\"\naddress = \"127.0.0.1:21\"\nhelper = \"ftp\"\n");
    assert!(e.contains("service[0].helper") && e.contains("belongs to a tcp service"), "{e}");
}
