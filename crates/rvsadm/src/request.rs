//! Commands that change the table, as the API's commands (`POST /v1/commands` applies them,
//! one or a restore's many, all or nothing). ipvsadm's `-E`/`-e` replace every setting they
//! carry, with ipvsadm's defaults for what is not given (`-s wlc`, `-w 1`, thresholds 0, the
//! forwarding method `-g`), and the PROXY protocol setting (rvs's own) is kept unless given.

use rvs_api::{ApiCommand, RealServerSpec, ServiceSpec, TimeoutsView};

use crate::parse::{Command, Method, ServerArgs, ServiceArgs};

fn service_spec(a: &ServiceArgs) -> ServiceSpec {
    let id = a.service.id();
    ServiceSpec {
        protocol: id.protocol,
        address: id.address,
        scheduler: Some(a.scheduler.clone()),
        persistent: a.persistent,
        netmask: a.netmask.clone(),
        sched_flags: a.sched_flags.clone(),
        mh_table_size: a.mh_table_size,
        sorry_server: a.sorry_server.map(|s| s.to_string()),
        max_connections: a.max_connections,
        persistence_engine: a.pe.clone(),
        one_packet: a.one_packet,
        // ipvsadm has no flag for it: the default (ftp on TCP port 21), or on `-E` the
        // service's own setting, which the API keeps when this is absent.
        helper: None,
    }
}

pub fn server_spec(a: &ServerArgs, method: Method) -> RealServerSpec {
    RealServerSpec {
        address: a.addr.to_string(),
        weight: Some(a.weight),
        method: Some(method.api_name().to_string()),
        u_threshold: Some(a.u_threshold),
        l_threshold: Some(a.l_threshold),
        proxy_protocol: a.proxy_protocol.clone(),
    }
}

/// The API command for a command that changes the table; `None` for the others (list, save,
/// restore, help, and the Layer-7 rule commands, which have their own calls). `fullnat` forces
/// full NAT on real servers (`-R --fullnat`).
pub fn to_api(cmd: &Command, fullnat: bool) -> Option<ApiCommand> {
    let method = |a: &ServerArgs| if fullnat { Method::FullNat } else { a.method };
    Some(match cmd {
        Command::AddService(a) => ApiCommand::AddService { service: service_spec(a) },
        Command::EditService(a) => ApiCommand::EditService { service: service_spec(a) },
        Command::DeleteService(s) => ApiCommand::DeleteService { service: s.id() },
        Command::Clear => ApiCommand::Clear,
        Command::AddServer(a) => ApiCommand::AddServer { service: a.service.id(), server: server_spec(a, method(a)) },
        Command::EditServer(a) => ApiCommand::EditServer { service: a.service.id(), server: server_spec(a, method(a)) },
        Command::DeleteServer { service, addr, .. } => {
            ApiCommand::DeleteServer { service: service.id(), address: addr.to_string() }
        }
        Command::SetTimeouts { tcp, tcpfin, udp } => {
            ApiCommand::SetTimeouts { timeouts: TimeoutsView { tcp: *tcp, tcpfin: *tcpfin, udp: *udp } }
        }
        Command::Zero(s) => ApiCommand::Zero { service: s.as_ref().map(|s| s.id()) },
        // The Layer-7 rules have their own API calls (`/v1/http/...`), outside the batch of
        // `-R`: a restore refuses them.
        Command::AddRule(_) | Command::DeleteRule { .. } => return None,
        Command::List(_)
        | Command::StartDaemon(_)
        | Command::StopDaemon(_)
        | Command::Restore { .. }
        | Command::Save { .. }
        | Command::Help
        | Command::Version
        | Command::ConfigDiff
        | Command::SaveConfig
        | Command::Completions(_) => return None,
    })
}

/// ipvsadm's words (libipvs's `ipvs_strerror`) for "not found" and "exists" answers, by
/// command; `code` is rvsd's error code, which tells a missing service from a missing server,
/// and an existing service from an address that cannot be bound (a 409 too, whose own message
/// says why).
pub fn ipvs_strerror(cmd: &ApiCommand, status: u16, code: Option<&str>) -> Option<&'static str> {
    let no_server = code == Some("no_server");
    if code == Some("listen") {
        return None;
    }
    Some(match (cmd, status) {
        (ApiCommand::AddService { .. }, 409) => "Service already exists",
        (ApiCommand::EditService { .. } | ApiCommand::DeleteService { .. } | ApiCommand::Zero { .. }, 404) => {
            "No such service"
        }
        (ApiCommand::AddServer { .. }, 409) => "Destination already exists",
        (ApiCommand::AddServer { .. }, 404) => "Service not defined",
        (ApiCommand::EditServer { .. } | ApiCommand::DeleteServer { .. }, 404) if no_server => "No such destination",
        (ApiCommand::EditServer { .. } | ApiCommand::DeleteServer { .. }, 404) => "Service not defined",
        _ => return None,
    })
}
