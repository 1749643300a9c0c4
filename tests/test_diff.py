"""`patchscope diff` on the -O2 / -O3 pair of the same sources, on one build against itself, and
on the patch pair (fixtures/src/diff: one kind of change per function); the code fingerprint's
fields against objdump."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import patchscope
from conftest import BIN
from patchscope.index import machine as code
from patchscope.index.builds import clone_shape


def diff(old: str, new: str, prefix: bool = True) -> dict:
    """``patchscope diff --format json`` of two variants' corpus (or, ``prefix=False``, two paths)."""
    if prefix:
        old, new = str(BIN / old / "corpus"), str(BIN / new / "corpus")
    r = subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "diff", old, new, "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_clone_shape_ignores_numbers() -> None:
    assert clone_shape("foo.isra.3.cold") == "foo.isra.cold"
    assert clone_shape("foo.constprop.0.isra.12") == "foo.constprop.isra"
    assert clone_shape("bar.llvm.1234abcd") == "bar"
    assert clone_shape("plain") == "plain"
    assert clone_shape("__UNIQUE_ID_ddebug312") == "__UNIQUE_ID_ddebug"


def test_same_build_no_change() -> None:
    doc = diff("x86_64", "x86_64-split")  # the same code, DWARF in a separate file
    assert doc["functions"] == []
    # nothing to report, but both sides were read: the 67 functions of the x86_64 inventory
    assert doc["summary"] == {"functions_old": 67, "functions_new": 67}


def test_o2_against_o3() -> None:
    doc = diff("x86_64", "x86_64-O3")
    by = {f["name"]: f for f in doc["functions"]}
    assert by["drain"]["changes"] == ["inlining", "clones"]
    assert by["drain"]["old"]["instances"] == ["drain.part+drain.part.cold"]
    assert by["drain"]["new"]["status"] == "fully-inlined" and by["drain"]["new"]["inline_sites"] == 6
    assert by["scale_mixed"]["new"]["instances"] == ["scale_mixed", "scale_mixed.constprop"]
    assert "clones" in by["combo_entry"]["changes"]  # combo_entry.cold appears at -O3
    assert doc["summary"]["inlining"] == 1


# ---- the patch pair: fixtures/src/diff/{old,new}/patch.c, one kind of change per function ----

DIFF = BIN / "diff"
#: Functions whose code is the same in both builds, though everything they call and read moved.
UNCHANGED = ["stable_caller", "moved_down", "main", "report"]


def diff_pair(arch: str, name: str = "corpus") -> dict:
    return diff(str(DIFF / arch / "old" / name), str(DIFF / arch / "new" / name), prefix=False)


@pytest.fixture(scope="module")
def patch() -> dict[str, dict]:
    return {f["name"]: f for f in diff_pair("x86_64")["functions"]}


def test_code_changed(patch: dict[str, dict]) -> None:
    f = patch["body_changed"]
    assert f["changes"] == ["code"] and f["code_changed"] == ["body_changed"]
    assert f["old"]["code"]["body_changed"] != f["new"]["code"]["body_changed"]
    assert patch["patch_entry"]["changes"] == ["code"]  # its calls changed


def test_moved_without_code_change(patch: dict[str, dict]) -> None:
    f = patch["moved_down"]
    assert f["changes"] == ["moved"] and f["moved_by"] == 5
    assert (f["old"]["decl_line"], f["new"]["decl_line"]) == (53, 58)
    assert [n + 5 for n in f["old"]["lines"]] == f["new"]["lines"]
    assert f["old"]["code"] == f["new"]["code"]
    # __LINE__ moves with it: its code changes too (kpatch's "__LINE__ shifts")
    assert patch["line_user"]["changes"] == ["code", "moved"]


def test_becomes_inlined(patch: dict[str, dict]) -> None:
    f = patch["becomes_inlined"]
    assert f["changes"][:2] == ["inlining", "clones"]
    assert (f["old"]["status"], f["new"]["status"]) == ("not-inlined", "fully-inlined")
    assert f["new"]["instances"] == [] and f["new"]["inline_sites"] == 1


def test_gains_constprop_clone(patch: dict[str, dict]) -> None:
    f = patch["gains_clone"]
    assert "clones" in f["changes"] and "code" not in f["changes"]  # no instance in common
    assert (f["old"]["instances"], f["new"]["instances"]) == (["gains_clone"], ["gains_clone.constprop"])


def test_signature_changed(patch: dict[str, dict]) -> None:
    f = patch["abi_changes"]
    assert f["changes"] == ["code", "signature"]
    assert (f["old"]["params"], f["new"]["params"]) == (["a", "b"], ["a", "b", "c"])


def test_unchanged_functions_are_not_reported(patch: dict[str, dict]) -> None:
    assert not set(UNCHANGED) - {"moved_down"} & set(patch)
    # the changed ones are (moved_down: moved, its code the same)
    assert {"body_changed", "becomes_inlined", "gains_clone", "abi_changes", "moved_down"} <= set(patch)


