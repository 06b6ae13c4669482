//! SCTP associations as IPVS tracks them (`ip_vs_proto_sctp.c`): the states a flow of an SCTP
//! virtual service passes through, the names `ipvsadm -L -c` prints for them, their idle
//! timeouts (IPVS's fixed table: `ipvsadm --set` has no SCTP value), and whether a flow in a
//! state counts as active or inactive. The state machine itself runs where the packets are
//! (the packet engine); this is what the rest of rvs knows of it.

use crate::conn::ConnState;

/// IPVS's 61 s "maximum RTO" timeout of the handshake and shutdown states.
const MAX_RTO_MS: u32 = 61_000;

/// The state of an SCTP association, numbered as IPVS numbers them (`IP_VS_SCTP_S_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SctpState {
    None = 0,
    /// The client's first INIT, no INIT ACK seen yet (a short timeout for INITs dropped).
    Init1 = 1,
    /// A further INIT.
    Init = 2,
    /// The server's INIT ACK, waiting for the client's COOKIE ECHO.
    CookieSent = 3,
    /// The client's COOKIE ECHO, waiting for the server's COOKIE ACK.
    CookieReplied = 4,
    /// Server-initiated: the server's INIT, waiting for the client's INIT ACK.
    CookieWait = 5,
    /// Server-initiated: the client's INIT ACK.
    Cookie = 6,
    /// Server-initiated: the server's COOKIE ECHO.
    CookieEchoed = 7,
    Established = 8,
    ShutdownSent = 9,
    ShutdownReceived = 10,
    ShutdownAckSent = 11,
    /// An INIT answered with ABORT.
    Rejected = 12,
    Closed = 13,
}

impl SctpState {
    /// Every state, in IPVS's order.
    pub const ALL: [SctpState; 14] = [
        Self::None,
        Self::Init1,
        Self::Init,
        Self::CookieSent,
        Self::CookieReplied,
        Self::CookieWait,
        Self::Cookie,
        Self::CookieEchoed,
        Self::Established,
        Self::ShutdownSent,
        Self::ShutdownReceived,
        Self::ShutdownAckSent,
        Self::Rejected,
        Self::Closed,
    ];

    /// The state numbered `v` by IPVS, if any.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// The name `ipvsadm -L -c` prints (IPVS's `sctp_state_name_table`).
    pub fn ipvs_name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Init1 => "INIT1",
            Self::Init => "INIT",
            Self::CookieSent => "C-SENT",
            Self::CookieReplied => "C-REPLIED",
            Self::CookieWait => "C-WAIT",
            Self::Cookie => "COOKIE",
            Self::CookieEchoed => "C-ECHOED",
            Self::Established => "ESTABLISHED",
            Self::ShutdownSent => "S-SENT",
            Self::ShutdownReceived => "S-RECEIVED",
            Self::ShutdownAckSent => "S-ACK-SENT",
            Self::Rejected => "REJECTED",
            Self::Closed => "CLOSED",
        }
    }

    /// IPVS's idle timeout of the state: 15 minutes established, 4 s for a first INIT and a
    /// rejected one, 2 s before anything, 61 s for the rest (handshake, shutdown, closed).
    pub fn timeout_ms(self) -> u32 {
        match self {
            Self::None => 2_000,
            Self::Init1 | Self::Rejected => 4_000,
            Self::Established => 900_000,
            _ => MAX_RTO_MS,
        }
    }

    /// Where the state counts: active only while established (as IPVS counts it); a flow
    /// shutting down, closed or rejected is closing, the others are opening (both inactive).
    pub fn conn_state(self) -> ConnState {
        match self {
            Self::Established => ConnState::Established,
            Self::ShutdownSent | Self::ShutdownReceived | Self::ShutdownAckSent | Self::Rejected | Self::Closed => {
                ConnState::Closing
            }
            _ => ConnState::Opening,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_names_and_timeouts_are_ipvs_s() {
        for (i, s) in SctpState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            assert_eq!(SctpState::from_u8(i as u8), Some(*s));
        }
        assert_eq!(SctpState::from_u8(14), None);
        assert_eq!(SctpState::CookieEchoed.ipvs_name(), "C-ECHOED");
        assert_eq!(SctpState::ShutdownAckSent.ipvs_name(), "S-ACK-SENT");
        assert_eq!(SctpState::Established.timeout_ms(), 900_000);
        assert_eq!(SctpState::Closed.timeout_ms(), 61_000);
        assert_eq!(SctpState::Init1.timeout_ms(), 4_000);
        assert_eq!(SctpState::Established.conn_state(), ConnState::Established);
        assert_eq!(SctpState::Closed.conn_state(), ConnState::Closing);
        assert_eq!(SctpState::Init1.conn_state(), ConnState::Opening);
    }
}
