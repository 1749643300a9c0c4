"""Benchmark: ``diff OLD_TREE NEW_TREE`` over two whole kernel trees in one run, beside today's
loop of one ``diff OLD.ko NEW.ko`` process per pair; and what changed between the builds.

    python bench/tree_diff.py OLD_TREE NEW_TREE [--sample N] [--cache DIR] [--warm-only]

OLD_TREE and NEW_TREE are ``lib/modules/RELEASE`` folders (``fetch-debian-kernel.sh -m 6.1.0-50``
and ``-m 6.1.0-56`` print them). Runs, in one process tree each: the diff with an empty cache
(cold: both trees indexed) unless ``--warm-only``, and again warm; then today's loop over N
random pairs, extrapolated to every pair. Prints wall and CPU seconds, peak memory and the load
average beside each, then the tree diff's counts: binaries changed, unchanged, added, removed,
failed, and the functions per kind of change added up over the changed binaries.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from collections import Counter

from common import ROOT, table
from tree import PATCHSCOPE, Run, measured, row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--sample", type=int, default=20, help="pairs for today's one-process-each loop")
    ap.add_argument("--cache", help="a cache folder to keep (default: a temporary one, removed)")
    ap.add_argument("--warm-only", action="store_true", help="--cache is warm already: no cold run")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "python"))
    from patchscope.index import tree as kt

    old, new = kt.find(a.old), kt.find(a.new)
    pairs = [(n, p, dict(new.binaries())[n]) for n, p in old.binaries() if n in dict(new.binaries())]
    cache = a.cache or tempfile.mkdtemp(prefix="bench-tree-diff-")
    env = {"PATCHSCOPE_CACHE": cache, "PATCHSCOPE_CACHE_MAX": str(1 << 40)}
    rows = [("run", "wall s", "CPU s", "peak MB", "load average")]
    diff = [PATCHSCOPE, "diff", "--format", "json", a.old, a.new]
    try:
        if not a.warm_only:
            shutil.rmtree(cache, ignore_errors=True)
            rows.append(row(f"diff OLD_TREE NEW_TREE, {len(pairs)} pairs, cold", measured(diff, env)))
        warm = measured(diff, env)
        rows.append(row("diff OLD_TREE NEW_TREE, warm", warm))
        sample = random.Random(14).sample(pairs, min(a.sample, len(pairs)))
        loop = [measured([PATCHSCOPE, "diff", "--format", "json", str(o), str(n)], env) for _, o, n in sample]
        scale = len(pairs) / len(loop)
        today = Run(
            sum(r.wall for r in loop) * scale, sum(r.cpu for r in loop) * scale, max(r.peak_mb for r in loop), ""
        )
        rows.append(row(f"today: one process per pair, warm, {len(loop)} sampled, extrapolated", today))
        rows.append(("today's loop / warm", f"{today.wall / warm.wall:.0f}x", f"{today.cpu / warm.cpu:.0f}x", "", ""))
    finally:
        if not a.cache:
            shutil.rmtree(cache, ignore_errors=True)
    print(table(rows))
    print(changes(json.loads(warm.out)))


def changes(doc: dict) -> str:
    """What changed between the trees: binaries by outcome, functions by kind of change."""
    s = doc["summary"]
    kinds: Counter[str] = Counter()
    for b in doc["binaries"]:
        kinds.update(b["changes"])
    counts = [
        ("binaries changed", s["changed"]),
        ("binaries unchanged", s["unchanged"]),
        ("added", len(doc["added"])),
        ("removed", len(doc["removed"])),
        ("failed", len(doc["failed"])),
    ]
    lines = [f"{k}: {v:,}" for k, v in counts]
    lines.append("functions per kind of change, over the changed binaries:")
    lines += [f"  {k}: {v:,}" for k, v in kinds.most_common()]
    top = sorted(doc["binaries"], key=lambda b: -sum(b["changes"].values()))[:10]
    lines.append("most changed: " + ", ".join(f"{b['name']} ({sum(b['changes'].values())})" for b in top))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
