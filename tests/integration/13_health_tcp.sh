#!/bin/bash
# Health over TCP: a backend that goes down gets no traffic and kmagentd
# keeps answering without waiting for the backend timeout on each request
# once the fall threshold is passed; when the backend comes back it receives
# writes again.  Two ways down:
#  1. memcached m1 stopped (connections refused), then started again (empty)
#  2. m2 hangs: tests/tools/mctap.py in front of its memcached stops
#     answering (SIGUSR1) while it keeps reading and logging, so the log
#     shows whether any request still reached m2; then it answers again,
#     with values that went stale meanwhile, which must not be read.
#  3. every backend down: SERVER_ERROR at once; m1 back: writes reach it.
#  4. both memcacheds hang (SIGSTOP), m1 comes back first: no key lost.
#  5. m2 hangs, writes go on to m1, then m1 hangs; m2 (stale) answers
#     first, then m1: the writes only m1 took must not be lost.
. "$(dirname "$0")/lib.sh"

# probes every 200 ms, 2 failures -> down, 2 successes -> up
TIMEOUT_MS=800
HEALTH=(--timeout $TIMEOUT_MS --probe-interval 200 --probe-timeout 200
	--fall 2 --rise 2)
FALL_WAIT=2	# > fall x (interval + probe timeout) + a request timeout

# m2: memcached on its loopback, the tap on its lab address
lab_two_backends --tap
# shellcheck disable=SC2086
lab_kmagentd p -p 11210 -s $M1 -s $M2 "${HEALTH[@]}" ${KM_EXTRA_ARGS:-}

mc() { lab_mc c --timeout 5 "$@"; }
m2direct() { lab_mc m2 --timeout 2 127.0.0.1:11211 "$@"; }
# seq NAME < lines: checked, timed requests through kmagentd; sets $seq_out
seq_run()
{
	seq_out=$(lab_mc c --timeout 5 $P seq)
	printf '%s\n' "$seq_out" | grep -v '^ok ' | sed "s/^/# $1: /"
}
seq_stat() { printf '%s\n' "$seq_out" | awk -v k="$1" '$1 == k { print $2 }'; }
# writes_reach CHECK-CMD PREFIX: poll up to 6 s: a set through kmagentd of
# PREFIX-i shows up when read with CHECK-CMD (direct on the backend)
writes_reach()
{
	local check=$1 pfx=$2 i
	for ((i = 0; i < 30; i++)); do
		mc $P set "$pfx-$i" "v$i" >/dev/null
		[ "$($check get "$pfx-$i" 2>/dev/null)" == "v$i" ] && return 0
		sleep 0.2
	done
	return 1
}

lab_log "both backends up: writes reach both"
for i in 1 2 3 4 5 6; do mc $P set h1-$i "one-$i" >/dev/null; done
lab_eq "h1-6 on m1" one-6 "$(mc $M1 get h1-6)"
lab_eq "h1-6 on m2" one-6 "$(m2direct get h1-6)"

lab_log "1. stop memcached m1 (pid $(lab_pid mc-m1))"
lab_kill mc-m1 TERM
seq_run "reads right after the stop" <<-EOF
	get h1-1 one-1
	get h1-2 one-2
	get h1-3 one-3
	get h1-4 one-4
	get h1-5 one-5
	get h1-6 one-6
EOF
lab_eq "reads right after m1 stopped all hit (through m2)" 0 "$(seq_stat failed)"
sleep $FALL_WAIT
seq_run "after the fall threshold" < <(for i in $(seq 1 20); do
	echo "set down1-$i d$i"
	echo "get h1-$((i % 6 + 1)) one-$((i % 6 + 1))"
done)
lab_eq "m1 down: 40 requests answered, none failed" "40 0" \
	"$(seq_stat requests) $(seq_stat failed)"
lab_ok "m1 down: no request waited for the backend timeout (max $(seq_stat max_ms) ms < $TIMEOUT_MS ms)" \
	test "$(seq_stat max_ms)" -lt $TIMEOUT_MS
lab_eq "writes while m1 is down land on m2" d20 "$(m2direct get down1-20)"

lab_log "m1 starts again (empty)"
lab_restart mc-m1
lab_ok "m1 receives writes through kmagentd again within 6 s" \
	writes_reach "mc $M1" back1
