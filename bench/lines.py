"""Benchmark: many perf ``F:N`` line probes in one ``patchscope check``, beside ``perf probe -L``
over the same functions, in the same run.

    python bench/lines.py [--vmlinux PATH] [--functions N] [--points N] [--runs N] [--cache DIR]

Picks N functions of the vmlinux (bench/perf_agreement.py's seeded sample, every kind), writes
``F:1``..``F:K`` for each until there are ``--points`` points, and times ``patchscope check
VMLINUX --probes FILE --format json`` with a warm cache (one untimed run first fills a private
one), then ``perf probe -k VMLINUX -L F`` once per function (perf lists a function's probe-able
lines; it has no batch form). perf's ``-L`` also prints the source, which is not installed
here: it then stops after its DWARF walk with "Failed to find source file path", the walk being
the part timed. Best of ``--runs``. Wall and CPU time (user + system, the children's own
rusage) both: on the shared machine a load of 10 on 2 cores triples the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from common import run, table, vmlinux
from perf_agreement import sample
from perf_oracle import absolute

import patchscope
from patchscope.index.context import Context


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vmlinux", type=Path)
    ap.add_argument("--functions", type=int, default=150)
    ap.add_argument("--points", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--cache", help="an index cache to reuse (default: a private one, filled first)")
    a = ap.parse_args()
    path = a.vmlinux or vmlinux()
    with tempfile.TemporaryDirectory(prefix="ps-lines-") as tmp:
        env = {"PATCHSCOPE_CACHE": a.cache or tmp}
        names = sample(Context(patchscope.open(path)), a.functions // 5)
        per = -(-a.points // len(names))
        points = [f"{n}:{i}" for i in range(1, per + 1) for n in names][: a.points]
        probes = Path(tmp) / "points.txt"
        probes.write_text("\n".join(points) + "\n")
        argv = [".venv/bin/patchscope", "check", absolute(path), "--probes", str(probes), "--format", "json"]
        run("warm-up", argv, env, check=False)
        ours = min((run("patchscope", argv, env, check=False) for _ in range(a.runs)), key=lambda r: r.cpu_seconds)
        doc = json.loads(ours.stdout)
        placed = sum(1 for p in doc["points"] if p["landings"])
        t = time.perf_counter()
        perf_cpu = sum(
            run("perf", ["perf", "probe", "-k", absolute(path), "-L", n], check=False).cpu_seconds for n in names
        )
        theirs = time.perf_counter() - t
    print(f"{len(points)} F:N points over {len(names)} functions of {path.name} ({placed} placed)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        table(
            [
                ("tool", "wall s", "CPU s", "per point (ms, CPU)"),
                (
                    "patchscope check",
                    f"{ours.seconds:.2f}",
                    f"{ours.cpu_seconds:.2f}",
                    f"{1000 * ours.cpu_seconds / len(points):.2f}",
                ),
                (
                    f"perf probe -L x{len(names)}",
                    f"{theirs:.2f}",
                    f"{perf_cpu:.2f}",
                    f"{1000 * perf_cpu / len(points):.2f}",
                ),
            ]
        )
    )
    print(f"ratio perf / patchscope: {theirs / ours.seconds:.1f}")


if __name__ == "__main__":
    main()
