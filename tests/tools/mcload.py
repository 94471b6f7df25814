#!/usr/bin/env python3
"""Pipelined write+read load that checks every reply (kmagent's failover tests).

  mcload.py run HOST:PORT --seconds S --acked FILE [--conns N] [--depth D]
                                                   [--pause-ms MS] [--mark-file F]
  mcload.py verify HOST:PORT --acked FILE

run: N connections (threads), each sending batches of D pipelined requests:
sets of keys never written before and gets (single and multi-key) of keys
whose set was acknowledged (STORED).  Each key is written once with a value
derived from the key, so a read can only be a hit with that exact value, or
a miss; anything else is a wrong value.  Every acknowledged key goes to
--acked FILE.  Prints "name value" lines:
  sets acked not_acked server_errors gets hits misses wrong conn_drops
  timeouts other acked_after_mark hits_after_mark (batches sent after the
  --mark-file appeared: the test creates it right after its kill)
verify: gets every key of --acked FILE (multi-key gets of 100) and prints
  checked present missing wrong
Exit 0 when wrong is 0 (run) / missing and wrong are 0 (verify), else 1;
2 on usage or connection errors.
"""

import argparse
import hashlib
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import Client, ProtocolError, parse_hostport  # noqa: E402


def value_of(key):
    """A value that only this key can have, 8 to 300 bytes."""
    h = hashlib.sha256(key).hexdigest().encode()
    n = 8 + int(h[:4], 16) % 293
    return (b"%s:%s|" % (key, h) * 8)[:n]


class Stats:
    NAMES = ("sets", "acked", "not_acked", "server_errors", "gets", "hits",
             "misses", "wrong", "conn_drops", "timeouts", "other",
             "acked_after_mark", "hits_after_mark")

    def __init__(self):
        self.c = dict.fromkeys(self.NAMES, 0)
        self.examples = []
        self.lock = threading.Lock()

    def add(self, other):
        with self.lock:
            for k, v in other.c.items():
                self.c[k] += v
            self.examples += other.examples[:5]


def worker(addr, conn_id, depth, pause, mark, stop_at, stats, acked_out, lock,
           seed, prefix):
    rnd = random.Random(seed)
    st = Stats()
    acked = []
    n = 0
    c = None
    while time.monotonic() < stop_at:
        # paced: a few MB of keys in all, far from memcached's -m 64, so
        # that no eviction can pass for a lost write
        time.sleep(pause)
        if c is None:
            try:
                c = Client(addr, timeout=5)
            except OSError:
                st.c["conn_drops"] += 1
                time.sleep(0.05)
                continue
        batch = []
        for _ in range(depth):
            if len(acked) < 10 or rnd.random() < 0.5:
                key = b"%s%d-%d" % (prefix, conn_id, n)
                n += 1
                batch.append(("set", [key]))
            elif rnd.random() < 0.8:
                batch.append(("get", [rnd.choice(acked)]))
            else:
                batch.append(("get", [rnd.choice(acked) for _ in range(3)]))
        marked = mark is not None and os.path.exists(mark)
        acked0, hits0 = st.c["acked"], st.c["hits"]
        data = bytearray()
        for op, keys in batch:
            if op == "set":
                v = value_of(keys[0])
                data += b"set %s 0 0 %d\r\n%s\r\n" % (keys[0], len(v), v)
            else:
                data += b"get " + b" ".join(keys) + b"\r\n"
        try:
            c.send(bytes(data))
            for op, keys in batch:
                if op == "set":
                    check_set(c, keys[0], st, acked)
                else:
                    check_get(c, keys, st)
            if marked:
                st.c["acked_after_mark"] += st.c["acked"] - acked0
                st.c["hits_after_mark"] += st.c["hits"] - hits0
        except socket.timeout:
            st.c["timeouts"] += 1
            c.close()
            c = None
        except (OSError, ProtocolError) as e:
            st.c["conn_drops"] += 1
            if len(st.examples) < 5:
                st.examples.append("connection %d: %s" % (conn_id, e))
            c.close()
            c = None
    if c:
        c.close()
    stats.add(st)
    with lock:
        for k in acked:
            acked_out.write(k.decode() + "\n")


