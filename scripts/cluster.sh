#!/usr/bin/env bash
# A fleet on loopback: HAProxy in front of three ringserve nodes, each serving its own rsync'd
# copy of one tree, health-checked on /readyz, `balance uri` with consistent hashing (the
# README's "Running a fleet" backend). Checks what a mirror operator relies on and prints one
# line per check, exiting non-zero if any fails:
#   1. the nodes agree: every file has the same ETag on every node, and a range carrying
#      If-Range with node 1's ETag gets 206 from node 3;
#   2. aria2c -x8 through the balancer: the download's sha256 is the file's;
#   3. a download cut off on node 1 and resumed with `curl -C -` on node 2 is exact;
#   4. a rolling restart of every node (SIGTERM, --drain-delay, exit, start again, back UP in
#      HAProxy) under a steady wrk load through the balancer: no failed request (non-200,
#      wrong length, socket error).
# Everything listens on 127.0.0.1 on free ports; the work directory is removed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=""
BIG_MIB=256
SMALL_FILES=200
DRAIN=3s
BACKEND=auto
KEEP=0

usage() {
    cat <<EOF
Usage: scripts/cluster.sh [options]

Needs haproxy, rsync, aria2c, curl, wrk and python3 (Debian: haproxy rsync aria2 curl wrk
python3); builds target/release/ringserve unless --bin is given.

Options:
  --bin PATH       the ringserve binary to run (default: build and use target/release/ringserve)
  --quick          a 32 MiB file instead of $BIG_MIB MiB (what the test suite runs)
  --drain DURATION each node's --drain-delay (default: $DRAIN; HAProxy needs about 1 s to
                   see a node leave: two 500 ms checks)
  --backend NAME   the nodes' --backend (default: auto)
  --keep           keep the work directory (logs, configuration, trees)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN=$2; shift 2 ;;
        --quick) BIG_MIB=32; shift ;;
        --drain) DRAIN=$2; shift 2 ;;
        --backend) BACKEND=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "cluster.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

for tool in haproxy rsync aria2c curl wrk python3 sha256sum; do
    type -P "$tool" >/dev/null || { echo "cluster.sh: $tool is not installed" >&2; exit 2; }
done
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
    BIN="$ROOT/target/release/ringserve"
fi

WORK=$(mktemp -d /tmp/ringserve-cluster.XXXXXX)
declare -a NODE_PID=()
HAPROXY_PID=""
WRK_PID=""
cleanup() {
    local pid
    for pid in "${NODE_PID[@]}" $HAPROXY_PID $WRK_PID; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "$KEEP" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

FAILED=0
check() {    # check NAME CONDITION-STATUS DETAIL
    if [ "$2" = 0 ]; then echo "ok    $1: $3"; else echo "FAIL  $1: $3"; FAILED=1; fi
}
# Polls COMMAND every 100 ms until it succeeds, for at most SECONDS.
wait_for() {
    local seconds=$1; shift
    local tries=$((seconds * 10))
    until "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || return 1
        sleep 0.1
    done
}

# Free ports, all held until every one is chosen so none repeats: the balancer, its stats page,
# and a listener and an admin port per node.
read -r -a PORTS < <(python3 -c '
import socket
s = [socket.socket() for _ in range(8)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
FRONT=${PORTS[0]} STATS=${PORTS[1]}
node_port() { echo "${PORTS[$((2 * $1))]}"; }
admin_port() { echo "${PORTS[$((2 * $1 + 1))]}"; }

# The tree: one large file, many small ones; each node gets an `rsync -a` copy (mtimes kept).
mkdir -p "$WORK/tree/small"
head -c $((BIG_MIB << 20)) /dev/urandom > "$WORK/tree/big.bin"
python3 - "$WORK/tree/small" "$SMALL_FILES" <<'EOF'
import os, sys
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], f"{i}.bin"), "wb") as f:
        f.write(os.urandom(1024))
EOF
for n in 1 2 3; do rsync -a "$WORK/tree/" "$WORK/node$n/"; done
BIG_SHA=$(sha256sum < "$WORK/tree/big.bin" | cut -d' ' -f1)

start_node() {
    local n=$1
    "$BIN" --root "$WORK/node$n" --listen "127.0.0.1:$(node_port "$n")" \
        --admin "127.0.0.1:$(admin_port "$n")" --drain-delay "$DRAIN" --grace 5s --backend "$BACKEND" \
        --access-log off >>"$WORK/node$n.log" 2>&1 &
    NODE_PID[n]=$!
    wait_for 10 curl -sf "http://127.0.0.1:$(admin_port "$n")/readyz" ||
        { echo "node $n did not start:" >&2; tail "$WORK/node$n.log" >&2; exit 1; }
}
for n in 1 2 3; do start_node "$n"; done

cat >"$WORK/haproxy.cfg" <<EOF
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend fleet
    bind 127.0.0.1:$FRONT
    default_backend origins
frontend stats
    bind 127.0.0.1:$STATS
    stats enable
    stats uri /stats
backend origins
    balance uri
    hash-type consistent
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
EOF
for n in 1 2 3; do
    echo "    server node$n 127.0.0.1:$(node_port "$n") check port $(admin_port "$n")" >>"$WORK/haproxy.cfg"
done
haproxy -q -c -f "$WORK/haproxy.cfg"
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!

