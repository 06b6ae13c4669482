//! rvs-vrrp: VRRP (RFC 5798 version 3, RFC 3768 version 2) as pure code: the packet codec,
//! one virtual router's state machine, tracking and sync groups. No sockets, netlink or threads.

#![forbid(unsafe_code)]

pub mod packet;
