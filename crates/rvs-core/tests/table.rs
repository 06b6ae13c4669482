//! The service table: all-or-nothing batches, reload diffs, and the IPVS decisions of
//! `VirtualService::schedule` (persistence templates, quiesced and deleted real servers).

use std::net::SocketAddr;
use std::sync::Arc;

use rvs_core::sched::SchedRequest;
use rvs_core::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn vip() -> ServiceKey {
    ServiceKey::tcp(sa("10.0.0.1:80"))
}

fn add_service(settings: ServiceSettings) -> Command {
    Command::AddService { key: vip(), settings }
}

fn add_server(addr: &str, weight: u32) -> Command {
    let mut s = RealServerSettings::new(sa(addr));
    s.weight = weight;
    Command::AddServer { service: vip(), server: s }
}

fn req(client: &str, now_ms: u64) -> SchedRequest {
    SchedRequest { client: sa(client), destination: vip_addr(), now_ms }
}

fn rr_table(servers: &[&str]) -> ServiceTable {
    let mut t = ServiceTable::new(1);
    let mut cmds = vec![add_service(ServiceSettings { scheduler: SchedulerKind::Rr, ..Default::default() })];
    cmds.extend(servers.iter().map(|s| add_server(s, 1)));
    t.apply_batch(&cmds).unwrap();
    t
}

#[test]
fn a_batch_with_one_bad_command_changes_nothing() {
    let mut t = rr_table(&["10.0.1.1:80"]);
    let before = t.model().clone();
    let err = t.apply_batch(&[add_server("10.0.1.2:80", 1), add_server("10.0.1.3:80", 70_000)]).unwrap_err();
    assert_eq!(err.index, 1);
    assert!(err.to_string().contains("weight 70000"), "{err}");
    assert_eq!(t.model(), &before);
    assert_eq!(t.service(&vip()).unwrap().dests().len(), 1, "the runtime did not change either");
}

#[test]
fn diff_touches_only_what_changed() {
    let t = rr_table(&["10.0.1.1:80", "10.0.1.2:80"]);
    let old = t.model().clone();
    let mut new = old.clone();
    let svc = new.services.get_mut(&vip()).unwrap();
    svc.servers[1].weight = 5;
    svc.servers.remove(0);
    svc.servers.push(RealServerSettings::new(sa("10.0.1.3:80")));
    let cmds = old.diff(&new);
    assert_eq!(cmds.len(), 3, "{cmds:?}");
    assert!(matches!(cmds[0], Command::DeleteServer { addr, .. } if addr == sa("10.0.1.1:80")));
    assert!(matches!(cmds[1], Command::EditServer { server, .. } if server.weight == 5));
    assert!(matches!(cmds[2], Command::AddServer { server, .. } if server.addr == sa("10.0.1.3:80")));
    assert!(old.diff(&old).is_empty());
    // Applying the diff gives the new model; the unchanged server keeps its runtime object.
    let mut t = t;
    let kept = t.service(&vip()).unwrap().dest(sa("10.0.1.2:80")).unwrap();
    t.apply_batch(&cmds).unwrap();
    assert_eq!(t.model(), &new);
    assert!(Arc::ptr_eq(&kept, &t.service(&vip()).unwrap().dest(sa("10.0.1.2:80")).unwrap()));
    // And `commands` rebuilds the table from nothing.
    let mut fresh = ServiceTable::new(2);
    fresh.apply_batch(&new.commands()).unwrap();
    assert_eq!(fresh.model(), &new);
}

#[test]
fn errors_are_ipvs_like() {
    let mut t = rr_table(&["10.0.1.1:80"]);
    let e = t.apply(add_service(ServiceSettings::default())).unwrap_err();
    assert_eq!(e, CommandError::ServiceExists(vip()));
    let e = t.apply(add_server("10.0.1.1:80", 1)).unwrap_err();
    assert!(matches!(e, CommandError::ServerExists { .. }));
    let e = t.apply(Command::DeleteServer { service: vip(), addr: sa("10.9.9.9:80") }).unwrap_err();
    assert!(matches!(e, CommandError::NoServer { .. }));
    let other = ServiceKey::tcp(sa("10.0.0.2:80"));
    assert_eq!(t.apply(Command::DeleteService { key: other }).unwrap_err(), CommandError::NoService(other));
    let e = t.apply(add_server("[2001:db8::1]:80", 1)).unwrap_err();
    assert!(matches!(e, CommandError::MixedFamily { .. }));
    // The service's own address would loop; the same host on another port is a real server.
    let own = vip_addr().to_string();
    assert_eq!(
        t.apply(add_server(&own, 1)).unwrap_err(),
        CommandError::OwnAddress { service: vip(), addr: vip_addr() }
    );
    let mut edit = RealServerSettings::new(vip_addr());
    edit.weight = 2;
    let e = t.apply(Command::EditServer { service: vip(), server: edit }).unwrap_err();
    assert!(matches!(e, CommandError::NoServer { .. }), "there is none to edit: {e:?}");
    let mut other_port = vip_addr();
    other_port.set_port(8080);
    t.apply(add_server(&other_port.to_string(), 1)).unwrap();
}

