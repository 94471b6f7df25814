#!/bin/bash
# Why a write's answer waits for every replica when several kmagentd
# write the same keys (issue 20).  A set through PA is answered; a delete
# of the key through PB comes after that answer.  Had PA answered on MA's
# reply while its copy to MB was still on the way (here: PA's packets to
# MB dropped for 50 ms, as on a lossy link, and TCP resending them 200 ms
# later), the delete would reach MB first and the set land after it: MB
# holding a value older than the acknowledged delete, neither kmagentd
# knowing (each saw MB take its write), and a get through PB that misses
# on MA reading it from MB.  With the answer after every replica, the set
# is on MB (or MB owes the key, journaled) before the delete is sent.
#
# PA reaches MB over a link of its own (the others share the bridge), so
# that only PA's packets to MB are held back.
. "$(dirname "$0")/lib.sh"

N=5
lab_init
lab_host ma 198.18.0.1
lab_host mb 198.18.0.2
lab_host pa 198.18.0.4
lab_host pb 198.18.0.5
lab_host c 198.18.0.10
MA=198.18.0.1:11211 MB=198.18.0.2:11211
PA=198.18.0.4:11210 PB=198.18.0.5:11210
XA=x${LAB_ID}a
ip link add "$XA" netns "$(lab_ns pa)" type veth peer name xb \
	netns "$(lab_ns mb)" || lab_die "no veth pair pa-mb"
lab_in pa ip link set "$XA" up
lab_in mb ip link set xb up
lab_in mb sysctl -q -w net.ipv4.conf.all.rp_filter=0 \
	net.ipv4.conf.xb.rp_filter=0
lab_in pa ip route add 198.18.0.2/32 dev "$XA"
lab_memcached ma 11211
lab_memcached mb 11211
# the held packets are resent well within the request timeout and the
# probes' fall count: no fault is seen, nothing journaled
HEALTH=(--probe-interval 500 --probe-timeout 1500 --fall 3 --timeout 2000)
LAB_LABEL=km-pa lab_kmagentd pa -l 198.18.0.4 -p 11210 -s $MA -s $MB \
	"${HEALTH[@]}"
LAB_LABEL=km-pb lab_kmagentd pb -l 198.18.0.5 -p 11210 -s $MA -s $MB \
	"${HEALTH[@]}"

# keys whose primary is MA: their copy to MB is the one held back
keys=()
for ((i = 0; ${#keys[@]} < N && i < 200; i++)); do
	"$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[km-pa]}" ring lookup x$i |
		grep -q "^  1\. id [0-9 ]*$MA " && keys+=(x$i)
done
lab_eq "$N keys with MA first" $N ${#keys[@]}

out=$(lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcxorder.py" $PA $PB $MB \
	"$(lab_ns pa)" "$XA" "${keys[@]}")
lab_log "$out"
read -r _ ack _ mb_hits _ pb_hits <<<"$out"
lab_ok "PA's sets were answered once MB took them (slowest $ack ms)" \
	test "${ack:-0}" -ge 150
lab_eq "MB holds none of the deleted keys" 0 "$mb_hits"
lab_eq "through PB, no deleted key is read back" 0 "$pb_hits"
lab_done
