#!/usr/bin/env bash
# A/B two (or more) ringserve builds or settings under one wrk load, alternating them round by
# round so that a noisy machine affects each alike. Prints, per run, the server's CPU
# (utime+stime) per request and per MiB sent, and req/s. perf/PROFILING.md section 7 says how
# to read it. Load goes to 127.0.0.1 only; every run is bounded by --duration.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/ab.sh [options] VARIANT VARIANT...

A VARIANT is a ringserve binary, optionally followed by ':' and extra flags, and by '@' and
environment settings, e.g.
    target/release/ringserve
    /tmp/old/ringserve:--backend epoll
    target/release/ringserve:--body splice@RUST_LOG=x

Options:
  --rounds N        rounds; each runs every variant once, in order (default 4)
  --wrk ARGS        wrk arguments after -t1 (default: -c64 http://127.0.0.1:PORT/1k.bin);
                    PORT is replaced by --port; split at spaces, so headers go in --header
  --header 'NAME: VALUE'
                    a request header for wrk (repeatable); wrk drops a header that lacks the
                    space after the colon, without a word, so one without it is refused
  --duration SEC    measured seconds per run (default 4), after --warmup SEC (default 1)
  --root DIR        served directory (default /tmp/ringserve-bench-corpus, which
                    scripts/bench.sh --prepare creates)
  --port N          listen port (default 8099)
  --server-cpu N    CPU the server is pinned to (default 0); wrk goes to --client-cpu (default 1)
  -h, --help        this message

Example (churn, two builds):
  scripts/ab.sh --header 'Connection: close' /tmp/before target/release/ringserve
EOF
}

die() { echo "ab: error: $*" >&2; exit 1; }

ROUNDS=4 DURATION=4 WARMUP=1 PORT=8099 SERVER_CPU=0 CLIENT_CPU=1
ROOT_DIR=/tmp/ringserve-bench-corpus
WRK_ARGS="-c64 http://127.0.0.1:PORT/1k.bin"
VARIANTS=()
HEADERS=()
while (( $# )); do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --wrk) WRK_ARGS=$2; shift 2 ;;
        --header)
            [[ $2 == *": "* ]] || die "--header '$2': wrk wants 'NAME: VALUE' (a space after the colon)"
            HEADERS+=(-H "$2"); shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --root) ROOT_DIR=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --server-cpu) SERVER_CPU=$2; shift 2 ;;
        --client-cpu) CLIENT_CPU=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) VARIANTS+=("$1"); shift ;;
    esac
done
(( ${#VARIANTS[@]} >= 1 )) || die "no variant given (see --help)"
[[ -d $ROOT_DIR ]] || die "$ROOT_DIR is missing (scripts/bench.sh --prepare makes it)"
command -v wrk >/dev/null || die "wrk is missing (scripts/bench.sh --prepare installs it)"
read -r -a WRK <<<"${WRK_ARGS//PORT/$PORT}"
for arg in "${WRK[@]}"; do
    [[ $arg == -H* || $arg == --header* ]] && die "give headers with --header, not in --wrk (its words are split at spaces)"
done
WRK=(${HEADERS[@]+"${HEADERS[@]}"} "${WRK[@]}")
TICKS=$(getconf CLK_TCK)

SERVER=""
trap '[[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null; true' EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() {    # run VARIANT: one measured run, one line of output
    local spec=$1 envs=() bin flags=() out t0 t1
    if [[ $spec == *@* ]]; then read -r -a envs <<<"${spec#*@}"; spec=${spec%%@*}; fi
    bin=${spec%%:*}
    if [[ $spec == *:* ]]; then read -r -a flags <<<"${spec#*:}"; fi
    [[ -x $bin ]] || die "$bin is not an executable"
    env ${envs[@]+"${envs[@]}"} taskset -c "$SERVER_CPU" "$bin" --root "$ROOT_DIR" \
        --listen "127.0.0.1:$PORT" --workers 1 --access-log off --keepalive-requests 100000 \
        ${flags[@]+"${flags[@]}"} >/dev/null 2>&1 &
    SERVER=$!
    for _ in $(seq 50); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && break
        kill -0 "$SERVER" 2>/dev/null || die "$1 did not start"
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
    python3 "$(dirname "$0")/bench/wrk-cost.py" "$1" "$t0" "$t1" "$TICKS" "$DURATION" "$out"
}

for ((r = 1; r <= ROUNDS; r++)); do
    for v in "${VARIANTS[@]}"; do run "$v"; done
done
