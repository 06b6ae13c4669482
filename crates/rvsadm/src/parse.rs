//! argv → a validated [`Command`], with ipvsadm 1.31's grammar and messages: popt-style
//! options (clustered short options, `--long=value`, optional values), the first option must
//! be the command, the command/option legality table, the same checks in the same order and
//! the same exit codes (2 for what ipvsadm `fail`s, 255 for what popt refuses). What rvs does
//! not have yet is refused here, naming the option.

use std::net::{IpAddr, SocketAddr};

use crate::addr::{self, Endpoint, Lookup};
use crate::options::{self, Action, ArgKind, Cmd, Opt, OptDef, OPTIONS};

/// ipvsadm's MAX_TIMEOUT: 31 days.
pub const MAX_TIMEOUT: i64 = 86400 * 31;
/// ipvsadm's default persistence timeout (`-p` without a value): IPVS's
/// IP_VS_SVC_PERSISTENT_TIMEOUT, 6 minutes.
pub const DEFAULT_PERSISTENT: u32 = 360;
pub const DEFAULT_SCHEDULER: &str = "wlc";

/// A virtual service as rvsd keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceRef {
    /// `-t`, `-u`, `--sctp-service`: `tcp`, `udp` or `sctp`, and the address.
    Addr { protocol: &'static str, addr: SocketAddr },
    /// `-f MARK`, with `-6` for IPv6.
    Mark { mark: u32, ipv6: bool },
}

impl ServiceRef {
    pub fn id(&self) -> rvs_api::ServiceId {
        match self {
            ServiceRef::Addr { protocol, addr } => {
                rvs_api::ServiceId { protocol: protocol.to_string(), address: addr.to_string() }
            }
            ServiceRef::Mark { mark, ipv6 } => rvs_api::ServiceId {
                protocol: if *ipv6 { rvs_api::FWMARK6 } else { rvs_api::FWMARK }.to_string(),
                address: mark.to_string(),
            },
        }
    }

    /// The port a real server given without one gets (0 for a firewall mark: the packet's).
    pub fn port(&self) -> u16 {
        match self {
            ServiceRef::Addr { addr, .. } => addr.port(),
            ServiceRef::Mark { .. } => 0,
        }
    }

    /// The address of an address service (an http service's, for the rule commands).
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            ServiceRef::Addr { addr, .. } => Some(*addr),
            ServiceRef::Mark { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceArgs {
    pub service: ServiceRef,
    pub scheduler: String,
    pub persistent: Option<u32>,
    pub netmask: Option<String>,
    pub sched_flags: Vec<String>,
    pub mh_table_size: Option<u32>,
    /// rvs's own: `host[:port]` (the service's port when none).
    pub sorry_server: Option<SocketAddr>,
    /// rvs's own: the service's cap on client connections.
    pub max_connections: Option<u32>,
    /// `--pe NAME`: the persistence engine (`sip`).
    pub pe: Option<String>,
    /// `-o`: one-packet scheduling.
    pub one_packet: bool,
}

/// Forwarding methods: ipvsadm's three and rvs's full NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Gate,
    Tunnel,
    Masq,
    FullNat,
}

impl Method {
    /// The API's name.
    pub fn api_name(self) -> &'static str {
        match self {
            Method::Gate => "gate",
            Method::Tunnel => "tunnel",
            Method::Masq => "masq",
            Method::FullNat => "fullnat",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerArgs {
    pub service: ServiceRef,
    pub addr: SocketAddr,
    pub weight: u32,
    pub method: Method,
    pub u_threshold: u32,
    pub l_threshold: u32,
    /// rvs's own; `None` keeps the current value on edit (off on add).
    pub proxy_protocol: Option<String>,
    /// rvs's own: a real server of this pool of an http service (`--pool`).
    pub pool: Option<String>,
}

/// rvs's `--add-rule`: a rule for an http (Layer-7) virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleArgs {
    pub service: ServiceRef,
    pub name: String,
    /// The conditions in their text form (`path^=/api/`, `host=*.example.com`), all of
    /// which must hold; rvsd checks them.
    pub matches: Vec<String>,
    pub pool: String,
    /// Insert before this rule; `None` appends.
    pub before: Option<String>,
}

impl RuleArgs {
    /// The API's body for `POST /v1/http/{address}/rules`.
    pub fn spec(&self) -> rvs_api::HttpRuleSpec {
        rvs_api::HttpRuleSpec {
            name: self.name.clone(),
            matches: self.matches.clone(),
            pool: self.pool.clone(),
            before: self.before.clone(),
        }
    }
}

/// What `-L` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListView {
    All,
    Service(ServiceRef),
    Connections,
    Timeout,
    Daemon,
    /// rvs's `-L --vrrp`: the director's VRRP instances.
    Vrrp,
    /// rvs's `--list-rules` (`-L --rules`): the http services, or the one given.
    Rules(Option<ServiceRef>),
}

/// ipvsadm's FMT_* flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListFormat {
    pub numeric: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    /// rvs's `--health` view.
    pub health: bool,
    pub persistent_conn: bool,
    pub tun_info: bool,
    pub exact: bool,
    pub nosort: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListArgs {
    pub view: ListView,
    pub format: ListFormat,
    pub json: bool,
    /// Refresh interval in seconds (`--watch`, `-L -w`).
    pub watch: Option<f64>,
    /// Stop after this many listings.
    pub count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    AddService(ServiceArgs),
    EditService(ServiceArgs),
    DeleteService(ServiceRef),
    Clear,
    List(ListArgs),
    AddServer(ServerArgs),
    DeleteServer {
        service: ServiceRef,
        addr: SocketAddr,
        /// rvs's own: the http pool (`--pool`).
        pool: Option<String>,
    },
    EditServer(ServerArgs),
    /// `--set tcp tcpfin udp`; 0 keeps a value.
    SetTimeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
    Restore {
        fullnat: bool,
    },
    Save {
        numeric: bool,
        json: bool,
    },
    Zero(Option<ServiceRef>),
    AddRule(RuleArgs),
    DeleteRule {
        service: ServiceRef,
        name: String,
    },
    /// `--start-daemon master|backup` with its daemon options.
    StartDaemon(rvs_api::SyncDaemonSpec),
    /// `--stop-daemon master|backup`.
    StopDaemon(String),
    Help,
    Version,
    Completions(String),
    /// `--config-diff`: the configuration file against what runs.
    ConfigDiff,
    /// `--save-config`: what runs written to the configuration file.
    SaveConfig,
}

impl Command {
    /// ipvsadm's name of the command.
    pub fn name(&self) -> &'static str {
        match self {
            Command::AddService(_) => Cmd::Add.name(),
            Command::EditService(_) => Cmd::Edit.name(),
            Command::DeleteService(_) => Cmd::Delete.name(),
            Command::Clear => Cmd::Clear.name(),
            Command::List(ListArgs { view: ListView::Rules(_), .. }) => Cmd::ListRules.name(),
            Command::List(_) => Cmd::List.name(),
            Command::AddServer(_) => Cmd::AddServer.name(),
            Command::DeleteServer { .. } => Cmd::DeleteServer.name(),
            Command::EditServer(_) => Cmd::EditServer.name(),
            Command::SetTimeouts { .. } => Cmd::Set.name(),
            Command::Restore { .. } => Cmd::Restore.name(),
            Command::Save { .. } => Cmd::Save.name(),
            Command::Zero(_) => Cmd::Zero.name(),
            Command::AddRule(_) => Cmd::AddRule.name(),
            Command::DeleteRule { .. } => Cmd::DelRule.name(),
            Command::StartDaemon(_) => Cmd::StartDaemon.name(),
            Command::StopDaemon(_) => Cmd::StopDaemon.name(),
            Command::Help => Cmd::Help.name(),
            Command::Version => Cmd::Version.name(),
            Command::Completions(_) => Cmd::Completions.name(),
            Command::ConfigDiff => Cmd::ConfigDiff.name(),
            Command::SaveConfig => Cmd::SaveConfig.name(),
        }
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// `--api`.
    pub api: Option<String>,
    pub command: Command,
}

/// A refused command line: the message (printed as is on stderr) and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub code: i32,
}

