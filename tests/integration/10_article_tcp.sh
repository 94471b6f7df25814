#!/bin/bash
# The article's seven steps (BRIEF section 1), in the article's shape, over
# TCP: hosts A and B each run memcached (11211) and kmagentd (11210), each
# kmagentd proxying BOTH memcacheds; a client host C uses the two kmagents
# as its pool.  magent answers null at step 7; kmagent must return the value.
# Then null-fallback both ways: a value held by only one replica is found
# through either kmagent, whichever replica the key hashes to first.
. "$(dirname "$0")/lib.sh"

KEY=becd0000
VALUE=测试例子 # the article's value, sent as its UTF-8 bytes

# The article's magent hashed the key to B, which is what made step 7 fail:
# name the hosts so that kmagent's ring also puts B first for the key
# (tests/integration/kmring.py mirrors user/lib/ring.c), so that step 7 needs
# the null-fallback.
A=198.18.0.1 B=198.18.0.2
if [ -f "$LAB_ROOT/tests/integration/kmring.py" ]; then
	first=$("$LAB_PY" "$LAB_ROOT/tests/integration/kmring.py" $KEY \
		198.18.0.1:11211 198.18.0.2:11211 | cut -d' ' -f1)
	[ "$first" == 198.18.0.1:11211 ] && A=198.18.0.2 B=198.18.0.1
fi
BACKENDS=(-s 198.18.0.1:11211 -s 198.18.0.2:11211)

lab_init
lab_host a $A
lab_host b $B
lab_host c 198.18.0.10
lab_log "A=$A, B=$B: kmagent's ring puts B first for $KEY, as magent did"

lab_memcached a 11211
lab_memcached b 11211
# both kmagents list the backends in the same order, as in the article
# shellcheck disable=SC2086
lab_kmagentd a -p 11210 "${BACKENDS[@]}" ${KM_EXTRA_ARGS:-}
# shellcheck disable=SC2086
lab_kmagentd b -p 11210 "${BACKENDS[@]}" ${KM_EXTRA_ARGS:-}

# the client's view: mc.py run on host C
mc() { lab_mc c --timeout 3 "$@"; }

# the article's client: a plain memcached client library given the two
# kmagents as its server pool (libmemcached's memccp/memccat hash the key
# to one of them, as the article's Java client did)
POOL=--servers=$A:11210,$B:11210
pool_get() { lab_in c memccat "$POOL" "$1" 2>/dev/null; }
if command -v memccp >/dev/null && command -v memccat >/dev/null; then
	HAVE_POOL=1
	mkdir -p "$LAB_DIR/cp" && printf '%s' "$VALUE" >"$LAB_DIR/cp/$KEY"
else
	HAVE_POOL=0
	lab_log "libmemcached-tools missing: the pool client steps use mc.py only"
fi

if [ $HAVE_POOL -eq 1 ]; then
	lab_log "step 1: set $KEY through the kmagent pool (memccp $POOL)"
	lab_ok "step 1: set $KEY \"$VALUE\" through the pool (libmemcached)" \
		lab_in c memccp "$POOL" "$LAB_DIR/cp/$KEY"
else
	lab_log "step 1: set $KEY through the kmagent pool (kmagent on A)"
	lab_eq "step 1: set $KEY \"$VALUE\" via kmagent A answers STORED" \
		STORED "$(mc $A:11210 set $KEY "$VALUE")"
fi

lab_log "step 2: get $KEY directly from memcached on A"
lab_eq "step 2: memcached A holds the value" "$VALUE" "$(mc $A:11211 get $KEY)"

lab_log "step 3: get $KEY directly from memcached on B"
lab_eq "step 3: memcached B holds the value (written to every backend)" \
	"$VALUE" "$(mc $B:11211 get $KEY)"

lab_log "step 4: stop memcached on B (kill PID $(lab_pid mc-b))"
lab_kill mc-b TERM
lab_not "step 4: memcached B no longer answers" lab_answers c $B 11211

