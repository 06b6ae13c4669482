//! Connection sync, as IPVS's sync daemon does it: a master sends its packet engine's flow
//! changes and persistence templates to backups in versioned UDP datagrams. [`message`] is the
//! codec (pure: bytes in, validated entries out), [`socket`] the thin shell that binds, joins
//! and sends. Deciding what to send and installing what arrives is rvsd's and rvs-xdp's.
#![forbid(unsafe_code)]

pub mod message;
pub mod socket;

pub use message::{DecodeError, FlowEntry, Message, Method, PeData, TemplateEntry};
