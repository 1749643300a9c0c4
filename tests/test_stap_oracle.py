"""SystemTap 4.8 itself, asked offline (``stap -v -L``, tests/stap_oracle.py), on every function
of the fixtures of four architectures: ``function("F")``, ``.return``, ``.inline``, ``.call`` and
``statement("F@*:N")`` for lines from its declaration on (12 on x86_64, 6 elsewhere, for time) —
each answer (the addresses, or refused; the variables stap lists at each address) equal to what
``check`` predicts. The vmlinux sample is re-checked against stap's kept answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
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
from conftest import ROOT, fixture_path
from patchscope import _core
from patchscope.index.context import Context
from patchscope.probes import syntax as ps
from patchscope.probes.listing import READABLE
from patchscope.probes.resolve import resolve

needs_stap = pytest.mark.skipif(shutil.which("stap") is None, reason="SystemTap absent (Debian's systemtap)")


def _agree(theirs: dict[str, Answer], mine: dict[str, Answer], pts: list[Point]) -> dict[str, int]:
    """The points compared per kind, after asserting that every one agrees."""
    rows = compare(theirs, mine, pts)
    wrong = [(p.text, t, m) for _, _, diffs in rows.values() for p, t, m in diffs]
    assert not wrong, wrong[:10]
    return {kind: n for kind, (_, n, _) in rows.items()}


@needs_stap
@pytest.mark.parametrize(("variant", "lines"), [("x86_64", 12), ("aarch64", 6), ("ppc64le", 6), ("riscv64", 6)])
def test_every_function_and_line_as_stap_places_it(variant: str, lines: int) -> None:
    path = fixture_path(variant).resolve()
    binary = patchscope.open(path)
    cx = Context(binary)
    names = probed_names(cx)
    pts = points(f'process("{path}")', names, function_lines(cx, names, lines))
    theirs = stap_answers(stub(), pts, {}, binary.arch)
    mine = patchscope_answers(binary, pts)
    confirm_refusals(stub(), binary.arch, pts, theirs, mine)
    counted = _agree(theirs, mine, pts)
    assert counted["variables"] > 100
    # every kind is exercised: lines stap refuses and places, a blocklisted .return
    placed = {p.kind for p in pts if theirs[p.text].addresses is not None}
    assert placed == {"function", "return", "inline", "call", "line"}
    assert any(theirs[p.text].addresses is None for p in pts if p.kind == "line")
    assert theirs[f'process("{path}").function("_start").return'].addresses is None


def test_vmlinux_sample_as_stap_placed_it(vmlinux: Path) -> None:
    """The answers stap gave on 50 functions of the 6.1.0-56 vmlinux (10 of each kind:
    bench/stap_agreement.py --save): every function, .return, .inline, .call, line and the
    variables listed at each address predicted."""
    data = json.loads((ROOT / "tests/data/stap-oracle-6.1.0-56.json").read_text())
    assert data["vmlinux"] == vmlinux.name
    pts = [Point(**p) for p in data["points"]]
    theirs = {t: Answer.load(a) for t, a in data["answers"].items()}
    counted = _agree(theirs, patchscope_answers(patchscope.open(vmlinux), pts), pts)
    assert counted["line"] == 480 and counted["variables"] > 300


# -- the rules, each on its own -----------------------------------------------------------------

X86 = fixture_path("x86_64")


def _addresses(binary: Path, text: str) -> list[int]:
    return sorted(lnd.address for lnd in resolve(Context(patchscope.open(binary)), ps.parse(text)).landings)


def test_a_line_is_the_lowest_row_of_each_copy() -> None:
    """part.c:6 in the three copies of buf_process inlined into part_entry: stap takes each
    copy's lowest row, is_stmt or not (0x17b1 is not one)."""
    assert _addresses(X86, 'process("x").statement("buf_process@src/part.c:6")') == [0x17B1, 0x17C6, 0x17E3]


def test_one_inline_probe_per_entry_address() -> None:
    """clampi has 6 inline sites, two at 0x1aae: stap keeps the first (inline_dupes)."""
    assert _addresses(X86, 'process("x").function("clampi").inline') == [0x19E0, 0x1A00, 0x1A02, 0x1A09, 0x1AAE]


def test_blocklist_and_bare_symbols() -> None:
    cx = Context(patchscope.open(X86))
    ret = resolve(cx, ps.parse('process("x").function("_start").return'))
    assert not ret.landings and "blocklist" in ret.errors[0]
    assert [lnd.address for lnd in resolve(cx, ps.parse('process("x").function("_start")')).landings] == [0x13A0]
    # query_module_symtab: a symbol without DWARF even for .inline
    assert [lnd.address for lnd in resolve(cx, ps.parse('process("x").function("_init").inline')).landings] == [0x1000]


def test_ppc64_probes_the_local_entry() -> None:
    """get_lep: tree_sum's global entry is 0x1f50, its local entry 8 bytes on."""
    assert _addresses(fixture_path("ppc64le"), 'process("x").function("tree_sum")') == [0x1F58]


#: A symbol with code whose only DIE of its name is an inline definition (fixtures/src/extra/stapsym.c).
STAPSYM = ROOT / "fixtures/bin/x86_64-stapsym/corpus"


def test_an_inline_definition_is_never_a_symbols_die() -> None:
    """twice: a symbol at 0x1139 and one abstract DIE with DW_AT_inline (the vmlinux's
    blk_freeze_queue and rcu_test_sync_prims). update_symtab skips inline DIEs, so the symbol
    keeps none and stap probes it for every kind; .function and .inline reach the inline site at
    0x1040 too. A DIE without DW_AT_inline and without code would be given to the symbol, and
    stap would probe nothing (dwarf_without_code)."""
    cx = Context(patchscope.open(STAPSYM))
    (die,) = [int(f) for f, n in zip(cx.sp["flags"], cx.sp["name"]) if cx.string(int(n)) == "twice"]
    assert die & _core.spflag.INLINE and not die & _core.spflag.HAS_CODE
    expected = {"": [0x1040, 0x1139], ".inline": [0x1040, 0x1139], ".return": [0x1139], ".call": [0x1139]}
    for suffix, addresses in expected.items():
        assert _addresses(STAPSYM, f'process("x").function("twice"){suffix}') == addresses, suffix


@needs_stap
def test_an_inline_definitions_symbol_as_stap_places_it() -> None:
    path = STAPSYM.resolve()
    binary = patchscope.open(path)
    pts = points(f'process("{path}")', ["twice", "main"], {})
    theirs = stap_answers(stub(), pts, {}, binary.arch)
    _agree(theirs, patchscope_answers(binary, pts), pts)
    assert theirs[f'process("{path}").function("twice").call'].addresses == (0x1139,)


def test_stap_lists_a_clones_ghost_parameter() -> None:
    """compute_level.isra.0: stap lists $cfg, whose location is DW_OP_GNU_parameter_ref (a
    value the caller had, gone after IPA-SRA); check predicts that stap lists it and says it
    cannot be read."""
    from patchscope.report import check

    (rec,) = check.document(patchscope.open(X86), [ps.parse('process("x").function("compute_level")')])["points"]
    (lnd,) = rec["landings"]
    cfg = next(v for v in lnd["variables"] if v["name"] == "cfg")
    assert cfg["state"] == "parameter-ref" and cfg["state"] not in READABLE
