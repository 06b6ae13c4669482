//! Carries out a parsed command against rvsd and returns the exit status, as ipvsadm's:
//! 0 done; 2 a command line ipvsadm refuses, or no daemon to talk to; 255 (ipvsadm's -1) a
//! change the daemon refused or an option popt refuses; 1 a listing that failed.

use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

use rvs_api::{
    ApiCommand, CommandBatch, ConnectionList, HttpServiceList, InfoView, ServiceList, ServiceView, TemplateList,
    TimeoutsView,
};
use serde_json::Value;

use crate::addr::{Numeric, Resolver, SystemResolver};
use crate::client::{encode_segment, Client, ClientError, Endpoint};
use crate::parse::{self, Command, ListArgs, ListView, ServiceRef};
use crate::{format, help, request, restore};

/// Why a command failed: what to print on stderr and the exit status.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: i32,
}

impl Failure {
    fn new(message: impl Into<String>, code: i32) -> Self {
        Self { message: message.into(), code }
    }

    /// A failed call; `code` is the status for an answer that refused it.
    fn client(e: ClientError, code: i32) -> Self {
        match e {
            ClientError::Connect(m) => Failure::new(
                format!("{m}\nAre you sure that rvsd is running (and --api or RVSADM_API names its socket)?"),
                2,
            ),
            ClientError::Api { status: 401, error } => Failure::new(format!("rvsd: {}", error.message), 2),
            ClientError::Api { error, .. } => Failure::new(error.message, code),
            ClientError::Protocol(m) => Failure::new(m, 1),
        }
    }
}

type Result<T> = std::result::Result<T, Failure>;

/// Runs `rvsadm` with `argv` (program name first); the exit status.
pub fn main_with(argv: &[String]) -> i32 {
    let program = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|s| s.to_str())
        .unwrap_or("rvsadm")
        .to_string();
    let inv = match parse::parse(argv) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{}", e.message);
            return e.code;
        }
    };
    let out = match &inv.command {
        Command::Help => Ok(help::usage(&program)),
        Command::Version => Ok(help::version()),
        Command::Completions(shell) => Ok(help::completions(shell).unwrap_or_default()),
        cmd => {
            let client = Client::new(Endpoint::resolve(inv.api.as_deref()));
            run(&client, cmd)
        }
    };
    match out {
        Ok(text) => {
            emit(&text);
            0
        }
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{}", f.message);
            }
            f.code
        }
    }
}

fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (rvsadm -L | head) is not an error.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn json(v: &impl serde::Serialize) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Runs one command; the text for stdout.
pub fn run(client: &Client, cmd: &Command) -> Result<String> {
    match cmd {
        Command::List(args) if args.watch.is_some() => watch(client, args),
        Command::List(args) => list(client, args),
        Command::Save { numeric, json: as_json } => save(client, *numeric, *as_json),
        Command::ConfigDiff => config_diff(client).map(|(text, _)| text),
        Command::SaveConfig => save_config(client),
        Command::Restore { fullnat } => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| Failure::new(format!("reading stdin: {e}"), 1))?;
            restore_text(client, &text, *fullnat).map(|_| String::new())
        }
        Command::StartDaemon(spec) => http_change(client, "POST", "/v1/sync", Some(spec)),
        Command::StopDaemon(state) => {
            http_change::<Value>(client, "DELETE", &format!("/v1/sync/{}", encode_segment(state)), None)
        }
        Command::AddRule(a) => {
            let path = format!("/v1/http/{}/rules", http_segment(&a.service));
            http_change(client, "POST", &path, Some(&a.spec()))
        }
        Command::DeleteRule { service, name } => {
            let path = format!("/v1/http/{}/rules/{}", http_segment(service), encode_segment(name));
            http_change::<Value>(client, "DELETE", &path, None)
        }
        Command::AddServer(a) | Command::EditServer(a) if a.pool.is_some() => {
            let pool = a.pool.as_deref().unwrap_or_default();
            let base = format!("/v1/http/{}/pools/{}/servers", http_segment(&a.service), encode_segment(pool));
            let spec = request::server_spec(a, a.method);
            let (method, path) = match cmd {
                Command::AddServer(_) => ("POST", base),
                _ => ("PUT", format!("{base}/{}", encode_segment(&a.addr.to_string()))),
            };
            http_change(client, method, &path, Some(&spec))
        }
        Command::DeleteServer { service, addr, pool: Some(pool) } => {
            let path = format!(
                "/v1/http/{}/pools/{}/servers/{}",
                http_segment(service),
                encode_segment(pool),
                encode_segment(&addr.to_string())
            );
            http_change::<Value>(client, "DELETE", &path, None)
        }
        other => {
            let api = request::to_api(other, false).expect("every other command changes the table");
            apply(client, &[api]).map_err(|(_, f)| f).map(|_| String::new())
        }
    }
}

