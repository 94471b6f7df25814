#!/usr/bin/env python3
"""Write order: one connection's writes reach every replica in its order.

  mcorder.py [--rounds N] PROXY BACKEND1 BACKEND2     (HOST:PORT)

Each round, for a fresh key, pipelined in one write through PROXY:
  cas:      "cas K .. <cas>" (the cas from a gets through PROXY) then
            "delete K": the cas goes to the primary first and its value is
            copied to the other replica after the primary's STORED; the
            delete must not overtake that copy.  Both replicas, read
            directly, must then miss K (the copy landing after the delete
            would leave the value on one).
  ms C:     the same with "ms K 2 C<cas>" then "md K".
  fallback: K held by the secondary only (deleted on the primary directly),
            then "get K" and "set K new": the get misses on the primary and
            asks the secondary, which must still hold the old value then,
            as a single memcached would answer; afterwards both replicas
            hold "new".
Prints TAP-like lines; exit 1 if any round went wrong.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import Client  # noqa: E402


def read_line(c):
    return c.readline()


def gets_cas(c, key):
    item = c.get(key, cmd=b"gets")
    return item[3] if item else None


def primary_of(proxy, backends, key):
    """The backend whose cas unique the proxy returns for key."""
    cas = gets_cas(proxy, key)
    for b in backends:
        if gets_cas(b, key) == cas:
            return b
    return None


def held(backends, key):
    out = []
    for b in backends:
        item = b.get(key)
        out.append(None if item is None else item[2])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("proxy")
    ap.add_argument("backend", nargs=2)
    a = ap.parse_args()
    proxy = Client(a.proxy, timeout=3)
    backends = [Client(b, timeout=3) for b in a.backend]
    # real replicas never share cas counters: push them apart
    for i, b in enumerate(backends):
        for j in range(5 + 11 * i):
            b.store(b"set", b"junk%d" % j, b"x")
    bad = {"cas": 0, "ms C": 0, "fallback": 0}
    # (what, key prefix, the write and the delete, their replies)
    cas_cases = [
        ("cas", b"oc", b"cas %(k)s 0 0 2 %(cas)d\r\nv1\r\ndelete %(k)s\r\n",
         (b"STORED", b"DELETED")),
        ("ms C", b"om", b"ms %(k)s 2 C%(cas)d\r\nv1\r\nmd %(k)s\r\n",
         (b"HD", b"HD")),
    ]
    for n in range(a.rounds):
        for what, pfx, req, want in cas_cases:
            k = pfx + b"%d" % n
            proxy.store(b"set", k, b"v0")
            cas = gets_cas(proxy, k)
            proxy.send(req % {b"k": k, b"cas": cas})
            r = (read_line(proxy), read_line(proxy))
            h = held(backends, k)
            if r != want or h != [None, None]:
                bad[what] += 1
                print("# %s round %d: replies %s, replicas hold %s" %
                      (what, n, r, h))
        # a read that falls back, then a write of its key
        k = b"of%d" % n
        proxy.store(b"set", k, b"old")
        prim = primary_of(proxy, backends, k)
        if prim is None:
            bad["fallback"] += 1
            print("# fallback round %d: no backend has the proxy's cas" % n)
            continue
        prim.simple(b"delete " + k)
        proxy.send(b"get %s\r\nset %s 0 0 3\r\nnew\r\n" % (k, k))
        items = proxy.read_values()
        r = read_line(proxy)
        h = held(backends, k)
        got = items[0][2] if items else None
        if got != b"old" or r != b"STORED" or h != [b"new", b"new"]:
            bad["fallback"] += 1
            print("# fallback round %d: get answered %s, set %s, replicas "
                  "hold %s" % (n, got, r, h))
    for what, n in bad.items():
        print("%s - %s: %d rounds, %d out of order" %
              ("ok" if n == 0 else "not ok", what, a.rounds, n))
    return 1 if any(bad.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
