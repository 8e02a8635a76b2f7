#!/usr/bin/env bash
# The upload issue's demonstration, end to end with real clients: a 256 MiB upload is cut by
# `kill -9` of the server after about 100 MiB, the server is restarted, the upload resumes
# and the published file's sha256 is compared with the source. Once with tuspy (Debian's
# python3-tuspy), once with the plain curl PUT flow (Content-Range chunks). Loopback only;
# everything lives in a scratch directory under /tmp that is removed afterwards.
set -euo pipefail

BIN=${1:-target/release/ringserve}
[ -x "$BIN" ] || { echo "upload-resume-demo: build first (cargo build --release)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/upload-demo.XXXXXX)
PORT=18491
SERVER=""
cleanup() { [ -n "$SERVER" ] && kill -9 "$SERVER" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/root"
head -c 256M /dev/urandom > "$WORK/src.bin"
WANT=$(sha256sum "$WORK/src.bin" | cut -d' ' -f1)
SIZE=$(stat -c %s "$WORK/src.bin")

start() {
    "$BIN" --root "$WORK/root" --listen 127.0.0.1:$PORT --workers 2 --access-log off \
        --uploads /incoming/ --upload-auth none 2>>"$WORK/server.log" &
    SERVER=$!
    until curl -s -o /dev/null "http://127.0.0.1:$PORT/"; do :; done
}

# Kills the server (SIGKILL) once an unfinished upload in the state directory holds 100 MiB.
kill_at_100mib() {
    local part
    while :; do
        part=$(find "$WORK/root/.ringserve-uploads" -name '*.part' -size +100M 2>/dev/null | head -1)
        if [ -n "$part" ]; then
            kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null || true
            SERVER=""
            echo "  killed the server with $(( $(stat -c %s "$part") >> 20 )) MiB stored"
            return
        fi
    done
}

check() {
    local got; got=$(sha256sum "$WORK/root/incoming/$1" | cut -d' ' -f1)
    if [ "$got" = "$WANT" ]; then echo "  published $1: sha256 matches ($got)"; else
        echo "  published $1: sha256 $got differs from $WANT"; exit 1; fi
}

echo "$(date -u +%FT%TZ) $(uname -r): 256 MiB, server killed at ~100 MiB"
echo "tuspy (8 MiB chunks):"
cat > "$WORK/tus.py" <<'EOF'
import sys
from tusclient import client
url, path, store = sys.argv[1], sys.argv[2], sys.argv[3]
c = client.TusClient(url)
try:
    known = open(store).read().strip()
except FileNotFoundError:
    known = ""
u = c.uploader(path, chunk_size=8 << 20, metadata={"filename": "tus.bin"}, url=known or None)
if not known:
    u.set_url(u.create_url())
    open(store, "w").write(u.url)
try:
    u.upload()
    print("  tuspy finished at offset", u.offset)
except Exception as e:
    print("  tuspy stopped:", type(e).__name__)
EOF
start
/usr/bin/python3 "$WORK/tus.py" "http://127.0.0.1:$PORT/incoming/" "$WORK/src.bin" "$WORK/tus.url" &
CLIENT=$!
kill_at_100mib
wait "$CLIENT" || true
start
echo "  restarted; offset now $(curl -sI -H 'Tus-Resumable: 1.0.0' "$(cat "$WORK/tus.url")" | tr -d '\r' | awk -F': ' 'tolower($1)=="upload-offset"{print $2}')"
/usr/bin/python3 "$WORK/tus.py" "http://127.0.0.1:$PORT/incoming/" "$WORK/src.bin" "$WORK/tus.url"
check tus.bin

echo "curl PUT (16 MiB Content-Range chunks):"
put_from() {
    local off=$1 chunk=$((16 << 20)) end
    while [ "$off" -lt "$SIZE" ]; do
        end=$(( off + chunk < SIZE ? off + chunk : SIZE ))
        dd if="$WORK/src.bin" of="$WORK/chunk" bs=1M iflag=skip_bytes,count_bytes \
            skip="$off" count=$((end - off)) status=none
        curl -sf -o /dev/null -X PUT -H "Content-Range: bytes $off-$((end - 1))/$SIZE" \
            --data-binary @"$WORK/chunk" "http://127.0.0.1:$PORT/incoming/put.bin" || return 1
        off=$end
    done
}
kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null || true
SERVER=""
start
( put_from 0 || echo "  curl stopped" ) &
CLIENT=$!
kill_at_100mib
wait "$CLIENT" || true
start
OFF=$(curl -sI "http://127.0.0.1:$PORT/incoming/put.bin" | tr -d '\r' | awk -F': ' 'tolower($1)=="upload-offset"{print $2}')
echo "  restarted; HEAD says Upload-Offset: $OFF"
put_from "$OFF"
check put.bin
