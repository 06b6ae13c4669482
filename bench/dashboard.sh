#!/usr/bin/env bash
# bench/dashboard.sh: what open dashboards cost rvsd. Starts rvsd (target/release/rvsd, or
# RVSD_BIN) on loopback with DASH_SERVICES TCP services of DASH_SERVERS real servers each and an
# http service, opens DASH_CLIENTS dashboards (each one push-channel client reading every tick,
# plus a fetch of the services and of one history every DASH_FETCH_SECS), and measures rvsd's CPU
# from /proc/PID/stat (utime + stime) over DASH_SECS seconds, as % of one core; then without any
# dashboard, for the baseline; and the first page load's bytes (the page and every asset it
# loads). Goals: under 1% of a core, under 300 KB. Prints a table.
#
#   bench/dashboard.sh            # 10 dashboards, 60 s windows
#   DASH_CLIENTS=20 DASH_SECS=30 bench/dashboard.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${DASH_CLIENTS:-10}
SECS=${DASH_SECS:-60}
SERVICES=${DASH_SERVICES:-4}
SERVERS=${DASH_SERVERS:-4}
FETCH=${DASH_FETCH_SECS:-10}
BIN=${RVSD_BIN:-target/release/rvsd}
if [[ ! -x $BIN ]]; then
  echo "building $BIN (cargo build --release -p rvsd)" >&2
  cargo build --release -p rvsd >&2
fi
command -v curl >/dev/null || { echo "needs curl" >&2; exit 1; }

dir=$(mktemp -d /tmp/rvs-dashboard-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port=$(free_port)
token=dashboard-bench-token-0123456789
{
  echo "[api]"
  echo "socket = \"$dir/api.sock\""
  echo "listen = \"127.0.0.1:$api_port\""
  echo "token = \"$token\""
  for ((s = 0; s < SERVICES; s++)); do
    echo "[[service]]"
    echo "address = \"127.0.0.1:$(free_port)\""
    echo "scheduler = \"wlc\""
    for ((r = 0; r < SERVERS; r++)); do
      echo "  [[service.real_server]]"
      echo "  address = \"127.0.0.$((r + 2)):$((20000 + s))\""
    done
  done
  echo "[[service]]"
  echo "kind = \"http\""
  echo "address = \"127.0.0.1:$(free_port)\""
  echo "default_pool = \"web\""
  echo "  [[service.pool]]"
  echo "  name = \"web\""
  for ((r = 0; r < SERVERS; r++)); do
    echo "    [[service.pool.real_server]]"
    echo "    address = \"127.0.0.$((r + 2)):30000\""
  done
  echo "  [[service.rule]]"
  echo "  name = \"api\""
  echo "  match = [\"path^=/api/\"]"
  echo "  pool = \"web\""
} >"$dir/rvsd.toml"

RVSD_LOG=warn "$BIN" --config "$dir/rvsd.toml" >"$dir/rvsd.out" 2>"$dir/rvsd.log" &
rvsd=$!
pids+=("$rvsd")
base="http://127.0.0.1:$api_port"
for _ in $(seq 100); do
  curl -sf -o /dev/null -H "Authorization: Bearer $token" "$base/v1/info" && break
  sleep 0.1
done

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$rvsd/stat"; }
# % of one core over SECS seconds.
measure() {
  local a b
  a=$(cpu_ticks)
  sleep "$SECS"
  b=$(cpu_ticks)
  awk -v d=$((b - a)) -v t="$ticks" -v s="$SECS" 'BEGIN { printf "%.2f", 100 * d / t / s }'
}

sleep 3
idle=$(measure)

# The dashboards: each a push-channel reader plus periodic fetches, as the page does.
hist=$(curl -s -H "Authorization: Bearer $token" "$base/v1/history" | python3 -c 'import json,sys; o=json.load(sys.stdin)["objects"]; print(o[0] if o else "")')
for ((c = 0; c < CLIENTS; c++)); do
  curl -sN -H "Authorization: Bearer $token" "$base/v1/stream" >"$dir/stream.$c" &
  pids+=("$!")
  (
    while :; do
      curl -s -o /dev/null -H "Authorization: Bearer $token" "$base/v1/events"
      curl -s -o /dev/null -H "Authorization: Bearer $token" "$base/v1/history?object=$hist"
      sleep "$FETCH"
    done
  ) &
  pids+=("$!")
done
sleep 3
open=$(measure)
tick_bytes=$(($(stat -c %s "$dir/stream.0") / (SECS + 3)))

# The first page load: the page and the assets it names.
page=0
for a in "" app.js app.css vendor/uplot/uPlot.iife.min.js vendor/uplot/uPlot.min.css; do
  n=$(curl -s -o /dev/null -w '%{size_download}' "$base/ui/$a")
  page=$((page + n))
done
first_tick=$(awk '/^data: /{print length($0); exit}' "$dir/stream.0")

printf '\n%-58s %12s %8s\n' "rvs dashboard cost ($SERVICES tcp services x $SERVERS real servers + 1 http)" "measured" "goal"
printf '%-58s %11s%% %8s\n' "rvsd CPU, no dashboard (% of one core)" "$idle" ""
printf '%-58s %11s%% %8s\n' "rvsd CPU, $CLIENTS dashboards open (% of one core)" "$open" "< 1%"
printf '%-58s %12s %8s\n' "first page load (page + assets, bytes)" "$page" "< 300 KB"
printf '%-58s %12s %8s\n' "push channel, bytes per tick per client" "${first_tick:-0}" ""
printf '%-58s %12s %8s\n' "push channel, bytes per second per client" "$tick_bytes" ""
printf '(window %s s; %s)\n' "$SECS" "$("$BIN" --version)"