lab_log "step 5: get $KEY through the pool while B's memcached is down"
[ $HAVE_POOL -eq 1 ] && lab_eq "step 5: get through the pool (libmemcached) returns the value" \
	"$VALUE" "$(pool_get $KEY)"
lab_eq "step 5: get via kmagent A returns the value" \
	"$VALUE" "$(mc $A:11210 get $KEY)"
lab_eq "step 5: get via kmagent B returns the value" \
	"$VALUE" "$(mc $B:11210 get $KEY)"

lab_log "step 6: start memcached on B again: it comes back empty"
old=$(lab_pid mc-b)
lab_restart mc-b
lab_ne "step 6: memcached B restarted as a new process" "$old" "$(lab_pid mc-b)"
lab_ok "step 6: memcached B answers again" lab_answers c $B 11211
# kmagent reads from B again once B is back UP (after its resync): wait for
# that, so that step 7 asks B first as magent did.
# (a key stored on B only is found through a kmagent only when it reads B;
# stored again each round: kmagent empties B before B takes writes again)
lab_in c "$LAB_PY" "$LAB_MC" $A:11211 delete onlyb >/dev/null
up=0
for ((i = 0; i < 100; i++)); do
	lab_in c "$LAB_PY" "$LAB_MC" $B:11211 set onlyb "from-b" >/dev/null
	if [ "$(mc $A:11210 get onlyb)" == from-b ] &&
		[ "$(mc $B:11210 get onlyb)" == from-b ]; then
		up=1
		break
	fi
	sleep 0.1
done
lab_eq "B serves reads through both kmagents again within 10 s" 1 $up
# memcached keeps data in memory only; kmagent's resync may have refilled
# it: then empty it again, for step 7 to meet the article's state
if mc $B:11211 get $KEY >/dev/null; then
	lab_log "step 6: B already holds $KEY again (resync was quick): deleting it on B"
	mc $B:11211 delete $KEY >/dev/null
fi
lab_not "step 6: memcached B does not hold $KEY" mc $B:11211 get $KEY

lab_log "step 7: get $KEY through the pool (magent answers null here)"
[ $HAVE_POOL -eq 1 ] && lab_eq "step 7: get through the pool (libmemcached) returns the value" \
	"$VALUE" "$(pool_get $KEY)"
lab_eq "step 7: get via kmagent A returns the value" \
	"$VALUE" "$(mc $A:11210 get $KEY)"
lab_eq "step 7: get via kmagent B returns the value" \
	"$VALUE" "$(mc $B:11210 get $KEY)"

# --- beyond the article: null-fallback whichever replica is asked first ---

for via in $A $B; do
	mc $A:11211 set onlya "from-a" >/dev/null
	mc $B:11211 delete onlya >/dev/null
	lab_eq "a value held by A only is found via kmagent $via" \
		from-a "$(mc "$via":11210 get onlya)"
	mc $B:11211 set onlyb2 "from-b" >/dev/null
	mc $A:11211 delete onlyb2 >/dev/null
	lab_eq "a value held by B only is found via kmagent $via" \
		from-b "$(mc "$via":11210 get onlyb2)"
done

# a key on no replica is a plain miss, not an error or a hang
lab_not "a key held by no replica is a miss (exit 1 from get)" \
	mc $A:11210 get never-set-key
out=$(printf 'get never-set-key\r\n' | mc $A:11210 raw)
lab_eq "the miss is memcached's own reply" "END" "$(printf '%s' "$out" | tr -d '\r')"

# --- the article's note: clients need no change ---
# real client libraries (Debian's python3-pymemcache, python3-pylibmc),
# given the two kmagents as their pool, get what they get from one memcached
lab_memcached c 11211
lab_in c "$LAB_PY" "$LAB_ROOT/tests/tools/mclibs.py" 198.18.0.10:11211 \
	$A:11210 $B:11210 | grep -v '^ok'
lab_eq "client libraries through the kmagent pool: same results as one memcached" \
	0 "${PIPESTATUS[0]}"

lab_done
