//! rvs-testkit, dev-only: what the integration tests share. Start a real `rvsd` process on a
//! temporary configuration and talk to its API over the unix socket; loopback real servers
//! that announce their name and echo; free ports; vsftpd and an ftplib client. Plain threads and std sockets, no runtime.

#![forbid(unsafe_code)]

mod backend;
pub mod ftp;
mod http;
pub mod netns;
mod rvsd;
pub mod sipp;

pub use backend::{closed_port, connect_name, free_port, Backend};
pub use http::{http_backend, http_get};
pub use netns::Netns;
pub use rvsd::{Rvsd, RvsdBuilder};

/// Whether the tests run as root (binding ports below 1024, starting vsftpd).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
