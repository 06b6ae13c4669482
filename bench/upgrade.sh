#!/usr/bin/env bash
# Upgrades and reloads under load: what clients see while rvsd is replaced by a new binary
# (`rvsd --upgrade-from`, UPGRADES times, default 100) and while it reloads its file (SIGHUP,
# RELOADS times, default 1000, the file alternating between two real-server weights), beside
# HAProxy reloaded with `haproxy -sf` (no -x: each new process binds its own listeners)
# HAPROXY_RELOADS times (default 100; 0 skips it).
# Four wrk loads run together through each phase (wrk -t1 -cCONNS, default 16), stopped with
# SIGINT once the phase's upgrades or reloads are done:
#   l4 ka      an L4 TCP service, keep-alive
#   l4 close   the same, -H 'Connection: close' (a new connection per request)
#   http ka    an http service (rvsd's L7 engine; HAProxy mode http), keep-alive
#   http close the same, -H 'Connection: close'
# The backend is one nginx (worker_processes 1) on 127.0.0.1:18201. Prints one table: requests,
# requests/s (wrk's, over the whole phase), non-2xx answers and wrk's socket errors (connect,
# read, write, timeout) per case.
#   bench/upgrade.sh                     # builds rvsd (release) unless RVSD_BIN names a binary
#   UPGRADES=10 RELOADS=100 HAPROXY_RELOADS=0 bench/upgrade.sh
# Traffic to 127.0.0.1 only (ports 18201, 18211-18214); every loop is bounded.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
UPGRADES=${UPGRADES:-100}
RELOADS=${RELOADS:-1000}
HAPROXY_RELOADS=${HAPROXY_RELOADS:-100}
CONNS=${CONNS:-16}
W=$(mktemp -d /tmp/rvs-upgrade.XXXXXX)
BACKEND=127.0.0.1:18201
L4=127.0.0.1:18211
HTTP=127.0.0.1:18212
HA_L4=127.0.0.1:18213
HA_HTTP=127.0.0.1:18214

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx)
command -v haproxy >/dev/null || need+=(haproxy)
if ((${#need[@]})); then
  apt-get install -y "${need[@]}" >/dev/null 2>&1 || (apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null)
fi
if [[ -n ${RVSD_BIN:-} ]]; then RVSD=$RVSD_BIN; else
  (cd "$ROOT" && cargo build --release -p rvsd --quiet)
  RVSD=$ROOT/target/release/rvsd
fi

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $(cat "$W"/rvsd.pids "$W"/haproxy.pids 2>/dev/null); do
    kill -TERM "$p" 2>/dev/null || true
  done
  [[ -f $W/nginx.pid ]] && kill -TERM "$(cat "$W/nginx.pid")" 2>/dev/null || true
  sleep 0.5
  [[ -n ${KEEP:-} ]] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

cat >"$W/nginx.conf" <<EOF
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen $BACKEND reuseport backlog=4096; location / { return 200 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; } }
}
EOF
nginx -c "$W/nginx.conf"

rvsd_config() { # WEIGHT
  cat <<EOF
[api]
socket = "$W/api.sock"

[director]
drain_timeout_secs = 900

[[service]]
address = "$L4"
scheduler = "rr"
  [[service.real_server]]
  address = "$BACKEND"
  weight = $1

[[service]]
kind = "http"
address = "$HTTP"
default_pool = "web"
  [[service.pool]]
  name = "web"
    [[service.pool.real_server]]
    address = "$BACKEND"
    weight = $1
EOF
}
rvsd_config 1 >"$W/rvsd.toml"
rvsd_config 1 >"$W/weight1.toml"
rvsd_config 2 >"$W/weight2.toml"

# wait_log FILE TEXT: up to 30 s for TEXT in FILE.
wait_log() {
  local i
  for ((i = 0; i < 1500; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.02
  done
  echo "timed out waiting for '$2' in $1:" >&2
  tail -20 "$1" >&2
  return 1
}

# start_wrk PHASE L4ADDR HTTPADDR: four wrk loads in the background.
WRKS=()
start_wrk() {
  local phase=$1 l4=$2 http=$3
  WRKS=()
  local c
  for c in "l4 ka|$l4|" "l4 close|$l4|close" "http ka|$http|" "http close|$http|close"; do
    local name=${c%%|*} rest=${c#*|}
    local addr=${rest%%|*} mode=${rest##*|}
    local out="$W/$phase.${name// /-}.wrk"
    if [[ $mode == close ]]; then
      wrk -t1 -c"$CONNS" -d3600s -H 'Connection: close' "http://$addr/" >"$out" 2>&1 &
    else
      wrk -t1 -c"$CONNS" -d3600s "http://$addr/" >"$out" 2>&1 &
    fi
    WRKS+=($!)
    PIDS+=($!)
  done
  sleep 1
}
stop_wrk() {
  local p i
  sleep 1
  for p in "${WRKS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${WRKS[@]}"; do
    for ((i = 0; i < 500; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.02; done
  done
}

# row PHASE EVENTS: a table row per case from the wrk outputs.
row() {
  local phase=$1 events=$2 f
  for f in "l4 ka" "l4 close" "http ka" "http close"; do
    local out="$W/$phase.${f// /-}.wrk"
    local reqs rate non2xx errs
    reqs=$(awk '/requests in/ {print $1}' "$out")
    rate=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
    errs=$(awk '/Socket errors/ {gsub(",", ""); print $4 "/" $6 "/" $8 "/" $10}' "$out")
    printf '| %-22s | %-15s | %9s | %8s | %8s | %-37s |\n' "$phase" "$f" "${reqs:-?}" "${rate:-?}" "${non2xx:-0}" "${errs:-0/0/0/0}"
  done
  printf '| %-22s | %-15s | %9s | %8s | %8s | %-37s |\n' "" "($events)" "" "" "" ""
}

# --- rvsd: binary upgrades --------------------------------------------------------------
setsid "$RVSD" --config "$W/rvsd.toml" >"$W/rvsd.0.log" 2>&1 &
echo $! >>"$W/rvsd.pids"
wait_log "$W/rvsd.0.log" "control API listening"
start_wrk "rvsd upgrade" "$L4" "$HTTP"
t0=$(date +%s.%N)
for ((i = 1; i <= UPGRADES; i++)); do
  setsid "$RVSD" --config "$W/rvsd.toml" --upgrade-from "$W/api.sock" >"$W/rvsd.$i.log" 2>&1 &
  echo $! >>"$W/rvsd.pids"
  wait_log "$W/rvsd.$i.log" "binary upgrade done"
  sleep 0.2
done
t1=$(date +%s.%N)
stop_wrk
UPGRADE_SECS=$(awk "BEGIN {printf \"%.1f\", $t1 - $t0}")
CUR=$(tail -1 "$W/rvsd.pids")
# Old processes still running hold the L4 keep-alive connections wrk made before the
# upgrades; they end with wrk and exit.
sleep 2
LEFT=0
for p in $(head -n -1 "$W/rvsd.pids"); do kill -0 "$p" 2>/dev/null && LEFT=$((LEFT + 1)); done

# --- rvsd: reloads -----------------------------------------------------------------------
start_wrk "rvsd reload (SIGHUP)" "$L4" "$HTTP"
t0=$(date +%s.%N)
for ((i = 1; i <= RELOADS; i++)); do
  cp "$W/weight$((i % 2 + 1)).toml" "$W/rvsd.toml"
  kill -HUP "$CUR"
  sleep 0.02
done
t1=$(date +%s.%N)
stop_wrk
RELOAD_SECS=$(awk "BEGIN {printf \"%.1f\", $t1 - $t0}")
RELOADED=$(cat "$W"/rvsd.*.log | grep -c "configuration reloaded" || true)

# --- HAProxy: -sf reloads without -x -------------------------------------------------------
if ((HAPROXY_RELOADS > 0)); then
  cat >"$W/haproxy.cfg" <<EOF
global
  maxconn 4000
  nbthread 1
defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend l4
  mode tcp
  bind $HA_L4
  default_backend l4
backend l4
  mode tcp
  server s1 $BACKEND
frontend web
  mode http
  bind $HA_HTTP
  option http-keep-alive
  default_backend web
backend web
  mode http
  http-reuse always
  server s1 $BACKEND
EOF
  haproxy -f "$W/haproxy.cfg" -D -p "$W/haproxy.pid"
  cat "$W/haproxy.pid" >>"$W/haproxy.pids"
  start_wrk "haproxy -sf" "$HA_L4" "$HA_HTTP"
  for ((i = 1; i <= HAPROXY_RELOADS; i++)); do
    haproxy -f "$W/haproxy.cfg" -D -p "$W/haproxy.pid" -sf "$(cat "$W/haproxy.pid")"
    cat "$W/haproxy.pid" >>"$W/haproxy.pids"
    sleep 0.2
  done
  stop_wrk
fi

echo
echo "rvsd $("$RVSD" --version | awk '{print $2}'): $UPGRADES binary upgrades in ${UPGRADE_SECS}s ($LEFT old processes still draining at the end), $RELOADED reloads in ${RELOAD_SECS}s; wrk -t1 -c$CONNS per case"
echo
printf '| %-22s | %-15s | %9s | %8s | %8s | %-37s |\n' "phase" "case" "requests" "req/s" "non-2xx" "socket errors conn/read/write/timeout"
printf '|%s|%s|%s|%s|%s|%s|\n' "------------------------" "-----------------" "-----------" "----------" "----------" "---------------------------------------"
row "rvsd upgrade" "$UPGRADES upgrades"
row "rvsd reload (SIGHUP)" "$RELOADS reloads"
((HAPROXY_RELOADS > 0)) && row "haproxy -sf" "$HAPROXY_RELOADS reloads"
exit 0
