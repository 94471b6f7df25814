#!/bin/bash
# kmagentd over IPv6 (issue 18, userspace path).  The article's shape with
# IPv6 addresses from 2001:2::/48 (RFC 5180): hosts A and B each run
# memcached (11211, listening on IPv6 only) and kmagentd (11210, -l ::
# dual-stack) proxying both as -s [2001:2::N]:11211; client C.  The
# article's seven steps over IPv6 TCP, then over IPv6 UDP (the daemon's
# UDP socket); an IPv4 client of the dual-stack listener; --allow with
# IPv6 networks refusing a peer outside them; kmagentctl and the metrics
# listener on IPv6; -l ADDR6 serving IPv6 only; the differential protocol
# test (tests/tools/mcdiff.py) over IPv6; a reload in IPv6 forms.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

KEY=becd0000
VALUE=测试例子
A6=2001:2::1 B6=2001:2::2
NAME_1="[2001:2::1]:11211" NAME_2="[2001:2::2]:11211"

# name the hosts so that the ring puts B first for the key, as magent did
first=$("$LAB_PY" "$LAB_ROOT/tests/integration/kmring.py" $KEY \
	"$NAME_1" "$NAME_2" | cut -d' ' -f1)
[ "$first" == "$NAME_1" ] && A6=2001:2::2 B6=2001:2::1
A=[$A6] B=[$B6]
C6=2001:2::a X6=2001:2::20

lab_init
udp_bpffs
lab_host a 198.18.0.1
lab_host6 a $A6
lab_host b 198.18.0.2
lab_host6 b $B6
lab_host c 198.18.0.10
lab_host6 c $C6
lab_host x 198.18.0.11
lab_host6 x $X6
lab_log "A=$A, B=$B: kmagent's ring puts B first for $KEY, as magent did"

# memcached on IPv6 only
lab_memcached6 a 11211
lab_memcached6 b 11211
lab_not "memcached A does not listen on IPv4" lab_answers c 198.18.0.1 11211

BACKENDS=(-s "[2001:2::1]:11211" -s "[2001:2::2]:11211")
# A: --allow in IPv6 and IPv4 forms; B: the default list (its networks)
lab_kmagentd a -l :: -p 11210 "${BACKENDS[@]}" --probe-interval 200 \
	--allow 2001:2::/124 --allow 198.18.0.0/24 --allow ::1 \
	--metrics "[$A6]:9100" --state-dir "$LAB_DIR/state-a"
lab_kmagentd b -l :: -p 11210 "${BACKENDS[@]}" --probe-interval 200
lab_ok "kmagentd A answers on IPv6 TCP" lab_answers c "$A" 11210

ctl() { lab_in a "$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[km-a]}" "$@"; }

# ---- the article's seven steps; $1 = "" (TCP) or --udp --------------------

article()
{
	local via=$1 t=${1:-tcp} i up
	t=${t#--}
	mc() { lab_mc c --timeout 3 ${via:+"$via"} "$@"; }

	lab_log "[$t] step 1: set $KEY through kmagent A"
	lab_eq "[$t] step 1: set $KEY \"$VALUE\" via kmagent A answers STORED" \
		STORED "$(mc "$A:11210" set $KEY "$VALUE")"
	lab_eq "[$t] step 2: memcached A holds the value" "$VALUE" \
		"$(mc "$A:11211" get $KEY)"
	lab_eq "[$t] step 3: memcached B holds the value" "$VALUE" \
		"$(mc "$B:11211" get $KEY)"

	lab_kill mc-b TERM
	lab_not "[$t] step 4: memcached B no longer answers" \
		lab_answers c "$B" 11211
	lab_eq "[$t] step 5: get via kmagent A returns the value" "$VALUE" \
		"$(mc "$A:11210" get $KEY)"
	lab_eq "[$t] step 5: get via kmagent B returns the value" "$VALUE" \
		"$(mc "$B:11210" get $KEY)"
	# a write B misses: A's journal notes it for B
	lab_eq "[$t] a write while B is down is STORED on A" STORED \
		"$(mc "$A:11210" set "missed-$t" x)"
	[ "$t" == tcp ] && lab_ok "A's journal names the IPv6 backend B missed" \
		grep -qF "n [$B6]:11211 $(printf %s "missed-$t" | od -An -tx1 |
			tr -d ' \n')" "$LAB_DIR/state-a/journal"
	# A owes B that write: its fence for B, on A, says so (fence.c)
	[ "$t" == tcp ] && lab_ok "A fences B on memcached A (key names [$B6])" \
		udp_wait fence 5 lab_mc c "$A:11211" get "kmagent:fence:[$B6]:11211"

	lab_restart mc-b
	lab_ok "[$t] step 6: memcached B answers again" lab_answers c "$B" 11211
	# B serves reads again through both kmagents (up after its resync)
	up=0
	for ((i = 0; i < 100; i++)); do
		lab_mc c "$B:11211" set onlyb from-b >/dev/null
		if [ "$(mc "$A:11210" get onlyb)" == from-b ] &&
			[ "$(mc "$B:11210" get onlyb)" == from-b ]; then
			up=1
			break
		fi
		sleep 0.1
	done
	lab_eq "[$t] B serves reads through both kmagents again" 1 $up
	lab_mc c "$B:11211" delete $KEY >/dev/null
	lab_not "[$t] step 6: memcached B does not hold $KEY" \
		mc "$B:11211" get $KEY

	lab_eq "[$t] step 7: get via kmagent A returns the value" "$VALUE" \
		"$(mc "$A:11210" get $KEY)"
	lab_eq "[$t] step 7: get via kmagent B returns the value" "$VALUE" \
		"$(mc "$B:11210" get $KEY)"
	lab_ok "[$t] read-repair wrote it back to B over IPv6" \
		udp_wait read-repair 5 lab_mc c "$B:11211" get $KEY
	lab_mc c "$A:11211" delete $KEY >/dev/null
	lab_mc c "$B:11211" delete $KEY >/dev/null
}

