//! Connection accounting: a [`Binding`] ties one proxied connection to its virtual service,
//! real server and persistence template, moves it between inactive (opening or closing) and
//! active (established), counts its traffic and undoes all of it when dropped.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use crate::persistence::Template;
use crate::real_server::RealServer;
use crate::virtual_service::VirtualService;

/// The IPVS-visible state of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    /// Connecting to the real server (SYN_SENT in ipvsadm -c); counted inactive.
    Opening,
    /// Both sides open (ESTABLISHED); counted active.
    Established,
    /// One side has closed (FIN_WAIT); counted inactive.
    Closing,
}

impl ConnState {
    /// The inverse of `state as u8`.
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => ConnState::Opening,
            1 => ConnState::Established,
            _ => ConnState::Closing,
        }
    }

    /// The state name `ipvsadm -L -c` prints.
    pub fn ipvs_name(self) -> &'static str {
        match self {
            ConnState::Opening => "SYN_SENT",
            ConnState::Established => "ESTABLISHED",
            ConnState::Closing => "FIN_WAIT",
        }
    }
}

/// One connection's place in the accounting. Dropping it ends the connection's accounting.
#[derive(Debug)]
pub struct Binding {
    pub service: Arc<VirtualService>,
    pub dest: Arc<RealServer>,
    template: Option<(Arc<Template>, u64)>,
    state: AtomicU8,
    last_ms: AtomicU64,
}

impl Binding {
    /// Where the connection goes: the real server's address and port, or with the
    /// connection's own port `destination` when the real server has none (a firewall mark's
    /// real server, as IPVS keeps the port then).
    pub fn target(&self, destination: std::net::SocketAddr) -> std::net::SocketAddr {
        match self.dest.addr.port() {
            0 => std::net::SocketAddr::new(self.dest.addr.ip(), destination.port()),
            _ => self.dest.addr,
        }
    }

    pub(crate) fn new(
        service: Arc<VirtualService>,
        dest: Arc<RealServer>,
        template: Option<(Arc<Template>, u64)>,
        now_ms: u64,
    ) -> Self {
        service.stats.counters.add_conn();
        dest.bind_conn();
        Self {
            service,
            dest,
            template,
            state: AtomicU8::new(ConnState::Opening as u8),
            last_ms: AtomicU64::new(now_ms),
        }
    }

    /// The persistence template this connection was created under, if any.
    pub fn template(&self) -> Option<&Arc<Template>> {
        self.template.as_ref().map(|(t, _)| t)
    }

    pub fn state(&self) -> ConnState {
        ConnState::from_u8(self.state.load(Ordering::Relaxed))
    }

    fn transition(&self, from: ConnState, to: ConnState) -> bool {
        self.state.compare_exchange(from as u8, to as u8, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// The connection to the real server is up.
    pub fn established(&self) {
        if self.transition(ConnState::Opening, ConnState::Established) {
            self.dest.established();
        }
    }

    /// One side closed its half at `now_ms`.
    pub fn closing(&self, now_ms: u64) {
        self.last_ms.store(now_ms, Ordering::Relaxed);
        if self.transition(ConnState::Established, ConnState::Closing) {
            self.dest.closing();
        }
    }

    /// Bytes read from the client (one "packet" per read).
    pub fn count_in(&self, bytes: u64) {
        self.service.stats.counters.add_in(bytes);
        self.dest.stats.counters.add_in(bytes);
    }

    /// Bytes read from the real server.
    pub fn count_out(&self, bytes: u64) {
        self.service.stats.counters.add_out(bytes);
        self.dest.stats.counters.add_out(bytes);
    }

    /// `packets` messages of `bytes` in all that the kernel relayed from the client.
    pub fn count_in_packets(&self, packets: u64, bytes: u64) {
        self.service.stats.counters.add_in_packets(packets, bytes);
        self.dest.stats.counters.add_in_packets(packets, bytes);
    }

    /// `packets` messages of `bytes` in all that the kernel relayed from the real server.
    pub fn count_out_packets(&self, packets: u64, bytes: u64) {
        self.service.stats.counters.add_out_packets(packets, bytes);
        self.dest.stats.counters.add_out_packets(packets, bytes);
    }

    /// The connection ends at `now_ms`.
    pub fn finish(self, now_ms: u64) {
        self.last_ms.store(now_ms, Ordering::Relaxed);
    }

    /// The connect to the real server failed: counted against it; the binding ends.
    pub fn connect_failed(self, now_ms: u64) {
        self.dest.count_connect_failure();
        self.finish(now_ms);
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        self.dest.unbind_conn(self.state() == ConnState::Established);
        if let Some((t, timeout_ms)) = &self.template {
            t.release(self.last_ms.load(Ordering::Relaxed), *timeout_ms);
        }
    }
}
