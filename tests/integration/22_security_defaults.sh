#!/bin/bash
# Security defaults of the daemon, as a new user meets them (no kernel path):
#  - UDP is answered only to the subnets kmagentd serves (and loopback)
#    unless --allow says otherwise: a client from another subnet is dropped
#    and counted, TCP still serves it; --allow 0.0.0.0/0 allows everyone;
#  - a UDP reply object of more datagrams than --udp-reply-max is dropped
#    and counted; the default (one item of --item-size-max) refuses no
#    legitimate reply; the old --udp-reply-ratio is named as replaced;
#  - a line ending in "HTTP/1.x" closes the connection, as memcached does
#    (the replies before it still go);
#  - a binary-protocol request gets a binary "Not supported" error at once
#    (memcached -B ascii would hang), opcode and opaque echoed;
#  - a second kmagentd on a port in use exits with a message, the first
#    keeps serving.
. "$(dirname "$0")/lib.sh"

lab_init
lab_host m1 198.18.0.2
lab_host p 198.18.0.4
lab_host c 198.18.0.10
lab_host x 198.19.0.10 # another subnet, on the same LAN
lab_in x ip route add 198.18.0.0/24 dev eth0 || lab_die "route on x"
lab_in p ip route add 198.19.0.0/24 dev eth0 || lab_die "route on p"
lab_memcached m1 11211
P=198.18.0.4
lab_kmagentd p -p 11210 -s 198.18.0.2:11211
LAB_LABEL=km-any lab_kmagentd p -p 11220 -s 198.18.0.2:11211 \
	--allow 0.0.0.0/0 --udp-reply-max 2

stat() {
	printf 'stats\r\n' | lab_mc c "$1" raw | tr -d '\r' |
		awk -v n="$2" '$2 == n { print $3 }'
}

lab_log "UDP allow-list: the served subnets by default"
lab_mc c $P:11210 set k1 hello >/dev/null
lab_eq "a client of the subnet: UDP get answered" hello \
	"$(lab_mc c --udp --timeout 1 $P:11210 get k1)"
d0=$(stat $P:11210 kmagent_udp_denied)
lab_not "a client of another subnet: UDP get not answered" \
	lab_mc x --udp --timeout 1 $P:11210 get k1
lab_not "... nor UDP version" lab_mc x --udp --timeout 1 $P:11210 version
lab_eq "both datagrams counted as denied" $((d0 + 2)) \
	"$(stat $P:11210 kmagent_udp_denied)"
lab_eq "... and TCP serves it" hello "$(lab_mc x --timeout 2 $P:11210 get k1)"
lab_eq "--allow 0.0.0.0/0: UDP answered to it too" hello \
	"$(lab_mc x --udp --timeout 1 $P:11220 get k1)"

lab_log "UDP reply bound"
big=$(head -c 20000 /dev/zero | tr '\0' b)
mid=$(head -c 2000 /dev/zero | tr '\0' m)
lab_mc c $P:11210 set big "$big" >/dev/null
lab_mc c $P:11210 set mid "$mid" >/dev/null
c0=$(stat $P:11210 kmagent_udp_reply_capped)
lab_eq "by default a 20,000-byte value (15 datagrams) goes over UDP" 20000 \
	"$(lab_mc c --udp --timeout 1 $P:11210 get big | wc -c)"
lab_eq "nothing capped" "$c0" "$(stat $P:11210 kmagent_udp_reply_capped)"
c0=$(stat $P:11220 kmagent_udp_reply_capped)
lab_eq "--udp-reply-max 2: a 2-datagram value goes" 2000 \
	"$(lab_mc c --udp --timeout 1 $P:11220 get mid | wc -c)"
lab_not "... a 15-datagram one does not" \
	lab_mc c --udp --timeout 1 $P:11220 get big
lab_eq "the dropped reply counted" $((c0 + 1)) \
	"$(stat $P:11220 kmagent_udp_reply_capped)"
lab_eq "... over TCP it is there" 20000 \
	"$(lab_mc c --timeout 2 $P:11220 get big | wc -c)"
lab_ok "--udp-reply-ratio is named as replaced" grep -q \
	"replaced by --udp-reply-max" <<<"$("$LAB_KMAGENTD" --check-config \
		-s 198.18.0.2:11211 --udp-reply-ratio 10 2>&1)"

lab_log "HTTP requests"
for t in 198.18.0.2:11211 $P:11210; do
	got=$(printf 'get k1\r\nGET / HTTP/1.1\r\nget k1\r\n' |
		lab_mc c --quiet-ms 1000 "$t" raw | tr -d '\r' | tr '\n' '|')
	lab_eq "$t: a get, then GET / HTTP/1.1: the get's reply, closed" \
		"VALUE k1 0 5|hello|END|" "$got"
done
# what a line gets: its reply, then "<closed>" if the server hung up
closes() {
	lab_in c "$LAB_PY" -c '
import socket, sys
s = socket.create_connection(("198.18.0.4", 11210), timeout=2)
s.sendall(sys.argv[1].encode())
out = b""
try:
    while True:
        d = s.recv(4096)
        if not d:
            out += b"<closed>"
            break
        out += d
except socket.timeout:
    out += b"<open>"
print(out.decode())' "$1"
}
lab_eq "POST ... HTTP/1.0 alone: closed at once, no reply" "<closed>" \
	"$(closes $'POST /x HTTP/1.0\r\n')"
lab_eq "an unknown command with HTTP/ not last: ERROR, kept open" \
	"ERROR<open>" "$(closes $'GET / HTTP/1.1 x\r\n' | tr -d '\r\n')"
lab_eq "get of a key named HTTP/1.1 is a get" "END" \
	"$(printf 'get HTTP/1.1\r\n' | lab_mc c $P:11210 raw | tr -d '\r\n')"

lab_log "binary protocol"
binary() {
	lab_in c "$LAB_PY" -c '
import socket, struct, sys, time
s = socket.create_connection(("198.18.0.4", 11210), timeout=2)
# GET "k1": magic 0x80, opcode 0, key length 2, body 2, opaque 0x11223344
s.sendall(struct.pack(">BBHBBHIIQ", 0x80, 0, 2, 0, 0, 0, 2, 0x11223344, 0)
          + b"k1")
t0 = time.monotonic()
h = s.recv(24)
magic, op, _, _, _, status, blen, opaque, _ = struct.unpack(">BBHBBHIIQ", h)
body = s.recv(blen)
print("magic=%#x op=%d status=%#x opaque=%#x in<2s=%s %s" % (
    magic, op, status, opaque, time.monotonic() - t0 < 2, body.decode()))'
}
lab_eq "a binary GET: a binary error at once" \
	"magic=0x81 op=0 status=0x83 opaque=0x11223344 in<2s=True Not supported: kmagentd speaks memcached's text protocol" \
	"$(binary)"

lab_log "a second kmagentd on the same port"
out=$(lab_in p timeout 10 "$LAB_KMAGENTD" -D -p 11210 -s 198.18.0.2:11211 \
	--ctl "$LAB_DIR/second.ctl" 2>&1)
lab_eq "it exits with status 1" 1 $?
lab_ok "and says why: $(printf '%s' "$out" | tail -n 1)" \
	grep -q "port 11210 (tcp) on 0.0.0.0 is in use" <<<"$out"
lab_ok "the first one still runs" lab_alive km-p
lab_eq "and serves" hello "$(lab_mc c $P:11210 get k1)"
lab_done
