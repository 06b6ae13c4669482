//! FTP for the tests: Debian's `vsftpd` as a real server (anonymous, in a temporary directory
//! with its own configuration, on one loopback address; stopped when dropped) and Python's
//! `ftplib` as the client ([`ftp_client`]), in each of the four data modes.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs vsftpd.
pub const VSFTPD: &str = "/usr/sbin/vsftpd";

/// Whether vsftpd and python3 are there and the tests run as root (vsftpd drops to its `ftp`
/// user for anonymous sessions): the FTP tests say so and pass when not.
pub fn ftp_tools() -> bool {
    crate::is_root()
        && Path::new(VSFTPD).exists()
        && Command::new("python3").arg("-c").arg("import ftplib").status().is_ok_and(|s| s.success())
}

/// A vsftpd real server: anonymous, its root holding `name.txt` (its name) and `file.bin`
/// (1 MiB of a pattern of its own), and `incoming/` for uploads.
pub struct Vsftpd {
    pub name: String,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

/// The 1 MiB `file.bin` of the real server named `name`.
pub fn ftp_file(name: &str) -> Vec<u8> {
    let seed = name.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let mut x = seed | 1;
    (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn ftp_user_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("ftp:"))?;
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

impl Vsftpd {
    /// Starts vsftpd on `addr` (IPv4 or IPv6) and waits until it answers; its passive ports
    /// are `pasv_ports`.
    pub fn start(name: &str, addr: SocketAddr, pasv_ports: (u16, u16)) -> Vsftpd {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(root.join("incoming")).expect("ftp root");
        std::fs::create_dir_all(&empty).expect("secure_chroot_dir");
        use std::os::unix::fs::PermissionsExt;
        // vsftpd refuses a writable chroot root, and wants its empty directory not writable.
        for d in [dir.path(), &root, &empty] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let (uid, gid) = ftp_user_ids().expect("the ftp user (Debian's vsftpd package makes it)");
        std::os::unix::fs::chown(root.join("incoming"), Some(uid), Some(gid)).expect("chown incoming");
        std::fs::write(root.join("name.txt"), format!("{name}\n")).expect("name.txt");
        std::fs::write(root.join("file.bin"), ftp_file(name)).expect("file.bin");
        let listen = match addr.ip() {
            IpAddr::V4(ip) => format!("listen=YES\nlisten_ipv6=NO\nlisten_address={ip}\n"),
            IpAddr::V6(ip) => format!("listen=NO\nlisten_ipv6=YES\nlisten_address6={ip}\n"),
        };
        let conf = format!(
            "{listen}listen_port={port}\nbackground=NO\nanonymous_enable=YES\nlocal_enable=NO\n\
             anon_root={root}\nno_anon_password=YES\nwrite_enable=YES\nanon_upload_enable=YES\n\
             anon_umask=022\npasv_enable=YES\npasv_min_port={lo}\npasv_max_port={hi}\nport_enable=YES\n\
             connect_from_port_20=NO\nseccomp_sandbox=NO\nsecure_chroot_dir={empty}\n\
             xferlog_enable=YES\nxferlog_std_format=NO\nvsftpd_log_file={log}\nlog_ftp_protocol=YES\n\
             max_clients=0\nmax_per_ip=0\n",
            port = addr.port(),
            root = root.display(),
            lo = pasv_ports.0,
            hi = pasv_ports.1,
            empty = empty.display(),
            log = dir.path().join("vsftpd.log").display(),
        );
        let conf_path = dir.path().join("vsftpd.conf");
        std::fs::write(&conf_path, conf).expect("vsftpd.conf");
        let out = std::fs::File::create(dir.path().join("stdout.log")).expect("stdout log");
        let child = Command::new(VSFTPD)
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start vsftpd");
        let v = Vsftpd { name: name.to_string(), addr, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "vsftpd {name} on {addr} does not answer: {}", v.stdout());
            std::thread::sleep(Duration::from_millis(20));
        }
        v
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    /// Its log: commands, replies and transfers, one client address per line.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vsftpd.log")).unwrap_or_default()
    }

    /// A file a client uploaded into `incoming/`.
    pub fn uploaded(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.path().join("root/incoming").join(name)).ok()
    }
}

impl Drop for Vsftpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How `ftplib` opens its data connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtpMode {
    /// `PASV` (ftplib made to trust the address of the `227`, so a wrong one fails).
    Pasv,
    /// `EPSV`.
    Epsv,
    /// `PORT`.
    Port,
    /// `EPRT`.
    Eprt,
}

impl FtpMode {
    fn name(self) -> &'static str {
        match self {
            FtpMode::Pasv => "pasv",
            FtpMode::Epsv => "epsv",
            FtpMode::Port => "port",
            FtpMode::Eprt => "eprt",
        }
    }
}

const CLIENT: &str = r#"
import ftplib, socket, sys
host, port, src, mode, op, local, remote = sys.argv[1:8]

class Client(ftplib.FTP):
    xmode = "pasv"

    def makepasv(self):
        if self.xmode == "epsv":
            return ftplib.parse229(self.sendcmd("EPSV"), self.sock.getpeername())
        if self.xmode == "pasv":
            # The address of the 227 itself (ftplib would use the control connection's).
            return ftplib.parse227(self.sendcmd("PASV"))
        return super().makepasv()

    def makeport(self):
        if self.xmode != "eprt":
            return super().makeport()
        sock = socket.create_server((self.sock.getsockname()[0], 0), family=self.af, backlog=1)
        self.sendeprt(sock.getsockname()[0], sock.getsockname()[1])
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        return sock

f = Client(timeout=20)
f.connect(host, int(port), source_address=(src, 0) if src else None)
f.login()
f.xmode = mode
f.set_pasv(mode in ("pasv", "epsv"))
name = []
f.retrlines("RETR name.txt", name.append)
if op == "retr":
    with open(local, "wb") as out:
        f.retrbinary("RETR " + remote, out.write)
else:
    with open(local, "rb") as inp:
        f.storbinary("STOR " + remote, inp)
f.quit()
print(name[0])
"#;

/// One client session through `server` (from the source address `src`): logs in, reads
/// `name.txt` and then downloads `remote` into `local` (`retr`) or uploads `local` as
/// `remote` (`stor`), every data connection in `mode`. The name read, or the client's error.
pub fn ftp_client(
    server: SocketAddr,
    src: Option<IpAddr>,
    mode: FtpMode,
    op: &str,
    local: &Path,
    remote: &str,
) -> Result<String, String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .arg(server.ip().to_string())
        .arg(server.port().to_string())
        .arg(src.map(|s| s.to_string()).unwrap_or_default())
        .arg(mode.name())
        .arg(op)
        .arg(local)
        .arg(remote)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!("ftplib {mode:?} {op} {remote}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
