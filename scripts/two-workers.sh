#!/usr/bin/env bash
# Two workers on both cores, as a user would run it: ringserve --workers 2 against nginx with
# worker_processes 2 (and lighttpd, one process), nothing pinned, wrk (-t2) sharing the box.
# Rounds alternate the servers; prints req/s, p99 and the servers' own CPU (utime+stime) per
# request, medians over the rounds. Traffic stays on 127.0.0.1, each run is bounded.
#
# Usage: scripts/two-workers.sh [--rounds N] [--duration SEC] [--conns N]
# Needs the corpus of `scripts/bench.sh --prepare` (/tmp/ringserve-bench-corpus), wrk, nginx.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CORPUS=/tmp/ringserve-bench-corpus
ROUNDS=3 DURATION=10 CONNS=128
while (( $# )); do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--duration SEC] [--conns N]" >&2; exit 2 ;;
    esac
done
[[ -d $CORPUS/small ]] || { echo "run scripts/bench.sh --prepare first" >&2; exit 1; }
(cd "$ROOT" && cargo build --release --quiet)
WORK=$(mktemp -d /tmp/ringserve-2w.XXXXXX)
PIDS=()
trap 'for p in ${PIDS[@]+"${PIDS[@]}"}; do kill "$p" 2>/dev/null; done; rm -rf "$WORK"' EXIT
read -r PORT_R PORT_N < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
mkdir -p "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
user root root;
worker_processes 2;
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
    client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp; uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
    server { listen 127.0.0.1:$PORT_N reuseport; root $CORPUS; }
}
EOF
"$ROOT/target/release/ringserve" --root "$CORPUS" --listen "127.0.0.1:$PORT_R" --workers 2 \
    --access-log off --keepalive-requests 100000 2>/dev/null &
PIDS+=($!)
nginx -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>/dev/null &
PIDS+=($!)
sleep 1
cat "$ROOT/scripts/bench/wrk-small-files.lua" >"$WORK/files.lua"

# CPU (utime+stime, clock ticks) of a process and its children (nginx's workers).
ticks() {
    local total=0 p
    for p in $1 $(pgrep -P "$1" || true); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$total"
}
run() {    # run NAME PID PORT SCENARIO -> one line: name scenario req/s p99 µs/req
    local name=$1 pid=$2 port=$3 sc=$4 args=() t0 t1 out
    case "$sc" in
        small) args=("http://127.0.0.1:$port/1k.bin") ;;
        small-files) args=(-s "$WORK/files.lua" "http://127.0.0.1:$port/") ;;
    esac
    wrk -t2 -c"$CONNS" -d1s "${args[@]}" >/dev/null 2>&1 || true
    t0=$(ticks "$pid")
    out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "${args[@]}" 2>&1)
    t1=$(ticks "$pid")
    python3 - "$name" "$sc" "$t0" "$t1" "$(getconf CLK_TCK)" "$out" <<'EOF'
import re, sys
name, sc, t0, t1, hz, out = sys.argv[1:]
reqs = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
scale = {"us": 1, "ms": 1000, "s": 1e6}[p99.group(2)]
cpu = (int(t1) - int(t0)) / int(hz) * 1e6 / reqs
print(f"{name} {sc} {rps:.0f} {float(p99.group(1)) * scale:.0f} {cpu:.2f}")
EOF
}
for ((r = 1; r <= ROUNDS; r++)); do
    for sc in small small-files; do
        run ringserve "${PIDS[0]}" "$PORT_R" "$sc"
        run nginx "${PIDS[1]}" "$PORT_N" "$sc"
    done
done >"$WORK/lines"
echo "two workers, unpinned, wrk -t2 -c$CONNS, ${DURATION}s runs, $ROUNDS rounds (medians):"
python3 - "$WORK/lines" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, sc, rps, p99, cpu = line.split()
    rows.setdefault((sc, name), []).append((float(rps), float(p99), float(cpu)))
print("| scenario | server | req/s | p99 | server CPU per request | rounds (req/s) |")
print("|---|---|--:|--:|--:|---|")
for (sc, name), v in sorted(rows.items()):
    m = [statistics.median(x[i] for x in v) for i in range(3)]
    each = ", ".join(f"{x[0]:,.0f}" for x in v)
    print(f"| {sc} | {name} | {m[0]:,.0f} | {m[1]:,.0f} µs | {m[2]:.2f} µs | {each} |")
EOF