impl ParseError {
    /// ipvsadm's `fail(2, ...)`.
    fn fail(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: 2 }
    }
    /// popt's refusals (`--foo: unknown option`): ipvsadm returns -1, exit status 255.
    fn popt(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: 255 }
    }
    fn tryhelp(program: &str) -> Self {
        Self { message: format!("Try `{program} -h' or '{program} --help' for more information."), code: 255 }
    }
    /// popt's refusal of the first word, then the pointer to the help (ipvsadm prints only
    /// the latter, which leaves the word at fault unnamed).
    fn tryhelp_after(program: &str, e: ParseError) -> Self {
        Self { message: format!("{}\n{}", e.message, Self::tryhelp(program).message), code: 255 }
    }
}

type Result<T> = std::result::Result<T, ParseError>;

/// One word of the command line: an option (with its value) or a plain argument.
enum Item {
    Opt { def: &'static OptDef, value: Option<String> },
    Arg(String),
}

/// popt's scanner: yields options and arguments in order; errors as popt words them.
struct Scanner<'a> {
    args: &'a [String],
    pos: usize,
    /// The rest of a cluster of short options (`-Ln` after `-L`).
    cluster: Option<(String, String)>,
    only_args: bool,
}

impl<'a> Scanner<'a> {
    fn new(args: &'a [String]) -> Self {
        Self { args, pos: 0, cluster: None, only_args: false }
    }

    fn next_word(&mut self) -> Option<String> {
        let w = self.args.get(self.pos).cloned();
        if w.is_some() {
            self.pos += 1;
        }
        w
    }

    fn value(&mut self, def: &'static OptDef, inline: Option<String>, word: &str) -> Result<Option<String>> {
        match def.arg {
            ArgKind::Flag => match inline {
                Some(_) => Err(ParseError::popt(format!("{word}: option does not take an argument"))),
                None => Ok(None),
            },
            ArgKind::Value(_) => match inline {
                Some(v) => Ok(Some(v)),
                None => match self.next_word() {
                    Some(v) => Ok(Some(v)),
                    None => Err(ParseError::popt(format!("{word}: missing argument"))),
                },
            },
            ArgKind::Optional(_) => match inline {
                Some(v) => Ok(Some(v)),
                None => match self.args.get(self.pos) {
                    Some(v) if !v.starts_with('-') => Ok(self.next_word()),
                    _ => Ok(None),
                },
            },
        }
    }

    fn next(&mut self) -> Option<Result<Item>> {
        if let Some((rest, word)) = self.cluster.take() {
            return Some(self.short(&rest, &word));
        }
        let word = self.next_word()?;
        if self.only_args {
            return Some(Ok(Item::Arg(word)));
        }
        if word == "--" {
            self.only_args = true;
            return self.next();
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some(def) = options::by_long(name) else {
                return Some(Err(ParseError::popt(format!("{word}: unknown option"))));
            };
            return Some(self.value(def, inline, &word).map(|value| Item::Opt { def, value }));
        }
        if word.len() > 1 && word.starts_with('-') {
            return Some(self.short(&word[1..], &word));
        }
        Some(Ok(Item::Arg(word)))
    }

    fn short(&mut self, chars: &str, word: &str) -> Result<Item> {
        let mut it = chars.chars();
        let c = it.next().expect("a cluster is never empty");
        let rest: String = it.collect();
        let Some(def) = options::by_short(c) else {
            return Err(ParseError::popt(format!("{word}: unknown option")));
        };
        let value = if def.arg == ArgKind::Flag {
            if !rest.is_empty() {
                self.cluster = Some((rest, word.to_string()));
            }
            None
        } else {
            let inline = (!rest.is_empty()).then_some(rest);
            self.value(def, inline, word)?
        };
        Ok(Item::Opt { def, value })
    }
}

/// Everything the options set, as ipvsadm's `ipvs_command_entry` and flags hold it.
#[derive(Default)]
struct State {
    cmd: Option<Cmd>,
    command_value: Option<String>,
    classes: Vec<&'static str>,
    given: Vec<Opt>,
    svc_proto: Option<&'static str>,
    svc: Option<Endpoint>,
    fwmark: Option<u32>,
    fwmark_v6: bool,
    scheduler: Option<String>,
    persistent: Option<u32>,
    netmask: Option<String>,
    pe: Option<String>,
    dest: Option<Endpoint>,
    method: Option<Method>,
    weight: Option<u32>,
    u_threshold: Option<u32>,
    l_threshold: Option<u32>,
    sched_flags: Option<String>,
    tun_type: Option<String>,
    format: ListFormat,
    json: bool,
    watch: Option<f64>,
    count: Option<u64>,
    api: Option<String>,
    proxy_protocol: Option<String>,
    mh_table_size: Option<u32>,
    sorry_server: Option<Endpoint>,
    max_connections: Option<u32>,
    rule: Option<String>,
    matches: Vec<String>,
    pool: Option<String>,
    before: Option<String>,
    args: Vec<String>,
    syncid: Option<u8>,
    mcast_interface: Option<String>,
    mcast_port: Option<u16>,
    sync_peer: Option<String>,
    lookup: Lookup,
}

impl State {
    fn has(&self, o: Opt) -> bool {
        self.given.contains(&o)
    }
}

fn program_name(argv0: &str) -> String {
    std::path::Path::new(argv0).file_name().and_then(|s| s.to_str()).unwrap_or("rvsadm").to_string()
}

/// ipvsadm's `parse_timeout`.
fn parse_timeout(text: &str, min: i64, max: i64) -> Result<u32> {
    addr::string_to_number(text, min, max)
        .map(|v| v as u32)
        .ok_or_else(|| ParseError::fail(format!("invalid timeout value `{text}' specified")))
}

fn number(text: &str, min: i64, max: i64, what: &str) -> Result<u32> {
    addr::string_to_number(text, min, max)
        .map(|v| v as u32)
        .ok_or_else(|| ParseError::fail(format!("illegal {what} specified")))
}

/// Parses `argv` (with the program name first), host names looked up as ipvsadm does.
pub fn parse(argv: &[String]) -> Result<Invocation> {
    parse_with(argv, Lookup::Names)
}

