#!/usr/bin/env python3
"""Many clients writing the same few keys at once, then the replicas compared.

  mcsamekey.py run PROXY:PORT --keys K --clients N --seconds S [--seed X]
  mcsamekey.py compare --keys K BACKEND:PORT BACKEND:PORT...

run: N connections (threads) each send, as fast as answers come, random
set, add, append and delete of keys same0..same<K-1>, every value unique
("<client>.<counter>"), so that writes of one key from different
connections overlap.  Prints "ops N errors N".
compare: the value and flags of every key on each backend; prints
"keys K same S divergent D", then one line per divergent key with what
each backend holds.  Exit 1 when D > 0 (compare) or on a protocol error.
"""

import argparse
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import Client  # noqa: E402


def client(addr, cid, keys, stop_at, seed, out):
    rnd = random.Random(seed * 1000 + cid)
    c = Client(addr, timeout=5)
    ops = errors = n = 0
    while time.monotonic() < stop_at:
        key = b"same%d" % rnd.randrange(keys)
        n += 1
        val = b"%d.%d" % (cid, n)
        op = rnd.random()
        if op < 0.45:
            line = c.simple(b"set %s %d 0 %d\r\n%s" % (key, cid, len(val), val))
        elif op < 0.6:
            line = c.simple(b"add %s %d 0 %d\r\n%s" % (key, cid, len(val), val))
        elif op < 0.75:
            line = c.simple(b"append %s 0 0 %d\r\n%s" % (key, len(val) + 1,
                                                          b"+" + val))
        else:
            line = c.simple(b"delete " + key)
        ops += 1
        if line not in (b"STORED", b"NOT_STORED", b"DELETED", b"NOT_FOUND"):
            errors += 1
    c.close()
    out.append((ops, errors))


def run(a):
    out, threads = [], []
    stop_at = time.monotonic() + a.seconds
    for cid in range(a.clients):
        t = threading.Thread(target=client, args=(a.proxy, cid, a.keys,
                                                  stop_at, a.seed, out))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    print("ops %d errors %d" % (sum(o for o, _ in out), sum(e for _, e in out)))
    return 0


def holds(addr, keys):
    c = Client(addr, timeout=5)
    got = {}
    for i in range(keys):
        key = b"same%d" % i
        item = c.get(key)
        got[key] = None if item is None else (item[1], item[2])
    c.close()
    return got


def compare(a):
    views = [holds(b, a.keys) for b in a.backends]
    bad = [k for k in views[0] if any(v[k] != views[0][k] for v in views[1:])]
    print("keys %d same %d divergent %d" % (a.keys, a.keys - len(bad), len(bad)))
    for k in bad:
        print("  %s: %s" % (k.decode(), " | ".join(repr(v[k]) for v in views)))
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("proxy")
    r.add_argument("--keys", type=int, default=10)
    r.add_argument("--clients", type=int, default=8)
    r.add_argument("--seconds", type=float, default=5)
    r.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("compare")
    c.add_argument("--keys", type=int, default=10)
    c.add_argument("backends", nargs="+")
    a = p.parse_args()
    sys.exit(run(a) if a.cmd == "run" else compare(a))


if __name__ == "__main__":
    main()
