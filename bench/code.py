"""Benchmark: machine-code facts of every out-of-line function of a vmlinux, beside
``objdump -d --no-show-raw-insn`` over the same sections.

    python bench/code.py [VMLINUX] [--repeat N] [--no-objdump]

The core's time is in-process (``_core.Binary.code_facts`` over every range of every instance in
the inventory, ranges passed as ``uint64`` bytes); the index is opened first (from the cache
when warm) and not counted. objdump runs as a child with its output sent to /dev/null.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from common import table, vmlinux


def ranges(b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(function_id, low, high) of every range of every out-of-line instance."""
    inst = b.inventory.instances
    rg = inst.column("ranges").combine_chunks()
    per = pc.list_value_length(rg).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(rg.flatten()).to_numpy()
    ids = np.repeat(np.arange(len(per), dtype=np.uint64), per)
    return ids, flat[0::2].astype(np.uint64), flat[1::2].astype(np.uint64)


def code_sections(b, lows: np.ndarray, highs: np.ndarray) -> list[tuple[str, int]]:
    """The sections the ranges lie in, with their sizes (what objdump must disassemble)."""
    sec = b.sections
    names = sec.column("name").to_pylist()
    addr = sec.column("address").to_numpy()
    size = sec.column("size").to_numpy()
    flags = sec.column("flags").to_numpy()
    out = []
    for n, a, s, f in zip(names, addr, size, flags):
        if s == 0 or not (f & 0x4):  # SHF_EXECINSTR
            continue
        if np.any((lows >= a) & (lows < a + s)):
            out.append((n, int(s)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmlinux", nargs="?", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-objdump", action="store_true")
    args = ap.parse_args()
    path = args.vmlinux or vmlinux()

    import patchscope
    from patchscope.index.tables import Columns

    t = time.perf_counter()
    b = patchscope.open(path)
    ids, lows, highs = ranges(b)
    t_index = time.perf_counter() - t
    code_bytes = int(np.sum(highs - lows))

    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        out = b.core.code_facts(ids.tobytes(), lows.tobytes(), highs.tobytes())
        times.append(time.perf_counter() - t)
    cols = Columns.from_core(out)
    rg = cols.raw["code_ranges"]
    ev = cols.raw["code_events"]
    insns = int(rg.column("insn_count").to_numpy().sum())
    errors = int(rg.column("decode_errors").to_numpy().sum())
    status = rg.column("status").to_numpy()
    kinds = np.bincount(ev.column("kind").to_numpy(), minlength=21)
    core = min(times)

    sections = code_sections(b, lows, highs)
    rows = [
        ("reader", "seconds", "what"),
        (
            "_core.Binary.code_facts",
            f"{core:.3f}",
            f"{len(lows):,} ranges of {int(ids.max()) + 1 if len(ids) else 0:,} instances, "
            f"{code_bytes / 2**20:.1f} MiB, {insns:,} insns, {ev.num_rows:,} events "
            f"(best of {args.repeat}: {', '.join(f'{x:.3f}' for x in times)})",
        ),
    ]
    if not args.no_objdump:
        argv = ["objdump", "-d", "--no-show-raw-insn", *[f"-j{s}" for s, _ in sections], str(path)]
        t = time.perf_counter()
        with open(os.devnull, "wb") as null:
            subprocess.run(argv, stdout=null, check=True)
        od = time.perf_counter() - t
        od_bytes = sum(n for _, n in sections)
        what = " ".join(f"-j{s}" for s, _ in sections) + f" ({od_bytes / 2**20:.1f} MiB)"
        rows.append(("objdump -d --no-show-raw-insn", f"{od:.3f}", what))
    print(
        f"vmlinux: {path} ({path.stat().st_size / 2**20:.0f} MiB), {os.cpu_count()} CPUs, "
        f"index open + inventory {t_index:.2f} s (not counted)"
    )
    print(table(rows))
    if not args.no_objdump:
        print(
            f"ratio objdump / core: {od / core:.0f}x in time, "
            f"{(od / od_bytes) / (core / code_bytes):.0f}x per byte decoded"
        )
    names = [
        "",
        "RETURN",
        "TAIL_JUMP_DIRECT",
        "TAIL_JUMP_INDIRECT",
        "CALL_DIRECT",
        "CALL_INDIRECT",
        "JUMP_TO_ENTRY",
        "LL",
        "SC",
        "LSE_ATOMIC",
        "ORDERED",
        "TM_BEGIN",
        "TM_END",
        "TM_ABORT",
        "TM_TEST",
        "TM_OTHER",
        "HLE",
        "TRAP",
        "ENDBR",
        "LOCAL_ENTRY",
        "ENTRY_NOPS",
    ]
    print("events: " + ", ".join(f"{names[k]} {n:,}" for k, n in enumerate(kinds) if n and k < len(names)))
    print(
        f"decode errors: {errors:,}; ranges with status bits: "
        f"no bytes {int(np.sum(status & 1 != 0)):,}, truncated {int(np.sum(status & 2 != 0)):,}, "
        f"internal {int(np.sum(status & 4 != 0)):,}"
    )


if __name__ == "__main__":
    main()
