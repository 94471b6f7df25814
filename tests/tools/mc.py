#!/usr/bin/env python3
"""A small memcached client for kmagent's tests (python3, stdlib only).

Usage:
  mc.py [--udp] [--timeout S] HOST:PORT get KEY        value on stdout; exit 1 on miss
  mc.py [--udp] [--timeout S] HOST:PORT gets KEY       "VALUE CAS" on stdout; exit 1 on miss
  mc.py [--udp] HOST:PORT set KEY VALUE [FLAGS [EXPTIME]]   prints the reply; exit 0 on STORED
  mc.py [--udp] HOST:PORT add|replace|append|prepend KEY VALUE   likewise
  mc.py [--udp] HOST:PORT delete KEY                   exit 0 on DELETED
  mc.py [--udp] HOST:PORT version                      exit 0 when the server answers
  mc.py [--udp] [--quiet-ms N] HOST:PORT raw < FILE    send stdin as is, write the raw reply
  mc.py [--udp] [--quiet-ms N] HOST:PORT script FILE   one request per line (\\r\\n added,
                                                       "\\xNN" escapes allowed), sent one at a
                                                       time; each reply printed raw
  mc.py [--udp] HOST:PORT seq < FILE                   checked, timed requests, one a line:
                                                       "set KEY VALUE", "get KEY VALUE" (a hit
                                                       with VALUE expected), "miss KEY"; prints
                                                       "ok|FAIL ms line" each, then "requests N",
                                                       "failed N", "max_ms M"; exit 1 if any failed;
                                                       --pace-ms N starts one every N ms

HOST:PORT may be [IPV6]:PORT, or a unix socket path (starting with "/").
Values are bytes: the command line's UTF-8 encoding is sent unchanged and a
value read back is written to stdout unchanged (no newline added).
`raw` reads until the connection closes or the server has been quiet for
--quiet-ms (default 200) milliseconds; over UDP it sends stdin as one datagram
with an 8-byte frame header and reassembles the reply by sequence number.
Exit status 2: usage or connection error.

Also a module: tests/tools drivers import Client from here.
"""

import argparse
import os
import random
import select
import socket
import struct
import sys
import time


class ProtocolError(Exception):
    pass


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # [IPv6]:PORT
    if not host or not port.isdigit():
        raise ValueError("expected HOST:PORT or [IPV6]:PORT, got %r" % s)
    return host, int(port)


