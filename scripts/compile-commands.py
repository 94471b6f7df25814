#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""compile_commands.json for clangd and friends, from the Makefile's flags
(no build needed, nothing rebuilt):

  scripts/compile-commands.py CC "FLAGS" FILE... [-- CC "FLAGS" FILE...]

Each group is one compiler with its flags and the files it compiles.
"""
import json
import os
import shlex
import sys


def groups(args):
    group = []
    for a in args + ["--"]:
        if a == "--":
            if group:
                yield group[0], shlex.split(group[1]), group[2:]
            group = []
        else:
            group.append(a)


def main():
    root = os.getcwd()
    out = []
    for cc, flags, files in groups(sys.argv[1:]):
        for f in files:
            out.append({
                "directory": root,
                "file": os.path.join(root, f),
                "arguments": [cc] + flags + ["-c", f],
            })
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