seq_run "both up again" < <(for i in $(seq 1 8); do
	echo "set h2-$i two-$i"
done)
lab_eq "both up: writes acknowledged" 0 "$(seq_stat failed)"
lab_eq "h2-8 on m1" two-8 "$(mc $M1 get h2-8)"
lab_eq "h2-8 on m2" two-8 "$(m2direct get h2-8)"

lab_log "2. m2 hangs (its tap stops answering, keeps logging)"
# keys written before the hang and overwritten during it: m2 keeps the old
# values in memory (its memcached never restarts), so whatever kmagent does
# when m2 comes back must not let those old values be read again
seq_run "before the hang" < <(for i in $(seq 1 20); do
	echo "set part-$i old-$i"; echo "set gone-$i g$i"; done)
lab_eq "40 keys written before the hang" "40 0" "$(seq_stat requests) $(seq_stat failed)"
kill -USR1 "$(lab_pid tap-m2)"
seq_run "reads while m2 hangs, before the fall" < <(for i in 1 2 3 4; do
	echo "get h2-$i two-$i"
done)
lab_eq "reads while m2 hangs all hit (through m1)" 0 "$(seq_stat failed)"
sleep $FALL_WAIT
mark=$(wc -l <"$taplog")
seq_run "after the fall threshold" < <(for i in $(seq 1 20); do
	echo "set after-$i a$i"
	echo "get h2-$((i % 8 + 1)) two-$((i % 8 + 1))"
done)
lab_eq "m2 down: 40 requests answered, none failed" "40 0" \
	"$(seq_stat requests) $(seq_stat failed)"
lab_ok "m2 down: no request waited for the backend timeout (max $(seq_stat max_ms) ms < $TIMEOUT_MS ms)" \
	test "$(seq_stat max_ms)" -lt $TIMEOUT_MS
sleep 0.3
leaked=$(tail -n +$((mark + 1)) "$taplog" | grep -c -e "after-" -e "h2-")
lab_eq "m2 down: none of these requests reached m2 (tap log lines)" 0 "$leaked"
[ "$leaked" -gt 0 ] && tail -n +$((mark + 1)) "$taplog" | grep -e after- -e h2- |
	head -n 5 | sed 's/^/# reached m2: /'
lab_log "tap log lines while m2 was down (probes): $(($(wc -l <"$taplog") - mark))"
lab_eq "writes while m2 is down land on m1" a20 "$(mc $M1 get after-20)"
seq_run "overwrites while m2 is down" < <(for i in $(seq 1 20); do echo "set part-$i new-$i"; done)
lab_eq "20 keys overwritten while m2 is down" "20 0" "$(seq_stat requests) $(seq_stat failed)"
for i in $(seq 1 20); do mc $P delete gone-$i >/dev/null; done

lab_log "m2 answers again"
kill -USR2 "$(lab_pid tap-m2)"
lab_ok "m2 receives writes through kmagentd again within 6 s" \
	writes_reach m2direct back2
# reads from m2 again: a key stored on m2 only is found through kmagentd
m2direct set only-m2 here >/dev/null
readable=0
for ((i = 0; i < 50; i++)); do
	[ "$(mc $P get only-m2)" == here ] && readable=1 && break
	sleep 0.2
done
lab_eq "kmagentd reads from m2 again within 10 s" 1 $readable
seq_run "reads after m2 is back" < <(for i in $(seq 1 20); do echo "get part-$i new-$i"; done)
lab_eq "no value overwritten during the hang is read in its old version" \
	"20 0" "$(seq_stat requests) $(seq_stat failed)"
seq_run "deleted keys after m2 is back" < <(for i in $(seq 1 20); do echo "miss gone-$i"; done)
lab_eq "no key deleted during the hang is read again" \
	"20 0" "$(seq_stat requests) $(seq_stat failed)"
stale=0
for i in $(seq 1 20); do
	[ "$(m2direct get part-$i)" == "new-$i" ] || stale=$((stale + 1))
done
for i in $(seq 1 20); do
	m2direct get gone-$i >/dev/null && stale=$((stale + 1))
done
lab_eq "m2 holds the new values and not the deleted keys (replicas equal again)" 0 $stale
lab_log "3. every backend down: errors at once, no hang, the connection stays"
lab_kill mc-m1 TERM
lab_kill mc-m2 TERM
sleep $FALL_WAIT
out=$(printf 'get h2-1\r\nset x 0 0 1\r\nv\r\nmg h2-2 v\r\ndelete h2-3\r\nget h2-1 h2-2\r\nmn\r\n' |
	lab_mc c --quiet-ms 1500 $P raw | tr -d '\r')
