#!/usr/bin/env python3
"""Replica consistency: after each write through the proxy, every backend
holds what a single memcached given the same write holds.

  mcreplicas.py [--no-ttl] REFERENCE PROXY BACKEND [BACKEND...]  (HOST:PORT)

Before starting, the backends' cas counters are pushed apart (a different
number of junk writes on each), as they are in any real deployment, so that
a cas value valid on one replica is stale on the others.  Each step sends a
request to REFERENCE and to PROXY, then reads the step's keys directly from
REFERENCE and from every BACKEND with `get`: value and flags must be equal
everywhere (or absent everywhere).  The cas value of a step ("{cas}") comes
from a `gets` through the same server the write goes to.  Prints ok/not ok
lines, exit 1 if any step differs.  --no-ttl skips the step that waits 3 s
for TTLs to run out.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import Client  # noqa: E402


def st(cmd, key, value, flags=0, exptime=0, extra=b""):
    return b"%s %s %d %d %d%s\r\n%s\r\n" % (cmd, key, flags, exptime,
                                            len(value), extra, value)


# (name, request, keys to compare afterwards, seconds to wait before compare)
STEPS = [
    ("set", st(b"set", b"a", b"one", 5), [b"a"], 0),
    ("set noreply", st(b"set", b"b", b"two", extra=b" noreply"), [b"b"], 0),
    ("add", st(b"add", b"c", b"three"), [b"c"], 0),
    ("replace", st(b"replace", b"a", b"ONE", 6), [b"a"], 0),
    ("append", st(b"append", b"a", b"-app"), [b"a"], 0),
    ("prepend", st(b"prepend", b"a", b"pre-"), [b"a"], 0),
    ("append noreply", st(b"append", b"b", b"!", extra=b" noreply"), [b"b"], 0),
    ("cas with the cas from gets", b"gets a\r\n" + st(b"cas", b"a", b"CAS", 7,
                                                     extra=b" {cas}"), [b"a"], 0),
    ("cas noreply", b"gets b\r\n" + st(b"cas", b"b", b"CAS-NR",
                                       extra=b" {cas} noreply"), [b"b"], 0),
    ("cas with a stale cas changes nothing", st(b"cas", b"a", b"STALE",
                                                extra=b" 1"), [b"a"], 0),
    ("ms with C (meta cas)", b"mg c c\r\nms c 4 C{cas}\r\nMETA\r\n", [b"c"], 0),
    ("set a counter", st(b"set", b"mc", b"7"), [b"mc"], 0),
    ("ma with C (meta cas)", b"mg mc c\r\nma mc C{cas}\r\n", [b"mc"], 0),
    ("md with C (meta cas)", b"mg mc c\r\nmd mc C{cas}\r\n", [b"mc"], 0),
    ("ms set mode with flags", b"ms d 2 F9\r\ndd\r\n", [b"d"], 0),
    ("ms append mode", b"ms d 1 MA\r\n+\r\n", [b"d"], 0),
    ("set counter", st(b"set", b"n", b"100"), [b"n"], 0),
    ("incr", b"incr n 5\r\n", [b"n"], 0),
    ("decr noreply", b"decr n 3 noreply\r\n", [b"n"], 0),
    ("ma", b"ma n D10\r\n", [b"n"], 0),
    ("delete", b"delete c\r\n", [b"c"], 0),
    ("md", b"md d\r\n", [b"d"], 0),
    ("set exptime 2, then touch 100", st(b"set", b"t1", b"ttl", exptime=2) +
     b"touch t1 100\r\n", [b"t1"], 0),
    ("set exptime 2, then gat 100", st(b"set", b"t2", b"ttl", exptime=2) +
     b"gat 100 t2\r\n", [b"t2"], 0),
    ("set exptime 2, then gats 100", st(b"set", b"t3", b"ttl", exptime=2) +
     b"gats 100 t3\r\n", [b"t3"], 0),
    ("set exptime 2, then mg T100", st(b"set", b"t4", b"ttl", exptime=2) +
     b"mg t4 T100 v\r\n", [b"t4"], 0),
    ("3 s later: touch/gat/gats/mg T extended the TTL on every replica", b"",
     [b"t1", b"t2", b"t3", b"t4"], 3),
    # ms C I with a cas older than the item's: memcached keeps the item,
    # stale, its TTL unchanged (T-1 ignored); a plain set on the other
    # replicas (ms without C) would expire it there: the key on one
    # replica, gone from the others
    ("ms C I with a stale cas, T-1", st(b"set", b"s", b"one", 0, 1000) +
     st(b"set", b"s", b"two", 0, 1000) + b"ms s 3 C1 I T-1\r\nnew\r\n",
     [b"s"], 0),
    ("ms C I with the current cas, T-1: a plain set, gone everywhere",
     b"mg s c\r\nms s 3 C{cas} I T-1\r\nnew\r\n", [b"s"], 0),
    ("pipelined odd gets, replace exptime 2^32 of 4000 bytes, bad meta flags",
     st(b"set", b"u", b"old") + b"get u \xff k\x01 u " + b"L" * 251 +
     b"\r\ngets u\tv u\r\n" + st(b"replace", b"u", b"r" * 4000, 3,
                                   4294967296) +
     b"mg u v zz\r\nms u 2 C1 I T-1 !\r\nhi\r\nms u 2 C1 I T-1\r\nhi\r\n"
     b"md u q Zq\r\n", [b"u"], 0),
    ("flush_all", b"flush_all\r\n", [b"a", b"b", b"n"], 0),
]


def exchange(c, req):
    """Send req (after filling {cas}) and drain the replies."""
    if b"{cas}" in req:
        head, _, rest = req.partition(b"\r\n")
        c.send(head + b"\r\n")
        if head.startswith(b"gets"):
            items = c.read_values()
            cas = items[0][3] if items else 0
        else:  # mg KEY c
            line = c.readline()
            cas = next((int(t[1:]) for t in line.split()[1:]
                        if t.startswith(b"c")), 0)
        req = rest.replace(b"{cas}", b"%d" % cas)
    c.send(req + b"mn\r\n")
    while c.readline() != b"MN":
        pass


def snapshot(addr, keys):
    c = Client(addr, timeout=3)
    out = []
    for k in keys:
        item = c.get(k)
        out.append(None if item is None else (item[1], item[2]))
    c.close()
    return out


def main():
    no_ttl = "--no-ttl" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--no-ttl"]
    if len(args) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    ref_addr, proxy_addr, backends = args[0], args[1], args[2:]
    for i, b in enumerate(backends):
        c = Client(b)
        for j in range(7 * i + 3):
            c.store(b"set", b"junk%d" % j, b"x")
        c.close()
    ref, proxy = Client(ref_addr), Client(proxy_addr)
    bad = 0
    steps = [st for st in STEPS if not (no_ttl and st[3])]
    for name, req, keys, wait in steps:
        exchange(ref, req)
        exchange(proxy, req)
        if wait:
            time.sleep(wait)
        want = snapshot(ref_addr, keys)
        got = {b: snapshot(b, keys) for b in backends}
        diff = {b: v for b, v in got.items() if v != want}
        if not diff:
            print("ok - %s: every replica holds %s" % (name, want))
            continue
        bad += 1
        print("not ok - %s: a single memcached holds %s" % (name, want))
        for b, v in diff.items():
            print("#   backend %s holds %s" % (b, v))
    print("# %d steps, %d with replicas differing" % (len(steps), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
