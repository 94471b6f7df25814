#!/usr/bin/env python3
"""Clients that try to make a memcached proxy hold their replies in memory.

  mcmemory.py pipeline SERVER PID [--conns 2] [--gets 1100] [--size 1000000]
                                  [--warm]
      CONNS connections each pipeline GETS gets of one SIZE-byte value and
      never read (--warm: after reading one such reply).
  mcmemory.py multiget SERVER PID [--keys 500] [--size 1000000] [--noread]
                                  [--gat]
      one get (--gat: gat) naming the SIZE-byte key KEYS times; the reply
      is read and checked byte for byte (VALUE blocks in request order,
      then END), or never read with --noread.

Meanwhile another client sets and gets small keys and must be served.
PID is the proxy's: its VmRSS before, its peak (VmHWM, reset through
/proc/PID/clear_refs first) during, and its VmRSS after the clients left
are printed; the growth must stay under --bound MB (256), and what is left
after under --left MB (48).  Exit 1 if a check fails.
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import Client, parse_hostport  # noqa: E402

failures = 0


def report(ok, what, detail=""):
    global failures
    if ok:
        print("ok - %s" % what)
    else:
        failures += 1
        print("not ok - %s%s" % (what, " (%s)" % detail if detail else ""))


def vm(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024  # MB
    return -1


def reset_peak(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def connect(hp):
    s = socket.create_connection(parse_hostport(hp), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Innocent(threading.Thread):
    """A well-behaved client: set and get small keys until stopped."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server = server
        self.stop = False
        self.ops = 0
        self.errors = []
        self.worst = 0.0

    def run(self):
        try:
            # generous: the lab may share its two cores with others
            c = Client(self.server, timeout=15)
        except OSError as e:
            self.errors.append("connect: %s" % e)
            return
        i = 0
        while not self.stop:
            key = b"inn%d_%d" % (os.getpid(), i % 50)
            val = b"v%d" % i
            t = time.time()
            try:
                ok = (c.store(b"set", key, val) == b"STORED"
                      and c.get(key)[2] == val)
            except Exception as e:  # noqa: BLE001
                self.errors.append(repr(e))
                return
            self.worst = max(self.worst, time.time() - t)
            if not ok:
                self.errors.append("wrong answer for %r" % key)
                return
            self.ops += 1
            i += 1
            time.sleep(0.005)
        c.close()


def expected_multiget(key, n, value):
    block = b"VALUE %s 0 %d\r\n%s\r\n" % (key, len(value), value)
    return block, len(block) * n + 5


def read_multiget(s, key, n, value):
    block, total = expected_multiget(key, n, value)
    got = 0
    ok = True
    pos = 0  # position in the expected stream
    s.settimeout(20)
    while got < total:
        d = s.recv(1 << 20)
        if not d:
            return False, "closed after %d of %d bytes" % (got, total)
        for off in range(0, len(d), 65536):
            part = d[off:off + 65536]
            # compare against the expected stream, piece by piece
            while part:
                if pos < len(block) * n:
                    i = pos % len(block)
                    m = min(len(part), len(block) - i)
                    if part[:m] != block[i:i + m]:
                        ok = False
                else:
                    i = pos - len(block) * n
                    m = min(len(part), 5 - i)
                    if part[:m] != b"END\r\n"[i:i + m]:
                        ok = False
                pos += m
                part = part[m:]
        got += len(d)
    return ok, "%d bytes" % got


def run(args):
    server, pid = args["server"], args["pid"]
    key = b"memtest%d" % os.getpid()
    value = bytes((i * 31) & 0xFF for i in range(args["size"]))
    value = value.replace(b"\r", b"x").replace(b"\n", b"y")
    c = Client(server, timeout=10)
    report(c.store(b"set", key, value) == b"STORED",
           "a %d-byte value stored" % len(value))
    c.close()
    time.sleep(1.2)  # the proxy trims its heap once a second
    before = vm(pid, "VmRSS")
    reset_peak(pid)
    inn = Innocent(server)
    inn.start()
    hostile = []
    mode = args["mode"]
    detail = ""
    if mode == "pipeline":
        req = b"get %s\r\n" % key
        for _ in range(args["conns"]):
            s = connect(server)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            if args["warm"]:
                # one reply read first: the proxy knows the size to expect
                s.sendall(req)
                ok, _ = read_multiget(s, key, 1, value)
                if not ok:
                    report(False, "warm-up get")
            s.sendall(req * args["gets"])
            hostile.append(s)
        time.sleep(2.5)
        what = "%d connections x %d pipelined gets of %d bytes, never " \
            "read" % (args["conns"], args["gets"], len(value))
    else:
        s = connect(server)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        verb = b"gat 0" if args["gat"] else b"get"
        s.sendall(verb + (b" " + key) * args["keys"] + b"\r\n")
        hostile.append(s)
        if args["noread"]:
            time.sleep(2.5)
            what = "a %s of %d x the %d-byte key, never read" % (
                verb.split()[0].decode(), args["keys"], len(value))
        else:
            ok, detail = read_multiget(s, key, args["keys"], value)
            what = "a %s of %d x the %d-byte key" % (
                verb.split()[0].decode(), args["keys"], len(value))
            report(ok, "%s answered as memcached does (VALUE blocks in "
                   "order, END)" % what, detail)
            what += ", read"
    time.sleep(0.5)
    peak = vm(pid, "VmHWM")
    inn.stop = True
    inn.join(10)
    for s in hostile:
        s.close()
    # the proxy trims once a second; give it a few
    for _ in range(10):
        time.sleep(0.5)
        after = vm(pid, "VmRSS")
        if after - before < args["left"] / 2:
            break
    print("# %s: RSS %d MB before, peak %d MB, %d MB after the clients left"
          % (what, before, peak, after))
    report(peak - before < args["bound"],
           "%s: the proxy grew by %d MB (bound %d MB)"
           % (what, peak - before, args["bound"]))
    report(not inn.errors and inn.ops > 20,
           "another client was served meanwhile: %d sets+gets, slowest "
           "%.3f s" % (inn.ops, inn.worst), "; ".join(inn.errors[:3]))
    report(after - before < args["left"],
           "the memory went back: %d MB over the start once they left"
           % (after - before))


def main():
    a = sys.argv[1:]
    if len(a) < 3 or a[0] not in ("pipeline", "multiget"):
        print(__doc__)
        return 2
    args = {"mode": a[0], "server": a[1], "pid": int(a[2]), "conns": 2,
            "gets": 1100, "size": 1000000, "keys": 500, "noread": False,
            "warm": False, "gat": False,
            "bound": 256, "left": 48}
    rest = a[3:]
    while rest:
        opt = rest.pop(0)
        if opt in ("--noread", "--warm", "--gat"):
            args[opt[2:]] = True
        else:
            args[opt[2:]] = int(rest.pop(0))
    run(args)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
