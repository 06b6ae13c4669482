#!/usr/bin/env bash
# Director failover: two directors in namespaces on one bridge, one virtual router (VRID 51,
# VRRP version 3), the master at priority 150 killed with SIGKILL, then started again (it
# preempts back). Takeover = from the SIGKILL to the virtual address on the backup's interface,
# polled every 2 ms. The same topology with Debian's keepalived as both directors; advertisement
# intervals of 1 s and 100 ms. Prints median and worst of FAILOVER_KILLS kills (default 20), and
# for rvsd with connection sync how many of FAILOVER_FLOWS (50) established gate flows stopped
# (keepalived has no connection sync without the kernel's IPVS, which this kernel lacks).
#   bench/failover.sh            # builds rvsd (release) unless RVSD_BIN names a binary
#   FAILOVER_INTERVALS="100" FAILOVER_DIRECTORS=keepalived FAILOVER_FLOWS_RUN=0 bench/failover.sh
# Addresses: 198.18.0.0/24 only, in namespaces this script makes and removes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KILLS=${FAILOVER_KILLS:-20}
W=$(mktemp -d /tmp/rvs-failover.XXXXXX)
TAG=rvsfo$$
VIP=198.18.0.100

command -v keepalived >/dev/null || { apt-get install -y keepalived >/dev/null 2>&1 || (apt-get update >/dev/null && apt-get install -y keepalived >/dev/null); }
if [[ -n ${RVSD_BIN:-} ]]; then RVSD=$RVSD_BIN; else
  (cd "$ROOT" && cargo build --release -p rvsd --quiet)
  RVSD=$ROOT/target/release/rvsd
fi

cleanup() {
  for ns in sw d1 d2; do
    ip netns pids "$TAG-$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$TAG-$ns" 2>/dev/null || true
  done
  rm -rf "$W"
}
trap cleanup EXIT

ip netns add "$TAG-sw"
ip -n "$TAG-sw" link add br0 type bridge
ip -n "$TAG-sw" link set br0 up
for i in 1 2; do
  ip netns add "$TAG-d$i"
  ip -n "$TAG-d$i" link set lo up
  ip link add eth0 netns "$TAG-d$i" type veth peer name p$i netns "$TAG-sw"
  ip -n "$TAG-d$i" addr add 198.18.0.$i/24 dev eth0
  ip -n "$TAG-d$i" link set eth0 up
  ip -n "$TAG-sw" link set p$i master br0
  ip -n "$TAG-sw" link set p$i up
done

has_vip() { ip -n "$TAG-$1" -4 addr show dev eth0 | grep -q "$VIP/32"; }
now_ns() { date +%s%N; }

# start IMPL NS PRIORITY INTERVAL_MS: starts a director in the background, its pid in $W/NS.pid
start() {
  local impl=$1 ns=$2 prio=$3 ms=$4 d=$W/$2
  mkdir -p "$d"
  # keepalived refuses to start when its pid file names a live process (a reused pid).
  rm -f "$d/k.pid" "$d/v.pid"
  if [[ $impl == rvsd ]]; then
    cat >"$d/rvsd.toml" <<EOF
[api]
socket = "$d/api.sock"

[[vrrp]]
name = "vi1"
interface = "eth0"
vrid = 51
priority = $prio
advert_interval_ms = $ms
virtual_addresses = ["$VIP"]
EOF
    setsid ip netns exec "$TAG-$ns" "$RVSD" --config "$d/rvsd.toml" >"$d/log" 2>&1 &
  else
    cat >"$d/keepalived.conf" <<EOF
vrrp_instance vi1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority $prio
  advert_int $(awk "BEGIN{print $ms/1000}")
  version 3
  virtual_ipaddress {
    $VIP/32 dev eth0
  }
}
EOF
    setsid ip netns exec "$TAG-$ns" keepalived --dont-fork --log-console --vrrp --use-file "$d/keepalived.conf" \
      --pid "$d/k.pid" --vrrp_pid "$d/v.pid" >"$d/log" 2>&1 &
  fi
  echo $! >"$d/pid"
}

# kill_group NS: SIGKILL to the director's whole process group (keepalived has a VRRP child).
kill_group() {
  local pid
  pid=$(cat "$W/$1/pid")
  kill -s KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

wait_for() { # SECONDS COMMAND...: until COMMAND succeeds
  local end=$(($(date +%s) + $1))
  shift
  until "$@"; do
    (($(date +%s) < end)) || return 1
    sleep 0.002
  done
}

# run IMPL INTERVAL_MS: prints "median worst" takeover in ms over $KILLS kills
run() {
  local impl=$1 ms=$2 times=() k t0 t1 settle
  settle=$(awk "BEGIN{print int($ms*4/1000)+3}")
  start "$impl" d2 100 "$ms"
  start "$impl" d1 150 "$ms"
  for ((k = 0; k < KILLS; k++)); do
    wait_for $((settle + 10)) has_vip d1 || { echo "$impl: d1 never master" >&2; return 1; }
    wait_for $((settle + 10)) bash -c "! ip -n $TAG-d2 -4 addr show dev eth0 | grep -q $VIP/32" || return 1
    sleep 0.3
    t0=$(now_ns)
    kill_group d1
    wait_for $((settle + 10)) has_vip d2 || { echo "$impl: no takeover" >&2; return 1; }
    t1=$(now_ns)
    times+=($(((t1 - t0) / 1000000)))
    # A SIGKILLed keepalived leaves its address behind: as a rebooted director, d1 starts clean.
    ip -n "$TAG-d1" addr del "$VIP/32" dev eth0 2>/dev/null || true
    start "$impl" d1 150 "$ms"
  done
  kill_group d1
  kill_group d2
  ip -n "$TAG-d1" addr del "$VIP/32" dev eth0 2>/dev/null || true
  ip -n "$TAG-d2" addr del "$VIP/32" dev eth0 2>/dev/null || true
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%s %s\n", m, a[NR]}'
}

# flows IMPL INTERVAL_MS: rvsd with connection sync and FAILOVER_FLOWS held gate connections
# (the packet-engine farm of crates/rvsd/tests/packet_engine.rs): "median worst lost".
flows() {
  local line
  line=$(cd "$ROOT" && FAILOVER_KILLS=$KILLS FAILOVER_INTERVAL_MS=$2 cargo test -q -p rvsd --test packet_engine \
    failover_bench_flows_lost -- --ignored --nocapture 2>/dev/null | grep '^FAILOVER') || { echo "- - -"; return; }
  sed -E 's/.*takeover_median_ms=([0-9]+) takeover_worst_ms=([0-9]+) lost_at_takeover=([0-9]+) lost_at_return=([0-9]+).*/\1 \2 \3+\4/' <<<"$line"
}

printf '| director | advert interval | takeover median (ms) | worst (ms) | kills | established flows lost (takeover+return) |\n'
printf '|---|---|---|---|---|---|\n'
for ms in ${FAILOVER_INTERVALS:-1000 100}; do
  for impl in ${FAILOVER_DIRECTORS:-rvsd keepalived}; do
    read -r med worst < <(run "$impl" "$ms")
    printf '| %s | %s ms | %s | %s | %s | |\n' "$impl" "$ms" "$med" "$worst" "$KILLS"
  done
  ((${FAILOVER_FLOWS_RUN:-1})) || continue
  read -r med worst lost < <(flows rvsd "$ms")
  printf '| rvsd + sync, %s gate flows | %s ms | %s | %s | %s | %s |\n' "${FAILOVER_FLOWS:-50}" "$ms" "$med" "$worst" "$KILLS" "$lost"
done
