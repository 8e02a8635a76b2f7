#!/usr/bin/env bash
# Soak: N concurrent keep-alive connections (wrk) plus a client doing churn, ranges, slow
# reads and aborted downloads, for a fixed time, against one ringserve on loopback. Samples
# the server's RSS, descriptors and threads from its /metrics every few seconds, plots them
# (PNG, with gnuplot) and fails if memory or descriptors grow without bound, descriptors are
# not given back once the load stops, or any response is wrong.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/soak.sh [--duration SECONDS] [--conns N] [--out DIR] [BINARY]

Defaults: 600 s, 10,000 connections, results in perf/out/soak-DATE, BINARY
target/release/ringserve. Everything runs on 127.0.0.1; the scratch files live under /tmp.
EOF
}

DURATION=600 CONNS=10000 BIN=target/release/ringserve OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) BIN=$1; shift ;;
    esac
done
[ -x "$BIN" ] || { echo "soak: $BIN is not an executable" >&2; exit 1; }
OUT=${OUT:-perf/out/soak-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/soak.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((CONNS + 1000)) ] || { echo "soak: ulimit -n $(ulimit -n) is too low for $CONNS connections" >&2; exit 1; }

mkdir -p "$WORK/www/small"
head -c 1024 /dev/urandom > "$WORK/www/1k.bin"
head -c $((8 << 20)) /dev/urandom > "$WORK/www/8m.bin"
for i in $(seq 0 99); do head -c $((512 + i * 97)) /dev/urandom > "$WORK/www/small/$i.bin"; done

PORT=18600 ADMIN=18601
"$BIN" --root "$WORK/www" --listen 127.0.0.1:$PORT --workers 2 --access-log off \
    --admin 127.0.0.1:$ADMIN --keepalive-requests 100000 2>"$OUT/server.log" &
PIDS+=($!)
SERVER=$!
until curl -sf -o /dev/null "http://127.0.0.1:$ADMIN/healthz"; do :; done

metric() { awk -v m="$1" '$1 == m {print $2}'; }
sample() {
    local t=$1 text
    text=$(curl -sf "http://127.0.0.1:$ADMIN/metrics") || return 0
    echo "$t $(metric process_resident_memory_bytes <<<"$text") $(metric process_open_fds <<<"$text") $(metric process_threads <<<"$text")"
}

