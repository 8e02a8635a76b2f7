#!/usr/bin/env python3
"""Helpers for scripts/bench.sh (standard library only).

Subcommands:
  free-ports N                       print N currently free TCP ports on 127.0.0.1
  wait-listen --pid P --port N       wait until a process of P's tree listens on 127.0.0.1:N
  tree PID                           print the pids of PID and its descendants
  sample --cpus 0,1 [--pid P]        JSON: busy jiffies of the CPUs + the server tree's CPU/RSS
  check --port N                     sanity-check that a server serves the corpus correctly
  record ...                         join wrk's BENCHJSON line and two samples into a result line
  record-idle ...                    the same for one idle10k measurement
  affinity PID CPU                   fail if a thread of PID's tree may run on another CPU
  quietest FILE...                   the record (of several tries) with the least other load
  idle --port N --conns 10000        open, use once, then hold idle keep-alive connections
  report --results F --meta F ...    markdown table, ratio table and PNG chart
"""

import argparse
import json
import os
import re
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")
GIB = 1 << 30
MIB = 1 << 20
# Scenarios measured per GiB sent rather than per request.
LARGE = ("large", "large-paced", "large-sink", "https-large")


# --------------------------------------------------------------------------- processes


def _all_stats():
    """{pid: fields after comm} for every process."""
    stats = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # comm may contain spaces and parentheses: split after the last ')'
        stats[int(name)] = data[data.rindex(b")") + 2 :].split()
    return stats


def _ppid_map(stats=None):
    children = {}
    for pid, rest in (stats or _all_stats()).items():
        children.setdefault(int(rest[1]), []).append(pid)
    return children


def tree_pids(root, children=None):
    """root and all its descendants that still exist."""
    if not os.path.exists(f"/proc/{root}"):
        return []
    children = children or _ppid_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_cpu_jiffies(pid):
    """utime+stime of a process (all of its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    rest = data[data.rindex(b")") + 2 :].split()
    # fields after comm: state(0) ppid(1) ... utime is field 14 => rest[11], stime rest[12]
    return int(rest[11]) + int(rest[12])


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_jiffies(cpus):
    """{cpu: {"ticks": user+nice+system+irq+softirq+steal, "idle": idle+iowait, "steal": steal}}
    from /proc/stat, in clock ticks."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            parts = line.split()
            n = int(parts[0][3:])
            if n in cpus:
                user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in parts[1:9])
                out[str(n)] = {"ticks": user + nice + system + irq + softirq + steal,
                               "idle": idle + iowait, "steal": steal}
    return out


def busy_jiffies(before, after, cpu):
    """Busy clock ticks of one CPU between two samples: elapsed time minus idle+iowait.

    /proc/stat's user/system/softirq/... fields are sampled by the timer tick, and a tickless
    kernel stops the tick when the CPU idles: a server that runs in short bursts between idle
    periods (nginx stalled on delayed ACKs, say) shows almost no busy ticks. Idle time, though, is
    measured exactly on idle entry and exit. So busy = elapsed - idle is right both for a saturated
    core (where it equals the sum of the busy fields) and for a mostly idle one."""
    elapsed = (after["mono"] - before["mono"]) * HZ
    idle = after["cpu"][cpu]["idle"] - before["cpu"][cpu]["idle"]
    return max(0.0, elapsed - idle)


def split_jiffies(our_roots):
    """Two {pid: [own utime+stime, cutime+cstime of reaped children, ppid]} maps of the user-space
    processes: those in the trees of our_roots (this benchmark, which starts the servers), and all
    the others, i.e. whatever else ran on the machine."""
    stats = _all_stats()
    children = _ppid_map(stats)
    ours_pids = set()
    for r in our_roots:
        ours_pids.update(tree_pids(r, children))
    kthreads = {2} | set(children.get(2, []))
    ours, others = {}, {}
    for pid, rest in stats.items():
        if pid in kthreads or pid == 1:
            continue
        v = [int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]), int(rest[1])]
        (ours if pid in ours_pids else others)[str(pid)] = v
    return ours, others


def other_delta(before, after):
    """CPU jiffies a set of processes (a map from split_jiffies) used between two samples. Processes that exited in between
    show up in their parent's cutime+cstime with their whole life, so what they had used before the
    first sample is taken off again; processes born in between count whole."""
    total = 0
    for pid, (own, kids, _ppid) in after.items():
        if pid in before:
            total += own - before[pid][0] + kids - before[pid][1]
        else:
            total += own + kids
    for pid, (own, kids, ppid) in before.items():
        if pid not in after and str(ppid) in after and str(ppid) in before:
            total -= own + kids
    return max(0, total)


