//! The `[[vrrp]]` tables: each validated into rvs-model's `VrrpInstanceSpec` (errors placed at
//! the field at fault), then checked together: names unique, one VRID per interface and
//! family, tracked services among the file's virtual services.

use std::net::IpAddr;
use std::ops::Range;

use rvs_core::addr::parse_endpoint;
use rvs_core::{Protocol, ServiceAddr, ServiceKey};
use rvs_model::vrrp::{
    Announcements, Preempt, TrackInterface, TrackService, VrrpInstanceSpec, VrrpNotify, VrrpSpecError, VrrpVersion,
};
use serde::Deserialize;
use toml::Spanned;

use crate::error::Unplaced;
use crate::health::command;

/// A `[[vrrp]]` table as written. Numbers are read wide so that a value out of range is
/// refused with this file's message, not serde's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVrrp {
    name: Option<Spanned<String>>,
    interface: Spanned<String>,
    vrid: Spanned<i64>,
    priority: Option<Spanned<i64>>,
    advert_interval_ms: Option<Spanned<i64>>,
    version: Option<Spanned<i64>>,
    #[serde(default)]
    virtual_addresses: Vec<Spanned<String>>,
    preempt: Option<Spanned<bool>>,
    preempt_delay_ms: Option<Spanned<u64>>,
    #[serde(default)]
    unicast_peers: Vec<Spanned<String>>,
    unicast_source: Option<Spanned<String>>,
    sync_group: Option<Spanned<String>>,
    #[serde(default)]
    track_interface: Vec<Spanned<RawTrackInterface>>,
    #[serde(default)]
    track_service: Vec<Spanned<RawTrackService>>,
    notify_master: Option<Spanned<String>>,
    notify_backup: Option<Spanned<String>>,
    notify_fault: Option<Spanned<String>>,
    notify_stop: Option<Spanned<String>>,
    garp_repeat: Option<u32>,
    garp_delay_ms: Option<u64>,
    garp_refresh_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrackInterface {
    interface: Spanned<String>,
    weight: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrackService {
    address: Spanned<String>,
    protocol: Option<Spanned<String>>,
    weight: Option<Spanned<i64>>,
}

type Result<T> = std::result::Result<T, Unplaced>;

fn span<T>(s: &Spanned<T>) -> Option<Range<usize>> {
    Some(s.span())
}

fn ranged<T: TryFrom<i64>>(v: &Spanned<i64>, range: std::ops::RangeInclusive<i64>, field: String) -> Result<T> {
    let x = *v.get_ref();
    if !range.contains(&x) {
        return Err(Unplaced::new(
            span(v),
            field,
            format!("{x} is out of range ({} to {})", range.start(), range.end()),
        ));
    }
    T::try_from(x).map_err(|_| Unplaced::new(span(v), field, "out of range"))
}

/// A tracking weight (0, FAULT when down, if not set).
fn weight(v: &Option<Spanned<i64>>, field: String) -> Result<i32> {
    v.as_ref().map_or(Ok(0), |w| ranged(w, -254..=254, field))
}

fn address(v: &Spanned<String>, field: String) -> Result<IpAddr> {
    v.get_ref().trim().parse::<IpAddr>().map_err(|e| Unplaced::new(span(v), field, format!("`{}`: {e}", v.get_ref())))
}

/// Validates the `[[vrrp]]` tables; `services` are the file's virtual services.
pub(crate) fn vrrp(raw: &[Spanned<RawVrrp>], services: &[ServiceKey]) -> Result<Vec<VrrpInstanceSpec>> {
    let mut out: Vec<VrrpInstanceSpec> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let spec = instance(i, r, services)?;
        let v = r.get_ref();
        if let Some(o) =
            out.iter().find(|o| o.interface == spec.interface && o.vrid == spec.vrid && o.is_ipv6() == spec.is_ipv6())
        {
            return Err(Unplaced::new(
                span(&v.vrid),
                format!("vrrp[{i}].vrid"),
                format!("VRID {} is already instance {}'s on {}", spec.vrid, o.name, spec.interface),
            ));
        }
        if out.iter().any(|o| o.name == spec.name) {
            let at = v.name.as_ref().map_or_else(|| span(r), span);
            return Err(Unplaced::new(at, format!("vrrp[{i}].name"), format!("{} names another instance", spec.name)));
        }
        out.push(spec);
    }
    Ok(out)
}