cat > "$WORK/small.lua" <<'EOF'
local reqs = {}
function init(args)
  math.randomseed(20261205)
  for i = 0, 99 do reqs[#reqs + 1] = wrk.format("GET", "/small/" .. i .. ".bin") end
  reqs[#reqs + 1] = wrk.format("GET", "/1k.bin")
end
function request() return reqs[math.random(#reqs)] end
EOF

# The odd clients: churn, ranges checked byte for byte, a slow reader, aborted downloads.
cat > "$WORK/odd.py" <<'EOF'
import os, random, socket, sys, time
port, root, until = int(sys.argv[1]), sys.argv[2], time.time() + float(sys.argv[3])
big = open(os.path.join(root, "8m.bin"), "rb").read()
wrong = done = 0
def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    return s
def response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d: raise IOError("closed")
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
    while len(body) < length:
        d = s.recv(1 << 20)
        if not d: raise IOError("short body")
        body += d
    return head.split(b" ")[1], body
rnd = random.Random(5)
while time.time() < until:
    kind = rnd.randrange(4)
    try:
        s = conn()
        if kind == 0:  # churn
            s.sendall(b"GET /1k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status, body = response(s)
            ok = status == b"200" and body == open(os.path.join(root, "1k.bin"), "rb").read()
        elif kind == 1:  # a range
            a = rnd.randrange(len(big)); b = min(len(big) - 1, a + rnd.randrange(1 << 16))
            s.sendall(b"GET /8m.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=%d-%d\r\n\r\n" % (a, b))
            status, body = response(s)
            ok = status == b"206" and body == big[a:b + 1]
        elif kind == 2:  # a slow reader
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            s.sendall(b"GET /8m.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            for _ in range(20):
                got += s.recv(8192); time.sleep(0.01)
            ok = got.startswith(b"HTTP/1.1 200")
        else:  # an aborted download, with a reset
            s.sendall(b"GET /8m.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(65536)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            ok = True
        s.close()
    except Exception as e:
        ok = False
        print("error:", kind, e, file=sys.stderr)
    done += 1
    wrong += not ok
print(f"odd clients: {done} exchanges, {wrong} wrong")
sys.exit(1 if wrong else 0)
EOF

echo "soak: $CONNS connections for ${DURATION}s against $BIN ($(date -u +%FT%TZ), $(uname -r))"
# Warm-up with the same mix, so the bounded caches (open files, pooled pipes, prebuilt
# responses) are full before the count at rest is taken.
wrk -t1 -c64 -d10s -s "$WORK/small.lua" "http://127.0.0.1:$PORT/" > /dev/null 2>&1
/usr/bin/python3 "$WORK/odd.py" $PORT "$WORK/www" 10 > /dev/null 2>&1 || true
sleep 3
sample 0 > "$OUT/samples.txt"
wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$WORK/small.lua" \
    "http://127.0.0.1:$PORT/" > "$OUT/wrk.txt" 2>&1 &
WRK=$!
/usr/bin/python3 "$WORK/odd.py" $PORT "$WORK/www" "$DURATION" > "$OUT/odd.txt" 2>"$OUT/odd-errors.txt" &
ODD=$!
START=$(date +%s)
while kill -0 $WRK 2>/dev/null; do
    sleep 5
    sample $(( $(date +%s) - START )) >> "$OUT/samples.txt"
done
wait $WRK || true
ODD_OK=0; wait $ODD || ODD_OK=$?
# The load is gone: every connection's descriptor must come back.
sleep 3
sample $(( $(date +%s) - START )) >> "$OUT/samples.txt"

cat "$OUT/wrk.txt" | sed -n '/requests in/,$p'
cat "$OUT/odd.txt"
awk -v d="$DURATION" '
    NR == 1 { fd0 = $3 }
    $1 >= d * 0.2 && !warm { rss_warm = $2; warm = 1 }
    { rss_max = ($2 > rss_max ? $2 : rss_max); fd_max = ($3 > fd_max ? $3 : fd_max); last_fd = $3; rss_end = $2 }
    END {
        printf "rss: %.1f MiB after warm-up, %.1f MiB at the end, %.1f MiB at most\n", rss_warm / 1048576, rss_end / 1048576, rss_max / 1048576
        printf "fds: %d at rest after warm-up, %d at most, %d after the load\n", fd0, fd_max, last_fd
        bad = 0
        if (rss_max > rss_warm * 1.25 + 8388608) { print "FAIL: memory grew after warm-up"; bad = 1 }
        if (last_fd > fd0 + 16) { print "FAIL: descriptors not given back"; bad = 1 }
        exit bad
    }' "$OUT/samples.txt" > "$OUT/verdict.txt" || VERDICT=1
cat "$OUT/verdict.txt"
ERRORS=$(awk '/Non-2xx/ {print $NF}' "$OUT/wrk.txt"); ERRORS=${ERRORS:-0}
echo "wrk non-2xx: $ERRORS; $(grep 'Socket errors' "$OUT/wrk.txt" || echo 'no socket errors')"
if command -v gnuplot >/dev/null; then
    gnuplot <<EOF
set terminal png size 900,500
set output "$OUT/soak.png"
set xlabel "seconds"
set ylabel "RSS (MiB)"
set y2label "open descriptors"
set y2tics
set title "ringserve soak: $CONNS connections"
plot "$OUT/samples.txt" using 1:(\$2/1048576) with lines title "RSS", \
     "" using 1:3 axes x1y2 with lines title "fds"
EOF
    echo "plot: $OUT/soak.png"
fi
[ "${VERDICT:-0}" = 0 ] && [ "$ODD_OK" = 0 ] && [ "$ERRORS" = 0 ]
