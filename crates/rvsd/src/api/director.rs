//! The director-wide resources: `/v1/info`, `/v1/commands` (batches, all or nothing), `/v1/save`,
//! `/v1/connections`, `/v1/templates`, `/v1/timeouts`, `/v1/options`, `/v1/zero`, `/v1/reload`.

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use rvs_api::{
    table_to_commands, timeouts_view, ApiCommand, ApiError, CommandBatch, ConnectionList, ConnectionView, InfoView,
    OptionsView, PacketEngineView, ReloadReport, ServiceId, SockmapView, TemplateList, TemplateView, TimeoutsView,
};
use rvs_core::timeouts::MAX_TIMEOUT_SECS;
use rvs_core::Command;

use super::errors::apply_error;
use super::{apply, body, error, json, Resp, Route};
use crate::change::Change;
use crate::director::ReloadError;

pub(crate) async fn route(at: &Route<'_>, rest: &[&str], req: Request<Incoming>) -> Result<Resp, Resp> {
    let director = at.director;
    let model = || director.model();
    match (at.method, rest) {
        (&Method::GET, ["info"]) => Ok(json(StatusCode::OK, &info(director))),
        (&Method::POST, ["commands"]) => {
            let batch: CommandBatch = body(req).await?;
            let mut table = model().table.clone();
            let mut changes = Vec::with_capacity(batch.commands.len());
            for (i, c) in batch.commands.iter().enumerate() {
                let cmd = c.to_core(&table).map_err(|e| {
                    error(
                        StatusCode::BAD_REQUEST,
                        ApiError::field(format!("commands[{i}].{}", e.field.unwrap_or_default()), e.message)
                            .with_code("invalid"),
                    )
                })?;
                // Later commands of the batch see the earlier ones (edits fill from them).
                let _ = table.apply(&cmd);
                changes.push(Change::Table(cmd));
            }
            let outcome = director.apply(&changes).map_err(|e| apply_error(e, &changes, true))?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"ok": true, "applied": changes.len(), "generation": outcome.generation}),
            ))
        }
        (&Method::GET, ["save"]) => {
            Ok(json(StatusCode::OK, &CommandBatch { commands: table_to_commands(&model().table) }))
        }
        (&Method::GET, ["connections"]) => {
            let connections = director
                .connections()
                .into_iter()
                .map(|c| ConnectionView {
                    protocol: c.protocol.name().into(),
                    client: c.client.to_string(),
                    virtual_address: c.virtual_addr.to_string(),
                    real_server: c.dest.map(|d| d.to_string()),
                    state: c.ipvs_state().into(),
                    expires_ms: c.expires_ms,
                })
                .collect();
            Ok(json(StatusCode::OK, &ConnectionList { connections }))
        }
        (&Method::GET, ["templates"]) => {
            let now = director.clock.now_ms();
            let table = director.table();
            let templates = table
                .services()
                .flat_map(|s| {
                    let pe_name = s.settings().persistence.and_then(|p| p.engine).map(|e| e.name().to_string());
                    s.templates(now).into_iter().map(move |(t, left)| TemplateView {
                        // A firewall mark's templates are IPVS's protocol IP, on the mark's
                        // own address.
                        protocol: s.key.protocol().map_or("ip", |p| p.name()).into(),
                        client_net: t.client_net.to_string(),
                        pe_name: t.pe_data.as_ref().and(pe_name.clone()),
                        pe_data: t.pe_data.as_deref().map(|d| String::from_utf8_lossy(d).into_owned()),
                        virtual_address: match s.key {
                            rvs_core::ServiceKey::Addr(a) => a.addr,
                            rvs_core::ServiceKey::Mark(m) => m.template_vaddr(),
                        }
                        .to_string(),
                        real_server: t.dest.to_string(),
                        expires_ms: left,
                        connections: t.controlled(),
                    })
                })
                .collect();
            Ok(json(StatusCode::OK, &TemplateList { templates }))
        }
        (&Method::GET, ["timeouts"]) => Ok(json(StatusCode::OK, &timeouts_view(&model().table.timeouts))),
        (&Method::PUT, ["timeouts"]) => {
            let t: TimeoutsView = body(req).await?;
            for (name, v) in [("tcp", t.tcp), ("tcpfin", t.tcpfin), ("udp", t.udp)] {
                if v > MAX_TIMEOUT_SECS {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        ApiError::field(
                            name,
                            format!("{v} is out of range: at most {MAX_TIMEOUT_SECS} seconds (0 leaves it unchanged)"),
                        ),
                    ));
                }
            }
            let merged = model().table.timeouts.merged(t.tcp, t.tcpfin, t.udp);
            apply(director, &[Change::Table(Command::SetTimeouts(merged))])
        }
        (&Method::GET, ["options"]) => {
            let o = model().table.options;
            Ok(json(
                StatusCode::OK,
                &OptionsView {
                    expire_nodest_conn: o.expire_nodest_conn,
                    expire_quiescent_template: o.expire_quiescent_template,
                },
            ))
        }
        (&Method::PUT, ["options"]) => {
            let o: OptionsView = body(req).await?;
            let cmd = ApiCommand::SetOptions { options: o }
                .to_core(&model().table)
                .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
            apply(director, &[Change::Table(cmd)])
        }
        (&Method::POST, ["zero"]) => {
            // No service: every counter, the http services' too.
            let id: Option<ServiceId> = body(req).await?;
            let cmd = ApiCommand::Zero { service: id }
                .to_core(&model().table)
                .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
            apply(director, &[Change::Table(cmd)])
        }
        (&Method::POST, ["reload"]) => match director.reload_logged("API") {
            Ok((outcome, notes)) => Ok(json(
                StatusCode::OK,
                &ReloadReport { generation: outcome.generation, changes: outcome.changes, notes },
            )),
            Err(e @ ReloadError::NoFile) => Err(error(StatusCode::CONFLICT, ApiError::message(e))),
            Err(e) => Err(error(StatusCode::BAD_REQUEST, ApiError::message(e))),
        },
        _ => Err(at.not_found()),
    }
}

/// `/v1/info`: the director itself.
pub(crate) fn info(director: &crate::director::Director) -> InfoView {
    let report = director.report();
    let limit = director.connection_limit();
    let services = director.table().services().count();
    InfoView {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        generation: director.generation(),
        connections: report.connections,
        services,
        client_connections: limit.current(),
        max_connections: limit.max().map_or(0, |m| m.get()),
        max_connections_waits: limit.waits(),
        config_file: director.config_path().map(|p| p.display().to_string()),
        draining: report.draining,
        relay: if report.kernel_relay.is_some() { "sockmap" } else { "splice" }.to_string(),
        sockmap: report.kernel_relay.map(|k| SockmapView {
            capacity: k.capacity,
            linked: k.linked,
            linked_total: k.linked_total,
        }),
        packet_engine: report.packet.map(|p| PacketEngineView {
            attached: !p.interfaces.is_empty(),
            interfaces: p.interfaces.into_iter().map(|(n, m)| (n, m.to_string())).collect(),
            services: p.services,
            pin_dir: p.pin_dir,
            taken_over: p.taken_over,
            flows: p.flows,
            capacity: p.capacity,
            table_bytes: p.table_bytes,
            scheduled: p.scheduled,
            rejected: p.rejected,
            schedule_ns: p.schedule_ns,
            counters: p.stats.into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
        }),
    }
}
