#!/bin/bash
# 36_udp_two_nics.sh with the kernel path on the clients' interface only:
# the backend behind eth1 answers the kernel's requests through eth1,
# where no XDP catches the replies.  This used to lose every UDP get in
# silence while `backends` showed the backend up.  Now kmagentd warns at
# start that the backend is routed out of an interface without the
# kernel path, flags the backend when the kernel's requests get no reply
# while it is up (kmagentctl, metrics, log), and passes UDP up to itself
# for --bypass-hold seconds, so that gets are answered again.  The bypass
# never latches: when the hold is over the kernel serves again and is
# judged afresh (here it trips again: the configuration is still wrong);
# a kmagentd that exits lifts it (the pinned programs serve alone), and
# one that is killed leaves a deadline the kernel itself lets lapse.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"
. "$(dirname "$0")/ops_lib.sh"

udp_lab_two_nics
lab_eq "a value on the backend behind eth1" STORED \
	"$(lab_mc a 198.19.0.2:11211 set twonic value-behind-eth1)"
HOLD=10 # s: long enough for the checks made while bypassed
KM_ARGS=(-l 198.18.0.1 -p 11210 -s 198.19.0.2:11211 -I eth0 --pin-root "$PIN"
	--allow 198.18.0.0/24 --metrics 198.18.0.1:9411 --bypass-hold $HOLD)
lab_kmagentd p "${KM_ARGS[@]}"
LOG=${LAB_LOG[km-p]}
lab_ok "warned at start: the backend is behind eth1, without the kernel path" \
	grep -q "backend 198.19.0.2:11211 is reached through eth1, which has no kernel path" "$LOG"
lab_ok "XDP attached to eth0" udp_wait "XDP" 10 udp_xdp_on
lab_ok "P knows A's MAC" udp_wait "neighbour" 10 \
	sh -c "ip -n $NSP neigh show 198.19.0.2 | grep -q lladdr"
lab_ok "the backend is up" ops_wait_state 198.19.0.2:11211 up . 10

mc() { udp_mc c --timeout 0.5 "$@"; }
g0=$(kstat "$PIN" kernel_gets)
lost=0 got=
for ((i = 0; i < 30; i++)); do
	got=$(mc 198.18.0.1:11210 get twonic)
	[ "$got" == value-behind-eth1 ] && break
	lost=$((lost + 1))
done
lab_log "$lost gets lost before kmagentd noticed"
lab_ok "the kernel sent gets to the backend" test "$(kstat "$PIN" kernel_gets)" -gt "$g0"
lab_ok "some gets were lost at first (the bug this detects)" test $lost -ge 1
lab_eq "then a get is answered" value-behind-eth1 "$got"
lab_ok "logged: no reply from the backend in the kernel" grep -q \
	"kernel path: backend 198.19.0.2:11211: .* no reply" "$LOG"
lab_ok "logged: kernel path bypassed" grep -q "kernel path bypassed" "$LOG"
j=$(ctl -j backends)
lab_eq "kmagentctl backends: kernel_noreply" True \
	"$(jget "$j" 'd["backends"][0]["kernel_noreply"]')"
lab_eq "... while the backend stays up (TCP probes are fine)" up \
	"$(jget "$j" 'd["backends"][0]["state"]')"
lab_ok "... and the table says it" grep -q "\[kernel path: no replies\]" \
	<<<"$(ctl backends)"
st=$(ctl -j status)
lab_eq "kmagentctl status: kernel_bypassed" True "$(jget "$st" 'd["kernel_bypassed"]')"
lab_eq "... its reason counted" 1 \
	"$(jget "$st" 'd["kernel_bypass"]["count"]["lost_replies"]')"
lab_ok "... and why" grep -q "replies are lost" \
	<<<"$(jget "$st" 'd["kernel_bypass"]["why"]')"
lab_ok "... and warns, with the time left" grep -q \
	"^warning: kernel path bypassed for [0-9]* s more" <<<"$(ctl status)"
