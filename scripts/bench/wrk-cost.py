#!/usr/bin/env python3
"""One line of a measured run for scripts/ab.sh and scripts/tls-bench.sh: the server's CPU per
request and per MiB, and req/s (and MiB/s with --throughput), from its CPU ticks before and
after a wrk run and what wrk printed.

Usage: wrk-cost.py [--throughput] NAME TICKS_BEFORE TICKS_AFTER CLK_TCK SECONDS WRK_OUTPUT"""

import re
import sys

args = sys.argv[1:]
throughput = args[:1] == ["--throughput"]
if throughput:
    args = args[1:]
name, t0, t1, ticks, dur, out = args
cpu_us = (float(t1) - float(t0)) / float(ticks) * 1e6
m = re.search(r"(\d+) requests in [\d.]+\w+, ([\d.]+)(\w+) read", out)
if not m:
    sys.exit(f"wrk said: {out}")
units = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}
reqs, mib = int(m[1]), float(m[2]) * units[m[3]] / 2**20
per_req = f"{cpu_us / reqs:8.2f} µs/req" if reqs else "      – µs/req"
line = f"{per_req}  {cpu_us / mib:8.1f} µs/MiB  {reqs / float(dur):9.0f} req/s"
if throughput:
    line += f"  {mib / float(dur):8.1f} MiB/s"
print(f"{line}  {name}")
