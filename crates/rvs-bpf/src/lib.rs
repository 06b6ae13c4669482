//! rvs-bpf: loading rvs's BPF programs and maps with aya, and the few system calls around them
//! that no safe crate wraps. The one crate of the workspace where `unsafe` is allowed; every
//! block carries its SAFETY comment.
//!
//! One module per BPF program: [`sockmap`] (the L4 engine's kernel relay), [`xdp`] (the XDP
//! packet engine, its map layout in [`xdp_maps`]), [`decap`] (a real server's tunnel
//! decapsulation) and [`tc_check`] (health checks sent through the VIP). [`socket`] holds the
//! socket queries they need.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod decap;
pub mod link;
pub mod socket;
pub mod sockmap;
pub mod tc_check;
mod test_run;
pub mod xdp;
pub mod xdp_attach;
pub mod xdp_maps;

pub use decap::{Decap, DecapCounters, DecapError};
pub use sockmap::{KernelRelay, KernelRelayError};
pub use tc_check::{CheckProgram, CheckProgramError};
pub use xdp::{PacketProgram, XdpAttach, XdpError, XdpMode};
