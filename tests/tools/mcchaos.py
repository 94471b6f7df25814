#!/usr/bin/env python3
"""kmagent's randomized sequence tester: a workload, a nemesis, a checker.

  mcchaos.py --lab-id ID --lab-dir DIR --bpffs DIR [options]
  mcchaos.py --plan-only --seed N [options]      the nemesis schedule only
  mcchaos.py --recheck DUMP [options]            check a --dump history again

Run inside the client namespace of the lab that tests/integration/chaos.sh
builds (memcached hosts m1..m4, kmagentd hosts pa and pb, client c).  It
starts memcached and kmagentd itself (by PID, through `ip netns exec`), so
that the nemesis can kill, pause and restart them; it ends every process it
started.  docs/operations.md, "What the chaos test checks", describes the
model and the invariants.

The workload: client threads doing get, gets+cas, set, add, delete and incr
on --keys tracked keys, through kmagentd over TCP and over UDP (the kernel
path), each operation recorded with its invocation and completion time and
its result.  Every value is unique and names its key and writer:
((key * 100 + client) * 10^7 + counter) * 1000, the last three digits
left for incr.  The nemesis draws a schedule of faults and operator actions
from --seed before the run starts: the same seed and classes give the same
schedule and the same operations (timing differs).  The checker holds the
history to the model afterwards; on a violation it prints the key's
operations and the nemesis events around it and exits 1.

Exit status: 0 no violation, 1 violations (or a process crashed), 2 usage or
lab error.
"""

import argparse
import bisect
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import Client, ProtocolError  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INF = float("inf")

BACKENDS = ["m1", "m2", "m3", "m4"]
ADDR = {"m1": "198.18.0.1", "m2": "198.18.0.2", "m3": "198.18.0.3",
        "m4": "198.18.0.4", "pa": "198.18.0.11", "pb": "198.18.0.12",
        "c": "198.18.0.20"}
MC_PORT, KM_PORT = 11211, 11210

NEMESES = ["mc-kill", "mc-pause", "km-term", "km-kill", "reload-add",
           "reload-remove", "reload-replicas", "drain", "drain-writes",
           "resync", "forget", "partition", "loss"]

# ---- values ---------------------------------------------------------------

INCR_ROOM = 1000


def make_value(key, client, counter):
    return ((key * 100 + client) * 10**7 + counter) * INCR_ROOM


def value_key(v):
    return v // INCR_ROOM // 10**7 // 100


def keyname(k):
    return "ck%02d" % k


# ---- the lab --------------------------------------------------------------

