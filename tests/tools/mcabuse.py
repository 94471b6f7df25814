#!/usr/bin/env python3
"""Misbehaving clients against a memcached-speaking server.

  mcabuse.py [--quick] SERVER BACKEND [BACKEND...]        (each HOST:PORT)

Cases, each printed as ok/not ok:
  many      300 connections open at once, each sets and reads its own key
  half      a set whose data never fully arrives (client closes): nothing
            stored, on the server nor on any backend
  hangup    20 times: 50 pipelined gets of a 300 kB value, then close at
            once (replies pending); then a normal get still works
  reset     the same with SO_LINGER 0 (the client sends a reset)
  slow      40 pipelined gets of the 300 kB value (12 MB of replies), read
            only after 1.5 s: every value intact, in order
  partial   a request line sent in three pieces 0.3 s apart
  idle      a connection idle for 1 s, then a get
--quick: only many, half, hangup and reset (no waiting).  Exit 1 if any
case fails.
"""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import Client, parse_hostport  # noqa: E402

BIG = bytes((i * 7) & 0xFF for i in range(300 * 1024))
failures = 0


def report(ok, what, detail=""):
    global failures
    if ok:
        print("ok - %s" % what)
    else:
        failures += 1
        print("not ok - %s%s" % (what, " (%s)" % detail if detail else ""))


def case_many(server):
    conns = []
    try:
        for i in range(300):
            conns.append(Client(server, timeout=10))
        for i, c in enumerate(conns):
            c.send(b"set many%d 0 0 %d\r\n%d\r\n" % (i, len(b"%d" % i), i))
        bad = sum(1 for c in conns if c.readline() != b"STORED")
        for i, c in enumerate(conns):
            c.send(b"get many%d\r\n" % i)
        for i, c in enumerate(conns):
            items = c.read_values()
            if not items or items[0][2] != b"%d" % i:
                bad += 1
        report(bad == 0, "many: 300 connections at once, each its own set and get",
               "%d wrong" % bad)
    except OSError as e:
        report(False, "many: 300 connections at once", str(e))
    finally:
        for c in conns:
            c.close()


def case_half(server, backends):
    s = socket.create_connection(parse_hostport(server), timeout=5)
    s.sendall(b"set half 0 0 10\r\nabc")
    time.sleep(0.2)
    s.close()
    time.sleep(0.3)
    seen = [b for b in [server] + backends if Client(b).get(b"half") is not None]
    report(not seen, "half: a set cut short stores nothing",
           "stored on %s" % seen)


def pending_close(server, linger0):
    for _ in range(20):
        s = socket.create_connection(parse_hostport(server), timeout=5)
        if linger0:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
        s.sendall(b"get big\r\n" * 50)
        s.close()
    c = Client(server, timeout=5)
    item = c.get(b"big")
    c.close()
    return item is not None and item[2] == BIG


def case_slow(server):
    c = Client(server, timeout=10)
    c.send(b"get big\r\n" * 40)
    time.sleep(1)
    good = 0
    try:
        for _ in range(40):
            items = c.read_values()
            if len(items) == 1 and items[0][2] == BIG:
                good += 1
    except OSError as e:
        report(False, "slow: 40 x 300 kB replies read late", str(e))
        return
    finally:
        c.close()
    report(good == 40, "slow: 40 x 300 kB replies read late, all intact",
           "%d of 40" % good)


def case_partial(server):
    s = socket.create_connection(parse_hostport(server), timeout=5)
    for piece in (b"ge", b"t many", b"7\r\n"):
        s.sendall(piece)
        time.sleep(0.3)
    s.settimeout(3)
    data = b""
    while not data.endswith(b"END\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    report(data == b"VALUE many7 0 1\r\n7\r\nEND\r\n",
           "partial: a get sent in three pieces", repr(data))


def case_idle(server):
    c = Client(server, timeout=5)
    time.sleep(1)
    try:
        item = c.get(b"many8")
        report(item is not None and item[2] == b"8", "idle: 1 s idle, then a get")
    except OSError as e:
        report(False, "idle: 1 s idle, then a get", str(e))
    c.close()


def main():
    quick = "--quick" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--quick"]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    server, backends = args[0], args[1:]
    c = Client(server, timeout=5)
    if c.store(b"set", b"big", BIG) != b"STORED":
        print("not ok - setup: set big")
        return 1
    c.close()
    cases = [
        ("many", lambda: case_many(server)),
        ("half", lambda: case_half(server, backends)),
        ("hangup", lambda: report(pending_close(server, False),
                                  "hangup: 20 clients close with 15 MB of "
                                  "replies pending; get works after")),
        ("reset", lambda: report(pending_close(server, True),
                                 "reset: 20 clients reset with replies "
                                 "pending; get works after")),
    ]
    if not quick:
        cases += [("slow", lambda: case_slow(server)),
                  ("partial", lambda: case_partial(server)),
                  ("idle", lambda: case_idle(server))]
    for name, run in cases:
        try:
            run()
        except Exception as e:  # a case's own failure, named, not a traceback
            report(False, "%s: %s: %s" % (name, type(e).__name__, e))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
