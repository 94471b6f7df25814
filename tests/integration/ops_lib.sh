# Helpers of the ops tests (4x_*.sh), on top of lib.sh:
#   ops_py HOST ARGS...      the client below, run inside HOST:
#     fill HOST:PORT N PREFIX [FLAGS TTL]  set PREFIX0..N-1 (value = key)
#     getall HOST:PORT N PREFIX            "hits H misses M wrong W"
#     count HOST:PORT N PREFIX             keys present on a server
#     stat HOST:PORT NAME                  a memcached stats figure
#     mg HOST:PORT KEY                     "VA len fF tT" line or EN
#     setv HOST:PORT PREFIX LO HI VPFX     set PREFIX<i> to VPFX<i>, LO <= i < HI
#     del HOST:PORT PREFIX LO HI           delete them: "failed N"
#     getv HOST:PORT PREFIX LO HI VPFX     "hits H misses M wrong W"
#   ctl ARGS...              build/kmagentctl on km-p's control socket
#   jget JSON PATH           a value out of JSON (python path expression)
OPS_PY=$LAB_DIR/ops_client.py
cat >"$OPS_PY" <<'PYEOF'
import socket, sys

def conn(hp):
    h, p = hp.rsplit(":", 1)
    s = socket.create_connection((h, int(p)), timeout=5)
    return s, s.makefile("rb")

def fill(hp, n, pfx, flags=0, ttl=0):
    s, f = conn(hp)
    for i in range(0, n, 500):
        buf = b"".join(b"set %s%d %d %d %d\r\n%s%d\r\n" % (
            pfx.encode(), k, flags, ttl, len(pfx) + len(str(k)),
            pfx.encode(), k) for k in range(i, min(n, i + 500)))
        s.sendall(buf)
        for k in range(i, min(n, i + 500)):
            line = f.readline()
            if line != b"STORED\r\n":
                print("set failed:", line); sys.exit(1)
    print("stored", n)

def getall(hp, n, pfx):
    s, f = conn(hp)
    hits = misses = wrong = 0
    for k in range(n):
        key = ("%s%d" % (pfx, k)).encode()
        s.sendall(b"get " + key + b"\r\n")
        line = f.readline()
        if line == b"END\r\n":
            misses += 1; continue
        parts = line.split()
        if parts[0] != b"VALUE":
            wrong += 1; continue
        data = f.read(int(parts[3]) + 2)[:-2]
        f.readline()
        if data == key: hits += 1
        else: wrong += 1
    print("hits %d misses %d wrong %d" % (hits, misses, wrong))

def count(hp, n, pfx):
    s, f = conn(hp)
    c = 0
    for k in range(n):
        s.sendall(b"mg %s%d\r\n" % (pfx.encode(), k))
        if f.readline().startswith(b"HD"): c += 1
    print(c)

def stat(hp, name):
    s, f = conn(hp)
    s.sendall(b"stats\r\n")
    for line in iter(f.readline, b"END\r\n"):
        p = line.split()
        if p[1].decode() == name: print(p[2].decode())

def mg(hp, key):
    s, f = conn(hp)
    s.sendall(b"mg %s v f t\r\n" % key.encode())
    print(f.readline().decode().strip())

def setv(hp, pfx, lo, hi, vpfx):
    s, f = conn(hp)
    bad = 0
    for k in range(lo, hi):
        v = ("%s%d" % (vpfx, k)).encode()
        s.sendall(b"set %s%d 0 0 %d\r\n%s\r\n" % (pfx.encode(), k, len(v), v))
        bad += f.readline() != b"STORED\r\n"
    print("failed %d" % bad)

def delete(hp, pfx, lo, hi):
    s, f = conn(hp)
    bad = 0
    for k in range(lo, hi):
        s.sendall(b"delete %s%d\r\n" % (pfx.encode(), k))
        bad += f.readline() not in (b"DELETED\r\n", b"NOT_FOUND\r\n")
    print("failed %d" % bad)

def getv(hp, pfx, lo, hi, vpfx):
    """"hits H misses M wrong W": a hit holds vpfx<i>"""
    s, f = conn(hp)
    hits = misses = wrong = 0
    for k in range(lo, hi):
        s.sendall(b"get %s%d\r\n" % (pfx.encode(), k))
        line = f.readline()
        if line == b"END\r\n":
            misses += 1; continue
        data = f.read(int(line.split()[3]) + 2)[:-2]
        f.readline()
        if data == ("%s%d" % (vpfx, k)).encode(): hits += 1
        else: wrong += 1
    print("hits %d misses %d wrong %d" % (hits, misses, wrong))

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "fill": fill(args[0], int(args[1]), args[2], *map(int, args[3:]))
elif cmd == "getall": getall(args[0], int(args[1]), args[2])
elif cmd == "count": count(args[0], int(args[1]), args[2])
elif cmd == "stat": stat(args[0], args[1])
elif cmd == "mg": mg(args[0], args[1])
elif cmd == "setv": setv(args[0], args[1], int(args[2]), int(args[3]), args[4])
elif cmd == "del": delete(args[0], args[1], int(args[2]), int(args[3]))
elif cmd == "getv": getv(args[0], args[1], int(args[2]), int(args[3]), args[4])
PYEOF

ops_py() { local h=$1; shift; lab_in "$h" "$LAB_PY" "$OPS_PY" "$@"; }
ctl() { "$LAB_ROOT/build/kmagentctl" -s "${LAB_CTL[km-p]}" "$@"; }
jget() { "$LAB_PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {"d": d}))' "$1" "$2"; }

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