/// [`parse`], with host names looked up as `lookup` says ([`Lookup::Numeric`]: numeric
/// addresses only, no resolver).
pub fn parse_with(argv: &[String], lookup: Lookup) -> Result<Invocation> {
    let program = program_name(argv.first().map(String::as_str).unwrap_or("rvsadm"));
    let mut scanner = Scanner::new(argv.get(1..).unwrap_or(&[]));
    let mut st = State { lookup, ..State::default() };
    let mut first = true;
    // `--watch` before any command implies -L; a -L (or --list-rules) after it is that command.
    let mut implied_list = false;
    while let Some(item) = scanner.next() {
        let item = match item {
            Ok(i) => i,
            Err(e) if first => return Err(ParseError::tryhelp_after(&program, e)),
            Err(e) => return Err(e),
        };
        let (def, value) = match item {
            Item::Arg(a) => {
                st.args.push(a);
                continue;
            }
            Item::Opt { def, value } => (def, value),
        };
        match def.action {
            Action::Command(c) => {
                if implied_list && matches!(c, Cmd::List | Cmd::ListRules) {
                    implied_list = false;
                    if c == Cmd::ListRules {
                        st.cmd = Some(c);
                    }
                    continue;
                }
                if st.cmd.is_some() {
                    return Err(ParseError::fail("multiple commands specified"));
                }
                match c {
                    Cmd::Help | Cmd::Version if first => {
                        return Ok(Invocation {
                            api: st.api,
                            command: if c == Cmd::Help { Command::Help } else { Command::Version },
                        });
                    }
                    Cmd::Help | Cmd::Version => {
                        return Err(ParseError::fail(format!("invalid option `-{}'", def.shorts[0])));
                    }
                    Cmd::StartDaemon | Cmd::StopDaemon => {
                        let v = value.clone().unwrap_or_default();
                        if v != "master" && v != "backup" {
                            return Err(ParseError::fail(if c == Cmd::StartDaemon {
                                "illegal start-daemon parameter specified"
                            } else {
                                "illegal start_daemon specified"
                            }));
                        }
                    }
                    _ => {}
                }
                st.cmd = Some(c);
                st.command_value = value;
                first = false;
            }
            Action::Option(o) => {
                let global = o == Opt::Api;
                if st.cmd.is_none() && !global {
                    if o == Opt::Watch {
                        st.cmd = Some(Cmd::List);
                        implied_list = true;
                    } else {
                        return Err(ParseError::tryhelp(&program));
                    }
                }
                if !global {
                    first = false;
                }
                option(&mut st, o, def, value)?;
            }
        }
    }
    let cmd = match st.cmd {
        Some(c) => c,
        // Words but no option: popt found nothing to start with.
        None if !st.args.is_empty() => return Err(ParseError::tryhelp(&program)),
        // No command at all (nothing, or only --api): ipvsadm lists the table.
        None => Cmd::List,
    };
    finish(st, cmd)
}

/// ipvsadm's `set_option`: each class of option once (but the options that repeat).
fn set_class(st: &mut State, def: &OptDef) -> Result<()> {
    if def.class.is_empty() {
        return Ok(());
    }
    if st.classes.contains(&def.class) {
        if def.repeat {
            return Ok(());
        }
        return Err(ParseError::fail(format!("multiple '{}' options specified", def.class)));
    }
    st.classes.push(def.class);
    Ok(())
}

fn option(st: &mut State, o: Opt, def: &'static OptDef, value: Option<String>) -> Result<()> {
    set_class(st, def)?;
    st.given.push(o);
    let v = value.clone().unwrap_or_default();
    match o {
        Opt::TcpService | Opt::UdpService | Opt::SctpService => {
            let proto = match o {
                Opt::TcpService => "tcp",
                Opt::UdpService => "udp",
                _ => "sctp",
            };
            st.svc_proto = Some(proto);
            st.svc = Some(
                addr::parse_service(&v, proto, st.lookup)
                    .ok_or_else(|| ParseError::fail("illegal virtual server address[:port] specified"))?,
            );
        }
        Opt::FwmarkService => {
            let mark = addr::string_to_number(&v, 1, i64::from(u32::MAX))
                .ok_or_else(|| ParseError::fail(format!("invalid fwmark value `{v}' specified")))?;
            st.fwmark = Some(mark as u32);
            st.svc_proto = Some("tcp");
        }
        Opt::Ipv6 => {
            if st.fwmark.is_none() {
                return Err(ParseError::fail("-6 used before -f\n"));
            }
            st.fwmark_v6 = true;
        }
        Opt::Scheduler => st.scheduler = Some(v),
        Opt::Persistent => {
            st.persistent = Some(match &value {
                None => DEFAULT_PERSISTENT,
                Some(t) => parse_timeout(t, 1, MAX_TIMEOUT)?,
            })
        }
        Opt::Netmask => st.netmask = Some(v),
        Opt::RealServer => {
            let proto = st.svc_proto.unwrap_or("tcp");
            st.dest = Some(
                addr::parse_service(&v, proto, st.lookup)
                    .ok_or_else(|| ParseError::fail("illegal real server address[:port] specified"))?,
            );
        }
        Opt::Gatewaying => st.method = Some(Method::Gate),
        Opt::Ipip => st.method = Some(Method::Tunnel),
        Opt::Masquerading => st.method = Some(Method::Masq),
        Opt::FullNat => st.method = Some(Method::FullNat),
        Opt::Weight if matches!(st.cmd, Some(Cmd::List | Cmd::ListRules)) => set_watch(st, &v)?,
        Opt::Weight => st.weight = Some(number(&v, 0, 65535, "weight")?),
        Opt::UThreshold => st.u_threshold = Some(number(&v, 0, i64::from(i32::MAX), "u_threshold")?),
        Opt::LThreshold => st.l_threshold = Some(number(&v, 0, i64::from(i32::MAX), "l_threshold")?),
        Opt::Numeric => st.format.numeric = true,
        Opt::Connection | Opt::Timeout | Opt::Daemon | Opt::Vrrp | Opt::Sort => {}
        Opt::McastInterface => st.mcast_interface = Some(v),
        Opt::SyncPeer => {
            if v.parse::<IpAddr>().is_err() {
                return Err(ParseError::fail(format!("invalid sync-peer `{v}' (an IP address)")));
            }
            st.sync_peer = Some(v);
        }
        Opt::Stats => st.format.stats = true,
        Opt::Rate => st.format.rate = true,
        Opt::Thresholds => st.format.thresholds = true,
        Opt::Health => st.format.health = true,
        Opt::PersistentConn => st.format.persistent_conn = true,
        Opt::NoSort => st.format.nosort = true,
        Opt::Exact => st.format.exact = true,
        Opt::TunInfo => st.format.tun_info = true,
        Opt::SyncId => st.syncid = Some(number(&v, 0, 255, "syncid")? as u8),
        Opt::Ops => {}
        Opt::Pe => st.pe = Some(v),
        Opt::SchedFlags => st.sched_flags = Some(v),
        Opt::McastGroup => {
            let ok = v.parse::<IpAddr>().is_ok_and(|ip| ip.is_multicast() && ip.is_ipv6() == v.contains(':'));
            if !ok {
                let fam = if v.contains(':') { "IPv6" } else { "IPv4" };
                return Err(ParseError::fail(format!("invalid {fam} mcast-group `{v}'")));
            }
            if v != "224.0.0.81" {
                return Err(ParseError::fail(
                    "sync groups other than 224.0.0.81 (--mcast-group) are not supported by rvs yet",
                ));
            }
        }
        Opt::McastPort => st.mcast_port = Some(number(&v, 1, 65535, "mcast-port")? as u16),
        Opt::McastTtl => {
            number(&v, 1, 255, "mcast-ttl")?;
        }
        Opt::SyncMaxlen => {
            number(&v, 1, 65535 - 20 - 8, "sync-maxlen")?;
        }
        Opt::TunType => {
            if !["ipip", "gue", "gre"].contains(&v.as_str()) {
                return Err(ParseError::fail("illegal tunnel type specified"));
            }
            st.tun_type = Some(v);
        }
        Opt::TunPort => {
            number(&v, 1, 65535, "tunnel port")?;
        }
        Opt::TunNocsum | Opt::TunCsum | Opt::TunRemcsum => {}
        Opt::ProxyProtocol => st.proxy_protocol = Some(v),
        Opt::MhTableSize => st.mh_table_size = Some(number(&v, 1, i64::from(u32::MAX), "mh-table-size")?),
        Opt::MaxConnections => st.max_connections = Some(number(&v, 1, i64::from(u32::MAX), "max-connections")?),
        Opt::SorryServer => {
            let proto = st.svc_proto.unwrap_or("tcp");
            st.sorry_server = Some(
                addr::parse_service(&v, proto, st.lookup)
                    .ok_or_else(|| ParseError::fail("illegal sorry server address[:port] specified"))?,
            );
        }
        Opt::Json => st.json = true,
        Opt::Watch => set_watch(st, value.as_deref().unwrap_or("2"))?,
        Opt::Count => {
            st.count = Some(
                addr::string_to_number(&v, 1, i64::MAX)
                    .ok_or_else(|| ParseError::fail(format!("invalid count `{v}' specified")))? as u64,
            )
        }
        Opt::Api => st.api = Some(v),
        Opt::Rule => st.rule = Some(non_empty(v, "rule name")?),
        Opt::Match => st.matches.push(non_empty(v, "match condition")?),
        Opt::Pool => st.pool = Some(non_empty(v, "pool name")?),
        Opt::Before => st.before = Some(non_empty(v, "rule name (--before)")?),
        // `-L --rules` is `--list-rules`, and checked as it.
        Opt::Rules => {
            if st.cmd == Some(Cmd::List) {
                st.cmd = Some(Cmd::ListRules);
            }
        }
    }
    Ok(())
}

