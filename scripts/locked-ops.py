#!/usr/bin/env python3
"""Counts the locked instructions (lock-prefixed, and xchg with memory, which locks implicitly)
that a deja-bench workload executes, per operation and per function, from an exact callgrind
instruction count: no hardware counters needed, and the same answer on every run.

A developer's tool (needs valgrind, objdump and python3), not part of the build or the tests.

usage: scripts/locked-ops.py <deja-bench> <ops per rep> <bench args...>
   eg: scripts/locked-ops.py build-release/bench/deja-bench 1000000 timer_churn --rt mt

The workload runs with --reps 1 (one rep of <ops per rep> operations).
"""
import collections
import os
import re
import subprocess
import sys
import tempfile


def locked_addresses(binary):
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary], check=True, capture_output=True, text=True).stdout
    found = set()
    for line in out.splitlines():
        m = re.match(r"\s+([0-9a-f]+):\s+(\S+)\s*(.*)", line)
        if not m:
            continue
        mnemonic, operands = m.group(2), m.group(3)
        if mnemonic == "lock" or (mnemonic.startswith("xchg") and "(" in operands):
            found.add(int(m.group(1), 16))
    return found


def executions(profile, object_name):
    """Instruction address -> (function, times executed), for code of `object_name` only."""
    counts = collections.Counter()
    names = {"fn": {}, "ob": {}}
    fn, ob, position, skip_next = "?", "", 0, False
    for line in open(profile):
        line = line.rstrip("\n")
        m = re.match(r"(c?)(fn|ob)=\((\d+)\)(?: (.*))?$", line)
        if m:
            kind, ident, name = m.group(2), m.group(3), m.group(4)
            if name:
                names[kind][ident] = name
            if not m.group(1):
                if kind == "fn":
                    fn = names["fn"].get(ident, ident)
                else:
                    ob = names["ob"].get(ident, ident)
            continue
        if line.startswith("calls="):
            skip_next = True  # the next line is the call's inclusive cost
            continue
        if not line or line[0] not in "0123456789+-*":
            continue
        parts = line.split()
        p = parts[0]
        if p.startswith("+"):
            position += int(p[1:], 0)
        elif p.startswith("-"):
            position -= int(p[1:], 0)
        elif p != "*":
            position = int(p, 0)
        if skip_next:
            skip_next = False
            continue
        if os.path.basename(ob) == object_name and len(parts) > 1:
            counts[(position, fn)] += int(parts[-1])
    return counts


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    binary, ops, args = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    with tempfile.TemporaryDirectory() as tmp:
        profile = os.path.join(tmp, "callgrind.out")
        subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=yes", f"--callgrind-out-file={profile}", binary, *args, "--reps", "1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        counts = executions(profile, os.path.basename(binary))
    locked = locked_addresses(binary)
    total = sum(counts.values())
    per_function = collections.Counter()
    for (address, fn), n in counts.items():
        if address in locked:
            per_function[fn] += n
    print(f"instructions per op: {total / ops:.0f}   locked instructions per op: {sum(per_function.values()) / ops:.2f}")
    for fn, n in per_function.most_common(12):
        if n / ops >= 0.01:
            print(f"  {n / ops:6.2f}  {fn[:110]}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # piped into head
        sys.stderr.close()
