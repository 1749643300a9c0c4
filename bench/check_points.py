"""Benchmark: ``patchscope check`` of a 300-point file on the vmlinux, warm index, beside
``perf probe -D`` (a dry run: perf resolves each point and prints its kprobe_events line).

    python bench/check_points.py [--runs N] [--peer-points K] [--vmlinux PATH]

The 300 points are the corpus's kernel points (tests/data/corpus, SystemTap's examples where
installed) in every dialect, each once — no non-code probe, no tapset alias. patchscope runs
as its own process with a private cache filled by one untimed run, ``--runs`` times, best kept.
perf reads the vmlinux's DWARF anew for each ``-D`` (about 1.8 s a point here), so it is timed
on the first ``--peer-points`` function names only and the ratio is per point.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from common import ROOT, Run, run, table, vmlinux

sys.path.insert(0, str(ROOT / "bench"))


def corpus_points(n: int) -> list[str]:
    """``n`` distinct kernel points of the corpus that reach code, one per line."""
    from corpus import files, script_args

    from patchscope.probes import scripts
    from patchscope.probes import syntax as ps

    out: dict[str, None] = {}
    for f in files():
        build = scripts.Build("6.1.0-56-amd64", "x86_64", None, script_args(f))
        for p in scripts.load_points(str(f), build):
            if (
                isinstance(p, ps.ProbePoint)
                and p.target == "kernel"
                and p.mode not in (ps.NO_CODE, ps.ALIAS, ps.LABEL)
                and "\n" not in p.text
                and p.tool != "perf"  # perf's points are written with their command line
            ):
                out.setdefault(p.text.strip(), None)
    points = list(out)
    if len(points) < n:
        raise SystemExit(f"the corpus has {len(points)} kernel points, fewer than {n}")
    return points[:n]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--points", type=int, default=300)
    p.add_argument("--peer-points", type=int, default=10)
    p.add_argument("--vmlinux", type=Path)
    args = p.parse_args()
    v = args.vmlinux or vmlinux()
    points = corpus_points(args.points)
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "points.txt"
        listing.write_text("\n".join(points) + "\n")
        env = {"PATCHSCOPE_CACHE": os.environ.get("PATCHSCOPE_CACHE", str(Path(tmp) / "cache"))}
        argv = [str(ROOT / ".venv/bin/patchscope"), "check", str(v), "--probes", str(listing), "--format=json"]
        run("warm-up", argv, env, check=False)
        ours = min((run("patchscope", argv, env, check=False) for _ in range(args.runs)), key=lambda r: r.seconds)
        names = [p.split(":", 1)[1] for p in points if p.startswith("kprobe:") and "*" not in p][: args.peer_points]
        perf = run("perf", ["perf", "probe", "-k", str(v), *(x for n in names for x in ("-D", n))], check=False)
    per_ours, per_perf = ours.seconds / len(points), perf.seconds / max(len(names), 1)
    rows: list[tuple[str, ...]] = [("tool", "points", "wall", "per point", "peak RSS")]
    rows += [_row(ours, len(points)), _row(perf, len(names))]
    print(table(rows))
    print(
        f"per point: patchscope {per_ours * 1000:.1f} ms, perf probe -D {per_perf * 1000:.0f} ms "
        f"({per_perf / per_ours:.0f}x); 300 points in {ours.seconds:.2f} s (target <= 3 s)"
    )


def _row(r: Run, n: int) -> tuple[str, ...]:
    return (r.label, str(n), f"{r.seconds:.2f} s", f"{r.seconds / n * 1000:.1f} ms", f"{r.max_rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
