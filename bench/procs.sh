# bench/procs.sh: what the benchmarks need and start (sourced by bench/run.sh, bench/xdp.sh and
# bench/netns.sh): the Debian packages they install, and the bookkeeping of their processes,
# signalled only while they are this script's own live children (a PID may be reused); a
# namespace goes with every process left in it.
#
#   apt_install PKG...  installs the packages (apt-get update first only if the install fails);
#                       dies (the caller's `die`) when it cannot
#   ours PID            true while PID is a live child of this script
#   stop_pid PID        TERM, up to 5 s, then KILL; only our own children
#   netns_delete NS     the processes still inside NS by PID (TERM, then KILL), then NS itself

ours() {
  local st f
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -r -a f <<<"${st##*) }"
  [[ ${f[1]} == "$$" && ${f[0]} != Z ]]
}

stop_pid() {
  local pid=$1 i
  if ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      ours "$pid" || break
      sleep 0.1
    done
    ours "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
}

netns_delete() {
  local ns=$1 p left
  [[ -e /run/netns/$ns ]] || return 0
  left=$(ip netns pids "$ns" 2>/dev/null || true)
  if [[ -n $left ]]; then
    for p in $left; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in $(ip netns pids "$ns" 2>/dev/null || true); do kill -KILL "$p" 2>/dev/null || true; done
  fi
  ip netns del "$ns" 2>/dev/null
}

apt_install() {
  (($#)) || return 0
  log "installing $*"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null 2>&1; then
    apt-get update >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null || die "apt-get install $* failed"
  fi
}
