//! rvs-xdp: the packet engine. IPVS's own forwarding methods (gate, masq, tunnel) done by an XDP
//! program (crates/rvs-bpf, `xdp_lb.bpf.c`) that never terminates TCP. This crate is the
//! engine's Rust side, behind the data-plane interface: it turns each published snapshot into
//! map contents ([`layout`]), schedules every new flow with the domain core ([`new_flows`]),
//! mirrors the kernel's connection table for accounting, listings and counters ([`flows`]), and
//! routes the health checks of gate and tunnel real servers through the VIP ([`check_route`]),
//! and gives connection sync its flow changes and installs a master's flows ([`sync`]).
//!
//! It is not the BPF loader (rvs-bpf, the one crate with `unsafe`), and it holds no scheduling
//! rule of its own: the first packet of a flow is handed to rvsd, scheduled by
//! `VirtualService::schedule` exactly as the proxy engines schedule, and handed back.

#![forbid(unsafe_code)]

pub mod check_route;
pub mod engine;
pub mod flows;
pub mod ids;
pub mod layout;
pub mod neighbour;
pub mod new_flows;
pub mod sync;

pub use engine::{PacketEngine, PacketSettings};
pub use rvs_bpf::xdp::{XdpAttach, XdpMode};
