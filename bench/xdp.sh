#!/usr/bin/env bash
# bench/xdp.sh: rvs's packet engine (XDP: gate, masq, tunnel) beside kernel forwarding, nftables
# DNAT, HAProxy and rvs's full-NAT proxy, in network namespaces laid out as LVS users do. One
# run, one table.
#
#   bench/xdp.sh                       1 round of 10 s per test (about 4 minutes)
#   XDP_BENCH_SECS=3 bench/xdp.sh      short runs
#   BENCH_XDP=only bench/run.sh        the same, from bench/run.sh (BENCH_XDP=1: after its runs)
#
# Layout: one layer-2 segment (a bridge in its own namespace), 198.18.0.0/24:
#
#   client 198.18.0.2 ---+
#   director 198.18.0.1 -+-- [br0] --+-- rs1 198.18.0.11 (nginx, 1 worker, *:80)
#                                    +-- rs2 198.18.0.12 (nginx, 1 worker, *:80)
#   VIPs 198.18.1.10-15:80, one per run; the client routes 198.18.1.0/24 through the director.
#
# Runs (each: wrk keep-alive, then wrk -H 'Connection: close'; same threads, connections and
# duration for all):
#   baseline  the client straight to rs1 (no director)
#   route     the client to rs1 through the director, which only routes (ip_forward; rs1 routes
#             the client back through it as well)
#   gate      rvsd's packet engine, direct routing: the real servers hold the VIP on lo
#             (`rvsd real-server dr`) and answer the client directly
#   masq      rvsd's packet engine, NAT: the real servers route the client back through the director
#   tunnel    rvsd's packet engine, IP-in-IP: the real servers decapsulate with rvs's XDP program
#             (`rvsd real-server tunnel --interface eth0`) and answer the client directly
#   nft       nftables DNAT in the director, `numgen inc mod 2` over rs1 and rs2; the real
#             servers route the client back through the director
#   haproxy   HAProxy mode tcp, roundrobin, splice-auto, on the director's VIP
#   fullnat   rvsd's full-NAT proxy (method fullnat, relay BENCH_RELAY) on the director's VIP
# gate, masq and tunnel are skipped with a "not available" row when the rvsd binary does not
# take a [packet_engine] section (rvsd --check-config), has no `real-server dr`/`tunnel`
# command, or its engine does not attach (GET /v1/info: packet_engine.attached).
# The director's leg has an XDP_PASS program on its veth peer (a veth drops the frames an XDP
# program sends with XDP_TX or redirects unless its peer runs XDP too): rvs's rvs_xdp_pass
# (crates/rvs-bpf/bpf/xdp_decap.bpf.o) when it is there, else one compiled here with clang.
# It stays attached for every run, so each director run crosses the same path.
#
# Per run: requests/s, p99 (wrk --latency), the whole machine's CPU per request (/proc/stat:
# user+nice+system+irq+softirq, all CPUs, over the wrk run) and the director's own cost = that
# minus the baseline's of the same round, in us per request; the Connection: close requests/s
# relative to the baseline's (new connections/s); the real servers' split of the new connections
# (nginx stub_status). Cells are medians over the rounds. Then, when available, ns per packet of
# the XDP program through BPF_PROG_TEST_RUN (rvs-bpf's example xdp_ns_per_packet) and the packet
# engine's kernel memory per tracked connection (GET /v1/info: packet_engine.table_bytes /
# packet_engine.capacity), and the targets beside the figures (reported, never failed on).
#
# Environment: XDP_BENCH_SECS (10), XDP_BENCH_ROUNDS (1), XDP_BENCH_CONNS (64 wrk connections),
# XDP_BENCH_THREADS (1 wrk thread), XDP_BENCH_BAL_THREADS (1: HAProxy nbthread, rvsd's
# TOKIO_WORKER_THREADS), XDP_BENCH_RUNS (the runs, in order: "baseline route gate masq tunnel
# nft haproxy fullnat"; baseline is always added), XDP_BENCH_DIR (/tmp/rvs-xdp-bench: configs,
# logs, wrk outputs), XDP_NETNS_PREFIX (rvsx<PID>), XDP_MODE (native), BENCH_RELAY (splice),
# RVSD_BIN (this rvsd, else target/release/rvsd, built when missing), XDP_NS_BIN (a built
# xdp_ns_per_packet, else `cargo run --release -p rvs-bpf --example xdp_ns_per_packet` when the
# example exists; XDP_NS=0 skips it).
# Traffic stays inside the namespaces this script creates (198.18.0.0/15) and on their loopbacks;
# every load is wrk -d bounded by timeout. On exit (error and ctrl-c too) every process started
# is stopped by PID, the real servers' set-up undone (rvsd real-server ... --remove, and their
# pins and state files for these namespaces removed), and the namespaces deleted with their links
# and XDP programs; the root namespace is never changed.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# shellcheck source=bench/configs.sh
. "$BENCH/configs.sh"
# shellcheck source=bench/procs.sh
. "$BENCH/procs.sh"

case ${1:-} in
  -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 (settings in the environment: $0 --help)" >&2; exit 2 ;;
esac

