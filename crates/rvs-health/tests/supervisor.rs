//! The supervisor against real servers that fail and come back: detection within
//! interval × fall + timeout, recovery after `rise`, dampened flapping, dynamic exec and agent
//! weights, passive failures, reloads that keep state, and notify commands run exactly once and
//! in order with quorum changes.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{closed_port, next_event, no_event, script, wait_checks, Behavior, TestServer, SLACK};
use rvs_health::{
    effective_weight, AgentCheck, Check, CheckKind, Event, EventLog, ExecCheck, Health, HealthSupervisor, HttpCheck,
    Notification, Notifier, NotifyCommand, NotifyKind, Pattern, Quorum, QuorumTracker, RealServerKey, Source, Target,
    Timing, WeightHint,
};
use tokio::time::Instant;

/// 100 ms checks, 100 ms timeout, fall 3, rise 2.
fn fast() -> Timing {
    Timing {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
        fall: 3,
        rise: 2,
        warmup: Some(Duration::from_millis(50)),
        ..Timing::default()
    }
}

fn key(server: SocketAddr) -> RealServerKey {
    RealServerKey { service: "TCP 127.0.0.1:80".into(), server }
}

fn target(addr: SocketAddr, kind: CheckKind, timing: Timing) -> Target<RealServerKey> {
    Target::new(key(addr), addr, Check::new(kind).unwrap(), timing).unwrap()
}

