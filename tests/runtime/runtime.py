#!/usr/bin/env python3
"""Helpers for srvd's runtime-API suite (run.sh) and benches/haproxy-runtime.sh.

    backend NAME ADDR PORT       a TCP server that writes NAME and a newline to
                                 each connection, then echoes what it reads: a
                                 stand-in for a MySQL replica
    client ADDR PORT LOG         new connections at --rate a second until
                                 SIGTERM, each reading the first line, one line
                                 per attempt in LOG: "START END ok NAME" or
                                 "START END fail REASON"
    pool ADDR PORT LOG           --size long-lived sessions, as an
                                 application's connection pool holds them:
                                 each pings every 0.2 s and expects its echo;
                                 a session that ends is logged and replaced;
                                 with --lifetime S, each also closes itself
                                 after a random 0..S s and reconnects, as
                                 pools recycle their connections, but for
                                 the first --steady sessions, which never do
    held POOL NAME FROM TO       how many of the pool's sessions to NAME were
                                 open from before FROM to after TO
                                 LOG: "T open ID NAME", "T close ID NAME REASON"
    plan SEED N                  N steps of SRV record sets, each one change
                                 from the last: "KIND NAME prio:weight:host ..."
    failures LOG                 the client's failed attempts; exit 1 if any
    attempts LOG                 the client's attempts, between FROM and TO
    sessions POOL CHANGES DRAIN  judges the pool's closes against the changes
                                 ("INDEX T_SENT T_DEST T_APPLIED LEAVERS"
                                 lines; LEAVERS comma-separated)
    ask SOCKET COMMAND           one command on a HAProxy CLI socket
    reloads SOCKET               the master's reload count (`show proc`)
    workers SOCKET               the master's worker count and their PIDs
    rss SOCKET                   HAProxy's processes (the master and every
                                 worker, old ones included) and the sums of
                                 their resident memory (VmRSS, which counts
                                 pages the processes share once in each) and
                                 of their proportional share (Pss, which
                                 splits them): "COUNT RSS_KIB PSS_KIB"
    state SOCKET CFG BACKEND     HAProxy's running servers equal CFG's; prints
                                 the difference and exits 1 otherwise
    hang PATH                    a Unix socket that accepts and never answers
    notify ADDR PORT ZONE NAME FRONT_ADDR FRONT_PORT
                                 sends a DNS NOTIFY for ZONE (RFC 1996) to
                                 ADDR:PORT, then connects to the frontend
                                 every 2 ms until NAME answers; prints the
                                 NOTIFY's time and the answer's (NAME "-":
                                 only the NOTIFY)

Times are seconds since the epoch (`date +%s.%N`).
"""

import argparse
import os
import random
import select
import signal
import socket
import socketserver
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import lib  # noqa: E402  (tests/lib.py)


def cmd_backend(args):
    hello = (args.name + "\n").encode()

    def handle(sock):
        sock.sendall(hello)
        while True:
            data = sock.recv(4096)
            if not data:
                return
            sock.sendall(data)

    lib.serve_tcp(args.addr, args.port, handle, 256)


def first_line(s):
    data = b""
    while b"\n" not in data:
        chunk = s.recv(256)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace").strip()


def cmd_client(args):
    lib.client_at_rate(args, first_line)


