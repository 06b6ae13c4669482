//! One writer: every change (file load and reload, API, health transitions) goes through one
//! apply path under one lock, all or nothing, and each applied batch takes the next number of
//! one sequence, the *generation*, which every successful change response carries and `GET
//! /v1/info` shows.
//!
//! `concurrent_changes_replay_in_generation_order` runs API writers (Layer 4 and Layer 7), a
//! reloader alternating two files and flapping health checks at once, records every
//! acknowledged change with its generation, and checks that the running state at the end is
//! what replaying those changes in generation order on a model gives.
//!
//! The `refused_reload_*` tests give rvsd a file that carries valid changes to every part (an
//! L4 weight, an L7 rule, the check specs) plus one refused thing, one test per stage that can
//! refuse, and check that nothing at all changed: L4, L7, health, events and the generation.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rvs_testkit::http_backend;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Generations

/// The `generation` of a successful change response.
fn generation(v: &Value, what: &str) -> Result<u64, String> {
    v.get("generation").and_then(Value::as_u64).ok_or_else(|| {
        format!(
            "{what}: the successful change response carries no `generation` (the apply path's sequence \
             number of the batch that made the change): {v}"
        )
    })
}

/// `GET /v1/info`'s `generation`, if it shows one.
fn try_info_generation(rvsd: &Rvsd) -> Option<u64> {
    let (st, v) = rvsd.api("GET", "/v1/info", None);
    assert_eq!(st, 200, "GET /v1/info: {v}");
    v.get("generation").and_then(Value::as_u64)
}

/// `GET /v1/info`'s `generation`.
fn info_generation(rvsd: &Rvsd) -> u64 {
    try_info_generation(rvsd).unwrap_or_else(|| {
        let (_, v) = rvsd.api("GET", "/v1/info", None);
        panic!("GET /v1/info shows no `generation` (the apply path's current sequence number): {v}")
    })
}

/// A change through the API: `Ok((status, body))` for 2xx with its generation, `Err` of
/// (status, body) for a refusal (4xx); anything else (5xx, no answer) is a failure of the test.
enum Outcome {
    Applied(u64),
    Refused(u16, Value),
}

