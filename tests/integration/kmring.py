#!/usr/bin/env python3
"""kmring.py KEY NAME...: print the names in KEY's replica order.

The ring of user/lib/ring.c (rendezvous scores per slot) and the key hash of
include/km_hash.h, in python, so that a test can pick which backend a key
hashes to first (e.g. the article's "magent hashes the key to B").
tests/bpf/test_hash.c proves the C and BPF versions agree; this one is
checked against the kernel's choices by the tests that use it.
"""
import sys

M32, M64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF


def key_slot(key):
    h = 2166136261
    for b in key:
        h = ((h ^ b) * 16777619) & M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h % 65537


def name_hash(name):
    h = 14695981039346656037
    for b in name:
        h = ((h ^ b) * 1099511628211) & M64
    return h


def mix64(x):
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    x ^= x >> 31
    return x


def order(key, names):
    s = key_slot(key)
    score = {n: mix64(name_hash(n.encode()) ^ ((s * 0x9E3779B97F4A7C15) & M64))
             for n in names}
    # stable for equal scores, as the C insertion keeps the earlier one
    return sorted(names, key=lambda n: -score[n])


if __name__ == "__main__":
    print(" ".join(order(sys.argv[1].encode(), sys.argv[2:])))