SECS=${XDP_BENCH_SECS:-10}
ROUNDS=${XDP_BENCH_ROUNDS:-1}
CONNS=${XDP_BENCH_CONNS:-64}
WRK_THREADS=${XDP_BENCH_THREADS:-1}
BAL_THREADS=${XDP_BENCH_BAL_THREADS:-1}
W=${XDP_BENCH_DIR:-/tmp/rvs-xdp-bench}
PREFIX=${XDP_NETNS_PREFIX:-rvsx$$}
XDP_MODE=${XDP_MODE:-native}
RELAY=${BENCH_RELAY:-splice}
ALL_RUNS=(baseline route gate masq tunnel nft haproxy fullnat)
read -r -a RUNS <<<"${XDP_BENCH_RUNS:-${ALL_RUNS[*]}}"
for x in SECS ROUNDS CONNS WRK_THREADS BAL_THREADS; do
  [[ ${!x} =~ ^[1-9][0-9]*$ ]] || { echo "bench/xdp.sh: $x must be a positive integer" >&2; exit 2; }
done
((SECS <= 120)) || { echo "bench/xdp.sh: XDP_BENCH_SECS is at most 120" >&2; exit 2; }
for r in "${RUNS[@]}"; do
  [[ " ${ALL_RUNS[*]} " == *" $r "* ]] || { echo "bench/xdp.sh: unknown run '$r' (${ALL_RUNS[*]})" >&2; exit 2; }
done
[[ " ${RUNS[*]} " == *" baseline "* ]] || RUNS=(baseline "${RUNS[@]}")

# addresses: all in 198.18.0.0/15, all inside the namespaces
NET=198.18.0
DIR_ADDR=$NET.1
CLI_ADDR=$NET.2
RS_ADDR=("$NET.11" "$NET.12")
# one VIP per run: a listener on a VIP:port would fail (EADDRINUSE) while the TIME_WAITs the
# previous run's proxy left on it last; 198.18.1.0/24 is routed through the director
declare -A VIPS=([gate]=198.18.1.10 [masq]=198.18.1.11 [tunnel]=198.18.1.12 [nft]=198.18.1.13
  [haproxy]=198.18.1.14 [fullnat]=198.18.1.15)
VIP_NET=198.18.1.0/24
PORT=80
BODY='hello from an rvs bench backend: 64 bytes of body, padded to 64'
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

NS_CLI=$PREFIX-cli NS_DIR=$PREFIX-dir NS_SW=$PREFIX-sw
NS_RS=("$PREFIX-rs1" "$PREFIX-rs2")
ALL_NS=("$NS_CLI" "$NS_DIR" "$NS_SW" "${NS_RS[@]}")

