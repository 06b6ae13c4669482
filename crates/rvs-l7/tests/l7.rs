//! Integration tests of the L7 engine: real sockets on 127.0.0.1, real backends (hyper and raw
//! TCP servers), real clients (hyper's client, raw sockets, curl).

#[path = "l7/common.rs"]
mod common;

#[path = "l7/balancing.rs"]
mod balancing;
#[path = "l7/bodies.rs"]
mod bodies;
#[path = "l7/control.rs"]
mod control;
#[path = "l7/headers.rs"]
mod headers;
#[path = "l7/hostile.rs"]
mod hostile;
#[path = "l7/http2.rs"]
mod http2;
#[path = "l7/routing.rs"]
mod routing;
#[path = "l7/tls.rs"]
mod tls;
#[path = "l7/websocket.rs"]
mod websocket;
