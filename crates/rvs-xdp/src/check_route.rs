//! The road of the health checks through the VIP: a veth pair `rvs-hc0`/`rvs-hc1` (ARP off on
//! rvs-hc0, so the kernel sends to a VIP there without resolving it), policy routing that sends
//! packets with rvs's check mark out of rvs-hc0 (`ip rule fwmark 0x52560000/0xffff0000 lookup
//! 21078`, a default route via rvs-hc0 in table 21078, IPv4 and IPv6), and the check program on
//! rvs-hc0's egress, which sends each packet to its real server as the engine sends a flow's.

use std::net::IpAddr;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use rvs_bpf::tc_check::{CheckPathEntry, CheckProgram, CheckProgramError, MARK_BASE, MARK_MASK};

/// The device the check packets are routed to (its TC egress program sends them on).
pub const DEVICE: &str = "rvs-hc0";
/// Its veth peer (nothing arrives there: the program redirects every packet of ours).
pub const PEER: &str = "rvs-hc1";
/// The routing table (and rule preference) of the check marks.
pub const TABLE: u32 = 21078;
/// The check device's MTU: room for the tunnel's outer IPv6 header on a 1500-byte link.
const MTU: u32 = 1400;

#[derive(Debug, thiserror::Error)]
pub enum CheckRouteError {
    #[error("`ip {args}`: {why}")]
    Ip { args: String, why: String },
    #[error(transparent)]
    Program(#[from] CheckProgramError),
}

/// The check device, its routing and its program; removed when dropped.
#[derive(Debug)]
pub struct CheckRoute {
    program: Mutex<CheckProgram>,
}

fn ip(args: &[&str]) -> Result<(), CheckRouteError> {
    let fail = |why: String| CheckRouteError::Ip { args: args.join(" "), why };
    let out = Command::new("ip").args(args).output().map_err(|e| fail(format!("{e} (iproute2 is needed)")))?;
    if !out.status.success() {
        return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

/// `0x52560000/0xffff0000`
fn fwmark() -> String {
    format!("{MARK_BASE:#x}/{MARK_MASK:#x}")
}

impl CheckRoute {
    /// Sets it all up (after removing what an rvsd that did not stop cleanly left).
    pub fn install() -> Result<Self, CheckRouteError> {
        remove();
        let table = TABLE.to_string();
        let mtu = MTU.to_string();
        ip(&["link", "add", DEVICE, "type", "veth", "peer", "name", PEER])?;
        let route = || -> Result<CheckProgram, CheckRouteError> {
            ip(&["link", "set", DEVICE, "arp", "off", "mtu", &mtu, "up"])?;
            ip(&["link", "set", PEER, "up"])?;
            ip(&["-4", "rule", "add", "pref", &table, "fwmark", &fwmark(), "lookup", &table])?;
            ip(&["-4", "route", "add", "default", "dev", DEVICE, "table", &table])?;
            // IPv6 may be off in this namespace: then only IPv4 checks go through the VIP.
            let v6 = ip(&["-6", "rule", "add", "pref", &table, "fwmark", &fwmark(), "lookup", &table])
                .and_then(|()| ip(&["-6", "route", "add", "default", "dev", DEVICE, "table", &table]));
            if let Err(e) = v6 {
                tracing::warn!("health checks through the VIP: no IPv6 route for them ({e})");
            }
            let mut program = CheckProgram::load()?;
            program.attach_egress(DEVICE)?;
            Ok(program)
        };
        match route() {
            Ok(program) => Ok(Self { program: Mutex::new(program) }),
            Err(e) => {
                remove();
                Err(e)
            }
        }
    }

    fn program(&self) -> MutexGuard<'_, CheckProgram> {
        self.program.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The path of the real server in `slot`: gate, or tunnel from `tunnel_src`.
    pub fn set(&self, slot: u32, real_server: IpAddr, tunnel_src: Option<IpAddr>) -> Result<(), CheckRouteError> {
        let entry = match tunnel_src {
            None => CheckPathEntry::gate(real_server),
            Some(src) => CheckPathEntry::tunnel(real_server, src),
        };
        Ok(self.program().set_path(slot, &entry)?)
    }

    /// Forgets the path of `slot`.
    pub fn clear(&self, slot: u32) -> Result<(), CheckRouteError> {
        Ok(self.program().set_path(slot, &CheckPathEntry::default())?)
    }

    /// The program's counters.
    pub fn counters(&self) -> Option<rvs_bpf::tc_check::CheckCounters> {
        self.program().counters().ok()
    }
}

impl Drop for CheckRoute {
    fn drop(&mut self) {
        remove();
    }
}

/// The interface the main table routes `to` out of (`ip -o route get`), if any.
fn route_dev(to: IpAddr) -> Option<String> {
    let out = Command::new("ip").args(["-o", "route", "get", &to.to_string()]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    words.by_ref().find(|w| *w == "dev")?;
    words.next().map(str::to_string)
}

fn rp_filter(dev: &str) -> u32 {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{dev}/rp_filter"))
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Why reverse-path filtering would drop the replies to a check of `real_server` through
/// `vip`, or `None`. The replies come from the VIP (IPv4 only: IPv6 has no rp_filter) on the
/// interface the director reaches the real server by; with `rp_filter` on there (1 strict, 2
/// loose, the higher of `all` and the interface's) the kernel keeps them only when the main
/// table routes the VIP (out of that interface, in strict mode).
pub fn reply_filtered(vip: IpAddr, real_server: IpAddr) -> Option<String> {
    if !vip.is_ipv4() {
        return None;
    }
    let dev = route_dev(real_server)?;
    let rp = rp_filter("all").max(rp_filter(&dev));
    if rp == 0 {
        return None;
    }
    let fix = format!("route {vip} out of {dev} in the main table, or set net.ipv4.conf.{{all,{dev}}}.rp_filter=0");
    match route_dev(vip) {
        None => Some(format!(
            "rp_filter is {rp} on {dev} and the main table has no route to {vip}: the replies would be dropped; {fix}"
        )),
        Some(other) if rp == 1 && other != dev => Some(format!(
            "rp_filter is 1 (strict) on {dev} and the main table routes {vip} out of {other}: the replies would be \
             dropped; {fix}"
        )),
        Some(_) => None,
    }
}

/// Removes the check device (its routes go with it) and the rules; true when something was
/// there. Nothing there is not an error.
pub fn remove() -> bool {
    let table = TABLE.to_string();
    let mut any = ip(&["link", "del", DEVICE]).is_ok();
    for family in ["-4", "-6"] {
        while ip(&[family, "rule", "del", "pref", &table, "fwmark", &fwmark(), "lookup", &table]).is_ok() {
            any = true;
        }
    }
    any
}
