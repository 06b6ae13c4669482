//! The full path of the field at a place in the file (`service[0].check.interval`), for the
//! errors TOML deserialization reports with a span but no path: wrong types, unknown fields,
//! missing ones. The file is read again with its spans (toml_edit, which toml itself parses
//! with) and the smallest key, value or table that holds the place names it.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

/// The path at byte `at` of `text`, if `text` is TOML at all and `at` is inside a table.
pub(crate) fn field_at(text: &str, at: usize) -> Option<String> {
    let doc = ImDocument::parse(text).ok()?;
    let mut best = Best { at, found: None };
    table(doc.as_table(), "", &mut best);
    best.found.map(|(_, path)| path).filter(|p| !p.is_empty())
}

struct Best {
    at: usize,
    /// The length of the smallest span holding `at`, and its path.
    found: Option<(usize, String)>,
}

impl Best {
    fn consider(&mut self, span: Option<Range<usize>>, path: &str) {
        let Some(s) = span else { return };
        let holds = s.start <= self.at && (self.at < s.end || (s.is_empty() && self.at == s.start));
        if holds && self.found.as_ref().is_none_or(|(len, _)| s.len() <= *len) {
            self.found = Some((s.len(), path.to_string()));
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn table(t: &Table, path: &str, best: &mut Best) {
    best.consider(t.span(), path);
    for (name, _) in t.iter() {
        let Some((key, item)) = t.get_key_value(name) else { continue };
        let p = join(path, name);
        best.consider(key.span(), &p);
        match item {
            Item::None => {}
            Item::Value(v) => value(v, &p, best),
            Item::Table(t) => table(t, &p, best),
            Item::ArrayOfTables(a) => {
                for (i, t) in a.iter().enumerate() {
                    table(t, &format!("{p}[{i}]"), best);
                }
            }
        }
    }
}

fn value(v: &Value, path: &str, best: &mut Best) {
    best.consider(v.span(), path);
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                value(x, &format!("{path}[{i}]"), best);
            }
        }
        Value::InlineTable(t) => {
            for (name, _) in t.iter() {
                let Some((key, item)) = t.get_key_value(name) else { continue };
                let p = join(path, name);
                best.consider(key.span(), &p);
                if let Item::Value(x) = item {
                    value(x, &p, best);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::field_at;

    fn at(text: &str, needle: &str) -> Option<String> {
        field_at(text, text.find(needle).expect("needle"))
    }

    #[test]
    fn names_nested_tables_arrays_and_inline_tables() {
        let text =
            "[api]\nsocket = \"/x\"\n[[service]]\naddress = \"a\"\ncheck = { type = \"http\", interval = \"2s\" }\n\
                    [[service.real_server]]\naddress = \"b\"\n[[service.real_server]]\nweight = \"w\"\n\
                    [[service]]\nsched_flags = [\"x\", \"y\"]\n";
        assert_eq!(at(text, "\"/x\"").as_deref(), Some("api.socket"));
        assert_eq!(at(text, "\"2s\"").as_deref(), Some("service[0].check.interval"));
        assert_eq!(at(text, "interval").as_deref(), Some("service[0].check.interval"));
        assert_eq!(at(text, "\"w\"").as_deref(), Some("service[0].real_server[1].weight"));
        assert_eq!(at(text, "\"y\"").as_deref(), Some("service[1].sched_flags[1]"));
    }

    #[test]
    fn nothing_outside_toml() {
        assert_eq!(field_at("a = = =", 2), None);
    }
}