article ""
article --udp

# ---- dual stack: an IPv4 client of -l :: ----------------------------------

lab_mc c 198.18.0.1:11210 set v4key from-v4 >/dev/null
lab_eq "IPv4 client of -l :: (TCP) reads what it wrote" from-v4 \
	"$(lab_mc c 198.18.0.1:11210 get v4key)"
lab_eq "... and the IPv6 client reads it too" from-v4 \
	"$(lab_mc c "$A:11210" get v4key)"
lab_eq "IPv4 client of -l :: (UDP, --allow 198.18.0.0/24 matches it)" \
	from-v4 "$(lab_mc c --udp 198.18.0.1:11210 get v4key)"

# a reply of many datagrams (memcached's frame header on each) over IPv6
big=$(head -c 20000 /dev/zero | tr '\0' 'v')
lab_mc c "$A:11210" set bigkey "$big" >/dev/null
lab_eq "a 20000-byte value over IPv6 UDP (15 datagrams) comes back whole" \
	20000 "$(lab_mc c --udp "$A:11210" get bigkey | wc -c)"
lab_eq "... and to an IPv4 client of -l ::" 20000 \
	"$(lab_mc c --udp 198.18.0.1:11210 get bigkey | wc -c)"

# ---- --allow: IPv6 networks ------------------------------------------------

udp_denied() {
	printf 'stats\r\n' | lab_mc c "$1:11210" raw |
		awk '$2 == "kmagent_udp_denied" { print $3 + 0 }'
}
d0=$(udp_denied "$A")
lab_not "X ($X6, outside 2001:2::/124) gets no UDP answer from A" \
	lab_mc x --udp --timeout 0.5 "$A:11210" get v4key
lab_eq "... counted as denied" $((d0 + 1)) "$(udp_denied "$A")"
lab_eq "X is answered by B (default list: its IPv6 network)" from-v4 \
	"$(lab_mc x --udp "$B:11210" get v4key)"
lab_eq "X is answered over TCP (--allow is UDP's)" from-v4 \
	"$(lab_mc x "$A:11210" get v4key)"

# ---- kmagentctl and metrics ------------------------------------------------

out=$(ctl backends)
printf '%s\n' "$out" | sed 's/^/# /'
lab_ok "kmagentctl backends prints [$A6]:11211" \
	grep -qF "[$A6]:11211" <<<"$out"
lab_ok "kmagentctl --json backends names [$B6]:11211" \
	grep -qF "\"name\":\"[$B6]:11211\"" <<<"$(ctl -j backends)"
lab_ok "kmagentctl drain [$B6]:11211 (by its name)" ctl drain "[$B6]:11211"
lab_ok "... B no longer takes reads" grep -qF \
	"\"name\":\"[$B6]:11211\",\"state\":\"up\",\"no_reads\":true" \
	<<<"$(ctl -j backends)"
lab_ok "kmagentctl undrain [$B6]:11211" ctl undrain "[$B6]:11211"
out=$(ctl -j status)
lab_ok "kmagentctl --json status: listen [::]:11210" \
	grep -qF '"listen":"[::]:11210"' <<<"$out"
lab_ok "kmagentctl stats names [$B6]:11211" \
	grep -qF "[$B6]:11211" <<<"$(ctl stats -i 0)"
metrics=$(lab_in c "$LAB_PY" -c '
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())' \
	"http://[$A6]:9100/metrics" 2>&1)
lab_ok "metrics served on [$A6]:9100" \
	grep -qF "kmagent_backend_state{backend=\"[$B6]:11211\"" <<<"$metrics"

