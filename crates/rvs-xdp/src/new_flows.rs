//! How a new flow is scheduled: the XDP program hands the first packet of a flow it does not
//! know to rvsd through a ring buffer and drops it; this thread schedules it with the domain
//! core (`VirtualService::schedule`: persistence, thresholds, quorum and every IPVS scheduler,
//! the same code the proxy engines use), then runs the packet through the program again with
//! the choice as metadata (`BPF_PROG_TEST_RUN` with live frames), which creates the flow in
//! the kernel table and forwards the packet. Later packets never leave the kernel.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rvs_bpf::xdp::{NewFlowEvent, NewFlows, PacketProgram, RunContext};
use rvs_bpf::xdp_maps as maps;
use rvs_core::SchedRequest;
use rvs_dataplane::clock::Clock;

use crate::engine::Published;
use crate::flows::{Flow, Flows};
use crate::layout::DestKey;
use crate::neighbour::Resolver;

/// What the scheduling thread counts (shown in `/v1/info` and `/metrics`).
#[derive(Debug, Default)]
pub struct SchedulingCounters {
    /// Flows scheduled and handed back.
    pub scheduled: AtomicU64,
    /// First packets with no real server: answered with ICMP port unreachable.
    pub rejected: AtomicU64,
    /// First packets for a service that had just gone (dropped).
    pub stale: AtomicU64,
    /// Handing a packet back failed (the error is logged).
    pub failed: AtomicU64,
    /// Nanoseconds spent scheduling and handing back, in all (for the cost of a new flow).
    pub busy_ns: AtomicU64,
}

/// The UDP payload of a first packet's frame (Ethernet, then IPv4 without options or IPv6
/// without extension headers: the program hands no other kind here), as long as the UDP
/// header says (Ethernet padding left out); empty if the frame is too short.
pub fn udp_payload(frame: &[u8], family: u8) -> &[u8] {
    let udp = 14 + if family == maps::FAMILY_V6 { 40 } else { 20 };
    let Some(len) = frame.get(udp + 4..udp + 6).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))) else {
        return &[];
    };
    frame.get(udp + 8..udp + len.max(8)).unwrap_or(&[])
}

/// What the thread shares with the engine.
pub(crate) struct Scheduler {
    pub program: Arc<PacketProgram>,
    pub published: Arc<arc_swap::ArcSwap<Published>>,
    pub flows: Arc<Flows>,
    pub counters: Arc<SchedulingCounters>,
    pub sync: Arc<crate::sync::SyncQueue>,
    pub clock: Clock,
    pub stop: Arc<AtomicBool>,
}

impl Scheduler {
    /// Runs until `stop` is set.
    pub fn run(self, mut ring: NewFlows) {
        let mut resolver = Resolver::default();
        let tick = Timespec::try_from(Duration::from_millis(200)).expect("a 200 ms timespec");
        while !self.stop.load(Ordering::Relaxed) {
            let mut fds = [PollFd::new(&ring, PollFlags::IN)];
            if let Err(e) = poll(&mut fds, Some(&tick)) {
                if e != rustix::io::Errno::INTR {
                    tracing::error!("packet engine: waiting for new flows: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            while let Some(event) = ring.next() {
                if event.service == maps::NEWFLOW_NEIGH {
                    let hop = event.key.vip().ip();
                    match resolver.resolve(hop, event.ifindex, Instant::now()) {
                        Ok(true) => {
                            tracing::debug!(%hop, ifindex = event.ifindex, "asked the kernel to resolve a next hop")
                        }
                        Ok(false) => {}
                        Err(e) => tracing::warn!(%hop, "packet engine: resolving next hop: {e}"),
                    }
                    continue;
                }
                if event.service == maps::NEWFLOW_RELATED {
                    self.related(&event);
                    continue;
                }
                let started = Instant::now();
                self.schedule(&event);
                self.counters.busy_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        }
        let _ = ring.as_fd();
    }

    /// Accounts an FTP data connection the program made on masq (from what its control
    /// connection announced) to the control connection's real server, without scheduling, as
    /// IPVS's controlled connections are: a connection of the service and the real server,
    /// listed, and read back by the sweep like any flow.
    fn related(&self, event: &NewFlowEvent) {
        let published = self.published.load();
        let dest_id = event.ifindex;
        let Some(dk) = published.assignment.dest_of(dest_id) else { return };
        let Some(service) = published.assignment.service_id(&dk.service).and_then(|id| published.service(id)) else {
            return;
        };
        let Some(dest) = service.dest(dk.addr) else { return };
        let Some(protocol) = rvs_core::Protocol::from_number(event.key.proto) else { return };
        let now_ms = self.clock.now_ms();
        let binding = service.related(dest, now_ms);
        self.flows.insert(event.key, Flow { binding, dest_id, protocol }, now_ms);
    }

    /// Schedules one first packet and hands it back.
    fn schedule(&self, event: &NewFlowEvent) {
        let published = self.published.load();
        let Some(service) = published.service(event.service) else {
            self.counters.stale.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let now_ms = self.clock.now_ms();
        let client = event.key.client();
        let req = SchedRequest { client, destination: event.key.vip(), now_ms };
        let scheduled = if service.schedules_each_datagram() {
            // Every datagram comes here (one-packet scheduling, a persistence engine): with the
            // sip engine, one without a Call-ID is dropped, as IPVS drops it.
            match service.schedule_datagram(
                &req,
                udp_payload(&event.frame, event.key.family),
                published.expire_quiescent_template,
            ) {
                Ok(b) => b,
                Err(e) => {
                    // Counted in the service's pe_dropped.
                    tracing::debug!(%client, "packet engine: datagram dropped by the persistence engine: {e}");
                    return;
                }
            }
        } else {
            service.schedule(&req, &[], published.expire_quiescent_template)
        };
        let binding = scheduled.or_else(|| service.sorry_binding(&[], now_ms));
        let mut verdict = maps::Verdict::reject();
        if let Some(binding) = binding {
            let key = DestKey { service: service.key, addr: binding.dest.addr };
            match published.assignment.dest_id(&key) {
                Some(dest_id) => {
                    verdict = maps::Verdict::scheduled(dest_id);
                    let protocol = service.key.protocol().or(rvs_core::Protocol::from_number(event.key.proto));
                    let Some(protocol) = protocol else { return };
                    self.sync.created(event.key, &binding);
                    self.flows.insert(event.key, Flow { binding, dest_id, protocol }, now_ms);
                }
                None => tracing::error!(dest = %key.addr, "packet engine: a scheduled real server has no slot"),
            }
        }
        let rejected = verdict.verdict == maps::VERDICT_REJECT;
        let ctx = RunContext { ifindex: event.ifindex, rx_queue: event.rx_queue, verdict: Some(verdict), repeat: 1 };
        match self.program.run_live(&event.frame, &ctx) {
            Ok(()) if rejected => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            }
            Ok(()) => {
                self.counters.scheduled.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%client, "packet engine: handing a first packet back: {e}");
            }
        }
    }
}