log() { printf '[xdp %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
num() { [[ $1 =~ ^-?[0-9]+([.][0-9]+)?$ ]]; }
median() { # median VALUE...: of the numeric values ("-" when none); negative ones too
  local v=() x
  for x in "$@"; do num "$x" && v+=("$x"); done
  ((${#v[@]})) || { echo -; return; }
  printf '%s\n' "${v[@]}" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
first_words() { # first_words FILE: its first 120 characters on one line (nothing when it is empty)
  { head -c 120 "$1" 2>/dev/null || true; } | tr '\n' ' '
}
rounded() { # rounded VALUE DECIMALS: VALUE to DECIMALS places ("-" stays)
  if num "$1"; then calc "$1" "$2"; else echo "$1"; fi
}
ratio() { # ratio A B: A/B to 2 places, or -
  num "$1" && num "$2" && awk "BEGIN { if ($2 != 0) printf \"%.2f\", $1 / $2; else print \"-\" }" || echo -
}

# ---------------------------------------------------------------- bookkeeping and cleanup
STARTED=()     # every background process this script started
NS_MADE=()     # the namespaces this script created
declare -A RS_SETUP=()   # real server index -> "dr" or "tunnel" while rvsd real-server set it up
declare -A NS_INO=()     # namespace -> its inode (the id rvsd real-server names its state by)


# in_ns NS CMD...: CMD in namespace NS, in the foreground (a function: started with & it would be a
# subshell, and $! its PID, not the command's; background commands use ip netns exec directly)
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# rvsd real-server runs with only the network namespace switched (nsenter), not through `ip
# netns exec`: that one gives its command a private mount namespace with a fresh /sys, where
# /sys/fs/bpf is no bpf filesystem, and the decapsulation program's pins (what keeps it
# attached after the command) would vanish with that mount namespace when the command exits.
rs_cmd() { local i=$1; shift; nsenter --net="/run/netns/${NS_RS[$i]}" "$RVSD" real-server "$@"; }

rs_undo() { # rs_undo INDEX: undo what rvsd real-server set up on real server INDEX
  local i=$1
  case ${RS_SETUP[$i]:-} in
    dr) rs_cmd "$i" dr --vip "${VIPS[gate]}" --remove >>"$W/real-server.log" 2>&1 || log "rs$((i + 1)): rvsd real-server dr --remove failed (see $W/real-server.log)" ;;
    tunnel) rs_cmd "$i" tunnel --vip "${VIPS[tunnel]}" --interface eth0 --remove >>"$W/real-server.log" 2>&1 ||
      log "rs$((i + 1)): rvsd real-server tunnel --remove failed (see $W/real-server.log)" ;;
  esac
  unset "RS_SETUP[$i]"
}

cleanup() {
  local rc=$? i ns p left ino
  trap - EXIT INT TERM
  ((rc == 0)) || log "exiting on an error or a signal (status $rc): cleaning up"
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_pid "${STARTED[$i]}"; done
  for i in "${!NS_RS[@]}"; do [[ -n ${RS_SETUP[$i]:-} && -e /run/netns/${NS_RS[$i]} ]] && rs_undo "$i"; done
  for ns in "${NS_MADE[@]}"; do
    netns_delete "$ns" || log "could not delete namespace $ns"
  done
  # whatever rvsd real-server left behind for these namespaces (named by the namespace's inode)
  for ns in "${!NS_INO[@]}"; do
    ino=${NS_INO[$ns]}
    [[ -d /sys/fs/bpf/rvs/decap-netns-$ino ]] && rm -rf "/sys/fs/bpf/rvs/decap-netns-$ino"
    [[ -f /run/rvs/real-server-netns-$ino.json ]] && rm -f "/run/rvs/real-server-netns-$ino.json"
  done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
need=()
for t in wrk haproxy nginx nft curl python3 nsenter ethtool; do
  command -v "$t" >/dev/null || case $t in nft) need+=(nftables) ;; nsenter) need+=(util-linux) ;; *) need+=("$t") ;; esac
done
apt_install "${need[@]}"
if [[ -n ${RVSD_BIN:-} ]]; then
  RVSD=$RVSD_BIN
else
  RVSD=${CARGO_TARGET_DIR:-$ROOT/target}/release/rvsd
  if [[ ! -x $RVSD ]]; then
    log "building rvsd (cargo build --release -p rvsd)"
    (cd "$ROOT" && cargo build --release -p rvsd --quiet) || die "cargo build failed"
  fi
fi
[[ -x $RVSD ]] || die "no rvsd binary at $RVSD"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
((NOFILE > 1048576)) && NOFILE=1048576

if [[ -e $W && ! -e $W/.rvs-xdp-bench && -n $(ls -A "$W" 2>/dev/null) ]]; then
  die "$W exists and is not an rvs xdp bench directory; set XDP_BENCH_DIR"
fi
rm -rf "$W"
mkdir -p "$W/www" "$W/xdp"
touch "$W/.rvs-xdp-bench"

# ---------------------------------------------------------------- what this rvsd can do
declare -A NOTE=()   # run -> why it was not measured
rvsd_toml() { # rvsd_toml FILE METHOD: rvsd with one rr service on the VIP over rs1 and rs2
  local file=$1 method=$2 i
  {
    echo "[api]"
    echo "socket = \"$W/api-$method.sock\""
    if [[ $method == fullnat ]]; then
      printf '[director]\nrelay = "%s"\ndrain_timeout_secs = 1\n' "$RELAY"
    else
      printf '[packet_engine]\ninterfaces = ["eth0"]\nxdp_mode = "%s"\nconnections = 1048576\n' "$XDP_MODE"
    fi
    printf '[[service]]\nprotocol = "tcp"\naddress = "%s:%s"\nscheduler = "rr"\n' "${VIPS[$method]}" "$PORT"
    for i in "${!RS_ADDR[@]}"; do
      printf '  [[service.real_server]]\n  address = "%s:%s"\n  method = "%s"\n' "${RS_ADDR[$i]}" "$PORT" "$method"
    done
  } >"$file"
}
for m in gate masq tunnel fullnat; do
  rvsd_toml "$W/rvsd-$m.toml" "$m"
  if ! "$RVSD" --check-config "$W/rvsd-$m.toml" >"$W/check-$m.txt" 2>&1; then
    if [[ $m == fullnat ]]; then
      # an rvsd older than the method key: its services are all full-NAT
      sed -i '/method = "fullnat"/d' "$W/rvsd-$m.toml"
      "$RVSD" --check-config "$W/rvsd-$m.toml" >"$W/check-$m.txt" 2>&1 ||
        NOTE[$m]="not available: rvsd --check-config rejects the config ($(first_words "$W/check-$m.txt"))"
    else
      NOTE[$m]="not available: rvsd --check-config rejects [packet_engine]/method $m ($(first_words "$W/check-$m.txt"))"
    fi
  fi
done
"$RVSD" real-server --help >"$W/real-server-help.txt" 2>&1 || true
for m in gate tunnel; do
  sub=dr; [[ $m == tunnel ]] && sub=tunnel
  if [[ -z ${NOTE[$m]:-} ]] && ! "$RVSD" real-server "$sub" --help >/dev/null 2>&1; then
    NOTE[$m]="not available: this rvsd has no 'rvsd real-server $sub'"
  fi
done

engine_note() { # engine_note TEXT: the packet engine's runs are not measured, for this reason (the first given)
  local m
  for m in gate masq tunnel; do [[ -n ${NOTE[$m]:-} ]] || NOTE[$m]=$1; done
}

# the XDP_PASS program for the director's veth peer
XDP_PASS_OBJ=$ROOT/crates/rvs-bpf/bpf/xdp_decap.bpf.o XDP_PASS_PROG=rvs_xdp_pass
if [[ ! -f $XDP_PASS_OBJ ]]; then
  XDP_PASS_OBJ=$W/xdp/xdp_pass.bpf.o XDP_PASS_PROG=xdp_pass
  command -v clang >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y clang >/dev/null 2>&1 || true
  cat >"$W/xdp/xdp_pass.bpf.c" <<'EOF'
#include <linux/bpf.h>
__attribute__((section("xdp"), used)) int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] __attribute__((section("license"), used)) = "GPL";
EOF
  if ! clang -O2 -g -target bpf -I/usr/include/"$(uname -m)"-linux-gnu -c "$W/xdp/xdp_pass.bpf.c" -o "$XDP_PASS_OBJ" 2>"$W/xdp/clang.log"; then
    XDP_PASS_OBJ=
    engine_note "not available: no XDP_PASS program for the veth peer of the director (clang failed: $W/xdp/clang.log)"
  fi
