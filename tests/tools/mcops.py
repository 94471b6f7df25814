#!/usr/bin/env python3
"""The ops tests' client (tests/integration/ops_lib.sh describes each command)."""
import socket, sys, time

def conn(hp):
    h, p = hp.rsplit(":", 1)
    s = socket.create_connection((h, int(p)), timeout=5)
    return s, s.makefile("rb")

def fill(hp, n, pfx, flags=0, ttl=0):
    s, f = conn(hp)
    for i in range(0, n, 500):
        buf = b"".join(b"set %s%d %d %d %d\r\n%s%d\r\n" % (
            pfx.encode(), k, flags, ttl, len(pfx) + len(str(k)),
            pfx.encode(), k) for k in range(i, min(n, i + 500)))
        s.sendall(buf)
        for k in range(i, min(n, i + 500)):
            line = f.readline()
            if line != b"STORED\r\n":
                print("set failed:", line); sys.exit(1)
    print("stored", n)

def getall(hp, n, pfx):
    s, f = conn(hp)
    hits = misses = wrong = 0
    for k in range(n):
        key = ("%s%d" % (pfx, k)).encode()
        s.sendall(b"get " + key + b"\r\n")
        line = f.readline()
        if line == b"END\r\n":
            misses += 1; continue
        parts = line.split()
        if parts[0] != b"VALUE":
            wrong += 1; continue
        data = f.read(int(parts[3]) + 2)[:-2]
        f.readline()
        if data == key: hits += 1
        else: wrong += 1
    print("hits %d misses %d wrong %d" % (hits, misses, wrong))

def count(hp, n, pfx):
    s, f = conn(hp)
    c = 0
    for k in range(n):
        s.sendall(b"mg %s%d\r\n" % (pfx.encode(), k))
        if f.readline().startswith(b"HD"): c += 1
    print(c)

def stat(hp, name):
    s, f = conn(hp)
    s.sendall(b"stats\r\n")
    for line in iter(f.readline, b"END\r\n"):
        p = line.split()
        if p[1].decode() == name: print(p[2].decode())

def hits_but(hp, pfx):
    """get_hits less those of keys "PFX:..." (stats detail, turned on
    here), both read in one go: a fetch between the two is unlikely"""
    s, f = conn(hp)
    s.sendall(b"stats detail on\r\n")
    if f.readline() != b"OK\r\n":
        print("stats detail on failed"); sys.exit(1)
    s.sendall(b"stats\r\nstats detail dump\r\n")
    hits = own = 0
    for line in iter(f.readline, b"END\r\n"):
        if line.split()[1] == b"get_hits": hits = int(line.split()[2])
    for line in iter(f.readline, b"END\r\n"):
        p = line.split()
        if p[1].decode() == pfx: own = int(p[p.index(b"hit") + 1])
    print(hits - own)

def mg(hp, key):
    s, f = conn(hp)
    s.sendall(b"mg %s v f t\r\n" % key.encode())
    print(f.readline().decode().strip())

def setv(hp, pfx, lo, hi, vpfx):
    s, f = conn(hp)
    bad = 0
    for k in range(lo, hi):
        v = ("%s%d" % (vpfx, k)).encode()
        s.sendall(b"set %s%d 0 0 %d\r\n%s\r\n" % (pfx.encode(), k, len(v), v))
        bad += f.readline() != b"STORED\r\n"
    print("failed %d" % bad)

def delete(hp, pfx, lo, hi):
    s, f = conn(hp)
    bad = 0
    for k in range(lo, hi):
        s.sendall(b"delete %s%d\r\n" % (pfx.encode(), k))
        bad += f.readline() not in (b"DELETED\r\n", b"NOT_FOUND\r\n")
    print("failed %d" % bad)

def getv(hp, pfx, lo, hi, vpfx):
    """"hits H misses M wrong W": a hit holds vpfx<i>"""
    s, f = conn(hp)
    hits = misses = wrong = 0
    for k in range(lo, hi):
        s.sendall(b"get %s%d\r\n" % (pfx.encode(), k))
        line = f.readline()
        if line == b"END\r\n":
            misses += 1; continue
        data = f.read(int(line.split()[3]) + 2)[:-2]
        f.readline()
        if data == ("%s%d" % (vpfx, k)).encode(): hits += 1
        else: wrong += 1
    print("hits %d misses %d wrong %d" % (hits, misses, wrong))

def incrs(hp, pfx, lo, hi, secs):
    """incr PREFIX<i> by 1, LO <= i < HI, again and again for SECS:
    "ok N notfound M other K" """
    s, f = conn(hp)
    ok = notfound = other = 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        for k in range(lo, hi):
            s.sendall(b"incr %s%d 1\r\n" % (pfx.encode(), k))
            line = f.readline()
            if line == b"NOT_FOUND\r\n": notfound += 1
            elif line.strip().isdigit(): ok += 1
            else: other += 1
    print("ok %d notfound %d other %d" % (ok, notfound, other))

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "fill": fill(args[0], int(args[1]), args[2], *map(int, args[3:]))
elif cmd == "getall": getall(args[0], int(args[1]), args[2])
elif cmd == "count": count(args[0], int(args[1]), args[2])
elif cmd == "stat": stat(args[0], args[1])
elif cmd == "hits_but": hits_but(args[0], args[1])
elif cmd == "mg": mg(args[0], args[1])
elif cmd == "setv": setv(args[0], args[1], int(args[2]), int(args[3]), args[4])
elif cmd == "del": delete(args[0], args[1], int(args[2]), int(args[3]))
elif cmd == "getv": getv(args[0], args[1], int(args[2]), int(args[3]), args[4])
elif cmd == "incrs": incrs(args[0], args[1], int(args[2]), int(args[3]), float(args[4]))