# A server's field in HAProxy's CSV statistics (18: status, 8: sessions in total).
server_field() {
    curl -sf "http://127.0.0.1:$STATS/stats;csv" |
        awk -F, -v s="node$1" -v f="$2" '$1 == "origins" && $2 == s { print $f }'
}
is_up() { [ "$(server_field "$1" 18)" = UP ]; }
is_down() { [ "$(server_field "$1" 18)" = DOWN ]; }
since() { local ms=$((($(date +%s%N) - $1) / 1000000)); echo "$((ms / 1000)).$((ms % 1000 / 100))"; }
for n in 1 2 3; do
    wait_for 10 is_up "$n" || { echo "HAProxy never saw node $n up" >&2; exit 1; }
done
echo "fleet: haproxy 127.0.0.1:$FRONT -> nodes 127.0.0.1:$(node_port 1),$(node_port 2),$(node_port 3) ($BACKEND backend, $BIG_MIB MiB + $SMALL_FILES small files, rsync -a copies)"

# 1. Validators agree across nodes.
etag() { curl -sfI "http://127.0.0.1:$(node_port "$1")$2" | tr -d '\r' | awk -F': ' 'tolower($1) == "etag" { print $2 }'; }
disagree=0
for path in /big.bin $(seq -f "/small/%g.bin" 0 $((SMALL_FILES - 1))); do
    a=$(etag 1 "$path") b=$(etag 2 "$path") c=$(etag 3 "$path")
    if [ -z "$a" ] || [ "$a" != "$b" ] || [ "$a" != "$c" ]; then disagree=$((disagree + 1)); fi
done
check "validators" "$disagree" "$((SMALL_FILES + 1)) files, $disagree with ETags differing between nodes"
tag=$(etag 1 /big.bin)
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Range: bytes=100-199" -H "If-Range: $tag" \
    "http://127.0.0.1:$(node_port 3)/big.bin")
[ "$status" = 206 ]
check "if-range" $? "Range with node 1's ETag $tag on node 3: $status"

# 2. aria2c, eight connections through the balancer.
mkdir -p "$WORK/dl"
aria2c -q -x8 -s8 -k1M --file-allocation=none --allow-overwrite=true -d "$WORK/dl" -o aria.bin \
    "http://127.0.0.1:$FRONT/big.bin"
sha=$(sha256sum < "$WORK/dl/aria.bin" | cut -d' ' -f1)
[ "$sha" = "$BIG_SHA" ]
check "aria2c -x8" $? "sha256 ${sha:0:16}… (file ${BIG_SHA:0:16}…)"

# 3. Cut off on node 1, resumed on node 2.
half=$(((BIG_MIB << 20) / 2 + 12345))
{ curl -s "http://127.0.0.1:$(node_port 1)/big.bin" || true; } | head -c "$half" >"$WORK/dl/resumed.bin"
curl -s -C - -o "$WORK/dl/resumed.bin" "http://127.0.0.1:$(node_port 2)/big.bin"
sha=$(sha256sum < "$WORK/dl/resumed.bin" | cut -d' ' -f1)
[ "$sha" = "$BIG_SHA" ]
check "curl -C -" $? "$half bytes from node 1, the rest from node 2: sha256 ${sha:0:16}…"

# 4. Rolling restart under load: wrk spreads requests over the small files (so every node
#    has a share) and counts any answer that is not a 200 of exactly 1 KiB.
cat >"$WORK/spread.lua" <<EOF
local n = 0
request = function()
    n = n + 1
    return wrk.format("GET", "/small/" .. (n % $SMALL_FILES) .. ".bin")
end
bad = 0
response = function(status, headers, body)
    if status ~= 200 or #body ~= 1024 then bad = bad + 1 end
end
done = function(summary, latency, requests)
    io.write(string.format("bad responses: %d\n", bad))
end
EOF
before=()
for n in 1 2 3; do before[n]=$(server_field "$n" 8); done
wrk -t1 -c32 -d600s -s "$WORK/spread.lua" "http://127.0.0.1:$FRONT/" >"$WORK/wrk.out" 2>&1 &
WRK_PID=$!
restart_ok=0
for n in 1 2 3; do
    t0=$(date +%s%N)
    kill -TERM "${NODE_PID[n]}"
    wait_for 10 is_down "$n" || { echo "HAProxy never saw node $n leave" >&2; restart_ok=1; }
    down=$(since "$t0")
    wait "${NODE_PID[n]}" || true
    exited=$(since "$t0")
    start_node "$n"
    wait_for 10 is_up "$n" || { echo "HAProxy never saw node $n back" >&2; restart_ok=1; }
    echo "      node $n: SIGTERM; DOWN in HAProxy after $down s, exited after $exited s, UP again after $(since "$t0") s"
done
# Two more seconds of load on the restarted fleet, then wrk prints its totals on SIGINT.
sleep 2
kill -INT "$WRK_PID"
wait "$WRK_PID" || true
WRK_PID=""
total=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")
non2xx=$(awk '/Non-2xx/ { print $NF }' "$WORK/wrk.out")
socket=$(awk -F'[ ,]+' '/Socket errors/ { print $4 + $6 + $8 + $10 }' "$WORK/wrk.out")
bad=$(awk '/bad responses:/ { print $3 }' "$WORK/wrk.out")
failed=$((${non2xx:-0} + ${socket:-0}))
[ -n "$bad" ] && [ "$bad" -gt "$failed" ] && failed=$bad
spread=""
for n in 1 2 3; do spread+=" node$n=$(($(server_field "$n" 8) - before[n]))"; done
[ -n "$total" ] && [ "$total" -gt 0 ] && [ "$failed" = 0 ] && [ "$restart_ok" = 0 ]
check "rolling restart" $? "$total requests through the balancer, $failed failed (non-200 ${non2xx:-0}, socket errors ${socket:-0}, wrong bodies ${bad:-?}); sessions per node:$spread"
echo "failed requests: $failed"

exit "$FAILED"
