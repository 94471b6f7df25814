#!/bin/bash
# The article's shape over UDP through the kernel path: hosts A and B each
# run memcached (11211) and kmagentd (11210, -I eth0), each kmagentd
# proxying both memcacheds, so one backend of each is local.  A local
# backend is reached up the host's stack; its replies are caught at tc
# egress on eth0 (km_tc_egress).  The key hashes to B first; at step 7
# (B restarted, empty) both kmagents answer with the value by in-kernel
# fallback: A from B (remote) to A (local), B from B (local) to A (remote).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"
. "$(dirname "$0")/ops_lib.sh"

KEY=becd0000
VALUE=测试例子

lab_init
udp_bpffs

first=$("$LAB_PY" "$LAB_ROOT/tests/integration/kmring.py" $KEY \
	198.18.0.1:11211 198.18.0.2:11211 | cut -d' ' -f1)
if [ "$first" == 198.18.0.1:11211 ]; then B=198.18.0.1 A=198.18.0.2; else
	B=198.18.0.2 A=198.18.0.1; fi
lab_log "$KEY hashes to $B first: B=$B, A=$A"
BID=1
[ "$B" == 198.18.0.2 ] && BID=2

lab_host a $A
lab_host b $B
lab_host c 198.18.0.10
udp_xdp_peer a
udp_xdp_peer b
lab_memcached a 11211
lab_memcached b 11211
for h in a b; do
	lab_pin_dir "$UDP_BPFFS/$h"
	lab_kmagentd $h -l "$(lab_addr $h)" -p 11210 -s 198.18.0.1:11211 \
		-s 198.18.0.2:11211 -I eth0 --pin-root "$UDP_BPFFS/$h" \
		--probe-interval 200 --probe-timeout 200
done
PA=$UDP_BPFFS/a PB=$UDP_BPFFS/b

xdp_on() { ip -n "$(lab_ns "$1")" link show eth0 | grep -q prog/xdp; }
lab_ok "XDP attached on A" udp_wait "XDP on A" 10 xdp_on a
lab_ok "XDP attached on B" udp_wait "XDP on B" 10 xdp_on b
neigh_known() { ip -n "$(lab_ns "$1")" neigh show "$2" | grep -q lladdr; }
lab_ok "A knows B's MAC" udp_wait "neighbour" 10 neigh_known a $B
lab_ok "B knows A's MAC" udp_wait "neighbour" 10 neigh_known b $A

mc() { udp_mc c --timeout 1 "$@"; }
b_state_is() { [ "$(kbe_state "$1" "$BID")" == "$2" ]; }
# b_settled KM: KM's journal owes B nothing, its fence of B (held on A) is
# gone, and both kernels read B
kctl() { "$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[$1]}" "${@:2}"; }
b_settled()
{
	[ "$(be_field "kctl $1" $B:11211 '["journal"]["keys"]')" == 0 ] &&
		[ -z "$(mc $A:11211 get kmagent:fence:$B:11211)" ] &&
		kbe_readable "$PA" $BID && kbe_readable "$PB" $BID
}

lab_log "step 1: set $KEY over UDP through kmagent A"
PA=$UDP_BPFFS/a PB=$UDP_BPFFS/b
w0=$(kstat "$PA" kernel_writes) u0=$(kstat "$PA" passed_up)
lab_eq "step 1: set answers STORED" STORED "$(mc $A:11210 set $KEY "$VALUE")"
lab_eq "step 1: cloned in A's kernel (B remote, A local)" $((w0 + 1)) \
	"$(kstat "$PA" kernel_writes)"
lab_eq "step 1: nothing went up to kmagentd A" "$u0" "$(kstat "$PA" passed_up)"
lab_eq "step 2: memcached A holds the value" "$VALUE" "$(mc $A:11211 get $KEY)"
lab_eq "step 3: memcached B holds the value" "$VALUE" "$(mc $B:11211 get $KEY)"

lab_log "gets before any failure: kmagent B serves its key from its local memcached"
g0=$(kstat "$PB" kernel_gets) r0=$(kstat "$PB" replies) u0=$(kstat "$PB" passed_up)
lab_eq "get via kmagent B (local primary) returns the value" "$VALUE" \
	"$(mc $B:11210 get $KEY)"