def sample(cpus, pid, exclude=()):
    s = {"t": time.time(), "mono": time.monotonic(), "cpu": cpu_jiffies(cpus)}
    if pid:
        pids = tree_pids(pid)
        cpu = rss = hwm = 0
        for p in pids:
            try:
                cpu += proc_cpu_jiffies(p)
                rss += proc_status_kib(p, "VmRSS")
                hwm += proc_status_kib(p, "VmHWM")
            except OSError:
                pass
        s.update({"pids": pids, "proc_jiffies": cpu, "rss_kib": rss, "hwm_kib": hwm})
    if exclude:
        s["ours"], s["others"] = split_jiffies([pid, *exclude] if pid else list(exclude))
        idle = n = 0
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and not line.startswith("cpu "):
                    parts = line.split()
                    idle += int(parts[4]) + int(parts[5])
                    n += 1
        s["all_idle"], s["ncpu"] = idle, n
    return s


def socket_inodes(pid):
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        pass
    return inodes


def listening_inode(port):
    """inode of the LISTEN socket on 127.0.0.1:port or 0.0.0.0:port (IPv4), else None."""
    want = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] in want and parts[3] == "0A":
                return parts[9]
    return None


def cmd_wait_listen(a):
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        if not os.path.exists(f"/proc/{a.pid}"):
            print(f"server process {a.pid} exited before listening", file=sys.stderr)
            return 1
        ino = listening_inode(a.port)
        if ino is not None:
            for p in tree_pids(a.pid):
                if ino in socket_inodes(p):
                    return 0
            print(f"port {a.port} is held by a process outside server {a.pid}'s tree", file=sys.stderr)
            return 2
        time.sleep(0.05)
    print(f"server {a.pid} did not listen on 127.0.0.1:{a.port} within {a.timeout}s", file=sys.stderr)
    return 1


def cmd_free_ports(a):
    socks = []
    for _ in range(a.n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()
    return 0


def cmd_tree(a):
    print(" ".join(str(p) for p in tree_pids(a.pid)))
    return 0


def cmd_sample(a):
    cpus = {int(c) for c in a.cpus.split(",")}
    s = sample(cpus, a.pid, [int(x) for x in a.exclude.split(",") if x] if a.exclude else ())
    json.dump(s, sys.stdout)
    print()
    return 0


# --------------------------------------------------------------------------- sanity check


def http_get(port, path, headers=None, method="GET", timeout=5.0):
    """Minimal HTTP/1.1 client (one request, Connection: close). Returns (status, headers, body)."""
    hdrs = {"Host": f"127.0.0.1:{port}", "Connection": "close"}
    hdrs.update(headers or {})
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req.encode())
        data = bytearray()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
            if len(data) > (8 << 20):
                break
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    h = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        h[k.strip().lower()] = v.strip()
    return status, h, body


def cmd_check(a):
    corpus = a.corpus
    problems = []

    def expect(what, cond):
        if not cond:
            problems.append(what)

    try:
        st, h, body = http_get(a.port, "/1k.bin")
        expect("GET /1k.bin -> 200 with the file's 1024 bytes",
               st == 200 and body == open(os.path.join(corpus, "1k.bin"), "rb").read())
        st, h, body = http_get(a.port, "/small/999.bin")
        expect("GET /small/999.bin -> 200, 1024 bytes",
               st == 200 and body == open(os.path.join(corpus, "small/999.bin"), "rb").read())
        st, h, body = http_get(a.port, "/100m.bin", {"Range": "bytes=1000-66535"})
        with open(os.path.join(corpus, "100m.bin"), "rb") as f:
            f.seek(1000)
            want = f.read(65536)
        expect("GET /100m.bin Range: bytes=1000-66535 -> 206 with those 65536 bytes",
               st == 206 and body == want)
        st, h, body = http_get(a.port, "/1g.bin", method="HEAD")
        expect("HEAD /1g.bin -> 200, Content-Length 1073741824",
               st == 200 and h.get("content-length") == str(GIB))
        st, h, body = http_get(a.port, "/no-such-file")
        expect("GET /no-such-file -> 404", st == 404)
    except (OSError, ValueError, IndexError) as e:
        problems.append(f"request failed: {e!r}")
    for p in problems:
        print(f"  sanity check failed: {p}", file=sys.stderr)
    return 1 if problems else 0


# --------------------------------------------------------------------------- record one run


