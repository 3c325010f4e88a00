#!/usr/bin/env python3
"""Helpers for srvd's end-to-end suite (run.sh) and its propagation benchmark.

    backend NAME ADDR PORT      a TCP server that answers every connection with
                                NAME and a newline, then closes it: a stand-in
                                for a MySQL replica asked for its host name
    client ADDR PORT LOG        opens connections to ADDR:PORT at a steady rate
                                until SIGTERM, one line per attempt in LOG:
                                "START END ok NAME" or "START END fail REASON"
    window LOG FROM TO ...      asserts on the attempts started in [FROM, TO]
    first LOG NAME SINCE        seconds from SINCE to the first answer from NAME
    settled LOG SINCE NAMES...  seconds from SINCE to the end of the last answer
                                from any other name, once NAMES alone answer
    failures LOG                prints the failed attempts; exit 1 if any
    attempts LOG                number of attempts logged
    master SOCKET COMMAND       sends COMMAND to HAProxy's master CLI
    reloads SOCKET              the master's reload count, and how many
                                reloads failed since the last good one

Times are seconds since the epoch (what `date +%s.%N` prints), so the shell
can mark a moment and ask about the answers around it.
"""

import argparse
import os
import signal
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import lib  # noqa: E402  (tests/lib.py)


def cmd_backend(args):
    answer = (args.name + "\n").encode()
    lib.serve_tcp(args.addr, args.port, lambda sock: sock.sendall(answer), 128)


def cmd_client(args):
    lib.client_at_rate(
        args,
        lambda sock: lib.read_to_eof(sock, 256).decode(errors="replace").strip(),
        signals=(signal.SIGTERM, signal.SIGINT),
    )


def cmd_window(args):
    rows = [r for r in lib.read_client_log(args.log) if args.start <= r[0] <= args.end]
    answers = [r[3] for r in rows if r[2]]
    failed = [r for r in rows if not r[2]]
    counts = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no answers"
    problems = []
    if len(rows) < args.min:
        problems.append(f"{len(rows)} attempts, expected at least {args.min}")
    if failed:
        problems.append(f"{len(failed)} failed")
    strangers = sorted(set(answers) - set(args.only))
    if strangers:
        problems.append("answers from " + ", ".join(strangers))
    if args.alternate and answers:
        for name in args.only:
            share = counts.get(name, 0) / len(answers)
            if share < 0.3:
                problems.append(f"{name} gave {share:.0%} of the answers")
        pairs = list(zip(answers, answers[1:]))
        changes = sum(1 for a, b in pairs if a != b)
        if pairs and changes / len(pairs) < 0.8:
            problems.append(f"only {changes} of {len(pairs)} consecutive answers alternate")
    print(f"  window {args.end - args.start:.1f}s: {len(rows)} attempts; {summary}"
          + (f"; {'; '.join(problems)}" if problems else ""), file=sys.stderr)
    return 1 if problems else 0


def cmd_first(args):
    for start, end, ok, value in lib.read_client_log(args.log):
        if start >= args.since and ok and value == args.name:
            print(f"{end - args.since:.3f}")
            return 0
    return 1


def cmd_settled(args):
    rows = [r for r in lib.read_client_log(args.log) if r[0] >= args.since and r[2]]
    tail = 0
    last_other = None
    for start, end, ok, value in reversed(rows):
        if value in args.names:
            tail += 1
        else:
            last_other = end
            break
    if tail < args.min:
        return 1
    print(f"{(last_other - args.since) if last_other is not None else 0.0:.3f}")
    return 0


def cmd_failures(args):
    failed = [r for r in lib.read_client_log(args.log) if not r[2]]
    for start, end, ok, value in failed:
        print(f"{start:.6f} {end:.6f} {value}")
    return 1 if failed else 0


def cmd_attempts(args):
    print(len(lib.read_client_log(args.log)))
    return 0


def master(sock_path, command):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(sock_path)
        s.sendall(command.encode() + b"\n")
        # The master answers, then closes, once it sees the end of the input.
        s.shutdown(socket.SHUT_WR)
        data = lib.read_to_eof(s)
    return data.decode(errors="replace")


def cmd_master(args):
    sys.stdout.write(master(args.socket, args.command))
    return 0


def cmd_reloads(args):
    # "show proc": "#<PID> <type> <reloads> <uptime> <version>", the master
    # first, its reloads followed by "[failed: N]".
    for line in master(args.socket, "show proc").splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "master":
            failed = "0"
            if "[failed:" in line:
                failed = line.split("[failed:", 1)[1].split("]", 1)[0].strip()
            print(fields[2], failed)
            return 0
    return 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("backend")
    s.add_argument("name")
    s.add_argument("addr")
    s.add_argument("port", type=int)
    s.set_defaults(fn=cmd_backend)

    s = sub.add_parser("client")
    s.add_argument("addr")
    s.add_argument("port", type=int)
    s.add_argument("log")
    s.add_argument("--rate", type=float, default=50.0, help="connections per second")
    s.add_argument("--timeout", type=float, default=3.0)
    s.set_defaults(fn=cmd_client)

    s = sub.add_parser("window")
    s.add_argument("log")
    s.add_argument("start", type=float)
    s.add_argument("end", type=float)
    s.add_argument("--only", nargs="+", required=True, help="the names allowed to answer")
    s.add_argument("--alternate", action="store_true", help="the names take turns")
    s.add_argument("--min", type=int, default=1, help="attempts expected at least")
    s.set_defaults(fn=cmd_window)

    s = sub.add_parser("first")
    s.add_argument("log")
    s.add_argument("name")
    s.add_argument("since", type=float)
    s.set_defaults(fn=cmd_first)

    s = sub.add_parser("settled")
    s.add_argument("log")
    s.add_argument("since", type=float)
    s.add_argument("names", nargs="+")
    s.add_argument("--min", type=int, default=25, help="answers from NAMES alone, at the end")
    s.set_defaults(fn=cmd_settled)

    s = sub.add_parser("failures")
    s.add_argument("log")
    s.set_defaults(fn=cmd_failures)

    s = sub.add_parser("attempts")
    s.add_argument("log")
    s.set_defaults(fn=cmd_attempts)

    s = sub.add_parser("master")
    s.add_argument("socket")
    s.add_argument("command")
    s.set_defaults(fn=cmd_master)

    s = sub.add_parser("reloads")
    s.add_argument("socket")
    s.set_defaults(fn=cmd_reloads)

    args = p.parse_args()
    sys.exit(args.fn(args))


if __name__ == "__main__":
    main()
