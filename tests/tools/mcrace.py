#!/usr/bin/env python3
"""A TCP relay in front of a memcached that makes one race happen on cue.

  mcrace.py LISTEN_ADDR:PORT UPSTREAM_ADDR:PORT --key KEY --log FILE

Relays every connection to UPSTREAM unchanged.  Once armed (SIGUSR1), the
first `mg KEY` with no flags that a client sends (read-repair's "is the
source still holding it?" check) is held back: the relay first deletes KEY
on UPSTREAM over a connection of its own, as a client delete landing
between a fetch and that check would, then forwards the mg.  It logs
"armed", "deleted KEY: <reply>" and "forwarded" to FILE.  memcached alone
cannot be made to lose a key at that exact moment.
"""

import argparse
import os
import signal
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mc import Client, parse_hostport  # noqa: E402

state = {"armed": False, "lock": threading.Lock()}


def log(path, line):
    with open(path, "a") as f:
        f.write(line + "\n")


def delete_upstream(upstream, key):
    c = Client(upstream)
    try:
        return c.simple(b"delete " + key).decode(errors="replace")
    finally:
        c.close()


def pump_up(client, server, args):
    """client -> server, line by line, racing the armed mg."""
    check = b"mg " + args.key.encode() + b"\r\n"
    buf = b""
    while True:
        data = client.recv(65536)
        if not data:
            break
        buf += data
        while b"\r\n" in buf:
            line, buf = buf.split(b"\r\n", 1)
            line += b"\r\n"
            with state["lock"]:
                race = state["armed"] and line == check
                if race:
                    state["armed"] = False
            if race:
                reply = delete_upstream(args.upstream, args.key.encode())
                log(args.log, "deleted %s: %s" % (args.key, reply))
            server.sendall(line)
            if race:
                log(args.log, "forwarded")
    if buf:
        server.sendall(buf)
    server.shutdown(socket.SHUT_WR)


def pump_down(server, client):
    while True:
        data = server.recv(65536)
        if not data:
            break
        client.sendall(data)
    client.shutdown(socket.SHUT_WR)


def relay(client, args):
    try:
        server = socket.create_connection(args.upstream, timeout=5)
        server.settimeout(None)
    except OSError:
        client.close()
        return
    down = threading.Thread(target=pump_down, args=(server, client),
                            daemon=True)
    down.start()
    try:
        pump_up(client, server, args)
    except OSError:
        pass
    down.join(timeout=5)
    client.close()
    server.close()


def arm(args):
    with state["lock"]:
        state["armed"] = True
    log(args.log, "armed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("listen", type=parse_hostport)
    ap.add_argument("upstream", type=parse_hostport)
    ap.add_argument("--key", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    signal.signal(signal.SIGUSR1, lambda *_: arm(args))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(args.listen)
    ls.listen(64)
    log(args.log, "listening")
    while True:
        try:
            c, _ = ls.accept()
        except InterruptedError:
            continue
        threading.Thread(target=relay, args=(c, args), daemon=True).start()


if __name__ == "__main__":
    main()
