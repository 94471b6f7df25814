#!/usr/bin/env python3
"""Clients that half-close (shutdown(SHUT_WR)) or fall silent.

  mchalfclose.py pipeline SERVER REF BACKEND...   pipelined requests + FIN
  mchalfclose.py setfin SERVER BACKEND... [-n N]  set + FIN in one segment
  mchalfclose.py window SERVER REF                a get and a gat of 300
                                                  keys (asked a window at a
                                                  time), a delete after
                                                  them, then the FIN
  mchalfclose.py empty SERVER                     FIN alone: closed at once
  mchalfclose.py flood SERVER [-n N] [-r ROUNDS]  N half-closed clients a
                                                  round, kept open; then a
                                                  new client must be served
  mchalfclose.py idle SERVER SECS                 closed after SECS idle;
                                                  an active one is not

Each check prints ok/not ok; exit 1 if any failed.  REF is a memcached
that gets the same bytes: its answer is the one expected, byte for byte.
"""

import os
import select
import socket
import sys
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


def connect(hp, timeout=3.0):
    s = socket.create_connection(parse_hostport(hp), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send_fin(s, data):
    """data and the FIN in one segment: corked, the FIN joins the data."""
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    if data:
        s.sendall(data)
    s.shutdown(socket.SHUT_WR)


def read_to_eof(s, limit=5.0):
    """Everything until the server closes; None if it did not in time."""
    out = b""
    end = time.time() + limit
    while time.time() < end:
        s.settimeout(max(0.05, end - time.time()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return out
        if not d:
            return out
        out += d
    return None


def exchange(hp, data):
    s = connect(hp)
    try:
        send_fin(s, data)
        return read_to_eof(s)
    finally:
        s.close()


def backend_get(hp, key):
    c = Client(hp)
    try:
        v = c.get(key.encode())
        return v[2] if v else None
    finally:
        c.close()


def cmd_pipeline(server, ref, backends):
    tag = "%d" % os.getpid()
    req = (
        b"set hc%s 0 0 5\r\nhello\r\n"
        b"get hc%s hcmiss%s\r\n"
        b"bogus\r\n"
        b"delete hcmiss%s\r\n"
        b"set hc2%s 5 0 3\r\nabc\r\n"
        b"gets hc2%s\r\n" % ((tag.encode(),) * 6)
    )
    want = exchange(ref, req)
    got = exchange(server, req)
    report(want is not None, "memcached answers pipelined requests + FIN, "
           "then closes")
    if got is not None and want is not None:
        # cas uniques are each server's own
        cut = got.rfind(b"VALUE hc2")
        got_cmp = got[:cut] if cut >= 0 else got
        want_cmp = want[: want.rfind(b"VALUE hc2")]
        ok = got_cmp == want_cmp and got.endswith(b"\r\nabc\r\nEND\r\n")
        report(ok, "pipelined requests + FIN: every one answered as "
               "memcached does, then closed", "got %r want %r" % (got, want))
    else:
        report(False, "pipelined requests + FIN: answered, then closed",
               "the connection stayed open (got %r)" % (got,))
    for b in backends:
        report(backend_get(b, "hc2" + tag) == b"abc",
               "the set before the FIN is on %s" % b)


def cmd_window(server, ref):
    """memcached itself may close on the FIN before it answers what it
    read with it (when its read filled its buffer): the expected reply
    is written out here, and memcached only stores the same keys."""
    tag = b"%d" % os.getpid()
    keys = [b"w%s_%d" % (tag, i) for i in range(300)]
    sets = b"".join(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k, len(k), k)
                    for k in keys)
    for hp in (server, ref):
        c = Client(hp)
        c.send(sets + b"mn\r\n")
        c.readline()
        c.close()
    values = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (k, len(k), k)
                      for k in keys)
    want = values + b"END\r\n" + values + b"END\r\nDELETED\r\nEND\r\n"
    req = (b"get " + b" ".join(keys) + b"\r\n"
           + b"gat 0 " + b" ".join(keys) + b"\r\n"
           + b"delete " + keys[-1] + b"\r\n"
           + b"get " + keys[-1] + b"\r\n")
    got = exchange(server, req)
    report(got == want,
           "a get and a gat of 300 keys, then a delete of the last, FIN: "
           "every one answered in order (%s bytes)"
           % (len(got) if got else got),
           "got %r... want %r..." % ((got or b"")[-80:], want[-80:]))


def cmd_setfin(server, backends, n):
    tag = os.getpid()
    bad = []
    for i in range(n):
        key = "sf%d_%d" % (tag, i)
        val = b"v%d" % i
        got = exchange(server, b"set %s 0 0 %d\r\n%s\r\n"
                       % (key.encode(), len(val), val))
        if got != b"STORED\r\n":
            bad.append((key, got))
            continue
        for b in backends:
            if backend_get(b, key) != val:
                bad.append((key, "missing on " + b))
    report(not bad, "%d sets with the FIN in their segment: each answered "
           "STORED, then closed, stored on every replica" % n, repr(bad[:3]))


def cmd_empty(server):
    s = connect(server)
    t = time.time()
    send_fin(s, b"")
    got = read_to_eof(s, 2.0)
    s.close()
    report(got == b"", "a FIN with nothing sent: closed at once (%.2f s)"
           % (time.time() - t), repr(got))


def cmd_flood(server, n, rounds):
    held = []
    refused = 0
    for r in range(rounds):
        for i in range(n):
            try:
                s = connect(server, timeout=2.0)
                send_fin(s, b"get flood%d\r\n" % i)
                held.append(s)  # kept open, never read, as the clients
            except OSError:  # noqa: PERF203  refused at the limit: fine
                refused += 1
        time.sleep(0.5)
    print("# %d half-closed clients held open, %d refused" % (len(held),
                                                                refused))
    # the server must have closed its side of each: served again
    ok = False
    for _ in range(40):
        try:
            c = Client(server, timeout=1.0)
            line = c.store(b"set", b"after_flood", b"ok")
            ok = line == b"STORED" and c.get(b"after_flood")[2] == b"ok"
            c.close()
        except Exception:  # noqa: BLE001  refused or closed: try again
            ok = False
        if ok:
            break
        time.sleep(0.25)
    report(ok, "after %d rounds of %d half-closed clients, a new client is "
           "served" % (rounds, n))
    # each one answered, then closed: EOF after its reply, in time
    eofs = 0
    left = list(held)
    end = time.time() + 5
    while left and time.time() < end:
        ready, _, _ = select.select(left, [], [], 0.2)
        for s in ready:
            try:
                d = s.recv(65536)
            except OSError:
                d = b""
            if not d:
                eofs += 1
                left.remove(s)
    for s in held:
        s.close()
    report(eofs == len(held), "every half-closed client was answered and "
           "closed by the server (%d of %d)" % (eofs, len(held)))


def cmd_idle(server, secs):
    quiet = connect(server)
    busy = Client(server, timeout=2.0)
    quiet.sendall(b"version\r\n")
    quiet.settimeout(2.0)
    first = quiet.recv(1024)
    report(first.startswith(b"VERSION"), "idle client: answered first")
    t = time.time()
    busy_ok = True
    closed_after = None
    while time.time() - t < secs * 2 + 2:
        try:
            busy_ok &= busy.simple(b"version").startswith(b"VERSION")
        except Exception:  # noqa: BLE001
            busy_ok = False
        quiet.settimeout(0.3)
        try:
            d = quiet.recv(1024)
            if not d and closed_after is None:
                closed_after = time.time() - t
        except socket.timeout:
            pass
        if closed_after is not None and time.time() - t > secs + 1:
            break
    report(closed_after is not None and secs - 0.5 <= closed_after
           <= secs + 2.5,
           "idle client closed after %s s of silence (--idle-timeout %s)"
           % (closed_after, secs))
    report(busy_ok, "a client active meanwhile stays open")
    busy.close()
    quiet.close()


def main():
    a = sys.argv[1:]
    n, rounds = 250, 2
    if "-n" in a:
        i = a.index("-n")
        n = int(a[i + 1])
        del a[i:i + 2]
    if "-r" in a:
        i = a.index("-r")
        rounds = int(a[i + 1])
        del a[i:i + 2]
    cmd = a[0]
    if cmd == "pipeline":
        cmd_pipeline(a[1], a[2], a[3:])
    elif cmd == "setfin":
        cmd_setfin(a[1], a[2:], n)
    elif cmd == "window":
        cmd_window(a[1], a[2])
    elif cmd == "empty":
        cmd_empty(a[1])
    elif cmd == "flood":
        cmd_flood(a[1], n, rounds)
    elif cmd == "idle":
        cmd_idle(a[1], float(a[2]))
    else:
        print(__doc__)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