fn instance(i: usize, r: &Spanned<RawVrrp>, services: &[ServiceKey]) -> Result<VrrpInstanceSpec> {
    let at = format!("vrrp[{i}]");
    let f = |name: &str| format!("{at}.{name}");
    let v = r.get_ref();
    let version = match v.version.as_ref().map(|x| (x, *x.get_ref())) {
        None | Some((_, 3)) => VrrpVersion::V3,
        Some((_, 2)) => VrrpVersion::V2,
        Some((x, n)) => return Err(Unplaced::new(span(x), f("version"), format!("{n}: use 2 or 3"))),
    };
    let vrid: u8 = ranged(&v.vrid, 1..=255, f("vrid"))?;
    let priority: u8 = match &v.priority {
        Some(p) => ranged(p, 1..=255, f("priority"))?,
        None => 100,
    };
    let advert_interval_ms: u32 = match &v.advert_interval_ms {
        Some(ms) => ranged(ms, 1..=i64::from(u32::MAX), f("advert_interval_ms"))?,
        None => 1000,
    };
    let virtual_addresses =
        v.virtual_addresses.iter().map(|a| address(a, f("virtual_addresses"))).collect::<Result<Vec<_>>>()?;
    let preempt = match (v.preempt.as_ref().map(|p| *p.get_ref()), &v.preempt_delay_ms) {
        (Some(false), Some(d)) => {
            return Err(Unplaced::new(span(d), f("preempt_delay_ms"), "needs preempt (it is false)"));
        }
        (Some(false), None) => Preempt::No,
        (_, d) => Preempt::Yes { delay_ms: d.as_ref().map_or(0, |d| *d.get_ref()) },
    };
    let unicast_peers = v.unicast_peers.iter().map(|a| address(a, f("unicast_peers"))).collect::<Result<Vec<_>>>()?;
    let unicast_source = v.unicast_source.as_ref().map(|a| address(a, f("unicast_source"))).transpose()?;
    let mut track_interfaces = Vec::new();
    for (j, t) in v.track_interface.iter().enumerate() {
        let t = t.get_ref();
        let weight = weight(&t.weight, format!("{at}.track_interface[{j}].weight"))?;
        if !rvs_model::vrrp::valid_interface_name(t.interface.get_ref()) {
            return Err(Unplaced::new(
                span(&t.interface),
                format!("{at}.track_interface[{j}].interface"),
                format!("{:?} is not an interface name", t.interface.get_ref()),
            ));
        }
        track_interfaces.push(TrackInterface { interface: t.interface.get_ref().clone(), weight });
    }
    let mut track_services = Vec::new();
    for (j, t) in v.track_service.iter().enumerate() {
        let t = t.get_ref();
        let tf = |name: &str| format!("{at}.track_service[{j}].{name}");
        let weight = weight(&t.weight, tf("weight"))?;
        let protocol = match &t.protocol {
            Some(p) => p.get_ref().parse::<Protocol>().map_err(|e| Unplaced::new(span(p), tf("protocol"), e))?,
            None => Protocol::Tcp,
        };
        let addr =
            parse_endpoint(t.address.get_ref(), None).map_err(|e| Unplaced::new(span(&t.address), tf("address"), e))?;
        let service = ServiceAddr { protocol, addr };
        if !services.contains(&service.into()) {
            return Err(Unplaced::new(
                span(&t.address),
                tf("address"),
                format!("{service} is not a virtual service of this file"),
            ));
        }
        track_services.push(TrackService { service, weight });
    }
    let defaults = Announcements::default();
    let spec = VrrpInstanceSpec {
        name: v.name.as_ref().map_or_else(|| format!("VI_{}_{vrid}", v.interface.get_ref()), |n| n.get_ref().clone()),
        interface: v.interface.get_ref().clone(),
        vrid,
        priority,
        advert_interval_ms,
        version,
        virtual_addresses,
        preempt,
        unicast_peers,
        unicast_source,
        sync_group: v.sync_group.as_ref().map(|g| g.get_ref().clone()),
        track_interfaces,
        track_services,
        notify: VrrpNotify {
            master: command(&v.notify_master, &f("notify_master"))?,
            backup: command(&v.notify_backup, &f("notify_backup"))?,
            fault: command(&v.notify_fault, &f("notify_fault"))?,
            stop: command(&v.notify_stop, &f("notify_stop"))?,
        },
        announcements: Announcements {
            repeat: v.garp_repeat.unwrap_or(defaults.repeat),
            delay_ms: match v.garp_delay_ms {
                Some(0) => None,
                Some(d) => Some(d),
                None => defaults.delay_ms,
            },
            refresh_ms: v.garp_refresh_ms.filter(|r| *r > 0),
        },
    };
    spec.validate().map_err(|e| place(&at, v, r, e))?;
    Ok(spec)
}

