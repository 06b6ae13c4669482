//! The Layer-7 rule commands (`--add-rule`, `--del-rule`, `--list-rules` / `-L --rules`)
//! against a real rvsd with an http virtual service: requests follow the rules added, the
//! listing shows them, deleting puts the traffic back, and bad rules are refused with rvsd's
//! message and a non-zero status, the daemon unchanged.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn get_with(vip: &str, path: &str, headers: &str) -> (u16, String) {
    rvs_testkit::http_get(vip, path, headers)
}

fn get(vip: &str, path: &str) -> (u16, String) {
    get_with(vip, path, "")
}

fn ok(name: &str) -> (u16, String) {
    (200, name.to_string())
}

/// Waits until `f` holds (counters move as requests finish).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lo(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

struct Setup {
    rvsd: Rvsd,
    vip: String,
    /// A TCP (Layer-4) service of the same daemon.
    tcp_vip: String,
    api: SocketAddr,
    web: SocketAddr,
    img: SocketAddr,
}

/// An http service: pools api (rr), web (the default) and img; one rule, `/api/` to api.
/// And a TCP service beside it.
fn setup() -> Setup {
    let (api, web, img) =
        (rvs_testkit::http_backend("api"), rvs_testkit::http_backend("web"), rvs_testkit::http_backend("img"));
    let (vip, tcp_vip) = (lo(port()), lo(port()));
    let rvsd = start(&format!(
        r#"
[[service]]
address = "{tcp_vip}"
  [[service.real_server]]
  address = "127.0.0.1:9"

[[service]]
kind = "http"
address = "{vip}"
default_pool = "web"
  [[service.pool]]
  name = "api"
  scheduler = "rr"
    [[service.pool.real_server]]
    address = "{api}"
  [[service.pool]]
  name = "web"
  scheduler = "wlc"
    [[service.pool.real_server]]
    address = "{web}"
    weight = 3
  [[service.pool]]
  name = "img"
  scheduler = "rr"
    [[service.pool.real_server]]
    address = "{img}"
  [[service.rule]]
  name = "api"
  match = ["path^=/api/"]
  pool = "api"
"#
    ));
    eventually("the http service", || TcpStream::connect(vip.as_str()).is_ok());
    Setup { rvsd, vip, tcp_vip, api, web, img }
}

/// The title of `--list-rules` (after the version line).
fn rules_title() -> String {
    format!(
        "{:<43}{:>9}\n  rule {:<16} -> {:<16}{:>9} {}\n  pool {:<16}    {:<16}{:>9} {}\n  -> {:<38}{:>9} {:<6} {:<6} {}\n",
        "Prot LocalAddress:Port",
        "Requests",
        "Name",
        "Pool",
        "Requests",
        "Match",
        "Name",
        "Scheduler",
        "Requests",
        "Persistence",
        "RemoteAddress:Port",
        "Requests",
        "Health",
        "Weight",
        "ActiveConn"
    )
}

fn rule_line(name: &str, pool: &str, requests: u64, matches: &str) -> String {
    format!("  rule {name:<16} -> {pool:<16}{requests:>9} {matches}\n")
}

fn default_line(pool: &str, requests: u64) -> String {
    format!("  {:<21} -> {pool:<16}{requests:>9}\n", "default")
}

fn pool_lines(name: &str, sched: &str, requests: u64, server: SocketAddr, weight: u32) -> String {
    format!(
        "  pool {name:<16}    {sched:<16}{requests:>9} none\n  -> {:<38}{requests:>9} {:<6} {weight:<6} 0\n",
        server.to_string(),
        "up"
    )
}

