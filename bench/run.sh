#!/usr/bin/env bash
# bench/run.sh: rvs beside its peers, on loopback, as ratios from the same run.
#
#   bench/run.sh            full run: 3 rounds of 3 s per measurement, about 4 minutes
#   bench/run.sh --quick    short run: 1 round of 2 s, 2,000 idle connections, about 1 minute
#
# Five ways to reach the same two nginx backends (one nginx, worker_processes 1, listening on
# 127.0.0.1:18101 and :18102):
#   direct   wrk straight to a backend (127.0.0.1:18101)
#   rvs      rvsd, full-NAT, relay BENCH_RELAY (splice), rr   (127.0.0.1:18001)
#   haproxy  HAProxy mode tcp, option splice-auto, roundrobin (127.0.0.1:18002)
#   pen      pen (Debian's), round robin (-r), -O tcp_nodelay, foreground (127.0.0.1:18007);
#            single-threaded whatever BENCH_THREADS says (pen has no threads)
#   nginx    nginx stream proxy_pass to an upstream of both (127.0.0.1:18003)
# Each balancer gets the same number of threads (BENCH_THREADS, default 1): rvsd through
# TOKIO_WORKER_THREADS, HAProxy through nbthread, nginx through worker_processes.
#
# Measurements (wrk -t1, one thread):
#   keep-alive   wrk -c64 GET / (64-byte body): requests/s, p50, p99
#   close        wrk -c64 -H 'Connection: close' GET /: requests/s = new connections/s
#   bulk         wrk -c8 GET /1m (1 MiB body, keep-alive): Gbit/s of response bytes
#   CPU          utime+stime of the balancer's processes (/proc/PID/stat) over each run, plus
#                that of the kernel worker threads (kworker/*, ksoftirqd/*) during the run: rvs's
#                sockmap relay sends from kernel workers, so their time is the balancer's (the
#                other balancers are charged theirs alike); also the backend's, wrk's, and what
#                the rest of the machine used (noise)
#   memory       VmRSS and open fds of a fresh balancer before/after N idle proxied connections
#                (bench/idle_conns.py), twice: connect only, and after one request each
#   ceilings     how far this machine lets a target be reached, from the same rounds: the
#                requests per CPU-second a balancer would reach if its own code took no time
#                (its kernel time alone), and the bulk rate the machine's cores could carry with wrk's
#                and the backend's CPU per Gbit from the direct run plus the balancer's own
# Every test runs on every balancer in each round (order rotated per round); a cell is the
# median over the rounds. Then one table, and the issue's targets as ratios, PASS or FAIL.
#
# Layer 7 (issue 5), in the same run and the same rounds, three HTTP proxies of the same backends:
#   rvs-http      rvs's L7 engine (rvs-l7), scheduler rr              (127.0.0.1:18004): rvsd
#                 itself with a `kind = "http"` service when rvsd accepts one, else the rvs-l7
#                 example l7bench (the table says which)
#   haproxy-http  HAProxy mode http, http-keep-alive, http-reuse always, roundrobin (127.0.0.1:18005)
#   nginx-http    nginx proxy_pass to an upstream with keepalive 64, proxy_http_version 1.1,
#                 Connection ""                                       (127.0.0.1:18006)
# All three add X-Forwarded-For and X-Forwarded-Proto (rvs-l7 does by default) and keep client
# and server connections open without a request limit. Each gets BENCH_THREADS threads too.
# Measured: the keep-alive test above (requests/s, p50, p99, balancer CPU, requests per
# balancer CPU-second), and the new connections the backends accepted during each run (an
# HTTP proxy that reuses its server connections opens few). The direct column is the L4
# section's own.
#
# Environment: BENCH_RELAY (splice; sockmap runs the rvs column with [director] relay =
# "sockmap"), BENCH_THREADS (1), BENCH_DURATION (seconds per run), BENCH_ROUNDS, BENCH_IDLE
# (idle connections wanted: 10000; capped by the open-files hard limit; 0 skips the idle tests),
# BENCH_L4_TESTS (the L4 tests to run: "ka close bulk"; the http section's direct column is
# the L4 keep-alive run, so `BENCH_L4_TESTS=ka BENCH_IDLE=0 BENCH_ROUNDS=15` is a long look at
# the http ratio), BENCH_QUIET_PCT (25)
# and BENCH_QUIET_BUDGET (30 s, quick 0): before a run, wait while the rest of the machine is
# busier than that, up to that many seconds in all; RVSD_BIN (use this binary, skip the cargo
# build), RVS_BENCH_DIR (/tmp/rvs-bench: configs, logs, wrk outputs); BENCH_L7 (auto: rvsd when
# `rvsd --check-config` takes a `kind = "http"` service and it then serves, else l7bench;
# rvsd; l7bench), L7BENCH_BIN (use this l7bench binary, skip its cargo build).
# BENCH_NETNS (1: after the loopback runs, the network-namespace runs below; 0: not; only: those
# alone), BENCH_NETNS_TESTS ("ka close"), NETNS_PREFIX (the namespaces' names: rvsb<PID>-*).
# BENCH_XDP (1: last, the packet engine's benchmark bench/xdp.sh with this rvsd, its own
# namespaces and table, in $RVS_BENCH_DIR/xdp; 0: not; only: it alone; XDP_BENCH_SECS defaults to
# 10, 3 with --quick; the other XDP_BENCH_* settings: bench/xdp.sh --help).
#
# Network namespaces (bench/netns.sh, which the packet engine's benchmark can source too): a
# client namespace (198.18.0.2), a director namespace that routes (198.18.0.1 | 198.19.0.1) and
# runs the balancer, a bridge, two real servers (198.19.0.11, .12; one nginx each, 1 worker).
# wrk runs in the client namespace; direct = the client straight to real server 1. Measured:
# requests/s and the whole machine's CPU (/proc/stat, all CPUs) per request, keep-alive and
# Connection: close, and the extra microseconds per request over direct, paired per round.
# Traffic stays on 127.0.0.0/8 and inside the namespaces the script creates (198.18.0.0/15).
# Every process the script starts is stopped on exit, and the namespaces (with their links) are
# deleted, on error and on ctrl-c too.

set -euo pipefail

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# shellcheck source=bench/procs.sh
. "$BENCH/procs.sh"
# shellcheck source=bench/netns.sh
. "$BENCH/netns.sh"
# shellcheck source=bench/configs.sh
. "$BENCH/configs.sh"
W=${RVS_BENCH_DIR:-/tmp/rvs-bench}
THREADS=${BENCH_THREADS:-1}
L4_TESTS=${BENCH_L4_TESTS:-ka close bulk}
for t in $L4_TESTS; do [[ $t =~ ^(ka|close|bulk)$ ]] || { echo "bench/run.sh: BENCH_L4_TESTS: unknown test '$t' (ka, close, bulk)" >&2; exit 2; }; done
if ((QUICK)); then
  DUR=${BENCH_DURATION:-2}; ROUNDS=${BENCH_ROUNDS:-1}; WARM=0; IDLE_WANT=${BENCH_IDLE:-2000}
  QUIET_BUDGET=${BENCH_QUIET_BUDGET:-0}
else
  DUR=${BENCH_DURATION:-3}; ROUNDS=${BENCH_ROUNDS:-3}; WARM=1; IDLE_WANT=${BENCH_IDLE:-10000}
  QUIET_BUDGET=${BENCH_QUIET_BUDGET:-30}
fi
QUIET_PCT=${BENCH_QUIET_PCT:-25}
NETNS=${BENCH_NETNS:-1}
XDP=${BENCH_XDP:-1}
[[ $XDP =~ ^(0|1|only)$ ]] || { echo "bench/run.sh: BENCH_XDP: 0, 1 or only" >&2; exit 2; }
NS_TESTS=${BENCH_NETNS_TESTS:-ka close}
[[ $NETNS =~ ^(0|1|only)$ ]] || { echo "bench/run.sh: BENCH_NETNS: 0, 1 or only" >&2; exit 2; }
for t in $NS_TESTS; do [[ $t =~ ^(ka|close)$ ]] || { echo "bench/run.sh: BENCH_NETNS_TESTS: unknown test '$t' (ka, close)" >&2; exit 2; }; done
KA_CONNS=64
CLOSE_CONNS=64
BULK_CONNS=8
BALANCERS=(direct rvs haproxy pen nginx)
HTTP_BALANCERS=(rvs-http haproxy-http nginx-http)
declare -A PORT=([direct]=18101 [rvs]=18001 [haproxy]=18002 [pen]=18007 [nginx]=18003
  [rvs-http]=18004 [haproxy-http]=18005 [nginx-http]=18006)
