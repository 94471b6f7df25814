#!/usr/bin/env python3
"""Differential protocol fuzzer: random request streams, two servers, same bytes.

  mcfuzz.py [--seed N] [--secs S | --steps N] [--transcript FILE]
            [--no-shrink] [--replicas HOST:PORT,HOST:PORT...]
            [--modes [late][,halfclose]]
            REFERENCE:PORT CANDIDATE:PORT

Generates, from a grammar of memcached's text and meta protocols, random
steps (one to a dozen requests each) of valid, nearly valid and broken
requests: every command with its arguments right, missing, doubled or
garbled, keys of edge lengths (250, 251, UTF-8, base64 for meta "b"), meta
flags in any order and number (quiet "q" included, closed or not by "mn"),
noreply in odd places, data blocks of the wrong length, NUL and other
binary bytes inside lines, long lines.  Each step is sent to REFERENCE (a
memcached) and to CANDIDATE (kmagentd in front of memcacheds) pipelined in
one write or cut at random byte boundaries, and the replies, delimited as
tests/tools/mcdiff.py delimits them (a "version" sentinel; "<closed>" when
the server hangs up), must be byte for byte equal after mcdiff's
normalisation of cas values.  --modes (default "late") makes some steps
hostile in how they are sent: read late (the client reads nothing for
300 ms after sending), half-closed (shutdown(SHUT_WR) after the step, no
sentinel: each server must answer what it was sent, then close).  With --replicas (the memcacheds behind
CANDIDATE, every key on each of them), after every step each key the step
names is read directly from each replica (mg v f t): value and flags must be
equal on all of them, and TTLs within a second (a write lands on each
replica at its own time).  Checked again 200 ms later before it counts (a
noreply write may still be on its way to a replica when the step's
sentinel is answered).  A read changes what later reads see (mg's h flag,
the W token of a stale item): REFERENCE is read the same way each time, so
that its state and the replicas' stay alike.

Seeded and reproducible: the seed is printed first, and --seed replays the
same steps.  On the first mismatch it prints the step, both replies, and,
unless --no-shrink, a minimal transcript: the shortest subsequence of the
steps so far (found by delta debugging, each trial after "flush_all" on a
fresh connection) that still makes the two servers differ.  Exit 0 when
every step matched, 1 on a mismatch, 2 on a usage or connection error.

Not generated, differences inherent to a proxy (docs/operations.md,
"Differences from memcached"): stats, version (the sentinel), me (memcached's
debug view of one server), commands that act on one server (lru_crawler,
watch, lru, slabs, cache_memlimit, extstore, refresh_certs...), the binary
protocol (the first byte of a connection 0x80: memcached serves it,
kmagentd refuses it), a line ending in "HTTP/..." after a non-get request
in the same write (memcached drops the replies it has not flushed yet when
it closes on it), TTLs that run out during the run and readings of them
(mg t, l), flush_all with a delay, and unterminated lines between 2 and 64
kB (memcached closes or not depending on how the bytes arrived).  Three
memcached 1.6.18 behaviours are kept out of the comparison: a get-like
request naming a key over 250 bytes is sent alone (memcached drops the
replies it has not sent yet), a step ends at "quit", and while both servers
wait for the rest of a data block, memcached's reply need only be the start
of kmagentd's (memcached holds the replies it has made until it reads a
command again).
"""

import argparse
import base64
import os
import random
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import parse_hostport  # noqa: E402
from mcdiff import SENTINEL, Target  # noqa: E402

KEY250 = b"K" * 250
KEY251 = b"L" * 251


