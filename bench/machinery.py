"""Benchmark: the probing machinery's reach over the whole vmlinux call graph (the call graph
built from the decoded code, then both walks of rules/machinery.py to their fixed point),
beside scipy's breadth-first search (C, over a CSR matrix) from the same roots over the same
edges — which also checks the walk after the guard: both must reach the same functions.

    python bench/machinery.py [VMLINUX] [--repeat N]      (pip install scipy first)

Warm: the index and its machine-code facts come from the cache and are loaded before timing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import table, vmlinux
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order

import patchscope
from patchscope.index.callgraph import call_graph
from patchscope.index.context import Context
from patchscope.rules import machinery


def ours(b: patchscope.Binary) -> tuple[float, machinery.Reach, Context]:
    """Graph and both walks, on a fresh view of the binary (the index is loaded)."""
    cx = Context(b)
    cx.inst_name, cx.inst_main_range  # noqa: B018  (the index's own columns, not the walk)
    t = time.perf_counter()
    r = machinery.reach(cx)
    return time.perf_counter() - t, r, cx


def peer(b: patchscope.Binary) -> tuple[float, set[int]]:
    """The walk after the guard as a plain BFS: the same edges (error paths, exits and non-hit
    calls dropped, the declared pointer calls added), from the same roots; the call graph is
    built anew here too."""
    cx = Context(b)
    cx.inst_name, cx.inst_main_range  # noqa: B018
    t = time.perf_counter()
    g = call_graph(cx)
    n = cx.inst.num_rows
    src = np.repeat(np.arange(n), np.diff(g.start))
    names = np.array([cx.instance_symbol(r) for r in range(n)], object)
    noreturn = cx.inst.column("noreturn").to_numpy(zero_copy_only=False)
    keep = ~g.cold & ~noreturn[g.callee] & ~np.isin(names[g.callee], list(machinery.EXITS))
    for caller, skip in machinery.NOT_ON_A_HIT.items():
        keep &= ~((names[src] == caller) & np.isin(names[g.callee], list(skip)))
    named = {*machinery.POINTERS, *machinery._pointees(), *machinery.GUARDS, *machinery.ROOTS}
    rows = machinery._rows_by_name(cx, named)
    extra = [(rows[a], rows[t]) for a, (ts, _) in machinery.POINTERS.items() for t in ts if a in rows and t in rows]
    s = np.concatenate([src[keep], [a for a, _ in extra]]).astype(np.int64)
    d = np.concatenate([g.callee[keep], [b for _, b in extra]]).astype(np.int64)
    super_root = n  # one source for all the roots
    roots = [rows[x] for x in [*machinery.GUARDS, *machinery.ROOTS] if x in rows]
    s = np.concatenate([s, np.full(len(roots), super_root)])
    d = np.concatenate([d, roots])
    m = csr_matrix((np.ones(len(s), np.int8), (s, d)), shape=(n + 1, n + 1))
    reached = breadth_first_order(m, super_root, directed=True, return_predecessors=False)
    return time.perf_counter() - t, set(reached.tolist()) - {super_root}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmlinux", nargs="?", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    b = patchscope.open(a.vmlinux or vmlinux())
    b.machine  # noqa: B018  (warm: the decoded code is the index's, loaded before timing)
    best, best_peer = float("inf"), float("inf")
    for _ in range(a.repeat):
        s, r, _ = ours(b)
        sp, reached = peer(b)
        best, best_peer = min(best, s), min(best_peer, sp)
    agree = reached == set(r.after)
    print(
        table(
            [
                ("reach of the machinery", "seconds (best)", "functions after the guard", "edges"),
                ("patchscope (graph + both walks)", f"{best:.2f}", str(len(r.after)), str(r.edges)),
                ("scipy BFS (same edges, one walk)", f"{best_peer:.2f}", str(len(reached)), ""),
            ]
        )
    )
    print(f"ratio {best / best_peer:.1f}x; same functions after the guard: {agree}")


if __name__ == "__main__":
    main()