class Client:
    """One memcached connection, TCP or UDP (memcached's 8-byte frame)."""

    def __init__(self, hostport, udp=False, timeout=2.0):
        self.udp = udp
        self.timeout = timeout
        self.buf = b""
        self.reqid = random.randrange(0, 65536)
        if isinstance(hostport, str) and hostport.startswith("/"):
            # a unix socket path (kmagentd -f, memcached -s)
            self.addr = hostport
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(hostport)
            return
        self.addr = parse_hostport(hostport) if isinstance(hostport, str) else hostport
        if udp:
            family = socket.AF_INET6 if ":" in self.addr[0] else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.connect(self.addr)
        else:
            self.sock = socket.create_connection(self.addr, timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)

    def close(self):
        self.sock.close()

    # ---- raw bytes ----

    def send(self, data):
        if self.udp:
            self.reqid = (self.reqid + 1) & 0xFFFF
            self.buf = b""
            self.sock.send(struct.pack("!HHHH", self.reqid, 0, 1, 0) + data)
        else:
            self.sock.sendall(data)

    def recv_udp_reply(self, timeout=None):
        """Reassemble one UDP reply (all datagrams of our request id)."""
        parts = {}
        total = None
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while total is None or len(parts) < total:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("udp reply incomplete (%d of %s datagrams)"
                                     % (len(parts), total))
            self.sock.settimeout(left)
            dgram = self.sock.recv(65536)
            if len(dgram) < 8:
                continue
            rid, seq, tot, _ = struct.unpack("!HHHH", dgram[:8])
            if rid != self.reqid:
                continue  # a late reply to an earlier request
            total = tot
            parts[seq] = dgram[8:]
        return b"".join(parts[i] for i in sorted(parts))

    def recv_quiet(self, quiet_ms=200, max_wait=None):
        """Everything until the peer closes or stays quiet quiet_ms."""
        if self.udp:
            try:
                return self.recv_udp_reply(timeout=max_wait or self.timeout)
            except socket.timeout:
                return b""
        out = bytearray(self.buf)
        self.buf = b""
        deadline = time.monotonic() + (max_wait if max_wait else 3600)
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], quiet_ms / 1000.0)
            if not r:
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            out += chunk
        return bytes(out)

    # ---- framed reads (TCP and UDP alike) ----

    def _fill(self):
        if self.udp:
            self.buf += self.recv_udp_reply()
            return
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ProtocolError("connection closed by server")
        self.buf += chunk

    def readline(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def readexact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_values(self):
        """Read VALUE blocks up to END: list of (key, flags, value, cas)."""
        items = []
        while True:
            line = self.readline()
            if line == b"END":
                return items
            parts = line.split()
            if not parts or parts[0] != b"VALUE" or len(parts) < 4:
                raise ProtocolError("unexpected line %r" % line)
            n = int(parts[3])
            data = self.readexact(n + 2)
            if data[-2:] != b"\r\n":
                raise ProtocolError("value block not ended by CRLF")
            cas = int(parts[4]) if len(parts) > 4 else None
            items.append((parts[1], int(parts[2]), data[:-2], cas))

    # ---- commands ----

    def get(self, key, cmd=b"get"):
        self.send(cmd + b" " + key + b"\r\n")
        items = self.read_values()
        return items[0] if items else None

    def store(self, cmd, key, value, flags=0, exptime=0, cas=None):
        line = b"%s %s %d %d %d" % (cmd, key, flags, exptime, len(value))
        if cas is not None:
            line += b" %d" % cas
        self.send(line + b"\r\n" + value + b"\r\n")
        return self.readline()

    def simple(self, line):
        self.send(line + b"\r\n")
        return self.readline()


def unescape(line):
    """Script lines: backslash escapes (\\xNN, \\r, \\n, \\\\) to bytes."""
    return line.encode("utf-8").decode("unicode_escape").encode("latin-1")


def run_seq(a, out):
    """Requests from stdin, each checked and timed (see the usage)."""
    n = failed = 0
    worst = 0.0
    c = None
    start = time.monotonic()
    for text in sys.stdin.buffer.read().splitlines():
        f = text.split(None, 2)
        if not f:
            continue
        if a.pace_ms:
            time.sleep(max(0.0, start + n * a.pace_ms / 1000 - time.monotonic()))
        n += 1
        t0 = time.monotonic()
        good = False
        try:
            if c is None:
                c = Client(a.server, udp=a.udp, timeout=a.timeout)
            if f[0] == b"set" and len(f) == 3:
                good = c.store(b"set", f[1], f[2]) == b"STORED"
            elif f[0] == b"get" and len(f) == 3:
                item = c.get(f[1])
                good = item is not None and item[2] == f[2]
            elif f[0] == b"miss" and len(f) == 2:
                good = c.get(f[1]) is None
            else:
                raise ValueError("bad seq line %r" % text)
        except (OSError, ProtocolError) as e:
            if c:
                c.close()
            c = None
            text += b" (%s)" % str(e).encode()
        ms = (time.monotonic() - t0) * 1000
        worst = max(worst, ms)
        failed += not good
        out.write(b"%s %.1f %s\n" % (b"ok" if good else b"FAIL", ms, text))
    out.write(b"requests %d\nfailed %d\nmax_ms %d\n" % (n, failed, int(worst + 0.5)))
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(
        description="memcached test client (see the module docstring)")
    ap.add_argument("--udp", action="store_true")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--quiet-ms", type=int, default=200)
    ap.add_argument("--pace-ms", type=int, default=0)
    ap.add_argument("server")
    ap.add_argument("command")
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()
    out = sys.stdout.buffer
    arg = [os.fsencode(x) for x in a.args]

    try:
        c = Client(a.server, udp=a.udp, timeout=a.timeout)
    except (OSError, ValueError) as e:
        print("mc.py: %s: %s" % (a.server, e), file=sys.stderr)
        return 2

    try:
        cmd = a.command
        if cmd in ("get", "gets") and len(arg) == 1:
            item = c.get(arg[0], cmd.encode())
            if item is None:
                return 1
            out.write(item[2])
            if cmd == "gets":
                out.write(b" %d" % item[3])
            return 0
        if cmd in ("set", "add", "replace", "append", "prepend") and 2 <= len(arg) <= 4:
            flags = int(arg[2]) if len(arg) > 2 else 0
            exptime = int(arg[3]) if len(arg) > 3 else 0
            reply = c.store(cmd.encode(), arg[0], arg[1], flags, exptime)
            out.write(reply + b"\n")
            return 0 if reply == b"STORED" else 1
        if cmd == "delete" and len(arg) == 1:
            reply = c.simple(b"delete " + arg[0])
            out.write(reply + b"\n")
            return 0 if reply == b"DELETED" else 1
        if cmd == "version" and not arg:
            reply = c.simple(b"version")
            out.write(reply + b"\n")
            return 0 if reply.startswith(b"VERSION ") else 1
        if cmd == "raw" and not arg:
            c.send(sys.stdin.buffer.read())
            out.write(c.recv_quiet(a.quiet_ms))
            return 0
        if cmd == "script" and len(arg) == 1:
            with open(arg[0], encoding="utf-8") as f:
                for line in f:
                    line = line.rstrip("\n")
                    if not line or line.startswith("#"):
                        continue
                    c.send(unescape(line) + b"\r\n")
                    out.write(c.recv_quiet(a.quiet_ms))
            return 0
        if cmd == "seq" and not arg:
            return run_seq(a, out)
        ap.print_usage(sys.stderr)
        print("mc.py: bad command or argument count: %s" % cmd, file=sys.stderr)
        return 2
    except (OSError, ProtocolError) as e:
        print("mc.py: %s: %s" % (cmd, e), file=sys.stderr)
        return 2
    finally:
        out.flush()
        c.close()


if __name__ == "__main__":
    sys.exit(main())
