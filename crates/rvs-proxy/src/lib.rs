//! rvs-proxy: the L4 data plane. A full-NAT Layer-4 proxy for TCP and UDP: one listener (or
//! UDP socket) per virtual service, scheduling through rvs-core, a relay that hands long-lived connections to a sockmap
//! in the kernel (else splice(2)), PROXY protocol towards real servers, and the FTP helper
//! (IPVS's `ip_vs_ftp`): control connections read line by line, data connections opened. It is not the control
//! plane: it only reads published snapshots. Its BPF programs are loaded by rvs-bpf.

#![forbid(unsafe_code)]

pub mod conn_table;
pub mod engine;
mod event_loop;
mod ftp_data;
mod ftp_session;
mod plane;
mod tcp_conn;
mod udp;

pub use engine::{Engine, EngineConfig, RelayMode};