BENCH_L7=${BENCH_L7:-auto}
RELAY=${BENCH_RELAY:-splice}
case $BENCH_L7 in auto | rvsd | l7bench) ;; *) echo "BENCH_L7: auto, rvsd or l7bench" >&2; exit 2 ;; esac
BACKEND1=127.0.0.1:18101
BACKEND2=127.0.0.1:18102

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- process bookkeeping
STARTED=()   # every background process this script started
declare -A BAL_PID=()
BACKEND_PID=

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    stop_pid "${STARTED[$i]}"
  done
  netns_teardown
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v haproxy >/dev/null || need+=(haproxy)
command -v pen >/dev/null || need+=(pen)
command -v nginx >/dev/null || need+=(nginx)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
apt_install "${need[@]}"
# nginx's stream module: compiled in, or Debian's dynamic module (a package of its own). Asked
# of the nginx installed now, which may be the one just installed.
STREAM_LOAD=
if [[ $(nginx -V 2>&1 || true) == *--with-stream=dynamic* ]]; then
  STREAM_LOAD="load_module /usr/lib/nginx/modules/ngx_stream_module.so;"
  [[ -f /usr/lib/nginx/modules/ngx_stream_module.so ]] || apt_install libnginx-mod-stream
fi
# Debian's nginx may start the packaged service on install: this script never uses it and
# never stops it either; it only needs its own ports free.

if [[ -n ${RVSD_BIN:-} ]]; then
  RVSD=$RVSD_BIN
else
  log "building rvsd (cargo build --release -p rvsd)"
  (cd "$ROOT" && cargo build --release -p rvsd --quiet) || die "cargo build failed"
  RVSD=$ROOT/target/release/rvsd
fi
[[ -x $RVSD ]] || die "no rvsd binary at $RVSD"

xdp_bench() { # the packet engine's benchmark: bench/xdp.sh, with this rvsd (its own namespaces, its own table)
  local secs=10
  ((QUICK)) && secs=3
  RVSD_BIN=$RVSD XDP_BENCH_DIR=${XDP_BENCH_DIR:-$W/xdp} XDP_BENCH_SECS=${XDP_BENCH_SECS:-$secs} "$BENCH/xdp.sh" ||
    log "bench/xdp.sh failed (status $?; logs in ${XDP_BENCH_DIR:-$W/xdp})"
}
if [[ $XDP == only ]]; then
  log "BENCH_XDP=only: the packet engine's benchmark alone (bench/xdp.sh)"
  mkdir -p "$W"
  xdp_bench
  exit 0
fi

# Open files: raise the soft limit to the hard one (children inherit it). The hard limit
# caps the idle-connection test: a proxy needs two sockets per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[[ $NOFILE == unlimited ]] && NOFILE=1048576

for b in "${BALANCERS[@]}" "${HTTP_BALANCERS[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/${PORT[$b]}") 2>/dev/null; then die "port ${PORT[$b]} is already in use"; fi
done
(exec 3<>/dev/tcp/127.0.0.1/18102) 2>/dev/null && die "port 18102 is already in use"

# The work directory is wiped at each run: refuse one that this script did not make.
if [[ -e $W && ! -e $W/.rvs-bench && -n $(ls -A "$W" 2>/dev/null) ]]; then
  die "$W exists and is not an rvs bench directory; set RVS_BENCH_DIR"
fi
rm -rf "$W"
mkdir -p "$W/www" "$W/backend" "$W/nginx-lb" "$W/haproxy" "$W/nginx-http" "$W/haproxy-http"
touch "$W/.rvs-bench"
PEN_VERSION=$(dpkg-query -W -f='${Version}' pen 2>/dev/null || echo '?')
BODY='hello from an rvs bench backend: 64 bytes of body, padded to 64'
head -c 1048576 /dev/urandom >"$W/www/1m"

PEN_MAXCONN=$(((NOFILE - 100) / 2))

# ---------------------------------------------------------------- configurations
bench_backend_nginx_conf "$W/backend" "$W/www" "$BODY" "$NOFILE" "$BACKEND1" "$BACKEND2"

cat >"$W/nginx-lb/nginx.conf" <<EOF
$STREAM_LOAD
user root;
worker_processes $THREADS;
daemon off;
pid $W/nginx-lb/nginx.pid;
error_log $W/nginx-lb/error.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections $NOFILE; }
stream {
  upstream backends { server $BACKEND1; server $BACKEND2; }
  server {
    listen 127.0.0.1:${PORT[nginx]} backlog=4096;
    proxy_pass backends;
    proxy_timeout 600s;
  }
}
EOF

# fds: 2 per connection + 2 per pipe must fit the open-files limit, or HAProxy refuses to start
bench_haproxy_tcp_cfg "$W/haproxy/haproxy.cfg" "$THREADS" $(((NOFILE - 400 - 512) / 2)) "127.0.0.1:${PORT[haproxy]}" \
  "$BACKEND1" "$BACKEND2"

bench_rvsd_toml "$W/rvsd.toml" "$W/api.sock" "$RELAY" "127.0.0.1:${PORT[rvs]}" "$BACKEND1" "$BACKEND2"

# ---- Layer 7: the same backends through three HTTP proxies
cat >"$W/nginx-http/nginx.conf" <<EOF
user root;
worker_processes $THREADS;
daemon off;
pid $W/nginx-http/nginx.pid;
error_log $W/nginx-http/error.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections $NOFILE; }
http {
  access_log off;
  client_body_temp_path $W/nginx-http/body;
  proxy_temp_path $W/nginx-http/proxy;
  fastcgi_temp_path $W/nginx-http/fastcgi;
  uwsgi_temp_path $W/nginx-http/uwsgi;
  scgi_temp_path $W/nginx-http/scgi;
  keepalive_timeout 600s;
  keepalive_requests 10000000;
  upstream backends {
    server $BACKEND1;
    server $BACKEND2;
    keepalive 64;
    keepalive_requests 10000000;
    keepalive_timeout 600s;
  }
  server {
    listen 127.0.0.1:${PORT[nginx-http]} backlog=4096;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_read_timeout 600s;
    }
  }
}
EOF

cat >"$W/haproxy-http/haproxy.cfg" <<EOF
global
  nbthread $THREADS
  maxconn $(((NOFILE - 400) / 2))
defaults
  mode http
  option http-keep-alive
  http-reuse always
  option forwardfor
  timeout connect 3s
  timeout client 600s
  timeout server 600s
  timeout http-keep-alive 600s
  timeout http-request 10s
frontend fe
  bind 127.0.0.1:${PORT[haproxy-http]}
  backlog 4096
  http-request set-header X-Forwarded-Proto http
  default_backend be
backend be
  balance roundrobin
  server s1 $BACKEND1
  server s2 $BACKEND2
EOF

# rvsd with one `kind = "http"` service (its own process, so its CPU is its own)
cat >"$W/rvsd-http.toml" <<EOF
[api]
socket = "$W/api-http.sock"
[director]
drain_timeout_secs = 1
[[service]]
kind = "http"
address = "127.0.0.1:${PORT[rvs-http]}"
default_pool = "all"
  [[service.pool]]
  name = "all"
  scheduler = "rr"
    [[service.pool.real_server]]
    address = "$BACKEND1"
    [[service.pool.real_server]]
    address = "$BACKEND2"
EOF

nginx -t -q -p "$W/backend" -c "$W/backend/nginx.conf" -e "$W/backend/error.log" || die "backend nginx config"
nginx -t -q -p "$W/nginx-lb" -c "$W/nginx-lb/nginx.conf" -e "$W/nginx-lb/error.log" || die "nginx stream config"
haproxy -c -q -f "$W/haproxy/haproxy.cfg" >/dev/null 2>&1 || haproxy -c -f "$W/haproxy/haproxy.cfg" || die "haproxy config"
"$RVSD" --check-config "$W/rvsd.toml" >/dev/null || die "rvsd config"
nginx -t -q -p "$W/nginx-http" -c "$W/nginx-http/nginx.conf" -e "$W/nginx-http/error.log" || die "nginx http config"
haproxy -c -q -f "$W/haproxy-http/haproxy.cfg" >/dev/null 2>&1 || haproxy -c -f "$W/haproxy-http/haproxy.cfg" ||
  die "haproxy http config"

# Which rvs serves HTTP: rvsd when it takes a `kind = "http"` service, else the rvs-l7 example.
L7_IMPL=l7bench
if [[ $BENCH_L7 != l7bench ]]; then
  if "$RVSD" --check-config "$W/rvsd-http.toml" >"$W/rvsd-http.check" 2>&1; then
    L7_IMPL=rvsd
  elif [[ $BENCH_L7 == rvsd ]]; then
    cat "$W/rvsd-http.check" >&2
    die "rvsd does not take a kind = \"http\" service (BENCH_L7=rvsd)"
  else
    log "rvsd does not take a kind = \"http\" service yet ($W/rvsd-http.check): rvs http is the rvs-l7 example l7bench"
  fi
fi
L7BENCH=
build_l7bench() {
  [[ -n $L7BENCH ]] && return 0
  if [[ -n ${L7BENCH_BIN:-} ]]; then
    L7BENCH=$L7BENCH_BIN
  else
    log "building l7bench (cargo build --release -p rvs-l7 --example l7bench)"
    (cd "$ROOT" && cargo build --release -p rvs-l7 --example l7bench --quiet) || die "cargo build of l7bench failed"
    L7BENCH=$ROOT/target/release/examples/l7bench
  fi
  [[ -x $L7BENCH ]] || die "no l7bench binary at $L7BENCH"
}
[[ $L7_IMPL == l7bench ]] && build_l7bench

