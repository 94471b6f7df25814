#!/usr/bin/env python3
"""Reply framing under hostile input: no client can shift another's replies.

  mcframing.py hostile REFERENCE:PORT PROXY:PORT
  mcframing.py garble LISTEN:PORT BACKEND:PORT
  mcframing.py garbled PROXY:PORT

hostile: victims hold values (s0..s19) through PROXY; an attacker sends each
of a list of inputs whose reply shape is odd (quiet meta commands, repeated
flags, noreply after a NUL, an ms whose data memcached reads as a command,
text odd spacing...), and while the attacker's reply is due, a victim asks
for its values on the same backend connections.  Checks, per input: the
victim gets exactly its own values, and the attacker gets exactly what a
reference memcached (REFERENCE, holding the same keys) answers to the same
bytes.  Then all inputs at once, pipelined, with the victim interleaved.
Output is TAP-like ("ok - ...", "not ok - ..."); exit 1 if any check failed.

garble: a TCP relay from LISTEN to BACKEND (a memcached) that behaves until
a request naming the key "garble-now" passes it (a write reaches every
replica: "set garble-now ..."); then it sends a VALUE block of another key
before the backend's own reply to it, as a backend gone out of step would.
It does so once, for the first such request.  Runs until killed.

garbled: victims (4 connections, 50 requests each) ask PROXY for their
values while one "set garble-now" goes through a garble relay; every victim
reply must be the victim's own values, and the set must be STORED (the
other replica's answer).
"""

import argparse
import os
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import parse_hostport  # noqa: E402
from mcdiff import SENTINEL, Step, Target  # noqa: E402

NSECRET = 20


def secret(i):
    return b"secret-value-%02d-%s" % (i, b"x" * i)


def hostile_inputs():
    """(name, bytes) the attacker sends; each ends with a complete request."""
    big = b" ".join(b"f%d" % i for i in range(17))
    return [
        ("mg, q twice, miss", b"mg nokey q q v\r\n"),
        ("mg, quiet miss", b"mg nokey q v\r\n"),
        ("mg, quiet miss with k and O", b"mg nokey v q k O1\r\n"),
        ("mg, quiet hit", b"mg s3 q v\r\n"),
        ("mg, q then a q-word", b"mg nokey q qq v\r\n"),
        ("mg, 17 flags with q", b"mg nokey " + big[:-3] + b" q\r\n"),
        ("mg, 18 flags with q", b"mg nokey " + big + b" q\r\n"),
        ("mg, q after a NUL", b"mg nokey v\x00 q\r\n"),
        ("mg, leading spaces, quiet", b"   mg nokey  q   v\r\n"),
        ("ms quiet", b"ms att1 1 q\r\nx\r\n"),
        ("ms q twice", b"ms att1 1 q q\r\nx\r\n"),
        ("ms quiet, bad mode", b"ms att1 1 q MX\r\nx\r\n"),
        ("ms with 17 flags: its data is a command",
         b"ms att1 12 " + big + b"\r\nget s0 att1\r\n"),
        ("md quiet, hit then miss", b"md att1 q\r\nmd att1 q\r\n"),
        ("md q twice", b"md att1 q q\r\n"),
        ("ma quiet, vivify then incr",
         b"ma attn q N0 J5\r\nma attn q\r\nma attn q v\r\n"),
        ("me with q", b"me nokey q\r\n"),
        ("quiet batch closed by mn",
         b"".join(b"mg miss%d q v\r\n" % i for i in range(30)) +
         b"mg s1 q v k\r\nmn\r\n"),
        ("set noreply after a NUL", b"set att2 0 0 1 noreply\x00x\r\ny\r\n"),
        ("set, key cut by a NUL", b"set att2\x00 0 0 1 noreply\r\ny\r\n"),
        ("noreply writes", b"set att3 0 0 1 noreply\r\nz\r\n"
         b"delete att3 noreply\r\ndelete att3 0 noreply\r\n"
         b"incr attn 1 noreply\r\ntouch att1 10 noreply\r\n"),
        ("noreply in odd places", b"set att4 0 0 1 noreply x\r\ny\r\n"
         b"delete att4 x noreply\r\nincr noreply 1\r\n"
         b"verbosity noreply\r\nget noreply\r\n"),
        ("gets with odd spacing", b"gets   s2    s4  \r\n"),
        ("cas noreply", b"cas s5 0 0 1 1 noreply\r\nq\r\n"),
        ("unknown and HTTP-looking commands",
         b"bogus q\r\nstuff HTTP/1.1\r\nGET HTTP/1.1 x\r\n"),
        ("a bad data chunk", b"set att5 0 0 1\r\nxyz\r\n"),
    ]


class Victim:
    """A connection to the proxy that only ever asks for its own keys."""

    def __init__(self, proxy):
        self.t = Target("victim", proxy)
        self.t.connect()
        self.want = b"".join(b"VALUE s%d 0 %d\r\n%s\r\n" % (i, len(secret(i)),
                                                          secret(i))
                             for i in range(NSECRET)) + b"END\r\n"

    def send(self):
        keys = b" ".join(b"s%d" % i for i in range(NSECRET))
        self.t.sock.sendall(b"get " + keys + b"\r\n")

    def check(self):
        buf = bytearray()
        deadline = time.monotonic() + 3
        while not buf.endswith(b"END\r\n") and len(buf) < len(self.want) + 4096:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([self.t.sock], [], [], left)
            if not r:
                continue
            chunk = self.t.sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        return bytes(buf)


