//! Writing the running table back to the file: the file's own text is the base (its `[api]`,
//! `[director]`, checks, quorum, TLS, VRRP and sync settings stay as written), and what the
//! API can change at run time (virtual services and their settings, real servers, timeouts,
//! the director's switches, http rules and pool servers) is rewritten from the running model.
//! The result is parsed back and must give exactly the running model, or it is refused; a
//! line diff shows what the write would change. Comments and formatting are not kept.

use std::path::Path;

use rvs_core::addr::parse_endpoint;
use rvs_core::sched::MH_DEFAULT_TABLE_SIZE;
use rvs_core::{
    Family, ForwardingMethod, MarkKey, Netmask, Protocol, ProxyProtocol, RealServerSettings, ServiceKey,
    ServiceSettings, TableModel, Timeouts,
};
use rvs_model::http::L7ServiceConfig;
use toml::{Table, Value};

use crate::Config;

/// Why the running configuration cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("the configuration file is not valid TOML: {0}")]
    Toml(String),
    #[error("the rewritten file does not validate: {0}")]
    Invalid(String),
    #[error("the rewritten file would not load as the running configuration ({0}); nothing written")]
    Mismatch(&'static str),
}

/// The file text that says what runs: `text` (the file as it is) with the run-time parts
/// replaced by `table` and `http`. Checked by parsing it back (`path` names it in errors).
pub fn rewrite(text: &str, path: &Path, table: &TableModel, http: &[L7ServiceConfig]) -> Result<String, SaveError> {
    let mut doc: Table = text.parse().map_err(|e: toml::de::Error| SaveError::Toml(e.message().to_string()))?;
    set_timeouts(&mut doc, &table.timeouts);
    let director = doc.entry("director").or_insert_with(|| Value::Table(Table::new()));
    if let Some(d) = director.as_table_mut() {
        set_bool(d, "expire_nodest_conn", table.options.expire_nodest_conn);
        set_bool(d, "expire_quiescent_template", table.options.expire_quiescent_template);
    }
    if doc.get("director").and_then(Value::as_table).is_some_and(Table::is_empty) {
        doc.remove("director");
    }
    let old: Vec<Table> = match doc.remove("service") {
        Some(Value::Array(a)) => a.into_iter().filter_map(|v| v.as_table().cloned()).collect(),
        _ => Vec::new(),
    };
    let marks: Vec<Value> = table
        .marks
        .values()
        .map(|d| {
            let mut t = Table::new();
            t.insert("mark".into(), i64::from(d.mark.get()).into());
            let matches = d.matches.iter().map(|m| {
                let mut x = Table::new();
                if m.protocol != Protocol::Tcp {
                    x.insert("protocol".into(), m.protocol.name().into());
                }
                x.insert("address".into(), m.dest.to_string().into());
                let ports: Value = if m.ports.lo() == m.ports.hi() {
                    i64::from(m.ports.lo()).into()
                } else {
                    m.ports.to_string().into()
                };
                x.insert("ports".into(), ports);
                Value::Table(x)
            });
            t.insert("match".into(), Value::Array(matches.collect()));
            Value::Table(t)
        })
        .collect();
    doc.remove("firewall_mark");
    if !marks.is_empty() {
        doc.insert("firewall_mark".into(), Value::Array(marks));
    }
    let mut services = Vec::new();
    let mut written: Vec<ServiceKey> = Vec::new();
    for mut entry in old {
        let Some((http_kind, key)) = entry_key(&entry) else { continue };
        if http_kind {
            if let Some(cfg) = http.iter().find(|h| ServiceKey::Addr(h.key) == key) {
                http_entry(&mut entry, cfg);
                services.push(Value::Table(entry));
                written.push(key);
            }
        } else if let Some(svc) = table.services.get(&key) {
            l4_entry(&mut entry, &key, &svc.settings, &svc.servers);
            services.push(Value::Table(entry));
            written.push(key);
        }
    }
    for (key, svc) in &table.services {
        if !written.contains(key) {
            let mut entry = Table::new();
            match key {
                ServiceKey::Addr(a) => {
                    if a.protocol != Protocol::Tcp {
                        entry.insert("protocol".into(), a.protocol.name().into());
                    }
                    entry.insert("address".into(), a.addr.to_string().into());
                }
                ServiceKey::Mark(m) => {
                    entry.insert("firewall_mark".into(), i64::from(m.mark.get()).into());
                    if m.family == Family::V6 {
                        entry.insert("family".into(), "ipv6".into());
                    }
                }
            }
            l4_entry(&mut entry, key, &svc.settings, &svc.servers);
            services.push(Value::Table(entry));
        }
    }
    if !services.is_empty() {
        doc.insert("service".into(), Value::Array(services));
    }
    let out = toml::to_string(&doc).map_err(|e| SaveError::Toml(e.to_string()))?;
    let back = Config::parse(&out, path).map_err(|e| SaveError::Invalid(e.to_string()))?;
    if back.table != *table {
        return Err(SaveError::Mismatch("virtual services"));
    }
    if back.http != http {
        return Err(SaveError::Mismatch("http virtual services"));
    }
    Ok(out)
}