# ---------------------------------------------------------------- start / stop
wait_http() { # wait_http PORT: until GET / answers the body (bounded: 10 s)
  local i
  for ((i = 0; i < 100; i++)); do
    if [[ $(curl -s --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null) == "$BODY" ]]; then return 0; fi
    sleep 0.1
  done
  return 1
}

start_backend() {
  nginx -p "$W/backend" -c "$W/backend/nginx.conf" -e "$W/backend/error.log" &
  BACKEND_PID=$!
  STARTED+=("$BACKEND_PID")
  wait_http 18101 && wait_http 18102 || die "backend nginx did not come up ($W/backend/error.log)"
}

wait_line() { # wait_line PATTERN FILE PID: until FILE has a line matching PATTERN (bounded: 10 s)
  local i
  for ((i = 0; i < 100; i++)); do
    grep -q "$1" "$2" 2>/dev/null && return 0
    ours "$3" || return 1
    sleep 0.1
  done
  return 1
}

start_bal() { # start_bal NAME
  local b=$1 pid i
  case $b in
    direct) return 0 ;;
    rvs)
      : >"$W/rvsd.out"
      RVSD_LOG=warn TOKIO_WORKER_THREADS=$THREADS "$RVSD" --config "$W/rvsd.toml" >>"$W/rvsd.out" 2>>"$W/rvsd.err" &
      pid=$!
      wait_line 'rvsd ready' "$W/rvsd.out" "$pid" || true
      ;;
    rvs-http)
      if [[ $L7_IMPL == rvsd ]]; then
        : >"$W/rvsd-http.out"
        RVSD_LOG=warn TOKIO_WORKER_THREADS=$THREADS "$RVSD" --config "$W/rvsd-http.toml" \
          >>"$W/rvsd-http.out" 2>>"$W/rvsd-http.err" &
        pid=$!
        STARTED+=("$pid")
        wait_line 'rvsd ready' "$W/rvsd-http.out" "$pid" || true
        if [[ $BENCH_L7 == auto ]] && ! wait_http "${PORT[$b]}"; then
          log "rvsd took the kind = \"http\" service but does not serve it (logs: $W/rvsd-http.*): using l7bench"
          stop_pid "$pid"
          L7_IMPL=l7bench
          build_l7bench
        fi
      fi
      if [[ $L7_IMPL == l7bench ]]; then
        : >"$W/l7bench.out"
        TOKIO_WORKER_THREADS=$THREADS "$L7BENCH" --listen "127.0.0.1:${PORT[$b]}" --backend "$BACKEND1" \
          --backend "$BACKEND2" --scheduler rr >>"$W/l7bench.out" 2>>"$W/l7bench.err" &
        pid=$!
        wait_line '^ready ' "$W/l7bench.out" "$pid" || true
      fi
      ;;
    haproxy-http)
      haproxy -db -f "$W/haproxy-http/haproxy.cfg" >>"$W/haproxy-http/haproxy.log" 2>&1 &
      pid=$!
      ;;
    nginx-http)
      nginx -p "$W/nginx-http" -c "$W/nginx-http/nginx.conf" -e "$W/nginx-http/error.log" &
      pid=$!
      ;;
    haproxy)
      haproxy -db -f "$W/haproxy/haproxy.cfg" >>"$W/haproxy/haproxy.log" 2>&1 &
      pid=$!
      ;;
    pen)
      # -f foreground, -r round robin without client tracking, -x connections (2 fds each, in
      # the open-files limit it inherits), pending_max: connects in progress (default 100)
      pen -f -r -O tcp_nodelay -O "pending_max 4096" -x "$PEN_MAXCONN" -c 1024 \
        "127.0.0.1:${PORT[pen]}" "$BACKEND1" "$BACKEND2" >>"$W/pen.log" 2>&1 &
      pid=$!
      ;;
    nginx)
      nginx -p "$W/nginx-lb" -c "$W/nginx-lb/nginx.conf" -e "$W/nginx-lb/error.log" &
      pid=$!
      ;;
  esac
  STARTED+=("$pid")
  BAL_PID[$b]=$pid
  wait_http "${PORT[$b]}" || die "$b did not come up on port ${PORT[$b]} (logs in $W)"
}

stop_bal() {
  local b=$1
  [[ -n ${BAL_PID[$b]:-} ]] && stop_pid "${BAL_PID[$b]}"
  BAL_PID[$b]=
}

pids_of() { # pids_of NAME: the balancer's processes (nginx: master and workers)
  local b=$1 p=${BAL_PID[$1]:-}
  [[ -z $p ]] && return 0
  echo "$p"
  [[ $b == nginx || $b == nginx-http ]] && pgrep -P "$p" || true
}

rss_kib() { # rss_kib PID...: VmRSS summed
  local t=0 p v
  for p in "$@"; do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

fd_count() {
  local t=0 p n
  for p in "$@"; do
    n=$(ls "/proc/$p/fd" 2>/dev/null | wc -l) || continue
    t=$((t + n))
  done
  echo "$t"
}

backend_conns() { # established TCP connections accepted by the backends (ports 18101, 18102)
  awk '$4 == "01" && ($2 ~ /:46B5$/ || $2 ~ /:46B6$/) { n++ } END { print n + 0 }' /proc/net/tcp
}

backend_accepts() { # connections the backend nginx has accepted so far (its stub_status)
  curl -s --max-time 2 "http://$BACKEND1/bench-status" | awk 'NR == 3 && $1 ~ /^[0-9]+$/ { print $1 }'
}

is_http() { [[ $1 == *-http ]]; }

calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }

median() { # median VALUE...: the median of the numeric values given ("-" when none)
  local v=() x
  for x in "$@"; do [[ $x =~ ^[0-9.]+$ ]] && v+=("$x"); done
  ((${#v[@]})) || { echo -; return; }
  printf '%s\n' "${v[@]}" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : a[NR / 2] }'
}

ratio() { # ratio A B: A/B, or - when either is missing
  [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]] && awk "BEGIN { if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"-\" }" || echo -
}

machine_ticks() { # busy ticks of the whole machine (user nice system irq softirq steal)
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# Before each run, wait (a little, within a total budget) for the rest of the machine to be
# quiet: the cores are shared, and other work skews a run. Our own processes are idle then.
QUIET_LEFT=$QUIET_BUDGET
wait_quiet() {
  local m0 m1 busy waited=0
  while :; do
    m0=$(machine_ticks); sleep 0.5; m1=$(machine_ticks)
    busy=$(((m1 - m0) * 100 * 2 / (HZ * NCPU)))
    ((busy <= QUIET_PCT || QUIET_LEFT <= 0)) && break
    sleep 1
    QUIET_LEFT=$((QUIET_LEFT - 1)) waited=$((waited + 1))
  done
  ((waited == 0)) || log "waited ${waited}s for a quieter machine (now ${busy}% busy; ${QUIET_LEFT}s of waiting left)"
}

declare -A R=()   # per-round results: R[metric,balancer,round]
declare -A M=()   # final results: M[metric,balancer]
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

# ---------------------------------------------------------------- load runs
run_wrk() { # run_wrk BALANCER TEST ROUND
  local b=$1 t=$2 r=$3 port=${PORT[$1]} url args=() out pids bpids u0 s0 u1 s1 bt0 bt1 kw0 kw1 m0 m1 line a0= a1=
  case $t in
    ka) args=(-c"$KA_CONNS"); url=/ ;;
    close) args=(-c"$CLOSE_CONNS" -H 'Connection: close'); url=/ ;;
    bulk) args=(-c"$BULK_CONNS"); url=/1m ;;
  esac
  ours "${BAL_PID[$b]:-$BACKEND_PID}" || die "$b is not running any more (logs in $W)"
  if ((WARM && r == 1)); then
    timeout 15 wrk -t1 "${args[@]}" -d"${WARM}s" "http://127.0.0.1:$port$url" >/dev/null 2>&1 || true
  fi
  wait_quiet
  mapfile -t pids < <(pids_of "$b")
  mapfile -t bpids < <(echo "$BACKEND_PID"; pgrep -P "$BACKEND_PID" || true)
  out=$W/wrk-$t-$b-$r.txt
  is_http "$b" && a0=$(backend_accepts)
  read -r u0 s0 < <(cpu_ticks "${pids[@]}")
  bt0=$(cpu_total "${bpids[@]}")
  kw0=$(kworker_ticks | tr '\n' ' ')
  m0=$(machine_ticks)
  local TIMEFORMAT='%U %S'
  { time timeout $((DUR + 20)) wrk -t1 "${args[@]}" -d"${DUR}s" --timeout 5s --latency -s "$BENCH/report.lua" \
    "http://127.0.0.1:$port$url" >"$out" 2>&1; } 2>"$out.time" || log "wrk $t $b exited with an error (see $out)"
  m1=$(machine_ticks)
  read -r u1 s1 < <(cpu_ticks "${pids[@]}")
  bt1=$(cpu_total "${bpids[@]}")
  kw1=$(kworker_ticks | tr '\n' ' ')
  is_http "$b" && a1=$(backend_accepts)
  line=$(grep '^RESULT ' "$out" || true)
  if [[ -z $line ]]; then
    log "no result from wrk $t $b (see $out)"
    return 0
  fi
  local requests=0 duration=1 bytes=0 p50=0 p99=0 errs=0 kv k v wu ws
  for kv in ${line#RESULT }; do
    k=${kv%%=*} v=${kv#*=}
    case $k in
      requests) requests=$v ;; duration_us) duration=$v ;; bytes) bytes=$v ;;
      p50_us) p50=$v ;; p99_us) p99=$v ;; err_*) errs=$((errs + v)) ;;
    esac
  done
  read -r wu ws <"$out.time" || { wu=0; ws=0; }
  local secs cpu bcpu kcpu ours other
  secs=$(calc "$duration / 1e6" 3)
  # The balancer's CPU: its processes', plus what the kernel workers used during the run (the
  # sockmap relay's work is done there; for the others it is background noise, charged alike).
  kcpu=$(calc "$(kworker_delta "$kw0" "$kw1") / $HZ")
  cpu=$(calc "($u1 + $s1 - $u0 - $s0) / $HZ + $kcpu")
  bcpu=$(calc "($bt1 - $bt0) / $HZ")
  # CPU of everything else on the machine during the run (noise), as % of all cores
  ours=$(calc "$cpu + $bcpu + $wu + $ws")
  [[ $b == direct ]] && ours=$(calc "$bcpu + $wu + $ws")
  other=$(calc "(($m1 - $m0) / $HZ - $ours) / ($secs * $NCPU) * 100" 0)
  ((${other%.*} < 0)) && other=0
  R[$t.rps,$b,$r]=$(calc "$requests / $secs" 0)
  R[$t.err,$b,$r]=$errs
  R[$t.bcpu,$b,$r]=$bcpu
  R[$t.wcpu,$b,$r]=$(calc "$wu + $ws")
  R[$t.kcpu,$b,$r]=$kcpu
  R[$t.other,$b,$r]=$other
  # new connections the backends accepted during the run (minus the second status request's own)
  [[ $a0 =~ ^[0-9]+$ && $a1 =~ ^[0-9]+$ ]] && R[$t.upconn,$b,$r]=$((a1 - a0 - 1))
  if [[ $b != direct ]]; then
    R[$t.cpu,$b,$r]=$cpu
    R[$t.sys,$b,$r]=$( ((u1 + s1 > u0 + s0)) && calc "($s1 - $s0) * 100 / ($u1 + $s1 - $u0 - $s0)" 0 || echo -)
    R[$t.percpu,$b,$r]=$( ((u1 + s1 > u0 + s0)) && calc "$requests / $cpu" 0 || echo -)
    # requests per second of the balancer's kernel time alone: what it would reach if its own
    # code took no time at all (the bound its syscalls and TCP work set)
    R[$t.kpercpu,$b,$r]=$( ((s1 > s0)) && calc "$requests / (($s1 - $s0) / $HZ + $kcpu)" 0 || echo -)
  fi
  case $t in
    ka) R[ka.p50,$b,$r]=$(calc "$p50 / 1000" 3); R[ka.p99,$b,$r]=$(calc "$p99 / 1000" 3) ;;
    bulk)
      R[bulk.gbps,$b,$r]=$(calc "$bytes * 8 / $secs / 1e9")
      R[bulk.gbit,$b,$r]=$(calc "$bytes * 8 / 1e9")
      if [[ $b != direct ]] && ((u1 + s1 > u0 + s0)); then
        R[bulk.gbpercpu,$b,$r]=$(calc "$bytes * 8 / 1e9 / $cpu")
      fi
      ;;
  esac
  log "$(printf 'r%d %-5s %-12s %8s req/s  balancer cpu %5ss (%3s%% sys)  backend %5ss  wrk %5ss  others %3s%%  errors %s%s' \
    "$r" "$t" "$b" "${R[$t.rps,$b,$r]}" "${R[$t.cpu,$b,$r]:--}" "${R[$t.sys,$b,$r]:--}" "$bcpu" \
    "$(calc "$wu + $ws")" "$other" "$errs" "${R[$t.upconn,$b,$r]+  new backend conns ${R[$t.upconn,$b,$r]}}")"
}

cpu_ticks() { # cpu_ticks PID...: "utime stime" in clock ticks, summed
  local u=0 s=0 p st f
  for p in "$@"; do
    st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"${st##*) }"
    u=$((u + f[11])) s=$((s + f[12]))
  done
  echo "$u $s"
}

kworker_ticks() { # kworker_ticks: "PID:TICKS" (utime+stime) of each kernel worker thread
  # (kworker/*, ksoftirqd/*): work the kernel does for a process outside its own context, such
  # as the sockmap relay's sends, is charged to them.
  local p st f
  for p in $(pgrep '^(kworker|ksoftirqd)/' || true); do
    st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"${st##*) }"
    echo "$p:$((f[11] + f[12]))"
  done
}

kworker_delta() { # kworker_delta BEFORE AFTER: clock ticks the kernel workers used in between
  awk -v before="$1" -v after="$2" 'BEGIN {
    n = split(before, b, " "); for (i = 1; i <= n; i++) { split(b[i], kv, ":"); t0[kv[1]] = kv[2] }
    n = split(after, a, " "); for (i = 1; i <= n; i++) { split(a[i], kv, ":"); d += kv[2] - (kv[1] in t0 ? t0[kv[1]] : 0) }
    print d + 0 }'
}

cpu_total() { # cpu_total PID...: utime+stime in clock ticks, summed
  local u s
  read -r u s < <(cpu_ticks "$@")
  echo $((u + s))
}

