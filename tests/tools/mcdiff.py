#!/usr/bin/env python3
"""Differential protocol test: one command sequence, two servers, same bytes.

  mcdiff.py [--list] [--transcript FILE] REFERENCE:PORT CANDIDATE:PORT

Sends the same long sequence of memcached requests (text and meta protocol,
pipelined and not, odd and broken inputs) to REFERENCE (a fresh memcached)
and to CANDIDATE (kmagentd in front of fresh memcacheds) and compares every
reply byte for byte.  Exit 0 when all replies match, 1 when any differs,
2 on a usage or connection error.

How a reply is delimited: after each step the driver sends `version` and
reads until the VERSION line; that line is dropped (version is not
compared: kmagentd may answer with its own).  A closed connection is part
of the reply ("<closed>"), and the next step reconnects.

CAS values differ between servers, so they are compared structurally: each
(key, cas) pair is renamed "#1", "#2", ... in order of first appearance on
its server, and a step may use "{cas}", replaced by the last cas value that
the same server returned.  Steps never read TTLs or access times.
"""

import argparse
import os
import re
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import parse_hostport  # noqa: E402

SENTINEL = b"version\r\n"
SENTINEL_RE = re.compile(rb"VERSION [^\r\n]*\r\n$")
LONGKEY = b"k" * 251
KEY250 = b"q" * 250


def st(cmd, key, value, flags=0, exptime=0, extra=b""):
    """A storage command line plus its data block."""
    return b"%s %s %d %d %d%s\r\n%s\r\n" % (cmd, key, flags, exptime,
                                            len(value), extra, value)


class Step:
    # mode: "serial" (request, then the sentinel in a second write),
    #       "pipe" (request and sentinel in one write),
    #       "drip" (request a few bytes at a time, then the sentinel)
    def __init__(self, name, data, mode="serial", wait=2.0):
        self.name, self.data, self.mode, self.wait = name, data, mode, wait


