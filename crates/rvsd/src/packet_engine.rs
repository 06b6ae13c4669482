//! `rvsd packet-engine`: what a stopped rvsd left of the packet engine (pinned maps and
//! attachments, which keep its flows going across a restart), and `--remove` to take it away.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct PacketEngineArgs {
    /// Detach the packet engine from every interface it is pinned to and remove its pinned
    /// maps: its flows stop. Without it, what is pinned is shown.
    #[arg(long)]
    pub remove: bool,
    /// The pin directory (default: the configuration's `[packet_engine] pin_path`, else this
    /// network namespace's `/sys/fs/bpf/rvs/xdp-netns-INODE`).
    #[arg(long, value_name = "DIR")]
    pub pin_path: Option<PathBuf>,
    /// Take `pin_path` from this configuration file.
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with = "pin_path")]
    pub config: Option<PathBuf>,
}

/// The pin directory rvsd uses: `[packet_engine] pin_path`, else the namespace's default.
pub fn pin_dir(configured: Option<&PathBuf>) -> std::io::Result<PathBuf> {
    match configured {
        Some(p) => Ok(p.clone()),
        None => rvs_bpf::xdp::default_pin_dir(),
    }
}

/// What a stopped rvsd may have left of the checks through the VIP (the device and the rules).
fn remove_check_route() {
    if rvs_xdp::check_route::remove() {
        println!("removed the health checks' device {} and its routing", rvs_xdp::check_route::DEVICE);
    }
}

pub fn run(args: PacketEngineArgs) -> ExitCode {
    match run_inner(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd packet-engine: {}", crate::report::chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: &PacketEngineArgs) -> anyhow::Result<()> {
    let configured = match (&args.pin_path, &args.config) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(file)) => rvs_config::Config::load(file)?.packet_engine.and_then(|p| p.pin_path),
        (None, None) => None,
    };
    let dir = pin_dir(configured.as_ref())?;
    let links = rvs_bpf::xdp::pinned_links(&dir);
    if args.remove {
        if !dir.exists() {
            remove_check_route();
            println!("nothing pinned in {}", dir.display());
            return Ok(());
        }
        let detached = rvs_bpf::xdp::remove_pinned(&dir)?;
        remove_check_route();
        for ifname in &detached {
            println!("detached from {ifname}");
        }
        println!("removed {}", dir.display());
        if let Some(parent) = dir.parent().filter(|p| p.ends_with("rvs")) {
            let _ = std::fs::remove_dir(parent); // when empty: rvsd made it for the default directory
        }
        return Ok(());
    }
    if !dir.exists() {
        println!("nothing pinned in {}", dir.display());
        return Ok(());
    }
    println!("pinned in {}:", dir.display());
    for (ifname, mode, _) in &links {
        println!("  attached to {ifname} ({mode:?})");
    }
    if dir.join("rvs_conns").exists() {
        let layout =
            if rvs_bpf::xdp::layout_marker_present(&dir) { "this rvsd's map layout" } else { "another map layout" };
        println!("  maps pinned ({layout})");
    } else {
        println!("  no maps");
    }
    Ok(())
}
