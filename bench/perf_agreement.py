"""perf probe 6.1 beside ``check``'s perf predictions on a vmlinux sample, its answers kept.

    python bench/perf_agreement.py [--vmlinux PATH] [--per-kind N] [--lines N] [--save FILE]
    python bench/perf_agreement.py --variables [--vmlinux PATH | --fixture VARIANT] [--per-kind N] [--save FILE]

Picks N source functions of each kind (not inlined, selectively and fully inlined, with a
``.cold`` part; seeded), asks ``perf probe -k VMLINUX -D`` for each one's entry, ``%return``,
``F:0`` and lines 1..``--lines`` (four perf processes at a time), resolves the same points with
patchscope, and prints the agreement per kind of point with every difference. ``--save`` writes
perf's answers (tests/data/perf-oracle-6.1.0-56.json, read by tests/test_perf_oracle.py, which
then needs no perf and re-checks patchscope against them).

``--variables`` asks ``perf probe -V F`` instead, for each function (of a fixture: every one),
and compares, place by place, the names perf lists with what ``check`` predicts it lists
(``probes/perf.listed_variables``); ``--save`` keeps perf's listings
(tests/data/perf-variables-6.1.0-56.json).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from perf_oracle import (
    Answer,
    Listing,
    agrees,
    compare,
    function_points,
    patchscope_variables,
    perf_variables,
    point_kind,
    probed_names,
)

import patchscope
from conftest import fixture_path, vmlinux_path
from patchscope import _core
from patchscope.index.context import Context


def sample(cx: Context, per_kind: int, seed: int = 61) -> list[str]:
    """``per_kind`` function names of each kind, the same ones on every run."""
    kinds: dict[str, list[str]] = {}
    for fid, name in enumerate(cx.fn_name):
        rows = cx.instances_of.get(fid, [])
        if not rows and not cx.sites_of(fid).size:
            continue
        cold = any(int(cx.inst_suffix_kinds[r]) & _core.suffix.COLD or cx.inst_range_count[r] > 1 for r in rows)
        kinds.setdefault("cold" if cold else str(cx.fn_status[fid]), []).append(name)
    rng = random.Random(seed)
    out: list[str] = []
    for kind in sorted(kinds):
        names = sorted(set(kinds[kind]) - set(out))
        out += rng.sample(names, min(per_kind, len(names)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vmlinux", type=Path, default=vmlinux_path())
    ap.add_argument("--per-kind", type=int, default=10)
    ap.add_argument("--lines", type=int, default=12)
    ap.add_argument("--save", type=Path)
    ap.add_argument("--variables", action="store_true", help="compare perf probe -V")
    ap.add_argument("--fixture", help="a fixture variant instead of the vmlinux (--variables)")
    a = ap.parse_args()
    if a.variables:
        variables(fixture_path(a.fixture).resolve() if a.fixture else a.vmlinux, a.fixture is None, a.per_kind, a.save)
        return
    if a.vmlinux is None:
        sys.exit("perf_agreement.py: no vmlinux (--vmlinux, or ../shared/data/fetch-debian-kernel.sh 6.1.0-56)")
    cx = Context(patchscope.open(a.vmlinux))
    names = sample(cx, a.per_kind)
    points = function_points(cx, names, a.lines)
    symbols: dict[str, list[int]] = {}
    for n, v in zip(cx.sym["name"].tolist(), cx.sym["address"].tolist()):
        symbols.setdefault(cx.string(int(n)), []).append(int(v))
    t = time.perf_counter()
    rows = compare(cx, ["-k", str(a.vmlinux)], points, symbols)
    print(f"{len(points)} points of {len(names)} functions in {time.perf_counter() - t:.0f} s")
    report(rows)
    if a.save:
        answers = {p: {"addresses": _listed(t), "message": t.message, "places": t.places} for p, t, _ in rows}
        a.save.write_text(json.dumps({"vmlinux": a.vmlinux.name, "answers": answers}, indent=0) + "\n")


def variables(path: Path | None, kernel: bool, per_kind: int, save: Path | None) -> None:
    if path is None:
        sys.exit("perf_agreement.py: no vmlinux (--vmlinux, or ../shared/data/fetch-debian-kernel.sh 6.1.0-56)")
    cx = Context(patchscope.open(path))
    names = sample(cx, per_kind) if kernel else probed_names(cx)
    target = ["-k" if kernel else "-x", str(path)]
    t = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        theirs = dict(zip(names, pool.map(lambda n: perf_variables(target, n), names)))
    print(f"perf -V: {len(names)} functions in {time.perf_counter() - t:.0f} s")
    report_variables(cx, theirs)
    if save:
        doc = {"binary": path.name, "listings": {n: _record(v) for n, v in theirs.items()}}
        save.write_text(json.dumps(doc, indent=0) + "\n")


def _record(listing: Listing | None) -> list | None:
    return None if listing is None else [[label, list(names)] for label, names in listing]


def report_variables(cx: Context, theirs: dict[str, Listing | None]) -> tuple[int, int]:
    """Prints every difference and the agreement: of the places (both list the same labels, or
    both none) and, where they agree, of the names at each place. Returns (agreeing, compared)
    places."""
    places = same_places = names = same_names = 0
    for name, t in theirs.items():
        m = patchscope_variables(cx, name)
        places += 1
        if [p for p, _ in t or ()] != [p for p, _ in m or ()]:
            print(f"  differs  places of {name}\n    perf:       {t}\n    patchscope: {m}")
            continue
        same_places += 1
        for a, b in zip(t or (), m or ()):
            names += 1
            same_names += a == b
            if a != b:
                print(f"  differs  variables of {name} at {a[0]}\n    perf:       {a[1]}\n    patchscope: {b[1]}")
    print(f"functions {same_places:5} / {places:5} agree ({100 * same_places / max(places, 1):.1f} %)")
    print(f"variables {same_names:5} / {names:5} places agree ({100 * same_names / max(names, 1):.1f} %)")
    return same_names, names


def _listed(a: Answer) -> list[int] | None:
    return None if a.addresses is None else list(a.addresses)


def report(rows: list[tuple[str, Answer, Answer]]) -> None:
    total, same = Counter(), Counter()
    for p, theirs, mine in rows:
        kind = point_kind(p)
        total[kind] += 1
        same[kind] += agrees(theirs, mine)
        if not agrees(theirs, mine):
            print(f"  differs  {p}\n    perf:       {theirs}\n    patchscope: {mine}")
    for kind in sorted(total):
        print(f"{kind:9} {same[kind]:5} / {total[kind]:5} agree ({100 * same[kind] / total[kind]:.1f} %)")


if __name__ == "__main__":
    main()
