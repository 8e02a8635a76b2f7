#!/usr/bin/env bash
# Server CPU per GiB received: ringserve's plain PUT, its tus PATCH with a checksum, and
# nginx's dav PUT (client_body path), one 1 GiB upload per run over loopback, the variants
# alternated round by round. The server is pinned to one CPU, curl to another; the figures
# are the server processes' utime and stime (from /proc) over each upload.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/upload-bench.sh [--rounds N] [--size MiB] [--sync always|close]
                               [--backend uring|epoll] [BINARY]

BINARY defaults to target/release/ringserve. Uploads go to 127.0.0.1 only, into a scratch
directory under /tmp that is removed afterwards. nginx (Debian's, with the dav module) is
skipped with a note when absent.
EOF
}

ROUNDS=3 SIZE=1024 SYNC=close BACKEND=auto BIN=target/release/ringserve
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --sync) SYNC=$2; shift 2 ;;
        --backend) BACKEND=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) BIN=$1; shift ;;
    esac
done
[ -x "$BIN" ] || { echo "upload-bench: $BIN is not an executable (cargo build --release)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/upload-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

SRC=$WORK/src.bin
head -c "${SIZE}M" /dev/urandom > "$SRC"
SHA1=$(openssl dgst -sha1 -binary "$SRC" | base64)
TICK=$(getconf CLK_TCK)

# utime and stime (ticks) summed over the processes given.
cpu() {
    local u=0 s=0
    for p in "$@"; do
        read -r pu ps < <(awk '{print $14, $15}' "/proc/$p/stat")
        u=$((u + pu)) s=$((s + ps))
    done
    echo "$u $s"
}

# measure NAME "PIDS" CMD...: runs CMD (pinned to CPU 1) and prints the servers' CPU per GiB.
measure() {
    local name=$1 pids=$2; shift 2
    read -r u0 s0 < <(cpu $pids)
    local t0; t0=$(date +%s.%N)
    local code; code=$(taskset -c 1 "$@")
    local t1; t1=$(date +%s.%N)
    read -r u1 s1 < <(cpu $pids)
    awk -v n="$name" -v c="$code" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$TICK" \
        -v t="$(echo "$t1 - $t0" | bc)" -v mib="$SIZE" 'BEGIN {
        gib = mib / 1024
        printf "%-22s status %s  user %6.0f ms/GiB  sys %6.0f ms/GiB  %7.0f MiB/s\n",
            n, c, u * 1000 / hz / gib, s * 1000 / hz / gib, mib / t }'
}

mkdir -p "$WORK/rs" "$WORK/ng/incoming" "$WORK/ng/tmp"
taskset -c 0 "$BIN" --root "$WORK/rs" --listen 127.0.0.1:18481 --workers 1 --access-log off \
    --uploads /incoming/ --upload-auth none --upload-sync "$SYNC" --upload-overwrite \
    --backend "$BACKEND" 2>/dev/null &
PIDS+=($!)
RS=$!

NGINX=$(command -v nginx || true)
NG=""
if [ -n "$NGINX" ]; then
    cat > "$WORK/nginx.conf" <<EOF
daemon off;
user root root;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $WORK/ng/tmp;
    client_max_body_size 0;
    server {
        listen 127.0.0.1:18482;
        root $WORK/ng;
        location /incoming/ { dav_methods PUT; }
    }
}
EOF
    taskset -c 0 "$NGINX" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" &
    PIDS+=($!)
    NG=$!
else
    echo "nginx not found: its dav PUT is not measured"
fi
sleep 0.5
NG_WORKERS=""
if [ -n "$NG" ]; then NG_WORKERS="$NG $(pgrep -P "$NG" | tr '\n' ' ')"; fi

echo "$(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs; ${SIZE} MiB per upload, --upload-sync $SYNC, --backend $BACKEND"
for r in $(seq "$ROUNDS"); do
    echo "round $r"
    measure "ringserve PUT" "$RS" curl -s -o /dev/null -w '%{http_code}' -T "$SRC" \
        "http://127.0.0.1:18481/incoming/put-$r.bin"
    loc=$(curl -s -D - -o /dev/null -X POST -H 'Tus-Resumable: 1.0.0' \
        -H "Upload-Length: $((SIZE << 20))" -H 'Content-Length: 0' \
        http://127.0.0.1:18481/incoming/ | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
    measure "ringserve tus+sha1" "$RS" curl -s -o /dev/null -w '%{http_code}' -X PATCH \
        -H 'Tus-Resumable: 1.0.0' -H 'Content-Type: application/offset+octet-stream' \
        -H 'Upload-Offset: 0' -H "Upload-Checksum: sha1 $SHA1" -T "$SRC" \
        "http://127.0.0.1:18481$loc"
    if [ -n "$NG" ]; then
        measure "nginx dav PUT" "$NG_WORKERS" curl -s -o /dev/null -w '%{http_code}' -T "$SRC" \
            "http://127.0.0.1:18482/incoming/put-$r.bin"
    fi
    rm -f "$WORK"/rs/incoming/* "$WORK"/ng/incoming/*
done
