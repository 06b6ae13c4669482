//! The event log: a bounded ring of timestamped events (real server transitions, quorum
//! changes), oldest dropped first, with sequence numbers so a reader can ask for what is new.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::SystemTime;

use crate::health::{Health, WeightHint};
use rvs_model::health::quorum::QuorumState;

/// How many events a log keeps by default.
pub const DEFAULT_EVENT_CAPACITY: usize = 1000;

/// Something that happened to a real server or a service, as rvsd shows it in `/v1/events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    RealServer {
        service: String,
        server: SocketAddr,
        from: Health,
        to: Health,
        weight: Option<WeightHint>,
        reason: String,
    },
    Quorum {
        service: String,
        from: QuorumState,
        to: QuorumState,
        live_weight: u64,
    },
    /// A VRRP instance's transition (`from` and `to`: `backup`, `master`, `fault`, `stopped`).
    Vrrp {
        instance: String,
        from: &'static str,
        to: &'static str,
    },
    /// The configuration file reloaded (`via`: SIGHUP or API): what it changed, or why it
    /// was refused.
    Reload {
        via: &'static str,
        changes: Vec<String>,
        refused: Option<String>,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::RealServer { service, server, from, to, weight, reason } => {
                write!(f, "{service} real server {server}: {from} -> {to}")?;
                if let Some(w) = weight {
                    write!(f, " weight {w}")?;
                }
                write!(f, ": {reason}")
            }
            Event::Quorum { service, from, to, live_weight } => {
                write!(f, "{service} quorum {from} -> {to} (live weight {live_weight})")
            }
            Event::Vrrp { instance, from, to } => write!(f, "vrrp instance {instance}: {from} -> {to}"),
            Event::Reload { via, refused: Some(e), .. } => write!(f, "reload ({via}) refused: {e}"),
            Event::Reload { via, changes, refused: None } => {
                write!(f, "reload ({via}): {} changes", changes.len())
            }
        }
    }
}

/// One logged event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord<T> {
    /// 1, 2, 3, ... in the order pushed; never reused.
    pub seq: u64,
    pub at: SystemTime,
    pub event: T,
}

/// A bounded ring of the latest events.
#[derive(Debug, Clone)]
pub struct EventLog<T = Event> {
    capacity: usize,
    records: VecDeque<EventRecord<T>>,
    next_seq: u64,
}

impl<T> Default for EventLog<T> {
    fn default() -> Self {
        Self::new(DEFAULT_EVENT_CAPACITY)
    }
}

impl<T> EventLog<T> {
    /// Keeps the latest `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self { capacity, records: VecDeque::with_capacity(capacity.min(4096)), next_seq: 1 }
    }

    /// Logs `event` now; returns its sequence number.
    pub fn push(&mut self, event: T) -> u64 {
        self.push_at(SystemTime::now(), event)
    }

    pub fn push_at(&mut self, at: SystemTime, event: T) -> u64 {
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.records.push_back(EventRecord { seq, at, event });
        seq
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &EventRecord<T>> {
        self.records.iter()
    }

    /// The events after sequence number `seq` (0 for all kept), oldest first.
    pub fn since(&self, seq: u64) -> impl Iterator<Item = &EventRecord<T>> {
        let skip = self.records.partition_point(|r| r.seq <= seq);
        self.records.iter().skip(skip)
    }

    /// The latest `n` events, oldest first.
    pub fn latest(&self, n: usize) -> impl Iterator<Item = &EventRecord<T>> {
        self.records.iter().skip(self.records.len().saturating_sub(n))
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many events were pushed out by newer ones.
    pub fn dropped(&self) -> u64 {
        self.next_seq - 1 - self.records.len() as u64
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest() {
        let mut log = EventLog::new(3);
        for i in 0..5 {
            log.push(i);
        }
        let kept: Vec<_> = log.iter().map(|r| (r.seq, r.event)).collect();
        assert_eq!(kept, [(3, 2), (4, 3), (5, 4)]);
        assert_eq!(log.dropped(), 2);
        assert_eq!(log.since(4).map(|r| r.event).collect::<Vec<_>>(), [4]);
        assert_eq!(log.since(0).count(), 3);
        assert_eq!(log.since(99).count(), 0);
        assert_eq!(log.latest(2).map(|r| r.event).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(log.latest(10).count(), 3);
        assert_eq!(log.next_seq(), 6);
    }

    #[test]
    fn displays() {
        let e = Event::RealServer {
            service: "TCP 10.0.0.1:80".into(),
            server: "10.0.0.2:80".parse().unwrap(),
            from: Health::Up,
            to: Health::Down,
            weight: None,
            reason: "connection refused (3 consecutive failures)".into(),
        };
        assert_eq!(
            e.to_string(),
            "TCP 10.0.0.1:80 real server 10.0.0.2:80: up -> down: connection refused (3 consecutive failures)"
        );
        let q = Event::Quorum { service: "s".into(), from: QuorumState::Up, to: QuorumState::Down, live_weight: 0 };
        assert_eq!(q.to_string(), "s quorum up -> down (live weight 0)");
        let log: EventLog = EventLog::default();
        assert_eq!(log.capacity(), DEFAULT_EVENT_CAPACITY);
    }
}
