//! `rvsd demo`: three in-process real servers on loopback that answer with their own names
//! (over HTTP, and over UDP on the same ports), TCP, UDP and HTTP virtual services in front of
//! them, and the API and the dashboard, so rvs can be tried in one command.

use std::net::SocketAddr;

use rvs_config::{ApiConfig, Config, DirectorConfig};
use rvs_core::{Protocol, RealServerSettings, SchedulerKind, ServiceKey, ServiceModel, ServiceSettings, TableModel};
use rvs_model::http::{L7ServiceConfig, PoolConfig, Rule};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Starts the demo real servers and returns the configuration that fronts them: Layer-4 TCP
/// and UDP services at `vip` and a Layer-7 one at `http_vip` (`/rs1/...` goes to rs1, the rest
/// round robin).
pub async fn start(
    vip: SocketAddr,
    http_vip: SocketAddr,
    socket: std::path::PathBuf,
    ui: SocketAddr,
) -> std::io::Result<Config> {
    let mut servers = Vec::new();
    for i in 1..=3 {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let name = format!("rs{i}");
        let udp = UdpSocket::bind(addr).await?;
        tokio::spawn(serve_udp(udp, name.clone()));
        tokio::spawn(serve_http(listener, name));
        servers.push(RealServerSettings::new(addr));
    }
    let mut http = L7ServiceConfig::new(rvs_core::ServiceAddr::tcp(http_vip));
    let mut only_rs1 = PoolConfig::new("rs1", SchedulerKind::Rr).map_err(std::io::Error::other)?;
    only_rs1.servers.push(servers[0]);
    let mut all = PoolConfig::new("all", SchedulerKind::Rr).map_err(std::io::Error::other)?;
    all.servers.extend(servers.iter().copied());
    http.pools = vec![only_rs1, all];
    http.rules.push(Rule::parse("rs1", &["path^=/rs1/"], "rs1").map_err(std::io::Error::other)?);
    http.default_pool = Some("all".into());
    let mut table = TableModel::default();
    table.services.insert(
        ServiceKey::tcp(vip),
        ServiceModel {
            settings: ServiceSettings { scheduler: SchedulerKind::Rr, ..Default::default() },
            servers: servers.clone(),
        },
    );
    table.services.insert(
        ServiceKey::new(Protocol::Udp, vip),
        ServiceModel { settings: ServiceSettings { scheduler: SchedulerKind::Rr, ..Default::default() }, servers },
    );
    Ok(Config {
        // The dashboard and TCP API, with a token made up for this run.
        api: ApiConfig {
            socket,
            listen: Some(ui),
            token: Some(crate::ui::session::random_hex(16)),
            read_only_token: None,
        },
        director: DirectorConfig::default(),
        table,
        health: Default::default(),
        http: vec![http],
        packet_engine: None,
        vrrp: Vec::new(),
        sync: None,
    })
}

/// Answers every datagram with the server's name.
async fn serve_udp(socket: UdpSocket, name: String) {
    let local = socket.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let reply = format!("Hello from real server {name} ({local}, udp)\n");
    let mut buf = [0u8; 2048];
    while let Ok((_, from)) = socket.recv_from(&mut buf).await {
        let _ = socket.send_to(reply.as_bytes(), from).await;
    }
}

async fn serve_http(listener: TcpListener, name: String) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(answer(stream, name.clone()));
    }
}

/// Answers every request on a keep-alive connection with the server's name.
async fn answer(mut stream: TcpStream, name: String) {
    let local = stream.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 64 * 1024 {
                return;
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let close = head.contains("connection: close") || head.starts_with("get / http/1.0");
        buf.drain(..end + 4);
        let body = format!("Hello from real server {name} ({local})\n");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Real-Server: {name}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if stream.write_all(resp.as_bytes()).await.is_err() || close {
            return;
        }
    }
}
