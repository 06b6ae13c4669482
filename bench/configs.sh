# bench/configs.sh: the configurations the benchmarks give their real servers and rvsd, written
# once for every topology (sourced by bench/run.sh and bench/conn_diag.sh).
#
#   bench_backend_nginx_conf DIR ROOT BODY NOFILE LISTEN...: an nginx real server (DIR/nginx.conf)
#       serving GET / (BODY), /1m (ROOT/1m if present) and /bench-status on each LISTEN address
#   bench_rvsd_toml FILE SOCKET RELAY ADDRESS REAL...: rvsd with one rr TCP service on ADDRESS
#       in front of the REAL servers, its API on SOCKET, relay RELAY
#   bench_haproxy_tcp_cfg FILE THREADS MAXCONN BIND REAL...: HAProxy in mode tcp, round robin over
#       the REAL servers, splice-auto, listening on BIND

bench_backend_nginx_conf() {
  local d=$1 root=$2 body=$3 nofile=$4 listen
  shift 4
  mkdir -p "$d"
  {
    cat <<EOF
user root;
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile $nofile;
events { worker_connections $nofile; }
http {
  access_log off;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 600s;
  keepalive_requests 10000000;
  root $root;
  server {
EOF
    for listen in "$@"; do echo "    listen $listen backlog=4096;"; done
    cat <<EOF
    location = / { default_type text/plain; return 200 "$body\n"; }
    location = /1m { }
    # new connections accepted by the real server (the benchmarks read accepts around each run)
    location = /bench-status { stub_status; }
  }
}
EOF
  } >"$d/nginx.conf"
}

bench_rvsd_toml() {
  local file=$1 socket=$2 relay=$3 address=$4 real
  shift 4
  {
    cat <<EOF
[api]
socket = "$socket"
[director]
relay = "$relay"
drain_timeout_secs = 1
[[service]]
address = "$address"
scheduler = "rr"
EOF
    for real in "$@"; do printf '  [[service.real_server]]\n  address = "%s"\n' "$real"; done
  } >"$file"
}

bench_haproxy_tcp_cfg() {
  local file=$1 threads=$2 maxconn=$3 bind=$4 i=0 real
  shift 4
  {
    printf 'global\n  nbthread %s\n  maxpipes 256\n  maxconn %s\n' "$threads" "$maxconn"
    printf 'defaults\n  mode tcp\n  option splice-auto\n  timeout connect 3s\n  timeout client 600s\n  timeout server 600s\n'
    printf 'frontend fe\n  bind %s\n  backlog 4096\n  default_backend be\n' "$bind"
    printf 'backend be\n  balance roundrobin\n'
    for real in "$@"; do
      i=$((i + 1))
      printf '  server s%d %s\n' "$i" "$real"
    done
  } >"$file"
}
