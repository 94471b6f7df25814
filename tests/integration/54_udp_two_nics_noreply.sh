#!/bin/bash
# 36_udp_two_nics.sh with the kernel path on the clients' interface only:
# the backend behind eth1 answers the kernel's requests through eth1,
# where no XDP catches the replies.  This used to lose every UDP get in
# silence while `backends` showed the backend up.  Now kmagentd warns at
# start that the backend is routed out of an interface without the
# kernel path, flags the backend when the kernel's requests get no reply
# while it is up (kmagentctl, metrics, log), and passes UDP up to itself
# from then on, so that gets are answered again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"
. "$(dirname "$0")/ops_lib.sh"

udp_lab_two_nics
lab_eq "a value on the backend behind eth1" STORED \
	"$(lab_mc a 198.19.0.2:11211 set twonic value-behind-eth1)"
lab_kmagentd p -l 198.18.0.1 -p 11210 -s 198.19.0.2:11211 -I eth0 \
	--pin-root "$PIN" --allow 198.18.0.0/24 --metrics 198.18.0.1:9411
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
lab_eq "kmagentctl status: kernel_bypassed" True \
	"$(jget "$(ctl -j status)" 'd["kernel_bypassed"]')"
lab_ok "... and warns" grep -q "^warning: kernel path bypassed" <<<"$(ctl status)"
metrics=$(lab_in c "$LAB_PY" -c '
import urllib.request
print(urllib.request.urlopen("http://198.18.0.1:9411/metrics", timeout=5).read().decode())')
lab_ok "metric kmagent_backend_kernel_noreply 1" grep -qx \
	'kmagent_backend_kernel_noreply{backend="198.19.0.2:11211"} 1' <<<"$metrics"
lab_ok "metric kmagent_kernel_bypassed 1" grep -qx 'kmagent_kernel_bypassed 1' \
	<<<"$metrics"
p0=$(kstat "$PIN" passed_up) ok=0
for ((i = 0; i < 5; i++)); do
	[ "$(mc 198.18.0.1:11210 get twonic)" == value-behind-eth1 ] && ok=$((ok + 1))
done
lab_eq "every later get is answered" 5 $ok
lab_eq "... by kmagentd (passed up)" $((p0 + 5)) "$(kstat "$PIN" passed_up)"
lab_eq "UDP set too" STORED "$(mc 198.18.0.1:11210 set twonic2 v2)"
lab_eq "... reaches the backend" v2 "$(lab_mc a 198.19.0.2:11211 get twonic2)"

lab_log "a restart with -I eth1 too: judged again, no bypass"
lab_kill km-p TERM
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
