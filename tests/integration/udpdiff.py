#!/usr/bin/env python3
"""udpdiff.py REFERENCE:PORT CANDIDATE:PORT: one UDP request sequence, two
servers, identical replies, request ids and datagram headers included.
An IPv6 server is written [ADDR]:PORT.

Each request is one datagram with a chosen request id; the reply's
datagrams (8-byte frame header: request id, sequence number, count,
reserved) are collected until the count is complete or 1 s passed, and
compared with the reference's, headers included.  CAS values (gets, mg c)
differ between servers: they are masked.  Prints one line a step; exit 0
when every reply matches, 1 otherwise.
"""
import re
import socket
import struct
import sys
import time

STEPS = [
    b"set k1 0 0 5\r\nhello\r\n",
    b"get k1\r\n",
    b"gets k1\r\n",
    b"get nokey\r\n",
    b"add k1 0 0 1\r\nx\r\n",
    b"replace k1 0 0 3\r\nabc\r\n",
    b"append k1 0 0 2\r\nde\r\n",
    b"prepend k1 0 0 2\r\nxy\r\n",
    b"get k1\r\n",
    b"set n 5 0 1\r\n5\r\n",
    b"incr n 10\r\n",
    b"decr n 3\r\n",
    b"incr nokey 1\r\n",
    b"touch k1 100\r\n",
    b"get n\r\n",
    b"delete k1\r\n",
    b"delete k1\r\n",
    b"get k1\r\n",
    b"mg n v f\r\n",
    b"mg nokey v\r\n",
    b"mg n\r\n",
    b"ms m1 2\r\nhi\r\n",
    b"mg m1 v t\r\n",
    b"ma n\r\n",
    b"mg n v\r\n",
    b"md m1\r\n",
    b"md m1\r\n",
    b"mg m1 v\r\n",
    b"set big 0 0 3000\r\n" + b"B" * 3000 + b"\r\n",
    b"set quiet 0 0 1 noreply\r\nq\r\n",
    b"get quiet\r\n",
    b"get n quiet\r\n",
    b"get big\r\n",
    b"bogus command\r\n",
    b"get " + b"k" * 251 + b"\r\n",
]

CAS = re.compile(rb"^(VALUE \S+ \d+ \d+) \d+(\r\n)", re.M)
META_CAS = re.compile(rb"( c)\d+")


def ask(sock, addr, rid, req):
    sock.sendto(struct.pack("!HHHH", rid, 0, 1, 0) + req, addr)
    got, total, deadline = {}, None, time.monotonic() + 1.0
    while total is None or len(got) < total:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            d, src = sock.recvfrom(65536)
        except socket.timeout:
            break
        if src[:2] != addr or len(d) < 8:
            continue
        r, seq, tot, res = struct.unpack("!HHHH", d[:8])
        if r != rid:
            continue
        total = tot
        got[seq] = d
    return [got[s] for s in sorted(got)]


def canon(dgrams):
    out = []
    for d in dgrams:
        body = META_CAS.sub(rb"\1#", CAS.sub(rb"\1 #\2", d[8:]))
        out.append(d[:8] + body)
    return out


def server(arg):
    """HOST:PORT or [ADDR6]:PORT: the address (as recvfrom gives it), family."""
    h, p = arg.rsplit(":", 1)
    if h.startswith("["):
        h = socket.inet_ntop(socket.AF_INET6,
                             socket.inet_pton(socket.AF_INET6, h[1:-1]))
        return (h, int(p)), socket.AF_INET6
    return (h, int(p)), socket.AF_INET


def main():
    (ref, f_ref), (cand, f_cand) = server(sys.argv[1]), server(sys.argv[2])
    s_ref = socket.socket(f_ref, socket.SOCK_DGRAM)
    s_cand = socket.socket(f_cand, socket.SOCK_DGRAM)
    bad = 0
    for i, req in enumerate(STEPS):
        rid = (0x4b00 + i * 7) & 0xFFFF
        a = canon(ask(s_ref, ref, rid, req))
        b = canon(ask(s_cand, cand, rid, req))
        line = req.split(b"\r\n")[0][:40].decode(errors="replace")
        if a == b:
            print("ok   %-40s %d datagram(s)" % (line, len(a)))
        else:
            bad += 1
            print("FAIL %-40s\n  reference: %r\n  candidate: %r" % (line, a, b))
    print("%d steps, %d differ" % (len(STEPS), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
