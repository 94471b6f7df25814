#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Turn the raw results of scripts/bench.sh into docs/benchmarks.md, a
table on stdout and the data file of bench/benchmarks.gnuplot.

Input (all in --work): results.tsv (target, shape, op, rep, CPU of the
target's process, of its host's receive and switch-side NAPI kthreads (ns),
busy ticks of the proxies' core, wake-ups of the eth0 NAPI kthread,
kmbench exit status, kmbench JSON), napi.txt and shape.txt (the shape, checked:
scripts/bench.sh shape_check), bpf.txt (shape, op, program,
run_time_ns delta, run_cnt delta), avail.txt + avail-TARGET.log (kill
time, kmbench --interval lines), rss.txt, na.txt, machine.txt,
resync.txt.  Standard library only.
"""
import argparse
import json
import os
import statistics
import sys

TARGETS = ["direct-tcp", "direct-udp", "hop-tcp", "hop-udp", "nutcracker",
           "kmagent-tcp", "kmagent-udp", "kmagent-kernel", "kmagent-owing",
           "kmagent-journal", "kmagent-first"]
TITLE = {
    "direct-tcp": "memcached direct, TCP",
    "direct-udp": "memcached direct, UDP",
    "hop-tcp": "memcached via a router, TCP",
    "hop-udp": "memcached via a router, UDP",
    "nutcracker": "nutcracker (TCP)",
    "kmagent-tcp": "kmagent TCP path",
    "kmagent-udp": "kmagent UDP, userspace",
    "kmagent-kernel": "kmagent UDP, kernel path",
    "kmagent-owing": "kmagent TCP, b drained for writes, journal in memory",
    "kmagent-journal": "kmagent TCP, b drained for writes, journal in "
                       "--state-dir",
    "article-kernel": "kmagent UDP, kernel path, article's shape",
    "kmagent-first": "kmagent TCP, answer on the first reply (reference)",
}
SHAPES = ["16x1", "2x16", "1x1"]
SHAPE_TITLE = {"16x1": "16 connections x 1 in flight",
               "2x16": "2 connections x 16 in flight (pipelined)",
               "1x1": "1 connection x 1 in flight (latency)"}
OPS = ["get", "set"]
UDP = {"direct-udp", "hop-udp", "kmagent-udp", "kmagent-kernel",
       "article-kernel"}
# the journal's cost: 16x1 sets only (scripts/bench.sh, journal_phase)
JOURNAL = {"kmagent-owing", "kmagent-journal"}
# --write-policy first: sets 1x1 only (scripts/bench.sh, first_target)
FIRST = {"kmagent-first"}
PROXIES = {"nutcracker", "kmagent-tcp", "kmagent-udp", "kmagent-kernel",
           "kmagent-owing", "kmagent-journal", "kmagent-first"}


def direct_of(t):
    return "direct-udp" if t in UDP else "direct-tcp"


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def load_results(work, clk_tck):
    runs = {}
    for line in read_lines(os.path.join(work, "results.tsv")):
        t, shape, op, rep, proc, rx, tx, core, wakes, rc, js = \
            line.split("\t", 10)
        try:
            r = json.loads(js)
        except ValueError:
            r = {}
        r["rc"] = int(rc)
        r["rep"] = rep
        # seconds of CPU: the process, its host's own NIC (the receive
        # NAPI kthread, where XDP and tc run), the switch side (the peer's
        # NAPI kthread, BENCH_SWITCH_NAPI=thread: what the host sent, into
        # the bridge), everything on the proxies' core; and how many
        # times the eth0 kthread woke up
        r["proc_s"] = int(proc) / 1e9
        r["rx_s"] = int(rx) / 1e9
        r["tx_s"] = int(tx) / 1e9
        r["core_s"] = int(core) / clk_tck
        r["wakes"] = int(wakes)
        runs.setdefault((t, shape, op), []).append(r)
    return runs


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def per_op(rs, f):
    """Median over the runs of f(run) in us per request."""
    return median(f(r) / r["ops"] * 1e6 for r in rs if r.get("ops"))


def summarise(runs):
    """Medians per (target, shape, op); counts summed over the reps."""
    out = {}
    for key, rs in runs.items():
        ok = [r for r in rs if "ops_per_sec" in r]
        s = {
            "n": len(ok),
            "tput": median(r["ops_per_sec"] for r in ok),
            "p50": median(r["p50_us"] for r in ok),
            "p99": median(r["p99_us"] for r in ok),
            "p999": median(r["p999_us"] for r in ok),
            # all-in: the process and both NAPI kthreads of its host
            "cpu_us": per_op(ok, lambda r: r["proc_s"] + r["rx_s"] +
                             r["tx_s"]),
            "proc_us": per_op(ok, lambda r: r["proc_s"]),
            "rx_us": per_op(ok, lambda r: r["rx_s"]),
            "tx_us": per_op(ok, lambda r: r["tx_s"]),
            "napi_us": per_op(ok, lambda r: r["rx_s"] + r["tx_s"]),
            "core_us": per_op(ok, lambda r: r["core_s"]),
            # requests per wake-up of the eth0 kthread, CPU per wake-up
            "per_wake": median(r["ops"] / r["wakes"] for r in ok
                               if r.get("wakes")),
            "wake_us": median(r["rx_s"] * 1e6 / r["wakes"] for r in ok
                              if r.get("wakes")),
            "client_us": median(r.get("client_cpu_us_per_op")
                                for r in ok),
            "errors": sum(r.get("errors", 0) for r in ok),
            "wrong": sum(r.get("wrong", 0) for r in ok),
            "lost": sum(r.get("lost", 0) for r in ok),
            "misses": sum(r.get("misses", 0) for r in ok),
            "ops": sum(r.get("ops", 0) for r in ok),
            "failed_runs": sum(1 for r in rs if r["rc"] not in (0,)),
        }
        out[key] = s
    return out


def fmt(v, spec="{:.0f}", na="-"):
    return na if v is None else spec.format(v)


def ratio(a, b):
    if a is None or not b:
        return None
    return a / b


def bpf_summary(work, summ):
    """ns per run of each program, and BPF ns per request, per cell."""
    progs = {}
    cells = {}
    for line in read_lines(os.path.join(work, "bpf.txt")):
        shape, op, name, dt, dc = line.split()
        dt, dc = int(dt), int(dc)
        p = progs.setdefault((shape, op, name), [0, 0])
        p[0] += dt
        p[1] += dc
        c = cells.setdefault((shape, op), 0)
        cells[(shape, op)] = c + dt
    per_req = {}
    for (shape, op), dt in cells.items():
        s = summ.get(("kmagent-kernel", shape, op))
        if s and s["ops"]:
            per_req[(shape, op)] = dt / s["ops"]
    return progs, per_req


def availability(work, timeout_ms=100):
    res = {}
    for line in read_lines(os.path.join(work, "avail.txt")):
        t, kill_ms = line.split()
        kill_ms = int(kill_ms)
        last_err = None
        first_err = None
        last_ms = None
        errs = lost = misses = 0
        for l in read_lines(os.path.join(work, "avail-%s.log" % t)):
            f = l.split()
            if not f or f[0] != "interval":
                continue
            ms = int(f[1])
            v = dict(zip(f[2::2], (int(x) for x in f[3::2])))
            last_ms = ms
            if ms < kill_ms:
                continue
            e, lo = v.get("errors", 0), v.get("lost", 0)
            errs += e
            lost += lo
            misses += v.get("misses", 0)
            if e or lo:
                # a lost UDP request is counted timeout_ms after it left
                when = ms - timeout_ms if not e else ms
                last_err = max(last_err or when, when)
                first_err = first_err or ms
        gap = None if last_err is None else max(0, last_err - kill_ms)
        still = (last_err is not None and last_ms is not None
                 and last_ms - last_err < 50)
        res[t] = {"gap_ms": gap, "errors": errs, "lost": lost,
                  "misses": misses, "still_failing": still}
    return res


def cpu_budget(summ, op):
    """Where the two cores go per request at 16x1: the client and the
    backends on the load core, the proxy (all-in) on its own.  Whichever
    core is full first bounds the throughput."""
    rows = []
    for t in TARGETS:
        s = summ.get((t, "16x1", op))
        d = summ.get((direct_of(t), "16x1", op))
        if t.startswith("direct") or not s or not d or None in (
                s["client_us"], s["cpu_us"], d["cpu_us"], s["tput"]):
            continue
        c, m, p = s["client_us"], d["cpu_us"], s["cpu_us"]
        if op == "set" and t.startswith("kmagent"):
            m *= 2      # replicated: one set on each backend
        load = 1e6 / (c + m)
        prox = 1e6 / p if p > 0 else None
        rows.append((TITLE[t], c, m, p, load, prox, s["tput"],
                     "proxy core" if prox and prox < load else "load core"))
    return rows


def replication_ceiling(summ):
    """Sets to 2 replicas, both on the load core with the client: the best
    a proxy that cost nothing could do, from the direct run's own per-set
    costs (client c, memcached m): (c + m) / (c + 2m)."""
    rows = []
    for proto, t in (("udp", "kmagent-kernel"), ("tcp", "kmagent-tcp")):
        d = summ.get(("direct-" + proto, "16x1", "set"))
        s = summ.get((t, "16x1", "set"))
        if not d or None in (d["client_us"], d["cpu_us"], d["tput"]):
            continue
        c, m = d["client_us"], d["cpu_us"]
        rows.append((TITLE[t], c, m, (c + m) / (c + 2 * m),
                     fmt(ratio(s and s["tput"], d["tput"]), "{:.2f}")))
    return rows


class Targets:
    """Rows of a target table: (what, goal, measured, met, how)."""

    def __init__(self, summ):
        self.summ = summ
        self.rows = []

    def get(self, t, shape, op, k):
        s = self.summ.get((t, shape, op))
        return s[k] if s else None

    def row(self, what, goal, value, ok, how):
        if value is None:
            self.rows.append((what, goal, "n/a", "n/a", how))
        else:
            met = "-" if goal == "-" else "yes" if ok else "**no**"
            self.rows.append((what, goal, value, met, how))

    def ratio_row(self, what, t, ref, op, least=None):
        """16x1 throughput of t over ref's; a target when least is set."""
        r = ratio(self.get(t, "16x1", op, "tput"),
                  self.get(ref, "16x1", op, "tput"))
        self.row(what, ">= %g x" % least if least else "-",
                 fmt(r, "{:.3f} x", None) if r else None,
                 least is None or (r and r >= least), "16x1 throughput")

    def added_row(self, what, t, op, q, most=None):
        """1x1 latency quantile q of t minus direct's, same protocol."""
        a = self.get(t, "1x1", op, q)
        d = self.get(direct_of(t), "1x1", op, q)
        v = None if a is None or d is None else a - d
        self.row(what, "<= %g us" % most if most is not None else "-",
                 fmt(v, "{:+.1f} us", None) if v is not None else None,
                 most is None or (v is not None and v <= most),
                 "1x1 %s minus direct 1x1 %s" % (q, q))

    def cpu_row(self, what, t, op, most=None, key="cpu_us",
                how="process + NAPI kthreads / requests, 16x1"):
        v = self.get(t, "16x1", op, key)
        self.row(what, "<= %g us" % most if most is not None else "-",
                 fmt(v, "{:.2f} us", None) if v is not None else None,
                 most is None or (v is not None and v <= most), how)


