"""PLT stubs named by the core (``Binary.plt_names``) as objdump names them (``<foo@plt>``)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import patchscope
from conftest import BIN

OBJDUMP = {"x86_64": "objdump", "aarch64": "aarch64-linux-gnu-objdump", "riscv64": "riscv64-linux-gnu-objdump"}
LABEL = re.compile(r"^([0-9a-f]+) <(.+)@plt>:$", re.M)


@pytest.mark.parametrize("arch", sorted(OBJDUMP))
def test_plt_stubs_as_objdump_names_them(arch: str) -> None:
    tool = shutil.which(OBJDUMP[arch]) or pytest.skip(f"no {OBJDUMP[arch]}")
    path = BIN / arch / "corpus"
    out = subprocess.run([tool, "-d", str(path)], check=True, capture_output=True, text=True).stdout
    want = {int(a, 16): name for a, name in LABEL.findall(out)}
    t = patchscope.open(path).plt_names()
    rows = t.to_pylist()
    got = {r["address"]: r["name"] for r in rows if not r["got"]}
    assert want and got == want
    # each stub's slot is a GOT slot of the same name
    slots = {r["name"] for r in rows if r["got"]}
    assert set(got.values()) <= slots