fi

# ---------------------------------------------------------------- the namespaces
ns_setup() {
  local i ns
  for ns in "${ALL_NS[@]}"; do [[ -e /run/netns/$ns ]] && die "namespace $ns exists already"; done
  for ns in "${ALL_NS[@]}"; do
    ip netns add "$ns" || die "ip netns add $ns"
    NS_MADE+=("$ns")
    NS_INO[$ns]=$(stat -L -c %i "/run/netns/$ns")
    ip -n "$ns" link set lo up
  done
  ip -n "$NS_SW" link add br0 type bridge
  # a switch forwards frames, it does not filter them: no netfilter on bridged traffic (the
  # kernel's br_netfilter would run iptables hooks on every frame crossing br0)
  in_ns "$NS_SW" sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 \
    net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
  ip -n "$NS_SW" link set br0 up
  # one veth per host, its peer a port of the bridge: pc (client), pd (director), p1, p2
  ip -n "$NS_CLI" link add eth0 type veth peer name pc netns "$NS_SW"
  ip -n "$NS_DIR" link add eth0 type veth peer name pd netns "$NS_SW"
  for i in "${!NS_RS[@]}"; do ip -n "${NS_RS[$i]}" link add eth0 type veth peer name "p$((i + 1))" netns "$NS_SW"; done
  for p in pc pd p1 p2; do ip -n "$NS_SW" link set "$p" master br0 up; done
  ip -n "$NS_CLI" addr add "$CLI_ADDR/24" dev eth0
  ip -n "$NS_DIR" addr add "$DIR_ADDR/24" dev eth0
  for i in "${!NS_RS[@]}"; do ip -n "${NS_RS[$i]}" addr add "${RS_ADDR[$i]}/24" dev eth0; done
  for ns in "$NS_CLI" "$NS_DIR" "${NS_RS[@]}"; do ip -n "$ns" link set eth0 up; done
  # A veth passes unfinished (offloaded) checksums along as metadata, which a frame forwarded
  # in XDP loses (a NIC finishes them on the wire): the hosts compute their own, in every run
  # alike, so the baseline pays the same.
  for ns in "$NS_CLI" "${NS_RS[@]}"; do
    in_ns "$ns" ethtool -K eth0 tx off >/dev/null || { echo "xdp.sh: ethtool -K eth0 tx off failed in $ns" >&2; return 1; }
  done
  # the client reaches the VIPs through the director
  ip -n "$NS_CLI" route add "$VIP_NET" via "$DIR_ADDR" dev eth0
  in_ns "$NS_DIR" sysctl -qw net.ipv4.ip_forward=1
  for ns in "${ALL_NS[@]}"; do
    # the director forwards out of the interface a packet came in on (route, nft): no ICMP
    # redirects sent, none taken; no reverse-path filter (gate's replies come from the VIP)
    in_ns "$ns" sysctl -qw net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
      net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.default.accept_redirects=0 \
      net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 >/dev/null
    [[ $ns == "$NS_SW" ]] || in_ns "$ns" sysctl -qw net.ipv4.conf.eth0.send_redirects=0 \
      net.ipv4.conf.eth0.accept_redirects=0 net.ipv4.conf.eth0.rp_filter=0 >/dev/null
    # as bench/netns.sh: TIME_WAIT ports reusable on a veth, a wide port range, deep backlogs
    in_ns "$ns" sysctl -qw net.core.somaxconn=4096 2>/dev/null || true
    in_ns "$ns" sysctl -qw net.ipv4.tcp_tw_reuse=1 2>/dev/null || true
    in_ns "$ns" sysctl -qw net.ipv4.ip_local_port_range="10240 65535" 2>/dev/null || true
  done
  # the director's leg: an XDP program on its veth peer, so XDP_TX'd frames are received
  if [[ -n $XDP_PASS_OBJ ]]; then
    if ! ip -n "$NS_SW" link set dev pd xdpdrv object "$XDP_PASS_OBJ" program "$XDP_PASS_PROG" 2>"$W/xdp/attach.log"; then
      engine_note "not available: could not attach XDP_PASS to the veth peer of the director ($W/xdp/attach.log)"
    fi
  fi
  # neighbours learnt both ways, and every host reachable (bounded, 2 s each: a TCP connect to a
  # closed port; refused = reachable, a timeout = not)
  local from to
  for from in "$NS_DIR" "$NS_CLI"; do
    for to in "${RS_ADDR[@]}" "$([[ $from == "$NS_CLI" ]] && echo "$DIR_ADDR")"; do
      [[ -n $to ]] || continue
      timeout 2 ip netns exec "$from" bash -c "exec 3<>/dev/tcp/$to/9" 2>/dev/null && true
      (($? != 124)) || die "$to does not answer from namespace $from"
    done
  done
}

wait_http() { # wait_http HOST: GET / from the client answers the body (bounded: 10 s)
  local i
  for ((i = 0; i < 50; i++)); do
    [[ $(in_ns "$NS_CLI" curl -s --max-time 1 "http://$1:$PORT/" 2>/dev/null) == "$BODY" ]] && return 0
    sleep 0.2
  done
  return 1
}

