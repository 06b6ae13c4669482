//! `rvsd demo`: three in-process HTTP real servers on loopback that answer with their own
//! names, a virtual service in front of them, and the API, so rvs can be tried in one command.

use std::net::SocketAddr;

use rvs_config::{ApiConfig, Config, DirectorConfig};
use rvs_core::{RealServerSettings, SchedulerKind, ServiceKey, ServiceModel, ServiceSettings, TableModel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts the demo real servers and returns the configuration that fronts them.
pub async fn start(vip: SocketAddr, socket: std::path::PathBuf) -> std::io::Result<Config> {
    let mut servers = Vec::new();
    for i in 1..=3 {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let name = format!("rs{i}");
        tokio::spawn(serve_http(listener, name));
        servers.push(RealServerSettings::new(addr));
    }
    let mut table = TableModel::default();
    table.services.insert(
        ServiceKey::tcp(vip),
        ServiceModel { settings: ServiceSettings { scheduler: SchedulerKind::Rr, ..Default::default() }, servers },
    );
    Ok(Config {
        api: ApiConfig { socket, listen: None, token: None },
        director: DirectorConfig::default(),
        table,
        health: Default::default(),
    })
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
