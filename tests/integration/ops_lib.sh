# Helpers of the ops tests (4x_*.sh), on top of lib.sh:
#   ops_py HOST ARGS...      tests/tools/mcops.py, run inside HOST:
#     fill HOST:PORT N PREFIX [FLAGS TTL]  set PREFIX0..N-1 (value = key)
#     getall HOST:PORT N PREFIX            "hits H misses M wrong W"
#     count HOST:PORT N PREFIX             keys present on a server
#     stat HOST:PORT NAME                  a memcached stats figure
#     hits_but HOST:PORT PFX               get_hits less keys PFX:* (stats detail)
#     mg HOST:PORT KEY                     "VA len fF tT" line or EN
#     setv HOST:PORT PREFIX LO HI VPFX     set PREFIX<i> to VPFX<i>, LO <= i < HI
#     del HOST:PORT PREFIX LO HI           delete them: "failed N"
#     getv HOST:PORT PREFIX LO HI VPFX     "hits H misses M wrong W"
#     incrs HOST:PORT PREFIX LO HI SECS    incr them by 1 again and again
#                                          for SECS: "ok N notfound M other K"
#   ctl ARGS...              build/kmagentctl on km-p's control socket
#   jget JSON PATH           a value out of JSON (python path expression)
OPS_PY=$LAB_ROOT/tests/tools/mcops.py