#[test]
fn weight_zero_takes_no_new_connections_and_accounting_follows_states() {
    let t = rr_table(&["10.0.1.1:80", "10.0.1.2:80"]);
    let mut t = t;
    let mut quiesced = RealServerSettings::new(sa("10.0.1.1:80"));
    quiesced.weight = 0;
    t.apply(Command::EditServer { service: vip(), server: quiesced }).unwrap();
    let svc = t.service(&vip()).unwrap().clone();
    for i in 0..4 {
        let b = svc.schedule(&req(&format!("192.0.2.{i}:1000"), 0), &[], false).unwrap();
        assert_eq!(b.dest.addr, sa("10.0.1.2:80"));
    }
    let b = svc.schedule(&req("192.0.2.1:1000", 0), &[], false).unwrap();
    let d = b.dest.clone();
    assert_eq!((d.active(), d.inactive()), (0, 1));
    b.established();
    assert_eq!((d.active(), d.inactive()), (1, 0));
    b.closing(5);
    assert_eq!((d.active(), d.inactive()), (0, 1));
    b.finish(6);
    assert_eq!((d.active(), d.inactive()), (0, 0));
    assert_eq!(d.stats.counters.read().conns, 5);
}

#[test]
fn persistence_template_sends_a_client_network_back_and_expires() {
    let mut t = ServiceTable::new(1);
    let settings = ServiceSettings {
        scheduler: SchedulerKind::Rr,
        persistence: Some(Persistence::new(10, "255.255.255.0".parse().unwrap())),
        ..Default::default()
    };
    t.apply_batch(&[add_service(settings), add_server("10.0.1.1:80", 1), add_server("10.0.1.2:80", 1)]).unwrap();
    let svc = t.service(&vip()).unwrap().clone();
    let first = svc.schedule(&req("192.0.2.1:1000", 0), &[], false).unwrap();
    let d = first.dest.addr;
    first.finish(1_000);
    // Same /24, different host and port: same real server, while the template lives.
    for i in 2..6 {
        let b = svc.schedule(&req(&format!("192.0.2.{i}:2000"), 2_000), &[], false).unwrap();
        assert_eq!(b.dest.addr, d);
    }
    // A connect failure excludes the template's server: a new one is chosen and remembered.
    let b = svc.schedule(&req("192.0.2.9:1", 3_000), &[d], false).unwrap();
    let other = b.dest.addr;
    assert_ne!(other, d);
    drop(b);
    assert_eq!(svc.schedule(&req("192.0.2.7:1", 3_000), &[], false).unwrap().dest.addr, other);
    assert_eq!(svc.templates(3_000).len(), 1);
    // Ten seconds after the last connection ended, the template is gone.
    assert_eq!(svc.purge_templates(3_000 + 10_001), 1);
}

#[test]
fn quiesced_server_keeps_templates_unless_expire_quiescent_template() {
    for expire in [false, true] {
        let mut t = ServiceTable::new(1);
        let settings = ServiceSettings {
            scheduler: SchedulerKind::Rr,
            persistence: Some(Persistence::new(300, Netmask::V4("255.255.255.255".parse().unwrap()))),
            ..Default::default()
        };
        t.apply_batch(&[
            Command::SetOptions(DirectorOptions { expire_quiescent_template: expire, ..Default::default() }),
            add_service(settings),
            add_server("10.0.1.1:80", 1),
            add_server("10.0.1.2:80", 1),
        ])
        .unwrap();
        let svc = t.service(&vip()).unwrap().clone();
        let d = svc.schedule(&req("192.0.2.1:1", 0), &[], expire).unwrap().dest.addr;
        let mut q = RealServerSettings::new(d);
        q.weight = 0;
        t.apply(Command::EditServer { service: vip(), server: q }).unwrap();
        let again = svc.schedule(&req("192.0.2.1:2", 10), &[], expire).unwrap().dest.addr;
        assert_eq!(again == d, !expire, "expire_quiescent_template = {expire}");
    }
}

