#!/usr/bin/env bash
# Builds the Debian package, target/debian/ringserve_VERSION_ARCH.deb (cargo-deb, installed
# when missing): the release binary, a man page and bash/zsh/fish completions generated from
# the command-line definitions (examples/gendoc.rs), the default configuration and the
# systemd units (packaging/). `apt install ./target/debian/ringserve_*.deb` then serves
# /var/www on port 80.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
cargo build --release --locked
cargo run --release --locked --example gendoc -- target/gendoc
cargo deb --no-build