fn non_empty(v: String, what: &str) -> Result<String> {
    if v.trim().is_empty() {
        return Err(ParseError::fail(format!("empty {what} specified")));
    }
    Ok(v)
}

fn set_watch(st: &mut State, text: &str) -> Result<()> {
    if st.watch.is_some() {
        return Err(ParseError::fail("multiple 'watch' options specified"));
    }
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86400.0 => {
            st.watch = Some(s);
            Ok(())
        }
        _ => Err(ParseError::fail(format!("invalid watch interval `{text}' specified"))),
    }
}

/// ipvsadm's `parse_sched_flags`, then the flags as rvs names them.
fn sched_flags(sched: &str, arg: &str) -> Result<Vec<String>> {
    let mut flags: Vec<String> = Vec::new();
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        let name = match flag {
            "flag-1" | "flag-2" | "flag-3" => {
                let n = &flag[5..];
                match (sched, n) {
                    ("sh", "1") => "sh-fallback",
                    ("sh", "2") => "sh-port",
                    ("mh", "1") => "mh-fallback",
                    ("mh", "2") => "mh-port",
                    _ => {
                        return Err(ParseError::fail(format!(
                            "scheduler flag `{flag}' has no meaning for the {sched} scheduler in rvs"
                        )))
                    }
                }
            }
            "sh-fallback" | "sh-port" if sched != "sh" => {
                return Err(ParseError::fail(format!("incompatible scheduler flag `{flag}'")))
            }
            "mh-fallback" | "mh-port" if sched != "mh" => {
                return Err(ParseError::fail(format!("incompatible scheduler flag `{flag}'")))
            }
            "sh-fallback" | "sh-port" | "mh-fallback" | "mh-port" => flag,
            _ => return Err(ParseError::fail(format!("invalid scheduler flag `{flag}'"))),
        };
        if !flags.iter().any(|f| f == name) {
            flags.push(name.to_string());
        }
    }
    Ok(flags)
}

/// ipvsadm's `generic_opt_check`: each class of option against the command's column, in
/// the table's order.
fn generic_opt_check(st: &State, cmd: Cmd) -> Result<()> {
    let Some(col) = cmd.column() else { return Ok(()) };
    let mut seen: Vec<&str> = Vec::new();
    let mut exclusive: Option<&str> = None;
    for def in OPTIONS.iter().filter(|d| !d.class.is_empty()) {
        if seen.contains(&def.class) {
            continue;
        }
        seen.push(def.class);
        let mut class = OPTIONS.iter().filter(|d| d.class == def.class);
        let given = class.find(|d| matches!(d.action, Action::Option(o) if st.has(o)));
        match given {
            None if def.rules.as_bytes()[col] == b'+' => {
                return Err(ParseError::fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    def.class,
                    cmd.name()
                )))
            }
            None => {}
            Some(g) => match g.rules.as_bytes()[col] {
                b'x' => {
                    return Err(ParseError::fail(format!(
                        "Illegal '{}' option with the '{}' command",
                        def.class,
                        cmd.name()
                    )))
                }
                b'1' => match exclusive {
                    None => exclusive = Some(def.class),
                    Some(first) => {
                        return Err(ParseError::fail(format!(
                            "The option '{}' conflicts with the '{}' option in the '{}' command",
                            def.class,
                            first,
                            cmd.name()
                        )))
                    }
                },
                _ => {}
            },
        }
    }
    Ok(())
}

/// ipvsadm's `tunnel_opt_check`.
fn tunnel_opt_check(st: &State) -> Result<()> {
    let tun = st.tun_type.as_deref().unwrap_or("ipip");
    // Columns: tun-port, tun-nocsum, tun-csum, tun-remcsum.
    let rules: [u8; 4] = match tun {
        "gue" => *b"+111",
        "gre" => *b"x11x",
        _ => *b"xxxx",
    };
    let opts = [Opt::TunPort, Opt::TunNocsum, Opt::TunCsum, Opt::TunRemcsum];
    let mut last: Option<&str> = None;
    for (rule, o) in rules.iter().zip(opts) {
        let name = options::def_of(o).class;
        if !st.has(o) {
            if *rule == b'+' {
                return Err(ParseError::fail(format!(
                    "You need to supply the '{name}' option for the '{tun}' tunnel type"
                )));
            }
        } else if *rule == b'x' {
            return Err(ParseError::fail(format!("Illegal '{name}' option with the '{tun}' tunnel type")));
        } else if *rule == b'1' {
            match last {
                None => last = Some(name),
                Some(l) => {
                    return Err(ParseError::fail(format!(
                        "The option '{name}' conflicts with the '{l}' option in the '{tun}' tunnel type"
                    )))
                }
            }
        }
    }
    Ok(())
}

/// What rvs has not got yet: refused by name.
fn not_in_rvs(what: &str) -> ParseError {
    ParseError::fail(format!("{what} not supported by rvs yet"))
}

