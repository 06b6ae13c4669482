//! The last hour of every figure the dashboard graphs: one fixed-size ring of one-second
//! samples per series (a series: one figure of one service, real server, rule or pool),
//! allocated once, the oldest sample dropped first; a missed second is a gap.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::Serialize;

/// Samples a series keeps: an hour of seconds.
pub const SAMPLES: usize = 3600;
/// Series kept at most (about 14 KiB each); figures of objects beyond it are shown live only.
pub const MAX_SERIES: usize = 2048;

/// One series: the sample of second `start + i` at `vals[i]`.
struct Ring {
    start: u64,
    vals: VecDeque<f32>,
}

impl Ring {
    fn new() -> Self {
        Self { start: 0, vals: VecDeque::with_capacity(SAMPLES + 1) }
    }

    fn push(&mut self, t: u64, v: f32) {
        if self.vals.is_empty() {
            self.start = t;
        }
        let next = self.start + self.vals.len() as u64;
        if t < next {
            // The clock stepped back: keep what is known.
            return;
        }
        let gap = (t - next).min(SAMPLES as u64);
        if gap == SAMPLES as u64 {
            self.vals.clear();
            self.start = t;
        } else {
            for _ in 0..gap {
                self.vals.push_back(f32::NAN);
            }
        }
        self.vals.push_back(v);
        while self.vals.len() > SAMPLES {
            self.vals.pop_front();
            self.start += 1;
        }
    }
}

/// What `/v1/history?object=ID` answers: each figure's samples from its `start` (unix
/// seconds), one a second; a missing sample is `null`.
#[derive(Debug, Serialize)]
pub struct HistoryView {
    pub object: String,
    pub series: BTreeMap<&'static str, SeriesView>,
}

#[derive(Debug, Serialize)]
pub struct SeriesView {
    pub start: u64,
    pub values: Vec<f32>,
}

#[derive(Default)]
pub struct History {
    objects: HashMap<String, BTreeMap<&'static str, Ring>>,
    series: usize,
    seen: HashSet<String>,
}

impl History {
    /// Records figure `name` of `object` at second `t`.
    pub fn record(&mut self, t: u64, object: &str, name: &'static str, v: f64) {
        if !self.seen.contains(object) {
            self.seen.insert(object.to_string());
        }
        let series = &mut self.series;
        let obj = match self.objects.get_mut(object) {
            Some(o) => o,
            None if *series < MAX_SERIES => self.objects.entry(object.to_string()).or_default(),
            None => return,
        };
        if !obj.contains_key(name) {
            if *series >= MAX_SERIES {
                return;
            }
            *series += 1;
            obj.insert(name, Ring::new());
        }
        if let Some(r) = obj.get_mut(name) {
            r.push(t, v as f32);
        }
    }

    /// Ends a round of samples: the objects not recorded since the last round are gone.
    pub fn end_round(&mut self) {
        let seen = std::mem::take(&mut self.seen);
        self.objects.retain(|k, _| seen.contains(k));
        self.series = self.objects.values().map(BTreeMap::len).sum();
    }

    pub fn view(&self, object: &str) -> Option<HistoryView> {
        let obj = self.objects.get(object)?;
        Some(HistoryView {
            object: object.to_string(),
            series: obj
                .iter()
                .map(|(k, r)| (*k, SeriesView { start: r.start, values: r.vals.iter().copied().collect() }))
                .collect(),
        })
    }

    /// The objects with a history.
    pub fn objects(&self) -> Vec<String> {
        let mut v: Vec<String> = self.objects.keys().cloned().collect();
        v.sort();
        v
    }

    /// Series held.
    pub fn series(&self) -> usize {
        self.series
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_keeps_the_last_hour_and_marks_gaps() {
        let mut h = History::default();
        for t in 0..(SAMPLES as u64 + 10) {
            if t == 5000 {
                continue;
            }
            h.record(t, "a", "cps", t as f64);
            h.end_round();
        }
        let v = h.view("a").unwrap();
        let s = &v.series["cps"];
        assert_eq!(s.values.len(), SAMPLES);
        assert_eq!(s.start, 10);
        h.record(SAMPLES as u64 + 12, "a", "cps", 1.0);
        let v = h.view("a").unwrap();
        assert!(v.series["cps"].values[SAMPLES - 2].is_nan(), "the missed second is a gap");
        h.end_round();
        h.end_round();
        assert!(h.view("a").is_none(), "a gone object's series go");
        assert_eq!(h.series(), 0);
    }
}