#[test]
fn deleting_a_real_server_expires_its_templates_and_reports_it() {
    let mut t = ServiceTable::new(1);
    let settings = ServiceSettings {
        persistence: Some(Persistence::new(300, Netmask::V4("255.255.255.255".parse().unwrap()))),
        ..Default::default()
    };
    t.apply_batch(&[add_service(settings), add_server("10.0.1.1:80", 1), add_server("10.0.1.2:80", 1)]).unwrap();
    let svc = t.service(&vip()).unwrap().clone();
    let b = svc.schedule(&req("192.0.2.1:1", 0), &[], false).unwrap();
    let d = b.dest.clone();
    let applied = t.apply(Command::DeleteServer { service: vip(), addr: d.addr }).unwrap();
    assert_eq!(applied.removed_servers.len(), 1);
    assert!(!d.in_service());
    // The connection still counts on the deleted server while it drains.
    assert_eq!(d.inactive(), 1);
    drop(b);
    assert_eq!(d.inactive(), 0);
    let next = svc.schedule(&req("192.0.2.1:2", 1), &[], false).unwrap();
    assert_ne!(next.dest.addr, d.addr);
}

#[test]
fn overload_takes_a_server_out_until_it_falls_below_the_lower_threshold() {
    let mut t = ServiceTable::new(1);
    let mut a = RealServerSettings::new(sa("10.0.1.1:80"));
    a.weight = 100;
    a.u_threshold = 2;
    a.l_threshold = 1;
    let b = RealServerSettings::new(sa("10.0.1.2:80"));
    t.apply_batch(&[
        add_service(ServiceSettings { scheduler: SchedulerKind::Fo, ..Default::default() }),
        Command::AddServer { service: vip(), server: a },
        Command::AddServer { service: vip(), server: b },
    ])
    .unwrap();
    let svc = t.service(&vip()).unwrap().clone();
    let c1 = svc.schedule(&req("192.0.2.1:1", 0), &[], false).unwrap();
    let c2 = svc.schedule(&req("192.0.2.1:2", 0), &[], false).unwrap();
    assert_eq!((c1.dest.addr, c2.dest.addr), (a.addr, a.addr));
    assert!(c1.dest.overloaded());
    let c3 = svc.schedule(&req("192.0.2.1:3", 0), &[], false).unwrap();
    assert_eq!(c3.dest.addr, b.addr, "fo skips the overloaded server");
    drop(c1);
    assert!(c2.dest.overloaded(), "1 connection is not below the lower threshold 1");
    drop(c2);
    assert_eq!(svc.schedule(&req("192.0.2.1:4", 0), &[], false).unwrap().dest.addr, a.addr);
}

#[test]
fn health_verdicts_change_scheduling_not_the_configuration() {
    let mut t = rr_table(&["10.0.1.1:80", "10.0.1.2:80"]);
    let saved = t.model().clone();
    let svc = t.service(&vip()).unwrap().clone();
    let down = Command::SetHealth { service: vip(), addr: sa("10.0.1.1:80"), health: Health::Down, weight: None };
    t.apply(down).unwrap();
    assert_eq!(t.model(), &saved, "health is run-time state; save and reload diffs ignore it");
    let d = svc.dest(sa("10.0.1.1:80")).unwrap();
    assert_eq!((d.weight(), d.configured_weight()), (0, 1));
    for i in 0..4 {
        assert_eq!(svc.schedule(&req(&format!("192.0.2.{i}:1"), 0), &[], false).unwrap().dest.addr, sa("10.0.1.2:80"));
    }
    // Back up with a dynamic weight, as a MISC_CHECK in dynamic mode or an agent reports.
    let up = Command::SetHealth { service: vip(), addr: sa("10.0.1.1:80"), health: Health::Up, weight: Some(7) };
    t.apply(up).unwrap();
    assert_eq!(d.weight(), 7);
    let missing = Command::SetHealth { service: vip(), addr: sa("10.9.9.9:80"), health: Health::Up, weight: None };
    assert!(matches!(t.apply(missing), Err(CommandError::NoServer { .. })));
}

