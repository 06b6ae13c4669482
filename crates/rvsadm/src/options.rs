//! The one table of rvsadm's options: ipvsadm 1.31's commands and options, in ipvsadm's
//! order, plus rvs's own (among them the Layer-7 rule commands `--add-rule`, `--del-rule`,
//! `--list-rules` and their options). The parser ([`crate::parse`]), `--help` and the shell
//! completions ([`crate::help`]) are all generated from [`OPTIONS`]; nothing else lists
//! options.

/// The commands, in ipvsadm's order (the order of the columns of [`OptDef::rules`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    Add,
    Edit,
    Delete,
    Clear,
    List,
    AddServer,
    DeleteServer,
    EditServer,
    Set,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
    // rvs's own commands with a column of their own (the Layer-7 rules).
    AddRule,
    DelRule,
    ListRules,
    // Commands that act at once and take no rule check.
    Help,
    Version,
    Completions,
    // rvs's own: the configuration file against what runs.
    ConfigDiff,
    SaveConfig,
}

impl Cmd {
    /// ipvsadm's name of the command, as its messages print it.
    pub fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Delete => "delete-service",
            Cmd::Clear => "flush",
            Cmd::List => "list",
            Cmd::AddServer => "add-server",
            Cmd::DeleteServer => "delete-server",
            Cmd::EditServer => "edit-server",
            Cmd::Set => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            Cmd::AddRule => "add-rule",
            Cmd::DelRule => "del-rule",
            Cmd::ListRules => "list-rules",
            Cmd::Help => "help",
            Cmd::Version => "version",
            Cmd::Completions => "completions",
            Cmd::ConfigDiff => "config-diff",
            Cmd::SaveConfig => "save-config",
        }
    }

    /// The column of this command in [`OptDef::rules`], for the commands that have one.
    pub fn column(self) -> Option<usize> {
        let i = self as usize;
        (i < COLUMNS).then_some(i)
    }
}

/// The number of commands with a column in [`OptDef::rules`]: ipvsadm's 14, then rvs's
/// three rule commands.
pub const COLUMNS: usize = Cmd::ListRules as usize + 1;

/// Every option that is not a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    Numeric,
    Connection,
    TcpService,
    UdpService,
    SctpService,
    FwmarkService,
    Ipv6,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Gatewaying,
    Ipip,
    Masquerading,
    FullNat,
    Weight,
    UThreshold,
    LThreshold,
    McastInterface,
    Timeout,
    Daemon,
    Vrrp,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    SyncId,
    Exact,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
    ProxyProtocol,
    MhTableSize,
    SorryServer,
    MaxConnections,
    Json,
    Health,
    Watch,
    Count,
    Api,
    Rule,
    Match,
    Pool,
    Before,
    Rules,
    SyncPeer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Command(Cmd),
    Option(Opt),
}

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    Flag,
    /// A value is required; the text names it in `--help`.
    Value(&'static str),
    /// A value may follow (popt's optional argument: the next word unless it starts with `-`).
    Optional(&'static str),
}

/// Where `--help` lists an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Command,
    Service,
    Option,
    Daemon,
    Rvs,
    Rules,
}

impl Section {
    pub const ALL: [Section; 6] =
        [Section::Command, Section::Service, Section::Option, Section::Daemon, Section::Rvs, Section::Rules];

    pub fn title(self) -> &'static str {
        match self {
            Section::Command => "Commands:\nEither long or short options are allowed.",
            Section::Service => "virtual-service:",
            Section::Option => "Options:",
            Section::Daemon => "Daemon Options:",
            Section::Rvs => "rvs options (not in ipvsadm):",
            Section::Rules => "Layer-7 (http) rule options (rvs, with --add-rule, --del-rule, --list-rules):",
        }
    }
}