printf '%s\n' "$out" | sed 's/^/# all down: /'
lab_eq "all down: 5 requests, 5 SERVER_ERROR lines, then MN (connection kept)" \
	"5 MN" "$(printf '%s\n' "$out" | grep -c '^SERVER_ERROR ') $(printf '%s\n' "$out" | tail -n 1)"
lab_restart mc-m1
lab_ok "m1 back: writes through kmagentd reach it within 6 s" \
	writes_reach "mc $M1" back3
lab_log "4. both memcacheds hang (SIGSTOP); m1 answers again first"
lab_restart mc-m2
lab_ok "m2 receives writes through kmagentd again within 6 s" \
	writes_reach m2direct back4
seq_run "before both hang" < <(for i in $(seq 1 20); do echo "set hold-$i h$i"; done)
lab_eq "20 keys written while both are up" "20 0" "$(seq_stat requests) $(seq_stat failed)"
lab_eq "hold-20 on m1 and m2" "h20 h20" "$(mc $M1 get hold-20) $(m2direct get hold-20)"
kill -STOP "$(lab_pid mc-m1)" "$(lab_pid mc-m2)"
sleep $FALL_WAIT
kill -CONT "$(lab_pid mc-m1)"
# m1 kept its memory: once kmagentd serves again, every key must be there,
# m1 being the only replica that can answer
back=0
for ((i = 0; i < 30; i++)); do
	[ "$(mc $P get hold-1)" == h1 ] && back=1 && break
	sleep 0.2
done
lab_eq "kmagentd serves hold-1 again within 6 s of m1 answering" 1 $back
seq_run "m1 alone again" < <(for i in $(seq 1 20); do echo "get hold-$i h$i"; done)
lab_eq "no key lost when the only reachable replica comes back" "20 0" \
	"$(seq_stat requests) $(seq_stat failed)"
kill -CONT "$(lab_pid mc-m2)"
lab_ok "m2 receives writes through kmagentd again within 6 s" \
	writes_reach m2direct back5
seq_run "both back" < <(for i in $(seq 1 20); do echo "get hold-$i h$i"; done)
lab_eq "and none lost once both are back" "20 0" "$(seq_stat requests) $(seq_stat failed)"
lab_log "5. m2 hangs, writes go on to m1, m1 hangs too, m2 answers first, then m1"
seq_run "before" < <(for i in $(seq 1 20); do echo "set seq-$i old-$i"; done)
lab_eq "20 keys written while both are up" "20 0" "$(seq_stat requests) $(seq_stat failed)"
kill -STOP "$(lab_pid mc-m2)"
sleep $FALL_WAIT
seq_run "m2 hung" < <(for i in $(seq 1 20); do echo "set seq-$i new-$i"; done)
lab_eq "20 keys overwritten while m2 hangs (m1 only)" "20 0" \
	"$(seq_stat requests) $(seq_stat failed)"
kill -STOP "$(lab_pid mc-m1)"
sleep $FALL_WAIT
kill -CONT "$(lab_pid mc-m2)"
sleep $FALL_WAIT
# m2 alone holds only the old values: what it serves meanwhile is
# information; what matters is that m1's newer values survive m1's return
seq_run "m2 alone (information)" < <(for i in $(seq 1 20); do echo "get seq-$i new-$i"; done)
lab_log "with only m2 (stale) back: $(seq_stat failed) of 20 reads not the newest value"
kill -CONT "$(lab_pid mc-m1)"
newest=0
for ((i = 0; i < 40; i++)); do
	seq_run "both back" < <(for j in $(seq 1 20); do echo "get seq-$j new-$j"; done) >/dev/null
	[ "$(seq_stat failed)" == 0 ] && newest=1 && break
	sleep 0.25
done
lab_eq "within 10 s of m1's return every read gives the newest value (no acknowledged write lost)" \
	1 $newest
# the stale one is refilled after m1 serves again: give it a few seconds
for ((t = 0; t < 25; t++)); do
	stale=0
	for i in $(seq 1 20); do
		[ "$(mc $M1 get seq-$i) $(m2direct get seq-$i)" == "new-$i new-$i" ] ||
			stale=$((stale + 1))
	done
	[ $stale -eq 0 ] && break
	sleep 0.2
done
lab_eq "m1 and m2 both hold the newest values (within 5 s)" 0 $stale
lab_ok "kmagentd still running" lab_alive km-p
lab_done