def check_set(c, key, st, acked):
    st.c["sets"] += 1
    line = c.readline()
    if line == b"STORED":
        st.c["acked"] += 1
        acked.append(key)
    elif line.startswith(b"SERVER_ERROR"):
        st.c["server_errors"] += 1
        st.c["not_acked"] += 1
    else:
        st.c["not_acked"] += 1
        st.c["other"] += 1
        if len(st.examples) < 5:
            st.examples.append("set %s: %r" % (key.decode(), line))


def check_get(c, keys, st):
    st.c["gets"] += len(keys)
    # the reply: VALUE blocks in request order (a subset), then END, or
    # one error line instead
    want = list(keys)
    while True:
        line = c.readline()
        if line == b"END":
            break
        if line.startswith(b"SERVER_ERROR"):
            st.c["server_errors"] += 1
            return
        parts = line.split()
        if len(parts) < 4 or parts[0] != b"VALUE":
            st.c["other"] += 1
            if len(st.examples) < 5:
                st.examples.append("get %s: %r" % (keys, line))
            raise ProtocolError("unexpected reply line %r" % line)
        data = c.readexact(int(parts[3]) + 2)[:-2]
        key = parts[1]
        if key not in want:
            st.c["wrong"] += 1
            st.examples.append("get %s: unexpected key %r" % (keys, key))
            continue
        # keys come back in request order: the ones skipped were misses
        idx = want.index(key)
        st.c["misses"] += idx
        want = want[idx + 1:]
        if data == value_of(key):
            st.c["hits"] += 1
        else:
            st.c["wrong"] += 1
            st.examples.append("get %s: wrong value %r" % (key.decode(), data[:60]))
    st.c["misses"] += len(want)


def run(a):
    stats = Stats()
    lock = threading.Lock()
    stop_at = time.monotonic() + a.seconds
    with open(a.acked, "w") as out:
        ts = [threading.Thread(target=worker,
                               args=(a.server, i, a.depth, a.pause_ms / 1000.0,
                                     a.mark_file, stop_at, stats, out,
                                     lock, a.seed + i, a.prefix.encode()))
              for i in range(a.conns)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    for k in Stats.NAMES:
        print("%s %d" % (k, stats.c[k]))
    for e in stats.examples[:10]:
        print("# example: %s" % e)
    return 1 if stats.c["wrong"] else 0


def verify(a):
    with open(a.acked) as f:
        keys = [line.strip().encode() for line in f if line.strip()]
    c = Client(a.server, timeout=5)
    present = missing = wrong = 0
    examples = []
    for i in range(0, len(keys), 100):
        chunk = keys[i:i + 100]
        c.send(b"get " + b" ".join(chunk) + b"\r\n")
        got = {k: v for k, _, v, _ in c.read_values()}
        for k in chunk:
            if k not in got:
                missing += 1
                if len(examples) < 5:
                    examples.append("missing %s" % k.decode())
            elif got[k] != value_of(k):
                wrong += 1
                examples.append("wrong %s: %r" % (k.decode(), got[k][:60]))
            else:
                present += 1
    print("checked %d\npresent %d\nmissing %d\nwrong %d"
          % (len(keys), present, missing, wrong))
    for e in examples[:10]:
        print("# example: %s" % e)
    return 1 if missing or wrong else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("run", "verify"))
    ap.add_argument("server")
    ap.add_argument("--acked", required=True)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prefix", default="ld", help="key prefix (run)")
    ap.add_argument("--mark-file",
                    help="count acks and hits of batches sent once it exists")
    ap.add_argument("--pause-ms", type=float, default=5,
                    help="pause between a connection's batches")
    a = ap.parse_args()
    try:
        parse_hostport(a.server)
        return run(a) if a.mode == "run" else verify(a)
    except (OSError, ValueError, ProtocolError) as e:
        print("mcload: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