def cmd_record(a):
    wrk = None
    with open(a.wrk_out, errors="replace") as f:
        for line in f:
            if line.startswith("BENCHJSON "):
                wrk = json.loads(line[len("BENCHJSON "):])
    before = json.load(open(a.before))
    after = json.load(open(a.after))
    rec = {"scenario": a.scenario, "server": a.server, "run": a.run, "hz": HZ,
           "server_cpu": a.server_cpu, "client_cpu": a.client_cpu}
    if wrk is None:
        rec["failed"] = "wrk printed no result"
    else:
        rec.update(wrk)
    sc, cc = str(a.server_cpu), str(a.client_cpu)
    rec["wall_s"] = after["mono"] - before["mono"]
    rec["srv_jiffies"] = busy_jiffies(before, after, sc)
    rec["cli_jiffies"] = busy_jiffies(before, after, cc)
    # the sum of the tick-sampled busy fields, for reference (undercounts a mostly idle core)
    rec["srv_tick_jiffies"] = after["cpu"][sc]["ticks"] - before["cpu"][sc]["ticks"]
    rec["srv_steal_jiffies"] = after["cpu"][sc]["steal"] - before["cpu"][sc]["steal"]
    rec["proc_jiffies"] = after.get("proc_jiffies", 0) - before.get("proc_jiffies", 0)
    if "others" in before and "others" in after:
        # Two estimates that err in different ways; the smaller is kept:
        # - the other processes' own CPU time (a process reparented to a subreaper and reaped
        #   during the run lands whole in that reaper's cutime: too high);
        # - the whole machine's busy time minus this benchmark's processes (servers and wrk
        #   included): too high by the softirq work done while a CPU was otherwise idle.
        scan = other_delta(before["others"], after["others"])
        machine = rec["wall_s"] * HZ * after["ncpu"] - (after["all_idle"] - before["all_idle"])
        residual = max(0.0, machine - other_delta(before["ours"], after["ours"]))
        rec["other_jiffies_scan"], rec["other_jiffies_residual"] = scan, residual
        rec["other_jiffies"] = min(scan, residual)
    rec["hwm_kib"] = after.get("hwm_kib", 0)
    rec["nprocs"] = len(after.get("pids", []))
    print(json.dumps(rec))
    d = derive(rec)
    if d:
        if a.scenario in LARGE:
            human = f"{d['mibs']:,.0f} MiB/s, srv {d['srv_cost']:.3g} s/GiB, proc {d['proc_cost']:.3g} s/GiB"
        else:
            human = f"{d['rps']:,.0f} req/s, srv {d['srv_cost']:.3g} µs/req, proc {d['proc_cost']:.3g} µs/req"
        human += f", p99 {fmt_lat(d['p99'])}, srv busy {d['srv_busy']:.0f} %, cli busy {d['cli_busy']:.0f} %"
        if d.get("others") is not None and d["others"] > 5:
            human += f", OTHER PROCESSES {d['others']:.0f} %"
        if d["errors"]:
            human += f", {d['errors']:,} errors ({d['non2xx']:,} non-2xx)"
    else:
        human = rec["failed"]
    print(f"    {a.scenario} / {a.server} run {a.run}: {human}", file=sys.stderr)
    if a.max_others is not None and d and d.get("others") is not None and d["others"] > a.max_others:
        return 3
    return 0


def cmd_record_idle(a):
    idle = json.load(open(a.idle_sample))
    busy = json.load(open(a.busy_sample))
    rec = {"server": a.server, "conns": a.conns, "idle_rss_kib": idle.get("rss_kib", 0),
           "rss_kib": busy.get("rss_kib", 0), "hwm_kib": busy.get("hwm_kib", 0)}
    ready = done = None
    with open(a.client_out, errors="replace") as f:
        for line in f:
            if line.startswith("READY "):
                ready = json.loads(line[6:])
            elif line.startswith("DONE "):
                done = json.loads(line[5:])
    if ready is None:
        rec["failed"] = "the idle client never got ready"
    else:
        rec.update({"open": ready["open"], "open_failed": ready["failed"], "open_errors": ready["errors"],
                    "open_seconds": ready["seconds"]})
        if done:
            rec["closed_by_server"] = done["closed_by_server_while_idle"]
    print(json.dumps(rec))
    if "failed" in rec:
        human = rec["failed"]
    else:
        human = (f"idle RSS {rec['idle_rss_kib'] / 1024:.1f} MiB, with {rec['open']:,} conns "
                 f"{rec['rss_kib'] / 1024:.1f} MiB (opened in {rec['open_seconds']} s"
                 + (f", {rec['open_failed']:,} failed: {rec['open_errors']}" if rec["open_failed"] else "") + ")")
    print(f"    idle10k / {a.server}: {human}", file=sys.stderr)
    return 0


def cmd_quietest(a):
    """Print the record (one JSON line per file) whose run had the least CPU from other processes."""
    best = None
    for path in a.files:
        with open(path) as f:
            line = f.read().strip()
        rec = json.loads(line)
        others = rec.get("other_jiffies", 0) / max(rec.get("wall_s", 1), 1e-9)
        if best is None or others < best[0]:
            best = (others, line)
    print(best[1])
    return 0


def cmd_affinity(a):
    """Exit 1 (and say so) if some thread of PID's tree may run outside CPU a.cpu."""
    bad = []
    for p in tree_pids(a.pid):
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/status") as f:
                    for line in f:
                        if line.startswith("Cpus_allowed_list:") and line.split()[1] != str(a.cpu):
                            bad.append(f"{p}/{t}: {line.split()[1]}")
        except OSError:
            pass
    if bad:
        print(f"threads not pinned to CPU {a.cpu}: {', '.join(bad[:8])}", file=sys.stderr)
        return 1
    return 0


