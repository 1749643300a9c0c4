"""Benchmark: ``patchscope check`` of a 50-probe band-aid script — each probe writes a parameter
at a function's entry — on the vmlinux with a warm index, beside
SystemTap's own pass 2 (``stap -g -p2``: parse, resolve against the DWARF, elaborate the
writes) of the same script, in the same run.

    python bench/bandaid.py [--probes N] [--runs N] [--no-stap] [--vmlinux PATH]

The functions are N never-inlined ones (drawn by a fixed seed) whose first parameter is named
is a scalar or a pointer with a location at entry — what stap can write (a struct by value, a
``.return`` of a void function, or a parameter of an inlined copy with no location fails its
pass 2); each probe is optional (``?``), as stap skips functions in init text or on its
blocklist. stap runs with the stub build dir of bench/stap_stub.sh.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from common import ROOT, python, run, table, vmlinux

MAKE = (
    "import sys; sys.path.insert(0, {bench!r}); from bandaid import band_aid; from pathlib import Path; "
    "print(band_aid(Path({v!r}), {n}), end='')"
)


def band_aid(v: Path, n: int) -> str:
    """A script of ``n`` probes that write, one function each."""
    import patchscope
    from patchscope.index.functions import NOT_INLINED
    from patchscope.index.variables import scope_variables

    b = patchscope.open(v)
    inst = b.inventory.instances
    dies = inst.column("die").to_numpy()
    lows = inst.column("low_pc").to_numpy()
    variables, _ = scope_variables(b, dies)
    names = b.inventory.functions.column("name").to_pylist()
    plain = b.inventory.functions.column("status").to_numpy() == NOT_INLINED
    once = {n for n, c in Counter(names).items() if c == 1}  # a static name in several files: several $x
    fid_of = dict(zip(dies.tolist(), inst.column("fid").to_pylist()))
    low_of = dict(zip(dies.tolist(), lows.tolist()))
    first: dict[str, str] = {}
    for scope, name, type_, param, position, low in zip(
        *(variables.column(c).to_pylist() for c in ("scope", "name", "type", "param", "position", "low"))
    ):
        fname = names[fid_of[scope]]
        scalar = "*" in type_ or not type_.startswith(("struct ", "union "))
        at_entry = low == low_of[scope] and plain[fid_of[scope]] and fname in once
        if param and position == 0 and name and scalar and at_entry:
            first.setdefault(fname, name)
    chosen = random.Random(56).sample(sorted(first), n)
    return "".join(f'probe kernel.function("{f}") ? {{ ${first[f]} = 0 }}\n' for f in chosen)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-stap", action="store_true")
    p.add_argument("--vmlinux", type=Path)
    args = p.parse_args()
    v = args.vmlinux or vmlinux()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "band-aid.stp"
        # in a child: a parent holding the index would lend its RSS to every child's peak (fork)
        made = python(MAKE.format(bench=str(ROOT / "bench"), v=str(v), n=args.probes))
        script.write_text(made.stdout)
        env = {"PATCHSCOPE_CACHE": os.environ.get("PATCHSCOPE_CACHE", str(Path(tmp) / "cache"))}
        argv = [str(ROOT / ".venv/bin/patchscope"), "check", str(v), str(script), "--format=json"]
        run("warm-up", argv, env, check=False)
        ours = min((run("patchscope check", argv, env, check=False) for _ in range(args.runs)), key=lambda r: r.seconds)
        runs = [ours]
        if not args.no_stap:
            stub = [str(ROOT / "bench/stap_stub.sh"), "-k", str(v)]
            build = subprocess.run(stub, capture_output=True, text=True, check=True).stdout.split()[-1]
            runs.append(run("stap -g -p2", ["stap", "-g", "-p2", "-r", build, str(script)], check=False))
    rows: list[tuple[str, ...]] = [("tool", "probes", "wall", "CPU", "peak RSS")]
    for r in runs:
        rows.append(
            (r.label, str(args.probes), f"{r.seconds:.2f} s", f"{r.cpu_seconds:.2f} s", f"{r.max_rss_mb:.0f} MB")
        )
    print(table(rows))
    ratio = f"; stap -g -p2 / patchscope: {runs[1].seconds / ours.seconds:.1f}x" if len(runs) > 1 else ""
    took = f"{ours.seconds:.2f} s, {ours.cpu_seconds:.2f} s CPU"
    print(f"{args.probes}-probe band-aid script in {took} (target <= 2 s){ratio}")


if __name__ == "__main__":
    main()
