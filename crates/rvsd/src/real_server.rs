//! `rvsd real-server`: sets up (or checks, or undoes) the machine it runs on as a real server
//! behind a director that forwards by direct routing (`dr`, IPVS's -g) or IP-in-IP tunnel
//! (`tunnel`, -i). No director needs to run; everything is in the network namespace the
//! command runs in.
//!
//! Both need the VIP on `lo` (a /32 or /128: the real server accepts packets to it without
//! announcing it) and, for IPv4 VIPs, ARP kept off the VIP (`arp_ignore=1`: answer ARP only for
//! addresses of the interface asked; `arp_announce=2`: never use the VIP as the source of ARP
//! requests), so only the director answers for it. IPv6 needs nothing more: Linux answers
//! neighbour solicitations only for addresses of the interface they arrive on, and the VIP is
//! added `nodad`. A tunnel also needs its packets decapsulated — by rvs's XDP program on the
//! interface they arrive on (pinned on the bpf filesystem, so it stays after the command), or
//! with `--kernel-ipip` by the kernel's ipip/ip6_tunnel devices — and reverse-path filtering
//! relaxed (strict mode, 1, drops a decapsulated packet whose client is routed out of another
//! interface; loose mode, 2, is kept or set).
//!
//! What the command changed is remembered in /run/rvs (per network namespace): `--remove` takes
//! the VIPs it names off (and out of the decapsulation map), and once no VIP it set up is left,
//! puts back the sysctls and the state of `lo` as they were before.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use rvs_bpf::decap::{self, Decap};
use rvs_bpf::xdp_attach::XdpAttach;
use serde::{Deserialize, Serialize};

#[derive(Debug, Subcommand)]
pub enum RealServerCmd {
    /// Direct routing (the director's `-g`, method gate): the VIPs on lo, ARP kept off them.
    Dr(DrArgs),
    /// IP-in-IP tunnel (the director's `-i`, method tunnel): as dr, plus the tunnel's packets
    /// decapsulated on INTERFACE (rvs's XDP program, or the kernel's ipip with --kernel-ipip)
    /// and reverse-path filtering relaxed.
    Tunnel(TunnelArgs),
}

#[derive(Debug, Args)]
pub struct DrArgs {
    /// A virtual address this real server serves (repeat for several; IPv4 or IPv6).
    #[arg(long = "vip", value_name = "IP", required = true)]
    pub vips: Vec<IpAddr>,
    /// Change nothing: report each missing piece by name, exit 1 if any.
    #[arg(long, conflicts_with = "remove")]
    pub check: bool,
    /// Undo the set-up of these VIPs.
    #[arg(long)]
    pub remove: bool,
}

