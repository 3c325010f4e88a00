#!/usr/bin/env python3
"""Helpers for srvd's whole-process benchmarks (benches/*.sh). Standard
library only.

  busy BASE                 addresses from `ss` on stdin in BASE..BASE+29
  zone-stats                `knotc zone-stats` on stdin -> "ZONE TYPE COUNT"
  sniff PORT OUT READY      log every DNS query sent to 127.0.0.1:PORT (UDP)
  gaps FILE INTERVAL ZONE.. per zone: queries by type, min gap per name+type
  busiest FILE ZONE UNTIL   most queries one name and type got before UNTIL
  divan                     `cargo bench` (divan) output on stdin -> medians
  procstat PID              peak and current RSS, CPU ticks and nanoseconds
  propagate KEY=VALUE...     propagation: DNS change -> dest / reload / HAProxy
  pct                       numbers on stdin -> "N P50 P95 MAX"
"""

import ctypes
import math
import os
import re
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import lib  # noqa: E402  (tests/lib.py)


def busy(base):
    lo, hi = base, base + 29
    found = []
    for line in sys.stdin:
        addr = line.strip()
        host, _, port = addr.rpartition(":")
        if not port.isdigit():
            continue
        if host in ("*", "0.0.0.0", "[::]", "127.0.0.1", "[::1]") and lo <= int(port) <= hi:
            found.append(addr)
    print(" ".join(sorted(set(found))))


def zone_stats():
    # [zone.] mod-stats.query-type[SRV] = 12
    pat = re.compile(r"^\[([^\]]+)\]\s+mod-stats\.([a-z-]+)\[([^\]]+)\]\s*=\s*(\d+)")
    for line in sys.stdin:
        m = pat.match(line.strip())
        if not m:
            continue
        zone, group, item, count = m.groups()
        zone = zone.rstrip(".")
        if group == "query-type":
            print(zone, item, count)
        elif group == "server-operation" and item == "query":
            print(zone, "total", count)


# --- sniffing ---------------------------------------------------------------

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35


def udp_dst_port_filter(port):
    """Classic BPF: IPv4, UDP, not a fragment, destination port `port`."""
    prog = [
        (0x28, 0, 0, 12),  # ldh [12]           ethertype
        (0x15, 0, 8, 0x0800),  # jeq IPv4 else drop
        (0x30, 0, 0, 23),  # ldb [23]           protocol
        (0x15, 0, 6, 17),  # jeq UDP else drop
        (0x28, 0, 0, 20),  # ldh [20]           fragment offset
        (0x45, 4, 0, 0x1FFF),  # jset -> drop
        (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf)  IP header length
        (0x48, 0, 0, 16),  # ldh [x+16]         UDP destination port
        (0x15, 0, 1, port),  # jeq port else drop
        (0x06, 0, 0, 0x40000),  # accept
        (0x06, 0, 0, 0),  # drop
    ]
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw)
    return buf, struct.pack("HL", len(prog), ctypes.addressof(buf))


