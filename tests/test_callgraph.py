"""The call graph and the function pointers in data, cross-checked against objdump and
pyelftools on the kernel in miniature (fixtures/src/extra/kprobes.c)."""

from __future__ import annotations

import re
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

import patchscope
from conftest import BIN, vmlinux_path
from patchscope.index.callgraph import Via, call_graph
from patchscope.index.context import Context

CORPUS = BIN / "x86_64-kprobes/corpus"


def objdump_edges() -> set[tuple[str, str, str]]:
    """(caller, callee, call|jump) of every direct call and jump to another function's start."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(CORPUS)], capture_output=True, text=True).stdout
    edges, caller = set(), ""
    for line in out.splitlines():
        if m := re.match(r"^[0-9a-f]+ <([^>]+)>:$", line):
            caller = m.group(1)
        elif (m := re.search(r"\t(call|j[a-z]+)\s+[0-9a-f]+ <([^>+]+)>$", line)) and m.group(2) != caller:
            edges.add((caller, m.group(2), "call" if m.group(1) == "call" else "jump"))
    return edges


def test_call_graph_edges_match_objdump() -> None:
    cx = Context(patchscope.open(CORPUS))
    g = call_graph(cx)
    ours = set()
    for row in range(cx.inst.num_rows):
        for callee, via, _, _ in zip(*g.callees(row)):
            kind = "call" if via == Via.CALL else "jump"
            ours.add((cx.instance_symbol(row), cx.instance_symbol(callee), kind))
    # the callers the graph can know: instances with code (crt's symbols of size 0 have none)
    sizes = cx.inst.column("size").to_pylist()
    coded = {cx.instance_symbol(r) for r in range(cx.inst.num_rows) if sizes[r]}
    named = {cx.instance_symbol(r) for r in range(cx.inst.num_rows)}
    theirs = {e for e in objdump_edges() if e[0] in coded and e[1] in named}
    assert ("exc_int3", "trap_helper", "call") in ours
    assert ours == theirs


def test_function_pointers_match_pyelftools() -> None:
    cx = Context(patchscope.open(CORPUS))
    ours = set(zip(cx.function_pointers.column("at").to_pylist(), cx.function_pointers.column("value").to_pylist()))
    with open(CORPUS, "rb") as f:
        elf = ELFFile(f)
        symbols = elf.get_section_by_name(".symtab").iter_symbols()
        starts = {s["st_value"] for s in symbols if s["st_info"]["type"] == "STT_FUNC"}
        theirs = set()
        for sec in elf.iter_sections():
            flags = sec["sh_flags"]
            if sec["sh_type"] != "SHT_PROGBITS" or not flags & 0x2 or flags & 0x4:  # SHF_ALLOC, not SHF_EXECINSTR
                continue
            data, base = sec.data(), sec["sh_addr"]
            for off in range((-base) % 8, len(data) - 7, 8):
                v = int.from_bytes(data[off : off + 8], "little")
                if v and v in starts:
                    theirs.add((base + off, v))
    assert ours == theirs
    blacklisted = {cx.name_at(v) for _, v in ours}
    assert {"do_int3", "kprobe_int3_handler", "get_kprobe"} <= blacklisted  # NOKPROBE_SYMBOL's table


@pytest.mark.skipif(vmlinux_path() is None, reason="Debian 6.1.0-56 vmlinux not fetched")
def test_the_binary_confirms_the_ftrace_handler_pointer() -> None:
    from patchscope.rules import machinery

    cx = Context(patchscope.open(vmlinux_path()))
    r = cx.shared(machinery.reach)
    stored = {cx.instance_symbol(t): where for t, where in r.stored.items()}
    assert sorted(stored["kprobe_ftrace_handler"]) == ["kprobe_ftrace_ops+0x0", "kprobe_ipmodify_ops+0x0"]
    assert stored["kprobe_dispatcher"] == []  # trace_kprobe sets the pre-handler in code
