#!/usr/bin/env python3
"""Real memcached client libraries, unmodified: same results through a pool.

  mclibs.py REFERENCE SERVER [SERVER...]          (each HOST:PORT)

For each library found (pymemcache's HashClient, pylibmc: Debian's
python3-pymemcache and python3-pylibmc), runs one scenario twice: with a
client of REFERENCE alone (a plain memcached) and with a client given every
SERVER as its pool (the article's application and its magent pool).  Every
call's result must be the same (cas tokens compared as "a token").
Prints ok/not ok per call; "# SKIP lib" when a library is missing.  Exit 1
if any result differs or no library could be used.
"""

import sys

# the article's value as its UTF-8 bytes (pymemcache takes no non-ASCII str
# without a serializer); a key of its own, the pool may hold becd0000
ARTICLE_KEY, ARTICLE_VALUE = "becd0000-lib", "测试例子".encode("utf-8")
BIG = bytes(range(256)) * 2000  # 512000 bytes


def scenario(c, lib):
    """(name, thunk) pairs; both libraries share most of the calls."""
    keys = ["lib-%d" % i for i in range(20)]
    s = [
        ("set the article's value", lambda: c.set(ARTICLE_KEY, ARTICLE_VALUE)),
        ("get the article's value", lambda: c.get(ARTICLE_KEY)),
        ("set 20 keys", lambda: [c.set(k, "v-" + k) for k in keys]),
        ("get_many with misses", lambda: sorted(
            (getattr(c, "get_many", None) or c.get_multi)(keys + ["nope-1", "nope-2"])
            .items())),
        ("add of an existing key", lambda: c.add("lib-0", "x")),
        ("add of a new key", lambda: c.add("lib-new", "new")),
        ("replace of a missing key", lambda: c.replace("nope-3", "x")),
        ("replace of an existing key", lambda: c.replace("lib-1", "replaced")),
        ("append", lambda: c.append("lib-2", "-app")),
        ("prepend", lambda: c.prepend("lib-2", "pre-")),
        ("get after append/prepend", lambda: c.get("lib-2")),
        ("set a counter", lambda: c.set("cnt", "10")),
        ("incr", lambda: c.incr("cnt", 5)),
        ("decr below 0", lambda: c.decr("cnt", 100)),
        ("incr of a missing key", lambda: _none_or_exc(lambda: c.incr("nope-4", 1))),
        ("delete", lambda: c.delete("lib-3")),
        ("get after delete", lambda: c.get("lib-3")),
        ("delete of a missing key", lambda: c.delete("lib-3")),
        ("binary value, 512000 bytes", lambda: c.set("big", BIG)),
        ("get it back", lambda: c.get("big") == BIG),
        ("touch", lambda: c.touch("lib-4", 1000)),
        ("touch of a missing key", lambda: c.touch("nope-5", 1000)),
    ]
    if lib == "pymemcache":
        s += [
            ("gets", lambda: _tok(c.gets("lib-5"))),
            ("cas with the token", lambda: c.cas("lib-5", "cas-ed", c.gets("lib-5")[1])),
            ("get after cas", lambda: c.get("lib-5")),
            ("cas with a stale token", lambda: c.cas("lib-5", "stale", b"1")),
            ("set_many noreply, then get_many", lambda: (
                c.set_many({k: "nr-" + k for k in keys}, noreply=True),
                sorted(c.get_many(keys).items()))[1]),
        ]
    else:
        s += [
            ("gets", lambda: _tok(c.gets("lib-5"))),
            ("cas with the token", lambda: c.cas("lib-5", "cas-ed", c.gets("lib-5")[1])),
            ("get after cas", lambda: c.get("lib-5")),
            ("cas with a stale token", lambda: c.cas("lib-5", "stale", 1)),
            ("set_multi, then get_multi", lambda: (
                c.set_multi({k: "m-" + k for k in keys}),
                sorted(c.get_multi(keys).items()))[1]),
            ("delete_multi", lambda: c.delete_multi(keys[:5])),
            ("get_multi after delete_multi", lambda: sorted(c.get_multi(keys).items())),
        ]
    # flush_all's return value is the library's business (pymemcache's
    # HashClient returns nothing useful); what it did shows in the next get
    s += [("flush_all", lambda: (c.flush_all(), None)[1]),
          ("get after flush_all", lambda: c.get(ARTICLE_KEY))]
    return s


def _tok(r):
    return None if r is None or r[0] is None else (r[0], "a token")


def _none_or_exc(f):
    try:
        return f()
    except Exception as e:  # the library's own way of saying "not found"
        return "exception %s" % type(e).__name__


def pymemcache_clients(ref, pool):
    from pymemcache.client.base import Client
    from pymemcache.client.hash import HashClient

    def hp(s):
        h, p = s.rsplit(":", 1)
        return (h, int(p))
    opts = dict(connect_timeout=3, timeout=3, default_noreply=False)
    return Client(hp(ref), **opts), HashClient([hp(s) for s in pool], **opts)


def pylibmc_clients(ref, pool):
    import pylibmc
    b = {"cas": True, "tcp_nodelay": True}
    return pylibmc.Client([ref], behaviors=b), pylibmc.Client(pool, behaviors=b)


def run(lib, make, ref, pool):
    try:
        cr, cp = make(ref, pool)
    except ImportError as e:
        print("# SKIP %s: %s" % (lib, e))
        return None
    bad = 0
    for (name, fr), (_, fp) in zip(scenario(cr, lib), scenario(cp, lib)):
        try:
            want = fr()
        except Exception as e:
            want = "exception %s: %s" % (type(e).__name__, e)
        try:
            got = fp()
        except Exception as e:
            got = "exception %s: %s" % (type(e).__name__, e)
        if want == got:
            print("ok - %s: %s" % (lib, name))
        else:
            bad += 1
            print("not ok - %s: %s (one memcached: %.200r, the pool: %.200r)"
                  % (lib, name, want, got))
    return bad


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    ref, pool = sys.argv[1], sys.argv[2:]
    results = [run("pymemcache", pymemcache_clients, ref, pool),
               run("pylibmc", pylibmc_clients, ref, pool)]
    used = [r for r in results if r is not None]
    print("# libraries used: %d, results differing: %d" % (len(used), sum(used)))
    return 0 if used and not sum(used) else 1


if __name__ == "__main__":
    sys.exit(main())
