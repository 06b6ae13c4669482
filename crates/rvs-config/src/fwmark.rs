//! `[[firewall_mark]]`: the matches of each firewall mark a `firewall_mark = N` service serves,
//! checked as the API checks them (no overlap, each used by a service).

use serde::Deserialize;
use toml::Spanned;

use rvs_core::fwmark::{MarkError, PortRange};
use rvs_core::{Command, CommandError, Mark, MarkDef, MarkMatch, Protocol, TableModel};

use crate::error::Unplaced;

type Result<T> = std::result::Result<T, Unplaced>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFirewallMark {
    pub mark: Spanned<u32>,
    #[serde(default, rename = "match")]
    pub matches: Vec<Spanned<RawMatch>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub protocol: Option<Spanned<String>>,
    /// An address or a prefix.
    pub address: Spanned<String>,
    /// A port (`443`) or a range (`"8000-8099"`).
    pub ports: Spanned<RawPorts>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawPorts {
    One(u16),
    Range(String),
}

/// Defines every mark in `table` (before the services that use them).
pub(crate) fn marks(table: &mut TableModel, raw: &[Spanned<RawFirewallMark>]) -> Result<()> {
    for (i, m) in raw.iter().enumerate() {
        let at = format!("firewall_mark[{i}]");
        let r = m.get_ref();
        let mark = Mark::new(*r.mark.get_ref())
            .ok_or_else(|| Unplaced::new(Some(r.mark.span()), format!("{at}.mark"), MarkError::Zero))?;
        if raw[..i].iter().any(|o| *o.get_ref().mark.get_ref() == mark.get()) {
            return Err(Unplaced::new(
                Some(r.mark.span()),
                format!("{at}.mark"),
                format!("firewall mark {mark} is defined twice"),
            ));
        }
        let mut matches = Vec::with_capacity(r.matches.len());
        for (j, x) in r.matches.iter().enumerate() {
            let f = |name: &str| format!("{at}.match[{j}].{name}");
            let x = x.get_ref();
            let protocol = match &x.protocol {
                Some(p) => {
                    p.get_ref().parse::<Protocol>().map_err(|e| Unplaced::new(Some(p.span()), f("protocol"), e))?
                }
                None => Protocol::Tcp,
            };
            let dest =
                x.address.get_ref().parse().map_err(|e| Unplaced::new(Some(x.address.span()), f("address"), e))?;
            let ports = match x.ports.get_ref() {
                RawPorts::One(p) => PortRange::new(*p, *p),
                RawPorts::Range(s) => s.parse(),
            }
            .map_err(|e| Unplaced::new(Some(x.ports.span()), f("ports"), e))?;
            matches.push(MarkMatch { protocol, dest, ports });
        }
        let def = MarkDef { mark, matches };
        table.apply(&Command::SetMark(def.clone())).map_err(|e| {
            // Point at the match that overlaps, when it is one of this mark's.
            let j = match &e {
                CommandError::Mark(MarkError::Overlap { b, .. }) => def.matches.iter().position(|m| m == b),
                _ => None,
            };
            match j {
                Some(j) => Unplaced::new(Some(r.matches[j].span()), format!("{at}.match[{j}]"), e),
                None if r.matches.is_empty() => Unplaced::new(Some(m.span()), format!("{at}.match"), e),
                None => Unplaced::new(Some(m.span()), at.clone(), e),
            }
        })?;
    }
    Ok(())
}

/// A mark no service uses is a mistake in a file (a service's number mistyped, or one left
/// behind): refused, naming it.
pub(crate) fn check_used(table: &TableModel, raw: &[Spanned<RawFirewallMark>]) -> Result<()> {
    for (i, m) in raw.iter().enumerate() {
        let n = *m.get_ref().mark.get_ref();
        if !table.services.keys().filter_map(|k| k.mark()).any(|k| k.mark.get() == n) {
            return Err(Unplaced::new(
                Some(m.get_ref().mark.span()),
                format!("firewall_mark[{i}].mark"),
                format!(
                    "firewall mark {n} is used by no service: add a [[service]] with firewall_mark = {n}, or delete it"
                ),
            ));
        }
    }
    Ok(())
}