def cmd_folios(a):
    """Print, per file, how its cached pages are grouped into folios (/proc/self/pagemap and
    /proc/kpageflags, root only): page-cache lookups cost one per folio, so a 64 KiB range of
    a file cached in 4 KiB folios costs 17 of them and of one in large folios one or two."""
    import ctypes
    import mmap
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    page = os.sysconf("SC_PAGE_SIZE")
    for path in a.files:
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            base = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if base in (None, ctypes.c_void_p(-1).value):
                print(f"{os.path.basename(path)}: not mapped")
                continue
            pages = size // page
            view = (ctypes.c_char * size).from_address(base)
            for i in range(pages):
                view[i * page]  # maps the page (it is cached: the file was just read)
            heads = tails = 0
            with open("/proc/self/pagemap", "rb") as pm, open("/proc/kpageflags", "rb") as kf:
                for i in range(pages):
                    pm.seek((base // page + i) * 8)
                    pfn = struct.unpack("Q", pm.read(8))[0] & ((1 << 55) - 1)
                    kf.seek(pfn * 8)
                    flags = struct.unpack("Q", kf.read(8))[0]
                    heads += flags >> 15 & 1  # KPF_COMPOUND_HEAD
                    tails += flags >> 16 & 1  # KPF_COMPOUND_TAIL
            libc.munmap(base, size)
        finally:
            os.close(fd)
        folios = max(pages - tails, 1)
        print(f"{os.path.basename(path)} is cached in {folios:,} folios of {pages / folios:.1f} "
              f"pages on average ({pages - heads - tails:,} of its {pages:,} pages alone)")
    return 0


# --------------------------------------------------------------------------- idle connections


def cmd_idle(a):
    """Open a.conns keep-alive connections (at most a.inflight handshakes/requests at a time),
    send one GET on each and read its whole response, print READY, hold them idle until SIGTERM or
    a.hold seconds, then report how many the server closed meanwhile and close them all."""
    stop = {"flag": False}

    def on_signal(_sig, _frm):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGUSR1, on_signal)

    addr = ("127.0.0.1", a.port)
    req = f"GET {a.path} HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    idle = []
    started = done = failed = 0
    errors = {}
    t0 = time.time()
    deadline = t0 + a.open_timeout
    cl_re = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)

    def fail(sock, why):
        nonlocal failed
        failed += 1
        errors[why] = errors.get(why, 0) + 1
        try:
            sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    while done + failed < a.conns and time.time() < deadline and not stop["flag"]:
        while started < a.conns and started - done - failed < a.inflight:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(addr)
            started += 1
            if err not in (0, 115):  # EINPROGRESS
                fail(s, os.strerror(err))
                continue
            sel.register(s, selectors.EVENT_WRITE, {"phase": "connect", "buf": bytearray()})
        for key, _ev in sel.select(timeout=0.2):
            s, st = key.fileobj, key.data
            if st["phase"] == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(s, os.strerror(err))
                    continue
                try:
                    s.send(req)  # tiny: always fits the empty send buffer
                except OSError as e:
                    fail(s, f"send: {e.strerror}")
                    continue
                st["phase"] = "read"
                sel.modify(s, selectors.EVENT_READ, st)
            else:
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    fail(s, f"recv: {e.strerror}")
                    continue
                if not chunk:
                    fail(s, "closed before the response ended")
                    continue
                buf = st["buf"]
                buf += chunk
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    continue
                m = cl_re.search(buf, 0, end + 2)
                need = end + 4 + (int(m.group(1)) if m else 0)
                if len(buf) >= need:
                    sel.unregister(s)
                    idle.append(s)
                    st["buf"] = None
                    done += 1
    for key in list(sel.get_map().values()):  # handshakes still pending at the deadline
        fail(key.fileobj, "timed out")
    opened_in = time.time() - t0
    print("READY " + json.dumps({"open": done, "failed": failed, "errors": errors,
                                 "seconds": round(opened_in, 2)}), flush=True)

    for s in idle:
        sel.register(s, selectors.EVENT_READ)
    closed_by_server = 0
    hold_until = time.time() + a.hold
    while not stop["flag"] and time.time() < hold_until:
        for key, _ev in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                closed_by_server += 1
                sel.unregister(s)
    print("DONE " + json.dumps({"closed_by_server_while_idle": closed_by_server}), flush=True)
    for s in idle:
        s.close()
    return 0


# --------------------------------------------------------------------------- report


