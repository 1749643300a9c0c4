"""`patchscope diff` on the -O2 / -O3 pair of the same sources, and on one build against itself."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import BIN
from patchscope.report.diff import clone_shape


def diff(old: str, new: str) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "diff", str(BIN / old / "corpus"), str(BIN / new / "corpus"),
         "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_clone_shape_ignores_numbers() -> None:
    assert clone_shape("foo.isra.3.cold") == "foo.isra.cold"
    assert clone_shape("foo.constprop.0.isra.12") == "foo.constprop.isra"
    assert clone_shape("bar.llvm.1234abcd") == "bar"
    assert clone_shape("plain") == "plain"


def test_same_build_no_change() -> None:
    doc = diff("x86_64", "x86_64-split")  # the same code, DWARF in a separate file
    assert doc["functions"] == []


def test_o2_against_o3() -> None:
    doc = diff("x86_64", "x86_64-O3")
    by = {f["name"]: f for f in doc["functions"]}
    assert by["drain"]["changes"] == ["inlining", "clones"]
    assert by["drain"]["old"]["instances"] == ["drain.part+drain.part.cold"]
    assert by["drain"]["new"]["status"] == "fully-inlined" and by["drain"]["new"]["inline_sites"] == 6
    assert by["scale_mixed"]["new"]["instances"] == ["scale_mixed", "scale_mixed.constprop"]
    assert "clones" in by["combo_entry"]["changes"]  # combo_entry.cold appears at -O3
    assert doc["summary"]["inlining"] == 1