def cmd_pool(args):
    out = open(args.log, "a", buffering=1)
    lock = threading.Lock()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def log(line):
        with lock:
            out.write(f"{time.time():.6f} {line}\n")

    def session(ident):
        while not stop.is_set():
            try:
                s = socket.create_connection((args.addr, args.port), timeout=2)
                name = first_line(s)
            except OSError as e:
                log(f"fail {ident} - connect:{type(e).__name__}")
                stop.wait(0.2)
                continue
            if not name:
                log(f"fail {ident} - empty-answer")
                s.close()
                stop.wait(0.2)
                continue
            log(f"open {ident} {name}")
            reason = None
            n = 0
            recycles = args.lifetime and ident >= args.steady
            until = time.time() + random.random() * args.lifetime if recycles else None
            while not stop.is_set():
                if until is not None and time.time() > until:
                    reason = "recycled"
                    break
                n += 1
                ping = f"ping {n}\n".encode()
                try:
                    s.sendall(ping)
                    got = b""
                    s.settimeout(3)
                    while len(got) < len(ping):
                        chunk = s.recv(len(ping) - len(got))
                        if not chunk:
                            reason = "eof"
                            break
                        got += chunk
                    if reason is None and got != ping:
                        reason = "garbled"
                    if reason is not None:
                        break
                    # Sleep, but wake at once when the peer closes.
                    r, _, _ = select.select([s], [], [], 0.2)
                    if r:
                        chunk = s.recv(64)
                        reason = "eof" if not chunk else "unexpected-data"
                        break
                except ConnectionResetError:
                    reason = "reset"
                    break
                except socket.timeout:
                    reason = "timeout"
                    break
                except OSError as e:
                    reason = f"error:{e.errno}"
                    break
            s.close()
            log(f"close {ident} {name} {reason or 'stopped'}")

    threads = [threading.Thread(target=session, args=(i,), daemon=True) for i in range(args.size)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    while not stop.is_set():
        stop.wait(0.5)
    for t in threads:
        t.join(5)
    out.close()


HOSTS = [f"db-00{i}" for i in range(2, 9)]


def cmd_plan(args):
    """Steps of record sets. db-001 stays active (priority 10) throughout,
    with a weight that changes now and then; db-002..db-008 come and go,
    change weight, and move between active (10) and backup (20)."""
    rng = random.Random(args.seed)
    weights = [1, 5, 10, 50, 100, 200, 256]
    cur = {"db-001": (10, 10), "db-002": (10, 10)}
    kinds = ["add", "remove", "weight", "backup"]
    for _ in range(args.n):
        while True:
            kind = rng.choice(kinds)
            present = [h for h in HOSTS if h in cur]
            absent = [h for h in HOSTS if h not in cur]
            if kind == "add" and absent:
                h = rng.choice(absent)
                cur[h] = (rng.choice([10, 10, 20]), rng.choice(weights))
            elif kind == "remove" and present:
                h = rng.choice(present)
                del cur[h]
            elif kind == "weight":
                h = rng.choice(present + ["db-001"])
                w = rng.choice([x for x in weights if x != cur[h][1]])
                cur[h] = (cur[h][0], w)
            elif kind == "backup" and present:
                h = rng.choice(present)
                cur[h] = (30 - cur[h][0], cur[h][1])
            else:
                continue
            break
        recs = " ".join(f"{p}:{w}:{n}" for n, (p, w) in sorted(cur.items()))
        print(f"{kind} {h} {recs}")
    return 0


def pool_events(path):
    """(T, WHAT, ID, NAME, FIELDS, LINE) per line of a pool's log
    ("T open ID NAME", "T close ID NAME REASON", "T fail ..."); shorter
    lines are skipped."""
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 4:
                yield float(p[0]), p[1], p[2], p[3], p, line


def cmd_failures(args):
    bad = [r for r in lib.read_client_log(args.log) if not r[2] and args.start <= r[0] <= args.end]
    for start, end, _, why in bad:
        print(f"{start:.6f} {end:.6f} {why}")
    return 1 if bad else 0


def cmd_attempts(args):
    rows = [r for r in lib.read_client_log(args.log) if args.start <= r[0] <= args.end]
    names = {}
    for r in rows:
        if r[2]:
            names[r[3]] = names.get(r[3], 0) + 1
    print(len(rows), len(names))
    return 0


def cmd_sessions(args):
    """Every close of a pooled session must be a drained one: its server
    left (removed, or moved between active and backup, which HAProxy's
    runtime API does as a removal and an addition) at a change sent at
    T_SENT and applied at T_APPLIED, and the close came within DRAIN + 1 s
    of T_DEST, when its new dest appeared. Any other close is a session to
    a server that stays, cut."""
    changes = []
    with open(args.changes) as f:
        for line in f:
            p = line.split()
            if len(p) >= 4:
                leavers = set(p[4].split(",")) - {""} if len(p) > 4 else set()
                changes.append((int(p[0]), float(p[1]), float(p[2]), float(p[3]), leavers))
    opened, closes, fails = {}, [], []
    for t, what, ident, name, p, line in pool_events(args.pool):
        if not (args.start <= t <= args.end):
            continue
        if what == "open":
            opened[ident] = (t, name)
        elif what == "close" and p[4:5] not in (["stopped"], ["recycled"]):
            since = opened.get(ident, (None, name))[0]
            closes.append((t, name, p[4] if len(p) > 4 else "?", since))
        elif what == "fail":
            fails.append(line.strip())
    drained, cut, late = 0, [], []
    for t, name, reason, since in closes:
        host = name.split(".")[0]
        cands = [c for c in changes if host in c[4] and c[1] <= t <= c[3] + 1.0]
        if not cands:
            cut.append(f"{t:.3f} {name} {reason} (open since {since})")
            continue
        c = cands[0]
        if t - c[2] > args.drain + 1.0:
            late.append(f"{name} closed {t - c[2]:.2f}s after change {c[0]}'s dest")
        drained += 1
    print(f"  pool: {len(closes)} sessions closed: {drained} to servers that left, {len(cut)} to servers "
          f"that stayed, {len(late)} later than drain + 1 s; {len(fails)} failed connections", file=sys.stderr)
    for line in cut[:10] + late[:10] + fails[:10]:
        print("   ", line, file=sys.stderr)
    print(drained, len(cut), len(late), len(fails))
    return 0


def cmd_held(args):
    opened, held = {}, 0
    for t, what, ident, name, _, _ in pool_events(args.pool):
        if what == "open":
            opened[ident] = (t, name)
        elif what == "close" and ident in opened:
            since, was = opened.pop(ident)
            if was == args.name and since < args.start and t > args.end:
                held += 1
    now = time.time()
    held += sum(1 for since, was in opened.values() if was == args.name and since < args.start and now > args.end)
    print(held)
    return 0


def ask(path, command, timeout=5):
    if path.startswith("ipv4@"):
        host, port = path[5:].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=timeout)
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
    with s:
        s.sendall(command.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        data = lib.read_to_eof(s)
    return data.decode(errors="replace")


def cmd_ask(args):
    sys.stdout.write(ask(args.socket, args.command))
    return 0


def show_proc(sock):
    """(master reloads, master failed, [worker pids]) from `show proc`:
    "#<PID> <type> <reloads> <uptime> <version>", the master first."""
    reloads, failed, workers = None, "0", []
    for line in ask(sock, "show proc").splitlines():
        f = line.split()
        if len(f) >= 3 and f[1] == "master":
            reloads = f[2]
            if "[failed:" in line:
                failed = line.split("[failed:", 1)[1].split("]", 1)[0].strip()
        elif len(f) >= 3 and f[1] == "worker":
            workers.append(f[0])
    return reloads, failed, workers


def cmd_reloads(args):
    reloads, failed, _ = show_proc(args.socket)
    if reloads is None:
        return 1
    print(reloads, failed)
    return 0


def cmd_workers(args):
    reloads, _, workers = show_proc(args.socket)
    if reloads is None:
        return 1
    print(len(workers), " ".join(workers))
    return 0


def cmd_rss(args):
    pids = []
    for line in ask(args.socket, "show proc").splitlines():
        f = line.split()
        if len(f) >= 3 and f[1] in ("master", "worker") and f[0].isdigit():
            pids.append(f[0])
    rss = pss = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as st:
            for line in st:
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as st:
            for line in st:
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
    print(len(pids), rss, pss)
    return 0 if pids else 1


def cfg_servers(path, backend):
    """{name: (addr, port, weight, backup, disabled, draining)} of BACKEND's
    server lines (a server in the file never drains)."""
    out, inside = {}, False
    with open(path) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] in ("global", "defaults", "frontend", "backend", "listen"):
                inside = w[0] in ("backend", "listen") and len(w) > 1 and w[1] == backend
                continue
            if inside and w[0] == "server" and len(w) >= 3:
                addr, port = w[2].rsplit(":", 1)
                weight = int(w[w.index("weight") + 1]) if "weight" in w else 1
                out[w[1]] = (addr, int(port), weight, "backup" in w[3:], "disabled" in w[3:], False)
    return out


