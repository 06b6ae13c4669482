//! rvs-vrrp: VRRP (RFC 5798 version 3, RFC 3768 version 2) as pure code: the packet codec,
//! one virtual router's state machine, tracking and sync groups. No sockets, netlink, threads
//! or clocks: time comes in as `now` (milliseconds, rvs-dataplane's `Clock::now_ms`).
//!
//! How the shell uses it. For each sync group of the file (a lone instance is a group of one)
//! it builds a [`SyncGroup`], adding per instance a [`Router`] (`RouterConfig::from_spec` with
//! the interface's primary address) and its [`Tracking`] (`Tracking::from_spec`); it reports
//! the real interface and quorum states with `set_tracked`, then calls `start(now)`. After that:
//! - a packet read from the raw socket goes through [`packet::decode`] (a refusal is counted by
//!   `DecodeError::kind` and dropped), then to `receive(member_of(vrid), &adv, src, now)`;
//! - `poll(now)` whenever `now` reaches `deadline()` (sleep until then, or until a packet);
//! - interface up/down and quorum changes go to `set_tracked`; on exit, `shutdown(now)`.
//!
//! Every call answers `(member, Action)` pairs to carry out in order: encode and send an
//! advertisement ([`packet::encode`], multicast or to each unicast peer, TTL 255), add or
//! remove the virtual addresses (netlink), announce them (gratuitous ARP / unsolicited NA),
//! and `Notify` a transition (the notify queue, the events log, the apply path).

#![forbid(unsafe_code)]

pub mod group;
pub mod packet;
pub mod router;
pub mod tracking;

pub use group::{MemberId, SyncGroup};
pub use packet::{decode, encode, Advertisement, DecodeError, EncodeError, Family};
pub use router::{Action, Ignored, Millis, Router, RouterConfig, State};
pub use tracking::{Effect, TrackKey, Tracking};
