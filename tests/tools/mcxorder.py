#!/usr/bin/env python3
"""Writes of one key through two kmagentd, one after the other (issue 20).

  mcxorder.py PA PB MB NS DEV KEY...

Each KEY is set through PA while what PA sends to MB is dropped (a tbf
qdisc on DEV, in network namespace NS, that passes nothing, for 50 ms:
TCP resends it one RTO later, over 200 ms), then deleted
through PB, whose connections to MB are not touched.  Once PA's resends
landed, prints "ack_ms_max A mb_hits H pb_hits P": the slowest set
through PA, the keys MB holds (a set that landed after the acknowledged
delete) and the keys a get through PB returns (older than its own
acknowledged delete).
"""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import Client  # noqa: E402


def main():
    pa, pb, mb, ns, dev = sys.argv[1:6]
    keys = [k.encode() for k in sys.argv[6:]]
    block = ["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
             "rate", "8bit", "burst", "10", "latency", "1ms"]
    unblock = ["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"]
    ca, cb = Client(pa, timeout=5), Client(pb, timeout=5)
    slowest = 0.0
    for i, key in enumerate(keys):
        subprocess.run(block, check=True)
        lift = threading.Timer(0.05, subprocess.run, [unblock])
        t0 = time.monotonic()
        lift.start()
        ca.send(b"set %s 0 0 %d\r\nold-%d\r\n"
                % (key, len(b"old-%d" % i), i))
        got = ca.readline()
        slowest = max(slowest, time.monotonic() - t0)
        lift.join()
        if got != b"STORED":
            sys.exit("set %s through PA: %r" % (key, got))
        got = cb.simple(b"delete " + key)
        if got != b"DELETED":
            sys.exit("delete %s through PB: %r" % (key, got))
    time.sleep(1.0)  # PA's resends (RTO >= 200 ms) landed on MB
    cm = Client(mb)
    mb_hits = sum(cm.get(k) is not None for k in keys)
    pb_hits = sum(cb.get(k) is not None for k in keys)
    print("ack_ms_max %d mb_hits %d pb_hits %d"
          % (slowest * 1000, mb_hits, pb_hits))


if __name__ == "__main__":
    main()
