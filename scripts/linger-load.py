#!/usr/bin/env python3
"""Server CPU spent dropping an unwanted upload (perf/RESULTS.md, lingering on io_uring).

Sends a GET with a huge declared body to a running ringserve, which answers 413 and lingers,
then keeps uploading as fast as loopback allows for SECONDS and prints how much was sent and
how much CPU (utime+stime, from /proc) the server used meanwhile. Start the server with a
--lingering-timeout and --lingering-time longer than SECONDS.

Usage: scripts/linger-load.py PORT SERVER_PID [SECONDS]   (127.0.0.1 only)
"""
import os
import socket
import sys
import time


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    secs = float(sys.argv[3]) if len(sys.argv) > 3 else 4.0
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n")
    chunk = b"u" * (1 << 20)
    t0, c0, sent = time.time(), cpu_ticks(pid), 0
    try:
        while time.time() - t0 < secs:
            sent += s.send(chunk)
    except OSError as e:
        print("upload cut off:", e)
    took, cpu = time.time() - t0, (cpu_ticks(pid) - c0) / os.sysconf("SC_CLK_TCK")
    gib = sent / 2**30
    print(f"sent {gib:.1f} GiB in {took:.1f} s; server CPU {cpu:.2f} s = {cpu / gib:.2f} s/GiB")


if __name__ == "__main__":
    main()
