"""Benchmark: a whole kernel tree (vmlinux + every module) in one run, beside today's loop of
one process per binary and ``llvm-dwarfdump --statistics`` over the same files.

    python bench/tree.py TREE [--sample N] [--module nf_tables --function nf_tables_newrule]

TREE is a ``lib/modules/RELEASE`` folder (``../shared/data/fetch-debian-kernel.sh -m 6.1.0-56``
prints it). Runs, in this order and in one process tree each: ``scan --summary TREE`` with an
empty cache (cold) and again (warm); ``check TREE 'module("M").function("F")'`` warm; today's
loop, ``scan --summary M.ko`` one process per binary over N random binaries, extrapolated to the
tree; ``llvm-dwarfdump --statistics`` over every binary, as many at once as the pool has
workers. Peak memory is the largest sum of the RSS of a run's whole process tree, sampled.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from common import ROOT, table

PATCHSCOPE = str(Path(sys.executable).with_name("patchscope"))


def tree_rss_kb(pid: int) -> int:
    """The RSS of ``pid`` and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/statm") as f:
                rss[int(d)] = int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


@dataclass
class Run:
    wall: float
    #: user + system seconds of the whole process tree (its reaped descendants included): the
    #: figure a loaded machine does not change
    cpu: float
    peak_mb: float
    out: str


def measured(
    argv: list[str], env: dict[str, str] | None = None, ok: tuple[int, ...] = (0, 1, 2), stdin: bytes | None = None
) -> Run:
    """Runs ``argv``; its wall and CPU seconds and the peak of its process tree's summed RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], tree_rss_kb(p.pid))

    threading.Thread(target=sample, daemon=True).start()
    out = p.communicate(stdin)[0]
    done.set()
    seconds = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode not in ok:
        raise SystemExit(f"{' '.join(argv[:4])}: exit status {p.returncode}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Run(seconds, cpu, peak[0] / 1024, out.decode(errors="replace"))


def dwarfdump(files: list[Path], jobs: int) -> Run:
    """``llvm-dwarfdump --statistics`` over ``files``, ``jobs`` at once (xargs -P)."""
    tool = shutil.which("llvm-dwarfdump") or next(iter(sorted(Path("/usr/bin").glob("llvm-dwarfdump-*"))), None)
    if tool is None:
        raise SystemExit("llvm-dwarfdump not found")
    script = f"xargs -0 -n 8 -P {jobs} {tool} --statistics > /dev/null"
    return measured(["sh", "-c", script], stdin=b"\0".join(str(f).encode() for f in files), ok=(0,))


def load() -> str:
    """The machine's 1-minute load average: on a shared machine, what the figures ran beside."""
    return f"{os.getloadavg()[0]:.1f}"


def row(label: str, r: Run) -> tuple[str, ...]:
    return (label, f"{r.wall:.1f}", f"{r.cpu:.1f}", f"{r.peak_mb:.0f}", load())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tree")
    ap.add_argument("--sample", type=int, default=40, help="binaries for today's one-process-each loop")
    ap.add_argument("--module", default="nf_tables")
    ap.add_argument("--function", default="nf_tables_newrule")
    ap.add_argument("--cache", help="a cache folder to keep (default: a temporary one, removed)")
    ap.add_argument("--warm-only", action="store_true", help="--cache is warm already: no cold run")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "python"))
    from patchscope.index import tree as kt

    t = kt.find(a.tree)
    files = [p for _, p in t.binaries()]
    cache = a.cache or tempfile.mkdtemp(prefix="bench-tree-")
    env = {"PATCHSCOPE_CACHE": cache, "PATCHSCOPE_CACHE_MAX": str(1 << 40)}
    rows = [("run", "wall s", "CPU s", "peak MB", "load average")]
    try:
        scan = [PATCHSCOPE, "scan", "--summary", a.tree]
        if not a.warm_only:
            shutil.rmtree(cache, ignore_errors=True)
            rows.append(row(f"scan --summary, {len(files)} binaries, cold", measured(scan, env)))
        warm = measured(scan, env)
        rows.append(row("scan --summary, warm", warm))
        point = f'module("{a.module}").function("{a.function}")'
        check = min((measured([PATCHSCOPE, "check", a.tree, point], env) for _ in range(3)), key=lambda r: r.wall)
        rows.append(row(f"check TREE '{point}', warm, best of 3", check))
        sample = random.Random(14).sample(files, min(a.sample, len(files)))
        loop = [measured([PATCHSCOPE, "scan", "--summary", str(f)], env) for f in sample]
        scale = len(files) / len(loop)
        today = Run(
            sum(r.wall for r in loop) * scale, sum(r.cpu for r in loop) * scale, max(r.peak_mb for r in loop), ""
        )
        rows.append(row(f"today: one process per binary, warm, {len(loop)} sampled, extrapolated", today))
        jobs = int(os.environ.get("PATCHSCOPE_JOBS") or os.cpu_count() or 1)
        dd = dwarfdump(files, jobs)
        rows.append(row(f"llvm-dwarfdump --statistics, {jobs} at once", dd))
        rows.append(("today's loop / warm", f"{today.wall / warm.wall:.0f}x", f"{today.cpu / warm.cpu:.0f}x", "", ""))
    finally:
        if not a.cache:
            shutil.rmtree(cache, ignore_errors=True)
    print(table(rows))


if __name__ == "__main__":
    main()
