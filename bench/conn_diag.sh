#!/usr/bin/env bash
# bench/conn_diag.sh: where a balancer's new-connection cost goes, in the bench/netns.sh topology.
# For rvs, HAProxy and pen (BALS), TEST (close: Connection: close, or ka) runs of wrk -c$CONNS (64) -d3s
# from the client namespace, ROUNDS rounds; per connection: the balancer's CPU (/proc, user part),
# its context switches, the director's TCP segments in/out, pure ACKs, TIME_WAIT sockets left per
# namespace (ss; they last 60 s and ports are reused, so only a first round's are meaningful)
# and the IP bytes. PERF=1 also records `perf record -e cpu-clock -g` of the balancer per run
# (in $D/NAME.rROUND.perf); PIN=1 pins the balancer to CPU 0, the real servers and wrk to CPU 1.
#   RVSD_BIN=... BALS="rvs haproxy pen" TEST=close ROUNDS=2 PERF=1 bench/conn_diag.sh
# Needs root, ip netns, wrk, nginx, haproxy, pen. Everything is removed on exit.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RVSD=${RVSD_BIN:-$ROOT/target/release/rvsd}
D=${CONN_DIAG_DIR:-/tmp/rvs-conn-diag}; rm -rf $D; mkdir -p $D/www
PIN=${PIN:-0}
if ((PIN)); then T0=(taskset -c 0) T1=(taskset -c 1); else T0=() T1=(); fi
BAL=${BALS:-rvs haproxy pen}
TEST=${TEST:-close}
ROUNDS=${ROUNDS:-2}
NETNS_PREFIX=rvsdiag$$
. "$ROOT/bench/netns.sh"
. "$ROOT/bench/configs.sh"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; sleep 0.5; netns_teardown; }
trap cleanup EXIT; trap 'exit 130' INT TERM
netns_setup || exit 1
BODY=hello
for i in 0 1; do bench_backend_nginx_conf $D/rs$((i+1)) $D/www "$BODY" 20000 ${NS_RS_ADDR[$i]}:80; ip netns exec ${NS_RS[$i]} "${T1[@]}" nginx -p $D/rs$((i+1)) -c $D/rs$((i+1))/nginx.conf -e $D/rs$((i+1))/error.log & PIDS+=($!); done
bench_rvsd_toml $D/rvsd.toml "$D/api.sock" splice 198.18.0.1:18001 198.19.0.11:80 198.19.0.12:80
bench_haproxy_tcp_cfg $D/haproxy.cfg 1 9000 198.18.0.1:18002 198.19.0.11:80 198.19.0.12:80
declare -A PORT=([rvs]=18001 [haproxy]=18002 [pen]=18007) BP=()
for b in $BAL; do
  case $b in
    rvs) RVSD_LOG=warn TOKIO_WORKER_THREADS=1 ip netns exec $NS_DIR "${T0[@]}" $RVSD --config $D/rvsd.toml >$D/rvsd.out 2>$D/rvsd.err & ;;
    haproxy) ip netns exec $NS_DIR "${T0[@]}" haproxy -db -f $D/haproxy.cfg >$D/hap.log 2>&1 & ;;
    pen) ip netns exec $NS_DIR "${T0[@]}" pen -f -r -O tcp_nodelay -O "pending_max 4096" -x 9000 -c 1024 198.18.0.1:18007 198.19.0.11:80 198.19.0.12:80 >$D/pen.log 2>&1 & ;;
  esac
  BP[$b]=$!; PIDS+=($!)
done
sleep 2
snap() { for ns in $NS_CLI $NS_DIR ${NS_RS[0]} ${NS_RS[1]}; do ip netns exec $ns nstat -az -s 2>/dev/null | awk -v ns=${ns##*-} 'NF>=2 && $1 !~ /^#/ {print ns"."$1, $2}'; echo "${ns##*-}.TW $(ip netns exec $ns ss -Htan state time-wait | wc -l)"; done; }
ctx() { awk '/ctxt_switches/ {s+=$2} END {print s}' /proc/$1/task/*/status; }
for ((r=1; r<=ROUNDS; r++)); do
for b in $BAL; do
  port=${PORT[$b]}
  ip netns exec $NS_CLI curl -s -o /dev/null 198.18.0.1:$port/ || { echo "$b down"; continue; }
  args=(-c"${CONNS:-64}"); [[ $TEST == close ]] && args+=(-H 'Connection: close')
  snap > $D/s0; c0=$(ctx ${BP[$b]}); read -r u0 s0x < <(awk '{print $14, $15}' /proc/${BP[$b]}/stat)
  [[ -n ${PERF:-} ]] && { timeout 20 perf record -q -e cpu-clock -F 2000 -g -p ${BP[$b]} -o $D/$b.r$r.perf -- sleep 3.3 2>/dev/null & PS=$!; }
  timeout 15 ip netns exec $NS_CLI "${T1[@]}" wrk -t1 "${args[@]}" -d3s -s "$ROOT/bench/report.lua" http://198.18.0.1:$port/ > $D/wrk.$b 2>&1
  [[ -n ${PERF:-} ]] && wait $PS
  snap > $D/s1; c1=$(ctx ${BP[$b]}); read -r u1 s1x < <(awk '{print $14, $15}' /proc/${BP[$b]}/stat)
  n=$(grep -o 'requests=[0-9]*' $D/wrk.$b | cut -d= -f2)
  printf '%-8s r%d %6d conns %6.0f/s  cpu %5.1f us/conn (usr %4.1f)  ctxsw %.2f/conn  ' $b $r $n $((n/3)) $(awk -v a=$((u1+s1x-u0-s0x)) -v u=$((u1-u0)) -v n=$n 'BEGIN{print a*10000/n, u*10000/n}') $(awk -v a=$((c1-c0)) -v n=$n 'BEGIN{print a/n}')
  awk -v n=$n 'NR==FNR {a[$1]=$2; next} { d=$2-a[$1]; if (d!=0) v[$1]=d } END {
     split("dir.TcpInSegs dir.TcpOutSegs dir.TcpExtDelayedACKs dir.TW dir.TcpOutRsts dir.TcpExtTCPPureAcks cli.TcpOutSegs rs1.TcpOutSegs rs2.TcpOutSegs cli.TW rs1.TW rs2.TW dir.TcpExtTCPAbortOnData dir.TcpExtTCPAbortOnClose dir.IpExtInOctets", k, " ");
     for (i=1; i in k; i++) if (k[i] in v) printf "%s=%.2f ", k[i], v[k[i]]/n; print "" }' $D/s0 $D/s1
done
done
