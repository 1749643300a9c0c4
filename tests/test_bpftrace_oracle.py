"""bpftrace 0.17 itself on the fixtures of four architectures: the symbols a ``uprobe:BIN:PATTERN``
or ``uretprobe:`` point expands to (``bpftrace -l``, which reads the ELF symbol table and needs
no kernel) equal the symbols of the places ``check`` predicts.

What bpftrace cannot answer here (docs/peers-vs-patchscope.md, "bpftrace"): ``-l 'kprobe:*'``
reads the running kernel's ``available_filter_functions`` (tracefs, not readable in this
container), and ``-d`` (dry run) prints the program, never the addresses it would attach at;
an offset (``uprobe:BIN:f+4``) is checked only when attaching."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import patchscope
from conftest import fixture_path
from patchscope.index.context import Context
from patchscope.probes import syntax as ps
from patchscope.probes.resolve import resolve

#: "*" is bpftrace's only wildcard (util/wildcard.cpp): "tree?sum" and "[a-c]*" name no symbol.
PATTERNS = ["*", "tree*", "*.isra.*", "*cold*", "*_entry", "lookup", "_start", "*sum*", "[a-c]*", "tree?sum"]


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace absent (Debian's bpftrace)")
@pytest.mark.parametrize("variant", ["x86_64", "aarch64", "ppc64le", "riscv64"])
def test_uprobe_wildcards_as_bpftrace_lists_them(variant: str) -> None:
    path = fixture_path(variant).resolve()
    cx = Context(patchscope.open(path))
    listed = 0
    for kind in ("uprobe", "uretprobe"):
        for pattern in PATTERNS:
            point = f"{kind}:{path}:{pattern}"
            out = subprocess.run(["bpftrace", "-l", point], capture_output=True, text=True, timeout=60).stdout
            theirs = sorted({line.rsplit(":", 1)[1] for line in out.splitlines() if line.strip()})
            mine = sorted({cx.name_at(lnd.address).split("+")[0] for lnd in resolve(cx, ps.parse(point)).landings})
            assert mine == theirs, point
            listed += len(theirs)
    assert listed > 50
