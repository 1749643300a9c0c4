"""Benchmark: each architecture's Debian vmlinux — the cold index, then ``patchscope scan`` on
that warm index (every rule run) — beside ``llvm-dwarfdump --statistics`` on the same file, in
one run. The README's per-architecture table comes from it.

    python bench/arches.py VMLINUX...
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from common import python, run, table

INDEX = "import patchscope; b = patchscope.open({path!r}); b.inventory"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmlinux", nargs="+", type=Path)
    args = ap.parse_args()
    rows = [("vmlinux", "MiB", "index s", "scan s", "llvm-dwarfdump s", "index+scan vs llvm", "peak RSS MiB")]
    for path in args.vmlinux:
        cache = tempfile.mkdtemp(prefix="patchscope-bench-")
        env = {"PATCHSCOPE_CACHE": cache}
        try:
            index = python(INDEX.format(path=str(path)), env, "index")
            scan = run("scan", [sys.executable, "-m", "patchscope.cli.main", "scan", str(path), "-o", "/dev/null"], env)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        llvm = run("llvm-dwarfdump --statistics", ["llvm-dwarfdump", "--statistics", str(path)])
        ours = index.seconds + scan.seconds
        rss = max(index.max_rss_mb, scan.max_rss_mb)
        rows.append(
            (
                path.name,
                f"{path.stat().st_size / 2**20:.0f}",
                f"{index.seconds:.1f}",
                f"{scan.seconds:.1f}",
                f"{llvm.seconds:.1f}",
                f"{ours / llvm.seconds:.2f}x",
                f"{rss:.0f}",
            )
        )
        print(table(rows[-1:]), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
