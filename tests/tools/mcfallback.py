#!/usr/bin/env python3
"""Null-fallback for every read form: replicas that each miss some keys.

  mcfallback.py REFERENCE PROXY REPLICA1 REPLICA2      (each HOST:PORT)

Keys fa-N are stored on REPLICA1 only, fb-N on REPLICA2 only, fab-N on
both, fn-N nowhere; REFERENCE (a single memcached) holds fa, fb and fab.
Whichever replica a key hashes to first, a read through PROXY must answer
what REFERENCE answers: get (one key, many keys, keys repeated), gets, gat,
gats, mg (with flags, quiet mode, pipelined).  Replies are compared byte
for byte, cas values structurally (as tests/tools/mcdiff.py does).  Prints
ok/not ok per step, exit 1 if any differs.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import Client  # noqa: E402
from mcdiff import Step, Target, show  # noqa: E402

N = 12


def load(ref, r1, r2):
    def put(c, key, n):
        v = b"%s=%d" % (key, n * 7)
        assert c.store(b"set", key, v, flags=n) == b"STORED"

    cr, c1, c2 = Client(ref), Client(r1), Client(r2)
    for n in range(N):
        for key, where in ((b"fa-%d" % n, (cr, c1)), (b"fb-%d" % n, (cr, c2)),
                           (b"fab-%d" % n, (cr, c1, c2))):
            for c in where:
                put(c, key, n)
    for c in (cr, c1, c2):
        c.close()


def steps():
    s = []
    add = s.append
    for n in range(3):
        add(Step("get fa-%d (replica 1 only)" % n, b"get fa-%d\r\n" % n))
        add(Step("get fb-%d (replica 2 only)" % n, b"get fb-%d\r\n" % n))
    add(Step("get of a key on no replica", b"get fn-0\r\n"))
    add(Step("multi-key get, mixed, in order",
             b"get fa-3 fb-3 fab-3 fn-3 fb-4 fa-4 fn-4 fab-4\r\n"))
    add(Step("multi-key get, a key twice", b"get fb-5 fa-5 fb-5\r\n"))
    add(Step("multi-key get of every key",
             b"get " + b" ".join(b"%s-%d" % (p, n) for n in range(N)
                                 for p in (b"fa", b"fb", b"fab", b"fn")) +
             b"\r\n"))
    add(Step("gets, mixed", b"gets fa-6 fb-6 fn-6\r\n"))
    add(Step("gat, mixed", b"gat 1000 fb-7 fa-7 fn-7\r\n"))
    add(Step("gats", b"gats 1000 fb-8\r\n"))
    add(Step("mg v f s k of replica-2-only key", b"mg fb-9 v f s k\r\n"))
    add(Step("mg v of replica-1-only key", b"mg fa-9 v\r\n"))
    add(Step("mg of a key on no replica, with opaque", b"mg fn-9 v O42 k\r\n"))
    add(Step("mg without value (HD)", b"mg fb-10\r\n"))
    add(Step("pipelined mg q over mixed keys, then mn",
             b"mg fb-10 v q k\r\nmg fn-10 v q k\r\nmg fa-10 v q k\r\n"
             b"mg fab-10 v q k\r\nmn\r\n", mode="pipe"))
    add(Step("pipelined gets of replica-only keys",
             b"".join(b"get %s-11\r\n" % p for p in (b"fb", b"fa", b"fn", b"fb"))
             + b"get fa-11 fb-11\r\n", mode="pipe"))
    return s


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    ref_addr, proxy_addr, r1, r2 = sys.argv[1:]
    load(ref_addr, r1, r2)
    ref, proxy = Target("reference", ref_addr), Target("proxy", proxy_addr)
    bad = 0
    for s in steps():
        r = ref.normalize(ref.exchange(s))
        p = proxy.normalize(proxy.exchange(s))
        if r == p:
            print("ok - %s" % s.name)
            continue
        bad += 1
        print("not ok - %s" % s.name)
        print("#   request  : %s" % show(s.data))
        print("#   reference: %s" % show(r))
        print("#   proxy    : %s" % show(p))
    print("# %d steps, %d differ" % (len(steps()), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