/// One option or command.
#[derive(Debug, Clone, Copy)]
pub struct OptDef {
    pub long: &'static str,
    pub shorts: &'static [char],
    pub arg: ArgKind,
    pub action: Action,
    /// ipvsadm's name for the option in its messages; options of one class (the four kinds
    /// of virtual service, the forwarding methods) may be given only once between them.
    /// Empty: no class (never counted, always allowed).
    pub class: &'static str,
    /// Legality with each command, one character per command in [`Cmd`] order
    /// (A E D C L a d e set start stop R S Z, then rvs's add-rule del-rule list-rules),
    /// ipvsadm's key: `+` compulsory, `x` illegal, `1` exclusive (only one `1` option),
    /// ` ` optional. Empty for commands.
    pub rules: &'static str,
    /// The option may be given more than once (its values are collected).
    pub repeat: bool,
    pub section: Section,
    pub help: &'static str,
    /// The synopsis line of a command in `--help`.
    pub usage: &'static str,
    /// The values the option takes, for completions.
    pub values: &'static [&'static str],
}

pub const SCHEDULERS: &[&str] =
    &["rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "fo", "ovf", "mh", "twos"];
pub const SCHED_FLAGS: &[&str] = &["sh-fallback", "sh-port", "mh-fallback", "mh-port", "flag-1", "flag-2", "flag-3"];
pub const SHELLS: &[&str] = &["bash", "zsh", "fish"];

const fn cmd(
    long: &'static str,
    shorts: &'static [char],
    arg: ArgKind,
    c: Cmd,
    help: &'static str,
    usage: &'static str,
) -> OptDef {
    OptDef {
        long,
        shorts,
        arg,
        action: Action::Command(c),
        class: "",
        rules: "",
        section: Section::Command,
        help,
        usage,
        values: &[],
        repeat: false,
    }
}

#[allow(clippy::too_many_arguments)]
const fn opt(
    long: &'static str,
    shorts: &'static [char],
    arg: ArgKind,
    o: Opt,
    class: &'static str,
    rules: &'static str,
    section: Section,
    help: &'static str,
) -> OptDef {
    OptDef {
        long,
        shorts,
        arg,
        action: Action::Option(o),
        class,
        rules,
        section,
        help,
        usage: "",
        values: &[],
        repeat: false,
    }
}

const fn with_values(mut d: OptDef, values: &'static [&'static str]) -> OptDef {
    d.values = values;
    d
}

const fn repeatable(mut d: OptDef) -> OptDef {
    d.repeat = true;
    d
}

/// The first words of the rule conditions (`--match`), for completions.
pub const MATCH_KINDS: &[&str] = &["host=", "path=", "path^=", "path~=", "method=", "header:", "query:", "cookie:"];

use ArgKind::{Flag, Optional, Value};
use Section::{Daemon as D, Option as O, Rules as H, Rvs as R, Service as S};

//                             A E D C L a d e s s s R S Z a d l
//                                             e t t       r r r
//                                             t a o       u u u
const ADD_EDIT: &str = /*   */ "  xxxxxxxxxxxxxxx";
const SERVER_OPT: &str = /* */ "xxxxx x xxxxxxxxx";
/// `-L` only.
const LIST_OPT: &str = /*   */ "xxxx xxxxxxxxxxxx";
/// `-L` and `--list-rules`.
const LISTS_OPT: &str = /*  */ "xxxx xxxxxxxxxxx ";
const LIST_ONE: &str = /*   */ "xxxx1xxxxxxxxxxxx";
const DAEMON_OPT: &str = /* */ "xxxxxxxxx xxxxxxx";
const SERVICE: &str = /*    */ "+++x1+++xxxxx ++ ";
const ANY: &str = /*        */ "                 ";

