"""Benchmark: the write analysis of every variable of every out-of-line instance of a vmlinux —
register liveness over each instance's whole control-flow graph, one query per location-list
entry that puts a variable in a register, at its first address — beside ``objdump -d
--no-show-raw-insn`` over the same sections, in the same run.

    python bench/writes.py [VMLINUX] [--repeat N] [--no-objdump]

The index and the variables' location lists are read first (not counted); the core's time is
``_core.Binary.liveness`` over every range of every instance (decoding, uses and definitions,
the fixpoint, and each query's first reader or writer).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from code import code_sections, ranges  # type: ignore[attr-defined]  # bench/code.py, not the stdlib's
from pathlib import Path

import numpy as np
from common import table, vmlinux


def queries(b, n_instances: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(instance row, address, DWARF register) of every register location of every variable
    of every instance (not of its inline sites)."""
    from patchscope import _core
    from patchscope.index.variables import scope_variables

    dies = b.inventory.instances.column("die").to_numpy()
    variables, _ = scope_variables(b, dies)
    v = {n: variables.column(n).to_numpy() for n in ("scope", "kind", "reg", "low", "high")}
    keep = (v["kind"] == _core.location_kind.REGISTER) & (v["low"] < v["high"])
    order = np.argsort(dies)
    row = order[np.searchsorted(dies[order], v["scope"][keep])]
    return row.astype(np.uint64), v["low"][keep].astype(np.uint64), v["reg"][keep].astype(np.uint64)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmlinux", nargs="?", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-objdump", action="store_true")
    args = ap.parse_args()
    path = args.vmlinux or vmlinux()

    import patchscope
    from patchscope.index import machine
    from patchscope.index.tables import Columns

    t = time.perf_counter()
    b = patchscope.open(path)
    ids, lows, highs = ranges(b)
    rows, at, regs = queries(b, b.inventory.instances.num_rows)
    t_index = time.perf_counter() - t

    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        results = machine.result_classes(machine.results(b.core, b.inventory.instances).table)  # counted
        out = b.core.liveness(
            ids.tobytes(), lows.tobytes(), highs.tobytes(), results, rows.tobytes(), at.tobytes(), regs.tobytes()
        )
        times.append(time.perf_counter() - t)
    live = Columns.from_core(out).raw["liveness"]
    core = min(times)
    dead = int(np.sum(live.column("live").to_numpy() == 0))
    status = live.column("status").to_numpy()

    rows_out = [
        ("reader", "seconds", "what"),
        (
            "_core.Binary.liveness",
            f"{core:.3f}",
            f"{len(at):,} register locations of {len(np.unique(rows)):,} instances, {len(lows):,} ranges "
            f"(best of {args.repeat}: {', '.join(f'{x:.3f}' for x in times)})",
        ),
    ]
    if not args.no_objdump:
        sections = code_sections(b, lows, highs)
        argv = ["objdump", "-d", "--no-show-raw-insn", *[f"-j{s}" for s, _ in sections], str(path)]
        t = time.perf_counter()
        with open(os.devnull, "wb") as null:
            subprocess.run(argv, stdout=null, check=True)
        od = time.perf_counter() - t
        rows_out.append(("objdump -d --no-show-raw-insn", f"{od:.3f}", " ".join(f"-j{s}" for s, _ in sections)))
    print(f"vmlinux: {path}, {os.cpu_count()} CPUs, index + location lists {t_index:.2f} s (not counted)")
    print(table(rows_out))
    if not args.no_objdump:
        print(f"ratio objdump / liveness: {od / core:.1f}x")
    print(
        f"not read before overwritten or the function leaves: {dead:,} of {len(at):,} "
        f"({100 * dead / max(len(at), 1):.1f} %); not an instruction start: {int(np.sum(status & 1 != 0)):,}; "
        f"an unfollowed jump on the way: {int(np.sum(status & 4 != 0)):,}"
    )


if __name__ == "__main__":
    main()
