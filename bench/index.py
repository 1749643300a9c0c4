"""Benchmark: patchscope's full index of a vmlinux (cold cache, then warm) beside
``llvm-dwarfdump --statistics`` and pyelftools (a subset of units, extrapolated by DIE count).

    python bench/index.py [VMLINUX] [--pyelftools-units N]

Each reader runs as its own process; wall time and peak RSS are that process's. The
in-process figures (``index``) leave out interpreter start-up and imports.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from common import python, run, table, vmlinux

INDEX = """
import time, json
t0 = time.perf_counter()
import patchscope
t1 = time.perf_counter()
b = patchscope.open({path!r})
t2 = time.perf_counter()
inv = b.inventory
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "open": t2 - t1, "inventory": t3 - t2, "cached": b.from_cache,
                  "subprograms": b.subprograms.num_rows, "inline_sites": b.inline_sites.num_rows,
                  "call_sites": b.call_sites.num_rows, "lines": b.lines.num_rows,
                  "params": b.params.num_rows}}))
"""

# pyelftools as the reference measurements did it: no relocation (an ET_EXEC is relocated
# already), per-unit DIE caches dropped, every DIE parsed; the units are the first N.
PYELFTOOLS = """
import json, time
from elftools.elf.elffile import ELFFile
t = time.perf_counter()
f = open({path!r}, "rb")
dw = ELFFile(f).get_dwarf_info(relocate_dwarf_sections=False)
dies = units = 0
for cu in dw.iter_CUs():
    for die in cu.iter_DIEs():
        dies += 1
    cu._dielist = []; cu._diemap = []
    units += 1
    if units == {units}:
        break
print(json.dumps({{"dies": dies, "seconds": time.perf_counter() - t}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmlinux", nargs="?", type=Path)
    ap.add_argument("--pyelftools-units", type=int, default=40)
    args = ap.parse_args()
    path = args.vmlinux or vmlinux()
    cache = tempfile.mkdtemp(prefix="patchscope-bench-")
    try:
        env = {"PATCHSCOPE_CACHE": cache}
        cold = python(INDEX.format(path=str(path)), env, "patchscope, cold cache")
        warm = python(INDEX.format(path=str(path)), env, "patchscope, warm cache")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    llvm = run("llvm-dwarfdump --statistics", ["llvm-dwarfdump", "--statistics", str(path)])
    pyelf = python(PYELFTOOLS.format(path=str(path), units=args.pyelftools_units), label="pyelftools")

    c, w = json.loads(cold.stdout), json.loads(warm.stdout)
    assert not c["cached"] and w["cached"]
    stats = json.loads(llvm.stdout)
    total_dies = _total_dies(path, cache_env=None)
    p = json.loads(pyelf.stdout)
    pyelf_projected = p["seconds"] * total_dies / max(p["dies"], 1)

    cold_idx = c["open"] + c["inventory"]
    warm_idx = w["open"] + w["inventory"]
    print(f"vmlinux: {path} ({path.stat().st_size / 2**20:.0f} MiB, {total_dies:,} DIEs)")
    print(
        f"tables: {c['subprograms']:,} subprograms, {c['inline_sites']:,} inline sites, "
        f"{c['call_sites']:,} call sites, {c['params']:,} params, {c['lines']:,} line rows"
    )
    print(
        f"llvm-dwarfdump counts: {stats.get('#functions')} functions, "
        f"{stats.get('#inlined functions')} inlined, {stats.get('#call site DIEs')} call-site DIEs\n"
    )
    rows = [
        ("reader", "index s", "process wall s", "peak RSS MiB", "process vs patchscope cold"),
        (
            "patchscope, cold cache",
            f"{cold_idx:.2f}",
            f"{cold.seconds:.2f}",
            f"{cold.max_rss_mb:.0f}",
            "1.0x",
        ),
        (
            "patchscope, warm cache",
            f"{warm_idx:.3f}",
            f"{warm.seconds:.2f}",
            f"{warm.max_rss_mb:.0f}",
            f"{warm.seconds / cold.seconds:.2f}x",
        ),
        (
            "llvm-dwarfdump --statistics",
            "-",
            f"{llvm.seconds:.2f}",
            f"{llvm.max_rss_mb:.0f}",
            f"{llvm.seconds / cold.seconds:.1f}x",
        ),
        (
            f"pyelftools 0.33 (projected from {p['dies']:,} DIEs)",
            "-",
            f"{pyelf_projected:.0f}",
            f"{pyelf.max_rss_mb:.0f} (subset)",
            f"{pyelf_projected / cold.seconds:.0f}x",
        ),
    ]
    print(table(rows))
    print(
        f"\ncold index: core scan + Arrow tables {c['open']:.2f} s, inventory {c['inventory']:.2f} s; "
        f"imports {c['import']:.2f} s. warm: open {w['open']:.3f} s, inventory {w['inventory']:.3f} s."
    )
    print("targets (2 cores): cold <= 1.5 s, warm <= 0.3 s, peak RSS <= 1024 MiB")


def _total_dies(path: Path, cache_env: dict | None) -> int:
    import patchscope

    b = patchscope.open(path, use_cache=False)
    return sum(b.units.column("dies").to_pylist())


if __name__ == "__main__":
    main()
