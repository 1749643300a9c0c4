"""perf probe 6.1 itself, asked offline (``-D``), on every function of the fixtures of four
architectures: its entry, ``%return``, ``F:0`` and lines 1-12 (1-6 off x86_64, for time) — each
answer (the addresses, or refused with perf's message) equal to what ``check`` predicts."""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from perf_oracle import (
    Answer,
    absolute,
    agrees,
    compare,
    function_points,
    patchscope_answer,
    patchscope_variables,
    perf_variables,
    probed_names,
)

import patchscope
from conftest import ROOT, fixture_path
from patchscope.index.context import Context
from patchscope.probes import perf
from patchscope.probes import syntax as ps
from patchscope.probes.resolve import resolve

X86 = fixture_path("x86_64")

needs_perf = pytest.mark.skipif(shutil.which("perf") is None, reason="perf absent (Debian's linux-perf)")

#: perf 6.1 reads an uninitialized line number when no is_stmt row holds an inline site's entry
#: (verify_representive_line: cu_find_lineinfo leaves __lineno unset), and refuses the point
#: naming a line the file does not have. patchscope places the line; perf is wrong.
_GARBAGE_LINE = re.compile(r"Please try to probe at \S+:(\d{5,}) instead\.")


def _perf_is_wrong(theirs: Answer, mine: Answer) -> bool:
    """perf names a line past the end of any fixture source; patchscope places the point or
    names the line the table really holds."""
    if theirs.addresses is not None or not _GARBAGE_LINE.search(theirs.message):
        return False
    return mine.addresses is not None or not _GARBAGE_LINE.search(mine.message)


@needs_perf
@pytest.mark.parametrize(("variant", "lines"), [("x86_64", 12), ("aarch64", 6), ("ppc64le", 6), ("riscv64", 6)])
def test_every_function_and_line_as_perf_places_it(variant: str, lines: int) -> None:
    path = fixture_path(variant)
    cx = Context(patchscope.open(path))
    rows = compare(cx, ["-x", absolute(path)], function_points(cx, probed_names(cx), lines))
    wrong = [(p, t, m) for p, t, m in rows if not agrees(t, m) and not _perf_is_wrong(t, m)]
    assert not wrong, wrong[:10]
    refused = [t for _, t, _ in rows if t.addresses is None]
    # every kind is exercised: refusals of each reason perf gives, and places
    assert any("sharing the address" in t.message for t in refused)
    assert any("not found" in t.message for t in refused)
    assert len(refused) < len(rows)


def test_vmlinux_sample_as_perf_placed_it(vmlinux: Path) -> None:
    """The answers perf gave on 50 functions of the 6.1.0-56 vmlinux (10 of each kind:
    bench/perf_agreement.py --save): every entry, %return, F:0 and line 1-12 predicted."""
    data = json.loads((ROOT / "tests/data/perf-oracle-6.1.0-56.json").read_text())
    assert data["vmlinux"] == vmlinux.name
    cx = Context(patchscope.open(vmlinux))
    wrong = []
    for point, a in data["answers"].items():
        theirs = Answer(None if a["addresses"] is None else tuple(a["addresses"]), a["message"], a["places"])
        mine = patchscope_answer(cx, point)
        if not agrees(theirs, mine):
            wrong.append((point, theirs, mine))
    assert not wrong, wrong[:10]


def test_perf_writes_a_name_the_kernel_refuses(vmlinux: Path) -> None:
    """pt_show:9 is line 115 of pt.c, in its static event_show: perf writes event_show+0, a
    name seven functions of the vmlinux share, which the kernel refuses (EADDRNOTAVAIL)."""
    res = resolve(Context(patchscope.open(vmlinux)), ps.parse("pt_show:9"))
    assert [lnd.address for lnd in res.landings] == [0xFFFFFFFF8101C2C0, 0xFFFFFFFF8101C2C5]
    assert "perf writes event_show+offset, a name 7 functions share" in res.notes[-1]


# -- variables: perf probe -V ------------------------------------------------------------------


