#!/usr/bin/env bash
# bench/dashboard.sh: what open dashboards cost rvsd. Starts rvsd (target/release/rvsd, or
# RVSD_BIN) on loopback with DASH_SERVICES TCP services of DASH_SERVERS real servers each and an
# http service, opens DASH_CLIENTS dashboards (each one push-channel client reading every tick,
# plus a fetch of the services and of one history every DASH_FETCH_SECS), and measures rvsd's CPU
# from /proc/PID/stat (utime + stime) over DASH_SECS seconds, as % of one core; then without any
# dashboard, for the baseline; and the first page load's bytes (the page and every asset it
# loads). Goals: under 1% of a core, under 300 KB. Prints a table. With DASH_BROWSER=1 the
# dashboards are DASH_CLIENTS tabs of headless chromium instead (through chromedriver, five tabs
# a browser: HTTP/1.1's six connections per host; the page logs in, then each tab keeps its push
# channel open and draws).
#
#   bench/dashboard.sh            # 10 dashboards, 60 s windows
#   DASH_CLIENTS=20 DASH_SECS=30 bench/dashboard.sh
#   DASH_BROWSER=1 bench/dashboard.sh
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
browser=
cleanup() {
  # The browsers' sessions end before their driver; then whatever of them is left, by pid.
  if [[ -n $browser ]]; then
    kill "$browser" 2>/dev/null || true
    wait "$browser" 2>/dev/null || true
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    sleep 0.1
  done
  wait 2>/dev/null || true
  for p in $(pgrep -f "$dir/profile" || true); do kill -KILL "$p" 2>/dev/null || true; done
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

# The dashboards: chromium tabs, or each a push-channel reader plus periodic fetches.
if [[ ${DASH_BROWSER:-0} == 1 ]]; then
  command -v chromedriver >/dev/null || { echo "needs chromium and chromium-driver" >&2; exit 1; }
  wd_port=$(free_port)
  chromedriver --port="$wd_port" >"$dir/chromedriver.log" 2>&1 &
  pids+=("$!")
  python3 - "$wd_port" "$base" "$token" "$CLIENTS" "$dir/profile" <<'PY' &
import json, sys, time, urllib.request
port, base, token, tabs, profile = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
def wd(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=60))["value"]
for _ in range(100):
    try:
        wd("GET", "/status"); break
    except Exception:
        time.sleep(0.1)
def browser(n, i):
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}{i}"]
    s = wd("POST", "/session", {"capabilities": {"alwaysMatch": {"browserName": "chrome",
           "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}})["sessionId"]
    wd("POST", f"/session/{s}/url", {"url": base + "/ui/"})
    wd("POST", f"/session/{s}/execute/async", {"script":
       "const d = arguments[arguments.length-1]; fetch('/ui/login', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({token: arguments[0]})}).then(r => d(r.status));",
       "args": [token]})
    wd("POST", f"/session/{s}/url", {"url": base + "/ui/"})
    for _ in range(n - 1):
        h = wd("POST", f"/session/{s}/window/new", {"type": "tab"})["handle"]
        wd("POST", f"/session/{s}/window", {"handle": h})
        wd("POST", f"/session/{s}/url", {"url": base + "/ui/"})
    return s
# A browser holds six HTTP/1.1 connections per host: five dashboards (each one push channel)
# leave one for the rest, so five tabs a browser.
sessions = []
for i in range(0, tabs, 5):
    sessions.append(browser(min(5, tabs - i), i))
import signal
def stop(*_):
    try:
        for s in sessions:
            wd("DELETE", f"/session/{s}")
    finally:
        sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("tabs open", flush=True)
while True:
    time.sleep(60)
PY
  browser=$!
  for _ in $(seq 300); do
    n=$(curl -s -H "Authorization: Bearer $token" "$base/v1/dashboard" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stream_clients"])')
    [[ $n -ge $CLIENTS ]] && break
    sleep 0.2
  done
  curl -sN -H "Authorization: Bearer $token" "$base/v1/stream" >"$dir/stream.0" &
  pids+=("$!")
else
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
fi
sleep 3
open=$(measure)
clients=$(curl -s -H "Authorization: Bearer $token" "$base/v1/dashboard" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stream_clients"])')
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
what="dashboards open"
[[ ${DASH_BROWSER:-0} == 1 ]] && what="chromium tabs open"
printf '%-58s %11s%% %8s\n' "rvsd CPU, $CLIENTS $what (% of one core)" "$open" "< 1%"
printf '%-58s %12s %8s\n' "push-channel clients connected at the end of the window" "$clients" ""
printf '%-58s %12s %8s\n' "first page load (page + assets, bytes)" "$page" "< 300 KB"
printf '%-58s %12s %8s\n' "push channel, bytes per tick per client" "${first_tick:-0}" ""
printf '%-58s %12s %8s\n' "push channel, bytes per second per client" "$tick_bytes" ""
printf '(window %s s; %s)\n' "$SECS" "$("$BIN" --version)"