/// Puts a spec's refusal at the field it names.
fn place(at: &str, v: &RawVrrp, whole: &Spanned<RawVrrp>, e: VrrpSpecError) -> Unplaced {
    let addr_at = |a: &IpAddr, list: &[Spanned<String>]| {
        list.iter().find(|s| s.get_ref().trim().parse::<IpAddr>().ok().as_ref() == Some(a)).and_then(span)
    };
    let (sp, field) = match &e {
        VrrpSpecError::Interface(_) => (span(&v.interface), "interface"),
        VrrpSpecError::Vrid => (span(&v.vrid), "vrid"),
        VrrpSpecError::Priority => (v.priority.as_ref().and_then(span), "priority"),
        VrrpSpecError::IntervalV3(_) | VrrpSpecError::IntervalV2(_) => {
            (v.advert_interval_ms.as_ref().and_then(span).or(v.version.as_ref().and_then(span)), "advert_interval_ms")
        }
        VrrpSpecError::NoAddresses | VrrpSpecError::TooManyAddresses => {
            (v.virtual_addresses.first().and_then(span).or_else(|| span(whole)), "virtual_addresses")
        }
        VrrpSpecError::MixedFamilies(a) | VrrpSpecError::V2Ipv6(a) | VrrpSpecError::DuplicateAddress(a) => {
            let list = &v.virtual_addresses;
            // The second of a duplicate is at fault.
            let sp = if matches!(e, VrrpSpecError::DuplicateAddress(_)) {
                list.iter()
                    .filter(|s| s.get_ref().trim().parse::<IpAddr>().ok().as_ref() == Some(a))
                    .nth(1)
                    .and_then(span)
            } else {
                addr_at(a, list)
            };
            (sp, "virtual_addresses")
        }
        VrrpSpecError::PeerFamily(a) => (addr_at(a, &v.unicast_peers), "unicast_peers"),
        VrrpSpecError::SourceFamily(_) | VrrpSpecError::SourceWithoutPeers => {
            (v.unicast_source.as_ref().and_then(span), "unicast_source")
        }
        VrrpSpecError::Weight(_) => (span(whole), "track"),
    };
    // The spec's message starts with its field's name; the placed error names it with the path.
    let message = e.to_string();
    let message = message.strip_prefix(&format!("{field}: ")).unwrap_or(&message).to_string();
    Unplaced::new(sp.or_else(|| span(whole)), format!("{at}.{field}"), message)
}
