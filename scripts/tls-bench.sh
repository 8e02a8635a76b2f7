#!/usr/bin/env bash
# HTTPS: ringserve against nginx under one wrk load over TLS, alternating round by round as
# scripts/ab.sh does, one worker each, the server on one CPU and wrk on the other. Prints, per
# run, the server's CPU (utime+stime of its processes) per request and per MiB, and req/s and
# MiB/s. Both servers get the same certificate (ECDSA P-256, made here with openssl), TLS 1.2
# and 1.3, and their default AEAD suites. Load goes to 127.0.0.1 only; every run is bounded by
# --duration.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/tls-bench.sh [options]

Options:
  --scenario small|large   small: wrk -c64 GET /1k.bin, keep-alive (default)
                           large: wrk -c4 GET /1g.bin (throughput and CPU per MiB)
  --rounds N               rounds; each runs every server once (default 5)
  --duration SEC           measured seconds per run (default 4), after --warmup SEC (default 1)
  --bin PATH               ringserve binary (default target/release/ringserve)
  --servers LIST           comma-separated, of ringserve and nginx (default ringserve,nginx)
  --root DIR               served directory (default /tmp/ringserve-bench-corpus, which
                           scripts/bench.sh --prepare creates)
  --port N                 HTTPS port (default 8443)
  -h, --help               this message
EOF
}

die() { echo "tls-bench: error: $*" >&2; exit 1; }

SCENARIO=small ROUNDS=5 DURATION=4 WARMUP=1 PORT=8443 SERVER_CPU=0 CLIENT_CPU=1
BIN=target/release/ringserve SERVERS=ringserve,nginx ROOT_DIR=/tmp/ringserve-bench-corpus
while (( $# )); do
    case "$1" in
        --scenario) SCENARIO=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        --servers) SERVERS=$2; shift 2 ;;
        --root) ROOT_DIR=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
case "$SCENARIO" in
    small) WRK=(-c64 --timeout 10s "https://127.0.0.1:$PORT/1k.bin") ;;
    large) WRK=(-c4 --timeout 60s "https://127.0.0.1:$PORT/1g.bin") ;;
    *) die "unknown scenario $SCENARIO" ;;
esac
[[ -d $ROOT_DIR ]] || die "$ROOT_DIR is missing (scripts/bench.sh --prepare makes it)"
command -v wrk >/dev/null || die "wrk is missing (scripts/bench.sh --prepare installs it)"
IFS=, read -r -a SERVER_LIST <<<"$SERVERS"
TICKS=$(getconf CLK_TCK)
WORK=$(mktemp -d)
SERVER=""
trap '[[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"; true' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

write_nginx_conf() {
    mkdir -p "$WORK/nginx/tmp"
    cat >"$WORK/nginx/nginx.conf" <<EOF
user root root;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    types { application/octet-stream bin; }
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=10000 inactive=60s;
    keepalive_requests 100000;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$PORT ssl;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        root $ROOT_DIR;
    }
}
EOF
}

# CPU ticks of a process and its children (nginx's worker).
cpu_ticks() {
    local sum=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$sum"
}

run() {    # run SERVER: one measured run, one line of output
    local name=$1 out t0 t1
    case "$name" in
        ringserve)
            taskset -c "$SERVER_CPU" "$BIN" --root "$ROOT_DIR" --listen 127.0.0.1:0 \
                --tls-listen "127.0.0.1:$PORT" --tls-cert "$WORK/cert.pem" \
                --tls-key "$WORK/key.pem" --workers 1 --access-log off \
                --keepalive-requests 100000 >/dev/null 2>&1 & ;;
        nginx)
            write_nginx_conf
            taskset -c "$SERVER_CPU" nginx -p "$WORK/nginx/" -e "$WORK/nginx/error.log" \
                -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 & ;;
        *) die "unknown server $name" ;;
    esac
    SERVER=$!
    for _ in $(seq 50); do
        curl -sk -o /dev/null "https://127.0.0.1:$PORT/1k.bin" 2>/dev/null && break
        kill -0 "$SERVER" 2>/dev/null || die "$name did not start"
        sleep 0.1
    done
    if (( WARMUP > 0 )); then
        taskset -c "$CLIENT_CPU" wrk -t1 -d"${WARMUP}s" "${WRK[@]}" >/dev/null 2>&1 || true
    fi
    t0=$(cpu_ticks "$SERVER")
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -d"${DURATION}s" "${WRK[@]}" 2>&1)
    t1=$(cpu_ticks "$SERVER")
    kill "$SERVER"
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
    python3 "$(dirname "$0")/bench/wrk-cost.py" --throughput "$name" "$t0" "$t1" "$TICKS" "$DURATION" "$out"
}

for ((r = 1; r <= ROUNDS; r++)); do
    for s in "${SERVER_LIST[@]}"; do run "$s"; done
done
