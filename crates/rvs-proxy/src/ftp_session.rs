//! An FTP control connection through the full-NAT proxy (the service's helper is `ftp`): a
//! task of its own instead of the event loop's splice relay, because every line is read. It
//! schedules and connects as any TCP connection does (timeout, retries, PROXY header), then
//! relays the control stream line by line both ways: the client's `PORT`/`EPRT` and the real
//! server's `227`/`229` answers are rewritten to a data listener of the director's
//! ([`crate::ftp_data`]); every other byte goes on unchanged. Parsing: `rvs_dataplane::ftp`.

use std::io;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::sync::Arc;

use rvs_core::sched::SchedRequest;
use rvs_core::{Binding, ConnState, ServiceAddr, VirtualService};
use rvs_dataplane::ftp::{self, Lines, Piece};
use rvs_dataplane::{proxy_protocol, ConnSlots};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::conn_table::ConnEntry;
use crate::engine::Engine;
use crate::ftp_data::{self, Control, Mode, Pending};

/// Bytes read from either side at a time.
const READ_BUF: usize = 4096;

/// A control connection the event loop accepted, handed to its task.
pub(crate) struct FtpStart {
    pub entry: Arc<ConnEntry>,
    pub places: ConnSlots,
    pub key: ServiceAddr,
    pub service: Arc<VirtualService>,
    pub client: StdTcpStream,
}

/// Serves one control connection to its end; its entry leaves the table then.
pub(crate) async fn serve(engine: Arc<Engine>, start: FtpStart) {
    let FtpStart { entry, places, key, service, client } = start;
    let peer = entry.client;
    tokio::select! {
        _ = entry.cancel.cancelled() => debug!(service = %key, client = %peer, "FTP control connection closed by the director"),
        r = run(&engine, &entry, key, &service, client) => {
            if let Err(e) = r {
                debug!(service = %key, client = %peer, error = %e, "FTP control connection ended with an error");
            }
        }
    }
    drop(places);
    engine.conns.remove(entry.id);
}

async fn run(
    engine: &Arc<Engine>,
    entry: &Arc<ConnEntry>,
    key: ServiceAddr,
    service: &Arc<VirtualService>,
    client: StdTcpStream,
) -> io::Result<()> {
    let mut client = TcpStream::from_std(client)?;
    let Some((mut server, binding)) = connect(engine, entry, key, service).await else { return Ok(()) };
    binding.established();
    entry.set_state(ConnState::Established);
    entry.touch(engine.clock.now_ms());
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    if let Some(h) = proxy_protocol::header(binding.dest.settings().proxy_protocol, entry.client, key.addr) {
        server.write_all(&h).await?;
    }
    let ctl = Control {
        engine: engine.clone(),
        key,
        service: service.clone(),
        dest: binding.dest.clone(),
        entry: entry.clone(),
        client: entry.client,
        client_local: client.local_addr().unwrap_or(key.addr),
        server: server.peer_addr()?,
        server_local: server.local_addr()?,
    };
    let r = relay(&ctl, &mut client, &mut server, &binding).await;
    binding.finish(engine.clock.now_ms());
    r
}

/// Schedules a real server and connects to it, on to another after a refusal or a timeout
/// (as the event loop's connections do). `None` when none is left.
async fn connect(
    engine: &Engine,
    entry: &ConnEntry,
    key: ServiceAddr,
    service: &Arc<VirtualService>,
) -> Option<(TcpStream, Binding)> {
    let mut tried: Vec<SocketAddr> = Vec::new();
    loop {
        let now_ms = engine.clock.now_ms();
        let req = SchedRequest { client: entry.client, destination: key.addr, now_ms };
        let eqt = engine.snapshot_ref().options.expire_quiescent_template;
        let Some(binding) = service.schedule(&req, &tried, eqt) else {
            debug!(service = %key, client = %entry.client, "no real server available");
            return None;
        };
        entry.set_dest(Some(binding.dest.clone()));
        let addr = binding.dest.addr;
        let reason = match tokio::time::timeout(engine.connect_timeout(), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Some((s, binding)),
            Ok(Err(e)) => format!("connect failed: {e}"),
            Err(_) => format!("connect timed out after {:?}", engine.connect_timeout()),
        };
        debug!(service = %key, dest = %addr, "{reason}");
        engine.connect_failed(key, addr, &reason);
        binding.connect_failed(engine.clock.now_ms());
        tried.push(addr);
        if tried.len() > engine.connect_retries() as usize {
            return None;
        }
    }
}

