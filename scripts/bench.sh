#!/usr/bin/env bash
# Compare ringserve with nginx and lighttpd on loopback: same corpus, one worker each, server and
# wrk pinned to separate CPUs, servers in alternation, medians of several runs. Prints a markdown
# table and writes it (plus a PNG chart of the cost ratios) to perf/out/.
# Run `scripts/bench.sh --help` for the options; perf/PROFILING.md explains the numbers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR="$ROOT/scripts/bench"
HELPER=(python3 "$BENCH_DIR/bench.py")
shell_quote() {    # quote only words that need it, so the recorded command line stays readable
    local w out=()
    for w in "$@"; do
        if [[ "$w" =~ ^[A-Za-z0-9_./,=:@%+-]+$ ]]; then out+=("$w"); else out+=("'${w//\'/\'\\\'\'}'"); fi
    done
    echo "${out[*]}"
}
COMMAND_LINE="$(shell_quote "$0" "$@")"
if [[ -n "${RINGSERVE_ARGS:-}" ]]; then
    COMMAND_LINE="RINGSERVE_ARGS=$(shell_quote "$RINGSERVE_ARGS") $COMMAND_LINE"
fi

ALL_SERVERS="ringserve ringserve-epoll ringserve-static nginx nginx-nocork lighttpd floor floor-sendfile"
MUSL_TARGET=x86_64-unknown-linux-musl
ALL_SCENARIOS="small small-files large large-paced large-sink range churn idle10k https-small https-large https-churn"

SERVERS="ringserve,nginx,nginx-nocork,lighttpd,floor"
SCENARIOS="small,small-files,large,range,churn,idle10k"
DURATION="" WARMUP="" RUNS=""
SERVER_CPU=0
CLIENT_CPU=1
QUICK=0
INSTALL=1
BUILD=1
CORPUS="/tmp/ringserve-bench-corpus"
PACE=200m    # per connection in large-paced: 4 x 200 MiB/s, below every server's unpaced rate
OUT_DIR="$ROOT/perf/out"
IDLE_CONNS=10000
MAX_OTHERS=10
MAX_ATTEMPTS=3
KEEP_TMP=0
PREPARE_ONLY=0

usage() {
    cat <<EOF
Usage: scripts/bench.sh [options]

Benchmarks ringserve against nginx and lighttpd on 127.0.0.1 with wrk, and writes
perf/out/bench-YYYYmmdd-HHMMSS.md (the table printed on stdout) and .png (the cost ratios).
Installs wrk, nginx, lighttpd and gnuplot-nox with apt-get when missing; builds ringserve with
'cargo build --release'. Needs root (apt-get, ulimit -n, /proc of the servers).

Options:
  --servers LIST      comma-separated, in the order they alternate (default: $SERVERS)
                      known: ${ALL_SERVERS// /, }
                      ringserve-epoll = ringserve with '--backend epoll'
                      ringserve-static = the static musl build (README: static binary); needs
                      rustup and musl-tools, which are installed when missing
                      nginx-nocork = nginx with 'tcp_nopush off' (its default): on loopback,
                      'tcp_nopush on' stalls 64 KiB ranges on delayed ACKs
                      floor = the cheapest responder one can write (examples/floor.rs: one
                      fixed 1 KiB answer from memory, one send per request head; in range,
                      a 206 head with send and one sendfile of the range), the floor no
                      file server can go below; it runs small, small-files, churn and range
                      only, and every server's cost there is also printed as a ratio to it
                      floor-sendfile = the same floor with its answers in a memfd, each sent
                      with one sendfile: the cheapest responder whose answer bytes never pass
                      through user space, as ringserve's file bodies never do (small,
                      small-files and churn only; a ratio to it is printed too)
  --scenarios LIST    comma-separated (default: $SCENARIOS)
                        small        wrk -c64, GET /1k.bin, keep-alive
                        small-files  wrk -c64, random one of /small/0..999.bin (1 KiB each)
                        large        wrk -c4, GET /1g.bin (MiB/s, CPU-s per GiB)
                        large-paced  the same with every server holding each connection to
                                     PACE (default $PACE) by its own rate limit (ringserve
                                     --limit-rate, nginx limit_rate, lighttpd
                                     connection.kbytes-per-second), so all send at one
                                     throughput and the CPU per GiB compares like with like
                                     (on loopback the receiver's work lands on the sending
                                     core and grows with throughput); not in the default list
                        large-sink   the same file to examples/sink.rs, which drops bodies in
                                     the kernel (recv MSG_TRUNC) instead of copying them as wrk
                                     does: the server's core, not the client's, is then the
                                     bottleneck, and MiB/s and CPU-s per GiB are the server's
                        range        wrk -c64, random unaligned 64 KiB ranges of /100m.bin
                        churn        wrk -c64, 'Connection: close', /1k.bin
                        idle10k      RSS of the server idle, then with $IDLE_CONNS idle keep-alive
                                     connections (one run per server, whatever --runs says)
                        https-small, https-large, https-churn
                                     small, large and churn over HTTPS (not in the default
                                     list): every server gets the same ECDSA P-256 certificate,
                                     TLS 1.2 and 1.3; lighttpd needs lighttpd-mod-openssl
  --duration SEC      seconds per measured run (default 10)
  --warmup SEC        seconds of warm-up before each measured run (default 2; 0 = none)
  --runs N            measured runs per scenario and server; medians are shown (default 3)
  --quick             smoke test: 1 run of 3 s after a 1 s warm-up (explicit options win)
  --server-cpu N      CPU the servers are pinned to (default $SERVER_CPU)
  --client-cpu N      CPU wrk and the helpers are pinned to (default $CLIENT_CPU)
  --idle-conns N      connections for idle10k (default $IDLE_CONNS)
  --max-others PCT    a measured run during which processes outside the benchmark used more than
                      PCT % of a core is run again (default $MAX_OTHERS; the machine may be shared)
  --attempts N        at most N tries per measured run (default $MAX_ATTEMPTS; 1 = never retry)
  --corpus DIR        corpus directory, generated once and reused (default $CORPUS)
  --out-dir DIR       where reports go (default perf/out)
  --no-install        do not apt-get anything; fail if a tool is missing
  --no-build          do not run 'cargo build --release' (use target/release/ringserve and
                      target/$MUSL_TARGET/release/ringserve as they are)
  --keep-tmp          keep the temporary directory (configs, logs, raw wrk output)
  --prepare           only install the tools, build ringserve and make the corpus, then exit
                      (for profiling by hand: see perf/PROFILING.md)
  -h, --help          this message

Environment:
  RINGSERVE_ARGS      extra flags for every ringserve instance, e.g. RINGSERVE_ARGS='--backend epoll'
                      (ringserve-epoll replaces any --backend given here)

Examples:
  scripts/bench.sh --quick --servers nginx,lighttpd
  scripts/bench.sh --servers ringserve,ringserve-epoll,nginx,lighttpd --scenarios small,range
EOF
}