RS_PIDS=()
start_real_servers() {
  local i d
  for i in "${!NS_RS[@]}"; do
    d=$W/rs$((i + 1))
    bench_backend_nginx_conf "$d" "$W/www" "$BODY" "$NOFILE" "$PORT" # *:80: its address and the VIP
    ip netns exec "${NS_RS[$i]}" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" &
    STARTED+=("$!") RS_PIDS+=("$!")
  done
  for i in "${!RS_ADDR[@]}"; do wait_http "${RS_ADDR[$i]}" || die "real server ${RS_ADDR[$i]} did not come up"; done
}

rs_accepts() { # new connections real server INDEX has accepted so far (nginx stub_status)
  in_ns "${NS_RS[$1]}" curl -s --max-time 2 "http://127.0.0.1:$PORT/bench-status" 2>/dev/null | awk 'NR == 3 { print $1 }'
}

# ---------------------------------------------------------------- each run's set-up
tw_drain() { # tw_drain RUN: wait (up to 70 s) while sockets left on the director's VIP (an earlier
  # round's TIME_WAITs, FIN_WAITs of a stopped proxy) would make a listener's bind fail
  local i n=0
  for ((i = 0; i < 70; i++)); do
    n=$(in_ns "$NS_DIR" ss -Htan src "${VIPS[$1]}" 2>/dev/null | grep -vc '^LISTEN' || true)
    ((n == 0)) && return 0
    ((i == 0)) && log "$1: waiting for $n sockets left on ${VIPS[$1]} ($(in_ns "$NS_DIR" ss -Htan src "${VIPS[$1]}" |
      awk '{ c[$1]++ } END { for (s in c) printf "%s %d ", s, c[s] }')) to go"
    ((i == 0)) && log "listeners on it: $(in_ns "$NS_DIR" ss -Htlnp src "${VIPS[$1]}" | tr "\n" " ")"
    sleep 1
  done
}

target() { # target RUN: the address wrk asks
  case $1 in baseline | route) echo "${RS_ADDR[0]}" ;; *) echo "${VIPS[$1]}" ;; esac
}

CUR_PID=
rs_route_back() { # rs_route_back on|off: the real servers reach the client through the director
  local i
  for i in "${!NS_RS[@]}"; do
    if [[ $1 == on ]]; then
      ip -n "${NS_RS[$i]}" route replace "$CLI_ADDR/32" via "$DIR_ADDR" dev eth0
    else
      ip -n "${NS_RS[$i]}" route del "$CLI_ADDR/32" 2>/dev/null || true
    fi
  done
}

start_rvsd() { # start_rvsd METHOD: rvsd in the director; packet engine: check it attached
  local m=$1 i info
  : >"$W/rvsd-$m.out"
  RVSD_LOG=${RVSD_LOG:-warn} TOKIO_WORKER_THREADS=$BAL_THREADS ip netns exec "$NS_DIR" "$RVSD" --config "$W/rvsd-$m.toml" \
    >>"$W/rvsd-$m.out" 2>>"$W/rvsd-$m.err" &
  CUR_PID=$!
  STARTED+=("$CUR_PID")
  for ((i = 0; i < 100; i++)); do
    grep -q 'rvsd ready' "$W/rvsd-$m.out" 2>/dev/null && break
    ours "$CUR_PID" || { NOTE[$m]="not available: rvsd exited at start ($(tail -n1 "$W/rvsd-$m.err" 2>/dev/null | head -c 120 || true))"; return 1; }
    sleep 0.1
  done
  [[ $m == fullnat ]] && return 0
  info=$(curl -s --max-time 2 --unix-socket "$W/api-$m.sock" http://rvsd/v1/info 2>/dev/null || true)
  echo "$info" >"$W/info-$m.json"
  if ! python3 -c 'import json,sys; sys.exit(0 if (json.loads(sys.argv[1]).get("packet_engine") or {}).get("attached") else 1)' \
    "$info" 2>/dev/null; then
    NOTE[$m]="not available: rvsd's packet engine did not attach (GET /v1/info: $W/info-$m.json)"
    return 1
  fi
  [[ -n ${ENGINE_INFO:-} ]] || ENGINE_INFO=$info
}

setup_run() { # setup_run RUN: everything the run needs; false (and NOTE[RUN]) when it cannot run
  local run=$1 i sub
  CUR_PID=
  case $run in
    baseline) ;;
    route)
      ip -n "$NS_CLI" route replace "${RS_ADDR[0]}/32" via "$DIR_ADDR" dev eth0
      ip -n "${NS_RS[0]}" route replace "$CLI_ADDR/32" via "$DIR_ADDR" dev eth0
      ;;
    gate | tunnel)
      sub=dr; [[ $run == tunnel ]] && sub=tunnel
      for i in "${!NS_RS[@]}"; do
        if [[ $run == gate ]]; then
          rs_cmd "$i" dr --vip "${VIPS[gate]}" >>"$W/real-server.log" 2>&1 || { NOTE[$run]="not available: rvsd real-server dr failed ($W/real-server.log)"; return 1; }
        else
          rs_cmd "$i" tunnel --vip "${VIPS[tunnel]}" --interface eth0 --xdp-mode "$XDP_MODE" >>"$W/real-server.log" 2>&1 ||
            { NOTE[$run]="not available: rvsd real-server tunnel failed ($W/real-server.log)"; RS_SETUP[$i]=tunnel; return 1; }
        fi
        RS_SETUP[$i]=$sub
      done
      start_rvsd "$run" || return 1
      ;;
    masq)
      rs_route_back on
      start_rvsd masq || return 1
      ;;
    nft)
      cat >"$W/nft.conf" <<EOF
