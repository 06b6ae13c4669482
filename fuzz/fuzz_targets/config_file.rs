//! Arbitrary text through the configuration file's reader (TOML into the validated model, as
//! `rvsd --check-config` and a reload read it). Nothing panics; a refusal points into the
//! file (a line that exists, shown as it is) and names the field when it comes from
//! validation; an accepted file's service table is rebuilt exactly by the commands `save`
//! prints for it, taken back through the API as `restore` does.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rvs_api::table_to_commands;
use rvs_config::Config;
use rvs_core::TableModel;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let cfg = match Config::parse(text, Path::new("fuzz.toml")) {
        Ok(cfg) => cfg,
        Err(e) => {
            let lines = text.split('\n').count();
            assert!(e.line <= lines, "line {} of {lines}", e.line);
            if e.line > 0 {
                let line = text.split('\n').nth(e.line - 1).expect("the line exists");
                if let Some(shown) = e.source_line.as_deref() {
                    assert!(shown == line || line.strip_suffix('\r') == Some(shown), "line {} shown wrongly", e.line);
                }
                assert!(e.column >= 1);
            }
            if let Some(field) = &e.field {
                assert!(!field.is_empty());
            }
            assert!(!e.message.is_empty());
            let _ = e.to_string();
            return;
        }
    };
    assert!(cfg.table.diff(&cfg.table).is_empty(), "a table differs from itself");
    let mut model = TableModel::default();
    for cmd in table_to_commands(&cfg.table) {
        let core = cmd.to_core(&model).unwrap_or_else(|e| panic!("saved {cmd:?} refused: {e}"));
        model.apply(&core).unwrap_or_else(|e| panic!("saved {core:?} refused: {e}"));
    }
    assert_eq!(model, cfg.table, "save then restore changed the table");
});
