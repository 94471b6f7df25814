#!/bin/bash
# The article's seven steps over UDP through the kernel fast path, with a
# dedicated proxy host P (kmagentd -I eth0) in front of memcached on A and
# B, and a client C.  The key is made to hash to B first (as the article's
# magent did), so that step 7 -- B restarted and empty -- is answered by
# the in-kernel null-fallback to A; km_stats proves those gets never went
# up to kmagentd.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

KEY=becd0000
VALUE=测试例子

lab_init
udp_bpffs
PIN=$UDP_BPFFS/p
lab_pin_dir "$PIN"

# which of the two backend addresses does the key hash to first?  Call
# that host B: step 7 then needs the fallback, as in the article.
first=$("$LAB_PY" "$LAB_ROOT/tests/integration/kmring.py" $KEY \
	198.18.0.2:11211 198.18.0.3:11211 | cut -d' ' -f1)
if [ "$first" == 198.18.0.2:11211 ]; then B=198.18.0.2 A=198.18.0.3; else
	B=198.18.0.3 A=198.18.0.2; fi
P=198.18.0.1
lab_log "$KEY hashes to $B first: B=$B, A=$A"

lab_host p $P
lab_host a $A
lab_host b $B
lab_host c 198.18.0.10
udp_xdp_peer p
lab_memcached a 11211
lab_memcached b 11211
lab_kmagentd p -l $P -p 11210 -s 198.18.0.2:11211 -s 198.18.0.3:11211 \
	-I eth0 --pin-root "$PIN" --probe-interval 200 --probe-timeout 200 -v
# the kernel routes once the next hop is known (bpf_fib_lookup needs a
# resolved neighbour; before that, gets go up to kmagentd): kmagentd's
# health probes resolve the backends' addresses
lab_ok "P knows A's and B's MAC" udp_wait "neighbours" 10 \
	sh -c "ip -n $(lab_ns p) neigh show $A | grep -q lladdr &&
	       ip -n $(lab_ns p) neigh show $B | grep -q lladdr"

lab_ok "kernel path loaded: km_stats pinned under $PIN" \
	test -e "$PIN/km_stats"
lab_ok "XDP attached to P's eth0" udp_wait "XDP on eth0" 10 \
	sh -c "ip -n $(lab_ns p) link show eth0 | grep -q prog/xdp"

if [ "${KMAGENT_XDP_MODE:-}" == skb ]; then # 37_udp_generic_xdp.sh
	lab_ok "XDP in generic mode, as asked" sh -c \
		"ip -n $(lab_ns p) link show eth0 | grep -q xdpgeneric"
	lab_ok "kmagentd warned about generic mode" \
		grep -q "using generic mode" "${LAB_LOG[km-p]}"
	lab_ok "kmagentctl status says so" grep -qx \
		"kernel path: attached on eth0 (generic XDP)" <<<"$(lab_in p \
		"$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[km-p]}" status)"
fi

mc() { udp_mc c --timeout 1 "$@"; }

lab_log "step 1: set $KEY over UDP through kmagent (tc clones it to A and B)"
w0=$(kstat "$PIN" kernel_writes)
lab_eq "step 1: set $KEY \"$VALUE\" answers STORED" STORED \
	"$(mc $P:11210 set $KEY "$VALUE")"
lab_eq "step 1: the write was cloned in the kernel" $((w0 + 1)) \
	"$(kstat "$PIN" kernel_writes)"

lab_log "step 2/3: get $KEY directly from memcached on A and on B"
lab_eq "step 2: memcached A holds the value" "$VALUE" "$(mc $A:11211 get $KEY)"
lab_eq "step 3: memcached B holds the value" "$VALUE" "$(mc $B:11211 get $KEY)"

lab_log "step 4: stop memcached on B"
lab_kill mc-b TERM
lab_not "step 4: memcached B no longer answers" lab_answers c $B 11211
# km_backends[id].state for ids 1 and 2 (A and B in -s order), as XDP sees it
b_state_is() { [ "$(kbe_state "$PIN" "$BID")" == "$1" ]; }
BID=2
[ "$B" == 198.18.0.2 ] && BID=1
lab_ok "step 4: kmagent marks B down (kernel view)" \
	udp_wait "B down" 10 b_state_is 0

lab_log "step 5: get $KEY through kmagent while B is down"
lab_eq "step 5: get via kmagent returns the value" "$VALUE" \
	"$(mc $P:11210 get $KEY)"