/// Applies `cmds` as one batch. On refusal: the index of the command at fault (when rvsd
/// names one) and the failure, in ipvsadm's words where it has some.
fn apply(client: &Client, cmds: &[ApiCommand]) -> std::result::Result<(), (Option<usize>, Failure)> {
    let batch = CommandBatch { commands: cmds.to_vec() };
    match client.send::<_, Value>("POST", "/v1/commands", &batch) {
        Ok(_) => Ok(()),
        Err(ClientError::Api { status, error }) if status != 401 => {
            let index = error
                .field
                .as_deref()
                .and_then(|f| f.strip_prefix("commands["))
                .and_then(|f| f.split(']').next())
                .and_then(|i| i.parse::<usize>().ok());
            let cmd = index.and_then(|i| cmds.get(i)).or(if cmds.len() == 1 { cmds.first() } else { None });
            let message = cmd
                .and_then(|c| request::ipvs_strerror(c, status, error.code.as_deref()))
                .map(str::to_string)
                .unwrap_or(error.message);
            Err((index, Failure::new(message, 255)))
        }
        Err(e) => Err((None, Failure::client(e, 255))),
    }
}

/// A rule added or deleted. rvsd's message when it refuses (it names the service, rule or
/// pool at fault), exit status 255 as for the other changes it refuses.
/// A change to an http service through its own call: rvsd's message on refusal.
fn http_change<T: serde::Serialize>(client: &Client, method: &str, path: &str, spec: Option<&T>) -> Result<String> {
    let answer: std::result::Result<Value, ClientError> = match spec {
        Some(spec) => client.send(method, path, spec),
        None => client.call(method, path, None),
    };
    match answer {
        Ok(_) => Ok(String::new()),
        Err(ClientError::Api { status, error }) if status != 401 => {
            // `no rule `x`` alone would not say it was --before's.
            let message = match error.field.as_deref() {
                Some("before") => format!("{} (--before)", error.message),
                _ => error.message,
            };
            Err(Failure::new(message, 255))
        }
        Err(e) => Err(Failure::client(e, 255)),
    }
}

/// `--config-diff`: the lines a write would change (with the file's name), and the digest of
/// what it would write.
fn config_diff(client: &Client) -> Result<(String, Value)> {
    let d: Value = client.get("/v1/config/diff").map_err(|e| Failure::client(e, 1))?;
    let file = d["file"].as_str().unwrap_or("");
    let mut out = String::new();
    if d["changed"] == true {
        out.push_str(&format!("{file} differs from what runs; a reload of it would:\n"));
        for c in d["reload_would"].as_array().into_iter().flatten() {
            out.push_str(&format!("  {}\n", c.as_str().unwrap_or("")));
        }
    } else {
        out.push_str(&format!("{file} says what runs\n"));
    }
    if d["differs"] == true {
        out.push_str(&format!("--- {file}\n+++ {file} (what runs)\n"));
        for l in d["diff"].as_array().into_iter().flatten() {
            let op = l["op"].as_str().unwrap_or(" ");
            if op != " " {
                out.push_str(&format!("{op}{}\n", l["text"].as_str().unwrap_or("")));
            }
        }
    }
    Ok((out, d))
}

/// `--save-config`: the difference, then the write.
fn save_config(client: &Client) -> Result<String> {
    let (mut out, d) = config_diff(client)?;
    if d["differs"] != true {
        out.push_str("nothing to write\n");
        return Ok(out);
    }
    let body = serde_json::json!({"digest": d["digest"]});
    let r: Value = client.send("POST", "/v1/config/save", &body).map_err(|e| Failure::client(e, 1))?;
    out.push_str(&format!(
        "written to {} (the previous file is {})\n",
        r["file"].as_str().unwrap_or(""),
        r["previous"].as_str().unwrap_or("")
    ));
    Ok(out)
}

/// `-R` of `text`: every line or none.
pub fn restore_text(client: &Client, text: &str, fullnat: bool) -> Result<()> {
    let cmds = restore::parse_rules(text, fullnat).map_err(|e| Failure::new(e.to_string(), e.code))?;
    if cmds.is_empty() {
        return Ok(());
    }
    let api: Vec<ApiCommand> = cmds.iter().map(|(_, c)| c.clone()).collect();
    apply(client, &api).map_err(|(index, f)| match index.and_then(|i| cmds.get(i)) {
        Some((line, _)) if f.code == 255 => Failure::new(format!("line {line}: {}", f.message), f.code),
        _ => f,
    })
}

fn resolver(numeric: bool) -> Box<dyn Resolver> {
    if numeric {
        Box::new(Numeric)
    } else {
        Box::new(SystemResolver::new())
    }
}

fn service_path(s: &ServiceRef) -> String {
    let id = s.id();
    format!("/v1/services/{}/{}", id.protocol, encode_segment(&id.address))
}

/// An http service's address as a path segment (parsing refuses `-f` with the http commands).
fn http_segment(s: &ServiceRef) -> String {
    encode_segment(&s.id().address)
}