def steps():
    s = []
    add = s.append
    big = bytes(range(256)) * 2000  # 512000 bytes, every byte value
    # --- text protocol, one request at a time ---
    add(Step("get of a missing key", b"get nokey\r\n"))
    add(Step("set", st(b"set", b"k1", b"v1")))
    add(Step("get", b"get k1\r\n"))
    add(Step("set with flags, exptime", st(b"set", b"k2", b"value two", 42, 1000)))
    add(Step("get with flags", b"get k2\r\n"))
    add(Step("set the article's value", st(b"set", b"becd0000", "测试例子".encode())))
    add(Step("get the article's value", b"get becd0000\r\n"))
    add(Step("set binary value (CRLF, NUL inside)",
             st(b"set", b"bin", b"a\r\nb\x00c\r\n\xff")))
    add(Step("get binary value", b"get bin\r\n"))
    add(Step("set empty value", st(b"set", b"empty", b"")))
    add(Step("get empty value", b"get empty\r\n"))
    add(Step("set 512000-byte value", st(b"set", b"big", big), wait=5))
    add(Step("get 512000-byte value", b"get big\r\n", wait=5))
    add(Step("set 250-byte key", st(b"set", KEY250, b"long key ok")))
    add(Step("get 250-byte key", b"get " + KEY250 + b"\r\n"))
    add(Step("multi-key get, hits and misses in order",
             b"get k1 nokey k2 becd0000 empty nokey2 bin " + KEY250 + b"\r\n"))
    add(Step("multi-key get, a key twice", b"get k1 k1 k2 k1\r\n"))
    add(Step("multi-key get of 100 keys",
             b"get " + b" ".join(b"k%d" % (i % 7) for i in range(100)) + b"\r\n"))
    add(Step("gets", b"gets k1\r\n"))
    add(Step("cas with the right cas", st(b"cas", b"k1", b"v1-cas", extra=b" {cas}")))
    add(Step("get after cas", b"get k1\r\n"))
    add(Step("cas with the old cas (EXISTS)",
             st(b"cas", b"k1", b"v1-stale", extra=b" {cas}")))
    add(Step("gets after cas", b"gets k1 k2\r\n"))
    add(Step("cas on a missing key (NOT_FOUND)",
             st(b"cas", b"nokey", b"x", extra=b" 12345")))
    add(Step("gets before cas noreply", b"gets k2\r\n"))
    add(Step("cas noreply", st(b"cas", b"k2", b"k2-cas-nr", extra=b" {cas} noreply")))
    add(Step("get after cas noreply", b"get k2\r\n"))
    add(Step("add of an existing key (NOT_STORED)", st(b"add", b"k1", b"x")))
    add(Step("add of a new key", st(b"add", b"k3", b"three")))
    add(Step("replace of an existing key", st(b"replace", b"k3", b"THREE")))
    add(Step("replace of a missing key", st(b"replace", b"nokey", b"x")))
    add(Step("append", st(b"append", b"k3", b"-app")))
    add(Step("prepend", st(b"prepend", b"k3", b"pre-")))
    add(Step("append to a missing key", st(b"append", b"nokey", b"x")))
    add(Step("get after append/prepend", b"get k3\r\n"))
    add(Step("set noreply", st(b"set", b"k4", b"four", extra=b" noreply")))
    add(Step("add/replace/append/prepend noreply",
             st(b"add", b"k4", b"x", extra=b" noreply") +
             st(b"replace", b"k4", b"FOUR", extra=b" noreply") +
             st(b"append", b"k4", b"!", extra=b" noreply") +
             st(b"prepend", b"k4", b"<", extra=b" noreply")))
    add(Step("get after noreply writes", b"get k4\r\n"))
    add(Step("delete", b"delete k4\r\n"))
    add(Step("delete of a missing key", b"delete k4\r\n"))
    add(Step("delete noreply", b"delete k3 noreply\r\n"))
    add(Step("get after delete", b"get k3 k4\r\n"))
    add(Step("delete with time 0 (accepted)", st(b"set", b"dk", b"x") +
             b"delete dk 0\r\n"))
    add(Step("delete with a time (refused)", b"delete k1 5\r\n"))
    add(Step("set a counter", st(b"set", b"n", b"10")))
    add(Step("incr", b"incr n 5\r\n"))
    add(Step("incr grows the length", b"incr n 999990\r\n"))
    add(Step("decr", b"decr n 3\r\n"))
    add(Step("decr below zero stops at 0", b"decr n 99999999\r\n"))
    add(Step("incr wraps at 2^64", b"incr n 18446744073709551615\r\nincr n 2\r\n"))
    add(Step("incr of a missing key", b"incr nokey 1\r\n"))
    add(Step("incr of a non-number", b"incr k2 1\r\n"))
    add(Step("incr with a bad delta", b"incr n abc\r\n"))
    add(Step("incr/decr noreply", b"incr n 7 noreply\r\ndecr n 2 noreply\r\n"))
    add(Step("get counter", b"get n\r\n"))
    add(Step("touch", b"touch k1 1000\r\n"))
    add(Step("touch of a missing key", b"touch nokey 1000\r\n"))
    add(Step("touch noreply", b"touch k1 2000 noreply\r\n"))
    add(Step("gat", b"gat 1000 k1 k2 nokey\r\n"))
    add(Step("gats", b"gats 1000 k1\r\n"))
    add(Step("gat without keys", b"gat 1000\r\n"))
    add(Step("set already expired (negative exptime)", st(b"set", b"gone", b"x", 0, -1)))
    add(Step("get of the expired key", b"get gone\r\n"))
    add(Step("verbosity", b"verbosity 1\r\n"))
    add(Step("verbosity noreply", b"verbosity 1 noreply\r\n"))
    add(Step("verbosity without level", b"verbosity\r\n"))
    # --- meta protocol ---
    add(Step("mn", b"mn\r\n"))
    add(Step("ms", b"ms m1 5 F7 T0\r\nhello\r\n"))
    add(Step("mg v f s k", b"mg m1 v f s k\r\n"))
    add(Step("mg with opaque", b"mg m1 v O1234 k\r\n"))
    add(Step("mg of a missing key", b"mg nokey v\r\n"))
    add(Step("mg of a missing key with opaque, k", b"mg nokey v O99 k\r\n"))
    add(Step("mg q: hit, miss, mn", b"mg m1 v q\r\nmg nokey v q\r\nmn\r\n"))
    add(Step("mg without flags (HD)", b"mg m1\r\n"))
    add(Step("mg c k", b"mg m1 c k v\r\n"))
    add(Step("ms with compare-and-swap C", b"ms m1 3 C{cas}\r\nnew\r\n"))
    add(Step("ms with a stale C (EX)", b"ms m1 3 C{cas}\r\nold\r\n"))
    add(Step("mg after ms C", b"mg m1 v k c\r\n"))
    add(Step("ms mode add (E) on an existing key (NS)", b"ms m1 1 ME\r\nx\r\n"))
    add(Step("ms mode append", b"ms m1 4 MA\r\n-app\r\n"))
    add(Step("ms mode prepend", b"ms m1 4 MP\r\npre-\r\n"))
    add(Step("ms mode replace on missing (NS)", b"ms nokey 1 MR\r\nx\r\n"))
    add(Step("ms mode set with flags, quiet", b"ms m2 2 MS F3 q\r\nm2\r\nmn\r\n"))
    add(Step("mg after ms modes", b"mg m1 v\r\nmg m2 v f\r\n"))
    add(Step("ms base64 key", b"ms bTM= 2 b\r\nb3\r\n"))
    add(Step("mg base64 key", b"mg bTM= b v k\r\nget m3\r\n"))
    add(Step("ms invalidate flag", b"ms m4 2 I\r\nm4\r\n"))
    add(Step("md", b"md m2\r\n"))
    add(Step("md of a missing key", b"md m2\r\n"))
    add(Step("md q", b"md m1 q\r\nmd m1 q\r\nmn\r\n"))
    add(Step("md with opaque", b"md nokey O7\r\n"))
    add(Step("ma on a missing key", b"ma cnt\r\n"))
    add(Step("ma autovivify", b"ma cnt N0 J13 v\r\n"))
    add(Step("ma incr", b"ma cnt v\r\n"))
    add(Step("ma decr by D", b"ma cnt MD D5 v\r\n"))
    add(Step("ma with opaque, quiet", b"ma cnt q O5\r\nma nokey q O6\r\nmn\r\n"))
    add(Step("ma on a non-number", b"ma m4 v\r\n"))
    add(Step("mg vivify on miss", b"mg viv N30 v\r\nmg viv v\r\n"))
    add(Step("mg with an unknown flag", b"mg m4 v !\r\n"))
    add(Step("ms with a bad length", b"ms m5 abc\r\nxyz\r\n"))
    add(Step("ms without length", b"ms m5\r\n"))
    add(Step("mg without key", b"mg\r\n"))
    add(Step("mg 251-byte key", b"mg " + LONGKEY + b" v\r\n"))
    add(Step("ms bad data chunk", b"ms m6 3\r\nabcdef\r\n"))
    add(Step("unknown meta-like command mz", b"mz m1\r\n"))
    # --- pipelined ---
    add(Step("pipelined sets and gets of the same keys",
             st(b"set", b"p1", b"one") + b"get p1\r\n" +
             st(b"set", b"p1", b"uno") + b"get p1\r\n" +
             st(b"set", b"p2", b"two") + b"get p1 p2\r\n" +
             b"delete p1\r\nget p1 p2\r\n", mode="pipe"))
    add(Step("pipelined mixed text and meta",
             b"incr n 1\r\nmg p2 v\r\nms p3 1\r\n3\r\nmn\r\n"
             b"get p3\r\nmd p3\r\nmg p3 v\r\ntouch p2 100\r\n"
             b"gat 100 p2\r\nappend p2 0 0 1\r\n!\r\nget p2\r\n", mode="pipe"))
    add(Step("pipelined 200 sets then 200 gets",
             b"".join(st(b"set", b"pp%d" % i, b"val%d" % i) for i in range(200)) +
             b"".join(b"get pp%d\r\n" % i for i in range(200)), mode="pipe",
             wait=5))
    add(Step("pipelined noreply writes then a get",
             b"".join(st(b"set", b"nr%d" % i, b"%d" % i, extra=b" noreply")
                      for i in range(50)) +
             b"get " + b" ".join(b"nr%d" % i for i in range(50)) + b"\r\n",
             mode="pipe"))
    add(Step("pipelined errors between good requests",
             b"get k1\r\nbogus\r\nget k2\r\n\r\nset x\r\nget k1\r\n", mode="pipe"))
    # --- requests arriving in pieces ---
    add(Step("set arriving a few bytes at a time", st(b"set", b"d1", b"dripped value"),
             mode="drip"))
    add(Step("get arriving a few bytes at a time", b"get d1 k1\r\n", mode="drip"))
    add(Step("LF-only line ends", b"get d1\nset d2 0 0 2\nab\r\nget d2\n"))
    # --- odd inputs ---
    add(Step("empty line", b"\r\n"))
    add(Step("bare LF", b"\n"))
    add(Step("unknown command", b"bogus k1\r\n"))
    add(Step("upper-case command", b"GET k1\r\n"))
    add(Step("garbage bytes", b"\x01\x02\xfe\xff garbage\r\n"))
    add(Step("spaces only", b"     \r\n"))
    add(Step("get without key", b"get\r\n"))
    add(Step("get with trailing spaces", b"get k1   \r\n"))
    add(Step("get with several spaces between keys", b"get k1    k2\r\n"))
    add(Step("get 251-byte key", b"get " + LONGKEY + b"\r\n"))
    add(Step("get 251-byte key among good ones", b"get k1 " + LONGKEY + b" k2\r\n"))
    add(Step("set 251-byte key", st(b"set", LONGKEY, b"v")))
    add(Step("delete 251-byte key", b"delete " + LONGKEY + b"\r\n"))
    add(Step("incr 251-byte key", b"incr " + LONGKEY + b" 1\r\n"))
    add(Step("set without arguments", b"set\r\n"))
    add(Step("set with too few arguments", b"set k 0 0\r\n"))
    add(Step("set with a non-numeric length", b"set k 0 0 abc\r\nabc\r\n"))
    add(Step("set with a negative length", b"set k 0 0 -1\r\n"))
    add(Step("set with a non-numeric flag", b"set k x 0 1\r\nv\r\n"))
    add(Step("set with a negative flag", b"set k -1 0 1\r\nv\r\n"))
    add(Step("set with too many arguments", b"set k 0 0 1 2 3 4\r\nv\r\n"))
    add(Step("bad data chunk (longer)", b"set k 0 0 3\r\nabcde\r\n"))
    add(Step("bad data chunk (shorter)", b"set k 0 0 5\r\nab\r\nget k1\r\n"))
    add(Step("get after bad data chunks", b"get k\r\n"))
    add(Step("value over the item size limit", b"set huge 0 0 2000000\r\n" +
             b"h" * 2000000 + b"\r\n", wait=10))
    add(Step("get after the refused value", b"get huge k1\r\n"))
    add(Step("cas without cas value", b"cas k1 0 0 1\r\nv\r\n"))
    add(Step("cas with a non-numeric cas value", b"cas k1 0 0 1 abc\r\nv\r\n"))
    add(Step("touch with a bad exptime", b"touch k1 abc\r\n"))
    add(Step("gat with a bad exptime", b"gat abc k1\r\n"))
    add(Step("gets without keys", b"gets\r\n"))
    add(Step("set with a bad exptime", b"set k 0 abc 1\r\nv\r\n"))
    add(Step("set with the largest flags", st(b"set", b"fl", b"v", 4294967295) +
             b"get fl\r\n"))
    add(Step("set with flags over 32 bits", b"set fl 4294967296 0 1\r\nv\r\n"))
    add(Step("set with an absolute exptime in the past", st(b"set", b"past", b"v",
                                                          0, 2592001) +
             b"get past\r\n"))
    add(Step("incr with a negative delta", b"incr n -1\r\n"))
    add(Step("malformed noreply write", b"set k 0 0 abc noreply\r\nv\r\n"))
    add(Step("key with a tab inside", st(b"set", b"ta\tb", b"tab") +
             b"get ta\tb\r\n"))
    add(Step("UTF-8 key", st(b"set", "键".encode(), b"utf8") +
             b"get " + "键".encode() + b"\r\n"))
    add(Step("line ending in CR CR LF", b"get k1\r\r\n"))
    add(Step("value at the item size limit (1048576 bytes)",
             st(b"set", b"edge", b"e" * 1048576), wait=10))
    add(Step("value just under the item size limit (1048400 bytes)",
             st(b"set", b"edge", b"e" * 1048400) + b"get edge\r\n", wait=10))
    add(Step("a 2 MB multi-get reply", st(b"set", b"big2", b"b" * 500000) +
             b"get big2 big2 big2 big2\r\n", wait=10))
    add(Step("get of 2000 keys (a 16 kB line)",
             b"get " + b" ".join(b"k1" if i % 100 == 0 else b"y%04d" % i
                                 for i in range(2000)) + b"\r\n"))
    add(Step("a 9 MiB get line (37599 keys of 250 bytes, all misses)",
             b"get " + b" ".join(b"%0250d" % i for i in range(37599)) + b"\r\n",
             mode="pipe", wait=20))
    add(Step("pipelined 1000 sets of 1000 bytes in one write",
             b"".join(st(b"set", b"kb%d" % i, b"%04d" % i * 250)
                      for i in range(1000)) + b"get kb0 kb999\r\n",
             mode="pipe", wait=10))
    add(Step("pipelined mg q hits and misses over many keys, then mn",
             b"".join(b"mg kb%d v q k\r\n" % i if i % 3 else
                      b"mg nokb%d v q k\r\n" % i for i in range(40)) + b"mn\r\n",
             mode="pipe"))
    add(Step("mg with a flag twice", b"mg kb1 v v s s\r\n"))
    add(Step("ms with a negative TTL", b"ms neg 2 T-1\r\nnn\r\nmg neg v\r\n"))
    add(Step("ma in incr mode with autovivify", b"ma viv2 N0 J5 MI D2 v\r\n"))
    add(Step("mg with a bad base64 key", b"mg !!!! b v\r\n"))
    # found by tests/tools/mcfuzz.py
    add(Step("ms with a bad flag and a bad data chunk (the flag first)",
             b"ms m7 1 MS MX\r\nabc\r\n"))
    add(Step("set a key to touch", st(b"set", b"gk", b"touched")))
    # alone: memcached drops the replies it has not sent yet on this error
    add(Step("gat -1 of a key, then a 251-byte key: the first is touched",
             b"gat -1 gk " + LONGKEY + b"\r\n"))
    add(Step("the key touched with -1 is gone", b"get gk\r\n"))
    add(Step("delete of a 251-byte key with a time", b"delete " + LONGKEY +
             b" 5\r\n"))
    add(Step("flush_all noreply noreply", b"flush_all noreply noreply\r\n"
             b"get k1\r\n"))
    add(Step("delete of a key named noreply", b"delete noreply\r\n"))
    add(Step("noreply set, then quit, pipelined",
             st(b"set", b"lastw", b"written", extra=b" noreply") + b"quit\r\n",
             mode="pipe"))
    add(Step("the write before quit is there", b"get lastw\r\n"))
    add(Step("touch without time", b"touch k1\r\n"))
    add(Step("flush_all", b"flush_all\r\n"))
    add(Step("get after flush_all", b"get k1 k2 becd0000 m1 cnt\r\n"))
    add(Step("set after flush_all", st(b"set", b"k1", b"after flush")))
    add(Step("flush_all 0 noreply", b"flush_all 0 noreply\r\n"))
    add(Step("get after flush_all noreply", b"get k1\r\n"))
    add(Step("flush_all with a bad argument", b"flush_all abc\r\n"))
    add(Step("quit", b"quit\r\n"))
    add(Step("after quit: a new connection works", st(b"set", b"k1", b"again") +
             b"get k1\r\n"))
    add(Step("pipelined get then quit then get",
             b"get k1\r\nquit\r\nget k1\r\n", mode="pipe"))
    add(Step("a 20000-byte garbage line", b"x" * 20000 + b"\r\n", mode="pipe"))
    add(Step("after the long line", b"get k1\r\n"))
    add(Step("get of 400 keys (a 4000-byte line)",
             b"get " + b" ".join(b"k1" if i % 50 == 0 else b"zz%d" % i
                                 for i in range(400)) + b"\r\n"))
    # 2000 bytes: memcached closes a connection whose buffer holds more than
    # 2048 bytes without a newline (unless it starts with "get "), so a
    # longer line would be closed or not depending on how TCP split it
    add(Step("a 2000-byte line without newline (sentinel swallowed)",
             b"x" * 2000, mode="pipe", wait=1))
    add(Step("after the long line", b"get k1\r\n"))
    return s


