//! `[[vrrp]]` tables: a full instance read into its spec, the defaults, and each refusal named
//! by file, line and field.

use std::path::Path;

use rvs_config::Config;
use rvs_model::vrrp::{Preempt, VrrpVersion};

fn parse(text: &str) -> Result<Config, rvs_config::ConfigError> {
    Config::parse(text, Path::new("rvsd.toml"))
}

fn err(text: &str) -> String {
    parse(text).expect_err("must be refused").to_string()
}

const SERVICE: &str =
    "[[service]]\naddress = \"198.18.1.1:80\"\n[[service.real_server]]\naddress = \"198.18.2.1:80\"\n";

#[test]
fn a_full_instance_is_read() {
    let c = parse(&format!(
        r#"{SERVICE}
[[vrrp]]
name = "web"
interface = "eth0"
vrid = 51
priority = 150
advert_interval_ms = 100
virtual_addresses = ["198.18.1.1", "198.18.1.2"]
preempt_delay_ms = 30000
unicast_peers = ["198.18.0.2"]
unicast_source = "198.18.0.1"
sync_group = "G1"
notify_master = "/usr/local/bin/vrrp-notify master 'web 1'"
garp_repeat = 3
garp_refresh_ms = 60000
track_interface = [{{ interface = "eth1", weight = -20 }}, {{ interface = "eth2" }}]
track_service = [{{ address = "198.18.1.1:80", weight = 10 }}]
"#
    ))
    .unwrap();
    let v = &c.vrrp[0];
    assert_eq!((v.name.as_str(), v.interface.as_str(), v.vrid, v.priority), ("web", "eth0", 51, 150));
    assert_eq!((v.advert_interval_ms, v.version), (100, VrrpVersion::V3));
    assert_eq!(v.virtual_addresses.len(), 2);
    assert_eq!(v.preempt, Preempt::Yes { delay_ms: 30_000 });
    assert_eq!(v.unicast_peers, vec!["198.18.0.2".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(v.sync_group.as_deref(), Some("G1"));
    assert_eq!(v.notify.master.as_ref().unwrap().args, ["master", "web 1"]);
    assert_eq!((v.announcements.repeat, v.announcements.refresh_ms), (3, Some(60_000)));
    assert_eq!(v.track_interfaces.iter().map(|t| t.weight).collect::<Vec<_>>(), [-20, 0]);
    assert_eq!(v.track_services[0].service.addr.to_string(), "198.18.1.1:80");
}

#[test]
fn defaults_and_version_2() {
    let c = parse(
        "[[vrrp]]\ninterface = \"eth0\"\nvrid = 7\nvirtual_addresses = [\"198.18.1.1\"]\n\
         [[vrrp]]\ninterface = \"eth0\"\nvrid = 8\nversion = 2\npreempt = false\nadvert_interval_ms = 3000\nvirtual_addresses = [\"198.18.1.2\"]\n",
    )
    .unwrap();
    let (a, b) = (&c.vrrp[0], &c.vrrp[1]);
    assert_eq!(
        (a.name.as_str(), a.priority, a.advert_interval_ms, a.version),
        ("VI_eth0_7", 100, 1000, VrrpVersion::V3)
    );
    assert_eq!(a.preempt, Preempt::Yes { delay_ms: 0 });
    assert_eq!((b.version, b.preempt, b.advert_interval_ms), (VrrpVersion::V2, Preempt::No, 3000));
}

#[test]
fn a_file_without_vrrp_has_none() {
    assert!(parse(SERVICE).unwrap().vrrp.is_empty());
}

#[test]
fn the_same_vrid_twice_on_one_interface_is_refused() {
    let one = |vrid, iface, addr| {
        format!("[[vrrp]]\ninterface = \"{iface}\"\nvrid = {vrid}\nvirtual_addresses = [\"{addr}\"]\n")
    };
    let e = err(&format!("{}{}", one(5, "eth0", "198.18.1.1"), one(5, "eth0", "198.18.1.2")));
    assert!(e.starts_with("rvsd.toml:7:8: vrrp[1].vrid: VRID 5 is already instance VI_eth0_5's on eth0"), "{e}");
    // Another interface, or the other family, is another virtual router.
    assert!(parse(&format!("{}{}", one(5, "eth0", "198.18.1.1"), one(5, "eth1", "198.18.1.2"))).is_ok());
    let named = |n| {
        format!("[[vrrp]]\nname = \"{n}\"\ninterface = \"eth0\"\nvrid = 5\nvirtual_addresses = [\"2001:db8::1\"]\n")
    };
    assert!(parse(&format!("{}{}", one(5, "eth0", "198.18.1.1"), named("v6"))).is_ok());
    let e = err(&format!("{}{}", named("x"), named("x").replace("vrid = 5", "vrid = 6")));
    assert!(e.contains("vrrp[1].name: x names another instance"), "{e}");
}

#[test]
fn version_2_refuses_ipv6_and_intervals_that_are_not_whole_seconds() {
    let e = err("[[vrrp]]\ninterface = \"eth0\"\nvrid = 1\nversion = 2\nvirtual_addresses = [\"2001:db8::1\"]\n");
    assert!(e.starts_with("rvsd.toml:5:22: vrrp[0].virtual_addresses:"), "{e}");
    assert!(e.contains("2001:db8::1 is IPv6, which version 2 does not carry"), "{e}");
    let e = err(
        "[[vrrp]]\ninterface = \"eth0\"\nvrid = 1\nversion = 2\nadvert_interval_ms = 1500\nvirtual_addresses = [\"198.18.1.1\"]\n",
    );
    assert!(e.starts_with("rvsd.toml:5:22: vrrp[0].advert_interval_ms: 1500 must be whole seconds"), "{e}");
    // Version 3 takes centiseconds.
    let e = err(
        "[[vrrp]]\ninterface = \"eth0\"\nvrid = 1\nadvert_interval_ms = 105\nvirtual_addresses = [\"198.18.1.1\"]\n",
    );
    assert!(e.contains("vrrp[0].advert_interval_ms: 105 must be from 10 to 40950 and a multiple of 10"), "{e}");
}

#[test]
fn priorities_and_vrids_out_of_range_are_refused() {
    for (field, value, line) in [("priority", "0", 4), ("priority", "256", 4), ("vrid", "0", 3), ("vrid", "300", 3)] {
        let (vrid, prio) = if field == "vrid" { (value, "100") } else { ("1", value) };
        let e = err(&format!(
            "[[vrrp]]\ninterface = \"eth0\"\nvrid = {vrid}\npriority = {prio}\nvirtual_addresses = [\"198.18.1.1\"]\n"
        ));
        let want = format!("rvsd.toml:{line}:");
        assert!(e.starts_with(&want) && e.contains(&format!("vrrp[0].{field}: {value} is out of range")), "{e}");
    }
}

#[test]
fn unknown_fields_and_other_mistakes_are_refused() {
    let e = err("[[vrrp]]\ninterface = \"eth0\"\nvrid = 1\nvirtual_addresses = [\"198.18.1.1\"]\nadvert_int = 1\n");
    assert!(e.starts_with("rvsd.toml:5:1:") && e.contains("unknown field `advert_int`"), "{e}");
    let e = err("[[vrrp]]\ninterface = \"eth0\"\nvrid = 1\n");
    assert!(e.contains("vrrp[0].virtual_addresses: at least one address"), "{e}");
    let e = err("[[vrrp]]\ninterface = \"eth0\"\nvrid = 1\nvirtual_addresses = [\"198.18.1.1\", \"2001:db8::1\"]\n");
    assert!(e.contains("2001:db8::1 is not of the family of the first address"), "{e}");
    let e = err("[[vrrp]]\ninterface = \"eth0\"\nvrid = 1\npreempt = false\npreempt_delay_ms = 5\nvirtual_addresses = [\"198.18.1.1\"]\n");
    assert!(e.starts_with("rvsd.toml:5:20: vrrp[0].preempt_delay_ms: needs preempt"), "{e}");
    let e = err("[[vrrp]]\ninterface = \"eth0\"\nvrid = 1\nvirtual_addresses = [\"198.18.1.1\"]\ntrack_service = [{ address = \"198.18.1.9:80\" }]\n");
    assert!(e.contains("vrrp[0].track_service[0].address:"), "{e}");
    assert!(e.contains("198.18.1.9:80 is not a virtual service of this file"), "{e}");
    let e = err("[[vrrp]]\ninterface = \"eth0\"\nvrid = 1\nvirtual_addresses = [\"198.18.1.1\"]\ntrack_interface = [{ interface = \"eth1\", weight = 255 }]\n");
    assert!(e.contains("vrrp[0].track_interface[0].weight: 255 is out of range (-254 to 254)"), "{e}");
    let e = err("[[vrrp]]\ninterface = \"eth0\"\nvrid = 1\nvirtual_addresses = [\"198.18.1.1\"]\nunicast_source = \"198.18.0.1\"\n");
    assert!(e.starts_with("rvsd.toml:5:18: vrrp[0].unicast_source: unicast_source needs unicast_peers"), "{e}");
}

#[test]
fn the_readme_example_is_valid() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme.split("### Director failover (VRRP)").nth(1).expect("the README's VRRP section");
    let example = section.split("```toml\n").nth(1).and_then(|s| s.split("```").next()).unwrap();
    let c = parse(&format!("{SERVICE}{example}")).unwrap();
    assert_eq!((c.vrrp[0].vrid, c.vrrp[0].priority), (51, 150));
}