class Gen:
    """The grammar: each method returns bytes of one request (or junk)."""

    def __init__(self, rnd):
        self.r = rnd
        self.keys = [b"k%d" % i for i in range(8)] + [
            KEY250, "键".encode(), b"a:b|c", b"n0", b"n1", b"q", b"noreply"]

    # ---- atoms ----

    def pick(self, *xs):
        return self.r.choice(xs)

    def chance(self, p):
        return self.r.random() < p

    def key(self):
        r = self.r.random()
        if r < 0.03:
            return KEY251
        if r < 0.05:
            return b""
        if r < 0.08:
            return self.junk_token()
        return self.r.choice(self.keys)

    def junk_token(self):
        alphabet = b"abcXYZ019-_!@#$%^&*()[]{}\x00\x01\x7f\xff\t\r"
        n = self.r.randint(1, 12)
        return bytes(self.r.choice(alphabet) for _ in range(n)).replace(b" ", b"")

    def number(self):
        return self.pick(b"0", b"1", b"5", b"42", b"-1", b"4294967295",
                         b"4294967296", b"18446744073709551615",
                         b"18446744073709551616", b"abc", b"1x", b"", b"007",
                         b"2147483647", b"-2147483648", b"1\t")

    def exptime(self):
        # no TTL that runs out while the fuzzer runs (inherent timing)
        return self.pick(b"0", b"0", b"0", b"-1", b"1000", b"2592001", b"x",
                         b"99999999999")

    def value(self):
        r = self.r.random()
        if r < 0.1:
            return b""
        if r < 0.2:
            return bytes(self.r.randrange(256) for _ in range(self.r.randint(1, 40)))
        if r < 0.25:
            return b"\r\n" * self.r.randint(1, 4)
        if r < 0.28:
            # over a datagram, under memcached's 2048-byte line: a refused
            # command's block is read as a line, and a longer one is
            # refused or not by both servers depending on how it arrived
            return b"v" * self.r.randint(1400, 2040)
        if r < 0.4:
            return b"%d" % self.r.randint(0, 1 << 20)
        return b"val-" + b"x" * self.r.randint(0, 30)

    def sep(self):
        return b" " if self.chance(0.9) else self.pick(b"  ", b"   ")

    def line(self, toks):
        out = self.sep().join(t for t in toks if t is not None)
        if self.chance(0.05):
            out = b" " + out
        if self.chance(0.05):
            out += b" "
        return out + self.eol()

    def eol(self):
        return b"\r\n" if self.chance(0.93) else self.pick(b"\n", b"\r\r\n")

    def maybe_noreply(self, p=0.2):
        return b"noreply" if self.chance(p) else None

    def data_block(self, v, declared):
        if self.chance(0.06):  # a block of another length than declared
            v = v + b"z" * self.r.randint(1, 3) if self.chance(0.5) else v[:-1]
        end = b"\r\n" if self.chance(0.96) else self.pick(b"\n", b"xx", b"")
        return v + end

    # ---- text commands ----

    def storage(self):
        cmd = self.pick(b"set", b"set", b"add", b"replace", b"append",
                        b"prepend", b"cas")
        v = self.value()
        vlen = b"%d" % len(v) if self.chance(0.92) else self.number()
        key = self.key()
        toks = [cmd, key, self.number() if self.chance(0.1) else
                self.pick(b"0", b"0", b"7", b"4294967295"), self.exptime(),
                vlen]
        if cmd == b"cas":
            toks.append(cas_ref(key) if self.chance(0.8) else self.number())
        if self.chance(0.05):
            toks.append(self.junk_token())
        toks.append(self.maybe_noreply())
        if self.chance(0.04):
            del toks[self.r.randrange(1, len(toks))]
        return self.line(toks) + self.data_block(v, vlen)

    def big_write(self):
        """A well-formed write of a value over memcached's 2048-byte line
        (never refused, so its block is never read as a line), exptimes
        that overflow 32 bits (memcached truncates them)."""
        cmd = self.pick(b"set", b"add", b"replace", b"append", b"prepend")
        v = b"w" * self.r.randint(2049, 8000)
        exp = self.pick(b"0", b"4294967296", b"4294967295", b"-4294967296")
        toks = [cmd, self.r.choice(self.keys), self.pick(b"0", b"3"), exp,
                b"%d" % len(v), self.maybe_noreply(0.1)]
        return self.line(toks) + v + b"\r\n"

    def retrieval(self):
        cmd = self.pick(b"get", b"get", b"gets", b"gat", b"gats", b"bget")
        toks = [cmd]
        if cmd in (b"gat", b"gats"):
            toks.append(self.exptime())
        n = self.r.choice([0, 1, 1, 1, 2, 3, 5, 10]) if not self.chance(0.02) \
            else 300
        toks += [self.key() for _ in range(n)]
        return self.line(toks)

    def other_text(self):
        k = self.r.random()
        if k < 0.3:
            toks = [b"delete", self.key()]
            if self.chance(0.15):
                toks.append(self.pick(b"0", b"5", b"x"))
            toks.append(self.maybe_noreply())
        elif k < 0.6:
            toks = [self.pick(b"incr", b"decr"), self.key(), self.number(),
                    self.maybe_noreply()]
        elif k < 0.8:
            toks = [b"touch", self.key(), self.exptime(), self.maybe_noreply()]
        elif k < 0.87:
            # no delay: flush_all with one is a matter of timing
            toks = [b"flush_all", self.pick(None, b"0", b"noreply", b"x")]
            if self.chance(0.3):
                toks.append(b"noreply")
        elif k < 0.92:
            toks = [b"verbosity", self.pick(None, b"1", b"noreply", b"x"),
                    self.maybe_noreply()]
        elif k < 0.95:
            toks = [b"shutdown", self.pick(None, b"graceful")]
        else:
            toks = [self.pick(b"GET", b"bogus", b"m", b"mz", b"mgx", b"x",
                              b"gets2", b"sett", b"incrx"), self.key()]
        if self.chance(0.04):
            del toks[self.r.randrange(1, len(toks))]
        return self.line(toks)

    # ---- meta commands ----

    def meta_flags(self, cmd):
        common = [b"k", b"O%d" % self.r.randint(0, 999), b"q", b"b"]
        per = {
            b"mg": [b"v", b"f", b"s", b"c", b"h", b"u", b"T1000", b"N1000",
                    b"E5", b"R30"],
            b"ms": [b"F7", b"T0", b"T1000", b"C{cas}", b"I", b"c", b"MS",
                    b"ME", b"MA", b"MP", b"MR", b"MX", b"M"],
            b"md": [b"C{cas}", b"I", b"T1000", b"x"],
            b"ma": [b"N0", b"J13", b"D5", b"MI", b"MD", b"M+", b"MQ",
                    b"C{cas}", b"v", b"c", b"T1000", b"Dx"],
        }[cmd]
        pool = common + per
        n = self.r.choice([0, 1, 1, 2, 2, 3, 4, 6]) if not self.chance(0.04) \
            else self.r.randint(15, 20)
        flags = [self.r.choice(pool) for _ in range(n)]
        if self.chance(0.05):
            flags.append(self.pick(b"O" + b"9" * 40, b"!", b"\x80",
                                   self.junk_token(), b"qq"))
        return flags

    def meta_key(self, flags):
        if b"b" in flags:
            raw = self.r.choice(self.keys[:8])
            return base64.b64encode(raw) if self.chance(0.9) else b"!!!!"
        return self.key()

    def meta(self):
        cmd = self.pick(b"mg", b"mg", b"ms", b"md", b"ma", b"mn")
        if cmd == b"mn":
            return self.line([b"mn", self.pick(None, None, b"x")])
        flags = self.meta_flags(cmd)
        key = self.meta_key(flags)
        flags = [cas_ref(key, b"C") if f == b"C{cas}" else f for f in flags]
        toks = [cmd, key]
        if cmd == b"ms":
            v = self.value()
            vlen = b"%d" % len(v) if self.chance(0.92) else self.number()
            toks.append(vlen)
            line = self.line(toks + flags)
            if self.chance(0.03):
                return line  # no data block at all
            return line + self.data_block(v, vlen)
        return self.line(toks + flags)

    # ---- junk ----

    def junk(self):
        r = self.r.random()
        if r < 0.3:
            return self.eol()
        if r < 0.6:
            n = self.r.randint(1, 60)
            b = bytes(self.r.randrange(256) for _ in range(n))
            b = b.replace(b"\n", b"")
            if b[:1] == b"\x80":
                b = b"x" + b
            return b + b"\r\n"
        if r < 0.8:
            return b"x" * self.r.randint(100, 1900) + b"\r\n"
        if r < 0.9:
            return b" " * self.r.randint(1, 200) + b"\r\n"
        return b"quit\r\n"

    def request(self):
        r = self.r.random()
        if r < 0.02:
            return self.big_write()
        if r < 0.3:
            return self.storage()
        if r < 0.5:
            return self.retrieval()
        if r < 0.63:
            return self.other_text()
        if r < 0.93:
            return self.meta()
        return self.junk()

    def step(self):
        """A list of requests, sent in one write or cut anywhere."""
        n = self.r.choice([1, 1, 1, 2, 3, 4, 6, 12])
        reqs = [fix_inherent(self.request()) for _ in range(n)]
        if self.chance(0.15):  # a quiet batch, closed as clients close them
            reqs.append(b"mn\r\n")
        # memcached drops the replies it still holds when a get-like
        # request names a key over 250 bytes: such a get goes alone
        for q in reqs:
            if long_key_get(q):
                return [q]
        # the server hangs up at quit: what would follow is not sent, and
        # the step goes in one write (a write after the close would fail
        # on one server and not the other, as timing has it)
        for i, q in enumerate(reqs):
            if q.split(b"\n", 1)[0].strip() == b"quit":
                return reqs[:i + 1]
        return reqs


