//! rvsadm: ipvsadm 1.31's command line for rvsd. It parses ipvsadm's grammar into commands,
//! sends them to rvsd's control API (HTTP/JSON over the unix socket, or the loopback TCP API)
//! and prints ipvsadm's listings. The library holds everything so the views can be tested
//! without a daemon; `main.rs` only calls [`run::main_with`].

#![forbid(unsafe_code)]

pub mod addr;
pub mod client;
pub mod format;
pub mod help;
pub mod manual;
pub mod options;
pub mod parse;
pub mod request;
pub mod restore;
pub mod run;
