#!/bin/bash
# The article's fix 1 (BRIEF sections 1-2): a memcached that restarts empty
# is refilled from its replica.  m2 stops while writes go on (new keys,
# overwrites, deletes, all on m1 only), starts again empty, and while a
# client keeps overwriting keys through kmagentd (each read back at once:
# never stale), kmagentd must bring m2 to hold exactly what m1 holds: same
# values and flags, remaining TTLs kept (not made unlimited), deleted keys
# not resurrected, newer writes not overwritten by older copies.  Then the
# same after a restart so quick that no probe fails (m2 must still be seen
# as empty and refilled).
. "$(dirname "$0")/lib.sh"

CONVERGE_SECS=${CONVERGE_SECS:-15}
lab_two_backends
# shellcheck disable=SC2086
lab_kmagentd p -p 11210 -s $M1 -s $M2 --probe-interval 200 \
	--probe-timeout 200 --fall 2 --rise 2 ${KM_EXTRA_ARGS:-}

rs() { lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mcresync.py" "$@"; }
stat() { awk -v k="$1" '$1 == k { print $2 }' <<<"$2"; }

out=$(rs fill $P 0 299 --tag v1)
lab_eq "300 keys written through kmagentd" 300 "$(stat stored "$out")"
lab_ok "m1 and m2 hold the same 300 keys" rs compare $M1 $M2 0 299

lab_log "m2 stops; writes go on (m1 only): 50 overwrites, 50 new keys, 10 deletes"
lab_kill mc-m2 TERM
sleep 1.5
rs fill $P 0 49 --tag v2 >/dev/null
rs fill $P 300 349 --tag v2 >/dev/null
for n in $(seq 150 159); do lab_mc c $P delete rs-$n >/dev/null; done
lab_not "m2 is down" lab_answers c 198.18.0.2 11211

lab_log "m2 starts again, empty; a client overwrites keys 0-99 through kmagentd for 3 s"
lab_restart mc-m2
# only keys 0-99: the rest (and every deleted key) is left to the resync
out=$(rs churn $P 0 99 --seconds 3)
printf '%s\n' "$out" | sed 's/^/# churn: /'
lab_ok "overwrites acknowledged during the resync ($(stat writes "$out"))" \
	test "$(stat writes "$out")" -gt 100
lab_eq "no read through kmagentd returned an older value" 0 "$(stat stale "$out")"
lab_eq "no write or read failed" 0 "$(stat errors "$out")"

t0=$(date +%s)
while :; do
	out=$(rs compare $M1 $M2 0 349)
	rc=$?
	[ $rc -eq 0 ] && break
	[ $(($(date +%s) - t0)) -ge "$CONVERGE_SECS" ] && break
	sleep 0.5
done
printf '%s\n' "$out" | sed 's/^/# m1 vs m2: /'
lab_eq "within $CONVERGE_SECS s m2 holds exactly what m1 holds (values, flags, TTLs; deleted keys absent)" 0 $rc
ttl() { printf 'mg rs-%d t\r\n' "$2" | lab_mc c "$1" raw | tr -d '\r' | sed -n 's/.* t\(-*[0-9]*\).*/\1/p'; }
# rs-101 was set (exptime 1000) before m2 stopped, and is outside the
# churn: only the resync can have put it on m2, with what remained of it
t1=$(ttl $M2 101) t0=$(ttl $M1 101)
lab_ok "a copied key keeps its remaining TTL (rs-101: m2 t$t1, m1 t$t0)" \
	test "${t1:--1}" -gt 900 -a "${t1:--1}" -le "$((${t0:-0} + 1))"
lab_eq "a key without TTL stays without (rs-102)" -1 "$(ttl $M2 102)"
lab_ok "reads through kmagentd agree with m1 on every key" rs compare $M1 $P 0 349
lab_log "a quick restart: m2 killed and started again between two probes"
out=$(rs fill $P 400 499 --tag v3)
lab_eq "100 more keys written through kmagentd" 100 "$(stat stored "$out")"
lab_kill mc-m2 9
lab_restart mc-m2
t0=$(date +%s)
while :; do
	out=$(rs compare $M1 $M2 400 499)
	rc=$?
	[ $rc -eq 0 ] && break
	[ $(($(date +%s) - t0)) -ge "$CONVERGE_SECS" ] && break
	sleep 0.5
done
printf '%s\n' "$out" | sed 's/^/# m1 vs m2 after the quick restart: /'
lab_eq "within $CONVERGE_SECS s the quickly restarted m2 is refilled too" 0 $rc
lab_ok "kmagentd still running" lab_alive km-p
lab_done