/// `(is http, key)` of a `[[service]]` table as written; `None` when it does not parse (the
/// file loaded, so every entry does).
fn entry_key(entry: &Table) -> Option<(bool, ServiceKey)> {
    let http = entry.get("kind").and_then(Value::as_str) == Some("http");
    if let Some(m) = entry.get("firewall_mark").and_then(Value::as_integer) {
        let mark = rvs_core::Mark::new(u32::try_from(m).ok()?)?;
        let family = if entry.get("family").and_then(Value::as_str) == Some("ipv6") { Family::V6 } else { Family::V4 };
        return Some((http, ServiceKey::Mark(MarkKey { mark, family })));
    }
    let protocol = match entry.get("protocol").and_then(Value::as_str) {
        Some(p) => p.parse::<Protocol>().ok()?,
        None => Protocol::Tcp,
    };
    let addr = parse_endpoint(entry.get("address")?.as_str()?, None).ok()?;
    Some((http, ServiceKey::new(protocol, addr)))
}

fn set_timeouts(doc: &mut Table, t: &Timeouts) {
    let had = doc.contains_key("timeouts");
    if !had && *t == Timeouts::default() {
        return;
    }
    let mut tt = Table::new();
    tt.insert("tcp".into(), i64::from(t.tcp_secs).into());
    tt.insert("tcpfin".into(), i64::from(t.tcpfin_secs).into());
    tt.insert("udp".into(), i64::from(t.udp_secs).into());
    doc.insert("timeouts".into(), Value::Table(tt));
}

fn set_bool(t: &mut Table, name: &str, v: bool) {
    if v {
        t.insert(name.into(), true.into());
    } else {
        t.remove(name);
    }
}

/// Sets `name` to `v`, or removes it.
fn set_opt(t: &mut Table, name: &str, v: Option<Value>) {
    match v {
        Some(v) => {
            t.insert(name.into(), v);
        }
        None => {
            t.remove(name);
        }
    }
}

/// A TCP/UDP service's settings and real servers into its table (the rest of it, checks and
/// quorum, stays).
fn l4_entry(entry: &mut Table, key: &ServiceKey, s: &ServiceSettings, servers: &[RealServerSettings]) {
    let keep = |entry: &Table, name: &str| entry.contains_key(name);
    let scheduler = (s.scheduler != ServiceSettings::default().scheduler || keep(entry, "scheduler"))
        .then(|| Value::from(s.scheduler.name()));
    set_opt(entry, "scheduler", scheduler);
    match &s.persistence {
        Some(p) => {
            entry.insert("persistent".into(), i64::from(p.timeout_secs).into());
            let host = p.netmask == Netmask::host(key.family().unspecified());
            set_opt(entry, "netmask", (!host || keep(entry, "netmask")).then(|| p.netmask.to_string().into()));
        }
        None => {
            entry.remove("persistent");
            entry.remove("netmask");
        }
    }
    let flags: Vec<Value> = s.flags.names().into_iter().map(Value::from).collect();
    set_opt(entry, "sched_flags", (!flags.is_empty()).then_some(Value::Array(flags)));
    let mh = (s.mh_table_size != MH_DEFAULT_TABLE_SIZE || keep(entry, "mh_table_size"))
        .then(|| Value::from(i64::from(s.mh_table_size)));
    set_opt(entry, "mh_table_size", mh);
    set_opt(entry, "sorry_server", s.sorry_server.map(|a| a.to_string().into()));
    set_opt(entry, "max_connections", s.max_connections.map(|n| i64::from(n.get()).into()));
    let old = take_servers(entry);
    set_servers(entry, key.port(), old, servers);
}

