#!/usr/bin/env python3
"""Memory of idle HTTPS keep-alive connections: opens N TLS connections to 127.0.0.1:PORT,
sends one request on each and reads its response (so each sits idle between requests, as a
browser's would), then prints the server's resident memory before and with them open.

Usage: scripts/tls-idle.py PID PORT [N]   (PID: the server's process; N defaults to 10000)
The caller's and the server's open-files limits must allow N descriptors."""

import socket
import ssl
import sys


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


def main():
    pid, port = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    before = rss_kib(pid)
    conns = []
    request = b"GET /1k.bin HTTP/1.1\r\nHost: localhost\r\n\r\n"
    for i in range(n):
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        tls.sendall(request)
        got = b""
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 1024:
            chunk = tls.recv(65536)
            if not chunk:
                raise SystemExit(f"connection {i} closed early")
            got += chunk
        conns.append(tls)
    with_conns = rss_kib(pid)
    print(f"server RSS idle: {before / 1024:.1f} MiB; with {n} idle TLS keep-alive "
          f"connections: {with_conns / 1024:.1f} MiB "
          f"({(with_conns - before) / n:.1f} KiB per connection)")
    for c in conns:
        c.close()


if __name__ == "__main__":
    main()