/// How long recovery may take: the next check, `rise` successes, slack.
fn rise_bound(t: &Timing) -> Duration {
    t.interval * (t.rise + 1) + t.timeout + SLACK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_server_goes_down_within_bound_and_comes_back_after_rise() {
    let server = TestServer::start(Behavior::Close).await;
    let timing = fast();
    let id = key(server.addr);
    let (sup, mut rx) = HealthSupervisor::spawn(vec![target(server.addr, CheckKind::Tcp, timing)]);
    wait_checks(&sup, &id, 2, SLACK).await;
    assert!(rx.try_recv().is_err(), "no event while the server is up");

    let t0 = Instant::now();
    server.stop().await;
    let ev = next_event(&mut rx, timing.detection_bound() + SLACK, "down").await;
    let took = t0.elapsed();
    assert_eq!((ev.id.clone(), ev.transition.from, ev.transition.to), (id.clone(), Health::Up, Health::Down));
    assert_eq!(ev.transition.reason, "connection refused (3 consecutive failures)");
    assert_eq!((ev.source, ev.result.reason.as_str()), (Source::Check, "connection refused"));
    assert!(took <= timing.detection_bound() + SLACK, "down detected after {took:?}");
    eprintln!("refused: down after {took:?} (bound {:?})", timing.detection_bound());
    // Down once: no more events while it stays down.
    no_event(&mut rx, Duration::from_millis(500), "while down").await;
    let snap = sup.get(&id).unwrap();
    assert_eq!(snap.state.health(), Health::Down);
    assert!(snap.state.consecutive_failures() >= 3);
    assert_eq!(snap.state.last_reason(), "connection refused");

    let t1 = Instant::now();
    server.restart().await;
    let ev = next_event(&mut rx, rise_bound(&timing), "up").await;
    assert_eq!((ev.transition.from, ev.transition.to), (Health::Down, Health::Up));
    assert_eq!(ev.transition.reason, "connected (2 consecutive successes)");
    eprintln!("refused: up after {:?}", t1.elapsed());
    no_event(&mut rx, Duration::from_millis(400), "after coming back").await;
    assert_eq!(sup.get(&id).unwrap().state.totals().transitions, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_server_times_out_and_comes_back() {
    let server = TestServer::start(Behavior::Http { status: 200, body: "ok".into() }).await;
    let timing = fast();
    let id = key(server.addr);
    let (sup, mut rx) =
        HealthSupervisor::spawn(vec![target(server.addr, CheckKind::Http(HttpCheck::default()), timing)]);
    wait_checks(&sup, &id, 2, SLACK).await;

    let t0 = Instant::now();
    server.set(Behavior::Hang);
    let ev = next_event(&mut rx, timing.detection_bound() + SLACK, "down on hang").await;
    assert_eq!(ev.transition.to, Health::Down);
    assert_eq!(ev.transition.reason, "timeout after 100ms waiting for the response (3 consecutive failures)");
    eprintln!("hang: down after {:?} (bound {:?})", t0.elapsed(), timing.detection_bound());

    server.set(Behavior::Http { status: 200, body: "ok".into() });
    let ev = next_event(&mut rx, rise_bound(&timing), "up").await;
    assert_eq!((ev.transition.to, ev.transition.reason.as_str()), (Health::Up, "HTTP 200 (2 consecutive successes)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_500_and_wrong_body_go_down() {
    let server = TestServer::start(Behavior::Http { status: 200, body: "ok".into() }).await;
    let timing = fast();
    let id = key(server.addr);
    let check = CheckKind::Http(HttpCheck { body_regex: Some(Pattern::new("ok").unwrap()), ..HttpCheck::default() });
    let (sup, mut rx) = HealthSupervisor::spawn(vec![target(server.addr, check, timing)]);
    wait_checks(&sup, &id, 2, SLACK).await;

    let t0 = Instant::now();
    server.set(Behavior::Http { status: 500, body: "ok".into() });
    let ev = next_event(&mut rx, timing.detection_bound() + SLACK, "down on 500").await;
    assert_eq!(
        (ev.transition.to, ev.transition.reason.as_str()),
        (Health::Down, "HTTP 500 not in 200-299 (3 consecutive failures)")
    );
    assert!(t0.elapsed() <= timing.detection_bound() + SLACK);

    server.set(Behavior::Http { status: 200, body: "ok".into() });
    let ev = next_event(&mut rx, rise_bound(&timing), "up").await;
    assert_eq!(ev.transition.to, Health::Up);

    let t0 = Instant::now();
    server.set(Behavior::Http { status: 200, body: "nope".into() });
    let ev = next_event(&mut rx, timing.detection_bound() + SLACK, "down on wrong body").await;
    assert_eq!(
        (ev.transition.to, ev.transition.reason.as_str()),
        (Health::Down, "body does not match /ok/ (got \"nope\") (3 consecutive failures)")
    );
    assert!(t0.elapsed() <= timing.detection_bound() + SLACK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_is_dampened_by_rise_and_fall() {
    // Every other answer fails: never `fall` failures in a row, never `rise` successes in a row.
    let server = TestServer::start(Behavior::HttpFlap).await;
    let timing = fast();
    let id = key(server.addr);
    let (sup, mut rx) =
        HealthSupervisor::spawn(vec![target(server.addr, CheckKind::Http(HttpCheck::default()), timing)]);
    no_event(&mut rx, Duration::from_millis(1200), "flapping while up").await;
    assert_eq!(sup.get(&id).unwrap().state.health(), Health::Up);
    assert!(sup.get(&id).unwrap().state.totals().failures >= 2, "it did see failures");

    server.set(Behavior::Http { status: 503, body: String::new() });
    let ev = next_event(&mut rx, timing.detection_bound() + SLACK, "down").await;
    assert_eq!(ev.transition.to, Health::Down);
    server.set(Behavior::HttpFlap);
    no_event(&mut rx, Duration::from_millis(1200), "flapping while down").await;
    assert_eq!(sup.get(&id).unwrap().state.health(), Health::Down);
    server.set(Behavior::Http { status: 200, body: String::new() });
    assert_eq!(next_event(&mut rx, rise_bound(&timing), "up").await.transition.to, Health::Up);
}

/// Writes the exit code the probe script returns (atomically: the script may be reading).
fn set_code(path: &Path, code: u8) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, code.to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_dynamic_weights_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    set_code(&code, 5);
    let probe = script(dir.path(), "probe.sh", r#"exit "$(cat "$1")""#);
    let timing = fast();
    let rs: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let kind = CheckKind::Exec(ExecCheck {
        program: "/bin/sh".into(),
        args: vec![probe.display().to_string(), code.display().to_string()],
        dynamic: true,
    });
    let (sup, mut rx) = HealthSupervisor::spawn(vec![target(rs, kind, timing)]);

    let ev = next_event(&mut rx, timing.interval * 2 + SLACK, "weight 3").await;
    assert!(ev.transition.is_weight_change());
    assert_eq!((ev.transition.to, ev.transition.weight), (Health::Up, Some(WeightHint::Absolute(3))));
    assert_eq!(ev.transition.reason, "weight 3: exit 5: weight 3");
    assert_eq!(effective_weight(10, ev.transition.to, ev.transition.weight), 3);

    set_code(&code, 1);
    let ev = next_event(&mut rx, timing.detection_bound() + SLACK, "down").await;
    assert_eq!((ev.transition.to, ev.transition.reason.as_str()), (Health::Down, "exit 1 (3 consecutive failures)"));
    assert_eq!(effective_weight(10, ev.transition.to, ev.transition.weight), 0);

    set_code(&code, 12);
    let ev = next_event(&mut rx, rise_bound(&timing), "up with weight 10").await;
    assert_eq!((ev.transition.to, ev.transition.weight), (Health::Up, Some(WeightHint::Absolute(10))));

    // Exit 0 leaves the weight as it is.
    set_code(&code, 0);
    no_event(&mut rx, Duration::from_millis(500), "exit 0").await;
    let snap = sup.get(&key(rs)).unwrap();
    assert_eq!((snap.state.health(), snap.state.weight()), (Health::Up, Some(WeightHint::Absolute(10))));
    assert_eq!(snap.state.last_reason(), "exit 0");
    assert_eq!(snap.check.to_string(), "EXEC /bin/sh (dynamic)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_weights_and_drain_are_applied() {
    let agent = TestServer::start(Behavior::Line("up 50%\n".into())).await;
    let timing = fast();
    let rs = SocketAddr::new(agent.addr.ip(), closed_port().await.port());
    let kind = CheckKind::Agent(AgentCheck { port: agent.addr.port(), send: None });
    let (_sup, mut rx) = HealthSupervisor::spawn(vec![target(rs, kind, timing)]);

    let ev = next_event(&mut rx, timing.interval * 2 + SLACK, "weight 50%").await;
    assert_eq!((ev.transition.to, ev.transition.weight), (Health::Up, Some(WeightHint::Percent(50))));
    assert_eq!(effective_weight(10, ev.transition.to, ev.transition.weight), 5);

    agent.set(Behavior::Line("drain\n".into()));
    let ev = next_event(&mut rx, timing.interval * 2 + SLACK, "drain").await;
    assert_eq!((ev.transition.from, ev.transition.to), (Health::Up, Health::Drain));
    assert_eq!(effective_weight(10, ev.transition.to, ev.transition.weight), 0);

    agent.set(Behavior::Line("ready up 100%\n".into()));
    let ev = next_event(&mut rx, timing.interval * 2 + SLACK, "ready").await;
    assert_eq!((ev.transition.from, ev.transition.to), (Health::Drain, Health::Up));
    assert_eq!(effective_weight(10, ev.transition.to, ev.transition.weight), 10);

    agent.set(Behavior::Line("down # disk full\n".into()));
    let ev = next_event(&mut rx, timing.detection_bound() + SLACK, "down").await;
    assert_eq!(ev.transition.to, Health::Down);
    assert_eq!(ev.transition.reason, "agent: down # disk full (3 consecutive failures)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_failures_take_a_server_down_before_the_next_check() {
    let server = TestServer::start(Behavior::Close).await;
    // One check now, the next only after 5 s: the passive failures must do it.
    let timing = Timing {
        interval: Duration::from_secs(5),
        timeout: Duration::from_millis(200),
        warmup: Some(Duration::ZERO),
        passive_fall: 3,
        ..Timing::default()
    };
    let id = key(server.addr);
    let (sup, mut rx) = HealthSupervisor::spawn(vec![target(server.addr, CheckKind::Tcp, timing)]);
    wait_checks(&sup, &id, 1, SLACK).await;
    server.stop().await;

    let t0 = Instant::now();
    for _ in 0..3 {
        assert!(sup.passive_failure(&id, "connection refused"));
    }
    let ev = next_event(&mut rx, Duration::from_secs(1), "passive down").await;
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!((ev.transition.to, ev.source), (Health::Down, Source::Passive));
    assert_eq!(ev.transition.reason, "3 passive failures since the last successful check: connection refused");
    assert_eq!(ev.result.reason, "passive: connection refused");
    let snap = sup.get(&id).unwrap();
    assert_eq!((snap.state.health(), snap.state.totals().passive_failures), (Health::Down, 3));
    // Same address under another service: a target the supervisor does not hold. (A fresh
    // closed port could be the one the stopped server just gave back.)
    let unknown = RealServerKey { service: "TCP 127.0.0.1:81".into(), server: server.addr };
    assert!(!sup.passive_failure(&unknown, "refused"), "unknown target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_the_state_of_unchanged_servers() {
    let a = TestServer::start(Behavior::Close).await;
    let b = TestServer::start(Behavior::Close).await;
    let c = TestServer::start(Behavior::Close).await;
    let timing = fast();
    let (ka, kb, kc) = (key(a.addr), key(b.addr), key(c.addr));
    a.stop().await;
    let (sup, mut rx) =
        HealthSupervisor::spawn(vec![target(a.addr, CheckKind::Tcp, timing), target(b.addr, CheckKind::Tcp, timing)]);
    let ev = next_event(&mut rx, timing.detection_bound() + SLACK, "a down").await;
    assert_eq!((ev.id.clone(), ev.transition.to), (ka.clone(), Health::Down));

    // Same config plus a new server (alpha: starts down, comes up after rise).
    let alpha = Timing { alpha: true, ..timing };
    let done = sup.reconcile(vec![
        target(a.addr, CheckKind::Tcp, timing),
        target(b.addr, CheckKind::Tcp, timing),
        target(c.addr, CheckKind::Tcp, alpha),
    ]);
    assert_eq!((done.added, done.kept), (vec![kc.clone()], 2));
    assert_eq!(sup.get(&kc).unwrap().state.health(), Health::Down);
    let ev = next_event(&mut rx, rise_bound(&alpha), "c up").await;
    assert_eq!((ev.id.clone(), ev.transition.from, ev.transition.to), (kc.clone(), Health::Down, Health::Up));
    no_event(&mut rx, Duration::from_millis(400), "a stays down, b stays up").await;
    assert_eq!(sup.get(&ka).unwrap().state.health(), Health::Down);

    // A changed timing restarts a with its state (still down, no event); b goes away.
    let slower = Timing { rise: 3, ..timing };
    let done = sup.reconcile(vec![target(a.addr, CheckKind::Tcp, slower), target(c.addr, CheckKind::Tcp, alpha)]);
    assert_eq!((done.restarted, done.removed, done.kept), (vec![ka.clone()], vec![kb.clone()], 1));
    assert!(sup.get(&kb).is_none());
    no_event(&mut rx, Duration::from_millis(400), "after restart").await;
    let snap = sup.get(&ka).unwrap();
    assert_eq!((snap.state.health(), snap.timing.rise), (Health::Down, 3));

    a.restart().await;
    let ev = next_event(&mut rx, rise_bound(&slower), "a up").await;
    assert_eq!((ev.id.clone(), ev.transition.to), (ka.clone(), Health::Up));
    assert_eq!(ev.transition.reason, "connected (3 consecutive successes)");

    // Removing and adding back with the prior state keeps it too.
    let prior = sup.remove(&kc).unwrap();
    sup.add(target(c.addr, CheckKind::Tcp, timing).with_prior_state(prior)).unwrap();
    assert_eq!(sup.get(&kc).unwrap().state.health(), Health::Up);
    assert!(sup.add(target(c.addr, CheckKind::Tcp, timing)).is_err(), "duplicate");
    no_event(&mut rx, Duration::from_millis(400), "c re-added").await;
    assert_eq!(sup.snapshot().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_run_exactly_once_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("notify.log");
    // Slow on purpose: the queue must keep order while checks go on.
    let body = format!(r#"sleep 0.05; echo "$*" >> {}"#, log.display());
    let command = |tag: &str| NotifyCommand::new("/bin/sh", ["-c", body.as_str(), "notify", tag]);
    let notifier = Notifier::spawn(Duration::from_secs(5));

    let s1 = TestServer::start(Behavior::Close).await;
    let s2 = TestServer::start(Behavior::Close).await;
    let timing = fast();
    let service = "TCP 127.0.0.1:80";
    let (sup, mut rx) =
        HealthSupervisor::spawn(vec![target(s1.addr, CheckKind::Tcp, timing), target(s2.addr, CheckKind::Tcp, timing)]);
    // Both weight 1, quorum 2: losing either loses quorum.
    let quorum = Quorum::new(2, 0).unwrap();
    let mut tracker = QuorumTracker::new(quorum, quorum.initial(2), 2);
    let mut health: HashMap<SocketAddr, (Health, Option<WeightHint>)> =
        [(s1.addr, (Health::Up, None)), (s2.addr, (Health::Up, None))].into();
    let mut events: EventLog = EventLog::new(100);
    let mut expected = Vec::new();
    for cycle in 0..3 {
        for (stop, want) in [(true, Health::Down), (false, Health::Up)] {
            let t0 = Instant::now();
            if stop {
                s1.stop().await;
            } else {
                s1.restart().await;
            }
            let bound = if stop { timing.detection_bound() + SLACK } else { rise_bound(&timing) };
            let ev = next_event(&mut rx, bound, &format!("cycle {cycle}: {want}")).await;
            assert!(t0.elapsed() <= bound);
            let t = &ev.transition;
            assert_eq!((ev.id.server, t.to), (s1.addr, want));
            // What rvsd does with an event.
            health.insert(ev.id.server, (t.to, t.weight));
            events.push(Event::RealServer {
                service: service.into(),
                server: ev.id.server,
                from: t.from,
                to: t.to,
                weight: t.weight,
                reason: t.reason.clone(),
            });
            let kind = NotifyKind::for_transition(t).unwrap();
            let weight = effective_weight(1, t.to, t.weight);
            assert!(notifier.notify(Notification::real_server(
                kind,
                command("rs"),
                service,
                ev.id.server,
                t.to,
                weight
            )));
            let live = rvs_health::live_weight(health.values().map(|(h, w)| effective_weight(1, *h, *w)));
            let q = tracker.update(live).expect("quorum changes with s1");
            events.push(Event::Quorum { service: service.into(), from: q.from, to: q.to, live_weight: q.live_weight });
            assert!(notifier.notify(Notification::quorum(command("quorum"), service, q.to)));
            expected.push(format!("rs {} {service} {want}", s1.addr));
            expected.push(format!("quorum {service} {}", q.to));
        }
    }
    no_event(&mut rx, Duration::from_millis(300), "after the cycles").await;
    notifier.flush().await;
    let written = std::fs::read_to_string(&log).unwrap();
    assert_eq!(written.lines().collect::<Vec<_>>(), expected);
    let stats = notifier.stats();
    assert_eq!((stats.queued, stats.succeeded, stats.failed), (12, 12, 0));
    assert_eq!(events.len(), 12);
    assert_eq!(sup.get(&key(s2.addr)).unwrap().state.totals().transitions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_notify_command_is_killed_and_the_queue_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("notify.log");
    let append = format!(r#"echo "$*" >> {}"#, log.display());
    let notifier = Notifier::spawn(Duration::from_millis(300));
    let rs: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let n = |cmd: NotifyCommand, state| Notification::real_server(NotifyKind::NotifyDown, cmd, "svc", rs, state, 0);
    let t0 = Instant::now();
    notifier.notify(n(NotifyCommand::new("/bin/sh", ["-c", "sleep 30"]), Health::Down));
    for i in 0..20 {
        let tag = i.to_string();
        notifier
            .notify(n(NotifyCommand::new("/bin/sh", ["-c", append.as_str(), "notify", tag.as_str()]), Health::Down));
    }
    notifier.notify(n(NotifyCommand::new("/nonexistent/notify", Vec::<String>::new()), Health::Down));
    notifier.flush().await;
    assert!(t0.elapsed() < Duration::from_secs(10), "took {:?}", t0.elapsed());
    let written = std::fs::read_to_string(&log).unwrap();
    let want: Vec<String> = (0..20).map(|i| format!("{i} {rs} svc down")).collect();
    assert_eq!(written.lines().collect::<Vec<_>>(), want);
    let stats = notifier.stats();
    assert_eq!((stats.queued, stats.succeeded, stats.failed, stats.timed_out), (22, 20, 2, 1));
}