#[test]
fn sorry_server_takes_new_connections_while_quorum_is_lost() {
    let mut t = ServiceTable::new(1);
    let settings = ServiceSettings { sorry_server: Some(sa("10.0.9.9:80")), ..Default::default() };
    t.apply_batch(&[add_service(settings), add_server("10.0.1.1:80", 1)]).unwrap();
    let svc = t.service(&vip()).unwrap().clone();
    t.apply(Command::SetQuorum { service: vip(), lost: true }).unwrap();
    let b = svc.schedule(&req("192.0.2.1:1", 0), &[], false).unwrap();
    assert_eq!(b.dest.addr, sa("10.0.9.9:80"));
    // When the sorry server refuses, the real servers are still tried.
    assert_eq!(svc.schedule(&req("192.0.2.1:2", 0), &[sa("10.0.9.9:80")], false).unwrap().dest.addr, sa("10.0.1.1:80"));
    t.apply(Command::SetQuorum { service: vip(), lost: false }).unwrap();
    assert_eq!(svc.schedule(&req("192.0.2.1:3", 0), &[], false).unwrap().dest.addr, sa("10.0.1.1:80"));
}

fn add_server_with(addr: &str, method: ForwardingMethod) -> Command {
    let mut s = RealServerSettings::new(sa(addr));
    s.method = method;
    Command::AddServer { service: vip(), server: s }
}

#[test]
fn every_method_is_accepted_and_the_first_real_server_decides_the_engine() {
    use ForwardingMethod::*;
    let mut t = rr_table(&[]);
    assert_eq!(t.model().services[&vip()].engine(), Engine::Proxy, "no real servers yet: the proxy engine");
    // Packet methods mix in one service, as in IPVS.
    for (addr, m) in [("10.0.1.1:80", Gate), ("10.0.1.2:80", Masq), ("10.0.1.3:80", Tunnel)] {
        t.apply(add_server_with(addr, m)).unwrap();
    }
    assert_eq!(t.model().services[&vip()].engine(), Engine::Packet);
    assert_eq!(t.service(&vip()).unwrap().engine(), Engine::Packet);
    // Full NAT cannot join them: the error names the service and both real servers.
    let e = t.apply(add_server_with("10.0.1.4:80", FullNat)).unwrap_err();
    assert_eq!(
        e,
        CommandError::MixedEngines(Box::new(EngineConflict {
            service: vip(),
            addr: sa("10.0.1.4:80"),
            method: FullNat,
            other: sa("10.0.1.1:80"),
            other_method: Gate
        }))
    );
    let msg = e.to_string();
    assert!(msg.contains("tcp 10.0.0.1:80") && msg.contains("10.0.1.4:80") && msg.contains("fullnat"), "{msg}");
    // Nor can an edit turn one of them to full NAT, while the edit of a lone server may.
    let mut edited = RealServerSettings::new(sa("10.0.1.2:80"));
    edited.method = FullNat;
    let edit = Command::EditServer { service: vip(), server: edited };
    assert!(matches!(t.apply(edit.clone()).unwrap_err(), CommandError::MixedEngines(_)));
    for a in ["10.0.1.1:80", "10.0.1.3:80"] {
        t.apply(Command::DeleteServer { service: vip(), addr: sa(a) }).unwrap();
    }
    t.apply(edit).unwrap();
    assert_eq!(t.model().services[&vip()].engine(), Engine::Proxy);
    assert_eq!(t.service(&vip()).unwrap().engine(), Engine::Proxy);
    // A missing server is still "no such real server", whatever its method.
    let mut ghost = RealServerSettings::new(sa("10.9.9.9:80"));
    ghost.method = Gate;
    let e = t.apply(Command::EditServer { service: vip(), server: ghost }).unwrap_err();
    assert!(matches!(e, CommandError::NoServer { .. }));
    // A fullnat service refuses a packet method the same way, in a batch all or nothing.
    let e = t.apply_batch(&[add_server_with("10.0.1.5:80", FullNat), add_server_with("10.0.1.6:80", Tunnel)]);
    assert_eq!(e.unwrap_err().index, 1);
    assert_eq!(t.model().services[&vip()].servers.len(), 1);
}

#[test]
fn an_adopted_connection_is_accounted_and_binds_its_clients_template() {
    let mut t = ServiceTable::new(1);
    let settings = ServiceSettings {
        scheduler: SchedulerKind::Rr,
        persistence: Some(Persistence::new(60, Netmask::host(sa("10.1.0.1:1").ip()))),
        ..Default::default()
    };
    t.apply_batch(&[add_service(settings), add_server("10.0.1.1:80", 1), add_server("10.0.1.2:80", 1)]).unwrap();
    let svc = t.service(&vip()).unwrap().clone();
    let second = svc.dests()[1].clone();
    let b = svc.adopt(sa("10.1.0.1:5000"), second.addr, 0).expect("a real server of the service");
    assert_eq!(second.inactive(), 1);
    // The client's next connection follows its template to the adopted real server.
    for port in [5001, 5002] {
        let next = svc.schedule(&req(&format!("10.1.0.1:{port}"), 10), &[], false).unwrap();
        assert_eq!(next.dest.addr, second.addr);
    }
    drop(b);
    assert!(svc.adopt(sa("10.1.0.1:5003"), sa("10.0.9.9:80"), 20).is_none(), "not a real server of it");
}

