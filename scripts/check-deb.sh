#!/usr/bin/env bash
# Installs the package scripts/package-deb.sh built, checks what it put in place, serves from
# its default configuration, then removes it again (run as root; .ci/run does). Without a
# running systemd the units are checked, not started: the server is started by hand on a
# loopback port instead of the socket's port 80.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(ls target/debian/ringserve_*.deb | tail -1)
export DEBIAN_FRONTEND=noninteractive
apt-get install -y "./$deb" >/dev/null
trap 'apt-get purge -y ringserve >/dev/null 2>&1 || true' EXIT

for f in /usr/bin/ringserve /etc/ringserve/ringserve.toml /usr/share/man/man1/ringserve.1.gz \
    /usr/share/bash-completion/completions/ringserve /usr/share/zsh/vendor-completions/_ringserve \
    /usr/share/fish/vendor_completions.d/ringserve.fish /lib/systemd/system/ringserve.service \
    /lib/systemd/system/ringserve.socket /var/www/html/index.html; do
    [ -e "$f" ] || { echo "check-deb: $f is missing"; exit 1; }
done
zcat /usr/share/man/man1/ringserve.1.gz | grep -q 'upload.-token.-file' \
    || { echo "check-deb: the man page lacks the options"; exit 1; }
grep -q "ExecStart=/usr/bin/ringserve --config /etc/ringserve/ringserve.toml" \
    /lib/systemd/system/ringserve.service
if type -P systemd-analyze >/dev/null; then
    systemd-analyze verify /lib/systemd/system/ringserve.socket /lib/systemd/system/ringserve.service
fi
ringserve check-config --config /etc/ringserve/ringserve.toml >/dev/null

log=$(mktemp)
ringserve --config /etc/ringserve/ringserve.toml --listen 127.0.0.1:0 --access-log off 2>"$log" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
addr=$(sed -n 's/^ringserve: listening on //p' "$log" | head -1)
got=$(curl -sS "http://$addr/html/")
kill "$pid"; wait "$pid" || true
grep -q "ringserve works" <<<"$got" || { echo "check-deb: /html/ gave: $got"; exit 1; }
echo "check-deb: $deb installs, its files are in place, and it serves /var/www"
