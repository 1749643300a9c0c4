"""perf probe 6.1 itself, asked offline (``-D``), on every function of the fixtures of four
architectures: its entry, ``%return``, ``F:0`` and lines 1-12 (1-6 off x86_64, for time) — each
answer (the addresses, or refused with perf's message) equal to what ``check`` predicts."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from perf_oracle import Answer, absolute, agrees, compare, function_points, patchscope_answer, probed_names

import patchscope
from conftest import ROOT, fixture_path
from patchscope.index.context import Context
from patchscope.probes import syntax as ps
from patchscope.probes.resolve import resolve

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
