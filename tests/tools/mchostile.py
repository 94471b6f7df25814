#!/usr/bin/env python3
"""Hostile TCP clients: what a proxy must survive, compared with memcached.

  mchostile.py halfclose REFERENCE:PORT CANDIDATE:PORT
      Pipelines (gets, sets, meta, a data block cut short), each sent with
      shutdown(SHUT_WR) after it: each server must answer what memcached
      answers, then close.  One "ok|not ok" line each.
  mchostile.py unread REFERENCE:PORT CANDIDATE:PORT [--gets N] [--secs S]
      A client pipelines N gets of a 64 kB value and reads nothing for S
      seconds while another client's gets are timed, then reads it all:
      the whole reply equal to memcached's, the other client's gets
      answered meanwhile (slowest printed).
Exit 0 when every check passed, 1 otherwise, 2 on usage errors.
"""

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import Client, parse_hostport  # noqa: E402

HALFCLOSE = [
    ("gets", b"get hk1\r\nget hk1 hk2 nokey\r\n"),
    ("sets", b"set hk3 0 0 2\r\nv3\r\nset hk4 5 0 2 noreply\r\nv4\r\nget hk3 hk4\r\n"),
    ("meta", b"mg hk1 v f\r\nms hk5 2 T0\r\nv5\r\nmd hk5 q\r\nmg hk5 v\r\nmn\r\n"),
    ("quiet meta, no mn", b"mg hk1 v q\r\nmg nokey v q\r\n"),
    ("gat", b"gat 0 hk1 hk2\r\n"),
    ("a data block cut short", b"get hk1\r\nset hk6 0 0 10\r\nabc"),
    ("a line cut short", b"get hk1\r\nget hk"),
    ("error, then a get", b"bogus\r\nget hk1\r\n"),
    ("many gets", b"get hk1\r\n" * 200),
]


def conn(addr):
    s = socket.create_connection(addr, timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def until_close(s, wait=5.0):
    """Everything the server sends until it closes: (bytes, closed)."""
    buf = b""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            break
        except ConnectionResetError:
            return buf, True
        if not chunk:
            return buf, True
        buf += chunk
    return buf, False


def halfclosed(addr, data):
    s = conn(addr)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    out = until_close(s)
    s.close()
    return out


def setup(addrs):
    for a in addrs:
        c = Client("%s:%d" % a)
        c.store(b"set", b"hk1", b"one", 1)
        c.store(b"set", b"hk2", b"two", 2)
        c.close()


def run_halfclose(ref, cand):
    bad = 0
    for name, data in HALFCLOSE:
        setup((ref, cand))
        want, wclosed = halfclosed(ref, data)
        got, gclosed = halfclosed(cand, data)
        if want == got and wclosed and gclosed:
            print("ok - half-closed after %s: memcached's %d bytes, then "
                  "closed" % (name, len(want)))
            continue
        bad += 1
        print("not ok - half-closed after %s" % name)
        print("#   memcached: %r%s" % (want[:300], "" if wclosed else
                                       " (did not close)"))
        print("#   candidate: %r%s" % (got[:300], "" if gclosed else
                                       " (did not close within 5 s)"))
    return bad


def unread_reply(addr, n, secs, victim):
    s = conn(addr)
    s.sendall(b"get big\r\n" * n)
    worst = 0.0
    t_end = time.monotonic() + secs
    failed = 0
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        try:
            item = victim.get(b"small")
            failed += item is None or item[2] != b"s"
        except (OSError, Exception):  # noqa: B902 - any failure counts
            failed += 1
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.1)
    want = n * (len(b"VALUE big 0 65536\r\n") + 65536 + 2 + 5)
    buf = b""
    s.settimeout(20)
    try:
        while len(buf) < want:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
    except OSError:
        pass
    s.close()
    return buf, worst * 1000, failed


def run_unread(ref, cand, n, secs):
    bad = 0
    value = bytes(97 + i % 26 for i in range(65536))
    replies = {}
    for name, a in (("memcached", ref), ("candidate", cand)):
        c = Client("%s:%d" % a)
        c.store(b"set", b"big", value)
        c.store(b"set", b"small", b"s")
        victim = Client("%s:%d" % a, timeout=5)
        replies[name], ms, failed = unread_reply(a, n, secs, victim)
        victim.close()
        c.close()
        print("# %s: %d gets of 64 kB left unread %.0f s: %d reply bytes; "
              "another client's slowest get meanwhile %.0f ms, %d failed" %
              (name, n, secs, len(replies[name]), ms, failed))
        if name == "candidate":
            # memcached: tens of ms; kmagentd copies the whole pipeline's
            # replies meanwhile: its bound is the request timeout's order
            ok = failed == 0 and ms < 2000
            bad += not ok
            print("%s - another client is served while one leaves %d gets "
                  "unread (slowest %.0f ms, %d failed)" %
                  ("ok" if ok else "not ok", n, ms, failed))
    same = replies["memcached"] == replies["candidate"]
    bad += not same
    print("%s - the late reader gets memcached's whole reply (%d bytes, "
          "memcached %d)" % ("ok" if same else "not ok",
                              len(replies["candidate"]),
                              len(replies["memcached"])))
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("halfclose", "unread"))
    ap.add_argument("reference")
    ap.add_argument("candidate")
    ap.add_argument("--gets", type=int, default=400)
    ap.add_argument("--secs", type=float, default=3)
    a = ap.parse_args()
    ref, cand = parse_hostport(a.reference), parse_hostport(a.candidate)
    if a.mode == "halfclose":
        bad = run_halfclose(ref, cand)
    else:
        bad = run_unread(ref, cand, a.gets, a.secs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
