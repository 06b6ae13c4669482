//! Arbitrary request bodies through the control API's JSON types and their conversion into
//! core commands (what rvsd does with a POST or PUT): the first byte picks the endpoint's
//! type. Nothing panics; whatever deserializes serializes to JSON that reads back the same; a
//! command the conversion accepts, turned back into its wire form, converts to the same core
//! command; and a refusal names the field at fault.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_api::{
    command_to_api, service_key, ApiCommand, ApiError, CommandBatch, HttpRuleSpec, MarkSpec, OptionsView,
    RealServerSpec, ServiceId, ServiceSpec, SyncDaemonSpec, TimeoutsView,
};
use rvs_core::TableModel;
use serde::de::DeserializeOwned;
use serde::Serialize;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else { return };
    match kind % 9 {
        0 => {
            let Some(batch) = round_trip::<CommandBatch>(body) else { return };
            let mut model = TableModel::default();
            for cmd in &batch.commands {
                if let Some(core) = convert(cmd, &model) {
                    let _ = model.apply(&core);
                }
            }
        }
        1 => {
            let Some(spec) = round_trip::<ServiceSpec>(body) else { return };
            convert(&ApiCommand::AddService { service: spec }, &TableModel::default());
        }
        2 => {
            let Some(server) = round_trip::<RealServerSpec>(body) else { return };
            let service = ServiceId { protocol: "tcp".into(), address: "10.0.0.1:80".into() };
            let key = service_key(&service, "path").expect("a valid service");
            match server.to_core(&key, None, "server") {
                Ok(s) => assert_eq!(RealServerSpec::from_core(&s).to_core(&key, None, "server"), Ok(s)),
                Err(e) => named(&e),
            }
            convert(&ApiCommand::AddServer { service, server }, &TableModel::default());
        }
        3 => {
            let Some(spec) = round_trip::<HttpRuleSpec>(body) else { return };
            let matches: Vec<&str> = spec.matches.iter().map(String::as_str).collect();
            let _ = rvs_model::http::Rule::parse(spec.name.as_str(), &matches, spec.pool.as_str());
        }
        4 => {
            let Some(timeouts) = round_trip::<TimeoutsView>(body) else { return };
            convert(&ApiCommand::SetTimeouts { timeouts }, &TableModel::default());
        }
        5 => {
            let Some(options) = round_trip::<OptionsView>(body) else { return };
            convert(&ApiCommand::SetOptions { options }, &TableModel::default());
        }
        6 => {
            let Some(service) = round_trip::<Option<ServiceId>>(body) else { return };
            convert(&ApiCommand::Zero { service }, &TableModel::default());
        }
        7 => {
            round_trip::<SyncDaemonSpec>(body);
        }
        _ => {
            // A firewall mark (PUT /v1/marks/N): accepted ones come back the same.
            let Some(mark) = round_trip::<MarkSpec>(body) else { return };
            match mark.to_core("mark") {
                Ok(def) => assert_eq!(MarkSpec::from_core(&def).to_core("mark"), Ok(def)),
                Err(e) => named(&e),
            }
            convert(&ApiCommand::SetMark { mark }, &TableModel::default());
        }
    }
});

/// The body as `T`, after checking that it serializes to JSON that reads back the same.
fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(body: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(body).ok()?;
    let json = serde_json::to_vec(&value).expect("serializes");
    let again: T = serde_json::from_slice(&json).unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&json)));
    assert_eq!(again, value);
    Some(value)
}

/// The core command of `cmd`, after checking that its wire form converts to the same.
fn convert(cmd: &ApiCommand, model: &TableModel) -> Option<rvs_core::Command> {
    match cmd.to_core(model) {
        Ok(core) => {
            let back = command_to_api(&core);
            assert_eq!(back.to_core(model).as_ref(), Ok(&core), "{cmd:?} came back as {back:?}");
            Some(core)
        }
        Err(e) => {
            named(&e);
            None
        }
    }
}

fn named(e: &ApiError) {
    assert!(e.field.as_deref().is_some_and(|f| !f.is_empty()), "no field named: {e:?}");
    assert!(!e.message.is_empty());
}
