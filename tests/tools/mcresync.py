#!/usr/bin/env python3
"""Helpers for the resync test: fill, churn and compare key ranges.

  mcresync.py fill SERVER FIRST LAST [--tag T]
      set PFX-FIRST..PFX-LAST: value "T:<n>:..." (length varies), flags
      n % 5, exptime 0 for n % 3 == 0 else 1000 s
  mcresync.py churn SERVER FIRST LAST --seconds S
      for S seconds, overwrite random keys of the range (same flags and
      exptime rules, value tagged with a generation) and read each one back
      at once through the same server; prints "writes N", "stale N"
      (a read that did not return the value just acknowledged), "errors N"
  mcresync.py compare A B FIRST LAST
      mg every key on A and on B (value, flags, remaining TTL); prints
      "same N", "missing N" (on A, not on B), "extra N" (on B, not on A),
      "differ N" (value or flags), "ttl N" (TTLs more than 3 s apart or one
      of them unlimited while the other is not) and up to 5 examples
Exit status 0 when nothing is stale/missing/extra/different, else 1.
Keys are "rs-<n>"; --prefix changes that.
"""

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import Client  # noqa: E402


def key(a, n):
    return b"%s-%d" % (a.prefix.encode(), n)


def value(tag, n):
    return (b"%s:%d:" % (tag.encode(), n)) * (1 + n % 17)


def store(c, a, n, tag):
    return c.store(b"set", key(a, n), value(tag, n), flags=n % 5,
                   exptime=0 if n % 3 == 0 else 1000)


def fill(a):
    c = Client(a.server, timeout=5)
    bad = 0
    for n in range(a.first, a.last + 1):
        if store(c, a, n, a.tag) != b"STORED":
            bad += 1
    print("stored %d\nfailed %d" % (a.last - a.first + 1 - bad, bad))
    return 1 if bad else 0


def churn(a):
    c = Client(a.server, timeout=5)
    end = time.monotonic() + a.seconds
    writes = stale = errors = gen = 0
    examples = []
    while time.monotonic() < end:
        n = random.randint(a.first, a.last)
        gen += 1
        tag = "churn%d" % gen
        try:
            if store(c, a, n, tag) != b"STORED":
                errors += 1
                continue
            writes += 1
            item = c.get(key(a, n))
            if item is None or item[2] != value(tag, n):
                stale += 1
                if len(examples) < 5:
                    examples.append("%s: got %r" % (key(a, n).decode(),
                                                    item and item[2][:40]))
        except OSError as e:
            errors += 1
            c.close()
            c = Client(a.server, timeout=5)
            examples.append("error: %s" % e)
        time.sleep(0.002)
    print("writes %d\nstale %d\nerrors %d" % (writes, stale, errors))
    for e in examples:
        print("# example: %s" % e)
    return 1 if stale or errors else 0


def meta(c, k):
    """(value, flags, ttl) or None."""
    c.send(b"mg %s v f t\r\n" % k)
    line = c.readline()
    if line.startswith(b"EN"):
        return None
    parts = line.split()
    if parts[0] != b"VA":
        raise RuntimeError("mg %s: %r" % (k, line))
    data = c.readexact(int(parts[1]) + 2)[:-2]
    fl = {p[:1]: p[1:] for p in parts[2:]}
    return data, int(fl[b"f"]), int(fl[b"t"])


def compare(a):
    ca, cb = Client(a.server, timeout=5), Client(a.other, timeout=5)
    cnt = dict.fromkeys(("same", "missing", "extra", "differ", "ttl"), 0)
    examples = []
    for n in range(a.first, a.last + 1):
        k = key(a, n)
        x, y = meta(ca, k), meta(cb, k)
        what = None
        if x is None and y is None:
            what = "same"
        elif y is None:
            what = "missing"
        elif x is None:
            what = "extra"
        elif x[:2] != y[:2]:
            what = "differ"
        elif (x[2] == -1) != (y[2] == -1) or abs(x[2] - y[2]) > 3:
            what = "ttl"
        else:
            what = "same"
        cnt[what] += 1
        if what != "same" and len(examples) < 5:
            examples.append("%s %s: A %s, B %s" % (
                what, k.decode(), x and (x[0][:24], x[1], x[2]),
                y and (y[0][:24], y[1], y[2])))
    for name, v in cnt.items():
        print("%s %d" % (name, v))
    for e in examples:
        print("# example: %s" % e)
    return 0 if cnt["same"] == a.last - a.first + 1 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("fill", "churn", "compare"))
    ap.add_argument("server")
    ap.add_argument("args", nargs="+")
    ap.add_argument("--tag", default="v0")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--prefix", default="rs")
    a = ap.parse_args()
    rest = a.args
    if a.mode == "compare":
        if len(rest) != 3:
            ap.error("compare A B FIRST LAST")
        a.other, rest = rest[0], rest[1:]
    if len(rest) != 2:
        ap.error("FIRST LAST expected")
    a.first, a.last = int(rest[0]), int(rest[1])
    return {"fill": fill, "churn": churn, "compare": compare}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
