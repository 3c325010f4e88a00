"""Shared pieces of srvd's Python test helpers and benchmarks: stand-in
backends, a client that connects at a steady rate and the reader of its
log, binding a Unix socket afresh, and reading a socket to its end. Imported by tests/e2e/e2e.py, tests/runtime/runtime.py and
benches/bench.py, so that a fix to one of these reaches every suite.
"""

import os
import signal
import socket
import socketserver
import threading
import time


def read_to_eof(sock, size=65536):
    """Every byte the peer sends until it closes its side."""
    data = b""
    while True:
        chunk = sock.recv(size)
        if not chunk:
            return data
        data += chunk


def serve_tcp(addr, port, handle, queue_size):
    """Runs a threaded TCP server on ADDR:PORT until SIGTERM; handle(sock) is
    called per connection and its OSError (a client gone) is ignored."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            try:
                handle(self.request)
            except OSError:
                pass

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = queue_size

    with Server((addr, port), Handler) as server:
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
        server.serve_forever(poll_interval=0.1)


def client_at_rate(args, read, signals=(signal.SIGTERM,)):
    """Opens a connection to args.addr:args.port args.rate times a second
    until one of SIGNALS, each in its own thread, reads the answer with
    read(sock) and appends "START END ok NAME" or "START END fail REASON" to
    args.log (times in seconds since the epoch)."""
    out = open(args.log, "a", buffering=1)
    lock = threading.Lock()
    stop = threading.Event()
    for sig in signals:
        signal.signal(sig, lambda *_: stop.set())

    def attempt():
        start = time.time()
        try:
            with socket.create_connection((args.addr, args.port), timeout=args.timeout) as s:
                name = read(s)
            line = f"ok {name}" if name else "fail empty-answer"
        except OSError as e:
            line = f"fail {type(e).__name__}:{e.errno if e.errno is not None else '-'}"
        end = time.time()
        with lock:
            out.write(f"{start:.6f} {end:.6f} {line}\n")

    period = 1.0 / args.rate
    next_at = time.monotonic()
    threads = []
    while not stop.is_set():
        t = threading.Thread(target=attempt, daemon=True)
        t.start()
        threads.append(t)
        threads = [t for t in threads if t.is_alive()]
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            next_at = time.monotonic()
    # Let the attempts in flight finish, so that none goes unrecorded.
    for t in threads:
        t.join(args.timeout + 1)
    out.close()


def read_client_log(path):
    """The attempts client_at_rate logged to PATH: (start, end, ok, name or
    reason) each, in start order; lines of any other shape are skipped."""
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split(None, 3)
            if len(parts) < 4 or parts[2] not in ("ok", "fail"):
                continue
            rows.append((float(parts[0]), float(parts[1]), parts[2] == "ok", parts[3].strip()))
    rows.sort()
    return rows


def bound_unix(path, kind):
    """A Unix socket of KIND (socket.SOCK_STREAM or SOCK_DGRAM) bound to
    PATH, a socket left there by an earlier run removed first."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, kind)
    s.bind(path)
    return s