def run_servers(sock, backend):
    """The same, as HAProxy runs them: `show servers state` (version 1:
    be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state
    srv_uweight srv_iweight ... srv_port at index 18) and `show stat` (bck)."""
    out = {}
    state = ask(sock, f"show servers state {backend}")
    for line in state.splitlines():
        f = line.split()
        if len(f) < 19 or line.startswith("#") or f[1] != backend:
            continue
        # srv_admin_state: 0x01 forced maint, 0x02 inherited, 0x04 from the
        # config (disabled), 0x20 resolution; 0x08 forced drain (HAProxy's
        # server.h, enum srv_admin).
        admin = int(f[6])
        out[f[3]] = [f[4], int(f[18]), int(f[7]), None, bool(admin & 0x27), bool(admin & 0x08)]
    stat = ask(sock, "show stat")
    head = None
    for line in stat.splitlines():
        if line.startswith("# "):
            head = line[2:].split(",")
            continue
        if head is None or not line:
            continue
        row = dict(zip(head, line.split(",")))
        if row.get("pxname") == backend and row.get("svname") in out:
            out[row["svname"]][3] = row.get("bck") == "1"
    return {k: tuple(v) for k, v in out.items()}


def cmd_state(args):
    want = cfg_servers(args.cfg, args.backend)
    try:
        have = run_servers(args.socket, args.backend)
    except OSError as e:
        print(f"  {args.socket}: {e}", file=sys.stderr)
        return 1
    if want == have and want:
        return 0
    for name in sorted(set(want) | set(have)):
        if want.get(name) != have.get(name):
            print(f"  {name}: file {want.get(name)} HAProxy {have.get(name)}", file=sys.stderr)
    return 1