# ---- -l ADDR6: IPv6 only; the differential test over IPv6 ------------------

lab_memcached6 c 11300 mc-r
lab_memcached6 a 11301 mc-a2
lab_memcached6 b 11301 mc-b2
conf=$LAB_DIR/kmagent-c.conf
printf '%s\n' "backend [$A6]:11301" "backend [$B6]:11301" >"$conf"
lab_kmagentd c -c "$conf" -l $C6 -p 11310
lab_not "-l $C6 serves IPv6 only: no IPv4 client" \
	lab_answers c 198.18.0.10 11310
# real replicas never share cas counters: push B's ahead of A's
for i in 1 2 3 4 5; do
	lab_mc c "$B:11301" set "junk$i" x >/dev/null
	lab_mc c "$B:11301" delete "junk$i" >/dev/null
done
lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcdiff.py" \
	"[$C6]:11300" "[$C6]:11310" >"$LAB_DIR/mcdiff.out" 2>&1
rc=$?
tail -n 3 "$LAB_DIR/mcdiff.out" | sed 's/^/# mcdiff: /'
lab_eq "mcdiff over IPv6: every reply equals memcached's" 0 $rc

# ---- reload with IPv6 forms -------------------------------------------------

ctlc() { lab_in c "$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[km-c]}" "$@"; }
printf '%s\n' "backend [$A6]:11301" "backend $B6:11301" >"$conf"
out=$(ctlc reload 2>&1)
lab_ok "reload refuses an unbracketed IPv6 backend, naming the problem" \
	grep -q "config:2: invalid backend address '$B6:11301': an IPv6 address takes brackets" <<<"$out"
printf '%s\n' "backend [$A6]:11301" >"$conf"
out=$(ctlc -j reload 2>&1)
lab_ok "reload removes [$B6]:11301" \
	grep -qF "\"removed\":[\"[$B6]:11301\"]" <<<"$out"
lab_eq "kmagentd on C serves after the reload" STORED \
	"$(lab_mc c "[$C6]:11310" set afterreload 1)"

# ---- the kernel path with -l :: and IPv4 backends --------------------------
# (IPv6 backends through the kernel path: 71_udp_ipv6.sh)

PIN=$UDP_BPFFS/x
lab_pin_dir "$PIN"
udp_xdp_peer x
LAB_LABEL=mc-a4 lab_memcached a 11411
LAB_LABEL=mc-b4 lab_memcached b 11411
lab_kmagentd x -l :: -p 11410 -s 198.18.0.1:11411 -s 198.18.0.2:11411 \
	-I eth0 --pin-root "$PIN" --allow 198.18.0.0/24 --allow 2001:2::/64
lab_ok "X knows the backends' MACs" udp_wait neighbours 10 \
	udp_neigh_known_in x 198.18.0.1 198.18.0.2
w0=$(kstat "$PIN" kernel_writes) g0=$(kstat "$PIN" kernel_gets)
lab_eq "IPv4 UDP set through -I and -l :: answers STORED" STORED \
	"$(lab_mc c --udp 198.18.0.11:11410 set k4 four)"
lab_eq "... cloned in the kernel" $((w0 + 1)) "$(kstat "$PIN" kernel_writes)"
lab_eq "IPv4 UDP get answered" four \
	"$(lab_mc c --udp 198.18.0.11:11410 get k4)"
lab_eq "... in the kernel" $((g0 + 1)) "$(kstat "$PIN" kernel_gets)"
r0=$(kstat "$PIN" rx_service) g0=$(kstat "$PIN" kernel_gets)
n0=$(kstat "$PIN" no_route)
lab_eq "IPv6 UDP set (passed to kmagentd's socket) answers STORED" STORED \
	"$(lab_mc c --udp "[$X6]:11410" set k6 six)"
lab_eq "IPv6 UDP get answered by kmagentd" six \
	"$(lab_mc c --udp "[$X6]:11410" get k6)"
lab_eq "IPv4 UDP get of the key kmagentd wrote, in the kernel" six \
	"$(lab_mc c --udp 198.18.0.11:11410 get k6)"
lab_eq "the IPv6 datagrams met the kernel path (served: -l ::)" \
	$((r0 + 3)) "$(kstat "$PIN" rx_service)"
lab_eq "... which has no IPv6 backend: both went up to kmagentd" \
	$((n0 + 2)) "$(kstat "$PIN" no_route)"
lab_eq "the IPv6 get was not routed in the kernel" $((g0 + 1)) \
	"$(kstat "$PIN" kernel_gets)"

lab_ok "kmagentd A survived" lab_alive km-a
lab_ok "kmagentd B survived" lab_alive km-b
lab_ok "kmagentd C survived" lab_alive km-c
lab_done