# ---------------------------------------------------------------- idle connections
idle_test() { # idle_test BALANCER MODE(connect|request) N: fresh balancer, N idle conns
  local b=$1 mode=$2 n=$3 pids rss0 rss1 fd0 fd1 be0 be1 held cpid i line ready=0 failed=0 conns=- emfile=0
  stop_bal "$b"
  start_bal "$b"
  # warm-up: a few connections through, then closed
  timeout 30 python3 "$BENCH/idle_conns.py" --port "${PORT[$b]}" --n 64 --request --hold 0 >/dev/null 2>&1 || true
  sleep 1.5
  mapfile -t pids < <(pids_of "$b")
  rss0=$(rss_kib "${pids[@]}") fd0=$(fd_count "${pids[@]}") be0=$(backend_conns)
  [[ $b == rvs ]] && emfile=$(grep -c 'Too many open files' "$W/rvsd.err" 2>/dev/null || true)
  local out=$W/idle-$b-$mode.txt
  local flag=()
  [[ $mode == request ]] && flag=(--request)
  timeout 300 python3 "$BENCH/idle_conns.py" --port "${PORT[$b]}" --n "$n" "${flag[@]}" --hold 120 \
    >"$out" 2>"$out.err" &
  cpid=$!
  STARTED+=("$cpid")
  for ((i = 0; i < 1200; i++)); do # up to 120 s to open them
    line=$(grep '^ready ' "$out" 2>/dev/null || true)
    [[ -n $line ]] && break
    ours "$cpid" || break
    sleep 0.1
  done
  if [[ -n $line ]]; then
    read -r _ ready failed <<<"$line"
    sleep 2 # let the balancer finish its side (server connects)
    rss1=$(rss_kib "${pids[@]}") fd1=$(fd_count "${pids[@]}") be1=$(backend_conns)
    # The connections the balancer really holds: those the backends see. (The client's
    # connects can succeed into the listen backlog of a balancer that cannot accept them.)
    held=$((be1 - be0))
    if [[ $b == rvs ]]; then
      conns=$(curl -s --max-time 2 --unix-socket "$W/api.sock" http://rvsd/v1/info |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get("connections","?"))' 2>/dev/null || echo '?')
      emfile=$(($(grep -c 'Too many open files' "$W/rvsd.err" 2>/dev/null || true) - emfile))
    fi
    if ((held > 0)); then
      M[mem.$mode,$b]=$(calc "($rss1 - $rss0) / $held" 2)
      M[fd.$mode,$b]=$(calc "($fd1 - $fd0) / $held" 2)
    fi
    M[n.$mode,$b]="$held/$n"
    log "$(printf 'idle  %-8s %-7s asked %5d, client ok %5d failed %4d, backends see %5d  rss %6d -> %7d KiB  fds %5d -> %5d' \
      "$b" "$mode" "$n" "$ready" "$failed" "$held" "$rss0" "$rss1" "$fd0" "$fd1")"
    [[ $b == rvs ]] && log "idle  rvs      $mode: rvsd /v1/info connections=$conns; 'Too many open files' logged $emfile times"
  else
    log "idle $b $mode: the client did not report (see $out.err)"
  fi
  stop_pid "$cpid"
  ours "${BAL_PID[$b]}" || log "idle $b $mode: the balancer died (logs in $W)"
}

# ---------------------------------------------------------------- network namespaces
# The same balancers on a routed topology of network namespaces (bench/netns.sh): wrk in a
# client namespace, the balancer in a director namespace that routes, two nginx real servers
# (one each, worker_processes 1) on a bridge behind it. Loopback flatters a relay (no device,
# no routing, a cheap softirq); here each packet crosses veth pairs and the director's
# forwarding. direct = the client straight to real server 1 (routed through the director).
# CPU is the whole machine's, from /proc/stat (user+nice+system+irq+softirq, all CPUs) over the
# run: per request it includes wrk's, the real servers' and the kernel's work on every hop, and
# the extra over direct is what the balancer adds to the machine. Noise from the rest of the
# machine is in it too: the table shows how much (others %).
NSW=$W/netns
NS_BALANCERS=(direct rvs haproxy pen nginx)
declare -A NS_PID=()
NS_RS_PIDS=()
NS_REQS=""   # "ka close" by default (BENCH_NETNS_TESTS)

ns_median() { # ns_median VALUE...: as median, negative values too (an extra over direct can be < 0)
  local v=() x
  for x in "$@"; do [[ $x =~ ^-?[0-9.]+$ ]] && v+=("$x"); done
  ((${#v[@]})) || { echo -; return; }
  printf '%s\n' "${v[@]}" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

ns_machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

ns_wait_http() { # ns_wait_http ADDR PORT: GET / from the client namespace answers the body (10 s)
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(ip netns exec "$NS_CLI" curl -s --max-time 1 "http://$1:$2/" 2>/dev/null) == "$BODY" ]] && return 0
    sleep 0.1
  done
  return 1
}

ns_configs() {
  local rs1=${NS_RS_ADDR[0]}:80 rs2=${NS_RS_ADDR[1]}:80 a=$NS_DIR_CADDR i
  mkdir -p "$NSW/haproxy" "$NSW/nginx-lb"
  ln -sfn "$W/www" "$NSW/www"
  for i in "${!NS_RS_ADDR[@]}"; do
    bench_backend_nginx_conf "$NSW/rs$((i + 1))" "$NSW/www" "$BODY" "$NOFILE" "${NS_RS_ADDR[$i]}:80"
  done
  sed -e "s|127.0.0.1:${PORT[haproxy]}|$a:${PORT[haproxy]}|" -e "s|$BACKEND1|$rs1|" -e "s|$BACKEND2|$rs2|" \
    "$W/haproxy/haproxy.cfg" >"$NSW/haproxy/haproxy.cfg"
  sed -e "s|127.0.0.1:${PORT[nginx]}|$a:${PORT[nginx]}|" -e "s|$BACKEND1|$rs1|" -e "s|$BACKEND2|$rs2|" \
    -e "s|$W/nginx-lb|$NSW/nginx-lb|g" "$W/nginx-lb/nginx.conf" >"$NSW/nginx-lb/nginx.conf"
  sed -e "s|127.0.0.1:${PORT[rvs]}|$a:${PORT[rvs]}|" -e "s|$BACKEND1|$rs1|" -e "s|$BACKEND2|$rs2|" \
    -e "s|$W/api.sock|$NSW/api.sock|" "$W/rvsd.toml" >"$NSW/rvsd.toml"
  "$RVSD" --check-config "$NSW/rvsd.toml" >/dev/null || die "netns rvsd config"
  haproxy -c -q -f "$NSW/haproxy/haproxy.cfg" >/dev/null 2>&1 || die "netns haproxy config"
}

ns_start_rs() {
  local i d
  for i in "${!NS_RS[@]}"; do
    d=$NSW/rs$((i + 1))
    ip netns exec "${NS_RS[$i]}" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" &
    STARTED+=("$!")
    NS_RS_PIDS+=("$!")
  done
  for i in "${!NS_RS_ADDR[@]}"; do
    ns_wait_http "${NS_RS_ADDR[$i]}" 80 || die "netns real server ${NS_RS_ADDR[$i]} did not come up"
  done
}

ns_start_bal() { # ns_start_bal NAME: the balancer in the director namespace
  local b=$1 pid rs1=${NS_RS_ADDR[0]}:80 rs2=${NS_RS_ADDR[1]}:80
  case $b in
    direct) return 0 ;;
    rvs)
      : >"$NSW/rvsd.out"
      RVSD_LOG=warn TOKIO_WORKER_THREADS=$THREADS ip netns exec "$NS_DIR" "$RVSD" --config "$NSW/rvsd.toml" \
        >>"$NSW/rvsd.out" 2>>"$NSW/rvsd.err" &
      pid=$!
      wait_line 'rvsd ready' "$NSW/rvsd.out" "$pid" || true
      ;;
    haproxy)
      ip netns exec "$NS_DIR" haproxy -db -f "$NSW/haproxy/haproxy.cfg" >>"$NSW/haproxy/haproxy.log" 2>&1 &
      pid=$!
      ;;
    pen)
      ip netns exec "$NS_DIR" pen -f -r -O tcp_nodelay -O "pending_max 4096" -x "$PEN_MAXCONN" -c 1024 \
        "$NS_DIR_CADDR:${PORT[pen]}" "$rs1" "$rs2" >>"$NSW/pen.log" 2>&1 &
      pid=$!
      ;;
    nginx)
      ip netns exec "$NS_DIR" nginx -p "$NSW/nginx-lb" -c "$NSW/nginx-lb/nginx.conf" -e "$NSW/nginx-lb/error.log" &
      pid=$!
      ;;
  esac
  STARTED+=("$pid")
  NS_PID[$b]=$pid
  ns_wait_http "$NS_DIR_CADDR" "${PORT[$b]}" || die "netns $b did not come up on $NS_DIR_CADDR:${PORT[$b]} (logs in $NSW)"
}

ns_pids_of() { # the balancer's processes
  local p=${NS_PID[$1]:-}
  [[ -z $p ]] && return 0
  echo "$p"
  [[ $1 == nginx ]] && pgrep -P "$p" || true
}

ns_run_wrk() { # ns_run_wrk BALANCER TEST ROUND
  local b=$1 t=$2 r=$3 host port args=() out pids rpids u0 s0 u1 s1 rt0 rt1 m0 m1 kw0 kw1 line
  if [[ $b == direct ]]; then host=${NS_RS_ADDR[0]} port=80; else host=$NS_DIR_CADDR port=${PORT[$b]}; fi
  case $t in
    ka) args=(-c"$KA_CONNS") ;;
    close) args=(-c"$CLOSE_CONNS" -H 'Connection: close') ;;
  esac
  [[ $b == direct ]] || ours "${NS_PID[$b]}" || die "netns $b is not running any more (logs in $NSW)"
  if ((WARM && r == 1)); then
    timeout 15 ip netns exec "$NS_CLI" wrk -t1 "${args[@]}" -d"${WARM}s" "http://$host:$port/" >/dev/null 2>&1 || true
  fi
  wait_quiet
  mapfile -t pids < <(ns_pids_of "$b")
  mapfile -t rpids < <(for p in "${NS_RS_PIDS[@]}"; do echo "$p"; pgrep -P "$p" || true; done)
  out=$NSW/wrk-$t-$b-$r.txt
  read -r u0 s0 < <(cpu_ticks "${pids[@]}")
  rt0=$(cpu_total "${rpids[@]}")
  kw0=$(kworker_ticks | tr '\n' ' ')
  m0=$(ns_machine_ticks)
  local TIMEFORMAT='%U %S'
  { time timeout $((DUR + 20)) ip netns exec "$NS_CLI" wrk -t1 "${args[@]}" -d"${DUR}s" --timeout 5s --latency \
    -s "$BENCH/report.lua" "http://$host:$port/" >"$out" 2>&1; } 2>"$out.time" ||
    log "netns wrk $t $b exited with an error (see $out)"
  m1=$(ns_machine_ticks)
  read -r u1 s1 < <(cpu_ticks "${pids[@]}")
  rt1=$(cpu_total "${rpids[@]}")
  kw1=$(kworker_ticks | tr '\n' ' ')
  line=$(grep '^RESULT ' "$out" || true)
  [[ -n $line ]] || { log "no result from netns wrk $t $b (see $out)"; return 0; }
  local requests=0 duration=1 errs=0 kv k v wu ws secs mach bal rs kw other
  for kv in ${line#RESULT }; do
    k=${kv%%=*} v=${kv#*=}
    case $k in requests) requests=$v ;; duration_us) duration=$v ;; err_*) errs=$((errs + v)) ;; esac
  done
  ((requests > 0)) || { log "netns wrk $t $b: no requests (see $out)"; return 0; }
  read -r wu ws <"$out.time" || { wu=0; ws=0; }
  secs=$(calc "$duration / 1e6" 3)
  mach=$(calc "($m1 - $m0) / $HZ")
  bal=$(calc "($u1 + $s1 - $u0 - $s0) / $HZ")
  rs=$(calc "($rt1 - $rt0) / $HZ")
  kw=$(calc "$(kworker_delta "$kw0" "$kw1") / $HZ")
  other=$(calc "(($mach - $bal - $rs - $wu - $ws - $kw) / ($secs * $NCPU)) * 100" 0)
  ((${other%.*} < 0)) && other=0
  NR_[$t.rps,$b,$r]=$(calc "$requests / $secs" 0)
  NR_[$t.mus,$b,$r]=$(calc "$mach * 1e6 / $requests" 1)
  # the workload's own CPU: wrk + real servers + balancer + kernel workers (softirq work done in a
  # task's context is charged to that task here), i.e. the machine's minus the other processes'
  NR_[$t.wlus,$b,$r]=$(calc "($bal + $rs + $wu + $ws + $kw) * 1e6 / $requests" 1)
  NR_[$t.err,$b,$r]=$errs
  NR_[$t.other,$b,$r]=$other
  NR_[$t.rsus,$b,$r]=$(calc "$rs * 1e6 / $requests" 1)
  NR_[$t.wus,$b,$r]=$(calc "($wu + $ws) * 1e6 / $requests" 1)
  [[ $b == direct ]] || NR_[$t.bus,$b,$r]=$(calc "$bal * 1e6 / $requests" 1)
  log "$(printf 'netns r%d %-5s %-8s %8s req/s  machine %6s us/req  workload %6s  balancer %5s us/req  servers %5s  wrk %5s  others %3s%%  errors %s' \
    "$r" "$t" "$b" "${NR_[$t.rps,$b,$r]}" "${NR_[$t.mus,$b,$r]}" "${NR_[$t.wlus,$b,$r]}" "${NR_[$t.bus,$b,$r]:--}" "${NR_[$t.rsus,$b,$r]}" \
    "${NR_[$t.wus,$b,$r]}" "$other" "$errs")"
}

