"""Probe input that once broke ``check`` or made it lie: invented callees, offsets past a
function's end, offsets where the tool takes none, bytes that are not UTF-8, hostile sizes."""

from __future__ import annotations

from pathlib import Path

import patchscope
from conftest import BIN
from patchscope.probes import syntax as ps
from patchscope.report import check

X86 = BIN / "x86_64/corpus"


def judge(binary: Path, *texts: str) -> list[dict]:
    return check.document(patchscope.open(binary), [ps.parse(t) for t in texts])["points"]


def called(rec: dict) -> set[str]:
    return {lnd["in"] for lnd in rec["landings"] if lnd["kind"] == "entry"}


def test_callees_are_the_direct_calls_objdump_shows() -> None:
    (rec,) = judge(X86, 'process.function("main").callees')
    # objdump -d: main and main.cold call these 31 functions directly (and printf through the
    # PLT, and double_fp through a pointer, which name no function of the binary)
    assert called(rec) == {
        "hot_sum",
        "parse_level",
        "constprop_entry",
        "isra_entry",
        "part_entry",
        "combo_entry",
        "inline_entry",
        "helper_both",
        "wrapper_tail",
        "wrapper_notail",
        "wrapper_xtu",
        "wrapper_indirect",
        "dispatch_tail",
        "is_even_rec",
        "is_odd_rec",
        "fact_tail",
        "tree_sum",
        "ackermann",
        "tree_depth",
        "collide_a_entry",
        "collide_b_entry",
        "cas_increment",
        "fetch_add",
        "exchange",
        "cas_byte",
        "atomic_max",
        "tm_increment",
        "spin_trylock",
        "spin_unlock",
        "die_unreachable",
        "fatal_error",
    }


def test_callees_on_the_kernel(vmlinux: Path) -> None:
    (rec,) = judge(vmlinux, 'kernel.function("vfs_read").callees')
    # objdump -d: vfs_read calls rw_verify_area, __fsnotify_parent, fsnotify, __get_task_ioprio
    assert {"rw_verify_area", "__fsnotify_parent", "fsnotify", "__get_task_ioprio"} <= called(rec)
    assert "parse_nolapic_timer" not in called(rec)