def cmd_hang(args):
    s = lib.bound_unix(args.path, socket.SOCK_STREAM)
    s.listen(64)
    held = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        c, _ = s.accept()
        held.append(c)


def notify_message(zone):
    """A NOTIFY (opcode 4, AA) with one question: ZONE SOA IN."""
    qname = b"".join(bytes([len(label)]) + label.encode() for label in zone.strip(".").split(".")) + b"\0"
    return random.randrange(65536).to_bytes(2, "big") + b"\x24\x00\x00\x01\x00\x00\x00\x00\x00\x00" + qname + b"\x00\x06\x00\x01"


def cmd_notify(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    t0 = time.time()
    s.sendto(notify_message(args.zone), (args.addr, args.port))
    answer = s.recv(512)
    if len(answer) < 4 or answer[3] & 0x0F != 0:
        print(f"NOTIFY refused: {answer[:4].hex()}", file=sys.stderr)
        return 1
    if args.name == "-":
        return 0
    deadline = t0 + args.limit
    while time.time() < deadline:
        try:
            with socket.create_connection((args.front_addr, args.front_port), timeout=1) as c:
                if first_line(c) == args.name:
                    print(f"{t0:.6f} {time.time():.6f}")
                    return 0
        except OSError:
            pass
        time.sleep(0.002)
    return 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name, fn, *positional, **options):
        s = sub.add_parser(name)
        for a in positional:
            if ":" in a:
                a, kind = a.split(":")
                s.add_argument(a, type={"int": int, "float": float}[kind])
            else:
                s.add_argument(a)
        for o, (kind, default) in options.items():
            s.add_argument("--" + o, type=kind, default=default)
        s.set_defaults(fn=fn)

    add("backend", cmd_backend, "name", "addr", "port:int")
    add("client", cmd_client, "addr", "port:int", "log", rate=(float, 50.0), timeout=(float, 3.0))
    add("pool", cmd_pool, "addr", "port:int", "log", size=(int, 8), lifetime=(float, 0.0), steady=(int, 0))
    add("held", cmd_held, "pool", "name", "start:float", "end:float")
    add("plan", cmd_plan, "seed:int", "n:int")
    add("failures", cmd_failures, "log", start=(float, 0.0), end=(float, 1e12))
    add("attempts", cmd_attempts, "log", start=(float, 0.0), end=(float, 1e12))
    add("sessions", cmd_sessions, "pool", "changes", "drain:float", start=(float, 0.0), end=(float, 1e12))
    add("ask", cmd_ask, "socket", "command")
    add("reloads", cmd_reloads, "socket")
    add("workers", cmd_workers, "socket")
    add("rss", cmd_rss, "socket")
    add("state", cmd_state, "socket", "cfg", "backend")
    add("hang", cmd_hang, "path")
    add("notify", cmd_notify, "addr", "port:int", "zone", "name", "front_addr", "front_port:int", limit=(float, 20.0))
    args = p.parse_args()
    sys.exit(args.fn(args))


if __name__ == "__main__":
    main()
