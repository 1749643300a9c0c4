"""Benchmark: ``patchscope survey`` of several builds on a local Dask cluster of 1 worker, then
of 2, warm index cache (a first run warms it) or none (``--no-cache``), and the speed-up.

    python bench/survey.py BUILD... [--cache DIR] [--no-cache]

Each BUILD as ``survey`` takes it (``NAME=PATH``, a kernel tree or a binary). The load average
is printed beside the figures: on a shared machine the speed-up is what the other processes
left of the second core.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from common import table
from tree import PATCHSCOPE, measured, row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("builds", nargs="+")
    ap.add_argument("--cache", help="the index cache to use (default: a temporary one, warmed first)")
    ap.add_argument("--no-cache", action="store_true", help="every run indexes every binary: compute, not reading")
    a = ap.parse_args()
    cache = a.cache or tempfile.mkdtemp(prefix="bench-survey-")
    out = Path(tempfile.mkdtemp(prefix="bench-survey-out-"))
    env = {"PATCHSCOPE_CACHE": cache, "PATCHSCOPE_CACHE_MAX": str(1 << 40)}
    argv = [PATCHSCOPE, "survey", *a.builds, "-o", str(out / "dataset"), *(["--no-cache"] if a.no_cache else [])]
    try:
        rows = [("run", "wall s", "CPU s", "peak MB", "load average")]
        if not a.no_cache:
            rows.append(row("warm-up (fills the cache)", measured(argv, env)))
        times = {}
        for jobs in (1, 2):
            r = measured(argv, {**env, "PATCHSCOPE_JOBS": str(jobs)})
            times[jobs] = r.wall
            rows.append(row(f"{len(a.builds)} builds, {jobs} worker(s)", r))
        rows.append(("speed-up 2 workers / 1", f"{times[1] / times[2]:.2f}x", "", "", ""))
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if not a.cache:
            shutil.rmtree(cache, ignore_errors=True)
    print(table(rows))


if __name__ == "__main__":
    sys.exit(main())