die() { echo "bench: error: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }
warn() {
    echo "bench: warning: $*" >&2
    if [[ -n "${WORK:-}" && -d "$WORK" ]]; then echo "$*" >>"$WORK/notes.txt"; fi
}

need_arg() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value (see --help)"; }

while [[ $# -gt 0 ]]; do
    opt="$1"
    if [[ "$opt" == --*=* ]]; then
        set -- "${opt%%=*}" "${opt#*=}" "${@:2}"
        opt="$1"
    fi
    case "$opt" in
        --servers) need_arg "$@"; SERVERS="$2"; shift 2 ;;
        --scenarios) need_arg "$@"; SCENARIOS="$2"; shift 2 ;;
        --duration) need_arg "$@"; DURATION="$2"; shift 2 ;;
        --warmup) need_arg "$@"; WARMUP="$2"; shift 2 ;;
        --runs) need_arg "$@"; RUNS="$2"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --server-cpu) need_arg "$@"; SERVER_CPU="$2"; shift 2 ;;
        --client-cpu) need_arg "$@"; CLIENT_CPU="$2"; shift 2 ;;
        --idle-conns) need_arg "$@"; IDLE_CONNS="$2"; shift 2 ;;
        --max-others) need_arg "$@"; MAX_OTHERS="$2"; shift 2 ;;
        --attempts) need_arg "$@"; MAX_ATTEMPTS="$2"; shift 2 ;;
        --corpus) need_arg "$@"; CORPUS="$2"; shift 2 ;;
        --out-dir) need_arg "$@"; OUT_DIR="$2"; shift 2 ;;
        --no-install) INSTALL=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --keep-tmp) KEEP_TMP=1; shift ;;
        --prepare) PREPARE_ONLY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $opt" ;;
    esac
done

if [[ $QUICK == 1 ]]; then
    : "${DURATION:=3}" "${WARMUP:=1}" "${RUNS:=1}"
else
    : "${DURATION:=10}" "${WARMUP:=2}" "${RUNS:=3}"
fi

# ----------------------------------------------------------------------------- validation

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
# shellcheck disable=SC2015  # die exits, so A && B || die is safe here
is_uint "$DURATION" && (( DURATION >= 1 )) || die "--duration must be a whole number of seconds >= 1"
is_uint "$WARMUP" || die "--warmup must be a whole number of seconds"
is_uint "$RUNS" && (( RUNS >= 1 )) || die "--runs must be >= 1"
is_uint "$IDLE_CONNS" && (( IDLE_CONNS >= 1 )) || die "--idle-conns must be >= 1"
is_uint "$MAX_OTHERS" || die "--max-others must be a whole percentage"
is_uint "$MAX_ATTEMPTS" && (( MAX_ATTEMPTS >= 1 )) || die "--attempts must be >= 1"
NCPU=$(nproc --all)
for c in "$SERVER_CPU" "$CLIENT_CPU"; do
    is_uint "$c" && (( c < NCPU )) || die "CPU '$c' does not exist (this machine has $NCPU)"
done