@needs_perf
@pytest.mark.parametrize("variant", ["x86_64", "x86_64-O3", "aarch64", "ppc64le", "riscv64", "x86_64-vars"])
def test_every_functions_variables_as_perf_lists_them(variant: str) -> None:
    """``perf probe -x BIN -V F`` for every function: at each place the names perf lists are
    the ones ``check`` predicts it lists (probes/perf.listed_variables)."""
    vars_only = ROOT / "fixtures/bin/x86_64-vars/corpus"  # variables in every state, its own build
    path = (vars_only if variant == "x86_64-vars" else fixture_path(variant)).resolve()
    cx = Context(patchscope.open(path))
    names = probed_names(cx)
    with ThreadPoolExecutor(4) as pool:
        theirs = list(pool.map(lambda n: perf_variables(["-x", str(path)], n), names))
    wrong = [(n, t, m) for n, t in zip(names, theirs) if t != (m := patchscope_variables(cx, n))]
    assert not wrong, wrong[:5]
    assert sum(len(t or ()) for t in theirs) > (5 if variant == "x86_64-vars" else 60)


def test_vmlinux_sample_variables_as_perf_listed_them(vmlinux: Path) -> None:
    """perf -V's listings on 150 functions of the 6.1.0-56 vmlinux (30 of each kind:
    bench/perf_agreement.py --variables --per-kind 30 --save): each place's names predicted."""
    data = json.loads((ROOT / "tests/data/perf-variables-6.1.0-56.json").read_text())
    assert data["binary"] == vmlinux.name
    cx = Context(patchscope.open(vmlinux))
    wrong = []
    for name, listing in data["listings"].items():
        theirs = None if listing is None else tuple((label, tuple(names)) for label, names in listing)
        mine = patchscope_variables(cx, name)
        if theirs != mine:
            wrong.append((name, theirs, mine))
    assert not wrong, wrong[:5]
    assert len(data["listings"]) == 150


def _perf_says(point: str, path: Path = X86) -> dict[str, list[tuple[str, str, str]]]:
    """check's landings of a perf point: (name, state, how perf reads it) of each variable."""
    from patchscope.report import check

    (rec,) = check.document(patchscope.open(path), [ps.parse(point)])["points"]
    return {lnd["address"]: [(v["name"], v["state"], v["perf"]) for v in lnd["variables"]] for lnd in rec["landings"]}


def test_perf_reads_a_computed_value_as_memory() -> None:
    """buf_process's q at 0x17c6 (inlined into part_entry) is DW_OP_breg…; DW_OP_stack_value: a
    value computed from a register. perf reads only the first operation, memory at the register
    plus offset — a value q never had; check says computed, and that perf reads memory instead."""
    at = _perf_says("buf_process")["0x17c6"]
    assert ("q", "computed", perf.READS_MEMORY) in at


def test_perf_cannot_express_a_location_list_constant() -> None:
    """clampi inlined at 0x1a00: lo and hi are DW_OP_lit…; DW_OP_stack_value in a location list.
    perf takes no literal (-ENOTSUP) and lists nothing there; check gives their values."""
    at = _perf_says("clampi")["0x1a00"]
    assert {(n, s, p) for n, s, p in at if n in ("lo", "hi")} == {
        ("lo", "constant", perf.NOT_LISTED),
        ("hi", "constant", perf.NOT_LISTED),
    }


def test_perf_lists_a_callees_variables_as_the_functions(vmlinux: Path) -> None:
    """ipmr_cache_alloc_unres, inlined at ipmr_cache_unresolved+206: perf -V lists k there, a
    variable of a function inlined inside it (collect_variables_cb descends into every child DIE
    holding the address), as ipmr_cache_alloc_unres's own — and not its c, which has no location.
    check's variables there are the function's (c, not listed by perf), and a note names k."""
    from patchscope.report import check

    data = json.loads((ROOT / "tests/data/perf-variables-6.1.0-56.json").read_text())
    assert data["listings"]["ipmr_cache_alloc_unres"] == [["ipmr_cache_unresolved+206", ["k"]]]
    (rec,) = check.document(patchscope.open(vmlinux), [ps.parse("ipmr_cache_alloc_unres")])["points"]
    (lnd,) = rec["landings"]
    assert [(v["name"], v["perf"]) for v in lnd["variables"]] == [("c", perf.NOT_LISTED)]
    assert any(n.startswith(f"perf -V at {lnd['address']} also lists k:") for n in rec["notes"])