class Lab:
    """Processes and network faults of the lab, by PID and by namespace."""

    def __init__(self, a):
        self.a = a
        self.procs = {}          # label -> Popen
        self.cmds = {}           # label -> (host, argv)
        self.lock = threading.Lock()
        self.drop_objs = {}
        self.tc_on = set()
        self.kmagentd = os.path.join(ROOT, a.kmagentd)
        self.kmagentctl = os.path.join(ROOT, "build", "kmagentctl")

    def ns(self, host):
        return "km%s%s" % (self.a.lab_id, host)

    def in_ns(self, host, argv):
        return ["ip", "netns", "exec", self.ns(host)] + argv

    def log(self, label):
        return os.path.join(self.a.lab_dir, "chaos-%s.log" % label)

    def spawn(self, label, host, argv):
        with open(self.log(label), "ab") as log:
            p = subprocess.Popen(self.in_ns(host, argv), stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT)
        with self.lock:
            self.procs[label] = p
            self.cmds[label] = (host, argv)
        return p

    def answers(self, addr, port, timeout=0.3):
        try:
            s = socket.create_connection((addr, port), timeout=timeout)
            s.settimeout(timeout)
            s.sendall(b"version\r\n")
            ok = s.recv(100).startswith(b"VERSION")
            s.close()
            return ok
        except OSError:
            return False

    def wait_answer(self, label, addr, port, secs=10.0):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            if self.answers(addr, port):
                return True
            p = self.procs.get(label)
            if p is not None and p.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def start_memcached(self, b):
        # CHAOS_MC_ARGS="-vv": every command each memcached saw, in its
        # log, to follow a failing seed's key from replica to replica
        self.spawn("mc-" + b, b, ["memcached", "-u", "root", "-p", str(MC_PORT),
                                  "-U", str(MC_PORT), "-l", ADDR[b], "-t", "1",
                                  "-m", "64"] +
                   os.environ.get("CHAOS_MC_ARGS", "").split())
        return self.wait_answer("mc-" + b, ADDR[b], MC_PORT)

    def conf_path(self, p):
        return os.path.join(self.a.lab_dir, "chaos-%s.conf" % p)

    def ctl_path(self, p):
        return os.path.join(self.a.lab_dir, "chaos-%s.ctl" % p)

    def write_conf(self, p, members, replicas):
        tmp = self.conf_path(p) + ".tmp"
        with open(tmp, "w") as f:
            f.write("# mcchaos\n")
            for b in members:
                f.write("backend %s:%d\n" % (ADDR[b], MC_PORT))
            f.write("replicas %d\n" % replicas)
        os.rename(tmp, self.conf_path(p))

    def start_kmagentd(self, p):
        argv = [self.kmagentd, "-D", "-c", self.conf_path(p), "-l", ADDR[p],
                "-p", str(KM_PORT), "--ctl", self.ctl_path(p), "--name", p,
                "-t", "2", "--probe-interval", "200", "--probe-timeout", "200",
                "--timeout", "300", "-v"] + self.a.km_arg
        # as packaged (/var/lib/kmagent): the journal outlives a restart
        if not self.a.no_state_dir:
            d = os.path.join(self.a.lab_dir, "chaos-state-%s" % p)
            os.makedirs(d, exist_ok=True)
            argv += ["--state-dir", d]
        if self.a.udp_frac > 0:
            argv += ["-I", "eth0", "--pin-root",
                     os.path.join(self.a.bpffs, p)]
        self.spawn("km-" + p, p, argv)
        return self.wait_answer("km-" + p, ADDR[p], KM_PORT, 15.0)

    def restart(self, label):
        host, argv = self.cmds[label]
        self.spawn(label, host, argv)
        addr, port = (ADDR[host], MC_PORT if label.startswith("mc-") else KM_PORT)
        return self.wait_answer(label, addr, port, 15.0)

    def signal(self, label, sig):
        p = self.procs.get(label)
        if p is None or p.poll() is not None:
            return False
        os.kill(p.pid, sig)
        return True

    def reap(self, label, secs=10.0):
        """Wait for the process to exit; kill -9 it after SECS."""
        p = self.procs.get(label)
        if p is None:
            return
        try:
            p.wait(timeout=secs)
        except subprocess.TimeoutExpired:
            print("# %s did not exit within %.0f s: killed" % (label, secs),
                  flush=True)
            os.kill(p.pid, signal.SIGKILL)
            p.wait()

    def why_down(self, label):
        """Its exit status, or where it waits if it runs but does not
        answer: what a failed start leaves to go on."""
        p = self.procs.get(label)
        if p is None:
            return "never started"
        if p.poll() is not None:
            return "exit status %d" % p.returncode
        waits = []
        try:
            for t in sorted(os.listdir("/proc/%d/task" % p.pid), key=int):
                with open("/proc/%d/task/%s/wchan" % (p.pid, t)) as f:
                    wchan = f.read().strip()
                with open("/proc/%d/task/%s/stat" % (p.pid, t)) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                waits.append("%s %s %s" % (t, state, wchan))
        except OSError as e:
            waits.append("/proc unreadable: %s" % e)
        return "running, not answering; its threads: " + ", ".join(waits)

    def alive(self, label):
        p = self.procs.get(label)
        return p is not None and p.poll() is None

    def ctl(self, p, *args):
        try:
            r = subprocess.run([self.kmagentctl, "-s", self.ctl_path(p)] +
                               list(args), capture_output=True, timeout=20)
            return r.returncode, (r.stdout + r.stderr).decode(errors="replace")
        except subprocess.TimeoutExpired:
            return -1, "timeout"

    def ring(self, p, key):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        try:
            s.connect(self.ctl_path(p))
            s.sendall(b"ring %s\n" % key.encode())
            buf = b""
            while not buf.endswith(b"\n"):
                r = s.recv(65536)
                if not r:
                    break
                buf += r
            # a leaving replica is purged when the handoff ends: it does
            # not keep what it took
            return [r["name"].split(":")[0]
                    for r in json.loads(buf)["replicas"]
                    if not r.get("leaving")]
        finally:
            s.close()

    # -- faults by tc BPF filters: no netem or iptables on this kernel --

    def drop_obj(self, pct, peer):
        k = (pct, peer)
        if k in self.drop_objs:
            return self.drop_objs[k]
        src = os.path.join(self.a.lab_dir, "chaos_drop.c")
        if not os.path.exists(src):
            with open(src, "w") as f:
                f.write(DROP_C)
        obj = os.path.join(self.a.lab_dir, "chaos_drop_%d_%s.o" % (pct, peer or "all"))
        nbo = struct.unpack("=I", socket.inet_aton(ADDR[peer]))[0] if peer else 0
        subprocess.run(["clang", "-O2", "-target", "bpf",
                        "-I/usr/include/%s-linux-gnu" % os.uname().machine,
                        "-DPCT=%d" % pct, "-DPEER=%du" % nbo, "-c", src, "-o", obj],
                       check=True)
        self.drop_objs[k] = obj
        return obj

    def tc_drop(self, b, pct, peer=None):
        """Drop PCT% of b's packets (only those to/from PEER if given)."""
        obj = self.drop_obj(pct, peer)
        cmds = [["tc", "qdisc", "add", "dev", "eth0", "clsact"],
                ["tc", "filter", "add", "dev", "eth0", "ingress", "bpf", "da",
                 "obj", obj, "sec", "tc/in"],
                ["tc", "filter", "add", "dev", "eth0", "egress", "bpf", "da",
                 "obj", obj, "sec", "tc/out"]]
        self.tc_on.add(b)
        for c in cmds:
            subprocess.run(self.in_ns(b, c), check=True, capture_output=True)

    def tc_heal(self, b):
        subprocess.run(self.in_ns(b, ["tc", "qdisc", "del", "dev", "eth0",
                                      "clsact"]), capture_output=True)
        self.tc_on.discard(b)

    def stop_all(self):
        for b in list(self.tc_on):
            self.tc_heal(b)
        with self.lock:
            procs = list(self.procs.items())
        for label, p in procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for label, p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()


DROP_C = r"""
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
/* mcchaos: drop PCT% of the packets (to or from PEER only, when not 0) */
static unsigned int (*prandom)(void) = (void *)BPF_FUNC_get_prandom_u32;
static __attribute__((always_inline)) int hit(struct __sk_buff *skb, int in)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if (PEER) {
		if ((void *)(ip + 1) > end || eth->h_proto != 0x0008)
			return 0;
		if ((in ? ip->saddr : ip->daddr) != PEER)
			return 0;
	}
	return prandom() % 100 < PCT;
}
__attribute__((section("tc/in"), used)) int drop_in(struct __sk_buff *skb)
{
	return hit(skb, 1) ? TC_ACT_SHOT : TC_ACT_OK;
}
__attribute__((section("tc/out"), used)) int drop_out(struct __sk_buff *skb)
{
	return hit(skb, 0) ? TC_ACT_SHOT : TC_ACT_OK;
}
char _license[] __attribute__((section("license"), used)) = "GPL";
"""

# ---- the history ----------------------------------------------------------


class Op:
    __slots__ = ("id", "client", "proxy", "udp", "kind", "key", "value",
                 "inv", "cpl", "res", "got", "note")

    def __init__(self, client, proxy, udp, kind, key, value=None):
        self.client, self.proxy, self.udp = client, proxy, udp
        self.kind, self.key, self.value = kind, key, value
        self.inv = self.cpl = None
        self.res = self.got = self.note = None

    def __str__(self):
        t = "%9.3f..%s" % (self.inv, "   ?    " if self.cpl == INF
                           else "%9.3f" % self.cpl)
        arg = "" if self.value is None else " %d" % self.value
        got = "" if self.got is None else " -> %d" % self.got
        return "%s c%-2d %s/%s %-6s %s%s: %s%s%s" % (
            t, self.client, self.proxy, "udp" if self.udp else "tcp",
            self.kind, keyname(self.key), arg, self.res, got,
            " (%s)" % self.note if self.note else "")