IFS=',' read -r -a SERVER_LIST <<<"$SERVERS"
IFS=',' read -r -a SCENARIO_LIST <<<"$SCENARIOS"
(( ${#SERVER_LIST[@]} >= 1 )) || die "--servers is empty"
(( ${#SCENARIO_LIST[@]} >= 1 )) || die "--scenarios is empty"
declare -A seen=()
for s in "${SERVER_LIST[@]}"; do
    [[ " $ALL_SERVERS " == *" $s "* ]] || die "unknown server '$s' (known: $ALL_SERVERS)"
    [[ -z "${seen[$s]:-}" ]] || die "server '$s' listed twice"
    seen[$s]=1
done
for s in "${SCENARIO_LIST[@]}"; do
    [[ " $ALL_SCENARIOS " == *" $s "* ]] || die "unknown scenario '$s' (known: $ALL_SCENARIOS)"
done
[[ $(id -u) == 0 ]] || die "run as root (apt-get, ulimit -n and reading the servers' /proc need it)"
if [[ "$SERVER_CPU" == "$CLIENT_CPU" ]]; then
    say "note: server and client share CPU $SERVER_CPU; srv cost then includes wrk's own work"
fi

uses() { [[ ",$SERVERS," == *",$1,"* ]]; }
uses_ringserve() { uses ringserve || uses ringserve-epoll || uses ringserve-static; }
uses_floor() { uses floor || uses floor-sendfile; }
# The floor answers one fixed 1 KiB response to everything, and 64 KiB ranges of 100m.bin in the
# range scenario: only where that is the right answer.
runs_in() {
    case $1 in
        floor) [[ " small small-files churn range " == *" $2 "* ]] ;;
        floor-sendfile) [[ " small small-files churn " == *" $2 "* ]] ;;
        *) true ;;
    esac
}
has_scenario() { [[ ",$SCENARIOS," == *",$1,"* ]]; }
has_https() { [[ ",$SCENARIOS," == *",https-"* ]]; }
TLS=0    # 1 while an https-* scenario runs: the servers then serve HTTPS on their port
PACED=0  # 1 while large-paced runs: every server limits each connection to PACE

# ----------------------------------------------------------------------------- state and cleanup

WORK=""
declare -A SERVER_PID=() SERVER_PORT=()
CHILD_PID=""          # wrk or the idle client while one runs
POLICY_RC_CREATED=0

stop_pid_tree() {     # stop_pid_tree PID: TERM, wait up to 3 s, then KILL what is left of its tree
    local pid=$1 pids i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    pids=$("${HELPER[@]}" tree "$pid" 2>/dev/null || echo "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        local alive=0 p
        for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
        (( alive )) || break
        sleep 0.1
    done
    for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}

stop_servers() {
    local name
    for name in "${!SERVER_PID[@]}"; do
        stop_pid_tree "${SERVER_PID[$name]}"
        unset "SERVER_PID[$name]"
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$CHILD_PID" ]]; then stop_pid_tree "$CHILD_PID"; fi
    stop_servers
    if (( POLICY_RC_CREATED )); then rm -f /usr/sbin/policy-rc.d; fi
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if (( KEEP_TMP )); then say "kept $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# ----------------------------------------------------------------------------- tools

install_tools() {
    local pkgs=()
    command -v wrk >/dev/null || pkgs+=(wrk)
    if uses nginx || uses nginx-nocork; then command -v nginx >/dev/null || pkgs+=(nginx); fi
    if uses lighttpd; then command -v lighttpd >/dev/null || pkgs+=(lighttpd); fi
    if uses lighttpd && has_https; then
        [[ -e /usr/lib/lighttpd/mod_openssl.so ]] || pkgs+=(lighttpd-mod-openssl)
    fi
    if has_https; then command -v openssl >/dev/null || pkgs+=(openssl); fi
    command -v gnuplot >/dev/null || python3 -c 'import matplotlib' 2>/dev/null || pkgs+=(gnuplot-nox)
    command -v taskset >/dev/null || pkgs+=(util-linux)
    if uses ringserve-static && (( BUILD )); then command -v musl-gcc >/dev/null || pkgs+=(musl-tools); fi
    (( ${#pkgs[@]} )) || return 0
    (( INSTALL )) || die "missing: ${pkgs[*]} (drop --no-install to apt-get them)"
    say "installing ${pkgs[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Keep Debian from starting the packaged nginx/lighttpd services (both want port 80).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 || die "apt-get install ${pkgs[*]} failed"
    if (( POLICY_RC_CREATED )); then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=0; fi
    # In case a service was started anyway (e.g. under systemd): stop and disable what we installed.
    local svc
    for svc in nginx lighttpd; do
        [[ " ${pkgs[*]} " == *" $svc "* ]] || continue
        if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
            systemctl disable --now "$svc" >/dev/null 2>&1 || true
        elif [[ -x /etc/init.d/$svc ]]; then
            "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
            update-rc.d "$svc" disable >/dev/null 2>&1 || true
        fi
    done
}

system_services_check() {     # only warns: those processes are not ours to stop
    local svc pids
    for svc in nginx lighttpd; do
        pids=$(ps -eo pid=,stat=,comm= | awk -v c="$svc" '$3 == c && $2 !~ /^Z/ {print $1}' | tr '\n' ' ')
        if [[ -n "$pids" ]]; then
            warn "'$svc' processes not started by this script are running (pids ${pids% }); they may take CPU from the runs"
        fi
    done
}

RINGSERVE_HAS_KEEPALIVE_REQUESTS=0
build_ringserve() {
    RINGSERVE_BIN="$ROOT/target/release/ringserve"
    RINGSERVE_STATIC_BIN="$ROOT/target/$MUSL_TARGET/release/ringserve"
    if (( BUILD )) && { uses ringserve || uses ringserve-epoll; }; then
        say "cargo build --release"
        (cd "$ROOT" && cargo build --release >&2) || die "cargo build --release failed (try --servers nginx,lighttpd)"
    fi
    if (( BUILD )) && uses ringserve-static; then
        command -v rustup >/dev/null || die "ringserve-static needs rustup (to add the $MUSL_TARGET target)"
        if ! rustup target list --installed | grep -qx "$MUSL_TARGET"; then
            (( INSTALL )) || die "the $MUSL_TARGET target is missing (drop --no-install to add it with rustup)"
            rustup target add "$MUSL_TARGET" >&2 || die "rustup target add $MUSL_TARGET failed"
        fi
        say "cargo build --release --target $MUSL_TARGET"
        (cd "$ROOT" && cargo build --release --target "$MUSL_TARGET" >&2) \
            || die "cargo build --release --target $MUSL_TARGET failed"
    fi
    FLOOR_BIN="$ROOT/target/release/examples/floor"
    if (( BUILD )) && uses_floor; then
        say "cargo build --release --example floor"
        (cd "$ROOT" && cargo build --release --example floor >&2) || die "building the floor failed"
    fi
    SINK_BIN="$ROOT/target/release/examples/sink"
    if (( BUILD )) && has_scenario large-sink; then
        say "cargo build --release --example sink"
        (cd "$ROOT" && cargo build --release --example sink >&2) || die "building the sink failed"
    fi
    if has_scenario large-sink && [[ ! -x "$SINK_BIN" ]]; then die "$SINK_BIN not found"; fi
    local bins=() bin
    if uses_floor; then bins+=("$FLOOR_BIN"); fi
    if uses ringserve || uses ringserve-epoll; then bins+=("$RINGSERVE_BIN"); fi
    if uses ringserve-static; then bins+=("$RINGSERVE_STATIC_BIN"); fi
    for bin in ${bins[@]+"${bins[@]}"}; do
        [[ -x "$bin" ]] || die "$bin not found"
        if "$bin" --help 2>/dev/null | grep -q -- '--keepalive-requests'; then
            RINGSERVE_HAS_KEEPALIVE_REQUESTS=1
        fi
    done
}

# ----------------------------------------------------------------------------- corpus

CORPUS_VERSION="ringserve-bench-corpus v1"

file_size() { stat -c %s "$1" 2>/dev/null || echo -1; }

corpus_valid() {
    [[ -f "$CORPUS/.complete" && "$(cat "$CORPUS/.complete")" == "$CORPUS_VERSION" ]] || return 1
    [[ $(file_size "$CORPUS/1k.bin") == 1024 ]] || return 1
    [[ $(file_size "$CORPUS/100m.bin") == $((100 << 20)) ]] || return 1
    [[ $(file_size "$CORPUS/1g.bin") == $((1 << 30)) ]] || return 1
    # real data, not sparse: allocated blocks cover the size
    (( $(stat -c '%b * %B' "$CORPUS/1g.bin") >= (1 << 30) )) || return 1
    local n
    n=$(find "$CORPUS/small" -maxdepth 1 -name '*.bin' -size 1024c | wc -l)
    [[ $n == 1000 ]] || return 1
}

make_corpus() {
    if corpus_valid; then
        say "corpus: reusing $CORPUS"
        return 0
    fi
    say "corpus: generating $CORPUS (1 GiB + 100 MiB from /dev/urandom, once)"
    [[ "$CORPUS" == /tmp/* || ! -e "$CORPUS" || -f "$CORPUS/.complete" ]] \
        || die "--corpus $CORPUS exists and is not a corpus made by this script; refusing to overwrite it"
    rm -rf "$CORPUS"
    mkdir -p "$CORPUS/small"
    chmod 755 "$CORPUS" "$CORPUS/small"
    dd if=/dev/urandom of="$CORPUS/1g.bin" bs=1M count=1024 iflag=fullblock status=none
    dd if=/dev/urandom of="$CORPUS/100m.bin" bs=1M count=100 iflag=fullblock status=none
    head -c 1024 /dev/urandom >"$CORPUS/1k.bin"
    python3 -c '
import os, sys
d = sys.argv[1]
for i in range(1000):
    with open(os.path.join(d, f"{i}.bin"), "wb") as f:
        f.write(os.urandom(1024))
' "$CORPUS/small"
    chmod 644 "$CORPUS"/*.bin "$CORPUS"/small/*.bin
    echo "$CORPUS_VERSION" >"$CORPUS/.complete"
    corpus_valid || die "corpus generation failed"
}

# ----------------------------------------------------------------------------- servers

write_nginx_conf() {    # write_nginx_conf DIR PORT NOPUSH(on|off)
    local dir=$1 port=$2 nopush=$3 mime="types { application/octet-stream bin; }"
    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
# generated by scripts/bench.sh
user root root;
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections $((NOFILE - 100));
}
http {
    $mime
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush $nopush;
$( (( PACED )) && echo "    limit_rate ${PACE%m}m;")
    tcp_nodelay on;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    keepalive_requests 100000;
    keepalive_timeout 75s;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port$( (( TLS )) && echo " ssl");
        server_name localhost;
        root $CORPUS;
$( (( TLS )) && printf '        %s\n' "ssl_certificate $WORK/tls/cert.pem;" \
    "ssl_certificate_key $WORK/tls/key.pem;" "ssl_protocols TLSv1.2 TLSv1.3;" \
    "ssl_session_cache shared:SSL:10m;")
    }
}
EOF
}

write_lighttpd_conf() {    # write_lighttpd_conf DIR PORT
    local dir=$1 port=$2
    mkdir -p "$dir"
    cat >"$dir/lighttpd.conf" <<EOF
# generated by scripts/bench.sh (no mod_accesslog: access log off)
server.document-root = "$CORPUS"
server.bind = "127.0.0.1"
server.port = $port
server.errorlog = "$dir/error.log"
server.pid-file = "$dir/lighttpd.pid"
server.network-backend = "linux-sendfile"
server.max-worker = 0
server.max-keep-alive-requests = 100000
server.max-keep-alive-idle = 75
server.max-fds = $NOFILE
server.max-connections = $((NOFILE / 2))
mimetype.assign = ( ".bin" => "application/octet-stream" )
EOF
    if (( PACED )); then
        echo "connection.kbytes-per-second = $(( ${PACE%m} * 1024 ))" >>"$dir/lighttpd.conf"
    fi
    if (( TLS )); then
        cat >>"$dir/lighttpd.conf" <<EOF
server.modules += ( "mod_openssl" )
ssl.engine = "enable"
ssl.pemfile = "$WORK/tls/cert.pem"
ssl.privkey = "$WORK/tls/key.pem"
ssl.openssl.ssl-conf-cmd = ( "MinProtocol" => "TLSv1.2" )
EOF
    fi
}

ringserve_cmd() {    # ringserve_cmd NAME PORT -> SERVER_CMD array
    local name=$1 port=$2 extra=() args=() i
    read -r -a extra <<<"${RINGSERVE_ARGS:-}"
    if [[ $name == ringserve-epoll ]]; then
        for ((i = 0; i < ${#extra[@]}; i++)); do
            case "${extra[i]}" in
                --backend) i=$((i + 1)) ;;
                --backend=*) ;;
                *) args+=("${extra[i]}") ;;
            esac
        done
        args+=(--backend epoll)
    else
        args=(${extra[@]+"${extra[@]}"})
    fi
    # Peers are configured for 100000 requests per connection; match that where ringserve has the knob.
    if (( RINGSERVE_HAS_KEEPALIVE_REQUESTS )) && [[ " ${args[*]:-} " != *" --keepalive-requests"* ]]; then
        args=(--keepalive-requests 100000 ${args[@]+"${args[@]}"})
    fi
    local bin=$RINGSERVE_BIN
    [[ $name == ringserve-static ]] && bin=$RINGSERVE_STATIC_BIN
    local listen=(--listen "127.0.0.1:$port")
    if (( TLS )); then
        listen=(--listen 127.0.0.1:0 --tls-listen "127.0.0.1:$port"
                --tls-cert "$WORK/tls/cert.pem" --tls-key "$WORK/tls/key.pem")
    fi
    (( PACED )) && args+=(--limit-rate "$PACE")
    SERVER_CMD=("$bin" --root "$CORPUS" "${listen[@]}" --workers 1 --access-log off
                ${args[@]+"${args[@]}"})
}

start_server() {    # start_server NAME PORT TAG
    local name=$1 port=$2 tag=$3 dir="$WORK/$1" log pid i
    mkdir -p "$dir"
    log="$dir/$tag.log"
    case "$name" in
        ringserve|ringserve-epoll|ringserve-static) ringserve_cmd "$name" "$port" ;;
        nginx|nginx-nocork)
            write_nginx_conf "$dir" "$port" "$([[ $name == nginx ]] && echo on || echo off)"
            SERVER_CMD=(nginx -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;') ;;
        lighttpd)
            write_lighttpd_conf "$dir" "$port"
            SERVER_CMD=(lighttpd -D -f "$dir/lighttpd.conf") ;;
        floor)
            SERVER_CMD=("$FLOOR_BIN" "127.0.0.1:$port")
            if [[ $tag == range ]]; then SERVER_CMD+=("$CORPUS/100m.bin"); fi ;;
        floor-sendfile)
            SERVER_CMD=("$FLOOR_BIN" --sendfile "127.0.0.1:$port") ;;
    esac
    echo "+ ${SERVER_CMD[*]}" >"$log"
    taskset -c "$SERVER_CPU" "${SERVER_CMD[@]}" >>"$log" 2>&1 </dev/null 9>&- &
    pid=$!
    SERVER_PID[$name]=$pid
    SERVER_PORT[$name]=$port
    if [[ $name == ringserve* ]]; then
        for ((i = 0; i < 150; i++)); do
            grep -q 'ringserve: listening on' "$log" && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    if ! "${HELPER[@]}" wait-listen --pid "$pid" --port "$port" --timeout 15; then
        sed 's/^/    | /' "$log" >&2
        if [[ -f "$dir/error.log" ]]; then sed 's/^/    | /' "$dir/error.log" >&2; fi
        warn "$tag: $name did not start: $(grep -v '^+ ' "$log" | tail -n 2 | tr '\n' ' ')"
        stop_pid_tree "$pid"
        unset "SERVER_PID[$name]"
        return 0
    fi
    sleep 0.3   # let forked workers (nginx) come up before anything is sampled
    local msg
    if ! msg=$("${HELPER[@]}" affinity "$pid" "$SERVER_CPU" 2>&1); then
        warn "$name: $msg (does the server set its own CPU affinity?)"
    fi
}

start_servers() {    # start_servers TAG: fresh instances of the scenario's servers on fresh free ports
    local tag=$1 ports i=0 name
    read -r -a ports <<<"$("${HELPER[@]}" free-ports "${#SERVER_LIST[@]}")"
    for name in "${SERVER_LIST[@]}"; do
        if runs_in "$name" "$tag"; then start_server "$name" "${ports[i]}" "$tag"; fi
        i=$((i + 1))
    done
}

declare -A CHECKED=()
sanity_check() {    # once per server and invocation; problems become warnings in the report
    local name=$1
    [[ -n "${SERVER_PID[$name]:-}" && -z "${CHECKED[$name]:-}" ]] || return 0
    (( TLS )) && return 0    # the helper's check speaks plain HTTP
    [[ $name == floor* ]] && return 0    # it serves no files
    CHECKED[$name]=1
    if ! "${HELPER[@]}" check --port "${SERVER_PORT[$name]}" --corpus "$CORPUS" 2>"$WORK/check.err"; then
        cat "$WORK/check.err" >&2
        warn "$name failed the sanity check: $(paste -sd';' "$WORK/check.err" | sed 's/  sanity check failed: //g')"
    fi
}

# ----------------------------------------------------------------------------- load

make_wrk_scripts() {
    local lua="$WORK/lua"
    mkdir -p "$lua"
    cp "$BENCH_DIR/wrk-done.lua" "$lua/plain.lua"
    cat "$BENCH_DIR/wrk-small-files.lua" "$BENCH_DIR/wrk-done.lua" >"$lua/small-files.lua"
    cat "$BENCH_DIR/wrk-range.lua" "$BENCH_DIR/wrk-done.lua" >"$lua/range.lua"
}

wrk_args() {    # wrk_args SCENARIO PORT -> WRK_ARGS array (without -d)
    local sc=$1 port=$2 url="http://127.0.0.1:$2"
    if [[ $sc == https-* ]]; then sc=${sc#https-}; url="https://127.0.0.1:$2"; fi
    case "$sc" in
        small)       WRK_ARGS=(-c64 --timeout 10s -s "$WORK/lua/plain.lua" "$url/1k.bin") ;;
        small-files) WRK_ARGS=(-c64 --timeout 10s -s "$WORK/lua/small-files.lua" "$url/small/0.bin") ;;
        large|large-paced|large-sink) WRK_ARGS=(-c4 --timeout 60s -s "$WORK/lua/plain.lua" "$url/1g.bin") ;;
        range)       WRK_ARGS=(-c64 --timeout 10s -s "$WORK/lua/range.lua" "$url/100m.bin") ;;
        churn)       WRK_ARGS=(-c64 --timeout 10s -H 'Connection: close' -s "$WORK/lua/plain.lua" "$url/1k.bin") ;;
    esac
    WRK_ARGS=(-t1 "${WRK_ARGS[@]}")
}

run_bounded() {    # run_bounded SECONDS OUTFILE CMD...: run in the background (so traps stay live)
    local secs=$1 outfile=$2 rc=0
    shift 2
    timeout -k 5 "$secs" "$@" >"$outfile" 2>&1 &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return "$rc"
}

record_failure() {    # record_failure SCENARIO SERVER RUN WHY
    printf '{"scenario": "%s", "server": "%s", "run": %s, "failed": "%s"}\n' "$1" "$2" "$3" "$4" \
        >>"$WORK/results.jsonl"
}

server_alive() {    # server_alive SCENARIO SERVER RUN: false (and recorded) if it is not running
    local sc=$1 name=$2 run=$3 pid=${SERVER_PID[$2]:-}
    if [[ -z "$pid" ]]; then
        record_failure "$sc" "$name" "$run" "did not start"
        return 1
    fi
    if ! kill -0 "$pid" 2>/dev/null || [[ $(ps -o stat= -p "$pid") == Z* ]]; then
        warn "$sc / $name run $run: the server has died: $(tail -n 2 "$WORK/$name/$sc.log" | tr '\n' ' ')"
        record_failure "$sc" "$name" "$run" "server died"
        wait "$pid" 2>/dev/null || true
        unset "SERVER_PID[$name]"
        return 1
    fi
}

measure() {    # measure SCENARIO SERVER RUN: warm-up, then one measured wrk run (retried if the machine was busy)
    local sc=$1 name=$2 run=$3 port=${SERVER_PORT[$2]} pid=${SERVER_PID[$2]:-} base attempt rc
    mkdir -p "$WORK/runs"
    server_alive "$sc" "$name" "$run" || return 0
    wrk_args "$sc" "$port"
    local client=(wrk)
    [[ $sc == large-sink ]] && client=("$SINK_BIN")
    for ((attempt = 1; attempt <= MAX_ATTEMPTS; attempt++)); do
        base="$WORK/runs/$sc.$name.$run.$attempt"
        if (( WARMUP > 0 )); then
            run_bounded $((WARMUP + 30)) "$base.warmup" taskset -c "$CLIENT_CPU" "${client[@]}" -d"${WARMUP}s" "${WRK_ARGS[@]}" \
                || warn "$sc / $name run $run: warm-up wrk failed: $(tail -n 2 "$base.warmup" | tr '\n' ' ')"
        fi
        "${HELPER[@]}" sample --cpus "$SERVER_CPU,$CLIENT_CPU" --pid "$pid" --exclude $$ >"$base.before"
        if ! run_bounded $((DURATION + 30)) "$base.wrk" taskset -c "$CLIENT_CPU" "${client[@]}" -d"${DURATION}s" "${WRK_ARGS[@]}"; then
            warn "$sc / $name run $run: wrk failed: $(tail -n 3 "$base.wrk" | tr '\n' ' ')"
        fi
        "${HELPER[@]}" sample --cpus "$SERVER_CPU,$CLIENT_CPU" --pid "$pid" --exclude $$ >"$base.after"
        server_alive "$sc" "$name" "$run" || return 0
        rc=0
        "${HELPER[@]}" record --scenario "$sc" --server "$name" --run "$run" --wrk-out "$base.wrk" \
            --before "$base.before" --after "$base.after" --server-cpu "$SERVER_CPU" --client-cpu "$CLIENT_CPU" \
            --max-others "$MAX_OTHERS" >"$base.json" || rc=$?
        if (( rc == 3 && attempt < MAX_ATTEMPTS )); then
            say "  other processes were busy during that run (> $MAX_OTHERS % of a core): running it again"
            continue
        fi
        (( rc == 0 || rc == 3 )) || die "could not record $sc / $name run $run"
        if (( rc == 0 )); then
            cat "$base.json" >>"$WORK/results.jsonl"
        else
            warn "$sc / $name run $run: other processes stayed busy over $MAX_ATTEMPTS tries; kept the quietest"
            "${HELPER[@]}" quietest "$WORK/runs/$sc.$name.$run".*.json >>"$WORK/results.jsonl"
        fi
        return 0
    done
}

measure_idle() {    # measure_idle SERVER: RSS with no connection, then with IDLE_CONNS idle ones
    local name=$1 port=${SERVER_PORT[$1]} pid=${SERVER_PID[$1]:-} base i
    base="$WORK/runs/idle10k.$name"
    mkdir -p "$WORK/runs"
    if [[ -z "$pid" ]]; then
        printf '{"server": "%s", "failed": "did not start"}\n' "$name" >>"$WORK/idle.jsonl"
        return 0
    fi
    sleep 0.5
    "${HELPER[@]}" sample --cpus "$SERVER_CPU" --pid "$pid" >"$base.idle"
    timeout -k 5 40 "${HELPER[@]}" idle --port "$port" --conns "$IDLE_CONNS" \
        --open-timeout 20 --hold 8 >"$base.client" 2>&1 &
    CHILD_PID=$!
    for ((i = 0; i < 300; i++)); do    # READY comes within the 20 s open timeout
        grep -q '^READY ' "$base.client" && break
        kill -0 "$CHILD_PID" 2>/dev/null || break
        sleep 0.1
    done
    "${HELPER[@]}" sample --cpus "$SERVER_CPU" --pid "$pid" >"$base.busy"
    kill -TERM "$CHILD_PID" 2>/dev/null || true    # timeout(1) passes it on
    wait "$CHILD_PID" || warn "idle10k / $name: the idle client failed: $(tail -n 2 "$base.client" | tr '\n' ' ')"
    CHILD_PID=""
    "${HELPER[@]}" record-idle --server "$name" --conns "$IDLE_CONNS" --idle-sample "$base.idle" \
        --busy-sample "$base.busy" --client-out "$base.client" >>"$WORK/idle.jsonl"
}

# ----------------------------------------------------------------------------- main

# One benchmark at a time on this machine (two would measure each other); also guards the corpus.
exec 9>/tmp/ringserve-bench.lock
if ! flock -n 9; then
    say "another scripts/bench.sh is running; waiting for it (up to 30 min)"
    flock -w 1800 9 || die "gave up waiting for the other benchmark"
fi

install_tools
build_ringserve
make_corpus
if (( PREPARE_ONLY )); then
    say "ready: corpus in $CORPUS$(uses_ringserve && echo ", binaries in $ROOT/target")"
    exit 0
fi

# idle10k needs IDLE_CONNS descriptors in the server and as many in the client (separate processes).
if [[ $(ulimit -Hn) != unlimited ]] && (( $(ulimit -Hn) < 65536 )); then
    ulimit -Hn 65536 2>/dev/null || true    # needs CAP_SYS_RESOURCE; some sandboxes cap it lower
fi
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
if has_scenario idle10k && (( NOFILE < IDLE_CONNS + 1000 )); then
    die "ulimit -n is $NOFILE and cannot be raised; idle10k needs at least $((IDLE_CONNS + 1000)) (try --idle-conns)"
fi
(( NOFILE <= 65536 )) || NOFILE=65536

WORK=$(mktemp -d /tmp/ringserve-bench.XXXXXX)
chmod 755 "$WORK"
if has_https; then
    mkdir -p "$WORK/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null \
        || die "openssl could not make the benchmark certificate"
    chmod 644 "$WORK/tls/key.pem"
fi
: >"$WORK/notes.txt"
mkdir -p "$OUT_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
REPORT_MD="$OUT_DIR/bench-$STAMP.md"
REPORT_PNG="$OUT_DIR/bench-$STAMP.png"
make_wrk_scripts
system_services_check

# Keep this shell and everything it starts (wrk, helpers) off the server's CPU.
taskset -cp "$CLIENT_CPU" $$ >/dev/null

# Put the big files in the page cache as files read from disk sit there: written back, dropped
# (dd's nocache flag is POSIX_FADV_DONTNEED) and read again, so that readahead caches them in
# large folios where the filesystem has them (ext4, xfs, btrfs on recent kernels). As `dd` wrote
# them they stay mostly in 4 KiB folios, and each 64 KiB range then costs 17 page-cache lookups
# rather than one or two, 14 % of every server's cost per range under `perf record`; which state
# a run found depended on the machine's history (perf/RESULTS.md, 2026-12-06).
for f in "$CORPUS/1g.bin" "$CORPUS/100m.bin"; do
    sync "$f"
    dd if="$f" iflag=nocache count=0 status=none
    cat "$f" >/dev/null
    if folios=$("${HELPER[@]}" folios "$f" 2>/dev/null); then
        say "page cache: $folios"
        echo "Page cache: $folios." >>"$WORK/notes.txt"
    fi
done

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit yet")
if [[ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
    commit="$commit (+ uncommitted changes)"
fi
version_of() {
    case "$1" in
        ringserve|ringserve-epoll|ringserve-static) echo "$commit" ;;
        nginx|nginx-nocork) nginx -v 2>&1 | sed 's/^nginx version: //' ;;
        lighttpd) lighttpd -v 2>&1 | head -n1 | awk '{print $1}' ;;
        floor) echo "examples/floor.rs" ;;
        floor-sendfile) echo "examples/floor.rs --sendfile" ;;
        wrk) wrk -v 2>&1 | head -n1 | awk '{print $1, $2}' ;;
    esac
}
versions_json=$(for s in "${SERVER_LIST[@]}" wrk; do printf '%s\t%s\n' "$s" "$(version_of "$s")"; done \
    | python3 -c 'import json, sys; print(json.dumps(dict(l.rstrip("\n").split("\t", 1) for l in sys.stdin)))')
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)

say "servers: ${SERVER_LIST[*]}; scenarios: ${SCENARIO_LIST[*]}; $RUNS run(s) x ${DURATION}s (+${WARMUP}s warm-up)"
say "server CPU $SERVER_CPU, client CPU $CLIENT_CPU; temp dir $WORK"

for sc in "${SCENARIO_LIST[@]}"; do
    say "scenario $sc"
    if [[ $sc == https-* ]]; then TLS=1; else TLS=0; fi
    if [[ $sc == large-paced ]]; then PACED=1; else PACED=0; fi
    start_servers "$sc"
    if [[ $sc == idle10k ]]; then
        for name in "${SERVER_LIST[@]}"; do
            if runs_in "$name" "$sc"; then measure_idle "$name"; fi
        done
    else
        for name in "${SERVER_LIST[@]}"; do sanity_check "$name"; done
        for ((run = 1; run <= RUNS; run++)); do
            for name in "${SERVER_LIST[@]}"; do
                if runs_in "$name" "$sc"; then measure "$sc" "$name" "$run"; fi
            done
        done
    fi
    stop_servers
done

LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)
META_DATE=$(date '+%Y-%m-%d %H:%M:%S %Z')
META_KERNEL=$(uname -r)
META_CPU=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)
export META_DATE META_KERNEL META_CPU META_NCPU="$NCPU" \
    META_COMMIT="$commit" META_COMMAND="$COMMAND_LINE" META_SERVERS="$SERVERS" META_SCENARIOS="$SCENARIOS" \
    META_SERVER_CPU="$SERVER_CPU" META_CLIENT_CPU="$CLIENT_CPU" META_RUNS="$RUNS" \
    META_DURATION="$DURATION" META_WARMUP="$WARMUP" META_RINGSERVE_ARGS="${RINGSERVE_ARGS:-}" \
    META_VERSIONS="$versions_json" META_LOAD_START="$LOADAVG_START" META_LOAD_END="$LOADAVG_END" \
    META_MAX_OTHERS="$MAX_OTHERS" META_ATTEMPTS="$MAX_ATTEMPTS"
python3 - "$WORK/meta.json" <<'EOF'
import json, os, sys
e = os.environ
meta = {
    "date": e["META_DATE"], "kernel": e["META_KERNEL"], "cpu_model": e["META_CPU"], "ncpu": e["META_NCPU"],
    "commit": e["META_COMMIT"], "command": e["META_COMMAND"], "servers": e["META_SERVERS"].split(","),
    "scenarios": e["META_SCENARIOS"].split(","), "server_cpu": e["META_SERVER_CPU"],
    "client_cpu": e["META_CLIENT_CPU"], "runs": e["META_RUNS"], "duration": e["META_DURATION"],
    "warmup": e["META_WARMUP"], "ringserve_args": e["META_RINGSERVE_ARGS"],
    "versions": json.loads(e["META_VERSIONS"]), "loadavg_start": e["META_LOAD_START"],
    "loadavg_end": e["META_LOAD_END"], "max_others": e["META_MAX_OTHERS"], "attempts": e["META_ATTEMPTS"],
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF

"${HELPER[@]}" report --results "$WORK/results.jsonl" --idle "$WORK/idle.jsonl" --meta "$WORK/meta.json" \
    --notes "$WORK/notes.txt" --md "$REPORT_MD" --png "$REPORT_PNG"
echo
say "report: ${REPORT_MD#"$ROOT"/}$([[ -f $REPORT_PNG ]] && echo " and ${REPORT_PNG#"$ROOT"/}")"