fn save(client: &Client, numeric: bool, as_json: bool) -> Result<String> {
    if as_json {
        let v: CommandBatch = client.get("/v1/save").map_err(|e| Failure::client(e, 1))?;
        return Ok(json(&v));
    }
    let list: ServiceList = client.get("/v1/services").map_err(|e| Failure::client(e, 1))?;
    Ok(format::save(&list, resolver(numeric).as_ref()))
}

/// One listing.
pub fn list(client: &Client, args: &ListArgs) -> Result<String> {
    let res = resolver(args.format.numeric);
    let fail = |e| Failure::client(e, 1);
    Ok(match &args.view {
        ListView::All => {
            let services: ServiceList = client.get("/v1/services").map_err(fail)?;
            if args.json {
                json(&services)
            } else {
                let info: InfoView = client.get("/v1/info").map_err(fail)?;
                format::list_all(&info.version, &services, &args.format, res.as_ref())
            }
        }
        ListView::Service(s) => {
            let svc: ServiceView = client.get(&service_path(s)).map_err(|e| match e {
                ClientError::Api { status: 404, .. } => Failure::new("No such service", 1),
                e => fail(e),
            })?;
            if args.json {
                json(&svc)
            } else {
                format::list_service(&svc, &args.format, res.as_ref())
            }
        }
        ListView::Connections => {
            let conns: ConnectionList = client.get("/v1/connections").map_err(fail)?;
            let templates: TemplateList = client.get("/v1/templates").map_err(fail)?;
            if args.json {
                json(&serde_json::json!({"connections": conns.connections, "templates": templates.templates}))
            } else {
                format::connections(&conns, &templates, args.format.persistent_conn, res.as_ref())
            }
        }
        ListView::Timeout => {
            let t: TimeoutsView = client.get("/v1/timeouts").map_err(fail)?;
            if args.json {
                json(&t)
            } else {
                format::timeout(&t)
            }
        }
        ListView::Daemon => {
            let sync: rvs_api::SyncView = client.get("/v1/sync").map_err(fail)?;
            if args.json {
                json(&sync)
            } else {
                format::daemon(&sync)
            }
        }
        ListView::Vrrp => {
            let vrrp: rvs_api::VrrpView = client.get("/v1/vrrp").map_err(fail)?;
            if args.json {
                json(&vrrp)
            } else {
                format::vrrp(&vrrp)
            }
        }
        ListView::Rules(None) => {
            let list: HttpServiceList = client.get("/v1/http").map_err(fail)?;
            if args.json {
                json(&list)
            } else {
                let info: InfoView = client.get("/v1/info").map_err(fail)?;
                format::http_rules(Some(&info.version), &list.services, &args.format, res.as_ref())
            }
        }
        ListView::Rules(Some(s)) => {
            let list: HttpServiceList = client.get("/v1/http").map_err(fail)?;
            let svc = list
                .services
                .into_iter()
                .find(|v| v.address.parse::<std::net::SocketAddr>().is_ok_and(|a| Some(a) == s.addr()))
                .ok_or_else(|| Failure::new(format!("no such http virtual service {}", s.id().address), 1))?;
            if args.json {
                json(&svc)
            } else {
                format::http_rules(None, std::slice::from_ref(&svc), &args.format, res.as_ref())
            }
        }
    })
}

/// watch(1)'s header: the interval and the command line, then the time (UTC), and a blank line.
fn watch_header(interval: f64, now: std::time::SystemTime) -> String {
    let words: Vec<String> = std::env::args().collect();
    let program = words.first().map(|w| w.rsplit('/').next().unwrap_or(w)).unwrap_or("rvsadm");
    let cmdline = std::iter::once(program).chain(words.iter().skip(1).map(String::as_str)).collect::<Vec<_>>();
    let secs = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("Every {interval:.1}s: {}    {}\n\n", cmdline.join(" "), utc(secs))
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the epoch (Howard Hinnant's civil_from_days).
fn utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

/// `--watch`: the listing again every interval, `count` times or until interrupted.
fn watch(client: &Client, args: &ListArgs) -> Result<String> {
    let interval = Duration::from_secs_f64(args.watch.unwrap_or(2.0));
    let tty = std::io::stdout().is_terminal();
    let mut shown = 0u64;
    loop {
        let frame = list(client, args)?;
        let mut text = String::new();
        if tty {
            // As watch(1): home and clear, then a header line and a blank one.
            text.push_str("\x1b[H\x1b[2J");
            text.push_str(&watch_header(args.watch.unwrap_or(2.0), std::time::SystemTime::now()));
        } else if shown > 0 {
            text.push('\n');
        }
        text.push_str(&frame);
        emit(&text);
        shown += 1;
        if args.count.is_some_and(|c| shown >= c) {
            return Ok(String::new());
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_301_045), "2026-12-03 12:30:45 UTC");
    }
}
