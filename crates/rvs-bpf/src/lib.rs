//! rvs-bpf: loading rvs's BPF programs and maps with aya, and the few system calls around them
//! that no safe crate wraps. The one crate of the workspace where `unsafe` is allowed; every
//! block carries its SAFETY comment.
//!
//! One module per BPF program: [`sockmap`] (the L4 engine's kernel relay) now, the XDP packet
//! engine beside it later. [`socket`] holds the socket queries they need.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod socket;
pub mod sockmap;

pub use sockmap::{KernelRelay, KernelRelayError};