def setup(target):
    t = Target("setup", target)
    t.connect()
    data = b"".join(b"set s%d 0 0 %d\r\n%s\r\n" % (i, len(secret(i)), secret(i))
                    for i in range(NSECRET))
    data += b"set attn 0 0 1\r\n7\r\n"
    r = t.exchange(Step("setup", data, mode="pipe"))
    t.drop()
    return r == b"STORED\r\n" * (NSECRET + 1)


def show(b, limit=300):
    r = repr(b)
    return r if len(r) <= limit else r[:limit] + "... (%d bytes)" % len(b)


def hostile(a):
    bad = 0

    def check(ok, what, detail=""):
        nonlocal bad
        print("%s - %s%s" % ("ok" if ok else "not ok", what,
                              "" if ok else " " + detail))
        bad += 0 if ok else 1

    check(setup(a.reference) and setup(a.proxy),
          "the victim's values stored in the reference and through the proxy")
    victim = Victim(a.proxy)
    ref, att = Target("reference", a.reference), Target("attacker", a.proxy)
    cases = hostile_inputs()
    for name, data in cases:
        step = Step(name, data, mode="pipe")
        r = ref.normalize(ref.exchange(step))
        # the attacker's bytes first, then the victim's request, on the
        # same backend connections (kmagentd -t 1 -i 1)
        if att.sock is None:
            att.connect()
        att.sock.sendall(data + SENTINEL)
        time.sleep(0.005)
        victim.send()
        got = victim.check()
        c = att.normalize(att.read_reply(3))
        check(got == victim.want, "%s: the victim gets its own values" % name,
              "(got %s)" % show(got))
        check(c == r, "%s: the attacker's reply is memcached's" % name,
              "(memcached %s, proxy %s)" % (show(r), show(c)))
    # every input in one write, with victims asking all along
    att.drop()
    att.connect()
    allin = b"".join(d for _, d in cases if b"HTTP" not in d)
    ref.drop()
    ref.connect()
    r = ref.normalize(ref.exchange(Step("all", allin, mode="pipe", wait=5)))
    att.sock.sendall(allin + SENTINEL)
    wrong = 0
    for _ in range(20):
        victim.send()
        if victim.check() != victim.want:
            wrong += 1
    c = att.normalize(att.read_reply(5))
    check(wrong == 0, "all inputs pipelined: 20 victim requests answered "
          "with the victim's values", "(%d wrong)" % wrong)
    check(c == r, "all inputs pipelined: the attacker's replies are "
          "memcached's", "(memcached %s, proxy %s)" % (show(r), show(c)))
    print("# %d checks failed" % bad)
    return 1 if bad else 0


# A key nobody asks for: whichever request it lands before (the set that
# triggers it, or a victim's get pipelined ahead of it on the shared
# connection), its VALUE line is out of step.  A victim's own key (s0)
# landing before a get of s0 would be a well-formed reply no proxy could
# tell from memcached's (CI: 1 run in ~30).
INJECT = b"VALUE leak0 0 6\r\nleaked\r\nEND\r\n"
TRIGGER = b" garble-now "


injected = threading.Event()


def relay(client, backend_addr):
    try:
        back = socket.create_connection(backend_addr)
    except OSError:
        client.close()
        return
    pending = bytearray()
    try:
        while True:
            r, _, _ = select.select([client, back], [], [])
            if client in r:
                d = client.recv(65536)
                if not d:
                    break
                pending += d
                if TRIGGER in pending and not injected.is_set():
                    # a block for another key before the backend's reply
                    injected.set()
                    client.sendall(INJECT)
                    pending.clear()
                elif len(pending) > 4096:
                    del pending[:-len(TRIGGER)]
                back.sendall(d)
            if back in r:
                d = back.recv(65536)
                if not d:
                    break
                client.sendall(d)
    except OSError:
        pass
    client.close()
    back.close()


def garble(a):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(parse_hostport(a.reference))
    ls.listen(64)
    backend = parse_hostport(a.proxy)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=relay, args=(c, backend), daemon=True).start()


def garbled(a):
    ok = setup(a.reference)
    print("%s - the victims' values stored" % ("ok" if ok else "not ok"))
    victims = [Victim(a.reference) for _ in range(4)]
    wrong = []

    def ask(v):
        for _ in range(50):
            v.send()
            got = v.check()
            if got != v.want:
                wrong.append(got)

    threads = [threading.Thread(target=ask, args=(v,)) for v in victims]
    for t in threads:
        t.start()
    time.sleep(0.05)
    s = socket.create_connection(parse_hostport(a.reference), timeout=5)
    s.sendall(b"set garble-now 0 0 1\r\nx\r\n")
    buf = b""
    while not buf.endswith(b"\r\n"):
        d = s.recv(100)
        if not d:
            break
        buf += d
    for t in threads:
        t.join()
    print("%s - the write through the garbled backend: %s" %
          ("ok" if buf == b"STORED\r\n" else "not ok", show(buf)))
    print("%s - 200 victim requests, %d answered with anything but the "
          "victim's own values%s" % ("ok" if not wrong else "not ok",
                                     len(wrong),
                                     "" if not wrong else ": " + show(wrong[0])))
    return 0 if ok and not wrong and buf == b"STORED\r\n" else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["hostile", "garble", "garbled"])
    ap.add_argument("reference",
                    help="hostile: REFERENCE; garble: LISTEN; garbled: PROXY")
    ap.add_argument("proxy", nargs="?", help="hostile: PROXY; garble: BACKEND")
    a = ap.parse_args()
    if a.mode != "garbled" and not a.proxy:
        ap.error("%s needs two addresses" % a.mode)
    try:
        return {"hostile": hostile, "garble": garble,
                "garbled": garbled}[a.mode](a)
    except OSError as e:
        print("mcframing: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