table ip rvs_xdp_bench {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${VIPS[nft]} tcp dport $PORT dnat to numgen inc mod 2 map { 0 : ${RS_ADDR[0]}, 1 : ${RS_ADDR[1]} }
  }
}
EOF
      in_ns "$NS_DIR" nft -f "$W/nft.conf" 2>"$W/nft.err" || { NOTE[$run]="not available: nft -f failed ($(first_words "$W/nft.err"))"; return 1; }
      rs_route_back on
      ;;
    haproxy)
      ip -n "$NS_DIR" addr add "${VIPS[haproxy]}/32" dev lo
      tw_drain haproxy
      bench_haproxy_tcp_cfg "$W/haproxy.cfg" "$BAL_THREADS" \
        $(((NOFILE - 400 - 512) / 2 < 100000 ? (NOFILE - 400 - 512) / 2 : 100000)) "${VIPS[haproxy]}:$PORT" \
        "${RS_ADDR[0]}:$PORT" "${RS_ADDR[1]}:$PORT"
      ip netns exec "$NS_DIR" haproxy -db -f "$W/haproxy.cfg" >>"$W/haproxy.log" 2>&1 &
      CUR_PID=$!
      STARTED+=("$CUR_PID")
      ;;
    fullnat)
      ip -n "$NS_DIR" addr add "${VIPS[fullnat]}/32" dev lo
      tw_drain fullnat
      start_rvsd fullnat || return 1
      ;;
  esac
  local host
  host=$(target "$run")
  wait_http "$host" || { NOTE[$run]=${NOTE[$run]:-"failed: GET http://$host/ from the client did not answer (logs in $W)"}; return 1; }
}

teardown_run() { # teardown_run RUN: undo setup_run (also after a failed one)
  local run=$1 i
  [[ -n $CUR_PID ]] && stop_pid "$CUR_PID"
  CUR_PID=
  case $run in
    route)
      ip -n "$NS_CLI" route del "${RS_ADDR[0]}/32" 2>/dev/null || true
      ip -n "${NS_RS[0]}" route del "$CLI_ADDR/32" 2>/dev/null || true
      ;;
    gate | tunnel) for i in "${!NS_RS[@]}"; do rs_undo "$i"; done ;;
    masq) rs_route_back off ;;
    nft)
      rs_route_back off
      in_ns "$NS_DIR" nft delete table ip rvs_xdp_bench 2>/dev/null || true
      ;;
    haproxy | fullnat) ip -n "$NS_DIR" addr del "${VIPS[$run]}/32" dev lo 2>/dev/null || true ;;
  esac
  # the director's XDP program goes with rvsd; say so if it stayed
  if [[ $run =~ ^(gate|masq|tunnel)$ ]] && ip -n "$NS_DIR" link show eth0 | grep -q 'prog/xdp'; then
    log "$run: an XDP program is still attached to the director's eth0 after rvsd stopped"
  fi
}

# ---------------------------------------------------------------- measuring
declare -A R=() M=()   # R[metric,run,round], M[metric,run] (medians)
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

measure() { # measure RUN TEST ROUND: one bounded wrk run from the client
  local run=$1 t=$2 r=$3 host args=(-t"$WRK_THREADS" -c"$CONNS") out m0 m1 line a0=() a1=() i
  host=$(target "$run")
  [[ $t == close ]] && args+=(-H 'Connection: close')
  out=$W/wrk-$run-$t-r$r.txt
  [[ -z $CUR_PID ]] || ours "$CUR_PID" || { log "$run: the balancer is not running any more (logs in $W)"; return 0; }
  for i in "${!NS_RS[@]}"; do a0+=("$(rs_accepts "$i")"); done
  m0=$(machine_ticks)
  timeout $((SECS + 20)) ip netns exec "$NS_CLI" wrk "${args[@]}" -d"${SECS}s" --timeout 5s --latency \
    -s "$BENCH/report.lua" "http://$host:$PORT/" >"$out" 2>&1 || log "wrk $run $t exited with an error (see $out)"
  m1=$(machine_ticks)
  for i in "${!NS_RS[@]}"; do a1+=("$(rs_accepts "$i")"); done
  line=$(grep '^RESULT ' "$out" || true)
  [[ -n $line ]] || { log "no result from wrk $run $t (see $out)"; return 0; }
  local requests=0 duration=1 p99=0 errs=0 kv k v secs
  for kv in ${line#RESULT }; do
    k=${kv%%=*} v=${kv#*=}
    case $k in requests) requests=$v ;; duration_us) duration=$v ;; p99_us) p99=$v ;; err_*) errs=$((errs + v)) ;; esac
  done
  ((requests > 0)) || { log "wrk $run $t: no requests (see $out)"; return 0; }
  secs=$(calc "$duration / 1e6" 3)
  R[$t.rps,$run,$r]=$(calc "$requests / $secs" 0)
  R[$t.p99,$run,$r]=$(calc "$p99 / 1000" 2)
  R[$t.us,$run,$r]=$(calc "($m1 - $m0) / $HZ * 1e6 / $requests" 1)
  R[$t.err,$run,$r]=$errs
  if num "${a0[0]:-}" && num "${a0[1]:-}" && num "${a1[0]:-}" && num "${a1[1]:-}"; then
    local n1=$((a1[0] - a0[0] - 1)) n2=$((a1[1] - a0[1] - 1)) # minus the stub_status request itself
    ((n1 < 0)) && n1=0
    ((n2 < 0)) && n2=0
    ((n1 + n2 > 0)) && R[$t.split,$run,$r]="$((n1 * 100 / (n1 + n2)))/$((100 - n1 * 100 / (n1 + n2)))"
  fi
  log "$(printf 'r%d %-8s %-5s %8s req/s  p99 %6s ms  machine %6s us/req  rs1/rs2 new conns %s%%  errors %s' "$r" "$run" "$t" \
    "${R[$t.rps,$run,$r]}" "${R[$t.p99,$run,$r]}" "${R[$t.us,$run,$r]}" "${R[$t.split,$run,$r]:--}" "$errs")"
}