RETRIEVALS = (b"get", b"gets", b"gat", b"gats", b"bget")


def long_key_get(q):
    """A get-like line with a key over 250 bytes, as memcached reads it."""
    line = q.split(b"\n", 1)[0]
    if line.endswith(b"\r") and len(line) > 1:
        line = line[:-1]
    toks = [t for t in line.split(b"\x00", 1)[0].split(b" ") if t]
    return bool(toks) and toks[0] in RETRIEVALS and \
        any(len(t) > 250 for t in toks[1:])

# "{cas#N}": the cas value each server last gave for CAS_KEYS[N].  A cas
# unique is one server's: through a proxy in front of several, a value read
# for one key may well be another key's unique on another server, where a
# single memcached's never is.  So a cas is only ever used with its key.
CAS_KEYS = []


def cas_ref(key, prefix=b""):
    CAS_KEYS.append(key)
    return prefix + b"{cas#%d}" % (len(CAS_KEYS) - 1)


class FuzzTarget(Target):
    """mcdiff's Target, remembering the last cas value of each key."""

    def __init__(self, name, hostport):
        super().__init__(name, hostport)
        self.key_cas = {}

    def cas_name(self, key, cas):
        self.key_cas[key] = cas
        return super().cas_name(key, cas)

    def fill_cas(self, data):
        def one(m):
            # no value read yet: one no server has handed out
            return self.key_cas.get(CAS_KEYS[int(m.group(1))], b"987654321")
        return re.sub(rb"\{cas#(\d+)\}", one, data)


