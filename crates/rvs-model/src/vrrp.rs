//! VRRP instances as configured (`[[vrrp]]`): the virtual router's interface, VRID, priority,
//! advertisement interval, version, virtual addresses, preemption, unicast peers, sync group,
//! tracking and notify commands, with the checks that make one valid. Plain data: rvs-vrrp runs it.

use std::net::IpAddr;

use rvs_core::ServiceAddr;

use crate::health::NotifyCommand;

/// The VRRP protocol version an instance speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VrrpVersion {
    /// RFC 3768: IPv4 only, advertisement interval in whole seconds.
    V2,
    /// RFC 5798: IPv4 and IPv6, interval in centiseconds.
    #[default]
    V3,
}

/// Where a running VRRP instance stands, as the director's model carries it (run-time state,
/// reached through the apply path, so data planes can react to a takeover).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VrrpRole {
    Backup,
    Master,
    Fault,
    Stopped,
}

impl VrrpRole {
    pub fn as_str(self) -> &'static str {
        match self {
            VrrpRole::Backup => "backup",
            VrrpRole::Master => "master",
            VrrpRole::Fault => "fault",
            VrrpRole::Stopped => "stopped",
        }
    }
}

/// Whether a backup of higher priority takes over from a running master of lower priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preempt {
    /// keepalived's `nopreempt`: a running master keeps the role until it fails.
    No,
    /// Preempt, after `delay_ms` (keepalived's `preempt_delay`; 0: at once).
    Yes { delay_ms: u64 },
}

impl Default for Preempt {
    fn default() -> Self {
        Preempt::Yes { delay_ms: 0 }
    }
}

/// A tracked interface (keepalived's `track_interface`) and its weight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackInterface {
    pub interface: String,
    pub weight: i32,
}

/// A tracked virtual service: up while it has quorum.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackService {
    pub service: ServiceAddr,
    pub weight: i32,
}

/// Commands run on entering each state (keepalived's `notify_master` and the others).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VrrpNotify {
    pub master: Option<NotifyCommand>,
    pub backup: Option<NotifyCommand>,
    pub fault: Option<NotifyCommand>,
    pub stop: Option<NotifyCommand>,
}

/// How the master announces its addresses (gratuitous ARP, unsolicited neighbour
/// advertisements): `repeat` packets per address on becoming master, a second burst after
/// `delay_ms` (keepalived's `garp_master_delay`), and every `refresh_ms` after that if set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Announcements {
    pub repeat: u32,
    pub delay_ms: Option<u64>,
    pub refresh_ms: Option<u64>,
}

impl Default for Announcements {
    fn default() -> Self {
        Self { repeat: 5, delay_ms: Some(5_000), refresh_ms: None }
    }
}

/// One `[[vrrp]]` table, validated by [`VrrpInstanceSpec::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpInstanceSpec {
    /// The instance's name (keepalived's `vrrp_instance NAME`), unique in the file.
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// The configured priority, 1 to 255 (255: the address owner).
    pub priority: u8,
    pub advert_interval_ms: u32,
    pub version: VrrpVersion,
    pub virtual_addresses: Vec<IpAddr>,
    pub preempt: Preempt,
    /// Empty: multicast (224.0.0.18 / ff02::12).
    pub unicast_peers: Vec<IpAddr>,
    pub unicast_source: Option<IpAddr>,
    pub sync_group: Option<String>,
    pub track_interfaces: Vec<TrackInterface>,
    pub track_services: Vec<TrackService>,
    pub notify: VrrpNotify,
    pub announcements: Announcements,
}

/// Largest v3 interval: 12 bits of centiseconds.
pub const MAX_V3_INTERVAL_MS: u32 = 4095 * 10;
/// Largest v2 interval: 8 bits of seconds.
pub const MAX_V2_INTERVAL_MS: u32 = 255 * 1000;
/// Addresses one advertisement can carry (the count is one octet).
pub const MAX_VIRTUAL_ADDRESSES: usize = 255;
/// Largest tracking weight either way (keepalived's range).
pub const MAX_TRACK_WEIGHT: i32 = 254;

/// Why an instance spec is refused; each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VrrpSpecError {
    #[error("interface: {0:?} is not an interface name (1 to 15 bytes, no '/', ':' or space)")]
    Interface(String),
    #[error("vrid: 0 is not a virtual router id (1 to 255)")]
    Vrid,
    #[error("priority: 0 is reserved for a master that stops (1 to 255)")]
    Priority,
    #[error("advert_interval_ms: {0} must be from 10 to 40950 and a multiple of 10 (centiseconds) for version 3")]
    IntervalV3(u32),
    #[error("advert_interval_ms: {0} must be whole seconds from 1000 to 255000 for version 2")]
    IntervalV2(u32),
    #[error("virtual_addresses: at least one address")]
    NoAddresses,
    #[error("virtual_addresses: at most {MAX_VIRTUAL_ADDRESSES} addresses")]
    TooManyAddresses,
    #[error("virtual_addresses: {0} is not of the family of the first address (one family per instance)")]
    MixedFamilies(IpAddr),
    #[error("virtual_addresses: {0} is IPv6, which version 2 does not carry")]
    V2Ipv6(IpAddr),
    #[error("virtual_addresses: {0} is named twice")]
    DuplicateAddress(IpAddr),
    #[error("unicast_peers: {0} is not of the family of the virtual addresses")]
    PeerFamily(IpAddr),
    #[error("unicast_source: {0} is not of the family of the virtual addresses")]
    SourceFamily(IpAddr),
    #[error("unicast_source needs unicast_peers")]
    SourceWithoutPeers,
    #[error("track weight {0} is outside -254..=254")]
    Weight(i32),
}