ops_py() { local h=$1; shift; lab_in "$h" "$LAB_PY" "$OPS_PY" "$@"; }
ctl() { "$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[km-p]}" "$@"; }
jget() { "$LAB_PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {"d": d}))' "$1" "$2"; }

# wait_for WHAT SECS CMD...: until CMD succeeds (every 0.1 s), or log WHAT
# timed out and fail
wait_for() { # WHAT SECS CMD...
	local what=$1 n=$(($2 * 10)) i
	shift 2
	for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done
	lab_log "timed out: $what"
	return 1
}

# ops_wait_handoff SECS: no backend joins or leaves ring slots any more
# (the ring handoff is over: joiners filled, leavers purged)
ops_wait_handoff()
{
	local secs=$1 t0 j
	t0=$(date +%s)
	while :; do
		j=$(ctl -j backends 2>/dev/null)
		if [ -n "$j" ] && "$LAB_PY" -c '
import json, sys
d = json.loads(sys.argv[1])
sys.exit(any(b["joining"] or b["leaving"] for b in d["backends"]))
' "$j"; then
			return 0
		fi
		[ $(($(date +%s) - t0)) -ge "$secs" ] && return 1
		sleep 0.1
	done
}

# ops_wait_state NAME STATE REASON-REGEX SECS: until backend NAME is STATE
# with a matching reason
ops_wait_state()
{
	local name=$1 st=$2 re=$3 secs=$4 t0 j
	t0=$(date +%s)
	while :; do
		j=$(ctl -j backends 2>/dev/null)
		if [ -n "$j" ] && "$LAB_PY" -c '
import json, re, sys
d = json.loads(sys.argv[1])
b = [b for b in d["backends"] if b["name"] == sys.argv[2]][0]
sys.exit(0 if b["state"] == sys.argv[3] and re.search(sys.argv[4], b["reason"]) else 1)
' "$j" "$name" "$st" "$re"; then
			return 0
		fi
		[ $(($(date +%s) - t0)) -ge "$secs" ] && return 1
		sleep 0.1
	done
}

# ops_until SECS CMD...: until CMD succeeds (tried every 0.1 s), SECS at most
ops_until()
{
	local secs=$1 t0
	shift
	t0=$(date +%s)
	until "$@"; do
		[ $(($(date +%s) - t0)) -ge "$secs" ] && return 1
		sleep 0.1
	done
}

# ops_wait_log FILE REGEX COUNT SECS: until REGEX matches COUNT lines
ops_wait_log()
{
	local t0
	t0=$(date +%s)
	while [ "$(grep -cE "$2" "$1")" -lt "$3" ]; do
		[ $(($(date +%s) - t0)) -ge "$4" ] && return 1
		sleep 0.1
	done
}

# ops_two_proxies [kernel]: the article's shape with two kmagentd:
# kmagentctl of km-pa / km-pb (ops_two_proxies)
ctla() { "$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[km-pa]}" "$@"; }
ctlb() { "$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[km-pb]}" "$@"; }
# be_field CTL NAME FIELD: a field of backend NAME in CTL -j backends
be_field()
{
	jget "$($1 -j backends)" \
		'[b for b in d["backends"] if b["name"] == "'"$2"'"][0]'"$3"
}

# ops_key_first PFX FIRST NAME...: the first key PFX0..PFX200 whose
# replica order over NAME... (kmring.py) starts with FIRST; fails if none
ops_key_first()
{
	local pfx=$1 want=$2 i
	shift 2
	for i in $(seq 0 200); do
		[ "$("$LAB_PY" "$LAB_ROOT/tests/integration/kmring.py" "$pfx$i" \
			"$@" | cut -d' ' -f1)" == "$want" ] && echo "$pfx$i" &&
			return 0
	done
	return 1
}

# ops_conf FILE BACKENDS...: a kmagentd config file, replicas 2
ops_conf()
{
	local f=$1
	shift
	{
		echo "replicas 2"
		printf 'backend %s\n' "$@"
	} >"$f"
}

# ops_hosts [mc]: the hosts of two kmagentd (pa .4, pb .5) in front of
# memcached hosts ma (.1), mb (.2) and, with "mc", mc (.3); client c
# (.10).  Sets MA MB (MC) PA PB; starts nothing.
ops_hosts()
{
	lab_host ma 198.18.0.1
	lab_host mb 198.18.0.2
	[ "${1:-}" == mc ] && lab_host mc 198.18.0.3
	lab_host pa 198.18.0.4
	lab_host pb 198.18.0.5
	lab_host c 198.18.0.10
	MA=198.18.0.1:11211 MB=198.18.0.2:11211 MC=198.18.0.3:11211
	PA=198.18.0.4:11210 PB=198.18.0.5:11210
}

# OPS_HEALTH: probes every 200 ms, quick to fall and rise
OPS_HEALTH=(--probe-interval 200 --probe-timeout 200 --fall 2 --rise 2
	--timeout 300 -v)

# memcached ma (.1) and mb (.2), kmagentd km-pa on pa (.4) and km-pb on pb
# (.5) in front of both, client c (.10); probes every 200 ms
# (OPS_HEALTH).  With "kernel", pb serves UDP in the kernel (-I eth0, pin
# root $PIN; source udp_lib.sh first).  Sets MA MB PA PB; ctl talks to pa.
ops_two_proxies()
{
	local kernel=${1:-} pb_args=()
	lab_init
	if [ "$kernel" == kernel ]; then
		udp_bpffs
		PIN=$UDP_BPFFS/pb
		lab_pin_dir "$PIN"
		pb_args=(-I eth0 --pin-root "$PIN")
	fi
	ops_hosts
	[ "$kernel" == kernel ] && udp_xdp_peer pb
	lab_memcached ma 11211
	lab_memcached mb 11211
	LAB_LABEL=km-pa lab_kmagentd pa -l 198.18.0.4 -p 11210 -s $MA -s $MB \
		"${OPS_HEALTH[@]}"
	LAB_LABEL=km-pb lab_kmagentd pb -l 198.18.0.5 -p 11210 -s $MA -s $MB \
		"${pb_args[@]}" "${OPS_HEALTH[@]}"
	ctl() { "$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[km-pa]}" "$@"; }
	[ "$kernel" == kernel ] || return 0
	lab_ok "PB knows MA's and MB's MAC" udp_wait "neighbours" 10 \
		udp_neigh_known_in pb 198.18.0.1 198.18.0.2
}
