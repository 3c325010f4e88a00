#!/usr/bin/env python3
"""DNS NOTIFY traffic for srvd's NOTIFY suite (run.sh) and its benchmark,
with nothing but the standard library.

    send ADDR PORT ZONE [--source IP] [--tcp] [--key ALG:NAME:SECRET]
                        sends one NOTIFY (RFC 1996), TSIG-signed with --key
                        (RFC 8945; SECRET in base64); prints the answer's
                        RCODE name (NOERROR, REFUSED, NOTAUTH...) or
                        "no-answer"
    garbage ADDR PORT   sends malformed packets over UDP and TCP; prints how
                        many complete messages it sent (each one srvd must
                        count as malformed), then "answered N"
    flood ADDR PORT ZONE --count N --seconds S [--key ...]
                        sends N NOTIFYs evenly over S seconds over UDP;
                        prints "sent N answered M NOERROR K seconds X"
    sdlisten PATH LOG   a stand-in for systemd's notify socket: logs every
                        datagram as "EPOCH-SECONDS VARIABLE=VALUE..." in LOG
    sdcheck LOG FROM TO --every S
                        asserts that WATCHDOG=1 came at least every S
                        seconds between FROM and TO (epoch seconds); prints
                        the pings and the largest gap
"""

import argparse
import base64
import hashlib
import hmac
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import lib  # noqa: E402  (tests/lib.py)

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
          5: "REFUSED", 9: "NOTAUTH", 10: "NOTZONE"}
OPCODE_NOTIFY = 4
TYPE_SOA, TYPE_A, TYPE_TSIG = 6, 1, 250
CLASS_IN, CLASS_ANY = 1, 255


def wire_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.lower().encode()
    return out + b"\x00"


def notify_message(zone, msg_id, opcode=OPCODE_NOTIFY, qtype=TYPE_SOA, qr=0, qdcount=1):
    flags = (qr << 15) | (opcode << 11) | (1 << 10)  # AA, as primaries send it
    header = struct.pack(">HHHHHH", msg_id, flags, qdcount, 0, 0, 0)
    return header + wire_name(zone) + struct.pack(">HH", qtype, CLASS_IN)


HASHES = {"hmac-sha256": hashlib.sha256, "hmac-sha512": hashlib.sha512}


def tsig_sign(message, key, now=None, fudge=300):
    """Appends a TSIG record to `message` (RFC 8945 section 4.3)."""
    alg, name, secret = key.split(":", 2)
    digest = HASHES[alg]
    signed_at = int(time.time() if now is None else now)
    time_fields = struct.pack(">HIH", signed_at >> 32, signed_at & 0xFFFFFFFF, fudge)
    variables = (wire_name(name) + struct.pack(">HI", CLASS_ANY, 0) + wire_name(alg)
                 + time_fields + struct.pack(">HH", 0, 0))
    mac = hmac.new(base64.b64decode(secret), message + variables, digest).digest()
    msg_id = message[:2]
    rdata = (wire_name(alg) + time_fields + struct.pack(">H", len(mac)) + mac + msg_id
             + struct.pack(">HH", 0, 0))
    record = wire_name(name) + struct.pack(">HHIH", TYPE_TSIG, CLASS_ANY, 0, len(rdata)) + rdata
    arcount = struct.unpack(">H", message[10:12])[0] + 1
    return message[:10] + struct.pack(">H", arcount) + message[12:] + record


def rcode_of(answer):
    if len(answer) < 12:
        return "short-answer"
    code = answer[3] & 0x0F
    return RCODES.get(code, f"RCODE{code}")


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def cmd_send(args):
    message = notify_message(args.zone, random.randrange(65536))
    if args.key:
        message = tsig_sign(message, args.key)
    family = socket.AF_INET6 if ":" in args.addr else socket.AF_INET
    try:
        if args.tcp:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(args.timeout)
                if args.source:
                    s.bind((args.source, 0))
                s.connect((args.addr, args.port))
                s.sendall(struct.pack(">H", len(message)) + message)
                n = struct.unpack(">H", recv_exact(s, 2))[0]
                answer = recv_exact(s, n)
        else:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.settimeout(args.timeout)
                if args.source:
                    s.bind((args.source, 0))
                s.sendto(message, (args.addr, args.port))
                answer, _ = s.recvfrom(65535)
    except (OSError, ConnectionError):
        print("no-answer")
        return 2
    if answer[:2] != message[:2]:
        print("wrong-id")
        return 2
    print(rcode_of(answer))
    return 0


def malformed_packets():
    """Complete messages that are not NOTIFYs srvd can act on."""
    good = notify_message("example.com", 7)
    rnd = random.Random(1996)
    packets = [
        b"",                                             # empty datagram
        b"\x00",                                         # one byte
        good[:11],                                       # a header cut short
        good[:-3],                                       # a question cut short
        notify_message("example.com", 8, qr=1),          # a response, not a query
        notify_message("example.com", 9, opcode=0),      # a plain QUERY
        notify_message("example.com", 10, opcode=5),     # an UPDATE
        notify_message("example.com", 11, qtype=TYPE_A),  # NOTIFY for an A record
        notify_message("example.com", 12, qdcount=0)[:12],           # no question
        notify_message("example.com", 13, qdcount=2),   # claims two questions, has one
        struct.pack(">HHHHHH", 14, OPCODE_NOTIFY << 11, 1, 0, 0, 0) + b"\xc0\x0c\x00\x06\x00\x01",  # a pointer loop
        struct.pack(">HHHHHH", 15, OPCODE_NOTIFY << 11, 1, 0, 0, 0) + b"\x3f" + b"a" * 40,  # a label running off the end
        struct.pack(">HHHHHH", 16, OPCODE_NOTIFY << 11, 1, 0, 0, 0) + b"\x7f" * 300,  # label lengths out of range
        struct.pack(">HHHHHH", 17, OPCODE_NOTIFY << 11, 1, 65535, 65535, 65535) + wire_name("example.com") + b"\x00\x06\x00\x01",  # impossible counts
        b"\xff" * 512,
        bytes(4000),                                     # zeros, near the buffer size
    ]
    packets += [bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 600))) for _ in range(40)]
    return packets