/// The control stream both ways, line by line, until both sides have closed.
async fn relay(ctl: &Control, client: &mut TcpStream, server: &mut TcpStream, binding: &Binding) -> io::Result<()> {
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let (mut up, mut down) = (Lines::default(), Lines::default());
    let (mut cbuf, mut sbuf) = (vec![0u8; READ_BUF], vec![0u8; READ_BUF]);
    let (mut client_done, mut server_done) = (false, false);
    let mut pending = Pending::default();
    while !(client_done && server_done) {
        tokio::select! {
            r = cr.read(&mut cbuf), if !client_done => {
                let n = r?;
                let now = ctl.engine.clock.now_ms();
                ctl.entry.touch(now);
                if n == 0 {
                    client_done = true;
                    if let Some(Piece::Raw(rest)) = up.finish() {
                        sw.write_all(&rest).await?;
                    }
                    binding.closing(now);
                    ctl.entry.set_state(binding.state());
                    let _ = sw.shutdown().await;
                    continue;
                }
                binding.count_in(n as u64);
                up.push(&cbuf[..n]);
                while let Some(p) = up.next_piece() {
                    let out = match p {
                        Piece::Line(l) => from_client(ctl, l, &mut pending).await,
                        Piece::Raw(b) => b,
                    };
                    sw.write_all(&out).await?;
                }
            }
            r = sr.read(&mut sbuf), if !server_done => {
                let n = r?;
                let now = ctl.engine.clock.now_ms();
                ctl.entry.touch(now);
                if n == 0 {
                    server_done = true;
                    if let Some(Piece::Raw(rest)) = down.finish() {
                        cw.write_all(&rest).await?;
                    }
                    binding.closing(now);
                    ctl.entry.set_state(binding.state());
                    let _ = cw.shutdown().await;
                    continue;
                }
                binding.count_out(n as u64);
                down.push(&sbuf[..n]);
                while let Some(p) = down.next_piece() {
                    let out = match p {
                        Piece::Line(l) => from_server(ctl, l, &mut pending).await,
                        Piece::Raw(b) => b,
                    };
                    cw.write_all(&out).await?;
                }
            }
        }
    }
    Ok(())
}

/// A client line: `PORT`/`EPRT` of the control connection's address family get a data
/// listener facing the real server in their place (IPVS's `ip_vs_ftp_in`). The data
/// connection goes to the port the client named, on the client's control address (a client
/// cannot make the director connect elsewhere).
async fn from_client(ctl: &Control, line: Vec<u8>, pending: &mut Pending) -> Vec<u8> {
    let Some(cmd) = ftp::parse_command(&line) else { return line };
    let Some(target) = ftp::active_target(&cmd, ctl.client) else { return line };
    match ftp_data::open(ctl, Mode::Active, target, pending).await {
        Ok(announced) => ftp::rewrite_command(&line, &cmd, announced),
        Err(e) => {
            debug!(service = %ctl.key, error = %e, "no FTP data listener: the command goes on unchanged");
            line
        }
    }
}

/// A real server line: its `227`/`229` answer gets a data listener on the address the client
/// reached in its place (IPVS's `ip_vs_ftp_out`). The data connection goes to the address the
/// real server announced (its control address for `229`, or when it announced 0.0.0.0).
async fn from_server(ctl: &Control, line: Vec<u8>, pending: &mut Pending) -> Vec<u8> {
    let Some(reply) = ftp::parse_reply(&line) else { return line };
    let Some(target) = ftp::passive_target(&reply, ctl.client_local, ctl.server) else { return line };
    match ftp_data::open(ctl, Mode::Passive, target, pending).await {
        Ok(announced) => ftp::rewrite_reply(&line, &reply, announced),
        Err(e) => {
            debug!(service = %ctl.key, error = %e, "no FTP data listener: the reply goes on unchanged");
            line
        }
    }
}
