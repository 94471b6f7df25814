#!/bin/bash
# The Prometheus alert rules and the Grafana dashboard in packaging/:
# promtool checks the rules and runs their unit tests, every query of the
# dashboard is valid PromQL (promtool, as recording rules), and every
# metric and counter they name is one a running kmagentd exports (with
# the kernel path, scraped in a lab).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/udp_lib.sh"

RULES=$LAB_ROOT/packaging/prometheus/kmagent.rules.yml
RTEST=$LAB_ROOT/packaging/prometheus/kmagent.rules.test.yml
DASH=$LAB_ROOT/packaging/grafana/kmagent.json
command -v promtool >/dev/null || lab_die "promtool missing (scripts/install-deps.sh)"

out=$(promtool check rules "$RULES" 2>&1)
lab_eq "promtool check rules" 0 $?
lab_ok "... found the alerts" grep -qE "SUCCESS: [0-9]+ rules found" <<<"$out"
out=$(cd "$(dirname "$RTEST")" && promtool test rules "$(basename "$RTEST")" 2>&1)
rc=$?
[ $rc -eq 0 ] || sed 's/^/# | /' <<<"$out"
lab_eq "promtool test rules (the alerts' unit tests)" 0 $rc

udp_lab_pab
# the dashboard's queries: JSON checks, then each one as a recording rule
"$LAB_PY" - "$DASH" "$LAB_DIR/dash.rules.yml" <<'PY' >"$LAB_DIR/dash.out" 2>&1
import json, sys
d = json.load(open(sys.argv[1]))
errs, exprs, ids = [], [], set()
for p in d["panels"]:
    if p["id"] in ids:
        errs.append("duplicate panel id %d" % p["id"])
    ids.add(p["id"])
    if p["type"] == "row":
        continue
    if not p.get("targets"):
        errs.append("panel %r has no query" % p["title"])
    for t in p.get("targets", []):
        e = t["expr"].replace("$__rate_interval", "5m").replace("$instance", ".*")
        if "$" in e:
            errs.append("panel %r: unknown variable in %s" % (p["title"], e))
        exprs.append(e)
names = {v["name"] for v in d["templating"]["list"]}
if names != {"datasource", "instance"}:
    errs.append("template variables: %s" % sorted(names))
with open(sys.argv[2], "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        f.write("      - record: dashboard:q%d\n        expr: %s\n" % (i, json.dumps(e)))
print("\n".join(errs) or "%d queries" % len(exprs))
sys.exit(1 if errs else 0)
PY
lab_eq "the dashboard is well formed" 0 $?
sed 's/^/# /' "$LAB_DIR/dash.out"
out=$(promtool check rules "$LAB_DIR/dash.rules.yml" 2>&1)
rc=$?
[ $rc -eq 0 ] || sed 's/^/# | /' <<<"$out"
lab_eq "every dashboard query is valid PromQL" 0 $rc

lab_kmagentd p -l 198.18.0.1 -p 11210 -s 198.18.0.2:11211 -s 198.18.0.3:11211 \
	-I eth0 --pin-root "$PIN" --metrics 198.18.0.1:9411
udp_kernel_ready 198.18.0.2 198.18.0.3
lab_in c "$LAB_PY" -c '
import urllib.request
print(urllib.request.urlopen("http://198.18.0.1:9411/metrics", timeout=5).read().decode())' \
	>"$LAB_DIR/scrape.txt"
lab_ok "scraped kmagentd" grep -q '^kmagent_uptime_seconds ' "$LAB_DIR/scrape.txt"
"$LAB_PY" - "$LAB_DIR/scrape.txt" "$RULES" "$DASH" <<'PY' >"$LAB_DIR/names.out" 2>&1
import re, sys
scrape = open(sys.argv[1]).read()
text = open(sys.argv[2]).read() + open(sys.argv[3]).read()
exported = set(re.findall(r"^# TYPE (\w+)", scrape, re.M))
missing = []
for name in sorted(set(re.findall(r"\b(kmagent_\w+)", text))):
    if name not in exported:
        missing.append(name)
# label values the queries select on: counter="x", counter=~"a|b", state=, result=
for metric, label, val in re.findall(r'(kmagent_\w+)\{[^}]*?\b(counter|state|result)=~?\\?"([^"\\]+)', text):
    for v in val.split("|"):
        if not re.search(r'^%s\{[^}]*%s="%s"' % (metric, label, re.escape(v)), scrape, re.M):
            missing.append('%s{%s="%s"}' % (metric, label, v))
print("\n".join(sorted(set(missing))) or "%d metric names checked" % len(exported))
sys.exit(1 if missing else 0)
PY
rc=$?
sed 's/^/# /' "$LAB_DIR/names.out"
lab_eq "every metric and counter named is exported by kmagentd" 0 $rc
lab_done