def qname_qtype(msg):
    """The question of a DNS query (QR=0, opcode QUERY), else None."""
    if len(msg) < 12:
        return None
    flags = struct.unpack("!H", msg[2:4])[0]
    if flags & 0x8000 or (flags >> 11) & 0xF != 0:
        return None
    if struct.unpack("!H", msg[4:6])[0] < 1:
        return None
    labels, i = [], 12
    while i < len(msg):
        n = msg[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0:
            return None
        labels.append(msg[i + 1 : i + 1 + n].decode("ascii", "replace").lower())
        i += 1 + n
    if i + 2 > len(msg):
        return None
    qtype = struct.unpack("!H", msg[i : i + 2])[0]
    names = {1: "A", 28: "AAAA", 33: "SRV", 6: "SOA", 5: "CNAME", 2: "NS"}
    return ".".join(labels), names.get(qtype, str(qtype))


def sniff(port, out, ready):
    """Logs "TIME_NS QNAME QTYPE" for every query that reaches the server's
    loopback port, timestamped by the kernel, until SIGTERM."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    keep, fprog = udp_dst_port_filter(port)
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind(("lo", 0))

    def stop(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    with open(out, "w", buffering=1) as f:
        open(ready, "w").close()
        while True:
            data, anc, _, addr = s.recvmsg(65535, 64)
            if addr[2] == PACKET_OUTGOING:
                continue  # loopback shows every packet twice
            ts = time.time_ns()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    ts = sec * 1_000_000_000 + nsec
            if len(data) < 14 + 20 or struct.unpack("!H", data[12:14])[0] != 0x0800:
                continue
            ihl = (data[14] & 0xF) * 4
            udp = 14 + ihl
            if data[23] != 17 or struct.unpack("!H", data[udp + 2 : udp + 4])[0] != port:
                continue
            q = qname_qtype(data[udp + 8 :])
            if q:
                f.write(f"{ts} {q[0]} {q[1]}\n")


def gaps(path, interval, zones):
    """Per zone: "ZONE QUERIES SRV A AAAA MIN_GAP EARLY" where MIN_GAP is the
    smallest time between two queries for the same name and type, and EARLY
    counts gaps under 0.9 x INTERVAL (two queries in one poll interval)."""
    by_key = {}
    with open(path) as f:
        for line in f:
            ts, name, qtype = line.split()
            by_key.setdefault((name, qtype), []).append(int(ts) / 1e9)
    for zone in zones:
        counts = {"SRV": 0, "A": 0, "AAAA": 0}
        total, min_gap, early = 0, None, 0
        for (name, qtype), times in by_key.items():
            if not (name == zone or name.endswith("." + zone)):
                continue
            total += len(times)
            counts[qtype] = counts.get(qtype, 0) + len(times)
            times.sort()
            for a, b in zip(times, times[1:]):
                g = b - a
                min_gap = g if min_gap is None else min(min_gap, g)
                if g < 0.9 * interval:
                    early += 1
        gap = "-" if min_gap is None else f"{min_gap:.3f}"
        print(zone, total, counts["SRV"], counts["A"], counts["AAAA"], gap, early)


def busiest(path, zone, until):
    """The most queries any one name and type of `zone` got before `until`."""
    counts = {}
    with open(path) as f:
        for line in f:
            ts, name, qtype = line.split()
            if int(ts) / 1e9 < float(until) and (name == zone or name.endswith("." + zone)):
                counts[(name, qtype)] = counts.get((name, qtype), 0) + 1
    print(max(counts.values(), default=0))


# --- divan --------------------------------------------------------------------

UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def divan():
    """divan's tree table on stdin -> "BENCH ARG MEDIAN_SECONDS MEAN_SECONDS"."""
    group = None

    def secs(text):
        m = re.match(r"\s*([\d.]+)\s*(ns|µs|us|ms|s)\b", text)
        return float(m.group(1)) * UNITS[m.group(2)] if m else None

    for raw in sys.stdin:
        line = raw.rstrip("\n")
        # The tree's drawing first, then name and cells split by "│".
        body = re.sub(r"^[\s│├╰─]+", "", line)
        if "│" not in body:
            continue
        cells = body.split("│")
        parts = cells[0].split()
        if not parts or parts[0] == "fastest":
            continue
        if len(parts) == 1 and not cells[1].strip():
            group = parts[0]  # a group line: a name and nothing measured
            continue
        if group is None or len(cells) < 4 or len(parts) < 2 or raw.startswith(parts[0]):
            continue  # the header line
        median, mean = secs(cells[2]), secs(cells[3])
        if median is not None:
            print(group, parts[0], f"{median:.9f}", f"{mean:.9f}")


# --- processes ------------------------------------------------------------------


def procstat(pid):
    """"VMHWM_KB VMRSS_KB CPU_TICKS CPU_NS THREADS RSSANON_KB RSSFILE_KB" of a
    process: RssAnon is its own memory (heap, stacks), RssFile the pages of
    its binary and libraries that it has mapped in."""
    status = open(f"/proc/{pid}/status").read()
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    anon = int(re.search(r"RssAnon:\s+(\d+)", status).group(1))
    mapped = int(re.search(r"RssFile:\s+(\d+)", status).group(1))
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    ns, threads = 0, 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            ns += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
            threads += 1
        except OSError:
            pass
    print(hwm, rss, ticks, ns, threads, anon, mapped)


# --- propagation ------------------------------------------------------------------


def propagate(opts):
    """CHANGES times: wait 1 s plus a random part of one polling cycle (the
    TTL rounded up to whole intervals: srvd asks again that long after it
    last asked, here when it saw the previous change), so that changes land
    uniformly over the cycle, as real ones do; then swap the only SRV
    record of NAME from one target to the other with a signed RFC 2136 update
    (nsupdate), and time from the server's acknowledgement (nsupdate has
    returned: the change is live) until
      mode dest:    dest is a new file naming the new target (polled every
                    millisecond), then the reload command started (it writes
                    its start time into MARKER): prints "DEST_MS RELOAD_MS";
      mode haproxy: a server of BACKEND has the new target's address and is
                    usable (the runtime API polled every 5 ms): prints "MS".
    One line per change on stdout; progress on stderr."""
    import random
    import subprocess

    o = dict(a.split("=", 1) for a in opts)
    targets = o["targets"].split(",")
    addrs = o["addrs"].split(",")
    ttl, interval = float(o["ttl"]), float(o["interval"])
    cycle = math.ceil(ttl / interval) * interval
    current = 0
    for i in range(int(o["changes"])):
        nxt = 1 - current
        time.sleep(1 + random.random() * cycle)
        old_ino = os.stat(o["dest"]).st_ino if o["mode"] == "dest" else None
        update = (
            f"server {o['server']} {o['port']}\nzone {o['zone']}\n"
            f"update delete {o['name']}. SRV 10 10 3306 {targets[current]}.{o['zone']}.\n"
            f"update add {o['name']}. {int(ttl)} SRV 10 10 3306 {targets[nxt]}.{o['zone']}.\n"
            "send\n"
        )
        sent = time.time()
        subprocess.run(["nsupdate", "-y", o["tsig"], "-t", "5"], input=update.encode(), check=True)
        t0 = time.time()
        deadline = t0 + 60
        dest_at = reload_at = None
        while time.time() < deadline:
            now = time.time()
            if o["mode"] == "haproxy":
                try:
                    servers = haproxy_servers(o["sock"], o["backend"])
                except OSError:
                    servers = []
                if any(a == addrs[nxt] and usable(op, adm) for _, a, op, adm in servers):
                    dest_at = reload_at = now
            else:
                if dest_at is None:
                    try:
                        if os.stat(o["dest"]).st_ino != old_ino:
                            with open(o["dest"]) as f:
                                if f"{targets[nxt]}.{o['zone']}" in f.read():
                                    dest_at = now
                    except OSError:
                        pass
                if dest_at is not None and reload_at is None:
                    try:
                        with open(o["marker"]) as f:
                            later = [float(x) for x in f.read().split() if float(x) >= t0]
                        reload_at = later[0] if later else None
                    except (OSError, ValueError):
                        pass
            if dest_at is not None and reload_at is not None:
                break
            time.sleep(0.005 if o["mode"] == "haproxy" else 0.001)
        else:
            print(f"change {i + 1}: not followed within 60 s", file=sys.stderr)
            return 1
        d, r = (dest_at - t0) * 1000, (reload_at - t0) * 1000
        print(
            f"  change {i + 1}: {targets[current]} -> {targets[nxt]}: {d:.0f} ms"
            + (f", reload {r:.0f} ms" if o["mode"] == "dest" else "")
            + f" (nsupdate {1000 * (t0 - sent):.0f} ms)",
            file=sys.stderr,
        )
        print(f"{d:.1f} {r:.1f}" if o["mode"] == "dest" else f"{d:.1f}", flush=True)
        current = nxt
    return 0


def haproxy_servers(sock_path, backend):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(sock_path)
    s.sendall(f"show servers state {backend}\n".encode())
    data = lib.read_to_eof(s)
    s.close()
    # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...
    servers = []
    for line in data.decode().splitlines():
        f = line.split()
        if len(f) > 6 and f[0].isdigit():
            servers.append((f[3], f[4], int(f[5]), int(f[6])))
    return servers


def usable(op_state, admin_state):
    """Running, and in none of the maintenance modes (forced, inherited,
    configured, resolution); 0x40 only says the FQDN came from DNS."""
    return op_state == 2 and admin_state & 0x27 == 0


def haproxy_addrs(sock_path, backend):
    """The addresses of the servers of `backend` that are in use."""
    for name, a, op, admin in haproxy_servers(sock_path, backend):
        if usable(op, admin):
            print(a)


def pct():
    """Nearest-rank percentiles of the numbers on stdin: "N P50 P95 MAX"."""
    xs = sorted(float(x) for x in sys.stdin.read().split())
    if not xs:
        print("0 - - -")
        return

    def rank(p):
        return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]

    print(len(xs), f"{rank(50):.0f}", f"{rank(95):.0f}", f"{xs[-1]:.0f}")


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "busy":
        busy(int(args[0]))
    elif cmd == "zone-stats":
        zone_stats()
    elif cmd == "sniff":
        sniff(int(args[0]), args[1], args[2])
    elif cmd == "gaps":
        gaps(args[0], float(args[1]), args[2:])
    elif cmd == "busiest":
        busiest(args[0], args[1], args[2])
    elif cmd == "divan":
        divan()
    elif cmd == "procstat":
        procstat(args[0])
    elif cmd == "propagate":
        return propagate(args)
    elif cmd == "haproxy-addrs":
        haproxy_addrs(*args)
    elif cmd == "pct":
        pct()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv) or 0)