def test_summary_and_table() -> None:
    doc = diff_pair("x86_64")
    s = doc["summary"]
    assert (s["code"], s["signature"], s["moved"], s["inlining"], s["clones"]) == (4, 1, 2, 1, 2)
    r = subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "diff", str(DIFF / "x86_64/old/corpus"),
         str(DIFF / "x86_64/new/corpus")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "moved by +5 lines (same code; every line probe in it shifts)" in r.stdout
    assert "code changed: body_changed" in r.stdout
    assert "signature (a, b) → (a, b, c)" in r.stdout
    assert "1 functions moved with the same code" in r.stdout


def fingerprints(path: Path) -> dict[str, tuple[int, ...]]:
    """Each function symbol's fingerprints (entry range first), from the inventory."""
    b = patchscope.open(path)
    inv = b.inventory
    names = b.cols.pool.take(b.cols.raw["symbols"].column("name")).to_pylist()
    sums = b.fingerprints.by_instance(inv.instances.num_rows)
    return {names[syms[0]]: sums[i] for i, syms in enumerate(inv.instances.column("symbols").to_pylist()) if syms}


@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "ppc64le", "riscv64", "s390x"])
def test_unchanged_code_keeps_its_fingerprint(arch: str) -> None:
    """Same code, moved, calling moved functions and reading moved data (and, on ppc64, a
    moved TOC): the same fingerprints; the changed functions' differ."""
    old, new = (fingerprints(DIFF / arch / side / "corpus") for side in ("old", "new"))
    for name in UNCHANGED:
        assert old[name] == new[name], name
    for name in ("body_changed", "abi_changes", "patch_entry", "line_user"):
        assert old[name] != new[name], name
    doc = diff_pair(arch)
    kinds = {f["name"]: f["changes"] for f in doc["functions"]}
    assert kinds["moved_down"] == ["moved"] and "code" in kinds["body_changed"]
    assert not set(UNCHANGED) - {"moved_down"} & set(kinds)


def test_relocatable_pair() -> None:
    """A .o pair (like two builds of a .ko): the relocations name every target."""
    old, new = (fingerprints(DIFF / "x86_64-rel" / side / "module.o") for side in ("old", "new"))
    for name in UNCHANGED:
        assert old[name] == new[name], name
    assert old["body_changed"] != new["body_changed"]
    kinds = {f["name"]: f["changes"] for f in diff_pair("x86_64-rel", "module.o")["functions"]}
    assert kinds["moved_down"] == ["moved"] and kinds["body_changed"] == ["code"]


# ---- the fingerprint's view of the code, against objdump ----

OBJDUMP_LINE = re.compile(r"^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(.*)$")
#: objdump's target of an instruction: a branch's `1490 <hot_sum>`, a RIP-relative `# 4100 <vals>`
OBJDUMP_TARGET = re.compile(r"\b([0-9a-f]+) <([^>+]+)(?:\+0x([0-9a-f]+))?>")


def objdump(path: Path) -> dict[int, tuple[bytes, str]]:
    out = subprocess.run(["objdump", "-d", "-w", str(path)], check=True, capture_output=True, text=True).stdout
    insns = {}
    for line in out.splitlines():
        m = OBJDUMP_LINE.match(line)
        if m:
            insns[int(m.group(1), 16)] = (bytes.fromhex(m.group(2).replace(" ", "")), m.group(3))
    return insns


@pytest.mark.parametrize("path", [BIN / "x86_64/corpus", DIFF / "x86_64/new/corpus"], ids=["corpus", "diff"])
def test_fields_match_objdump(path: Path) -> None:
    """Every field the fingerprint clears holds, by objdump, the instruction's target: the
    cleared bytes plus the instruction's end (PC-relative) are objdump's address, and the
    name put in its place is objdump's symbol (numbers dropped) — for every instruction
    objdump shows with a target outside its function."""
    insns = objdump(path)
    b = patchscope.open(path)
    inst = b.inventory.instances
    checked = 0
    for ranges in inst.column("ranges").to_pylist():
        for n, (low, high) in enumerate(ranges):
            _, rows = code.normal_form(b.core, low, high, entry=n == 0)
            fields = {r["address"]: r for r in rows if code.HOW[r["how"]] not in ("raw", "skipped")}
            for at, (raw, text) in ((a, v) for a, v in insns.items() if low <= a < high):
                m = OBJDUMP_TARGET.search(text)
                outside = m and not low <= int(m.group(1), 16) < high
                if at not in fields:
                    assert not (outside and re.match(r"(call|jmp|j\w+|lea|mov)\b", text)), (hex(at), text)
                    continue
                r = fields[at]
                assert r["size"] == len(raw), (hex(at), text)
                first = (r["mask"] & -r["mask"]).bit_length() - 1
                width = r["mask"].bit_count()
                value = int.from_bytes(raw[first : first + width], "little", signed=True)
                assert m, (hex(at), text)
                target = int(m.group(1), 16)
                assert target in (value + at + len(raw), value % 2**64), (hex(at), text)
                if code.HOW[r["how"]] == "symbol":
                    # objdump names a GOT slot by its symbol's version (foo@GLIBC_2.34), we as foo@got
                    ours, theirs = r["name"], clone_shape(m.group(2))
                    assert ours == theirs or (ours.endswith("@got") and ours[:-4] == theirs.split("@")[0]), (text, r)
                    assert r["offset"] == int(m.group(3) or "0", 16), (hex(at), text, r)
                checked += 1
    assert checked > 20
