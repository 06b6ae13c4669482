//! The dashboard's reads beyond the listings: `/v1/dashboard` (the director itself: version,
//! uptime, memory, data planes, push-channel clients) and `/v1/history` (the last hour of an
//! object's figures; without `object`, the objects that have one).

use hyper::{Method, StatusCode};
use rvs_api::ApiError;

use super::{error, json, Resp, Route};
use crate::ui::Dashboard;

pub(crate) fn route(at: &Route<'_>, dash: &Dashboard, which: &str, query: Option<&str>) -> Result<Resp, Resp> {
    if at.method != Method::GET {
        return Err(at.not_found());
    }
    match which {
        "dashboard" => {
            let http = at.director.model().http.len();
            Ok(json(StatusCode::OK, &crate::ui::sampler::director_view(at.director, dash, http)))
        }
        _ => {
            let object = query
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("object="))
                .map(rvs_api::path::percent_decode);
            match object {
                None => Ok(json(StatusCode::OK, &serde_json::json!({"objects": dash.history().objects()}))),
                Some(o) => match dash.history().view(&o) {
                    Some(v) => Ok(json(StatusCode::OK, &v)),
                    None => Err(error(StatusCode::NOT_FOUND, ApiError::field("object", format!("no history of {o}")))),
                },
            }
        }
    }
}
