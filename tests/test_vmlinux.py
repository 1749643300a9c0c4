"""Debian's 6.1.0-56 amd64 vmlinux, when present (../shared/data/fetch-debian-kernel.sh 6.1.0-56)."""

from __future__ import annotations

from pathlib import Path

import pytest

import patchscope
from patchscope.report.inventory import InventoryView


@pytest.fixture(scope="module")
def kernel(vmlinux: Path) -> patchscope.Binary:
    return patchscope.open(vmlinux)


def test_table_sizes(kernel: patchscope.Binary) -> None:
    """The counts measured with pyelftools and llvm-dwarfdump before the project started
    (shared/reference/dwarf_reader_speed.md): exact, not merely within 1 %."""
    assert kernel.units.num_rows == 2352
    assert kernel.unit_errors() == []
    assert kernel.subprograms.num_rows == 256_197
    assert kernel.inline_sites.num_rows == 311_113
    assert kernel.call_sites.num_rows == 209_195
    assert kernel.params.num_rows == 910_203
    assert kernel.lines.num_rows == 4_310_087
    # 129,792 entries in .symtab, less the null symbol at index 0
    assert kernel.symbols.num_rows == 129_791
    assert sum(kernel.call_sites.column("tail").to_pylist()) == 17_041


def record(kernel: patchscope.Binary, name: str) -> dict:
    (fid,) = kernel.find_functions(name)
    return InventoryView(kernel).record(fid)


def test_preallocate_pmds_constprop(kernel: patchscope.Binary) -> None:
    r = record(kernel, "preallocate_pmds")
    assert r["decl_file"] == "arch/x86/mm/pgtable.c"
    assert [i["symbol"] for i in r["instances"]] == ["preallocate_pmds.constprop.0"]
    assert r["instances"][0]["suffixes"] == ["constprop.0"]


def test_show_mem_node_skip_part(kernel: patchscope.Binary) -> None:
    r = record(kernel, "show_mem_node_skip")
    assert r["status"] == "selectively-inlined"
    assert [i["symbol"] for i in r["instances"]] == ["show_mem_node_skip.part.0"]
    assert r["inline_sites"]["count"] == 5
    assert {s["caller"] for s in r["inline_sites"]["sites"]} == {"__show_free_areas"}


def test_inline_shares(kernel: patchscope.Binary) -> None:
    """Not / fully / selectively inlined, beside DepSurf's 53-58 % / 32-35 % / 9-11 % for 6.x."""
    status = kernel.inventory.functions.column("status").to_pylist()
    counts = {s: status.count(s) for s in ("not-inlined", "fully-inlined", "selectively-inlined")}
    total = sum(counts.values())
    assert counts == {"not-inlined": 39_966, "fully-inlined": 28_402, "selectively-inlined": 5_212}
    assert 0.50 < counts["not-inlined"] / total < 0.60
    assert total > 70_000