def cmd_garbage(args):
    packets = malformed_packets()
    sent = 0
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.05)
        for p in packets:
            s.sendto(p, (args.addr, args.port))
            sent += 1
            # One at a time: srvd must see each, none lost to a full buffer.
            try:
                s.recvfrom(65535)
                answered += 1
            except OSError:
                pass
    # TCP: whole framed messages (each counted), then broken framing (not
    # complete messages, so not counted): a length with nothing behind it, a
    # length longer than what follows, a connection closed mid-length.
    for p in packets[:20]:
        with socket.create_connection((args.addr, args.port), timeout=2) as c:
            c.sendall(struct.pack(">H", len(p)) + p)
            sent += 1
            c.settimeout(0.3)
            try:
                n = struct.unpack(">H", recv_exact(c, 2))[0]
                recv_exact(c, n)
                answered += 1
            except (OSError, ConnectionError, struct.error):
                pass
    for tail in (b"\x10\x00", b"\x01\x00" + b"x" * 20, b"\x05"):
        with socket.create_connection((args.addr, args.port), timeout=2) as c:
            c.sendall(tail)
    print(sent)
    print(f"answered {answered}", file=sys.stderr)
    return 0


def cmd_flood(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if args.source:
        s.bind((args.source, 0))
    s.connect((args.addr, args.port))
    counts = {"answered": 0, "noerror": 0}
    done = threading.Event()

    def receive():
        s.settimeout(0.2)
        while True:
            try:
                answer = s.recv(65535)
            except socket.timeout:
                if done.is_set():
                    return
                continue
            except OSError:
                continue
            counts["answered"] += 1
            if rcode_of(answer) == "NOERROR":
                counts["noerror"] += 1

    reader = threading.Thread(target=receive)
    reader.start()
    start = time.monotonic()
    batch = 50
    sent = 0
    while sent < args.count:
        for _ in range(min(batch, args.count - sent)):
            m = notify_message(args.zone, sent & 0xFFFF)
            if args.key:
                m = tsig_sign(m, args.key)
            try:
                s.send(m)
            except OSError:
                pass  # ECONNREFUSED from an earlier ICMP: counted as not answered
            sent += 1
        target = start + args.seconds * sent / args.count
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    took = time.monotonic() - start
    time.sleep(1.0)
    done.set()
    reader.join()
    print(f"sent {sent} answered {counts['answered']} NOERROR {counts['noerror']} seconds {took:.2f}")
    return 0


def cmd_sdlisten(args):
    s = lib.bound_unix(args.path, socket.SOCK_DGRAM)
    out = open(args.log, "a", buffering=1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        data = s.recv(65535)
        at = time.time()
        for line in data.decode(errors="replace").splitlines():
            out.write(f"{at:.6f} {line}\n")


def cmd_sdcheck(args):
    pings = []
    with open(args.log) as f:
        for line in f:
            at, _, what = line.rstrip("\n").partition(" ")
            if what == "WATCHDOG=1":
                pings.append(float(at))
    inside = [p for p in pings if args.start <= p <= args.end]
    marks = [args.start] + inside + [args.end]
    gap = max(b - a for a, b in zip(marks, marks[1:]))
    print(f"{len(inside)} pings, largest gap {gap:.2f}s")
    return 0 if gap <= args.every else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("addr")
    s.add_argument("port", type=int)
    s.add_argument("zone")
    s.add_argument("--source")
    s.add_argument("--tcp", action="store_true")
    s.add_argument("--key")
    s.add_argument("--timeout", type=float, default=2.0)
    s.set_defaults(func=cmd_send)
    s = sub.add_parser("garbage")
    s.add_argument("addr")
    s.add_argument("port", type=int)
    s.set_defaults(func=cmd_garbage)
    s = sub.add_parser("flood")
    s.add_argument("addr")
    s.add_argument("port", type=int)
    s.add_argument("zone")
    s.add_argument("--count", type=int, default=10000)
    s.add_argument("--seconds", type=float, default=1.0)
    s.add_argument("--source")
    s.add_argument("--key")
    s.set_defaults(func=cmd_flood)
    s = sub.add_parser("sdlisten")
    s.add_argument("path")
    s.add_argument("log")
    s.set_defaults(func=cmd_sdlisten)
    s = sub.add_parser("sdcheck")
    s.add_argument("log")
    s.add_argument("start", type=float)
    s.add_argument("end", type=float)
    s.add_argument("--every", type=float, required=True)
    s.set_defaults(func=cmd_sdcheck)
    args = p.parse_args()
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