/// Checks an interface name as the kernel would take it.
pub fn valid_interface_name(n: &str) -> bool {
    !n.is_empty() && n.len() < 16 && n != "." && n != ".." && !n.contains(['/', ' ', ':', '\0'])
}

impl VrrpInstanceSpec {
    /// Checks what one instance can check alone (uniqueness across instances is the file's).
    pub fn validate(&self) -> Result<(), VrrpSpecError> {
        if !valid_interface_name(&self.interface) {
            return Err(VrrpSpecError::Interface(self.interface.clone()));
        }
        if self.vrid == 0 {
            return Err(VrrpSpecError::Vrid);
        }
        if self.priority == 0 {
            return Err(VrrpSpecError::Priority);
        }
        let ms = self.advert_interval_ms;
        match self.version {
            VrrpVersion::V3 if !(10..=MAX_V3_INTERVAL_MS).contains(&ms) || !ms.is_multiple_of(10) => {
                return Err(VrrpSpecError::IntervalV3(ms))
            }
            VrrpVersion::V2 if !(1000..=MAX_V2_INTERVAL_MS).contains(&ms) || !ms.is_multiple_of(1000) => {
                return Err(VrrpSpecError::IntervalV2(ms))
            }
            _ => {}
        }
        let first = *self.virtual_addresses.first().ok_or(VrrpSpecError::NoAddresses)?;
        if self.virtual_addresses.len() > MAX_VIRTUAL_ADDRESSES {
            return Err(VrrpSpecError::TooManyAddresses);
        }
        for (i, a) in self.virtual_addresses.iter().enumerate() {
            if a.is_ipv4() != first.is_ipv4() {
                return Err(VrrpSpecError::MixedFamilies(*a));
            }
            if self.version == VrrpVersion::V2 && a.is_ipv6() {
                return Err(VrrpSpecError::V2Ipv6(*a));
            }
            if self.virtual_addresses[..i].contains(a) {
                return Err(VrrpSpecError::DuplicateAddress(*a));
            }
        }
        if let Some(p) = self.unicast_peers.iter().find(|p| p.is_ipv4() != first.is_ipv4()) {
            return Err(VrrpSpecError::PeerFamily(*p));
        }
        match self.unicast_source {
            Some(s) if s.is_ipv4() != first.is_ipv4() => return Err(VrrpSpecError::SourceFamily(s)),
            Some(_) if self.unicast_peers.is_empty() => return Err(VrrpSpecError::SourceWithoutPeers),
            _ => {}
        }
        let weights =
            self.track_interfaces.iter().map(|t| t.weight).chain(self.track_services.iter().map(|t| t.weight));
        for w in weights {
            if !(-MAX_TRACK_WEIGHT..=MAX_TRACK_WEIGHT).contains(&w) {
                return Err(VrrpSpecError::Weight(w));
            }
        }
        Ok(())
    }

    /// Whether the instance's addresses are IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.virtual_addresses.first().is_some_and(IpAddr::is_ipv6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VrrpInstanceSpec {
        VrrpInstanceSpec {
            name: "VI_1".into(),
            interface: "eth0".into(),
            vrid: 51,
            priority: 100,
            advert_interval_ms: 1000,
            version: VrrpVersion::V3,
            virtual_addresses: vec!["198.18.0.10".parse().unwrap()],
            preempt: Preempt::default(),
            unicast_peers: vec![],
            unicast_source: None,
            sync_group: None,
            track_interfaces: vec![],
            track_services: vec![],
            notify: VrrpNotify::default(),
            announcements: Announcements::default(),
        }
    }

    #[test]
    fn a_plain_instance_is_valid() {
        assert_eq!(spec().validate(), Ok(()));
    }

    #[test]
    fn refusals() {
        let check = |f: &dyn Fn(&mut VrrpInstanceSpec), want: VrrpSpecError| {
            let mut s = spec();
            f(&mut s);
            assert_eq!(s.validate(), Err(want));
        };
        check(&|s| s.vrid = 0, VrrpSpecError::Vrid);
        check(&|s| s.priority = 0, VrrpSpecError::Priority);
        check(&|s| s.advert_interval_ms = 15, VrrpSpecError::IntervalV3(15));
        check(&|s| s.advert_interval_ms = 50_000, VrrpSpecError::IntervalV3(50_000));
        check(
            &|s| {
                s.version = VrrpVersion::V2;
                s.advert_interval_ms = 1500;
            },
            VrrpSpecError::IntervalV2(1500),
        );
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        check(&|s| s.virtual_addresses.push(v6), VrrpSpecError::MixedFamilies(v6));
        check(
            &|s| {
                s.version = VrrpVersion::V2;
                s.virtual_addresses = vec![v6];
            },
            VrrpSpecError::V2Ipv6(v6),
        );
        check(&|s| s.unicast_peers = vec![v6], VrrpSpecError::PeerFamily(v6));
        check(&|s| s.unicast_source = Some("198.18.0.1".parse().unwrap()), VrrpSpecError::SourceWithoutPeers);
        check(
            &|s| s.track_interfaces.push(TrackInterface { interface: "eth1".into(), weight: 300 }),
            VrrpSpecError::Weight(300),
        );
        check(&|s| s.interface = "a/b".into(), VrrpSpecError::Interface("a/b".into()));
    }
}