def resync_keys(resync):
    if resync and resync.split()[0].isdigit():
        return int(resync.split()[0])
    return None


def targets_issue12(summ, resync, resync_alone, per_req):
    """The targets of issue #12 (the production shape), with references."""
    T = Targets(summ)
    T.ratio_row("kernel path get vs direct UDP", "kmagent-kernel",
                "direct-udp", "get", 0.97)
    T.cpu_row("kernel path get: proxy CPU per request, all-in",
              "kmagent-kernel", "get", 1)
    T.cpu_row("kernel path set x2: proxy CPU per request, all-in",
              "kmagent-kernel", "set", 2)
    T.cpu_row("TCP path get: proxy CPU per request, all-in",
              "kmagent-tcp", "get", 3)
    n = T.get("nutcracker", "16x1", "get", "cpu_us")
    k = T.get("kmagent-tcp", "16x1", "get", "cpu_us")
    e = ratio(n, k)
    T.row("TCP path get: efficiency vs nutcracker", ">= 2 x",
          fmt(e, "{:.2f} x", None) if e else None, e and e >= 2,
          "nutcracker's CPU per get / kmagent's, all-in, 16x1")
    v = resync_keys(resync)
    T.row("resync speed, inside the bench", ">= 200k keys/s",
          resync if v is not None else None, v is not None and v >= 200000,
          "TCP instance, 100-byte values, gets 16x1 meanwhile")
    # for reference: what goes with them
    v = resync_keys(resync_alone)
    T.row("resync speed, no foreground load (reference)", "-",
          resync_alone if v is not None else None, True,
          "the same, the backends' core left to the copy")
    for op in OPS:
        b = per_req.get(("16x1", op))
        c = T.get("kmagent-kernel", "16x1", op, "cpu_us")
        T.row("kernel path %s: of which kmagent's BPF programs "
              "(reference)" % ("get" if op == "get" else "set x2"), "-",
              "%.2f us (%.0f%% of all-in)" % (b / 1e3, b / 10 / c)
              if b is not None and c else None, True,
              "run_time_ns of all programs / requests, 16x1; the rest is "
              "veth, bridge, stack and wake-ups")
    T.cpu_row("router hop: CPU per get (reference)", "hop-udp", "get",
              how="the router's NAPI kthreads / requests, UDP, 16x1")
    for op in OPS:
        k = T.get("kmagent-kernel", "16x1", op, "cpu_us")
        h = T.get("hop-udp", "16x1", op, "cpu_us")
        T.row("kernel path %s: all-in minus the router hop's (reference)"
              % ("get" if op == "get" else "set x2"), "-",
              "%+.2f us" % (k - h) if None not in (k, h) else None, True,
              "what the proxy costs beyond forwarding the same frames, "
              "UDP, 16x1")
    T.added_row("kernel path get: added p50 (reference)", "kmagent-kernel",
                "get", "p50")
    T.added_row("kernel path get: added p99 (reference)", "kmagent-kernel",
                "get", "p99")
    T.added_row("kernel path set x2: added p50 (reference)",
                "kmagent-kernel", "set", "p50")
    T.added_row("TCP path get: added p50 (reference)", "kmagent-tcp",
                "get", "p50")
    T.added_row("TCP path set x2: added p50, answer after every replica "
                "(reference)", "kmagent-tcp", "set", "p50")
    T.added_row("TCP path set x2: added p50, answer on the first reply "
                "(reference)", "kmagent-first", "set", "p50")
    T.added_row("nutcracker set, one server: added p50 (reference)",
                "nutcracker", "set", "p50")
    T.added_row("TCP path get: added p99 (reference)", "kmagent-tcp",
                "get", "p99")
    T.ratio_row("router hop alone: UDP get via router vs direct "
                "(reference)", "hop-udp", "direct-udp", "get")
    return T.rows