/// The table. Commands first, then the options in ipvsadm's own order (which is also the order
/// its rule checks run in), then rvs's.
pub const OPTIONS: &[OptDef] = &[
    cmd(
        "add-service",
        &['A'],
        Flag,
        Cmd::Add,
        "add virtual service with options",
        "-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]",
    ),
    cmd("edit-service", &['E'], Flag, Cmd::Edit, "edit virtual service with options", ""),
    cmd("delete-service", &['D'], Flag, Cmd::Delete, "delete virtual service", "-D virtual-service"),
    cmd("clear", &['C'], Flag, Cmd::Clear, "clear the whole table", "-C"),
    cmd("restore", &['R'], Flag, Cmd::Restore, "restore rules from stdin (all or nothing)", "-R [--fullnat]"),
    cmd("save", &['S'], Flag, Cmd::Save, "save rules to stdout", "-S [-n]"),
    cmd(
        "add-server",
        &['a'],
        Flag,
        Cmd::AddServer,
        "add real server with options",
        "-a|e virtual-service -r server-address [options]",
    ),
    cmd("edit-server", &['e'], Flag, Cmd::EditServer, "edit real server with options", ""),
    cmd("delete-server", &['d'], Flag, Cmd::DeleteServer, "delete real server", "-d virtual-service -r server-address"),
    cmd("list", &['L', 'l'], Flag, Cmd::List, "list the table", "-L|l [virtual-service] [options]"),
    cmd("zero", &['Z'], Flag, Cmd::Zero, "zero counters in a service or all services", "-Z [virtual-service]"),
    cmd("set", &[], Flag, Cmd::Set, "set connection timeout values (tcp tcpfin udp)", "--set tcp tcpfin udp"),
    with_values(
        cmd(
            "start-daemon",
            &[],
            Value("state"),
            Cmd::StartDaemon,
            "start connection sync daemon",
            "--start-daemon {master|backup} [daemon-options]",
        ),
        &["master", "backup"],
    ),
    with_values(
        cmd(
            "stop-daemon",
            &[],
            Value("state"),
            Cmd::StopDaemon,
            "stop connection sync daemon",
            "--stop-daemon {master|backup}",
        ),
        &["master", "backup"],
    ),
    cmd(
        "add-rule",
        &[],
        Flag,
        Cmd::AddRule,
        "add a rule to an http (Layer-7) virtual service (rvs)",
        "--add-rule -t service-address --rule name --match condition [--match condition ...] --pool pool [--before name]",
    ),
    cmd(
        "del-rule",
        &[],
        Flag,
        Cmd::DelRule,
        "delete a rule of an http virtual service (rvs)",
        "--del-rule -t service-address --rule name",
    ),
    cmd(
        "list-rules",
        &[],
        Flag,
        Cmd::ListRules,
        "list the http virtual services: rules, pools (rvs)",
        "--list-rules|-L --rules [-t service-address] [-n] [--json]",
    ),
    cmd("help", &['h'], Flag, Cmd::Help, "display this help message", "-h"),
    cmd("version", &['v'], Flag, Cmd::Version, "display the version", "-v"),
    with_values(
        cmd(
            "completions",
            &[],
            Value("shell"),
            Cmd::Completions,
            "print shell completions (bash, zsh, fish)",
            "--completions {bash|zsh|fish}",
        ),
        SHELLS,
    ),
    cmd(
        "config-diff",
        &[],
        Flag,
        Cmd::ConfigDiff,
        "show how the configuration file differs from what runs (rvs)",
        "--config-diff",
    ),
    cmd(
        "save-config",
        &[],
        Flag,
        Cmd::SaveConfig,
        "write what runs to the configuration file, the previous one kept as FILE.prev (rvs)",
        "--save-config",
    ),
    // ---- options, in ipvsadm's order
    opt("numeric", &['n'], Flag, Opt::Numeric, "numeric", "xxxx xxxxxxx xxx ", O, "numeric output of addresses and ports"),
    opt("connection", &['c'], Flag, Opt::Connection, "connection", LIST_ONE, O, "output of current connections"),
    opt(
        "tcp-service",
        &['t'],
        Value("service-address"),
        Opt::TcpService,
        "service-address",
        SERVICE,
        S,
        "service-address is host[:port]",
    ),
    opt(
        "udp-service",
        &['u'],
        Value("service-address"),
        Opt::UdpService,
        "service-address",
        SERVICE,
        S,
        "service-address is host[:port]",
    ),
    opt(
        "sctp-service",
        &[],
        Value("service-address"),
        Opt::SctpService,
        "service-address",
        SERVICE,
        S,
        "service-address is host[:port] (the packet engine serves SCTP)",
    ),
    opt(
        "fwmark-service",
        &['f'],
        Value("fwmark"),
        Opt::FwmarkService,
        "service-address",
        SERVICE,
        S,
        "fwmark is an integer greater than zero (its matches defined in the file or the API)",
    ),
    opt("ipv6", &['6'], Flag, Opt::Ipv6, "", ANY, O, "fwmark entry uses IPv6"),
    with_values(
        opt(
            "scheduler",
            &['s'],
            Value("scheduler"),
            Opt::Scheduler,
            "scheduler",
            ADD_EDIT,
            O,
            "one of rr|wrr|lc|wlc|sed|nq|lblc|lblcr|dh|sh|fo|ovf|mh|twos, the default scheduler is wlc",
        ),
        SCHEDULERS,
    ),
    opt("persistent", &['p'], Optional("timeout"), Opt::Persistent, "persistent", ADD_EDIT, O, "persistent service"),
    opt("netmask", &['M'], Value("netmask"), Opt::Netmask, "netmask", ADD_EDIT, O, "persistent granularity mask"),
    opt(
        "real-server",
        &['r'],
        Value("server-address"),
        Opt::RealServer,
        "real-server",
        "xxxxx+++xxxxxxxxx",
        O,
        "server-address is host (and port)",
    ),
    opt(
        "gatewaying",
        &['g'],
        Flag,
        Opt::Gatewaying,
        "forwarding-method",
        SERVER_OPT,
        O,
        "gatewaying (direct routing) (default)",
    ),
    opt(
        "ipip",
        &['i'],
        Flag,
        Opt::Ipip,
        "forwarding-method",
        SERVER_OPT,
        O,
        "ipip encapsulation (tunneling)",
    ),
    opt(
        "masquerading",
        &['m'],
        Flag,
        Opt::Masquerading,
        "forwarding-method",
        SERVER_OPT,
        O,
        "masquerading (NAT)",
    ),
    opt(
        "fullnat",
        &[],
        Flag,
        Opt::FullNat,
        "forwarding-method",
        "xxxxx x xxx xxxxx",
        O,
        "full NAT through rvs's proxy engine; with -R: every real server of the input",
    ),
    opt(
        "weight",
        &['w'],
        Value("weight"),
        Opt::Weight,
        "weight",
        "xxxx  x xxxxxxxx ",
        O,
        "capacity of real server (0..65535); with -L (rvs): refresh the listing every weight seconds, as --watch",
    ),
    opt(
        "u-threshold",
        &['x'],
        Value("uthreshold"),
        Opt::UThreshold,
        "u-threshold",
        SERVER_OPT,
        O,
        "upper threshold of connections",
    ),
    opt(
        "l-threshold",
        &['y'],
        Value("lthreshold"),
        Opt::LThreshold,
        "l-threshold",
        SERVER_OPT,
        O,
        "lower threshold of connections",
    ),
    opt(
        "mcast-interface",
        &[],
        Value("interface"),
        Opt::McastInterface,
        "mcast-interface",
        DAEMON_OPT,
        D,
        "multicast interface for connection sync",
    ),
    opt("timeout", &[], Flag, Opt::Timeout, "timeout", LIST_ONE, O, "output of timeout (tcp tcpfin udp)"),
    opt("daemon", &[], Flag, Opt::Daemon, "daemon", LIST_ONE, O, "output of daemon information"),
    opt("stats", &[], Flag, Opt::Stats, "stats", LIST_OPT, O, "output of statistics information"),
    opt("rate", &[], Flag, Opt::Rate, "rate", LIST_OPT, O, "output of rate information"),
    opt("thresholds", &[], Flag, Opt::Thresholds, "thresholds", LIST_OPT, O, "output of thresholds information"),
    opt(
        "persistent-conn",
        &[],
        Flag,
        Opt::PersistentConn,
        "persistent-conn",
        LIST_OPT,
        O,
        "output of persistent connection info",
    ),
    opt("nosort", &[], Flag, Opt::NoSort, "nosort", LISTS_OPT, O, "disable sorting output of service/server entries"),
    opt("sort", &[], Flag, Opt::Sort, "", ANY, O, "does nothing, for backwards compatibility"),
    opt(
        "syncid",
        &[],
        Value("sid"),
        Opt::SyncId,
        "syncid",
        "xxxx xxxx  xxxxxx",
        D,
        "syncid for connection sync (default=255)",
    ),
    opt("exact", &['X'], Flag, Opt::Exact, "exact", LISTS_OPT, O, "expand numbers (display exact values)"),
    opt("ops", &['o'], Flag, Opt::Ops, "ops", ADD_EDIT, O, "one-packet scheduling"),
    opt(
        "pe",
        &[],
        Value("engine"),
        Opt::Pe,
        "pe",
        ADD_EDIT,
        O,
        "alternate persistence engine (sip)",
    ),
    with_values(
        opt(
            "sched-flags",
            &['b'],
            Value("flags"),
            Opt::SchedFlags,
            "sched-flags",
            ADD_EDIT,
            O,
            "scheduler flags (comma-separated): sh-fallback, sh-port (sh), mh-fallback, mh-port (mh)",
        ),
        SCHED_FLAGS,
    ),
    opt(
        "mcast-group",
        &[],
        Value("address"),
        Opt::McastGroup,
        "mcast-group",
        DAEMON_OPT,
        D,
        "IPv4/IPv6 group (default=224.0.0.81)",
    ),
    opt("mcast-port", &[], Value("port"), Opt::McastPort, "mcast-port", DAEMON_OPT, D, "UDP port (default=8848)"),
    opt("mcast-ttl", &[], Value("ttl"), Opt::McastTtl, "mcast-ttl", DAEMON_OPT, D, "Multicast TTL (default=1)"),
    opt(
        "sync-maxlen",
        &[],
        Value("length"),
        Opt::SyncMaxlen,
        "sync-maxlen",
        DAEMON_OPT,
        D,
        "Max sync message length (default=1472)",
    ),
    opt(
        "sync-peer",
        &[],
        Value("address"),
        Opt::SyncPeer,
        "sync-peer",
        DAEMON_OPT,
        R,
        "unicast peer of the sync daemon (a master sends there, not to the group)",
    ),
    opt("tun-info", &[], Flag, Opt::TunInfo, "tun-info", LIST_OPT, O, "output of tunnel information"),
    with_values(
        opt(
            "tun-type",
            &[],
            Value("type"),
            Opt::TunType,
            "tun-type",
            SERVER_OPT,
            O,
            "one of ipip|gue|gre, the default tunnel type is ipip (rvs: ipip only)",
        ),
        &["ipip", "gue", "gre"],
    ),
    opt("tun-port", &[], Value("port"), Opt::TunPort, "tun-port", SERVER_OPT, O, "tunnel destination port"),
    opt("tun-nocsum", &[], Flag, Opt::TunNocsum, "tun-nocsum", SERVER_OPT, O, "tunnel encapsulation without checksum"),
    opt("tun-csum", &[], Flag, Opt::TunCsum, "tun-csum", SERVER_OPT, O, "tunnel encapsulation with checksum"),
    opt(
        "tun-remcsum",
        &[],
        Flag,
        Opt::TunRemcsum,
        "tun-remcsum",
        SERVER_OPT,
        O,
        "tunnel encapsulation with remote checksum",
    ),
    // ---- rvs's own
    with_values(
        opt(
            "proxy-protocol",
            &[],
            Value("version"),
            Opt::ProxyProtocol,
            "proxy-protocol",
            SERVER_OPT,
            R,
            "PROXY protocol header to the real server: off, v1 or v2 (-e keeps it when not given)",
        ),
        &["off", "v1", "v2"],
    ),
    opt(
        "mh-table-size",
        &[],
        Value("size"),
        Opt::MhTableSize,
        "mh-table-size",
        ADD_EDIT,
        R,
        "Maglev (mh) lookup table size, a prime such as 251, 509, 1021, 2039, 4093 (default), 8191",
    ),
    opt(
        "sorry-server",
        &[],
        Value("server-address"),
        Opt::SorryServer,
        "sorry-server",
        ADD_EDIT,
        R,
        "takes new connections while the service has lost its health-check quorum",
    ),
    opt(
        "max-connections",
        &[],
        Value("number"),
        Opt::MaxConnections,
        "max-connections",
        ADD_EDIT,
        R,
        "the most client connections the service holds at once (TCP); more wait in the listen backlog",
    ),
    opt(
        "json",
        &[],
        Flag,
        Opt::Json,
        "json",
        "xxxx xxxxxxx xxx ",
        R,
        "with -L or -S: print the API's JSON instead of columns",
    ),
    opt(
        "watch",
        &[],
        Optional("seconds"),
        Opt::Watch,
        "watch",
        LISTS_OPT,
        R,
        "refresh the listing every so many seconds (default 2), like watch ipvsadm -L; implies -L",
    ),
    opt("count", &[], Value("n"), Opt::Count, "count", LISTS_OPT, R, "with --watch: stop after n listings"),
    opt("vrrp", &[], Flag, Opt::Vrrp, "vrrp", LIST_ONE, R, "output of the director's VRRP instances"),
    opt(
        "health",
        &[],
        Flag,
        Opt::Health,
        "health",
        LIST_OPT,
        R,
        "output of each real server's health check: state, check, last result and reason",
    ),
    opt(
        "api",
        &[],
        Value("socket|url"),
        Opt::Api,
        "api",
        ANY,
        R,
        "rvsd's API: a unix socket path (default $RVSADM_API or /run/rvsd.sock) or http://127.0.0.1:PORT \
         (bearer token from $RVSADM_TOKEN)",
    ),
    // ---- rvs's Layer-7 rules
    opt(
        "rule",
        &[],
        Value("name"),
        Opt::Rule,
        "rule",
        "xxxxxxxxxxxxxx++x",
        H,
        "the rule's name (letters, digits, - _ . / :)",
    ),
    repeatable(with_values(
        opt(
            "match",
            &[],
            Value("condition"),
            Opt::Match,
            "match",
            "xxxxxxxxxxxxxx+xx",
            H,
            "a condition the request must meet, repeated for several (all must hold): host=NAME, host=*.SUFFIX, \
             path=PATH, path^=PREFIX, path~=REGEX, method=METHOD, header:NAME[=VALUE|~=REGEX], query:..., cookie:...",
        ),
        MATCH_KINDS,
    )),
    opt(
        "pool",
        &[],
        Value("pool"),
        Opt::Pool,
        "pool",
        "xxxxx   xxxxxx+xx",
        H,
        "the pool the matching requests go to; with -a/-e/-d, the http pool of the real server",
    ),
    opt(
        "before",
        &[],
        Value("name"),
        Opt::Before,
        "before",
        "xxxxxxxxxxxxxx xx",
        H,
        "insert the rule before this one (rules are tried in order, the first match wins); default: last",
    ),
    opt("rules", &[], Flag, Opt::Rules, "rules", "xxxx xxxxxxxxxxx ", H, "with -L: list the http services' rules (as --list-rules)"),
];

/// The definition with long name `name`.
pub fn by_long(name: &str) -> Option<&'static OptDef> {
    OPTIONS.iter().find(|d| d.long == name)
}

/// The definition with short name `c`.
pub fn by_short(c: char) -> Option<&'static OptDef> {
    OPTIONS.iter().find(|d| d.shorts.contains(&c))
}

/// The definition of option `o`.
pub fn def_of(o: Opt) -> &'static OptDef {
    OPTIONS.iter().find(|d| d.action == Action::Option(o)).expect("every option is in the table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let mut longs = std::collections::HashSet::new();
        let mut shorts = std::collections::HashSet::new();
        for d in OPTIONS {
            assert!(longs.insert(d.long), "duplicate --{}", d.long);
            for s in d.shorts {
                assert!(shorts.insert(*s), "duplicate -{s}");
            }
            match d.action {
                Action::Command(_) => assert!(d.rules.is_empty()),
                Action::Option(o) => {
                    assert_eq!(d.rules.len(), COLUMNS, "--{}", d.long);
                    assert!(d.rules.chars().all(|c| "+x1 ".contains(c)), "--{}", d.long);
                    assert_eq!(def_of(o).long, d.long);
                }
            }
        }
    }
}