lab_eq "routed in B's kernel" $((g0 + 1)) "$(kstat "$PB" kernel_gets)"
lab_eq "the local reply was rewritten at tc egress" $((r0 + 1)) \
	"$(kstat "$PB" replies)"
lab_eq "nothing went up to kmagentd B" "$u0" "$(kstat "$PB" passed_up)"
lab_eq "get via kmagent A (remote primary) returns the value" "$VALUE" \
	"$(mc $A:11210 get $KEY)"

lab_log "a value of 15 datagrams, its primary B: local to kmagent B, remote to A"
BIG=$(ops_key_first big "$B:11211" 198.18.0.1:11211 198.18.0.2:11211) ||
	lab_die "no key of big0..big200 hashes to $B first"
big=$(head -c 20000 /dev/zero | tr '\0' v)
lab_eq "set $BIG (20,000 bytes) over TCP" STORED \
	"$(lab_mc c $A:11210 set $BIG "$big")"
for h in b a; do
	pin=$PB addr=$B
	[ $h == a ] && pin=$PA addr=$A
	g0=$(kstat "$pin" kernel_gets) u0=$(kstat "$pin" passed_up)
	lab_eq "UDP get of $BIG via kmagent $h: all 20,000 bytes" 20000 \
		"$(mc $addr:11210 get $BIG | wc -c)"
	lab_eq "... routed in $h's kernel, nothing passed up" \
		"$((g0 + 1)) $u0" \
		"$(kstat "$pin" kernel_gets) $(kstat "$pin" passed_up)"
done

lab_log "step 4: stop memcached on B"
lab_kill mc-b TERM
lab_not "step 4: memcached B no longer answers" lab_answers c $B 11211
lab_ok "step 4: kmagent A marks B down" udp_wait "B down on A" 10 b_state_is "$PA" 0
lab_ok "step 4: kmagent B marks B down" udp_wait "B down on B" 10 b_state_is "$PB" 0
lab_eq "step 5: get via kmagent A returns the value" "$VALUE" "$(mc $A:11210 get $KEY)"
lab_eq "step 5: get via kmagent B returns the value" "$VALUE" "$(mc $B:11210 get $KEY)"

lab_log "step 6: start memcached on B again: it comes back empty"
lab_restart mc-b
# up is not enough: each kmagentd fences B while the other has not seen it
# back up (fence.c), and a fenced backend gets no reads
lab_ok "step 6: kmagent A reads from B again" udp_wait "B readable on A" 20 \
	kbe_readable "$PA" $BID
lab_ok "step 6: kmagent B reads from B again" udp_wait "B readable on B" 20 \
	kbe_readable "$PB" $BID
mc $B:11211 delete $KEY >/dev/null
lab_not "step 6: B does not hold $KEY" mc $B:11211 get $KEY

lab_log "step 7: get $KEY through each kmagent (magent answers null here)"
for h in a b; do
	pin=$UDP_BPFFS/$h addr=$(lab_addr $h)
	f0=$(kstat "$pin" fallbacks) h0=$(kstat "$pin" fallback_hits)
	u0=$(kstat "$pin" passed_up)
	lab_eq "step 7: get via kmagent on $addr returns the value" "$VALUE" \
		"$(mc "$addr":11210 get $KEY)"
	lab_eq "step 7 ($addr): one in-kernel fallback" $((f0 + 1)) \
		"$(kstat "$pin" fallbacks)"
	lab_eq "step 7 ($addr): hit after fallback" $((h0 + 1)) \
		"$(kstat "$pin" fallback_hits)"
	lab_eq "step 7 ($addr): nothing went up to kmagentd" "$u0" \
		"$(kstat "$pin" passed_up)"
	# read-repair refills B in the background.  B owes the key to this
	# kmagentd until its journal replays it (repair.c), and the other
	# kmagentd fences B meanwhile: let both settle, then empty B again
	# for the other kmagent
	udp_wait "read-repair of B" 3 mc $B:11211 get $KEY
	lab_ok "step 7 ($addr): B owes nothing after the repair" \
		udp_wait "B settled" 10 b_settled km-$h
	mc $B:11211 delete $KEY >/dev/null
done

for h in a b; do
	lab_log "km_stats on $h:"
	bpftool map dump pinned "$UDP_BPFFS/$h/km_stats" | grep -v ': 0,\?$' |
		grep '": [0-9]' | sed 's/^ */#   /'
done
lab_done