def targets_issue6(summ, per_req):
    """The targets of issue #6, measured in this shape."""
    T = Targets(summ)
    T.ratio_row("UDP get, kernel path vs direct UDP", "kmagent-kernel",
                "direct-udp", "get", 0.95)
    T.added_row("UDP get, kernel path: added p99", "kmagent-kernel", "get",
                "p99", 10)
    v = per_req.get(("16x1", "get"))
    T.row("BPF time per routed get", "<= 250 ns",
          fmt(v, "{:.0f} ns", None) if v is not None else None,
          v is not None and v <= 250,
          "all kmagent programs, run_time_ns / gets, 16x1")
    T.ratio_row("UDP set x2 replicas, kernel path vs direct single set",
                "kmagent-kernel", "direct-udp", "set", 0.9)
    T.ratio_row("TCP get vs direct", "kmagent-tcp", "direct-tcp", "get",
                0.8)
    T.ratio_row("TCP get vs nutcracker", "kmagent-tcp", "nutcracker",
                "get", 1.5)
    T.ratio_row("TCP set, a replica owing: journal in --state-dir vs in "
                "memory only (reference)", "kmagent-journal",
                "kmagent-owing", "set")
    T.ratio_row("TCP set x2 replicas vs direct single set", "kmagent-tcp",
                "direct-tcp", "set", 0.6)
    T.cpu_row("TCP path: proxy CPU per request", "kmagent-tcp", "get", 8,
              key="proc_us", how="kmagentd's CPU / requests (no NAPI "
              "kthreads, as in issue #6), get 16x1")
    T.added_row("TCP path: added median latency", "kmagent-tcp", "get",
                "p50", 20)
    return T.rows