class Target:
    """One server under test: a connection and its cas bookkeeping."""

    def __init__(self, name, hostport):
        self.name = name
        self.addr = parse_hostport(hostport)
        self.sock = None
        self.last_cas = b"0"
        self.cas_names = {}
        self.timeouts = 0

    def connect(self):
        self.sock = socket.create_connection(self.addr, timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def drop(self):
        if self.sock:
            self.sock.close()
        self.sock = None

    def exchange(self, step):
        """Send a step and the sentinel; the reply up to the sentinel."""
        if self.sock is None:
            self.connect()
        data = step.data.replace(b"{cas}", self.last_cas)
        try:
            if step.mode == "pipe":
                self.sock.sendall(data + SENTINEL)
            elif step.mode == "drip":
                for i in range(0, len(data), 3):
                    self.sock.sendall(data[i:i + 3])
                    time.sleep(0.002)
                self.sock.sendall(SENTINEL)
            else:
                self.sock.sendall(data)
                time.sleep(0.001)
                self.sock.sendall(SENTINEL)
        except OSError as e:
            self.drop()
            return b"<send failed: %s>" % str(e).encode()
        return self.read_reply(step.wait)

    def read_reply(self, wait):
        buf = bytearray()
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.drop()
                self.timeouts += 1
                return bytes(buf) + b"<timeout: no VERSION line>"
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                # memcached closes on some errors with our data unread,
                # which makes it a reset: the same as a close to a client
                self.drop()
                return bytes(buf) + b"<closed>"
            except OSError as e:
                self.drop()
                return bytes(buf) + b"<recv failed: %s>" % str(e).encode()
            if not chunk:
                self.drop()
                return bytes(buf) + b"<closed>"
            buf += chunk
            m = SENTINEL_RE.search(buf)
            if m:
                self.timeouts = 0
                return bytes(buf[:m.start()])

    def normalize(self, reply):
        """Rename cas values (per key) to #1, #2, ...; remember the last."""
        out = []
        for line in reply.split(b"\r\n"):
            m = re.match(rb"^(VALUE \S+ \d+ \d+ )(\d+)$", line)
            if m:
                key = line.split()[1]
                line = m.group(1) + self.cas_name(key, m.group(2))
            elif re.match(rb"^(VA|HD|EN|NF|NS|EX)( |$)", line):
                toks = line.split(b" ")
                key = next((t[1:] for t in toks[1:] if t.startswith(b"k")), b"?")
                for i, t in enumerate(toks[1:], 1):
                    if re.match(rb"^c\d+$", t):
                        toks[i] = b"c" + self.cas_name(key, t[1:])
                line = b" ".join(toks)
            out.append(line)
        return b"\r\n".join(out)

    def cas_name(self, key, cas):
        self.last_cas = cas
        k = (key, cas)
        if k not in self.cas_names:
            self.cas_names[k] = b"#%d" % (len(self.cas_names) + 1)
        return self.cas_names[k]


def show(b, limit=600):
    r = repr(b)
    return r if len(r) <= limit else r[:limit] + "... (%d bytes)" % len(b)


def first_difference(a, b):
    n = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]),
             min(len(a), len(b)))
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", action="store_true", help="list the steps only")
    ap.add_argument("--transcript", help="write every request and both replies here")
    ap.add_argument("reference", nargs="?")
    ap.add_argument("candidate", nargs="?")
    a = ap.parse_args()
    seq = steps()
    if a.list:
        for i, s in enumerate(seq, 1):
            print("%3d %-6s %s" % (i, s.mode, s.name))
        return 0
    if not a.reference or not a.candidate:
        ap.error("REFERENCE and CANDIDATE are required")
    ref, cand = Target("reference", a.reference), Target("candidate", a.candidate)
    try:
        ref.connect()
        cand.connect()
    except OSError as e:
        print("mcdiff: cannot connect: %s" % e, file=sys.stderr)
        return 2
    tr = open(a.transcript, "w") if a.transcript else None
    bad = 0
    for i, s in enumerate(seq, 1):
        if cand.timeouts >= 5:
            print("not ok - %d %s (not run: candidate timed out 5 times in a row)"
                  % (i, s.name))
            bad += 1
            continue
        r_raw, c_raw = ref.exchange(s), cand.exchange(s)
        r, c = ref.normalize(r_raw), cand.normalize(c_raw)
        if tr:
            tr.write("== %d %s [%s]\n>> %s\nreference: %s\ncandidate: %s\n"
                     % (i, s.name, s.mode, show(s.data, 2000), show(r, 2000),
                        show(c, 2000)))
        if r == c:
            print("ok - %d %s" % (i, s.name))
            continue
        bad += 1
        at = first_difference(r, c)
        print("not ok - %d %s (replies differ at byte %d)" % (i, s.name, at))
        print("#   request  : %s" % show(s.data))
        print("#   reference: %s" % show(r))
        print("#   candidate: %s" % show(c))
        if len(r) > 200 or len(c) > 200:
            print("#   from byte %d: reference %s, candidate %s"
                  % (at, show(r[at:at + 80]), show(c[at:at + 80])))
    if tr:
        tr.close()
    print("# %d steps, %d differ" % (len(seq), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