# ---------------------------------------------------------------- run
log "rvsd: $RVSD; ${SECS}s per wrk run (-t$WRK_THREADS -c$CONNS), $ROUNDS round(s); runs: ${RUNS[*]}; logs in $W"
for m in "${!NOTE[@]}"; do log "$m: ${NOTE[$m]}"; done
ns_setup
start_real_servers
ENGINE_INFO=
for ((r = 1; r <= ROUNDS; r++)); do
  n=${#RUNS[@]}
  order=("${RUNS[@]:$(((r - 1) % n))}" "${RUNS[@]:0:$(((r - 1) % n))}")
  for run in "${order[@]}"; do
    [[ -n ${NOTE[$run]:-} ]] && continue
    log "round $r: $run"
    if setup_run "$run"; then
      # a short warm-up (neighbours, the first flows, nginx's first accepts), then the two tests
      timeout 10 ip netns exec "$NS_CLI" wrk -t1 -c"$CONNS" -d1s "http://$(target "$run"):$PORT/" >/dev/null 2>&1 || true
      measure "$run" ka "$r"
      measure "$run" close "$r"
      if [[ $run =~ ^(gate|masq|tunnel)$ && -S $W/api-$run.sock ]]; then
        curl -s --max-time 2 --unix-socket "$W/api-$run.sock" http://rvsd/v1/info >"$W/info-$run-r$r.json" 2>/dev/null || true
      fi
    else
      log "$run: ${NOTE[$run]}"
    fi
    teardown_run "$run"
  done
done
# stop everything before the CPU-heavy extras and the table
for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_pid "${STARTED[$i]}"; done
STARTED=()

for run in "${RUNS[@]}"; do
  for t in ka close; do
    for k in rps p99 us; do
      vals=()
      for ((r = 1; r <= ROUNDS; r++)); do vals+=("${R[$t.$k,$run,$r]:--}"); done
      M[$t.$k,$run]=$(rounded "$(median "${vals[@]}")" "$(case $k in rps) echo 0 ;; p99) echo 2 ;; *) echo 1 ;; esac)")
    done
    # the director's own cost: this run's machine us/request minus the baseline's of the round
    vals=() e=0 sp=
    for ((r = 1; r <= ROUNDS; r++)); do
      x=${R[$t.us,$run,$r]:-} d=${R[$t.us,baseline,$r]:-}
      num "$x" && num "$d" && vals+=("$(calc "$x - $d" 1)")
      num "${R[$t.rps,$run,$r]:-}" && num "${R[$t.rps,baseline,$r]:-}" && R[$t.rel,$run,$r]=$(ratio "${R[$t.rps,$run,$r]}" "${R[$t.rps,baseline,$r]}")
      e=$((e + ${R[$t.err,$run,$r]:-0}))
      sp=${R[$t.split,$run,$r]:-$sp}
    done
    [[ $run == baseline ]] || M[$t.own,$run]=$(rounded "$(median "${vals[@]}")" 1)
    vals=()
    for ((r = 1; r <= ROUNDS; r++)); do vals+=("${R[$t.rel,$run,$r]:--}"); done
    M[$t.rel,$run]=$(rounded "$(median "${vals[@]}")" 2)
    M[$t.err,$run]=$e
    M[$t.split,$run]=${sp:--}
  done
done

# ---------------------------------------------------------------- the extras
# ns per packet of the XDP program (BPF_PROG_TEST_RUN), by rvs-bpf's example when there is one
NS_OUT=
if [[ ${XDP_NS:-1} != 0 ]]; then
  if [[ -n ${XDP_NS_BIN:-} ]]; then
    log "ns per packet: $XDP_NS_BIN"
    if timeout 300 "$XDP_NS_BIN" >"$W/xdp_ns_per_packet.txt" 2>&1; then NS_OUT=$W/xdp_ns_per_packet.txt; else
      log "ns per packet: $XDP_NS_BIN failed (see $W/xdp_ns_per_packet.txt)"; fi
  elif [[ -f $ROOT/crates/rvs-bpf/examples/xdp_ns_per_packet.rs ]]; then
    log "ns per packet: cargo run --release -p rvs-bpf --example xdp_ns_per_packet"
    if (cd "$ROOT" && timeout 900 nice cargo run --release --quiet -p rvs-bpf --example xdp_ns_per_packet) \
      >"$W/xdp_ns_per_packet.txt" 2>&1; then NS_OUT=$W/xdp_ns_per_packet.txt; else
      log "ns per packet: the example failed (see $W/xdp_ns_per_packet.txt)"; fi
  fi
fi
# kernel memory per tracked connection, from the packet engine's GET /v1/info
MEM_PER_CONN=- MEM_NOTE="not available (no packet engine run)"
if [[ -n $ENGINE_INFO ]]; then
  read -r MEM_PER_CONN MEM_NOTE < <(python3 -c 'import json,sys
pe = json.loads(sys.argv[1]).get("packet_engine") or {}
b, c = pe.get("table_bytes"), pe.get("capacity")
if b and c:
    per = b / c
    print("%.1f" % per, "table_bytes %d / capacity %d; for 1,000,000 connections: %.0f MB (%.0f MiB)" % (b, c, per * 1e6 / 1e6, per * 1e6 / 2**20))
else:
    print("-", "not available: /v1/info gave table_bytes %s, capacity %s" % (b, c))' "$ENGINE_INFO" 2>/dev/null || echo "- not available: /v1/info unreadable")
fi

# ---------------------------------------------------------------- the table
verdict() { # verdict VALUE OP LIMIT
  num "$1" || { echo "n/a"; return; }
  awk "BEGIN { exit !($1 $2 $3) }" && echo met || echo "NOT met"
}
{
  echo
  echo "rvs packet engine bench: $(date -u +%Y-%m-%dT%H:%M:%SZ), $NCPU cores, $(uname -r); rvsd $RVSD"
  echo "one L2 segment (bridge); client $CLI_ADDR, director $DIR_ADDR, real servers ${RS_ADDR[*]} (nginx, 1 worker each);"
  echo "VIPs ${VIPS[gate]}-${VIPS[fullnat]##*.}:$PORT (one per run) routed by the client through the director; XDP $XDP_MODE; baseline = the client straight to ${RS_ADDR[0]}"
  echo "wrk -t$WRK_THREADS -c$CONNS, ${SECS}s per run, median of $ROUNDS round(s); keep-alive (ka) and Connection: close (close);"
  echo "us/req = the whole machine's CPU (/proc/stat user+nice+system+irq+softirq, $NCPU CPUs) per request;"
  echo "own = us/req minus the baseline's (same round): what the director adds; conn/s x = close requests/s over the baseline's"
  echo
  fmt='| %-8s | %9s | %7s | %7s | %7s | %9s | %7s | %7s | %7s | %7s | %7s | %7s | %s\n'
  # shellcheck disable=SC2059
  printf "$fmt" run "ka req/s" "ka p99" "ka us" "ka own" "cl req/s" "cl p99" "cl us" "cl own" "conn/s" "split" errors note
  # shellcheck disable=SC2059
  printf "$fmt" "" "" ms /req us/req "" ms /req us/req "x base" "rs1/rs2" "ka/cl" ""
  for run in "${RUNS[@]}"; do
    note=${NOTE[$run]:-}
    # shellcheck disable=SC2059
    printf "$fmt" "$run" "${M[ka.rps,$run]}" "${M[ka.p99,$run]}" "${M[ka.us,$run]}" "${M[ka.own,$run]:--}" \
      "${M[close.rps,$run]}" "${M[close.p99,$run]}" "${M[close.us,$run]}" "${M[close.own,$run]:--}" \
      "$([[ $run == baseline ]] && echo 1.00 || echo "${M[close.rel,$run]}")" "${M[close.split,$run]}" \
      "${M[ka.err,$run]}/${M[close.err,$run]}" "$note"
  done
  echo
  echo "XDP program, ns per packet (BPF_PROG_TEST_RUN):"
  if [[ -n $NS_OUT ]]; then sed 's/^/  /' "$NS_OUT"; else echo "  not available (no crates/rvs-bpf/examples/xdp_ns_per_packet.rs, no XDP_NS_BIN, or it failed)"; fi
  echo "packet engine kernel memory per tracked connection: $MEM_PER_CONN bytes ($MEM_NOTE)"
  echo
  echo "targets (reported, not enforced):"
  g=${M[ka.own,gate]:--} nf=${M[ka.own,nft]:--} hp=${M[ka.own,haproxy]:--}
  q1=$(ratio "$g" "$nf") q2=$(ratio "$g" "$hp")
  printf '  %-66s %8s  %s\n' "gate's own us/request (ka) / nftables DNAT's      (<= 0.25)" "$q1" "$(verdict "$q1" '<=' 0.25)"
  printf '  %-66s %8s  %s\n' "gate's own us/request (ka) / HAProxy's            (<= 0.10)" "$q2" "$(verdict "$q2" '<=' 0.10)"
  printf '  %-66s %8s\n' "  (gate $g, nft $nf, haproxy $hp us/request)" ""
  q3=${M[close.rel,gate]:--}
  printf '  %-66s %8s  %s\n' "gate's new connections/s / the baseline's          (>= 0.90)" "$q3" "$(verdict "$q3" '>=' 0.9)"
  est=-
  if [[ -n $NS_OUT ]]; then
    est=$(grep -i -m1 'established' "$NS_OUT" | grep -o -E '[0-9]+([.][0-9]+)? *ns' | head -n1 | grep -o -E '^[0-9.]+' || true)
    [[ -n $est ]] || est=-
  fi
  printf '  %-66s %8s  %s\n' "established flow, ns per packet                   (< 100)" "$est" "$(verdict "$est" '<' 100)"
  printf '  %-66s %8s  %s\n' "kernel memory per tracked connection, bytes       (<= 128)" "$MEM_PER_CONN" "$(verdict "$MEM_PER_CONN" '<=' 128)"
  printf '  %-66s %8s\n' "info: gate's own us/request with Connection: close / nft's, / HAProxy's" \
    "$(ratio "${M[close.own,gate]:--}" "${M[close.own,nft]:--}") $(ratio "${M[close.own,gate]:--}" "${M[close.own,haproxy]:--}")"
} | tee "$W/table.txt"