fn service_ref(st: &State) -> Result<Option<ServiceRef>> {
    if let Some(mark) = st.fwmark {
        return Ok(Some(ServiceRef::Mark { mark, ipv6: st.fwmark_v6 }));
    }
    match (st.svc_proto, st.svc) {
        (Some(protocol), Some(e)) => {
            Ok(Some(ServiceRef::Addr { protocol, addr: SocketAddr::new(e.ip, e.port.unwrap_or(0)) }))
        }
        _ => Ok(None),
    }
}

fn finish(mut st: State, cmd: Cmd) -> Result<Invocation> {
    // --set's three values, then nothing else may be left.
    let mut args = std::mem::take(&mut st.args).into_iter();
    let mut timeouts = (0, 0, 0);
    if cmd == Cmd::Set {
        match (args.next(), args.next(), args.next()) {
            (Some(a), Some(b), Some(c)) => {
                timeouts = (
                    parse_timeout(&a, 0, MAX_TIMEOUT)?,
                    parse_timeout(&b, 0, MAX_TIMEOUT)?,
                    parse_timeout(&c, 0, MAX_TIMEOUT)?,
                );
            }
            _ => return Err(ParseError::fail("--set option requires 3 timeout values")),
        }
    }
    if let Some(a) = args.next() {
        return Err(ParseError::fail(format!("unexpected argument {a}")));
    }
    let flags = match &st.sched_flags {
        Some(arg) => sched_flags(st.scheduler.as_deref().unwrap_or(DEFAULT_SCHEDULER), arg)?,
        None => Vec::new(),
    };
    generic_opt_check(&st, cmd)?;

    let is_v6 = st.svc.is_some_and(|e| e.ip.is_ipv6()) || (st.fwmark.is_some() && st.fwmark_v6);
    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if st.fwmark.is_none() && st.svc.is_some_and(|e| e.port.unwrap_or(0) == 0) && st.persistent.is_none() {
            return Err(ParseError::fail("Zero port specified for non-persistent service"));
        }
        if st.has(Opt::Ops) && st.fwmark.is_none() && st.svc_proto != Some("udp") {
            return Err(ParseError::fail("One-Packet Scheduling is only for UDP virtual services"));
        }
    }
    // ipvsadm's default: no method flag on -a/-e is gatewaying (direct routing). A real server
    // of an http pool (`--pool`, rvs's own) is full NAT: the proxy engine forwards HTTP.
    let method = st.method.unwrap_or(if st.pool.is_some() { Method::FullNat } else { Method::Gate });
    if matches!(cmd, Cmd::AddServer | Cmd::EditServer) {
        let service_v6 = st.svc.map(|s| s.ip.is_ipv6()).or(st.fwmark.map(|_| st.fwmark_v6));
        if let (Some(d), Some(v6)) = (st.dest.as_mut(), service_v6) {
            if d.ip.is_ipv6() != v6 && method != Method::Tunnel {
                return Err(ParseError::fail("Different address family is allowed only for tunneling servers"));
            }
        }
        let tun_opts = [Opt::TunType, Opt::TunPort, Opt::TunNocsum, Opt::TunCsum, Opt::TunRemcsum];
        let any_tun = tun_opts.iter().any(|o| st.has(*o));
        if any_tun && method != Method::Tunnel {
            return Err(ParseError::fail("Tunnel options conflict with forward method"));
        }
        tunnel_opt_check(&st)?;
        // rvs tunnels with IP-in-IP, ipvsadm's default tunnel type: `--tun-type ipip` (what
        // ipvsadm -S writes after every -i) is taken, GUE and GRE are not (their options, which
        // the check above allows only with them, go with them).
        if st.tun_type.as_deref().is_some_and(|t| t != "ipip") {
            return Err(not_in_rvs("GUE and GRE tunnels (--tun-type gue|gre) are"));
        }
    }
    if cmd == Cmd::List {
        let f = &st.format;
        let c_t_d = st.has(Opt::Connection) || st.has(Opt::Timeout) || st.has(Opt::Daemon) || st.has(Opt::Vrrp);
        if (c_t_d && (f.stats || f.rate || f.thresholds || f.health))
            || ((st.has(Opt::Timeout) || st.has(Opt::Daemon) || st.has(Opt::Vrrp)) && f.persistent_conn)
        {
            return Err(ParseError::fail("options conflicts in the list command"));
        }
    }

    if (matches!(cmd, Cmd::AddRule | Cmd::DelRule | Cmd::ListRules) || st.pool.is_some()) && st.fwmark.is_some() {
        return Err(ParseError::fail(
            "http virtual services listen on an address: name them with -t (--tcp-service), not -f",
        ));
    }
    if matches!(cmd, Cmd::AddRule | Cmd::DelRule | Cmd::ListRules) && st.svc_proto == Some("udp") {
        return Err(ParseError::fail("http virtual services are TCP services: name them with -t (--tcp-service)"));
    }

    // What rvs refuses, after every check ipvsadm makes.
    if let Some(pe) = st.pe.as_deref().filter(|p| *p != "sip") {
        return Err(ParseError::fail(format!("persistence engine `{pe}' is not known (rvs has sip)")));
    }
    let service = service_ref(&st)?;
    let netmask = match (&st.netmask, st.persistent) {
        (Some(m), _) if is_v6 => {
            let n: u32 = m.trim().chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0);
            if !(1..=128).contains(&n) {
                return Err(ParseError::fail("illegal ipv6 netmask specified"));
            }
            st.persistent.map(|_| n.to_string())
        }
        (Some(m), _) => {
            let mask = addr::parse_netmask(m, st.lookup)
                .ok_or_else(|| ParseError::fail("illegal virtual server persistent mask specified"))?;
            // ipvsadm sends the mask either way; it counts only with persistence.
            st.persistent.map(|_| mask.to_string())
        }
        (None, _) => None,
    };

    let service_args = |service: ServiceRef| ServiceArgs {
        service,
        scheduler: st.scheduler.clone().unwrap_or_else(|| DEFAULT_SCHEDULER.to_string()),
        persistent: st.persistent,
        netmask: netmask.clone(),
        sched_flags: flags.clone(),
        mh_table_size: st.mh_table_size,
        sorry_server: st.sorry_server.map(|e| SocketAddr::new(e.ip, e.port.unwrap_or(service.port()))),
        max_connections: st.max_connections,
        pe: st.pe.clone(),
        one_packet: st.has(Opt::Ops),
    };
    let server_args = |service: ServiceRef| -> ServerArgs {
        let d = st.dest.expect("checked: real-server is compulsory");
        let mut port = d.port.unwrap_or(service.port());
        if matches!(method, Method::Gate | Method::Tunnel) {
            port = service.port();
        }
        ServerArgs {
            addr: SocketAddr::new(d.ip, port),
            service,
            weight: st.weight.unwrap_or(1),
            method,
            u_threshold: st.u_threshold.unwrap_or(0),
            l_threshold: st.l_threshold.unwrap_or(0),
            proxy_protocol: st.proxy_protocol.clone(),
            pool: st.pool.clone(),
        }
    };
    let need = |s: Option<ServiceRef>| s.expect("checked: service-address is compulsory");
    let command = match cmd {
        Cmd::Add => Command::AddService(service_args(need(service))),
        Cmd::Edit => Command::EditService(service_args(need(service))),
        Cmd::Delete => Command::DeleteService(need(service)),
        Cmd::Clear => Command::Clear,
        Cmd::AddServer => Command::AddServer(server_args(need(service))),
        Cmd::EditServer => Command::EditServer(server_args(need(service))),
        Cmd::DeleteServer => {
            let service = need(service);
            let d = st.dest.expect("checked: real-server is compulsory");
            let addr = SocketAddr::new(d.ip, d.port.unwrap_or(service.port()));
            Command::DeleteServer { service, addr, pool: st.pool.clone() }
        }
        Cmd::Set => Command::SetTimeouts { tcp: timeouts.0, tcpfin: timeouts.1, udp: timeouts.2 },
        Cmd::StartDaemon => Command::StartDaemon(rvs_api::SyncDaemonSpec {
            state: st.command_value.clone().unwrap_or_default(),
            syncid: st.syncid.unwrap_or(0),
            mcast_interface: st.mcast_interface.clone(),
            peer: st.sync_peer.clone(),
            port: st.mcast_port,
        }),
        Cmd::StopDaemon => Command::StopDaemon(st.command_value.clone().unwrap_or_default()),
        Cmd::Restore => Command::Restore { fullnat: st.method == Some(Method::FullNat) },
        Cmd::Save => Command::Save { numeric: st.format.numeric, json: st.json },
        Cmd::Zero => Command::Zero(service),
        Cmd::AddRule => Command::AddRule(RuleArgs {
            service: need(service),
            name: st.rule.clone().expect("checked: rule is compulsory"),
            matches: st.matches.clone(),
            pool: st.pool.clone().expect("checked: pool is compulsory"),
            before: st.before.clone(),
        }),
        Cmd::DelRule => {
            Command::DeleteRule { service: need(service), name: st.rule.clone().expect("checked: rule is compulsory") }
        }
        Cmd::List | Cmd::ListRules => {
            let view = if cmd == Cmd::ListRules {
                ListView::Rules(service)
            } else if st.has(Opt::Connection) {
                ListView::Connections
            } else if let Some(s) = service {
                ListView::Service(s)
            } else if st.has(Opt::Timeout) {
                ListView::Timeout
            } else if st.has(Opt::Daemon) {
                ListView::Daemon
            } else if st.has(Opt::Vrrp) {
                ListView::Vrrp
            } else {
                ListView::All
            };
            if st.count.is_some() && st.watch.is_none() {
                return Err(ParseError::fail("--count needs --watch (or -w with -L)"));
            }
            Command::List(ListArgs { view, format: st.format, json: st.json, watch: st.watch, count: st.count })
        }
        Cmd::Help => Command::Help,
        Cmd::Version => Command::Version,
        Cmd::ConfigDiff => Command::ConfigDiff,
        Cmd::SaveConfig => Command::SaveConfig,
        Cmd::Completions => {
            let shell = st.command_value.clone().unwrap_or_default();
            if !options::SHELLS.contains(&shell.as_str()) {
                return Err(ParseError::fail(format!("unknown shell `{shell}' (expected bash, zsh or fish)")));
            }
            Command::Completions(shell)
        }
    };
    Ok(Invocation { api: st.api, command })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Invocation> {
        let argv: Vec<String> = std::iter::once("rvsadm").chain(line.split_whitespace()).map(String::from).collect();
        parse(&argv)
    }

    fn err(line: &str) -> (String, i32) {
        let e = p(line).unwrap_err();
        (e.message, e.code)
    }

    fn ok(line: &str) -> Command {
        p(line).unwrap_or_else(|e| panic!("{line}: {}", e.message)).command
    }

    #[test]
    fn add_service_defaults() {
        let Command::AddService(a) = ok("-A -t 10.0.0.1:80") else { panic!() };
        assert_eq!(a.scheduler, "wlc");
        assert_eq!(a.service.addr(), Some("10.0.0.1:80".parse().unwrap()));
        assert_eq!(a.persistent, None);
        let Command::AddService(a) = ok("-A -t 10.0.0.1:80 -s rr -p -M 255.255.255.0") else { panic!() };
        assert_eq!((a.persistent, a.netmask.as_deref()), (Some(360), Some("255.255.255.0")), "ipvsadm's 360 s");
        let Command::AddService(a) = ok("-At 10.0.0.1:80 -p600") else { panic!() };
        assert_eq!(a.persistent, Some(600));
        let Command::AddService(a) = ok("--add-service --tcp-service=[::1]:80 --persistent 60 -M 64") else { panic!() };
        assert_eq!(a.netmask.as_deref(), Some("64"));
    }

    #[test]
    fn firewall_mark_services() {
        let Command::AddService(a) = ok("-A -f 1 -s sh -p 600") else { panic!() };
        assert_eq!((a.service, a.persistent), (ServiceRef::Mark { mark: 1, ipv6: false }, Some(600)));
        assert_eq!((a.service.id().protocol.as_str(), a.service.id().address.as_str()), ("fwmark", "1"));
        let Command::AddService(a) = ok("-A -f 16 -6 -p -M 64") else { panic!() };
        assert_eq!(a.service, ServiceRef::Mark { mark: 16, ipv6: true });
        assert_eq!((a.service.id().protocol.as_str(), a.netmask.as_deref()), ("fwmark6", Some("64")));
        // A real server without a port keeps the packet's (port 0), as ipvsadm sends it.
        let Command::AddServer(s) = ok("-a -f 1 -r 198.18.1.2 -m") else { panic!() };
        assert_eq!(s.addr, "198.18.1.2:0".parse().unwrap());
        let Command::AddServer(s) = ok("-a -f 1 -r 198.18.1.2:8080 -m") else { panic!() };
        assert_eq!(s.addr, "198.18.1.2:8080".parse().unwrap());
        assert_eq!(
            err("-a -f 1 -6 -r 198.18.1.2 -g").0,
            "Different address family is allowed only for tunneling servers"
        );
        assert_eq!(err("-A -f 0").0, "invalid fwmark value `0' specified");
        assert_eq!(err("-A -6 -f 1").0, "-6 used before -f\n");
        assert!(err("-a -f 1 -r 198.18.1.2 --pool web").0.contains("not -f"));
    }

    #[test]
    fn sctp_services() {
        let Command::AddService(a) = ok("-A --sctp-service 198.18.1.10:80 -s rr") else { panic!() };
        assert_eq!(a.service, ServiceRef::Addr { protocol: "sctp", addr: "198.18.1.10:80".parse().unwrap() });
        assert_eq!(a.service.id().protocol, "sctp");
        let Command::AddServer(s) = ok("-a --sctp-service=198.18.1.10:80 -r 198.18.0.11 -g -w 1") else { panic!() };
        assert_eq!((s.service.id().protocol.as_str(), s.method, s.addr.port()), ("sctp", Method::Gate, 80));
        let Command::DeleteService(d) = ok("-D --sctp-service [2001:db8::10]:36412") else { panic!() };
        assert_eq!(d.id().protocol, "sctp");
        assert!(err("-A --sctp-service 198.18.1.10:80 -o").0.contains("One-Packet Scheduling is only for UDP"));
    }

    #[test]
    fn servers() {
        let Command::AddServer(s) = ok("-a -t 10.0.0.1:80 -r 10.0.0.2") else { panic!() };
        assert_eq!(s.addr, "10.0.0.2:80".parse().unwrap());
        assert_eq!((s.weight, s.method), (1, Method::Gate), "no method flag: gatewaying, as in ipvsadm");
        let Command::EditServer(s) = ok("-e -t 10.0.0.1:80 -r 10.0.0.2:8080") else { panic!() };
        assert_eq!((s.addr.port(), s.method), (80, Method::Gate), "-e too; direct routing keeps the service port");
        for (flag, m) in [
            ("-g", Method::Gate),
            ("--gatewaying", Method::Gate),
            ("-m", Method::Masq),
            ("--masquerading", Method::Masq),
            ("-i", Method::Tunnel),
            ("--ipip", Method::Tunnel),
            ("--fullnat", Method::FullNat),
        ] {
            let Command::AddServer(s) = ok(&format!("-a -t 10.0.0.1:80 -r 10.0.0.2:8080 {flag}")) else { panic!() };
            assert_eq!(s.method, m, "{flag}");
            let port = if matches!(m, Method::Gate | Method::Tunnel) { 80 } else { 8080 };
            assert_eq!(s.addr.port(), port, "{flag}");
        }
        let Command::AddServer(s) = ok("-a -t 10.0.0.1:80 -r 10.0.0.2 -i -w 3 --tun-type ipip") else { panic!() };
        assert_eq!((s.method, s.weight), (Method::Tunnel, 3), "what ipvsadm -S writes for a tunnel");
        let Command::EditServer(s) = ok("-e -t 10.0.0.1:80 -r 10.0.0.2:8080 -m -w 0 -x 10 -y 5") else { panic!() };
        assert_eq!((s.addr.port(), s.weight, s.method, s.u_threshold, s.l_threshold), (8080, 0, Method::Masq, 10, 5));
        let Command::AddServer(s) = ok("-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -g") else { panic!() };
        assert_eq!(s.addr.port(), 80, "direct routing keeps the service port");
    }

    #[test]
    fn ipvsadm_messages() {
        assert_eq!(
            err("-A"),
            ("You need to supply the 'service-address' option for the 'add-service' command".into(), 2)
        );
        assert_eq!(
            err("-a -t 10.0.0.1:80").0,
            "You need to supply the 'real-server' option for the 'add-server' command"
        );
        assert_eq!(err("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 70000").0, "illegal weight specified");
        assert_eq!(err("-A -t 10.0.0.1").0, "Zero port specified for non-persistent service");
        assert_eq!(
            err("-a -t 10.0.0.1:80 -r [::1]:80").0,
            "Different address family is allowed only for tunneling servers"
        );
        assert_eq!(err("-A -t 10.0.0.1:80 -s rr -b sh-port").0, "incompatible scheduler flag `sh-port'");
        assert_eq!(err("-A -t 10.0.0.1:80 -b bogus").0, "invalid scheduler flag `bogus'");
        assert_eq!(err("-A -t 10.0.0.1:80 -w 3").0, "Illegal 'weight' option with the 'add-service' command");
        assert_eq!(err("-A -t 10.0.0.1:80 -t 10.0.0.2:80").0, "multiple 'service-address' options specified");
        assert_eq!(err("-A -L"), ("multiple commands specified".into(), 2));
        assert_eq!(err("-A -t 10.0.0.1:no-such-service").0, "illegal virtual server address[:port] specified");
        assert_eq!(
            err("-L -c -t 10.0.0.1:80").0,
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
        );
        assert_eq!(err("-L --timeout --stats").0, "options conflicts in the list command");
        assert_eq!(err("--set 1 2").0, "--set option requires 3 timeout values");
        assert_eq!(err("--set 1 2 x").0, "invalid timeout value `x' specified");
        assert_eq!(err("-A -t 10.0.0.1:80 extra").0, "unexpected argument extra");
        assert_eq!(err("-A -t 10.0.0.1:80 -p 0").0, "invalid timeout value `0' specified");
        assert_eq!(err("-L --bogus"), ("--bogus: unknown option".into(), 255));
        assert_eq!(err("-A -t"), ("-t: missing argument".into(), 255));
        assert_eq!(
            err("--bogus"),
            ("--bogus: unknown option\nTry `rvsadm -h' or 'rvsadm --help' for more information.".into(), 255)
        );
        assert_eq!(err("-j").0, "-j: unknown option\nTry `rvsadm -h' or 'rvsadm --help' for more information.");
        assert_eq!(err("-t 10.0.0.1:80 -A").1, 255);
        assert_eq!(err("foo").1, 255);
        assert_eq!(err("foo -L").0, "unexpected argument foo");
        assert_eq!(err("-A -t 10.0.0.1:80 -o").0, "One-Packet Scheduling is only for UDP virtual services");
    }

    #[test]
    fn refusals_name_the_option() {
        assert_eq!(err("-A -u 10.0.0.1:5060 -p --pe foo").0, "persistence engine `foo' is not known (rvs has sip)");
        assert_eq!(err("--start-daemon foo").0, "illegal start-daemon parameter specified");
        assert_eq!(err("--stop-daemon foo").0, "illegal start_daemon specified");
        assert!(err("--start-daemon master --mcast-group 239.1.1.1").0.contains("--mcast-group"));
        assert!(err("--start-daemon master --sync-peer nowhere").0.contains("sync-peer"));
        assert!(err("--start-daemon master --syncid 256").0.contains("syncid"));
    }

    #[test]
    fn sync_daemons_start_stop_and_list() {
        let spec = |state: &str, syncid, i: Option<&str>, peer: Option<&str>, port| rvs_api::SyncDaemonSpec {
            state: state.into(),
            syncid,
            mcast_interface: i.map(Into::into),
            peer: peer.map(Into::into),
            port,
        };
        assert_eq!(
            ok("--start-daemon master --syncid 1 --mcast-interface eth0"),
            Command::StartDaemon(spec("master", 1, Some("eth0"), None, None))
        );
        assert_eq!(
            ok("--start-daemon backup --mcast-interface eth1 --mcast-port 9000 --mcast-group 224.0.0.81"),
            Command::StartDaemon(spec("backup", 0, Some("eth1"), None, Some(9000)))
        );
        assert_eq!(
            ok("--start-daemon master --syncid 7 --sync-peer 198.18.0.3"),
            Command::StartDaemon(spec("master", 7, None, Some("198.18.0.3"), None))
        );
        assert_eq!(ok("--stop-daemon backup"), Command::StopDaemon("backup".into()));
        match ok("-L --daemon") {
            Command::List(a) => assert_eq!(a.view, ListView::Daemon),
            other => panic!("{other:?}"),
        }
        let view = rvs_api::SyncView {
            daemons: vec![spec("master", 1, Some("eth0"), None, None), spec("backup", 1, Some("eth0"), None, None)],
            counters: Default::default(),
        };
        assert_eq!(
            crate::format::daemon(&view),
            "master sync daemon (mcast=eth0, syncid=1)\nbackup sync daemon (mcast=eth0, syncid=1)\n"
        );
        assert_eq!(
            err("-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gre --tun-csum").0,
            "GUE and GRE tunnels (--tun-type gue|gre) are not supported by rvs yet"
        );
        assert_eq!(
            err("-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type ipip --tun-csum").0,
            "Illegal 'tun-csum' option with the 'ipip' tunnel type"
        );
        assert_eq!(
            err("-a -t 10.0.0.1:80 -r 10.0.0.2 --tun-type gre").0,
            "Tunnel options conflict with forward method"
        );
        assert_eq!(
            err("-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue").0,
            "You need to supply the 'tun-port' option for the 'gue' tunnel type"
        );
    }

    #[test]
    fn lists() {
        let Command::List(l) = ok("-Ln") else { panic!() };
        assert_eq!(l.view, ListView::All);
        assert!(l.format.numeric);
        let Command::List(l) = ok("-L -n --rate -w 0.5 --count 3") else { panic!() };
        assert_eq!((l.watch, l.count), (Some(0.5), Some(3)));
        let Command::List(l) = ok("--watch -n") else { panic!() };
        assert_eq!(l.watch, Some(2.0));
        let Command::List(l) = ok("-l -c -n") else { panic!() };
        assert_eq!(l.view, ListView::Connections);
        let inv = p("--api /tmp/x.sock").unwrap();
        assert_eq!(inv.api.as_deref(), Some("/tmp/x.sock"));
        assert!(matches!(inv.command, Command::List(ListArgs { view: ListView::All, .. })));
        assert!(matches!(ok(""), Command::List(_)));
    }

    #[test]
    fn http_rules() {
        let line = "--add-rule -t 10.0.0.1:80 --rule api --match path^=/api/ --match=host=*.example.com --pool api \
                    --before web";
        let Command::AddRule(r) = ok(line) else { panic!() };
        assert_eq!(r.service, ServiceRef::Addr { protocol: "tcp", addr: "10.0.0.1:80".parse().unwrap() });
        assert_eq!((r.name.as_str(), r.pool.as_str(), r.before.as_deref()), ("api", "api", Some("web")));
        assert_eq!(r.matches, ["path^=/api/", "host=*.example.com"]);
        let spec = r.spec();
        assert_eq!(serde_json::to_value(&spec).unwrap()["match"][1], "host=*.example.com");
        let Command::AddRule(r) = ok("--add-rule -t 10.0.0.1:80 --rule a --match path=/ --pool p") else { panic!() };
        assert_eq!(r.before, None);
        assert_eq!(
            ok("--del-rule --tcp-service 10.0.0.1:80 --rule=api"),
            Command::DeleteRule {
                service: ServiceRef::Addr { protocol: "tcp", addr: "10.0.0.1:80".parse().unwrap() },
                name: "api".into()
            }
        );
        let Command::List(l) = ok("--list-rules -n") else { panic!() };
        assert_eq!((l.view, l.format.numeric), (ListView::Rules(None), true));
        let Command::List(l) = ok("-L --rules -t 10.0.0.1:80 --json") else { panic!() };
        assert!(matches!(l.view, ListView::Rules(Some(_))) && l.json);
        let Command::List(l) = ok("-L -n -w 0.5 --rules --count 2") else { panic!() };
        assert_eq!((l.view, l.watch, l.count), (ListView::Rules(None), Some(0.5), Some(2)));
        let Command::List(l) = ok("--list-rules -w 1") else { panic!() };
        assert_eq!(l.watch, Some(1.0), "-w watches with --list-rules too");
        let Command::List(l) = ok("--watch --rules") else { panic!() };
        assert_eq!(l.view, ListView::Rules(None));
        assert_eq!(ok("--list-rules").name(), "list-rules");
        assert_eq!(ok("--del-rule -t 10.0.0.1:80 --rule a").name(), "del-rule");
    }

    #[test]
    fn http_rule_refusals() {
        let t = "-t 10.0.0.1:80";
        assert_eq!(
            err(&format!("--add-rule {t} --rule a --match path=/")),
            ("You need to supply the 'pool' option for the 'add-rule' command".into(), 2)
        );
        assert_eq!(
            err(&format!("--add-rule {t} --rule a --pool p")).0,
            "You need to supply the 'match' option for the 'add-rule' command"
        );
        assert_eq!(
            err(&format!("--add-rule {t} --match path=/ --pool p")).0,
            "You need to supply the 'rule' option for the 'add-rule' command"
        );
        assert_eq!(
            err("--add-rule --rule a --match path=/ --pool p").0,
            "You need to supply the 'service-address' option for the 'add-rule' command"
        );
        assert_eq!(
            err("--del-rule --rule a").0,
            "You need to supply the 'service-address' option for the 'del-rule' command"
        );
        assert_eq!(
            err(&format!("--del-rule {t}")).0,
            "You need to supply the 'rule' option for the 'del-rule' command"
        );
        assert_eq!(
            err(&format!("--del-rule {t} --rule a --pool p")).0,
            "Illegal 'pool' option with the 'del-rule' command"
        );
        assert_eq!(
            err(&format!("--add-rule {t} --rule a --rule b --match path=/ --pool p")).0,
            "multiple 'rule' options specified"
        );
        assert_eq!(
            err(&format!("--add-rule {t} --rule a --match path=/ --pool p -r 10.0.0.2")).0,
            "Illegal 'real-server' option with the 'add-rule' command"
        );
        assert_eq!(err(&format!("-A {t} --rule a")).0, "Illegal 'rule' option with the 'add-service' command");
        assert_eq!(err(&format!("-A {t} --rules")).0, "Illegal 'rules' option with the 'add-service' command");
        assert_eq!(err("-L -c --rules").0, "Illegal 'connection' option with the 'list-rules' command");
        assert_eq!(err("--list-rules --stats").0, "Illegal 'stats' option with the 'list-rules' command");
        assert_eq!(err("--list-rules --timeout").0, "Illegal 'timeout' option with the 'list-rules' command");
        assert_eq!(err("--list-rules --rule a").0, "Illegal 'rule' option with the 'list-rules' command");
        assert_eq!(err("--list-rules -L").0, "multiple commands specified");
        assert_eq!(err("--list-rules --count 2").0, "--count needs --watch (or -w with -L)");
        assert_eq!(
            err("--add-rule -u 10.0.0.1:80 --rule a --match path=/ --pool p").0,
            "http virtual services are TCP services: name them with -t (--tcp-service)"
        );
        assert!(err("--list-rules -f 1").0.contains("not -f"));
        assert_eq!(err(&format!("--add-rule {t} --rule= --match path=/ --pool p")).0, "empty rule name specified");
        assert_eq!(err(&format!("--add-rule {t} --rule a --match= --pool p")).0, "empty match condition specified");
        assert_eq!(err(&format!("--add-rule {t} --rule a --match")), ("--match: missing argument".into(), 255));
        assert_eq!(err("--rules"), ("Try `rvsadm -h' or 'rvsadm --help' for more information.".into(), 255));
    }

    #[test]
    fn set_and_sched_flags() {
        assert_eq!(ok("--set 900 0 300"), Command::SetTimeouts { tcp: 900, tcpfin: 0, udp: 300 });
        let Command::AddService(a) = ok("-A -t 10.0.0.1:80 -s sh -b sh-fallback,flag-2") else { panic!() };
        assert_eq!(a.sched_flags, ["sh-fallback", "sh-port"]);
    }
}
