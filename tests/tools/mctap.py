#!/usr/bin/env python3
"""A TCP tap in front of a memcached: logs what it receives, can play dead.

  mctap.py LISTEN_ADDR:PORT UPSTREAM_ADDR:PORT --log FILE

Forwards every connection to UPSTREAM and back, and appends each line that a
client sends to FILE as "<epoch seconds> <state> c<conn> <line repr>"
(state "fwd" or "muted").  Signals:
  SIGUSR1  mute: keep accepting and reading, forward nothing, answer nothing
           (a backend that hangs: its clients see timeouts, not resets)
  SIGHUP   stall: answer `stats` (forwarded), swallow every other request
           (a backend that passes health probes and answers no client)
  SIGUSR2  unmute: close the connections that saw muted data (their
           requests were lost), forward again
  SIGTERM  exit
Used by tests/integration/13_health_tcp.sh to see which requests reach a
backend while kmagentd considers it down, and by 57_health_stall_tcp.sh.
"""

import argparse
import os
import selectors
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import parse_hostport  # noqa: E402

state = {"muted": False, "stall": False, "unmute": False, "stop": False}


def on_signal(signum, _frame):
    if signum == signal.SIGUSR1:
        state["muted"] = True
    elif signum == signal.SIGHUP:
        state["stall"] = True
    elif signum == signal.SIGUSR2:
        state["muted"] = state["stall"] = False
        state["unmute"] = True
    else:
        state["stop"] = True


class Conn:
    def __init__(self, cid, client, upstream):
        self.cid, self.client, self.upstream = cid, client, upstream
        self.partial = b""
        self.stall_partial = b""
        self.saw_muted = False


def stats_only(conn, data):
    """The complete `stats` lines of data: what a stalled backend answers."""
    conn.stall_partial += data
    *lines, conn.stall_partial = conn.stall_partial.split(b"\n")
    return b"".join(ln + b"\n" for ln in lines
                    if ln.rstrip(b"\r").split(b" ")[0] == b"stats")


def log_lines(log, conn, data, muted):
    conn.partial += data
    *lines, conn.partial = conn.partial.split(b"\n")
    now = time.time()
    for line in lines:
        log.write("%.3f %s c%d %r\n" % (now, "muted" if muted else "fwd",
                                        conn.cid, line.rstrip(b"\r")))
    log.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("listen")
    ap.add_argument("upstream")
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGTERM,
              signal.SIGINT):
        signal.signal(s, on_signal)
    up_addr = parse_hostport(a.upstream)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(parse_hostport(a.listen))
    lsock.listen(128)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    conns = {}
    next_id = 1
    log = open(a.log, "a")

    def close(conn):
        for s in (conn.client, conn.upstream):
            try:
                sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
        conns.pop(conn.cid, None)

    while not state["stop"]:
        if state["unmute"]:
            state["unmute"] = False
            for conn in [c for c in conns.values() if c.saw_muted]:
                close(conn)
        try:
            events = sel.select(timeout=0.05)
        except InterruptedError:
            continue
        for key, _ in events:
            if key.data is None:
                client, _ = lsock.accept()
                try:
                    upstream = socket.create_connection(up_addr, timeout=2)
                except OSError:
                    client.close()
                    continue
                conn = Conn(next_id, client, upstream)
                next_id += 1
                conns[conn.cid] = conn
                sel.register(client, selectors.EVENT_READ, (conn, "client"))
                sel.register(upstream, selectors.EVENT_READ, (conn, "upstream"))
                continue
            conn, side = key.data
            if conn.cid not in conns:
                continue
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            if not data:
                close(conn)
                continue
            if side == "client":
                muted = state["muted"]
                log_lines(log, conn, data, muted)
                if muted:
                    conn.saw_muted = True
                    continue
                if state["stall"]:
                    fwd = stats_only(conn, data)
                    if fwd != data:
                        conn.saw_muted = True
                    data = fwd
                    if not data:
                        continue
                try:
                    conn.upstream.sendall(data)
                except OSError:
                    close(conn)
            elif not state["muted"]:
                try:
                    conn.client.sendall(data)
                except OSError:
                    close(conn)
    for conn in list(conns.values()):
        close(conn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
