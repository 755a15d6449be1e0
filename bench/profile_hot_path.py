#!/usr/bin/env python3
"""Counts the instructions of one credkit get_token() read with valgrind's callgrind.

Runs the bare read loop (credkit_bench_hot_path_driver) with two read counts and divides
the difference by the extra reads, in total and per function, so set-up cancels out.
Writes JSON: {"instructions_per_read": N, "functions": [{"name", "per_read"}, ...]}.
Usage: profile_hot_path.py DRIVER OUT.json
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

LOW, HIGH = 100_000, 300_000


def profile(driver, reads, tmp):
    out = os.path.join(tmp, f"cg.{reads}")
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", driver, str(reads)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    text = subprocess.run(["callgrind_annotate", "--threshold=100", out], check=True,
                          capture_output=True, text=True).stdout
    total, funcs = 0, {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(\([^)]*\))?\s*PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(\S.*?)\s+\[(.*)\]\s*$", line)
        if m:
            name = m.group(2)
            name = name.split(":", 1)[1] if name.startswith(("???:", "./")) or ":" in name.split("(")[0] else name
            funcs[name] = funcs.get(name, 0) + int(m.group(1).replace(",", ""))
    return total, funcs


def main():
    driver, out = sys.argv[1], sys.argv[2]
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        print("valgrind not found: skipping the instruction count", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        t1, f1 = profile(driver, LOW, tmp)
        t2, f2 = profile(driver, HIGH, tmp)
    extra = HIGH - LOW
    funcs = []
    for name, n2 in f2.items():
        per = (n2 - f1.get(name, 0)) / extra
        if per >= 0.5:
            funcs.append({"name": name, "per_read": round(per, 1)})
    funcs.sort(key=lambda f: -f["per_read"])
    with open(out, "w") as f:
        json.dump({"instructions_per_read": round((t2 - t1) / extra, 1), "functions": funcs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
