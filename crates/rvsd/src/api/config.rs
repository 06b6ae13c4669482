//! `/v1/config`: the running configuration against the file. `GET /v1/config/diff` shows what
//! writing the file would change (a line diff, secrets masked, and the changes a reload of the
//! file as it is would make); `POST /v1/config/save` writes it atomically (a temporary file,
//! fsync, rename), the previous file kept beside it as `NAME.prev`. The written file loads as
//! exactly what runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use rvs_api::ApiError;
use rvs_config::{Config, DiffLine, SaveError};
use serde::{Deserialize, Serialize};

use super::{body, error, json, Resp, Route};
use crate::director::Director;

#[derive(Serialize)]
struct Line {
    op: char,
    text: String,
}

#[derive(Serialize)]
struct DiffView {
    file: String,
    /// What runs differs from what the file says (a reload would change something).
    changed: bool,
    /// A write would change the file's text (perhaps only its layout).
    differs: bool,
    /// Identifies the text a save would write; give it to `save` to write only that.
    digest: String,
    /// The file, line by line: `' '` as is, `'-'` removed, `'+'` added by a save.
    diff: Vec<Line>,
    /// What a reload of the file as it is would change in what runs.
    reload_would: Vec<String>,
}

#[derive(Deserialize, Default)]
struct SaveRequest {
    /// The digest of the difference shown; refused when what runs changed since.
    digest: Option<String>,
}

pub(crate) async fn route(at: &Route<'_>, rest: &[&str], req: Request<Incoming>) -> Result<Resp, Resp> {
    let director = at.director;
    match (at.method, rest) {
        (&Method::GET, ["diff"]) => {
            let p = Prepared::new(director)?;
            let diff = rvs_config::line_diff(&p.old, &p.new);
            let reload_would = reload_would(director, &p.path);
            Ok(json(
                StatusCode::OK,
                &DiffView {
                    file: p.path.display().to_string(),
                    changed: !reload_would.is_empty(),
                    differs: p.old != p.new,
                    digest: digest(&p.new),
                    diff: diff.into_iter().map(redact).collect(),
                    reload_would,
                },
            ))
        }
        (&Method::POST, ["save"]) => {
            let r: Option<SaveRequest> = body(req).await?;
            let p = Prepared::new(director)?;
            if let Some(d) = r.unwrap_or_default().digest {
                if d != digest(&p.new) {
                    return Err(error(
                        StatusCode::CONFLICT,
                        ApiError::field("digest", "what runs changed since the difference was shown: look again")
                            .with_code("changed"),
                    ));
                }
            }
            let previous = write_atomically(&p.path, &p.old, &p.new).map_err(|e| {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ApiError::message(format!("cannot write {}: {e}", p.path.display())),
                )
            })?;
            tracing::info!(file = %p.path.display(), previous = %previous.display(), "configuration saved");
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({
                    "ok": true,
                    "file": p.path.display().to_string(),
                    "previous": previous.display().to_string(),
                    "bytes": p.new.len(),
                    "changed": p.old != p.new,
                }),
            ))
        }
        _ => Err(at.not_found()),
    }
}

/// The file as it is and as a save would write it.
struct Prepared {
    path: PathBuf,
    old: String,
    new: String,
}

impl Prepared {
    fn new(director: &Director) -> Result<Self, Resp> {
        let path = director.config_path().cloned().ok_or_else(|| {
            error(
                StatusCode::CONFLICT,
                ApiError::message("rvsd was started without --config: there is no file to save to"),
            )
        })?;
        let old = std::fs::read_to_string(&path).map_err(|e| {
            error(StatusCode::CONFLICT, ApiError::message(format!("cannot read {}: {e}", path.display())))
        })?;
        let model = director.model();
        let new = rvs_config::rewrite(&old, &path, &model.table, &model.http).map_err(|e| {
            let status = match e {
                SaveError::Toml(_) => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, ApiError::message(e))
        })?;
        Ok(Self { path, old, new })
    }
}

/// FNV-1a of the text, as hex.
fn digest(text: &str) -> String {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{h:016x}")
}

/// A line that sets a token shows no value.
fn redact(l: DiffLine) -> Line {
    let key = l.text.split('=').next().unwrap_or("").trim();
    let secret = l.text.contains('=') && (key == "token" || key == "read_only_token");
    let text = if secret { format!("{key} = \"(hidden)\"") } else { l.text };
    Line { op: l.op, text }
}

/// What a reload of the file as it is would change.
fn reload_would(director: &Director, path: &Path) -> Vec<String> {
    let file = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return vec![format!("the file does not load: {e}")],
    };
    let model = director.model();
    let mut v: Vec<String> = model.table.diff(&file.table).iter().map(ToString::to_string).collect();
    for h in &model.http {
        match file.http.iter().find(|f| f.key == h.key) {
            Some(f) if f == h => {}
            Some(_) => v.push(format!("set http virtual service {} as the file says", h.key.addr)),
            None => v.push(format!("delete http virtual service {}", h.key.addr)),
        }
    }
    v
}

/// Writes `new` to `path` atomically, `old` kept as `path.prev`; returns the latter's path.
fn write_atomically(path: &Path, old: &str, new: &str) -> std::io::Result<PathBuf> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "rvsd.toml".into());
    let perms = std::fs::metadata(path)?.permissions();
    let previous = dir.join(format!("{name}.prev"));
    write_synced(&dir.join(format!(".{name}.prev.tmp")), old, &perms, &previous)?;
    write_synced(&dir.join(format!(".{name}.tmp")), new, &perms, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(previous)
}

/// Writes `text` to `tmp` (with `perms`: the file may hold a token), fsyncs, renames to `to`.
fn write_synced(tmp: &Path, text: &str, perms: &std::fs::Permissions, to: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(tmp)?;
    f.set_permissions(perms.clone())?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(tmp, to)
}