def fix_inherent(data):
    """Remove what the docstring lists as inherent differences."""
    out = []
    for line in data.split(b"\n"):
        toks = line.replace(b"\r", b" ").split(b" ")
        toks = [t for t in toks if t]
        if toks and toks[-1].startswith(b"HTTP/"):
            line = line.replace(b"HTTP/", b"HTTX/")
        out.append(line)
    data = b"\n".join(out)
    if data[:1] == b"\x80":
        data = b"x" + data
    return data


TIMEOUT = b"<timeout: no VERSION line>"


def same(r, c):
    """Equal replies.  One allowance: memcached waiting for the rest of a
    data block holds the replies it has made (it sends them only once it
    reads a command again), kmagentd sends them; when both wait, memcached's
    must be the start of kmagentd's."""
    if r == c:
        return True
    return r.endswith(TIMEOUT) and c.endswith(TIMEOUT) and \
        c.startswith(r[:-len(TIMEOUT)])


def touched(keys, data):
    """The keys of the grammar that data names, plainly or in base64."""
    return [k for k in keys if k in data or base64.b64encode(k) in data]


class Replicas:
    """The memcacheds behind the candidate, read directly."""

    def __init__(self, hostports, reference):
        self.addrs = [parse_hostport(h) for h in hostports]
        self.ref = parse_hostport(reference)

    def read(self, addr, keys):
        """{key: (value, flags, ttl) or None} on one replica."""
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(b"".join(b"mg %s v f t\r\n" % k for k in keys) +
                      b"mn\r\n")
            buf = b""
            while not buf.endswith(b"MN\r\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise OSError("replica %s:%d closed" % addr)
                buf += chunk
        out = {}
        for k in keys:
            line, buf = buf.split(b"\r\n", 1)
            if line == b"EN":
                out[k] = None
                continue
            toks = line.split(b" ")
            if toks[0] != b"VA":
                out[k] = line  # an error: shown as is
                continue
            n = int(toks[1])
            fl = {t[:1]: t[1:] for t in toks[2:]}
            out[k] = (buf[:n], fl.get(b"f"), int(fl.get(b"t", b"-1")))
            buf = buf[n + 2:]
        return out

    def diff_once(self, keys):
        views = [self.read(a, keys) for a in self.addrs]
        self.read(self.ref, keys)  # the same side effects there
        bad = []
        for k in keys:
            vs = [v[k] for v in views]
            a = vs[0]
            for b in vs[1:]:
                if a is None or b is None or not isinstance(a, tuple) or \
                        not isinstance(b, tuple):
                    ok = a == b
                else:
                    ok = a[:2] == b[:2] and (a[2] == b[2] or (
                        a[2] >= 0 and b[2] >= 0 and abs(a[2] - b[2]) <= 1))
                if not ok:
                    bad.append((k, vs))
                    break
        return bad

    def diff(self, keys):
        """[(key, [view of each replica])] that differ, twice in a row."""
        if not keys or not self.diff_once(keys):
            return []
        time.sleep(0.2)
        return self.diff_once(keys)


def show_diff(bad):
    return "; ".join("%r: %s" % (k, " vs ".join(
        show(v if v is None or not isinstance(v, tuple) else
             (v[0] if len(v[0]) < 40 else v[0][:40] + b"...(%d)" % len(v[0]),
              v[1], v[2]), 200) for v in vs)) for k, vs in bad)


class Runner:
    def __init__(self, ref, cand, rnd, replicas=None, keys=(), modes=()):
        self.ref, self.cand, self.r = ref, cand, rnd
        self.replicas, self.keys, self.modes = replicas, keys, modes

    def replicas_differ(self, data):
        if not self.replicas:
            return []
        return self.replicas.diff(touched(self.keys, data))

    def send(self, t, data, cuts, mode=""):
        if t.sock is None:
            t.connect()
        data = t.fill_cas(data)
        end = b"" if mode == "halfclose" else SENTINEL
        try:
            if not cuts:
                t.sock.sendall(data + end)
            else:
                prev = 0
                for c in cuts + [len(data)]:
                    c = min(c, len(data))
                    if c > prev:
                        t.sock.sendall(data[prev:c])
                        time.sleep(0.001)
                    prev = c
                t.sock.sendall(end)
            if mode == "halfclose":
                t.sock.shutdown(socket.SHUT_WR)
        except OSError:
            t.drop()
            return b"<send failed>"  # reset or broken pipe, as timing has it
        return None

    def exchange(self, data, cuts, wait, mode=""):
        """Both targets, the same bytes and cuts: their normalised replies."""
        out = []
        for t in (self.ref, self.cand):
            failed = self.send(t, data, cuts, mode)
            if failed is None and mode == "late":
                time.sleep(0.3)
            # half-closed: read until the server closes
            raw = failed if failed is not None else t.read_reply(wait)
            if mode == "halfclose":
                t.drop()
            out.append(t.normalize(raw))
        return out

    def mode_for(self, data):
        if data.endswith(b"quit\r\n") or not self.modes or \
                self.r.random() >= 0.08:
            return ""
        return self.r.choice(self.modes)

    def cuts_for(self, data):
        if self.r.random() < 0.6 or len(data) < 2 or \
                data.endswith(b"quit\r\n"):
            return []
        n = self.r.randint(1, min(8, len(data) - 1))
        return sorted(self.r.sample(range(1, len(data)), n))

    def reset(self):
        for t in (self.ref, self.cand):
            t.drop()
            t.connect()
            t.last_cas = b"0"
            t.cas_names = {}
            t.key_cas = {}
            t.sock.sendall(b"flush_all\r\n" + SENTINEL)
            t.read_reply(5)
            t.drop()

    def replay(self, steps):
        """Does this subsequence still make the servers differ?"""
        self.reset()
        for reqs, cuts, wait, mode in steps:
            a, b = self.exchange(b"".join(reqs), cuts, wait, mode)
            if not same(a, b) or self.replicas_differ(b"".join(reqs)):
                return True
        return False


def ddmin(items, differs, budget):
    """Delta debugging (Zeller): a small subsequence that still differs."""
    n = 2
    while len(items) >= 2 and budget[0] > 0:
        size = max(1, len(items) // n)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        reduced = False
        for i in range(len(chunks)):
            rest = [s for j, c in enumerate(chunks) if j != i for s in c]
            budget[0] -= 1
            if rest and differs(rest):
                items, n, reduced = rest, max(n - 1, 2), True
                break
            if budget[0] <= 0:
                break
        if not reduced:
            if n >= len(items):
                break
            n = min(len(items), n * 2)
    return items


def shrink(runner, history, budget=200):
    """The fewest steps, then the fewest requests of each, still differing."""
    budget = [budget]
    steps = ddmin(history, runner.replay, budget)
    # requests: (step, request) pairs, each step sent in one write uncut
    flat = [(i, q) for i, (reqs, *_) in enumerate(steps) for q in reqs]

    def regroup(pairs):
        out = []
        for i, q in pairs:
            if out and out[-1][0] == i:
                out[-1][1].append(q)
            else:
                out.append((i, [q]))
        return [(reqs, [], steps[i][2], steps[i][3]) for i, reqs in out]

    if runner.replay(regroup(flat)):
        flat = ddmin(flat, lambda p: runner.replay(regroup(p)), budget)
        steps = regroup(flat)
    return steps


def show(b, limit=1500):
    r = repr(b)
    return r if len(r) <= limit else r[:limit] + "... (%d bytes)" % len(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int)
    ap.add_argument("--secs", type=float, default=30)
    ap.add_argument("--steps", type=int, help="this many steps, not --secs")
    ap.add_argument("--transcript", help="every step and both replies here")
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--replicas", help="HOST:PORT,... behind CANDIDATE")
    ap.add_argument("--modes", default="late",
                    help="hostile ways to send some steps: late,halfclose")
    ap.add_argument("reference")
    ap.add_argument("candidate")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 31)
    print("# mcfuzz seed %d (replay: --seed %d%s)" %
          (seed, seed, " --steps %d" % a.steps if a.steps else ""))
    rnd = random.Random(seed)
    gen = Gen(rnd)
    ref = FuzzTarget("reference", a.reference)
    cand = FuzzTarget("candidate", a.candidate)
    try:
        ref.connect()
        cand.connect()
    except OSError as e:
        print("mcfuzz: cannot connect: %s" % e, file=sys.stderr)
        return 2
    replicas = Replicas(a.replicas.split(","), a.reference) \
        if a.replicas else None
    modes = [m for m in a.modes.split(",") if m]
    if any(m not in ("late", "halfclose") for m in modes):
        print("mcfuzz: --modes: late, halfclose", file=sys.stderr)
        return 2
    runner = Runner(ref, cand, rnd, replicas, gen.keys, modes)
    runner.reset()
    tr = open(a.transcript, "w") if a.transcript else None
    done, t0, history = 0, time.monotonic(), []
    while True:
        if a.steps is not None and done >= a.steps:
            break
        if a.steps is None and time.monotonic() - t0 >= a.secs:
            break
        reqs = gen.step()
        data = b"".join(reqs)
        cuts = runner.cuts_for(data)
        mode = runner.mode_for(data)
        wait = 3 if len(data) < 100000 else 8
        r, c = runner.exchange(data, cuts, wait, mode)
        done += 1
        history.append((reqs, cuts, wait, mode))
        if tr:
            tr.write("== %d cuts=%s %s\n>> %r\nreference: %r\ncandidate: %r\n"
                     % (done, cuts, mode, data, r, c))
        bad = runner.replicas_differ(data) if same(r, c) else None
        if bad == []:
            continue
        if bad:
            print("not ok - step %d: replicas differ (seed %d)" % (done, seed))
            print("#   replicas : %s" % show_diff(bad))
        else:
            print("not ok - step %d differs (seed %d)" % (done, seed))
        print("#   request  : %s" % show(data))
        print("#   cut at   : %s%s" % (cuts, ", " + mode if mode else ""))
        print("#   reference: %s" % show(r))
        print("#   candidate: %s" % show(c))
        if not a.no_shrink:
            small = shrink(runner, history)
            print("# minimal transcript (%d of %d steps, run after "
                  "flush_all on a fresh connection):" % (len(small),
                                                         len(history)))
            runner.reset()
            for i, (reqs, cu, w, mo) in enumerate(small, 1):
                d = b"".join(reqs)
                x, y = runner.exchange(d, cu, w, mo)
                print("#  %d >> %s%s%s" % (i, show(d, 600),
                                          " cut at %s" % cu if cu else "",
                                          " (%s)" % mo if mo else ""))
                print("#     reference: %s" % show(x, 600))
                print("#     candidate: %s" % show(y, 600))
                bad = runner.replicas_differ(d)
                if bad:
                    print("#     replicas : %s" % show_diff(bad))
        if tr:
            tr.close()
        return 1
    if tr:
        tr.close()
    print("ok - %d random steps, every reply equal%s (seed %d, %.0f s)" %
          (done, ", replicas equal after each" if replicas else "", seed,
           time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