#[test]
fn an_sctp_service_is_the_packet_engine_s_and_refuses_full_nat() {
    use ForwardingMethod::*;
    let key = ServiceKey::new(rvs_core::Protocol::Sctp, sa("10.0.0.1:80"));
    assert_eq!("SCTP".parse::<rvs_core::Protocol>().unwrap(), rvs_core::Protocol::Sctp);
    assert_eq!(rvs_core::Protocol::from_number(132), Some(rvs_core::Protocol::Sctp));
    assert!(!rvs_core::Protocol::Sctp.proxied() && rvs_core::Protocol::Udp.proxied());
    let mut t = ServiceTable::new(1);
    t.apply(Command::AddService { key, settings: ServiceSettings::default() }).unwrap();
    assert_eq!(t.service(&key).unwrap().engine(), Engine::Packet, "no real servers, yet the packet engine's");
    let server = |addr: &str, method| {
        let mut s = RealServerSettings::new(sa(addr));
        s.method = method;
        Command::AddServer { service: key, server: s }
    };
    let e = t.apply(server("10.0.1.1:80", FullNat)).unwrap_err();
    assert_eq!(e, CommandError::SctpNeedsPacketEngine { service: key, addr: sa("10.0.1.1:80") });
    let msg = e.to_string();
    assert!(msg.contains("sctp 10.0.0.1:80") && msg.contains("packet engine") && msg.contains("fullnat"), "{msg}");
    for (addr, m) in [("10.0.1.1:80", Gate), ("10.0.1.2:80", Tunnel), ("10.0.1.3:8080", Masq)] {
        t.apply(server(addr, m)).unwrap();
    }
    assert_eq!(t.model().services[&key].engine(), Engine::Packet);
}

fn vip_addr() -> std::net::SocketAddr {
    sa("10.0.0.1:80")
}

#[test]
fn a_synced_sip_template_keeps_its_call_on_its_real_server() {
    let key = ServiceKey::new(rvs_core::Protocol::Udp, sa("10.0.0.1:5060"));
    let mut t = ServiceTable::new(1);
    let settings = ServiceSettings {
        scheduler: SchedulerKind::Rr,
        persistence: Some(
            Persistence::new(60, Netmask::host(sa("10.1.0.1:1").ip())).with_engine(Some(PersistenceEngine::Sip)),
        ),
        ..Default::default()
    };
    let server = |addr: &str| Command::AddServer { service: key, server: RealServerSettings::new(sa(addr)) };
    t.apply_batch(&[Command::AddService { key, settings }, server("10.0.1.1:5060"), server("10.0.1.2:5060")]).unwrap();
    let svc = t.service(&key).unwrap().clone();
    let (client, second) = (sa("10.1.0.1:5060"), sa("10.0.1.2:5060"));
    // Not this service's engine (none, or another name): refused.
    assert!(!svc.restore_template(client.ip(), None, second, 0, 60_000));
    assert!(!svc.restore_template(client.ip(), Some(("other", b"call-a")), second, 0, 60_000));
    assert!(svc.restore_template(client.ip(), Some(("sip", b"call-a")), second, 0, 60_000));
    let msg = |id: &str| format!("INVITE sip:b@example.com SIP/2.0\r\nCall-ID: {id}\r\n\r\n").into_bytes();
    let r = SchedRequest { client, destination: sa("10.0.0.1:5060"), now_ms: 10 };
    // rr's first pick would be the first real server: the Call-ID's template wins.
    let b = svc.schedule_datagram(&r, &msg("call-a"), false).unwrap().unwrap();
    assert_eq!(b.dest.addr, second);
    let (tpl, _) = svc.templates(10).into_iter().find(|(t, _)| t.pe_data.as_deref() == Some(&b"call-a"[..])).unwrap();
    assert_eq!(tpl.dest, second);
    // Another call from the same client is rr's.
    let other = svc.schedule_datagram(&r, &msg("call-b"), false).unwrap().unwrap();
    assert_eq!(other.dest.addr, sa("10.0.1.1:5060"));
}
