#!/usr/bin/env python3
"""UDP datagrams of an odd reply shape: the proxy answers as memcached does.

  mcudpframe.py REFERENCE:PORT PROXY:PORT

Each step is one datagram (request id chosen per step): two commands in
one datagram, a data block of the wrong length, "noreply" after a NUL or
followed by a space, a noreply memcached answers ERROR to, a quiet mg
closed by mn...; every reply datagram that comes back within 0.4 s of the
last is collected, and the lists must be equal, frame headers included
(cas values masked).  The kernel path must leave such datagrams to
kmagentd, which answers them as memcached does; none may leave a pending
entry waiting for a reply that never comes (the caller checks km_stats).
Prints ok / not ok lines; exit 1 if any step differs.
"""

import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import parse_hostport  # noqa: E402

CAS = re.compile(rb"^(VALUE \S+ \d+ \d+) \d+(\r\n)", re.M)

STEPS = [
    ("a plain set (kernel)", b"set uk 0 0 1\r\nx\r\n"),
    ("a plain get (kernel)", b"get uk\r\n"),
    ("set and get in one datagram", b"set uk 0 0 1\r\ny\r\nget uk\r\n"),
    ("two deletes in one datagram", b"delete uk\r\ndelete uk\r\n"),
    ("data longer than said", b"set uk 0 0 1\r\nxyz\r\n"),
    ("noreply, then a space", b"set uk 0 0 1 noreply \r\nn\r\n"),
    ("get after it", b"get uk\r\n"),
    ("noreply after a NUL", b"set uk 0 0 1 noreply\x00x\r\nm\r\n"),
    ("get after it", b"get uk\r\n"),
    ("noreply, a token too many", b"set uk 0 0 1 2 noreply\r\nz\r\n"),
    ("incr noreply without a delta", b"set un 0 0 1\r\n5\r\nincr un noreply\r\n"),
    ("delete 0 noreply (kernel)", b"delete un 0 noreply\r\n"),
    ("get after it", b"get un\r\n"),
    ("mg quiet miss, mn", b"mg nokey v q\r\nmn\r\n"),
    ("mg with a NUL", b"mg uk v\x00 q\r\n"),
    ("ms and mn", b"ms uk 2\r\nhi\r\nmn\r\n"),
    ("get after it", b"get uk\r\n"),
    # last: memcached keeps waiting for the rest of this data block and
    # takes it from the next datagram, whoever sends it
    ("data shorter than said", b"set uk 0 0 5\r\nab\r\n"),
]


def ask(sock, addr, rid, req):
    sock.sendto(struct.pack("!HHHH", rid, 0, 1, 0) + req, addr)
    got = []
    deadline = time.monotonic() + 1.0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            d, src = sock.recvfrom(65536)
        except socket.timeout:
            break
        if src != addr or len(d) < 8 or struct.unpack("!H", d[:2])[0] != rid:
            continue
        got.append(d[:8] + CAS.sub(rb"\1 #\2", d[8:]))
        deadline = time.monotonic() + 0.4
    return got


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    ref, cand = parse_hostport(sys.argv[1]), parse_hostport(sys.argv[2])
    s_ref = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s_cand = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bad = 0
    for i, (name, req) in enumerate(STEPS):
        rid = 0x5100 + i
        a, b = ask(s_ref, ref, rid, req), ask(s_cand, cand, rid, req)
        if a == b:
            print("ok - %s: %d datagram(s) as memcached's" % (name, len(a)))
            continue
        bad += 1
        print("not ok - %s\n#   memcached: %r\n#   proxy:     %r" % (name, a, b))
    print("# %d steps, %d differ" % (len(STEPS), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
