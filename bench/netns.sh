# bench/netns.sh: a small routed topology in network namespaces, for the benchmarks (sourced,
# not run: bench/run.sh sources it; so can the packet engine's benchmark).
#
#   client ns                director ns                      switch ns           real servers
#   eth0 198.18.0.2/24 ---- c0 198.18.0.1/24
#                           s0 198.19.0.1/24 ---------- p0 [br0] p1 -------- rs1 eth0 198.19.0.11/24
#                                                              [br0] p2 -------- rs2 eth0 198.19.0.12/24
#
# Every address is in 198.18.0.0/15 (the benchmarking block) and lives inside the namespaces:
# nothing is added to the root namespace, and no namespace has a route out. The director routes
# (ip_forward) between the client's /24 and the servers' /24, so the client reaches a real server
# straight (through the director's forwarding: the baseline) or a balancer on 198.18.0.1. The
# client and the real servers route 198.18.0.0/15 through the director; the real servers sit on
# one L2 segment (the bridge) with the director's s0, so a later packet engine can forward to
# them by MAC as well as route. Each link is a veth pair; the director's two legs are veths
# (native XDP can attach to them).
#
#   netns_setup          create it all (names from NETNS_PREFIX, default rvsb<PID>); sets
#                        NS_CLI NS_DIR NS_SW NS_RS (array) and the addresses below
#   netns_teardown       delete it all: every process left in the namespaces is killed by PID,
#                        then the namespaces (with their links) are deleted; safe to call twice
#   netns_exec NS CMD... run CMD in namespace NS (exec: the PID is CMD's)
#   (a real server's nginx config: bench_backend_nginx_conf in bench/configs.sh)

# shellcheck source=bench/procs.sh
. "$(dirname "${BASH_SOURCE[0]}")/procs.sh"

NETNS_PREFIX=${NETNS_PREFIX:-rvsb$$}
NS_CLI_ADDR=198.18.0.2
NS_DIR_CADDR=198.18.0.1
NS_DIR_SADDR=198.19.0.1
NS_RS_ADDR=(198.19.0.11 198.19.0.12)
NETNS_UP=0
NS_CLI= NS_DIR= NS_SW=
NS_RS=()

netns_exec() { local ns=$1; shift; exec ip netns exec "$ns" "$@"; }

netns_names() { # every namespace of the topology, client first
  echo "$NS_CLI $NS_DIR $NS_SW ${NS_RS[*]}"
}

netns_setup() {
  local i ns
  NS_CLI=${NETNS_PREFIX}-cli NS_DIR=${NETNS_PREFIX}-dir NS_SW=${NETNS_PREFIX}-sw
  NS_RS=()
  for i in "${!NS_RS_ADDR[@]}"; do NS_RS+=("${NETNS_PREFIX}-rs$((i + 1))"); done
  for ns in $(netns_names); do
    [[ -e /run/netns/$ns ]] && { echo "netns_setup: namespace $ns exists already" >&2; return 1; }
  done
  NETNS_UP=1 # from here on, netns_teardown has something to remove
  for ns in $(netns_names); do
    ip netns add "$ns" || return 1
    ip -n "$ns" link set lo up || return 1
  done
  # client <-> director
  ip -n "$NS_DIR" link add c0 type veth peer name eth0 netns "$NS_CLI" || return 1
  ip -n "$NS_DIR" addr add "$NS_DIR_CADDR/24" dev c0
  ip -n "$NS_CLI" addr add "$NS_CLI_ADDR/24" dev eth0
  ip -n "$NS_DIR" link set c0 up
  ip -n "$NS_CLI" link set eth0 up
  ip -n "$NS_CLI" route add 198.18.0.0/15 via "$NS_DIR_CADDR" dev eth0 2>/dev/null ||
    ip -n "$NS_CLI" route add 198.19.0.0/16 via "$NS_DIR_CADDR" dev eth0 || return 1
  # the switch: a bridge with the director's server leg and one port per real server
  ip -n "$NS_SW" link add br0 type bridge || return 1
  ip -n "$NS_SW" link set br0 up
  ip -n "$NS_DIR" link add s0 type veth peer name p0 netns "$NS_SW" || return 1
  ip -n "$NS_DIR" addr add "$NS_DIR_SADDR/24" dev s0
  ip -n "$NS_DIR" link set s0 up
  ip -n "$NS_SW" link set p0 master br0 up
  for i in "${!NS_RS[@]}"; do
    ns=${NS_RS[$i]}
    ip -n "$ns" link add eth0 type veth peer name "p$((i + 1))" netns "$NS_SW" || return 1
    ip -n "$NS_SW" link set "p$((i + 1))" master br0 up
    ip -n "$ns" addr add "${NS_RS_ADDR[$i]}/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add 198.18.0.0/16 via "$NS_DIR_SADDR" dev eth0 || return 1
  done
  # the director routes; listen backlogs as on the root namespace's loopback runs
  ip netns exec "$NS_DIR" sysctl -qw net.ipv4.ip_forward=1 || return 1
  # Ports: loopback lets connect() reuse a TIME_WAIT port (tcp_tw_reuse = 2 means loopback
  # only), a namespace's veth does not; without this, a Connection: close load leaves
  # TIME_WAITs on the client's ports (a client that closes on a complete response before the
  # proxy's FIN comes) and from the second run on, connect() hunts through 28,000 ports half of
  # which are taken: a second round ran at a tenth of the first's connections/s.
  for ns in $(netns_names); do
    ip netns exec "$ns" sysctl -qw net.core.somaxconn=4096 2>/dev/null || true
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_tw_reuse=1 2>/dev/null || true
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="10240 65535" 2>/dev/null || true
  done
  # bounded (2 s each): every real server's address answers from the client namespace (a TCP
  # connect to a closed port: refused = reachable, a timeout = not)
  for i in "${!NS_RS_ADDR[@]}"; do
    timeout 2 ip netns exec "$NS_CLI" bash -c "exec 3<>/dev/tcp/${NS_RS_ADDR[$i]}/9" 2>/dev/null
    (($? != 124)) || { echo "netns_setup: ${NS_RS_ADDR[$i]} does not answer from the client namespace" >&2; return 1; }
  done
}

netns_teardown() {
  local ns p left
  ((NETNS_UP)) || return 0
  for ns in $(netns_names); do
    # processes still inside (the caller should have stopped its own) go first
    netns_delete "$ns" || true
  done
  NETNS_UP=0
}

