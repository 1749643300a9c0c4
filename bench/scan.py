"""Benchmark: ``patchscope scan`` over a whole vmlinux with a warm index — once computing every
rule (the findings not cached yet), once with the findings cached too — beside
``llvm-dwarfdump --statistics``, the nearest whole-binary peer (a different job: it counts
DWARF facts and judges nothing).

    python bench/scan.py [VMLINUX]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from common import python, run, table, vmlinux

INDEX = "import patchscope; b = patchscope.open({path!r}); b.inventory"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmlinux", nargs="?", type=Path)
    args = ap.parse_args()
    path = args.vmlinux or vmlinux()
    cache = tempfile.mkdtemp(prefix="patchscope-bench-")
    env = {"PATCHSCOPE_CACHE": cache}
    scan = [sys.executable, "-m", "patchscope.cli.main", "scan", str(path), "-o", "/dev/null"]
    json = [*scan, "--format", "json"]
    try:
        python(INDEX.format(path=str(path)), env, "index")
        runs = [
            run("patchscope scan (table), warm index, rules run", scan, env),
            run("patchscope scan (table), findings cached", scan, env),
            run("patchscope scan --format json, findings cached", json, env),
        ]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    llvm = run("llvm-dwarfdump --statistics", ["llvm-dwarfdump", "--statistics", str(path)])
    rows = [("command", "wall s", "peak RSS MiB", "vs llvm-dwarfdump")]
    for r in (*runs, llvm):
        rows.append((r.label, f"{r.seconds:.2f}", f"{r.max_rss_mb:.0f}", f"{r.seconds / llvm.seconds:.2f}x"))
    print(table(rows))
    print("target: scan <= 5 s with a warm index (2 cores)")


if __name__ == "__main__":
    main()
