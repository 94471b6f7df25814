#!/usr/bin/env python3
"""Hand-made Ethernet frames carrying memcached UDP gets (AF_PACKET).

  mcrawudp.py IFACE DST_MAC DST_IP:PORT KIND KEY [--count N] [--src IP]

Sends N frames (default 10) from IFACE (its own MAC as the source) to
DST_MAC, each a memcached UDP "get KEY" (8-byte frame header, request
ids 1..N) from --src (default: IFACE's first IPv4 address) in the way
KIND says:
  plain    one frame, as a client would send it
  frag     the datagram cut into two IP fragments (both sent)
  frag1    its first IP fragment only (MF set, the rest never comes)
  fragn    its second IP fragment only (offset 8 bytes: no UDP header)
  vlan     one frame with an 802.1Q tag (VLAN 7) before the IPv4 header
  spoof    one frame from --src, an address no host of the lab has
Replies are not read: the kernel of IFACE's host drops those to other
addresses.  Root only.  Exit 0 once every frame was sent.
"""

import argparse
import fcntl
import socket
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac_bytes(s):
    return bytes(int(x, 16) for x in s.split(":"))


def iface_mac(name):
    with open("/sys/class/net/%s/address" % name) as f:
        return mac_bytes(f.read().strip())


def iface_ip(name):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    req = struct.pack("256s", name.encode()[:15])
    addr = fcntl.ioctl(s.fileno(), 0x8915, req)[20:24]  # SIOCGIFADDR
    s.close()
    return socket.inet_ntoa(addr)


def udp_datagram(src, dst, sport, dport, payload):
    length = 8 + len(payload)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + \
        struct.pack("!BBH", 0, 17, length)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    c = csum(pseudo + hdr + payload) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, c) + payload


def ipv4(src, dst, ident, payload, frag_off=0, more=False):
    flags = (0x2000 if more else 0) | (frag_off // 8)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident,
                      flags, 64, 17, 0, socket.inet_aton(src),
                      socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def frames(kind, src, dst, dport, key, rid, smac, dmac):
    payload = struct.pack("!HHHH", rid, 0, 1, 0) + b"get " + key + b"\r\n"
    dgram = udp_datagram(src, dst, 40000 + rid, dport, payload)
    eth = dmac + smac + b"\x08\x00"
    ident = 0x4000 + rid
    if kind in ("plain", "spoof"):
        return [eth + ipv4(src, dst, ident, dgram)]
    if kind == "vlan":
        return [dmac + smac + b"\x81\x00" + struct.pack("!H", 7) +
                b"\x08\x00" + ipv4(src, dst, ident, dgram)]
    first = eth + ipv4(src, dst, ident, dgram[:16], 0, True)
    rest = eth + ipv4(src, dst, ident, dgram[16:], 16, False)
    return {"frag": [first, rest], "frag1": [first], "fragn": [rest]}[kind]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("iface")
    ap.add_argument("dst_mac")
    ap.add_argument("dst")
    ap.add_argument("kind", choices=("plain", "frag", "frag1", "fragn",
                                     "vlan", "spoof"))
    ap.add_argument("key")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--src")
    a = ap.parse_args()
    host, _, port = a.dst.rpartition(":")
    src = a.src or iface_ip(a.iface)
    smac, dmac = iface_mac(a.iface), mac_bytes(a.dst_mac)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.iface, 0))
    sent = 0
    for rid in range(1, a.count + 1):
        for f in frames(a.kind, src, host, int(port), a.key.encode(), rid,
                        smac, dmac):
            s.send(f)
        sent += 1
    s.close()
    print("# sent %d %s get(s) of %s from %s" % (sent, a.kind, a.key, src))
    return 0


if __name__ == "__main__":
    sys.exit(main())