def idle_core_busy(runs):
    """How busy the proxies' core was while only memcached direct ran (the
    proxies idle): other work on the machine, as a fraction of the core."""
    xs = [r["core_s"] / r["secs"]
          for (t, _, _), rs in runs.items() if t.startswith("direct")
          for r in rs if r.get("secs")]
    return median(xs)


def shape_text(work, runs, proxy_cpu):
    """The shape as checked by scripts/bench.sh shape_check."""
    out = []
    napi = [l.split() for l in read_lines(os.path.join(work, "napi.txt"))]
    if napi:
        out.append("NAPI kthreads in this run (host, role, kthread, "
                   "allowed CPUs): " + "; ".join(
                       "%s %s %s %s" % (f[0], f[1], f[3],
                                        f[4] if len(f) > 4 else "?")
                       for f in napi) + ".")
    sh = {}
    for l in read_lines(os.path.join(work, "shape.txt")):
        k, _, v = l.partition(" ")
        sh[k] = v
    try:
        load = json.loads(sh.get("load", "{}"))
    except ValueError:
        load = {}
    if sh and load.get("ops"):
        ops = load["ops"]
        runs_x = int(sh.get("xdp_rx_runs") or 0)
        out.append(
            "Checked before the measurements, one second of kernel-path "
            "gets (16x1: %d requests, %d errors, %d lost): k's eth0 "
            "kthread %s ran %.0f ms (%.2f us per request) and the daemon "
            "%.1f ms; km_xdp_rx ran %d times (%.2f per request: the "
            "request and the reply); %s%% of the perf samples of that "
            "kthread are in km_xdp_rx itself and %s%% in the bridge (the "
            "switch side, polled in that kthread's softirq), the rest the "
            "veth and the stack around them; NET_RX softirqs: %s on the "
            "proxies' core, %s on the load core (the client's sends, "
            "forwarded by the bridge, and RPS)." % (
                ops, load.get("errors", 0), load.get("lost", 0),
                sh.get("napi_thread", "?").split()[0],
                int(sh.get("napi_ns", 0)) / 1e6,
                int(sh.get("napi_ns", 0)) / 1e3 / ops,
                int(sh.get("daemon_ns", 0)) / 1e6, runs_x, runs_x / ops,
                sh.get("perf_pct_km_xdp_rx", "?"),
                sh.get("perf_pct_bridge", "?"),
                sh.get("net_rx_softirqs_proxy_cpu", "?"),
                sh.get("net_rx_softirqs_load_cpu", "?")))
    busy = idle_core_busy(runs)
    if busy is not None:
        out.append("While memcached direct was measured (the proxies idle) "
                   "CPU %d was %.0f%% busy: %s" % (
                       proxy_cpu, busy * 100,
                       "other work on the machine took a share of the "
                       "proxies' core, the proxies' figures are "
                       "pessimistic." if busy > 0.1 else
                       "the proxies' core was theirs."))
    return "  ".join(out)


def article_bpf(work, runs):
    """The article's shape: BPF ns per request of both hosts' programs, per
    (dist, op): medians over the repetitions, the set/get ratio of each
    repetition, and ns per run of each program (summed over them)."""
    per_rep = {}
    progs = {}
    for line in read_lines(os.path.join(work, "bpf-article.txt")):
        rep, shape, op, name, dt, dc = line.split()
        per_rep.setdefault((shape, op, rep), 0)
        per_rep[(shape, op, rep)] += int(dt)
        p = progs.setdefault((shape, op, name), [0, 0])
        p[0] += int(dt)
        p[1] += int(dc)
    ns = {}
    for (shape, op, rep), dt in per_rep.items():
        for r in runs.get(("article-kernel", shape, op), []):
            if r["rep"] == rep and r.get("ops"):
                ns.setdefault((shape, op), {})[rep] = dt / r["ops"]
    out = {}
    for shape in ("16x1", "16x1z"):
        g, s = ns.get((shape, "get"), {}), ns.get((shape, "set"), {})
        ratios = [s[r] / g[r] for r in sorted(g) if r in s and g[r]]
        out[shape] = (median(g.values()), median(s.values()),
                      median(ratios), ratios)
    return out, progs


