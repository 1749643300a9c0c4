"""SystemTap 4.8 beside ``check``'s stap predictions: the fixtures or a vmlinux sample, its
answers kept.

    python bench/stap_agreement.py [--vmlinux PATH | --fixture VARIANT] [--per-kind N] [--lines N] [--save FILE]

For a vmlinux: N source functions of each kind (not inlined, selectively and fully inlined,
with a ``.cold`` part; seeded, as bench/perf_agreement.py picks them), for each its
``kernel.function("F")``, ``.return``, ``.inline``, ``.call`` and ``kernel.statement("F@*:L")``
for the ``--lines`` lines from its declaration on; for a fixture every function. Asks ``stap -v
-L`` (tests/stap_oracle.py, with bench/stap_stub.sh's build dir), resolves the same points with
patchscope, and prints the agreement per kind (and of the variables listed at each address
both place) with every difference (a line ``-L`` lists some places of and patchscope refuses is asked
again with ``stap -p2``, which shows the error ``-L`` hides). ``--save`` writes stap's answers
(tests/data/stap-oracle-6.1.0-56.json, read by tests/test_stap_oracle.py, which then needs no
stap and re-checks patchscope against them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf_agreement import sample
from perf_oracle import probed_names
from stap_oracle import (
    Answer,
    Point,
    compare,
    confirm_refusals,
    function_lines,
    patchscope_answers,
    points,
    stap_answers,
    stub,
)

import patchscope
from conftest import fixture_path, vmlinux_path
from patchscope.index.context import Context


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vmlinux", type=Path)
    ap.add_argument("--fixture")
    ap.add_argument("--per-kind", type=int, default=10)
    ap.add_argument("--lines", type=int, default=12)
    ap.add_argument("--save", type=Path)
    a = ap.parse_args()
    path = fixture_path(a.fixture).resolve() if a.fixture else a.vmlinux or vmlinux_path()
    if path is None:
        sys.exit("stap_agreement.py: no vmlinux (--vmlinux, or ../shared/data/fetch-debian-kernel.sh 6.1.0-56)")
    binary = patchscope.open(path)
    cx = Context(binary)
    kernel = a.fixture is None
    names = sample(cx, a.per_kind) if kernel else probed_names(cx)
    pts = points("kernel" if kernel else f'process("{path}")', names, function_lines(cx, names, a.lines))
    symbols = cx.symbol_addresses(["_stext"]) if kernel else {}
    t = time.perf_counter()
    theirs = stap_answers(stub(path if kernel else None), pts, symbols, binary.arch)
    print(f"stap: {len(pts)} points of {len(names)} functions in {time.perf_counter() - t:.0f} s")
    t = time.perf_counter()
    mine = patchscope_answers(binary, pts)
    print(f"patchscope: {time.perf_counter() - t:.0f} s")
    confirm_refusals(stub(path if kernel else None), binary.arch, pts, theirs, mine)
    report(compare(theirs, mine, pts))
    if a.save:
        answers = {p.text: theirs[p.text].record() for p in pts}
        doc = {"vmlinux": path.name, "points": [_point(p) for p in pts], "answers": answers}
        a.save.write_text(json.dumps(doc, indent=0) + "\n")


def _point(p: Point) -> dict:
    return {"text": p.text, "kind": p.kind, "function": p.function, "line": p.line}


def report(rows: dict[str, tuple[int, int, list[tuple[Point, Answer, Answer]]]]) -> None:
    for kind, (_, _, diffs) in rows.items():
        for p, theirs, mine in diffs:
            print(f"  differs  {kind}  {p.text}\n    stap:       {theirs}\n    patchscope: {mine}")
    for kind, (same, total, _) in rows.items():
        print(f"{kind:9} {same:5} / {total:5} agree ({100 * same / total:.1f} %)")


if __name__ == "__main__":
    main()
