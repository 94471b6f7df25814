#!/usr/bin/env python3
"""Stale reads across two proxies: write through one, read through the other.

  mcstale.py [--udp] [--keys N] [--secs S] WRITER:PORT READER:PORT

Round after round, for each of N keys: set KEY to a new value through
WRITER (TCP) and, once it is acknowledged, get KEY through READER (TCP, or
UDP with --udp).  A read that returns anything but the value just
acknowledged is stale.  Prints one line per stale read ("stale EPOCH_MS
KEY") and at the end "rounds R reads N stale S errors E".  Exit 0; 2 on a
usage error.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import Client, ProtocolError  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--udp", action="store_true")
    ap.add_argument("--keys", type=int, default=20)
    ap.add_argument("--secs", type=float, default=5.0)
    ap.add_argument("writer")
    ap.add_argument("reader")
    a = ap.parse_args()
    w = Client(a.writer, timeout=2.0)
    r = Client(a.reader, udp=a.udp, timeout=1.0)
    end = time.time() + a.secs
    rounds = reads = stale = errors = 0
    while time.time() < end:
        rounds += 1
        for k in range(a.keys):
            key = b"stale-%d" % k
            val = b"v%d" % rounds
            try:
                if w.store(b"set", key, val) != b"STORED":
                    errors += 1
                    continue
                got = r.get(key)
            except (OSError, ProtocolError):
                errors += 1
                r = Client(a.reader, udp=a.udp, timeout=1.0)
                continue
            reads += 1
            if got is None or got[2] != val:
                stale += 1
                print("stale %d %s" % (time.time() * 1000, key.decode()))
    print("rounds %d reads %d stale %d errors %d" %
          (rounds, reads, stale, errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
