//! Connection timeouts (`ipvsadm --set tcp tcpfin udp`): idle time allowed to an established
//! TCP connection, to one that has seen a FIN, and to a UDP flow.

use std::time::Duration;

/// The longest timeout accepted: one year (ipvsadm itself stops at 31 days).
pub const MAX_TIMEOUT_SECS: u32 = 31_536_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_secs: u32,
    pub tcpfin_secs: u32,
    pub udp_secs: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { tcp_secs: 900, tcpfin_secs: 120, udp_secs: 300 }
    }
}

impl Timeouts {
    pub fn tcp(&self) -> Duration {
        Duration::from_secs(self.tcp_secs.into())
    }
    pub fn tcpfin(&self) -> Duration {
        Duration::from_secs(self.tcpfin_secs.into())
    }
    pub fn udp(&self) -> Duration {
        Duration::from_secs(self.udp_secs.into())
    }

    /// ipvsadm's `--set`: a value of 0 leaves that timeout unchanged.
    pub fn merged(&self, tcp: u32, tcpfin: u32, udp: u32) -> Self {
        let pick = |new: u32, old: u32| if new == 0 { old } else { new };
        Self {
            tcp_secs: pick(tcp, self.tcp_secs),
            tcpfin_secs: pick(tcpfin, self.tcpfin_secs),
            udp_secs: pick(udp, self.udp_secs),
        }
    }
}