def fmt_num(v, digits=3):
    if v is None:
        return "–"
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def fmt_lat(us):
    if us is None:
        return "–"
    if us < 1000:
        return f"{us:.0f} µs"
    if us < 100_000:
        return f"{us / 1000:.3g} ms"
    return f"{us / 1e6:.3g} s"


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}×"


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def derive(rec):
    """Per-run metrics from one record."""
    d = {}
    if rec.get("failed"):
        return d
    hz = rec["hz"]
    dur = rec["duration_us"] / 1e6
    reqs = rec["requests"]
    d["rps"] = reqs / dur if dur else None
    d["mibs"] = rec["bytes"] / MIB / dur if dur else None
    d["p50"] = rec["lat_p50_us"]
    d["p99"] = rec["lat_p99_us"]
    srv_s = rec["srv_jiffies"] / hz
    proc_s = rec["proc_jiffies"] / hz
    if rec["scenario"] in LARGE:
        gib = rec["bytes"] / GIB
        d["srv_cost"] = srv_s / gib if gib else None  # CPU-seconds per GiB
        d["proc_cost"] = proc_s / gib if gib else None
        d["thr"] = d["mibs"]
    else:
        d["srv_cost"] = srv_s * 1e6 / reqs if reqs else None  # µs per request
        d["proc_cost"] = proc_s * 1e6 / reqs if reqs else None
        d["thr"] = d["rps"]
    wall = rec["wall_s"]
    d["srv_busy"] = 100 * srv_s / wall if wall else None
    d["cli_busy"] = 100 * (rec["cli_jiffies"] / hz) / wall if wall else None
    d["others"] = 100 * (rec["other_jiffies"] / hz) / wall if wall and "other_jiffies" in rec else None
    if not reqs:  # e.g. `large` in a short run: no response completed, no latency to show
        d["p50"] = d["p99"] = None
    d["hwm_mib"] = rec["hwm_kib"] / 1024
    d["errors"] = sum(rec.get(k, 0) for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    d["non2xx"] = rec.get("err_status", 0)
    return d


SCENARIO_LABEL = {
    "small": "small", "small-files": "small-files", "large": "large", "large-sink": "large-sink", "range": "range",
    "churn": "churn", "idle10k": "idle10k", "https-small": "https-small",
    "https-large": "https-large", "https-churn": "https-churn",
}


def cmd_report(a):
    meta = json.load(open(a.meta))
    servers = meta["servers"]
    scenarios = meta["scenarios"]
    recs = [json.loads(l) for l in open(a.results) if l.strip()] if os.path.exists(a.results) else []
    idle = [json.loads(l) for l in open(a.idle) if l.strip()] if a.idle and os.path.exists(a.idle) else []

    refs = [s for s in servers if s.startswith("ringserve")] or servers[:1]
    # The floors (examples/floor.rs) are no peers: every server's cost is set against them.
    floors = [s for s in ("floor", "floor-sendfile") if s in servers]
    peers = [s for s in servers if s not in refs and s not in floors]

    # medians per (scenario, server)
    cell = {}
    for sc in scenarios:
        for sv in servers:
            runs = [derive(r) for r in recs if r["scenario"] == sc and r["server"] == sv]
            ok = [r for r in runs if r]
            if not runs:
                continue
            m = {k: med([r.get(k) for r in ok]) for k in
                 ("rps", "mibs", "p50", "p99", "srv_cost", "proc_cost", "thr", "srv_busy", "cli_busy", "others")}
            m["hwm_mib"] = max((r["hwm_mib"] for r in ok), default=None)
            m["errors"] = sum(r["errors"] for r in ok)
            m["non2xx"] = sum(r["non2xx"] for r in ok)
            m["runs"] = len(ok)
            m["failed"] = len(runs) - len(ok)
            m["runs_detail"] = ok
            cell[(sc, sv)] = m

    out = []
    w = out.append
    w(f"# ringserve benchmark — {meta['date']}")
    w("")
    w(f"- command: `{meta['command']}`")
    w(f"- commit: `{meta['commit']}`; kernel `{meta['kernel']}`; CPU: {meta['cpu_model']} ({meta['ncpu']} CPUs)")
    versions = meta["versions"]
    listed = ", ".join(f"{s} ({versions.get(s, '?')})" for s in servers)
    w(f"- servers: {listed}; load generator: {versions.get('wrk', 'wrk')}")
    w(f"- server pinned to CPU {meta['server_cpu']}, wrk (`-t1`) to CPU {meta['client_cpu']}; "
      f"{meta['runs']} run(s) of {meta['duration']} s after a {meta['warmup']} s warm-up each, "
      f"servers in alternation, medians shown; a run during which other processes used more than "
      f"{meta.get('max_others', '?')} % of a core was repeated (at most {meta.get('attempts', '?')} tries)")
    if meta.get("ringserve_args"):
        w(f"- RINGSERVE_ARGS: `{meta['ringserve_args']}`")
    w(f"- load average at start: {meta.get('loadavg_start', '?')}; at end: {meta.get('loadavg_end', '?')}")
    w("")
    w("**srv cost** = busy time of the server's CPU from /proc/stat over the run (elapsed − idle − iowait, "
      "which equals user+nice+system+irq+softirq+steal on a busy core and stays exact on a mostly idle one) "
      "÷ requests (µs/req), or ÷ GiB sent for `large` (CPU-s/GiB); it includes "
      "the softirq work of loopback TCP done on that core. **proc cost** = the server processes' own "
      "utime+stime (all processes and threads) on the same scale. **srv/cli busy** = how busy the server's "
      "and wrk's cores were (a cli busy near 100 % means wrk, not the server, was the limit). "
      "**others** = CPU used meanwhile by processes outside the server and this benchmark, in % of one "
      "core: when it is not ≈0 the machine was shared and srv cost is inflated (proc cost much less so). "
      "**peak RSS** = VmHWM summed over the server's processes. Ratios are ringserve ÷ peer: "
      "for cost lower is better, for throughput (req/s; MiB/s for `large`) higher is better. "
      "**cost ÷ floor** (small, small-files, churn, range) = each server's srv cost ÷ that of the "
      "floor, the cheapest responder one can write (`examples/floor.rs`: a fixed 1 KiB answer from "
      "memory, one send per request head; for range, a 206 head sent with send and one "
      "sendfile of the range): 1.00× is as cheap as serving can get. **cost ÷ floor-sendfile** "
      "(small, small-files, churn) = the same against the floor with its answer in a memfd, sent "
      "with one sendfile per request: the cheapest responder whose answer bytes never pass through "
      "user space, as ringserve's file bodies never do.")
    notes = []
    if a.notes and os.path.exists(a.notes):
        notes = [l.rstrip() for l in open(a.notes) if l.strip()]
    steal = sum(r.get("srv_steal_jiffies", 0) for r in recs)
    busy = sum(r.get("srv_jiffies", 0) for r in recs)
    if busy and steal > 0.02 * busy:
        notes.append(f"{100 * steal / busy:.1f} % of the server CPU's busy time was steal (the hypervisor "
                     "ran something else): srv cost is inflated by that much on average")
    busy_runs = [derive(r) for r in recs]
    noisy = [r for r in busy_runs if r and r.get("others") is not None and r["others"] > 5]
    if noisy:
        worst = max(r["others"] for r in noisy)
        notes.append(f"{len(noisy)} of {len(busy_runs)} runs shared the machine with other processes "
                     f"(up to {worst:.0f} % of a core; see the 'others' column): their srv cost is inflated. "
                     "Re-run when the machine is quiet, or compare proc cost.")
    if notes:
        w("")
        w("**Notes and warnings from the run:**")
        w("")
        for n in notes:
            w(f"- {n}")
    w("")

    hdr = ["scenario", "server", "req/s", "MiB/s", "p50", "p99", "srv cost", "proc cost",
           "srv busy", "cli busy", "others", "peak RSS"]
    ratio_hdr = [f"cost ÷ {p}" for p in peers] + [f"thr ÷ {p}" for p in peers]
    ratio_hdr += [f"cost ÷ {f}" for f in floors]
    hdr += ratio_hdr + ["errors"]
    w("| " + " | ".join(hdr) + " |")
    w("|" + "|".join(["---", "---"] + ["--:"] * (len(hdr) - 2)) + "|")
    ratios = {}  # (scenario, ref, peer) -> (cost ratio, thr ratio)
    for sc in scenarios:
        if sc == "idle10k":
            continue
        unit = " s/GiB" if sc in LARGE else " µs"
        for sv in servers:
            m = cell.get((sc, sv))
            if m is None:
                continue
            if m["runs"] == 0:
                w(f"| {sc} | {sv} | failed |" + " |" * (len(hdr) - 3))
                continue
            row = [sc, sv, fmt_num(m["rps"]), fmt_num(m["mibs"]), fmt_lat(m["p50"]), fmt_lat(m["p99"]),
                   (f"{m['srv_cost']:.3g}{unit}" if m["srv_cost"] is not None else "–"),
                   (f"{m['proc_cost']:.3g}{unit}" if m["proc_cost"] is not None else "–"),
                   f"{min(m['srv_busy'], 100):.0f} %", f"{min(m['cli_busy'], 100):.0f} %",
                   (f"{m['others']:.0f} %" if m["others"] is not None else "–"), f"{m['hwm_mib']:.1f} MiB"]
            cr, tr = [], []
            for p in peers:
                pm = cell.get((sc, p))
                if sv in refs and pm and pm["runs"] and m["srv_cost"] and pm["srv_cost"]:
                    c = m["srv_cost"] / pm["srv_cost"]
                    t = m["thr"] / pm["thr"] if pm["thr"] else None
                    ratios[(sc, sv, p)] = (c, t)
                    cr.append(f"**{c:.2f}×**")
                    tr.append(fmt_ratio(t))
                else:
                    cr.append("–")
                    tr.append("–")
            for f in floors:
                fm = cell.get((sc, f))
                if fm and fm["runs"] and m["srv_cost"] and fm["srv_cost"]:
                    tr.append(f"{m['srv_cost'] / fm['srv_cost']:.2f}×")
                else:
                    tr.append("–")
            errs = []
            if m["errors"]:
                errs.append(f"{m['errors']:,}" + (f" ({m['non2xx']:,} non-2xx)" if m["non2xx"] else ""))
            if m["failed"]:
                errs.append(f"{m['failed']} run(s) failed")
            w("| " + " | ".join(row + cr + tr + ["; ".join(errs) or "0"]) + " |")

    if idle:
        w("")
        conns = max(r.get("conns", 0) for r in idle)
        w(f"### idle10k: {conns:,} idle keep-alive connections (one GET each, then idle)")
        w("")
        ih = ["server", "RSS idle (no conn.)", "RSS with conns", "KiB per conn.", "conns open",
              "closed by server while idle", "open time"] + [f"RSS ÷ {p}" for p in peers]
        w("| " + " | ".join(ih) + " |")
        w("|" + "|".join(["---"] + ["--:"] * (len(ih) - 1)) + "|")
        by = {r["server"]: r for r in idle}
        for sv in servers:
            r = by.get(sv)
            if r is None:
                continue
            if r.get("failed"):
                w(f"| {sv} | failed: {r['failed']} |" + " |" * (len(ih) - 2))
                continue
            per = ((r["rss_kib"] - r["idle_rss_kib"]) / r["open"]) if r["open"] else None
            row = [sv, f"{r['idle_rss_kib'] / 1024:.1f} MiB", f"{r['rss_kib'] / 1024:.1f} MiB",
                   fmt_num(per), f"{r['open']:,} / {r['conns']:,}", str(r.get("closed_by_server", "?")),
                   f"{r['open_seconds']:.1f} s"]
            for p in peers:
                pr = by.get(p)
                if sv in refs and pr and not pr.get("failed") and pr["rss_kib"]:
                    c = r["rss_kib"] / pr["rss_kib"]
                    ratios[("idle10k", sv, p)] = (c, None)
                    row.append(f"**{c:.2f}×**")
                else:
                    row.append("–")
            w("| " + " | ".join(row) + " |")

    # per-run detail (file only)
    detail = ["", "<details><summary>Per-run values (throughput, srv cost)</summary>", ""]
    for sc in scenarios:
        for sv in servers:
            m = cell.get((sc, sv))
            if m and m["runs"]:
                tu, cu = ("MiB/s", "s/GiB") if sc in LARGE else ("req/s", "µs")
                parts = []
                for r in m["runs_detail"]:
                    if r.get("thr") is None or r.get("srv_cost") is None:
                        continue
                    part = f"{fmt_num(r['thr'])} {tu}, {r['srv_cost']:.3g} {cu}"
                    if r.get("others") and r["others"] >= 1:
                        part += f" (others {r['others']:.0f} %)"
                    parts.append(part)
                detail.append(f"- {sc} / {sv}: " + "; ".join(parts))
    detail += ["", "</details>"]

    chart_note = ""
    if a.png and ratios:
        ok, how = make_chart(ratios, scenarios, refs, peers, a.png, meta)
        chart_note = f"Chart: `{os.path.basename(a.png)}` ({how})." if ok else f"(no chart: {how})"
    text = "\n".join(out)
    print(text)
    if chart_note:
        print("\n" + chart_note)
    if a.md:
        with open(a.md, "w") as f:
            f.write(text + "\n" + "\n".join(detail) + "\n")
            if chart_note:
                f.write("\n" + chart_note.replace(f"`{os.path.basename(a.png)}`",
                                                  f"![ratios]({os.path.basename(a.png)})") + "\n")
    return 0


def make_chart(ratios, scenarios, refs, peers, png, meta):
    pairs = [(r, p) for r in refs for p in peers if any((sc, r, p) in ratios for sc in scenarios)]
    rows = [sc for sc in scenarios if any((sc, r, p) in ratios for r, p in pairs)]
    if not pairs or not rows:
        return False, "no ratios"
    title1 = f"{' / '.join(refs)} srv cost ÷ peer srv cost (lower is better; idle10k: RSS with the connections open)"
    title2 = f"{meta['date']}, ringserve {meta['commit']}, {meta['runs']} × {meta['duration']} s runs"
    title = title1 + "\n" + title2
    dat = png[:-4] + ".dat"
    with open(dat, "w") as f:
        f.write("scenario " + " ".join(f'"{r} ÷ {p}"' for r, p in pairs) + "\n")
        for sc in rows:
            vals = []
            for r, p in pairs:
                v = ratios.get((sc, r, p))
                vals.append(f"{v[0]:.4f}" if v and v[0] is not None else "-")
            label = "idle10k (RSS)" if sc == "idle10k" else sc
            f.write(f'"{label}" ' + " ".join(vals) + "\n")
    ref_label = " or ".join(refs)
    gp_title = title1.replace('"', "'") + "\\n" + title2.replace('"', "'")  # gnuplot: \n = new line
    gp = f"""
set terminal pngcairo size 1000,560 noenhanced font "sans,10"
set output "{png}"
set title "{gp_title}"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel "ratio ({ref_label} / peer)"
set yrange [0:*]
set grid ytics
set key below
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb "black" front
set offsets 0, 0, graph 0.08, 0
set key autotitle columnheader
N = {len(pairs)}
plot for [i=2:N+1] "{dat}" using i:xtic(1) title columnheader(i), \\
     for [i=2:N+1] "{dat}" using ($0 + (i - 2 - (N - 1) / 2.0) / (N + 1)):i:(sprintf("%.2f", column(i))) \\
         with labels offset 0, 0.7 font ",8" notitle
"""
    try:
        r = subprocess.run(["gnuplot"], input=gp, text=True, capture_output=True, timeout=60)
        if r.returncode == 0 and os.path.exists(png):
            os.unlink(dat)
            return True, "gnuplot"
        err = r.stderr.strip()
        # pngcairo missing? fall back to the gd "png" terminal
        gp2 = gp.replace('pngcairo size 1000,560 noenhanced font "sans,10"', "png size 1000,560 noenhanced")
        r = subprocess.run(["gnuplot"], input=gp2, text=True, capture_output=True, timeout=60)
        if r.returncode == 0 and os.path.exists(png):
            os.unlink(dat)
            return True, "gnuplot"
        err = err or r.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        err = repr(e)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False, f"gnuplot failed ({err[:200]}) and matplotlib is not importable"
    fig, ax = plt.subplots(figsize=(10, 5.6))
    width = 0.8 / len(pairs)
    for i, (r, p) in enumerate(pairs):
        ys = [(ratios.get((sc, r, p)) or (0, 0))[0] or 0 for sc in rows]
        ax.bar([x + i * width for x in range(len(rows))], ys, width, label=f"{r} ÷ {p}")
    ax.axhline(1.0, color="black", linestyle="--")
    ax.set_xticks([x + width * (len(pairs) - 1) / 2 for x in range(len(rows))], rows)
    ax.set_ylabel(f"ratio ({' or '.join(refs)} / peer)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.savefig(png, dpi=100)
    os.unlink(dat)
    return True, "matplotlib"


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("free-ports"); p.add_argument("n", type=int); p.set_defaults(f=cmd_free_ports)
    p = sub.add_parser("tree"); p.add_argument("pid", type=int); p.set_defaults(f=cmd_tree)
    p = sub.add_parser("wait-listen")
    p.add_argument("--pid", type=int, required=True); p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=15); p.set_defaults(f=cmd_wait_listen)
    p = sub.add_parser("sample")
    p.add_argument("--cpus", required=True); p.add_argument("--pid", type=int, default=0)
    p.add_argument("--exclude", help="comma-separated pids whose trees are not 'other' load")
    p.set_defaults(f=cmd_sample)
    p = sub.add_parser("check")
    p.add_argument("--port", type=int, required=True); p.add_argument("--corpus", required=True)
    p.set_defaults(f=cmd_check)
    p = sub.add_parser("record")
    for k in ("scenario", "server", "wrk-out", "before", "after"):
        p.add_argument("--" + k, required=True)
    for k in ("run", "server-cpu", "client-cpu"):
        p.add_argument("--" + k, type=int, required=True)
    p.add_argument("--max-others", type=float, help="exit 3 if other processes used more CPU (%% of a core)")
    p.set_defaults(f=cmd_record)
    p = sub.add_parser("record-idle")
    for k in ("server", "idle-sample", "busy-sample", "client-out"):
        p.add_argument("--" + k, required=True)
    p.add_argument("--conns", type=int, required=True)
    p.set_defaults(f=cmd_record_idle)
    p = sub.add_parser("quietest")
    p.add_argument("files", nargs="+"); p.set_defaults(f=cmd_quietest)
    p = sub.add_parser("affinity")
    p.add_argument("pid", type=int); p.add_argument("cpu", type=int); p.set_defaults(f=cmd_affinity)
    p = sub.add_parser("folios")
    p.add_argument("files", nargs="+"); p.set_defaults(f=cmd_folios)
    p = sub.add_parser("idle")
    p.add_argument("--port", type=int, required=True); p.add_argument("--path", default="/1k.bin")
    p.add_argument("--conns", type=int, default=10000); p.add_argument("--inflight", type=int, default=256)
    p.add_argument("--open-timeout", type=float, default=20); p.add_argument("--hold", type=float, default=8)
    p.set_defaults(f=cmd_idle)
    p = sub.add_parser("report")
    p.add_argument("--results", required=True); p.add_argument("--idle"); p.add_argument("--meta", required=True)
    p.add_argument("--md"); p.add_argument("--png"); p.add_argument("--notes")
    p.set_defaults(f=cmd_report)
    a = ap.parse_args()
    sys.exit(a.f(a))


if __name__ == "__main__":
    main()