def skew_and_article(P, summ, runs, work, na):
    """The zipf rows of the proxy-host shape, and the article's shape."""
    dist = {"16x1": "uniform", "16x1z": "zipf 0.99"}
    P("")
    P("## Skewed keys, and the article's shape (16x1)")
    P("")
    P("The same 16x1 cells with keys drawn zipf (s = 0.99, `kmbench "
      "--zipf`) beside the uniform ones, for the targets measured so; "
      "then the article's shape: `kmagentd -I eth0` (port 11210) beside "
      "memcached on a and on b, each proxying both (one backend local, "
      "reached up the host's stack; one remote), the client's 16 "
      "connections taking the two kmagents in turn (`kmbench -s a -s b`), "
      "a phase of its own after the others (no XDP on a and b before), "
      "the daemons running.  vs direct: over memcached direct UDP (or TCP) "
      "with the same keys, same run.")
    P("")
    P("| target | keys | get ops/s | get vs direct | get p99 us | "
      "set ops/s | set vs direct | set p99 us | errors | lost | wrong |")
    P("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in TARGETS + ["article-kernel"]:
        for shape in ("16x1", "16x1z"):
            g = summ.get((t, shape, "get"))
            st = summ.get((t, shape, "set"))
            if not g and not st:
                continue
            cells = []
            for s in (g, st):
                op = "get" if s is g else "set"
                d = summ.get((direct_of(t), shape, op))
                if not s or s["tput"] is None:
                    cells.append("- | - | -")
                    continue
                cells.append("%s | %s | %s" % (
                    fmt(s["tput"]),
                    "1" if t == direct_of(t) else
                    fmt(ratio(s["tput"], d and d["tput"]), "{:.2f}"),
                    fmt(s["p99"], "{:.1f}")))
            tot = [x for x in (g, st) if x]
            P("| %s | %s | %s | %s | %d | %d | %d |" % (
                TITLE[t], dist[shape], cells[0], cells[1],
                sum(x["errors"] for x in tot), sum(x["lost"] for x in tot),
                sum(x["wrong"] for x in tot)))
    if "article-kernel" in na:
        P("")
        P("Article's shape: %s" % na["article-kernel"])
    ab, progs = article_bpf(work, runs)
    if not progs:
        return
    P("")
    P("BPF time in the article's shape (kernel.bpf_stats_enabled; every "
      "program on a's and on b's eth0, per request served; a set is "
      "replicated to both, local and remote):")
    P("")
    P("| keys | BPF ns per get | BPF ns per set x2 | set / get (median of "
      "the repetitions' ratios) | per repetition |")
    P("|---|---:|---:|---:|---|")
    for shape in ("16x1", "16x1z"):
        g, s, r, rs = ab[shape]
        P("| %s | %s | %s | %s | %s |" % (
            dist[shape], fmt(g), fmt(s), fmt(r, "{:.2f} x"),
            " ".join("%.2f" % x for x in rs)))
    P("")
    P("| load | program | runs per request | ns per run |")
    P("|---|---|---:|---:|")
    for (shape, op, name), (dt, dc) in sorted(progs.items()):
        s = summ.get(("article-kernel", shape, op))
        P("| %s %s | %s | %s | %s |" % (
            op, dist[shape], name,
            fmt(dc / s["ops"] if s and s["ops"] else None, "{:.2f}"),
            fmt(dt / dc if dc else None)))


def include(P, name):
    """A hand-written part of the report, kept across regenerations."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "docs", name)
    if os.path.exists(path):
        with open(path) as f:
            for l in f.read().rstrip("\n").split("\n"):
                P(l)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--secs", type=float, default=1)
    ap.add_argument("--keys", type=int, default=0)
    ap.add_argument("--value", type=int, default=100)
    ap.add_argument("--km-threads", type=int, default=1)
    ap.add_argument("--quick", default="0")
    ap.add_argument("--clk-tck", type=int, default=100)
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("--poll-idle", default="0")
    ap.add_argument("--load-cpu", type=int, default=0)
    ap.add_argument("--proxy-cpu", type=int, default=1)
    ap.add_argument("--switch-napi", default="softirq")
    a = ap.parse_args()
    w = a.work

    runs = load_results(w, a.clk_tck)
    summ = summarise(runs)
    na = dict(l.split("\t", 1) for l in read_lines(os.path.join(w, "na.txt")))
    machine = [l.split("\t", 1) for l in
               read_lines(os.path.join(w, "machine.txt"))]
    rss = dict(l.split() for l in read_lines(os.path.join(w, "rss.txt"))
               if len(l.split()) == 2)
    resync_l = read_lines(os.path.join(w, "resync.txt"))
    resync = resync_l[0] if resync_l else "n/a"
    resync_alone = resync_l[1] if len(resync_l) > 1 else "n/a"
    progs, per_req = bpf_summary(w, summ)
    avail = availability(w)
    checks = targets_issue12(summ, resync, resync_alone, per_req)

    md = []
    P = md.append
    P("# kmagent benchmarks")
    P("")
    P("Generated by `make bench` (`scripts/bench.sh`, load from "
      "`build/tools/kmbench`, report by `bench/report.py`); do not edit by "
      "hand.  %s, %d repetition(s) of %g s per cell, targets alternating "
      "within each repetition, medians shown.  %d keys, %d-byte values, "
      "uniform keys (zipf ones where a section says so), all keys "
      "preloaded on both backends (so every get hits).  Whole run: %d s." % (
          "Quick run (BENCH_QUICK=1)" if a.quick == "1" else "Full run",
          a.reps, a.secs, a.keys, a.value, a.elapsed))
    P("")
    P("Every reply was checked by kmbench (a get must return exactly the "
      "value of its key); `errors`, `lost` and `wrong` below are summed "
      "over all repetitions.  Sets through kmagent go to both replicas; "
      "direct and nutcracker sets go to one server.  \"vs direct\" compares "
      "with memcached direct over the same protocol (one backend, `-t 1`); "
      "proxies have two backends behind them.  %s" % (
          "Idle vCPUs polled during the run (/dev/cpu_dma_latency = 0): "
          "otherwise a hop to a halted vCPU costs ~50 us on this VM and "
          "1x1 latencies are bimodal." if a.poll_idle == "1" else
          "Idle vCPUs halted (BENCH_POLL_IDLE=0): 1x1 latencies include "
          "vCPU wake-ups."))
    P("")
    load = [v for k, v in machine if k == "load average"]
    try:
        busy = float(load[0].split()[2]) > 1.0
    except (IndexError, ValueError):
        busy = False
    if busy:
        P("**Other work was running on this 2-core machine during the run "
          "(load average: %s): every figure is pessimistic and noisier "
          "than on an idle machine; ratios from the same run stay "
          "comparable.**" % load[0])
        P("")
    P("![throughput and p99 by target](benchmarks.png)")
    P("")
    P("## The shape: a proxy host with a core of its own")
    P("")
    P("The client and memcached a and b run on CPU %d (the load core), "
      "each proxy host on CPU %d (the proxies' core): kmagentd and "
      "nutcracker on p, `kmagentd -I eth0` on k, the plain router r.  A "
      "proxy host's eth0 is in threaded NAPI (`/sys/class/net/eth0/"
      "threaded` = 1; GRO on, for a veth has NAPI only with GRO or XDP), "
      "its kthread pinned to the proxies' core: everything the host "
      "receives, the kernel path's XDP and tc programs included, runs "
      "there.  %s  What reaches the load hosts is received on the load "
      "core (RPS of their eth0 to CPU %d), as it would be on another "
      "machine.  A proxy's **CPU per request, all-in** is the CPU time "
      "(schedstat's sum_exec_runtime, in ns) of its process and of its "
      "host's NAPI kthreads over the run, divided by the requests served: "
      "no softirq work of the proxy runs outside them.  memcached direct "
      "has the load core to itself; the ratios say what a proxy on its own "
      "core costs the client." % (
          a.load_cpu, a.proxy_cpu,
          "The switch-side end of its veth (the bridge port that takes what "
          "the host sends: XDP_TX, clones, the stack's output) has a NAPI "
          "kthread of its own on the proxies' core too "
          "(BENCH_SWITCH_NAPI=thread), counted as the host's." 
          if a.switch_napi == "thread" else
          "The switch-side end of its veth (the bridge port that takes "
          "what the host sends: XDP_TX, clones, the stack's output) has "
          "NAPI but no kthread: its poll runs in the softirq of the "
          "kthread or process that sent the frame, on the proxies' core "
          "and counted there.  A kthread of its own "
          "(BENCH_SWITCH_NAPI=thread) would cost a sleep and a wake-up "
          "per batch for the same work, and a real switch does this part "
          "in hardware anyway.",
          a.load_cpu))
    P("")
    P(shape_text(w, runs, a.proxy_cpu))
    P("")
    P("## Targets (issue #12, this shape)")
    P("")
    P("| target | goal | measured | met | how |")
    P("|---|---|---|---|---|")
    for r in checks:
        P("| %s | %s | %s | %s | %s |" % r)
    P("")
    P("## Throughput, latency and CPU (medians)")
    for shape in SHAPES:
        for op in OPS:
            P("")
            P("### %s, %s%s" % (op, SHAPE_TITLE[shape],
                                " (kmagent: replicated to 2)"
                                if op == "set" else ""))
            P("")
            P("| target | ops/s | vs direct | vs nutcracker | p50 us | "
              "p99 us | added p50 | added p99 | CPU us/req all-in | "
              "of which NAPI | errors | lost | wrong |")
            P("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:"
              "|---:|")
            for t in TARGETS:
                s = summ.get((t, shape, op))
                if t in JOURNAL and (shape, op) != ("16x1", "set"):
                    continue  # measured there only (journal_phase)
                if t in FIRST and (shape, op) != ("1x1", "set"):
                    continue  # measured there only (first_target)
                if not s or s["tput"] is None:
                    P("| %s | %s | | | | | | | | | | | |" % (
                        TITLE[t], na.get(t, "n/a (no result)")))
                    continue
                d = summ.get((direct_of(t), shape, op))
                n = summ.get(("nutcracker", shape, op))
                rd = ratio(s["tput"], d and d["tput"])
                rn = ratio(s["tput"], n and n["tput"])
                direct = t == direct_of(t)
                add50 = add99 = None
                if d and not direct:
                    add50 = s["p50"] - d["p50"]
                    add99 = s["p99"] - d["p99"]
                cpu = fmt(s["cpu_us"], "{:.2f}")
                if direct:
                    cpu += " (memcached)"
                elif t.startswith("hop"):
                    cpu += " (router)"
                P("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d "
                  "| %d | %d |"
                  % (TITLE[t], fmt(s["tput"]),
                     "1" if direct else fmt(rd, "{:.2f}"),
                     fmt(rn, "{:.2f}"), fmt(s["p50"], "{:.1f}"),
                     fmt(s["p99"], "{:.1f}"),
                     "-" if direct else fmt(add50, "{:+.1f}"),
                     "-" if direct else fmt(add99, "{:+.1f}"),
                     cpu, "-" if direct else fmt(s["napi_us"], "{:.2f}"),
                     s["errors"], s["lost"], s["wrong"]))
    P("")
    P("vs direct: throughput over memcached direct's with the same "
      "protocol and load; added p50/p99: latency minus direct's.  CPU "
      "us/req all-in: the proxy's process and its host's two NAPI kthreads "
      "(= CPU seconds per million requests); for the direct rows, "
      "memcached a and its NAPI kthread; for the router rows, the "
      "router's kthreads.  \"of which NAPI\": the kthreads' part, the "
      "kernel path's programs included.")
    for op in OPS:
        P("")
        P("### Where a proxy's CPU goes, %s 16x1" % op)
        P("")
        P("us per request.  The proxies' core: everything that ran on CPU "
          "%d during the run, by /proc/stat (10 ms ticks; it includes the "
          "idle daemons and any other work on the machine).  The eth0 "
          "kthread sleeps when its queue is empty and is woken for the "
          "next frame: every wake-up costs a context switch (and often an "
          "IPI from the sender's core) whatever it then polls, so its CPU "
          "per request falls as requests per wake-up rise with the load."
          % a.proxy_cpu)
        P("")
        thr = a.switch_napi == "thread"
        P("| target | process | eth0 NAPI kthread | %sall-in | "
          "the proxies' core | requests per wake-up | kthread us per "
          "wake-up |" % ("switch-side kthread | " if thr else ""))
        P("|---|---:|---:|---:|---:|---:|---:%s" % ("|---:|" if thr else "|"))
        for t in TARGETS:
            s = summ.get((t, "16x1", op))
            if t.startswith("direct") or not s or s["cpu_us"] is None:
                continue
            P("| %s | %s | %s | %s%s | %s | %s | %s |" % (
                TITLE[t], fmt(s["proc_us"], "{:.2f}"),
                fmt(s["rx_us"], "{:.2f}"),
                fmt(s["tx_us"], "{:.2f}") + " | " if thr else "",
                fmt(s["cpu_us"], "{:.2f}"), fmt(s["core_us"], "{:.2f}"),
                fmt(s["per_wake"], "{:.2f}"), fmt(s["wake_us"], "{:.2f}")))
    for op in OPS:
        budget = cpu_budget(summ, op)
        if not budget:
            continue
        P("")
        P("### The two cores, %s 16x1" % op)
        P("")
        P("A request costs the load core the client's CPU (kmbench's, with "
          "the softirq work it was interrupted for) and memcached's (from the direct run%s), and the "
          "proxies' core the proxy's all-in CPU: each core caps the rate at "
          "1 s / its cost per request, and the lower cap is the bottleneck "
          "(an estimate: the measured rate also pays for the latency of "
          "16 requests in flight)." % (
              "; twice for a set replicated to 2" if op == "set" else ""))
        P("")
        P("| target | client us | memcached us | proxy us | load core cap "
          "ops/s | proxy core cap ops/s | measured ops/s | bottleneck |")
        P("|---|---:|---:|---:|---:|---:|---:|---|")
        for row in budget:
            P("| %s | %.1f | %.1f | %.2f | %.0f | %s | %.0f | %s |" % (
                row[0], row[1], row[2], row[3], row[4],
                fmt(row[5]), row[6], row[7]))
    repl = replication_ceiling(summ)
    if repl:
        P("")
        P("### Replicated sets: the ceiling on the load core, set 16x1")
        P("")
        P("A set replicated to 2 backends costs two memcached sets, and both "
          "memcached share the load core with the client: a proxy that cost "
          "nothing would still reach only (client + memcached) / (client + "
          "2 x memcached) of direct, from the direct run's own costs per "
          "set:")
        P("")
        P("| target | client us | memcached us | ceiling vs direct | "
          "measured vs direct |")
        P("|---|---:|---:|---:|---:|")
        for row in repl:
            P("| %s | %.1f | %.1f | %.2f x | %s x |" % row)
        P("")
        P("Over UDP each datagram is one read for memcached, as in the "
          "direct run: the ceiling holds.  Over TCP it is no bound: "
          "kmagentd pipelines several clients' sets into one write to each "
          "backend, and memcached serves such a batch for less CPU per set "
          "than the direct run's one set per read.")
    P("")
    P("## Earlier targets (issue #6), in this shape")
    P("")
    P("| target | goal | measured | met | how |")
    P("|---|---|---|---|---|")
    for r in targets_issue6(summ, per_req):
        P("| %s | %s | %s | %s | %s |" % r)
    P("")
    P("## BPF time (kernel.bpf_stats_enabled)")
    P("")
    if not progs:
        P("%s" % na.get("kmagent-kernel", "n/a (kernel path not measured)"))
    else:
        P("| load | program | runs | ns per run | runs per request |")
        P("|---|---|---:|---:|---:|")
        for (shape, op, name), (dt, dc) in sorted(progs.items()):
            s = summ.get(("kmagent-kernel", shape, op))
            rpr = dc / s["ops"] if s and s["ops"] else None
            P("| %s %s | %s | %d | %s | %s |" % (
                op, shape, name, dc, fmt(dt / dc if dc else None, "{:.0f}"),
                fmt(rpr, "{:.2f}")))
        P("")
        P("BPF ns per request (all programs): " + ", ".join(
            "%s %s %.0f ns" % (op, shape, v)
            for (shape, op), v in sorted(per_req.items())))
    cost = os.path.join(w, "bpfcost.json")
    if os.path.exists(cost):
        try:
            with open(cost) as f:
                bc = json.load(f)
        except ValueError:
            bc = {}
        if bc:
            P("")
            P("Per packet without the lab's traffic (`build/tools/kmbpfcost`"
              ": BPF_PROG_TEST_RUN on crafted frames, caches warm, "
              "kernel.bpf_stats_enabled off, medians of 20000 runs each): "
              + ", ".join(
                  "%s (%s) %d ns" % (k, v["prog"], v["ns"])
                  for k, v in bc.items()) +
              (".  A routed get that hits is a request and a reply: %d ns"
               % (bc["get request"]["ns"] + bc["hit reply"]["ns"])
               if "get request" in bc and "hit reply" in bc else "") +
              ".  Under load the same "
              "programs take more: the ring slot and the pending entry a "
              "get touches are no longer in cache, and bpf_stats_enabled "
              "adds two clock reads to every run (40-50 ns a run in "
              "kmbpfcost with it on).")
    P("")
    include(P, "bpf-write-profile.md")
    skew_and_article(P, summ, runs, w, na)
    P("")
    P("## Availability: kill -9 of a backend under load")
    P("")
    if not avail:
        P("n/a (no proxy measured)")
    else:
        P("16 connections x 1 get in flight, 10 ms intervals; memcached b "
          "is killed 1.5 s into the run.  Gap = from the kill to the end of "
          "the last interval with a client error (UDP: lost requests are "
          "dated back by the 100 ms timeout).")
        P("")
        P("| target | errors stop after | errors | lost | misses |")
        P("|---|---:|---:|---:|---:|")
        for t in TARGETS:
            if t not in avail:
                continue
            v = avail[t]
            gap = ("0 ms (no client error)" if v["gap_ms"] is None
                   else "%d ms%s" % (v["gap_ms"], " (still failing at "
                                     "the end)" if v["still_failing"]
                                     else ""))
            P("| %s | %s | %d | %d | %d |" % (TITLE[t], gap, v["errors"],
                                              v["lost"], v["misses"]))
    P("")
    P("Resync of a restarted (empty) backend: %s under a foreground load "
      "of gets (16x1); %s without one." % (resync, resync_alone))
    prof = [t for t in TARGETS
            if os.path.exists(os.path.join(w, "perf-%s.txt" % t))]
    if prof:
        P("")
        P("## Profile (BENCH_PERF=1), TCP get 16x1")
        P("")
        P("`perf stat` (system calls, context switches, CPU per request) "
          "and the top of `perf record -g` of the proxy process, over one "
          "second of load.")
        for t in prof:
            P("")
            P("%s:" % TITLE[t])
            P("")
            P("```")
            for l in read_lines(os.path.join(w, "perf-%s.txt" % t))[:20]:
                P(l.rstrip())
            P("```")
    P("")
    P("## Memory")
    P("")
    if rss:
        P("| process | peak RSS (VmHWM) |")
        P("|---|---:|")
        names = {"nutcracker": "nutcracker",
                 "km-p": "kmagentd, TCP path (and UDP in userspace)",
                 "km-k": "kmagentd -I eth0, kernel path"}
        for k, v in rss.items():
            P("| %s | %s kB |" % (names.get(k, k), v))
    else:
        P("n/a")
    if na:
        P("")
        P("## Not measured")
        P("")
        for t, why in na.items():
            P("- %s: %s" % (TITLE.get(t, t), why))
    P("")
    P("## How to reproduce")
    P("")
    P("```")
    P("make bench                 # full run, < 10 min")
    P("BENCH_QUICK=1 make bench   # one short repetition, < 2 min")
    P("```")
    P("")
    P("The lab: a bridge in its own network namespace and one namespace "
      "per host (client 198.18.0.10, memcached a .1 and b .2 with "
      "`-t 1 -U 11211`, proxy host .3 with kmagentd "
      "(`-t %d`, port 11210) and nutcracker (ketama, port 22121), proxy "
      "host .4 with `kmagentd -I eth0` (port 11211), and a plain IP "
      "router .5 through which the client also reaches memcached a at "
      "198.18.1.1 (the \"via a router\" rows: the extra hop a proxy host "
      "adds, with no proxy in it).  The client has its "
      "own namespace so that XDP sees its requests as real ingress.  "
      "Hosts c, a and b and their NAPI kthreads on CPU %d, hosts p, k and "
      "r on CPU %d (BENCH_LOAD_CPU, BENCH_PROXY_CPU).  "
      "Raw results, logs and per-interval counts stay in `build/bench/` "
      "(`napi.txt`: the kthreads; `shape.txt`: the check above).  "
      "A single cell by hand, in the lab's client namespace:" % (
          a.km_threads, a.load_cpu, a.proxy_cpu))
    P("")
    P("```")
    P("taskset -c %d build/tools/kmbench -s 198.18.0.3:11210 --tcp -c 16 "
      "-w 1 -d 3 --op get --json" % a.load_cpu)
    P("```")
    P("")
    P("## Machine")
    P("")
    P("| | |")
    P("|---|---|")
    for k, v in machine:
        P("| %s | %s |" % (k, v))
    P("")
    with open(a.out, "w") as f:
        f.write("\n".join(md))

    # gnuplot data: one row per cell, columns = the 8 main targets (the
    # others are measured in one cell only: bench/benchmarks.gnuplot)
    plotted = TARGETS[:8]
    with open(os.path.join(w, "plot.dat"), "w") as f:
        f.write("cell " + " ".join(
            '"%s"' % TITLE[t] for t in plotted) + "\n")
        for shape in SHAPES:
            for op in OPS:
                tp = []
                p99 = []
                for t in plotted:
                    s = summ.get((t, shape, op))
                    tp.append(fmt(s and s["tput"] and s["tput"] / 1000,
                                  "{:.1f}"))
                    p99.append(fmt(s and s["p99"], "{:.1f}"))
                f.write('"%s %s" %s %s\n' % (op, shape, " ".join(tp),
                                             " ".join(p99)))

    # the console summary
    print("%-26s %-5s %-4s %10s %7s %7s %8s %8s %8s" % (
        "target", "shape", "op", "ops/s", "vs dir", "vs nut", "p50 us",
        "p99 us", "cpu us"))
    for shape in SHAPES:
        for op in OPS:
            for t in TARGETS:
                s = summ.get((t, shape, op))
                if not s or s["tput"] is None:
                    if shape == "16x1" and op == "get" and t in na:
                        print("%-26s %s" % (TITLE[t], na[t]))
                    continue
                d = summ.get((direct_of(t), shape, op))
                n = summ.get(("nutcracker", shape, op))
                print("%-26s %-5s %-4s %10s %7s %7s %8s %8s %8s" % (
                    TITLE[t], shape, op, fmt(s["tput"]),
                    fmt(ratio(s["tput"], d and d["tput"]), "{:.2f}"),
                    fmt(ratio(s["tput"], n and n["tput"]), "{:.2f}"),
                    fmt(s["p50"], "{:.1f}"), fmt(s["p99"], "{:.1f}"),
                    fmt(s["cpu_us"], "{:.2f}")))
    print()
    for r in checks:
        print("target: %-55s %-16s %-24s met: %s" % r[:4])
    for t, v in avail.items():
        print("availability %-16s errors stop after %s ms" % (
            t, v["gap_ms"] if v["gap_ms"] is not None else 0))
    print("resync:", resync)
    print("resync, no foreground load:", resync_alone)
    bad = sum(s["wrong"] for s in summ.values())
    if bad:
        print("WRONG values seen: %d" % bad)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