metrics=$(lab_in c "$LAB_PY" -c '
import urllib.request
print(urllib.request.urlopen("http://198.18.0.1:9411/metrics", timeout=5).read().decode())')
lab_ok "metric kmagent_backend_kernel_noreply 1" grep -qx \
	'kmagent_backend_kernel_noreply{backend="198.19.0.2:11211"} 1' <<<"$metrics"
lab_ok "metric kmagent_kernel_bypassed 1" grep -qx 'kmagent_kernel_bypassed 1' \
	<<<"$metrics"
lab_ok "metric kmagent_kernel_bypasses_total by reason" grep -qx \
	'kmagent_kernel_bypasses_total{reason="lost_replies"} 1' <<<"$metrics"
p0=$(kstat "$PIN" passed_up) ok=0
for ((i = 0; i < 5; i++)); do
	[ "$(mc 198.18.0.1:11210 get twonic)" == value-behind-eth1 ] && ok=$((ok + 1))
done
lab_eq "every later get is answered" 5 $ok
lab_eq "... by kmagentd (passed up)" $((p0 + 5)) "$(kstat "$PIN" passed_up)"
lab_eq "UDP set too" STORED "$(mc 198.18.0.1:11210 set twonic2 v2)"
lab_eq "... reaches the backend" v2 "$(lab_mc a 198.19.0.2:11211 get twonic2)"

# the deadline the kernel path itself compares with (km_config)
bypass_until() { kcfg_field "$PIN" bypass_until_ns; }
# gets until the kernel took one (kernel_gets grew), at most $1 s
kernel_takes_a_get()
{
	local g0 i
	g0=$(kstat "$PIN" kernel_gets)
	for ((i = 0; i < $1 * 2; i++)); do
		mc 198.18.0.1:11210 get twonic >/dev/null
		[ "$(kstat "$PIN" kernel_gets)" -gt "$g0" ] && return 0
	done
	return 1
}
tripped() { [ "$(jget "$(ctl -j status)" \
	'd["kernel_bypass"]["count"]["lost_replies"]')" -ge "$1" ]; }
# sending gets, until the bypasses counted reach $1, at most $2 s
wait_tripped()
{
	local i
	for ((i = 0; i < $2 * 2; i++)); do
		tripped "$1" 2>/dev/null && return 0
		mc 198.18.0.1:11210 get twonic >/dev/null
	done
	return 1
}

lab_log "the hold is over: the kernel serves again, judged afresh"
lab_ok "the bypass lapses" udp_wait "bypass over" $((HOLD + 2)) grep -q \
	"kernel path: bypass over" "$LOG"
lab_ok "the kernel takes gets again" kernel_takes_a_get 3
lab_ok "still no replies: bypassed again, counted" wait_tripped 2 20

lab_log "kmagentd exits while bypassed: the programs serve alone"
lab_ne "the kernel's deadline is set" 0 "$(bypass_until)"
lab_kill km-p TERM
lab_eq "exit lifts it" 0 "$(bypass_until)"
lab_ok "with no kmagentd, the kernel takes the get" kernel_takes_a_get 1

lab_log "kmagentd killed while bypassed: the deadline lapses by itself"
lab_kmagentd p "${KM_ARGS[@]}"
lab_ok "bypassed again" wait_tripped 1 20
lab_kill km-p KILL
lab_ne "the deadline stays after SIGKILL" 0 "$(bypass_until)"
sleep $HOLD
lab_ok "... and lapses: the kernel takes gets again" kernel_takes_a_get 2

lab_log "a restart with -I eth1 too: judged again, no bypass"
lines=$(wc -l <"$LOG")
lab_kmagentd p -l 198.18.0.1 -p 11210 -s 198.19.0.2:11211 -I eth0 -I eth1 \
	--pin-root "$PIN" --allow 198.18.0.0/24
lab_not "no warning about routes" grep -q "is reached through" \
	<(tail -n +$((lines + 1)) "$LOG")
lab_ok "the backend is up" ops_wait_state 198.19.0.2:11211 up . 10
g0=$(kstat "$PIN" kernel_gets)
lab_eq "get in the kernel again" value-behind-eth1 "$(mc 198.18.0.1:11210 get twonic)"
lab_eq "... not passed up" $((g0 + 1)) "$(kstat "$PIN" kernel_gets)"
lab_eq "not bypassed" False "$(jget "$(ctl -j status)" 'd["kernel_bypassed"]')"
lab_done