fn take_servers(entry: &mut Table) -> Vec<Table> {
    match entry.remove("real_server") {
        Some(Value::Array(a)) => a.into_iter().filter_map(|v| v.as_table().cloned()).collect(),
        _ => Vec::new(),
    }
}

/// The real servers, in running order, each from its old table when it had one (its check
/// stays).
fn set_servers(entry: &mut Table, port: u16, old: Vec<Table>, servers: &[RealServerSettings]) {
    let addr_of = |t: &Table| t.get("address").and_then(Value::as_str).and_then(|a| parse_endpoint(a, Some(port)).ok());
    let list: Vec<Value> = servers
        .iter()
        .map(|rs| {
            let mut t = old.iter().find(|t| addr_of(t) == Some(rs.addr)).cloned().unwrap_or_default();
            if addr_of(&t) != Some(rs.addr) {
                t.insert("address".into(), rs.addr.to_string().into());
            }
            server_fields(&mut t, rs);
            Value::Table(t)
        })
        .collect();
    if !list.is_empty() {
        entry.insert("real_server".into(), Value::Array(list));
    }
}

fn server_fields(t: &mut Table, rs: &RealServerSettings) {
    let keep = |t: &Table, name: &str| t.contains_key(name);
    let weight = (rs.weight != 1 || keep(t, "weight")).then(|| Value::from(i64::from(rs.weight)));
    set_opt(t, "weight", weight);
    let method = (rs.method != ForwardingMethod::FullNat || keep(t, "method")).then(|| Value::from(rs.method.name()));
    set_opt(t, "method", method);
    set_opt(t, "u_threshold", (rs.u_threshold != 0).then(|| i64::from(rs.u_threshold).into()));
    set_opt(t, "l_threshold", (rs.l_threshold != 0).then(|| i64::from(rs.l_threshold).into()));
    let pp = (rs.proxy_protocol != ProxyProtocol::Off || keep(t, "proxy_protocol"))
        .then(|| Value::from(rs.proxy_protocol.name()));
    set_opt(t, "proxy_protocol", pp);
}

/// An http service's rules (in order) and its pools' real servers.
fn http_entry(entry: &mut Table, cfg: &L7ServiceConfig) {
    let old_rules: Vec<Table> = match entry.remove("rule") {
        Some(Value::Array(a)) => a.into_iter().filter_map(|v| v.as_table().cloned()).collect(),
        _ => Vec::new(),
    };
    let rules: Vec<Value> = cfg
        .rules
        .iter()
        .map(|r| {
            let mut t = old_rules
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some(r.name.as_str()))
                .cloned()
                .unwrap_or_default();
            t.insert("name".into(), r.name.clone().into());
            t.insert("match".into(), Value::Array(r.matches.iter().map(|m| m.to_string().into()).collect()));
            t.insert("pool".into(), r.pool.clone().into());
            Value::Table(t)
        })
        .collect();
    if !rules.is_empty() {
        entry.insert("rule".into(), Value::Array(rules));
    }
    if let Some(Value::Array(pools)) = entry.get_mut("pool") {
        for p in pools.iter_mut().filter_map(Value::as_table_mut) {
            let Some(pc) = p.get("name").and_then(Value::as_str).and_then(|n| cfg.find_pool(n)) else { continue };
            let servers = pc.servers.clone();
            let old = take_servers(p);
            set_servers(p, cfg.key.addr.port(), old, &servers);
        }
    }
}

/// One line of a line diff: `' '` kept, `'-'` only in the old text, `'+'` only in the new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    pub op: char,
    pub text: String,
}