/// The http services' configuration as rvsd has it (no counters), for "nothing changed".
fn http_config(rvsd: &Rvsd) -> Value {
    let (st, v) = rvsd.api("GET", "/v1/http", None);
    assert_eq!(st, 200, "{v}");
    let services: Vec<Value> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            json!({
                "address": s["address"],
                "default_pool": s["default_pool"],
                "rules": s["rules"].as_array().unwrap().iter()
                    .map(|r| json!({"name": r["name"], "match": r["match"], "pool": r["pool"]}))
                    .collect::<Vec<_>>(),
                "pools": s["pools"].as_array().unwrap().iter()
                    .map(|p| json!({
                        "name": p["name"],
                        "scheduler": p["scheduler"],
                        "servers": p["real_servers"].as_array().unwrap().iter()
                            .map(|r| json!([r["address"], r["configured_weight"]]))
                            .collect::<Vec<_>>(),
                    }))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    Value::Array(services)
}

fn rule_names(rvsd: &Rvsd) -> Vec<String> {
    http_config(rvsd)[0]["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn add_rule_routes_lists_and_deletes() {
    let Setup { rvsd, vip, tcp_vip, api, web, img } = setup();
    assert_eq!(get(&vip, "/api/users"), ok("api"));
    assert_eq!(get(&vip, "/img/logo.png"), ok("web"));

    // The listing: version line, title, the service with its rule, the default, the pools.
    let want = format!(
        "Rust Virtual Server version {VERSION} (size=4096)\n{}{:<43}{:>9}\n{}{}{}{}{}",
        rules_title(),
        format!("HTTP {vip}"),
        2,
        rule_line("api", "api", 1, "path^=/api/"),
        default_line("web", 1),
        pool_lines("api", "rr", 1, api, 1),
        pool_lines("web", "wlc", 1, web, 3),
        pool_lines("img", "rr", 0, img, 1),
    );
    let mut last = String::new();
    eventually("the listing with both requests counted", || {
        last = run(&rvsd, "--list-rules -n").ok();
        last == want
    });

    // A rule before the existing one, with two conditions (both must hold).
    let added = rvsadm(
        &rvsd,
        &[
            "--add-rule",
            "-t",
            &vip,
            "--rule",
            "img",
            "--match",
            "path^=/img/",
            "--match=method=GET",
            "--pool",
            "img",
            "--before",
            "api",
        ],
    );
    assert_eq!(added.ok(), "", "a change prints nothing, as ipvsadm's");
    assert_eq!(rule_names(&rvsd), ["img", "api"]);
    assert_eq!(get(&vip, "/img/logo.png"), ok("img"));
    assert_eq!(get(&vip, "/api/users"), ok("api"));
    assert_eq!(get(&vip, "/index.html"), ok("web"));
    // Appended (no --before), long options with `=`: a header condition.
    rvsadm(
        &rvsd,
        &["--add-rule", &format!("--tcp-service={vip}"), "--rule=by-header", "--match=header:X-Pool=img", "--pool=img"],
    )
    .ok();
    assert_eq!(rule_names(&rvsd), ["img", "api", "by-header"]);
    assert_eq!(get_with(&vip, "/index.html", "X-Pool: img\r\n"), ok("img"));
    assert_eq!(get_with(&vip, "/api/users", "X-Pool: img\r\n"), ok("api"), "the first rule that matches wins");

    // One service: no version line; -L --rules is the same listing.
    let one = run(&rvsd, &format!("--list-rules -n -t {vip}")).ok();
    assert!(one.starts_with(&rules_title()), "{one}");
    let rules: Vec<&str> = one.lines().skip(4).filter(|l| l.starts_with("  rule ")).collect();
    assert_eq!(rules.len(), 3, "{one}");
    assert!(
        rules[0].starts_with("  rule img              -> img      ") && rules[0].ends_with(" path^=/img/ method=GET")
    );
    assert!(rules[1].starts_with("  rule api ") && rules[1].ends_with(" path^=/api/"), "{one}");
    assert!(rules[2].ends_with(" header:x-pool=img"), "{one}");
    eventually("the img rule's requests counted", || {
        let text = run(&rvsd, &format!("--list-rules -n -t {vip}")).ok();
        text.lines().any(|l| l.starts_with(&format!("  rule {:<16} -> {:<16}{:>9} ", "img", "img", 1)))
    });
    assert_eq!(
        run(&rvsd, &format!("-L --rules -n -t {vip}")).ok(),
        run(&rvsd, &format!("--list-rules -n -t {vip}")).ok()
    );
    // Without -n the same lines (names from /etc/hosts, if any, for 127.0.0.1).
    assert_eq!(run(&rvsd, "--list-rules").ok().lines().count(), run(&rvsd, "--list-rules -n").ok().lines().count());

    // --json: the API's views.
    let list: rvs_api::HttpServiceList = serde_json::from_str(&run(&rvsd, "--list-rules --json").ok()).unwrap();
    assert_eq!(list.services.len(), 1);
    let names: Vec<&str> = list.services[0].rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["img", "api", "by-header"]);
    assert_eq!(list.services[0].rules[0].matches, ["path^=/img/", "method=GET"]);
    let one: rvs_api::HttpServiceView =
        serde_json::from_str(&run(&rvsd, &format!("-L --rules --json -t {vip}")).ok()).unwrap();
    assert_eq!(one.address, vip);
    assert_eq!(one.default_pool.as_deref(), Some("web"));

    // --watch repeats it.
    let frames = run(&rvsd, "--list-rules -n -w 0.1 --count 2").ok();
    assert_eq!(frames.matches("Rust Virtual Server version").count(), 2, "{frames}");

    // ipvsadm's listing is unchanged by the http services: the TCP service only.
    let l4 = run(&rvsd, "-L -n").ok();
    assert!(l4.contains(&format!("TCP  {tcp_vip} wlc\n")) && !l4.contains(&vip), "{l4}");

    // A rule name with a slash goes through the URL path.
    run(&rvsd, &format!("--add-rule -t {vip} --rule v2/api --match path^=/v2/ --pool api")).ok();
    assert_eq!(get(&vip, "/v2/x"), ok("api"));
    run(&rvsd, &format!("--del-rule -t {vip} --rule v2/api")).ok();
    assert_eq!(get(&vip, "/v2/x"), ok("web"));

    // Deleted: the traffic goes back to where it went.
    assert_eq!(run(&rvsd, &format!("--del-rule -t {vip} --rule img")).ok(), "");
    assert_eq!(get(&vip, "/img/logo.png"), ok("web"));
    rvsadm(&rvsd, &["--del-rule", "--tcp-service", &vip, "--rule=by-header"]).ok();
    assert_eq!(get_with(&vip, "/index.html", "X-Pool: img\r\n"), ok("web"));
    assert_eq!(rule_names(&rvsd), ["api"]);
    let text = run(&rvsd, &format!("--list-rules -n -t {vip}")).ok();
    assert!(!text.contains("rule img") && !text.contains("by-header"), "{text}");
}

/// Bad rules: rvsd's message (naming the pool, rule or service at fault) or rvsadm's, a
/// non-zero status, nothing on stdout, and the daemon unchanged.
#[test]
fn bad_rules_are_refused_and_change_nothing() {
    let Setup { rvsd, vip, tcp_vip, .. } = setup();
    let before = http_config(&rvsd);
    let table_before = table(&rvsd);
    let unknown = lo(port());
    let add = |rest: &str| format!("--add-rule -t {vip} {rest}");
    let cases: Vec<(Vec<String>, i32, String)> = vec![
        // Refused by rvsd: exit 255, as the changes it refuses.
        (
            split(&add("--rule x --match path^=/x/ --pool nope")),
            255,
            "rule `x` sends to pool `nope`, which is not defined".into(),
        ),
        (split(&add("--rule x --match paht=/x/ --pool api")), 255, "match `paht=/x/`".into()),
        (split(&add("--rule x --match path~=( --pool api")), 255, "invalid regular expression `(`".into()),
        (split(&add("--rule x --match path=noslash --pool api")), 255, "path `noslash` must start with `/`".into()),
        (split(&add("--rule api --match path^=/x/ --pool api")), 255, "rule `api` already exists".into()),
        (split(&add("--rule x --match path^=/x/ --pool api --before nope")), 255, "no rule `nope` (--before)".into()),
        (
            vec![
                "--add-rule".into(),
                "-t".into(),
                vip.clone(),
                "--rule".into(),
                "bad name".into(),
                "--match".into(),
                "path=/".into(),
                "--pool".into(),
                "api".into(),
            ],
            255,
            "`bad name` is not a valid rule name".into(),
        ),
        (
            split(&format!("--add-rule -t {unknown} --rule x --match path=/ --pool api")),
            255,
            format!("no such http virtual service {unknown}"),
        ),
        (
            split(&format!("--add-rule -t {tcp_vip} --rule x --match path=/ --pool api")),
            255,
            format!("no such http virtual service {tcp_vip}"),
        ),
        (split(&format!("--del-rule -t {vip} --rule nope")), 255, "no rule `nope`".into()),
        (split(&format!("--del-rule -t {unknown} --rule api")), 255, format!("no such http virtual service {unknown}")),
        // Refused by rvsadm: exit 2, ipvsadm's kind of message.
        (
            split(&add("--rule x --match path=/")),
            2,
            "You need to supply the 'pool' option for the 'add-rule' command".into(),
        ),
        (
            split(&add("--rule x --pool api")),
            2,
            "You need to supply the 'match' option for the 'add-rule' command".into(),
        ),
        (
            split(&format!("--del-rule -t {vip}")),
            2,
            "You need to supply the 'rule' option for the 'del-rule' command".into(),
        ),
        (
            split(&format!("--del-rule -t {vip} --rule api --pool api")),
            2,
            "Illegal 'pool' option with the 'del-rule' command".into(),
        ),
        (
            split(&format!("--add-rule -u {vip} --rule x --match path=/ --pool api")),
            2,
            "http virtual services are TCP services".into(),
        ),
        (split(&add("--rule= --match path=/ --pool api")), 2, "empty rule name specified".into()),
        (split(&add("--rule x --match path=/ --pool")), 255, "--pool: missing argument".into()),
        (split("--list-rules --stats"), 2, "Illegal 'stats' option with the 'list-rules' command".into()),
        // A listing that failed: exit 1.
        (split(&format!("--list-rules -t {unknown}")), 1, format!("no such http virtual service {unknown}")),
        (split(&format!("-L --rules -n -t {tcp_vip}")), 1, format!("no such http virtual service {tcp_vip}")),
    ];
    for (args, code, msg) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = rvsadm(&rvsd, &args);
        assert_eq!(r.code, *code, "rvsadm {args:?}: {r:?}");
        assert!(r.stderr.contains(msg.as_str()), "rvsadm {args:?}: stderr {:?} lacks {msg:?}", r.stderr);
        assert_eq!(r.stdout, "", "rvsadm {args:?}");
        assert_eq!(http_config(&rvsd), before, "rvsadm {args:?} changed the http service");
        assert_eq!(table(&rvsd), table_before, "rvsadm {args:?} changed the table");
    }
    // -R takes no rules: they are not part of its batch.
    let r =
        rvsadm_stdin(&rvsd, &["-R"], &format!("-A -t {}\n{}\n", lo(port()), add("--rule x --match path=/ --pool api")));
    assert_eq!((r.code, r.stderr.as_str()), (2, "line 2: the 'add-rule' command cannot be used in restore input\n"));
    assert_eq!(http_config(&rvsd), before);
    assert_eq!(table(&rvsd), table_before);
    // And the traffic still goes where it went.
    assert_eq!(get(&vip, "/api/users"), ok("api"));
    assert_eq!(get(&vip, "/x/y"), ok("web"));
}

#[test]
fn no_http_services() {
    let rvsd = empty();
    assert_eq!(
        run(&rvsd, "--list-rules -n").ok(),
        format!("Rust Virtual Server version {VERSION} (size=4096)\n{}", rules_title())
    );
    let v: Value = serde_json::from_str(&run(&rvsd, "-L --rules --json").ok()).unwrap();
    assert_eq!(v, json!({"services": []}));
    let r = run(&rvsd, "--del-rule -t 127.0.0.1:80 --rule api");
    assert_eq!((r.code, r.stderr.as_str()), (255, "no such http virtual service 127.0.0.1:80\n"));
}

#[test]
fn help_and_completions_name_the_rule_commands() {
    let help = rvsadm_bare(&["--help"], &[]).ok();
    for want in [
        "rvsadm --add-rule -t service-address --rule name --match condition [--match condition ...] --pool pool [--before name]",
        "rvsadm --del-rule -t service-address --rule name",
        "rvsadm --list-rules|-L --rules [-t service-address] [-n] [--json]",
        "Layer-7 (http) rule options",
    ] {
        assert!(help.contains(want), "--help lacks {want:?}:\n{help}");
    }
    let bash = rvsadm_bare(&["--completions", "bash"], &[]).ok();
    for want in ["--add-rule", "--del-rule", "--list-rules", "--rule", "--match", "--pool", "--before", "--rules"] {
        assert!(bash.contains(want), "bash completion lacks {want}");
    }
    assert!(bash.contains("host= path= path^= path~= method= header: query: cookie:"), "--match completes its kinds");
    let fish = rvsadm_bare(&["--completions", "fish"], &[]).ok();
    assert!(fish.contains("complete -c rvsadm -l add-rule -d 'command: "), "{fish}");
}

fn split(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn pool_real_servers_through_add_edit_delete_server() {
    let s = setup();
    let extra = rvs_testkit::http_backend("extra");
    // Quiesce the web pool's own server, add another: it takes the default route.
    run(&s.rvsd, &format!("-e -t {} --pool web -r {} -w 0", s.vip, s.web)).ok();
    run(&s.rvsd, &format!("-a -t {} --pool web -r {extra}", s.vip)).ok();
    for _ in 0..3 {
        assert_eq!(get(&s.vip, "/"), ok("extra"));
    }
    let r = run(&s.rvsd, &format!("-a -t {} --pool nope -r {extra}", s.vip));
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no pool `nope`"), "{}", r.stderr);
    run(&s.rvsd, &format!("-d -t {} --pool web -r {extra}", s.vip)).ok();
    run(&s.rvsd, &format!("-e -t {} --pool web -r {} -w 3", s.vip, s.web)).ok();
    assert_eq!(get(&s.vip, "/"), ok("web"));
    // Not in -R: pools change through their own calls.
    let r = rvsadm_stdin(&s.rvsd, &["-R"], &format!("-a -t {} --pool web -r {extra}\n", s.vip));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("line 1") && r.stderr.contains("--pool"), "{}", r.stderr);
}