fn change(rvsd: &Rvsd, method: &str, path: &str, body: Option<&Value>) -> Result<Outcome, String> {
    let text = body.map(Value::to_string);
    let what = format!("{method} {path} {}", text.as_deref().unwrap_or(""));
    let (st, v) = rvsd.try_api(method, path, text.as_deref()).map_err(|e| format!("{what}: no answer: {e}"))?;
    match st {
        200..=299 => Ok(Outcome::Applied(generation(&v, &what)?)),
        400..=499 => {
            if v.get("generation").is_some() {
                return Err(format!("{what}: refused with {st} but carries a generation: {v}"));
            }
            Ok(Outcome::Refused(st, v))
        }
        _ => Err(format!("{what}: unexpected status {st}: {v}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The configured state and its model

/// What the configuration says, as the API views show it: the L4 service's real servers with
/// their configured weights, the L7 service's rules in order and its pools' real servers.
#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    l4: BTreeMap<String, u64>,
    /// (name, match, pool), in order.
    rules: Vec<(String, Vec<String>, String)>,
    pools: BTreeMap<String, BTreeMap<String, u64>>,
}

/// One acknowledged change's exact effect.
#[derive(Clone, Debug)]
enum Effect {
    /// The file (index into the files) replaced everything.
    Reload(usize),
    L4Add(String, u64),
    L4Edit(String, u64),
    L4Del(String),
    RuleAdd {
        name: String,
        matches: Vec<String>,
        pool: String,
        before: Option<String>,
    },
    RuleDel(String),
    PoolAdd(String, String, u64),
    PoolEdit(String, String, u64),
    PoolDel(String, String),
    Batch(Vec<Effect>),
}

#[derive(Clone, Debug)]
struct Ack {
    generation: u64,
    who: String,
    /// The index of the request in its thread's sequence.
    seq: usize,
    effect: Effect,
}

impl State {
    /// Applies one acknowledged effect; an effect the model cannot take (an add of what is
    /// there, an edit of what is not) means the running state disagreed with the order.
    fn apply(&mut self, e: &Effect, files: &[State]) -> Result<(), String> {
        match e {
            Effect::Reload(i) => *self = files[*i].clone(),
            Effect::L4Add(a, w) => {
                if self.l4.insert(a.clone(), *w).is_some() {
                    return Err(format!("L4 add of {a}, which the model already has"));
                }
            }
            Effect::L4Edit(a, w) => match self.l4.get_mut(a) {
                Some(x) => *x = *w,
                None => return Err(format!("L4 edit of {a}, which the model does not have")),
            },
            Effect::L4Del(a) => {
                if self.l4.remove(a).is_none() {
                    return Err(format!("L4 delete of {a}, which the model does not have"));
                }
            }
            Effect::RuleAdd { name, matches, pool, before } => {
                if self.rules.iter().any(|r| &r.0 == name) {
                    return Err(format!("rule add of `{name}`, which the model already has"));
                }
                let at =
                    match before {
                        None => self.rules.len(),
                        Some(b) => self.rules.iter().position(|r| &r.0 == b).ok_or_else(|| {
                            format!("rule add of `{name}` before `{b}`, which the model does not have")
                        })?,
                    };
                self.rules.insert(at, (name.clone(), matches.clone(), pool.clone()));
            }
            Effect::RuleDel(name) => {
                let n = self.rules.len();
                self.rules.retain(|r| &r.0 != name);
                if self.rules.len() == n {
                    return Err(format!("rule delete of `{name}`, which the model does not have"));
                }
            }
            Effect::PoolAdd(p, a, w) => {
                let pool = self.pools.get_mut(p).ok_or_else(|| format!("no pool `{p}` in the model"))?;
                if pool.insert(a.clone(), *w).is_some() {
                    return Err(format!("pool `{p}` add of {a}, which the model already has"));
                }
            }
            Effect::PoolEdit(p, a, w) => {
                let pool = self.pools.get_mut(p).ok_or_else(|| format!("no pool `{p}` in the model"))?;
                match pool.get_mut(a) {
                    Some(x) => *x = *w,
                    None => return Err(format!("pool `{p}` edit of {a}, which the model does not have")),
                }
            }
            Effect::PoolDel(p, a) => {
                let pool = self.pools.get_mut(p).ok_or_else(|| format!("no pool `{p}` in the model"))?;
                if pool.remove(a).is_none() {
                    return Err(format!("pool `{p}` delete of {a}, which the model does not have"));
                }
            }
            Effect::Batch(es) => {
                // All or nothing in the model too.
                let mut next = self.clone();
                for e in es {
                    next.apply(e, files)?;
                }
                *self = next;
            }
        }
        Ok(())
    }

    /// The running state as `GET /v1/services` and `GET /v1/http` show it (configured weights).
    fn observe(rvsd: &Rvsd, vip4: SocketAddr, vip7: SocketAddr) -> State {
        let services = rvsd.services();
        let svc = services["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["address"] == vip4.to_string()))
            .unwrap_or_else(|| panic!("no L4 service {vip4} in {services}"));
        let l4 = svc["real_servers"]
            .as_array()
            .expect("real_servers")
            .iter()
            .map(|r| (str_of(&r["address"]), r["configured_weight"].as_u64().expect("configured_weight")))
            .collect();
        let (st, http) = rvsd.api("GET", "/v1/http", None);
        assert_eq!(st, 200, "GET /v1/http: {http}");
        let svc = http["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["address"] == vip7.to_string()))
            .unwrap_or_else(|| panic!("no http service {vip7} in {http}"));
        let rules = svc["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| {
                let m = r["match"].as_array().expect("match").iter().map(str_of).collect();
                (str_of(&r["name"]), m, str_of(&r["pool"]))
            })
            .collect();
        let pools = svc["pools"]
            .as_array()
            .expect("pools")
            .iter()
            .map(|p| {
                let servers = p["real_servers"]
                    .as_array()
                    .expect("real_servers")
                    .iter()
                    .map(|r| (str_of(&r["address"]), r["configured_weight"].as_u64().expect("configured_weight")))
                    .collect();
                (str_of(&p["name"]), servers)
            })
            .collect();
        State { l4, rules, pools }
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string()
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------------------------
// The stress test

/// The two files' contents: the L4 service (with a checked, flapping real server) and the
/// http service (rules, two pools, `web` checked).
struct Files {
    vip4: SocketAddr,
    vip7: SocketAddr,
    flap4: SocketAddr,
    states: Vec<State>,
}

const FLAP_CHECK: &str = "{ type = \"tcp\", interval = 0.1, timeout = 0.5, fall = 1, rise = 1, warmup = 0.05 }";

impl Files {
    fn toml(&self, i: usize) -> String {
        let s = &self.states[i];
        let mut t = format!("[[service]]\naddress = \"{}\"\nscheduler = \"wrr\"\n", self.vip4);
        for (a, w) in &s.l4 {
            t.push_str(&format!("  [[service.real_server]]\n  address = \"{a}\"\n  weight = {w}\n"));
            if *a == self.flap4.to_string() {
                t.push_str(&format!("  check = {FLAP_CHECK}\n"));
            }
        }
        t.push_str(&format!("\n[[service]]\nkind = \"http\"\naddress = \"{}\"\ndefault_pool = \"web\"\n", self.vip7));
        for (name, servers) in &s.pools {
            t.push_str(&format!("  [[service.pool]]\n  name = \"{name}\"\n  scheduler = \"wrr\"\n"));
            if name == "web" {
                t.push_str(&format!("  check = {FLAP_CHECK}\n"));
            }
            for (a, w) in servers {
                t.push_str(&format!("    [[service.pool.real_server]]\n    address = \"{a}\"\n    weight = {w}\n"));
            }
        }
        for (name, m, pool) in &s.rules {
            t.push_str(&format!("  [[service.rule]]\n  name = \"{name}\"\n  match = {m:?}\n  pool = \"{pool}\"\n"));
        }
        t
    }
}

struct Shared {
    rvsd: Rvsd,
    vip4: SocketAddr,
    vip7: SocketAddr,
    s1: String,
    flap7: String,
    /// A port held by the test: an `add-service` on it cannot bind.
    held: SocketAddr,
    stop: AtomicBool,
    /// Set when the reloader has made its last reload: the writers go on for `TAIL_OPS` more
    /// requests each, so the end state is not just the last file's.
    reloads_done: AtomicBool,
    /// The reloader stops here, everything at `deadline`.
    reload_deadline: Instant,
    deadline: Instant,
}

/// What a writer saw: acknowledged changes and refusals by kind.
#[derive(Default)]
struct Log {
    acks: Vec<Ack>,
    refused: BTreeMap<&'static str, usize>,
    applied: BTreeMap<&'static str, usize>,
}

impl Log {
    fn record(&mut self, kind: &'static str, who: &str, seq: usize, outcome: Outcome, effect: Effect) {
        match outcome {
            Outcome::Applied(g) => {
                *self.applied.entry(kind).or_default() += 1;
                self.acks.push(Ack { generation: g, who: who.to_string(), seq, effect });
            }
            Outcome::Refused(..) => *self.refused.entry(kind).or_default() += 1,
        }
    }
}

const WRITERS: usize = 3;
const MAX_OPS_PER_WRITER: usize = 2000;
const TAIL_OPS: usize = 150;
const RELOADS: usize = 45;
const RELOAD_FOR: Duration = Duration::from_secs(4);
const RUN_FOR: Duration = Duration::from_secs(6);

fn writer(sh: &Shared, w: usize) -> Result<Log, String> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((w as u64 + 1) * 0x1000_0001));
    let who = format!("writer {w}");
    let mut log = Log::default();
    let svc = format!("/v1/services/tcp/{}", sh.vip4);
    let http = format!("/v1/http/{}", sh.vip7);
    // Addresses and names of this writer's own (nothing listens there: no check, or a check
    // that fails at once).
    let own4: Vec<String> = (0..4).map(|k| format!("127.0.1.{}:{}", 10 + w, 2000 + k)).collect();
    let own7: Vec<String> = (0..4).map(|k| format!("127.0.2.{}:{}", 10 + w, 3000 + k)).collect();
    let poisoned: Vec<String> = (0..4).map(|k| format!("127.0.3.{}:{}", 10 + w, 4000 + k)).collect();
    let sid = json!({"protocol": "tcp", "address": sh.vip4.to_string()});
    let mut tail_from = None;
    // A real server added or edited: its address and weight.
    let server = |method: &str, path: &str, a: &str, weight: u64| {
        change(&sh.rvsd, method, path, Some(&json!({"address": a, "weight": weight})))
    };
    for seq in 0..MAX_OPS_PER_WRITER + TAIL_OPS {
        if sh.stop.load(Ordering::Relaxed) || Instant::now() > sh.deadline {
            break;
        }
        // A writer that used its count before the reloads ended waits for them (bounded by the
        // deadline), so that changes come after the last reload too.
        if seq >= MAX_OPS_PER_WRITER && tail_from.is_none() {
            while !sh.reloads_done.load(Ordering::Relaxed) && Instant::now() <= sh.deadline {
                thread::sleep(Duration::from_millis(5));
            }
        }
        if sh.reloads_done.load(Ordering::Relaxed) && seq >= *tail_from.get_or_insert(seq) + TAIL_OPS {
            break;
        }
        let k = rng.below(4) as usize;
        let weight = 1 + rng.below(100);
        let pool = if k.is_multiple_of(2) { "web" } else { "api" };
        match rng.below(12) {
            0 | 1 => {
                let a = &own4[k];
                let o = server("POST", &format!("{svc}/servers"), a, weight)?;
                log.record("l4 add", &who, seq, o, Effect::L4Add(a.clone(), weight));
            }
            2 => {
                let a = &own4[k];
                let o = server("PUT", &format!("{svc}/servers/{a}"), a, weight)?;
                log.record("l4 edit", &who, seq, o, Effect::L4Edit(a.clone(), weight));
            }
            3 => {
                let a = &own4[k];
                let o = change(&sh.rvsd, "DELETE", &format!("{svc}/servers/{a}"), None)?;
                log.record("l4 delete", &who, seq, o, Effect::L4Del(a.clone()));
            }
            4 => {
                // The real server every file has: writers race on its weight.
                let a = &sh.s1;
                let o = server("PUT", &format!("{svc}/servers/{a}"), a, weight)?;
                if let Outcome::Refused(st, v) = &o {
                    return Err(format!("{who}: the weight edit of {a}, which every file has, was refused: {st} {v}"));
                }
                log.record("l4 shared edit", &who, seq, o, Effect::L4Edit(a.clone(), weight));
            }
            5 | 6 => {
                let name = format!("w{w}r{k}");
                let matches = vec![format!("path^=/w{w}/{k}/")];
                let before = (rng.below(2) == 0).then(|| "catchall".to_string());
                let mut body = json!({"name": name, "match": matches, "pool": "api"});
                if let Some(b) = &before {
                    body["before"] = json!(b);
                }
                let o = change(&sh.rvsd, "POST", &format!("{http}/rules"), Some(&body))?;
                log.record("rule add", &who, seq, o, Effect::RuleAdd { name, matches, pool: "api".into(), before });
            }
            7 => {
                let name = format!("w{w}r{k}");
                let o = change(&sh.rvsd, "DELETE", &format!("{http}/rules/{name}"), None)?;
                log.record("rule delete", &who, seq, o, Effect::RuleDel(name));
            }
            8 => {
                let a = &own7[k];
                let o = server("POST", &format!("{http}/pools/{pool}/servers"), a, weight)?;
                log.record("pool add", &who, seq, o, Effect::PoolAdd(pool.into(), a.clone(), weight));
            }
            9 => {
                let a = &own7[k];
                let path = format!("{http}/pools/{pool}/servers/{a}");
                if rng.below(2) == 0 {
                    let o = server("PUT", &path, a, weight)?;
                    log.record("pool edit", &who, seq, o, Effect::PoolEdit(pool.into(), a.clone(), weight));
                } else {
                    let o = change(&sh.rvsd, "DELETE", &path, None)?;
                    log.record("pool delete", &who, seq, o, Effect::PoolDel(pool.into(), a.clone()));
                }
            }
            10 => {
                // The checked, flapping pool real server every file has.
                let a = &sh.flap7;
                let path = format!("{http}/pools/web/servers/{a}");
                let o = server("PUT", &path, a, weight)?;
                if let Outcome::Refused(st, v) = &o {
                    return Err(format!(
                        "{who}: the weight edit of pool web's {a}, which every file has, was refused: {st} {v}"
                    ));
                }
                log.record("pool shared edit", &who, seq, o, Effect::PoolEdit("web".into(), a.clone(), weight));
            }
            _ => {
                if rng.below(2) == 0 {
                    // A good batch of two: one generation for both.
                    let a = &own4[k];
                    let body = json!({"commands": [
                        {"op": "add-server", "service": sid, "server": {"address": a, "weight": weight}},
                        {"op": "edit-server", "service": sid, "server": {"address": sh.s1, "weight": weight + 1}},
                    ]});
                    let o = change(&sh.rvsd, "POST", "/v1/commands", Some(&body))?;
                    let effect = Effect::Batch(vec![
                        Effect::L4Add(a.clone(), weight),
                        Effect::L4Edit(sh.s1.clone(), weight + 1),
                    ]);
                    log.record("good batch", &who, seq, o, effect);
                } else {
                    poisoned_batch(sh, &who, &sid, &poisoned[k], seq % 3, &mut log)?;
                }
            }
        }
    }
    Ok(log)
}

/// A batch whose first command is valid and second is not: it must be refused whole, and its
/// first command (on an address only these batches use) must never show.
fn poisoned_batch(sh: &Shared, who: &str, sid: &Value, a: &str, variant: usize, log: &mut Log) -> Result<(), String> {
    let first = json!({"op": "add-server", "service": sid, "server": {"address": a, "weight": 7}});
    let (kind, second) = match variant {
        // Refused when the batch is checked against the table: no such real server.
        0 => {
            ("poisoned batch: missing server", json!({"op": "delete-server", "service": sid, "address": "127.0.4.1:1"}))
        }
        // Refused when its listener cannot be bound.
        1 => (
            "poisoned batch: unbindable service",
            json!({"op": "add-service", "service": {"protocol": "tcp", "address": sh.held.to_string(), "scheduler": "rr"}}),
        ),
        // Refused as it is read: weight out of range.
        _ => (
            "poisoned batch: bad weight",
            json!({"op": "edit-server", "service": sid, "server": {"address": a, "weight": 70000}}),
        ),
    };
    let body = json!({"commands": [first, second]});
    match change(&sh.rvsd, "POST", "/v1/commands", Some(&body))? {
        Outcome::Applied(g) => {
            Err(format!("{who}: a batch whose second command is invalid was applied (generation {g}): {body}"))
        }
        Outcome::Refused(..) => {
            *log.refused.entry(kind).or_default() += 1;
            let (st, v) = sh.rvsd.api("GET", &format!("/v1/services/tcp/{}", sh.vip4), None);
            if st == 200 && v.to_string().contains(&format!("\"{a}\"")) {
                return Err(format!("{who}: the refused batch {body} left its first command applied: {v}"));
            }
            Ok(())
        }
    }
}

fn reloader(sh: &Shared, files: &Files) -> Result<Log, String> {
    let r = reloads(sh, files);
    sh.reloads_done.store(true, Ordering::Relaxed);
    r
}

fn reloads(sh: &Shared, files: &Files) -> Result<Log, String> {
    let mut log = Log::default();
    for seq in 0..RELOADS {
        if sh.stop.load(Ordering::Relaxed) || Instant::now() > sh.reload_deadline {
            break;
        }
        // The daemon started on file 0: alternate 1, 0, 1, ...
        let i = (seq + 1) % 2;
        sh.rvsd.write_config(&files.toml(i));
        match change(&sh.rvsd, "POST", "/v1/reload", None)? {
            o @ Outcome::Applied(_) => log.record("reload", "reloader", seq, o, Effect::Reload(i)),
            Outcome::Refused(st, v) => return Err(format!("reload of file {i} refused: {st} {v}")),
        }
        thread::sleep(Duration::from_millis(60));
    }
    Ok(log)
}

/// Turns the two checked backends on and off until stopped: each check sees it flap.
fn flapper(sh: &Shared, flap4: SocketAddr, flap7: SocketAddr) {
    let mut on = (Some(Backend::start_on("flap4", flap4)), Some(Backend::start_on("flap7", flap7)));
    for _ in 0..200 {
        if sh.stop.load(Ordering::Relaxed) || Instant::now() > sh.deadline {
            break;
        }
        thread::sleep(Duration::from_millis(130));
        on.0 = match on.0.take() {
            Some(b) => {
                drop(b);
                None
            }
            None => Some(Backend::start_on("flap4", flap4)),
        };
        thread::sleep(Duration::from_millis(70));
        on.1 = match on.1.take() {
            Some(b) => {
                drop(b);
                None
            }
            None => Some(Backend::start_on("flap7", flap7)),
        };
    }
}

fn join<T>(h: thread::ScopedJoinHandle<'_, T>, what: &str) -> T {
    h.join().unwrap_or_else(|_| panic!("{what} panicked"))
}

#[test]
fn concurrent_changes_replay_in_generation_order() {
    let (vip4, vip7) = (vip(), vip());
    // The flapping backends' addresses: free ports the flapper binds and releases.
    let flap4 = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let flap7 = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let [s1, s2, s3, web2, web3, api1, api2]: [String; 7] = std::array::from_fn(|_| closed_port().to_string());
    let (f4, f7) = (flap4.to_string(), flap7.to_string());
    let l4 = |v: &[(&String, u64)]| v.iter().map(|(a, w)| ((*a).clone(), *w)).collect::<BTreeMap<_, _>>();
    let rule = |n: &str, m: &str, p: &str| (n.to_string(), vec![m.to_string()], p.to_string());
    let a = State {
        l4: l4(&[(&s1, 1), (&s2, 2), (&f4, 3)]),
        rules: vec![
            rule("api", "path^=/api/", "api"),
            rule("static", "path~=\\.css$", "api"),
            rule("catchall", "path^=/", "web"),
        ],
        pools: BTreeMap::from([
            ("web".to_string(), l4(&[(&f7, 1), (&web2, 2)])),
            ("api".to_string(), l4(&[(&api1, 1)])),
        ]),
    };
    let b = State {
        l4: l4(&[(&s1, 4), (&s3, 1), (&f4, 5)]),
        rules: vec![rule("v2", "path^=/v2/", "api"), rule("catchall", "path^=/", "web")],
        pools: BTreeMap::from([
            ("web".to_string(), l4(&[(&f7, 3), (&web3, 1)])),
            ("api".to_string(), l4(&[(&api1, 2), (&api2, 1)])),
        ]),
    };
    let files = Files { vip4, vip7, flap4, states: vec![a, b] };
    let rvsd = Rvsd::start(&files.toml(0));
    assert_eq!(State::observe(&rvsd, vip4, vip7), files.states[0], "the started state is file A's");
    let start_generation = info_generation(&rvsd);
    let events_before = rvsd.api("GET", "/v1/events", None).1["next_seq"].as_u64().expect("next_seq");

    let held = TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let sh = Shared {
        rvsd,
        vip4,
        vip7,
        s1: s1.clone(),
        flap7: f7.clone(),
        held: held.local_addr().unwrap(),
        stop: AtomicBool::new(false),
        reloads_done: AtomicBool::new(false),
        reload_deadline: Instant::now() + RELOAD_FOR,
        deadline: Instant::now() + RUN_FOR,
    };
    let (logs, failures) = thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                scope.spawn({
                    let sh = &sh;
                    move || writer(sh, w)
                })
            })
            .collect();
        let rl = scope.spawn(|| reloader(&sh, &files));
        let fl = scope.spawn(|| flapper(&sh, flap4, flap7));
        let mut logs = Vec::new();
        let mut failures = Vec::new();
        for (w, h) in writers.into_iter().enumerate() {
            match join(h, &format!("writer {w}")) {
                Ok(l) => logs.push(l),
                Err(e) => {
                    sh.stop.store(true, Ordering::Relaxed);
                    failures.push(e)
                }
            }
        }
        match join(rl, "reloader") {
            Ok(l) => logs.push(l),
            Err(e) => failures.push(e),
        }
        sh.stop.store(true, Ordering::Relaxed);
        join(fl, "flapper");
        (logs, failures)
    });
    assert!(failures.is_empty(), "during the run:\n{}", failures.join("\n"));
    let rvsd = &sh.rvsd;

    // Every acknowledged change has a number of its own, each thread's numbers increase in the
    // order it made its requests, and all are past the start and at most the current one.
    let mut acks: Vec<Ack> = logs.iter().flat_map(|l| l.acks.iter().cloned()).collect();
    let mut seen = BTreeMap::new();
    for a in &acks {
        if let Some(other) = seen.insert(a.generation, a) {
            panic!("generation {} acknowledged twice: {other:?} and {a:?}", a.generation);
        }
        assert!(a.generation > start_generation, "{a:?} is not after the start's generation {start_generation}");
    }
    for l in &logs {
        for pair in l.acks.windows(2) {
            assert!(
                pair[0].seq < pair[1].seq && pair[0].generation < pair[1].generation,
                "one thread's later change has an earlier or equal generation: {:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
    }
    let end_generation = info_generation(rvsd);
    let max_ack = acks.iter().map(|a| a.generation).max().unwrap_or(0);
    assert!(
        end_generation >= max_ack,
        "GET /v1/info's generation {end_generation} is behind an acknowledged {max_ack}"
    );

    // Not vacuous: enough of each kind went through.
    let mut applied: BTreeMap<&str, usize> = BTreeMap::new();
    let mut refused: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &logs {
        for (k, n) in &l.applied {
            *applied.entry(k).or_default() += n;
        }
        for (k, n) in &l.refused {
            *refused.entry(k).or_default() += n;
        }
    }
    let summary = format!("applied {applied:?}, refused {refused:?}");
    eprintln!(
        "one writer: {} acknowledged changes, generations {start_generation}..={end_generation}; {summary}",
        acks.len()
    );
    for kind in ["reload", "l4 add", "l4 shared edit", "rule add", "pool add", "pool shared edit"] {
        assert!(
            applied.get(kind).copied().unwrap_or(0) >= 2,
            "too few `{kind}` changes applied to mean anything: {summary}"
        );
    }
    let last_reload = acks.iter().filter(|a| matches!(a.effect, Effect::Reload(_))).map(|a| a.generation).max();
    let after_reloads = acks.iter().filter(|a| Some(a.generation) > last_reload).count();
    assert!(after_reloads >= 10, "only {after_reloads} changes acknowledged after the last reload: {summary}");
    let poisoned: usize = refused.iter().filter(|(k, _)| k.starts_with("poisoned")).map(|(_, n)| n).sum();
    assert!(poisoned >= 3, "too few poisoned batches: {summary}");
    let events_after = rvsd.api("GET", "/v1/events", None).1["next_seq"].as_u64().expect("next_seq");
    // Not asserted (it depends on timing): how many health transitions ran among the changes.
    eprintln!("one writer: {} health events during the run", events_after - events_before);

    // Replay in generation order; the running state must be the model's.
    acks.sort_by_key(|a| a.generation);
    let mut model = files.states[0].clone();
    let mut errors = Vec::new();
    for a in &acks {
        if let Err(e) = model.apply(&a.effect, &files.states) {
            errors.push(format!("generation {} ({} request {}): {e}", a.generation, a.who, a.seq));
        }
    }
    assert!(
        errors.is_empty(),
        "acknowledged changes that cannot follow each other in generation order:\n{}",
        errors.join("\n")
    );
    let running = State::observe(rvsd, vip4, vip7);
    if running != model {
        let (diff, keys) = state_diff(&running, &model);
        // The last reload and, after it, the changes that touch what differs.
        let history: Vec<String> = acks
            .iter()
            .filter(|a| Some(a.generation) >= last_reload)
            .filter(|a| {
                matches!(a.effect, Effect::Reload(_)) || keys.iter().any(|k| format!("{:?}", a.effect).contains(k))
            })
            .map(|a| format!("  {} {} #{}: {:?}", a.generation, a.who, a.seq, a.effect))
            .collect();
        let history = &history[history.len().saturating_sub(80)..];
        panic!(
            "the running state is not the replay of the acknowledged changes in generation order \
             ({summary})\nrunning vs model:\n{}\nthe last reload and the acknowledged changes after it \
             that touch these:\n{}",
            diff.join("\n"),
            history.join("\n")
        );
    }
    drop(held);
}

/// What differs between the running state and the model, one line each, and the addresses and
/// rule names involved.
fn state_diff(running: &State, model: &State) -> (Vec<String>, BTreeSet<String>) {
    let mut out = Vec::new();
    let mut keys = BTreeSet::new();
    let mut maps = |what: &str, r: &BTreeMap<String, u64>, m: &BTreeMap<String, u64>| {
        for k in r.keys().chain(m.keys()).collect::<BTreeSet<_>>() {
            if r.get(k) != m.get(k) {
                out.push(format!("  {what} {k}: running weight {:?}, model {:?}", r.get(k), m.get(k)));
                keys.insert(k.clone());
            }
        }
    };
    maps("L4 real server", &running.l4, &model.l4);
    let empty = BTreeMap::new();
    for p in running.pools.keys().chain(model.pools.keys()).collect::<BTreeSet<_>>() {
        maps(
            &format!("pool {p} real server"),
            running.pools.get(p).unwrap_or(&empty),
            model.pools.get(p).unwrap_or(&empty),
        );
    }
    if running.rules != model.rules {
        let show = |rs: &[(String, Vec<String>, String)]| {
            rs.iter().map(|(n, m, p)| format!("{n} {m:?} -> {p}")).collect::<Vec<_>>().join(", ")
        };
        out.push(format!("  rules running: [{}]\n  rules model:   [{}]", show(&running.rules), show(&model.rules)));
        let names = |rs: &[(String, Vec<String>, String)]| rs.iter().map(|r| r.0.clone()).collect::<BTreeSet<_>>();
        keys.extend(names(&running.rules).symmetric_difference(&names(&model.rules)).cloned());
    }
    (out, keys)
}

// ---------------------------------------------------------------------------------------------
// A refused reload changes nothing

/// What the refused-reload tests run: an L4 service with three real servers (two live, one
/// down) and a service-wide check, an http service with two pools (`web` checked) and rules.
struct Stage {
    rvsd: Rvsd,
    vip4: SocketAddr,
    vip7: SocketAddr,
    r1: Backend,
    r2: Backend,
    r3: SocketAddr,
    web: SocketAddr,
    api: SocketAddr,
    /// What was wrong with the generations; reported by `finish`, after every stage ran, so a
    /// daemon without generations still shows whether the state held.
    generation_problems: std::cell::RefCell<Vec<String>>,
}

/// The one refused thing a reload file carries.
enum Bad {
    None,
    /// A new http service on an address the test holds.
    L7Bind(SocketAddr),
    /// A rule naming an undefined pool.
    RulePool,
    /// A rule with a match that does not parse.
    RuleMatch,
    /// r1 gets a check of its own with this (bad) spec.
    Check(&'static str),
    /// r3's weight out of range.
    Weight,
    /// A new tcp service on an address the test holds.
    L4Bind(SocketAddr),
    /// A new tcp service on a free address, and a new http service on a held one.
    L4ThenL7(SocketAddr, SocketAddr),
}

impl Stage {
    fn start() -> Stage {
        let (r1, r2) = (Backend::start("r1"), Backend::start("r2"));
        let (web, api) = (http_backend("web"), http_backend("api"));
        let (vip4, vip7, r3) = (vip(), vip(), closed_port());
        let body = Self::render_with(vip4, vip7, r1.addr, r2.addr, r3, web, api, false, &Bad::None);
        let rvsd = Rvsd::start(&body);
        let st = Stage { rvsd, vip4, vip7, r1, r2, r3, web, api, generation_problems: Default::default() };
        st.settle();
        st
    }

    /// The config text: `changed` carries the valid changes (r2's weight 2 -> 5, a new rule
    /// `extra`, both checks tcp -> http), `bad` the refused thing.
    fn render(&self, changed: bool, bad: &Bad) -> String {
        Self::render_with(self.vip4, self.vip7, self.r1.addr, self.r2.addr, self.r3, self.web, self.api, changed, bad)
    }

    #[allow(clippy::too_many_arguments)]
    fn render_with(
        vip4: SocketAddr,
        vip7: SocketAddr,
        r1: SocketAddr,
        r2: SocketAddr,
        r3: SocketAddr,
        web: SocketAddr,
        api: SocketAddr,
        changed: bool,
        bad: &Bad,
    ) -> String {
        let l4_check = if changed {
            r#"check = { type = "http", path = "/health", interval = 0.2, timeout = 1, fall = 1, rise = 1, warmup = 0.05 }"#
        } else {
            r#"check = { type = "tcp", interval = 0.2, timeout = 1, fall = 1, rise = 1, warmup = 0.05 }"#
        };
        let pool_check = l4_check;
        let r1_extra = match bad {
            Bad::Check(spec) => format!("check = {spec}"),
            _ => String::new(),
        };
        let r2_weight = if changed { 5 } else { 2 };
        let r3_weight = if matches!(bad, Bad::Weight) { 70000 } else { 1 };
        let mut t = service_toml(
            vip4,
            "wrr",
            l4_check,
            &[(r1, &r1_extra), (r2, &format!("weight = {r2_weight}")), (r3, &format!("weight = {r3_weight}"))],
        );
        t.push_str(&format!(
            r#"
[[service]]
kind = "http"
address = "{vip7}"
default_pool = "web"
  [[service.pool]]
  name = "web"
  {pool_check}
    [[service.pool.real_server]]
    address = "{web}"
  [[service.pool]]
  name = "api"
    [[service.pool.real_server]]
    address = "{api}"
    weight = 2
  [[service.rule]]
  name = "api"
  match = ["path^=/api/"]
  pool = "api"
"#
        ));
        if changed {
            t.push_str("  [[service.rule]]\n  name = \"extra\"\n  match = [\"path^=/extra/\"]\n  pool = \"api\"\n");
        }
        match bad {
            Bad::RulePool => {
                t.push_str("  [[service.rule]]\n  name = \"broken\"\n  match = [\"path^=/b/\"]\n  pool = \"nope\"\n")
            }
            Bad::RuleMatch => {
                t.push_str("  [[service.rule]]\n  name = \"broken\"\n  match = [\"paht=/b/\"]\n  pool = \"api\"\n")
            }
            _ => {}
        }
        let http_service = |addr: SocketAddr| {
            format!(
                "\n[[service]]\nkind = \"http\"\naddress = \"{addr}\"\ndefault_pool = \"p\"\n  [[service.pool]]\n  name = \"p\"\n    [[service.pool.real_server]]\n    address = \"{web}\"\n"
            )
        };
        match bad {
            Bad::L7Bind(held) => t.push_str(&http_service(*held)),
            Bad::L4Bind(held) => t.push_str(&service_toml(*held, "rr", "", &[(r1, "")])),
            Bad::L4ThenL7(free, held) => {
                t.push_str(&service_toml(*free, "rr", "", &[(r1, "")]));
                t.push_str(&http_service(*held));
            }
            _ => {}
        }
        t
    }

    /// Waits until every check has a result, r3 is down and the others up, so nothing moves
    /// on its own while a test compares.
    fn settle(&self) {
        wait_until(Duration::from_secs(10), "the checks to settle (r1, r2 and the pool up, r3 down)", || {
            let s = service_view(&self.rvsd, self.vip4);
            let ok4 = s["real_servers"].as_array().is_some_and(|rs| {
                rs.iter().all(|r| {
                    let want = if r["address"] == self.r3.to_string() { "down" } else { "up" };
                    r["check"]["last_result"] == want && r["check"]["health"] == want
                })
            });
            let (_, h) = self.rvsd.api("GET", "/v1/http", None);
            let ok7 = h["services"][0]["pools"][0]["real_servers"][0]["check"]["last_result"] == "up";
            ok4 && ok7
        });
    }

    /// L4, L7 and health as the API shows them, counters, rates and times removed; the
    /// events' next number and the generation (if shown).
    fn snapshot(&self) -> Snapshot {
        let mut l4 = self.rvsd.services();
        let (st, mut l7) = self.rvsd.api("GET", "/v1/http", None);
        assert_eq!(st, 200, "GET /v1/http: {l7}");
        strip(&mut l4);
        strip(&mut l7);
        let (_, ev) = self.rvsd.api("GET", "/v1/events", None);
        Snapshot {
            l4,
            l7,
            next_event: ev["next_seq"].as_u64().expect("next_seq"),
            generation: try_info_generation(&self.rvsd),
        }
    }

    /// Reloads `body`, which must be refused with a 4xx; then nothing may have changed.
    fn assert_refused_changes_nothing(&self, body: &str, what: &str) {
        let before = self.snapshot();
        self.rvsd.write_config(body);
        let (st, v) = self.rvsd.api("POST", "/v1/reload", None);
        assert!((400..500).contains(&st), "{what}: the reload must be refused with a 4xx, got {st}: {v}");
        assert!(v.get("generation").is_none(), "{what}: a refused reload carries a generation: {v}");
        let after = self.snapshot();
        assert_same(&before, &after, what);
        self.check_generation_kept(&before, &after, what);
    }

    fn check_generation_kept(&self, before: &Snapshot, after: &Snapshot, what: &str) {
        let problem = match (before.generation, after.generation) {
            (Some(g0), Some(g1)) if g0 == g1 => return,
            (Some(g0), Some(g1)) => format!("{what}: a refused reload moved the generation from {g0} to {g1}"),
            _ => format!("{what}: GET /v1/info shows no `generation`"),
        };
        self.generation_problems.borrow_mut().push(problem);
    }

    /// Fails with the generation problems seen.
    fn finish(self) {
        let p = self.generation_problems.borrow();
        assert!(p.is_empty(), "the state held, but the generations did not:\n{}", p.join("\n"));
    }

    /// The same file without its bad part is taken, and shows each valid change (so the tests
    /// would see a half-applied refusal).
    fn assert_valid_part_applies(&self) {
        let before = self.snapshot();
        self.rvsd.write_config(&self.render(true, &Bad::None));
        let (st, v) = self.rvsd.api("POST", "/v1/reload", None);
        assert_eq!(st, 200, "the valid changes alone: {v}");
        let after = self.snapshot();
        let r2 = after.l4["services"][0]["real_servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == self.r2.addr.to_string())
            .cloned()
            .unwrap();
        assert_eq!(r2["configured_weight"], 5, "{r2}");
        assert!(
            after.l4["services"][0]["real_servers"][0]["check"]["check"].as_str().unwrap().contains("HTTP"),
            "{}",
            after.l4
        );
        let rules: Vec<&str> =
            after.l7["services"][0]["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(rules, ["api", "extra"]);
        let pool_check = &after.l7["services"][0]["pools"][0]["real_servers"][0]["check"]["check"];
        assert!(pool_check.as_str().unwrap().contains("HTTP"), "{}", after.l7);
        match (generation(&v, "POST /v1/reload"), before.generation) {
            (Ok(g), Some(g0)) if g > g0 => {}
            (Ok(g), Some(g0)) => self
                .generation_problems
                .borrow_mut()
                .push(format!("the applied reload's generation {g} is not past the one before, {g0}")),
            (Err(e), _) => self.generation_problems.borrow_mut().push(e),
            (_, None) => self.generation_problems.borrow_mut().push("GET /v1/info shows no `generation`".into()),
        }
    }
}

struct Snapshot {
    l4: Value,
    l7: Value,
    next_event: u64,
    generation: Option<u64>,
}

/// Removes what moves on its own: counters, rates, connection counts, times, check reasons.
fn strip(v: &mut Value) {
    const MOVING: &[&str] = &[
        "stats",
        "rates",
        "counters",
        "default_route",
        "unrouted",
        "active",
        "inactive",
        "requests",
        "bytes_in",
        "bytes_out",
        "connect_failures",
        "idle_connections",
        "persistent_conns",
        "client_connections",
        "http2_connections",
        "http2_streams",
        "http2_refused_streams",
        "since_ms",
        "last_reason",
        "consecutive_successes",
        "consecutive_failures",
    ];
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !MOVING.contains(&k.as_str()));
            m.values_mut().for_each(strip);
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

/// Where two JSON values differ: one line per differing path, with both values.
fn json_diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                json_diff(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                json_diff(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push(format!("  {path}: {a} -> {b}")),
        _ => {}
    }
}

fn assert_same(before: &Snapshot, after: &Snapshot, what: &str) {
    let mut diff = Vec::new();
    json_diff("services", &before.l4, &after.l4, &mut diff);
    json_diff("http", &before.l7, &after.l7, &mut diff);
    assert!(
        diff.is_empty(),
        "{what}: a refused reload changed GET /v1/services or GET /v1/http (before -> after):\n{}",
        diff.join("\n")
    );
    assert_eq!(before.next_event, after.next_event, "{what}: a refused reload made health events");
}

/// A listening socket the test holds, so rvsd cannot bind its address.
fn held_port() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("hold a port")
}

#[test]
fn refused_reload_l7_address_cannot_be_bound() {
    let st = Stage::start();
    let held = held_port();
    st.assert_refused_changes_nothing(&st.render(true, &Bad::L7Bind(held.local_addr().unwrap())), "L7 address taken");
    st.assert_valid_part_applies();
    st.finish();
}

#[test]
fn refused_reload_bad_l7_rule() {
    let st = Stage::start();
    st.assert_refused_changes_nothing(&st.render(true, &Bad::RulePool), "a rule naming an undefined pool");
    st.assert_refused_changes_nothing(&st.render(true, &Bad::RuleMatch), "a rule with a bad match");
    st.assert_valid_part_applies();
    st.finish();
}

#[test]
fn refused_reload_bad_check_spec() {
    let st = Stage::start();
    for spec in [
        r#"{ type = "http", expect_status = "abc", interval = 0.2 }"#,
        r#"{ type = "tcp", interval = 0 }"#,
        r#"{ type = "tcp", interval = -1 }"#,
    ] {
        st.assert_refused_changes_nothing(&st.render(true, &Bad::Check(spec)), &format!("the check {spec}"));
    }
    st.assert_valid_part_applies();
    st.finish();
}

#[test]
fn refused_reload_bad_l4_weight_or_l4_address() {
    let st = Stage::start();
    st.assert_refused_changes_nothing(&st.render(true, &Bad::Weight), "an L4 weight out of range");
    let held = held_port();
    st.assert_refused_changes_nothing(&st.render(true, &Bad::L4Bind(held.local_addr().unwrap())), "L4 address taken");
    st.assert_valid_part_applies();
    st.finish();
}

#[test]
fn refused_reload_from_l7_after_l4_leaves_no_new_l4_listener() {
    let st = Stage::start();
    let held = held_port();
    let free = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let body = st.render(true, &Bad::L4ThenL7(free, held.local_addr().unwrap()));
    let before = st.snapshot();
    st.rvsd.write_config(&body);
    let (code, v) = st.rvsd.api("POST", "/v1/reload", None);
    assert!((400..500).contains(&code), "the reload must be refused with a 4xx, got {code}: {v}");
    match TcpStream::connect_timeout(&free, Duration::from_secs(2)) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        Err(e) => panic!("connecting to {free}, the refused file's new L4 service: {e}"),
        Ok(_) => panic!("{free}, the new L4 service of a refused reload, is listening"),
    }
    let after = st.snapshot();
    assert_same(&before, &after, "new L4 service plus an L7 address taken");
    st.check_generation_kept(&before, &after, "new L4 service plus an L7 address taken");
    st.assert_valid_part_applies();
    st.finish();
}