/// The line diff of `old` and `new` (a longest common subsequence; files are small).
pub fn line_diff(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Common head and tail first: a small edit of a long file stays cheap.
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..].iter().rev().zip(b[head..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (am, bm) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut out: Vec<DiffLine> = a[..head].iter().map(|l| DiffLine { op: ' ', text: l.to_string() }).collect();
    if am.len().saturating_mul(bm.len()) > 4_000_000 {
        // Too big to compare line by line: all of the old out, all of the new in.
        out.extend(am.iter().map(|l| DiffLine { op: '-', text: l.to_string() }));
        out.extend(bm.iter().map(|l| DiffLine { op: '+', text: l.to_string() }));
    } else {
        let (n, m) = (am.len(), bm.len());
        let mut lcs = vec![0u32; (n + 1) * (m + 1)];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * (m + 1) + j] = if am[i] == bm[j] {
                    lcs[(i + 1) * (m + 1) + j + 1] + 1
                } else {
                    lcs[(i + 1) * (m + 1) + j].max(lcs[i * (m + 1) + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                out.push(DiffLine { op: ' ', text: am[i].to_string() });
                i += 1;
                j += 1;
            } else if j < m && (i == n || lcs[i * (m + 1) + j + 1] >= lcs[(i + 1) * (m + 1) + j]) {
                out.push(DiffLine { op: '+', text: bm[j].to_string() });
                j += 1;
            } else {
                out.push(DiffLine { op: '-', text: am[i].to_string() });
                i += 1;
            }
        }
    }
    out.extend(a[a.len() - tail..].iter().map(|l| DiffLine { op: ' ', text: l.to_string() }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::Command;

    const FILE: &str = r#"
[api]
socket = "/tmp/x.sock"

[[service]]
address = "127.0.0.1:80"
scheduler = "rr"
check = { type = "tcp", interval = 1 }

  [[service.real_server]]
  address = "127.0.0.1:8001"
  weight = 2

  [[service.real_server]]
  address = "127.0.0.1:8002"
"#;

    fn load(text: &str) -> Config {
        Config::parse(text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn unchanged_table_round_trips() {
        let c = load(FILE);
        let out = rewrite(FILE, Path::new("t.toml"), &c.table, &c.http).unwrap();
        let back = load(&out);
        assert_eq!(back.table, c.table);
        assert_eq!(format!("{:?}", back.health), format!("{:?}", c.health), "checks stay");
        assert_eq!(back.api, c.api);
    }

    #[test]
    fn run_time_changes_are_written() {
        let c = load(FILE);
        let mut t = c.table.clone();
        let vip: std::net::SocketAddr = "127.0.0.1:80".parse().unwrap();
        let key = ServiceKey::tcp(vip);
        let mut rs = RealServerSettings::new("127.0.0.1:8001".parse().unwrap());
        rs.weight = 0;
        t.apply(&Command::EditServer { service: key, server: rs }).unwrap();
        t.apply(&Command::DeleteServer { service: key, addr: "127.0.0.1:8002".parse().unwrap() }).unwrap();
        let k2 = ServiceKey::new(Protocol::Udp, "127.0.0.1:53".parse().unwrap());
        t.apply(&Command::AddService { key: k2, settings: ServiceSettings::default() }).unwrap();
        t.apply(&Command::AddServer { service: k2, server: RealServerSettings::new("127.0.0.2:53".parse().unwrap()) })
            .unwrap();
        let out = rewrite(FILE, Path::new("t.toml"), &t, &c.http).unwrap();
        let back = load(&out);
        assert_eq!(back.table, t);
        assert_eq!(format!("{:?}", back.health), format!("{:?}", c.health));
        let diff = line_diff(FILE, &out);
        assert!(diff.iter().any(|l| l.op == '+' && l.text.contains("weight = 0")), "{diff:?}");
        assert!(diff.iter().any(|l| l.op == '-' && l.text.contains("8002")), "{diff:?}");
    }

    #[test]
    fn diff_of_equal_texts_is_all_kept() {
        assert!(line_diff("a\nb\nc", "a\nb\nc").iter().all(|l| l.op == ' '));
        let d = line_diff("a\nb\nc", "a\nx\nc");
        let ops: String = d.iter().map(|l| l.op).collect();
        assert_eq!(ops, " +- ");
    }
}