declare -A NR_=() NM=()
netns_bench() {
  local r t b order n k vals x d p split
  command -v ip >/dev/null && ip netns list >/dev/null 2>&1 || { log "netns: no 'ip netns' here: skipped"; return 1; }
  log "netns: setting up the topology (prefix $NETNS_PREFIX)"
  netns_setup || die "netns setup failed"
  ns_configs
  ns_start_rs
  for b in "${NS_BALANCERS[@]}"; do ns_start_bal "$b"; done
  n=${#NS_BALANCERS[@]}
  for ((r = 1; r <= ROUNDS; r++)); do
    order=("${NS_BALANCERS[@]:$(((r - 1) % n))}" "${NS_BALANCERS[@]:0:$(((r - 1) % n))}")
    for t in $NS_TESTS; do
      for b in "${order[@]}"; do ns_run_wrk "$b" "$t" "$r"; done
      # the extra over direct, paired within the round
      for b in "${NS_BALANCERS[@]}"; do
        [[ $b == direct ]] && continue
        x=${NR_[$t.mus,$b,$r]:-} d=${NR_[$t.mus,direct,$r]:-}
        [[ $x =~ ^[0-9.]+$ && $d =~ ^[0-9.]+$ ]] && NR_[$t.extra,$b,$r]=$(calc "$x - $d" 1)
        x=${NR_[$t.wlus,$b,$r]:-} d=${NR_[$t.wlus,direct,$r]:-}
        [[ $x =~ ^[0-9.]+$ && $d =~ ^[0-9.]+$ ]] && NR_[$t.wlextra,$b,$r]=$(calc "$x - $d" 1)
      done
    done
  done
  for b in "${NS_BALANCERS[@]}"; do
    for t in $NS_TESTS; do
      for k in rps mus extra wlus wlextra bus; do
        vals=()
        for ((r = 1; r <= ROUNDS; r++)); do vals+=("${NR_[$t.$k,$b,$r]:--}"); done
        NM[$t.$k,$b]=$(ns_median "${vals[@]}")
      done
      n=0
      for ((r = 1; r <= ROUNDS; r++)); do n=$((n + ${NR_[$t.err,$b,$r]:-0})); done
      NM[$t.err,$b]=$n
    done
    vals=()
    for ((r = 1; r <= ROUNDS; r++)); do for t in $NS_TESTS; do vals+=("${NR_[$t.other,$b,$r]:-0}"); done; done
    NM[other,$b]=$(printf '%s\n' "${vals[@]}" | awk '{ s += $1 } END { printf "%.0f", NR ? s / NR : 0 }')
    NM[errs,$b]="${NM[ka.err,$b]:--}/${NM[close.err,$b]:--}"
  done
  if [[ -S $NSW/api.sock ]]; then
    split=$(curl -s --max-time 2 --unix-socket "$NSW/api.sock" http://rvsd/v1/services | python3 -c 'import json,sys
d = json.load(sys.stdin)
print(" ".join("%s=%s" % (rs["address"], rs["stats"]["conns"]) for s in d["services"] for rs in s["real_servers"]))' \
      2>/dev/null || echo '?')
    log "netns rvsd connections per real server: $split"
  fi
  # stop them here (the trap would too): the namespaces go with them
  for b in "${NS_BALANCERS[@]}"; do [[ -n ${NS_PID[$b]:-} ]] && stop_pid "${NS_PID[$b]}"; done
  for p in "${NS_RS_PIDS[@]}"; do stop_pid "$p"; done
  netns_teardown
}

netns_table() {
  local b
  nsrow() {
    printf '%-40s' "$1"
    for b in "${NS_BALANCERS[@]}"; do printf ' %10s' "${NM[$2,$b]:--}"; done
    printf '\n'
  }
  echo
  echo "network namespaces: client $NS_CLI_ADDR -> director $NS_DIR_CADDR (routes; balancer here) -> bridge ->"
  echo "real servers ${NS_RS_ADDR[*]} (nginx, 1 worker each); direct = client to ${NS_RS_ADDR[0]} via the director's forwarding"
  echo "wrk -t1 in the client namespace, ${DUR}s per run, median of $ROUNDS round(s); keep-alive -c$KA_CONNS, close -c$CLOSE_CONNS"
  echo "CPU = the whole machine's (/proc/stat, all $NCPU CPUs); extra = balancer's machine us/req - direct's, per round;"
  echo "workload = wrk's + the real servers' + the balancer's + kernel workers' CPU (the machine's minus the"
  echo "other processes' on this shared machine: the steadier figure when others % is high)"
  echo
  printf '%-40s' "metric"
  for b in "${NS_BALANCERS[@]}"; do printf ' %10s' "$b"; done
  printf '\n'
  nsrow "keep-alive requests/s" ka.rps
  nsrow "keep-alive machine us/request" ka.mus
  nsrow "keep-alive extra us/request over direct" ka.extra
  nsrow "  workload us/request (see below)" ka.wlus
  nsrow "  workload extra us/request over direct" ka.wlextra
  nsrow "  balancer's own processes, us/request" ka.bus
  nsrow "close new connections/s" close.rps
  nsrow "close machine us/connection" close.mus
  nsrow "close extra us/connection over direct" close.extra
  nsrow "  workload us/connection" close.wlus
  nsrow "  workload extra us/connection over direct" close.wlextra
  nsrow "  balancer's own processes, us/conn" close.bus
  nsrow "wrk errors (ka/close)" errs
  nsrow "other processes' CPU, % of machine" other
  echo
  echo "rvs's extra per request / per connection over the others' (lower is better):"
  printf '  %-58s %6s\n' "keep-alive extra us vs HAProxy" "$(ratio "${NM[ka.extra,rvs]:--}" "${NM[ka.extra,haproxy]:--}")x"
  printf '  %-58s %6s\n' "keep-alive extra us vs pen" "$(ratio "${NM[ka.extra,rvs]:--}" "${NM[ka.extra,pen]:--}")x"
  printf '  %-58s %6s\n' "new-connection extra us vs HAProxy" "$(ratio "${NM[close.extra,rvs]:--}" "${NM[close.extra,haproxy]:--}")x"
  printf '  %-58s %6s\n' "new-connection extra us vs pen" "$(ratio "${NM[close.extra,rvs]:--}" "${NM[close.extra,pen]:--}")x"
 printf '  %-58s %6s\n' "workload keep-alive extra us vs HAProxy, vs pen" \
    "$(ratio "${NM[ka.wlextra,rvs]:--}" "${NM[ka.wlextra,haproxy]:--}")x $(ratio "${NM[ka.wlextra,rvs]:--}" "${NM[ka.wlextra,pen]:--}")x"
  printf '  %-58s %6s\n' "workload new-connection extra us vs HAProxy, vs pen" \
    "$(ratio "${NM[close.wlextra,rvs]:--}" "${NM[close.wlextra,haproxy]:--}")x $(ratio "${NM[close.wlextra,rvs]:--}" "${NM[close.wlextra,pen]:--}")x"
  printf '  %-58s %6s\n' "new connections/s vs HAProxy" "$(ratio "${NM[close.rps,rvs]:--}" "${NM[close.rps,haproxy]:--}")x"
}

# ---------------------------------------------------------------- run
if [[ $NETNS == only ]]; then
  log "BENCH_NETNS=only: the network-namespace runs alone; ${DUR}s per run, $ROUNDS rounds"
  netns_bench && netns_table | tee "$W/table-netns.txt"
  [[ $XDP == 1 ]] && xdp_bench
  exit 0
fi
log "threads per balancer: $THREADS; ${DUR}s per run, $ROUNDS rounds; open-files limit $NOFILE; logs in $W"
start_backend
for b in rvs haproxy pen nginx "${HTTP_BALANCERS[@]}"; do start_bal "$b"; done
if [[ $L7_IMPL == rvsd ]]; then L7_DESC="rvsd, kind = \"http\" service"; else L7_DESC="rvs-l7 example l7bench (not rvsd)"; fi
log "rvs http: $L7_DESC"
# Rounds: every test on every balancer, the balancer order rotated each round so that none
# always runs first or last; a cell of the table is the median over the rounds. The http
# balancers' keep-alive runs follow the L4 tests of the same round.
for ((r = 1; r <= ROUNDS; r++)); do
  order=("${BALANCERS[@]:$(((r - 1) % ${#BALANCERS[@]}))}" "${BALANCERS[@]:0:$(((r - 1) % ${#BALANCERS[@]}))}")
  for t in $L4_TESTS; do
    for b in "${order[@]}"; do run_wrk "$b" "$t" "$r"; done
  done
  n=${#HTTP_BALANCERS[@]}
  order=("${HTTP_BALANCERS[@]:$(((r - 1) % n))}" "${HTTP_BALANCERS[@]:0:$(((r - 1) % n))}")
  for b in "${order[@]}"; do run_wrk "$b" ka "$r"; done
done
for b in "${HTTP_BALANCERS[@]}"; do
  for k in ka.rps ka.p50 ka.p99 ka.cpu ka.kcpu ka.sys ka.percpu ka.bcpu ka.upconn; do
    vals=()
    for ((r = 1; r <= ROUNDS; r++)); do vals+=("${R[$k,$b,$r]:--}"); done
    M[$k,$b]=$(median "${vals[@]}")
  done
  e=0
  for ((r = 1; r <= ROUNDS; r++)); do e=$((e + ${R[ka.err,$b,$r]:-0})); done
  M[ka.err,$b]=$e
  vals=()
  for ((r = 1; r <= ROUNDS; r++)); do vals+=("${R[ka.other,$b,$r]:-0}"); done
  M[other,$b]=$(printf '%s\n' "${vals[@]}" | awk '{ s += $1 } END { printf "%.0f", NR ? s / NR : 0 }')
done
vals=()
for ((r = 1; r <= ROUNDS; r++)); do vals+=("${R[ka.other,direct,$r]:-0}"); done
M[ka.other,direct]=$(printf '%s\n' "${vals[@]}" | awk '{ s += $1 } END { printf "%.0f", NR ? s / NR : 0 }')
http_ceil=()
for ((r = 1; r <= ROUNDS; r++)); do
  http_ceil+=("$(ratio "${R[ka.kpercpu,rvs-http,$r]:--}" "${R[ka.percpu,haproxy-http,$r]:--}")")
done
M[ceil.http,rvs-http]=$(median "${http_ceil[@]}")
# The http balancers are done: their counters, then stop them (the idle tests are L4 only).
if [[ $L7_IMPL == rvsd && -S $W/api-http.sock ]]; then
  curl -s --max-time 2 --unix-socket "$W/api-http.sock" http://rvsd/v1/http >"$W/rvsd-http-services.json" || true
  summary=$(python3 -c 'import json,sys
for s in json.load(open(sys.argv[1])).get("services", []):
    c = s.get("counters", {})
    print("requests %s, status classes %s, p50<=%sus p99<=%sus" % (c.get("requests"), c.get("status_classes"),
          c.get("latency_p50_us"), c.get("latency_p99_us")), end="")
    for p in s.get("pools", []):
        pc = p.get("counters", {})
        per = " ".join("%s=%s" % (rs.get("address"), rs.get("requests")) for rs in p.get("real_servers", []))
        print("; pool %s: upstream connects %s reuses %s (reuse ratio %.4f), requests per real server %s"
              % (p.get("name"), pc.get("upstream_connects"), pc.get("upstream_reuses"), pc.get("reuse_ratio") or 0, per),
              end="")
    print()' \
    "$W/rvsd-http-services.json" 2>/dev/null || echo "? (see $W/rvsd-http-services.json)")
  log "rvsd http counters: $summary"
fi
for b in "${HTTP_BALANCERS[@]}"; do stop_bal "$b"; done
if [[ $L7_IMPL == l7bench ]]; then
  log "l7bench counters at exit: $(tail -n 3 "$W/l7bench.err" 2>/dev/null | tr '\n' ' ')"
fi
for b in "${BALANCERS[@]}"; do
  for k in ka.rps ka.p50 ka.p99 ka.cpu ka.kcpu ka.sys ka.percpu ka.bcpu close.rps close.cpu close.kcpu close.sys \
    close.percpu close.bcpu bulk.rps bulk.gbps bulk.cpu bulk.kcpu bulk.sys bulk.gbpercpu bulk.bcpu; do
    vals=()
    for ((r = 1; r <= ROUNDS; r++)); do vals+=("${R[$k,$b,$r]:--}"); done
    M[$k,$b]=$(median "${vals[@]}")
  done
  for t in ka close bulk; do
    e=0
    for ((r = 1; r <= ROUNDS; r++)); do e=$((e + ${R[$t.err,$b,$r]:-0})); done
    M[$t.err,$b]=$e
  done
  vals=()
  for ((r = 1; r <= ROUNDS; r++)); do for t in ka close bulk; do vals+=("${R[$t.other,$b,$r]:-0}"); done; done
  M[other,$b]=$(printf '%s\n' "${vals[@]}" | awk '{ s += $1 } END { printf "%.0f", NR ? s / NR : 0 }')
done
# Ceilings, per round then the median: how far this machine lets the targets be reached.
#   ka:   rvs's requests per second of its kernel time alone (its own code free) / HAProxy's
#         requests per CPU-second: the best ratio the same syscalls and TCP work allow.
#   bulk: from the direct run, wrk's and the backend's CPU per Gbit; from the balancer's run,
#         its own CPU per Gbit. wrk has one thread (at most 1 CPU-s/s) and the machine NCPU
#         cores: Gbit/s <= min(1 / wrk's, NCPU / (wrk's + backend's + balancer's)), over direct's.
ceiling_bulk() { # ceiling_bulk BALANCER ROUND
  local b=$1 r=$2 g=${R[bulk.gbit,direct,$2]:-} gb=${R[bulk.gbit,$1,$2]:-}
  [[ $g =~ ^[0-9.]+$ && $gb =~ ^[0-9.]+$ && ${R[bulk.cpu,$b,$r]:-} =~ ^[0-9.]+$ ]] || { echo -; return; }
  awk -v g="$g" -v gb="$gb" -v w="${R[bulk.wcpu,direct,$r]}" -v k="${R[bulk.bcpu,direct,$r]}" \
    -v c="${R[bulk.cpu,$b,$r]}" -v d="${R[bulk.gbps,direct,$r]}" -v n="$NCPU" 'BEGIN {
      if (g <= 0 || gb <= 0 || w <= 0 || d <= 0) { print "-"; exit }
      cw = w / g; cb = k / g; cr = c / gb
      m = 1 / cw; t = n / (cw + cb + cr); if (t < m) m = t
      printf "%.2f", m / d }'
}
for b in rvs haproxy; do
  ka=() bulk=()
  for ((r = 1; r <= ROUNDS; r++)); do
    ka+=("$(ratio "${R[ka.kpercpu,$b,$r]:--}" "${R[ka.percpu,haproxy,$r]:--}")")
    bulk+=("$(ceiling_bulk "$b" "$r")")
  done
  M[ceil.ka,$b]=$(median "${ka[@]}")
  M[ceil.bulk,$b]=$(median "${bulk[@]}")
done
if [[ -S $W/api.sock ]]; then
  curl -s --max-time 2 --unix-socket "$W/api.sock" http://rvsd/v1/services >"$W/rvsd-services.json" || true
  split=$(python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
print(" ".join("%s=%s" % (rs["address"], rs["stats"]["conns"]) for s in d["services"] for rs in s["real_servers"]))' \
    "$W/rvsd-services.json" 2>/dev/null || echo '?')
  log "rvsd connections per real server: $split"
fi

# Idle connections. Each takes a client socket (here), at least two fds in the balancer and a
# socket in the backend: cap N so that a balancer with 2 fds per connection fits the open-files
# limit. A balancer that needs more holds fewer: the table shows held/asked.
N_IDLE=$((IDLE_WANT < (NOFILE - 1000) / 2 ? IDLE_WANT : (NOFILE - 1000) / 2))
for b in rvs haproxy pen nginx; do
  ((N_IDLE > 0)) || break
  idle_test "$b" connect "$N_IDLE"
  idle_test "$b" request "$N_IDLE"
done

# ---------------------------------------------------------------- table
row() { # row LABEL METRIC
  local b
  printf '%-34s' "$1"
  for b in "${BALANCERS[@]}"; do printf ' %12s' "${M[$2,$b]:--}"; done
  printf '\n'
}
verdict() { # verdict RATIO OP LIMIT
  [[ $1 == - ]] && { echo "n/a"; return; }
  awk "BEGIN { exit !($1 $2 $3) }" && echo PASS || echo FAIL
}

for b in "${BALANCERS[@]}"; do M[errs,$b]="${M[ka.err,$b]:--}/${M[close.err,$b]:--}/${M[bulk.err,$b]:--}"; done
{
  echo
  echo "rvs bench: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -r)"
  echo "threads per balancer: $THREADS (rvsd TOKIO_WORKER_THREADS, haproxy nbthread, nginx worker_processes)"
  echo "wrk -t1, ${DUR}s per run, median of $ROUNDS round(s); keep-alive -c$KA_CONNS, close -c$CLOSE_CONNS, bulk -c$BULK_CONNS on a 1 MiB body"
  echo "backends: one nginx, 1 worker, $BACKEND1 and $BACKEND2; direct = wrk to $BACKEND1"
  echo "rvs relay $RELAY; haproxy $(haproxy -v | awk 'NR==1 {print $3}') mode tcp, splice-auto; pen $PEN_VERSION -r, tcp_nodelay (1 thread);"
  echo "nginx $(nginx -v 2>&1 | sed 's|.*/||') stream"
  echo
  printf '%-34s' "metric"
  for b in "${BALANCERS[@]}"; do printf ' %12s' "$b"; done
  printf '\n'
  row "keep-alive requests/s" ka.rps
  row "keep-alive p50 ms" ka.p50
  row "keep-alive p99 ms" ka.p99
  row "keep-alive balancer CPU s" ka.cpu
  row "  of which kernel workers" ka.kcpu
  row "keep-alive balancer sys %" ka.sys
  row "keep-alive requests/balancer CPU-s" ka.percpu
  row "keep-alive backend CPU s" ka.bcpu
  row "close new connections/s" close.rps
  row "close balancer CPU s" close.cpu
  row "  of which kernel workers" close.kcpu
  row "close connections/balancer CPU-s" close.percpu
  row "bulk 1 MiB Gbit/s" bulk.gbps
  row "bulk balancer CPU s" bulk.cpu
  row "  of which kernel workers" bulk.kcpu
  row "bulk Gbit/balancer CPU-s" bulk.gbpercpu
  row "wrk errors (ka/close/bulk)" errs
  row "other processes' CPU, % of machine" other
  row "idle, connect only: held/asked" n.connect
  row "  RSS KiB per connection" mem.connect
  row "  fds per connection" fd.connect
  row "idle, after 1 request: held/asked" n.request
  row "  RSS KiB per connection" mem.request
  row "  fds per connection" fd.request
  echo
  echo "targets (rvs, ratios from this run):"
  r1=$(ratio "${M[ka.percpu,rvs]:--}" "${M[ka.percpu,haproxy]:--}")
  r2=$(ratio "${M[close.rps,rvs]:--}" "${M[close.rps,haproxy]:--}")
  r3=$(ratio "${M[bulk.gbps,rvs]:--}" "${M[bulk.gbps,direct]:--}")
  m4=${M[mem.request,rvs]:--}
  m5=${M[mem.connect,rvs]:--}
  printf '  %-58s %6s  %s\n' "requests per balancer CPU-s vs HAProxy   (>= 1.20x)" "${r1}x" "$(verdict "$r1" '>=' 1.2)"
  printf '  %-58s %6s  %s\n' "new connections/s vs HAProxy             (>= 1.00x)" "${r2}x" "$(verdict "$r2" '>=' 1.0)"
  printf '  %-58s %6s  %s\n' "bulk Gbit/s vs direct                    (>= 0.90x)" "${r3}x" "$(verdict "$r3" '>=' 0.9)"
  p1=$(ratio "${M[ka.percpu,rvs]:--}" "${M[ka.percpu,pen]:--}")
  p2=$(ratio "${M[close.percpu,rvs]:--}" "${M[close.percpu,pen]:--}")
  p3=$(ratio "${M[close.rps,rvs]:--}" "${M[close.rps,pen]:--}")
  printf '  %-58s %6s\n' "requests per balancer CPU-s vs pen        (info)" "${p1}x"
  printf '  %-58s %6s\n' "new connections per balancer CPU-s vs pen (info)" "${p2}x"
  printf '  %-58s %6s\n' "new connections/s vs pen                  (info)" "${p3}x"
  printf '  %-58s %6s  %s\n' "RSS per idle conn, after 1 request, KiB  (<= 8)" "$m4" "$(verdict "$m4" '<=' 8)"
  printf '  %-58s %6s  %s\n' "RSS per idle conn, connect only, KiB     (<= 8)" "$m5" "$(verdict "$m5" '<=' 8)"
  echo "  ceilings on this machine (median of the rounds; how they are computed: bench/run.sh --help):"
  printf '  %-58s %6s\n' "  requests per CPU-s if rvsd's own code took no time" "${M[ceil.ka,rvs]:--}x"
  printf '  %-58s %6s\n' "  bulk Gbit/s vs direct, at rvs's CPU per Gbit" "${M[ceil.bulk,rvs]:--}x"
  printf '  %-58s %6s\n' "  bulk Gbit/s vs direct, at HAProxy's CPU per Gbit" "${M[ceil.bulk,haproxy]:--}x"
  if ((N_IDLE == 0)); then
    echo "  note: the idle tests were skipped (BENCH_IDLE=0)"
  elif ((N_IDLE < 10000)); then
    echo "  note: the idle tests asked for $N_IDLE connections, not 10,000 ($IDLE_WANT wanted; the"
    echo "        open-files hard limit is $NOFILE and a proxied connection needs 2 fds at least)"
  fi
  echo "  held = connections the backends saw established through the balancer; the per-connection"
  echo "  figures divide by it"

  # ---- Layer 7
  HCOLS=(direct "${HTTP_BALANCERS[@]}")
  hrow() { # hrow LABEL METRIC [DIRECT_METRIC]: direct's cell is the L4 keep-alive run's
    local b k
    printf '%-34s' "$1"
    for b in "${HCOLS[@]}"; do
      k=$2
      [[ $b == direct ]] && k=${3:-$2}
      printf ' %12s' "${M[$k,$b]:--}"
    done
    printf '\n'
  }
  echo
  echo "http (Layer 7), same backends, same rounds: rvs = $L7_DESC, scheduler rr;"
  echo "haproxy mode http, http-keep-alive, http-reuse always, roundrobin; nginx proxy_pass to an upstream"
  echo "with keepalive 64, HTTP/1.1, Connection \"\"; each adds X-Forwarded-For and -Proto, $THREADS thread(s)"
  echo "wrk -t1 -c$KA_CONNS keep-alive GET / (64-byte body), ${DUR}s per run, median of $ROUNDS round(s);"
  echo "direct = the L4 section's keep-alive runs"
  echo
  printf '%-34s' "metric"
  if [[ $L7_IMPL == rvsd ]]; then rvs_col=rvs; else rvs_col="rvs(l7bench)"; fi
  printf ' %12s %12s %12s %12s\n' direct "$rvs_col" haproxy nginx
  hrow "keep-alive requests/s" ka.rps
  hrow "keep-alive p50 ms" ka.p50
  hrow "keep-alive p99 ms" ka.p99
  hrow "keep-alive balancer CPU s" ka.cpu
  hrow "  of which kernel workers" ka.kcpu
  hrow "keep-alive balancer sys %" ka.sys
  hrow "keep-alive requests/balancer CPU-s" ka.percpu
  hrow "keep-alive backend CPU s" ka.bcpu
  hrow "new backend connections per run" ka.upconn
  hrow "wrk errors" ka.err
  hrow "other processes' CPU, % of machine" other ka.other
  echo
  echo "targets (rvs http, ratios from this run):"
  h1=$(ratio "${M[ka.percpu,rvs-http]:--}" "${M[ka.percpu,haproxy-http]:--}")
  h2=$(ratio "${M[ka.rps,rvs-http]:--}" "${M[ka.rps,haproxy-http]:--}")
  h3=$(ratio "${M[ka.p99,rvs-http]:--}" "${M[ka.p99,haproxy-http]:--}")
  printf '  %-58s %6s  %s\n' "http requests per balancer CPU-s vs HAProxy (>= 1.20x)" "${h1}x" "$(verdict "$h1" '>=' 1.2)"
  printf '  %-58s %6s\n' "  ceiling: if rvsd's own code took no time" "${M[ceil.http,rvs-http]:--}x"
  printf '  %-58s %6s\n' "http keep-alive requests/s vs HAProxy (info)" "${h2}x"
  printf '  %-58s %6s\n' "http keep-alive p99 vs HAProxy (info; lower is better)" "${h3}x"
} | tee "$W/table.txt"

if [[ $NETNS == 1 || $XDP == 1 ]]; then
  for b in "${BALANCERS[@]}"; do stop_bal "$b"; done
  stop_pid "$BACKEND_PID"
fi
if [[ $NETNS == 1 ]]; then
  netns_bench && netns_table | tee "$W/table-netns.txt"
fi
if [[ $XDP == 1 ]]; then
  xdp_bench
fi