lab_log "step 6: start memcached on B again: it comes back empty"
lab_restart mc-b
lab_ok "step 6: memcached B answers again" lab_answers c $B 11211
lab_ok "step 6: kmagent reads from B again (UP in the kernel)" \
	udp_wait "B up" 20 b_state_is 1
# a resync may have refilled B already; the article's B is empty
mc $B:11211 delete $KEY >/dev/null
lab_not "step 6: B does not hold $KEY" mc $B:11211 get $KEY

lab_log "step 7: get $KEY through kmagent (magent answers null here)"
f0=$(kstat "$PIN" fallbacks) h0=$(kstat "$PIN" fallback_hits)
g0=$(kstat "$PIN" kernel_gets) u0=$(kstat "$PIN" passed_up)
lab_eq "step 7: get via kmagent returns the value" "$VALUE" \
	"$(mc $P:11210 get $KEY)"
lab_eq "step 7: routed in the kernel" $((g0 + 1)) "$(kstat "$PIN" kernel_gets)"
lab_eq "step 7: B's miss turned into a get to A in the kernel" $((f0 + 1)) \
	"$(kstat "$PIN" fallbacks)"
lab_eq "step 7: counted as a hit after fallback" $((h0 + 1)) \
	"$(kstat "$PIN" fallback_hits)"
lab_eq "step 7: nothing went up to kmagentd" "$u0" "$(kstat "$PIN" passed_up)"
lab_ok "step 7: kmagentd got the read-repair event (key, missed replica)" \
	udp_wait "event" 5 grep -q "kernel fallback hit: key $KEY on backend" \
	"${LAB_LOG[km-p]}"

lab_log "more keys held by A only: every one found, in the kernel"
lab_ok "B owes nothing once the repair is replayed (read first again)" \
	udp_wait "B settled" 10 kbe_owes_nothing "$PIN" $BID
n=20 ok=0
for ((i = 0; i < n; i++)); do mc $A:11211 set "only-a-$i" "v$i" >/dev/null; done
f0=$(kstat "$PIN" fallbacks) g0=$(kstat "$PIN" kernel_gets)
u0=$(kstat "$PIN" passed_up)
for ((i = 0; i < n; i++)); do
	[ "$(mc $P:11210 get "only-a-$i")" == "v$i" ] && ok=$((ok + 1))
done
lab_eq "$n gets of keys on A only all hit" $n $ok
lab_eq "$n gets routed in the kernel" $((g0 + n)) "$(kstat "$PIN" kernel_gets)"
lab_eq "none went up to kmagentd" "$u0" "$(kstat "$PIN" passed_up)"
fb=$(($(kstat "$PIN" fallbacks) - f0))
lab_ne "some of them needed a fallback (B first)" 0 "$fb"
lab_log "fallbacks for those $n keys: $fb"

lab_log "a miss on every replica is memcached's miss"
lab_not "a key held by no replica is a miss" mc $P:11210 get never-set-key

lab_log "a multi-key get goes up to kmagentd's UDP socket and is answered"
u0=$(kstat "$PIN" passed_up)
want=$(printf 'get %s only-a-1\r\n' $KEY | mc $A:11211 raw | od -An -c)
got=$(printf 'get %s only-a-1\r\n' $KEY | mc $P:11210 raw | od -An -c)
lab_eq "multi-key get: kmagentd answers as memcached A does" "$want" "$got"
lab_eq "the multi-key get was passed up" $((u0 + 1)) "$(kstat "$PIN" passed_up)"

if [ "${KMAGENT_XDP_MODE:-}" == skb ]; then # 37_udp_generic_xdp.sh
	lab_log "a restart adopts the generic link, and says generic"
	lab_kill km-p TERM
	: >"${LAB_LOG[km-p]}"
	KMAGENT_XDP_MODE= lab_kmagentd p -l $P -p 11210 -s 198.18.0.2:11211 \
		-s 198.18.0.3:11211 -I eth0 --pin-root "$PIN" -v
	lab_ok "adopted" grep -q "adopted pinned XDP link" "${LAB_LOG[km-p]}"
	lab_ok "... logged as generic" grep -q \
		"attached to eth0 (generic XDP)" "${LAB_LOG[km-p]}"
fi

bpftool map dump pinned "$PIN/km_stats" | grep -v ': 0,\?$' | sed 's/^/# /'
lab_done