#[derive(Debug, Args)]
pub struct TunnelArgs {
    #[command(flatten)]
    pub common: DrArgs,
    /// The interface the tunnel's packets arrive on.
    #[arg(long, value_name = "IFNAME")]
    pub interface: String,
    /// How the decapsulation program runs: native (in the driver), generic (in the stack), or
    /// auto (native when the driver can).
    #[arg(long, value_enum, default_value = "auto")]
    pub xdp_mode: XdpModeArg,
    /// Use the kernel's ipip and ip6_tunnel modules (tunl0, ip6tnl0) instead of rvs's XDP
    /// program, on a real server that has them.
    #[arg(long)]
    pub kernel_ipip: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum XdpModeArg {
    Auto,
    Native,
    Generic,
}

impl From<XdpModeArg> for XdpAttach {
    fn from(m: XdpModeArg) -> Self {
        match m {
            XdpModeArg::Auto => XdpAttach::Auto,
            XdpModeArg::Native => XdpAttach::Native,
            XdpModeArg::Generic => XdpAttach::Generic,
        }
    }
}

/// Where rvs pins the decapsulation program's maps and attachments.
const BPFFS: &str = "/sys/fs/bpf";
/// Where the command remembers what it changed.
const STATE_DIR: &str = "/run/rvs";

pub fn run(cmd: RealServerCmd) -> ExitCode {
    let result = match &cmd {
        RealServerCmd::Dr(a) if a.check => check(a, None).map(Some),
        RealServerCmd::Tunnel(t) if t.common.check => check(&t.common, Some(t)).map(Some),
        RealServerCmd::Dr(a) if a.remove => remove(a, None).map(|()| None),
        RealServerCmd::Tunnel(t) if t.common.remove => remove(&t.common, Some(t)).map(|()| None),
        RealServerCmd::Dr(a) => apply(a, None).map(|()| None),
        RealServerCmd::Tunnel(t) => apply(&t.common, Some(t)).map(|()| None),
    };
    match result {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(missing)) if missing.is_empty() => {
            println!("real server set-up complete");
            ExitCode::SUCCESS
        }
        Ok(Some(missing)) => {
            for m in &missing {
                println!("missing: {m}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("rvsd real-server: {}", crate::report::chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// What the command changed in this network namespace, to undo it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// VIPs set up (on lo, and in the decapsulation map for a tunnel).
    vips: Vec<IpAddr>,
    /// Sysctls changed (their /proc/sys path) and the value each had before.
    sysctls: BTreeMap<String, String>,
    /// Whether lo was down before.
    lo_was_down: bool,
    /// Interfaces with the decapsulation program attached (lasting).
    decap_interfaces: Vec<String>,
}

/// This network namespace's identity (its inode), to keep the state of each apart.
fn netns_id() -> anyhow::Result<u64> {
    Ok(std::fs::metadata("/proc/self/ns/net").context("reading /proc/self/ns/net")?.ino())
}

fn state_path() -> anyhow::Result<PathBuf> {
    Ok(Path::new(STATE_DIR).join(format!("real-server-netns-{}.json", netns_id()?)))
}

/// The directory of the decapsulation program's pins for this network namespace.
pub fn decap_dir() -> anyhow::Result<PathBuf> {
    Ok(Path::new(BPFFS).join("rvs").join(format!("decap-netns-{}", netns_id()?)))
}

impl State {
    fn load() -> anyhow::Result<Self> {
        let path = state_path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn save(&self) -> anyhow::Result<()> {
        let path = state_path()?;
        if self.vips.is_empty() && self.sysctls.is_empty() && !self.lo_was_down && self.decap_interfaces.is_empty() {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
                _ => {
                    // Gone with the last namespace's state (another's keeps it).
                    let _ = std::fs::remove_dir(STATE_DIR);
                    return Ok(());
                }
            }
        }
        std::fs::create_dir_all(STATE_DIR).with_context(|| format!("creating {STATE_DIR}"))?;
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Sets a sysctl, remembering its first value.
    fn set_sysctl(&mut self, name: &str, value: &str) -> anyhow::Result<()> {
        let old = sysctl(name)?;
        if old == value {
            return Ok(());
        }
        self.sysctls.entry(name.to_string()).or_insert(old);
        write_sysctl(name, value)
    }
}

fn sysctl_path(name: &str) -> PathBuf {
    Path::new("/proc/sys").join(name.replace('.', "/"))
}

fn sysctl(name: &str) -> anyhow::Result<String> {
    let path = sysctl_path(name);
    Ok(std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?.trim().to_string())
}

fn write_sysctl(name: &str, value: &str) -> anyhow::Result<()> {
    let path = sysctl_path(name);
    std::fs::write(&path, value).with_context(|| format!("setting {name} = {value} ({})", path.display()))
}

/// Runs `ip ARGS`, its output or an error naming the command and what it said.
fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip").args(args).output().context("running `ip` (iproute2 is needed)")?;
    if !out.status.success() {
        bail!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
    #[serde(default)]
    xdp: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct AddrInfo {
    local: Option<IpAddr>,
}

fn link(ifname: &str) -> anyhow::Result<Link> {
    let text = ip(&["-j", "-d", "addr", "show", "dev", ifname])?;
    let mut links: Vec<Link> =
        serde_json::from_str(&text).with_context(|| format!("reading `ip -j addr show dev {ifname}`"))?;
    links.pop().with_context(|| format!("no interface {ifname}"))
}

fn host_prefix(vip: IpAddr) -> String {
    match vip {
        IpAddr::V4(_) => format!("{vip}/32"),
        IpAddr::V6(_) => format!("{vip}/128"),
    }
}

/// The ARP sysctls a real server with IPv4 VIPs needs, and the values that do.
const ARP: [(&str, &[&str], &str); 2] =
    [("net.ipv4.conf.all.arp_ignore", &["1", "2"], "1"), ("net.ipv4.conf.all.arp_announce", &["2"], "2")];

fn rp_filter_names(ifname: &str) -> [String; 2] {
    ["net.ipv4.conf.all.rp_filter".to_string(), format!("net.ipv4.conf.{ifname}.rp_filter")]
}

/// The interface a tunnel's packets are decapsulated on with the kernel's modules.
fn kernel_tunnel_devices(vips: &[IpAddr]) -> Vec<(&'static str, &'static str)> {
    let mut devs = Vec::new();
    if vips.iter().any(IpAddr::is_ipv4) {
        devs.push(("ipip", "tunl0"));
    }
    if vips.iter().any(IpAddr::is_ipv6) {
        devs.push(("ip6_tunnel", "ip6tnl0"));
    }
    devs
}

fn apply(a: &DrArgs, tunnel: Option<&TunnelArgs>) -> anyhow::Result<()> {
    let mut state = State::load()?;
    let lo = link("lo")?;
    if !lo.flags.iter().any(|f| f == "UP") {
        ip(&["link", "set", "lo", "up"])?;
        state.lo_was_down = true;
    }
    for vip in &a.vips {
        if !lo.addr_info.iter().any(|i| i.local == Some(*vip)) {
            let prefix = host_prefix(*vip);
            match vip {
                IpAddr::V4(_) => ip(&["addr", "add", &prefix, "dev", "lo"])?,
                IpAddr::V6(_) => ip(&["-6", "addr", "add", &prefix, "dev", "lo", "nodad"])?,
            };
            println!("{vip}: added to lo as {prefix}");
        }
        if !state.vips.contains(vip) {
            state.vips.push(*vip);
        }
    }
    if state.vips.iter().any(IpAddr::is_ipv4) {
        for (name, ok, want) in ARP {
            if !ok.contains(&sysctl(name)?.as_str()) {
                state.set_sysctl(name, want)?;
                println!("{name} = {want}");
            }
        }
    }
    state.save()?;
    let Some(t) = tunnel else { return Ok(()) };
    if t.kernel_ipip {
        for (module, dev) in kernel_tunnel_devices(&a.vips) {
            let loaded = Command::new("modprobe").arg(module).status().context("running modprobe")?;
            if !loaded.success() {
                bail!("`modprobe {module}` failed: this kernel has no {module} module; use rvs's decapsulation (without --kernel-ipip)");
            }
            ip(&["link", "set", dev, "up"])?;
            relax_rp_filter(&mut state, dev)?;
        }
    } else {
        relax_rp_filter(&mut state, &t.interface)?;
        decap::ensure_bpffs(Path::new(BPFFS)).context("mounting the bpf filesystem")?;
        let dir = decap_dir()?;
        let mut d = Decap::load_pinned(&dir).context("loading the decapsulation program")?;
        for vip in &a.vips {
            d.add_vip(*vip)?;
        }
        if !(decap::attached_lasting(&dir, &t.interface) && link(&t.interface)?.xdp.is_some()) {
            decap::detach_lasting(&dir, &t.interface)?;
            let mode = d.attach_lasting(&t.interface, t.xdp_mode.into())?;
            println!("decapsulation attached to {} ({} XDP)", t.interface, mode.name());
        }
        if !state.decap_interfaces.contains(&t.interface) {
            state.decap_interfaces.push(t.interface.clone());
        }
    }
    state.save()
}

fn relax_rp_filter(state: &mut State, ifname: &str) -> anyhow::Result<()> {
    for name in rp_filter_names(ifname) {
        if sysctl(&name)? == "1" {
            state.set_sysctl(&name, "2")?;
            println!("{name} = 2 (loose: strict reverse-path filtering drops decapsulated packets)");
        }
    }
    Ok(())
}

/// Every missing piece, by name (empty when the set-up is complete).
fn check(a: &DrArgs, tunnel: Option<&TunnelArgs>) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    let lo = link("lo")?;
    if !lo.flags.iter().any(|f| f == "UP") {
        missing.push("lo is down".to_string());
    }
    for vip in &a.vips {
        if !lo.addr_info.iter().any(|i| i.local == Some(*vip)) {
            missing.push(format!("VIP {vip} is not on lo"));
        }
    }
    if a.vips.iter().any(IpAddr::is_ipv4) {
        for (name, ok, want) in ARP {
            let v = sysctl(name)?;
            if !ok.contains(&v.as_str()) {
                missing.push(format!("{name} is {v}, not {want}"));
            }
        }
    }
    let Some(t) = tunnel else { return Ok(missing) };
    let rp_filter = |ifname: &str, missing: &mut Vec<String>| -> anyhow::Result<()> {
        let [all, dev] = rp_filter_names(ifname);
        let (va, vd) = (sysctl(&all)?, sysctl(&dev)?);
        if va == "1" || (vd == "1" && va != "2") {
            missing.push(format!(
                "reverse-path filtering is strict on {ifname} ({all} = {va}, {dev} = {vd}): want 0 or 2"
            ));
        }
        Ok(())
    };
    if t.kernel_ipip {
        for (_, dev) in kernel_tunnel_devices(&a.vips) {
            match link(dev) {
                Ok(l) if l.flags.iter().any(|f| f == "UP") => rp_filter(dev, &mut missing)?,
                Ok(_) => missing.push(format!("{dev} is down")),
                Err(_) => missing.push(format!("no {dev} device (the kernel's tunnel module is not loaded)")),
            }
        }
        return Ok(missing);
    }
    if a.vips.iter().any(IpAddr::is_ipv4) {
        rp_filter(&t.interface, &mut missing)?;
    }
    let dir = decap_dir()?;
    if !decap::attached_lasting(&dir, &t.interface) || link(&t.interface)?.xdp.is_none() {
        missing.push(format!("the decapsulation program is not attached to {}", t.interface));
    }
    let listed = if dir.join("vips").exists() {
        Decap::load_pinned(&dir).context("opening the decapsulation maps")?.vips()?
    } else {
        Vec::new()
    };
    for vip in &a.vips {
        if !listed.contains(vip) {
            missing.push(format!("VIP {vip} is not in the decapsulation map"));
        }
    }
    Ok(missing)
}

fn remove(a: &DrArgs, tunnel: Option<&TunnelArgs>) -> anyhow::Result<()> {
    let mut state = State::load()?;
    let lo = link("lo")?;
    for vip in &a.vips {
        if lo.addr_info.iter().any(|i| i.local == Some(*vip)) {
            ip(&["addr", "del", &host_prefix(*vip), "dev", "lo"])?;
            println!("{vip}: removed from lo");
        }
        state.vips.retain(|v| v != vip);
    }
    if let Some(t) = tunnel.filter(|t| !t.kernel_ipip) {
        let dir = decap_dir()?;
        if dir.join("vips").exists() {
            let mut d = Decap::load_pinned(&dir).context("opening the decapsulation maps")?;
            for vip in &a.vips {
                d.remove_vip(*vip)?;
            }
            if d.vips()?.is_empty() {
                drop(d);
                for ifname in state.decap_interfaces.drain(..).chain([t.interface.clone()]) {
                    if decap::detach_lasting(&dir, &ifname)? {
                        println!("decapsulation detached from {ifname}");
                    }
                }
                decap::unpin(&dir)?;
                // rvs's directory goes with the last of its pins.
                if let Some(rvs) = dir.parent() {
                    let _ = std::fs::remove_dir(rvs);
                }
            }
        }
    }
    if state.vips.is_empty() {
        for (name, old) in std::mem::take(&mut state.sysctls) {
            write_sysctl(&name, &old)?;
            println!("{name} = {old} (as before)");
        }
        if std::mem::take(&mut state.lo_was_down) {
            ip(&["link", "set", "lo", "down"])?;
        }
    }
    state.save()
}