class History:
    def __init__(self):
        self.ops = []
        self.events = []     # (t, kind, target, detail)
        self.rings = []      # (t, {key: [backend...]})
        self.lock = threading.Lock()
        self.t0 = time.monotonic()

    def now(self):
        return time.monotonic() - self.t0

    def add(self, op):
        with self.lock:
            op.id = len(self.ops)
            self.ops.append(op)

    def event(self, kind, target, detail=""):
        with self.lock:
            self.events.append((self.now(), kind, target, detail))


# ---- the workload ---------------------------------------------------------

OP_WEIGHTS = [("get", 40), ("set", 20), ("delete", 10), ("add", 10),
              ("cas", 10), ("incr", 10)]

class Garbled(Exception):
    pass


class Refused(Exception):
    """The request was never sent: it cannot have been applied."""


class StrictClient(Client):
    """mc.Client that keeps the datagrams it skips: a request is answered
    before the next is sent, so on one socket a datagram for another
    request id is a second answer or someone else's reply."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.strays = []

    def recv_udp_reply(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("udp reply timed out")
            self.sock.settimeout(left)
            dgram = self.sock.recv(65536)
            if len(dgram) < 8:
                self.strays.append(dgram)
                continue
            rid, seq, tot, _ = struct.unpack("!HHHH", dgram[:8])
            if rid != self.reqid or seq != 0 or tot != 1:
                self.strays.append(dgram)
                continue
            return dgram[8:]


class Worker(threading.Thread):
    def __init__(self, cid, proxy, udp, hist, a, stop):
        super().__init__(daemon=True)
        self.cid, self.proxy, self.udp = cid, proxy, udp
        self.hist, self.a, self.stop = hist, a, stop
        self.rng = random.Random("%d/%d" % (a.seed, cid))
        self.counter = 0
        self.conn = None

    def connect(self):
        if self.conn is None:
            try:
                self.conn = StrictClient("%s:%d" % (ADDR[self.proxy], KM_PORT),
                                         udp=self.udp,
                                         timeout=self.a.op_timeout)
            except OSError as e:
                raise Refused(str(e))
        return self.conn

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def line(self, c):
        ln = c.readline()
        if ln.startswith((b"SERVER_ERROR", b"CLIENT_ERROR", b"ERROR")):
            raise OSError(ln.decode(errors="replace"))
        return ln

    def read_value(self, c, key):
        """One VALUE (or none) up to END: (value, cas) or None."""
        ln = self.line(c)
        if ln == b"END":
            return None
        p = ln.split()
        if len(p) < 4 or p[0] != b"VALUE" or p[1] != key.encode():
            raise Garbled("expected VALUE %s, got %r" % (key, ln[:80]))
        data = c.readexact(int(p[3]) + 2)
        if data[-2:] != b"\r\n" or not data[:-2].isdigit():
            raise Garbled("bad data block %r" % data[:80])
        if self.line(c) != b"END":
            raise Garbled("no END after the value")
        return int(data[:-2]), int(p[4]) if len(p) > 4 else None

    def run_op(self, op, fn):
        op.inv = self.hist.now()
        try:
            c = self.connect()
            fn(c, op)
            if c.buf:
                raise Garbled("bytes after the reply: %r" % c.buf[:60])
            if c.strays:
                raise Garbled("a datagram for another request: %r"
                              % c.strays[0][:60])
        except Refused as e:
            op.res, op.note = "fail", str(e)[:60]
        except Garbled as e:
            op.res, op.note = "garbled", str(e)
            self.drop()
        except (OSError, ValueError, ProtocolError) as e:
            # an error or timeout: the request may have been applied
            op.res, op.note = "indet", str(e)[:60]
            self.drop()
        op.cpl = self.hist.now()
        if op.res in ("indet", "garbled"):
            op.cpl = INF
            op.note = (op.note or "") + " @%.3f" % self.hist.now()
        self.hist.add(op)
        if op.res == "fail":
            time.sleep(0.05)

    def store(self, cmd, c, op, cas=None):
        k = keyname(op.key).encode()
        v = b"%d" % op.value
        line = b"%s %s 0 0 %d" % (cmd, k, len(v))
        if cas is not None:
            line += b" %d" % cas
        c.send(line + b"\r\n" + v + b"\r\n")
        r = self.line(c)
        res = {b"STORED": "ok", b"NOT_STORED": "notstored",
               b"EXISTS": "exists", b"NOT_FOUND": "notfound"}.get(r)
        if res is None:
            raise Garbled("reply to %s: %r" % (cmd.decode(), r[:80]))
        op.res = res

    def do_get(self, c, op, cmd=b"get"):
        c.send(b"%s %s\r\n" % (cmd, keyname(op.key).encode()))
        r = self.read_value(c, keyname(op.key))
        if r is None:
            op.res = "miss"
            return None
        op.res, op.got = "hit", r[0]
        return r[1]

    def do_delete(self, c, op):
        c.send(b"delete %s\r\n" % keyname(op.key).encode())
        r = self.line(c)
        op.res = {b"DELETED": "ok", b"NOT_FOUND": "notfound"}.get(r)
        if op.res is None:
            raise Garbled("reply to delete: %r" % r[:80])

    def do_incr(self, c, op):
        c.send(b"incr %s 1\r\n" % keyname(op.key).encode())
        r = self.line(c)
        if r == b"NOT_FOUND":
            op.res = "notfound"
        elif r.isdigit():
            op.res, op.got = "ok", int(r)
        else:
            raise Garbled("reply to incr: %r" % r[:80])

    def next_value(self, k):
        self.counter += 1
        return make_value(k, self.cid, self.counter)

    def one(self):
        rng = self.rng
        k = rng.randrange(self.a.keys)
        r = rng.random() * self.a.weight_sum
        for kind, w in OP_WEIGHTS:
            if kind in self.a.ops:
                if r < w:
                    break
                r -= w
        if self.a.owners and kind != "get":
            # --owners: a key's writes come from one client only
            own = list(range(self.cid, self.a.keys, self.a.clients))
            if not own:
                kind = "get"
            else:
                k = own[k % len(own)]
        P, U = self.proxy, self.udp
        if kind == "get":
            self.run_op(Op(self.cid, P, U, "get", k), self.do_get)
        elif kind in ("set", "add"):
            op = Op(self.cid, P, U, kind, k, self.next_value(k))
            self.run_op(op, lambda c, o: self.store(kind.encode(), c, o))
        elif kind == "delete":
            self.run_op(Op(self.cid, P, U, "delete", k), self.do_delete)
        elif kind == "cas":
            v = self.next_value(k)
            g = Op(self.cid, P, U, "gets", k)
            tok = []
            self.run_op(g, lambda c, o: tok.append(self.do_get(c, o, b"gets")))
            if g.res == "hit" and tok and tok[0] is not None:
                op = Op(self.cid, P, U, "cas", k, v)
                self.run_op(op, lambda c, o: self.store(b"cas", c, o, tok[0]))
        else:
            self.run_op(Op(self.cid, P, U, "incr", k), self.do_incr)

    def run(self):
        while not self.stop.is_set():
            self.one()
        self.drop()


# ---- the nemesis ----------------------------------------------------------

def schedule(a):
    """Every nemesis action of the run, drawn from the seed alone."""
    rng = random.Random("nemesis/%d" % a.seed)
    proxies = ["pa", "pb"][:a.proxies]
    busy = {}                 # target -> logical time it is free again
    members, replicas = list(BACKENDS), 2
    out = []
    t = 1.0
    end = a.duration - 1.0
    classes = [n for n in NEMESES if n in a.nemesis]
    if a.proxies < 2 and "forget" in classes:
        classes.remove("forget")
    while classes:
        t += rng.uniform(a.gap_min, a.gap_max)
        if t >= end:
            break
        kind = rng.choice(classes)
        free = [b for b in BACKENDS if busy.get(b, 0) <= t]
        nbusy = len(BACKENDS) - len(free)
        freep = [p for p in proxies if busy.get(p, 0) <= t]
        dur = rng.uniform(0.3, a.fault_max)
        dur = min(dur, max(0.2, end - t))
        ev = None
        if kind in ("mc-kill", "mc-pause", "drain", "drain-writes", "loss") \
                and free and nbusy < a.max_faulted:
            b = rng.choice(free)
            ev = (kind, b, dur, rng.choice([5, 10, 30]) if kind == "loss" else None)
            busy[b] = t + dur + a.settle
        elif kind == "partition" and free and nbusy < a.max_faulted:
            b, p = rng.choice(free), rng.choice(proxies)
            ev = (kind, b, dur, p)
            busy[b] = t + dur + a.settle
        elif kind in ("km-term", "km-kill") and freep:
            p = rng.choice(freep)
            ev = (kind, p, min(dur, 2.0), None)
            busy[p] = t + min(dur, 2.0) + a.settle
        elif kind.startswith("reload-") and busy.get("ring", 0) <= t:
            # a change, or (when there is nothing to add or remove) a
            # change and its undoing DUR later: a backend removed and
            # added back, or a spare added and removed again
            spare = [b for b in BACKENDS if b not in members]
            back = None
            if kind == "reload-add" and spare or \
                    kind == "reload-remove" and len(members) <= 2:
                b = rng.choice(spare)
                new = [m for m in BACKENDS if m in members or m == b]
                if kind == "reload-remove":
                    back = (None, b, list(members))
            elif kind in ("reload-add", "reload-remove"):
                b = rng.choice(members)
                new = [m for m in members if m != b]
                if kind == "reload-add":
                    back = (None, b, list(members))
            else:
                b = "-"
                replicas = rng.choice([x for x in (1, 2, 3) if x != replicas])
                new = list(members)
            label = kind if b == "-" else \
                "reload-add" if len(new) > len(members) else "reload-remove"
            members = new
            ev = (label, b, 0, (list(members), replicas))
            if back:
                out.append((round(t, 3),) + ev)
                t2 = min(t + dur, end)
                members = back[2]
                ev = None
                out.append((round(t2, 3), "reload-remove" if
                            label == "reload-add" else "reload-add", back[1],
                            0, (list(members), replicas)))
                busy["ring"] = t2 + 0.001
        elif kind == "resync":
            ev = (kind, rng.choice(BACKENDS), 0, rng.choice(proxies))
        elif kind == "forget":
            # its use: a kmagentd that is gone (down now, when km-term or
            # km-kill run too) is forgotten by the other one
            gone = [q for q in proxies if q not in freep] or proxies
            q = rng.choice(gone)
            p = [x for x in proxies if x != q][0]
            if p in freep:
                ev = (kind, p, 0, q)
        if ev:
            out.append((round(t, 3),) + ev)
    return sorted(out, key=lambda e: e[0])


class Nemesis(threading.Thread):
    def __init__(self, lab, hist, a, plan):
        super().__init__(daemon=True)
        self.lab, self.hist, self.a, self.plan = lab, hist, a, plan
        self.proxies = ["pa", "pb"][:a.proxies]
        self.members, self.replicas = list(BACKENDS), 2
        self.heals = []            # (logical time, fn, description)
        self.crashes = []
        self.abort = threading.Event()

    def snapshot_ring(self):
        for p in self.proxies:
            if not self.lab.alive("km-" + p):
                continue
            try:
                ring = {k: self.lab.ring(p, keyname(k)) for k in range(self.a.keys)}
            except (OSError, ValueError, KeyError):
                continue
            with self.hist.lock:
                self.hist.rings.append((self.hist.now(), ring))
            return

    def kmctl(self, p, *args):
        rc, out = self.lab.ctl(p, *args)
        self.hist.event("ctl", p, "%s: rc %d %s" % (" ".join(args), rc,
                                                    out.strip().replace("\n", " ")[:120]))
        return rc

    def restart(self, label):
        ok = self.lab.restart(label)
        self.hist.event("started" if ok else "START-FAILED", label)
        if not ok:
            self.crashes.append("%s did not start again (%s)" %
                                (label, self.lab.why_down(label)))

    def check_alive(self):
        for label in list(self.lab.procs):
            if label in self.down:
                continue
            if not self.lab.alive(label):
                rc = self.lab.procs[label].poll()
                self.hist.event("CRASH", label, "exit %s" % rc)
                self.crashes.append("%s exited by itself (status %s) at %.3f" %
                                    (label, rc, self.hist.now()))
                self.down.add(label)

    def apply(self, ev):
        t, kind, target, dur, arg = ev
        lab, H = self.lab, self.hist
        heal = None
        if kind == "mc-kill":
            label = "mc-" + target
            lab.signal(label, signal.SIGKILL)
            lab.reap(label)
            self.down.add(label)
            H.event("kill-9", target, "memory lost")

            def heal():
                self.restart(label)
                self.down.discard(label)
                H.event("heal", target, "mc-kill")
        elif kind == "mc-pause":
            lab.signal("mc-" + target, signal.SIGSTOP)
            H.event("pause", target)

            def heal():
                lab.signal("mc-" + target, signal.SIGCONT)
                H.event("heal", target, "mc-pause")
        elif kind in ("km-term", "km-kill"):
            label = "km-" + target
            self.down.add(label)
            H.event(kind, target)
            lab.signal(label, signal.SIGTERM if kind == "km-term" else signal.SIGKILL)
            lab.reap(label, 10.0)

            def heal():
                self.restart(label)
                self.down.discard(label)
                H.event("heal", target, kind)
        elif kind in ("drain", "drain-writes"):
            bname = "%s:%d" % (ADDR[target], MC_PORT)
            H.event(kind, target)
            for p in self.proxies:
                if kind == "drain":
                    self.kmctl(p, "drain", bname)
                else:
                    self.kmctl(p, "drain", bname, "--writes")

            def heal():
                for p in self.proxies:
                    self.kmctl(p, "undrain", bname)
                H.event("heal", target, kind)
        elif kind == "loss":
            lab.tc_drop(target, arg)
            H.event("loss", target, "%d%%" % arg)

            def heal():
                lab.tc_heal(target)
                H.event("heal", target, "loss")
        elif kind == "partition":
            lab.tc_drop(target, 100, arg)
            H.event("partition", target, "from " + arg)

            def heal():
                lab.tc_heal(target)
                H.event("heal", target, "partition")
        elif kind.startswith("reload-"):
            self.members, self.replicas = arg
            H.event(kind, target, "backends %s replicas %d" %
                    (",".join(self.members), self.replicas))
            for p in self.proxies:
                lab.write_conf(p, self.members, self.replicas)
            for p in self.proxies:
                if lab.alive("km-" + p):
                    self.kmctl(p, "reload")
            self.snapshot_ring()
        elif kind == "resync":
            H.event("resync", target, "on " + arg)
            if lab.alive("km-" + arg):
                self.kmctl(arg, "resync", "%s:%d" % (ADDR[target], MC_PORT))
        elif kind == "forget":
            H.event("forget", target, "name " + arg)
            if lab.alive("km-" + target):
                self.kmctl(target, "forget", arg)
        if heal:
            self.heals.append((t + dur, heal))

    def plant(self, t):
        """A deliberate bug, to show the checker catches it."""
        if self.a.plant == "flush":
            for b in BACKENDS:
                try:
                    c = Client("%s:%d" % (ADDR[b], MC_PORT))
                    c.simple(b"flush_all")
                    c.close()
                except OSError:
                    pass
        elif self.a.plant == "phantom":
            # every key, on every backend: some read sees one before the
            # workload overwrites it
            for b in BACKENDS:
                try:
                    c = Client("%s:%d" % (ADDR[b], MC_PORT))
                    for k in range(self.a.keys):
                        c.store(b"set", keyname(k).encode(),
                                b"%d" % make_value(k, 99, 1))
                    c.close()
                except OSError:
                    pass

    def sleep_until(self, t):
        while not self.abort.is_set():
            left = t - self.hist.now()
            if left <= 0:
                return True
            time.sleep(min(left, 0.1))
            self.check_alive()
        return False

    def run(self):
        self.down = set()
        events = [(e[0], 0, e) for e in self.plan]
        if self.a.plant:
            events.append((self.a.duration / 2, 1, None))
        events.sort(key=lambda x: (x[0], x[1]))
        i = 0
        while i < len(events) or self.heals:
            self.heals.sort(key=lambda h: h[0])
            nxt = events[i][0] if i < len(events) else INF
            if self.heals and self.heals[0][0] <= nxt:
                t, fn = self.heals.pop(0)
                if not self.sleep_until(t):
                    break
                fn()
                continue
            if not self.sleep_until(nxt):
                break
            _, planted, ev = events[i]
            i += 1
            if planted:
                self.plant(nxt)
            else:
                self.apply(ev)
        # heal whatever is left if aborted
        for _, fn in self.heals:
            fn()
        self.heals = []
        self.check_alive()


# ---- the checker ----------------------------------------------------------

WRITES = ("set", "add", "cas", "incr")


class Checker:
    """Holds the history to the model (docs/operations.md)."""

    def __init__(self, hist, a):
        self.h, self.a = hist, a
        self.viol = {}
        self.shown = {}
        self.flagged = set()     # ops already reported: no evidence
        self.faults = self.fault_intervals()
        self.kills = {b: [t for (t, k, tg, _) in hist.events
                          if k == "kill-9" and tg == b] for b in BACKENDS}
        self.by_value = {}
        self.incr_val = {}
        self.per_key = {}
        for op in hist.ops:
            self.per_key.setdefault(op.key, []).append(op)
            if op.kind in ("set", "add", "cas") and op.value is not None:
                self.by_value[op.value] = op
            if op.kind == "incr" and op.res == "ok":
                self.incr_val.setdefault(op.got, op)

    def fault_intervals(self):
        """backend -> [(start, end)] when it may miss writes or reads."""
        out = {b: [] for b in BACKENDS}
        opened = {}
        for t, kind, target, _ in self.h.events:
            if kind in ("kill-9", "pause", "drain", "drain-writes", "loss",
                        "partition"):
                opened[target] = t
            elif kind == "heal" and target in opened:
                out[target].append((opened.pop(target), t))
        for b, t in opened.items():
            out[b].append((t, INF))
        # a kmagentd restart: what it thinks of each backend is relearned
        for t, kind, target, _ in self.h.events:
            if kind in ("km-term", "km-kill", "CRASH"):
                for b in BACKENDS:
                    out[b].append((t, t + 0.001))
        return out

    def slow(self, op):
        """An operation this slow may have timed out on a replica
        (kmagentd --timeout, or the kernel path's --udp-retry) and been
        answered by the others: which replicas took it is unknown."""
        return self.a.udp_slow if op.udp else self.a.tcp_slow

    def faulted(self, b, t0, t1):
        s = self.a.settle
        return any(f0 < t1 and f1 + s > t0 for f0, f1 in self.faults[b])

    def members(self, key, t0, t1):
        """Backends that were replicas of key at every ring change in [t0, t1]."""
        rings = self.h.rings
        times = [r[0] for r in rings]
        i = max(0, bisect.bisect_right(times, t0 - self.a.settle) - 1)
        j = bisect.bisect_right(times, t1)
        sets = [set(rings[x][1].get(key, [])) for x in range(i, max(j, i + 1))]
        m = sets[0]
        for s in sets[1:]:
            m &= s
        return {b for b in BACKENDS if ADDR[b] in m}

    def violation(self, cls, op, why, related=()):
        self.flagged.add(op)
        self.viol[cls] = self.viol.get(cls, 0) + 1
        if self.shown.get(cls, 0) >= self.a.show:
            return
        self.shown[cls] = self.shown.get(cls, 0) + 1
        print("\nVIOLATION %s: %s" % (cls, why))
        print("  read:    %s" % op)
        for r in related:
            if r is not None:
                print("  because: %s" % r)
        rel = [r for r in related if r is not None]
        lo = min([op.inv] + [r.inv for r in rel]) - 0.05
        hi = op.cpl + 0.02 if op.cpl != INF else op.inv + 1
        ops = [o for o in self.per_key[op.key] if o.inv <= hi and
               (o.cpl if o.cpl != INF else o.inv) >= lo]
        if len(ops) > 40:
            near = [o for o in ops if o.inv >= op.inv - 0.01]
            ops = sorted(set(rel + [o for o in ops if o not in near][-30:] +
                             near[:10]), key=lambda o: o.inv)
        print("  history of %s (%d ops from %.3f to %.3f):" %
              (keyname(op.key), len(ops), lo, hi))
        for o in ops:
            print("    %s%s" % ("=> " if o is op else "   ", o))
        evs = [e for e in self.h.events if lo - 3 <= e[0] <= hi]
        print("  nemesis %.3f..%.3f:" % (lo - 3, hi))
        for e in evs:
            print("    %9.3f %-14s %-4s %s" % e)

    def check(self):
        for key, ops in self.per_key.items():
            self.check_key(key, ops)
        return self.viol

    def check_key(self, key, ops):
        # superseders: acknowledged writes and deletes, by invocation
        sup = sorted([o for o in ops if o.res == "ok" and o.kind in
                      WRITES + ("delete",)], key=lambda o: o.inv)
        sup_inv = [o.inv for o in sup]
        suffix = {}
        for p in ("pa", "pb"):
            best, arr = None, [None] * (len(sup) + 1)
            for i in range(len(sup) - 1, -1, -1):
                o = sup[i]
                if o.proxy == p and (best is None or o.cpl < best.cpl):
                    best = o
                arr[i] = best
            suffix[p] = arr
        # absence-makers: deletes that may have been applied
        H = self.a.horizon
        dels = sorted([o for o in ops if o.kind == "delete" and
                       o.res in ("ok", "indet")], key=lambda o: o.inv)
        del_inv = [o.inv for o in dels]
        del_maxc = []
        m = -INF
        for d in dels:
            m = max(m, d.cpl if d.cpl != INF else d.inv + H)
            del_maxc.append(m)
        nf = sorted([o for o in ops if o.kind == "delete" and
                     o.res == "notfound"], key=lambda o: o.inv)
        nf_inv, nf_maxc, m = [o.inv for o in nf], [], -INF
        for d in nf:
            m = max(m, d.cpl)
            nf_maxc.append(m)

        def nf_max(op):
            i = bisect.bisect_left(nf_inv, op.inv)
            return nf_maxc[i - 1] if i else -INF

        acked = sorted([o for o in ops if o.kind in WRITES and o.res == "ok"],
                       key=lambda o: o.cpl)
        acked_cpl = [o.cpl for o in acked]
        maybe_w = sorted([o for o in ops if o.kind in WRITES and
                          o.res in ("ok", "indet")], key=lambda o: o.inv)
        mw_inv = [o.inv for o in maybe_w]
        mw_maxc = []
        m = -INF
        for w in maybe_w:
            m = max(m, w.cpl)
            mw_maxc.append(m)
        incrs = sorted([o for o in ops if o.kind == "incr" and
                        o.res in ("ok", "indet", "notfound")],
                       key=lambda o: o.inv)
        indet = [0]
        for o in incrs:
            indet.append(indet[-1] + (o.cpl == INF))
        incr_inv = ([o.inv for o in incrs], incrs, indet)

        def stale(op, prod_cpl, v):
            i = bisect.bisect_right(sup_inv, prod_cpl)
            same = suffix[op.proxy][i]
            other = suffix["pb" if op.proxy == "pa" else "pa"][i]
            if same is not None and same.cpl < op.inv and same.got != v:
                return "stale", same
            if other is not None and other.cpl < op.inv and other.got != v:
                if op.inv - other.cpl <= self.a.window:
                    return "stale-cross-window", other
                return "stale-cross", other
            return None, None

        def must_present(op, dmax_nf=-INF, cross_window=False):
            """An acknowledged write some live, kept holder still has;
            cross_window: not one through the other kmagentd acknowledged
            within --window of op (a miss is then an older state read
            through another kmagentd, allowed inside the window)."""
            i = bisect.bisect_left(del_inv, op.cpl if op.cpl != INF else op.inv)
            dmax = max(del_maxc[i - 1] if i else -INF, dmax_nf)
            j = bisect.bisect_left(acked_cpl, op.inv)
            if op.cpl - op.inv >= self.slow(op):
                return None, None   # a replica may have timed out
            for w in reversed(acked[max(0, j - 50):j]):
                if w.inv < dmax or w.cpl - w.inv >= self.slow(w) or \
                        w in self.flagged:
                    continue
                if cross_window and w.proxy != op.proxy and \
                        op.inv - w.cpl <= self.a.window:
                    continue
                rc = op.cpl if op.cpl != INF else op.inv + 1
                for b in self.members(key, w.inv, rc):
                    if self.faulted(b, w.inv, w.cpl) or \
                            self.faulted(b, op.inv, rc) or \
                            any(w.inv <= k <= rc for k in self.kills[b]):
                        continue
                    return w, b
            return None, None

        def must_absent(op):
            """Every write that may be current was deleted before op."""
            i = bisect.bisect_left(mw_inv, op.cpl if op.cpl != INF else INF)
            wmax = mw_maxc[i - 1] if i else -INF
            if wmax == INF:
                return False, None
            if wmax == -INF:
                return True, None
            for d in reversed(dels):
                if d.res == "ok" and d.cpl < op.inv and d.inv > wmax:
                    return True, d
            return False, None

        for op in ops:
            if op.res == "garbled":
                self.violation("foreign", op, "garbled reply: %s" % op.note)
                continue
            if op.kind in ("get", "gets") and op.res == "hit":
                self.check_value(op, key, stale, incr_inv)
            elif op.kind in ("get", "gets") and op.res == "miss" or \
                    op.kind in ("delete", "incr", "cas") and op.res == "notfound":
                w, b = must_present(op)
                if w is not None and must_present(op, nf_max(op))[0] is None:
                    self.violation("answer", op, "miss after %s: a "
                                   "delete answered NOT_FOUND was applied"
                                   % w.kind, [w])
                elif w is not None and op.kind in ("get", "gets") and \
                        must_present(op, cross_window=True)[0] is None:
                    self.violation("stale-cross-window", op, "miss, %s "
                                   "through the other kmagentd was "
                                   "acknowledged just before" % w.kind, [w])
                elif w is not None and op.kind in ("get", "gets"):
                    self.violation("lost", op, "miss, yet %s took %s and kept "
                                   "its memory" % (b, keyname(key)), [w])
                elif w is not None:
                    self.violation("answer", op, "NOT_FOUND, yet %s took %s "
                                   "and kept its memory" % (b, keyname(key)), [w])
            elif op.kind == "add" and op.res == "ok":
                w, b = must_present(op)
                if w is not None:
                    self.violation("answer", op, "add accepted, yet "
                                   "%s held an acknowledged value" % b, [w])
            elif op.kind == "add" and op.res == "notstored":
                absent, d = must_absent(op)
                if absent:
                    self.violation("answer", op, "add refused while "
                                   "the key must be absent", [d])
            if op.kind == "incr" and op.res == "ok":
                self.check_value(op, key, stale, incr_inv, incr=True)

    def check_value(self, op, key, stale, incr_inv, incr=False):
        v = op.got
        base, j = v - v % INCR_ROOM, v % INCR_ROOM
        if value_key(v) != key:
            self.violation("foreign", op, "a value of %s" % keyname(value_key(v)))
            return
        w = self.by_value.get(base)
        if w is None:
            self.violation("phantom", op, "a value nobody wrote")
            return
        if w.inv > (op.cpl if op.cpl != INF else INF):
            self.violation("phantom", op, "read before it was written", [w])
            return
        if w.res in ("notstored", "exists", "notfound"):
            self.violation("answer", op, "the value of a refused %s"
                           % w.kind, [w])
            return
        if w.res == "fail":
            self.violation("phantom", op, "the value of a write never sent", [w])
            return
        if incr:
            j -= 1          # the incr's own step
            if j < 0:
                self.violation("phantom", op, "incr result below its base", [w])
                return
        if j > 0:
            # increments that may land after w: invoked before the read
            # completed, not completed before w was invoked (an
            # acknowledged one completes within --op-timeout)
            invs, incrs, indet = incr_inv
            lo = bisect.bisect_left(invs, w.inv - self.a.op_timeout - 1)
            hi = bisect.bisect_left(invs, op.cpl)
            may = [o for o in incrs[lo:hi] if o.cpl > w.inv and o is not op]
            n = indet[lo] + sum(o.res != "notfound" for o in may)
            if n < j:
                refused = [o for o in may if o.res == "notfound"]
                if n + len(refused) >= j:
                    self.violation("answer", op, "%d increments, %d "
                                   "acknowledged: an incr answered NOT_FOUND "
                                   "was applied" % (j, n), [w] + refused[:2])
                else:
                    self.violation("phantom", op, "%d increments, %d possible"
                                   % (j, n), [w])
                return
        seen = v - 1 if incr else v     # what the incr found
        if seen % INCR_ROOM:
            prod = self.incr_val.get(seen)
            if prod is None or prod is op:
                return       # an incr we cannot name: no staleness check
            prod_cpl = prod.cpl
        else:
            prod, prod_cpl = w, w.cpl
        if prod in self.flagged:
            self.flagged.add(op)    # built on a reported value: tainted
            return
        cls, x = stale(op, prod_cpl, seen)
        if cls:
            self.violation(cls, op, "%san older value, after %s was "
                           "acknowledged" % ("incremented " if incr else "",
                                             x.kind), [prod, x])


# ---- main -----------------------------------------------------------------

def dump(hist, path):
    """The history as JSON lines: --recheck reads it back."""
    with open(path, "w") as f:
        for e in hist.events:
            f.write(json.dumps({"event": e}) + "\n")
        for t, ring in hist.rings:
            f.write(json.dumps({"ring": [t, ring]}) + "\n")
        for op in hist.ops:
            d = {s: getattr(op, s) for s in Op.__slots__ if s != "id"}
            if d["cpl"] == INF:
                d["cpl"] = "inf"
            f.write(json.dumps(d) + "\n")


def load(path):
    hist = History()
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            if "event" in d:
                hist.events.append(tuple(d["event"]))
            elif "ring" in d:
                t, ring = d["ring"]
                hist.rings.append((t, {int(k): v for k, v in ring.items()}))
            else:
                op = Op(d["client"], d["proxy"], d["udp"], d["kind"], d["key"],
                        d["value"])
                for s in ("inv", "cpl", "res", "got", "note"):
                    setattr(op, s, d[s])
                if op.cpl == "inf":
                    op.cpl = INF
                hist.add(op)
    return hist


def final_reads(hist, a, lab):
    """Every key through every kmagentd, TCP, after the cluster settled."""
    for p in ["pa", "pb"][:a.proxies]:
        w = Worker(90 + (p == "pb"), p, False, hist, a, threading.Event())
        for k in range(a.keys):
            w.run_op(Op(w.cid, p, False, "get", k), w.do_get)
        w.drop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lab-id")
    ap.add_argument("--lab-dir")
    ap.add_argument("--bpffs")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--proxies", type=int, choices=(1, 2), default=2)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--udp-frac", type=float, default=0.5,
                    help="share of the clients on UDP (kernel path)")
    ap.add_argument("--keys", type=int, default=30)
    ap.add_argument("--nemesis", default="all",
                    help="comma list of %s, 'all' or 'none'" % ",".join(NEMESES))
    ap.add_argument("--gap-min", type=float, default=0.5)
    ap.add_argument("--gap-max", type=float, default=2.5)
    ap.add_argument("--fault-max", type=float, default=3.0)
    ap.add_argument("--max-faulted", type=int, default=2,
                    help="backends faulted at once at most")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="s after a fault ends before a backend counts as whole")
    ap.add_argument("--window", type=float, default=1.0,
                    help="s a stale read through another kmagentd is allowed")
    ap.add_argument("--op-timeout", type=float, default=1.0)
    ap.add_argument("--tcp-slow", type=float, default=0.25,
                    help="s: a TCP operation this slow may have missed a "
                    "replica (kmagentd --timeout is 0.3)")
    ap.add_argument("--udp-slow", type=float, default=0.08,
                    help="s: the same over UDP (--udp-retry is 0.1)")
    ap.add_argument("--final-wait", type=float, default=4.0)
    ap.add_argument("--show", type=int, default=2,
                    help="failing histories printed per class")
    ap.add_argument("--plant", choices=("flush", "phantom"),
                    help="a deliberate bug the checker must catch")
    ap.add_argument("--kmagentd", default="build/kmagentd")
    ap.add_argument("--no-state-dir", action="store_true",
                    help="kmagentd without --state-dir: its journal dies "
                    "with it, and the stale reads docs/operations.md "
                    "allows then are reported too")
    ap.add_argument("--km-arg", action="append", default=[],
                    help="one more kmagentd argument (repeatable)")
    ap.add_argument("--ops", default="get,set,delete,add,cas,incr",
                    help="operations drawn (cas: gets then cas)")
    ap.add_argument("--owners", action="store_true",
                    help="each key written by one client only (reads by all):"
                    " no concurrent writes of a key from two connections")
    ap.add_argument("--plan-only", action="store_true")
    ap.add_argument("--dump", help="write the whole history to this file")
    ap.add_argument("--recheck", metavar="DUMP",
                    help="check a dumped history again, run nothing")
    a = ap.parse_args()
    a.ops = a.ops.split(",")
    if "get" not in a.ops or any(o not in dict(OP_WEIGHTS) for o in a.ops):
        ap.error("--ops: a comma list of get,set,delete,add,cas,incr with get")
    a.weight_sum = sum(w for o, w in OP_WEIGHTS if o in a.ops)
    if a.nemesis == "all":
        a.nemesis = list(NEMESES)
    elif a.nemesis == "none":
        a.nemesis = []
    else:
        a.nemesis = a.nemesis.split(",")
        bad = [n for n in a.nemesis if n not in NEMESES]
        if bad:
            ap.error("unknown nemesis %s" % ",".join(bad))
    # a delete that timed out may still land while a backend it was queued
    # on is paused or cut off: up to the longest fault, plus timeouts
    a.horizon = a.fault_max + a.settle + 2 * a.op_timeout

    if a.recheck:
        hist = load(a.recheck)
        viol = Checker(hist, a).check()
        print("# violations: %s" % (", ".join("%s %d" % kv for kv in
                                              sorted(viol.items())) or "none"))
        return 1 if any(k != "stale-cross-window" for k in viol) else 0

    plan = schedule(a)
    if not a.plan_only and not (a.lab_id and a.lab_dir and a.bpffs):
        ap.error("--lab-id, --lab-dir and --bpffs are needed (chaos.sh gives them)")
    print("# seed %d duration %.0fs proxies %d clients %d (udp %.0f%%) keys %d"
          % (a.seed, a.duration, a.proxies, a.clients, a.udp_frac * 100, a.keys))
    print("# nemesis: %s" % (",".join(a.nemesis) or "none"))
    print("# ops: %s%s" % (",".join(a.ops), ", one writer a key" if a.owners else ""))
    print("# plan: %d actions" % len(plan))
    for e in plan:
        print("#   %7.3f %-15s %-3s dur %.2f %s" % (e[0], e[1], e[2], e[3],
                                                     "" if e[4] is None else e[4]))
    if a.plan_only:
        return 0
    sys.stdout.flush()

    lab = Lab(a)
    hist = History()
    stop = threading.Event()
    rc = 0
    try:
        for b in BACKENDS:
            if not lab.start_memcached(b):
                print("memcached on %s did not start" % b)
                return 2
        for p in ["pa", "pb"][:a.proxies]:
            lab.write_conf(p, BACKENDS, 2)
            if not lab.start_kmagentd(p):
                print("kmagentd on %s did not start; its log:" % p)
                with open(lab.log("km-" + p)) as f:
                    print(f.read()[-3000:])
                return 2
        time.sleep(1.0)      # backends up, kernel path attached
        hist = History()
        nem = Nemesis(lab, hist, a, plan)
        nem.snapshot_ring()
        nudp = int(round(a.clients * a.udp_frac))
        workers = []
        for i in range(a.clients):
            p = ["pa", "pb"][i % a.proxies]
            workers.append(Worker(i, p, i >= a.clients - nudp, hist, a, stop))
        for w in workers:
            w.start()
        nem.start()
        while hist.now() < a.duration:
            time.sleep(0.1)
        # the last heals are due by the end; a stuck action is cut short
        nem.join(timeout=30)
        nem.abort.set()
        nem.join()
        stop.set()
        for w in workers:
            w.join()
        t_load = hist.now()
        nload = len(hist.ops)
        time.sleep(a.final_wait)
        nem.snapshot_ring()
        final_reads(hist, a, lab)
        nem.check_alive()
    finally:
        lab.stop_all()

    if a.dump:
        dump(hist, a.dump)
    viol = Checker(hist, a).check()
    kinds = {}
    for op in hist.ops:
        kinds[op.kind] = kinds.get(op.kind, 0) + 1
    indet = sum(op.res == "indet" for op in hist.ops)
    fails = sum(op.res == "fail" for op in hist.ops)
    evk = {}
    for e in hist.events:
        if e[1] not in ("ctl", "started", "heal"):
            evk[e[1]] = evk.get(e[1], 0) + 1
    nev = sum(evk.values())
    print("\n# seed %d: %d operations in %.1f s (%.0f/s), %s" % (
        a.seed, nload, t_load, nload / max(t_load, 0.001),
        " ".join("%s %d" % kv for kv in sorted(kinds.items()))))
    print("# %d indeterminate, %d refused connections, %d nemesis events%s"
          % (indet, fails, nev, (": " + " ".join(
              "%s %d" % kv for kv in sorted(evk.items()))) if evk else ""))
    for c in nem.crashes:
        print("# CRASH: %s" % c)
    failing = {k: v for k, v in viol.items() if k != "stale-cross-window"}
    print("# violations: %s" % (", ".join("%s %d" % kv for kv in sorted(viol.items()))
                                or "none"))
    if failing or nem.crashes:
        rc = 1
    print("# seed %d: %s" % (a.seed, "FAIL" if rc else "ok"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
